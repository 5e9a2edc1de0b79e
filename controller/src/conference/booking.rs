//! A booking and its life: requested → approved → scheduled → testing → live → ended, or
//! rejected, cancelled or preempted, with who made each change and when.
//!
//! Operators make the recorded changes (approve, reject, schedule, cancel; a preemption is
//! made by whoever scheduled the booking that took the room). Testing, live and ended are
//! not recorded: they follow from the clock, so a scheduled booking *is* testing from its
//! test start, live from its start and ended from its end, whatever `now` the caller
//! passes. [`Booking::history`] lists both kinds, the clock's marked as such.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::form::BookingForm;

/// A booking's number, given by the scheduler in filing order; written `#12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BookingId(pub u64);

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("#{}", self.0))
    }
}

/// Text that is not a booking number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad booking number `{0}` (write e.g. 12 or #12)")]
pub struct BadBookingId(pub String);

impl FromStr for BookingId {
    type Err = BadBookingId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        text.strip_prefix('#')
            .unwrap_or(text)
            .parse()
            .map(BookingId)
            .map_err(|_| BadBookingId(s.to_owned()))
    }
}

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Filed, not yet approved (已申请).
    Requested,
    /// Approved by the video-conference office, not yet placed (已批准).
    Approved,
    /// Placed: its bandwidth and MCU ports are held from its test start (已排定).
    Scheduled,
    /// In its test window (调试).
    Testing,
    /// Running (进行中).
    Live,
    /// Over (已结束).
    Ended,
    /// Turned down (未批准).
    Rejected,
    /// Withdrawn (已取消).
    Cancelled,
    /// Bumped by a conference of higher priority; can be placed again (被抢占).
    Preempted,
}

impl State {
    /// The word for messages and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Approved => "approved",
            State::Scheduled => "scheduled",
            State::Testing => "testing",
            State::Live => "live",
            State::Ended => "ended",
            State::Rejected => "rejected",
            State::Cancelled => "cancelled",
            State::Preempted => "preempted",
        }
    }

    /// Whether the booking holds bandwidth and ports in this state.
    pub const fn holds(self) -> bool {
        matches!(self, State::Scheduled | State::Testing | State::Live)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    /// An operator, by the name on their certificate.
    Operator(String),
    /// The clock: test windows opening, conferences starting and ending.
    Clock,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator(name) => f.pad(name),
            Actor::Clock => f.pad("(clock)"),
        }
    }
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Change {
    /// The state entered.
    pub state: State,
    /// Who.
    pub by: Actor,
    /// When.
    #[serde(with = "crate::health::rfc3339")]
    pub at: SystemTime,
    /// Why, where it needs saying (a rejection's reason, the booking that preempted it, a
    /// move to another time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A booking: the form as filed, where it is placed now and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Booking {
    /// Its number.
    pub id: BookingId,
    /// The form as filed; never changed.
    pub form: BookingForm,
    /// When it starts now: the form's start, unless it was moved.
    #[serde(with = "crate::health::rfc3339")]
    pub start: SystemTime,
    /// When it ends now.
    #[serde(with = "crate::health::rfc3339")]
    pub end: SystemTime,
    /// The recorded changes, oldest first; never empty.
    changes: Vec<Change>,
}

impl Booking {
    /// A booking filed now by `by`.
    pub(crate) fn filed(id: BookingId, form: BookingForm, by: &str, now: SystemTime) -> Booking {
        Booking {
            id,
            start: form.start,
            end: form.end,
            form,
            changes: vec![Change {
                state: State::Requested,
                by: Actor::Operator(by.to_owned()),
                at: now,
                note: None,
            }],
        }
    }

    /// A booking as a store kept it: its form, where it is placed and its recorded
    /// changes, oldest first. `None` when `changes` is empty (every booking was filed).
    pub fn restore(
        id: BookingId,
        form: BookingForm,
        start: SystemTime,
        end: SystemTime,
        changes: Vec<Change>,
    ) -> Option<Booking> {
        (!changes.is_empty()).then_some(Booking {
            id,
            form,
            start,
            end,
            changes,
        })
    }

    /// The recorded changes, oldest first (without those the clock makes; see
    /// [`history`](Self::history)).
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// When its bandwidth is held from: the test window before the start.
    pub fn test_start(&self) -> SystemTime {
        self.start
            .checked_sub(self.form.test_window)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The window it holds while scheduled: `[test start, end)`.
    pub fn window(&self) -> (SystemTime, SystemTime) {
        (self.test_start(), self.end)
    }

    /// The last recorded state.
    pub fn recorded(&self) -> State {
        self.changes.last().map_or(State::Requested, |c| c.state)
    }

    /// Where it stands at `now`: the recorded state, or for a scheduled booking the state
    /// the clock has moved it to.
    pub fn state(&self, now: SystemTime) -> State {
        match self.recorded() {
            State::Scheduled if now >= self.end => State::Ended,
            State::Scheduled if now >= self.start => State::Live,
            State::Scheduled if now >= self.test_start() => State::Testing,
            recorded => recorded,
        }
    }

    /// Every change up to `now`, oldest first: the recorded ones and, after the last
    /// scheduling, those the clock made.
    pub fn history(&self, now: SystemTime) -> Vec<Change> {
        let mut history = self.changes.clone();
        if self.recorded() == State::Scheduled {
            let clock = [
                (State::Testing, self.test_start()),
                (State::Live, self.start),
                (State::Ended, self.end),
            ];
            let scheduled_at = self.changes.last().map_or(self.start, |c| c.at);
            history.extend(
                clock
                    .into_iter()
                    .filter(|&(_, at)| at <= now)
                    .map(|(state, at)| Change {
                        state,
                        by: Actor::Clock,
                        at: at.max(scheduled_at),
                        note: None,
                    }),
            );
        }
        history
    }

    /// Records a change.
    pub(crate) fn record(&mut self, state: State, by: Actor, at: SystemTime, note: Option<String>) {
        self.changes.push(Change {
            state,
            by,
            at,
            note,
        });
    }
}

/// What an operator (or a preempting booking) asks of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Approve a request.
    Approve,
    /// Turn it down.
    Reject,
    /// Place it (again) and hold its bandwidth and ports.
    Schedule,
    /// Withdraw it; a scheduled, testing or live booking gives its bandwidth back.
    Cancel,
    /// Bump it for a booking of higher priority.
    Preempt,
}

impl Action {
    /// The verb for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approved",
            Action::Reject => "rejected",
            Action::Schedule => "scheduled",
            Action::Cancel => "cancelled",
            Action::Preempt => "preempted",
        }
    }

    /// The states this action applies to.
    pub const fn applies_to(self) -> &'static [State] {
        match self {
            Action::Approve => &[State::Requested],
            Action::Reject => &[State::Requested, State::Approved],
            Action::Schedule => &[State::Approved, State::Preempted, State::Scheduled],
            Action::Cancel => &[
                State::Requested,
                State::Approved,
                State::Scheduled,
                State::Testing,
                State::Live,
                State::Preempted,
            ],
            Action::Preempt => &[State::Scheduled],
        }
    }
}

/// An action the booking's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TransitionError {
    /// The booking.
    pub booking: BookingId,
    /// Its state when asked.
    pub state: State,
    /// What was asked.
    pub action: Action,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Vec<&str> = self
            .action
            .applies_to()
            .iter()
            .map(|s| s.as_str())
            .collect();
        write!(
            f,
            "booking {} is {}: it cannot be {} (only a booking that is {} can)",
            self.booking,
            self.state,
            self.action.as_str(),
            allowed.join(" or ")
        )
    }
}

/// Whether `action` may be taken on `booking` at `now`.
pub(crate) fn allow(
    booking: &Booking,
    action: Action,
    now: SystemTime,
) -> Result<(), TransitionError> {
    let state = booking.state(now);
    if action.applies_to().contains(&state) {
        Ok(())
    } else {
        Err(TransitionError {
            booking: booking.id,
            state,
            action,
        })
    }
}
