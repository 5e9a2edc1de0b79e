//! The agents' routes: enrollment, the config long-poll, health reports.
//!
//! Enrollment is one store transaction: the token is redeemed, every plane's CSR checked
//! (it must be for the token's node; the CA checks it against the topology and says what is
//! wrong) and issued, the node and its certificates recorded, each with its change-log
//! entry. Anything refused rolls the whole transaction back, so a token is spent only by an
//! enrollment that succeeded; a replayed token then finds it spent.
//!
//! Hundreds of agents enroll at once when a network comes up, so the work is arranged to
//! share what can be shared and keep the rest out of the way: the CSRs are read and their
//! signatures checked before the store is touched; the transaction is committed together
//! with the other enrollments waiting at that moment (a group commit: one `fsync` for all,
//! each still its own transaction in a savepoint, each answered only after that commit);
//! and the node's first bundle comes from a reconcile run shared with the enrollments
//! around it ([`Controller::reconcile_through`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agent::control::{
    EnrollRequest, EnrollResponse, HealthReport, LONG_POLL, PlaneEnrollment, SignedBundle,
};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pki::AuthorityScope;
use pki::request::{NodeRequest, Request, read_request_pem};
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
    let enrolled =
        tokio::task::spawn_blocking(move || enroll_now(&worker, request, super::wall_clock()))
            .await
            .map_err(ApiError::internal)??;
    let Enrolled {
        node,
        certificates,
        through,
        scope,
        kept,
    } = enrolled;
    // The node's first bundle (a reconcile run that read the log after this enrollment:
    // concurrent enrollments share runs), while the certificates are filed in the CA
    // directory; the answer waits for both.
    let now = super::wall_clock();
    let worker = Arc::clone(&controller);
    let filing =
        tokio::task::spawn_blocking(move || file_certificates(&worker, node, scope, &kept));
    let worker = Arc::clone(&controller);
    let reconciled = tokio::task::spawn_blocking(move || worker.reconcile_through(through, now));
    let filed = filing.await;
    reconciled
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    filed.map_err(ApiError::internal)?;
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

/// An enrollment committed.
struct Enrolled {
    node: topology::NodeId,
    /// Each plane's certificate chain (PEM).
    certificates: Vec<(topology::Plane, String)>,
    /// The change log's last entry of the enrollment: bundles must reflect it.
    through: u64,
    /// The CA that issued, and what it issued (to file in the CA directory).
    scope: AuthorityScope,
    kept: Vec<pki::Issued>,
}

/// A plane's CSR as read (its signature checked), or why it is refused.
type ReadCsr = Result<NodeRequest, String>;

fn enroll_now(
    controller: &Arc<Controller>,
    request: EnrollRequest,
    now: SystemTime,
) -> Result<Enrolled, ApiError> {
    let model = controller.model();
    // Before the store: each plane's CSR is read and its signature checked (the request's
    // own content: nothing is issued or stored on it yet), and the CA of the node the
    // request names is loaded — work that needs no lock. The refusals are reported inside
    // the transaction, after the token's, in the order they always were.
    let planes: Vec<(PlaneEnrollment, ReadCsr)> = request
        .planes
        .into_iter()
        .map(|plane| {
            let csr = read_csr(&plane);
            (plane, csr)
        })
        .collect();
    let named = planes
        .iter()
        .find_map(|(_, csr)| csr.as_ref().ok())
        .map(|csr| csr.binding.node);
    let preloaded = named.and_then(|node| controller.authority_for(&node).ok());
    let token = request.token;
    let worker = Arc::clone(controller);
    // One transaction per enrollment, committed with whatever other enrollments are
    // waiting (one fsync for all of them); acknowledged only once that commit returns.
    let result = controller.store.write_grouped(move |tx| {
        let node = tx.redeem_token(&token, now)?;
        let authority = match preloaded {
            Some(authority) if authority.scope() == AuthorityScope::of_node(&node) => authority,
            _ => worker
                .authority_for(&node)
                .map_err(|e| refused(format!("no CA for {node}: {e}")))?,
        };
        let who = format!("agent:{node}");
        let mut certificates = Vec::new();
        let mut kept = Vec::new();
        for (plane, csr) in &planes {
            let csr = csr.as_ref().map_err(|why| refused(why.clone()))?;
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
                    csr,
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
        let through = tx.change_head()?.map_or(0, |(seq, _)| seq);
        Ok(Enrolled {
            node,
            certificates,
            through,
            scope: authority.scope(),
            kept,
        })
    });
    result.map_err(|err| match err {
        StoreError::Token(refusal) => ApiError::forbidden(format!("enrollment token: {refusal}")),
        StoreError::Invalid { what } => ApiError::bad_request(what),
        other => ApiError::internal(other),
    })
}

/// Files an enrollment's certificates in the CA directory (which `cert list` and `cert
/// revoke` read). Only an enrollment that committed does: one that was refused issued
/// nothing. The store already holds them; a file that cannot be written is logged.
fn file_certificates(
    controller: &Controller,
    node: topology::NodeId,
    scope: AuthorityScope,
    kept: &[pki::Issued],
) {
    for issued in kept {
        if let Err(err) = controller.ca.keep_issued(scope, issued) {
            tracing::error!(%node, serial = %issued.serial, %err, "certificate not kept in the CA directory");
        }
    }
}

/// Reads a plane's CSR and checks its signature: a node's request, or why not (the message
/// an enrollment refused on it gives).
fn read_csr(plane: &PlaneEnrollment) -> ReadCsr {
    match read_request_pem(plane.csr.as_bytes()) {
        Ok(Request::Node(csr)) => Ok(csr),
        Ok(_) => Err(format!(
            "{} plane: an operator certificate request, not a node's",
            plane.plane
        )),
        Err(e) => Err(format!("{} plane: {e}", plane.plane)),
    }
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
