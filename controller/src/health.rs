//! Link health: what the agents at both ends of each link say about it, combined into one
//! state per link, with a bounded history and the time each agent last reported.
//!
//! The module exists because no single agent knows the truth about a link. A province and
//! its city each report their view of the tunnel between them ([`Status`]); the NOC, the
//! alert rules ([`crate::alerts`]), the connectivity census ([`crate::census`]) and the
//! metrics ([`crate::metrics`]) all need one answer, worked out the same way everywhere.
//!
//! # The link and its ends
//!
//! A link is keyed by ([`Plane`], parent, child) — a [`LinkKey`]. The orientation comes from
//! the reporter's peer role: a peer reported as `uplink` is the reporter's parent, a peer
//! reported as `child` (or `unmanaged`: a stock WireGuard site below the reporter) is its
//! child. Both ends of a tree link therefore land on the same key, the same way
//! [`topology::Network::parent`] orients the tree. A lateral link has no parent; its key puts
//! the smaller [`NodeId`] first so both ends still meet.
//!
//! # Combining the two views
//!
//! Each end's latest view is kept ([`EndReport`]). A view older than
//! [`HealthConfig::stale_after`] no longer counts. From the views that count:
//! - the link is [`LinkState::Down`] if either end sees it down;
//! - it is on the backup path if the child says its uplink is on the backup (the child
//!   chooses the path it sends on; the parent's view of the path is used only when the child
//!   has no fresh view);
//! - round-trip time, loss, jitter and traffic rates come from the most recent view;
//! - [`LinkState::Unknown`] when no view counts or no end has a probe answer yet.
//!
//! # Time
//!
//! Time is passed in as [`SystemTime`], never read here: `now` is when the controller
//! received the report (agents' clocks are not trusted). Wall-clock time because history is
//! shown to people and persisted with alerts; a clock step backwards yields no traffic rate
//! for that sample and never a panic.
//!
//! # Cost
//!
//! History is a ring buffer of [`HealthConfig::history`] samples per link (720 by default:
//! an hour at one report per end every ten seconds), one sample per report that touches the
//! link. A sample is under 100 bytes, so the whole national network (~45 000 links) at the
//! default depth needs a few GB; a controller serving all of it sets a shorter history.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::control::{PathChoice, PeerHealth, PeerRole, PeerStatus, Status};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Plane};

/// Samples kept per link unless configured otherwise.
pub const DEFAULT_HISTORY: usize = 720;
/// A view older than this no longer counts towards a link's state, and its agent no longer
/// counts as reporting.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30);
/// Probe loss above which an up link is degraded (the alert rule's default too).
pub const DEFAULT_DEGRADED_LOSS: f64 = 0.05;
/// Round-trip time above which an up link is degraded (the alert rule's default too).
pub const DEFAULT_DEGRADED_RTT: Duration = Duration::from_millis(150);

/// How health is judged and how much of it is remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Samples kept per link; 0 is taken as 1.
    pub history: usize,
    /// Age after which an end's view no longer counts.
    pub stale_after: Duration,
    /// Loss ratio (0–1) above which an up link is [`LinkState::Degraded`].
    pub degraded_loss: f64,
    /// Round-trip time above which an up link is [`LinkState::Degraded`].
    pub degraded_rtt: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            history: DEFAULT_HISTORY,
            stale_after: DEFAULT_STALE_AFTER,
            degraded_loss: DEFAULT_DEGRADED_LOSS,
            degraded_rtt: DEFAULT_DEGRADED_RTT,
        }
    }
}

/// A report that cannot be taken at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The status names a different node than the agent that sent it (its certificate).
    #[error("agent {reporter} sent a status for {claimed}")]
    WrongNode {
        /// The agent that sent the report.
        reporter: NodeId,
        /// The node the status names.
        claimed: NodeId,
    },
}

/// Why one peer entry of a report was skipped; the rest of the report is still taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerProblem {
    /// The agent lists itself as its own peer.
    #[error("the agent lists itself as a peer")]
    Itself,
    /// Loss is not a ratio between 0 and 1.
    #[error("loss {0} is not a ratio between 0 and 1")]
    Loss(f64),
}

/// A peer entry skipped from a report.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedPeer {
    /// The plane it was reported on.
    pub plane: Plane,
    /// The peer.
    pub peer: NodeId,
    /// Why it was skipped.
    pub problem: PeerProblem,
}

/// What [`HealthState::ingest`] did with a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ingested {
    /// Links whose view was updated.
    pub links: usize,
    /// Peer entries skipped, with the reason.
    pub skipped: Vec<SkippedPeer>,
}

/// One link on one plane: the tree's parent and child (for a lateral link, the smaller id
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkKey {
    /// The plane.
    pub plane: Plane,
    /// The node nearer the ministry.
    pub parent: NodeId,
    /// The node further from the ministry.
    pub child: NodeId,
}

impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} — {}", self.plane, self.parent, self.child)
    }
}

/// Whether a link is part of the tree or declared off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A tree link (uplink and child, or a site with an unmanaged peer).
    Tree,
    /// A declared lateral link.
    Lateral,
}

/// The combined state of a link, worst first: the order is the NOC's order of attention.
///
/// `Unknown` ranks after `Down` and before `Backup`: not knowing is worse than knowing that
/// the backup carries the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// An end sees it down.
    Down,
    /// No fresh view, or no probe has answered yet.
    Unknown,
    /// Up, on the backup underlay path.
    Backup,
    /// Up on the primary path, with loss or round-trip time above the thresholds.
    Degraded,
    /// Up on the primary path, healthy.
    Up,
}

impl LinkState {
    /// Every state, worst first.
    pub const ALL: [LinkState; 5] = [
        LinkState::Down,
        LinkState::Unknown,
        LinkState::Backup,
        LinkState::Degraded,
        LinkState::Up,
    ];

    /// The word used in tables, labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkState::Down => "down",
            LinkState::Unknown => "unknown",
            LinkState::Backup => "backup",
            LinkState::Degraded => "degraded",
            LinkState::Up => "up",
        }
    }

    /// Whether traffic passes (up, degraded or on the backup).
    pub fn carries_traffic(self) -> bool {
        matches!(
            self,
            LinkState::Up | LinkState::Degraded | LinkState::Backup
        )
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One end's latest view of a link, as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndReport {
    /// When the controller received it.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Probe health as this end sees it.
    pub health: PeerHealth,
    /// The underlay path this end sends on.
    pub path: PathChoice,
    /// Smoothed probe round-trip time.
    pub rtt: Option<Duration>,
    /// Probe loss, 0–1.
    pub loss: f64,
    /// Probe jitter.
    pub jitter: Duration,
    /// Time since this end's last WireGuard handshake.
    pub handshake_age: Option<Duration>,
    /// Overlay bytes this end received from the other (its counter).
    pub rx_bytes: u64,
    /// Overlay bytes this end sent to the other (its counter).
    pub tx_bytes: u64,
    /// Bytes per second child → parent since this end's previous report.
    pub up_rate: Option<f64>,
    /// Bytes per second parent → child since this end's previous report.
    pub down_rate: Option<f64>,
}

/// One point of a link's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSample {
    /// When the report that made it arrived.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// The combined state then.
    pub state: LinkState,
    /// The path then.
    pub path: PathChoice,
    /// Round-trip time.
    pub rtt: Option<Duration>,
    /// Loss, 0–1.
    pub loss: f64,
    /// Jitter.
    pub jitter: Duration,
    /// Bytes per second child → parent.
    pub up_rate: Option<f64>,
    /// Bytes per second parent → child.
    pub down_rate: Option<f64>,
}

/// A link as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    /// The link.
    pub key: LinkKey,
    /// Tree or lateral.
    pub kind: LinkKind,
    /// The combined state.
    pub state: LinkState,
    /// The underlay path in use.
    pub path: PathChoice,
    /// Round-trip time.
    pub rtt: Option<Duration>,
    /// Loss, 0–1.
    pub loss: f64,
    /// Jitter.
    pub jitter: Duration,
    /// Bytes per second child → parent.
    pub up_rate: Option<f64>,
    /// Bytes per second parent → child.
    pub down_rate: Option<f64>,
    /// The parent's latest view, fresh or not.
    pub parent_end: Option<EndReport>,
    /// The child's latest view, fresh or not.
    pub child_end: Option<EndReport>,
}

impl LinkView {
    /// Worst first: by state, then higher loss, then higher round-trip time, then key.
    pub fn worst_first(&self, other: &LinkView) -> Ordering {
        self.state
            .cmp(&other.state)
            .then(other.loss.total_cmp(&self.loss))
            .then(other.rtt.cmp(&self.rtt))
            .then(self.key.cmp(&other.key))
    }

    /// When the latest view of either end arrived.
    pub fn last_report(&self) -> Option<SystemTime> {
        let at = |end: &Option<EndReport>| end.as_ref().map(|e| e.at);
        at(&self.parent_end).max(at(&self.child_end))
    }
}

/// What the controller knows of one agent's reporting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSeen {
    /// When its latest report arrived.
    #[serde(with = "rfc3339")]
    pub last_report: SystemTime,
    /// The config version it ran then.
    pub version: u64,
    /// Reports received since the controller started.
    pub reports: u64,
}

/// Everything known about one link.
#[derive(Debug, Clone)]
struct LinkHealth {
    kind: LinkKind,
    parent_end: Option<EndReport>,
    child_end: Option<EndReport>,
    history: VecDeque<LinkSample>,
}

/// Which end of a link a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Parent,
    Child,
}

/// The health of every link reported so far, and every agent's last report.
#[derive(Debug, Clone, Default)]
pub struct HealthState {
    config: HealthConfig,
    links: BTreeMap<LinkKey, LinkHealth>,
    agents: BTreeMap<NodeId, AgentSeen>,
}

impl HealthState {
    /// An empty state.
    pub fn new(config: HealthConfig) -> HealthState {
        HealthState {
            config,
            links: BTreeMap::new(),
            agents: BTreeMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Takes the status `reporter` sent, received at `now`. `reporter` is the agent's
    /// authenticated identity; a status naming another node is refused whole. Peer entries
    /// that make no sense are skipped and listed; the others are taken.
    pub fn ingest(
        &mut self,
        reporter: NodeId,
        status: &Status,
        now: SystemTime,
    ) -> Result<Ingested, HealthError> {
        if let Some(claimed) = status.node
            && claimed != reporter
        {
            return Err(HealthError::WrongNode { reporter, claimed });
        }
        let seen = self.agents.entry(reporter).or_insert(AgentSeen {
            last_report: now,
            version: status.version,
            reports: 0,
        });
        seen.last_report = now;
        seen.version = status.version;
        seen.reports = seen.reports.saturating_add(1);

        let mut ingested = Ingested::default();
        for plane in &status.planes {
            for peer in &plane.peers {
                let skip = |problem| SkippedPeer {
                    plane: plane.plane,
                    peer: peer.node,
                    problem,
                };
                if peer.node == reporter {
                    ingested.skipped.push(skip(PeerProblem::Itself));
                } else if !(0.0..=1.0).contains(&peer.loss) {
                    ingested.skipped.push(skip(PeerProblem::Loss(peer.loss)));
                } else {
                    self.take_peer(reporter, plane.plane, peer, now);
                    ingested.links += 1;
                }
            }
        }
        Ok(ingested)
    }

    fn take_peer(&mut self, reporter: NodeId, plane: Plane, peer: &PeerStatus, now: SystemTime) {
        let (key, end, kind) = orient(reporter, plane, peer);
        let link = self.links.entry(key).or_insert_with(|| LinkHealth {
            kind,
            parent_end: None,
            child_end: None,
            history: VecDeque::new(),
        });
        let slot = match end {
            End::Parent => &mut link.parent_end,
            End::Child => &mut link.child_end,
        };
        *slot = Some(end_report(slot.as_ref(), end, peer, now));
        let view = combine(&self.config, key, link, now);
        let capacity = self.config.history.max(1);
        while link.history.len() >= capacity {
            link.history.pop_front();
        }
        link.history.push_back(LinkSample {
            at: now,
            state: view.state,
            path: view.path,
            rtt: view.rtt,
            loss: view.loss,
            jitter: view.jitter,
            up_rate: view.up_rate,
            down_rate: view.down_rate,
        });
    }

    /// Every link as it stands at `now`, in key order (plane, parent, child).
    pub fn links(&self, now: SystemTime) -> Vec<LinkView> {
        self.links
            .iter()
            .map(|(key, link)| combine(&self.config, *key, link, now))
            .collect()
    }

    /// Every link as it stands at `now`, worst first ([`LinkView::worst_first`]).
    pub fn links_worst_first(&self, now: SystemTime) -> Vec<LinkView> {
        let mut links = self.links(now);
        links.sort_by(LinkView::worst_first);
        links
    }

    /// One link as it stands at `now`, if either end ever reported it.
    pub fn link(&self, key: &LinkKey, now: SystemTime) -> Option<LinkView> {
        let link = self.links.get(key)?;
        Some(combine(&self.config, *key, link, now))
    }

    /// A link's history, oldest first, if either end ever reported it.
    pub fn history(
        &self,
        key: &LinkKey,
    ) -> Option<impl DoubleEndedIterator<Item = &LinkSample> + ExactSizeIterator> {
        Some(self.links.get(key)?.history.iter())
    }

    /// Every agent that has reported, by node.
    pub fn agents(&self) -> impl Iterator<Item = (&NodeId, &AgentSeen)> {
        self.agents.iter()
    }

    /// When `node`'s latest report arrived.
    pub fn last_seen(&self, node: &NodeId) -> Option<SystemTime> {
        self.agents.get(node).map(|seen| seen.last_report)
    }

    /// How many agents reported within [`HealthConfig::stale_after`] of `now`.
    pub fn reporting(&self, now: SystemTime) -> usize {
        let fresh = |seen: &&AgentSeen| is_fresh(seen.last_report, now, self.config.stale_after);
        self.agents.values().filter(fresh).count()
    }

    /// Forgets an agent that left the network: its last-seen time and its views of links.
    /// Links nobody else reports go too.
    pub fn forget_agent(&mut self, node: &NodeId) {
        self.agents.remove(node);
        self.links.retain(|key, link| {
            if key.parent == *node {
                link.parent_end = None;
            }
            if key.child == *node {
                link.child_end = None;
            }
            link.parent_end.is_some() || link.child_end.is_some()
        });
    }
}

/// The key, the reporter's end, and the kind of the link to `peer`.
fn orient(reporter: NodeId, plane: Plane, peer: &PeerStatus) -> (LinkKey, End, LinkKind) {
    let key = |parent, child| LinkKey {
        plane,
        parent,
        child,
    };
    match peer.role {
        PeerRole::Uplink => (key(peer.node, reporter), End::Child, LinkKind::Tree),
        PeerRole::Child | PeerRole::Unmanaged => {
            (key(reporter, peer.node), End::Parent, LinkKind::Tree)
        }
        PeerRole::Lateral if reporter < peer.node => {
            (key(reporter, peer.node), End::Parent, LinkKind::Lateral)
        }
        PeerRole::Lateral => (key(peer.node, reporter), End::Child, LinkKind::Lateral),
    }
}

/// The new view of one end, with traffic rates against its previous view.
fn end_report(
    previous: Option<&EndReport>,
    end: End,
    peer: &PeerStatus,
    now: SystemTime,
) -> EndReport {
    let rate = |bytes: u64, before: u64, since: SystemTime| -> Option<f64> {
        let elapsed = now.duration_since(since).ok()?.as_secs_f64();
        let grown = bytes.checked_sub(before)?; // a smaller counter: the agent restarted
        (elapsed > 0.0).then(|| grown as f64 / elapsed)
    };
    let (rx_rate, tx_rate) = match previous {
        Some(p) => (
            rate(peer.rx_bytes, p.rx_bytes, p.at),
            rate(peer.tx_bytes, p.tx_bytes, p.at),
        ),
        None => (None, None),
    };
    // The child sends upwards; the parent receives what goes upwards.
    let (up_rate, down_rate) = match end {
        End::Child => (tx_rate, rx_rate),
        End::Parent => (rx_rate, tx_rate),
    };
    EndReport {
        at: now,
        health: peer.health,
        path: peer.path,
        rtt: peer.rtt,
        loss: peer.loss,
        jitter: peer.jitter,
        handshake_age: peer.handshake_age,
        rx_bytes: peer.rx_bytes,
        tx_bytes: peer.tx_bytes,
        up_rate,
        down_rate,
    }
}

/// Whether a report received `at` still counts at `now`. A report from the future (the
/// controller's clock stepped back) counts.
fn is_fresh(at: SystemTime, now: SystemTime, stale_after: Duration) -> bool {
    now.duration_since(at)
        .map_or(true, |age| age <= stale_after)
}

/// Both ends' views combined into the link's state at `now` (see the module docs).
fn combine(config: &HealthConfig, key: LinkKey, link: &LinkHealth, now: SystemTime) -> LinkView {
    let fresh = |end: &Option<EndReport>| {
        end.as_ref()
            .filter(|e| is_fresh(e.at, now, config.stale_after))
            .cloned()
    };
    let (parent, child) = (fresh(&link.parent_end), fresh(&link.child_end));
    // The most recent view; on a tie, the child's.
    let latest_of = |a: Option<EndReport>, b: Option<EndReport>| match (a, b) {
        (Some(p), Some(c)) => Some(if p.at > c.at { p } else { c }),
        (p, c) => c.or(p),
    };
    let latest = latest_of(parent.clone(), child.clone());
    let views = [&parent, &child];
    let seen = |health| {
        views
            .iter()
            .any(|v| v.as_ref().is_some_and(|e| e.health == health))
    };
    let path = child
        .as_ref()
        .or(parent.as_ref())
        .map_or(PathChoice::Primary, |e| e.path);
    let state = match &latest {
        None => LinkState::Unknown,
        Some(_) if seen(PeerHealth::Down) => LinkState::Down,
        Some(_) if !seen(PeerHealth::Up) => LinkState::Unknown,
        Some(_) if path == PathChoice::Backup => LinkState::Backup,
        Some(e) if e.loss > config.degraded_loss || e.rtt > Some(config.degraded_rtt) => {
            LinkState::Degraded
        }
        Some(_) => LinkState::Up,
    };
    // With no fresh view, show the last numbers known, under an unknown state.
    let numbers = latest.or_else(|| latest_of(link.parent_end.clone(), link.child_end.clone()));
    LinkView {
        key,
        kind: link.kind,
        state,
        path,
        rtt: numbers.as_ref().and_then(|e| e.rtt),
        loss: numbers.as_ref().map_or(0.0, |e| e.loss),
        jitter: numbers.as_ref().map_or(Duration::ZERO, |e| e.jitter),
        up_rate: numbers.as_ref().and_then(|e| e.up_rate),
        down_rate: numbers.as_ref().and_then(|e| e.down_rate),
        parent_end: link.parent_end.clone(),
        child_end: link.child_end.clone(),
    }
}

/// Times as UTC RFC 3339 text (`2026-11-27T07:45:39.250Z`), for people and for serde
/// (`#[serde(with = "controller::health::rfc3339")]`).
///
/// Times before 1970 or after 9999 are written as the nearest end of that range rather than
/// failing: a certificate's `notAfter` of 99991231235959Z is common and must not break a
/// page or a store.
pub mod rfc3339 {
    use super::{Duration, SystemTime, UNIX_EPOCH};
    use serde::{Deserialize, Deserializer, Serializer};

    /// The last second humantime (and RFC 3339) can write: 9999-12-31T23:59:59Z.
    const LAST: u64 = 253_402_300_799;

    /// The time as text, to the millisecond.
    pub fn format(at: SystemTime) -> String {
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let clamped = if since_epoch.as_secs() > LAST {
            UNIX_EPOCH + Duration::from_secs(LAST)
        } else {
            UNIX_EPOCH + since_epoch
        };
        humantime::format_rfc3339_millis(clamped).to_string()
    }

    /// Serialises as [`format()`].
    pub fn serialize<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format(*at))
    }

    /// Reads RFC 3339 text (`Z` or no zone means UTC).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use agent::control::PlaneStatus;
    use pki::WireGuardKey;

    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
    }

    pub(crate) fn node(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    pub(crate) fn peer(id: &str, role: PeerRole, health: PeerHealth) -> PeerStatus {
        PeerStatus {
            node: node(id),
            role,
            public_key: WireGuardKey([7; 32]),
            endpoint: None,
            path: PathChoice::Primary,
            allowed: Vec::new(),
            handshake_age: Some(Duration::from_secs(5)),
            rx_bytes: 0,
            tx_bytes: 0,
            rx_packets: 0,
            tx_packets: 0,
            health,
            rtt: Some(Duration::from_millis(20)),
            loss: 0.0,
            jitter: Duration::from_millis(1),
            conference: None,
        }
    }

    pub(crate) fn status(id: &str, peers: Vec<PeerStatus>) -> Status {
        Status {
            node: Some(node(id)),
            version: 3,
            planes: vec![PlaneStatus {
                plane: Plane::Business,
                listen: "192.0.2.1:51820".parse().unwrap(),
                public_key: WireGuardKey([1; 32]),
                peers,
                refused: Vec::new(),
                rules: Vec::new(),
                default_denied: 0,
                denied: Vec::new(),
                malformed: 0,
                unroutable: 0,
                denied_flows: Vec::new(),
            }],
            audit: None,
        }
    }

    pub(crate) fn key(parent: &str, child: &str) -> LinkKey {
        LinkKey {
            plane: Plane::Business,
            parent: node(parent),
            child: node(child),
        }
    }

    fn up(id: &str, role: PeerRole) -> PeerStatus {
        peer(id, role, PeerHealth::Up)
    }

    #[test]
    fn both_ends_meet_on_one_key_and_down_wins() {
        let mut health = HealthState::default();
        let province = status("dc:14", vec![up("dc:1401", PeerRole::Child)]);
        let city = status(
            "dc:1401",
            vec![peer("dc:14", PeerRole::Uplink, PeerHealth::Down)],
        );
        health.ingest(node("dc:14"), &province, at(0)).unwrap();
        health.ingest(node("dc:1401"), &city, at(1)).unwrap();
        let links = health.links(at(2));
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].key, key("dc:14", "dc:1401"));
        assert_eq!(links[0].state, LinkState::Down);
        assert!(links[0].parent_end.is_some() && links[0].child_end.is_some());
    }

    #[test]
    fn the_child_decides_the_path_and_the_latest_view_the_numbers() {
        let mut health = HealthState::default();
        let mut parent_view = up("dc:1401", PeerRole::Child);
        parent_view.rtt = Some(Duration::from_millis(10));
        let mut child_view = up("dc:14", PeerRole::Uplink);
        child_view.path = PathChoice::Backup;
        child_view.rtt = Some(Duration::from_millis(90));
        health
            .ingest(node("dc:1401"), &status("dc:1401", vec![child_view]), at(0))
            .unwrap();
        health
            .ingest(node("dc:14"), &status("dc:14", vec![parent_view]), at(5))
            .unwrap();
        let link = health.link(&key("dc:14", "dc:1401"), at(6)).unwrap();
        assert_eq!(link.state, LinkState::Backup);
        assert_eq!(link.path, PathChoice::Backup);
        assert_eq!(
            link.rtt,
            Some(Duration::from_millis(10)),
            "the parent spoke last"
        );
    }

    #[test]
    fn stale_views_stop_counting() {
        let mut health = HealthState::default();
        let city = status(
            "dc:1401",
            vec![peer("dc:14", PeerRole::Uplink, PeerHealth::Down)],
        );
        health.ingest(node("dc:1401"), &city, at(0)).unwrap();
        let province = status("dc:14", vec![up("dc:1401", PeerRole::Child)]);
        health.ingest(node("dc:14"), &province, at(20)).unwrap();
        let k = key("dc:14", "dc:1401");
        assert_eq!(health.link(&k, at(30)).unwrap().state, LinkState::Down);
        // The city's view is 31 s old: only the province's counts.
        assert_eq!(health.link(&k, at(31)).unwrap().state, LinkState::Up);
        // Nobody fresh: unknown, with the last numbers kept.
        let gone = health.link(&k, at(51)).unwrap();
        assert_eq!(gone.state, LinkState::Unknown);
        assert_eq!(gone.rtt, Some(Duration::from_millis(20)));
        assert_eq!(health.reporting(at(51)), 0);
        assert_eq!(health.reporting(at(50)), 1);
    }

    #[test]
    fn links_sort_worst_first() {
        let mut health = HealthState::default();
        let mut lossy = up("dc:1402", PeerRole::Child);
        lossy.loss = 0.2;
        let mut slow = up("dc:1403", PeerRole::Child);
        slow.rtt = Some(Duration::from_millis(400));
        let mut backup = up("dc:1404", PeerRole::Child);
        backup.path = PathChoice::Backup;
        let peers = vec![
            up("dc:1401", PeerRole::Child),
            slow,
            lossy,
            backup,
            peer("dc:1405", PeerRole::Child, PeerHealth::Unknown),
            peer("dc:1406", PeerRole::Child, PeerHealth::Down),
        ];
        health
            .ingest(node("dc:14"), &status("dc:14", peers), at(0))
            .unwrap();
        let order: Vec<(String, LinkState)> = health
            .links_worst_first(at(1))
            .iter()
            .map(|l| (l.key.child.to_string(), l.state))
            .collect();
        let expected = [
            ("dc:1406", LinkState::Down),
            ("dc:1405", LinkState::Unknown),
            ("dc:1404", LinkState::Backup),
            ("dc:1402", LinkState::Degraded),
            ("dc:1403", LinkState::Degraded),
            ("dc:1401", LinkState::Up),
        ]
        .map(|(n, s)| (n.to_owned(), s));
        assert_eq!(order, expected);
    }

    #[test]
    fn history_is_bounded_and_rates_come_from_counters() {
        let config = HealthConfig {
            history: 3,
            ..HealthConfig::default()
        };
        let mut health = HealthState::new(config);
        for i in 0..5u64 {
            let mut view = up("dc:14", PeerRole::Uplink);
            view.tx_bytes = i * 10_000; // upwards
            view.rx_bytes = i * 1_000;
            let report = status("dc:1401", vec![view]);
            health.ingest(node("dc:1401"), &report, at(i * 10)).unwrap();
        }
        let k = key("dc:14", "dc:1401");
        let samples: Vec<&LinkSample> = health.history(&k).unwrap().collect();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].at, at(20), "the oldest went first");
        assert_eq!(samples[2].up_rate, Some(1_000.0));
        assert_eq!(samples[2].down_rate, Some(100.0));
        // A counter that went backwards (agent restart) gives no rate, not a huge one.
        let mut restarted = up("dc:14", PeerRole::Uplink);
        restarted.tx_bytes = 5;
        let report = status("dc:1401", vec![restarted]);
        health.ingest(node("dc:1401"), &report, at(50)).unwrap();
        assert_eq!(health.history(&k).unwrap().last().unwrap().up_rate, None);
        assert_eq!(health.history(&k).unwrap().len(), 3);
    }

    #[test]
    fn bad_reports_are_refused_or_skipped_without_losing_the_rest() {
        let mut health = HealthState::default();
        let err = health
            .ingest(node("dc:15"), &status("dc:14", Vec::new()), at(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("dc:15 sent a status for dc:14"),
            "{err}"
        );
        assert!(health.agents().next().is_none());

        let mut nan = up("dc:1401", PeerRole::Child);
        nan.loss = f64::NAN;
        let peers = vec![
            nan,
            up("dc:14", PeerRole::Child),
            up("dc:1402", PeerRole::Child),
        ];
        let done = health
            .ingest(node("dc:14"), &status("dc:14", peers), at(0))
            .unwrap();
        assert_eq!(done.links, 1);
        assert_eq!(done.skipped.len(), 2);
        assert!(matches!(done.skipped[0].problem, PeerProblem::Loss(_)));
        assert_eq!(done.skipped[1].problem, PeerProblem::Itself);
        assert_eq!(health.last_seen(&node("dc:14")), Some(at(0)));
    }

    #[test]
    fn lateral_links_meet_whichever_end_reports() {
        let mut health = HealthState::default();
        let a = status("dc:1401", vec![up("dc:1301", PeerRole::Lateral)]);
        let b = status("dc:1301", vec![up("dc:1401", PeerRole::Lateral)]);
        health.ingest(node("dc:1401"), &a, at(0)).unwrap();
        health.ingest(node("dc:1301"), &b, at(0)).unwrap();
        let links = health.links(at(0));
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].kind, LinkKind::Lateral);
        assert_eq!(links[0].key, key("dc:1301", "dc:1401"));
    }

    #[test]
    fn forgetting_an_agent_drops_links_nobody_reports() {
        let mut health = HealthState::default();
        let city = status("dc:1401", vec![up("dc:14", PeerRole::Uplink)]);
        health.ingest(node("dc:1401"), &city, at(0)).unwrap();
        health.forget_agent(&node("dc:1401"));
        assert!(health.links(at(0)).is_empty());
        assert_eq!(health.last_seen(&node("dc:1401")), None);
    }

    #[test]
    fn times_are_written_for_people_even_at_the_ends_of_the_range() {
        assert_eq!(rfc3339::format(at(0)), "2026-11-18T11:06:40.000Z");
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339::format(far), "9999-12-31T23:59:59.000Z");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339::format(before), "1970-01-01T00:00:00.000Z");
        let sample = AgentSeen {
            last_report: at(0),
            version: 1,
            reports: 1,
        };
        let json = serde_json::to_string(&sample).unwrap();
        assert!(json.contains("\"2026-11-18T11:06:40.000Z\""), "{json}");
        assert_eq!(serde_json::from_str::<AgentSeen>(&json).unwrap(), sample);
    }
}
