//! Times in the store: integer milliseconds since the Unix epoch on disk, RFC 3339 UTC with
//! milliseconds in JSON. Both directions are checked against the range RFC 3339 can write
//! (1970-01-01 to 9999-12-31), so formatting never fails and nothing read back panics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{StoreError, corrupt, invalid};

/// The last millisecond of 9999-12-31 UTC.
const MAX_MS: i64 = 253_402_300_800_000 - 1;

/// `at` as milliseconds since the epoch (sub-millisecond parts dropped), or
/// [`StoreError::Invalid`] outside 1970–9999.
pub(crate) fn to_ms(at: SystemTime) -> Result<i64, StoreError> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms <= MAX_MS)
        .ok_or_else(|| invalid("a time outside 1970-01-01..9999-12-31"))
}

/// The time `ms` milliseconds after the epoch, or [`StoreError::Corrupt`] naming `what`.
pub(crate) fn from_ms(ms: i64, what: &str) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .ok()
        .filter(|_| ms <= MAX_MS)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .ok_or_else(|| corrupt(format!("{what}: {ms} ms is not a time in 1970..9999")))
}

/// `at` in RFC 3339 UTC with milliseconds (`2026-11-27T07:35:39.123Z`); never panics, even
/// for times RFC 3339 cannot write.
pub fn rfc3339(at: SystemTime) -> String {
    match to_ms(at) {
        Ok(_) => humantime::format_rfc3339_millis(at).to_string(),
        Err(_) => match at.duration_since(UNIX_EPOCH) {
            Ok(d) => format!("{} s after the Unix epoch", d.as_secs()),
            Err(e) => format!("{} s before the Unix epoch", e.duration().as_secs()),
        },
    }
}

/// Parses what [`rfc3339`] writes (any RFC 3339 UTC time), to the millisecond.
fn parse(text: &str) -> Result<SystemTime, String> {
    let at = humantime::parse_rfc3339(text).map_err(|e| format!("bad time `{text}`: {e}"))?;
    let ms = to_ms(at).map_err(|e| e.to_string())?;
    from_ms(ms, "time").map_err(|e| e.to_string())
}

/// serde for `SystemTime` as RFC 3339 (`#[serde(with = "…::time::serde_rfc3339")]`).
pub(crate) mod serde_rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};

    pub(crate) fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        super::to_ms(*at).map_err(S::Error::custom)?;
        s.collect_str(&humantime::format_rfc3339_millis(*at))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(D::Error::custom)
    }
}

/// serde for `Option<SystemTime>` as RFC 3339 or `null`.
pub(crate) mod serde_rfc3339_option {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(
        at: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serde_rfc3339::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_and_finer_parts_are_dropped() {
        let at = UNIX_EPOCH + Duration::from_micros(1_767_225_600_123_456);
        let ms = to_ms(at).unwrap();
        assert_eq!(ms, 1_767_225_600_123);
        assert_eq!(
            from_ms(ms, "t").unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_767_225_600_123)
        );
        assert_eq!(rfc3339(at), "2026-01-01T00:00:00.123Z");
        assert_eq!(
            parse("2026-01-01T00:00:00.123Z"),
            from_ms(ms, "t").map_err(|_| String::new())
        );
    }

    #[test]
    fn times_out_of_range_are_refused_both_ways() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(to_ms(before), Err(StoreError::Invalid { .. })));
        let after = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(matches!(to_ms(after), Err(StoreError::Invalid { .. })));
        assert!(matches!(from_ms(-1, "t"), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            from_ms(i64::MAX, "t"),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(rfc3339(before), "1 s before the Unix epoch");
        assert_eq!(rfc3339(after), "253402300800 s after the Unix epoch");
    }
}
