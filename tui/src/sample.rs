//! Fixed models of what the controller says, for the rendering tests, the key tests and the
//! frame benchmark: [`small`] is a hand-made corner of the network with one of everything
//! (a down link, a degraded one, one on backup, an unknown one, alerts in each state, a live
//! and a coming conference, expired and expiring certificates, an audit finding);
//! [`national`] is every tree link of the national network, with states spread over it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::control::{PathChoice, PeerHealth};
use controller::alerts::{
    Acknowledgement, Alert, AlertChange, AlertId, AlertState, Rule, Severity,
};
use controller::conference::{Actor, Bitrate, BookingForm, Change, Priority, Site, State};
use controller::health::{EndReport, LinkKey, LinkKind, LinkSample, LinkState, LinkView};
use controller::server::conferences::{BookingView, LinkView as BookedLink};
use controller::snmp::{CounterRate, InterfaceRate, OperStatus};
use controller::store::{CertificateKind, CertificateRecord};
use topology::{NodeId, Plane};

use crate::feed::{Alerts, Audit, Device, Finding, LinkHistory, Snapshot};

/// The moment the fixed model is seen at: 2026-11-27 14:00 Beijing time.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_759_200)
}

fn ago(secs: u64) -> SystemTime {
    now() - Duration::from_secs(secs)
}

fn later(secs: u64) -> SystemTime {
    now() + Duration::from_secs(secs)
}

fn node(text: &str) -> NodeId {
    text.parse().unwrap_or(NodeId::MINISTRY)
}

fn key(parent: &str, child: &str) -> LinkKey {
    LinkKey {
        plane: Plane::Business,
        parent: node(parent),
        child: node(child),
    }
}

/// A link in `state` with numbers to match.
pub fn link(key: LinkKey, state: LinkState, loss: f64, rtt_ms: u64, seen: SystemTime) -> LinkView {
    let path = if state == LinkState::Backup {
        PathChoice::Backup
    } else {
        PathChoice::Primary
    };
    let health = match state {
        LinkState::Down => PeerHealth::Down,
        LinkState::Unknown => PeerHealth::Unknown,
        _ => PeerHealth::Up,
    };
    let rtt = (state != LinkState::Down && state != LinkState::Unknown)
        .then(|| Duration::from_millis(rtt_ms));
    let end = EndReport {
        at: seen,
        health,
        path,
        rtt,
        loss,
        jitter: Duration::from_micros(rtt_ms * 40),
        handshake_age: Some(Duration::from_secs(20)),
        rx_bytes: 1 << 30,
        tx_bytes: 1 << 29,
        up_rate: Some(rtt_ms as f64 * 41_000.0),
        down_rate: Some(rtt_ms as f64 * 97_000.0),
    };
    LinkView {
        key,
        kind: LinkKind::Tree,
        state,
        path,
        rtt,
        loss,
        jitter: end.jitter,
        up_rate: end.up_rate,
        down_rate: end.down_rate,
        parent_end: Some(end.clone()),
        child_end: (state != LinkState::Unknown).then_some(end),
    }
}

/// The small fixed model.
pub fn small() -> Snapshot {
    let links = vec![
        link(key("dc:ministry", "dc:11"), LinkState::Up, 0.0, 18, ago(2)),
        link(
            key("dc:ministry", "dc:14"),
            LinkState::Degraded,
            0.034,
            31,
            ago(1),
        ),
        link(key("dc:14", "dc:1401"), LinkState::Up, 0.0, 6, ago(3)),
        link(key("dc:14", "dc:1402"), LinkState::Down, 1.0, 0, ago(4)),
        link(
            key("dc:14", "dc:1403"),
            LinkState::Backup,
            0.002,
            14,
            ago(2),
        ),
        link(key("dc:ministry", "dc:44"), LinkState::Up, 0.0, 35, ago(1)),
        link(key("dc:44", "dc:4401"), LinkState::Unknown, 0.0, 0, ago(95)),
        link(key("dc:44", "dc:4403"), LinkState::Up, 0.001, 9, ago(2)),
        link(key("dc:ministry", "dc:54"), LinkState::Up, 0.0, 52, ago(1)),
    ];
    let down = key("dc:14", "dc:1402");
    let alerts = Alerts {
        open: vec![
            Alert {
                id: AlertId(7),
                key: format!("link-down/{down}"),
                rule: Rule::LinkDown,
                subject: down.to_string(),
                severity: Severity::Critical,
                fired_at: ago(240),
                detail: "dc:14 sees the link down".into(),
                acknowledged: None,
            },
            Alert {
                id: AlertId(5),
                key: format!("link-loss/{}", key("dc:ministry", "dc:14")),
                rule: Rule::LinkLoss,
                subject: key("dc:ministry", "dc:14").to_string(),
                severity: Severity::Warning,
                fired_at: ago(1_800),
                detail: "loss 3.4% over 2%".into(),
                acknowledged: Some(Acknowledgement {
                    by: "wangfang".into(),
                    at: ago(1_500),
                }),
            },
            Alert {
                id: AlertId(9),
                key: "certificate-expiring/node dc:1403".into(),
                rule: Rule::CertificateExpiring,
                subject: "node dc:1403".into(),
                severity: Severity::Warning,
                fired_at: ago(60),
                detail: "expires in 3 days".into(),
                acknowledged: None,
            },
        ],
        recent: vec![AlertChange {
            id: AlertId(3),
            key: format!("link-rtt/{}", key("dc:44", "dc:4401")),
            rule: Rule::LinkRtt,
            subject: key("dc:44", "dc:4401").to_string(),
            severity: Severity::Warning,
            state: AlertState::Resolved,
            since: ago(3_000),
            fired_at: ago(4_000),
            detail: "round-trip time back under 150 ms".into(),
            by: None,
        }],
    };
    Snapshot {
        links,
        alerts,
        conferences: vec![
            booking(
                1,
                "全国人社工作视频会议",
                State::Live,
                (ago(1_800), later(5_400)),
                &[
                    ("dc:ministry-dc:11", 100_000),
                    ("dc:ministry-dc:14", 100_000),
                ],
            ),
            booking(
                2,
                "山西省医保调度会",
                State::Scheduled,
                (later(7_200), later(10_800)),
                &[("dc:14-dc:1401", 10_000), ("dc:14-dc:1402", 10_000)],
            ),
        ],
        certificates: vec![
            certificate("0a01", "dc:1402", CertificateKind::Node, ago(3_600), None),
            certificate(
                "0a02",
                "dc:1403",
                CertificateKind::Node,
                later(3 * 86_400),
                None,
            ),
            certificate(
                "0a03",
                "wangfang",
                CertificateKind::Operator,
                later(60 * 86_400),
                None,
            ),
            certificate(
                "0a04",
                "controller",
                CertificateKind::Controller,
                later(300 * 86_400),
                None,
            ),
            certificate(
                "0a05",
                "dc:1401",
                CertificateKind::Node,
                later(20 * 86_400),
                Some(ago(86_400)),
            ),
        ],
        devices: vec![Device {
            name: "rtr-taiyuan-1".into(),
            address: "127.0.0.1:1161".into(),
            link: Some("dc:14-dc:1402".into()),
            reachable: true,
            last_error: None,
            sys_uptime: Some(8_640_000),
            interfaces: vec![InterfaceRate {
                index: 2,
                oper: OperStatus::Down,
                inbound: CounterRate::Measured {
                    bps: 0.0,
                    wrapped: false,
                },
                outbound: CounterRate::Measured {
                    bps: 1_200.0,
                    wrapped: false,
                },
            }],
        }],
        audit: Some(Audit {
            document: controller::audit::DOCUMENT.into(),
            version: controller::audit::VERSION,
            id: 4,
            at: ago(7_200),
            by: "operator:zhaolei".into(),
            policy: "store: policy".into(),
            policy_hash: "9f2c4be1d07a55e3c0ffee".into(),
            plan_hash: "41d8cd98f00b204e9800998e".into(),
            network_hash: "5e8e2f0c1d7a9b3f".into(),
            coverage: "9 node pairs, every tier relation; live: 540 probe flows from 9 agents, 540 sent, 61 arrived".into(),
            pairs: 9,
            relations: 9,
            flows: 540,
            live: true,
            live_summary: None,
            findings: vec![Finding {
                kind: "production-exposed".into(),
                source: "dc:1401 business:exchange".into(),
                destination: "dc:1402 business:production".into(),
                flow: "tcp/1521".into(),
                rule: Some("rule 'sibling-db' (policy.toml:88)".into()),
                evidence: Some(
                    "static: the rule opens this on 2 of the 9 audited pairs; live: confirmed — audit 4 probe 180 tcp/1521 from dc:1401 was delivered by dc:1402's agent".into(),
                ),
            }],
            matrix: Vec::new(),
        }),
        history: Some(history(down)),
    }
}

/// Thirty samples of a link going bad: loss and round-trip time rising, then down.
pub fn history(link: LinkKey) -> LinkHistory {
    let samples = (0..30u64)
        .map(|i| {
            let down = i >= 26;
            LinkSample {
                at: ago(10 * (30 - i)),
                state: if down {
                    LinkState::Down
                } else if i > 18 {
                    LinkState::Degraded
                } else {
                    LinkState::Up
                },
                path: PathChoice::Primary,
                rtt: (!down).then(|| Duration::from_millis(8 + i * i / 8)),
                loss: if down {
                    1.0
                } else {
                    (i.saturating_sub(15) as f64) * 0.01
                },
                jitter: Duration::from_micros(300 + 90 * i),
                up_rate: Some(400_000.0 - 10_000.0 * i as f64),
                down_rate: Some(900_000.0 - 25_000.0 * i as f64),
            }
        })
        .collect();
    LinkHistory { link, samples }
}

fn booking(
    id: u64,
    title: &str,
    state: State,
    (start, end): (SystemTime, SystemTime),
    links: &[(&str, u64)],
) -> BookingView {
    let test_window = Duration::from_secs(1_800);
    let form = BookingForm {
        title: title.into(),
        organiser: "人社部办公厅".into(),
        contact: "liming".into(),
        phone: "010-00000000".into(),
        start,
        end,
        main_venue: NodeId::MINISTRY,
        sites: links
            .iter()
            .filter_map(|(l, _)| crate::feed::link_ends(l))
            .map(|(_, b)| Site {
                node: b,
                receive_only: false,
            })
            .collect(),
        bitrate: Bitrate::HD,
        priority: Priority::Important,
        test_window,
    };
    BookingView {
        id,
        title: title.into(),
        state,
        recorded: state,
        held: true,
        start,
        end,
        test_start: start - test_window,
        links: links
            .iter()
            .map(|(link, capacity)| BookedLink {
                link: (*link).into(),
                directions: "both".into(),
                streams: 1,
                rate_kbps: 2_531,
                capacity_kbps: *capacity,
            })
            .collect(),
        mcus: vec![(NodeId::MINISTRY, 4)],
        form,
        history: vec![Change {
            state,
            by: Actor::Operator("liming".into()),
            at: ago(86_400),
            note: None,
        }],
    }
}

fn certificate(
    serial: &str,
    subject: &str,
    kind: CertificateKind,
    not_after: SystemTime,
    revoked: Option<SystemTime>,
) -> CertificateRecord {
    CertificateRecord {
        serial: serial.into(),
        subject: subject.into(),
        kind,
        plane: (kind == CertificateKind::Node).then_some(Plane::Business),
        issuer: "ministry".into(),
        not_after,
        pem: String::new(),
        revoked: revoked.map(|at| (at, "key-compromise".into())),
    }
}

/// Every tree link of the national network (ministry → provinces → cities), with one link
/// in seven degraded, one in thirteen on backup, one in thirty-one down, and the same
/// alerts, conferences and certificates as [`small`].
pub fn national(network: &topology::Network) -> Snapshot {
    let mut snapshot = small();
    snapshot.links = network
        .links()
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (upper, lower) = (network.node(l.upper), network.node(l.lower));
            if lower.id.tier() == topology::Tier::Site {
                return None;
            }
            let state = match i {
                i if i % 31 == 0 => LinkState::Down,
                i if i % 13 == 0 => LinkState::Backup,
                i if i % 7 == 0 => LinkState::Degraded,
                _ => LinkState::Up,
            };
            let loss = if state == LinkState::Degraded {
                0.02 + (i % 5) as f64 * 0.01
            } else {
                0.0
            };
            let key = LinkKey {
                plane: Plane::Business,
                parent: upper.id,
                child: lower.id,
            };
            Some(link(
                key,
                state,
                loss,
                5 + (i % 60) as u64,
                ago((i % 9) as u64),
            ))
        })
        .collect();
    snapshot
}
