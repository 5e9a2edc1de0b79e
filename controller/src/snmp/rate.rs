//! Interface counters into rates: the sans-IO core of the SNMP poller.
//!
//! SNMP gives totals (octets since some unknown moment); operators want bits per second.
//! [`RateTracker`] keeps the previous reading of one device and turns each new
//! [`Sample`] into an [`Observation`]. It reads no clock and opens no socket: the caller
//! passes `now`, so every edge case here is tested with plain values.
//!
//! What it promises:
//!
//! - **The interval is the device's own.** Rates are over the sysUpTime difference between
//!   the two readings (10 ms resolution), not over our poll timestamps: the agent reads
//!   counters and sysUpTime together, while our timestamps carry network latency. `now` is
//!   used only to check that sysUpTime moved as much as real time did.
//! - **A 64-bit counter that goes backwards wrapped** (delta = new + 2^64 − old), as long as
//!   the rate this implies is plausible (below [`TrackerConfig::max_plausible_bps`]).
//!   Otherwise the counter was reset (cleared by an operator, a line card swapped): that
//!   interval has no rate ([`CounterRate::Discontinuity`]) instead of an absurd one.
//! - **A restart never produces a rate.** sysUpTime going back, or advancing clearly less
//!   than the time that passed, means the agent restarted in between: no rate for that
//!   interval, the new reading becomes the baseline, and the observation says
//!   [`UptimeStep::Restarted`] so an alert can be raised.
//! - **sysUpTime's own wrap is not a restart.** sysUpTime is a 32-bit count of 1/100 s and
//!   wraps after 2^32 ticks (497 days). Differences are taken modulo 2^32, so a reading just
//!   past the wrap is "a little later", not "earlier": a value that went down is a wrap when
//!   the modular difference matches the elapsed time, and a restart otherwise. Two readings
//!   more than 497 days apart cannot be told apart at all; they rebaseline
//!   ([`UptimeStep::Stale`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// sysUpTime ticks per second (TimeTicks are hundredths of a second).
pub const TICKS_PER_SECOND: u64 = 100;

/// How long sysUpTime takes to wrap: 2^32 ticks, about 497 days.
pub const UPTIME_PERIOD: Duration = Duration::from_secs((1u64 << 32) / TICKS_PER_SECOND);

/// Default absolute slack between sysUpTime's advance and real time: covers poll latency
/// (our `now` is taken when the reply arrives) and the 10 ms tick.
pub const DEFAULT_UPTIME_SLACK: Duration = Duration::from_secs(5);

/// Default relative slack, in percent of the elapsed time: covers agents whose clock runs
/// fast or slow.
pub const DEFAULT_UPTIME_SLACK_PERCENT: u32 = 5;

/// Default ceiling on a believable interface rate: 10 Tbit/s, above any single interface
/// made today. A wrapped delta that implies more is a counter reset, not a wrap.
pub const DEFAULT_MAX_PLAUSIBLE_BPS: u64 = 10_000_000_000_000;

/// `ifOperStatus` (IF-MIB): the operational state of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperStatus {
    /// up(1): ready to pass packets.
    Up,
    /// down(2).
    Down,
    /// testing(3): in some test mode.
    Testing,
    /// unknown(4).
    Unknown,
    /// dormant(5): waiting for an external action (e.g. a dial-up line).
    Dormant,
    /// notPresent(6): a component (a module) is missing.
    NotPresent,
    /// lowerLayerDown(7): down because a layer below is down.
    LowerLayerDown,
}

impl OperStatus {
    /// The status for its IF-MIB number, `None` for a number the MIB does not define.
    pub fn from_mib(value: i64) -> Option<OperStatus> {
        Some(match value {
            1 => OperStatus::Up,
            2 => OperStatus::Down,
            3 => OperStatus::Testing,
            4 => OperStatus::Unknown,
            5 => OperStatus::Dormant,
            6 => OperStatus::NotPresent,
            7 => OperStatus::LowerLayerDown,
            _ => return None,
        })
    }

    /// The IF-MIB number.
    pub fn to_mib(self) -> i64 {
        match self {
            OperStatus::Up => 1,
            OperStatus::Down => 2,
            OperStatus::Testing => 3,
            OperStatus::Unknown => 4,
            OperStatus::Dormant => 5,
            OperStatus::NotPresent => 6,
            OperStatus::LowerLayerDown => 7,
        }
    }
}

/// One reading of a device: its sysUpTime and the counters of its polled interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// sysUpTime.0, in 1/100 s since the agent started.
    pub sys_uptime: u32,
    /// One entry per polled interface.
    pub interfaces: Vec<InterfaceSample>,
}

/// One interface in a [`Sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSample {
    /// ifIndex.
    pub index: u32,
    /// ifHCInOctets.
    pub in_octets: u64,
    /// ifHCOutOctets.
    pub out_octets: u64,
    /// ifOperStatus.
    pub oper: OperStatus,
}

/// Tolerances of a [`RateTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// sysUpTime may advance this much more or less than real time without being called a
    /// restart. Must cover the spread of poll latencies (at least the poll timeout).
    pub uptime_slack: Duration,
    /// Extra slack in percent of the elapsed time, for agents with an inaccurate clock.
    pub uptime_slack_percent: u32,
    /// A counter delta implying more bits per second than this is a reset, not traffic.
    pub max_plausible_bps: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            uptime_slack: DEFAULT_UPTIME_SLACK,
            uptime_slack_percent: DEFAULT_UPTIME_SLACK_PERCENT,
            max_plausible_bps: DEFAULT_MAX_PLAUSIBLE_BPS,
        }
    }
}

impl TrackerConfig {
    /// The allowed difference between sysUpTime's advance and `elapsed`.
    fn slack(&self, elapsed: Duration) -> Duration {
        let relative = elapsed.saturating_mul(self.uptime_slack_percent) / 100;
        self.uptime_slack.max(relative)
    }
}

/// How sysUpTime moved between the previous reading and this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum UptimeStep {
    /// The first reading: nothing to compare with yet.
    First,
    /// sysUpTime advanced as real time did; rates are over `interval`.
    Continuous {
        /// The sysUpTime difference, the interval the rates are over.
        interval: Duration,
        /// sysUpTime passed 2^32 ticks (497 days) in between.
        uptime_wrapped: bool,
    },
    /// The agent restarted in between: sysUpTime went back, or advanced clearly less than
    /// the time that passed. No rates; this reading is the new baseline.
    Restarted {
        /// sysUpTime of the previous reading.
        before: u32,
        /// sysUpTime of this reading.
        after: u32,
    },
    /// sysUpTime advanced clearly more than the time that passed: not the clock of the
    /// same running agent (another device answers at this address, or its clock jumped).
    /// No rates; this reading is the new baseline.
    Inconsistent {
        /// sysUpTime of the previous reading.
        before: u32,
        /// sysUpTime of this reading.
        after: u32,
    },
    /// The readings are further apart than sysUpTime's 497-day period, so its movement
    /// says nothing. No rates; this reading is the new baseline.
    Stale,
    /// sysUpTime did not move (two readings within 10 ms): no rates, and the previous
    /// reading stays the baseline so the next interval is measured from it.
    TooSoon,
}

/// The rate of one counter over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum CounterRate {
    /// Measured over the interval.
    Measured {
        /// Bits per second.
        bps: f64,
        /// The 64-bit counter wrapped in between.
        wrapped: bool,
    },
    /// No earlier reading to compare with: the first poll, a newly listed interface, or the
    /// poll after a restart.
    NoBaseline,
    /// The counter jumped by more than any plausible traffic (it was reset or replaced).
    Discontinuity,
}

impl CounterRate {
    /// Bits per second, when measured.
    pub fn bps(&self) -> Option<f64> {
        match self {
            CounterRate::Measured { bps, .. } => Some(*bps),
            CounterRate::NoBaseline | CounterRate::Discontinuity => None,
        }
    }
}

/// One interface in an [`Observation`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InterfaceRate {
    /// ifIndex.
    pub index: u32,
    /// ifOperStatus at this reading.
    pub oper: OperStatus,
    /// Received bits per second (from ifHCInOctets).
    pub inbound: CounterRate,
    /// Sent bits per second (from ifHCOutOctets).
    pub outbound: CounterRate,
}

/// What one reading says, compared with the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// How sysUpTime moved.
    pub uptime: UptimeStep,
    /// The interfaces of this reading, in its order.
    pub interfaces: Vec<InterfaceRate>,
}

impl Observation {
    /// The device restarted since the previous reading: raise an alert.
    pub fn restarted(&self) -> bool {
        matches!(self.uptime, UptimeStep::Restarted { .. })
    }

    /// The interval the rates are over, when there are rates.
    pub fn interval(&self) -> Option<Duration> {
        match self.uptime {
            UptimeStep::Continuous { interval, .. } => Some(interval),
            _ => None,
        }
    }
}

/// The previous reading of a device.
#[derive(Debug, Clone)]
struct Baseline {
    at: Instant,
    sys_uptime: u32,
    counters: BTreeMap<u32, (u64, u64)>,
}

/// Turns successive [`Sample`]s of one device into rates. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RateTracker {
    config: TrackerConfig,
    baseline: Option<Baseline>,
}

impl RateTracker {
    /// A tracker with no reading yet.
    pub fn new(config: TrackerConfig) -> Self {
        RateTracker {
            config,
            baseline: None,
        }
    }

    /// Its tolerances.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Forgets the previous reading (e.g. when the device's inventory entry changed).
    pub fn reset(&mut self) {
        self.baseline = None;
    }

    /// Takes the reading made at `now` and compares it with the previous one.
    ///
    /// `now` must not be earlier than the previous reading's; if it is (a caller bug), the
    /// elapsed time counts as zero.
    pub fn handle_sample(&mut self, now: Instant, sample: &Sample) -> Observation {
        let uptime = match &self.baseline {
            None => UptimeStep::First,
            Some(baseline) => classify_uptime(
                baseline.sys_uptime,
                sample.sys_uptime,
                now.saturating_duration_since(baseline.at),
                &self.config,
            ),
        };
        let interfaces = sample
            .interfaces
            .iter()
            .map(|interface| self.interface_rate(uptime, interface))
            .collect();
        if uptime != UptimeStep::TooSoon {
            self.baseline = Some(Baseline {
                at: now,
                sys_uptime: sample.sys_uptime,
                counters: sample
                    .interfaces
                    .iter()
                    .map(|i| (i.index, (i.in_octets, i.out_octets)))
                    .collect(),
            });
        }
        Observation { uptime, interfaces }
    }

    fn interface_rate(&self, uptime: UptimeStep, interface: &InterfaceSample) -> InterfaceRate {
        let previous = self
            .baseline
            .as_ref()
            .and_then(|baseline| baseline.counters.get(&interface.index));
        let (inbound, outbound) = match (uptime, previous) {
            (UptimeStep::Continuous { interval, .. }, Some(&(old_in, old_out))) => (
                counter_rate(old_in, interface.in_octets, interval, &self.config),
                counter_rate(old_out, interface.out_octets, interval, &self.config),
            ),
            _ => (CounterRate::NoBaseline, CounterRate::NoBaseline),
        };
        InterfaceRate {
            index: interface.index,
            oper: interface.oper,
            inbound,
            outbound,
        }
    }
}

/// Converts sysUpTime ticks to a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(1000 / TICKS_PER_SECOND))
}

/// How sysUpTime moved from `before` to `after` while `elapsed` passed.
pub fn classify_uptime(
    before: u32,
    after: u32,
    elapsed: Duration,
    config: &TrackerConfig,
) -> UptimeStep {
    if elapsed >= UPTIME_PERIOD.saturating_sub(config.slack(elapsed)) {
        return UptimeStep::Stale;
    }
    let forward = ticks_to_duration(u64::from(after.wrapping_sub(before)));
    let slack = config.slack(elapsed);
    let matches_elapsed = forward.abs_diff(elapsed) <= slack;
    if forward.is_zero() {
        return if elapsed <= slack {
            UptimeStep::TooSoon
        } else {
            UptimeStep::Restarted { before, after }
        };
    }
    if after < before {
        // Either sysUpTime wrapped past 2^32 (then the modular advance matches real time)
        // or it went back: the agent restarted.
        return if matches_elapsed {
            UptimeStep::Continuous {
                interval: forward,
                uptime_wrapped: true,
            }
        } else {
            UptimeStep::Restarted { before, after }
        };
    }
    if matches_elapsed {
        UptimeStep::Continuous {
            interval: forward,
            uptime_wrapped: false,
        }
    } else if forward < elapsed {
        // It restarted, then ran past the old value before we looked again.
        UptimeStep::Restarted { before, after }
    } else {
        UptimeStep::Inconsistent { before, after }
    }
}

/// The rate of a 64-bit octet counter that went from `old` to `new` over `interval`.
pub fn counter_rate(old: u64, new: u64, interval: Duration, config: &TrackerConfig) -> CounterRate {
    let seconds = interval.as_secs_f64();
    if seconds <= 0.0 {
        return CounterRate::NoBaseline;
    }
    let wrapped = new < old;
    // Modulo 2^64: new − old when it went up, new + 2^64 − old when it wrapped.
    let octets = new.wrapping_sub(old);
    let bps = octets as f64 * 8.0 / seconds;
    if bps > config.max_plausible_bps as f64 {
        return CounterRate::Discontinuity;
    }
    CounterRate::Measured { bps, wrapped }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u32 = TICKS_PER_SECOND as u32;

    /// The time of the first reading. The tracker only ever subtracts instants, so any
    /// origin will do; it comes from the clock because `Instant` has no other constructor.
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    fn config() -> TrackerConfig {
        TrackerConfig::default()
    }

    fn sample(sys_uptime: u32, counters: &[(u32, u64, u64)]) -> Sample {
        Sample {
            sys_uptime,
            interfaces: counters
                .iter()
                .map(|&(index, in_octets, out_octets)| InterfaceSample {
                    index,
                    in_octets,
                    out_octets,
                    oper: OperStatus::Up,
                })
                .collect(),
        }
    }

    fn measured(rate: CounterRate) -> (f64, bool) {
        match rate {
            CounterRate::Measured { bps, wrapped } => (bps, wrapped),
            other => panic!("expected a rate, got {other:?}"),
        }
    }

    #[test]
    fn two_readings_give_rates_over_the_uptime_interval() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        let first = tracker.handle_sample(t0, &sample(1000, &[(1, 0, 0), (2, 500, 500)]));
        assert_eq!(first.uptime, UptimeStep::First);
        assert!(!first.restarted());
        assert!(
            first
                .interfaces
                .iter()
                .all(|i| i.inbound == CounterRate::NoBaseline
                    && i.outbound == CounterRate::NoBaseline)
        );

        // 10 s of uptime, observed 10.3 s later on our clock (latency): the interval is the
        // device's 10 s.
        let second = tracker.handle_sample(
            t0 + Duration::from_millis(10_300),
            &sample(1000 + 10 * SECOND, &[(1, 1_250_000, 2_500), (2, 500, 1500)]),
        );
        assert_eq!(second.interval(), Some(Duration::from_secs(10)));
        assert_eq!(measured(second.interfaces[0].inbound), (1_000_000.0, false));
        assert_eq!(measured(second.interfaces[0].outbound), (2_000.0, false));
        assert_eq!(measured(second.interfaces[1].inbound), (0.0, false));
        assert_eq!(measured(second.interfaces[1].outbound), (800.0, false));
    }

    #[test]
    fn a_counter_that_goes_back_while_uptime_goes_on_wrapped() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(7, u64::MAX - 999, 10)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(2),
            &sample(3 * SECOND, &[(7, 500, 10)]),
        );
        // 1000 octets up to 2^64, then 500 more: 1500 octets in 2 s.
        assert_eq!(measured(observation.interfaces[0].inbound), (6000.0, true));
        assert_eq!(measured(observation.interfaces[0].outbound), (0.0, false));
    }

    #[test]
    fn a_reset_counter_is_a_discontinuity_not_a_huge_rate() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(1, 1 << 40, 1 << 40)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(60),
            &sample(61 * SECOND, &[(1, 12, (1 << 40) + 80)]),
        );
        assert_eq!(
            observation.interfaces[0].inbound,
            CounterRate::Discontinuity
        );
        assert_eq!(
            measured(observation.interfaces[0].outbound),
            (80.0 * 8.0 / 60.0, false)
        );
        // The reset value is the new baseline.
        let next = tracker.handle_sample(
            t0 + Duration::from_secs(120),
            &sample(121 * SECOND, &[(1, 12 + 600, (1 << 40) + 80)]),
        );
        assert_eq!(measured(next.interfaces[0].inbound), (80.0, false));
    }

    #[test]
    fn uptime_going_back_is_a_restart_without_rates() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(300 * SECOND, &[(1, 5_000_000, 5_000_000)]));
        // Counters restart from zero with the device.
        let restart = tracker.handle_sample(
            t0 + Duration::from_secs(60),
            &sample(20 * SECOND, &[(1, 1_000, 2_000)]),
        );
        assert!(restart.restarted());
        assert_eq!(
            restart.uptime,
            UptimeStep::Restarted {
                before: 300 * SECOND,
                after: 20 * SECOND
            }
        );
        assert_eq!(restart.interval(), None);
        assert_eq!(restart.interfaces[0].inbound, CounterRate::NoBaseline);
        assert_eq!(restart.interfaces[0].outbound, CounterRate::NoBaseline);

        // The restart reading is the new baseline.
        let after = tracker.handle_sample(
            t0 + Duration::from_secs(120),
            &sample(80 * SECOND, &[(1, 7_000, 2_000)]),
        );
        assert!(!after.restarted());
        assert_eq!(measured(after.interfaces[0].inbound), (800.0, false));
    }

    #[test]
    fn a_restart_hidden_by_a_long_interval_is_still_a_restart() {
        // Up 10 s, restarted, and up 250 s when we look again 300 s later: sysUpTime went
        // forwards, but by far less than real time.
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(10 * SECOND, &[(1, 100, 100)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(300),
            &sample(250 * SECOND, &[(1, 200, 200)]),
        );
        assert!(observation.restarted(), "{observation:?}");
        assert_eq!(observation.interfaces[0].inbound, CounterRate::NoBaseline);
    }

    #[test]
    fn uptime_wrapping_past_497_days_is_not_a_restart() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        let before = u32::MAX - 2 * SECOND + 1; // 2 s before the wrap
        tracker.handle_sample(t0, &sample(before, &[(1, 0, 0)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(5),
            &sample(3 * SECOND, &[(1, 5_000, 0)]),
        );
        assert_eq!(
            observation.uptime,
            UptimeStep::Continuous {
                interval: Duration::from_secs(5),
                uptime_wrapped: true
            }
        );
        assert_eq!(
            measured(observation.interfaces[0].inbound),
            (8_000.0, false)
        );
    }

    #[test]
    fn uptime_running_ahead_of_real_time_is_inconsistent() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(1, 0, 0)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(10),
            &sample(10_000 * SECOND, &[(1, 5_000, 0)]),
        );
        assert!(matches!(
            observation.uptime,
            UptimeStep::Inconsistent { .. }
        ));
        assert!(!observation.restarted());
        assert_eq!(observation.interfaces[0].inbound, CounterRate::NoBaseline);
    }

    #[test]
    fn readings_within_one_tick_keep_the_old_baseline() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(1, 0, 0)]));
        let too_soon = tracker.handle_sample(
            t0 + Duration::from_millis(4),
            &sample(SECOND, &[(1, 10, 0)]),
        );
        assert_eq!(too_soon.uptime, UptimeStep::TooSoon);
        assert_eq!(too_soon.interfaces[0].inbound, CounterRate::NoBaseline);
        let later = tracker.handle_sample(
            t0 + Duration::from_secs(1),
            &sample(2 * SECOND, &[(1, 1000, 0)]),
        );
        assert_eq!(measured(later.interfaces[0].inbound), (8000.0, false));
    }

    #[test]
    fn a_new_interface_has_no_baseline_and_a_dropped_one_is_forgotten() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(1, 0, 0)]));
        let observation = tracker.handle_sample(
            t0 + Duration::from_secs(1),
            &sample(2 * SECOND, &[(2, 100, 100)]),
        );
        assert_eq!(observation.interfaces[0].index, 2);
        assert_eq!(observation.interfaces[0].inbound, CounterRate::NoBaseline);
        let again = tracker.handle_sample(
            t0 + Duration::from_secs(2),
            &sample(3 * SECOND, &[(1, 100, 100), (2, 200, 100)]),
        );
        assert_eq!(again.interfaces[0].inbound, CounterRate::NoBaseline);
        assert_eq!(measured(again.interfaces[1].inbound), (800.0, false));
    }

    #[test]
    fn readings_further_apart_than_the_uptime_period_rebaseline() {
        let t0 = origin();
        let mut tracker = RateTracker::new(config());
        tracker.handle_sample(t0, &sample(SECOND, &[(1, 0, 0)]));
        let observation = tracker.handle_sample(
            t0 + UPTIME_PERIOD + Duration::from_secs(1),
            &sample(3 * SECOND, &[(1, 100, 0)]),
        );
        assert_eq!(observation.uptime, UptimeStep::Stale);
        assert!(!observation.restarted());
        assert_eq!(observation.interfaces[0].inbound, CounterRate::NoBaseline);
    }

    /// The counter arithmetic over a grid of values around every edge: the delta is always
    /// the modular difference, wrapped exactly when the value went down, and a rate is
    /// given exactly when it is plausible.
    #[test]
    fn counter_rate_over_a_grid_of_edges() {
        let edges: Vec<u64> = [0, 1, 2, 1000, 1 << 32, 1 << 53, 1 << 63, u64::MAX - 1000]
            .into_iter()
            .chain([u64::MAX - 1, u64::MAX])
            .flat_map(|v: u64| [v, v.wrapping_add(1), v.wrapping_sub(1)])
            .collect();
        let intervals = [
            Duration::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(300),
            Duration::from_secs(86_400),
        ];
        let config = config();
        for &old in &edges {
            for &new in &edges {
                for &interval in &intervals {
                    let rate = counter_rate(old, new, interval, &config);
                    let octets = new.wrapping_sub(old);
                    let expected = octets as f64 * 8.0 / interval.as_secs_f64();
                    if expected > config.max_plausible_bps as f64 {
                        assert_eq!(rate, CounterRate::Discontinuity, "{old} → {new}");
                    } else {
                        let (bps, wrapped) = measured(rate);
                        assert!(bps >= 0.0);
                        assert_eq!(bps, expected, "{old} → {new} over {interval:?}");
                        assert_eq!(wrapped, new < old, "{old} → {new}");
                    }
                }
            }
        }
    }

    /// sysUpTime over a grid: readings taken `elapsed` apart of an agent that kept running
    /// are continuous (with or without the 2^32 wrap) for any starting value, and readings
    /// of an agent that restarted `since` before the second reading are restarts whenever
    /// its old uptime was longer than the slack.
    #[test]
    fn uptime_classification_over_a_grid() {
        let config = config();
        let starts: [u32; 8] = [
            0,
            1,
            10 * SECOND,
            1 << 31,
            u32::MAX - 100 * SECOND,
            u32::MAX - SECOND,
            u32::MAX - 1,
            u32::MAX,
        ];
        let elapsed_secs = [1u64, 7, 60, 300, 3_600, 86_400];
        let jitters_ms: [i64; 4] = [-900, 0, 40, 2_000];
        for &before in &starts {
            for &secs in &elapsed_secs {
                for &jitter in &jitters_ms {
                    // Our clock measures `secs` plus the latency jitter; the agent `secs`.
                    let elapsed =
                        Duration::from_millis((secs * 1000).saturating_add_signed(jitter));
                    let advance = (secs * TICKS_PER_SECOND) as u32;
                    let after = before.wrapping_add(advance);
                    let step = classify_uptime(before, after, elapsed, &config);
                    assert_eq!(
                        step,
                        UptimeStep::Continuous {
                            interval: Duration::from_secs(secs),
                            uptime_wrapped: after < before,
                        },
                        "{before} + {secs} s (jitter {jitter} ms)"
                    );
                }
            }
        }
        for &old_uptime_secs in &[10u64, 60, 3_600, 1 << 20] {
            for &secs in &elapsed_secs {
                for since in [0, secs / 2, secs] {
                    let before = (old_uptime_secs * TICKS_PER_SECOND) as u32;
                    let after = (since * TICKS_PER_SECOND) as u32;
                    let step = classify_uptime(before, after, Duration::from_secs(secs), &config);
                    let slack = config.slack(Duration::from_secs(secs));
                    if Duration::from_secs(old_uptime_secs) > slack {
                        assert_eq!(
                            step,
                            UptimeStep::Restarted { before, after },
                            "up {old_uptime_secs} s, restarted {since} s before a reading {secs} s later"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn oper_status_numbers_round_trip_and_unknown_numbers_are_refused() {
        for value in 1..=7 {
            let status = OperStatus::from_mib(value).unwrap();
            assert_eq!(status.to_mib(), value);
        }
        for value in [i64::MIN, -1, 0, 8, 1000, i64::MAX] {
            assert_eq!(OperStatus::from_mib(value), None, "{value}");
        }
    }
}
