//! The control protocol types shared with the controller: the config bundle an agent runs
//! from, and the status it reports.
//!
//! The bundle is exactly what the controller will push (issue 5); today it is read from a
//! file (TOML, or JSON when the file ends in `.json`). It is versioned twice: `format` is
//! the layout of this struct (an agent refuses a format it does not know), `version` is the
//! config's sequence number (an agent refuses to go backwards). Keys are never in a bundle:
//! it names the WireGuard key file, which stays on the node.
//!
//! The zone policy travels as the policy file's text, with the plan and network files when
//! they are not the embedded national defaults, so the agent's filter decides every flow the
//! way `jinbao-controller policy query` does.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

mod protocol;

use ipnet::IpNet;
use pki::WireGuardKey;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Plane};

pub use protocol::{
    EnrollRequest, EnrollResponse, HealthReport, LONG_POLL, MAX_BODY, PlaneEnrollment, Refusal,
    SignError, SignedBundle, SignedBundleError, Verifier,
};

/// The bundle layout this build reads and writes.
pub const BUNDLE_FORMAT: u32 = 1;

/// A bundle that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not TOML/JSON of this layout; the message carries line and column.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// What the parser said, with line and column.
        message: String,
    },
    /// A layout this build does not read.
    #[error(
        "{file}: bundle format {found} is not supported (this agent reads format {BUNDLE_FORMAT})"
    )]
    Format {
        /// The file.
        file: String,
        /// The format found.
        found: u32,
    },
    /// Parsed, but inconsistent.
    #[error("{file}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
}

/// Everything an agent runs from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The layout, [`BUNDLE_FORMAT`].
    pub format: u32,
    /// The config's sequence number; never goes backwards.
    pub version: u64,
    /// The node this bundle is for.
    pub node: NodeId,
    /// The trust bundle: root, issuing CAs, every CA's CRL (PEM).
    pub trust: Trust,
    /// Probe and failover settings.
    #[serde(default)]
    pub probes: ProbeSettings,
    /// Filter state timeouts and denied-flow records.
    #[serde(default)]
    pub filter: FilterSettings,
    /// The zone policy and, when not the embedded defaults, the plan and network.
    #[serde(default)]
    pub model: ModelSources,
    /// How conference media is told apart from other traffic (ports, markings).
    #[serde(default, skip_serializing_if = "ConferenceMedia::is_default")]
    pub conference: ConferenceMedia,
    /// Probe flows the isolation audit asks this node to send, while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditOrder>,
    /// One overlay instance per plane the node is on.
    pub planes: Vec<PlaneConfig>,
}

/// The live isolation audit's request to one node: send these probe flows from its own
/// zones, once. Each probe carries the audit's number and its flow number in its payload,
/// so the node where it arrives reports it ([`AuditSeen`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOrder {
    /// The audit.
    pub id: u64,
    /// What to send.
    pub probes: Vec<AuditProbe>,
}

/// One probe flow: a TCP SYN, a UDP datagram or an ICMP echo request from this node's zone
/// address to another node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditProbe {
    /// Its number in the audit.
    pub flow: u32,
    /// The plane it is sent on.
    pub plane: Plane,
    /// The source: an address of this node's zone.
    pub src: std::net::IpAddr,
    /// The destination: an address of the other node's zone.
    pub dst: std::net::IpAddr,
    /// `tcp`, `udp` or `icmp`.
    pub proto: topology::policy::Proto,
    /// The destination port, for TCP and UDP.
    pub port: Option<u16>,
}

/// What a node saw of the live audit: whose probes it sent, and the probes that arrived at
/// its zones (of the newest audit it has seen probes of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSeen {
    /// The audit whose probes this node sent last.
    pub sent: Option<u64>,
    /// The audit the arrivals belong to.
    pub arrived_for: Option<u64>,
    /// Flow numbers that arrived.
    pub arrived: Vec<u32>,
}

/// A denied packet as the agent reports it: rate-limited at the filter, the newest kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedRecord {
    /// Its number at this plane instance: the controller keeps each once.
    pub seq: u64,
    /// How long before the status was taken it was denied, in milliseconds.
    pub ago_ms: u64,
    /// Source address.
    pub src: std::net::IpAddr,
    /// Destination address.
    pub dst: std::net::IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port, for TCP and UDP.
    pub port: Option<u16>,
    /// Why, as `policy query` says it.
    pub reason: String,
    /// The live audit's (audit, flow) when the packet was one of its probes.
    pub audit: Option<(u64, u32)>,
}

/// What verifies peer certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// The national root (PEM).
    pub root: String,
    /// The issuing CAs (PEM each).
    #[serde(default)]
    pub intermediates: Vec<String>,
    /// Every CA's CRL (PEM each).
    #[serde(default)]
    pub crls: Vec<String>,
}

/// Source texts of the model; `None` means the embedded national default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSources {
    /// The zone policy file's text.
    pub policy: Option<String>,
    /// The IP plan file's text.
    pub plan: Option<String>,
    /// The network file's text.
    pub network: Option<String>,
}

/// In-tunnel link probes and uplink failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// Probe interval in milliseconds (50 at the least; BFD's 100 by default).
    pub interval_ms: u64,
    /// Missed probes in a row before a peer is down (3, like BFD's detect multiplier).
    pub down_after: u32,
    /// How long a primary must be healthy before traffic moves back to it, in milliseconds.
    pub hold_down_ms: u64,
    /// Underlay path probe interval in milliseconds.
    pub path_interval_ms: u64,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            interval_ms: 100,
            down_after: 3,
            hold_down_ms: 5_000,
            path_interval_ms: 100,
        }
    }
}

impl ProbeSettings {
    /// The probe interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The failback hold-down.
    pub fn hold_down(&self) -> Duration {
        Duration::from_millis(self.hold_down_ms)
    }

    /// The path probe interval.
    pub fn path_interval(&self) -> Duration {
        Duration::from_millis(self.path_interval_ms)
    }
}

/// Zone filter state timeouts (seconds) and denied-flow records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSettings {
    /// An established TCP flow without packets is forgotten after this long.
    pub tcp_established_s: u64,
    /// A TCP flow that is opening or closing.
    pub tcp_transitory_s: u64,
    /// A UDP flow.
    pub udp_s: u64,
    /// An ICMP echo flow.
    pub icmp_s: u64,
    /// Denied-flow records kept per second at the most (the rest are only counted).
    pub denied_records_per_s: u32,
    /// Flows tracked at the most; new flows beyond are denied and counted.
    pub max_flows: usize,
}

impl Default for FilterSettings {
    fn default() -> Self {
        FilterSettings {
            tcp_established_s: 7_440,
            tcp_transitory_s: 240,
            udp_s: 180,
            icmp_s: 30,
            denied_records_per_s: 100,
            max_flows: 262_144,
        }
    }
}

/// One plane's overlay instance: own key, port, routes and peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneConfig {
    /// The plane.
    pub plane: Plane,
    /// The underlay address the instance listens on.
    pub listen: SocketAddr,
    /// A second underlay address (a second uplink or carrier) that children use as their
    /// backup path to this node.
    #[serde(default)]
    pub backup_listen: Option<SocketAddr>,
    /// The file with this plane's WireGuard private key (base64, as `wg genkey` writes).
    pub private_key: PathBuf,
    /// This node's certificate chain for the plane (PEM: leaf, then its CA).
    pub certificate: String,
    /// The peers: the uplink, the children, and any declared lateral or unmanaged peers.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

/// Why a peer is a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    /// The parent on the tree: everything outside this node's subtree goes to it.
    Uplink,
    /// A child on the tree: its subtree's blocks route to it.
    Child,
    /// A tunnel off the main line, only when declared.
    Lateral,
    /// A stock WireGuard peer with a pinned key and no certificate (an unmanaged site).
    Unmanaged,
}

impl fmt::Display for PeerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            PeerRole::Uplink => "uplink",
            PeerRole::Child => "child",
            PeerRole::Lateral => "lateral",
            PeerRole::Unmanaged => "unmanaged",
        })
    }
}

/// A peer of one plane instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer node (for unmanaged peers, the site it stands for).
    pub node: NodeId,
    /// Why it is a peer.
    pub role: PeerRole,
    /// Its WireGuard public key (base64).
    #[serde(with = "text")]
    pub public_key: WireGuardKey,
    /// Its certificate chain (PEM); required for every role but `unmanaged`.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Its primary underlay endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Its backup underlay endpoint, used when the primary path is down.
    #[serde(default)]
    pub backup: Option<SocketAddr>,
    /// Overlay prefixes routed to this peer and accepted from it (WireGuard's AllowedIPs).
    /// For the uplink, the plane's supernet: the default route for this plane.
    pub allowed: Vec<IpNet>,
    /// Persistent keepalive in seconds, for peers behind NAT.
    #[serde(default)]
    pub keepalive_s: Option<u16>,
    /// Conference bandwidth reserved toward this peer, and the link's capacity.
    #[serde(default, skip_serializing_if = "LinkQos::is_empty")]
    pub qos: LinkQos,
}

/// The ports conference media uses between MCUs and terminals, and how it is marked (RFC
/// 4594: interactive video AF41, telephony-grade audio EF). MCUs and terminals sit in their
/// site's exchange zone; a reserved flow is UDP between two sites' exchange prefixes with a
/// port (either end) in one of these ranges. Both ranges are what H.323/SIP terminals are
/// commonly configured with: audio RTP/RTCP low, video above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConferenceMedia {
    /// Audio RTP/RTCP ports (inclusive), marked EF.
    pub audio_ports: [u16; 2],
    /// Video RTP/RTCP ports (inclusive), marked AF41.
    pub video_ports: [u16; 2],
}

impl Default for ConferenceMedia {
    fn default() -> Self {
        ConferenceMedia {
            audio_ports: [16_384, 16_999],
            video_ports: [17_000, 32_767],
        }
    }
}

impl ConferenceMedia {
    fn is_default(&self) -> bool {
        *self == ConferenceMedia::default()
    }
}

/// What a tunnel carries for conferences: the link's capacity (the rate everything sent to
/// the peer is shaped to while a reservation is in its window) and the reservations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQos {
    /// The underlay link's capacity toward the peer, kbit/s.
    #[serde(default)]
    pub capacity_kbps: Option<u64>,
    /// Conference reservations on this link in the direction toward the peer.
    #[serde(default)]
    pub reservations: Vec<Reservation>,
}

impl LinkQos {
    /// Nothing reserved and no capacity: the field is left out of the bundle.
    pub fn is_empty(&self) -> bool {
        self.capacity_kbps.is_none() && self.reservations.is_empty()
    }
}

/// One booking's hold on one link direction: from its test window's start to its end, the
/// conference's media between the listed sites gets strict priority up to `rate_kbps`
/// (bitrate plus IP/UDP/RTP and tunnel overhead, as the controller reserved it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// The booking, for counters and logs.
    pub booking: u64,
    /// The window's start (the test window's), Unix seconds.
    pub from_unix_s: u64,
    /// The conference's end, Unix seconds.
    pub until_unix_s: u64,
    /// The reserved rate toward the peer, kbit/s.
    pub rate_kbps: u64,
    /// The site pairs whose media this covers: each an MCU's exchange prefix and a
    /// terminal's (or a cascaded MCU's); matched in either direction.
    pub flows: Vec<[IpNet; 2]>,
}

impl Bundle {
    /// Reads a bundle: TOML, or JSON when `file` ends in `.json`.
    pub fn parse(file: &str, text: &str) -> Result<Bundle, BundleError> {
        let syntax = |message: String| BundleError::Syntax {
            file: file.to_owned(),
            message,
        };
        let bundle: Bundle = if file.ends_with(".json") {
            serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| syntax(e.to_string()))?
        };
        bundle.check().map_err(|problem| match problem {
            Problem::Format(found) => BundleError::Format {
                file: file.to_owned(),
                found,
            },
            Problem::Invalid(problem) => BundleError::Invalid {
                file: file.to_owned(),
                problem,
            },
        })?;
        Ok(bundle)
    }

    /// The bundle as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    fn check(&self) -> Result<(), Problem> {
        if self.format != BUNDLE_FORMAT {
            return Err(Problem::Format(self.format));
        }
        let invalid = |s: String| Err(Problem::Invalid(s));
        if self.probes.interval_ms < 50 {
            return invalid(format!(
                "probes.interval_ms is {}; 50 is the shortest interval",
                self.probes.interval_ms
            ));
        }
        if self.probes.down_after == 0 {
            return invalid("probes.down_after must be at least 1".into());
        }
        let mut planes = Vec::new();
        for instance in &self.planes {
            if planes.contains(&instance.plane) {
                return invalid(format!("the {} plane is listed twice", instance.plane));
            }
            planes.push(instance.plane);
            instance.check().map_err(Problem::Invalid)?;
        }
        Ok(())
    }
}

enum Problem {
    Format(u32),
    Invalid(String),
}

impl PlaneConfig {
    fn check(&self) -> Result<(), String> {
        let plane = self.plane;
        let uplinks = self
            .peers
            .iter()
            .filter(|p| p.role == PeerRole::Uplink)
            .count();
        if uplinks > 1 {
            return Err(format!(
                "{plane}: {uplinks} uplinks; a node has one main line"
            ));
        }
        let mut seen: Vec<(NodeId, WireGuardKey)> = Vec::new();
        for peer in &self.peers {
            let who = format!("{plane} peer {}", peer.node);
            if seen
                .iter()
                .any(|(n, k)| *n == peer.node || *k == peer.public_key)
            {
                return Err(format!("{who} is listed twice (same node or same key)"));
            }
            seen.push((peer.node, peer.public_key));
            if peer.role != PeerRole::Unmanaged && peer.certificate.is_none() {
                return Err(format!("{who}: a {} peer needs its certificate", peer.role));
            }
            if peer.allowed.is_empty() {
                return Err(format!("{who}: no allowed prefixes"));
            }
            if peer.backup.is_some() && peer.endpoint.is_none() {
                return Err(format!("{who}: a backup endpoint without a primary"));
            }
        }
        Ok(())
    }
}

/// Serde through `Display` and `FromStr`, for types that read as text.
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What an agent reports: per plane, its peers' state and its filter counters. `jinbao-agent
/// show` prints it and the metrics endpoint exports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node.
    pub node: Option<NodeId>,
    /// The config version running.
    pub version: u64,
    /// Per plane.
    pub planes: Vec<PlaneStatus>,
    /// The live isolation audit, when one has touched this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSeen>,
}

/// One plane instance's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneStatus {
    /// The plane.
    pub plane: Plane,
    /// Listening on.
    pub listen: SocketAddr,
    /// This instance's WireGuard public key.
    #[serde(with = "text")]
    pub public_key: WireGuardKey,
    /// Peers, in bundle order.
    pub peers: Vec<PeerStatus>,
    /// Peers refused, with the reason (certificate checks).
    pub refused: Vec<(NodeId, String)>,
    /// Zone filter counters, per policy rule.
    pub rules: Vec<RuleCounters>,
    /// Packets denied because no rule allows them.
    pub default_denied: u64,
    /// The same packets by reason (`policy`, `no-flow`, `tcp-state`, `table-full`, …).
    #[serde(default)]
    pub denied: Vec<(String, u64)>,
    /// Packets dropped as malformed (underlay or overlay).
    pub malformed: u64,
    /// Packets dropped for having no route.
    pub unroutable: u64,
    /// The newest denied-flow records (at most [`DENIED_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_flows: Vec<DeniedRecord>,
}

/// How many denied-flow records a plane instance keeps for its reports.
pub const DENIED_KEPT: usize = 64;

/// Which underlay path carries a peer's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathChoice {
    /// The primary endpoint.
    Primary,
    /// The backup endpoint.
    Backup,
}

/// The health of a peer as the probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerHealth {
    /// No probe answered yet.
    Unknown,
    /// Probes answer.
    Up,
    /// `down_after` probes in a row went unanswered.
    Down,
}

/// One peer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer.
    pub node: NodeId,
    /// Its role.
    pub role: PeerRole,
    /// Its WireGuard key.
    #[serde(with = "text")]
    pub public_key: WireGuardKey,
    /// The endpoint in use.
    pub endpoint: Option<SocketAddr>,
    /// Which path that is.
    pub path: PathChoice,
    /// Allowed prefixes.
    pub allowed: Vec<IpNet>,
    /// Time since the last completed handshake.
    pub handshake_age: Option<Duration>,
    /// Overlay bytes received and sent.
    pub rx_bytes: u64,
    /// Overlay bytes sent.
    pub tx_bytes: u64,
    /// Overlay packets received.
    pub rx_packets: u64,
    /// Overlay packets sent.
    pub tx_packets: u64,
    /// Probe health.
    pub health: PeerHealth,
    /// Smoothed round-trip time of the in-tunnel probes.
    pub rtt: Option<Duration>,
    /// Probe loss over the recent window, 0–1.
    pub loss: f64,
    /// Interarrival jitter (RFC 3550).
    pub jitter: Duration,
    /// Conference enforcement toward the peer, while the tunnel has reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<ConferenceCounters>,
}

/// What a tunnel's conference enforcement did (see `agent::node::qos`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceCounters {
    /// The rate reserved in the windows in force now, kbit/s (0 between windows).
    pub reserved_kbps: u64,
    /// Conference media packets seen in a window (and marked).
    pub media_packets: u64,
    /// Of those, sent within the reserved rate, ahead of bulk traffic.
    pub reserved_packets: u64,
    /// Datagrams that waited in the shaper.
    pub queued: u64,
    /// Datagrams dropped because their queue was full.
    pub dropped: u64,
}

/// A policy rule's counters at one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounters {
    /// The rule as the policy names it.
    pub rule: String,
    /// Flows it allowed (first packets).
    pub allowed_flows: u64,
    /// Packets it passed, including return traffic.
    pub allowed_packets: u64,
}

impl FromStr for PeerRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uplink" => Ok(PeerRole::Uplink),
            "child" => Ok(PeerRole::Child),
            "lateral" => Ok(PeerRole::Lateral),
            "unmanaged" => Ok(PeerRole::Unmanaged),
            _ => Err(format!(
                "unknown peer role `{s}` (uplink, child, lateral, unmanaged)"
            )),
        }
    }
}
