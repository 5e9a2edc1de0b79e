//! The controller's HTTPS service: one listener, TLS 1.3, for agents and operators.
//!
//! Client certificates are optional at the TLS layer (an enrolling agent has none yet) but
//! every certificate presented is verified there (chain to the national root, CRLs); after
//! the handshake the connection's caller is known — a node, an operator with a role (and
//! perhaps a province), or nobody — and each route says whom it serves ([`access`]).
//!
//! - Agents ([`agents`]): `POST /v1/enroll` (token + CSRs, no certificate),
//!   `GET /v1/agent/bundle?after=V` (long-poll), `POST /v1/agent/health`.
//! - Operators ([`admin`]): resources under `/v1/…`, read by role, changed by engineers;
//!   video-conference bookings ([`conferences`]) under `/v1/conferences`.
//!
//! Config follows the store. A reconciler ([`Controller::reconcile`], in `reconcile.rs`)
//! recomputes every node's bundle when the change log grows or a CRL file changes (whoever
//! made the change: this server, or the command line on the same directory), gives a node a
//! new version only when its bundle's content changed, signs it, and wakes the long-polls.

pub mod access;
pub mod admin;
pub mod agents;
pub mod audits;
pub mod conferences;
mod error;
pub mod monitor;
mod reconcile;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use agent::control::{ModelSources, SignedBundle};
use agent::model::Model;
use axum::Router;
use axum::extract::State;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pki::store::CaDir;
use pki::tls::{Caller, Credentials, SharedTrust};
use pki::{Authority, AuthorityScope, PrivateKey};
use tokio::net::TcpListener;
use tokio::sync::watch;
use topology::NodeId;
use tower::ServiceExt;

use crate::bundles;
use crate::health::HealthState;
use crate::store::Store;

pub use error::ApiError;

/// How often the reconciler looks for changes.
pub const RECONCILE_EVERY: Duration = Duration::from_millis(250);
/// How often the CRLs' age is checked.
const CRL_CHECK_EVERY: Duration = Duration::from_secs(60);
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The CA directory.
    #[error("CA directory: {0}")]
    Ca(#[from] pki::store::StoreError),
    /// The trust section of the bundles.
    #[error(transparent)]
    Bundle(#[from] bundles::BundleError),
    /// The controller's own key or certificate.
    #[error("{path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model (policy, plan, network).
    #[error("model: {0}")]
    Model(String),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Listening.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The files of the controller's own identity in the controller directory.
pub fn identity_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let base = dir.join("controller");
    (base.join("key.pem"), base.join("chain.pem"))
}

/// A node's current bundle, signed.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its version.
    pub version: u64,
    /// As sent.
    pub signed: SignedBundle,
}

/// The running controller's state, shared by every connection.
pub struct Controller {
    dir: PathBuf,
    /// The durable store.
    pub store: Store,
    /// The CAs.
    pub ca: CaDir,
    /// Verifies callers' certificates; replaced when a CRL changes.
    pub trust: Arc<SharedTrust>,
    key: PrivateKey,
    chain: String,
    credentials_pem: (String, String),
    state: RwLock<Model_>,
    bundles: RwLock<HashMap<NodeId, Current>>,
    /// Bumped whenever a bundle changes: the long-polls wait on it.
    generation: watch::Sender<u64>,
    reconciling: Mutex<reconcile::Fingerprint>,
    /// Link health from the agents' reports.
    pub health: Mutex<HealthState>,
    /// Alert rules and open alerts.
    pub alerts: Mutex<crate::alerts::AlertEngine>,
    /// API requests by route and status, for the metrics.
    pub requests: crate::metrics::ApiRequests,
    /// The underlay devices' state, when the store holds an SNMP inventory.
    pub snmp: Option<crate::snmp::DeviceStates>,
    poller: Mutex<Option<crate::snmp::Poller>>,
    /// The live isolation audit's probe orders by source node, with their generation (the
    /// reconciler puts them in those nodes' bundles while an audit runs).
    pub(crate) audit_orders: Mutex<(u64, HashMap<NodeId, agent::control::AuditOrder>)>,
    /// What agents reported of live audits, and their denied-flow records.
    pub observations: Mutex<crate::audit::live::Observations>,
    /// The video-conference bookings: the scheduler, kept in step with the store.
    pub conferences: Mutex<crate::bookings::Desk>,
    /// Operators already recorded in the store (login, role, province), so a connection
    /// writes only when someone new (or newly scoped) calls.
    operators_seen: Mutex<std::collections::HashSet<(String, pki::Role, Option<String>)>>,
}

#[allow(non_camel_case_types)]
struct Model_ {
    model: Arc<Model>,
    sources: ModelSources,
}

impl Controller {
    /// Opens the controller directory made by `jinbao-controller init`.
    pub fn open(dir: &Path) -> Result<Arc<Controller>, ServeError> {
        let store = Store::open(&dir.join("controller.db"))?;
        let alerts = monitor::restore_alerts(&store)?;
        let poller = match store.read(|tx| tx.setting("snmp-inventory"))? {
            Some(text) => {
                let inventory = crate::snmp::parse_inventory("store: snmp-inventory", &text)
                    .map_err(|e| ServeError::Model(format!("SNMP inventory: {e}")))?;
                Some(crate::snmp::Poller::new(
                    inventory,
                    crate::snmp::PollerConfig::default(),
                ))
            }
            None => None,
        };
        let ca = CaDir::at(dir);
        let trust = SharedTrust::new(ca.trust_bundle()?);
        let (key_path, chain_path) = identity_paths(dir);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| ServeError::Identity {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        let (key_pem, chain) = (read(&key_path)?, read(&chain_path)?);
        let key = PrivateKey::from_pem(&key_pem).map_err(|e| ServeError::Identity {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let sources = ModelSources {
            policy: store.read(|tx| tx.setting("policy"))?,
            ..ModelSources::default()
        };
        let model = Model::load(&sources).map_err(|e| ServeError::Model(e.to_string()))?;
        // The bookings acknowledged before, on the model's network.
        let conferences = crate::bookings::Desk::open(model.network.clone(), &store)
            .map_err(|e| ServeError::Model(format!("conference bookings: {e}")))?;
        let controller = Arc::new(Controller {
            dir: dir.to_owned(),
            store,
            ca,
            trust,
            key,
            chain: chain.clone(),
            credentials_pem: (chain, key_pem),
            state: RwLock::new(Model_ { model, sources }),
            bundles: RwLock::new(HashMap::new()),
            generation: watch::channel(0).0,
            // No trust hash matches the empty one: the first reconcile always computes.
            reconciling: Mutex::new(reconcile::Fingerprint::default()),
            health: Mutex::new(HealthState::default()),
            alerts: Mutex::new(alerts),
            requests: crate::metrics::ApiRequests::new()
                .map_err(|e| ServeError::Model(e.to_string()))?,
            snmp: poller.as_ref().map(crate::snmp::Poller::states),
            poller: Mutex::new(poller),
            operators_seen: Mutex::new(std::collections::HashSet::new()),
            conferences: Mutex::new(conferences),
            audit_orders: Mutex::new((0, HashMap::new())),
            observations: Mutex::new(crate::audit::live::Observations::default()),
        });
        controller.reconcile(wall_clock())?;
        Ok(controller)
    }

    /// The controller directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model bundles are computed on.
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&read(&self.state).model)
    }

    /// A node's current bundle.
    pub fn current(&self, node: &NodeId) -> Option<Current> {
        read(&self.bundles).get(node).cloned()
    }

    /// A receiver that changes whenever any bundle does.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The CA that issues for `node`.
    pub fn authority_for(&self, node: &NodeId) -> Result<Authority, pki::store::StoreError> {
        self.ca.authority(AuthorityScope::of_node(node))
    }

    /// Publishes the next CRL of every CA whose current one is two thirds through its
    /// life (as certificates renew at 2/3), so agents never hold an overdue CRL — an agent
    /// treats unknown revocation status as revoked. Returns how many were published; the
    /// next reconcile carries them to the agents.
    pub fn refresh_crls(&self, now: SystemTime) -> Result<usize, ServeError> {
        let mut published = 0;
        for scope in std::iter::once(AuthorityScope::Root).chain(self.ca.authorities()?) {
            let due = match self.ca.crl(scope) {
                Ok(der) => match pki::crl::CrlSummary::read(der.as_ref()) {
                    Ok(summary) => summary.next_update.is_none_or(|next| {
                        let life = next.duration_since(summary.this_update).unwrap_or_default();
                        now >= summary.this_update + life * 2 / 3
                    }),
                    Err(_) => true,
                },
                Err(_) => true,
            };
            if !due {
                continue;
            }
            let authority = match scope {
                AuthorityScope::Root => self.ca.root()?,
                _ => self.ca.authority(scope)?,
            };
            self.ca.publish_crl(&authority, now)?;
            tracing::info!(%scope, "CRL refreshed");
            published += 1;
        }
        Ok(published)
    }

    /// Serves on `listener` until `shutdown` resolves; the reconciler runs alongside.
    pub async fn serve(
        self: Arc<Controller>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let (chain, key) = &self.credentials_pem;
        let credentials = Credentials::from_pem(chain, key).map_err(|e| ServeError::Identity {
            path: identity_paths(&self.dir).1,
            reason: e.to_string(),
        })?;
        let tls = pki::tls::controller_server_config(Arc::clone(&self.trust), credentials)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let app = router(Arc::clone(&self));
        let reconciler = tokio::spawn(reconcile::reconcile_forever(Arc::clone(&self)));
        let evaluator = tokio::spawn(monitor::evaluate_forever(Arc::clone(&self)));
        let poller = lock(&self.poller)
            .take()
            .map(|poller| tokio::spawn(poller.run(std::future::pending::<()>())));
        tokio::pin!(shutdown);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "accept");
                        continue;
                    }
                },
            };
            let (acceptor, app, controller) = (acceptor.clone(), app.clone(), Arc::clone(&self));
            connections.spawn(async move {
                connection(controller, acceptor, app, tcp, peer).await;
            });
            // Reap the finished ones as we go.
            while connections.try_join_next().is_some() {}
        }
        // Stopping ends every connection too: a held long-poll is closed, and its agent
        // asks again (of whoever serves next).
        connections.abort_all();
        reconciler.abort();
        evaluator.abort();
        if let Some(poller) = poller {
            poller.abort();
        }
        Ok(())
    }
}

/// One TLS connection: the handshake, the caller, then HTTP/1.1.
async fn connection(
    controller: Arc<Controller>,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::info!(%peer, %err, "TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    let certificates: Option<Vec<rustls_pki_types::CertificateDer<'static>>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
    let trust = controller.trust.current();
    let caller = certificates
        .as_deref()
        .and_then(|chain| pki::tls::caller(&trust, chain, wall_clock()).ok())
        .map(Arc::new);
    if let Some(Caller::Operator(op)) = caller.as_deref() {
        remember_operator(&controller, op).await;
    }
    // A kept connection is checked again whenever the CRLs change: a certificate revoked
    // after the handshake loses its identity on the next request.
    let checked = Arc::new(Mutex::new((trust, caller)));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let caller = {
            let mut checked = lock(&checked);
            let current = controller.trust.current();
            if !Arc::ptr_eq(&checked.0, &current) {
                checked.1 = certificates
                    .as_deref()
                    .and_then(|chain| pki::tls::caller(&current, chain, wall_clock()).ok())
                    .map(Arc::new);
                checked.0 = current;
            }
            checked.1.clone()
        };
        request
            .extensions_mut()
            .insert(access::Connection { caller, peer });
        app.clone().oneshot(request)
    });
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, %err, "connection ended");
    }
}

/// Records an operator the first time they call (the store's operators are the people who
/// have used the API, with the role and scope their certificate gave them).
async fn remember_operator(controller: &Arc<Controller>, op: &pki::verify::OperatorIdentity) {
    let key = (op.login.clone(), op.role, op.province.clone());
    if !lock(&controller.operators_seen).insert(key) {
        return;
    }
    let mut record = crate::store::OperatorRecord {
        login: op.login.clone(),
        name: op.name.clone(),
        role: op.role,
        province: op.province.clone(),
        serial: None,
    };
    let worker = Arc::clone(controller);
    let who = format!("operator:{}", op.login);
    let done = tokio::task::spawn_blocking(move || {
        worker.store.write(|tx| {
            let known = tx
                .operators()?
                .into_iter()
                .find(|o| o.login == record.login);
            if let Some(known) = known {
                // `cert issue` recorded them (with their serial): keep that; write only
                // when the certificate says something new.
                if (&known.name, known.role, &known.province)
                    == (&record.name, record.role, &record.province)
                {
                    return Ok(());
                }
                record.serial = known.serial;
            }
            tx.upsert_operator(&record, &who)
        })
    })
    .await;
    if !matches!(done, Ok(Ok(()))) {
        tracing::warn!(login = %op.login, "operator not recorded");
        lock(&controller.operators_seen).remove(&(op.login.clone(), op.role, op.province.clone()));
    }
}

/// Every route.
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .merge(agents::routes())
        .merge(admin::routes())
        .merge(monitor::routes())
        .merge(conferences::routes())
        .merge(audits::routes())
        .fallback(
            |uri: axum::http::Uri| async move { ApiError::not_found(format!("no route {uri}")) },
        )
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not allowed on {}", uri.path()),
                )
            },
        )
        .layer(axum::middleware::from_fn(json_refusals))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&controller),
            count_request,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            agent::control::MAX_BODY,
        ))
        .with_state(controller)
}

/// Every refusal is `{"error": "…"}`: a plain-text one from an extractor or a layer (a body
/// over the limit, a query that does not parse) is wrapped.
async fn json_refusals(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let text = match http_body_util::BodyExt::collect(response.into_body()).await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("refused").to_owned()
    } else {
        text
    };
    ApiError::new(status, message).into_response()
}

/// Counts every request by route pattern and status.
async fn count_request(
    State(controller): State<Arc<Controller>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    controller
        .requests
        .record(&route, response.status().as_u16());
    response
}

/// The caller of a connection, if it presented a certificate.
pub type CallerRef = Option<Arc<Caller>>;

/// The service reads the wall clock at its edge — a request arriving, a reconcile tick —
/// and passes the time in to everything below.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock() -> SystemTime {
    SystemTime::now()
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Controller {
    /// Takes an agent's health report.
    pub fn ingest(
        &self,
        node: NodeId,
        report: &agent::control::Status,
        now: SystemTime,
    ) -> Result<(), crate::health::HealthError> {
        lock(&self.health).ingest(node, report, now)?;
        let model = self.model();
        lock(&self.observations).ingest(&model, node, report, now);
        Ok(())
    }

    /// Gives the nodes in `orders` their live-audit probes (or, empty, takes them back)
    /// and pushes the bundles that change.
    pub fn set_audit_orders(
        &self,
        orders: HashMap<NodeId, agent::control::AuditOrder>,
        now: SystemTime,
    ) -> Result<usize, ServeError> {
        {
            let mut current = lock(&self.audit_orders);
            current.0 += 1;
            current.1 = orders;
        }
        self.reconcile(now)
    }
}
