//! Who may do what: the caller of a connection, and the checks every route makes.
//!
//! Agents are nodes (their node certificate). Operators have one role: `engineer` changes
//! things, `auditor` reads everything, `noc` reads health and alerts. An operator scoped
//! to a province (分级管理) changes only nodes of that province; national changes (the
//! policy) need an unscoped engineer. Every refusal names what was needed and what the
//! caller has.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use pki::tls::Caller;
use pki::verify::{NodeIdentity, OperatorIdentity};
use pki::{AuthorityScope, Role};
use topology::NodeId;

use super::ApiError;

/// The connection a request came on: its verified caller, if any.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Who presented a certificate.
    pub caller: Option<Arc<Caller>>,
    /// The TCP peer.
    pub peer: SocketAddr,
}

impl<S: Send + Sync> FromRequestParts<S> for Connection {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Connection>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a request without its connection"))
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health and alerts: noc, auditor or engineer.
    Health,
    /// Anything else to read: auditor or engineer.
    Read,
    /// A change to a node (its province decides the scope).
    Change(NodeId),
    /// A national change: an engineer without a province scope.
    NationalChange,
    /// Taking an alert: an engineer of any scope.
    Acknowledge,
    /// Running an isolation audit: an auditor or an engineer (reading one is
    /// [`Need::Health`]: the NOC's dashboard shows the last).
    Audit,
    /// Booking video conferences (filing, approving, placing, cancelling): an engineer;
    /// the route then checks the scope against the conference's main venue
    /// ([`Need::Change`]).
    Book,
}

impl Connection {
    /// The node on the other end, or a refusal.
    pub fn node(&self) -> Result<&NodeIdentity, ApiError> {
        match self.caller.as_deref() {
            Some(Caller::Node(node)) => Ok(node),
            Some(Caller::Operator(op)) => Err(ApiError::forbidden(format!(
                "this is an agent route and needs a node certificate; {} presented an operator certificate",
                op.login
            ))),
            None => Err(ApiError::unauthenticated(
                "this is an agent route and needs a node certificate (mutual TLS)",
            )),
        }
    }

    /// The operator on the other end if they may do what `need` says, or a refusal that
    /// says what was needed.
    pub fn operator(&self, need: Need) -> Result<&OperatorIdentity, ApiError> {
        let op = match self.caller.as_deref() {
            Some(Caller::Operator(op)) => op,
            Some(Caller::Node(node)) => {
                return Err(ApiError::forbidden(format!(
                    "this is an operator route and needs an operator certificate; {} presented a node certificate",
                    node.node
                )));
            }
            None => {
                return Err(ApiError::unauthenticated(
                    "this is an operator route and needs an operator certificate (mutual TLS)",
                ));
            }
        };
        allowed(op, need).map(|()| op)
    }
}

/// Whether `op` may do what `need` says; the refusal names the role or scope needed.
pub fn allowed(op: &OperatorIdentity, need: Need) -> Result<(), ApiError> {
    let roles: &[Role] = match need {
        Need::Health => &[Role::Noc, Role::Auditor, Role::Engineer],
        Need::Read | Need::Audit => &[Role::Auditor, Role::Engineer],
        Need::Change(_) | Need::NationalChange | Need::Acknowledge | Need::Book => {
            &[Role::Engineer]
        }
    };
    if !roles.contains(&op.role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::forbidden(format!(
            "this needs the role {}; {} has the role {}",
            names.join(" or "),
            op.login,
            op.role
        )));
    }
    let Some(scope) = &op.province else {
        return Ok(());
    };
    match need {
        Need::Change(node) => match AuthorityScope::of_node(&node) {
            AuthorityScope::Province(province) if province.to_string() == *scope => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "{node} is outside province {scope}: this change needs an engineer of {} or a national engineer; {} is scoped to province {scope}",
                province_of(&node),
                op.login
            ))),
        },
        Need::NationalChange => Err(ApiError::forbidden(format!(
            "this is a national change and needs an engineer without a province scope; {} is scoped to province {scope}",
            op.login
        ))),
        Need::Health | Need::Read | Need::Audit | Need::Acknowledge | Need::Book => Ok(()),
    }
}

fn province_of(node: &NodeId) -> String {
    match AuthorityScope::of_node(node) {
        AuthorityScope::Province(p) => format!("province {p}"),
        _ => "the ministry".to_owned(),
    }
}
