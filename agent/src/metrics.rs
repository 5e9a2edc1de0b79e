//! Prometheus metrics for an agent: its [`Status`] in the text exposition format, and the
//! small HTTP endpoint a Prometheus server scrapes.
//!
//! The module exists so that the NOC sees every agent's links and filter through the same
//! pipeline as the rest of the network (DESIGN.md: "Prometheus metrics per peer and per zone
//! rule"), without the agent taking an HTTP framework as a dependency.
//!
//! # Types
//!
//! A [`Status`] is a snapshot: its byte, packet and flow counts are absolute values that only
//! grow while the agent runs. They are exported as Prometheus *counters* (`_total`), so
//! `rate()` and counter-reset detection work: [`render`] builds a fresh [`Registry`] for each
//! snapshot and sets every counter by incrementing it once, from zero, by the snapshot's value.
//! Nothing is kept between scrapes, so a peer or rule that leaves the config leaves the
//! exposition too, and an agent restart shows as the counter reset it is. Values that go up
//! and down (round-trip time, loss, jitter, handshake age, health, path, refused peers, config
//! version) are *gauges*.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `jinbao_agent_info` (1) | gauge | `node` |
//! | `jinbao_agent_config_version` | gauge | |
//! | `jinbao_agent_refused_peers` | gauge | `plane` |
//! | `jinbao_agent_default_denied_packets_total` | counter | `plane` |
//! | `jinbao_agent_denied_packets_total` | counter | `plane`, `reason` |
//! | `jinbao_agent_malformed_packets_total` | counter | `plane` |
//! | `jinbao_agent_unroutable_packets_total` | counter | `plane` |
//! | `jinbao_agent_rule_allowed_flows_total` | counter | `plane`, `rule` |
//! | `jinbao_agent_rule_allowed_packets_total` | counter | `plane`, `rule` |
//! | `jinbao_agent_peer_{rx,tx}_bytes_total` | counter | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_{rx,tx}_packets_total` | counter | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_handshake_age_seconds` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_rtt_seconds` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_loss_ratio` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_jitter_seconds` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_up` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_health` | gauge | `plane`, `peer`, `role`, `state` |
//! | `jinbao_agent_peer_on_backup` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_path` | gauge | `plane`, `peer`, `role`, `path` |
//! | `jinbao_agent_peer_conference_reserved_bits_per_second` | gauge | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_conference_media_packets_total` | counter | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_conference_prioritised_packets_total` | counter | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_shaper_queued_packets_total` | counter | `plane`, `peer`, `role` |
//! | `jinbao_agent_peer_shaper_dropped_packets_total` | counter | `plane`, `peer`, `role` |
//!
//! `jinbao_agent_info` is present only when the status names its node. A peer without a
//! completed handshake has no `handshake_age_seconds` sample, and one without a probe answer
//! no `rtt_seconds` sample, rather than a made-up zero. `peer_up` is 1 only for a peer whose
//! probes answer (`unknown` counts as not up). `peer_health` and `peer_path` are state sets:
//! one sample per state (`unknown`/`up`/`down`, `primary`/`backup`), 1 for the current one,
//! so the label set of a series never changes when the state does. The conference and
//! shaper families have samples only for tunnels with conference reservations.
//!
//! # The endpoint
//!
//! [`serve`] answers `GET /metrics` with a hand-written HTTP/1.1 exchange: one request per
//! connection, head read up to [`MAX_REQUEST_HEAD`] bytes, the whole exchange bounded by
//! [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] at a time. Anything else gets a 4xx
//! and the connection is closed; no request can make it panic or hold it.
//!
//! # Building blocks
//!
//! The controller's exposition is built the same way, from the public pieces here: a family's
//! [`Meta`] registers it in a [`Registry`], [`add`], [`set_int`] and [`set_float`] record a
//! sample, [`encode`] writes the registry out, and every failure is a [`MetricsError`].

use std::future::Future;
use std::io;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::control::{PathChoice, PeerHealth, PeerStatus, PlaneStatus, Status};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The longest request head (request line and headers) the endpoint reads, in bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long one connection may take, from accept to the last byte of the response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;

/// How long the endpoint waits after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The exposition could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric family could not be built or a sample recorded (a bug in the exposition's
    /// code).
    #[error("metric {name}: {source}")]
    Metric {
        /// The metric.
        name: String,
        /// What the prometheus crate said.
        #[source]
        source: prometheus::Error,
    },
    /// The text encoder refused the gathered families.
    #[error("encoding the exposition: {0}")]
    Encode(#[source] prometheus::Error),
}

/// The status as Prometheus text exposition (format 0.0.4), families sorted by name.
pub fn render(status: &Status) -> Result<String, MetricsError> {
    let registry = Registry::new();
    let families = Families::register(&registry)?;
    families.record(status)?;
    encode(&registry)
}

/// Everything registered in `registry` as text exposition (format 0.0.4), families sorted by
/// name.
pub fn encode(registry: &Registry) -> Result<String, MetricsError> {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .map_err(MetricsError::Encode)
}

const PEER: &[&str] = &["plane", "peer", "role"];
const PEER_HEALTH: &[&str] = &["plane", "peer", "role", "state"];
const PEER_PATH: &[&str] = &["plane", "peer", "role", "path"];
const PLANE: &[&str] = &["plane"];
const RULE: &[&str] = &["plane", "rule"];

/// A family: its name, then its help text.
#[derive(Debug, Clone, Copy)]
pub struct Meta(pub &'static str, pub &'static str);

const INFO: Meta = Meta(
    "jinbao_agent_info",
    "The node this agent runs as (always 1).",
);
const CONFIG_VERSION: Meta = Meta(
    "jinbao_agent_config_version",
    "Sequence number of the config bundle running.",
);
const REFUSED: Meta = Meta(
    "jinbao_agent_refused_peers",
    "Peers of the bundle refused (certificate checks).",
);
const DEFAULT_DENIED: Meta = Meta(
    "jinbao_agent_default_denied_packets_total",
    "Packets denied because no zone rule allows them.",
);
const DENIED: Meta = Meta(
    "jinbao_agent_denied_packets_total",
    "Packets the zone filter denied, by reason (policy: no rule allows the flow).",
);
const MALFORMED: Meta = Meta(
    "jinbao_agent_malformed_packets_total",
    "Packets dropped as malformed (underlay or overlay).",
);
const UNROUTABLE: Meta = Meta(
    "jinbao_agent_unroutable_packets_total",
    "Packets dropped for having no route.",
);
const RULE_FLOWS: Meta = Meta(
    "jinbao_agent_rule_allowed_flows_total",
    "Flows a zone rule allowed (first packets).",
);
const RULE_PACKETS: Meta = Meta(
    "jinbao_agent_rule_allowed_packets_total",
    "Packets a zone rule passed, return traffic included.",
);
const RX_BYTES: Meta = Meta(
    "jinbao_agent_peer_rx_bytes_total",
    "Overlay bytes received from the peer.",
);
const TX_BYTES: Meta = Meta(
    "jinbao_agent_peer_tx_bytes_total",
    "Overlay bytes sent to the peer.",
);
const RX_PACKETS: Meta = Meta(
    "jinbao_agent_peer_rx_packets_total",
    "Overlay packets received from the peer.",
);
const TX_PACKETS: Meta = Meta(
    "jinbao_agent_peer_tx_packets_total",
    "Overlay packets sent to the peer.",
);
const HANDSHAKE_AGE: Meta = Meta(
    "jinbao_agent_peer_handshake_age_seconds",
    "Time since the last completed WireGuard handshake.",
);
const RTT: Meta = Meta(
    "jinbao_agent_peer_rtt_seconds",
    "Smoothed round-trip time of the in-tunnel probes.",
);
const LOSS: Meta = Meta(
    "jinbao_agent_peer_loss_ratio",
    "Probe loss over the recent window, 0 to 1.",
);
const JITTER: Meta = Meta(
    "jinbao_agent_peer_jitter_seconds",
    "Probe interarrival jitter (RFC 3550).",
);
const UP: Meta = Meta(
    "jinbao_agent_peer_up",
    "1 when the peer's probes answer, else 0.",
);
const HEALTH: Meta = Meta(
    "jinbao_agent_peer_health",
    "Probe health as a state set: 1 for the current state.",
);
const ON_BACKUP: Meta = Meta(
    "jinbao_agent_peer_on_backup",
    "1 when the peer's traffic uses its backup underlay path.",
);
const PATH: Meta = Meta(
    "jinbao_agent_peer_path",
    "Underlay path in use as a state set: 1 for the current path.",
);
const RESERVED: Meta = Meta(
    "jinbao_agent_peer_conference_reserved_bits_per_second",
    "Conference bandwidth reserved toward the peer in the windows in force now.",
);
const MEDIA: Meta = Meta(
    "jinbao_agent_peer_conference_media_packets_total",
    "Conference media packets sent to the peer in a reservation's window (marked EF/AF41).",
);
const PRIORITISED: Meta = Meta(
    "jinbao_agent_peer_conference_prioritised_packets_total",
    "Conference media packets sent ahead of other traffic, within the reserved rate.",
);
const QUEUED: Meta = Meta(
    "jinbao_agent_peer_shaper_queued_packets_total",
    "Datagrams to the peer that waited in the shaper (link at capacity).",
);
const SHAPER_DROPPED: Meta = Meta(
    "jinbao_agent_peer_shaper_dropped_packets_total",
    "Datagrams to the peer dropped because their shaper queue was full.",
);
/// Every family, registered in one registry for one snapshot.
struct Families {
    info: IntGaugeVec,
    config_version: GaugeVec,
    refused: IntGaugeVec,
    default_denied: IntCounterVec,
    denied: IntCounterVec,
    malformed: IntCounterVec,
    unroutable: IntCounterVec,
    rule_flows: IntCounterVec,
    rule_packets: IntCounterVec,
    rx_bytes: IntCounterVec,
    tx_bytes: IntCounterVec,
    rx_packets: IntCounterVec,
    tx_packets: IntCounterVec,
    handshake_age: GaugeVec,
    rtt: GaugeVec,
    loss: GaugeVec,
    jitter: GaugeVec,
    up: IntGaugeVec,
    health: IntGaugeVec,
    on_backup: IntGaugeVec,
    path: IntGaugeVec,
    reserved: IntGaugeVec,
    media: IntCounterVec,
    prioritised: IntCounterVec,
    queued: IntCounterVec,
    shaper_dropped: IntCounterVec,
}

impl Families {
    fn register(r: &Registry) -> Result<Families, MetricsError> {
        Ok(Families {
            info: INFO.int_gauge(r, &["node"])?,
            config_version: CONFIG_VERSION.gauge(r, &[])?,
            refused: REFUSED.int_gauge(r, PLANE)?,
            default_denied: DEFAULT_DENIED.counter(r, PLANE)?,
            denied: DENIED.counter(r, &["plane", "reason"])?,
            malformed: MALFORMED.counter(r, PLANE)?,
            unroutable: UNROUTABLE.counter(r, PLANE)?,
            rule_flows: RULE_FLOWS.counter(r, RULE)?,
            rule_packets: RULE_PACKETS.counter(r, RULE)?,
            rx_bytes: RX_BYTES.counter(r, PEER)?,
            tx_bytes: TX_BYTES.counter(r, PEER)?,
            rx_packets: RX_PACKETS.counter(r, PEER)?,
            tx_packets: TX_PACKETS.counter(r, PEER)?,
            handshake_age: HANDSHAKE_AGE.gauge(r, PEER)?,
            rtt: RTT.gauge(r, PEER)?,
            loss: LOSS.gauge(r, PEER)?,
            jitter: JITTER.gauge(r, PEER)?,
            up: UP.int_gauge(r, PEER)?,
            health: HEALTH.int_gauge(r, PEER_HEALTH)?,
            on_backup: ON_BACKUP.int_gauge(r, PEER)?,
            path: PATH.int_gauge(r, PEER_PATH)?,
            reserved: RESERVED.int_gauge(r, PEER)?,
            media: MEDIA.counter(r, PEER)?,
            prioritised: PRIORITISED.counter(r, PEER)?,
            queued: QUEUED.counter(r, PEER)?,
            shaper_dropped: SHAPER_DROPPED.counter(r, PEER)?,
        })
    }

    fn record(&self, status: &Status) -> Result<(), MetricsError> {
        if let Some(node) = status.node {
            set_int(&self.info, &[&node.to_string()], 1)?;
        }
        // A config version beyond 2^53 loses precision, as every Prometheus value does.
        set_float(&self.config_version, &[], status.version as f64)?;
        for plane in &status.planes {
            self.record_plane(plane)?;
        }
        Ok(())
    }

    fn record_plane(&self, status: &PlaneStatus) -> Result<(), MetricsError> {
        let plane = status.plane.to_string();
        let refused = i64::try_from(status.refused.len()).unwrap_or(i64::MAX);
        set_int(&self.refused, &[&plane], refused)?;
        add(&self.default_denied, &[&plane], status.default_denied)?;
        for (reason, packets) in &status.denied {
            add(&self.denied, &[plane.as_str(), reason.as_str()], *packets)?;
        }
        add(&self.malformed, &[&plane], status.malformed)?;
        add(&self.unroutable, &[&plane], status.unroutable)?;
        for rule in &status.rules {
            let labels = [plane.as_str(), rule.rule.as_str()];
            add(&self.rule_flows, &labels, rule.allowed_flows)?;
            add(&self.rule_packets, &labels, rule.allowed_packets)?;
        }
        for peer in &status.peers {
            self.record_peer(&plane, peer)?;
        }
        Ok(())
    }

    fn record_peer(&self, plane: &str, peer: &PeerStatus) -> Result<(), MetricsError> {
        let node = peer.node.to_string();
        let role = peer.role.to_string();
        let labels = [plane, node.as_str(), role.as_str()];
        add(&self.rx_bytes, &labels, peer.rx_bytes)?;
        add(&self.tx_bytes, &labels, peer.tx_bytes)?;
        add(&self.rx_packets, &labels, peer.rx_packets)?;
        add(&self.tx_packets, &labels, peer.tx_packets)?;
        if let Some(age) = peer.handshake_age {
            set_float(&self.handshake_age, &labels, age.as_secs_f64())?;
        }
        if let Some(rtt) = peer.rtt {
            set_float(&self.rtt, &labels, rtt.as_secs_f64())?;
        }
        set_float(&self.loss, &labels, peer.loss)?;
        set_float(&self.jitter, &labels, peer.jitter.as_secs_f64())?;
        set_int(&self.up, &labels, i64::from(peer.health == PeerHealth::Up))?;
        for (state, name) in [
            (PeerHealth::Unknown, "unknown"),
            (PeerHealth::Up, "up"),
            (PeerHealth::Down, "down"),
        ] {
            let value = i64::from(peer.health == state);
            set_int(&self.health, &[plane, &node, &role, name], value)?;
        }
        let on_backup = peer.path == PathChoice::Backup;
        set_int(&self.on_backup, &labels, i64::from(on_backup))?;
        for (path, name) in [
            (PathChoice::Primary, "primary"),
            (PathChoice::Backup, "backup"),
        ] {
            let value = i64::from(peer.path == path);
            set_int(&self.path, &[plane, &node, &role, name], value)?;
        }
        if let Some(conference) = &peer.conference {
            let bits = conference.reserved_kbps.saturating_mul(1_000);
            set_int(
                &self.reserved,
                &labels,
                i64::try_from(bits).unwrap_or(i64::MAX),
            )?;
            add(&self.media, &labels, conference.media_packets)?;
            add(&self.prioritised, &labels, conference.reserved_packets)?;
            add(&self.queued, &labels, conference.queued)?;
            add(&self.shaper_dropped, &labels, conference.dropped)?;
        }
        Ok(())
    }
}

impl Meta {
    /// The family as a counter with these label names, registered in `r`.
    pub fn counter(&self, r: &Registry, labels: &[&str]) -> Result<IntCounterVec, MetricsError> {
        self.register(r, IntCounterVec::new(self.opts(), labels))
    }

    /// The family as an integer gauge with these label names, registered in `r`.
    pub fn int_gauge(&self, r: &Registry, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
        self.register(r, IntGaugeVec::new(self.opts(), labels))
    }

    /// The family as a gauge with these label names, registered in `r`.
    pub fn gauge(&self, r: &Registry, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        self.register(r, GaugeVec::new(self.opts(), labels))
    }

    /// The name and help text as the prometheus crate takes them.
    pub fn opts(&self) -> Opts {
        Opts::new(self.0, self.1)
    }

    /// What the prometheus crate said about this family, as a [`MetricsError`].
    pub fn error(&self, source: prometheus::Error) -> MetricsError {
        MetricsError::Metric {
            name: self.0.to_owned(),
            source,
        }
    }

    fn register<V>(&self, r: &Registry, made: prometheus::Result<V>) -> Result<V, MetricsError>
    where
        V: Collector + Clone + 'static,
    {
        let vec = made.map_err(|source| self.error(source))?;
        r.register(Box::new(vec.clone()))
            .map_err(|source| self.error(source))?;
        Ok(vec)
    }
}

/// Adds `value` to the counter with these labels (once per snapshot: it starts at zero).
pub fn add(vec: &IntCounterVec, labels: &[&str], value: u64) -> Result<(), MetricsError> {
    let counter = vec
        .get_metric_with_label_values(labels)
        .map_err(|source| sample_error(vec, source))?;
    counter.inc_by(value);
    Ok(())
}

/// Sets the gauge with these labels to `value`.
pub fn set_int(vec: &IntGaugeVec, labels: &[&str], value: i64) -> Result<(), MetricsError> {
    let gauge = vec
        .get_metric_with_label_values(labels)
        .map_err(|source| sample_error(vec, source))?;
    gauge.set(value);
    Ok(())
}

/// Sets the gauge with these labels to `value`.
pub fn set_float(vec: &GaugeVec, labels: &[&str], value: f64) -> Result<(), MetricsError> {
    let gauge = vec
        .get_metric_with_label_values(labels)
        .map_err(|source| sample_error(vec, source))?;
    gauge.set(value);
    Ok(())
}

/// The error for a sample of `vec` that could not be had.
fn sample_error(vec: &impl Collector, source: prometheus::Error) -> MetricsError {
    let name = vec.desc().first().map(|desc| desc.fq_name.clone());
    MetricsError::Metric {
        name: name.unwrap_or_default(),
        source,
    }
}

/// Serves `GET /metrics` on `listener` from the latest `status` until `shutdown` completes.
///
/// Each scrape renders the value `status` holds at that moment. Connections still open when
/// `shutdown` completes are dropped. Accept errors are logged and retried after a pause, so
/// the endpoint outlives a burst of file-descriptor exhaustion.
pub async fn serve(
    listener: tokio::net::TcpListener,
    status: watch::Receiver<Status>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(answer(stream, status.clone()));
                    }
                    Err(err) => {
                        tracing::warn!("metrics endpoint: accept failed: {err}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}

/// One connection: one request, one response, closed; bounded by [`REQUEST_TIMEOUT`].
async fn answer(mut stream: TcpStream, status: watch::Receiver<Status>) {
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut stream, &status)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!("metrics endpoint: {peer:?}: {err}"),
        Err(_) => tracing::debug!("metrics endpoint: {peer:?}: timed out"),
    }
}

async fn exchange(stream: &mut TcpStream, status: &watch::Receiver<Status>) -> io::Result<()> {
    let mut buf = vec![0; MAX_REQUEST_HEAD];
    let response = match read_head(stream, &mut buf).await? {
        Head::Closed => return Ok(()),
        Head::Complete(len) => match route(&buf[..len]) {
            Route::Metrics { head_only } => {
                let snapshot = status.borrow().clone();
                match render(&snapshot) {
                    Ok(body) => Response::new("200 OK", CONTENT_TYPE, body, head_only),
                    Err(err) => {
                        tracing::error!("metrics endpoint: {err}");
                        Response::text("500 Internal Server Error", "metrics unavailable\n")
                    }
                }
            }
            Route::Status { head_only } => {
                let snapshot = status.borrow().clone();
                match serde_json::to_string(&snapshot) {
                    Ok(body) => Response::new("200 OK", "application/json", body, head_only),
                    Err(err) => {
                        tracing::error!("status endpoint: {err}");
                        Response::text("500 Internal Server Error", "status unavailable\n")
                    }
                }
            }
            Route::NotFound => {
                Response::text("404 Not Found", "not found; try /metrics or /status\n")
            }
            Route::MethodNotAllowed => {
                Response::text("405 Method Not Allowed", "only GET and HEAD\n")
            }
            Route::BadRequest => Response::text("400 Bad Request", "bad request\n"),
        },
        Head::Truncated => Response::text("400 Bad Request", "incomplete request\n"),
        Head::TooLarge => Response::text(
            "431 Request Header Fields Too Large",
            "request head too large\n",
        ),
    };
    stream.write_all(&response.bytes()).await?;
    stream.shutdown().await
}

/// What reading a request head found.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A head of this many bytes (the blank line included) is in the buffer.
    Complete(usize),
    /// The client closed before sending anything.
    Closed,
    /// The client closed in the middle of the head.
    Truncated,
    /// The buffer filled before the head ended.
    TooLarge,
}

/// Reads until the blank line that ends a request head, at most `buf.len()` bytes.
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Head> {
    let mut len = 0;
    while len < buf.len() {
        let read = stream.read(&mut buf[len..]).await?;
        if read == 0 {
            return Ok(if len == 0 {
                Head::Closed
            } else {
                Head::Truncated
            });
        }
        // The terminator may straddle two reads: look back three bytes.
        let from = len.saturating_sub(3);
        len += read;
        if let Some(end) = head_end(&buf[from..len]) {
            return Ok(Head::Complete(from + end));
        }
    }
    Ok(Head::TooLarge)
}

/// The length of the head in `bytes` up to and including its blank line, if it is there.
/// Bare `\n` line ends are accepted, as RFC 9112 allows a recipient to.
fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") || rest.starts_with(b"\n\r\n") {
            Some(i + if rest[1] == b'\n' { 2 } else { 3 })
        } else {
            None
        }
    })
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The exposition; without the body for `HEAD`.
    Metrics {
        /// A `HEAD` request.
        head_only: bool,
    },
    /// The status as JSON, for `jinbao-agent show`; without the body for `HEAD`.
    Status {
        /// A `HEAD` request.
        head_only: bool,
    },
    /// Any other path.
    NotFound,
    /// A method other than `GET` or `HEAD`.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Routes a request head on its request line alone; headers are ignored.
fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Route::MethodNotAllowed;
        }
        _ => return Route::BadRequest,
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match path {
        "/metrics" => Route::Metrics { head_only },
        "/status" => Route::Status { head_only },
        _ => Route::NotFound,
    }
}

/// A response, always closing the connection.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn new(
        status: &'static str,
        content_type: &'static str,
        body: String,
        head_only: bool,
    ) -> Self {
        Response {
            status,
            content_type,
            body,
            head_only,
        }
    }

    fn text(status: &'static str, body: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body.to_owned(), false)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_on_the_request_line() {
        let metrics = Route::Metrics { head_only: false };
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), metrics);
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"GET /status HTTP/1.1\r\n\r\n"),
            Route::Status { head_only: false }
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics HTTP/2\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"get /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(
            route(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"),
            Route::BadRequest
        );
        assert_eq!(route(b""), Route::BadRequest);
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\r\n"), Some(17));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn an_empty_status_still_renders() {
        let text = render(&Status::default()).unwrap();
        assert!(text.contains("# TYPE jinbao_agent_config_version gauge"));
        assert!(text.contains("jinbao_agent_config_version 0\n"));
        assert!(!text.contains("jinbao_agent_info"));
    }
}
