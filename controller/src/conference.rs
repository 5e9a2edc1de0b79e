//! Video-conference scheduling (部省视频会议 and province–city conferences): bookings,
//! cascades and admission control over time.
//!
//! The national network carries the ministry's and the provinces' video conferences over
//! the same links as the business traffic. A conference that starts on a link without room
//! breaks up for everyone on it, so bandwidth and MCU ports are booked ahead and a booking
//! is admitted only if it fits at every instant of its window. This module is that
//! bookkeeping, and only that: the pure core the store, the admin API, the
//! `jinbao-controller conf` commands and the agents' enforcement are built on. It does no
//! I/O and reads no clock: `now` is always an argument.
//!
//! - [`form`]: the booking form (申请表) of the 2005 interim rules, read from TOML with
//!   every problem reported at its line.
//! - [`booking`]: a booking's states (requested → approved → scheduled → testing → live →
//!   ended, or rejected / cancelled / preempted) with who changed them and when.
//! - [`plan`]: where a conference's streams run — MCU cascades, links and directions, MCU
//!   ports.
//! - [`overhead`]: the reserved rate of a stream, bitrate plus IP/UDP/RTP and WireGuard
//!   overhead, with the formula and a table per packet size.
//! - [`timeline`]: what is reserved on one resource at every instant (change points).
//! - [`scheduler`]: admission control, refusals that explain themselves, preemption.
//! - [`config`], [`refusal`], [`time`], [`words`]: the limits (video share, MCU ports),
//!   the refusal's parts, form times (Beijing time), bitrates and priorities.
//!
//! ```no_run
//! # use std::time::SystemTime;
//! # use controller::conference::*;
//! # fn demo(network: &topology::Network, form_text: &str, now: SystemTime) -> Result<(), Box<dyn std::error::Error>> {
//! let source = topology::SourceText::new("form.toml", form_text);
//! let form = BookingForm::parse(&source)?;
//! let mut scheduler = Scheduler::new(network, SchedulerConfig::default())?;
//! let id = scheduler.submit(form, "wang.fang", now)?;
//! scheduler.approve(id, "li.ming", now)?;
//! match scheduler.schedule(id, None, Preemption::Refuse, "li.ming", now) {
//!     Ok(placed) => println!("{} placed from {:?}", placed.booking, placed.start),
//!     Err(SchedulerError::Refused(refusal)) => println!("{refusal}"),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(()) }
//! ```

pub mod booking;
pub mod config;
pub mod enforce;
pub mod form;
pub mod overhead;
pub mod plan;
pub mod refusal;
pub mod scheduler;
pub mod time;
pub mod timeline;
pub mod words;

pub use booking::{
    Action, Actor, BadBookingId, Booking, BookingId, Change, State, TransitionError,
};
pub use config::{ConfigError, SchedulerConfig};
pub use form::{BookingForm, FormProblem, Site};
pub use overhead::{Overhead, Underlay};
pub use plan::{
    Direction, Directions, LinkUse, McuUse, Plan, PlanError, Resource, Stream, StreamKind,
};
pub use refusal::{Bottleneck, Conflict, Holder, Refusal};
pub use scheduler::{Hold, Placed, Preemption, Scheduler, SchedulerError};
pub use timeline::{Segment, Timeline};
pub use words::{Bitrate, Priority};
