//! Why a booking was not admitted, in terms an engineer can act on: which link direction
//! or MCU is full, over which interval, which bookings hold it, and the earliest start at
//! which the same booking (same length, same sites) fits.

use std::fmt;
use std::time::SystemTime;

use topology::{Kbps, LinkIx, NodeId, NodeIx};

use super::booking::BookingId;
use super::plan::{Direction, Resource};
use super::time::show;
use super::words::Priority;

/// How many holders a message lists per resource; the data carries them all.
const HOLDERS_SHOWN: usize = 6;

/// How many full resources a message lists; the data carries them all.
const CONFLICTS_SHOWN: usize = 8;

/// A refused admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The booking refused.
    pub booking: BookingId,
    /// Its title.
    pub title: String,
    /// Its priority.
    pub priority: Priority,
    /// The window asked for: `[test start, end)`.
    pub from: SystemTime,
    /// The end of that window.
    pub to: SystemTime,
    /// Every resource that does not have room, in resource order.
    pub conflicts: Vec<Conflict>,
    /// The earliest start (of the conference, not its test window) at or after the one
    /// asked for at which the booking fits as things stand; `None` if it fits at no time,
    /// because it alone needs more than some resource has.
    pub earliest_start: Option<SystemTime>,
    /// Whether preemption was asked for (and could not make room).
    pub preemption_tried: bool,
}

/// One resource without room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The resource.
    pub resource: Resource,
    /// The resource by name.
    pub what: Bottleneck,
    /// What may be reserved on it: kbit/s for a link direction, ports for an MCU.
    pub limit: u64,
    /// The most already reserved at any instant of the interval.
    pub held: u64,
    /// What the booking needs on it.
    pub wanted: u64,
    /// Where the interval without room starts: the first instant of the window at which
    /// `held + wanted` exceeds the limit.
    pub from: SystemTime,
    /// Where it ends: the end of the last such stretch.
    pub to: SystemTime,
    /// The bookings holding the resource during those stretches.
    pub holders: Vec<Holder>,
}

/// A resource by name, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bottleneck {
    /// One direction of a link.
    Link {
        /// The link.
        link: LinkIx,
        /// Its upper end.
        upper: NodeId,
        /// Its lower end.
        lower: NodeId,
        /// The direction.
        direction: Direction,
    },
    /// An MCU.
    Mcu {
        /// Where it is.
        node: NodeIx,
        /// Its node's id.
        id: NodeId,
    },
}

/// A booking holding a full resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The booking.
    pub booking: BookingId,
    /// Its title.
    pub title: String,
    /// Its priority.
    pub priority: Priority,
    /// What it holds there.
    pub amount: u64,
    /// Its window's start (test start).
    pub from: SystemTime,
    /// Its window's end.
    pub to: SystemTime,
    /// Whether the refused booking could preempt it: lower priority and not yet in its
    /// test window.
    pub preemptible: bool,
}

impl Bottleneck {
    /// An amount on this resource, with its unit.
    pub fn amount(&self, amount: u64) -> String {
        match self {
            Bottleneck::Link { .. } => Kbps(amount).to_string(),
            Bottleneck::Mcu { .. } => format!("{amount} ports"),
        }
    }
}

impl fmt::Display for Bottleneck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bottleneck::Link {
                upper,
                lower,
                direction: Direction::Down,
                ..
            } => write!(f, "link {upper} → {lower}"),
            Bottleneck::Link {
                upper,
                lower,
                direction: Direction::Up,
                ..
            } => write!(f, "link {lower} → {upper}"),
            Bottleneck::Mcu { id, .. } => write!(f, "MCU {id}"),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = |a| self.what.amount(a);
        write!(
            f,
            "{}: {} reservable, {} held from {} to {}",
            self.what,
            amount(self.limit),
            amount(self.held),
            show(self.from),
            show(self.to),
        )?;
        if self.holders.is_empty() {
            write!(f, " (by no booking)")?;
        } else {
            write!(f, " by ")?;
            for (i, holder) in self.holders.iter().take(HOLDERS_SHOWN).enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(
                    f,
                    "{} \"{}\" ({}, {})",
                    holder.booking,
                    holder.title,
                    holder.priority,
                    amount(holder.amount)
                )?;
            }
            if self.holders.len() > HOLDERS_SHOWN {
                write!(f, " and {} more", self.holders.len() - HOLDERS_SHOWN)?;
            }
        }
        write!(f, "; this booking needs {}", amount(self.wanted))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "booking {} \"{}\" ({}) does not fit in [{}, {}):",
            self.booking,
            self.title,
            self.priority,
            show(self.from),
            show(self.to)
        )?;
        for conflict in self.conflicts.iter().take(CONFLICTS_SHOWN) {
            write!(f, "\n- {conflict}")?;
        }
        if self.conflicts.len() > CONFLICTS_SHOWN {
            let more = self.conflicts.len() - CONFLICTS_SHOWN;
            write!(f, "\n- and {more} more full links or MCUs")?;
        }
        if self.preemption_tried {
            write!(
                f,
                "\npreempting every booking of lower priority not yet testing would not make room"
            )?;
        }
        match self.earliest_start {
            Some(start) => write!(f, "\nthe same booking fits from {}", show(start)),
            None => write!(
                f,
                "\nthe same booking fits at no time: it alone needs more than a link's share or an MCU's ports"
            ),
        }
    }
}

impl std::error::Error for Refusal {}
