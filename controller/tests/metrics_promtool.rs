//! The controller's Prometheus exposition, checked by the real `promtool check metrics`
//! (format and lint: HELP, TYPE, `_total` on counters, base units) and read back line by
//! line: every family has HELP and TYPE, every sample a number, no series twice.
//!
//! The health state holds links in every state — up, degraded by loss and by RTT, on the
//! backup path, down, unknown, lateral — with open, acknowledged and resolved alerts.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::control::{PathChoice, PeerHealth, PeerRole, PeerStatus, PlaneStatus, Status};
use controller::alerts::{AlertEngine, AlertRules, CertificateExpiry};
use controller::health::HealthState;
use controller::metrics::{self, ApiRequests, Snapshot};
use pki::WireGuardKey;
use topology::{NodeId, Plane};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
}

fn node(text: &str) -> NodeId {
    text.parse().unwrap()
}

fn peer(id: &str, role: PeerRole, health: PeerHealth) -> PeerStatus {
    PeerStatus {
        node: node(id),
        role,
        public_key: WireGuardKey([9; 32]),
        endpoint: Some("198.51.100.7:51820".parse().unwrap()),
        path: PathChoice::Primary,
        allowed: Vec::new(),
        handshake_age: Some(Duration::from_secs(12)),
        rx_bytes: 10_000,
        tx_bytes: 20_000,
        rx_packets: 10,
        tx_packets: 20,
        health,
        rtt: Some(Duration::from_millis(18)),
        loss: 0.0,
        jitter: Duration::from_micros(700),
        conference: None,
    }
}

fn status(id: &str, plane: Plane, peers: Vec<PeerStatus>) -> Status {
    Status {
        node: Some(node(id)),
        version: 12,
        planes: vec![PlaneStatus {
            plane,
            listen: "192.0.2.14:51820".parse().unwrap(),
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

/// Shanxi's links in every state, the ministry's uplink from Shanxi, a lateral link, and an
/// office-plane link whose agent went quiet long ago.
fn health() -> HealthState {
    let mut health = HealthState::default();
    let quiet = status(
        "dc:1405",
        Plane::Office,
        vec![peer("dc:14", PeerRole::Uplink, PeerHealth::Up)],
    );
    health.ingest(node("dc:1405"), &quiet, at(0)).unwrap();

    let mut lossy = peer("dc:1402", PeerRole::Child, PeerHealth::Up);
    lossy.loss = 0.12;
    let mut slow = peer("dc:1403", PeerRole::Child, PeerHealth::Up);
    slow.rtt = Some(Duration::from_millis(310));
    let mut backup = peer("dc:1404", PeerRole::Child, PeerHealth::Up);
    backup.path = PathChoice::Backup;
    let mut down = peer("dc:1406", PeerRole::Child, PeerHealth::Down);
    down.rtt = None;
    down.loss = 1.0;
    let shanxi = status(
        "dc:14",
        Plane::Business,
        vec![
            peer("dc:ministry", PeerRole::Uplink, PeerHealth::Up),
            peer("dc:1401", PeerRole::Child, PeerHealth::Up),
            lossy,
            slow,
            backup,
            down,
            peer("dc:13", PeerRole::Lateral, PeerHealth::Up),
        ],
    );
    for t in [100, 110, 120, 130, 140] {
        health.ingest(node("dc:14"), &shanxi, at(t)).unwrap();
    }
    let taiyuan = status(
        "dc:1401",
        Plane::Business,
        vec![peer("dc:14", PeerRole::Uplink, PeerHealth::Up)],
    );
    health.ingest(node("dc:1401"), &taiyuan, at(140)).unwrap();
    health
}

fn scrape() -> String {
    let health = health();
    let mut alerts = AlertEngine::new(AlertRules::default());
    let certificates = [CertificateExpiry {
        subject: "dc:1402".into(),
        not_after: at(86_400),
    }];
    for t in [100, 110, 120, 130, 140] {
        alerts.evaluate(&health, &certificates, at(t));
    }
    let down = alerts
        .open()
        .find(|alert| alert.subject.contains("dc:1406"))
        .unwrap()
        .id;
    alerts.acknowledge(down, "zhang.min", at(141)).unwrap();

    let api = ApiRequests::new().unwrap();
    for (route, status) in [
        ("/v1/agents/{node}/status", 200),
        ("/v1/agents/{node}/status", 200),
        ("/v1/enroll", 403),
        ("/v1/alerts/{id}/ack", 404),
    ] {
        api.record(route, status);
    }
    let snapshot = Snapshot {
        health: &health,
        alerts: &alerts,
        enrolled_nodes: 9,
        api: Some(&api),
    };
    metrics::render(&snapshot, at(141)).unwrap()
}

/// `promtool`, installing it with `scripts/setup.sh promtool` if it is missing and the
/// script knows how.
fn promtool() -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/bin")])
            .map(|dir| dir.join("promtool"))
            .find(|path| path.is_file())
    };
    if let Some(found) = find() {
        return Some(found);
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
    let knows = std::fs::read_to_string(&setup).is_ok_and(|text| text.contains("promtool"));
    if knows {
        let _ = Command::new("bash").arg(&setup).arg("promtool").status();
    }
    find()
}

/// Runs `promtool check metrics` on `text`: its exit status and everything it printed.
fn check(promtool: &Path, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[test]
fn promtool_finds_no_problem() {
    let Some(promtool) = promtool() else {
        println!("skipping: promtool is not installed (scripts/setup.sh promtool installs it)");
        return;
    };
    let text = scrape();
    let (ok, printed) = check(&promtool, &text);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool:\n{printed}\n{text}"
    );

    // The check would see a problem: a counter without `_total` is linted.
    let bad = "# HELP jinbao_controller_x Bad.\n# TYPE jinbao_controller_x counter\n\
               jinbao_controller_x 1\n";
    let (_, printed) = check(&promtool, bad);
    assert!(printed.contains("_total"), "promtool said: {printed}");
}

/// The exposition read back: families with HELP and TYPE before their samples, names under
/// `jinbao_controller_`, numeric values, no series twice.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut help = BTreeSet::new();
    let mut types = BTreeMap::new();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        match words.as_slice() {
            ["#", "HELP", name, help_text] => {
                assert!(!help_text.is_empty(), "{line}");
                assert!(help.insert(name.to_string()), "HELP twice: {line}");
            }
            ["#", "TYPE", name, kind] => {
                assert!(matches!(*kind, "gauge" | "counter"), "{line}");
                assert_eq!(
                    kind.ends_with("counter"),
                    name.ends_with("_total"),
                    "{line}"
                );
                types.insert(name.to_string(), kind.to_string());
            }
            _ => {
                let (name_labels, value) = line.rsplit_once(' ').unwrap();
                let name = name_labels.split('{').next().unwrap();
                assert!(name.starts_with("jinbao_controller_"), "{line}");
                assert!(help.contains(name) && types.contains_key(name), "{line}");
                let value: f64 = value.parse().unwrap();
                let fresh = series.insert(name_labels.to_owned(), value).is_none();
                assert!(fresh, "series twice: {line}");
            }
        }
    }
    series
}

#[test]
fn the_exposition_reads_back_with_the_states_it_was_given() {
    let series = parse(&scrape());
    let link = |metric: &str, plane: &str, parent: &str, child: &str| {
        let key = format!(
            "jinbao_controller_link_{metric}{{child=\"{child}\",parent=\"{parent}\",plane=\"{plane}\"}}"
        );
        series.get(&key).copied()
    };
    let business = |metric: &str, child: &str| link(metric, "business", "dc:14", child);
    assert_eq!(business("up", "dc:1401"), Some(1.0));
    assert_eq!(business("loss_ratio", "dc:1402"), Some(0.12));
    assert_eq!(business("rtt_seconds", "dc:1403"), Some(0.31));
    assert_eq!(business("on_backup", "dc:1404"), Some(1.0));
    assert_eq!(business("up", "dc:1406"), Some(0.0));
    assert_eq!(
        business("rtt_seconds", "dc:1406"),
        None,
        "no RTT without answers"
    );
    assert_eq!(link("up", "business", "dc:ministry", "dc:14"), Some(1.0));
    assert_eq!(
        link("up", "business", "dc:13", "dc:14"),
        Some(1.0),
        "lateral"
    );
    assert_eq!(
        link("up", "office", "dc:14", "dc:1405"),
        Some(0.0),
        "unknown"
    );
    assert_eq!(link("loss_ratio", "office", "dc:14", "dc:1405"), None);

    let links = |plane: &str, state: &str| {
        series[&format!("jinbao_controller_links{{plane=\"{plane}\",state=\"{state}\"}}")]
    };
    assert_eq!(links("business", "up"), 3.0);
    assert_eq!(links("business", "degraded"), 2.0);
    assert_eq!(links("business", "backup"), 1.0);
    assert_eq!(links("business", "down"), 1.0);
    assert_eq!(links("office", "unknown"), 1.0);
    assert_eq!(links("public", "up"), 0.0);

    assert_eq!(series["jinbao_controller_enrolled_nodes"], 9.0);
    assert_eq!(series["jinbao_controller_agents_known"], 3.0);
    assert_eq!(series["jinbao_controller_agents_reporting"], 2.0);
    let alerts = |family: &str, rule: &str| {
        series[&format!("jinbao_controller_alerts_{family}{{rule=\"{rule}\"}}")]
    };
    assert_eq!(alerts("firing", "link-down"), 1.0);
    assert_eq!(alerts("acknowledged", "link-down"), 1.0);
    assert_eq!(alerts("firing", "link-loss"), 1.0);
    assert_eq!(alerts("firing", "link-rtt"), 1.0);
    assert_eq!(alerts("firing", "certificate-expiring"), 1.0);
    assert_eq!(alerts("firing", "agent-silent"), 1.0);
    let api =
        r#"jinbao_controller_api_requests_total{route="/v1/agents/{node}/status",status="200"}"#;
    assert_eq!(series[api], 2.0);
}
