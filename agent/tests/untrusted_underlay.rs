//! The underlay input path takes anything: arbitrary datagrams, and real WireGuard, path
//! probe and data datagrams with bytes flipped, cut or added, never panic the core, never
//! come out as delivered packets, and leave it working — the next real packet still arrives.
//! (The same path is a cargo-fuzz target: agent/fuzz, `cargo +nightly fuzz run underlay`.)
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use agent::control::ProbeSettings;
use agent::node::{Node, Output, Outputs};
use common::{CITY, Lab, PLANE, PROVINCE, packet};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use topology::Zone;

struct Pair {
    city: Node,
    province: Node,
    city_addr: SocketAddr,
    province_addr: SocketAddr,
}

impl Pair {
    fn new(lab: &Lab) -> Pair {
        let now = Instant::now();
        let node = |name| {
            Node::new(
                &lab.bundle(name, ProbeSettings::default(), false),
                &lab.keys(name),
                lab.model.clone(),
                now,
                SystemTime::now(),
            )
            .unwrap()
        };
        Pair {
            city: node(CITY),
            province: node(PROVINCE),
            city_addr: lab.member(CITY).listen,
            province_addr: lab.member(PROVINCE).listen,
        }
    }

    /// Sends from the city and carries datagrams both ways; returns every datagram seen
    /// and how many packets the province delivered.
    fn send(&mut self, packet: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let now = Instant::now();
        let mut out = Outputs::new();
        self.city.handle_local(now, PLANE, packet, &mut out);
        self.city.handle_timeout(now, &mut out);
        let (mut seen, mut delivered) = (Vec::new(), 0);
        while !out.is_empty() {
            for output in out.take() {
                match output {
                    Output::Transmit {
                        from, to, datagram, ..
                    } => {
                        let target = if to == self.province_addr {
                            &mut self.province
                        } else {
                            &mut self.city
                        };
                        target.handle_datagram(now, PLANE, to, from, &datagram, &mut out);
                        seen.push(datagram);
                    }
                    Output::Deliver { .. } => delivered += 1,
                    Output::Event(_) => {}
                }
            }
        }
        (seen, delivered)
    }

    /// Feeds one untrusted datagram to the province; returns whether anything was delivered.
    fn inject(&mut self, datagram: &[u8]) -> bool {
        let mut out = Outputs::new();
        self.province.handle_datagram(
            Instant::now(),
            PLANE,
            self.province_addr,
            self.city_addr,
            datagram,
            &mut out,
        );
        out.iter().any(|o| matches!(o, Output::Deliver { .. }))
    }
}

#[test]
fn arbitrary_and_mutated_datagrams_never_panic_and_never_deliver() {
    let lab = Lab::new(44_000);
    let mut pair = Pair::new(&lab);
    let flow = |port| {
        packet(
            lab.address(CITY, Zone::Mgmt),
            lab.address(PROVINCE, Zone::Mgmt),
            6,
            port,
            true,
        )
    };
    let (real, delivered) = pair.send(&flow(8443));
    assert!(real.len() >= 3, "handshake and data seen: {}", real.len());
    assert_eq!(delivered, 1, "the real packet arrives");

    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let datagram = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0..real.len(), any::<usize>(), any::<u8>(), 0u8..3).prop_map(
            move |(which, at, byte, how)| {
                let mut d = real[which].clone();
                let at = at % d.len().max(1);
                match how {
                    0 => d[at] ^= byte | 1,
                    1 => d.truncate(at),
                    _ => d.insert(at, byte),
                }
                d
            }
        ),
        // WireGuard's four message types with random bodies.
        (1u8..=4, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(kind, body)| {
            let mut d = vec![kind, 0, 0, 0];
            d.extend(body);
            d
        }),
        // Path-probe magic with random bodies.
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(|body| {
            let mut d = b"JPP1".to_vec();
            d.extend(body);
            d
        }),
    ];
    let cell = std::cell::RefCell::new(pair);
    runner
        .run(&datagram, |d| {
            prop_assert!(
                !cell.borrow_mut().inject(&d),
                "an untrusted datagram came out as a packet"
            );
            Ok(())
        })
        .unwrap();
    // Still working: a new flow's packet crosses.
    let mut pair = cell.into_inner();
    let (_, delivered) = pair.send(&flow(8443));
    assert_eq!(delivered, 1, "the core stopped working after the garbage");
}

#[test]
fn arbitrary_local_packets_never_panic() {
    let lab = Lab::new(44_100);
    let pair = std::cell::RefCell::new(Pair::new(&lab));
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let local = proptest::collection::vec(any::<u8>(), 0..120);
    runner
        .run(&local, |p| {
            let mut out = Outputs::new();
            pair.borrow_mut()
                .city
                .handle_local(Instant::now(), PLANE, &p, &mut out);
            Ok(())
        })
        .unwrap();
}
