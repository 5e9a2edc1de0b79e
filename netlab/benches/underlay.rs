//! The underlay at national-lab size: ~400 nodes, ~800 links (a tree of primary paths plus a
//! backup path per node), tens of thousands of datagrams per second of virtual time.
//!
//! Prints a table: the underlay's cost per datagram (send + poll) against a reference run in
//! the same process, a bare binary heap doing the same pushes and pops of the same datagrams.
//! The ratio is what to watch; absolute numbers depend on the machine.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // a benchmark reads the clock

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netlab::underlay::{LinkProfile, Sent, Underlay};

const NODES: u32 = 400;
const DATAGRAMS: u32 = 1_000_000;
/// 50,000 datagrams per second of virtual time.
const GAP: Duration = Duration::from_micros(20);
/// The driver's timer resolution: it polls every millisecond of virtual time.
const TICK: u32 = 50;

fn node(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 51820))
}

/// A tiny xorshift for picking paths; the underlay has its own streams.
struct Picker(u64);

impl Picker {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn national() -> (Underlay, Vec<(SocketAddr, SocketAddr)>) {
    let mut underlay = Underlay::new(2026);
    let mut paths = Vec::new();
    let mut picker = Picker(0x5eed);
    for i in 1..NODES {
        // Primary: a tree, ministry 0, 31 provinces, then cities and sites.
        let (parent, profile) = match i {
            1..=31 => (0, LinkProfile::BACKBONE),
            32..=131 => (1 + (i - 32) % 31, LinkProfile::PROVINCIAL),
            _ => (32 + (i - 132) % 100, LinkProfile::CITY_AREA),
        };
        underlay.connect(node(parent), node(i), profile).unwrap();
        paths.push((node(parent), node(i)));
        // Backup: to another earlier node, on a lossy circuit (node 1 has no other).
        if i < 2 {
            continue;
        }
        let other = loop {
            let candidate = (picker.next() % u64::from(i)) as u32;
            if candidate != parent && underlay.link_between(node(candidate), node(i)).is_none() {
                break candidate;
            }
        };
        let backup = LinkProfile {
            loss: 0.001,
            ..profile
        };
        underlay.connect(node(other), node(i), backup).unwrap();
        paths.push((node(i), node(other)));
    }
    (underlay, paths)
}

/// Sends and delivers every datagram; returns (elapsed, delivered, dropped).
fn run_underlay(templates: &[Vec<u8>]) -> (Duration, u64, u64) {
    let (mut underlay, paths) = national();
    let mut picker = Picker(7);
    let t0 = Instant::now();
    let start = Instant::now();
    let (mut delivered, mut dropped) = (0, 0);
    for i in 0..DATAGRAMS as usize {
        let datagram = &templates[i % templates.len()];
        let now = t0 + GAP * i as u32;
        let (a, b) = paths[(picker.next() % paths.len() as u64) as usize];
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        if let Sent::Dropped(_) = black_box(underlay.send(now, from, to, datagram.clone())) {
            dropped += 1;
        }
        if (i as u32).is_multiple_of(TICK) {
            while let Some(delivery) = underlay.poll(now) {
                black_box(delivery);
                delivered += 1;
            }
        }
    }
    while let Some(at) = underlay.next_delivery() {
        while let Some(delivery) = underlay.poll(at) {
            black_box(delivery);
            delivered += 1;
        }
    }
    (start.elapsed(), delivered, dropped)
}

/// The reference: the same datagrams pushed onto and popped off a bare heap.
fn run_heap(templates: &[Vec<u8>]) -> (Duration, u64) {
    let mut heap = BinaryHeap::new();
    let t0 = Instant::now();
    let start = Instant::now();
    let mut delivered = 0;
    for i in 0..DATAGRAMS as usize {
        let datagram = &templates[i % templates.len()];
        let now = t0 + GAP * i as u32;
        heap.push(Reverse((
            now + Duration::from_millis(5),
            i as u64,
            datagram.clone(),
        )));
        if (i as u32).is_multiple_of(TICK) {
            while heap.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                black_box(heap.pop());
                delivered += 1;
            }
        }
    }
    delivered += heap.drain().map(black_box).count() as u64;
    (start.elapsed(), delivered)
}

fn main() {
    // Sizes from 200 to 1399 bytes; each send clones one, as a driver hands over its buffer.
    let templates: Vec<Vec<u8>> = (0..1200).map(|i| vec![0; 200 + i]).collect();
    let (underlay, _) = national();
    println!(
        "national underlay: {NODES} nodes, {} links, {DATAGRAMS} datagrams at {}/s of virtual time",
        underlay.links().len(),
        Duration::from_secs(1).as_nanos() / GAP.as_nanos()
    );
    let (heap_time, heap_count) = run_heap(&templates);
    let (underlay_time, delivered, dropped) = run_underlay(&templates);
    let per = |t: Duration| t.as_nanos() as f64 / f64::from(DATAGRAMS);
    println!(
        "{:<28} {:>12} {:>14} {:>8}",
        "run", "elapsed", "ns/datagram", "ratio"
    );
    println!(
        "{:<28} {:>12.1?} {:>14.0} {:>8.2}",
        "reference: bare heap",
        heap_time,
        per(heap_time),
        1.0
    );
    println!(
        "{:<28} {:>12.1?} {:>14.0} {:>8.2}",
        "underlay: send + poll",
        underlay_time,
        per(underlay_time),
        underlay_time.as_secs_f64() / heap_time.as_secs_f64()
    );
    assert_eq!(heap_count, u64::from(DATAGRAMS));
    assert_eq!(delivered + dropped, u64::from(DATAGRAMS));
    println!(
        "underlay: {delivered} delivered, {dropped} dropped (backup-path loss), {:.0} datagrams/s of real time",
        f64::from(DATAGRAMS) / underlay_time.as_secs_f64()
    );
}
