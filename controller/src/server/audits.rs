//! The isolation audit's routes: auditors and engineers run one; every role reads the
//! reports (the NOC's dashboard shows the last). Running is a blocking task (a national
//! audit decides tens of thousands of flows); its signed report is kept before the answer.
//!
//! - `POST /v1/audits` (`{"scenario_sample": N}` optional): runs, answers the report.
//! - `GET /v1/audits`: the kept reports' numbers, times and finding counts.
//! - `GET /v1/audits/latest`: the last report.
//! - `GET /v1/audits/{id}`: a signed report as kept (what `audit verify` checks).
//! - `GET /v1/denied`: the agents' denied-flow records, by node, zone pair and time.
//!
//! `{"live": true}` also probes through the agents (see [`crate::audit::live`]): the run
//! answers after the probes were sent, delivered and reported, within seconds.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::access::{Connection, Need};
use super::{ApiError, Controller, wall_clock};
use crate::audit::live::{self, DeniedEntry, DeniedQuery};
use crate::audit::{self, AuditError, Report, SignedReport};
use topology::{NodeId, Plane, Policy};

/// The audit routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/audits", get(list).post(run))
        .route("/v1/audits/latest", get(latest))
        .route("/v1/audits/{id}", get(signed))
        .route("/v1/denied", get(denied))
}

/// How long the live audit waits for every source agent to confirm it sent its probes.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(20);
/// Then how long it waits for the arrivals to be reported (agents report every second or
/// two).
pub const SETTLE: Duration = Duration::from_millis(3_000);

/// The most probe flows one live audit sends: each source's share travels in its bundle,
/// which agents take up to 1 MiB.
pub const MAX_LIVE_FLOWS: usize = 5_000;

/// One audit to run.
#[derive(Debug, Clone, Default)]
pub struct AuditRun {
    /// More node pairs beyond one per tier relation.
    pub extra_pairs: usize,
    /// Also probe through the agents.
    pub live: bool,
    /// Who asks (`operator:zhaolei`).
    pub by: String,
    /// Audit this policy instead of the one in force (tests of policies the checker would
    /// refuse; the agents still run theirs).
    pub policy: Option<Policy>,
}

/// Runs an audit on the running controller: the static audit and, when asked, the live
/// probes through the agents; signs and keeps the report. One live audit at a time.
pub async fn run_audit(
    controller: Arc<Controller>,
    run: AuditRun,
) -> Result<(Report, PathBuf), AuditError> {
    let model = controller.model();
    let policy = run.policy.clone().unwrap_or_else(|| model.policy.clone());
    let dir = controller.dir().to_owned();
    let id = audit::next_id(&dir)?;
    if run.live && !super::lock(&controller.audit_orders).1.is_empty() {
        return Err(AuditError::Busy);
    }
    let enrolled: HashSet<(Plane, NodeId)> = controller
        .store
        .read(|tx| tx.nodes())
        .map_err(|e| AuditError::Controller(e.to_string()))?
        .iter()
        .map(|r| (r.plane, r.node))
        .collect();
    // The live pairs first, so a finding's counterexample is one the agents can probe.
    let live_pairs = if run.live {
        let nodes: std::collections::BTreeSet<_> = enrolled
            .iter()
            .filter_map(|(_, node)| model.network.lookup(node))
            .collect();
        live::pairs(
            &model.network,
            &nodes.into_iter().collect::<Vec<_>>(),
            run.extra_pairs,
        )
    } else {
        Vec::new()
    };
    let mut pairs = live_pairs.clone();
    let known: HashSet<_> = pairs.iter().copied().collect();
    pairs.extend(
        audit::audited_pairs(&model.network, run.extra_pairs)
            .into_iter()
            .filter(|pair| !known.contains(pair)),
    );
    let inputs = audit::Inputs {
        network: &model.network,
        allocation: &model.allocation,
        policy: &policy,
        texts: audit::texts(&model),
    };
    let mut report = audit::run(&inputs, &pairs, id, wall_clock(), &run.by);
    if run.live {
        let mut flows = live::plan(&model, &policy, &live_pairs, &enrolled);
        let planned = flows.len();
        flows.truncate(MAX_LIVE_FLOWS);
        let checks = live::counterexamples(&model, &report.findings, flows.len() as u32);
        let all: Vec<live::Flow> = flows
            .iter()
            .cloned()
            .chain(checks.iter().map(|(_, flow)| flow.clone()))
            .collect();
        let orders = live::orders(&all, id);
        let sources: Vec<NodeId> = orders.keys().copied().collect();
        set_orders(&controller, orders).await?;
        let begun = tokio::time::Instant::now();
        while !sources.is_empty() && begun.elapsed() < CONFIRM_WITHIN {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let observed = super::lock(&controller.observations);
            if sources.iter().all(|node| observed.has_sent(node, id)) {
                break;
            }
        }
        if !sources.is_empty() {
            tokio::time::sleep(SETTLE).await;
        }
        let waited = begun.elapsed();
        {
            let observed = super::lock(&controller.observations);
            let (summary, found) = live::compare(&flows, id, &observed, waited);
            for (finding, flow) in &checks {
                let seen = live::confirmation(flow, id, &observed, waited);
                if let Some(finding) = report.findings.get_mut(*finding) {
                    let before = finding.evidence.take().unwrap_or_default();
                    finding.evidence = Some(format!("{before}; {seen}"));
                }
            }
            report.coverage = format!(
                "{}; live: {} probe flows{} from {} agents, {} sent, {} arrived{}",
                report.coverage,
                summary.flows,
                if planned > summary.flows {
                    format!(" (the first of {planned} planned)")
                } else {
                    String::new()
                },
                sources.len(),
                summary.sent,
                summary.arrived,
                if summary.silent_sources.is_empty() {
                    String::new()
                } else {
                    format!(", {} agents silent", summary.silent_sources.len())
                }
            );
            report.findings.extend(found);
            report.live = true;
            report.live_summary = Some(summary);
        }
        set_orders(&controller, HashMap::new()).await?;
    }
    let path = tokio::task::spawn_blocking(move || {
        audit::sign_and_keep(&dir, &report).map(|path| (report, path))
    })
    .await
    .map_err(|e| AuditError::Controller(e.to_string()))??;
    Ok(path)
}

async fn set_orders(
    controller: &Arc<Controller>,
    orders: HashMap<NodeId, agent::control::AuditOrder>,
) -> Result<(), AuditError> {
    let controller = Arc::clone(controller);
    tokio::task::spawn_blocking(move || controller.set_audit_orders(orders, wall_clock()))
        .await
        .map_err(|e| AuditError::Controller(e.to_string()))?
        .map(|_| ())
        .map_err(|e| AuditError::Controller(e.to_string()))
}

/// `POST /v1/audits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOrder {
    /// More node pairs to audit beyond one per tier relation.
    #[serde(default)]
    pub scenario_sample: usize,
    /// Also send probe flows through the agents and compare.
    #[serde(default)]
    pub live: bool,
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
        AuditError::Busy => ApiError::new(axum::http::StatusCode::CONFLICT, err.to_string()),
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
    let run = AuditRun {
        extra_pairs: order.scenario_sample,
        live: order.live,
        by: format!("operator:{}", op.login),
        policy: None,
    };
    let (report, _) = run_audit(controller, run).await.map_err(refused)?;
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

/// `GET /v1/denied?node=&from_zone=&to_zone=&since=&until=&limit=`: the agents' denied-flow
/// records, newest first (auditors and engineers).
async fn denied(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    query: Result<axum::extract::Query<DeniedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeniedEntry>>, ApiError> {
    connection.operator(Need::Read)?;
    let axum::extract::Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let time = |what: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t)
                    .map_err(|e| ApiError::bad_request(format!("{what} `{t}`: {e}")))
            })
            .transpose()
    };
    let (since, until) = (time("since", &query.since)?, time("until", &query.until)?);
    let observed = super::lock(&controller.observations);
    Ok(Json(
        observed
            .denied(&query, since, until)
            .into_iter()
            .cloned()
            .collect(),
    ))
}

/// The report inside a kept file (as this controller signed it; `audit verify` is the
/// check for a copy from elsewhere).
fn open(signed: &SignedReport) -> Result<Report, ApiError> {
    serde_json::from_str(&signed.report).map_err(ApiError::internal)
}
