//! The booking desk: the conference [`Scheduler`] kept in step with the store.
//!
//! The store is the record; the scheduler is rebuilt from it. A [`Desk`] holds a scheduler
//! and the store's bookings generation it was built at
//! ([`Tx::bookings_generation`]). Every order (file, approve, reject, cancel, schedule,
//! preempt) runs inside one `IMMEDIATE` store transaction: the desk first catches up with
//! whatever another process (the command line next to a running server) committed, then
//! acts on its scheduler, then writes the booking — and any booking it preempted — with a
//! change-log entry each. The answer is given only after the commit, so what is acknowledged
//! survives `kill -9`. If the transaction fails, the desk forgets its scheduler and rebuilds
//! it from the store on its next use, so memory never runs ahead of the record.
//!
//! Rebuilding restores each booking as it was recorded ([`Scheduler::restore`]): its form,
//! its window, its changes with their actors and times, and — if its last recorded state is
//! scheduled — its hold, without admitting it a second time (an admission that was
//! acknowledged stays admitted even if the limits were since made tighter).
//!
//! Times are kept to the millisecond, as the store keeps them, so the scheduler rebuilt
//! after a restart is the one that answered before it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use topology::{LinkIx, Network, NodeId, Problems, SourceText};

use crate::conference::{
    Booking, BookingForm, BookingId, ConfigError, FormProblem, Placed, Preemption, Scheduler,
    SchedulerConfig, SchedulerError, State,
};
use crate::store::{Store, StoreError, Tx};

/// What an operator asks of the desk.
#[derive(Debug, Clone)]
pub enum Order {
    /// File a booking form (TOML); `name` is what its problems are reported against.
    File {
        /// The file name for problems (`form.toml`, `POST /v1/conferences`).
        name: String,
        /// The form's text.
        text: String,
    },
    /// Approve a request.
    Approve(BookingId),
    /// Turn a request down, with a reason (may be empty).
    Reject(BookingId, String),
    /// Withdraw a booking.
    Cancel(BookingId),
    /// Place a booking at `start` (or where it is); with [`Preemption::Allow`] bookings of
    /// lower priority may be bumped.
    Schedule(BookingId, Option<SystemTime>, Preemption),
}

impl Order {
    /// The change-log `what` of the booking acted on.
    fn what(&self) -> &'static str {
        match self {
            Order::File { .. } => "file booking",
            Order::Approve(_) => "approve booking",
            Order::Reject(..) => "reject booking",
            Order::Cancel(_) => "cancel booking",
            Order::Schedule(..) => "schedule booking",
        }
    }
}

/// What an order did.
#[derive(Debug, Clone)]
pub struct Done {
    /// The booking acted on, as it is now.
    pub booking: Booking,
    /// Where a schedule order placed it.
    pub placed: Option<Placed>,
    /// The bookings it preempted, as they are now.
    pub preempted: Vec<Booking>,
}

/// Why an order was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The form does not read, or does not lay out on the network: each problem at its line.
    #[error("{0}")]
    Form(Problems<FormProblem>),
    /// The scheduler refused (no room, wrong state, unknown booking…).
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// The store failed; nothing was done.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The scheduler and the store generation it reflects.
#[derive(Debug)]
pub struct Desk {
    scheduler: Scheduler,
    /// The store's bookings generation the scheduler was built at; `None` when it must be
    /// rebuilt before use.
    generation: Option<u64>,
}

impl Desk {
    /// A desk over `network` that has read nothing yet.
    pub fn new(network: Network) -> Result<Desk, ConfigError> {
        Ok(Desk {
            scheduler: Scheduler::new(network, SchedulerConfig::default())?,
            generation: None,
        })
    }

    /// A desk over `network` with every booking `store` holds.
    pub fn open(network: Network, store: &Store) -> Result<Desk, DeskError> {
        let mut desk = Desk::new(network).map_err(|e| StoreError::Invalid {
            what: format!("conference limits: {e}"),
        })?;
        store.read(|tx| desk.catch_up(tx))?;
        Ok(desk)
    }

    /// The scheduler as the store has it now (rebuilt first if the store moved on).
    pub fn current(&mut self, store: &Store) -> Result<&Scheduler, StoreError> {
        store.read(|tx| self.catch_up(tx))?;
        Ok(&self.scheduler)
    }

    /// Rebuilds the scheduler from `tx` unless it is current.
    fn catch_up(&mut self, tx: &Tx<'_>) -> Result<(), StoreError> {
        let generation = tx.bookings_generation()?;
        if self.generation == Some(generation) {
            return Ok(());
        }
        let mut scheduler = Scheduler::new(
            self.scheduler.network().clone(),
            self.scheduler.config().clone(),
        )
        .map_err(|e| StoreError::Invalid {
            what: format!("conference limits: {e}"),
        })?;
        for record in tx.bookings()? {
            let id = record.booking.id;
            if let Err(err) = scheduler.restore(record.booking) {
                tracing::warn!(booking = %id, %err, "a stored booking cannot be restored");
            }
        }
        self.scheduler = scheduler;
        self.generation = Some(generation);
        Ok(())
    }

    /// Carries out `order` for `actor` (the name the booking's history shows) at `now`, and
    /// records it in the store as `who` (the change log's `operator:<login>` or
    /// `local:<user>`). Returns once the store has committed it.
    pub fn order(
        &mut self,
        store: &Store,
        order: Order,
        actor: &str,
        who: &str,
        now: SystemTime,
    ) -> Result<Done, DeskError> {
        let now = to_millisecond(now);
        let answer = store.write_at(now, |tx| {
            self.catch_up(tx)?;
            // From here the scheduler may change: until the commit says otherwise, it is
            // ahead of the store.
            self.generation = None;
            // Bookings over by now hold nothing any more: a long-running controller's
            // ledgers keep only the present and the future (the records stay).
            self.scheduler.release_ended(now);
            let done = match self.act(tx, &order, actor, who, now) {
                Ok(done) => done,
                Err(DeskError::Store(err)) => return Err(err),
                Err(refused) => return Ok((Err(refused), tx.bookings_generation()?)),
            };
            Ok((Ok(done), tx.bookings_generation()?))
        });
        match answer {
            Ok((done, generation)) => {
                self.generation = Some(generation);
                done
            }
            Err(err) => Err(DeskError::Store(err)),
        }
    }

    fn act(
        &mut self,
        tx: &mut Tx<'_>,
        order: &Order,
        actor: &str,
        who: &str,
        now: SystemTime,
    ) -> Result<Done, DeskError> {
        let scheduler = &mut self.scheduler;
        let mut placed = None;
        let id = match order {
            Order::File { name, text } => {
                let source = SourceText::new(name.as_str(), text);
                let (form, _) =
                    BookingForm::parse_and_plan(&source, scheduler.network(), scheduler.config())
                        .map_err(DeskError::Form)?;
                let id = scheduler.submit(form, actor, now)?;
                let booking = scheduler
                    .booking(id)
                    .ok_or(SchedulerError::UnknownBooking(id))?;
                tx.file_booking(booking, text, who)?;
                id
            }
            Order::Approve(id) => {
                scheduler.approve(*id, actor, now)?;
                *id
            }
            Order::Reject(id, reason) => {
                scheduler.reject(*id, reason, actor, now)?;
                *id
            }
            Order::Cancel(id) => {
                scheduler.cancel(*id, actor, now)?;
                *id
            }
            Order::Schedule(id, start, preemption) => {
                let start = start.map(to_millisecond);
                placed = Some(scheduler.schedule(*id, start, *preemption, actor, now)?);
                *id
            }
        };
        let booking = scheduler
            .booking(id)
            .cloned()
            .ok_or(SchedulerError::UnknownBooking(id))?;
        if !matches!(order, Order::File { .. }) {
            tx.update_booking(&booking, who, order.what())?;
        }
        let mut preempted = Vec::new();
        for bumped in placed.iter().flat_map(|p| &p.preempted) {
            if let Some(other) = scheduler.booking(*bumped) {
                tx.update_booking(other, who, "preempt booking")?;
                preempted.push(other.clone());
            }
        }
        Ok(Done {
            booking,
            placed,
            preempted,
        })
    }
}

/// The cities (and other nodes) taking part in a conference that is live at `now`: every
/// main venue, every site a stream reaches and every MCU a stream runs from or cascades
/// through, of every booking [live](State::Live) at `now`.
pub fn live_sites(scheduler: &Scheduler, now: SystemTime) -> BTreeSet<NodeId> {
    let network = scheduler.network();
    let mut sites = BTreeSet::new();
    for booking in scheduler.bookings() {
        if booking.state(now) != State::Live {
            continue;
        }
        sites.insert(booking.form.main_venue);
        if let Some(plan) = scheduler.plan(booking.id) {
            for stream in &plan.streams {
                sites.insert(network.node(stream.to).id);
                sites.insert(network.node(stream.mcu).id);
            }
        }
    }
    sites
}

/// A tree link as written `dc:14-dc:1401` (upper, then lower) or by its lower node alone
/// (`dc:1401`: the link above it).
pub fn parse_link(network: &Network, text: &str) -> Result<LinkIx, String> {
    let text = text.trim();
    let lower_only = |lower: &str| -> Option<LinkIx> {
        let node: NodeId = lower.parse().ok()?;
        network.uplink(network.lookup(&node)?)
    };
    let mut candidates: Vec<(usize, char)> =
        text.char_indices().filter(|&(_, c)| c == '-').collect();
    candidates.push((text.len(), ' '));
    for (at, _) in candidates {
        let (upper, lower) = if at == text.len() {
            ("", text)
        } else {
            (&text[..at], &text[at + 1..])
        };
        let Some(link) = lower_only(lower) else {
            continue;
        };
        if upper.is_empty() {
            return Ok(link);
        }
        let Ok(upper_id) = upper.parse::<NodeId>() else {
            continue;
        };
        if network.node(network.link(link).upper).id == upper_id {
            return Ok(link);
        }
    }
    Err(format!(
        "`{text}` is not a link of the network (write it as upper-lower, e.g. dc:14-dc:1401, or \
         name the lower node)"
    ))
}

/// A link as written: `dc:14-dc:1401`.
pub fn link_name(network: &Network, link: LinkIx) -> String {
    let link = network.link(link);
    format!(
        "{}-{}",
        network.node(link.upper).id,
        network.node(link.lower).id
    )
}

/// A time as RFC 3339 (`2027-01-10T01:00:00Z`, `2027-01-10T09:00:00+08:00`) or as forms
/// write Beijing time (`2027-01-10 09:00`); `field` names it in the refusal.
pub fn parse_time(field: &'static str, text: &str) -> Result<SystemTime, String> {
    crate::conference::time::instant(field, &toml::Value::String(text.to_owned()))
        .map_err(|e| e.to_string())
}

/// A time cut to the millisecond, as the store keeps times.
pub fn to_millisecond(at: SystemTime) -> SystemTime {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => {
            UNIX_EPOCH + Duration::from_millis(since.as_millis().try_into().unwrap_or(u64::MAX))
        }
        Err(_) => at,
    }
}
