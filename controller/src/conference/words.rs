//! The words a booking form is written in: bitrates and priorities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::Kbps;

/// A conference bitrate: a preset (`sd`, `hd`, `1080p`) or any rate in kbit/s or Mbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bitrate(pub Kbps);

impl Bitrate {
    /// Standard definition, 768 kbit/s.
    pub const SD: Bitrate = Bitrate(Kbps(768));
    /// High definition (720p), 2 Mbit/s.
    pub const HD: Bitrate = Bitrate(Kbps(2_000));
    /// Full HD (1080p), 4 Mbit/s.
    pub const FULL_HD: Bitrate = Bitrate(Kbps(4_000));

    /// The preset this rate is, if any: `SD`, `HD` or `1080p`.
    pub fn preset(self) -> Option<&'static str> {
        match self {
            Bitrate::SD => Some("SD"),
            Bitrate::HD => Some("HD"),
            Bitrate::FULL_HD => Some("1080p"),
            _ => None,
        }
    }
}

/// Text that is not a bitrate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad bitrate `{0}` (write sd, hd or 1080p, or a rate such as \"1500 kbit/s\" or \"6 Mbit/s\")"
)]
pub struct BadBitrate(pub String);

impl FromStr for Bitrate {
    type Err = BadBitrate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sd" => Ok(Bitrate::SD),
            "hd" | "720p" => Ok(Bitrate::HD),
            "1080p" | "full-hd" => Ok(Bitrate::FULL_HD),
            _ => match s.parse::<Kbps>() {
                Ok(Kbps(0)) | Err(_) => Err(BadBitrate(s.to_owned())),
                Ok(rate) => Ok(Bitrate(rate)),
            },
        }
    }
}

impl fmt::Display for Bitrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Bitrate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Bitrate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How much a conference matters when bandwidth is short. A booking may preempt only
/// bookings of lower priority, and only when the engineer asks for it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// 一般: the default.
    #[default]
    Routine,
    /// 重要: e.g. the annual national labour and social-security work conference.
    Important,
    /// 紧急: emergencies (e.g. disaster relief payments, fund-safety incidents).
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 3] = [Priority::Routine, Priority::Important, Priority::Urgent];

    /// The word as written in forms.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Important => "important",
            Priority::Urgent => "urgent",
        }
    }

    /// The Chinese name.
    pub const fn chinese(self) -> &'static str {
        match self {
            Priority::Routine => "一般",
            Priority::Important => "重要",
            Priority::Urgent => "紧急",
        }
    }
}

/// Text that is not a priority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority `{0}` (expected one of: routine, important, urgent)")]
pub struct BadPriority(pub String);

impl FromStr for Priority {
    type Err = BadPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| BadPriority(s.to_owned()))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_read_presets_and_rates() {
        assert_eq!("sd".parse(), Ok(Bitrate::SD));
        assert_eq!("HD".parse(), Ok(Bitrate::HD));
        assert_eq!("1080p".parse(), Ok(Bitrate::FULL_HD));
        assert_eq!("1500 kbit/s".parse(), Ok(Bitrate(Kbps(1_500))));
        assert_eq!("6 Mbit/s".parse(), Ok(Bitrate(Kbps(6_000))));
        assert_eq!(Bitrate::HD.preset(), Some("HD"));
        for bad in [
            "",
            "4k",
            "0 kbit/s",
            "2 Mbps per site",
            "99999999999999999999 Gbit/s",
        ] {
            assert!(bad.parse::<Bitrate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn priorities_order_from_routine_to_urgent() {
        assert!(Priority::Routine < Priority::Important);
        assert!(Priority::Important < Priority::Urgent);
        assert_eq!("urgent".parse(), Ok(Priority::Urgent));
        let err = "high".parse::<Priority>().unwrap_err();
        assert!(err.to_string().contains("routine, important, urgent"));
    }
}
