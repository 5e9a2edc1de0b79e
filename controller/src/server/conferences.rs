//! The video-conference routes: bookings filed, approved, placed (with or without
//! preemption), cancelled, and what is left to book on a link.
//!
//! Every role reads (the NOC watches conferences as it watches links); engineers change: a
//! national engineer any booking, an engineer scoped to a province the bookings whose main
//! venue is in that province (分级管理: the province runs its own conferences). A change is committed to the store with its change-log entry
//! before the answer ([`Desk::order`]), and a reconcile then carries the reservations to the
//! agents' bundles before the answer is sent. Refusals: a form that does not read or does not
//! lay out → 400 with each problem at its line; no room → 409 with the scheduler's whole
//! explanation (the full links or MCUs, the interval, the bookings holding them, the earliest
//! start that fits); a state that does not allow the action → 409; an unknown booking → 404.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::{QueryRejection, StringRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use topology::{LinkIx, NodeId};

use super::access::{Connection, Need};
use super::{ApiError, Controller, lock, wall_clock};
use crate::bookings::{self, DeskError, Done, Order};
use crate::conference::{
    Booking, BookingForm, BookingId, Change, Direction, Preemption, Scheduler, SchedulerError,
    State as BookingState,
};
use crate::store::rfc3339;

/// The conference routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/conferences", get(list).post(file))
        .route("/v1/conferences/{id}", get(show))
        .route("/v1/conferences/{id}/{action}", post(act))
        .route("/v1/links/{link}/free", get(free))
}

/// A booking as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookingView {
    /// Its number.
    pub id: u64,
    /// The title.
    pub title: String,
    /// Where it stands at the time asked about (now, or `?at=`).
    pub state: BookingState,
    /// Its last recorded state.
    pub recorded: BookingState,
    /// Whether its bandwidth and MCU ports are held.
    pub held: bool,
    /// Its start now (moved, or the form's).
    #[serde(with = "crate::health::rfc3339")]
    pub start: SystemTime,
    /// Its end now.
    #[serde(with = "crate::health::rfc3339")]
    pub end: SystemTime,
    /// Its test window's start: held from here.
    #[serde(with = "crate::health::rfc3339")]
    pub test_start: SystemTime,
    /// Links it uses (`upper-lower`), each with directions, streams and the reserved rate.
    pub links: Vec<LinkView>,
    /// MCUs it uses and the ports it takes on each.
    pub mcus: Vec<(NodeId, u32)>,
    /// The form as filed.
    pub form: BookingForm,
    /// Its changes: the recorded ones and those the clock made.
    pub history: Vec<Change>,
}

/// A link a booking uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkView {
    /// `dc:14-dc:1401`.
    pub link: String,
    /// `down`, `up` or `both`.
    pub directions: String,
    /// Streams each way.
    pub streams: u32,
    /// kbit/s reserved each way.
    pub rate_kbps: u64,
    /// The link's capacity in kbit/s (each way), for the share the booking takes.
    #[serde(default)]
    pub capacity_kbps: u64,
}

impl BookingView {
    /// The view of `booking` at `at`.
    pub fn of(scheduler: &Scheduler, booking: &Booking, at: SystemTime) -> BookingView {
        let network = scheduler.network();
        let plan = scheduler.plan(booking.id);
        let links = plan
            .map(|plan| {
                plan.links
                    .iter()
                    .map(|u| LinkView {
                        link: bookings::link_name(network, u.link),
                        directions: match u.directions {
                            crate::conference::Directions::Down => "down",
                            crate::conference::Directions::Up => "up",
                            crate::conference::Directions::Both => "both",
                        }
                        .to_owned(),
                        streams: u.streams,
                        rate_kbps: u.rate.0,
                        capacity_kbps: network.link(u.link).capacity.0,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mcus = plan
            .map(|plan| {
                plan.mcus
                    .iter()
                    .map(|m| (network.node(m.node).id, m.ports))
                    .collect()
            })
            .unwrap_or_default();
        BookingView {
            id: booking.id.0,
            title: booking.form.title.clone(),
            state: booking.state(at),
            recorded: booking.recorded(),
            held: scheduler.is_held(booking.id),
            start: booking.start,
            end: booking.end,
            test_start: booking.test_start(),
            links,
            mcus,
            form: booking.form.clone(),
            history: booking.history(at),
        }
    }
}

/// What a change did: the booking, and the bookings it preempted with what to tell their
/// organisers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The booking acted on.
    pub booking: BookingView,
    /// The bookings bumped to make room (now `preempted`), for their organisers to be told.
    pub preempted: Vec<BookingView>,
    /// One notice per preempted booking: whom to tell, and what.
    pub notified: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    at: Option<String>,
    link: Option<String>,
}

async fn list(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<BookingView>>, ApiError> {
    connection.operator(Need::Health)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let at = query
        .at
        .as_deref()
        .map(|t| parse_time("at", t))
        .transpose()?;
    let now = wall_clock();
    let mut desk = lock(&controller.conferences);
    let scheduler = desk.current(&controller.store)?;
    let link = query
        .link
        .as_deref()
        .map(|text| bookings::parse_link(scheduler.network(), text))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let views = scheduler
        .bookings()
        .filter(|b| {
            at.is_none_or(|at| {
                let (from, to) = b.window();
                from <= at && at < to
            })
        })
        .filter(|b| link.is_none_or(|link| uses(scheduler, b.id, link)))
        .map(|b| BookingView::of(scheduler, b, at.unwrap_or(now)))
        .collect();
    Ok(Json(views))
}

fn uses(scheduler: &Scheduler, id: BookingId, link: LinkIx) -> bool {
    scheduler
        .plan(id)
        .is_some_and(|plan| plan.links.iter().any(|u| u.link == link))
}

async fn show(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, ApiError> {
    connection.operator(Need::Health)?;
    let id = parse_id(&id)?;
    let mut desk = lock(&controller.conferences);
    let scheduler = desk.current(&controller.store)?;
    let booking = scheduler
        .booking(id)
        .ok_or_else(|| ApiError::not_found(format!("no booking {id}")))?;
    Ok(Json(BookingView::of(scheduler, booking, wall_clock())))
}

async fn file(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    text: Result<String, StringRejection>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    connection.operator(Need::Book)?;
    let text = text.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    // A province engineer books the conferences their province runs.
    let source = topology::SourceText::new("form.toml", &text);
    let form = BookingForm::parse(&source).map_err(|p| ApiError::bad_request(p.to_string()))?;
    let op = connection.operator(Need::Change(form.main_venue))?;
    let order = Order::File {
        name: "form.toml".to_owned(),
        text,
    };
    let outcome = carry_out(&controller, order, &op.login).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// The optional body of `approve`, `reject`, `cancel`, `schedule` and `preempt`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// Where to place it (schedule, preempt): RFC 3339.
    start: Option<String>,
    /// Why (reject).
    reason: Option<String>,
}

async fn act(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Outcome>, ApiError> {
    connection.operator(Need::Book)?;
    let id = parse_id(&id)?;
    // A province engineer acts on the conferences their province runs.
    let main_venue = {
        let mut desk = lock(&controller.conferences);
        let scheduler = desk.current(&controller.store)?;
        scheduler
            .booking(id)
            .map(|b| b.form.main_venue)
            .ok_or_else(|| ApiError::not_found(format!("no booking {id}")))?
    };
    let op = connection.operator(Need::Change(main_venue))?;
    let body: ActBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))?
    };
    let start = body
        .start
        .as_deref()
        .map(|t| parse_time("start", t))
        .transpose()?;
    let order = match action.as_str() {
        "approve" => Order::Approve(id),
        "reject" => Order::Reject(id, body.reason.unwrap_or_default()),
        "cancel" => Order::Cancel(id),
        "schedule" => Order::Schedule(id, start, Preemption::Refuse),
        "preempt" => Order::Schedule(id, start, Preemption::Allow),
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}` on a booking (approve, reject, cancel, schedule, preempt)"
            )));
        }
    };
    if start.is_some() && !matches!(order, Order::Schedule(..)) {
        return Err(ApiError::bad_request(format!(
            "`start` is for schedule and preempt, not {action}"
        )));
    }
    Ok(Json(carry_out(&controller, order, &op.login).await?))
}

/// Carries out an order (durably), reconciles so the agents get the reservations, answers:
/// what every changing route does once it has checked the caller, and what an in-process
/// driver (netlab) calls as the operator `login`.
pub async fn carry_out(
    controller: &Arc<Controller>,
    order: Order,
    login: &str,
) -> Result<Outcome, ApiError> {
    let worker = Arc::clone(controller);
    let login = login.to_owned();
    let done = tokio::task::spawn_blocking(move || {
        let now = wall_clock();
        let who = format!("operator:{login}");
        let done = lock(&worker.conferences).order(&worker.store, order, &login, &who, now);
        if done.is_ok()
            && let Err(err) = worker.reconcile(now)
        {
            tracing::warn!(%err, "reconcile after a booking change");
        }
        done.map(|done| (done, now))
    })
    .await
    .map_err(ApiError::internal)?;
    let (done, now) = done.map_err(refusal)?;
    let mut desk = lock(&controller.conferences);
    let scheduler = desk.current(&controller.store)?;
    Ok(outcome(scheduler, &done, now))
}

fn outcome(scheduler: &Scheduler, done: &Done, now: SystemTime) -> Outcome {
    let booking = BookingView::of(scheduler, &done.booking, now);
    let notified = done
        .preempted
        .iter()
        .map(|bumped| {
            format!(
                "tell {} ({}, {}): booking {} \"{}\" from {} was preempted by booking {} \"{}\" ({}); it can be scheduled again",
                bumped.form.contact,
                bumped.form.organiser,
                bumped.form.phone,
                bumped.id,
                bumped.form.title,
                rfc3339(bumped.start),
                done.booking.id,
                done.booking.form.title,
                done.booking.form.priority.as_str(),
            )
        })
        .collect();
    Outcome {
        booking,
        preempted: done
            .preempted
            .iter()
            .map(|b| BookingView::of(scheduler, b, now))
            .collect(),
        notified,
    }
}

/// A desk refusal as the API answers it.
fn refusal(err: DeskError) -> ApiError {
    match err {
        DeskError::Form(problems) => ApiError::bad_request(problems.to_string()),
        DeskError::Scheduler(err) => {
            let status = match &err {
                SchedulerError::UnknownBooking(_) => StatusCode::NOT_FOUND,
                SchedulerError::Refused(_)
                | SchedulerError::Transition(_)
                | SchedulerError::Taken(_) => StatusCode::CONFLICT,
                SchedulerError::Plan(_)
                | SchedulerError::EmptyWindow
                | SchedulerError::OutOfRange { .. }
                | SchedulerError::Past { .. } => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, err.to_string())
        }
        DeskError::Store(err) => ApiError::internal(err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreeQuery {
    from: String,
    to: String,
}

/// What is left to book on a link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreeView {
    /// `dc:14-dc:1401`.
    pub link: String,
    /// The interval asked about.
    #[serde(with = "crate::health::rfc3339")]
    pub from: SystemTime,
    /// Its end.
    #[serde(with = "crate::health::rfc3339")]
    pub to: SystemTime,
    /// The link's capacity, kbit/s.
    pub capacity_kbps: u64,
    /// One entry per direction (`down`: upper to lower; `up`).
    pub directions: Vec<FreeDirection>,
}

/// One direction of a link over an interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreeDirection {
    /// `down` or `up`.
    pub direction: String,
    /// What may be reserved for video, kbit/s.
    pub limit_kbps: u64,
    /// The most reserved at any instant of the interval.
    pub peak_kbps: u64,
    /// What is left to book throughout the interval.
    pub free_kbps: u64,
    /// The bookings holding it during the interval.
    pub held_by: Vec<u64>,
}

/// The free capacity of a link over `[from, to)`.
pub fn free_view(
    scheduler: &Scheduler,
    link: LinkIx,
    from: SystemTime,
    to: SystemTime,
) -> FreeView {
    let network = scheduler.network();
    let directions = Direction::BOTH
        .iter()
        .map(|&direction| {
            let resource = crate::conference::Resource::Link { link, direction };
            let held_by = scheduler
                .holds(resource)
                .into_iter()
                .filter(|(_, h)| h.from < to && from < h.to)
                .map(|(id, _)| id.0)
                .collect();
            FreeDirection {
                direction: direction.as_str().to_owned(),
                limit_kbps: scheduler.limit(resource),
                peak_kbps: scheduler.peak(resource, from, to),
                free_kbps: scheduler.free(link, direction, from, to).0,
                held_by,
            }
        })
        .collect();
    FreeView {
        link: bookings::link_name(network, link),
        from,
        to,
        capacity_kbps: network.link(link).capacity.0,
        directions,
    }
}

async fn free(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path(link): Path<String>,
    query: Result<Query<FreeQuery>, QueryRejection>,
) -> Result<Json<FreeView>, ApiError> {
    connection.operator(Need::Health)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (from, to) = (
        parse_time("from", &query.from)?,
        parse_time("to", &query.to)?,
    );
    if to <= from {
        return Err(ApiError::bad_request("`to` must be after `from`"));
    }
    let mut desk = lock(&controller.conferences);
    let scheduler = desk.current(&controller.store)?;
    let link = bookings::parse_link(scheduler.network(), &link).map_err(ApiError::bad_request)?;
    Ok(Json(free_view(scheduler, link, from, to)))
}

fn parse_id(text: &str) -> Result<BookingId, ApiError> {
    text.parse()
        .map_err(|e: crate::conference::BadBookingId| ApiError::bad_request(e.to_string()))
}

fn parse_time(field: &'static str, text: &str) -> Result<SystemTime, ApiError> {
    bookings::parse_time(field, text).map_err(ApiError::bad_request)
}
