//! What the controller sees, for the NOC: link health, alerts, the connectivity census, the
//! Prometheus exposition — and the loop that evaluates the alert rules.
//!
//! Alert changes are persisted as they happen (the store's alert history, with the whole
//! change as JSON in `detail`), and the open alerts are rebuilt from that history when the
//! controller starts, so a restart neither forgets an alert nor fires it twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Plane};

use super::access::{Connection, Need};
use super::{ApiError, Controller, lock, wall_clock};
use crate::alerts::{Alert, AlertChange, AlertEngine, AlertId, AlertRules, CertificateExpiry};
use crate::census::ConnectivityCensus;
use crate::health::{LinkKey, LinkSample, LinkView};
use crate::metrics::{self, Snapshot};
use crate::store::{AlertRecord, Store, StoreError};

/// How often the alert rules are evaluated.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// How often the watched certificates are read from the store.
pub const CERTIFICATES_EVERY: Duration = Duration::from_secs(60);
/// How much alert history is read back at start.
const RESTORE: usize = 10_000;

/// The NOC's routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/links", get(links))
        .route("/v1/links/history", get(link_history))
        .route("/v1/alerts", get(alerts))
        .route("/v1/alerts/{id}/ack", post(acknowledge))
        .route("/v1/census", get(census))
        .route("/v1/snmp/devices", get(snmp_devices))
}

/// The alert engine as the store remembers it.
pub fn restore_alerts(store: &Store) -> Result<AlertEngine, StoreError> {
    let records = store.read(|tx| tx.alerts(RESTORE))?;
    // Newest first from the store; the engine replays oldest first.
    let changes = records
        .into_iter()
        .rev()
        .filter_map(|record| serde_json::from_str::<AlertChange>(&record.detail).ok());
    Ok(AlertEngine::restore(AlertRules::default(), changes))
}

/// Evaluates the rules once and persists what changed.
pub fn evaluate(
    controller: &Controller,
    certificates: &[CertificateExpiry],
    now: SystemTime,
) -> Result<usize, StoreError> {
    let changes = {
        let health = lock(&controller.health);
        lock(&controller.alerts).evaluate(&health, certificates, now)
    };
    persist(&controller.store, &changes)?;
    for change in &changes {
        tracing::warn!(alert = %change.key, state = ?change.state, detail = %change.detail, "alert");
    }
    Ok(changes.len())
}

fn persist(store: &Store, changes: &[AlertChange]) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        for change in changes {
            let state = serde_json::to_value(change.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "firing".into());
            tx.record_alert(&AlertRecord {
                key: change.key.clone(),
                rule: change.key.split('/').next().unwrap_or_default().to_owned(),
                subject: change.subject.clone(),
                state,
                at: change.since,
                detail: serde_json::to_string(change).unwrap_or_default(),
                by: change.by.clone(),
            })?;
        }
        Ok(())
    })
}

/// Evaluates the alert rules every [`EVALUATE_EVERY`].
pub async fn evaluate_forever(controller: Arc<Controller>) {
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    let mut certificates = Arc::new(Vec::new());
    let mut next_read = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let read = tokio::time::Instant::now() >= next_read;
        if read {
            next_read += CERTIFICATES_EVERY;
        }
        let (worker, known) = (Arc::clone(&controller), Arc::clone(&certificates));
        let done = tokio::task::spawn_blocking(move || {
            let certificates = if read {
                Arc::new(watched_certificates(&worker.store)?)
            } else {
                known
            };
            evaluate(&worker, &certificates, wall_clock()).map(|_| certificates)
        })
        .await;
        match done {
            Ok(Ok(read)) => certificates = read,
            Ok(Err(err)) => tracing::warn!(%err, "alert evaluation"),
            Err(_) => {}
        }
    }
}

/// The certificates whose expiry is watched: every one not revoked. Read once a minute
/// (expiry alerts are about days), not at every evaluation.
pub fn watched_certificates(store: &Store) -> Result<Vec<CertificateExpiry>, StoreError> {
    Ok(store
        .read(|tx| tx.certificates())?
        .into_iter()
        .filter(|c| c.revoked.is_none())
        .map(|c| CertificateExpiry {
            subject: format!("{} {}", c.kind.as_str(), c.subject),
            not_after: c.not_after,
        })
        .collect())
}

async fn links(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<LinkView>>, ApiError> {
    connection.operator(Need::Health)?;
    Ok(Json(
        lock(&controller.health).links_worst_first(wall_clock()),
    ))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    plane: Plane,
    parent: NodeId,
    child: NodeId,
}

async fn link_history(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Query(query): Query<LinkQuery>,
) -> Result<Json<Vec<LinkSample>>, ApiError> {
    connection.operator(Need::Health)?;
    let key = LinkKey {
        plane: query.plane,
        parent: query.parent,
        child: query.child,
    };
    let health = lock(&controller.health);
    let history = health
        .history(&key)
        .ok_or_else(|| ApiError::not_found(format!("no reports for the link {key}")))?;
    Ok(Json(history.cloned().collect()))
}

/// Open alerts and the latest changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertsView {
    /// Firing or acknowledged.
    pub open: Vec<Alert>,
    /// The latest changes, newest first.
    pub recent: Vec<AlertChange>,
}

async fn alerts(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<AlertsView>, ApiError> {
    connection.operator(Need::Health)?;
    let engine = lock(&controller.alerts);
    Ok(Json(AlertsView {
        open: engine.open().cloned().collect(),
        recent: engine.history().rev().take(200).cloned().collect(),
    }))
}

async fn acknowledge(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path(id): Path<u64>,
    _json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<AlertChange>, ApiError> {
    let op = connection.operator(Need::Acknowledge)?;
    let change = lock(&controller.alerts)
        .acknowledge(AlertId(id), &op.login, wall_clock())
        .map_err(|e| match e {
            crate::alerts::AlertError::NotOpen(_) => ApiError::not_found(e.to_string()),
            crate::alerts::AlertError::AlreadyAcknowledged { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
        })?;
    persist(&controller.store, std::slice::from_ref(&change))?;
    Ok(Json(change))
}

#[derive(Debug, Deserialize)]
struct CensusQuery {
    format: Option<String>,
}

async fn census(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Query(query): Query<CensusQuery>,
) -> Result<Response, ApiError> {
    connection.operator(Need::Health)?;
    let model = controller.model();
    let now = wall_clock();
    let video: BTreeSet<_> = {
        let mut desk = lock(&controller.conferences);
        crate::bookings::live_sites(desk.current(&controller.store)?, now)
    };
    let census = {
        let health = lock(&controller.health);
        ConnectivityCensus::compute(&model.network, &health, &video, now)
    };
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(census).into_response()),
        "csv" => {
            let text = census.to_csv().map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response())
        }
        "text" => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            census.to_table(),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "unknown format `{other}` (json, csv or text)"
        ))),
    }
}

async fn snmp_devices(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<crate::snmp::DeviceState>>, ApiError> {
    connection.operator(Need::Health)?;
    let Some(states) = &controller.snmp else {
        return Ok(Json(Vec::new()));
    };
    let states = states
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(Json(states.values().cloned().collect()))
}

/// The Prometheus exposition of the controller and its links.
pub fn exposition(controller: &Controller) -> Result<String, ApiError> {
    let enrolled = controller
        .store
        .read(|tx| tx.nodes())?
        .iter()
        .map(|n| n.node)
        .collect::<BTreeSet<_>>()
        .len();
    let health = lock(&controller.health);
    let alerts = lock(&controller.alerts);
    metrics::render(
        &Snapshot {
            health: &health,
            alerts: &alerts,
            enrolled_nodes: enrolled,
            api: Some(&controller.requests),
        },
        wall_clock(),
    )
    .map_err(ApiError::internal)
}

/// `GET /metrics` on the plain-HTTP metrics listener (loopback by default: it shows link
/// health, not secrets, but it is not for the world).
pub fn metrics_router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(controller): State<Arc<Controller>>| async move {
                match exposition(&controller) {
                    Ok(text) => {
                        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
                    }
                    Err(err) => err.into_response(),
                }
            }),
        )
        .with_state(controller)
}
