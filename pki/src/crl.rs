//! Reading a CRL back: its number, its update times and what it lists.
//!
//! The CA directory numbers each new CRL from the one before, and `crl show` tells an
//! operator whether a CRL is overdue; both need the CRL's content, not only its bytes. Input
//! is untrusted (a file on disk may be anything): any bytes give a value or an error.

use std::time::SystemTime;

use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::authority::{Reason, Serial};
use crate::profile::system_time;

/// Why a CRL could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// Not a DER CRL.
    #[error("malformed CRL: {0}")]
    BadDer(String),
    /// A CRL number that does not fit 64 bits (we never write one).
    #[error("CRL number out of range")]
    Number,
}

/// One listed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its serial number.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: SystemTime,
    /// Why, when the reason is one this PKI uses.
    pub reason: Option<Reason>,
}

/// What a CRL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    /// The issuing CA's common name.
    pub issuer: String,
    /// The CRL number (0 when absent).
    pub number: u64,
    /// This update.
    pub this_update: SystemTime,
    /// When the next CRL is due.
    pub next_update: Option<SystemTime>,
    /// The revoked certificates.
    pub listed: Vec<Listed>,
}

impl CrlSummary {
    /// Reads a DER CRL.
    pub fn read(der: &[u8]) -> Result<CrlSummary, CrlError> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| CrlError::BadDer(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CrlError::BadDer(format!(
                "{} bytes after the CRL",
                rest.len()
            )));
        }
        let number = match crl.crl_number().map(|n| n.to_u64_digits()) {
            None => 0,
            Some(digits) if digits.is_empty() => 0,
            Some(digits) if digits.len() == 1 => digits[0],
            Some(_) => return Err(CrlError::Number),
        };
        Ok(CrlSummary {
            issuer: crl
                .issuer()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_owned(),
            number,
            this_update: system_time(crl.last_update().to_datetime()),
            next_update: crl.next_update().map(|t| system_time(t.to_datetime())),
            listed: crl
                .iter_revoked_certificates()
                .map(|entry| Listed {
                    serial: Serial(entry.raw_serial().to_vec()),
                    revoked_at: system_time(entry.revocation_date.to_datetime()),
                    reason: entry
                        .reason_code()
                        .and_then(|(_, code)| Reason::from_code(code.0)),
                })
                .collect(),
        })
    }

    /// Whether the next update is past at `now` (a verifier would treat the CA as unknown).
    pub fn overdue(&self, now: SystemTime) -> bool {
        self.next_update.is_some_and(|next| next < now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authority::{Authority, Revocation};
    use crate::key::KeyAlgorithm;

    #[test]
    fn a_crl_reads_back_as_written() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let root = Authority::create_root(KeyAlgorithm::EcdsaP256, now).unwrap();
        let revoked = Revocation {
            serial: Serial(vec![0x41, 0x02, 0x03]),
            reason: Reason::KeyCompromise,
            revoked_at: now - Duration::from_secs(60),
        };
        let der = root
            .revocation_list(
                std::slice::from_ref(&revoked),
                7,
                now,
                Duration::from_secs(3600),
            )
            .unwrap();
        let summary = CrlSummary::read(&der).unwrap();
        assert_eq!(summary.issuer, "Jinbao WAN Root CA");
        assert_eq!(summary.number, 7);
        assert_eq!(
            summary.listed,
            vec![Listed {
                serial: revoked.serial,
                revoked_at: revoked.revoked_at,
                reason: Some(Reason::KeyCompromise),
            }]
        );
        assert_eq!(summary.next_update, Some(now + Duration::from_secs(3600)));
        assert!(!summary.overdue(now));
        assert!(summary.overdue(now + Duration::from_secs(3601)));
        assert!(CrlSummary::read(&der[..der.len() - 1]).is_err());
        assert!(CrlSummary::read(b"not a crl").is_err());
    }
}
