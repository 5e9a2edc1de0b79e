//! What the scheduler may hand out: the share of each link reservable for video, the MCUs
//! and their ports, and the overhead added to every stream.
//!
//! Defaults are named constants; a TOML table (kebab-case, unknown fields refused) can
//! change any of them, and per-node entries change one link or one MCU.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::{Kbps, LinkIx, Network, NodeId, NodeIx, NodeKind, Tier};

use super::overhead::Overhead;

/// The share of a link's capacity reservable for video unless configured otherwise: the
/// rest stays for business traffic.
pub const DEFAULT_VIDEO_SHARE_PERCENT: u8 = 60;

/// Ports of the ministry's MCU: every province, the municipalities and room for the
/// ministry's own rooms and cascades.
pub const DEFAULT_MINISTRY_MCU_PORTS: u32 = 64;

/// Ports of a province's MCU: its cities (at most 21 in any province) and some to spare.
pub const DEFAULT_PROVINCE_MCU_PORTS: u32 = 32;

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A share outside 1–100 %.
    #[error("a video share of {percent} % is not usable (write 1 to 100)")]
    Share {
        /// The share given.
        percent: u8,
    },
    /// An average packet of zero bytes.
    #[error("the average packet size must be at least 1 byte")]
    ZeroPacket,
}

/// The scheduler's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SchedulerConfig {
    /// Percent of every link's capacity reservable for video.
    pub video_share_percent: u8,
    /// Per-link shares, by the link's lower node (`dc:14` is the ministry–Shanxi link).
    pub link_shares: BTreeMap<NodeId, u8>,
    /// Ports of the ministry's MCU.
    pub ministry_mcu_ports: u32,
    /// Ports of each province's MCU (municipalities included).
    pub province_mcu_ports: u32,
    /// Per-node MCUs: a city or site with an MCU of its own, or another port count for
    /// the ministry or a province; 0 takes the MCU away.
    pub mcu_ports: BTreeMap<NodeId, u32>,
    /// What each stream reserves above its bitrate.
    pub overhead: Overhead,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            video_share_percent: DEFAULT_VIDEO_SHARE_PERCENT,
            link_shares: BTreeMap::new(),
            ministry_mcu_ports: DEFAULT_MINISTRY_MCU_PORTS,
            province_mcu_ports: DEFAULT_PROVINCE_MCU_PORTS,
            mcu_ports: BTreeMap::new(),
            overhead: Overhead::default(),
        }
    }
}

impl SchedulerConfig {
    /// Whether every value is usable.
    pub fn check(&self) -> Result<(), ConfigError> {
        let shares = std::iter::once(&self.video_share_percent).chain(self.link_shares.values());
        if let Some(&percent) = shares.into_iter().find(|&&p| p == 0 || p > 100) {
            return Err(ConfigError::Share { percent });
        }
        if self.overhead.average_packet == 0 {
            return Err(ConfigError::ZeroPacket);
        }
        Ok(())
    }

    /// The ports of the MCU at `node`, or `None` when it has none.
    pub fn mcu_ports(&self, network: &Network, node: NodeIx) -> Option<u32> {
        let info = network.node(node);
        let ports = match self.mcu_ports.get(&info.id) {
            Some(&ports) => ports,
            None if info.kind() != NodeKind::DataCentre => 0,
            None => match info.tier {
                Tier::Ministry => self.ministry_mcu_ports,
                Tier::Province => self.province_mcu_ports,
                Tier::City | Tier::Site => 0,
            },
        };
        (ports > 0).then_some(ports)
    }

    /// The share of `link` reservable for video, in percent.
    pub fn share_percent(&self, network: &Network, link: LinkIx) -> u8 {
        let lower = network.node(network.link(link).lower).id;
        self.link_shares
            .get(&lower)
            .copied()
            .unwrap_or(self.video_share_percent)
    }

    /// What may be reserved for video on `link`, in each direction.
    pub fn link_limit(&self, network: &Network, link: LinkIx) -> Kbps {
        let capacity = u128::from(network.link(link).capacity.0);
        let share = u128::from(self.share_percent(network, link));
        // capacity × share / 100 never exceeds capacity, so it fits back into 64 bits.
        Kbps(u64::try_from(capacity * share / 100).unwrap_or(u64::MAX))
    }
}
