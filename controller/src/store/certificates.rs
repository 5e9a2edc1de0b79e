//! Issued certificates and their revocations: the state every CRL is built from.
//!
//! A revocation is permanent: re-recording a revoked serial keeps it revoked.

use std::time::SystemTime;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use topology::Plane;

use super::time::{from_ms, rfc3339, to_ms};
use super::{StoreError, Tx, canonical_serial, corrupt, sql};

/// Whom a certificate was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateKind {
    /// A node, on one plane.
    Node,
    /// An operator (engineer, auditor, NOC).
    Operator,
    /// The controller's own TLS identity.
    Controller,
}

impl CertificateKind {
    /// The kind as stored and written: `node`, `operator`, `controller`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Node => "node",
            CertificateKind::Operator => "operator",
            CertificateKind::Controller => "controller",
        }
    }

    fn parse(text: &str) -> Option<CertificateKind> {
        [
            CertificateKind::Node,
            CertificateKind::Operator,
            CertificateKind::Controller,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A certificate the controller issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Whom it names: a node id or an operator login.
    pub subject: String,
    /// Node, operator or controller.
    pub kind: CertificateKind,
    /// The plane, for node certificates.
    pub plane: Option<Plane>,
    /// The issuing CA's scope (`ministry`, a province code…).
    pub issuer: String,
    /// End of validity (millisecond precision).
    #[serde(with = "super::time::serde_rfc3339")]
    pub not_after: SystemTime,
    /// The certificate (PEM).
    pub pem: String,
    /// When and why it was revoked, if it was.
    #[serde(with = "revocation")]
    pub revoked: Option<(SystemTime, String)>,
}

impl Tx<'_> {
    /// Records an issued certificate, or updates the record of the same serial; a revoked
    /// certificate stays revoked whatever `rec.revoked` says. The serial is stored in
    /// lower-case hex.
    pub fn record_certificate(
        &mut self,
        rec: &CertificateRecord,
        who: &str,
    ) -> Result<(), StoreError> {
        let serial = canonical_serial(&rec.serial)?;
        let revoked_ms = rec.revoked.as_ref().map(|(at, _)| to_ms(*at)).transpose()?;
        self.conn()
            .execute(
                "INSERT INTO certificates (serial, subject, kind, plane, issuer, not_after_ms,
                                           pem, revoked_at_ms, revocation_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (serial) DO UPDATE SET
                    subject = excluded.subject,
                    kind = excluded.kind,
                    plane = excluded.plane,
                    issuer = excluded.issuer,
                    not_after_ms = excluded.not_after_ms,
                    pem = excluded.pem,
                    revoked_at_ms = coalesce(certificates.revoked_at_ms, excluded.revoked_at_ms),
                    revocation_reason =
                        coalesce(certificates.revocation_reason, excluded.revocation_reason)",
                params![
                    serial,
                    rec.subject,
                    rec.kind.as_str(),
                    rec.plane.map(Plane::as_str),
                    rec.issuer,
                    to_ms(rec.not_after)?,
                    rec.pem,
                    revoked_ms,
                    rec.revoked.as_ref().map(|(_, reason)| reason.as_str()),
                ],
            )
            .map_err(sql("recording a certificate"))?;
        let now = self.now();
        self.append_change(
            who,
            "record certificate",
            &json!({
                "serial": serial,
                "subject": rec.subject,
                "kind": rec.kind,
                "plane": rec.plane,
                "issuer": rec.issuer,
                "not_after": rfc3339(rec.not_after),
                "pem_sha256": hex::encode(Sha256::digest(rec.pem.as_bytes())),
                "revoked": rec.revoked.as_ref().map(|(at, reason)| {
                    json!({ "at": rfc3339(*at), "reason": reason })
                }),
            }),
            now,
        )?;
        Ok(())
    }

    /// Revokes the certificate `serial` at `at` for `reason`. `false` (and nothing logged)
    /// when no such certificate was recorded, it is revoked already, or `serial` is not hex.
    pub fn revoke_certificate(
        &mut self,
        serial: &str,
        reason: &str,
        at: SystemTime,
        who: &str,
    ) -> Result<bool, StoreError> {
        let Ok(serial) = canonical_serial(serial) else {
            return Ok(false);
        };
        let changed = self
            .conn()
            .execute(
                "UPDATE certificates SET revoked_at_ms = ?1, revocation_reason = ?2
                 WHERE serial = ?3 AND revoked_at_ms IS NULL",
                params![to_ms(at)?, reason, serial],
            )
            .map_err(sql("revoking a certificate"))?;
        if changed == 0 {
            return Ok(false);
        }
        self.append_change(
            who,
            "revoke certificate",
            &json!({ "serial": serial, "reason": reason }),
            at,
        )?;
        Ok(true)
    }

    /// Every recorded certificate, soonest expiry first.
    pub fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        let reading = "reading certificates";
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT serial, subject, kind, plane, issuer, not_after_ms, pem,
                        revoked_at_ms, revocation_reason
                 FROM certificates ORDER BY not_after_ms, serial",
            )
            .map_err(sql(reading))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(RawCertificate {
                    serial: row.get(0)?,
                    subject: row.get(1)?,
                    kind: row.get(2)?,
                    plane: row.get(3)?,
                    issuer: row.get(4)?,
                    not_after_ms: row.get(5)?,
                    pem: row.get(6)?,
                    revoked_at_ms: row.get(7)?,
                    revocation_reason: row.get(8)?,
                })
            })
            .map_err(sql(reading))?;
        let mut certificates = Vec::new();
        for row in rows {
            certificates.push(row.map_err(sql(reading))?.decode()?);
        }
        Ok(certificates)
    }
}

/// A `certificates` row as stored.
struct RawCertificate {
    serial: String,
    subject: String,
    kind: String,
    plane: Option<String>,
    issuer: String,
    not_after_ms: i64,
    pem: String,
    revoked_at_ms: Option<i64>,
    revocation_reason: Option<String>,
}

impl RawCertificate {
    fn decode(self) -> Result<CertificateRecord, StoreError> {
        let row = format!("certificate {}", self.serial);
        let kind = CertificateKind::parse(&self.kind)
            .ok_or_else(|| corrupt(format!("{row}: unknown kind `{}`", self.kind)))?;
        let plane = self
            .plane
            .map(|p| {
                p.parse::<Plane>()
                    .map_err(|e| corrupt(format!("{row} plane: {e}")))
            })
            .transpose()?;
        let revoked = match (self.revoked_at_ms, self.revocation_reason) {
            (Some(ms), Some(reason)) => Some((from_ms(ms, &format!("{row} revoked_at"))?, reason)),
            (None, None) => None,
            _ => {
                return Err(corrupt(format!(
                    "{row}: revocation time and reason must be both set or both empty"
                )));
            }
        };
        Ok(CertificateRecord {
            not_after: from_ms(self.not_after_ms, &format!("{row} not_after"))?,
            serial: self.serial,
            subject: self.subject,
            kind,
            plane,
            issuer: self.issuer,
            pem: self.pem,
            revoked,
        })
    }
}

/// serde for a revocation: `{"at": "<RFC 3339>", "reason": "…"}` or `null`.
mod revocation {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Revocation {
        #[serde(with = "crate::store::time::serde_rfc3339")]
        at: SystemTime,
        reason: String,
    }

    pub(super) fn serialize<S: Serializer>(
        revoked: &Option<(SystemTime, String)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        revoked
            .as_ref()
            .map(|(at, reason)| Revocation {
                at: *at,
                reason: reason.clone(),
            })
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(SystemTime, String)>, D::Error> {
        Ok(Option::<Revocation>::deserialize(d)?.map(|r| (r.at, r.reason)))
    }
}
