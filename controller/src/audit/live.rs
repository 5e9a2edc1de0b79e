//! The live isolation audit: probe flows sent by the agents themselves, compared with what
//! the static audit predicts.
//!
//! For every audited pair of nodes (two different nodes enrolled on the same plane) and
//! every zone of the first to every zone of the second on that plane, one probe flow is
//! planned ([`plan`]): the protocol and port of the rule between those zones when there is
//! one (so an allowed flow is probed on a port it is allowed on, and a flow a rule almost
//! allows — wrong scope, wrong tier — on that rule's port), else TCP 443 (1521 into
//! production). The static verdict is [`Policy::decide`]'s. The controller puts each
//! source node's probes in its bundle ([`AuditOrder`]); the agent sends them through its own
//! filter and the tunnels, every filter on the way decides them, and the agent where one
//! arrives reports it ([`AuditSeen`]); a filter that drops one keeps a denied-flow record
//! naming it.
//!
//! A flow that arrives though the static audit says it is denied, or does not arrive though
//! it is allowed, is a finding, with the evidence: which agent delivered it and when, or
//! which agent denied it, why and when.
//!
//! [`Observations`] also keeps every agent's denied-flow records (rate-limited at the agent,
//! the newest [`DENIED_KEPT`] per report), for auditors to query by node, zone pair and time.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use agent::control::{AuditOrder, AuditProbe, Status};
use agent::model::Model;
use serde::{Deserialize, Serialize};
use topology::policy::{Proto, Query, Verdict};
use topology::{NodeId, NodeIx, Plane, Policy, Zone, ZoneRef};

use super::Finding;

/// How many denied-flow records the controller keeps (the oldest go first).
pub const DENIED_RECORDS: usize = 100_000;

pub use agent::control::DENIED_KEPT;

/// One planned probe flow and what the static audit says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Its number in the audit.
    pub flow: u32,
    /// Source node, plane, zone and address.
    pub from: (NodeId, Plane, Zone, IpAddr),
    /// Destination node, plane, zone and address.
    pub to: (NodeId, Plane, Zone, IpAddr),
    /// Protocol.
    pub proto: Proto,
    /// Port, for TCP and UDP.
    pub port: Option<u16>,
    /// The static verdict: the allowing rule, or `None` for denied.
    pub allowed_by: Option<String>,
}

impl Flow {
    fn service(&self) -> String {
        match self.port {
            Some(port) => format!("{}/{port}", self.proto),
            None => self.proto.to_string(),
        }
    }
}

/// The node pairs the live audit probes, among `nodes` (the enrolled ones): every ordered
/// pair of different nodes when there are at most [`super::FULL_COVERAGE_NODES`]; else the
/// first pair of every (source tier, destination tier, relation) they have, then `extra`
/// more spread evenly over the rest.
pub fn pairs(network: &topology::Network, nodes: &[NodeIx], extra: usize) -> Vec<(NodeIx, NodeIx)> {
    let all = nodes
        .iter()
        .flat_map(|&a| nodes.iter().map(move |&b| (a, b)))
        .filter(|(a, b)| a != b);
    if nodes.len() <= super::FULL_COVERAGE_NODES {
        return all.collect();
    }
    let mut chosen = Vec::new();
    let mut seen = BTreeSet::new();
    let mut rest = Vec::new();
    for (a, b) in all {
        let key = (
            network.node(a).tier,
            network.node(b).tier,
            network.relation(a, b),
        );
        if seen.insert(key) {
            chosen.push((a, b));
        } else {
            rest.push((a, b));
        }
    }
    if extra > 0 && !rest.is_empty() {
        let step = (rest.len() / extra).max(1);
        chosen.extend(rest.into_iter().step_by(step).take(extra));
    }
    chosen
}

/// Plans the probe flows for `pairs`, between nodes both enrolled on a plane (`enrolled`).
pub fn plan(
    model: &Model,
    policy: &Policy,
    pairs: &[(NodeIx, NodeIx)],
    enrolled: &HashSet<(Plane, NodeId)>,
) -> Vec<Flow> {
    let (network, allocation) = (&model.network, &model.allocation);
    let mut flows = Vec::new();
    for &(a, b) in pairs {
        if a == b {
            continue; // within a site: the site's own firewall, not the overlay
        }
        let (na, nb) = (network.node(a), network.node(b));
        let relation = network.relation(a, b);
        for plane in allocation.planes() {
            if !enrolled.contains(&(plane, na.id)) || !enrolled.contains(&(plane, nb.id)) {
                continue;
            }
            let targets = allocation.overlay_addresses(plane, b);
            for (from_zone, src) in allocation.overlay_addresses(plane, a) {
                for &(to_zone, dst) in &targets {
                    let between: Vec<_> = policy
                        .rules()
                        .iter()
                        .filter(|r| {
                            r.planes.contains(&plane)
                                && r.from.zone == from_zone
                                && r.to.zone == to_zone
                        })
                        .collect();
                    let chosen = between
                        .iter()
                        .find(|r| r.scope.admits(relation) && r.admits_tiers(na, nb))
                        .or(between.first());
                    let (proto, port) = match chosen {
                        Some(rule) => match rule.proto {
                            Proto::Icmp => (Proto::Icmp, None),
                            Proto::Udp => (
                                Proto::Udp,
                                Some(rule.ports.first().map_or(443, |p| p.first)),
                            ),
                            _ => (
                                Proto::Tcp,
                                Some(rule.ports.first().map_or(443, |p| p.first)),
                            ),
                        },
                        None if to_zone == Zone::Production => (Proto::Tcp, Some(1521)),
                        None => (Proto::Tcp, Some(443)),
                    };
                    let query = Query::new(
                        a,
                        ZoneRef {
                            plane: Some(plane),
                            zone: from_zone,
                        },
                        b,
                        ZoneRef {
                            plane: Some(plane),
                            zone: to_zone,
                        },
                        proto,
                        port,
                    );
                    let allowed_by = match policy.decide(network, allocation, &query) {
                        Verdict::Allow(rule) => {
                            Some(format!("rule '{}' ({})", rule.name, rule.location))
                        }
                        Verdict::Deny(_) => None,
                    };
                    flows.push(Flow {
                        flow: flows.len() as u32,
                        from: (na.id, plane, from_zone, src),
                        to: (nb.id, plane, to_zone, dst),
                        proto,
                        port,
                        allowed_by,
                    });
                }
            }
        }
    }
    flows
}

/// The probes that test the static findings' counterexamples live: for each finding, its
/// flow from its source's address to its destination's, sent on the source's plane,
/// numbered from `first`. A finding whose ends have no address is not probed.
pub fn counterexamples(model: &Model, findings: &[Finding], first: u32) -> Vec<(usize, Flow)> {
    let end = |text: &str| -> Option<(NodeId, Plane, Zone, IpAddr)> {
        let (node, zone) = text.split_once(' ')?;
        let (plane, zone) = zone.split_once(':')?;
        let (node, plane, zone): (NodeId, Plane, Zone) =
            (node.parse().ok()?, plane.parse().ok()?, zone.parse().ok()?);
        let ix = model.network.lookup(&node)?;
        let addr = model
            .allocation
            .overlay_addresses(plane, ix)
            .into_iter()
            .find_map(|(z, a)| (z == zone).then_some(a))?;
        Some((node, plane, zone, addr))
    };
    let mut flows = Vec::new();
    for (i, finding) in findings.iter().enumerate() {
        let (Some(from), Some(to)) = (end(&finding.source), end(&finding.destination)) else {
            continue;
        };
        let (proto, port) = match finding.flow.split_once('/') {
            Some((proto, port)) => (proto.parse().unwrap_or(Proto::Tcp), port.parse().ok()),
            None => (finding.flow.parse().unwrap_or(Proto::Icmp), None),
        };
        flows.push((
            i,
            Flow {
                flow: first + flows.len() as u32,
                from,
                to,
                proto,
                port,
                allowed_by: finding.rule.clone(),
            },
        ));
    }
    flows
}

/// What the live audit saw of a static finding's counterexample, as evidence.
pub fn confirmation(flow: &Flow, id: u64, observations: &Observations, waited: Duration) -> String {
    if !observations.has_sent(&flow.from.0, id) {
        return format!(
            "live: not probed ({}'s agent did not confirm sending)",
            flow.from.0
        );
    }
    if observations.arrived(&flow.to.0, id, flow.flow) {
        return format!(
            "live: confirmed — audit {id} probe {} {} from {} was delivered by {}'s agent",
            flow.flow,
            flow.service(),
            flow.from.0,
            flow.to.0
        );
    }
    match observations.denials_of(id, flow.flow).first() {
        Some(denied) => format!(
            "live: audit {id} probe {} was denied at {}'s filter at {}: {}",
            flow.flow,
            denied.node,
            crate::health::rfc3339::format(denied.at),
            denied.reason
        ),
        None if flow.from.1 != flow.to.1 => format!(
            "live: audit {id} probe {} sent by {} on the {} plane to its {} address was not delivered within {waited:?}: the planes' overlays do not route to each other",
            flow.flow, flow.from.0, flow.from.1, flow.to.1
        ),
        None => format!(
            "live: audit {id} probe {} was not delivered at {} within {waited:?}",
            flow.flow, flow.to.0
        ),
    }
}

/// Each source node's order for audit `id`.
pub fn orders(flows: &[Flow], id: u64) -> HashMap<NodeId, AuditOrder> {
    let mut orders: HashMap<NodeId, AuditOrder> = HashMap::new();
    for flow in flows {
        orders
            .entry(flow.from.0)
            .or_insert_with(|| AuditOrder {
                id,
                probes: Vec::new(),
            })
            .probes
            .push(AuditProbe {
                flow: flow.flow,
                plane: flow.from.1,
                src: flow.from.3,
                dst: flow.to.3,
                proto: flow.proto,
                port: flow.port,
            });
    }
    orders
}

/// A denied packet an agent reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedEntry {
    /// The agent whose filter denied it.
    pub node: NodeId,
    /// On which plane.
    pub plane: Plane,
    /// When (the controller's clock, from the agent's report).
    #[serde(with = "crate::health::rfc3339")]
    pub at: SystemTime,
    /// Source address, and its node and zone when the plan knows them (`dc:1401 exchange`).
    pub src: IpAddr,
    /// The source's node and zone.
    pub from: Option<(NodeId, Zone)>,
    /// Destination address.
    pub dst: IpAddr,
    /// The destination's node and zone.
    pub to: Option<(NodeId, Zone)>,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port.
    pub port: Option<u16>,
    /// Why.
    pub reason: String,
    /// The live audit's (audit, flow), when it was a probe.
    pub audit: Option<(u64, u32)>,
}

/// What auditors ask of the denied-flow records (every part optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeniedQuery {
    /// Denied by this node's agent, or to or from it.
    pub node: Option<NodeId>,
    /// From this zone.
    pub from_zone: Option<Zone>,
    /// To this zone.
    pub to_zone: Option<Zone>,
    /// Not before (RFC 3339).
    pub since: Option<String>,
    /// Not after (RFC 3339).
    pub until: Option<String>,
    /// At most this many, newest first (default 1000).
    pub limit: Option<usize>,
}

/// What the agents reported for the live audit, and their denied-flow records.
#[derive(Debug, Default)]
pub struct Observations {
    sent: HashMap<NodeId, u64>,
    arrived: HashMap<NodeId, (u64, BTreeSet<u32>)>,
    /// The denied-flow records, oldest first (at most [`DENIED_RECORDS`]).
    denied: VecDeque<DeniedEntry>,
    /// The newest record number seen per agent and plane: each record is kept once.
    last_seq: HashMap<(NodeId, Plane), u64>,
}

impl Observations {
    /// Takes what `node` reported at `now`.
    pub fn ingest(&mut self, model: &Model, node: NodeId, status: &Status, now: SystemTime) {
        if let Some(seen) = &status.audit {
            if let Some(sent) = seen.sent {
                self.sent.insert(node, sent);
            }
            if let Some(audit) = seen.arrived_for {
                let entry = self.arrived.entry(node).or_insert((audit, BTreeSet::new()));
                if entry.0 != audit {
                    *entry = (audit, BTreeSet::new());
                }
                entry.1.extend(seen.arrived.iter().copied());
            }
        }
        let locate = |plane: Plane, addr: IpAddr| {
            let owner = model.index.owner_on(plane, addr)?;
            Some((model.network.node(owner.node).id, owner.zone?))
        };
        for plane in &status.planes {
            let last = self
                .last_seq
                .get(&(node, plane.plane))
                .copied()
                .unwrap_or(0);
            let newest = plane.denied_flows.iter().map(|r| r.seq).max();
            // A restarted agent numbers from 1 again: then everything it sends is new.
            let floor = if newest.is_some_and(|n| n < last) {
                0
            } else {
                last
            };
            for record in plane.denied_flows.iter().filter(|r| r.seq > floor) {
                self.denied.push_back(DeniedEntry {
                    node,
                    plane: plane.plane,
                    at: now
                        .checked_sub(Duration::from_millis(record.ago_ms))
                        .unwrap_or(now),
                    src: record.src,
                    from: locate(plane.plane, record.src),
                    dst: record.dst,
                    to: locate(plane.plane, record.dst),
                    proto: record.proto,
                    port: record.port,
                    reason: record.reason.clone(),
                    audit: record.audit,
                });
                if self.denied.len() > DENIED_RECORDS {
                    self.denied.pop_front();
                }
            }
            if let Some(newest) = newest {
                self.last_seq.insert((node, plane.plane), newest);
            }
        }
    }

    /// Whether `node` has sent the probes of audit `id`.
    pub fn has_sent(&self, node: &NodeId, id: u64) -> bool {
        self.sent.get(node) == Some(&id)
    }

    /// Whether flow `flow` of audit `id` arrived at `node`.
    pub fn arrived(&self, node: &NodeId, id: u64, flow: u32) -> bool {
        self.arrived
            .get(node)
            .is_some_and(|(audit, flows)| *audit == id && flows.contains(&flow))
    }

    /// The denied-flow records that match, newest first.
    pub fn denied(
        &self,
        query: &DeniedQuery,
        since: Option<SystemTime>,
        until: Option<SystemTime>,
    ) -> Vec<&DeniedEntry> {
        let touches = |entry: &DeniedEntry, node: &NodeId| {
            entry.node == *node
                || entry.from.is_some_and(|(n, _)| n == *node)
                || entry.to.is_some_and(|(n, _)| n == *node)
        };
        self.denied
            .iter()
            .rev()
            .filter(|e| query.node.as_ref().is_none_or(|n| touches(e, n)))
            .filter(|e| {
                query
                    .from_zone
                    .is_none_or(|z| e.from.is_some_and(|(_, f)| f == z))
            })
            .filter(|e| {
                query
                    .to_zone
                    .is_none_or(|z| e.to.is_some_and(|(_, t)| t == z))
            })
            .filter(|e| since.is_none_or(|s| e.at >= s))
            .filter(|e| until.is_none_or(|u| e.at <= u))
            .take(query.limit.unwrap_or(1000))
            .collect()
    }

    /// The denied-flow records of one probe.
    fn denials_of(&self, id: u64, flow: u32) -> Vec<&DeniedEntry> {
        self.denied
            .iter()
            .filter(|e| e.audit == Some((id, flow)))
            .collect()
    }
}

/// What the live audit saw, in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSummary {
    /// Probe flows planned.
    pub flows: usize,
    /// Of those, sent (their source agent confirmed).
    pub sent: usize,
    /// Arrived.
    pub arrived: usize,
    /// Static audit: allowed.
    pub predicted_allowed: usize,
    /// Source nodes that never confirmed sending.
    pub silent_sources: Vec<NodeId>,
}

/// Compares what arrived with what the static audit predicts: a finding per difference,
/// with its evidence.
pub fn compare(
    flows: &[Flow],
    id: u64,
    observations: &Observations,
    waited: Duration,
) -> (LiveSummary, Vec<Finding>) {
    let mut summary = LiveSummary {
        flows: flows.len(),
        ..LiveSummary::default()
    };
    let mut silent = BTreeSet::new();
    let mut findings = Vec::new();
    for flow in flows {
        if !observations.has_sent(&flow.from.0, id) {
            silent.insert(flow.from.0);
            continue;
        }
        summary.sent += 1;
        let arrived = observations.arrived(&flow.to.0, id, flow.flow);
        summary.arrived += usize::from(arrived);
        summary.predicted_allowed += usize::from(flow.allowed_by.is_some());
        let source = format!("{} {}:{}", flow.from.0, flow.from.1, flow.from.2);
        let destination = format!("{} {}:{}", flow.to.0, flow.to.1, flow.to.2);
        let denials = observations.denials_of(id, flow.flow);
        let denied_by = denials.first().map(|d| {
            format!(
                "denied at {}'s filter at {}: {}",
                d.node,
                crate::health::rfc3339::format(d.at),
                d.reason
            )
        });
        match (&flow.allowed_by, arrived) {
            (None, true) => findings.push(Finding {
                kind: "live-denied-but-arrived".into(),
                source,
                destination,
                flow: flow.service(),
                rule: None,
                evidence: Some(format!(
                    "audit {id} flow {}: {}'s agent delivered it (the static audit says no rule allows it)",
                    flow.flow, flow.to.0
                )),
            }),
            (Some(rule), false) => findings.push(Finding {
                kind: "live-allowed-but-dropped".into(),
                source,
                destination,
                flow: flow.service(),
                rule: Some(rule.clone()),
                evidence: Some(denied_by.unwrap_or_else(|| {
                    format!(
                        "audit {id} flow {}: sent by {}, not delivered at {} within {waited:?}; no filter recorded a denial (unroutable, or records rate-limited)",
                        flow.flow, flow.from.0, flow.to.0
                    )
                })),
            }),
            _ => {}
        }
    }
    summary.silent_sources = silent.into_iter().collect();
    (summary, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::control::{AuditSeen, DeniedRecord, ModelSources};

    fn status(node: &str, seqs: &[u64], audit: Option<AuditSeen>) -> Status {
        let model = Model::load(&ModelSources::default()).unwrap();
        let ix = |id: &str| model.network.lookup(&id.parse().unwrap()).unwrap();
        let address = |id: &str, zone: Zone| {
            model
                .allocation
                .overlay_addresses(Plane::Business, ix(id))
                .into_iter()
                .find_map(|(z, a)| (z == zone).then_some(a))
                .unwrap()
        };
        let mut status = crate::health::tests::status(node, Vec::new());
        status.planes[0].denied_flows = seqs
            .iter()
            .map(|&seq| DeniedRecord {
                seq,
                ago_ms: 1_000 * (10 - seq),
                src: address("dc:1401", Zone::Exchange),
                dst: address(
                    "dc:1402",
                    if seq % 2 == 0 {
                        Zone::Production
                    } else {
                        Zone::Mgmt
                    },
                ),
                proto: 6,
                port: Some(1521),
                reason: "default deny".into(),
                audit: None,
            })
            .collect();
        status.audit = audit;
        status
    }

    #[test]
    fn denied_records_are_kept_once_and_found_by_node_zone_pair_and_time() {
        let model = Model::load(&ModelSources::default()).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_759_200);
        let mut seen = Observations::default();
        seen.ingest(
            &model,
            "dc:1402".parse().unwrap(),
            &status("dc:1402", &[1, 2, 3], None),
            t0,
        );
        // The next report repeats the newest records: each is kept once.
        seen.ingest(
            &model,
            "dc:1402".parse().unwrap(),
            &status("dc:1402", &[2, 3, 4], None),
            t0,
        );
        let all = seen.denied(&DeniedQuery::default(), None, None);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].port, Some(1521), "newest first");
        let into_production = DeniedQuery {
            from_zone: Some(Zone::Exchange),
            to_zone: Some(Zone::Production),
            ..DeniedQuery::default()
        };
        let found = seen.denied(&into_production, None, None);
        assert_eq!(found.len(), 2, "records 2 and 4");
        assert!(
            found
                .iter()
                .all(|d| d.to.map(|(n, _)| n.to_string()) == Some("dc:1402".into()))
        );
        let by_node = DeniedQuery {
            node: Some("dc:1401".parse().unwrap()),
            ..DeniedQuery::default()
        };
        assert_eq!(
            seen.denied(&by_node, None, None).len(),
            4,
            "a source is a node the record touches"
        );
        let other = DeniedQuery {
            node: Some("dc:13".parse().unwrap()),
            ..DeniedQuery::default()
        };
        assert!(seen.denied(&other, None, None).is_empty());
        // Record n was denied (10 - n) s before its report at t0.
        let recent = seen.denied(
            &DeniedQuery::default(),
            Some(t0 - Duration::from_secs(7)),
            None,
        );
        assert_eq!(recent.len(), 2, "records 3 and 4");
        // A restarted agent numbers from 1 again: its records are new.
        seen.ingest(
            &model,
            "dc:1402".parse().unwrap(),
            &status("dc:1402", &[1], None),
            t0,
        );
        assert_eq!(seen.denied(&DeniedQuery::default(), None, None).len(), 5);
        let limited = DeniedQuery {
            limit: Some(1),
            ..DeniedQuery::default()
        };
        assert_eq!(seen.denied(&limited, None, None).len(), 1);
        // Arrivals of a newer audit replace the older ones.
        let arrived = |audit, flows: Vec<u32>| AuditSeen {
            sent: None,
            arrived_for: Some(audit),
            arrived: flows,
        };
        let node: NodeId = "dc:14".parse().unwrap();
        seen.ingest(
            &model,
            node,
            &status("dc:14", &[], Some(arrived(1, vec![3, 4]))),
            t0,
        );
        assert!(seen.arrived(&node, 1, 4));
        seen.ingest(
            &model,
            node,
            &status("dc:14", &[], Some(arrived(2, vec![9]))),
            t0,
        );
        assert!(!seen.arrived(&node, 1, 4) && seen.arrived(&node, 2, 9));
    }
}
