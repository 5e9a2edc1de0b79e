//! The overlay datapath against the AEAD it is built on, in one run.
//!
//! Reference: ring's ChaCha20-Poly1305 seal + open of the same packet (what WireGuard's
//! transport costs at the very least). Measured: a city node encapsulating a local packet
//! (filter, route, encrypt) and its province decapsulating it (decrypt, allowed-source check,
//! filter, route, deliver) — `Node::handle_local` → `Node::handle_datagram`, the whole sans-IO
//! core with no sockets. Goal: ≥ 0.85 of the reference.
//!
//! `cargo bench -p agent --bench datapath` (`-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark reads the clock

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use agent::control::ProbeSettings;
use agent::node::{Node, Output};
use common::{CITY, Lab, PLANE, PROVINCE, packet};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use topology::Zone;

const GOAL: f64 = 0.85;

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || !std::env::args().any(|a| a == "--bench");
    let budget = if quick {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(2)
    };
    let lab = Lab::new(47_000);
    println!(
        "datapath: city {CITY} → province {PROVINCE}, {PLANE} plane, one thread, {budget:?} per cell\n"
    );
    println!(
        "{:>7}  {:>16}  {:>16}  {:>10}  {:>9}  {:>6}  {:>4}",
        "packet", "raw AEAD pkt/s", "core pkt/s", "core Gbit/s", "ratio", "goal", "met"
    );
    let only: Option<usize> = std::env::args()
        .skip_while(|a| a != "--size")
        .nth(1)
        .and_then(|s| s.parse().ok());
    for size in [1420usize, 64]
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
    {
        let raw = raw_aead(size, budget);
        let core = core_path(&lab, size, budget);
        let ratio = core / raw;
        println!(
            "{size:>7}  {raw:>16.0}  {core:>16.0}  {:>10.2}  {ratio:>9.3}  {GOAL:>6}  {:>4}",
            core * size as f64 * 8.0 / 1e9,
            if ratio >= GOAL { "yes" } else { "no" }
        );
    }
}

/// Seal then open one packet per iteration, in place, with a fresh nonce.
fn raw_aead(size: usize, budget: Duration) -> f64 {
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap());
    let mut buffer = vec![0u8; size];
    let mut counter = 0u64;
    rate(budget, || {
        counter += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .unwrap();
        buffer.extend_from_slice(tag.as_ref());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .unwrap()
            .len();
        buffer.truncate(plain);
    })
}

/// The city's core encapsulates, the province's core decapsulates and delivers.
fn core_path(lab: &Lab, size: usize, budget: Duration) -> f64 {
    let now = Instant::now();
    let probes = ProbeSettings {
        interval_ms: 3_600_000,
        ..ProbeSettings::default()
    };
    let mut city = Node::new(
        &lab.bundle(CITY, probes.clone(), false),
        &lab.keys(CITY),
        lab.model.clone(),
        now,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let mut province = Node::new(
        &lab.bundle(PROVINCE, probes, false),
        &lab.keys(PROVINCE),
        lab.model.clone(),
        now,
        std::time::SystemTime::now(),
    )
    .unwrap();
    // City exchange → province mgmt on the control port the policy allows (mgmt-control).
    let mut first = packet(
        lab.address(CITY, Zone::Mgmt),
        lab.address(PROVINCE, Zone::Mgmt),
        6,
        8443,
        true,
    );
    let mut next = packet(
        lab.address(CITY, Zone::Mgmt),
        lab.address(PROVINCE, Zone::Mgmt),
        6,
        8443,
        false,
    );
    pad(&mut first, size);
    pad(&mut next, size);
    let mut out = Vec::new();
    // WireGuard handshake and the TCP handshake (SYN, SYN+ACK), so what follows is an
    // established flow at both filters.
    assert_eq!(
        exchange(&mut city, &mut province, &first, &mut out),
        1,
        "the SYN arrives"
    );
    let mut answer = packet(
        lab.address(PROVINCE, Zone::Mgmt),
        lab.address(CITY, Zone::Mgmt),
        6,
        40_000,
        false,
    );
    answer[20..22].copy_from_slice(&8443u16.to_be_bytes());
    answer[33] = 0x12;
    province.handle_local(now, PLANE, &answer, &mut out);
    carry(&mut city, &mut province, &mut out);
    let mut delivered = 0u64;
    let rate = rate(budget, || {
        delivered += exchange(&mut city, &mut province, &next, &mut out);
    });
    assert!(
        delivered > 0,
        "the province delivered nothing: the datapath is broken"
    );
    rate
}

/// Sends `packet` from the city's interface and carries every datagram between the two
/// cores until both are quiet; returns packets delivered at the province.
fn exchange(city: &mut Node, province: &mut Node, packet: &[u8], out: &mut Vec<Output>) -> u64 {
    let now = Instant::now();
    city.handle_local(now, PLANE, packet, out);
    carry(city, province, out)
}

/// Carries datagrams between the two cores until both are quiet; returns packets delivered.
fn carry(city: &mut Node, province: &mut Node, out: &mut Vec<Output>) -> u64 {
    let now = Instant::now();
    let province_address = province.planes()[0].listen();
    let mut delivered = 0;
    while !out.is_empty() {
        let batch: Vec<Output> = std::mem::take(out);
        for output in batch {
            match output {
                Output::Transmit {
                    from, to, datagram, ..
                } => {
                    let target = if to == province_address {
                        &mut *province
                    } else {
                        &mut *city
                    };
                    target.handle_datagram(now, PLANE, to, from, &datagram, out);
                }
                Output::Deliver { .. } => delivered += 1,
                Output::Event(_) => {}
            }
        }
    }
    delivered
}

fn pad(packet: &mut Vec<u8>, size: usize) {
    packet.resize(size.max(packet.len()), 0);
    let len = packet.len() as u16;
    packet[2..4].copy_from_slice(&len.to_be_bytes());
    packet[10..12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = 0;
    for chunk in packet[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Iterations per second of `work` within `budget`, in rounds of 1,000.
fn rate(budget: Duration, mut work: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            work();
        }
        done += 1_000;
    }
    done as f64 / start.elapsed().as_secs_f64()
}
