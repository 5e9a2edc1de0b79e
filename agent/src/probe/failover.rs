//! Uplink failover: which underlay path, primary or backup, carries a peer's traffic.
//!
//! The decision is separate from the probes that feed it so that the rules can be read and
//! tested on their own. They are:
//!
//! - Start on the primary.
//! - Leave the primary only when it is [`PeerHealth::Down`] *and* the backup is
//!   [`PeerHealth::Up`]. A backup that is `Down`, or `Unknown` (never answered a probe), is
//!   never chosen: failover only moves traffic to a path known to work. A primary that is
//!   merely `Unknown` (not yet probed) is not left either; its probes declare it `Down` soon
//!   enough if it is dead.
//! - Go back to the primary once it has been `Up` continuously for the hold-down. Any
//!   non-`Up` observation restarts that clock, so a flapping primary does not take traffic
//!   back.
//! - Exception: if, while on the backup, the backup stops being `Up` (or is removed) and the
//!   primary is `Up`, go back at once. The hold-down protects a working backup from a
//!   flapping primary; it must not keep traffic on a dead path when a live one exists.
//! - If neither path is usable, stay where we are: moving would gain nothing and would cost
//!   a second switch when the stayed-on path recovers.
//!
//! The hold-down is measured between [`Failover::update`] calls, so call it on every health
//! change of either path and at [`Failover::next_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::{PathChoice, PeerHealth};

/// Switches remembered until taken; older ones are dropped first.
const MAX_PENDING: usize = 64;

/// One move between paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// The path traffic left.
    pub from: PathChoice,
    /// The path traffic moved to.
    pub to: PathChoice,
    /// When.
    pub at: Instant,
}

/// The failover state of one uplink with a primary and an optional backup path.
#[derive(Debug, Clone)]
pub struct Failover {
    hold_down: Duration,
    choice: PathChoice,
    since: Option<Instant>,
    primary_up_since: Option<Instant>,
    switches: VecDeque<Switch>,
}

impl Failover {
    /// Starts on the primary; traffic returns to the primary after it has been up for
    /// `hold_down`.
    pub fn new(hold_down: Duration) -> Self {
        Failover {
            hold_down,
            choice: PathChoice::Primary,
            since: None,
            primary_up_since: None,
            switches: VecDeque::new(),
        }
    }

    /// Feeds the current health of both paths (`backup` is `None` when there is no backup
    /// path) and returns the path to use, applying the rules in the module documentation.
    pub fn update(
        &mut self,
        now: Instant,
        primary: PeerHealth,
        backup: Option<PeerHealth>,
    ) -> PathChoice {
        self.since.get_or_insert(now);
        self.primary_up_since = match primary {
            PeerHealth::Up => Some(self.primary_up_since.unwrap_or(now)),
            PeerHealth::Unknown | PeerHealth::Down => None,
        };
        let backup_up = backup == Some(PeerHealth::Up);
        let next = match self.choice {
            PathChoice::Primary if primary == PeerHealth::Down && backup_up => PathChoice::Backup,
            PathChoice::Primary => PathChoice::Primary,
            PathChoice::Backup if backup.is_none() => PathChoice::Primary,
            PathChoice::Backup if !backup_up && primary == PeerHealth::Up => PathChoice::Primary,
            PathChoice::Backup if self.primary_held(now) => PathChoice::Primary,
            PathChoice::Backup => PathChoice::Backup,
        };
        if next != self.choice {
            self.push(Switch {
                from: self.choice,
                to: next,
                at: now,
            });
            self.choice = next;
            self.since = Some(now);
        }
        next
    }

    /// Whether the primary has been up for the whole hold-down at `now`.
    fn primary_held(&self, now: Instant) -> bool {
        self.primary_up_since
            .is_some_and(|up| now.saturating_duration_since(up) >= self.hold_down)
    }

    fn push(&mut self, switch: Switch) {
        if self.switches.len() == MAX_PENDING {
            self.switches.pop_front();
        }
        self.switches.push_back(switch);
    }

    /// The path in use.
    pub fn choice(&self) -> PathChoice {
        self.choice
    }

    /// When the current choice was made: the last switch, or the first
    /// [`update`](Self::update) if there has been none.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// Since when the primary has been seen up continuously, if it is up.
    pub fn primary_up_since(&self) -> Option<Instant> {
        self.primary_up_since
    }

    /// When the hold-down ends if nothing changes: on the backup with the primary up, the
    /// instant [`update`](Self::update) would move traffic back. `None` otherwise.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self.choice {
            PathChoice::Backup => self
                .primary_up_since
                .and_then(|up| up.checked_add(self.hold_down)),
            PathChoice::Primary => None,
        }
    }

    /// The oldest switch not yet taken.
    pub fn take_switch(&mut self) -> Option<Switch> {
        self.switches.pop_front()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use PeerHealth::{Down, Unknown, Up};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_on_primary_and_stays_while_primary_unknown() {
        let t0 = Instant::now();
        let mut f = Failover::new(ms(5_000));
        assert_eq!(f.since(), None);
        assert_eq!(f.update(t0, Unknown, Some(Up)), PathChoice::Primary);
        assert_eq!(f.since(), Some(t0));
        assert_eq!(f.take_switch(), None);
    }

    #[test]
    fn backup_removed_returns_to_primary() {
        let t0 = Instant::now();
        let mut f = Failover::new(ms(5_000));
        f.update(t0, Down, Some(Up));
        assert_eq!(f.choice(), PathChoice::Backup);
        assert_eq!(f.update(t0 + ms(1), Down, None), PathChoice::Primary);
    }

    #[test]
    fn dead_backup_yields_to_live_primary_before_hold_down() {
        let t0 = Instant::now();
        let mut f = Failover::new(ms(5_000));
        f.update(t0, Down, Some(Up));
        f.update(t0 + ms(100), Up, Some(Up));
        assert_eq!(f.next_timeout(), Some(t0 + ms(5_100)));
        assert_eq!(f.update(t0 + ms(200), Up, Some(Down)), PathChoice::Primary);
    }

    #[test]
    fn both_down_stays_on_backup() {
        let t0 = Instant::now();
        let mut f = Failover::new(ms(5_000));
        f.update(t0, Down, Some(Up));
        assert_eq!(f.update(t0 + ms(10), Down, Some(Down)), PathChoice::Backup);
        assert_eq!(
            f.update(t0 + ms(20), Unknown, Some(Down)),
            PathChoice::Backup
        );
    }

    #[test]
    fn switches_queue_is_bounded() {
        let t0 = Instant::now();
        let mut f = Failover::new(ms(0));
        for i in 0..200u64 {
            let (p, b) = if i % 2 == 0 { (Down, Up) } else { (Up, Up) };
            f.update(t0 + ms(i), p, Some(b));
        }
        let mut n = 0;
        while f.take_switch().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_PENDING);
    }
}
