//! Reading the times a form is written in: TOML date-times or text, Beijing time unless
//! an offset says otherwise.
//!
//! Forms are written in China, by people who write `2027-01-10 09:00` and mean Beijing
//! time; RFC 3339 with an offset (`2027-01-10T09:00:00+08:00`, `…T01:00:00Z`) is read as
//! written. Dates before 1970 and text that is not a date and time are refused.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use toml::value::{Datetime, Offset};

/// Beijing time, UTC+8, in minutes east of UTC.
pub const BEIJING_OFFSET_MINUTES: i64 = 8 * 60;

/// A start or end that is not a usable date and time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BadTime {
    /// `start` or `end`.
    pub field: &'static str,
    /// What was written.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for BadTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad {} `{}`: {} (write a date and time, e.g. 2027-01-10T09:00:00+08:00 or \"2027-01-10 09:00\" for Beijing time)",
            self.field, self.given, self.why
        )
    }
}

/// The instant a form's `start` or `end` names.
pub fn instant(field: &'static str, value: &toml::Value) -> Result<SystemTime, BadTime> {
    let bad = |given: String, why: &str| BadTime {
        field,
        given,
        why: why.to_owned(),
    };
    let datetime = match value {
        toml::Value::Datetime(datetime) => *datetime,
        toml::Value::String(text) => text
            .trim()
            .parse::<Datetime>()
            .map_err(|err| bad(text.clone(), &err.to_string()))?,
        other => return Err(bad(other.to_string(), "not a date and time")),
    };
    let given = datetime.to_string();
    let (Some(date), Some(time)) = (datetime.date, datetime.time) else {
        return Err(bad(given, "a date and a time are both needed"));
    };
    let offset_minutes = match datetime.offset {
        None => BEIJING_OFFSET_MINUTES,
        Some(Offset::Z) => 0,
        Some(Offset::Custom { minutes }) => i64::from(minutes),
    };
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let seconds = days * 86_400
        + i64::from(time.hour) * 3_600
        + i64::from(time.minute) * 60
        + i64::from(time.second.unwrap_or(0))
        - offset_minutes * 60;
    let seconds = u64::try_from(seconds).map_err(|_| bad(given.clone(), "before 1970"))?;
    let nanos = time.nanosecond.unwrap_or(0).min(999_999_999);
    UNIX_EPOCH
        .checked_add(Duration::new(seconds, nanos))
        .ok_or_else(|| bad(given, "too far in the future"))
}

/// An instant for messages, to the second in UTC: `2027-01-10T01:00:00Z`. Instants past
/// the year 9999 show as its last second.
pub fn show(at: SystemTime) -> String {
    /// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
    const LAST: u64 = 253_402_300_799;
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Serde for durations as humantime text (`30m`, `1h 30m`).
pub mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `30m`.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    /// Reads `30m`, `1h 30m`, `0s`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<SystemTime, BadTime> {
        instant("start", &toml::Value::String(text.to_owned()))
    }

    fn rfc3339(at: SystemTime) -> String {
        humantime::format_rfc3339(at).to_string()
    }

    #[test]
    fn civil_days_count_from_1970() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2027, 1, 10), 20_828);
    }

    #[test]
    fn times_without_an_offset_are_beijing_time() {
        let beijing = read("2027-01-10 09:00").map(rfc3339);
        assert_eq!(beijing.as_deref(), Ok("2027-01-10T01:00:00Z"));
        let explicit = read("2027-01-10T09:00:00+08:00").map(rfc3339);
        assert_eq!(explicit.as_deref(), Ok("2027-01-10T01:00:00Z"));
        let utc = read("2027-01-10T01:00:00Z").map(rfc3339);
        assert_eq!(utc.as_deref(), Ok("2027-01-10T01:00:00Z"));
        let native: toml::Value = toml::from_str::<toml::Table>("t = 2027-01-10T09:00:00+08:00")
            .ok()
            .and_then(|mut t| t.remove("t"))
            .unwrap_or(toml::Value::Boolean(false));
        assert_eq!(instant("start", &native).map(rfc3339), explicit);
    }

    #[test]
    fn what_is_not_a_date_and_time_says_why() {
        for (text, why) in [
            ("tomorrow", "start"),
            ("2027-01-10", "a date and a time are both needed"),
            ("09:00", "a date and a time are both needed"),
            ("2027-02-30 09:00", "day"),
            ("1969-12-31 23:00", "before 1970"),
        ] {
            let err = read(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(why), "{text}: {err}");
        }
        let err = instant("end", &toml::Value::Integer(9));
        assert!(err.is_err_and(|e| e.to_string().starts_with("bad end `9`")));
    }
}
