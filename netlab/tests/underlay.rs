//! The emulated underlay on an explicit clock: every time below is exact, and every random
//! outcome is fixed by the seed.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests may read the clock once

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netlab::underlay::{
    Delivery, DropReason, LinkProfile, ProfileError, Sent, Underlay, UnderlayError,
};

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 51820))
}

const MS: Duration = Duration::from_millis(1);

/// Everything due by `now`, in the order the underlay hands it out.
fn drain(underlay: &mut Underlay, now: Instant) -> Vec<Delivery> {
    std::iter::from_fn(|| underlay.poll(now)).collect()
}

/// Runs the clock forward delivery by delivery until nothing is in flight.
fn drain_all(underlay: &mut Underlay) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(at) = underlay.next_delivery() {
        let batch = drain(underlay, at);
        assert!(!batch.is_empty(), "next_delivery {at:?} had nothing due");
        out.extend(batch);
    }
    out
}

fn queued(sent: Sent) -> Instant {
    match sent {
        Sent::Queued { deliver_at } => deliver_at,
        Sent::Dropped(reason) => panic!("dropped: {reason}"),
    }
}

#[test]
fn delay_is_exact_in_both_directions() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    let link = underlay
        .connect(addr(1), addr(2), LinkProfile::fixed(10 * MS))
        .unwrap();

    assert_eq!(
        underlay.send(t0, addr(1), addr(2), b"ping".to_vec()),
        Sent::Queued {
            deliver_at: t0 + 10 * MS
        }
    );
    assert_eq!(underlay.next_delivery(), Some(t0 + 10 * MS));
    assert_eq!(underlay.poll(t0 + 10 * MS - Duration::from_nanos(1)), None);
    let delivery = underlay.poll(t0 + 10 * MS).unwrap();
    assert_eq!(
        delivery,
        Delivery {
            link,
            from: addr(1),
            to: addr(2),
            deliver_at: t0 + 10 * MS,
            datagram: b"ping".to_vec()
        }
    );
    assert_eq!(underlay.next_delivery(), None);

    queued(underlay.send(t0 + 20 * MS, addr(2), addr(1), b"pong".to_vec()));
    let back = underlay.poll(t0 + 40 * MS).unwrap();
    assert_eq!(
        (back.from, back.to, back.deliver_at),
        (addr(2), addr(1), t0 + 30 * MS)
    );

    let counters = underlay.counters(link).unwrap();
    assert_eq!(
        (
            counters.forward.sent,
            counters.forward.delivered,
            counters.forward.delivered_bytes
        ),
        (1, 1, 4)
    );
    assert_eq!((counters.reverse.sent, counters.reverse.delivered), (1, 1));
    assert_eq!(
        underlay.counters_between(addr(2), addr(1)),
        Some(&counters.reverse)
    );
}

#[test]
fn deliveries_come_out_in_time_order_across_links() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    underlay
        .connect(addr(1), addr(2), LinkProfile::fixed(30 * MS))
        .unwrap();
    underlay
        .connect(addr(1), addr(3), LinkProfile::fixed(10 * MS))
        .unwrap();
    underlay
        .connect(addr(2), addr(3), LinkProfile::fixed(20 * MS))
        .unwrap();
    queued(underlay.send(t0, addr(1), addr(2), vec![1]));
    queued(underlay.send(t0, addr(1), addr(3), vec![2]));
    queued(underlay.send(t0, addr(3), addr(2), vec![3]));
    queued(underlay.send(t0 + 10 * MS, addr(3), addr(1), vec![4]));

    let order: Vec<(u8, Instant)> = drain(&mut underlay, t0 + 100 * MS)
        .iter()
        .map(|d| (d.datagram[0], d.deliver_at))
        .collect();
    assert_eq!(
        order,
        [
            (2, t0 + 10 * MS),
            (3, t0 + 20 * MS),
            (4, t0 + 20 * MS),
            (1, t0 + 30 * MS)
        ]
    );
}

#[test]
fn jitter_stays_within_bounds_and_never_reorders() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(42);
    let profile = LinkProfile {
        jitter: 3 * MS,
        ..LinkProfile::fixed(10 * MS)
    };
    underlay.connect(addr(1), addr(2), profile).unwrap();

    let mut spread = (Duration::MAX, Duration::ZERO);
    for i in 0..2_000u32 {
        // One datagram every 10 ms: far enough apart that ordering rarely lifts a delivery.
        let sent_at = t0 + 10 * MS * i;
        let delay =
            queued(underlay.send(sent_at, addr(1), addr(2), i.to_be_bytes().to_vec())) - sent_at;
        assert!(delay >= 7 * MS, "{delay:?}");
        spread = (spread.0.min(delay), spread.1.max(delay));
    }
    assert!(
        spread.0 < 7 * MS + MS / 10 && spread.1 > 13 * MS - MS / 10,
        "jitter used its range: {spread:?}"
    );

    let deliveries = drain_all(&mut underlay);
    assert_eq!(deliveries.len(), 2_000);
    for (i, pair) in deliveries.windows(2).enumerate() {
        assert!(pair[0].deliver_at <= pair[1].deliver_at);
        assert_eq!(pair[1].datagram, (i as u32 + 1).to_be_bytes());
    }

    // A burst: each datagram waits for the one before it, none overtakes.
    let t1 = t0 + Duration::from_secs(60);
    for i in 0..100u32 {
        queued(underlay.send(t1, addr(1), addr(2), i.to_be_bytes().to_vec()));
    }
    let burst = drain_all(&mut underlay);
    assert!(
        burst
            .iter()
            .enumerate()
            .all(|(i, d)| d.datagram == (i as u32).to_be_bytes())
    );
    assert!(
        burst
            .iter()
            .all(|d| d.deliver_at >= t1 + 7 * MS && d.deliver_at <= t1 + 13 * MS)
    );
}

#[test]
fn jitter_larger_than_delay_never_delivers_before_sending() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(3);
    let profile = LinkProfile {
        jitter: 5 * MS,
        ..LinkProfile::fixed(MS)
    };
    underlay.connect(addr(1), addr(2), profile).unwrap();
    for i in 0..500 {
        let at = t0 + 20 * MS * i;
        assert!(queued(underlay.send(at, addr(1), addr(2), vec![0])) >= at);
    }
}

/// Sends `n` datagrams one ms apart over a lossy link and returns which were lost.
fn loss_pattern(seed: u64, loss: f64, n: u32) -> Vec<bool> {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(seed);
    let link = underlay
        .connect(
            addr(1),
            addr(2),
            LinkProfile {
                loss,
                ..LinkProfile::fixed(MS)
            },
        )
        .unwrap();
    let pattern: Vec<bool> = (0..n)
        .map(|i| {
            underlay.send(t0 + MS * i, addr(1), addr(2), vec![0; 100])
                == Sent::Dropped(DropReason::Loss)
        })
        .collect();
    let counters = underlay.counters(link).unwrap().forward;
    assert_eq!(
        counters.dropped_loss,
        pattern.iter().filter(|&&lost| lost).count() as u64
    );
    assert_eq!(counters.in_flight(), n as u64 - counters.dropped_loss);
    assert_eq!(drain_all(&mut underlay).len() as u64, counters.in_flight());
    pattern
}

#[test]
fn loss_rate_is_within_statistical_bounds_and_reproducible() {
    let n = 100_000;
    let pattern = loss_pattern(2026, 0.05, n);
    let lost = pattern.iter().filter(|&&lost| lost).count() as f64;
    // Binomial(100000, 0.05): σ ≈ 69; allow 5σ.
    assert!((lost - 5_000.0).abs() < 5.0 * 69.0, "lost {lost}");

    assert_eq!(
        loss_pattern(2026, 0.05, n),
        pattern,
        "same seed, same losses"
    );
    assert_ne!(
        loss_pattern(2027, 0.05, n),
        pattern,
        "another seed, other losses"
    );
    assert!(loss_pattern(1, 1.0, 1_000).iter().all(|&lost| lost));
    assert!(loss_pattern(1, 0.0, 1_000).iter().all(|&lost| !lost));
}

#[test]
fn traffic_on_one_link_does_not_change_another_links_losses() {
    let t0 = Instant::now();
    let profile = LinkProfile {
        loss: 0.3,
        ..LinkProfile::fixed(MS)
    };
    let run = |busy_neighbour: bool| {
        let mut underlay = Underlay::new(9);
        underlay.connect(addr(1), addr(2), profile).unwrap();
        underlay.connect(addr(1), addr(3), profile).unwrap();
        (0..1_000u32)
            .map(|i| {
                if busy_neighbour {
                    underlay.send(t0 + MS * i, addr(1), addr(3), vec![0]);
                }
                underlay.send(t0 + MS * i, addr(1), addr(2), vec![0])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn rate_limit_serialises_at_line_rate() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    // 1250-byte datagrams at 1 Mbit/s: 10 ms each on the wire.
    let (n, size, rate) = (100u32, 1250usize, 1_000_000u64);
    let profile = LinkProfile {
        rate_bps: Some(rate),
        queue_bytes: n as usize * size,
        ..LinkProfile::fixed(5 * MS)
    };
    let link = underlay.connect(addr(1), addr(2), profile).unwrap();
    for _ in 0..n {
        queued(underlay.send(t0, addr(1), addr(2), vec![0; size]));
    }
    let deliveries = drain_all(&mut underlay);
    assert_eq!(deliveries.len(), n as usize);
    let wire = Duration::from_secs_f64((u64::from(n) * size as u64 * 8) as f64 / rate as f64);
    assert_eq!(wire, Duration::from_secs(1));
    assert_eq!(
        deliveries.last().unwrap().deliver_at,
        t0 + wire + 5 * MS,
        "N×S×8/R plus the delay"
    );
    for (i, delivery) in deliveries.iter().enumerate() {
        assert_eq!(delivery.deliver_at, t0 + 10 * MS * (i as u32 + 1) + 5 * MS);
    }
    assert_eq!(
        underlay.counters(link).unwrap().forward.delivered_bytes,
        u64::from(n) * size as u64
    );

    // The other direction has its own bucket: idle, so only its own serialisation.
    assert_eq!(
        queued(underlay.send(t0, addr(2), addr(1), vec![0; size])),
        t0 + 15 * MS
    );
}

#[test]
fn a_full_queue_tail_drops() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    // Room for 3 datagrams of 1250 bytes, counting the one on the wire.
    let profile = LinkProfile {
        rate_bps: Some(1_000_000),
        queue_bytes: 3 * 1250,
        ..LinkProfile::fixed(MS)
    };
    let link = underlay.connect(addr(1), addr(2), profile).unwrap();
    let sent: Vec<Sent> = (0..5)
        .map(|_| underlay.send(t0, addr(1), addr(2), vec![0; 1250]))
        .collect();
    assert!(matches!(
        sent[..3],
        [
            Sent::Queued { .. },
            Sent::Queued { .. },
            Sent::Queued { .. }
        ]
    ));
    assert_eq!(sent[3..], [Sent::Dropped(DropReason::QueueFull); 2]);

    // Once one datagram has been serialised, there is room for one more.
    assert!(matches!(
        underlay.send(t0 + 10 * MS, addr(1), addr(2), vec![0; 1250]),
        Sent::Queued { .. }
    ));
    assert_eq!(
        underlay.send(t0 + 10 * MS, addr(1), addr(2), vec![0; 1250]),
        Sent::Dropped(DropReason::QueueFull)
    );
    // Half a serialisation later, half a datagram fits, exactly filling the queue.
    assert_eq!(
        underlay.send(t0 + 15 * MS, addr(1), addr(2), vec![0; 625]),
        Sent::Queued {
            deliver_at: t0 + 46 * MS
        }
    );

    let counters = underlay.counters(link).unwrap().forward;
    assert_eq!(counters.dropped_queue_full, 3);
    assert_eq!(counters.dropped(DropReason::QueueFull), 3);
    assert_eq!(counters.dropped_bytes, 3 * 1250);
    assert_eq!(drain_all(&mut underlay).len(), 5);
}

#[test]
fn an_idle_link_passes_a_datagram_larger_than_its_queue() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    let profile = LinkProfile {
        rate_bps: Some(8_000_000),
        queue_bytes: 100,
        ..LinkProfile::fixed(MS)
    };
    underlay.connect(addr(1), addr(2), profile).unwrap();
    assert_eq!(
        queued(underlay.send(t0, addr(1), addr(2), vec![0; 1000])),
        t0 + 2 * MS
    );
    assert_eq!(
        underlay.send(t0, addr(1), addr(2), vec![0; 1000]),
        Sent::Dropped(DropReason::QueueFull)
    );
}

#[test]
fn a_cut_drops_what_is_in_flight_and_everything_after_until_restored() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    let link = underlay
        .connect(addr(1), addr(2), LinkProfile::fixed(10 * MS))
        .unwrap();
    let other = underlay
        .connect(addr(1), addr(3), LinkProfile::fixed(20 * MS))
        .unwrap();
    queued(underlay.send(t0, addr(1), addr(2), vec![1; 10]));
    queued(underlay.send(t0, addr(2), addr(1), vec![2; 10]));
    queued(underlay.send(t0, addr(1), addr(3), vec![3; 10]));

    underlay.set_up(link, false).unwrap();
    assert_eq!(underlay.is_up(link), Some(false));
    assert_eq!(
        underlay.next_delivery(),
        Some(t0 + 20 * MS),
        "the cut link's datagrams are gone"
    );
    assert_eq!(
        underlay.send(t0 + MS, addr(1), addr(2), vec![4]),
        Sent::Dropped(DropReason::Down)
    );
    let delivered = drain(&mut underlay, t0 + 100 * MS);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].link, other);

    let counters = underlay.counters(link).unwrap();
    assert_eq!(
        (counters.forward.dropped_cut, counters.forward.dropped_down),
        (1, 1)
    );
    assert_eq!(counters.reverse.dropped_cut, 1);
    assert_eq!(counters.total().dropped_bytes, 21);
    assert_eq!(counters.total().in_flight(), 0);

    underlay.set_up(link, true).unwrap();
    assert_eq!(
        queued(underlay.send(t0 + 200 * MS, addr(1), addr(2), vec![5])),
        t0 + 210 * MS
    );
    assert_eq!(drain(&mut underlay, t0 + 210 * MS)[0].datagram, [5]);
}

#[test]
fn a_cut_empties_the_queue_so_a_restored_link_starts_idle() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    let profile = LinkProfile {
        rate_bps: Some(1_000_000),
        queue_bytes: 100_000,
        ..LinkProfile::fixed(MS)
    };
    let link = underlay.connect(addr(1), addr(2), profile).unwrap();
    for _ in 0..50 {
        queued(underlay.send(t0, addr(1), addr(2), vec![0; 1250]));
    }
    underlay.set_up(link, false).unwrap();
    underlay.set_up(link, true).unwrap();
    assert_eq!(underlay.next_delivery(), None);
    assert_eq!(
        queued(underlay.send(t0 + MS, addr(1), addr(2), vec![0; 1250])),
        t0 + 12 * MS
    );
    assert_eq!(underlay.counters(link).unwrap().forward.dropped_cut, 50);
}

#[test]
fn datagrams_between_unlinked_addresses_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    underlay
        .connect(addr(1), addr(2), LinkProfile::fixed(MS))
        .unwrap();
    assert_eq!(
        underlay.send(t0, addr(1), addr(3), vec![0; 7]),
        Sent::Dropped(DropReason::NoLink)
    );
    assert_eq!(
        underlay.send(t0, addr(1), addr(1), vec![0; 3]),
        Sent::Dropped(DropReason::NoLink)
    );
    let no_link = underlay.no_link_counters();
    assert_eq!((no_link.datagrams, no_link.bytes), (2, 10));
    assert_eq!(underlay.next_delivery(), None);
}

#[test]
fn a_profile_change_applies_to_later_datagrams() {
    let t0 = Instant::now();
    let mut underlay = Underlay::new(1);
    let link = underlay
        .connect(addr(1), addr(2), LinkProfile::fixed(10 * MS))
        .unwrap();
    assert_eq!(
        queued(underlay.send(t0, addr(1), addr(2), vec![1])),
        t0 + 10 * MS
    );
    underlay
        .set_profile(link, LinkProfile::fixed(50 * MS))
        .unwrap();
    // Already in flight: unchanged. Later: the new delay.
    assert_eq!(underlay.next_delivery(), Some(t0 + 10 * MS));
    assert_eq!(
        queued(underlay.send(t0 + MS, addr(1), addr(2), vec![2])),
        t0 + 51 * MS
    );
    underlay
        .set_profile(
            link,
            LinkProfile {
                loss: 1.0,
                ..LinkProfile::fixed(MS)
            },
        )
        .unwrap();
    assert_eq!(
        underlay.send(t0 + 2 * MS, addr(1), addr(2), vec![3]),
        Sent::Dropped(DropReason::Loss)
    );
    underlay.set_profile(link, LinkProfile::fixed(MS)).unwrap();
    // Shorter delay now, but never ahead of what is already on the wire.
    assert_eq!(
        queued(underlay.send(t0 + 3 * MS, addr(1), addr(2), vec![4])),
        t0 + 51 * MS
    );
    let order: Vec<u8> = drain_all(&mut underlay)
        .iter()
        .map(|d| d.datagram[0])
        .collect();
    assert_eq!(order, [1, 2, 4]);
    assert_eq!(underlay.profile(link), Some(&LinkProfile::fixed(MS)));
}

#[test]
fn links_are_checked_when_made_and_changed() {
    let mut underlay = Underlay::new(1);
    let link = underlay
        .connect(addr(1), addr(2), LinkProfile::BACKBONE)
        .unwrap();
    assert_eq!(underlay.link_between(addr(2), addr(1)), Some(link));
    assert_eq!(underlay.link_between(addr(1), addr(3)), None);
    assert_eq!(underlay.ends(link), Some((addr(1), addr(2))));
    assert_eq!(
        underlay.connect(addr(2), addr(1), LinkProfile::PROVINCIAL),
        Err(UnderlayError::AlreadyLinked {
            a: addr(2),
            b: addr(1),
            link
        })
    );
    assert_eq!(
        underlay.connect(addr(3), addr(3), LinkProfile::CITY_AREA),
        Err(UnderlayError::SameEnds(addr(3)))
    );
    let bad = LinkProfile {
        loss: -0.1,
        ..LinkProfile::CITY_AREA
    };
    assert_eq!(
        underlay.connect(addr(1), addr(3), bad),
        Err(UnderlayError::Profile {
            a: addr(1),
            b: addr(3),
            reason: ProfileError::Loss(-0.1)
        })
    );
    let error = underlay.set_profile(link, bad).unwrap_err();
    assert_eq!(
        error.to_string(),
        "link 10.0.0.1:51820 ⇄ 10.0.0.2:51820: loss -0.1 is not a probability between 0 and 1"
    );
    assert_eq!(
        underlay.profile(link),
        Some(&LinkProfile::BACKBONE),
        "a refused change changes nothing"
    );

    let mut other = Underlay::new(1);
    other
        .connect(addr(7), addr(8), LinkProfile::BACKBONE)
        .unwrap();
    let missing = other
        .connect(addr(7), addr(9), LinkProfile::BACKBONE)
        .unwrap();
    assert_eq!(
        underlay.set_up(missing, false),
        Err(UnderlayError::UnknownLink(missing))
    );
    assert_eq!(
        underlay.set_profile(missing, LinkProfile::BACKBONE),
        Err(UnderlayError::UnknownLink(missing))
    );
    assert_eq!(underlay.links().collect::<Vec<_>>(), [link]);
}

#[test]
fn same_seed_same_run() {
    let t0 = Instant::now();
    let run = |seed| {
        let mut underlay = Underlay::new(seed);
        let profile = LinkProfile {
            loss: 0.1,
            ..LinkProfile::CITY_AREA
        };
        underlay.connect(addr(1), addr(2), profile).unwrap();
        underlay.connect(addr(2), addr(3), profile).unwrap();
        for i in 0..5_000u32 {
            let at = t0 + Duration::from_micros(100) * i;
            underlay.send(at, addr(1), addr(2), vec![0; 1 + (i % 1400) as usize]);
            underlay.send(at, addr(3), addr(2), i.to_be_bytes().to_vec());
        }
        drain_all(&mut underlay)
            .into_iter()
            .map(|d| (d.deliver_at, d.from, d.datagram))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
