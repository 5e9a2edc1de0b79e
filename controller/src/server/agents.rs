//! The agents' routes: enrollment, the config long-poll, health reports.
//!
//! Enrollment is one store transaction: the token is redeemed, every plane's CSR checked
//! (it must be for the token's node; the CA checks it against the topology and says what is
//! wrong) and issued, the node and its certificates recorded, each with its change-log
//! entry. Anything refused rolls the whole transaction back, so a token is spent only by an
//! enrollment that succeeded; a replayed token then finds it spent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agent::control::{EnrollRequest, EnrollResponse, HealthReport, LONG_POLL, SignedBundle};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pki::request::{Request, read_request_pem};
use serde::Deserialize;

use super::access::Connection;
use super::{ApiError, Controller};
use crate::store::{CertificateKind, CertificateRecord, NodeRecord, StoreError};

/// The agents' routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/agent/bundle", get(bundle))
        .route("/v1/agent/health", post(health))
}

/// A JSON body, or a 400 that says what is wrong with it.
pub fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match json {
        Ok(Json(value)) => Ok(value),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, rejection.body_text()),
        ),
        Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
    }
}

async fn enroll(
    State(controller): State<Arc<Controller>>,
    json: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let request = body(json)?;
    if request.planes.is_empty() {
        return Err(ApiError::bad_request("no plane to enroll on"));
    }
    let worker = Arc::clone(&controller);
    let (node, certificates) =
        tokio::task::spawn_blocking(move || enroll_now(&worker, &request, super::wall_clock()))
            .await
            .map_err(ApiError::internal)??;
    let now = super::wall_clock();
    let worker = Arc::clone(&controller);
    tokio::task::spawn_blocking(move || worker.reconcile(now))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let current = controller
        .current(&node)
        .ok_or_else(|| ApiError::internal(format!("no bundle computed for {node}")))?;
    tracing::info!(%node, version = current.version, "enrolled");
    Ok(Json(EnrollResponse {
        node,
        certificates,
        bundle: current.signed,
    }))
}

type Issued = (topology::NodeId, Vec<(topology::Plane, String)>);

fn enroll_now(
    controller: &Controller,
    request: &EnrollRequest,
    now: SystemTime,
) -> Result<Issued, ApiError> {
    let model = controller.model();
    let result = controller.store.write(|tx| {
        let node = tx.redeem_token(&request.token, now)?;
        let authority = controller
            .authority_for(&node)
            .map_err(|e| refused(format!("no CA for {node}: {e}")))?;
        let who = format!("agent:{node}");
        let mut certificates = Vec::new();
        let mut kept = Vec::new();
        for plane in &request.planes {
            let Request::Node(csr) = read_request_pem(plane.csr.as_bytes())
                .map_err(|e| refused(format!("{} plane: {e}", plane.plane)))?
            else {
                return Err(refused(format!(
                    "{} plane: an operator certificate request, not a node's",
                    plane.plane
                )));
            };
            if csr.binding.node != node {
                return Err(refused(format!(
                    "the {} plane's certificate request is for {}, but the token is for {node}",
                    plane.plane, csr.binding.node
                )));
            }
            if csr.binding.plane != plane.plane {
                return Err(refused(format!(
                    "the certificate request sent for the {} plane is for the {} plane",
                    plane.plane, csr.binding.plane
                )));
            }
            let issued = authority
                .issue_node(
                    &csr,
                    &model.network,
                    &model.allocation,
                    now,
                    pki::profile::NODE_LIFETIME,
                )
                .map_err(|e| refused(format!("{} plane: {e}", plane.plane)))?;
            let chain = format!("{}{}", issued.pem(), authority.certificate_pem());
            tx.record_certificate(
                &CertificateRecord {
                    serial: issued.serial.to_string(),
                    subject: node.to_string(),
                    kind: CertificateKind::Node,
                    plane: Some(plane.plane),
                    issuer: authority.scope().to_string(),
                    not_after: issued.not_after,
                    pem: issued.pem(),
                    revoked: None,
                },
                &who,
            )?;
            tx.enroll_node(
                &NodeRecord {
                    node,
                    plane: plane.plane,
                    wireguard_key: csr.binding.wireguard_key,
                    listen: plane.listen,
                    backup_listen: plane.backup_listen,
                    certificate_pem: chain.clone(),
                    serial: issued.serial.to_string(),
                    enrolled_at: now,
                },
                &who,
            )?;
            certificates.push((plane.plane, chain));
            kept.push(issued);
        }
        Ok((node, certificates, authority.scope(), kept))
    });
    let (node, certificates, scope, kept) = result.map_err(|err| match err {
        StoreError::Token(refusal) => ApiError::forbidden(format!("enrollment token: {refusal}")),
        StoreError::Invalid { what } => ApiError::bad_request(what),
        other => ApiError::internal(other),
    })?;
    // Only an enrollment that committed leaves certificates in the CA directory (which
    // `cert list` and `cert revoke` read); one that was refused issued nothing.
    for issued in &kept {
        if let Err(err) = controller.ca.keep_issued(scope, issued) {
            tracing::error!(%node, serial = %issued.serial, %err, "certificate not kept in the CA directory");
        }
    }
    Ok((node, certificates))
}

/// A refusal inside a store transaction (it rolls back).
fn refused(what: String) -> StoreError {
    StoreError::Invalid { what }
}

#[derive(Debug, Deserialize)]
struct After {
    after: Option<u64>,
}

async fn bundle(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    after: Result<Query<After>, QueryRejection>,
) -> Result<Response, ApiError> {
    let node = connection.node()?.node;
    let Query(after) = after.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = after.after.unwrap_or(0);
    let mut generations = controller.generations();
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    loop {
        generations.borrow_and_update();
        if let Some(current) = controller.current(&node)
            && current.version > after
        {
            return Ok(Json::<SignedBundle>(current.signed).into_response());
        }
        if controller.current(&node).is_none() {
            return Err(ApiError::not_found(format!("{node} is not enrolled")));
        }
        match tokio::time::timeout_at(deadline, generations.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

async fn health(
    State(controller): State<Arc<Controller>>,
    connection: Connection,
    json: Result<Json<HealthReport>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let node = connection.node()?.node;
    let report = body(json)?;
    if report.node.is_some_and(|n| n != node) {
        return Err(ApiError::forbidden(format!(
            "{node} may only report for itself, not for {}",
            report.node.map(|n| n.to_string()).unwrap_or_default()
        )));
    }
    controller
        .ingest(node, &report, super::wall_clock())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long a node may stay silent before its links count as unknown (for callers that
/// want a figure; alerts have their own threshold).
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
