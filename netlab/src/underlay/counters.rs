//! Counters the lab's report reads: per link and direction, and for datagrams sent where the
//! scenario made no link.

use serde::Serialize;

use super::{Direction, DropReason};

/// What happened to the datagrams sent one way along a link.
///
/// Every datagram offered is counted once in `sent`, then once more when it is delivered or
/// dropped; those still in flight are [`in_flight`](Self::in_flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectionCounters {
    /// Datagrams offered to this direction.
    pub sent: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Datagrams delivered at the far end.
    pub delivered: u64,
    /// Their bytes.
    pub delivered_bytes: u64,
    /// Offered while the link was down.
    pub dropped_down: u64,
    /// Lost on the wire by the profile's loss.
    pub dropped_loss: u64,
    /// Tail-dropped by a full queue.
    pub dropped_queue_full: u64,
    /// Queued or on the wire when the link was cut.
    pub dropped_cut: u64,
    /// Bytes of all dropped datagrams.
    pub dropped_bytes: u64,
}

impl DirectionCounters {
    /// Datagrams dropped for `reason` (never [`DropReason::NoLink`]: those have no link).
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::NoLink => 0,
            DropReason::Down => self.dropped_down,
            DropReason::Loss => self.dropped_loss,
            DropReason::QueueFull => self.dropped_queue_full,
            DropReason::Cut => self.dropped_cut,
        }
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_down + self.dropped_loss + self.dropped_queue_full + self.dropped_cut
    }

    /// Datagrams queued or on the wire.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.delivered - self.dropped_total()
    }

    /// Bytes queued or on the wire.
    pub fn in_flight_bytes(&self) -> u64 {
        self.sent_bytes - self.delivered_bytes - self.dropped_bytes
    }

    pub(super) fn offer(&mut self, bytes: usize) {
        self.sent += 1;
        self.sent_bytes += bytes as u64;
    }

    pub(super) fn deliver(&mut self, bytes: usize) {
        self.delivered += 1;
        self.delivered_bytes += bytes as u64;
    }

    pub(super) fn drop_one(&mut self, reason: DropReason, bytes: usize) {
        match reason {
            DropReason::NoLink => return,
            DropReason::Down => self.dropped_down += 1,
            DropReason::Loss => self.dropped_loss += 1,
            DropReason::QueueFull => self.dropped_queue_full += 1,
            DropReason::Cut => self.dropped_cut += 1,
        }
        self.dropped_bytes += bytes as u64;
    }

    /// A cut: everything in flight is dropped.
    pub(super) fn cut(&mut self) {
        self.dropped_bytes += self.in_flight_bytes();
        self.dropped_cut += self.in_flight();
    }
}

/// Both directions of a link; `forward` runs from the first address given to
/// [`Underlay::connect`](super::Underlay::connect) to the second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounters {
    /// First address → second.
    pub forward: DirectionCounters,
    /// Second address → first.
    pub reverse: DirectionCounters,
}

impl LinkCounters {
    /// One direction's counters.
    pub fn direction(&self, direction: Direction) -> &DirectionCounters {
        match direction {
            Direction::Forward => &self.forward,
            Direction::Reverse => &self.reverse,
        }
    }

    pub(super) fn direction_mut(&mut self, direction: Direction) -> &mut DirectionCounters {
        match direction {
            Direction::Forward => &mut self.forward,
            Direction::Reverse => &mut self.reverse,
        }
    }

    /// Both directions added up.
    pub fn total(&self) -> DirectionCounters {
        let (f, r) = (&self.forward, &self.reverse);
        DirectionCounters {
            sent: f.sent + r.sent,
            sent_bytes: f.sent_bytes + r.sent_bytes,
            delivered: f.delivered + r.delivered,
            delivered_bytes: f.delivered_bytes + r.delivered_bytes,
            dropped_down: f.dropped_down + r.dropped_down,
            dropped_loss: f.dropped_loss + r.dropped_loss,
            dropped_queue_full: f.dropped_queue_full + r.dropped_queue_full,
            dropped_cut: f.dropped_cut + r.dropped_cut,
            dropped_bytes: f.dropped_bytes + r.dropped_bytes,
        }
    }
}

/// Datagrams sent between addresses the scenario did not link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoLinkCounters {
    /// How many.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
}
