//! An agent's life with its controller: enrollment, then following its config and
//! reporting its health — while forwarding on its last good bundle whatever the controller
//! does.
//!
//! The agent directory holds the keys ([`KeyDir`]: the TLS key and one WireGuard key per
//! plane, made here and never sent), the national root (`root.pem`, given at enrollment),
//! and the last good signed bundle (`bundle.json`, replaced atomically, only after its
//! signature and version checked). A restarted agent starts from that file, checked again
//! against the root, so it forwards before it has heard from the controller — and keeps
//! forwarding when it never does.
//!
//! Enrollment trusts the controller by the root alone (no CRLs yet; the token is single-use
//! and short-lived). Every later call is mutual TLS with the node certificate, the
//! controller checked against the bundle's full trust (root, CAs, CRLs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pki::files::{self, Secrecy};
use pki::tls::{ControllerTrust, Credentials, SharedTrust};
use pki::{KeyAlgorithm, TrustBundle};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::watch;
use topology::{NodeId, Plane};

use crate::client::{ClientError, ControllerClient, Session};
use crate::control::{
    Bundle, EnrollRequest, PlaneEnrollment, SignedBundle, SignedBundleError, Status, Verifier,
};
use crate::identity::{IdentityError, KeyDir, read_wireguard_secret};
use crate::model::Model;
use crate::runtime::Control;

/// How often health is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between attempts to reach an unreachable controller.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why enrolling or following failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Keys or requests.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The controller.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A bundle that does not verify or apply.
    #[error(transparent)]
    Bundle(#[from] SignedBundleError),
    /// A file of the agent directory.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// TLS set-up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The model the bundle names.
    #[error("model: {0}")]
    Model(String),
}

/// The agent directory.
#[derive(Debug, Clone)]
pub struct AgentDir {
    dir: PathBuf,
    report_every: Duration,
}

/// A plane to enroll on: where its instance listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// The plane.
    pub plane: Plane,
    /// Its underlay address.
    pub listen: SocketAddr,
    /// A second underlay address, if the node has a second carrier.
    pub backup: Option<SocketAddr>,
}

impl AgentDir {
    /// The agent directory `dir` (nothing is read yet).
    pub fn at(dir: &Path) -> AgentDir {
        AgentDir {
            dir: dir.to_owned(),
            report_every: REPORT_EVERY,
        }
    }

    /// Reports health every `every` instead of [`REPORT_EVERY`].
    pub fn reporting_every(mut self, every: Duration) -> AgentDir {
        self.report_every = every;
        self
    }

    /// The keys.
    pub fn keys(&self) -> KeyDir {
        KeyDir::new(&self.dir)
    }

    /// The last good bundle's file.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join("bundle.json")
    }

    /// The national root's file.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// Enrolls `node` with a one-time token: makes the keys it lacks, sends a CSR per plane,
    /// checks the answer against `root_pem` and keeps the root and the first bundle.
    pub async fn enroll(
        &self,
        controller: SocketAddr,
        token: &str,
        root_pem: &str,
        node: NodeId,
        planes: &[Listen],
        model: &Model,
    ) -> Result<Bundle, FollowError> {
        let root = root_certificate(root_pem, &self.root_path())?;
        let keys = self.keys();
        let mut enrollments = Vec::new();
        for listen in planes {
            if !keys.wireguard_key_path(listen.plane).exists() {
                keys.generate(listen.plane, KeyAlgorithm::EcdsaP256)?;
            }
            let csr = keys.request(&model.network, &model.allocation, node, listen.plane, None)?;
            enrollments.push(PlaneEnrollment {
                plane: listen.plane,
                csr,
                listen: listen.listen,
                backup_listen: listen.backup,
            });
        }
        let tls =
            pki::tls::controller_client_config(ControllerTrust::Bootstrap(root.clone()), None)
                .map_err(|e| FollowError::Tls(e.to_string()))?;
        let client = ControllerClient::new(controller, tls);
        let answer = client
            .enroll(&EnrollRequest {
                token: token.to_owned(),
                planes: enrollments,
            })
            .await?;
        #[allow(clippy::disallowed_methods)] // the wall clock checks certificate validity
        let bundle =
            answer
                .bundle
                .open(Verifier::Root(&root), Some(node), None, SystemTime::now())?;
        self.write(&self.root_path(), root_pem.as_bytes())?;
        self.keep(&answer.bundle)?;
        Ok(bundle)
    }

    /// The last good bundle, checked against the root.
    pub fn last_good(&self) -> Result<Bundle, FollowError> {
        let path = self.bundle_path();
        let text = self.read(&path)?;
        let signed: SignedBundle = serde_json::from_str(&text).map_err(|e| FollowError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let root_pem = self.read(&self.root_path())?;
        let root = root_certificate(&root_pem, &self.root_path())?;
        #[allow(clippy::disallowed_methods)] // the wall clock checks certificate validity
        Ok(signed.open(Verifier::Root(&root), None, None, SystemTime::now())?)
    }

    /// The WireGuard private keys of the bundle's planes.
    pub fn wireguard_keys(&self, bundle: &Bundle) -> Result<Vec<(Plane, [u8; 32])>, FollowError> {
        bundle
            .planes
            .iter()
            .map(|plane| {
                let path = self.dir.join(&plane.private_key);
                Ok((plane.plane, read_wireguard_secret(&path)?))
            })
            .collect()
    }

    /// Keeps a signed bundle as the last good one: what the agent starts from when it
    /// restarts without a controller. Whoever runs a core on a bundle keeps it first.
    pub fn keep(&self, signed: &SignedBundle) -> Result<(), FollowError> {
        let text = serde_json::to_string_pretty(signed).map_err(|e| FollowError::File {
            path: self.bundle_path(),
            reason: e.to_string(),
        })?;
        self.write(&self.bundle_path(), text.as_bytes())
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), FollowError> {
        files::replace(path, bytes, Secrecy::Public).map_err(|e| FollowError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    fn read(&self, path: &Path) -> Result<String, FollowError> {
        std::fs::read_to_string(path).map_err(|e| FollowError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The mutual-TLS client for `bundle`: the node certificate of its first plane and the
    /// TLS key; the controller checked against the bundle's trust.
    fn client(
        &self,
        controller: SocketAddr,
        bundle: &Bundle,
    ) -> Result<ControllerClient, FollowError> {
        let trust = trust_of(bundle)?;
        let key = self.read(&self.keys().tls_key_path())?;
        let chain = bundle
            .planes
            .first()
            .map(|p| p.certificate.clone())
            .unwrap_or_default();
        let credentials =
            Credentials::from_pem(&chain, &key).map_err(|e| FollowError::Tls(e.to_string()))?;
        let tls = pki::tls::controller_client_config(
            ControllerTrust::Full(SharedTrust::new(trust)),
            Some(credentials),
        )
        .map_err(|e| FollowError::Tls(e.to_string()))?;
        Ok(ControllerClient::new(controller, tls))
    }

    /// A kept-open mutual-TLS session with the controller, as health reports use.
    pub fn session(&self, controller: SocketAddr, bundle: &Bundle) -> Result<Session, FollowError> {
        Ok(Session::new(self.client(controller, bundle)?))
    }

    /// Follows the controller until `stop` changes: applies every newer bundle to `running`
    /// (keeping it on disk first), and reports health every [`REPORT_EVERY`]. Never gives
    /// up on an unreachable controller; the agent forwards on what it has meanwhile.
    pub async fn follow(
        &self,
        controller: SocketAddr,
        mut bundle: Bundle,
        running: &Control,
        mut stop: watch::Receiver<bool>,
    ) {
        let reporter = self.report(controller, bundle.clone(), running.status.clone());
        tokio::pin!(reporter);
        let mut backoff = Duration::from_millis(200);
        loop {
            let client = match self.client(controller, &bundle) {
                Ok(client) => client,
                Err(err) => {
                    tracing::error!(%err, "cannot talk to the controller");
                    return;
                }
            };
            let next = tokio::select! {
                _ = stop.changed() => return,
                () = &mut reporter => return,
                next = client.next_bundle(bundle.version) => next,
            };
            match next {
                Ok(None) => backoff = Duration::from_millis(200),
                Ok(Some(signed)) => {
                    backoff = Duration::from_millis(200);
                    match self.apply(&bundle, &signed, running).await {
                        Ok(applied) => bundle = applied,
                        Err(err) => tracing::warn!(%err, "bundle refused"),
                    }
                }
                Err(err) => {
                    tracing::info!(%err, ?backoff, "controller unreachable; forwarding on the last good bundle");
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Checks a signed bundle against the running one's trust, keeps it, applies it.
    async fn apply(
        &self,
        running_bundle: &Bundle,
        signed: &SignedBundle,
        running: &Control,
    ) -> Result<Bundle, FollowError> {
        let trust = trust_of(running_bundle)?;
        #[allow(clippy::disallowed_methods)] // the wall clock checks certificate validity
        let bundle = signed.open(
            Verifier::Trust(&trust),
            Some(running_bundle.node),
            Some(running_bundle.version),
            SystemTime::now(),
        )?;
        let model = Model::load(&bundle.model).map_err(|e| FollowError::Model(e.to_string()))?;
        let keys = self.wireguard_keys(&bundle)?;
        self.keep(signed)?;
        match running.reconfigure(bundle.clone(), keys, model).await {
            Some(Ok(done)) => {
                tracing::info!(version = bundle.version, ?done, "bundle applied");
                Ok(bundle)
            }
            Some(Err(err)) => Err(FollowError::Tls(format!("applying: {err}"))),
            None => Err(FollowError::Tls("the agent has stopped".into())),
        }
    }

    /// Reports the status on a kept connection, every [`REPORT_EVERY`] or as set, with the
    /// trust of the first bundle.
    async fn report(
        &self,
        controller: SocketAddr,
        bundle: Bundle,
        status: watch::Receiver<Status>,
    ) {
        let mut tick = tokio::time::interval(self.report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut session: Option<Session> = None;
        loop {
            tick.tick().await;
            if session.is_none() {
                session = self.client(controller, &bundle).ok().map(Session::new);
            }
            let Some(current) = &mut session else {
                continue;
            };
            let report = status.borrow().clone();
            if let Err(err) = current.report(&report).await {
                tracing::debug!(%err, "health report not delivered");
                session = None;
            }
        }
    }
}

/// The bundle's trust section as a verifier.
fn trust_of(bundle: &Bundle) -> Result<std::sync::Arc<TrustBundle>, FollowError> {
    crate::node::trust_bundle(bundle).map_err(|e| FollowError::Tls(e.to_string()))
}

fn root_certificate(pem: &str, path: &Path) -> Result<CertificateDer<'static>, FollowError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| FollowError::File {
        path: path.to_owned(),
        reason: "not a PEM certificate".into(),
    })
}
