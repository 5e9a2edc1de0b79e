//! Refusals: which resources are full, over which interval, held by whom, and the
//! earliest start at which the same booking fits.

use std::borrow::Borrow;
use std::time::{Duration, SystemTime};

use topology::Network;

use super::{Ledger, Need, Preemption, Scheduler, Window};
use crate::conference::booking::BookingId;
use crate::conference::plan::Resource;
use crate::conference::refusal::{Bottleneck, Conflict, Holder, Refusal};
use crate::conference::timeline::{Blocked, Timeline};
use crate::conference::words::Priority;

impl<N: Borrow<Network>> Scheduler<N> {
    /// Explains why `needs` does not fit: the full resources and the earliest start.
    pub(super) fn refusal(
        &self,
        id: BookingId,
        needs: &[Need],
        Window {
            start,
            from,
            end: to,
        }: Window,
        preemption: Preemption,
        now: SystemTime,
    ) -> Refusal {
        let (title, priority, test_window) = self.entries.get(&id).map_or_else(
            || (String::new(), Default::default(), Duration::ZERO),
            |e| {
                (
                    e.booking.form.title.clone(),
                    e.booking.form.priority,
                    e.booking.form.test_window,
                )
            },
        );
        let conflicts = needs
            .iter()
            .filter_map(|need| self.conflict(need, from, to, priority, now))
            .collect();
        let lead = start.duration_since(from).unwrap_or(test_window);
        Refusal {
            booking: id,
            title,
            priority,
            from,
            to,
            conflicts,
            earliest_start: self
                .earliest(needs, from, to)
                .and_then(|at| at.checked_add(lead)),
            preemption_tried: preemption == Preemption::Allow,
        }
    }

    /// The conflict on one resource, if it has no room.
    fn conflict(
        &self,
        need: &Need,
        from: SystemTime,
        to: SystemTime,
        priority: Priority,
        now: SystemTime,
    ) -> Option<Conflict> {
        let empty = Ledger::default();
        let ledger = self.ledgers.get(&need.resource).unwrap_or(&empty);
        let full: Vec<_> = ledger
            .timeline
            .segments(from, to)
            .into_iter()
            .filter(|s| s.level.saturating_add(need.amount) > need.limit)
            .collect();
        let (first, last) = (full.first()?, full.last()?);
        let holders = ledger
            .overlapping(first.from, last.to)
            .filter(|(_, h)| full.iter().any(|s| h.from < s.to && s.from < h.to))
            .filter_map(|(holder, hold)| {
                let booking = &self.entries.get(&holder)?.booking;
                Some(Holder {
                    booking: holder,
                    title: booking.form.title.clone(),
                    priority: booking.form.priority,
                    amount: hold.amount,
                    from: hold.from,
                    to: hold.to,
                    preemptible: self.preemptible(holder, priority, now),
                })
            })
            .collect();
        Some(Conflict {
            resource: need.resource,
            what: self.bottleneck(need.resource),
            limit: need.limit,
            held: full.iter().map(|s| s.level).max().unwrap_or(0),
            wanted: need.amount,
            from: first.from,
            to: last.to,
            holders,
        })
    }

    /// The earliest window start at or after `from` at which `needs` fits for the same
    /// length; `None` if it never does.
    ///
    /// The resources are checked round-robin at a candidate start. One that is full
    /// somewhere in the window moves the start past its last full stretch (no earlier
    /// start can avoid it) and is checked again there; the search ends when every resource
    /// in a row has room at the same start. Each move passes a change point, so it ends.
    fn earliest(&self, needs: &[Need], from: SystemTime, to: SystemTime) -> Option<SystemTime> {
        if needs.iter().any(|n| n.amount > n.limit) {
            return None;
        }
        let timelines: Vec<(&Timeline, u64)> = needs
            .iter()
            .filter_map(|need| {
                let ledger = self.ledgers.get(&need.resource)?;
                Some((&ledger.timeline, need.limit - need.amount))
            })
            .collect();
        let length = to.duration_since(from).unwrap_or_default();
        let mut start = from;
        let (mut next, mut clear) = (0, 0);
        while clear < timelines.len() {
            let (timeline, room) = timelines[next];
            match timeline.blocked(start, start.checked_add(length)?, room) {
                None => {
                    clear += 1;
                    next = (next + 1) % timelines.len();
                }
                Some(Blocked::Until(at)) => {
                    start = at;
                    clear = 0;
                }
                Some(Blocked::Forever) => return None,
            }
        }
        Some(start)
    }

    /// A resource by name.
    fn bottleneck(&self, resource: Resource) -> Bottleneck {
        let network = self.network();
        match resource {
            Resource::Link { link, direction } => {
                let info = network.link(link);
                Bottleneck::Link {
                    link,
                    upper: network.node(info.upper).id,
                    lower: network.node(info.lower).id,
                    direction,
                }
            }
            Resource::Mcu(node) => Bottleneck::Mcu {
                node,
                id: network.node(node).id,
            },
        }
    }
}
