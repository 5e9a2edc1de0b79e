//! In-tunnel link probes and uplink failover, sans-IO.
//!
//! WireGuard tells us a handshake happened, not that the overlay link carries packets now.
//! So every peer gets a BFD-like prober ([`LinkProbe`]): a request every interval, sent to
//! UDP port [`PROBE_PORT`] *inside* the tunnel (which authenticates it, so the probe itself
//! carries no key), answered by the peer's node core. From the answers it derives the
//! peer's [`PeerHealth`], a smoothed round-trip time, loss and jitter. [`Failover`] turns the
//! health of a primary and a backup path into the path to use. The wire format of the
//! probes ([`ProbeMessage`], [`probe_packet`], [`parse_probe_packet`]) is re-exported here.
//!
//! Nothing here reads the clock: every call takes `now`, and [`LinkProbe::next_timeout`]
//! says when to call [`LinkProbe::poll`] again, so tests and netlab run on virtual time.
//!
//! # The rules, precisely
//!
//! - **Timestamps.** The echo token of a request is the sender's time in nanoseconds since
//!   an epoch of its choosing ([`EchoClock`]; the node passes its own start). The peer
//!   copies it unchanged, so only the sender's clock is ever used and clocks need not agree.
//! - **Matching.** A reply counts only if its sequence number is one of the requests still
//!   outstanding *and* its echo token is the one that request carried. Anything else (an
//!   unknown, old, already-answered or timed-out sequence number) is ignored, so duplicates
//!   never count twice. Sequence numbers are compared for equality only and wrap at
//!   `u32::MAX`; at most `down_after + 1` requests are outstanding, so wrapping is harmless.
//! - **Down** (BFD's detection time, RFC 5880 §6.8.4): a peer goes [`PeerHealth::Down`] when
//!   no reply has arrived for `down_after × interval`, counted from the last reply (or from
//!   the first request, if none ever came). With 100 ms × 3 and probes answered up to a reply
//!   at `t`, the peer is down at `t + 300 ms`, by which time the `down_after` requests sent
//!   after that reply are all unanswered (one more if round trips exceed the interval).
//!   Until then the peer stays up, so fewer than `down_after` misses never bring it down.
//! - **Up**: one matching reply suffices, from `Unknown` or `Down`. The tunnel authenticates
//!   the reply, so it is proof the link works *now*; damping flaps is the job of the
//!   failover hold-down, not of the prober. Requests *from* the peer prove only one
//!   direction and do not count.
//! - **Loss**: a request is lost if no reply comes within the same `down_after × interval`
//!   of sending it; a later reply is ignored. [`LinkProbe::loss`] is the fraction lost among
//!   the last [`LOSS_WINDOW`] requests to be settled (answered or timed out); requests still
//!   in flight are not counted either way.
//! - **RTT**: smoothed as TCP does (RFC 6298 §2): the first sample `R` sets `SRTT = R`,
//!   `RTTVAR = R/2`; each later one `RTTVAR = ¾·RTTVAR + ¼·|SRTT − R|`, then
//!   `SRTT = ⅞·SRTT + ⅛·R`.
//! - **Jitter**: RFC 3550 §6.4.1's estimator `J += (|D| − J)/16`. RFC 3550's
//!   `D(i,j) = (Rj − Sj) − (Ri − Si)` is the change in one-way transit time between
//!   consecutive arrivals; lacking the peer's clock we use the round trip instead:
//!   `D = RTTj − RTTi` for consecutive *replies in order of arrival*, both RTTs measured on the
//!   sender's clock. It is therefore round-trip jitter (both directions plus the peer's
//!   turnaround), in nanoseconds, kept unrounded between samples.

mod failover;
mod wire;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::{PeerHealth, ProbeSettings};

pub use failover::{Failover, Switch};
pub use wire::{
    PROBE_LEN, PROBE_MAGIC, PROBE_PORT, PROBE_TTL, PROBE_VERSION, ProbeError, ProbeKind,
    ProbeMessage, parse_probe_packet, probe_packet, tcp_syn,
};

/// How many settled requests [`LinkProbe::loss`] looks back over.
pub const LOSS_WINDOW: usize = 100;

/// The shortest probe interval; shorter settings are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The longest probe interval; longer settings are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The largest `down_after` honoured; larger settings are lowered to it.
pub const MAX_DOWN_AFTER: u32 = 1_000;

/// Health changes remembered until taken; older ones are dropped first.
const MAX_PENDING: usize = 64;

/// Turns instants into echo tokens (nanoseconds since an epoch) and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoClock {
    epoch: Instant,
}

impl EchoClock {
    /// A clock counting from `epoch` (the node uses its own start).
    pub fn new(epoch: Instant) -> Self {
        EchoClock { epoch }
    }

    /// The epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The token for `now`: nanoseconds since the epoch, 0 before it, saturating after
    /// 584 years.
    pub fn token(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// The instant a token stands for, if representable.
    pub fn instant(&self, token: u64) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_nanos(token))
    }
}

/// A change of a peer's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// The health before.
    pub from: PeerHealth,
    /// The health after.
    pub to: PeerHealth,
    /// When the prober noticed.
    pub at: Instant,
}

/// A request sent and not yet answered or timed out.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    seq: u32,
    sent: Instant,
}

/// The in-tunnel prober of one peer; see the module documentation for its rules.
#[derive(Debug, Clone)]
pub struct LinkProbe {
    interval: Duration,
    /// `down_after × interval`: both the detection time and the loss timeout.
    detect: Duration,
    clock: EchoClock,
    next_seq: u32,
    next_send: Instant,
    outstanding: VecDeque<Outstanding>,
    /// Last settled requests, oldest first; `true` is lost.
    settled: VecDeque<bool>,
    lost_in_window: usize,
    health: PeerHealth,
    /// The last reply, or the first request while there has been no reply.
    last_alive: Option<Instant>,
    /// SRTT and RTTVAR in nanoseconds.
    srtt: Option<f64>,
    rttvar: f64,
    /// The previous RTT sample and the jitter estimate, in nanoseconds.
    last_rtt: Option<f64>,
    jitter: f64,
    sent: u64,
    answered: u64,
    changes: VecDeque<HealthChange>,
}

impl LinkProbe {
    /// A prober whose echo tokens count from `now`; the first request is due at `now`.
    pub fn new(settings: &ProbeSettings, now: Instant) -> Self {
        Self::with_epoch(settings, now, now)
    }

    /// A prober whose echo tokens count from `epoch` (the node's start, shared by all its
    /// probers); the first request is due at `now`. The interval is kept within
    /// [`MIN_INTERVAL`]..=[`MAX_INTERVAL`] and `down_after` within 1..=[`MAX_DOWN_AFTER`].
    pub fn with_epoch(settings: &ProbeSettings, epoch: Instant, now: Instant) -> Self {
        let interval = settings.interval().clamp(MIN_INTERVAL, MAX_INTERVAL);
        let down_after = settings.down_after.clamp(1, MAX_DOWN_AFTER);
        LinkProbe {
            interval,
            detect: interval * down_after,
            clock: EchoClock::new(epoch),
            next_seq: 0,
            next_send: now,
            outstanding: VecDeque::new(),
            settled: VecDeque::with_capacity(LOSS_WINDOW),
            lost_in_window: 0,
            health: PeerHealth::Unknown,
            last_alive: None,
            srtt: None,
            rttvar: 0.0,
            last_rtt: None,
            jitter: 0.0,
            sent: 0,
            answered: 0,
            changes: VecDeque::new(),
        }
    }

    /// Starts the sequence numbers at `seq` instead of 0 (after a restart, or to test
    /// wrapping).
    pub fn with_first_seq(mut self, seq: u32) -> Self {
        self.next_seq = seq;
        self
    }

    /// Runs the timers: settles timed-out requests, declares the peer down when the
    /// detection time has passed, and returns a request when one is due. Call it at
    /// [`next_timeout`](Self::next_timeout); it returns at most one request per call and,
    /// if called late, does not send a burst to catch up.
    pub fn poll(&mut self, now: Instant) -> Option<ProbeMessage> {
        self.advance(now);
        if now < self.next_send {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.outstanding.push_back(Outstanding { seq, sent: now });
        self.last_alive.get_or_insert(now);
        self.sent += 1;
        let on_time = self.next_send + self.interval;
        self.next_send = if on_time > now {
            on_time
        } else {
            now + self.interval
        };
        Some(ProbeMessage::request(seq, self.clock.token(now)))
    }

    /// When [`poll`](Self::poll) has work next: the next request, the next timeout of an
    /// outstanding one, or the detection deadline.
    pub fn next_timeout(&self) -> Instant {
        let mut at = self.next_send;
        if let Some(first) = self.outstanding.front() {
            at = at.min(first.sent + self.detect);
        }
        if let Some(alive) = self.last_alive
            && self.health != PeerHealth::Down
        {
            at = at.min(alive + self.detect);
        }
        at
    }

    /// Handles a probe received from the peer: a request gets the reply to send back; a
    /// reply is matched against the outstanding requests and, if it matches, updates the
    /// health and the estimates.
    pub fn on_message(&mut self, now: Instant, msg: &ProbeMessage) -> Option<ProbeMessage> {
        self.advance(now);
        match msg.kind {
            ProbeKind::Request => return Some(msg.reply()),
            ProbeKind::Reply => {}
        }
        let clock = self.clock;
        let index = self
            .outstanding
            .iter()
            .position(|o| o.seq == msg.seq && clock.token(o.sent) == msg.echo)?;
        let request = self.outstanding.remove(index)?;
        let rtt = now.saturating_duration_since(request.sent).as_nanos() as f64;
        self.answered += 1;
        self.settle(false);
        self.sample(rtt);
        self.last_alive = Some(now);
        self.set_health(now, PeerHealth::Up);
        None
    }

    /// Settles requests that timed out and declares the peer down after the detection time.
    fn advance(&mut self, now: Instant) {
        while let Some(first) = self.outstanding.front() {
            if now < first.sent + self.detect {
                break;
            }
            self.outstanding.pop_front();
            self.settle(true);
        }
        if let Some(alive) = self.last_alive
            && now >= alive + self.detect
        {
            self.set_health(now, PeerHealth::Down);
        }
    }

    fn settle(&mut self, lost: bool) {
        if self.settled.len() == LOSS_WINDOW && self.settled.pop_front() == Some(true) {
            self.lost_in_window -= 1;
        }
        self.settled.push_back(lost);
        if lost {
            self.lost_in_window += 1;
        }
    }

    /// Feeds one RTT sample (nanoseconds) to the RFC 6298 and RFC 3550 estimators.
    fn sample(&mut self, rtt: f64) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2.0;
            }
            Some(srtt) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (srtt - rtt).abs();
                self.srtt = Some(0.875 * srtt + 0.125 * rtt);
            }
        }
        if let Some(previous) = self.last_rtt {
            self.jitter += ((rtt - previous).abs() - self.jitter) / 16.0;
        }
        self.last_rtt = Some(rtt);
    }

    fn set_health(&mut self, now: Instant, to: PeerHealth) {
        if self.health == to {
            return;
        }
        if self.changes.len() == MAX_PENDING {
            self.changes.pop_front();
        }
        self.changes.push_back(HealthChange {
            from: self.health,
            to,
            at: now,
        });
        self.health = to;
    }

    /// The peer's health.
    pub fn health(&self) -> PeerHealth {
        self.health
    }

    /// The smoothed round-trip time (RFC 6298 SRTT), once a reply has come.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt.map(nanos)
    }

    /// The round-trip time variation (RFC 6298 RTTVAR); zero before any reply.
    pub fn rtt_var(&self) -> Duration {
        nanos(self.rttvar)
    }

    /// The fraction of requests lost among the last [`LOSS_WINDOW`] settled, 0–1; 0 when
    /// none has settled.
    pub fn loss(&self) -> f64 {
        if self.settled.is_empty() {
            return 0.0;
        }
        self.lost_in_window as f64 / self.settled.len() as f64
    }

    /// The round-trip interarrival jitter (RFC 3550 §6.4.1 over consecutive RTTs).
    pub fn jitter(&self) -> Duration {
        nanos(self.jitter)
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Replies that matched a request so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The probe interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The detection time, `down_after × interval`, which is also the loss timeout.
    pub fn detect_time(&self) -> Duration {
        self.detect
    }

    /// The clock that makes and reads echo tokens.
    pub fn clock(&self) -> EchoClock {
        self.clock
    }

    /// The oldest health change not yet taken.
    pub fn take_change(&mut self) -> Option<HealthChange> {
        self.changes.pop_front()
    }
}

/// A duration from non-negative nanoseconds, rounded to the nearest.
fn nanos(value: f64) -> Duration {
    Duration::from_nanos(value.round() as u64)
}

#[cfg(test)]
mod tests;
