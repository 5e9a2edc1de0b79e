//! How the emulated underlay of each link level behaves: delay, jitter, loss, rate, queue.
//!
//! The network file already says what a link *is* (capacity, carrier circuits); a profile
//! says how its emulation *behaves*. By default the rate is the link's own capacity, so a
//! Tibetan backbone on its 100 Mbit/s override is emulated at 100 Mbit/s without the
//! scenario repeating it, and the queue is a time (20 ms) at that rate, so a slow link does
//! not get a fast link's buffer. Each level starts from a named default below (the same
//! delays and queue time as `underlay::LinkProfile`'s); a scenario's `[profiles.LEVEL]`
//! table overrides only the fields it writes.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ScenarioProblem, bits_per_second};
use topology::{Kbps, LinkLevel};

/// How the links of one level behave in the lab.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileSpec {
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much extra delay, drawn per packet.
    pub jitter: Duration,
    /// The fraction of packets lost, from 0 to 1.
    pub loss: f64,
    /// The rate limit.
    pub rate: Rate,
    /// How much may wait behind the rate limit before packets are dropped.
    pub queue: Queue,
}

/// The most delay plus jitter a link may have: the emulated underlay refuses more.
pub const MAX_LINK_DELAY: Duration = Duration::from_secs(3600);

/// The queue every default profile has: this long at the link's rate.
pub const DEFAULT_QUEUE_TIME: Duration = Duration::from_millis(20);

/// A link's queue behind its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `queue = "20ms"`: as many bytes as the link sends in this time at its rate.
    Time(Duration),
    /// `queue = 16384`: this many bytes, whatever the rate.
    Bytes(usize),
}

impl Queue {
    /// The queue in bytes at `rate_bps` (`None`: unlimited, where no queue forms).
    pub fn bytes(self, rate_bps: Option<u64>) -> usize {
        match (self, rate_bps) {
            (Queue::Bytes(bytes), _) => bytes,
            (Queue::Time(_), None) => 0,
            (Queue::Time(time), Some(rate)) => {
                let bits = u128::from(rate).checked_mul(time.as_nanos());
                bits.and_then(|bits| usize::try_from(bits / 8 / 1_000_000_000).ok())
                    .unwrap_or(usize::MAX)
            }
        }
    }
}

/// A link's rate limit in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// `"capacity"` (the default): the link's capacity from the network file.
    Capacity,
    /// `"unlimited"`: no rate limit.
    Unlimited,
    /// `"100 Mbit/s"`: this rate, whatever the link's capacity.
    Limit(Kbps),
}

impl Rate {
    /// Reads `"capacity"`, `"unlimited"` or a capacity such as `"100 Mbit/s"`.
    pub(super) fn parse(text: &str) -> Result<Rate, ScenarioProblem> {
        match text.trim() {
            "capacity" => Ok(Rate::Capacity),
            "unlimited" => Ok(Rate::Unlimited),
            other => match other.parse::<Kbps>() {
                Ok(Kbps(0)) | Err(_) => Err(ScenarioProblem::BadRate(text.to_owned())),
                Ok(kbps) => Ok(Rate::Limit(kbps)),
            },
        }
    }
}

impl ProfileSpec {
    /// 部省, ministry ⇄ province: 10 ms one way (about 2,000 km of fibre route), 1 ms of
    /// carrier jitter.
    pub const BACKBONE: ProfileSpec = ProfileSpec::lossless(10_000, 1_000);
    /// 省市, province ⇄ city: 5 ms one way, 1 ms jitter.
    pub const PROVINCIAL: ProfileSpec = ProfileSpec::lossless(5_000, 1_000);
    /// 市域, city ⇄ site: 2 ms one way (tens of km and an access network), 0.5 ms jitter.
    pub const CITY_AREA: ProfileSpec = ProfileSpec::lossless(2_000, 500);
    /// 灾备, a data centre ⇄ its nearby disaster-recovery site: 1 ms, 0.1 ms jitter.
    pub const DISASTER_RECOVERY: ProfileSpec = ProfileSpec::lossless(1_000, 100);

    /// A default: no loss, the link's capacity, [`DEFAULT_QUEUE_TIME`] of queue.
    const fn lossless(delay_us: u64, jitter_us: u64) -> ProfileSpec {
        ProfileSpec {
            delay: Duration::from_micros(delay_us),
            jitter: Duration::from_micros(jitter_us),
            loss: 0.0,
            rate: Rate::Capacity,
            queue: Queue::Time(DEFAULT_QUEUE_TIME),
        }
    }

    /// The five values of an emulated link of `capacity`: delay, jitter, loss (a
    /// fraction), rate in bit/s (`None`: unlimited) and queue in bytes — the fields of
    /// `netlab::underlay::LinkProfile`, in that order.
    pub fn values(&self, capacity: Kbps) -> (Duration, Duration, f64, Option<u64>, usize) {
        let rate_bps = match self.rate {
            Rate::Capacity => Some(bits_per_second(capacity)),
            Rate::Unlimited => None,
            Rate::Limit(kbps) => Some(bits_per_second(kbps)),
        };
        let queue_bytes = self.queue.bytes(rate_bps);
        (self.delay, self.jitter, self.loss, rate_bps, queue_bytes)
    }
}

/// The profile of each link level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profiles {
    /// `[profiles.backbone]`.
    pub backbone: ProfileSpec,
    /// `[profiles.provincial]`.
    pub provincial: ProfileSpec,
    /// `[profiles.city-area]`.
    pub city_area: ProfileSpec,
    /// `[profiles.disaster-recovery]`.
    pub disaster_recovery: ProfileSpec,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            backbone: ProfileSpec::BACKBONE,
            provincial: ProfileSpec::PROVINCIAL,
            city_area: ProfileSpec::CITY_AREA,
            disaster_recovery: ProfileSpec::DISASTER_RECOVERY,
        }
    }
}

impl Profiles {
    /// The profile of a level. Lateral links are never part of a footprint; asked for one,
    /// this gives the backbone's, the longest-haul profile.
    pub fn for_level(&self, level: LinkLevel) -> &ProfileSpec {
        match level {
            LinkLevel::Backbone | LinkLevel::Lateral => &self.backbone,
            LinkLevel::Provincial => &self.provincial,
            LinkLevel::CityArea => &self.city_area,
            LinkLevel::DisasterRecovery => &self.disaster_recovery,
        }
    }

    pub(super) fn for_level_mut(&mut self, level: LinkLevel) -> &mut ProfileSpec {
        match level {
            LinkLevel::Backbone | LinkLevel::Lateral => &mut self.backbone,
            LinkLevel::Provincial => &mut self.provincial,
            LinkLevel::CityArea => &mut self.city_area,
            LinkLevel::DisasterRecovery => &mut self.disaster_recovery,
        }
    }
}

/// `[profiles]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ProfilesFile {
    pub(super) backbone: Option<ProfileFile>,
    pub(super) provincial: Option<ProfileFile>,
    pub(super) city_area: Option<ProfileFile>,
    pub(super) disaster_recovery: Option<ProfileFile>,
}

impl ProfilesFile {
    /// The tables written, with their level.
    pub(super) fn written(&self) -> impl Iterator<Item = (LinkLevel, &ProfileFile)> {
        [
            (LinkLevel::Backbone, &self.backbone),
            (LinkLevel::Provincial, &self.provincial),
            (LinkLevel::CityArea, &self.city_area),
            (LinkLevel::DisasterRecovery, &self.disaster_recovery),
        ]
        .into_iter()
        .filter_map(|(level, file)| file.as_ref().map(|file| (level, file)))
    }
}

/// `[profiles.LEVEL]` as written: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ProfileFile {
    pub(super) delay: Option<Spanned<String>>,
    pub(super) jitter: Option<Spanned<String>>,
    pub(super) loss: Option<Spanned<LossWritten>>,
    pub(super) rate: Option<Spanned<String>>,
    pub(super) queue: Option<Spanned<QueueWritten>>,
}

/// A queue as written: a time at the link's rate (`"20ms"`) or bytes (`16384`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum QueueWritten {
    /// `16384`.
    Bytes(i64),
    /// `"20ms"`.
    Time(String),
}

impl QueueWritten {
    /// The queue, or what is wrong with it.
    pub(super) fn queue(&self) -> Result<Queue, ScenarioProblem> {
        let queue = match self {
            QueueWritten::Bytes(bytes) => usize::try_from(*bytes).ok().map(Queue::Bytes),
            QueueWritten::Time(text) => {
                humantime::parse_duration(text.trim()).ok().map(Queue::Time)
            }
        };
        match queue {
            Some(Queue::Bytes(0)) => Err(ScenarioProblem::ZeroQueue),
            Some(Queue::Time(time)) if time.is_zero() => Err(ScenarioProblem::ZeroQueue),
            Some(queue) => Ok(queue),
            None => Err(ScenarioProblem::BadQueue(match self {
                QueueWritten::Bytes(bytes) => bytes.to_string(),
                QueueWritten::Time(text) => text.clone(),
            })),
        }
    }
}

/// A loss as written: a fraction (`0.001`, `0`) or a percentage (`"0.1%"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum LossWritten {
    /// `0.001`.
    Fraction(f64),
    /// `"0.1%"`.
    Text(String),
}

impl LossWritten {
    /// The fraction of packets lost, from 0 to 1.
    pub(super) fn fraction(&self) -> Result<f64, ScenarioProblem> {
        let (fraction, shown) = match self {
            LossWritten::Fraction(f) => (Some(*f), f.to_string()),
            LossWritten::Text(text) => {
                let percent = text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok());
                (percent.map(|p| p / 100.0), text.clone())
            }
        };
        fraction
            .filter(|f| f.is_finite() && (0.0..=1.0).contains(f))
            .ok_or(ScenarioProblem::BadLoss(shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_read_as_fractions_or_percentages() {
        let loss = |w: LossWritten| w.fraction();
        assert_eq!(loss(LossWritten::Fraction(0.001)), Ok(0.001));
        assert_eq!(loss(LossWritten::Text("0.1%".into())), Ok(0.001));
        assert_eq!(loss(LossWritten::Text(" 100 % ".into())), Ok(1.0));
        for bad in ["1.5", "-1%", "101%", "NaN%", "lots", ""] {
            assert!(loss(LossWritten::Text(bad.into())).is_err(), "{bad}");
        }
        assert!(loss(LossWritten::Fraction(f64::NAN)).is_err());
        assert!(loss(LossWritten::Fraction(-0.1)).is_err());
    }

    #[test]
    fn rates_follow_capacity_unless_written_and_queues_follow_rates() {
        assert_eq!(Rate::parse("capacity"), Ok(Rate::Capacity));
        assert_eq!(Rate::parse("unlimited"), Ok(Rate::Unlimited));
        assert_eq!(Rate::parse("2 Mbit/s"), Ok(Rate::Limit(Kbps(2_000))));
        assert!(Rate::parse("0 Mbit/s").is_err());
        let twenty_ms = Queue::Time(DEFAULT_QUEUE_TIME);
        assert_eq!(twenty_ms.bytes(Some(100_000_000)), 250_000);
        assert_eq!(twenty_ms.bytes(None), 0);
        assert_eq!(Queue::Bytes(9_000).bytes(None), 9_000);
        assert_eq!(Queue::Time(Duration::MAX).bytes(Some(u64::MAX)), usize::MAX);
        let (.., rate, queue) = ProfileSpec::CITY_AREA.values(Kbps(20_000));
        assert_eq!((rate, queue), (Some(20_000_000), 50_000));
        assert_eq!(
            ProfileSpec::CITY_AREA.values(Kbps(u64::MAX)).3,
            Some(u64::MAX)
        );
    }
}
