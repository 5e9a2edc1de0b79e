//! Video-conference bookings: each form as filed (its TOML text, and the form read from it
//! as JSON), where the booking is placed now, and every recorded change of state (who,
//! when, why), so the scheduler can be rebuilt exactly as it was acknowledged
//! ([`Scheduler::restore`](crate::conference::Scheduler::restore)).
//!
//! Tables `conference_bookings(id, title, form_toml, form_json, start_ms, end_ms)` and
//! `conference_changes(booking, n, state, by, at_ms, note)`; `n` counts a booking's changes
//! from 0 and rows are only ever appended. Every filing and every change is a change-log
//! entry: `file booking`, `approve booking`, `reject booking`, `schedule booking`,
//! `preempt booking`, `cancel booking`, with the booking's number, its state and window.

use rusqlite::params;
use serde_json::json;

use super::time::{from_ms, rfc3339, to_ms};
use super::{StoreError, Tx, corrupt, invalid, sql};
use crate::conference::{Actor, Booking, BookingForm, BookingId, Change, State};

/// A booking as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRecord {
    /// The booking, with its recorded changes.
    pub booking: Booking,
    /// The form's text as filed.
    pub form_toml: String,
}

impl Tx<'_> {
    /// Files a new booking (its first recorded change is the request): the form's text and
    /// the form, its window and its changes; `file booking` by `who`.
    pub fn file_booking(
        &mut self,
        booking: &Booking,
        form_toml: &str,
        who: &str,
    ) -> Result<(), StoreError> {
        let form_json = serde_json::to_string(&booking.form)
            .map_err(|e| invalid(format!("booking {}: {e}", booking.id)))?;
        self.conn()
            .execute(
                "INSERT INTO conference_bookings (id, title, form_toml, form_json, start_ms, end_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id_sql(booking.id)?,
                    booking.form.title,
                    form_toml,
                    form_json,
                    to_ms(booking.start)?,
                    to_ms(booking.end)?
                ],
            )
            .map_err(sql("filing a booking"))?;
        self.booking_changes(booking, who, "file booking")
    }

    /// Records what changed in a booking already filed: its window, and the recorded
    /// changes the store does not have yet; `what` (e.g. `approve booking`) by `who`.
    pub fn update_booking(
        &mut self,
        booking: &Booking,
        who: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let updated = self
            .conn()
            .execute(
                "UPDATE conference_bookings SET start_ms = ?2, end_ms = ?3 WHERE id = ?1",
                params![
                    id_sql(booking.id)?,
                    to_ms(booking.start)?,
                    to_ms(booking.end)?
                ],
            )
            .map_err(sql("updating a booking"))?;
        if updated == 0 {
            return Err(invalid(format!("no booking {} in the store", booking.id)));
        }
        self.booking_changes(booking, who, what)
    }

    /// Appends the changes of `booking` past those stored, and the change-log entry.
    fn booking_changes(
        &mut self,
        booking: &Booking,
        who: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let id = id_sql(booking.id)?;
        let stored: i64 = self
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM conference_changes WHERE booking = ?1",
                [id],
                |row| row.get(0),
            )
            .map_err(sql("counting a booking's changes"))?;
        let changes = booking.changes();
        let first_new = usize::try_from(stored).unwrap_or(usize::MAX);
        if first_new > changes.len() {
            return Err(invalid(format!(
                "booking {} has {} changes but the store holds {stored}",
                booking.id,
                changes.len()
            )));
        }
        for (n, change) in changes.iter().enumerate().skip(first_new) {
            let by = match &change.by {
                Actor::Operator(name) => Some(name.as_str()),
                Actor::Clock => None,
            };
            self.conn()
                .execute(
                    "INSERT INTO conference_changes (booking, n, state, by, at_ms, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        i64::try_from(n).unwrap_or(i64::MAX),
                        change.state.as_str(),
                        by,
                        to_ms(change.at)?,
                        change.note
                    ],
                )
                .map_err(sql("recording a booking change"))?;
        }
        let last = changes.last();
        let at = last.map_or(self.now(), |c| c.at);
        self.append_change(
            who,
            what,
            &json!({
                "booking": booking.id.0,
                "title": booking.form.title,
                "state": booking.recorded().as_str(),
                "start": rfc3339(booking.start),
                "end": rfc3339(booking.end),
                "note": last.and_then(|c| c.note.clone()),
            }),
            at,
        )?;
        Ok(())
    }

    /// Every booking with its recorded changes, by number.
    pub fn bookings(&self) -> Result<Vec<BookingRecord>, StoreError> {
        let reading = "reading bookings";
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, form_toml, form_json, start_ms, end_ms FROM conference_bookings
                 ORDER BY id",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .map_err(sql(reading))?;
        let mut heads = Vec::new();
        for row in rows {
            heads.push(row.map_err(sql(reading))?);
        }
        let mut changes = self.all_booking_changes()?;
        let mut records = Vec::with_capacity(heads.len());
        for (id, form_toml, form_json, start_ms, end_ms) in heads {
            let number = u64::try_from(id).map_err(|_| corrupt(format!("booking id {id}")))?;
            let form: BookingForm = serde_json::from_str(&form_json)
                .map_err(|e| corrupt(format!("conference_bookings {id}: form_json: {e}")))?;
            let start = from_ms(start_ms, &format!("booking {id} start"))?;
            let end = from_ms(end_ms, &format!("booking {id} end"))?;
            let mine = changes.remove(&id).unwrap_or_default();
            let booking = Booking::restore(BookingId(number), form, start, end, mine)
                .ok_or_else(|| corrupt(format!("booking {id} has no recorded changes")))?;
            records.push(BookingRecord { booking, form_toml });
        }
        Ok(records)
    }

    /// Every recorded booking change, by booking, in order.
    fn all_booking_changes(
        &self,
    ) -> Result<std::collections::HashMap<i64, Vec<Change>>, StoreError> {
        let reading = "reading booking changes";
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT booking, n, state, by, at_ms, note FROM conference_changes
                 ORDER BY booking, n",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(sql(reading))?;
        let mut by_booking: std::collections::HashMap<i64, Vec<Change>> =
            std::collections::HashMap::new();
        for row in rows {
            let (booking, n, state, by, at_ms, note) = row.map_err(sql(reading))?;
            let list = by_booking.entry(booking).or_default();
            if usize::try_from(n).ok() != Some(list.len()) {
                return Err(corrupt(format!(
                    "conference_changes: booking {booking} change {n} out of sequence"
                )));
            }
            list.push(Change {
                state: parse_state(&state).ok_or_else(|| {
                    corrupt(format!(
                        "conference_changes: booking {booking} change {n}: state `{state}`"
                    ))
                })?,
                by: by.map_or(Actor::Clock, Actor::Operator),
                at: from_ms(at_ms, &format!("booking {booking} change {n} time"))?,
                note,
            });
        }
        Ok(by_booking)
    }

    /// A number that grows with every booking change committed (the last change's row id):
    /// a scheduler rebuilt at one value is current as long as the value stays.
    pub fn bookings_generation(&self) -> Result<u64, StoreError> {
        let last: i64 = self
            .conn()
            .query_row(
                "SELECT COALESCE(MAX(rowid), 0) FROM conference_changes",
                [],
                |row| row.get(0),
            )
            .map_err(sql("reading the bookings' generation"))?;
        Ok(u64::try_from(last).unwrap_or(0))
    }
}

fn id_sql(id: BookingId) -> Result<i64, StoreError> {
    i64::try_from(id.0).map_err(|_| invalid(format!("booking number {id} out of range")))
}

fn parse_state(text: &str) -> Option<State> {
    [
        State::Requested,
        State::Approved,
        State::Scheduled,
        State::Testing,
        State::Live,
        State::Ended,
        State::Rejected,
        State::Cancelled,
        State::Preempted,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}
