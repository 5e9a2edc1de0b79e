//! The controller's Prometheus exposition: the controller itself (agents, enrolment, alerts,
//! API requests, build) and the link health it aggregates from both ends of every link.
//!
//! The module exists so that one Prometheus scrape of the controller shows the whole WAN the
//! way the NOC dashboard does — one combined state per link ([`crate::health`]) rather than
//! two agents' views to be reconciled in PromQL — next to the controller's own health. It is
//! sans-IO: [`render`] turns a [`Snapshot`] and `now` into text; the server serves it.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `jinbao_controller_build_info` (1) | gauge | `version` |
//! | `jinbao_controller_enrolled_nodes` | gauge | |
//! | `jinbao_controller_agents_known` | gauge | |
//! | `jinbao_controller_agents_reporting` | gauge | |
//! | `jinbao_controller_agent_last_report_timestamp_seconds` | gauge | `node` |
//! | `jinbao_controller_alerts_firing` | gauge | `rule` |
//! | `jinbao_controller_alerts_acknowledged` | gauge | `rule` |
//! | `jinbao_controller_api_requests_total` | counter | `route`, `status` |
//! | `jinbao_controller_links` | gauge | `plane`, `state` |
//! | `jinbao_controller_link_up` | gauge | `plane`, `parent`, `child` |
//! | `jinbao_controller_link_on_backup` | gauge | `plane`, `parent`, `child` |
//! | `jinbao_controller_link_rtt_seconds` | gauge | `plane`, `parent`, `child` |
//! | `jinbao_controller_link_loss_ratio` | gauge | `plane`, `parent`, `child` |
//! | `jinbao_controller_link_jitter_seconds` | gauge | `plane`, `parent`, `child` |
//!
//! - "Known" agents have reported at least once since the controller started; "reporting"
//!   ones did so within [`HealthConfig::stale_after`](crate::health::HealthConfig).
//! - `alerts_firing` counts every open alert, acknowledged ones included (their condition
//!   still holds); `alerts_acknowledged` counts the acknowledged among them. Every rule has a
//!   sample, zero or not, and so has every (plane, state) of `links`, so series do not
//!   appear and vanish with the network's mood.
//! - `link_up` is 1 when the link carries traffic (up, degraded or on the backup path). A
//!   link in the `unknown` state (no fresh report from either end) has no `rtt`, `loss` or
//!   `jitter` sample rather than a stale one; neither has a link whose probes never answered
//!   an RTT.
//! - `api_requests_total` is the one counter kept between scrapes, in [`ApiRequests`], which
//!   the server bumps. Its `route` label must be the route pattern (`/v1/nodes/{id}`), never
//!   the raw path, or the series multiply without bound.
//!
//! Everything else is built afresh for each scrape in its own [`Registry`], so a link that
//! leaves the health state leaves the exposition too. The families are registered and
//! recorded with the agent's building blocks ([`agent::metrics`]), errors included.

use std::time::{SystemTime, UNIX_EPOCH};

use agent::control::PathChoice;
use agent::metrics::{Meta, encode, set_float, set_int};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Registry};
use topology::Plane;

use crate::alerts::AlertEngine;
use crate::health::{HealthState, LinkState};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The exposition could not be produced: the agent's error, as the families are built with
/// the agent's helpers.
pub use agent::metrics::MetricsError;

/// API requests by route and status, kept for the life of the server, which bumps it.
#[derive(Debug, Clone)]
pub struct ApiRequests {
    requests: IntCounterVec,
}

impl ApiRequests {
    /// A counter at zero.
    pub fn new() -> Result<ApiRequests, MetricsError> {
        let requests = IntCounterVec::new(API_REQUESTS.opts(), &["route", "status"])
            .map_err(|source| API_REQUESTS.error(source))?;
        Ok(ApiRequests { requests })
    }

    /// Counts one request answered with `status` on `route` (the route pattern, not the
    /// path).
    pub fn record(&self, route: &str, status: u16) {
        let status = status.to_string();
        // The only failure is a label count mismatch, which the fixed pair rules out.
        if let Ok(counter) = self
            .requests
            .get_metric_with_label_values(&[route, &status])
        {
            counter.inc();
        }
    }
}

/// What one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Link health and agents' reports.
    pub health: &'a HealthState,
    /// Open alerts.
    pub alerts: &'a AlertEngine,
    /// Nodes enrolled in the store.
    pub enrolled_nodes: usize,
    /// The API request counter, if the server keeps one.
    pub api: Option<&'a ApiRequests>,
}

/// The snapshot at `now` as Prometheus text exposition (format 0.0.4), families sorted by
/// name.
pub fn render(snapshot: &Snapshot<'_>, now: SystemTime) -> Result<String, MetricsError> {
    let registry = Registry::new();
    let families = Families::register(&registry)?;
    families.record(snapshot, now)?;
    if let Some(api) = snapshot.api {
        let api = api.requests.clone();
        registry
            .register(Box::new(api))
            .map_err(|source| API_REQUESTS.error(source))?;
    }
    encode(&registry)
}

const LINK: &[&str] = &["plane", "parent", "child"];

const BUILD_INFO: Meta = Meta(
    "jinbao_controller_build_info",
    "The controller's build (always 1).",
);
const ENROLLED: Meta = Meta(
    "jinbao_controller_enrolled_nodes",
    "Nodes enrolled in the controller's store.",
);
const AGENTS_KNOWN: Meta = Meta(
    "jinbao_controller_agents_known",
    "Agents that have reported at least once since the controller started.",
);
const AGENTS_REPORTING: Meta = Meta(
    "jinbao_controller_agents_reporting",
    "Agents whose latest report is fresh.",
);
const LAST_REPORT: Meta = Meta(
    "jinbao_controller_agent_last_report_timestamp_seconds",
    "When the agent's latest report arrived, in seconds since the Unix epoch.",
);
const ALERTS_FIRING: Meta = Meta(
    "jinbao_controller_alerts_firing",
    "Open alerts by rule, acknowledged ones included.",
);
const ALERTS_ACKNOWLEDGED: Meta = Meta(
    "jinbao_controller_alerts_acknowledged",
    "Open alerts an operator has acknowledged, by rule.",
);
const API_REQUESTS: Meta = Meta(
    "jinbao_controller_api_requests_total",
    "API requests answered, by route pattern and HTTP status.",
);
const LINKS: Meta = Meta(
    "jinbao_controller_links",
    "Links by plane and combined state.",
);
const LINK_UP: Meta = Meta(
    "jinbao_controller_link_up",
    "1 when the link carries traffic (up, degraded or on the backup path), else 0.",
);
const LINK_ON_BACKUP: Meta = Meta(
    "jinbao_controller_link_on_backup",
    "1 when the link's traffic uses its backup underlay path.",
);
const LINK_RTT: Meta = Meta(
    "jinbao_controller_link_rtt_seconds",
    "Smoothed round-trip time of the link's in-tunnel probes.",
);
const LINK_LOSS: Meta = Meta(
    "jinbao_controller_link_loss_ratio",
    "Probe loss on the link over the recent window, 0 to 1.",
);
const LINK_JITTER: Meta = Meta(
    "jinbao_controller_link_jitter_seconds",
    "Probe interarrival jitter on the link (RFC 3550).",
);

/// Every per-scrape family, registered in one registry.
struct Families {
    build_info: IntGaugeVec,
    enrolled: IntGaugeVec,
    agents_known: IntGaugeVec,
    agents_reporting: IntGaugeVec,
    last_report: GaugeVec,
    alerts_firing: IntGaugeVec,
    alerts_acknowledged: IntGaugeVec,
    links: IntGaugeVec,
    link_up: IntGaugeVec,
    link_on_backup: IntGaugeVec,
    link_rtt: GaugeVec,
    link_loss: GaugeVec,
    link_jitter: GaugeVec,
}

impl Families {
    fn register(r: &Registry) -> Result<Families, MetricsError> {
        Ok(Families {
            build_info: BUILD_INFO.int_gauge(r, &["version"])?,
            enrolled: ENROLLED.int_gauge(r, &[])?,
            agents_known: AGENTS_KNOWN.int_gauge(r, &[])?,
            agents_reporting: AGENTS_REPORTING.int_gauge(r, &[])?,
            last_report: LAST_REPORT.gauge(r, &["node"])?,
            alerts_firing: ALERTS_FIRING.int_gauge(r, &["rule"])?,
            alerts_acknowledged: ALERTS_ACKNOWLEDGED.int_gauge(r, &["rule"])?,
            links: LINKS.int_gauge(r, &["plane", "state"])?,
            link_up: LINK_UP.int_gauge(r, LINK)?,
            link_on_backup: LINK_ON_BACKUP.int_gauge(r, LINK)?,
            link_rtt: LINK_RTT.gauge(r, LINK)?,
            link_loss: LINK_LOSS.gauge(r, LINK)?,
            link_jitter: LINK_JITTER.gauge(r, LINK)?,
        })
    }

    fn record(&self, snapshot: &Snapshot<'_>, now: SystemTime) -> Result<(), MetricsError> {
        let health = snapshot.health;
        set_int(&self.build_info, &[env!("CARGO_PKG_VERSION")], 1)?;
        set_int(&self.enrolled, &[], count(snapshot.enrolled_nodes))?;
        set_int(&self.agents_known, &[], count(health.agents().count()))?;
        set_int(&self.agents_reporting, &[], count(health.reporting(now)))?;
        for (node, seen) in health.agents() {
            let at = seen
                .last_report
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            set_float(&self.last_report, &[&node.to_string()], at)?;
        }

        for (rule, open) in snapshot.alerts.open_by_rule() {
            set_int(&self.alerts_firing, &[rule.as_str()], count(open))?;
            let acknowledged = snapshot
                .alerts
                .open()
                .filter(|alert| alert.rule == rule && alert.acknowledged.is_some())
                .count();
            set_int(
                &self.alerts_acknowledged,
                &[rule.as_str()],
                count(acknowledged),
            )?;
        }

        let links = health.links(now);
        for plane in Plane::ALL {
            for state in LinkState::ALL {
                let n = links
                    .iter()
                    .filter(|l| l.key.plane == *plane && l.state == state)
                    .count();
                set_int(&self.links, &[plane.as_str(), state.as_str()], count(n))?;
            }
        }
        for link in &links {
            let (parent, child) = (link.key.parent.to_string(), link.key.child.to_string());
            let labels = [link.key.plane.as_str(), parent.as_str(), child.as_str()];
            let up = link.state.carries_traffic();
            set_int(&self.link_up, &labels, i64::from(up))?;
            let on_backup = link.path == PathChoice::Backup;
            set_int(&self.link_on_backup, &labels, i64::from(on_backup))?;
            if link.state == LinkState::Unknown {
                continue;
            }
            if let Some(rtt) = link.rtt {
                set_float(&self.link_rtt, &labels, rtt.as_secs_f64())?;
            }
            set_float(&self.link_loss, &labels, link.loss)?;
            set_float(&self.link_jitter, &labels, link.jitter.as_secs_f64())?;
        }
        Ok(())
    }
}

/// A count as a gauge value.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertRules;
    use crate::health::tests::{at, node, peer, status};
    use agent::control::{PeerHealth, PeerRole};
    use std::time::Duration;

    /// The sample lines of `family` (exact name), without HELP and TYPE.
    fn samples<'t>(text: &'t str, family: &str) -> Vec<&'t str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(family))
            .collect()
    }

    fn scrape() -> String {
        let mut health = HealthState::default();
        let mut datong = peer("dc:1402", PeerRole::Child, PeerHealth::Up);
        datong.path = PathChoice::Backup;
        datong.rtt = Some(Duration::from_millis(40));
        datong.loss = 0.25;
        let peers = vec![
            peer("dc:1401", PeerRole::Child, PeerHealth::Up),
            datong,
            peer("dc:1403", PeerRole::Child, PeerHealth::Down),
        ];
        health
            .ingest(node("dc:14"), &status("dc:14", peers), at(0))
            .unwrap();
        let mut alerts = AlertEngine::new(AlertRules::default());
        alerts.evaluate(&health, &[], at(1));
        let api = ApiRequests::new().unwrap();
        api.record("/v1/health", 200);
        api.record("/v1/health", 200);
        api.record("/v1/enroll", 403);
        let snapshot = Snapshot {
            health: &health,
            alerts: &alerts,
            enrolled_nodes: 7,
            api: Some(&api),
        };
        render(&snapshot, at(1)).unwrap()
    }

    #[test]
    fn links_are_exported_with_their_combined_state() {
        let text = scrape();
        let datong = r#"{child="dc:1402",parent="dc:14",plane="business"}"#;
        assert!(
            text.contains(&format!("jinbao_controller_link_up{datong} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("jinbao_controller_link_on_backup{datong} 1")));
        assert!(text.contains(&format!("jinbao_controller_link_rtt_seconds{datong} 0.04")));
        assert!(text.contains(&format!("jinbao_controller_link_loss_ratio{datong} 0.25")));
        let yangquan = r#"{child="dc:1403",parent="dc:14",plane="business"}"#;
        assert!(text.contains(&format!("jinbao_controller_link_up{yangquan} 0")));
        assert_eq!(samples(&text, "jinbao_controller_link_up").len(), 3);
        assert!(text.contains(r#"jinbao_controller_links{plane="business",state="down"} 1"#));
        assert!(text.contains(r#"jinbao_controller_links{plane="office",state="up"} 0"#));
        assert_eq!(samples(&text, "jinbao_controller_links").len(), 15);
    }

    #[test]
    fn the_controller_itself_is_exported() {
        let text = scrape();
        assert!(
            text.contains("jinbao_controller_enrolled_nodes 7"),
            "{text}"
        );
        assert!(text.contains("jinbao_controller_agents_known 1"));
        assert!(text.contains("jinbao_controller_agents_reporting 1"));
        let version = env!("CARGO_PKG_VERSION");
        let info = format!("jinbao_controller_build_info{{version=\"{version}\"}} 1");
        assert!(text.contains(&info));
        let firing = r#"jinbao_controller_alerts_firing{rule="link-down"} 1"#;
        assert!(text.contains(firing), "{text}");
        assert_eq!(samples(&text, "jinbao_controller_alerts_firing").len(), 5);
        let api = r#"jinbao_controller_api_requests_total{route="/v1/health",status="200"} 2"#;
        assert!(text.contains(api), "{text}");
        assert!(text.contains("# TYPE jinbao_controller_api_requests_total counter"));
        let last =
            r#"jinbao_controller_agent_last_report_timestamp_seconds{node="dc:14"} 1795000000"#;
        assert!(text.contains(last), "{text}");
    }

    #[test]
    fn an_unknown_link_has_no_stale_numbers() {
        let mut health = HealthState::default();
        let report = status(
            "dc:14",
            vec![peer("dc:1401", PeerRole::Child, PeerHealth::Up)],
        );
        health.ingest(node("dc:14"), &report, at(0)).unwrap();
        let alerts = AlertEngine::new(AlertRules::default());
        let snapshot = Snapshot {
            health: &health,
            alerts: &alerts,
            enrolled_nodes: 0,
            api: None,
        };
        let text = render(&snapshot, at(600)).unwrap();
        assert_eq!(samples(&text, "jinbao_controller_link_up").len(), 1);
        assert!(samples(&text, "jinbao_controller_link_rtt_seconds").is_empty());
        assert!(samples(&text, "jinbao_controller_link_loss_ratio").is_empty());
        assert!(text.contains("jinbao_controller_agents_reporting 0"));
        assert!(!text.contains("api_requests_total"));
    }
}
