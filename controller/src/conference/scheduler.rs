//! The scheduler: bookings, what each holds, and admission control over time.
//!
//! Every resource a conference uses — each direction of each link, each MCU — has a
//! [`Timeline`] of what is reserved on it and the holds it is made of, by start. A booking
//! is admitted only if, at every instant of `[test start, end)`, every resource it needs
//! stays within its limit with it added: a link direction within its video share, an MCU
//! within its ports. A booking that does not fit is refused with a [`Refusal`] that names
//! the full resources, the intervals, the holders and the earliest start that fits.
//!
//! Preemption is asked for explicitly. It then bumps bookings of strictly lower priority
//! that hold a full resource during the window and have not yet entered their test window,
//! lowest priority first and among equals the latest filed first, and then gives back any
//! it turned out not to need, so no booking is bumped without cause. Equal or higher
//! priority is never preempted. If bumping every candidate would not make room, nothing is
//! bumped.
//!
//! The operations, each refused with a [`SchedulerError`] that says why: [`submit`]
//! (lay out and file), [`approve`], [`reject`], [`schedule`] (place, move or re-place,
//! optionally preempting), [`check`] (what scheduling would answer, changing nothing),
//! [`cancel`], and [`release_ended`]; and the queries behind `conf list/show/free`:
//! [`reserved`], [`peak`], [`free`], [`holds`], [`timeline`].
//!
//! The scheduler is sans-IO: `now` is an argument, and it keeps no clock of its own.
//!
//! [`submit`]: Scheduler::submit
//! [`approve`]: Scheduler::approve
//! [`reject`]: Scheduler::reject
//! [`schedule`]: Scheduler::schedule
//! [`check`]: Scheduler::check
//! [`cancel`]: Scheduler::cancel
//! [`release_ended`]: Scheduler::release_ended
//! [`reserved`]: Scheduler::reserved
//! [`peak`]: Scheduler::peak
//! [`free`]: Scheduler::free
//! [`holds`]: Scheduler::holds
//! [`timeline`]: Scheduler::timeline

mod explain;
mod preempt;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use topology::{Kbps, LinkIx, Network};

use super::booking::{self, Action, Actor, Booking, BookingId, State, TransitionError};
use super::config::{ConfigError, SchedulerConfig};
use super::form::BookingForm;
use super::plan::{Direction, Plan, PlanError, Resource};
use super::refusal::Refusal;
use super::time::show;
use super::timeline::Timeline;
use super::words::Priority;

/// Whether scheduling may bump bookings of lower priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preemption {
    /// Refuse if there is no room.
    #[default]
    Refuse,
    /// Bump bookings of lower priority to make room.
    Allow,
}

/// A booking placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The booking.
    pub booking: BookingId,
    /// Its start.
    pub start: SystemTime,
    /// Its end.
    pub end: SystemTime,
    /// The bookings it preempted, in number order; now [`State::Preempted`].
    pub preempted: Vec<BookingId>,
}

/// One booking's hold on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// From (the booking's test start).
    pub from: SystemTime,
    /// To (its end), exclusive.
    pub to: SystemTime,
    /// kbit/s on a link direction, ports on an MCU.
    pub amount: u64,
}

/// What the scheduler refused to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// No booking has this number.
    #[error("no booking {0}")]
    UnknownBooking(BookingId),
    /// The booking's state does not allow the action.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The form cannot be laid out on the network.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// No room.
    #[error(transparent)]
    Refused(Box<Refusal>),
    /// A form whose conference ends at or before its start.
    #[error("the conference ends at or before its start")]
    EmptyWindow,
    /// A start so late that the end cannot be represented.
    #[error("a start at {} is out of range", show(*start))]
    OutOfRange {
        /// The start asked for.
        start: SystemTime,
    },
    /// A booking restored under a number already on the books.
    #[error("booking {0} is already on the books")]
    Taken(BookingId),
    /// A conference that would be over before `now`.
    #[error("the conference would end at {}, which is past", show(*end))]
    Past {
        /// When it would end.
        end: SystemTime,
    },
}

/// What one resource holds: the totals over time and the holds they are made of.
#[derive(Debug, Clone, Default)]
struct Ledger {
    timeline: Timeline,
    /// The holds by start, so those overlapping a window are found without a scan.
    holds: BTreeMap<(SystemTime, BookingId), Hold>,
    /// The longest hold ever taken here: a hold overlapping `[from, to)` starts at or
    /// after `from - longest`.
    longest: Duration,
}

impl Ledger {
    fn insert(&mut self, id: BookingId, hold: Hold) {
        self.timeline.add(hold.from, hold.to, hold.amount);
        let length = hold.to.duration_since(hold.from).unwrap_or_default();
        self.longest = self.longest.max(length);
        self.holds.insert((hold.from, id), hold);
    }

    /// Takes out the hold a booking took from `from`; `true` when nothing is held any more.
    fn remove(&mut self, id: BookingId, from: SystemTime) -> bool {
        if let Some(hold) = self.holds.remove(&(from, id)) {
            self.timeline.remove(hold.from, hold.to, hold.amount);
        }
        self.holds.is_empty()
    }

    /// The holds overlapping `[from, to)`, by start.
    fn overlapping(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> impl Iterator<Item = (BookingId, Hold)> + '_ {
        let earliest = from
            .checked_sub(self.longest)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.holds
            .range((earliest, BookingId(0))..(to, BookingId(0)))
            .map(|(&(_, id), &hold)| (id, hold))
            .filter(move |(_, hold)| hold.to > from)
    }
}

/// A booking and its layout.
#[derive(Debug, Clone)]
struct Entry {
    booking: Booking,
    plan: Plan,
    /// The window its plan is held over in the ledgers, if it is.
    held: Option<(SystemTime, SystemTime)>,
}

/// What a booking needs of one resource, and the resource's limit.
#[derive(Debug, Clone, Copy)]
struct Need {
    resource: Resource,
    amount: u64,
    limit: u64,
}

/// Where a booking would be placed: its start and the window it holds, `[from, end)`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: SystemTime,
    from: SystemTime,
    end: SystemTime,
}

/// The conference scheduler over one network.
///
/// `N` is anything that lends the network: `Network`, `&Network`, `Arc<Network>`.
#[derive(Debug, Clone)]
pub struct Scheduler<N = Network> {
    network: N,
    config: SchedulerConfig,
    entries: BTreeMap<BookingId, Entry>,
    ledgers: HashMap<Resource, Ledger>,
    next_id: u64,
}

impl<N: Borrow<Network>> Scheduler<N> {
    /// A scheduler with no bookings.
    pub fn new(network: N, config: SchedulerConfig) -> Result<Self, ConfigError> {
        config.check()?;
        Ok(Scheduler {
            network,
            config,
            entries: BTreeMap::new(),
            ledgers: HashMap::new(),
            next_id: 1,
        })
    }

    /// The network it schedules on.
    pub fn network(&self) -> &Network {
        self.network.borrow()
    }

    /// Its limits.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Files a form as a new request; lays it out on the network first.
    pub fn submit(
        &mut self,
        form: BookingForm,
        by: &str,
        now: SystemTime,
    ) -> Result<BookingId, SchedulerError> {
        if form.end <= form.start {
            return Err(SchedulerError::EmptyWindow);
        }
        if form.end <= now {
            return Err(SchedulerError::Past { end: form.end });
        }
        let plan = form.plan(self.network(), &self.config)?;
        let id = BookingId(self.next_id);
        self.next_id += 1;
        let booking = Booking::filed(id, form, by, now);
        let entry = Entry {
            booking,
            plan,
            held: None,
        };
        self.entries.insert(id, entry);
        Ok(id)
    }

    /// Approves a request.
    pub fn approve(
        &mut self,
        id: BookingId,
        by: &str,
        now: SystemTime,
    ) -> Result<(), SchedulerError> {
        let entry = self.entry_for(id, Action::Approve, now)?;
        entry
            .booking
            .record(State::Approved, operator(by), now, None);
        Ok(())
    }

    /// Turns a request down.
    pub fn reject(
        &mut self,
        id: BookingId,
        reason: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<(), SchedulerError> {
        let entry = self.entry_for(id, Action::Reject, now)?;
        let note = (!reason.trim().is_empty()).then(|| reason.trim().to_owned());
        entry
            .booking
            .record(State::Rejected, operator(by), now, note);
        Ok(())
    }

    /// Withdraws a booking; what it holds is given back.
    pub fn cancel(
        &mut self,
        id: BookingId,
        by: &str,
        now: SystemTime,
    ) -> Result<(), SchedulerError> {
        self.entry_for(id, Action::Cancel, now)?;
        self.release(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry
                .booking
                .record(State::Cancelled, operator(by), now, None);
        }
        Ok(())
    }

    /// Places an approved or preempted booking, or moves a scheduled one that is not yet
    /// testing: at `start` if given (same length), else where it is. Admitted only if it
    /// fits; with [`Preemption::Allow`], bookings of lower priority are bumped to make room.
    /// A refused move leaves the booking where it was.
    pub fn schedule(
        &mut self,
        id: BookingId,
        start: Option<SystemTime>,
        preemption: Preemption,
        by: &str,
        now: SystemTime,
    ) -> Result<Placed, SchedulerError> {
        let window = self.window_for(id, start, now)?;
        let Window { start, from, end } = window;
        let was_held = self.is_held(id);
        let needs = self.needs(id);
        self.release(id);
        let preempted = if self.fits(&needs, from, end) {
            Some(Vec::new())
        } else if preemption == Preemption::Allow {
            let priority = self.priority(id);
            self.make_room(priority, &needs, from, end, now)
        } else {
            None
        };
        let Some(preempted) = preempted else {
            let refusal = self.refusal(id, &needs, window, preemption, now);
            if was_held {
                self.hold(id);
            }
            return Err(SchedulerError::Refused(Box::new(refusal)));
        };
        self.bump(&preempted, id, by, now);
        if let Some(entry) = self.entries.get_mut(&id) {
            let moved = (entry.booking.start != start).then(|| {
                format!(
                    "moved from {} to {}",
                    show(entry.booking.start),
                    show(start)
                )
            });
            let bumped = (!preempted.is_empty()).then(|| {
                let ids: Vec<String> = preempted.iter().map(ToString::to_string).collect();
                format!("preempted {}", ids.join(", "))
            });
            let note = [moved, bumped]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            entry.booking.start = start;
            entry.booking.end = end;
            let note = (!note.is_empty()).then_some(note);
            entry
                .booking
                .record(State::Scheduled, operator(by), now, note);
        }
        self.hold(id);
        Ok(Placed {
            booking: id,
            start,
            end,
            preempted,
        })
    }

    /// What [`schedule`](Self::schedule) without preemption would answer, changing nothing:
    /// `Ok` if the booking fits at `start` (or where it is), its refusal otherwise.
    pub fn check(
        &mut self,
        id: BookingId,
        start: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), SchedulerError> {
        let window = self.window_for(id, start, now)?;
        let was_held = self.is_held(id);
        let needs = self.needs(id);
        self.release(id);
        let answer = if self.fits(&needs, window.from, window.end) {
            Ok(())
        } else {
            let refusal = self.refusal(id, &needs, window, Preemption::Refuse, now);
            Err(SchedulerError::Refused(Box::new(refusal)))
        };
        if was_held {
            self.hold(id);
        }
        answer
    }

    /// Takes back a booking as a store kept it (on start, replaying what was acknowledged):
    /// lays its form out again and, if its last recorded state is scheduled, holds its
    /// window as it was held when it was admitted, without admitting it again. Later
    /// bookings get numbers after it. Refused if the number is taken or the form no longer
    /// lays out on the network.
    pub fn restore(&mut self, booking: Booking) -> Result<(), SchedulerError> {
        let id = booking.id;
        if self.entries.contains_key(&id) {
            return Err(SchedulerError::Taken(id));
        }
        let plan = booking.form.plan(self.network(), &self.config)?;
        let scheduled = booking.recorded() == State::Scheduled;
        self.entries.insert(
            id,
            Entry {
                booking,
                plan,
                held: None,
            },
        );
        self.next_id = self.next_id.max(id.0.saturating_add(1));
        if scheduled {
            self.hold(id);
        }
        Ok(())
    }

    /// Gives back what bookings that ended by `now` hold, so the ledgers keep only the
    /// present and future; their records stay. Returns how many were released.
    pub fn release_ended(&mut self, now: SystemTime) -> usize {
        let ended: Vec<BookingId> = self
            .entries
            .values()
            .filter(|e| e.held.is_some_and(|(_, to)| to <= now))
            .map(|e| e.booking.id)
            .collect();
        for &id in &ended {
            self.release(id);
        }
        ended.len()
    }

    /// A booking.
    pub fn booking(&self, id: BookingId) -> Option<&Booking> {
        self.entries.get(&id).map(|e| &e.booking)
    }

    /// Every booking, in number order.
    pub fn bookings(&self) -> impl Iterator<Item = &Booking> + '_ {
        self.entries.values().map(|e| &e.booking)
    }

    /// A booking's layout: streams, links, MCUs.
    pub fn plan(&self, id: BookingId) -> Option<&Plan> {
        self.entries.get(&id).map(|e| &e.plan)
    }

    /// Whether a booking's plan is held in the ledgers now: from its scheduling until it is
    /// cancelled, preempted or [released after its end](Self::release_ended).
    pub fn is_held(&self, id: BookingId) -> bool {
        self.entries.get(&id).is_some_and(|e| e.held.is_some())
    }

    /// What may be reserved on a resource: kbit/s on a link direction, ports on an MCU.
    pub fn limit(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Link { link, .. } => self.config.link_limit(self.network(), link).0,
            Resource::Mcu(node) => self
                .config
                .mcu_ports(self.network(), node)
                .map_or(0, u64::from),
        }
    }

    /// What is reserved on a resource at an instant.
    pub fn reserved(&self, resource: Resource, at: SystemTime) -> u64 {
        self.ledgers
            .get(&resource)
            .map_or(0, |l| l.timeline.level_at(at))
    }

    /// The most reserved on a resource at any instant of `[from, to)`.
    pub fn peak(&self, resource: Resource, from: SystemTime, to: SystemTime) -> u64 {
        self.ledgers
            .get(&resource)
            .map_or(0, |l| l.timeline.peak(from, to))
    }

    /// What is left to book on one direction of a link throughout `[from, to)`.
    pub fn free(
        &self,
        link: LinkIx,
        direction: Direction,
        from: SystemTime,
        to: SystemTime,
    ) -> Kbps {
        let resource = Resource::Link { link, direction };
        Kbps(
            self.limit(resource)
                .saturating_sub(self.peak(resource, from, to)),
        )
    }

    /// Every resource something is held on, in resource order.
    pub fn resources(&self) -> Vec<Resource> {
        let mut resources: Vec<Resource> = self.ledgers.keys().copied().collect();
        resources.sort();
        resources
    }

    /// What is reserved on a resource over time.
    pub fn timeline(&self, resource: Resource) -> Option<&Timeline> {
        self.ledgers.get(&resource).map(|l| &l.timeline)
    }

    /// The bookings holding a resource, by start.
    pub fn holds(&self, resource: Resource) -> Vec<(BookingId, Hold)> {
        self.ledgers.get(&resource).map_or_else(Vec::new, |l| {
            l.holds.iter().map(|(&(_, id), &hold)| (id, hold)).collect()
        })
    }

    /// The entry of a booking the action may be taken on.
    fn entry_for(
        &mut self,
        id: BookingId,
        action: Action,
        now: SystemTime,
    ) -> Result<&mut Entry, SchedulerError> {
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(SchedulerError::UnknownBooking(id))?;
        booking::allow(&entry.booking, action, now)?;
        Ok(entry)
    }

    /// Where a booking would hold if placed at `start` (or where it is) at `now`.
    fn window_for(
        &mut self,
        id: BookingId,
        start: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<Window, SchedulerError> {
        let booking = &self.entry_for(id, Action::Schedule, now)?.booking;
        let start = start.unwrap_or(booking.start);
        let length = booking
            .end
            .duration_since(booking.start)
            .unwrap_or_default();
        let end = start
            .checked_add(length)
            .ok_or(SchedulerError::OutOfRange { start })?;
        if end <= now {
            return Err(SchedulerError::Past { end });
        }
        let from = start
            .checked_sub(booking.form.test_window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Window { start, from, end })
    }

    /// A booking's priority.
    fn priority(&self, id: BookingId) -> Priority {
        self.entries
            .get(&id)
            .map(|e| e.booking.form.priority)
            .unwrap_or_default()
    }

    /// What a booking needs, per resource, with the limits.
    fn needs(&self, id: BookingId) -> Vec<Need> {
        let Some(entry) = self.entries.get(&id) else {
            return Vec::new();
        };
        entry
            .plan
            .demands()
            .map(|(resource, amount)| Need {
                resource,
                amount,
                limit: self.limit(resource),
            })
            .collect()
    }

    /// Whether `needs` has room throughout `[from, to)`.
    fn fits(&self, needs: &[Need], from: SystemTime, to: SystemTime) -> bool {
        needs.iter().all(|need| !self.overloaded(need, from, to))
    }

    fn overloaded(&self, need: &Need, from: SystemTime, to: SystemTime) -> bool {
        self.peak(need.resource, from, to)
            .saturating_add(need.amount)
            > need.limit
    }

    /// Puts a booking's plan into the ledgers over its window (once).
    fn hold(&mut self, id: BookingId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.held.is_some() {
            return;
        }
        let (from, to) = entry.booking.window();
        entry.held = Some((from, to));
        for (resource, amount) in entry.plan.demands() {
            let hold = Hold { from, to, amount };
            self.ledgers.entry(resource).or_default().insert(id, hold);
        }
    }

    /// Takes a booking's plan out of the ledgers (if it is there).
    fn release(&mut self, id: BookingId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let Some((from, _)) = entry.held.take() else {
            return;
        };
        for (resource, _) in entry.plan.demands() {
            let emptied = self
                .ledgers
                .get_mut(&resource)
                .is_some_and(|ledger| ledger.remove(id, from));
            if emptied {
                self.ledgers.remove(&resource);
            }
        }
    }
}

/// An operator by name.
fn operator(name: &str) -> Actor {
    Actor::Operator(name.to_owned())
}
