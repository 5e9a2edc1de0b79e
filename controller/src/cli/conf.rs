//! `jinbao-controller conf …`: video-conference bookings from the controller's own host.
//!
//! Like `node …` and `config …`, these work on the store directly (a running `serve` on the
//! same directory sees each change through the change log and carries the reservations to
//! the agents), and sign the change log and the booking's history as `local:<user>`. Each
//! change is one store transaction that first catches up with whatever the server
//! committed, so the two never admit over each other.
//!
//! A form that does not read prints `file:line: problem` lines and exits 1; a booking that
//! does not fit prints the scheduler's explanation (the full links or MCUs, the interval,
//! the bookings holding them, the earliest start that fits) and exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use controller::bookings::{self, Desk, DeskError, Done, Order};
use controller::conference::{Booking, BookingId, Preemption, Scheduler};
use controller::server::conferences::free_view;

use super::model::{Files, Model};
use super::serve::{local_user, open};
use super::table;

/// `conf …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfCommand {
    /// File a booking form (TOML; see `controller::conference::form` for the fields).
    Book {
        /// The form.
        form: PathBuf,
    },
    /// The bookings: number, state, priority, window, main venue, sites, title.
    List {
        /// Only bookings holding (or asking for) this instant, in the state they have then
        /// (RFC 3339, or `2027-01-10 09:00` for Beijing time).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Only bookings using this link (`dc:14-dc:1401`, or the lower node `dc:1401`).
        #[arg(long, value_name = "LINK")]
        link: Option<String>,
    },
    /// One booking: its form, where it runs (links, MCUs) and its history.
    Show {
        /// Its number (12 or #12).
        id: BookingId,
    },
    /// Approve a request.
    Approve {
        /// Its number.
        id: BookingId,
    },
    /// Turn a request down.
    Reject {
        /// Its number.
        id: BookingId,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Withdraw a booking; what it holds is given back.
    Cancel {
        /// Its number.
        id: BookingId,
    },
    /// Place an approved (or preempted) booking, or move a scheduled one; refused without
    /// room, saying why and from when it would fit.
    Schedule {
        /// Its number.
        id: BookingId,
        /// Start here instead (same length).
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
    },
    /// Place a booking, bumping bookings of lower priority to make room.
    Preempt {
        /// Its number.
        id: BookingId,
        /// Start here instead (same length).
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
    },
    /// What is left to book on a link, each direction, throughout an interval.
    Free {
        /// The link (`dc:14-dc:1401`, or the lower node `dc:1401`).
        #[arg(long, value_name = "LINK")]
        link: String,
        /// From (RFC 3339, or `2027-01-10 09:00` for Beijing time).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// To.
        #[arg(long, value_name = "TIME")]
        to: String,
    },
}

/// `conf …`.
pub(crate) fn run(
    command: ConfCommand,
    dir: &Path,
    files: &Files,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = open(dir)?;
    let model = Model::load(files)?;
    let mut desk = Desk::open(model.network, &store).map_err(|e| anyhow!("{e}"))?;
    let time =
        |field: &'static str, text: &str| bookings::parse_time(field, text).map_err(|e| anyhow!(e));
    let order = match command {
        ConfCommand::Book { form } => {
            let text = std::fs::read_to_string(&form)
                .with_context(|| format!("cannot read {}", form.display()))?;
            Order::File {
                name: form.display().to_string(),
                text,
            }
        }
        ConfCommand::Approve { id } => Order::Approve(id),
        ConfCommand::Reject { id, reason } => Order::Reject(id, reason),
        ConfCommand::Cancel { id } => Order::Cancel(id),
        ConfCommand::Schedule { id, start } => Order::Schedule(
            id,
            start.map(|s| time("start", &s)).transpose()?,
            Preemption::Refuse,
        ),
        ConfCommand::Preempt { id, start } => Order::Schedule(
            id,
            start.map(|s| time("start", &s)).transpose()?,
            Preemption::Allow,
        ),
        ConfCommand::List { at, link } => {
            let at = at.map(|t| time("at", &t)).transpose()?;
            let scheduler = desk.current(&store)?;
            let link = link
                .map(|l| bookings::parse_link(scheduler.network(), &l))
                .transpose()
                .map_err(|e| anyhow!(e))?;
            return list(scheduler, at, link, now, out);
        }
        ConfCommand::Show { id } => {
            let scheduler = desk.current(&store)?;
            let booking = scheduler
                .booking(id)
                .with_context(|| format!("no booking {id}"))?;
            show(scheduler, booking, now, out)?;
            return Ok(ExitCode::SUCCESS);
        }
        ConfCommand::Free { link, from, to } => {
            let (from, to) = (time("from", &from)?, time("to", &to)?);
            if to <= from {
                return Err(anyhow!("--to must be after --from"));
            }
            let scheduler = desk.current(&store)?;
            let link = bookings::parse_link(scheduler.network(), &link).map_err(|e| anyhow!(e))?;
            let view = free_view(scheduler, link, from, to);
            writeln!(
                out,
                "link {} ({} kbit/s) from {} to {}",
                view.link,
                view.capacity_kbps,
                table::when(from),
                table::when(to)
            )?;
            let mut rows = table::new(
                &["direction", "reservable", "peak", "free", "held by"],
                &[1, 2, 3],
            );
            for d in &view.directions {
                let held: Vec<String> = d.held_by.iter().map(|id| format!("#{id}")).collect();
                rows.add_row(vec![
                    d.direction.clone(),
                    format!("{} kbit/s", d.limit_kbps),
                    format!("{} kbit/s", d.peak_kbps),
                    format!("{} kbit/s", d.free_kbps),
                    held.join(", "),
                ]);
            }
            writeln!(out, "{}", table::render(&rows))?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let who = local_user();
    match desk.order(&store, order, &who, &who, now) {
        Ok(done) => {
            said(&done, now, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(DeskError::Store(err)) => Err(err.into()),
        Err(refused) => {
            eprintln!("{refused}");
            Ok(ExitCode::from(1))
        }
    }
}

/// What an order did, in a line or two.
fn said(done: &Done, now: SystemTime, out: &mut dyn Write) -> Result<()> {
    let booking = &done.booking;
    writeln!(
        out,
        "booking {} \"{}\": {} ({} to {})",
        booking.id,
        booking.form.title,
        booking.state(now),
        table::when(booking.start),
        table::when(booking.end)
    )?;
    for bumped in &done.preempted {
        writeln!(
            out,
            "preempted booking {} \"{}\": tell {} ({}, {})",
            bumped.id,
            bumped.form.title,
            bumped.form.contact,
            bumped.form.organiser,
            bumped.form.phone
        )?;
    }
    Ok(())
}

fn list(
    scheduler: &Scheduler,
    at: Option<SystemTime>,
    link: Option<topology::LinkIx>,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let mut rows = table::new(
        &[
            "#",
            "state",
            "priority",
            "start",
            "end",
            "main venue",
            "sites",
            "title",
        ],
        &[0, 6],
    );
    for booking in scheduler.bookings() {
        let (from, to) = booking.window();
        if at.is_some_and(|at| !(from <= at && at < to)) {
            continue;
        }
        let uses = |link| {
            scheduler
                .plan(booking.id)
                .is_some_and(|p| p.links.iter().any(|u| u.link == link))
        };
        if link.is_some_and(|l| !uses(l)) {
            continue;
        }
        rows.add_row(vec![
            booking.id.0.to_string(),
            booking.state(at.unwrap_or(now)).to_string(),
            booking.form.priority.as_str().to_owned(),
            table::when(booking.start),
            table::when(booking.end),
            booking.form.main_venue.to_string(),
            booking.form.sites.len().to_string(),
            booking.form.title.clone(),
        ]);
    }
    writeln!(out, "{}", table::render(&rows))?;
    Ok(ExitCode::SUCCESS)
}

fn show(
    scheduler: &Scheduler,
    booking: &Booking,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<()> {
    let form = &booking.form;
    let sites: Vec<String> = form
        .sites
        .iter()
        .map(|s| {
            if s.receive_only {
                format!("{} (receive only)", s.node)
            } else {
                s.node.to_string()
            }
        })
        .collect();
    writeln!(out, "booking {} \"{}\"", booking.id, form.title)?;
    writeln!(out, "state       {}", booking.state(now))?;
    writeln!(
        out,
        "organiser   {} ({}, {})",
        form.organiser, form.contact, form.phone
    )?;
    writeln!(
        out,
        "window      {} to {} (held from {})",
        table::when(booking.start),
        table::when(booking.end),
        table::when(booking.test_start())
    )?;
    writeln!(out, "priority    {}", form.priority.as_str())?;
    writeln!(out, "bitrate     {}", form.bitrate)?;
    writeln!(out, "main venue  {}", form.main_venue)?;
    writeln!(out, "sites       {}", sites.join(", "))?;
    if let Some(plan) = scheduler.plan(booking.id) {
        let network = scheduler.network();
        let mut rows = table::new(&["link", "directions", "streams", "reserved"], &[2, 3]);
        for u in &plan.links {
            let directions: Vec<&str> = u.directions.each().iter().map(|d| d.as_str()).collect();
            rows.add_row(vec![
                bookings::link_name(network, u.link),
                directions.join("+"),
                u.streams.to_string(),
                u.rate.to_string(),
            ]);
        }
        writeln!(out, "\n{}", table::render(&rows))?;
    }
    let mut rows = table::new(&["when", "state", "by", "note"], &[]);
    for change in booking.history(now) {
        rows.add_row(vec![
            table::when(change.at),
            change.state.to_string(),
            change.by.to_string(),
            change.note.unwrap_or_default(),
        ]);
    }
    writeln!(out, "\n{}", table::render(&rows))?;
    Ok(())
}
