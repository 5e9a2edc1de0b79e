//! Fetching a [`Snapshot`] from the controller's admin API, over mutual TLS with an
//! operator's certificate, on one kept connection (the agent's [`Session`]).
//!
//! Every call is bounded by the session's timeout, so a controller that stops answering
//! makes a refresh fail within seconds and the dashboard says so; it never hangs the
//! screen (the loop that calls this runs apart from the one that draws).

use std::net::SocketAddr;
use std::path::Path;

use agent::client::{ClientError, LoginError, Session};
use controller::alerts::{AlertChange, AlertId};
use controller::health::LinkKey;

use crate::feed::{LinkHistory, Snapshot};

/// Why the dashboard cannot talk to the controller.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The operator's login files do not make a session.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// A call failed.
    #[error("{path}: {source}")]
    Call {
        /// The API path.
        path: String,
        /// Why.
        source: ClientError,
    },
}

/// The operator's way in: the root CA that signed the controller, and the operator's
/// certificate chain and key (what `jinbao-controller cert issue` made).
pub fn connect(
    controller: SocketAddr,
    root: &Path,
    certificate: &Path,
    key: &Path,
) -> Result<Session, FetchError> {
    Ok(agent::client::operator_session(
        controller,
        root,
        certificate,
        key,
    )?)
}

/// Everything the views show, and the history of `watched` when a link is open.
pub async fn fetch(
    session: &mut Session,
    watched: Option<LinkKey>,
) -> Result<Snapshot, FetchError> {
    let mut snapshot = Snapshot {
        links: get(session, "/v1/links").await?,
        alerts: get(session, "/v1/alerts").await?,
        conferences: get(session, "/v1/conferences").await?,
        certificates: get(session, "/v1/certificates/expiry").await?,
        devices: get(session, "/v1/snmp/devices").await?,
        ..Snapshot::default()
    };
    snapshot.audit = match session.get("/v1/audits/latest").await {
        Ok(audit) => Some(audit),
        // No audit run yet, or a controller without audits: the view says so.
        Err(ClientError::Refused { status: 404, .. }) => None,
        Err(source) => {
            return Err(FetchError::Call {
                path: "/v1/audits/latest".into(),
                source,
            });
        }
    };
    if let Some(link) = watched {
        let path = format!(
            "/v1/links/history?plane={}&parent={}&child={}",
            link.plane, link.parent, link.child
        );
        snapshot.history = match session.get(&path).await {
            Ok(samples) => Some(LinkHistory { link, samples }),
            Err(ClientError::Refused { status: 404, .. }) => None,
            Err(source) => return Err(FetchError::Call { path, source }),
        };
    }
    Ok(snapshot)
}

/// Acknowledges an alert as the operator (engineers only; the controller says no to others).
pub async fn acknowledge(session: &mut Session, id: AlertId) -> Result<AlertChange, FetchError> {
    let path = format!("/v1/alerts/{id}/ack");
    session
        .post(&path, &serde_json::json!({}))
        .await
        .map_err(|source| FetchError::Call { path, source })
}

async fn get<T: serde::de::DeserializeOwned>(
    session: &mut Session,
    path: &str,
) -> Result<T, FetchError> {
    session.get(path).await.map_err(|source| FetchError::Call {
        path: path.to_owned(),
        source,
    })
}
