//! The CA directory: the controller's CAs, what they issued and revoked, and their CRLs, as
//! plain PEM files an operator can hand straight to openssl.
//!
//! ```text
//! DIR/ca/root.pem  root.key                  the national root (key 0600, directory 0700)
//! DIR/ca/authorities/<scope>.pem <scope>.key ministry, 11 … 65: the issuing CAs
//! DIR/ca/issued/<scope>/<serial>.pem         every leaf issued, named by serial (hex)
//! DIR/ca/revoked.txt                         `<serial> <scope> <reason> <unix seconds>`
//! DIR/ca/crl/<scope>.crl.pem                 each CA's current CRL (root included)
//! ```
//!
//! Rules: a CA that exists is never overwritten; every file is written atomically
//! ([`crate::files`]); the next CRL's number is read from the current one, so there is no
//! second copy of it to disagree. Every CA publishes a CRL from the moment it exists, which is
//! what lets verifiers check the whole chain and refuse unknown status. Issue 5 moves issued
//! certificates and revocations into the controller's database; the CA files stay files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use topology::Network;
use topology::plan::Allocation;

use crate::authority::{Authority, Issued, Reason, Revocation, Serial, pem_crl};
use crate::binding::AuthorityScope;
use crate::crl::CrlSummary;
use crate::files::{self, FileError, Secrecy};
use crate::inspect::Summary;
use crate::key::KeyAlgorithm;
use crate::verify::TrustBundle;
use crate::{PkiError, profile};

/// What went wrong with the CA directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// No root CA yet.
    #[error("no CA in {}: run `jinbao-controller ca init` first", .0.display())]
    NotInitialised(PathBuf),
    /// The CA exists; it is never overwritten.
    #[error("{} already exists: a CA is never overwritten", .0.display())]
    Exists(PathBuf),
    /// No issuing CA for that scope yet.
    #[error("no {0} CA yet: run `jinbao-controller ca province {0}`")]
    NoAuthority(AuthorityScope),
    /// A stored file is not what it should be.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, for text files.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// No certificate with that serial was issued here.
    #[error("no certificate with serial {0} was issued by this CA directory")]
    UnknownSerial(Serial),
    /// Revoked already.
    #[error("{0} is already revoked")]
    AlreadyRevoked(Serial),
    /// A PKI operation failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// A certificate in the directory and what it is.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The CA that issued it.
    pub authority: AuthorityScope,
    /// Its file.
    pub path: PathBuf,
    /// What it says.
    pub summary: Summary,
}

/// The issued certificates, and the files that could not be read (reported, never dropped).
#[derive(Debug, Default)]
pub struct Listing {
    /// Readable certificates, soonest expiry first.
    pub certificates: Vec<Stored>,
    /// Files that are not readable certificates.
    pub unreadable: Vec<StoreError>,
}

/// The CA directory under `DIR/ca`.
#[derive(Debug, Clone)]
pub struct CaDir {
    dir: PathBuf,
}

impl CaDir {
    /// The CA directory of the controller directory `dir` (nothing is read yet).
    pub fn at(dir: &Path) -> CaDir {
        CaDir {
            dir: dir.join("ca"),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the national root and its first CRL.
    pub fn init(&self, algorithm: KeyAlgorithm, now: SystemTime) -> Result<Authority, StoreError> {
        files::create_dir(&self.dir, Secrecy::Secret)?;
        let root = Authority::create_root(algorithm, now)?;
        self.keep_authority(&root, &self.dir.join("root"))?;
        self.publish_crl(&root, now)?;
        tracing::info!(dir = %self.dir.display(), %algorithm, "national root CA created");
        Ok(root)
    }

    /// The root CA.
    pub fn root(&self) -> Result<Authority, StoreError> {
        let base = self.dir.join("root");
        if !pem_path(&base).exists() {
            return Err(StoreError::NotInitialised(self.dir.clone()));
        }
        load_authority(&base)
    }

    /// Creates the issuing CA of `scope` (ministry or a province), signed by the root.
    pub fn create_authority(
        &self,
        scope: AuthorityScope,
        algorithm: KeyAlgorithm,
        network: &Network,
        allocation: &Allocation,
        now: SystemTime,
    ) -> Result<Authority, StoreError> {
        let root = self.root()?;
        let base = self.authority_base(scope);
        if pem_path(&base).exists() {
            return Err(StoreError::Exists(pem_path(&base)));
        }
        let authority = root.create_issuing(scope, algorithm, network, allocation, now)?;
        files::create_dir(&self.dir.join("authorities"), Secrecy::Secret)?;
        self.keep_authority(&authority, &base)?;
        self.publish_crl(&authority, now)?;
        tracing::info!(%scope, "issuing CA created");
        Ok(authority)
    }

    /// The issuing CA of `scope`.
    pub fn authority(&self, scope: AuthorityScope) -> Result<Authority, StoreError> {
        let base = self.authority_base(scope);
        if !pem_path(&base).exists() {
            self.root()?;
            return Err(StoreError::NoAuthority(scope));
        }
        load_authority(&base)
    }

    /// The scopes that have an issuing CA: the ministry first, then provinces by code.
    pub fn authorities(&self) -> Result<Vec<AuthorityScope>, StoreError> {
        let dir = self.dir.join("authorities");
        let mut scopes = BTreeSet::new();
        for name in file_names(&dir)? {
            if let Some(stem) = name.strip_suffix(".pem") {
                let scope = stem.parse().map_err(|reason| StoreError::Corrupt {
                    path: dir.join(&name),
                    line: None,
                    reason,
                })?;
                scopes.insert(scope);
            }
        }
        Ok(scopes.into_iter().collect())
    }

    /// Keeps a certificate just issued by `authority`; returns its file.
    pub fn keep_issued(
        &self,
        authority: AuthorityScope,
        issued: &Issued,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.dir.join("issued").join(authority.to_string());
        files::create_dir(&dir, Secrecy::Public)?;
        let path = dir.join(format!("{}.pem", issued.serial));
        files::create_new(&path, issued.pem().as_bytes(), Secrecy::Public)?;
        Ok(path)
    }

    /// Every certificate issued here, soonest expiry first.
    pub fn issued(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        let issued = self.dir.join("issued");
        for scope_name in file_names(&issued)? {
            let Ok(authority) = scope_name.parse::<AuthorityScope>() else {
                continue;
            };
            let dir = issued.join(&scope_name);
            for name in file_names(&dir)? {
                if !name.ends_with(".pem") {
                    continue;
                }
                let path = dir.join(&name);
                match read_certificate(&path) {
                    Ok((_, summary)) => listing.certificates.push(Stored {
                        authority,
                        path,
                        summary,
                    }),
                    Err(err) => listing.unreadable.push(err),
                }
            }
        }
        listing.certificates.sort_by(|a, b| {
            (a.summary.not_after, &a.summary.serial).cmp(&(b.summary.not_after, &b.summary.serial))
        });
        Ok(listing)
    }

    /// Revokes an issued certificate and publishes its CA's next CRL.
    pub fn revoke(
        &self,
        serial: &Serial,
        reason: Reason,
        now: SystemTime,
    ) -> Result<(AuthorityScope, CrlSummary), StoreError> {
        let stored = self
            .issued()?
            .certificates
            .into_iter()
            .find(|s| s.summary.serial == *serial)
            .ok_or_else(|| StoreError::UnknownSerial(serial.clone()))?;
        let mut revoked = self.revocations()?;
        if revoked.iter().any(|(_, r)| r.serial == *serial) {
            return Err(StoreError::AlreadyRevoked(serial.clone()));
        }
        let authority = self.authority(stored.authority)?;
        revoked.push((
            stored.authority,
            Revocation {
                serial: serial.clone(),
                reason,
                revoked_at: now,
            },
        ));
        let text: String = revoked
            .iter()
            .map(|(scope, r)| revocation_line(*scope, r))
            .collect();
        files::replace(&self.revoked_path(), text.as_bytes(), Secrecy::Public)?;
        let crl = self.publish_crl(&authority, now)?;
        tracing::info!(%serial, %reason, authority = %stored.authority, "certificate revoked");
        Ok((stored.authority, crl))
    }

    /// Every revocation recorded, in the order they were made.
    pub fn revocations(&self) -> Result<Vec<(AuthorityScope, Revocation)>, StoreError> {
        let path = self.revoked_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(FileError::at(&path)(err).into()),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|(ix, line)| {
                parse_revocation(line).map_err(|reason| StoreError::Corrupt {
                    path: path.clone(),
                    line: Some(ix + 1),
                    reason,
                })
            })
            .collect()
    }

    /// Signs and stores the next CRL of `authority` (every revocation it made, valid for
    /// [`profile::CRL_LIFETIME`]); returns what it says.
    pub fn publish_crl(
        &self,
        authority: &Authority,
        now: SystemTime,
    ) -> Result<CrlSummary, StoreError> {
        let scope = authority.scope();
        let number = match self.crl(scope) {
            Ok(current) => read_crl_summary(&self.crl_path(scope), &current)?.number + 1,
            Err(StoreError::File(err)) if err.source.kind() == std::io::ErrorKind::NotFound => 1,
            Err(err) => return Err(err),
        };
        let mine: Vec<Revocation> = self
            .revocations()?
            .into_iter()
            .filter(|(s, _)| *s == scope)
            .map(|(_, r)| r)
            .collect();
        let der = authority.revocation_list(&mine, number, now, profile::CRL_LIFETIME)?;
        files::create_dir(&self.dir.join("crl"), Secrecy::Public)?;
        let path = self.crl_path(scope);
        files::replace(&path, pem_crl(&der).as_bytes(), Secrecy::Public)?;
        read_crl_summary(&path, &der)
    }

    /// The current CRL of `scope`.
    pub fn crl(
        &self,
        scope: AuthorityScope,
    ) -> Result<CertificateRevocationListDer<'static>, StoreError> {
        let path = self.crl_path(scope);
        let pem = fs::read(&path).map_err(FileError::at(&path))?;
        CertificateRevocationListDer::from_pem_slice(&pem)
            .map_err(|e| corrupt(&path, format!("not a PEM CRL ({e})")))
    }

    /// The current CRL's file.
    pub fn crl_path(&self, scope: AuthorityScope) -> PathBuf {
        self.dir.join("crl").join(format!("{scope}.crl.pem"))
    }

    /// The certificate file of the root or an issuing CA.
    pub fn certificate_path(&self, scope: AuthorityScope) -> PathBuf {
        match scope {
            AuthorityScope::Root => pem_path(&self.dir.join("root")),
            _ => pem_path(&self.authority_base(scope)),
        }
    }

    /// Root, every issuing CA and every CA's CRL: what a verifier of this PKI needs.
    pub fn trust_bundle(&self) -> Result<TrustBundle, StoreError> {
        let root = self.root()?;
        let scopes = self.authorities()?;
        let mut intermediates = Vec::with_capacity(scopes.len());
        let mut crls = vec![self.crl(AuthorityScope::Root)?];
        for scope in scopes {
            let path = self.certificate_path(scope);
            intermediates.push(read_certificate(&path)?.0);
            crls.push(self.crl(scope)?);
        }
        TrustBundle::new(root.certificate().clone(), intermediates, &crls)
            .map_err(|e| corrupt(&self.dir, e.to_string()))
    }

    fn keep_authority(&self, authority: &Authority, base: &Path) -> Result<(), StoreError> {
        let (key, pem) = (key_path(base), pem_path(base));
        for path in [&key, &pem] {
            if path.exists() {
                return Err(StoreError::Exists(path.clone()));
            }
        }
        // Key first: a certificate never exists without its key.
        files::create_new(&key, authority.key_pem().as_bytes(), Secrecy::Secret).map_err(exists)?;
        files::create_new(
            &pem,
            authority.certificate_pem().as_bytes(),
            Secrecy::Public,
        )
        .map_err(exists)
    }

    fn authority_base(&self, scope: AuthorityScope) -> PathBuf {
        self.dir.join("authorities").join(scope.to_string())
    }

    fn revoked_path(&self) -> PathBuf {
        self.dir.join("revoked.txt")
    }
}

fn pem_path(base: &Path) -> PathBuf {
    base.with_extension("pem")
}

fn key_path(base: &Path) -> PathBuf {
    base.with_extension("key")
}

fn exists(err: FileError) -> StoreError {
    if err.already_exists() {
        StoreError::Exists(err.path)
    } else {
        StoreError::File(err)
    }
}

fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        line: None,
        reason,
    }
}

fn load_authority(base: &Path) -> Result<Authority, StoreError> {
    let read = |path: PathBuf| fs::read_to_string(&path).map_err(FileError::at(&path));
    let certificate = read(pem_path(base))?;
    let key = read(key_path(base))?;
    Authority::load(&certificate, &key).map_err(|err| match err {
        PkiError::BadCertificate(reason) => corrupt(&pem_path(base), reason),
        PkiError::BadKey | PkiError::KeyMismatch => corrupt(&key_path(base), err.to_string()),
        other => StoreError::Pki(other),
    })
}

/// Reads a PEM certificate file.
pub fn read_certificate(path: &Path) -> Result<(CertificateDer<'static>, Summary), StoreError> {
    let pem = fs::read(path).map_err(FileError::at(path))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| corrupt(path, format!("not a PEM certificate ({e})")))?
        .into_owned();
    let summary = Summary::read(&der).map_err(|e| corrupt(path, e.to_string()))?;
    Ok((der, summary))
}

fn read_crl_summary(path: &Path, der: &[u8]) -> Result<CrlSummary, StoreError> {
    CrlSummary::read(der).map_err(|e| corrupt(path, e.to_string()))
}

/// The names in a directory (none if it does not exist yet), sorted.
fn file_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(FileError::at(dir)(err).into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FileError::at(dir))?;
        if let Some(name) = entry.file_name().to_str().filter(|n| !n.starts_with('.')) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn revocation_line(scope: AuthorityScope, r: &Revocation) -> String {
    let seconds = r
        .revoked_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{} {scope} {} {seconds}\n", r.serial, r.reason)
}

fn parse_revocation(line: &str) -> Result<(AuthorityScope, Revocation), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [serial, scope, reason, seconds] = fields[..] else {
        return Err(format!(
            "expected `<serial> <authority> <reason> <unix seconds>`, found `{line}`"
        ));
    };
    let seconds: u64 = seconds
        .parse()
        .map_err(|_| format!("bad time `{seconds}` (unix seconds)"))?;
    Ok((
        scope.parse()?,
        Revocation {
            serial: serial.parse()?,
            reason: reason.parse()?,
            revoked_at: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_lines_round_trip_and_bad_ones_say_why() {
        let revocation = Revocation {
            serial: "41aa".parse().unwrap(),
            reason: Reason::KeyCompromise,
            revoked_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        };
        let scope: AuthorityScope = "14".parse().unwrap();
        let line = revocation_line(scope, &revocation);
        assert_eq!(line, "41aa 14 key-compromise 1790000000\n");
        assert_eq!(parse_revocation(line.trim()), Ok((scope, revocation)));
        assert!(
            parse_revocation("41aa 14")
                .unwrap_err()
                .contains("expected")
        );
        assert!(
            parse_revocation("41aa 14 lost 1")
                .unwrap_err()
                .contains("unknown reason")
        );
        assert!(
            parse_revocation("xyz 14 superseded 1")
                .unwrap_err()
                .contains("bad serial")
        );
        assert!(
            parse_revocation("41aa 14 superseded soon")
                .unwrap_err()
                .contains("bad time")
        );
    }
}
