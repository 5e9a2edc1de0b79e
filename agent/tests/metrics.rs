//! The agent's status as Prometheus metrics and as `show` text: exact values, types and
//! labels read back with a Prometheus parser, the scrape endpoint over real loopback
//! sockets (including garbage requests), and a snapshot of the `wg show`-style text.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use agent::control::{
    ConferenceCounters, PathChoice, PeerHealth, PeerRole, PeerStatus, PlaneStatus, RuleCounters,
    Status,
};
use agent::{metrics, show};
use pki::WireGuardKey;
use prometheus_parse::{Sample, Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

fn node(text: &str) -> topology::NodeId {
    text.parse().unwrap()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn peer(id: &str, role: PeerRole, key: u8) -> PeerStatus {
    PeerStatus {
        node: node(id),
        role,
        public_key: WireGuardKey([key; 32]),
        endpoint: None,
        path: PathChoice::Primary,
        allowed: Vec::new(),
        handshake_age: None,
        rx_bytes: 0,
        tx_bytes: 0,
        rx_packets: 0,
        tx_packets: 0,
        health: PeerHealth::Unknown,
        rtt: None,
        loss: 0.0,
        jitter: Duration::ZERO,
        conference: None,
    }
}

/// The Shanxi province data centre: its uplink to the ministry healthy on the primary path,
/// Taiyuan on its backup path, and Datong (office plane) down and never handshaken.
fn status() -> Status {
    let uplink = PeerStatus {
        endpoint: Some(addr("198.51.100.1:51820")),
        allowed: vec!["10.0.0.0/8".parse().unwrap()],
        handshake_age: Some(Duration::from_secs(65)),
        rx_bytes: 1_536,
        tx_bytes: 5 << 20,
        rx_packets: 12,
        tx_packets: 4_000,
        health: PeerHealth::Up,
        rtt: Some(Duration::from_micros(12_500)),
        loss: 0.25,
        jitter: Duration::from_micros(800),
        conference: Some(ConferenceCounters {
            reserved_kbps: 2_520,
            media_packets: 9_000,
            reserved_packets: 8_990,
            queued: 120_000,
            dropped: 4_321,
        }),
        ..peer("dc:ministry", PeerRole::Uplink, 1)
    };
    let taiyuan = PeerStatus {
        endpoint: Some(addr("203.0.113.7:51821")),
        path: PathChoice::Backup,
        allowed: vec![
            "10.14.1.0/24".parse().unwrap(),
            "10.14.2.0/24".parse().unwrap(),
        ],
        handshake_age: Some(Duration::from_secs(3)),
        rx_bytes: 3 << 30,
        tx_bytes: 100,
        rx_packets: 2_000_000,
        tx_packets: 1,
        health: PeerHealth::Up,
        rtt: Some(Duration::from_millis(40)),
        loss: 0.0,
        jitter: Duration::from_millis(2),
        ..peer("dc:1401", PeerRole::Child, 2)
    };
    let datong = PeerStatus {
        endpoint: Some(addr("203.0.113.9:51820")),
        allowed: vec!["10.64.2.0/24".parse().unwrap()],
        health: PeerHealth::Down,
        loss: 1.0,
        ..peer("dc:1402", PeerRole::Child, 3)
    };
    let business = PlaneStatus {
        plane: topology::Plane::Business,
        listen: addr("0.0.0.0:51820"),
        public_key: WireGuardKey([7; 32]),
        peers: vec![uplink, taiyuan],
        refused: Vec::new(),
        rules: vec![
            RuleCounters {
                rule: "exchange-up".to_owned(),
                allowed_flows: 12,
                allowed_packets: 340,
            },
            RuleCounters {
                rule: "mgmt-probes".to_owned(),
                allowed_flows: 1,
                allowed_packets: 9_000,
            },
        ],
        default_denied: 3,
        denied: vec![("policy".to_owned(), 2), ("no-flow".to_owned(), 1)],
        malformed: 0,
        unroutable: 1,
        denied_flows: Vec::new(),
    };
    let office = PlaneStatus {
        plane: topology::Plane::Office,
        listen: addr("192.0.2.14:51830"),
        public_key: WireGuardKey([8; 32]),
        peers: vec![datong],
        refused: vec![(node("dc:1403"), "certificate expired".to_owned())],
        rules: Vec::new(),
        default_denied: 0,
        denied: Vec::new(),
        malformed: 2,
        unroutable: 0,
        denied_flows: Vec::new(),
    };
    Status {
        node: Some(node("dc:14")),
        version: 42,
        planes: vec![business, office],
        audit: None,
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

/// The one sample of `metric` whose labels are exactly `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    found[0]
}

fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Counter(v) => v,
        ref other => panic!("{metric} {labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Gauge(v) => v,
        ref other => panic!("{metric} {labels:?} is not a gauge: {other:?}"),
    }
}

fn peer_labels<'a>(plane: &'a str, peer: &'a str, role: &'a str) -> [(&'a str, &'a str); 3] {
    [("plane", plane), ("peer", peer), ("role", role)]
}

#[test]
fn node_and_plane_metrics() {
    let scrape = parse(&metrics::render(&status()).unwrap());
    assert_eq!(
        gauge(&scrape, "jinbao_agent_info", &[("node", "dc:14")]),
        1.0
    );
    assert_eq!(gauge(&scrape, "jinbao_agent_config_version", &[]), 42.0);
    let business = [("plane", "business")];
    let office = [("plane", "office")];
    assert_eq!(gauge(&scrape, "jinbao_agent_refused_peers", &business), 0.0);
    assert_eq!(gauge(&scrape, "jinbao_agent_refused_peers", &office), 1.0);
    let denied = "jinbao_agent_default_denied_packets_total";
    assert_eq!(counter(&scrape, denied, &business), 3.0);
    assert_eq!(counter(&scrape, denied, &office), 0.0);
    let by_reason = "jinbao_agent_denied_packets_total";
    let reason = |r| [("plane", "business"), ("reason", r)];
    assert_eq!(counter(&scrape, by_reason, &reason("policy")), 2.0);
    assert_eq!(counter(&scrape, by_reason, &reason("no-flow")), 1.0);
    let malformed = "jinbao_agent_malformed_packets_total";
    assert_eq!(counter(&scrape, malformed, &business), 0.0);
    assert_eq!(counter(&scrape, malformed, &office), 2.0);
    let unroutable = "jinbao_agent_unroutable_packets_total";
    assert_eq!(counter(&scrape, unroutable, &business), 1.0);
    assert_eq!(counter(&scrape, unroutable, &office), 0.0);
}

#[test]
fn rule_metrics() {
    let scrape = parse(&metrics::render(&status()).unwrap());
    let up = [("plane", "business"), ("rule", "exchange-up")];
    let probes = [("plane", "business"), ("rule", "mgmt-probes")];
    let flows = "jinbao_agent_rule_allowed_flows_total";
    let packets = "jinbao_agent_rule_allowed_packets_total";
    assert_eq!(counter(&scrape, flows, &up), 12.0);
    assert_eq!(counter(&scrape, packets, &up), 340.0);
    assert_eq!(counter(&scrape, flows, &probes), 1.0);
    assert_eq!(counter(&scrape, packets, &probes), 9_000.0);
    let rules = scrape.samples.iter().filter(|s| s.metric == flows).count();
    assert_eq!(rules, 2, "the office plane has no rules");
}

#[test]
fn peer_traffic_is_counted() {
    let scrape = parse(&metrics::render(&status()).unwrap());
    let ministry = peer_labels("business", "dc:ministry", "uplink");
    let taiyuan = peer_labels("business", "dc:1401", "child");
    let datong = peer_labels("office", "dc:1402", "child");
    let expect = [
        (ministry, [1_536.0, 5_242_880.0, 12.0, 4_000.0]),
        (taiyuan, [3_221_225_472.0, 100.0, 2_000_000.0, 1.0]),
        (datong, [0.0; 4]),
    ];
    for (labels, [rx_b, tx_b, rx_p, tx_p]) in expect {
        assert_eq!(
            counter(&scrape, "jinbao_agent_peer_rx_bytes_total", &labels),
            rx_b
        );
        assert_eq!(
            counter(&scrape, "jinbao_agent_peer_tx_bytes_total", &labels),
            tx_b
        );
        assert_eq!(
            counter(&scrape, "jinbao_agent_peer_rx_packets_total", &labels),
            rx_p
        );
        assert_eq!(
            counter(&scrape, "jinbao_agent_peer_tx_packets_total", &labels),
            tx_p
        );
    }
}

#[test]
fn peer_health_and_path() {
    let scrape = parse(&metrics::render(&status()).unwrap());
    let ministry = peer_labels("business", "dc:ministry", "uplink");
    let taiyuan = peer_labels("business", "dc:1401", "child");
    let datong = peer_labels("office", "dc:1402", "child");

    let age = "jinbao_agent_peer_handshake_age_seconds";
    assert_eq!(gauge(&scrape, age, &ministry), 65.0);
    assert_eq!(gauge(&scrape, age, &taiyuan), 3.0);
    let rtt = "jinbao_agent_peer_rtt_seconds";
    assert_eq!(gauge(&scrape, rtt, &ministry), 0.0125);
    assert_eq!(gauge(&scrape, rtt, &taiyuan), 0.04);
    for absent in [age, rtt] {
        let datong_sample = scrape
            .samples
            .iter()
            .any(|s| s.metric == absent && s.labels.get("peer") == Some("dc:1402"));
        assert!(!datong_sample, "{absent} for a peer that never answered");
    }
    assert_eq!(
        gauge(&scrape, "jinbao_agent_peer_loss_ratio", &ministry),
        0.25
    );
    assert_eq!(gauge(&scrape, "jinbao_agent_peer_loss_ratio", &datong), 1.0);
    assert_eq!(
        gauge(&scrape, "jinbao_agent_peer_jitter_seconds", &ministry),
        0.0008
    );
    assert_eq!(
        gauge(&scrape, "jinbao_agent_peer_jitter_seconds", &datong),
        0.0
    );

    for (labels, up, state, on_backup) in [
        (ministry, 1.0, "up", false),
        (taiyuan, 1.0, "up", true),
        (datong, 0.0, "down", false),
    ] {
        assert_eq!(gauge(&scrape, "jinbao_agent_peer_up", &labels), up);
        for s in ["unknown", "up", "down"] {
            let with_state = [labels[0], labels[1], labels[2], ("state", s)];
            let value = gauge(&scrape, "jinbao_agent_peer_health", &with_state);
            assert_eq!(value, f64::from(u8::from(s == state)), "{labels:?} {s}");
        }
        let backup = gauge(&scrape, "jinbao_agent_peer_on_backup", &labels);
        assert_eq!(backup, f64::from(u8::from(on_backup)), "{labels:?}");
        for (p, active) in [("primary", !on_backup), ("backup", on_backup)] {
            let with_path = [labels[0], labels[1], labels[2], ("path", p)];
            let value = gauge(&scrape, "jinbao_agent_peer_path", &with_path);
            assert_eq!(value, f64::from(u8::from(active)), "{labels:?} {p}");
        }
    }
}

#[test]
fn conference_enforcement_is_exported_only_for_tunnels_with_reservations() {
    let scrape = parse(&metrics::render(&status()).unwrap());
    let ministry = peer_labels("business", "dc:ministry", "uplink");
    let reserved = "jinbao_agent_peer_conference_reserved_bits_per_second";
    assert_eq!(gauge(&scrape, reserved, &ministry), 2_520_000.0);
    for (metric, value) in [
        ("jinbao_agent_peer_conference_media_packets_total", 9_000.0),
        (
            "jinbao_agent_peer_conference_prioritised_packets_total",
            8_990.0,
        ),
        ("jinbao_agent_peer_shaper_queued_packets_total", 120_000.0),
        ("jinbao_agent_peer_shaper_dropped_packets_total", 4_321.0),
    ] {
        assert_eq!(counter(&scrape, metric, &ministry), value, "{metric}");
    }
    let others = scrape
        .samples
        .iter()
        .filter(|s| s.metric.contains("conference") || s.metric.contains("shaper"))
        .filter(|s| s.labels.get("peer") != Some("dc:ministry"))
        .count();
    assert_eq!(
        others, 0,
        "tunnels without reservations have no conference samples"
    );
}

#[test]
fn exposition_declares_types_and_help() {
    let text = metrics::render(&status()).unwrap();
    for counter in [
        "jinbao_agent_peer_rx_bytes_total",
        "jinbao_agent_peer_tx_packets_total",
        "jinbao_agent_rule_allowed_flows_total",
        "jinbao_agent_default_denied_packets_total",
        "jinbao_agent_denied_packets_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter\n")),
            "{counter}"
        );
    }
    for gauge in [
        "jinbao_agent_peer_rtt_seconds",
        "jinbao_agent_peer_up",
        "jinbao_agent_peer_on_backup",
        "jinbao_agent_config_version",
    ] {
        assert!(text.contains(&format!("# TYPE {gauge} gauge\n")), "{gauge}");
    }
    let scrape = parse(&text);
    assert!(
        scrape
            .docs
            .keys()
            .all(|name| name.starts_with("jinbao_agent_"))
    );
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.metric.starts_with("jinbao_agent_"))
    );
    assert_eq!(scrape.docs.len(), 26);
    assert_eq!(text, metrics::render(&status()).unwrap(), "deterministic");
}

#[test]
fn label_values_are_escaped() {
    let mut odd = status();
    odd.planes[0].rules[0].rule = "quote\" back\\slash\nnewline".to_owned();
    let text = metrics::render(&odd).unwrap();
    assert!(
        text.contains(r#"rule="quote\" back\\slash\nnewline""#),
        "{text}"
    );
}

#[test]
fn show_prints_like_wg() {
    let text = show::render(&status(), Some("2026-11-02 09:30:00 +08:00"));
    insta::assert_snapshot!(text);
    assert_eq!(
        text,
        show::render(&status(), Some("2026-11-02 09:30:00 +08:00"))
    );
}

// --- the endpoint ---

struct Server {
    addr: SocketAddr,
    status: watch::Sender<Status>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (status, rx) = watch::channel(status());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(metrics::serve(listener, rx, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        status,
        stop,
        task,
    }
}

/// Sends `request`, closes the write half, and reads the whole response.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    read_all(&mut stream).await
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server answers in time")
        .unwrap();
    String::from_utf8(response).unwrap()
}

fn split(response: &str) -> (&str, &str) {
    response.split_once("\r\n\r\n").expect("a head and a body")
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let response = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n").await;
    let (head, body) = split(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    parse(body)
}

#[tokio::test]
async fn serves_metrics_and_404() {
    let server = start().await;
    let scraped = scrape(server.addr).await;
    assert_eq!(gauge(&scraped, "jinbao_agent_config_version", &[]), 42.0);

    let response = exchange(server.addr, b"GET /other HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );

    let response = exchange(server.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    let (head, body) = split(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "");

    let response = exchange(server.addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");

    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns on shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_new_status_shows_in_the_next_scrape() {
    let server = start().await;
    let labels = peer_labels("business", "dc:ministry", "uplink");
    let before = scrape(server.addr).await;
    assert_eq!(
        counter(&before, "jinbao_agent_peer_rx_bytes_total", &labels),
        1_536.0
    );

    server.status.send_modify(|status| {
        status.version = 43;
        status.planes[0].peers[0].rx_bytes = 9_999;
        status.planes[0].peers[0].health = PeerHealth::Down;
        status.planes[1].peers.clear();
    });
    let after = scrape(server.addr).await;
    assert_eq!(gauge(&after, "jinbao_agent_config_version", &[]), 43.0);
    assert_eq!(
        counter(&after, "jinbao_agent_peer_rx_bytes_total", &labels),
        9_999.0
    );
    assert_eq!(gauge(&after, "jinbao_agent_peer_up", &labels), 0.0);
    let gone = after
        .samples
        .iter()
        .any(|s| s.labels.get("peer") == Some("dc:1402"));
    assert!(!gone, "a peer that left the status leaves the exposition");
}

#[tokio::test]
async fn garbage_gets_an_error_and_the_server_keeps_serving() {
    let server = start().await;
    let garbage: &[&[u8]] = &[
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
        b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: half a head",
        b"\xe4\xb8\xad\xe6\x96\x87 /metrics HTTP/1.1\r\n\r\n",
    ];
    for request in garbage {
        let response = exchange(server.addr, request).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}: {response}"
        );
    }

    // A head longer than the limit, never ending.
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', metrics::MAX_REQUEST_HEAD * 2));
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // The server may close before reading everything; a failed write is fine.
    let _ = stream.write_all(&huge).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431 "),
        "{response}"
    );

    // Connect and leave without a byte; connect and stay silent while others scrape.
    drop(TcpStream::connect(server.addr).await.unwrap());
    let idle = TcpStream::connect(server.addr).await.unwrap();
    let scraped = scrape(server.addr).await;
    assert_eq!(
        gauge(&scraped, "jinbao_agent_info", &[("node", "dc:14")]),
        1.0
    );
    drop(idle);

    // Many connections at once, more than are served concurrently.
    let many = (0..metrics::MAX_CONNECTIONS * 2).map(|_| scrape(server.addr));
    let all = futures_join_all(many).await;
    assert_eq!(all.len(), metrics::MAX_CONNECTIONS * 2);
}

/// Awaits every future, concurrently, on the current task's runtime.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
