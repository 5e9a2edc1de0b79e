//! Link profiles: what one emulated link does to the datagrams it carries.
//!
//! A profile is data, so scenario files name it in TOML (kebab-case, durations as humantime
//! strings):
//!
//! ```toml
//! delay = "10ms"
//! jitter = "1ms"
//! loss = 0.001
//! rate-bps = 1_000_000_000
//! queue-bytes = 2_500_000   # optional: 20 ms at the line rate when left out
//! ```
//!
//! Profiles are checked where they enter: deserializing, [`Underlay::connect`] and
//! [`Underlay::set_profile`] all refuse a loss outside 0–1, a zero rate or a delay longer than
//! an hour, with a [`ProfileError`] that says which.
//!
//! [`Underlay::connect`]: super::Underlay::connect
//! [`Underlay::set_profile`]: super::Underlay::set_profile

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a link's queue lasts at its line rate when a profile does not say: 20 ms, a common
/// router buffer for links whose round trip is a few tens of milliseconds.
pub const DEFAULT_QUEUE_TIME: Duration = Duration::from_millis(20);

/// The longest delay plus jitter a profile may ask for. Longer is a typo, not a WAN.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// What one link does to every datagram, the same in both directions.
///
/// Each direction applies it on its own: its own token bucket, queue and random draws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ProfileFile", into = "ProfileFile")]
pub struct LinkProfile {
    /// One-way propagation delay, added after the datagram has left the queue.
    pub delay: Duration,
    /// Each datagram's delay is drawn uniformly from `delay ± jitter` (never below zero and
    /// never overtaking an earlier datagram of the same direction).
    pub jitter: Duration,
    /// Probability (0–1) that a datagram is lost on the wire.
    pub loss: f64,
    /// Line rate in bit/s; `None` is an unlimited link (no serialisation, no queue).
    pub rate_bps: Option<u64>,
    /// Bytes not yet serialised that the link holds before it tail-drops (counting the
    /// datagram on the wire). Ignored when the rate is unlimited.
    pub queue_bytes: usize,
}

impl LinkProfile {
    /// 部省 backbone, ministry ⇄ province: 10 ms one way (about 2,000 km of fibre route from
    /// Beijing to a provincial capital), 1 ms jitter from the carrier's SDH/MPLS equipment, no
    /// loss, a 1 Gbit/s circuit with 20 ms of queue.
    pub const BACKBONE: LinkProfile = LinkProfile {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(1),
        loss: 0.0,
        rate_bps: Some(1_000_000_000),
        queue_bytes: queue_for(1_000_000_000, DEFAULT_QUEUE_TIME),
    };

    /// 省市 provincial, province ⇄ city: 5 ms one way (a few hundred km plus the carrier's
    /// MSTP equipment), 1 ms jitter, no loss, a 100 Mbit/s circuit with 20 ms of queue.
    pub const PROVINCIAL: LinkProfile = LinkProfile {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        loss: 0.0,
        rate_bps: Some(100_000_000),
        queue_bytes: queue_for(100_000_000, DEFAULT_QUEUE_TIME),
    };

    /// 市域 city area, city ⇄ site: 2 ms one way (tens of km and an access network), 0.5 ms
    /// jitter, no loss, a 20 Mbit/s circuit with 20 ms of queue.
    pub const CITY_AREA: LinkProfile = LinkProfile {
        delay: Duration::from_millis(2),
        jitter: Duration::from_micros(500),
        loss: 0.0,
        rate_bps: Some(20_000_000),
        queue_bytes: queue_for(20_000_000, DEFAULT_QUEUE_TIME),
    };

    /// A link that only delays: no jitter, no loss, no rate limit. Handy in tests.
    pub const fn fixed(delay: Duration) -> LinkProfile {
        LinkProfile {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate_bps: None,
            queue_bytes: 0,
        }
    }

    /// The profile of a link level by its name in the topology vocabulary (`backbone`,
    /// `provincial`, `city-area`).
    pub fn named(level: &str) -> Option<LinkProfile> {
        match level {
            "backbone" => Some(LinkProfile::BACKBONE),
            "provincial" => Some(LinkProfile::PROVINCIAL),
            "city-area" => Some(LinkProfile::CITY_AREA),
            _ => None,
        }
    }

    /// Checks that the profile describes a link that can exist.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(ProfileError::Loss(self.loss));
        }
        if self.rate_bps == Some(0) {
            return Err(ProfileError::ZeroRate);
        }
        match self.delay.checked_add(self.jitter) {
            Some(worst) if worst <= MAX_DELAY => Ok(()),
            _ => Err(ProfileError::Delay {
                delay: self.delay,
                jitter: self.jitter,
            }),
        }
    }
}

/// The bytes a queue of `time` holds at `rate_bps`.
pub const fn queue_for(rate_bps: u64, time: Duration) -> usize {
    let bytes = rate_bps as u128 * time.as_nanos() / 8 / 1_000_000_000;
    if bytes > usize::MAX as u128 {
        usize::MAX
    } else {
        bytes as usize
    }
}

/// Why a profile was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// Loss is a probability.
    #[error("loss {0} is not a probability between 0 and 1")]
    Loss(f64),
    /// A zero rate would hold every datagram forever.
    #[error("a rate of 0 bit/s passes nothing; leave rate-bps out for an unlimited link")]
    ZeroRate,
    /// Delay plus jitter beyond [`MAX_DELAY`].
    #[error("delay {delay:?} plus jitter {jitter:?} is longer than an hour")]
    Delay {
        /// The profile's delay.
        delay: Duration,
        /// The profile's jitter.
        jitter: Duration,
    },
}

/// A profile as written in a scenario file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ProfileFile {
    #[serde(with = "human_duration")]
    delay: Duration,
    #[serde(default, with = "human_duration")]
    jitter: Duration,
    #[serde(default)]
    loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_bps: Option<u64>,
    #[serde(default)]
    queue_bytes: Option<usize>,
}

impl TryFrom<ProfileFile> for LinkProfile {
    type Error = ProfileError;

    fn try_from(file: ProfileFile) -> Result<Self, Self::Error> {
        let default_queue = file
            .rate_bps
            .map_or(0, |rate| queue_for(rate, DEFAULT_QUEUE_TIME));
        let profile = LinkProfile {
            delay: file.delay,
            jitter: file.jitter,
            loss: file.loss,
            rate_bps: file.rate_bps,
            queue_bytes: file.queue_bytes.unwrap_or(default_queue),
        };
        profile.validate()?;
        Ok(profile)
    }
}

impl From<LinkProfile> for ProfileFile {
    fn from(profile: LinkProfile) -> Self {
        ProfileFile {
            delay: profile.delay,
            jitter: profile.jitter,
            loss: profile.loss,
            rate_bps: profile.rate_bps,
            queue_bytes: Some(profile.queue_bytes),
        }
    }
}

/// Durations as humantime strings (`"10ms"`, `"1ms 500us"`).
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format_args!("duration {text:?}: {e} (write e.g. \"10ms\")"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_profiles_are_valid_and_queue_20_ms() {
        for name in ["backbone", "provincial", "city-area"] {
            let profile = LinkProfile::named(name).unwrap();
            profile.validate().unwrap();
            let rate = profile.rate_bps.unwrap();
            assert_eq!(profile.queue_bytes as u64, rate / 8 / 50, "{name}");
        }
        assert_eq!(LinkProfile::named("lateral"), None);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let base = LinkProfile::fixed(Duration::from_millis(1));
        assert_eq!(
            LinkProfile { loss: 1.5, ..base }.validate(),
            Err(ProfileError::Loss(1.5))
        );
        assert!(matches!(
            LinkProfile {
                loss: f64::NAN,
                ..base
            }
            .validate(),
            Err(ProfileError::Loss(_))
        ));
        assert_eq!(
            LinkProfile {
                rate_bps: Some(0),
                ..base
            }
            .validate(),
            Err(ProfileError::ZeroRate)
        );
        let far = LinkProfile {
            delay: Duration::MAX,
            jitter: Duration::from_secs(1),
            ..base
        };
        assert!(matches!(far.validate(), Err(ProfileError::Delay { .. })));
    }

    #[test]
    fn a_scenario_file_names_a_profile_and_gets_the_default_queue() {
        let profile: LinkProfile =
            toml::from_str("delay = \"10ms\"\njitter = \"1ms\"\nrate-bps = 1_000_000_000\n")
                .unwrap();
        assert_eq!(profile, LinkProfile::BACKBONE);

        let text = toml::to_string(&LinkProfile::CITY_AREA).unwrap();
        assert!(text.contains("jitter = \"500us\""), "{text}");
        assert_eq!(
            toml::from_str::<LinkProfile>(&text).unwrap(),
            LinkProfile::CITY_AREA
        );

        let error = toml::from_str::<LinkProfile>("delay = \"1ms\"\nloss = 2.0\n").unwrap_err();
        assert!(error.to_string().contains("not a probability"), "{error}");
        let error = toml::from_str::<LinkProfile>("delay = \"1 fortnight\"\n").unwrap_err();
        assert!(error.to_string().contains("1 fortnight"), "{error}");
        assert!(toml::from_str::<LinkProfile>("delay = \"1ms\"\nlatency = \"1ms\"\n").is_err());
    }
}
