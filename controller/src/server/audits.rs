//! The isolation audit's routes: auditors and engineers run one; every role reads the
//! reports (the NOC's dashboard shows the last). Running is a blocking task (a national
//! audit decides tens of thousands of flows); its signed report is kept before the answer.
//!
//! - `POST /v1/audits` (`{"scenario_sample": N}` optional): runs, answers the report.
//! - `GET /v1/audits`: the kept reports' numbers, times and finding counts.
//! - `GET /v1/audits/latest`: the last report.
//! - `GET /v1/audits/{id}`: a signed report as kept (what `audit verify` checks).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::access::{Connection, Need};
use super::{ApiError, Controller, wall_clock};
use crate::audit::{self, AuditError, Report, SignedReport};

/// The audit routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/audits", get(list).post(run))
        .route("/v1/audits/latest", get(latest))
        .route("/v1/audits/{id}", get(signed))
}

/// `POST /v1/audits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOrder {
    /// More node pairs to audit beyond one per tier relation.
    #[serde(default)]
    pub scenario_sample: usize,
}

/// The most extra pairs one request may ask for.
pub const MAX_SAMPLE: usize = 100_000;

/// One kept report in the list.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Its number.
    pub id: u64,
    /// When it ran.
    #[serde(with = "crate::health::rfc3339")]
    pub at: std::time::SystemTime,
    /// Who ran it.
    pub by: String,
    /// How many findings.
    pub findings: usize,
}

fn refused(err: AuditError) -> ApiError {
    match err {
        AuditError::NoSuchReport(_) => ApiError::not_found(err.to_string()),
        other => ApiError::internal(other),
    }
}

async fn run(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    order: Result<Json<AuditOrder>, JsonRejection>,
) -> Result<Json<Report>, ApiError> {
    let op = connection.operator(Need::Audit)?;
    let order = match order {
        Ok(Json(order)) => order,
        Err(JsonRejection::MissingJsonContentType(_)) => AuditOrder::default(),
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    if order.scenario_sample > MAX_SAMPLE {
        return Err(ApiError::bad_request(format!(
            "scenario_sample is at most {MAX_SAMPLE}"
        )));
    }
    let by = format!("operator:{}", op.login);
    let model = controller.model();
    let dir = controller.dir().to_owned();
    let (report, _) = tokio::task::spawn_blocking(move || {
        audit::run_and_keep(&dir, &model, order.scenario_sample, &by, wall_clock())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    Ok(Json(report))
}

async fn list(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<ReportSummary>>, ApiError> {
    connection.operator(Need::Health)?;
    let dir = controller.dir();
    let mut summaries = Vec::new();
    for id in audit::report_ids(dir).map_err(refused)? {
        let report = open(&audit::read(dir, id).map_err(refused)?)?;
        summaries.push(ReportSummary {
            id,
            at: report.at,
            by: report.by,
            findings: report.findings.len(),
        });
    }
    Ok(Json(summaries))
}

async fn latest(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Report>, ApiError> {
    connection.operator(Need::Health)?;
    let dir = controller.dir();
    let last = audit::report_ids(dir)
        .map_err(refused)?
        .last()
        .copied()
        .ok_or_else(|| ApiError::not_found("no isolation audit has been run"))?;
    Ok(Json(open(&audit::read(dir, last).map_err(refused)?)?))
}

async fn signed(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path(id): Path<u64>,
) -> Result<Json<SignedReport>, ApiError> {
    connection.operator(Need::Health)?;
    Ok(Json(audit::read(controller.dir(), id).map_err(refused)?))
}

/// The report inside a kept file (as this controller signed it; `audit verify` is the
/// check for a copy from elsewhere).
fn open(signed: &SignedReport) -> Result<Report, ApiError> {
    serde_json::from_str(&signed.report).map_err(ApiError::internal)
}
