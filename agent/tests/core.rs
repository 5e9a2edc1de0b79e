//! The sans-IO node core, deterministically: three cores (ministry, Shanxi, Taiyuan) wired
//! by a simulated underlay that the test steps in 5 ms ticks. No sockets; our time is the
//! test's (WireGuard's own timers run on real time, and nothing here waits for them).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use agent::control::{PathChoice, PeerHealth, PlaneStatus, ProbeSettings};
use agent::node::{Event, Node, Output, Outputs};
use common::{CITY, Lab, MINISTRY, PLANE, PROVINCE, packet};
use topology::Zone;

const TICK: Duration = Duration::from_millis(5);

struct Sim {
    now: Instant,
    names: Vec<&'static str>,
    nodes: Vec<Node>,
    addresses: HashMap<SocketAddr, usize>,
    /// Underlay paths that drop everything: (one end, other end), both directions.
    cut: Vec<(SocketAddr, SocketAddr)>,
    delivered: Vec<(&'static str, Vec<u8>)>,
    events: Vec<(Instant, &'static str, Event)>,
    queue: VecDeque<(usize, Output<Vec<u8>>)>,
}

impl Sim {
    fn new(lab: &Lab, probes: ProbeSettings, uplink_backup: bool) -> Sim {
        let now = Instant::now();
        let names = vec![MINISTRY, PROVINCE, CITY];
        let mut addresses = HashMap::new();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let bundle = lab.bundle(name, probes.clone(), uplink_backup);
                for plane in &bundle.planes {
                    addresses.insert(plane.listen, i);
                    if let Some(backup) = plane.backup_listen {
                        addresses.insert(backup, i);
                    }
                }
                Node::new(
                    &bundle,
                    &lab.keys(name),
                    lab.model.clone(),
                    now,
                    SystemTime::now(),
                )
                .unwrap()
            })
            .collect();
        Sim {
            now,
            names,
            nodes,
            addresses,
            cut: Vec::new(),
            delivered: Vec::new(),
            events: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| *n == name).unwrap()
    }

    /// Advances time by `span` in ticks, running timers and carrying every datagram.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.now += TICK;
            for i in 0..self.nodes.len() {
                if self.nodes[i].next_timeout().is_some_and(|t| t <= self.now) {
                    let mut out = Outputs::new();
                    self.nodes[i].handle_timeout(self.now, &mut out);
                    self.queue.extend(out.take().into_iter().map(|o| (i, o)));
                }
            }
            self.drain();
        }
    }

    /// Runs until `done` holds (checked every tick), at most `limit`; returns the time taken.
    fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(TICK);
        }
        done(self).then(|| self.now - start)
    }

    fn send(&mut self, from: &'static str, packet: &[u8]) {
        let i = self.index(from);
        let mut out = Outputs::new();
        self.nodes[i].handle_local(self.now, PLANE, packet, &mut out);
        self.queue.extend(out.take().into_iter().map(|o| (i, o)));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some((i, output)) = self.queue.pop_front() {
            match output {
                Output::Transmit {
                    from, to, datagram, ..
                } => {
                    if self
                        .cut
                        .iter()
                        .any(|&(a, b)| (a, b) == (from, to) || (b, a) == (from, to))
                    {
                        continue;
                    }
                    let Some(&j) = self.addresses.get(&to) else {
                        continue;
                    };
                    let mut out = Outputs::new();
                    self.nodes[j].handle_datagram(self.now, PLANE, to, from, &datagram, &mut out);
                    self.queue.extend(out.take().into_iter().map(|o| (j, o)));
                }
                Output::Deliver { packet, .. } => self.delivered.push((self.names[i], packet)),
                Output::Event(event) => self.events.push((self.now, self.names[i], event)),
            }
        }
    }

    fn plane(&self, name: &str) -> PlaneStatus {
        self.nodes[self.index(name)]
            .status(self.now)
            .planes
            .remove(0)
    }

    fn health(&self, name: &str, peer: &str) -> PeerHealth {
        self.plane(name)
            .peers
            .iter()
            .find(|p| p.node.to_string() == peer)
            .unwrap()
            .health
    }
}

fn probes() -> ProbeSettings {
    ProbeSettings {
        interval_ms: 100,
        down_after: 3,
        hold_down_ms: 2_000,
        path_interval_ms: 100,
    }
}

#[test]
fn tunnels_come_up_and_every_peer_is_seen_up() {
    let lab = Lab::new(41_000);
    let mut sim = Sim::new(&lab, probes(), false);
    let took = sim.run_until(Duration::from_secs(2), |sim| {
        sim.health(CITY, PROVINCE) == PeerHealth::Up
            && sim.health(PROVINCE, CITY) == PeerHealth::Up
            && sim.health(PROVINCE, MINISTRY) == PeerHealth::Up
            && sim.health(MINISTRY, PROVINCE) == PeerHealth::Up
    });
    assert!(
        took.is_some(),
        "not every peer came up: {:#?}",
        sim.plane(PROVINCE)
    );
    let province = sim.plane(PROVINCE);
    for peer in &province.peers {
        assert!(
            peer.handshake_age.is_some(),
            "{} has no handshake",
            peer.node
        );
        assert!(peer.rx_packets > 0 && peer.tx_packets > 0);
        assert!(peer.rtt.is_some());
    }
    assert!(province.refused.is_empty());
}

#[test]
fn allowed_traffic_crosses_the_tree_and_returns_denied_traffic_stops_where_it_starts() {
    let lab = Lab::new(41_100);
    let mut sim = Sim::new(&lab, probes(), false);
    sim.run(Duration::from_millis(500));
    // Taiyuan's exchange → the ministry's exchange, tcp/1414 (rule exchange-up).
    let city_exchange = lab.address(CITY, Zone::Exchange);
    let ministry_exchange = lab.address(MINISTRY, Zone::Exchange);
    let syn = packet(city_exchange, ministry_exchange, 6, 1414, true);
    sim.send(CITY, &syn);
    assert_eq!(
        sim.delivered,
        vec![(MINISTRY, syn.clone())],
        "forwarded by the province, unchanged"
    );
    // The ministry answers; the answer is return traffic of the flow at every hop.
    let mut answer = packet(ministry_exchange, city_exchange, 6, 0, false);
    answer[20..22].copy_from_slice(&1414u16.to_be_bytes());
    answer[22..24].copy_from_slice(&40_000u16.to_be_bytes());
    answer[33] = 0x12; // SYN+ACK
    sim.send(MINISTRY, &answer);
    assert_eq!(sim.delivered.last().unwrap(), &(CITY, answer));
    let exchange_up = |plane: &PlaneStatus| {
        plane
            .rules
            .iter()
            .find(|r| r.rule.contains("exchange-up"))
            .unwrap()
            .allowed_flows
    };
    assert_eq!(exchange_up(&sim.plane(CITY)), 1);
    assert_eq!(exchange_up(&sim.plane(PROVINCE)), 1);
    assert_eq!(exchange_up(&sim.plane(MINISTRY)), 1);

    // Production → the ministry's exchange: no rule allows it. Dropped at the city.
    let before = sim.delivered.len();
    let denied_before = sim.plane(CITY).default_denied;
    sim.send(
        CITY,
        &packet(
            lab.address(CITY, Zone::Production),
            ministry_exchange,
            6,
            1414,
            true,
        ),
    );
    assert_eq!(sim.delivered.len(), before);
    assert_eq!(sim.plane(CITY).default_denied, denied_before + 1);
    let by_policy = sim
        .plane(CITY)
        .denied
        .iter()
        .find(|(r, _)| r == "policy")
        .map(|(_, n)| *n);
    assert_eq!(by_policy, Some(1), "denied because no rule allows it");
    // A mid-stream packet of a flow never opened is not return traffic.
    sim.send(
        MINISTRY,
        &packet(ministry_exchange, city_exchange, 6, 40_001, false),
    );
    assert_eq!(sim.delivered.len(), before);
}

#[test]
fn a_cut_uplink_fails_over_within_a_second_and_fails_back_after_the_hold_down() {
    let lab = Lab::new(41_200);
    let mut sim = Sim::new(&lab, probes(), true);
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.health(CITY, PROVINCE), PeerHealth::Up);
    let (city, province) = (lab.member(CITY), lab.member(PROVINCE));
    sim.cut.push((city.listen, province.listen));
    let cut_at = sim.now;
    let detected = sim
        .run_until(Duration::from_secs(2), |sim| {
            sim.events.iter().any(|(at, who, e)| {
                *at >= cut_at && *who == CITY && matches!(e, Event::PathSwitch { backup: true, .. })
            })
        })
        .expect("the city moved to the backup");
    assert!(
        detected <= Duration::from_secs(1),
        "failover took {detected:?}"
    );
    let (down_at, ..) = sim
        .events
        .iter()
        .find(|(at, who, e)| {
            *at >= cut_at && *who == CITY && matches!(e, Event::PeerHealth { up: false, .. })
        })
        .expect("the city saw its uplink go down");
    let detection = *down_at - cut_at;
    assert!(
        detection <= Duration::from_millis(300) + TICK * 2,
        "down after {detection:?}"
    );
    eprintln!("cut detected after {detection:?}, traffic on the backup after {detected:?}");
    let on = sim.plane(CITY).peers[0].path;
    assert_eq!(on, PathChoice::Backup);
    // Traffic flows on the backup.
    let syn = packet(
        lab.address(CITY, Zone::Exchange),
        lab.address(MINISTRY, Zone::Exchange),
        6,
        1414,
        true,
    );
    sim.send(CITY, &syn);
    assert_eq!(sim.delivered.last().map(|(n, _)| *n), Some(MINISTRY));

    // Restore: traffic returns only after the primary has been up for the hold-down.
    sim.cut.clear();
    let restored_at = sim.now;
    let back = sim
        .run_until(Duration::from_secs(5), |sim| {
            sim.plane(CITY).peers[0].path == PathChoice::Primary
        })
        .expect("the city moved back to the primary");
    assert!(
        back >= Duration::from_millis(2_000),
        "failback after {back:?}, before the hold-down"
    );
    assert!(
        back <= Duration::from_millis(2_600),
        "failback took {back:?}"
    );
    let _ = restored_at;
}

#[test]
fn a_revoked_peer_is_torn_down_when_the_crl_arrives() {
    let mut lab = Lab::new(41_300);
    let mut sim = Sim::new(&lab, probes(), false);
    sim.run(Duration::from_millis(500));
    lab.revoke(CITY);
    let bundle = lab.bundle(PROVINCE, probes(), false);
    let province = sim.index(PROVINCE);
    let dropped = sim.nodes[province]
        .update_trust(&bundle, SystemTime::now())
        .unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].1.to_string(), CITY);
    assert!(dropped[0].2.contains("revoked"), "{}", dropped[0].2);
    let before = sim.delivered.len();
    sim.send(
        CITY,
        &packet(
            lab.address(CITY, Zone::Exchange),
            lab.address(MINISTRY, Zone::Exchange),
            6,
            1414,
            true,
        ),
    );
    assert_eq!(
        sim.delivered.len(),
        before,
        "nothing passes a torn-down peer"
    );
    let status = sim.plane(PROVINCE);
    assert!(status.peers.iter().all(|p| p.node.to_string() != CITY));
    assert!(
        status
            .refused
            .iter()
            .any(|(n, why)| n.to_string() == CITY && why.contains("revoked"))
    );
}

#[test]
fn peers_that_fail_their_certificate_check_are_refused_with_the_reason() {
    let lab = Lab::new(41_400);
    let mut bundle = lab.bundle(PROVINCE, probes(), false);
    // The city's entry carries the ministry's key: the certificate binds another.
    bundle.planes[0].peers[1].public_key = lab.member(MINISTRY).public;
    bundle.planes[0].peers[0].certificate = Some(lab.member(CITY).chain.clone());
    let node = Node::new(
        &bundle,
        &lab.keys(PROVINCE),
        lab.model.clone(),
        Instant::now(),
        SystemTime::now(),
    )
    .unwrap();
    let refused = node.planes()[0].refused();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|(n, why)| n.to_string() == MINISTRY && why.contains("dc:1401")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|(n, why)| n.to_string() == CITY && why.contains("WireGuard key")),
        "{refused:?}"
    );
}

/// The city and the province on the business and the office plane: two instances each, with
/// their own keys, certificates, ports and routes.
#[test]
fn a_packet_never_leaves_through_another_planes_instance() {
    use agent::control::{PeerConfig, PeerRole, PlaneConfig};
    use topology::Plane;
    let lab = Lab::new(41_500);
    let office_city = lab.enrol_on(CITY, Plane::Office, 41_520, 41_530);
    let office_province = lab.enrol_on(PROVINCE, Plane::Office, 41_521, 41_531);
    let office_plane =
        |me: &common::Member, peer: &common::Member, role: PeerRole, allowed| PlaneConfig {
            plane: Plane::Office,
            listen: me.listen,
            backup_listen: None,
            private_key: "/nonexistent".into(),
            certificate: me.chain.clone(),
            peers: vec![PeerConfig {
                node: peer.node,
                role,
                public_key: peer.public,
                certificate: Some(peer.chain.clone()),
                endpoint: Some(peer.listen),
                backup: None,
                allowed: vec![allowed],
                keepalive_s: None,
                qos: Default::default(),
            }],
        };
    let now = Instant::now();
    let mut city_bundle = lab.bundle(CITY, probes(), false);
    city_bundle.planes.push(office_plane(
        &office_city,
        &office_province,
        PeerRole::Uplink,
        lab.subtree_on(MINISTRY, Plane::Office),
    ));
    let mut province_bundle = lab.bundle(PROVINCE, probes(), false);
    province_bundle.planes.push(office_plane(
        &office_province,
        &office_city,
        PeerRole::Child,
        lab.subtree_on(CITY, Plane::Office),
    ));
    let keys = |business: &str, office: &common::Member| {
        vec![
            (PLANE, lab.member(business).wireguard),
            (Plane::Office, office.wireguard),
        ]
    };
    let mut city = Node::new(
        &city_bundle,
        &keys(CITY, &office_city),
        lab.model.clone(),
        now,
        SystemTime::now(),
    )
    .unwrap();
    let mut province = Node::new(
        &province_bundle,
        &keys(PROVINCE, &office_province),
        lab.model.clone(),
        now,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(city.planes().len(), 2);
    assert_ne!(city.planes()[0].public_key(), city.planes()[1].public_key());

    // Business-plane packets for office-plane addresses (and the reverse) go nowhere.
    let business_mgmt = lab.address(CITY, Zone::Mgmt);
    let office_parent = lab.address_on(PROVINCE, Plane::Office, Zone::Mgmt);
    let business_parent = lab.address(PROVINCE, Zone::Mgmt);
    let office_mgmt = lab.address_on(CITY, Plane::Office, Zone::Mgmt);
    let mut out = Outputs::new();
    city.handle_local(
        now,
        PLANE,
        &packet(business_mgmt, office_parent, 6, 8443, true),
        &mut out,
    );
    city.handle_local(
        now,
        Plane::Office,
        &packet(office_mgmt, business_parent, 6, 8443, true),
        &mut out,
    );
    assert!(out.is_empty(), "a packet left for another plane: {out:?}");
    let status = city.status(now);
    assert_eq!(status.planes[0].unroutable + status.planes[1].unroutable, 2);

    // The same flow on its own plane leaves through that plane's socket only.
    city.handle_local(
        now,
        Plane::Office,
        &packet(office_mgmt, office_parent, 6, 8443, true),
        &mut out,
    );
    assert!(!out.is_empty());
    for output in out.iter() {
        match output {
            Output::Transmit { plane, from, .. } => {
                assert_eq!((plane, from), (Plane::Office, office_city.listen))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // An office-plane handshake delivered to the business instance is refused there.
    let Output::Transmit { datagram, .. } = out.take().remove(0) else {
        unreachable!()
    };
    let mut replies = Outputs::new();
    province.handle_datagram(
        now,
        PLANE,
        lab.member(PROVINCE).listen,
        office_city.listen,
        &datagram,
        &mut replies,
    );
    assert!(
        replies.is_empty(),
        "the business instance answered an office-plane peer"
    );
    assert_eq!(province.status(now).planes[0].malformed, 1);
    province.handle_datagram(
        now,
        Plane::Office,
        office_province.listen,
        office_city.listen,
        &datagram,
        &mut replies,
    );
    assert_eq!(replies.len(), 1, "the office instance answers its own peer");
}
