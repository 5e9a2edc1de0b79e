//! Unit tests of the prober and the wire format, on synthetic time.

#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::Packet;
use pnet_packet::ipv4::{self, Ipv4Packet};
use pnet_packet::udp::{self, UdpPacket};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings(interval_ms: u64, down_after: u32) -> ProbeSettings {
    ProbeSettings {
        interval_ms,
        down_after,
        ..ProbeSettings::default()
    }
}

/// Sends the request due at `t0 + sent` and answers it at `t0 + sent + rtt`.
fn exchange(p: &mut LinkProbe, t0: Instant, sent: u64, rtt: u64) -> ProbeMessage {
    let req = p.poll(t0 + ms(sent)).expect("a request is due");
    assert_eq!(p.on_message(t0 + ms(sent + rtt), &req.reply()), None);
    req
}

#[test]
fn echo_clock_round_trips() {
    let t0 = Instant::now();
    let clock = EchoClock::new(t0);
    assert_eq!(clock.token(t0 + Duration::from_nanos(1_234_567)), 1_234_567);
    assert_eq!(
        clock.instant(1_234_567),
        Some(t0 + Duration::from_nanos(1_234_567))
    );
    assert_eq!(EchoClock::new(t0 + ms(5)).token(t0), 0);
}

#[test]
fn rtt_and_jitter_match_hand_computed_values() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    assert_eq!(p.rtt(), None);
    for (i, rtt) in [10, 12, 11, 30].into_iter().enumerate() {
        exchange(&mut p, t0, 100 * i as u64, rtt);
    }
    // SRTT: 10 → 10.25 → 10.34375 → 12.80078125 ms.
    assert_eq!(p.rtt(), Some(Duration::from_nanos(12_800_781)));
    // RTTVAR: 5 → 4.25 → 3.375 → 7.4453125 ms.
    assert_eq!(p.rtt_var(), Duration::from_nanos(7_445_313));
    // J: 0 → 2/16 = 0.125 → 0.125 + (1 − 0.125)/16 = 0.1796875
    //   → 0.1796875 + (19 − 0.1796875)/16 = 1.35595703125 ms.
    assert_eq!(p.jitter(), Duration::from_nanos(1_355_957));
    assert_eq!(p.loss(), 0.0);
    assert_eq!((p.sent(), p.answered()), (4, 4));
}

#[test]
fn jitter_follows_arrival_order_not_sequence() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    let a = p.poll(t0).unwrap();
    let b = p.poll(t0 + ms(100)).unwrap();
    // b (RTT 20) arrives before a (RTT 130): D = 130 − 20 = 110 ms.
    p.on_message(t0 + ms(120), &b.reply());
    p.on_message(t0 + ms(130), &a.reply());
    assert_eq!(p.jitter(), Duration::from_nanos(110_000_000 / 16));
}

#[test]
fn one_in_four_lost_is_a_quarter() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    for i in 0..4 {
        let req = p.poll(t0 + ms(100 * i)).unwrap();
        if i != 2 {
            p.on_message(t0 + ms(100 * i + 10), &req.reply());
        }
    }
    assert_eq!(p.loss(), 0.0, "the unanswered request is still in flight");
    // Request 2 was sent at 200 ms; it is lost at 200 + 3 × 100 ms.
    p.poll(t0 + ms(499));
    assert_eq!(p.loss(), 0.0);
    p.poll(t0 + ms(500));
    assert_eq!(p.loss(), 0.25);
    assert_eq!(p.health(), PeerHealth::Up);
}

#[test]
fn loss_window_forgets_old_losses() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    let mut t = 0;
    for _ in 0..LOSS_WINDOW {
        p.poll(t0 + ms(t));
        t += 100;
    }
    // This poll settles the last of them and sends one more request, lost in turn.
    p.poll(t0 + ms(t + 300));
    assert_eq!(p.loss(), 1.0);
    // The link heals once that extra request has timed out too (at t + 600 ms).
    let mut t = t + 700;
    for _ in 0..LOSS_WINDOW {
        exchange(&mut p, t0, t, 5);
        t += 100;
    }
    assert_eq!(p.loss(), 0.0);
}

#[test]
fn down_three_hundred_ms_after_the_last_reply() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    assert_eq!(p.health(), PeerHealth::Unknown);
    exchange(&mut p, t0, 0, 10);
    assert_eq!(p.health(), PeerHealth::Up);
    let up = p.take_change().unwrap();
    assert_eq!(
        (up.from, up.to, up.at),
        (PeerHealth::Unknown, PeerHealth::Up, t0 + ms(10))
    );
    // The link is cut: requests at 100, 200, 300 go unanswered.
    for t in [100, 200, 300] {
        assert_eq!(p.next_timeout(), t0 + ms(t));
        assert!(p.poll(t0 + ms(t)).is_some());
    }
    assert_eq!(p.next_timeout(), t0 + ms(310));
    p.poll(t0 + ms(309));
    assert_eq!(p.health(), PeerHealth::Up);
    assert_eq!(p.sent() - p.answered(), 3);
    assert_eq!(p.poll(t0 + ms(310)), None);
    assert_eq!(p.health(), PeerHealth::Down);
    let down = p.take_change().unwrap();
    assert_eq!((down.from, down.to), (PeerHealth::Up, PeerHealth::Down));
    assert_eq!(down.at - (t0 + ms(10)), ms(300));
    assert_eq!(p.take_change(), None);
}

#[test]
fn never_answered_goes_down_from_unknown() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&settings(50, 3), t0);
    for t in [0, 50, 100] {
        assert!(p.poll(t0 + ms(t)).is_some());
    }
    p.poll(t0 + ms(149));
    assert_eq!(p.health(), PeerHealth::Unknown);
    p.poll(t0 + ms(150));
    let change = p.take_change().unwrap();
    assert_eq!(
        (change.from, change.to, change.at),
        (PeerHealth::Unknown, PeerHealth::Down, t0 + ms(150))
    );
}

#[test]
fn one_reply_brings_a_down_peer_up() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    exchange(&mut p, t0, 0, 10);
    for t in [100, 200, 300] {
        p.poll(t0 + ms(t));
    }
    p.poll(t0 + ms(310));
    assert_eq!(p.health(), PeerHealth::Down);
    // While down, the detection deadline is not a timeout any more.
    assert_eq!(p.next_timeout(), t0 + ms(400));
    exchange(&mut p, t0, 400, 7);
    assert_eq!(p.health(), PeerHealth::Up);
    let changes: Vec<_> = std::iter::from_fn(|| p.take_change())
        .map(|c| c.to)
        .collect();
    assert_eq!(changes, [PeerHealth::Up, PeerHealth::Down, PeerHealth::Up]);
}

#[test]
fn unknown_duplicate_forged_and_late_replies_are_ignored() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    let req = p.poll(t0).unwrap();
    let mut unknown = req.reply();
    unknown.seq = 77;
    assert_eq!(p.on_message(t0 + ms(1), &unknown), None);
    let mut forged = req.reply();
    forged.echo += 1;
    p.on_message(t0 + ms(2), &forged);
    assert_eq!((p.answered(), p.health()), (0, PeerHealth::Unknown));
    p.on_message(t0 + ms(10), &req.reply());
    p.on_message(t0 + ms(11), &req.reply());
    assert_eq!(p.answered(), 1);
    assert_eq!(p.rtt(), Some(ms(10)));
    // A reply after the request timed out is ignored: the request stays lost.
    let late = p.poll(t0 + ms(100)).unwrap();
    p.poll(t0 + ms(400));
    p.on_message(t0 + ms(401), &late.reply());
    assert_eq!(p.answered(), 1);
    assert_eq!(p.loss(), 0.5);
}

#[test]
fn sequence_numbers_wrap() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0).with_first_seq(u32::MAX - 1);
    let seqs: Vec<u32> = (0..4)
        .map(|i| exchange(&mut p, t0, 100 * i, 5).seq)
        .collect();
    assert_eq!(seqs, [u32::MAX - 1, u32::MAX, 0, 1]);
    assert_eq!((p.answered(), p.loss()), (4, 0.0));
}

#[test]
fn requests_are_answered_with_the_same_seq_and_echo() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&ProbeSettings::default(), t0);
    let theirs = ProbeMessage::request(9, 123_456);
    let reply = p.on_message(t0, &theirs).unwrap();
    assert_eq!(
        (reply.kind, reply.seq, reply.echo),
        (ProbeKind::Reply, 9, 123_456)
    );
    assert_eq!(
        p.health(),
        PeerHealth::Unknown,
        "a request proves one direction only"
    );
}

#[test]
fn late_poll_does_not_burst_and_settings_are_clamped() {
    let t0 = Instant::now();
    let mut p = LinkProbe::new(&settings(10, 0), t0);
    assert_eq!(
        (p.interval(), p.detect_time()),
        (MIN_INTERVAL, MIN_INTERVAL)
    );
    p.poll(t0).unwrap();
    p.poll(t0 + ms(1_000)).unwrap();
    assert_eq!(p.poll(t0 + ms(1_000)), None);
    assert_eq!(p.next_timeout(), t0 + ms(1_050));
    let echo = p.clock().token(t0 + ms(1_000));
    assert_eq!(echo, 1_000_000_000);
}

#[test]
fn payload_has_a_fixed_layout() {
    let msg = ProbeMessage::request(0x0102_0304, 0x1122_3344_5566_7788);
    let bytes = msg.encode();
    assert_eq!(
        bytes,
        [
            b'J', b'B', b'L', b'P', 1, 1, 0, 0, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
            0x77, 0x88
        ]
    );
    assert_eq!(ProbeMessage::decode(&bytes), Ok(msg));
    assert_eq!(ProbeMessage::decode(&msg.reply().encode()), Ok(msg.reply()));
}

#[test]
fn bad_payloads_say_why() {
    let good = ProbeMessage::request(1, 2).encode();
    let with = |i: usize, b: u8| {
        let mut bytes = good;
        bytes[i] = b;
        ProbeMessage::decode(&bytes)
    };
    assert_eq!(
        ProbeMessage::decode(&good[..19]),
        Err(ProbeError::Length { got: 19 })
    );
    assert_eq!(
        ProbeMessage::decode(&[0; 21]),
        Err(ProbeError::Length { got: 21 })
    );
    assert_eq!(with(0, b'X'), Err(ProbeError::Magic(*b"XBLP")));
    assert_eq!(with(4, 2), Err(ProbeError::Version(2)));
    assert_eq!(with(5, 3), Err(ProbeError::Kind(3)));
    assert_eq!(with(7, 1), Err(ProbeError::Reserved(1)));
    assert!(with(4, 9).unwrap_err().to_string().contains("version 9"));
}

#[test]
fn ipv4_packet_parses_back_with_right_checksums() {
    let (src, dst) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1));
    let msg = ProbeMessage::request(5, 6);
    let bytes = probe_packet(src.into(), dst.into(), &msg);
    assert_eq!(bytes.len(), 20 + 8 + PROBE_LEN);
    assert_eq!(
        parse_probe_packet(&bytes),
        Some((src.into(), dst.into(), msg))
    );
    let ip = Ipv4Packet::new(&bytes).unwrap();
    assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
    assert_eq!((ip.get_ttl(), ip.get_dscp()), (255, 48));
    let udp = UdpPacket::new(ip.payload()).unwrap();
    assert_ne!(udp.get_checksum(), 0);
    assert_eq!(udp::ipv4_checksum(&udp, &src, &dst), udp.get_checksum());
    assert_eq!((udp.get_source(), udp.get_destination()), (3784, 3784));
}

/// Independently computed (Python's `struct` and a hand-written ones' complement sum).
const IPV4_VECTOR: &str = "45c0003000004000ff1166f80a0100010a0200010ec80ec8001c3683\
                           4a424c5001010000000000050000000000000006";

#[test]
fn ipv4_packet_matches_the_test_vector() {
    let (src, dst) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1));
    let bytes = probe_packet(src.into(), dst.into(), &ProbeMessage::request(5, 6));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, IPV4_VECTOR);
}

#[test]
fn a_zero_udp_checksum_goes_as_all_ones() {
    let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
    let zero = (0..=u32::MAX)
        .map(|seq| ProbeMessage::request(seq, 0))
        .find(|msg| {
            let bytes = probe_packet(src.into(), dst.into(), msg);
            UdpPacket::new(&bytes[40..]).unwrap().get_checksum() == 0xffff
        })
        .unwrap();
    let bytes = probe_packet(src.into(), dst.into(), &zero);
    let udp = UdpPacket::new(&bytes[40..]).unwrap();
    assert_eq!(udp::ipv6_checksum(&udp, &src, &dst), 0);
    assert_eq!(
        parse_probe_packet(&bytes),
        Some((src.into(), dst.into(), zero))
    );
}

#[test]
fn mixed_families_go_as_ipv6_mapped() {
    let src = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
    let dst = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let msg = ProbeMessage::request(1, 1);
    let (s, d, m) = parse_probe_packet(&probe_packet(src, dst, &msg)).unwrap();
    assert_eq!(s, IpAddr::V6(Ipv4Addr::new(10, 1, 0, 1).to_ipv6_mapped()));
    assert_eq!((d, m), (dst, msg));
}

#[test]
fn altered_packets_are_not_probes() {
    let src = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
    let dst = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1));
    let good = probe_packet(src, dst, &ProbeMessage::request(1, 2));
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        // Every header byte is either checked or covered by a checksum.
        assert_eq!(parse_probe_packet(&bad), None, "byte {i}");
    }
    for len in 0..good.len() {
        assert_eq!(parse_probe_packet(&good[..len]), None, "length {len}");
    }
}
