//! The emulated underlay: links between underlay addresses that delay, jitter, lose,
//! rate-limit and cut datagrams, as the carrier circuits of the national WAN do.
//!
//! Why sans-IO: the lab runs hundreds of agents' cores in one process on a virtual clock, and a
//! failover test must give the same answer every run. So the underlay never reads a clock and
//! never touches a socket: the driver passes `now` to [`Underlay::send`] and
//! [`Underlay::poll`], and sleeps until [`Underlay::next_delivery`]. [`crate::relay`] is such a
//! driver for real UDP sockets on 127.0.0.1.
//!
//! **Determinism.** The same seed and the same calls with the same `now`s give the same
//! deliveries at the same times, bit for bit. Each link direction draws from its own random
//! stream, so traffic on one link never changes what another link loses.
//!
//! # The model
//!
//! A link joins two addresses ([`Underlay::connect`]); each direction has its own queue,
//! token bucket, random stream and counters, under one [`LinkProfile`]. A datagram offered with
//! [`Underlay::send`] meets, in order:
//!
//! 1. **No link** between the two addresses: dropped ([`DropReason::NoLink`]). The emulated
//!    world has only the links the scenario made.
//! 2. **Down**: a cut link drops everything offered ([`DropReason::Down`]).
//! 3. **Loss**: dropped with the profile's probability ([`DropReason::Loss`]). As in Linux
//!    netem, a lost datagram is decided on entry and takes no room in the queue or on the wire.
//! 4. **Queue and rate**: the rate limit is a token bucket filled at the line rate and one
//!    datagram deep, so a link never bursts above its line rate: a datagram leaves the queue
//!    when its bytes' tokens have arrived, i.e. it departs `bytes × 8 / rate` after the wire
//!    became free (rounded up to the nanosecond). The queue is bounded in bytes: the backlog is
//!    the bytes not yet serialised, counting the datagram on the wire, and a datagram that
//!    would take it past `queue_bytes` is tail-dropped ([`DropReason::QueueFull`]). An idle
//!    link always takes one datagram, so a queue smaller than a datagram still passes it.
//!    Without a rate the link is unlimited and has no queue.
//! 5. **Propagation**: delivery time is `departure + delay ± jitter`, drawn uniformly and
//!    never before departure, then raised to the previous delivery time of the same direction:
//!    `max(previous, departure + delay ± jitter)`. Jitter therefore never reorders a
//!    direction, as on a real circuit; close datagrams bunch up behind a late one.
//!
//! **Profile changes** ([`Underlay::set_profile`]) apply to datagrams sent afterwards; those
//! already queued keep their delivery times. The backlog a new rate sees is the time the wire
//! is still busy, counted in bytes at the new rate.
//!
//! **Cuts** ([`Underlay::set_up`]`(link, false)`) act as a fibre cut: every datagram queued or
//! on the wire in either direction is dropped ([`DropReason::Cut`], counted at the cut) and
//! later sends are dropped as [`DropReason::Down`]. Restoring the link starts from an empty
//! queue.
//!
//! # Cost
//!
//! Sends and deliveries are O(log n) in the datagrams in flight: one hash lookup for the link,
//! one push onto a binary heap keyed by (delivery time, sequence number). The datagram's own
//! buffer is the only allocation. A cut is O(1): it bumps the link's epoch and heap entries of
//! an older epoch are discarded when they reach the top.

mod counters;
mod profile;
mod rng;

pub use counters::{DirectionCounters, LinkCounters, NoLinkCounters};
pub use profile::{DEFAULT_QUEUE_TIME, LinkProfile, MAX_DELAY, ProfileError, queue_for};

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rng::SplitMix64;

/// A link of one [`Underlay`], numbered in the order they were connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LinkId(u32);

impl LinkId {
    /// The link's position in connection order, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// Which way along a link a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    /// From the first address given to [`Underlay::connect`] to the second.
    Forward,
    /// From the second address to the first.
    Reverse,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Direction::Forward => 0,
            Direction::Reverse => 1,
        }
    }
}

/// What [`Underlay::send`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// On its way; [`Underlay::poll`] hands it out at `deliver_at`.
    Queued {
        /// When it reaches the far end.
        deliver_at: Instant,
    },
    /// Dropped, and counted under this reason.
    Dropped(DropReason),
}

/// Why the underlay dropped a datagram; [`label`](Self::label) is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DropReason {
    /// The scenario made no link between the two addresses.
    NoLink,
    /// The link was down when the datagram was offered.
    Down,
    /// Lost on the wire by the profile's loss probability.
    Loss,
    /// The link's queue was full (tail drop).
    QueueFull,
    /// Queued or on the wire when the link was cut. Never returned by [`Underlay::send`]:
    /// these are counted at the cut.
    Cut,
}

impl DropReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [DropReason; 5] = [
        DropReason::NoLink,
        DropReason::Down,
        DropReason::Loss,
        DropReason::QueueFull,
        DropReason::Cut,
    ];

    /// The reason as a metric label and in reports.
    pub const fn label(self) -> &'static str {
        match self {
            DropReason::NoLink => "no-link",
            DropReason::Down => "down",
            DropReason::Loss => "loss",
            DropReason::QueueFull => "queue-full",
            DropReason::Cut => "cut",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A datagram that reached the far end of its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The link it crossed.
    pub link: LinkId,
    /// The address it was sent from.
    pub from: SocketAddr,
    /// The address it was sent to.
    pub to: SocketAddr,
    /// When it was due; at or before the `now` it was polled with.
    pub deliver_at: Instant,
    /// The bytes, as sent.
    pub datagram: Vec<u8>,
}

/// Why the underlay refused to build or change a link.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnderlayError {
    /// The profile cannot describe a link.
    #[error("link {a} ⇄ {b}: {reason}")]
    Profile {
        /// One end.
        a: SocketAddr,
        /// The other end.
        b: SocketAddr,
        /// What is wrong with the profile.
        reason: ProfileError,
    },
    /// The two addresses already have a link; change its profile instead.
    #[error("{a} and {b} are already joined by {link}")]
    AlreadyLinked {
        /// One end.
        a: SocketAddr,
        /// The other end.
        b: SocketAddr,
        /// The existing link.
        link: LinkId,
    },
    /// A link needs two different ends.
    #[error("a link needs two different ends, not {0} twice")]
    SameEnds(SocketAddr),
    /// The id names no link of this underlay.
    #[error("{0} is not a link of this underlay")]
    UnknownLink(LinkId),
}

/// The emulated underlay: links, the datagrams in flight on them, and their counters.
#[derive(Debug)]
pub struct Underlay {
    seed: u64,
    links: Vec<Link>,
    /// Both orientations of every link's ends.
    paths: foldhash::HashMap<(SocketAddr, SocketAddr), (LinkId, Direction)>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    no_link: NoLinkCounters,
}

#[derive(Debug)]
struct Link {
    ends: [SocketAddr; 2],
    profile: LinkProfile,
    up: bool,
    /// Bumped by every cut; datagrams of an older epoch were dropped by it.
    epoch: u64,
    directions: [DirectionState; 2],
    counters: LinkCounters,
}

/// One direction's queue, token bucket and ordering state.
#[derive(Debug)]
struct DirectionState {
    /// When the wire finishes serialising the last accepted datagram.
    busy_until: Option<Instant>,
    /// The latest delivery time handed out, which later datagrams may not precede.
    last_delivery: Option<Instant>,
    rng: SplitMix64,
}

#[derive(Debug)]
struct InFlight {
    deliver_at: Instant,
    seq: u64,
    link: LinkId,
    direction: Direction,
    epoch: u64,
    datagram: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.seq) == (other.deliver_at, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deliver_at, self.seq).cmp(&(other.deliver_at, other.seq))
    }
}

impl Underlay {
    /// An underlay with no links, whose loss and jitter draws derive from `seed`.
    pub fn new(seed: u64) -> Underlay {
        Underlay {
            seed,
            links: Vec::new(),
            paths: foldhash::HashMap::default(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            no_link: NoLinkCounters::default(),
        }
    }

    /// Joins `a` and `b` with a link in both directions, up, under `profile`.
    pub fn connect(
        &mut self,
        a: SocketAddr,
        b: SocketAddr,
        profile: LinkProfile,
    ) -> Result<LinkId, UnderlayError> {
        if a == b {
            return Err(UnderlayError::SameEnds(a));
        }
        if let Some(link) = self.link_between(a, b) {
            return Err(UnderlayError::AlreadyLinked { a, b, link });
        }
        profile
            .validate()
            .map_err(|reason| UnderlayError::Profile { a, b, reason })?;
        let index = u32::try_from(self.links.len()).expect("fewer than 2³² links");
        let id = LinkId(index);
        let stream = |direction: Direction| {
            SplitMix64::stream(self.seed, u64::from(index) * 2 + direction.index() as u64)
        };
        let direction = |direction| DirectionState {
            busy_until: None,
            last_delivery: None,
            rng: stream(direction),
        };
        self.links.push(Link {
            ends: [a, b],
            profile,
            up: true,
            epoch: 0,
            directions: [direction(Direction::Forward), direction(Direction::Reverse)],
            counters: LinkCounters::default(),
        });
        self.paths.insert((a, b), (id, Direction::Forward));
        self.paths.insert((b, a), (id, Direction::Reverse));
        Ok(id)
    }

    /// Replaces a link's profile; datagrams already in flight keep their delivery times.
    pub fn set_profile(&mut self, link: LinkId, profile: LinkProfile) -> Result<(), UnderlayError> {
        let state = self.link_mut(link)?;
        let [a, b] = state.ends;
        profile
            .validate()
            .map_err(|reason| UnderlayError::Profile { a, b, reason })?;
        state.profile = profile;
        Ok(())
    }

    /// Brings a link up or cuts it. A cut drops everything queued or on the wire in both
    /// directions, as a fibre cut does; restoring starts from an empty queue.
    pub fn set_up(&mut self, link: LinkId, up: bool) -> Result<(), UnderlayError> {
        let state = self.link_mut(link)?;
        if state.up == up {
            return Ok(());
        }
        state.up = up;
        if !up {
            state.epoch += 1;
            state.counters.forward.cut();
            state.counters.reverse.cut();
            for direction in &mut state.directions {
                direction.busy_until = None;
                direction.last_delivery = None;
            }
            self.discard_cut();
        }
        Ok(())
    }

    /// The link joining `a` and `b`, in either order.
    pub fn link_between(&self, a: SocketAddr, b: SocketAddr) -> Option<LinkId> {
        self.paths.get(&(a, b)).map(|&(link, _)| link)
    }

    /// Offers a datagram from `from` to `to` at `now`.
    pub fn send(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        datagram: Vec<u8>,
    ) -> Sent {
        let bytes = datagram.len();
        let Some(&(id, direction)) = self.paths.get(&(from, to)) else {
            self.no_link.datagrams += 1;
            self.no_link.bytes += bytes as u64;
            return Sent::Dropped(DropReason::NoLink);
        };
        let link = &mut self.links[id.index()];
        let counters = link.counters.direction_mut(direction);
        counters.offer(bytes);
        let verdict = if link.up {
            link.directions[direction.index()].schedule(&link.profile, now, bytes)
        } else {
            Err(DropReason::Down)
        };
        match verdict {
            Ok(deliver_at) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let epoch = link.epoch;
                self.in_flight.push(Reverse(InFlight {
                    deliver_at,
                    seq,
                    link: id,
                    direction,
                    epoch,
                    datagram,
                }));
                Sent::Queued { deliver_at }
            }
            Err(reason) => {
                counters.drop_one(reason, bytes);
                Sent::Dropped(reason)
            }
        }
    }

    /// The next datagram due at or before `now`, earliest first (ties in the order sent).
    /// Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Delivery> {
        loop {
            let Reverse(next) = self.in_flight.peek()?;
            if next.deliver_at > now {
                return None;
            }
            let Reverse(datagram) = self.in_flight.pop()?;
            let link = &mut self.links[datagram.link.index()];
            if link.epoch != datagram.epoch {
                continue; // dropped by a cut and already counted
            }
            link.counters
                .direction_mut(datagram.direction)
                .deliver(datagram.datagram.len());
            let [a, b] = link.ends;
            let (from, to) = match datagram.direction {
                Direction::Forward => (a, b),
                Direction::Reverse => (b, a),
            };
            self.discard_cut();
            return Some(Delivery {
                link: datagram.link,
                from,
                to,
                deliver_at: datagram.deliver_at,
                datagram: datagram.datagram,
            });
        }
    }

    /// When the next datagram is due: the driver's timer.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(next)| next.deliver_at)
    }

    /// Every link, in connection order.
    pub fn links(&self) -> impl ExactSizeIterator<Item = LinkId> + use<> {
        (0..self.links.len() as u32).map(LinkId)
    }

    /// A link's two ends, in the order they were connected.
    pub fn ends(&self, link: LinkId) -> Option<(SocketAddr, SocketAddr)> {
        self.links.get(link.index()).map(|l| (l.ends[0], l.ends[1]))
    }

    /// A link's current profile.
    pub fn profile(&self, link: LinkId) -> Option<&LinkProfile> {
        self.links.get(link.index()).map(|l| &l.profile)
    }

    /// Whether a link is up.
    pub fn is_up(&self, link: LinkId) -> Option<bool> {
        self.links.get(link.index()).map(|l| l.up)
    }

    /// A link's counters, both directions.
    pub fn counters(&self, link: LinkId) -> Option<&LinkCounters> {
        self.links.get(link.index()).map(|l| &l.counters)
    }

    /// The counters of the direction from `from` to `to`.
    pub fn counters_between(&self, from: SocketAddr, to: SocketAddr) -> Option<&DirectionCounters> {
        let &(link, direction) = self.paths.get(&(from, to))?;
        Some(self.links[link.index()].counters.direction(direction))
    }

    /// Datagrams offered between addresses with no link.
    pub fn no_link_counters(&self) -> NoLinkCounters {
        self.no_link
    }

    fn link_mut(&mut self, link: LinkId) -> Result<&mut Link, UnderlayError> {
        self.links
            .get_mut(link.index())
            .ok_or(UnderlayError::UnknownLink(link))
    }

    /// Pops datagrams dropped by a cut off the top of the heap, so that the top is always
    /// live and [`next_delivery`](Self::next_delivery) exact.
    fn discard_cut(&mut self) {
        while let Some(Reverse(next)) = self.in_flight.peek() {
            if self.links[next.link.index()].epoch == next.epoch {
                return;
            }
            self.in_flight.pop();
        }
    }
}

impl DirectionState {
    /// Loss, queue, token bucket and propagation for one datagram of an up link: its delivery
    /// time, or why it is dropped.
    fn schedule(
        &mut self,
        profile: &LinkProfile,
        now: Instant,
        bytes: usize,
    ) -> Result<Instant, DropReason> {
        if profile.loss > 0.0 && self.rng.unit() < profile.loss {
            return Err(DropReason::Loss);
        }
        let departure = match profile.rate_bps {
            None => now,
            Some(rate) => {
                let start = match self.busy_until {
                    Some(busy) if busy > now => {
                        let backlog = bytes_in(busy - now, rate);
                        if backlog + bytes as u128 > profile.queue_bytes as u128 {
                            return Err(DropReason::QueueFull);
                        }
                        busy
                    }
                    _ => now,
                };
                let departure = start + serialisation(bytes, rate);
                self.busy_until = Some(departure);
                departure
            }
        };
        let mut deliver_at = departure + self.propagation(profile);
        if let Some(previous) = self.last_delivery {
            deliver_at = deliver_at.max(previous);
        }
        self.last_delivery = Some(deliver_at);
        Ok(deliver_at)
    }

    /// `delay ± jitter`, uniform, never below zero.
    fn propagation(&mut self, profile: &LinkProfile) -> Duration {
        if profile.jitter.is_zero() {
            return profile.delay;
        }
        let jitter = profile.jitter.as_nanos();
        let offset = self.rng.below(2 * jitter + 1);
        let nanos = (profile.delay.as_nanos() + offset).saturating_sub(jitter);
        // Validated profiles keep delay + jitter within MAX_DELAY, far below u64 nanoseconds.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Time on the wire for `bytes` at `rate_bps`, rounded up to the nanosecond.
fn serialisation(bytes: usize, rate_bps: u64) -> Duration {
    let nanos = (bytes as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate_bps));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Bytes serialised in `time` at `rate_bps`, rounded down.
fn bytes_in(time: Duration, rate_bps: u64) -> u128 {
    time.as_nanos() * u128::from(rate_bps) / 8 / 1_000_000_000
}
