//! Certificate profiles: lifetimes, serial numbers and the time conversions they need.
//!
//! Node certificates are short-lived (30 days by default) and renewed at two thirds of their
//! lifetime, so a revoked or lost node drops out quickly even without a CRL. Every
//! certificate is back-dated a few minutes to tolerate clock skew between nodes.

use std::time::{Duration, SystemTime};

use rcgen::SerialNumber;
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::PkiError;

const DAY: u64 = 24 * 60 * 60;

/// Lifetime of the national root.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(20 * 365 * DAY);
/// Lifetime of the ministry and province issuing CAs.
pub const AUTHORITY_LIFETIME: Duration = Duration::from_secs(10 * 365 * DAY);
/// Default lifetime of a node certificate.
pub const NODE_LIFETIME: Duration = Duration::from_secs(30 * DAY);
/// Default lifetime of an operator certificate.
pub const OPERATOR_LIFETIME: Duration = Duration::from_secs(90 * DAY);
/// How far certificates are back-dated, for clock skew.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// How long a CRL is valid before the next one is due.
pub const CRL_LIFETIME: Duration = Duration::from_secs(7 * DAY);

/// When a certificate valid from `not_before` to `not_after` should be renewed: at two
/// thirds of its lifetime.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime * 2 / 3
}

/// A `time` instant from a system time (whole seconds).
pub(crate) fn datetime(at: SystemTime) -> OffsetDateTime {
    let seconds = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A system time from a `time` instant.
pub(crate) fn system_time(at: OffsetDateTime) -> SystemTime {
    let seconds = at.unix_timestamp();
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// A fresh random 128-bit serial number (positive, 16 bytes).
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Crypto("no randomness for a serial number".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40; // positive, and no leading zero byte to strip
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            renew_at(start, start + NODE_LIFETIME),
            start + Duration::from_secs(20 * DAY)
        );
    }

    #[test]
    fn times_convert_both_ways() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(system_time(datetime(at)), at);
        assert_eq!(random_serial().unwrap().len(), 16);
        assert_ne!(random_serial().unwrap(), random_serial().unwrap());
    }
}
