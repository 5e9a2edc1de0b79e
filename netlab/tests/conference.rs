//! A reserved conference survives a saturated link; an unreserved one does not.
//!
//! Tibet's backbone circuit (dc:54 ⇄ dc:ministry, 100 Mbit/s in the network file) is
//! emulated at its capacity with a 20 ms queue, and bulk MQ traffic from Lhasa's exchange
//! zone to the ministry's is offered at ~130 % of it. A 2 Mbit/s HD video stream (RTP over
//! UDP, 1,200-byte packets) runs from Lhasa's terminal to the ministry's MCU alongside:
//!
//! 1. without a reservation, the stream shares the underlay's queue with the bulk traffic
//!    and loses what the queue drops;
//! 2. then a conference is booked, approved and scheduled on the controller (a real one,
//!    with its store), whose bundle push gives dc:54's agent the reservation; the agent
//!    marks the stream AF41, gives it strict priority up to the reserved rate and shapes
//!    everything it sends to the circuit's capacity, so the stream keeps its loss under 1 %
//!    and its added delay under 30 ms.
//!
//! Delay is measured per packet from injection at dc:54 to delivery at the ministry, against
//! the same stream's delay on the idle link. The test prints both phases.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use agent::control::ModelSources;
use agent::model::Model;
use agent::node::qos::{DSCP_AF41, dscp_of};
use netlab::lab::{Lab, LabOptions, LabTopology, Scratch, TreeLink};
use netlab::underlay::LinkProfile;
use topology::{NodeId, Zone};

const BULK_PACKET: usize = 1_400;
const MEDIA_PACKET: usize = 1_200;
/// The stream's port (video, in the default media ranges).
const MEDIA_PORT: u16 = 17_002;
/// How long each phase offers load.
const PHASE: Duration = Duration::from_millis(1_500);

/// One phase's measurements of the media stream.
#[derive(Debug)]
struct Stream {
    sent: u64,
    received: u64,
    /// Delay beyond the idle link's, per received packet.
    added: Vec<Duration>,
    marked: bool,
}

impl Stream {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }

    fn added_percentile(&self, p: f64) -> Duration {
        let mut added = self.added.clone();
        added.sort();
        added
            .get(((added.len() as f64 * p) as usize).min(added.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Duration::MAX)
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<24} sent {:>4}  received {:>4}  loss {:>5.2} %  added delay p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms  marked AF41: {}",
            self.sent,
            self.received,
            self.loss() * 100.0,
            self.added_percentile(0.5).as_secs_f64() * 1e3,
            self.added_percentile(0.95).as_secs_f64() * 1e3,
            self.added_percentile(1.0).as_secs_f64() * 1e3,
            self.marked,
        )
    }
}

/// An IPv4 UDP packet of `len` bytes carrying `seq` in its first payload bytes.
fn udp(src: IpAddr, dst: IpAddr, port: u16, len: usize, seq: u32) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        panic!("the lab's plane is IPv4");
    };
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&port.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p[28..32].copy_from_slice(&seq.to_be_bytes());
    p
}

/// A TCP segment of `len` bytes on MQ's port (allowed exchange ⇄ exchange up the tree): the
/// lab's SYN, padded (the filter keeps one flow for the repeated segments, as for the
/// scenarios' loads).
fn bulk(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
    let mut p = netlab::lab::syn(src, dst, 1414);
    p.resize(len, 0);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[10] = 0;
    p[11] = 0;
    let sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Offers the media stream (2 Mbit/s) and, with `bulk_bps`, bulk traffic for `span`, in
/// 1 ms steps; returns the stream's measurements with delays as measured (not yet less the
/// idle delay).
async fn offer(
    lab: &mut Lab,
    (from, to): (NodeId, NodeId),
    bulk_bps: u64,
    span: Duration,
    first_seq: u32,
) -> (Stream, Vec<Duration>) {
    let src = lab.address(from, Zone::Exchange).unwrap();
    let dst = lab.address(to, Zone::Exchange).unwrap();
    let media_pps = 2_000_000.0 / (MEDIA_PACKET as f64 * 8.0);
    let bulk_pps = bulk_bps as f64 / (BULK_PACKET as f64 * 8.0);
    let bulk_packet = bulk(src, dst, BULK_PACKET);
    let start = Instant::now();
    let mut sent_at = std::collections::HashMap::new();
    let (mut media_sent, mut bulk_sent) = (0u64, 0u64);
    let mut delays = Vec::new();
    let mut marked = true;
    let mut seq = first_seq;
    lab.take_delivered(to);
    loop {
        let elapsed = start.elapsed();
        let offering = elapsed < span;
        if offering {
            // Both streams in the order their packets fall due, so the bulk traffic of one
            // step never lands ahead of all the media of the same step (a drop-tail queue
            // would then drop media first, an artefact of the steps).
            let t = elapsed.as_secs_f64();
            loop {
                let bulk_due = (bulk_pps > 0.0).then(|| bulk_sent as f64 / bulk_pps);
                let media_due = (media_sent as f64 - 1.0) / media_pps;
                let media_first = bulk_due.is_none_or(|b| media_due <= b);
                if media_first && media_due <= t {
                    let packet = udp(src, dst, MEDIA_PORT, MEDIA_PACKET, seq);
                    sent_at.insert(seq, Instant::now());
                    lab.inject(from, &packet).unwrap();
                    media_sent += 1;
                    seq += 1;
                } else if bulk_due.is_some_and(|b| !media_first && b <= t) {
                    lab.inject(from, &bulk_packet).unwrap();
                    bulk_sent += 1;
                } else {
                    break;
                }
            }
        } else if elapsed > span + Duration::from_millis(300) {
            break;
        }
        lab.run_for(Duration::from_millis(1)).await;
        let arrived = Instant::now();
        for packet in lab.take_delivered(to) {
            if packet.len() == MEDIA_PACKET && packet[9] == 17 {
                let n = u32::from_be_bytes(packet[28..32].try_into().unwrap());
                if let Some(at) = sent_at.remove(&n) {
                    delays.push(arrived - at);
                    marked &= dscp_of(&packet) == Some(DSCP_AF41);
                }
            }
        }
    }
    let stream = Stream {
        sent: media_sent,
        received: delays.len() as u64,
        added: Vec::new(),
        marked: marked && !delays.is_empty(),
    };
    (stream, delays)
}

fn less_idle(mut stream: Stream, delays: Vec<Duration>, idle: Duration) -> Stream {
    stream.added = delays.iter().map(|d| d.saturating_sub(idle)).collect();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_conference_keeps_its_quality_on_a_saturated_link_and_an_unreserved_one_does_not()
 {
    let model = Model::load(&ModelSources::default()).unwrap();
    let ministry: NodeId = "dc:ministry".parse().unwrap();
    let lhasa: NodeId = "dc:54".parse().unwrap();
    let capacity = {
        let network = &model.network;
        let link = network.uplink(network.lookup(&lhasa).unwrap()).unwrap();
        network.link(link).capacity.0 * 1_000
    };
    assert_eq!(
        capacity, 100_000_000,
        "Tibet's backbone in the network file"
    );
    let circuit = LinkProfile {
        rate_bps: Some(capacity),
        queue_bytes: (capacity / 8 / 50) as usize, // 20 ms
        ..LinkProfile::BACKBONE
    };
    let topology = LabTopology {
        nodes: vec![ministry, lhasa],
        links: vec![TreeLink {
            child: lhasa,
            parent: ministry,
            primary: circuit,
            backup: None,
        }],
    };
    let work = Scratch::new("conference");
    let mut lab = Lab::start(&topology, LabOptions::new(work.path()), |_| {})
        .await
        .unwrap();
    lab.run_until_done(Duration::from_secs(20), |lab| lab.tunnels_up().0 == 1)
        .await
        .expect("the tunnel comes up");
    let ends = (lhasa, ministry);

    // The idle link's delay for the stream.
    let (_, idle) = offer(&mut lab, ends, 0, Duration::from_millis(300), 0).await;
    let idle = *idle.iter().min().expect("the idle stream arrives");

    // 1. No reservation.
    let offered = capacity * 13 / 10;
    let (unreserved, delays) = offer(&mut lab, ends, offered, PHASE, 100_000).await;
    let unreserved = less_idle(unreserved, delays, idle);

    // 2. Booked, approved, scheduled: the reservation reaches dc:54's agent.
    book_conference(&mut lab, ministry, lhasa).await;
    let (reserved, delays) = offer(&mut lab, ends, offered, PHASE, 200_000).await;
    let reserved = less_idle(reserved, delays, idle);
    let counters = lab.conference_counters(lhasa, ministry);

    println!(
        "Tibet backbone: {} Mbit/s circuit, bulk offered at {} Mbit/s, idle one-way delay {idle:?}",
        capacity / 1_000_000,
        offered / 1_000_000
    );
    println!("{}", unreserved.line("without a reservation:"));
    println!("{}", reserved.line("with a reservation:"));
    println!("dc:54's shaper: {counters:?}");

    assert!(reserved.loss() < 0.01, "{}", reserved.line("reserved"));
    assert!(
        reserved.added_percentile(0.95) < Duration::from_millis(30),
        "{}",
        reserved.line("reserved")
    );
    assert!(reserved.marked, "the reserved stream arrives marked AF41");
    let counters = counters.expect("dc:54 enforces a reservation toward the ministry");
    // HD is 2 Mbit/s nominal, reserved with its overhead (×1.2 × (1 + 60/average packet)).
    assert!(
        (2_400..3_000).contains(&counters.reserved_kbps),
        "{counters:?}"
    );
    // What the agent reports (to the controller, `show` and /metrics) says the same.
    let reported = lab
        .status(lhasa)
        .and_then(|s| s.planes.into_iter().next())
        .and_then(|p| p.peers.into_iter().find(|p| p.node == ministry))
        .and_then(|p| p.conference);
    assert_eq!(
        reported.map(|c| c.reserved_kbps),
        Some(counters.reserved_kbps)
    );
    assert!(
        counters.reserved_packets > 0 && counters.dropped > 0,
        "{counters:?}"
    );
    assert!(
        unreserved.loss() > 0.05,
        "without a reservation the stream must visibly suffer: {}",
        unreserved.line("unreserved")
    );
    assert!(!unreserved.marked, "nothing marks an unreserved stream");
}

/// Books an HD conference with its MCU at `mcu` and a terminal at `terminal`, in its test
/// window now, through the controller (filed, approved, scheduled: what the admin API's
/// routes do), and runs the lab until the terminal's agent holds the reservation.
async fn book_conference(lab: &mut Lab, mcu: NodeId, terminal: NodeId) {
    use controller::bookings::Order;
    use controller::conference::Preemption;
    let controller = lab.running_controller().unwrap();
    let rfc3339 = |at| humantime::format_rfc3339_seconds(at).to_string();
    let now = std::time::SystemTime::now();
    // Starts in ten minutes: its 30-minute test window holds the bandwidth already.
    let form = format!(
        r#"title = "西藏自治区视频会议调试"
organiser = "人力资源和社会保障部办公厅"
contact = "王芳"
phone = "010-84201234"
start = {}
end = {}
main-venue = "{mcu}"
sites = ["{terminal}"]
bitrate = "hd"
"#,
        rfc3339(now + Duration::from_secs(600)),
        rfc3339(now + Duration::from_secs(3_600)),
    );
    let order = |order| controller::server::conferences::carry_out(&controller, order, "netlab");
    let filed = order(Order::File {
        name: "netlab-form.toml".into(),
        text: form,
    })
    .await
    .unwrap();
    let id = controller::conference::BookingId(filed.booking.id);
    order(Order::Approve(id)).await.unwrap();
    order(Order::Schedule(id, None, Preemption::Refuse))
        .await
        .unwrap();
    lab.run_until_done(Duration::from_secs(10), |lab| {
        lab.conference_counters(terminal, mcu).is_some()
    })
    .await
    .expect("the reservation reaches the terminal's agent");
}
