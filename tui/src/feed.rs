//! What the dashboard shows: one [`Snapshot`] of the controller's admin API, and whether the
//! controller is still answering ([`Feed`]).
//!
//! The snapshot is plain data decoded from the API's JSON, so the views can be rendered from
//! a fixed model in tests and from a generated national one in the benchmark, without a
//! controller. Everything here arrived over the network: the views never assume a field is
//! consistent with another (a booking may name a link the link list does not have).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use controller::alerts::{Alert, AlertChange};
use controller::health::{LinkKey, LinkSample, LinkView};
use controller::server::conferences::BookingView;
use controller::snmp::InterfaceRate;
use controller::store::CertificateRecord;
use serde::{Deserialize, Serialize};
use topology::{DivisionCode, NodeId};

/// Everything fetched in one refresh.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every link the controller has reports for (its order does not matter).
    pub links: Vec<LinkView>,
    /// Open alerts and the latest changes.
    pub alerts: Alerts,
    /// Every booking the controller knows.
    pub conferences: Vec<BookingView>,
    /// Every certificate the controller issued.
    pub certificates: Vec<CertificateRecord>,
    /// The SNMP-polled underlay devices.
    pub devices: Vec<Device>,
    /// The last isolation audit, when one was run.
    pub audit: Option<Audit>,
    /// The history of the link being looked at, when one is.
    pub history: Option<LinkHistory>,
}

/// Open alerts and the latest changes (the controller's `GET /v1/alerts`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Alerts {
    /// Firing or acknowledged.
    pub open: Vec<Alert>,
    /// The latest changes, newest first.
    pub recent: Vec<AlertChange>,
}

/// The stored history of one link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkHistory {
    /// The link.
    pub link: LinkKey,
    /// Oldest first.
    pub samples: Vec<LinkSample>,
}

/// An underlay device the controller polls over SNMP (`GET /v1/snmp/devices`), the fields
/// the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Its name in the inventory.
    pub name: String,
    /// The SNMP agent's address.
    #[serde(default)]
    pub address: String,
    /// The tree link it carries (`dc:44-dc:4401`), if any.
    #[serde(default)]
    pub link: Option<String>,
    /// The last poll got an answer.
    #[serde(default)]
    pub reachable: bool,
    /// Why the last poll failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// sysUpTime (1/100 s) at the last successful poll.
    #[serde(default)]
    pub sys_uptime: Option<u32>,
    /// Interfaces with rates and status.
    #[serde(default)]
    pub interfaces: Vec<InterfaceRate>,
}

impl Device {
    /// Whether this device carries the tree link between `a` and `b` (either order).
    pub fn carries(&self, a: NodeId, b: NodeId) -> bool {
        self.link.as_deref().and_then(link_ends) == Some(ordered(a, b))
    }
}

/// The two ends of a link written `upper-lower` (`dc:14-dc:1401`), smaller id first.
pub fn link_ends(text: &str) -> Option<(NodeId, NodeId)> {
    // Node ids contain no `-` before their role's colon, so split at a `-` followed by a
    // role: `dc:14-dc:1401`, `dc:1401-site:140105:window-03`.
    let split = text.match_indices('-').map(|(i, _)| i).find(|&i| {
        text[i + 1..].parse::<NodeId>().is_ok() && text[..i].parse::<NodeId>().is_ok()
    })?;
    let a = text[..split].parse().ok()?;
    let b = text[split + 1..].parse().ok()?;
    Some(ordered(a, b))
}

fn ordered(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// The last isolation audit's report (`GET /v1/audits/latest`).
pub type Audit = controller::audit::Report;

/// One thing an audit found wrong, with its counterexample and evidence.
pub type Finding = controller::audit::Finding;

/// Whether the controller answers, and how old the data is.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    /// The latest snapshot that arrived whole.
    pub snapshot: Snapshot,
    /// When it arrived; `None` before the first.
    pub fetched_at: Option<SystemTime>,
    /// The failure since the last success, with when it started.
    pub failing: Option<Failure>,
}

/// The controller stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The first failed refresh after a success.
    pub since: SystemTime,
    /// The latest error.
    pub error: String,
}

impl Feed {
    /// A refresh succeeded at `at`.
    pub fn arrived(&mut self, snapshot: Snapshot, at: SystemTime) {
        self.snapshot = snapshot;
        self.fetched_at = Some(at);
        self.failing = None;
    }

    /// A refresh failed at `at`; the data already shown stays.
    pub fn failed(&mut self, error: String, at: SystemTime) {
        let since = self.failing.as_ref().map_or(at, |f| f.since);
        self.failing = Some(Failure { since, error });
    }

    /// How old the shown data is at `now` (`None` before the first snapshot).
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        self.fetched_at
            .map(|at| now.duration_since(at).unwrap_or(Duration::ZERO))
    }
}

/// Division names (`山西省`, `太原市`) by code, for the tree; node ids stay the key.
#[derive(Debug, Clone, Default)]
pub struct Names(BTreeMap<DivisionCode, String>);

impl Names {
    /// The provinces, cities and county-level divisions of the embedded national dataset;
    /// empty if it does not load (names are a help, never needed).
    pub fn national() -> Names {
        let Ok(divisions) = topology::Divisions::embedded() else {
            return Names::default();
        };
        let rows = divisions
            .provinces
            .into_iter()
            .chain(divisions.cities)
            .chain(divisions.areas);
        Names(rows.map(|d| (d.code, d.name)).collect())
    }

    /// The name of a node's division; `部` for the ministry.
    pub fn of(&self, node: &NodeId) -> &str {
        if *node == NodeId::MINISTRY {
            return "人社部";
        }
        self.0.get(&node.code()).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> NodeId {
        text.parse().expect("a node id")
    }

    #[test]
    fn link_names_split_at_the_second_node_id() {
        assert_eq!(
            link_ends("dc:14-dc:1401"),
            Some((node("dc:14"), node("dc:1401")))
        );
        assert_eq!(
            link_ends("dc:1401-site:140105:window-03"),
            Some((node("dc:1401"), node("site:140105:window-03")))
        );
        assert_eq!(link_ends("dc:14"), None);
        assert_eq!(link_ends("nonsense-text"), None);
    }

    #[test]
    fn a_failure_keeps_the_data_and_counts_from_its_first_refresh() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut feed = Feed::default();
        let mut snapshot = Snapshot::default();
        snapshot.devices.push(Device::default());
        feed.arrived(snapshot, t0);
        feed.failed("refused".into(), t0 + Duration::from_secs(2));
        feed.failed("timeout".into(), t0 + Duration::from_secs(3));
        let failing = feed.failing.clone().expect("failing");
        assert_eq!(failing.since, t0 + Duration::from_secs(2));
        assert_eq!(failing.error, "timeout");
        assert_eq!(feed.snapshot.devices.len(), 1);
        assert_eq!(
            feed.age(t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
    }
}
