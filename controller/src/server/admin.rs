//! The operators' routes: resources read by role, changes by engineers (scoped by province
//! where the certificate says so). Every change lands in the store with its change-log
//! entry before the answer says it happened; the reconciler then carries it to the agents.

use std::sync::Arc;
use std::time::Duration;

use agent::control::ModelSources;
use agent::model::Model;
use axum::extract::rejection::{JsonRejection, QueryRejection, StringRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pki::Serial;
use serde::{Deserialize, Serialize};
use topology::NodeId;

use super::access::{Connection, Need};
use super::agents::body;
use super::{ApiError, Controller};
use crate::store::{CertificateRecord, ChangeEntry, NodeRecord, TokenRecord};

/// The operators' routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/nodes", get(nodes))
        .route("/v1/tokens", get(tokens).post(create_token))
        .route("/v1/certificates", get(certificates))
        .route("/v1/certificates/expiry", get(expiry))
        .route("/v1/certificates/{serial}/revoke", post(revoke))
        .route("/v1/policy", get(policy).put(set_policy))
        .route("/v1/changes", get(changes))
        .route("/v1/changes/verify", get(verify_changes))
        .route("/v1/operators", get(operators))
        .route("/v1/plan", get(plan))
}

async fn nodes(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<NodeRecord>>, ApiError> {
    connection.operator(Need::Read)?;
    Ok(Json(controller.store.read(|tx| tx.nodes())?))
}

async fn tokens(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    connection.operator(Need::Read)?;
    Ok(Json(controller.store.read(|tx| tx.tokens())?))
}

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenOrder {
    /// The node the token enrolls.
    pub node: NodeId,
    /// How long it is valid, in seconds (default one hour, at most a week).
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

/// The longest a token may live.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);

/// What a new token is: shown once.
#[derive(Debug, Serialize)]
pub struct TokenIssued {
    /// The token to give the agent.
    pub token: String,
    /// The node.
    pub node: NodeId,
    /// Its id (what lists show).
    pub id: String,
}

async fn create_token(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    json: Result<Json<TokenOrder>, JsonRejection>,
) -> Result<Json<TokenIssued>, ApiError> {
    let order = body(json)?;
    let op = connection.operator(Need::Change(order.node))?;
    if controller.model().network.lookup(&order.node).is_none() {
        return Err(ApiError::bad_request(format!(
            "{} is not a node of the network",
            order.node
        )));
    }
    let ttl = Duration::from_secs(order.ttl_s.unwrap_or(3_600));
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(ApiError::bad_request(
            "ttl_s must be between 1 s and one week",
        ));
    }
    let who = format!("operator:{}", op.login);
    let token = controller
        .store
        .write(|tx| tx.create_token(&order.node, ttl, super::wall_clock(), &who))?;
    Ok(Json(TokenIssued {
        token: token.token,
        node: token.node,
        id: token.id,
    }))
}

async fn certificates(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<CertificateRecord>>, ApiError> {
    connection.operator(Need::Read)?;
    Ok(Json(controller.store.read(|tx| tx.certificates())?))
}

/// `GET /v1/certificates/expiry`: every certificate by expiry, soonest first, without its
/// body (`pem` is empty): what the NOC watches. Every role reads it; the certificates
/// themselves stay with auditors and engineers.
async fn expiry(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<CertificateRecord>>, ApiError> {
    connection.operator(Need::Health)?;
    let mut all = controller.store.read(|tx| tx.certificates())?;
    for certificate in &mut all {
        certificate.pem.clear();
    }
    all.sort_by(|a, b| a.not_after.cmp(&b.not_after).then(a.serial.cmp(&b.serial)));
    Ok(Json(all))
}

/// `POST /v1/certificates/{serial}/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeOrder {
    /// The reason as `cert revoke --reason` writes it: key-compromise, superseded,
    /// affiliation-changed, cessation-of-operation (default unspecified).
    #[serde(default)]
    pub reason: Option<String>,
}

async fn revoke(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    Path(serial): Path<String>,
    json: Result<Json<RevokeOrder>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    // Who is calling comes first: nobody learns whether a serial exists without the role
    // to revoke it.
    connection.operator(Need::Acknowledge)?;
    let order = body(json)?;
    let record = controller
        .store
        .read(|tx| tx.certificates())?
        .into_iter()
        .find(|c| c.serial == serial)
        .ok_or_else(|| ApiError::not_found(format!("no certificate with serial {serial}")))?;
    let subject: Option<NodeId> = record.subject.parse().ok();
    let op = match subject {
        Some(node) => connection.operator(Need::Change(node))?,
        None => connection.operator(Need::NationalChange)?,
    };
    let reason_text = order.reason.unwrap_or_else(|| "unspecified".to_owned());
    let reason: pki::Reason = reason_text
        .parse()
        .map_err(|e: String| ApiError::bad_request(e))?;
    let serial_bytes = hex::decode(&serial)
        .map_err(|_| ApiError::bad_request(format!("{serial} is not a hex serial")))?;
    let now = super::wall_clock();
    controller
        .ca
        .revoke(&Serial(serial_bytes), reason, now)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let who = format!("operator:{}", op.login);
    controller
        .store
        .write(|tx| tx.revoke_certificate(&serial, &reason_text, now, &who))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn operators(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<Vec<crate::store::OperatorRecord>>, ApiError> {
    connection.operator(Need::Read)?;
    Ok(Json(controller.store.read(|tx| tx.operators())?))
}

/// The IP plan in force: each plane's supernet, and the plan file's text.
#[derive(Debug, Serialize)]
pub struct PlanView {
    /// Plane → supernet.
    pub planes: Vec<(topology::Plane, String)>,
    /// Nodes in the network.
    pub nodes: usize,
    /// The plan file (TOML).
    pub plan: String,
}

async fn plan(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<PlanView>, ApiError> {
    connection.operator(Need::Read)?;
    let model = controller.model();
    let planes = model
        .allocation
        .planes()
        .filter_map(|plane| {
            model
                .allocation
                .supernet(plane)
                .map(|net| (plane, net.to_string()))
        })
        .collect();
    Ok(Json(PlanView {
        planes,
        nodes: model.network.nodes().len(),
        plan: topology::plan::EMBEDDED_PLAN.to_owned(),
    }))
}

async fn policy(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<String, ApiError> {
    connection.operator(Need::Read)?;
    Ok(controller
        .store
        .read(|tx| tx.setting("policy"))?
        .unwrap_or_else(|| topology::policy::EMBEDDED_POLICY.to_owned()))
}

async fn set_policy(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    text: Result<String, StringRejection>,
) -> Result<StatusCode, ApiError> {
    let op = connection.operator(Need::NationalChange)?;
    let text = text.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    // The policy must load as the agents will load it: invariants and its own tests.
    let sources = ModelSources {
        policy: Some(text.clone()),
        ..ModelSources::default()
    };
    let checked = tokio::task::spawn_blocking(move || Model::load(&sources).map(|_| ()))
        .await
        .map_err(ApiError::internal)?;
    if let Err(problems) = checked {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problems.to_string(),
        ));
    }
    let who = format!("operator:{}", op.login);
    controller
        .store
        .write(|tx| tx.set_setting("policy", &text, &who))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn changes(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<ChangeEntry>>, ApiError> {
    connection.operator(Need::Read)?;
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (after, limit) = (
        page.after.unwrap_or(0),
        page.limit.unwrap_or(1000).min(10_000),
    );
    Ok(Json(controller.store.read(|tx| tx.changes(after, limit))?))
}

/// The change log's verification.
#[derive(Debug, Serialize)]
pub struct ChainCheck {
    /// Whether every entry's hash and link verified.
    pub ok: bool,
    /// Entries verified.
    pub entries: u64,
    /// Where it broke.
    pub problem: Option<String>,
}

async fn verify_changes(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
) -> Result<Json<ChainCheck>, ApiError> {
    connection.operator(Need::Read)?;
    Ok(Json(match controller.store.verify_changes() {
        Ok(entries) => ChainCheck {
            ok: true,
            entries,
            problem: None,
        },
        Err(err) => ChainCheck {
            ok: false,
            entries: 0,
            problem: Some(err.to_string()),
        },
    }))
}
