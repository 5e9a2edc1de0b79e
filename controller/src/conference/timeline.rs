//! How much of one resource (a link direction or an MCU) is reserved at every instant.
//!
//! Admission asks one question many times: what is the most that is reserved at any
//! instant of `[from, to)`? The answer comes from a sorted map of *change points*: each key
//! is an instant where the reserved total changes and its value is the total from that
//! instant until the next key. Before the first key and from the last key on (whose total
//! is always 0) nothing is reserved.
//!
//! - The total *at* an instant is the value of the last key at or before it: `O(log n)`.
//! - The peak over `[from, to)` is the total at `from` and the values of the keys inside:
//!   `O(log n + k)`, `k` the change points inside the window. Conference windows are
//!   hours long and admission bounds how many bookings can overlap one, so `k` stays
//!   small however many bookings the map holds.
//! - Adding or removing a reservation splits at its two ends, adds to the keys inside and
//!   merges keys that no longer change anything: also `O(log n + k)`.
//!
//! Two traps of such maps are avoided by construction. Totals are stored per instant, not
//! as a set of distinct changes, so two bookings of equal size starting at the same instant
//! add up (ESnet OSCARS once lost one of them by collecting changes in a set). Intervals
//! are half-open, `[start, end)`: a booking ending at 10:00 and one starting at 10:00 never
//! count together.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::time::SystemTime;

/// The reserved total of one resource over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Change point → total reserved from there until the next change point. Canonical:
    /// no key repeats the total before it (0 before the first), so an empty timeline is an
    /// empty map and two timelines holding the same reservations are equal.
    steps: BTreeMap<SystemTime, u64>,
}

/// A stretch of time with one reserved total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where it starts (inclusive).
    pub from: SystemTime,
    /// Where it ends (exclusive).
    pub to: SystemTime,
    /// The total reserved throughout.
    pub level: u64,
}

/// Why a window does not fit yet, seen from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Some instant of the window is too full; no window starting before this instant can
    /// avoid it.
    Until(SystemTime),
    /// Never fits: the total stays above the room forever.
    Forever,
}

impl Timeline {
    /// Whether nothing is reserved, ever.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The change points and the total from each, in time order.
    pub fn steps(&self) -> impl Iterator<Item = (SystemTime, u64)> + '_ {
        self.steps.iter().map(|(&at, &level)| (at, level))
    }

    /// The total reserved at the instant `at`.
    pub fn level_at(&self, at: SystemTime) -> u64 {
        self.steps
            .range(..=at)
            .next_back()
            .map_or(0, |(_, &level)| level)
    }

    /// The highest total at any instant of `[from, to)`; 0 for an empty window.
    pub fn peak(&self, from: SystemTime, to: SystemTime) -> u64 {
        if from >= to {
            return 0;
        }
        // One descent: walk back from `to` over the change points inside the window to the
        // one at or before `from`, whose total holds at `from`.
        let mut peak = 0;
        for (&at, &level) in self.steps.range(..to).rev() {
            peak = peak.max(level);
            if at <= from {
                break;
            }
        }
        peak
    }

    /// The stretches of equal total covering `[from, to)`, in time order.
    pub fn segments(&self, from: SystemTime, to: SystemTime) -> Vec<Segment> {
        if from >= to {
            return Vec::new();
        }
        let mut segments = Vec::new();
        let mut current = Segment {
            from,
            to,
            level: self.level_at(from),
        };
        for (&at, &level) in self.steps.range((Excluded(from), Excluded(to))) {
            segments.push(Segment { to: at, ..current });
            current = Segment {
                from: at,
                to,
                level,
            };
        }
        segments.push(current);
        segments
    }

    /// Reserves `amount` more over `[from, to)`.
    pub fn add(&mut self, from: SystemTime, to: SystemTime, amount: u64) {
        self.change(from, to, |level| level.saturating_add(amount));
    }

    /// Gives back `amount` over `[from, to)`, which must have been added before.
    pub fn remove(&mut self, from: SystemTime, to: SystemTime, amount: u64) {
        self.change(from, to, |level| {
            debug_assert!(level >= amount, "removing more than was reserved");
            level.saturating_sub(amount)
        });
    }

    /// If some instant of `[from, to)` has more than `room` reserved, the end of the last
    /// such stretch: a window starting earlier contains it. `None` when the window fits.
    pub fn blocked(&self, from: SystemTime, to: SystemTime, room: u64) -> Option<Blocked> {
        if from >= to {
            return None;
        }
        let inside = self.steps.range((Excluded(from), Excluded(to))).rev();
        let last_over = inside
            .map(|(&at, &level)| (at, level))
            .find(|&(_, level)| level > room)
            .map(|(at, _)| at)
            .or_else(|| (self.level_at(from) > room).then_some(from))?;
        Some(
            self.steps
                .range((Excluded(last_over), Unbounded))
                .next()
                .map_or(Blocked::Forever, |(&at, _)| Blocked::Until(at)),
        )
    }

    /// Applies `f` to the total throughout `[from, to)` and restores the canonical form.
    fn change(&mut self, from: SystemTime, to: SystemTime, f: impl Fn(u64) -> u64) {
        if from >= to {
            return;
        }
        // Make both ends change points, keeping the totals they already have.
        let at_to = self.level_at(to);
        self.steps.entry(to).or_insert(at_to);
        let at_from = self.level_at(from);
        self.steps.entry(from).or_insert(at_from);
        let mut last = at_from;
        for (_, level) in self.steps.range_mut(from..to) {
            *level = f(*level);
            last = *level;
        }
        // Drop the ends again where they no longer change the total.
        if last == at_to {
            self.steps.remove(&to);
        }
        let before = self
            .steps
            .range(..from)
            .next_back()
            .map_or(0, |(_, &level)| level);
        if self.steps.get(&from) == Some(&before) {
            self.steps.remove(&from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(minutes: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + minutes * 60)
    }

    #[test]
    fn equal_bookings_at_the_same_instant_add_up() {
        let mut line = Timeline::default();
        line.add(t(0), t(60), 2_531);
        line.add(t(0), t(60), 2_531);
        assert_eq!(line.level_at(t(0)), 5_062);
        assert_eq!(line.peak(t(0), t(60)), 5_062);
        line.remove(t(0), t(60), 2_531);
        assert_eq!(line.peak(t(0), t(60)), 2_531);
        line.remove(t(0), t(60), 2_531);
        assert!(line.is_empty());
    }

    #[test]
    fn bookings_touching_end_to_start_never_count_together() {
        let mut line = Timeline::default();
        line.add(t(0), t(60), 10);
        line.add(t(60), t(120), 10);
        assert_eq!(line.peak(t(0), t(120)), 10);
        assert_eq!(line.level_at(t(60)), 10);
        assert_eq!(line.level_at(t(120)), 0);
        assert_eq!(line.peak(t(120), t(180)), 0);
        // The touching point carries nothing: one step from 0 to 10 and one back.
        assert_eq!(
            line.steps().collect::<Vec<_>>(),
            vec![(t(0), 10), (t(120), 0)]
        );
    }

    #[test]
    fn peaks_see_only_the_window() {
        let mut line = Timeline::default();
        line.add(t(0), t(30), 5);
        line.add(t(20), t(40), 7);
        assert_eq!(line.peak(t(0), t(20)), 5);
        assert_eq!(line.peak(t(0), t(21)), 12);
        assert_eq!(line.peak(t(30), t(40)), 7);
        assert_eq!(line.peak(t(40), t(50)), 0);
        assert_eq!(line.peak(t(10), t(10)), 0);
        let levels: Vec<u64> = line
            .segments(t(10), t(35))
            .iter()
            .map(|s| s.level)
            .collect();
        assert_eq!(levels, vec![5, 12, 7]);
    }

    #[test]
    fn blocked_names_the_end_of_the_last_full_stretch() {
        let mut line = Timeline::default();
        line.add(t(0), t(30), 5);
        line.add(t(20), t(40), 7);
        assert_eq!(line.blocked(t(0), t(60), 12), None);
        assert_eq!(line.blocked(t(0), t(60), 6), Some(Blocked::Until(t(40))));
        assert_eq!(line.blocked(t(0), t(25), 6), Some(Blocked::Until(t(30))));
        assert_eq!(line.blocked(t(5), t(10), 4), Some(Blocked::Until(t(20))));
        assert_eq!(line.blocked(t(40), t(60), 0), None);
    }

    /// A model as plain as it gets: the total at each minute of a short day.
    fn naive(holds: &[(u64, u64, u64)], minute: u64) -> u64 {
        holds
            .iter()
            .filter(|&&(from, to, _)| from <= minute && minute < to)
            .map(|&(_, _, amount)| amount)
            .sum()
    }

    proptest::proptest! {
        #[test]
        fn totals_peaks_and_blocks_match_a_minute_by_minute_model(
            ops in proptest::collection::vec((0u64..20, 1u64..8, 1u64..4, proptest::bool::ANY), 1..40),
            window in (0u64..24, 1u64..8, 0u64..8),
        ) {
            let mut line = Timeline::default();
            let mut holds: Vec<(u64, u64, u64)> = Vec::new();
            for (from, length, amount, remove) in ops {
                if remove && !holds.is_empty() {
                    let (from, to, amount) = holds.remove(from as usize % holds.len());
                    line.remove(t(from), t(to), amount);
                } else {
                    holds.push((from, from + length, amount));
                    line.add(t(from), t(from + length), amount);
                }
                for minute in 0..30 {
                    proptest::prop_assert_eq!(line.level_at(t(minute)), naive(&holds, minute));
                }
                // Canonical: every change point changes the total, and the last one is 0.
                let levels: Vec<u64> = line.steps().map(|(_, level)| level).collect();
                proptest::prop_assert!(levels.windows(2).all(|w| w[0] != w[1]));
                proptest::prop_assert!(levels.first() != Some(&0));
                proptest::prop_assert!(levels.last().is_none_or(|&l| l == 0));
            }
            let (from, length, room) = window;
            let peak = (from..from + length).map(|m| naive(&holds, m)).max().unwrap_or(0);
            proptest::prop_assert_eq!(line.peak(t(from), t(from + length)), peak);
            match line.blocked(t(from), t(from + length), room) {
                None => proptest::prop_assert!(peak <= room),
                Some(Blocked::Forever) => proptest::prop_assert!(false, "totals always end"),
                Some(Blocked::Until(until)) => {
                    proptest::prop_assert!(peak > room);
                    // No window starting before `until` fits.
                    for start in from..30 {
                        if t(start) >= until {
                            break;
                        }
                        let worst = (start..start + length).map(|m| naive(&holds, m)).max();
                        proptest::prop_assert!(worst.unwrap_or(0) > room, "start {start}");
                    }
                }
            }
        }
    }
}
