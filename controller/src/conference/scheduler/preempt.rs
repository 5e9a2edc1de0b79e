//! Preemption: making room for a booking by bumping bookings of lower priority, and no
//! more of them than it needs.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::time::SystemTime;

use topology::Network;

use super::{Need, Scheduler, operator};
use crate::conference::booking::{BookingId, State};
use crate::conference::words::Priority;

impl<N: Borrow<Network>> Scheduler<N> {
    /// Bumps bookings of lower priority until `needs` fits in `[from, to)`, then gives
    /// back those not needed. Returns the bumped (released, not yet recorded), or `None`
    /// — with every booking held again — when even bumping all candidates is not enough.
    pub(super) fn make_room(
        &mut self,
        priority: Priority,
        needs: &[Need],
        from: SystemTime,
        to: SystemTime,
        now: SystemTime,
    ) -> Option<Vec<BookingId>> {
        let mut candidates: Vec<BookingId> = self
            .holders(needs, from, to)
            .into_iter()
            .filter(|&id| self.preemptible(id, priority, now))
            .collect();
        candidates.sort_by_key(|&id| {
            let priority = self.entries.get(&id).map(|e| e.booking.form.priority);
            (priority, std::cmp::Reverse(id))
        });
        let mut bumped = Vec::new();
        for id in candidates {
            if self.fits(needs, from, to) {
                break;
            }
            if self.holders(needs, from, to).contains(&id) {
                self.release(id);
                bumped.push(id);
            }
        }
        if !self.fits(needs, from, to) {
            for &id in &bumped {
                self.hold(id);
            }
            return None;
        }
        // Give back, most important first, every bump the booking fits without.
        let mut preempted = Vec::new();
        for id in bumped.into_iter().rev() {
            self.hold(id);
            if !self.fits(needs, from, to) {
                self.release(id);
                preempted.push(id);
            }
        }
        preempted.sort();
        Some(preempted)
    }

    /// Bookings holding, during `[from, to)`, a resource of `needs` that has no room.
    fn holders(&self, needs: &[Need], from: SystemTime, to: SystemTime) -> BTreeSet<BookingId> {
        needs
            .iter()
            .filter(|need| self.overloaded(need, from, to))
            .filter_map(|need| self.ledgers.get(&need.resource))
            .flat_map(|ledger| ledger.overlapping(from, to))
            .map(|(id, _)| id)
            .collect()
    }

    /// Whether a booking of `priority` may bump `id` at `now`.
    pub(super) fn preemptible(&self, id: BookingId, priority: Priority, now: SystemTime) -> bool {
        self.entries.get(&id).is_some_and(|e| {
            e.booking.form.priority < priority && e.booking.state(now) == State::Scheduled
        })
    }

    /// Records the preemption of bookings already released.
    pub(super) fn bump(
        &mut self,
        preempted: &[BookingId],
        by_booking: BookingId,
        by: &str,
        now: SystemTime,
    ) {
        let (title, priority) = match self.entries.get(&by_booking) {
            Some(e) => (e.booking.form.title.clone(), e.booking.form.priority),
            None => return,
        };
        for id in preempted {
            if let Some(entry) = self.entries.get_mut(id) {
                let note = format!("preempted by {by_booking} \"{title}\" ({priority})");
                entry
                    .booking
                    .record(State::Preempted, operator(by), now, Some(note));
            }
        }
    }
}
