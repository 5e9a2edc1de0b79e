//! Making a controller directory: the CAs (root, ministry, every province), the
//! controller's own key and certificate, and the store. The command line's `init` and the
//! lab both start here.
//!
//! An existing root in `DIR/ca` (one made before, or one imported by copying its
//! certificate and key there) is used as it is, and existing CAs are kept: only what is
//! missing is created, and a directory that already has a store is refused. The missing
//! CAs are created several at once (each is its own files; the waits are the disk's).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use pki::files::{self, Secrecy};
use pki::store::CaDir;
use pki::{Authority, AuthorityScope, KeyAlgorithm, PrivateKey};
use topology::{Allocation, Network, Tier};

use crate::server::identity_paths;
use crate::store::{CertificateKind, CertificateRecord, Store, StoreError};

/// How long the controller's own certificate lasts (renewing it is not built yet: a year
/// from `init`).
pub const CONTROLLER_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// Why a controller directory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The directory already has a store.
    #[error("{0} is already a controller directory (it has a store)")]
    Exists(String),
    /// The CAs.
    #[error("CA directory: {0}")]
    Ca(#[from] pki::store::StoreError),
    /// Keys, certificates, files.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The controller certificate was refused.
    #[error("the controller certificate: {0}")]
    Issue(#[from] pki::IssueRefusal),
    /// A file.
    #[error(transparent)]
    File(#[from] pki::files::FileError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`init`] made.
pub struct Initialised {
    /// The national root.
    pub root: Authority,
    /// Issuing CAs created now (ministry, provinces).
    pub created: usize,
}

/// Threads creating issuing CAs at once.
const CA_THREADS: usize = 8;

/// Creates the issuing CAs of `scopes` (each its key, certificate and first CRL, every file
/// synced), several at once: each is a handful of fsync'd files of its own, so on a disk
/// that takes milliseconds per sync, 32 of them one after the other are most of `init`.
fn create_authorities(
    ca: &CaDir,
    scopes: &[AuthorityScope],
    algorithm: KeyAlgorithm,
    network: &Network,
    allocation: &Allocation,
    now: SystemTime,
) -> Result<(), SetupError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let create = || -> Result<(), SetupError> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&scope) = scopes.get(i) else {
                return Ok(());
            };
            ca.create_authority(scope, algorithm, network, allocation, now)?;
        }
    };
    std::thread::scope(|threads| {
        let workers: Vec<_> = (0..CA_THREADS.min(scopes.len()))
            .map(|_| threads.spawn(create))
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<()>, SetupError>>()
    })?;
    Ok(())
}

/// Makes the controller directory `dir` for `network`: CAs, the controller's certificate
/// (DNS names `jinbao-controller`, `localhost` and `names`; IP `addresses`, which must lie
/// in the ministry's blocks) and the store; `who` signs the change log.
pub fn init(
    dir: &Path,
    network: &Network,
    allocation: &Allocation,
    names: &[String],
    addresses: &[IpAddr],
    who: &str,
    now: SystemTime,
) -> Result<Initialised, SetupError> {
    let database = dir.join("controller.db");
    if database.exists() {
        return Err(SetupError::Exists(dir.display().to_string()));
    }
    let ca = CaDir::at(dir);
    let algorithm = KeyAlgorithm::EcdsaP256;
    let root = match ca.root() {
        Ok(root) => root,
        Err(_) => ca.init(algorithm, now)?,
    };
    let existing = ca.authorities()?;
    let provinces = network
        .nodes()
        .iter()
        .filter(|n| n.tier == Tier::Province)
        .map(|n| AuthorityScope::of_node(&n.id))
        .filter(|scope| matches!(scope, AuthorityScope::Province(_)));
    let mut missing: Vec<AuthorityScope> = std::iter::once(AuthorityScope::Ministry)
        .chain(provinces)
        .filter(|scope| !existing.contains(scope))
        .collect();
    missing.sort();
    missing.dedup();
    create_authorities(&ca, &missing, algorithm, network, allocation, now)?;
    let created = missing.len();
    let ministry = ca.authority(AuthorityScope::Ministry)?;
    let key = PrivateKey::generate(algorithm)?;
    let mut dns: Vec<String> = vec!["jinbao-controller".into(), "localhost".into()];
    dns.extend(names.iter().cloned());
    // Agents know the controller by its identity URI, not by an address; IP names must lie
    // in the ministry's blocks (its CA's name constraints), so loopback is never one.
    let issued = ministry.issue_controller(&key, &dns, addresses, now, CONTROLLER_LIFETIME)?;
    let (key_path, chain_path) = identity_paths(dir);
    if let Some(parent) = key_path.parent() {
        files::create_dir(parent, Secrecy::Secret)?;
    }
    files::create_new(&key_path, key.to_pem().as_bytes(), Secrecy::Secret)?;
    let chain = format!("{}{}", issued.pem(), ministry.certificate_pem());
    files::create_new(&chain_path, chain.as_bytes(), Secrecy::Public)?;
    let store = Store::open(&database)?;
    store.write(|tx| {
        tx.record_certificate(
            &CertificateRecord {
                serial: issued.serial.to_string(),
                subject: "jinbao-controller".into(),
                kind: CertificateKind::Controller,
                plane: None,
                issuer: AuthorityScope::Ministry.to_string(),
                not_after: issued.not_after,
                pem: issued.pem(),
                revoked: None,
            },
            who,
        )
    })?;
    Ok(Initialised { root, created })
}
