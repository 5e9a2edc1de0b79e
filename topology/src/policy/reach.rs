//! Static reachability: what the policy allows between two nodes' zones, from the topology
//! and the policy alone — the answer the agents' filters must reproduce packet by packet.

use std::collections::BTreeMap;
use std::fmt;

use super::{Policy, Proto, Rule};
use crate::network::{Network, Relation};
use crate::node::{NodeId, NodeIx, NodeKind};
use crate::plan::Allocation;
use crate::vocabulary::{Plane, Tier, Zone, ZoneRef};

/// A flow to decide: from a node's zone to a node's zone, on a protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Source node.
    pub from: NodeIx,
    /// Source zone.
    pub from_zone: ZoneRef,
    /// Destination node.
    pub to: NodeIx,
    /// Destination zone.
    pub to_zone: ZoneRef,
    /// Protocol (`tcp`, `udp` or `icmp`).
    pub proto: Proto,
    /// Destination port, for tcp and udp.
    pub port: Option<u16>,
}

impl Query {
    /// A query; see the fields.
    pub fn new(
        from: NodeIx,
        from_zone: ZoneRef,
        to: NodeIx,
        to_zone: ZoneRef,
        proto: Proto,
        port: Option<u16>,
    ) -> Query {
        Query {
            from,
            from_zone,
            to,
            to_zone,
            proto,
            port,
        }
    }

    /// The planes the two zones are taken on. A zone written without a plane is taken on a
    /// plane it shares with the other end if there is one (`dmz` → `exchange` means the
    /// public exchange), else on its home plane.
    pub fn planes(&self) -> (Plane, Plane) {
        resolve_planes(self.from_zone, self.to_zone)
    }
}

fn resolve_planes(from: ZoneRef, to: ZoneRef) -> (Plane, Plane) {
    let to_planes = to.planes();
    let common = from.planes().into_iter().find(|p| to_planes.contains(p));
    match (from.plane, to.plane, common) {
        (Some(a), Some(b), _) => (a, b),
        (_, _, Some(common)) => (common, common),
        _ => (from.query_plane(), to.query_plane()),
    }
}

/// Why a flow is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The node has no presence on the plane.
    NotOnPlane {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
    },
    /// The node has no such zone on the plane.
    NoSuchZone {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
        /// The zone.
        zone: Zone,
    },
    /// The flow would cross planes.
    PlaneBoundary {
        /// Source plane.
        from: Plane,
        /// Destination plane.
        to: Plane,
        /// The soft-exchange gateway that relays this data at the application level, if any.
        relayed_by: Option<String>,
    },
    /// No rule allows it: default deny.
    NoRule {
        /// Source plane and zone.
        from: (Plane, Zone),
        /// Destination plane and zone.
        to: (Plane, Zone),
        /// How the destination stands to the source.
        relation: Relation,
        /// Rules between the same zones that fail on scope, tiers or service, and why.
        near_misses: Vec<String>,
    },
}

fn destination_phrase(relation: Relation) -> &'static str {
    match relation {
        Relation::Same => "within the same site",
        Relation::Parent => "to the parent",
        Relation::Child => "to a child",
        Relation::Ancestor => "to an ancestor above the parent",
        Relation::Descendant => "to a descendant below the children",
        Relation::Sibling => "to a sibling",
        Relation::Unrelated => "to an unrelated node",
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NotOnPlane { node, plane } => write!(f, "{node} is not on the {plane} plane"),
            Denial::NoSuchZone { node, plane, zone } => {
                write!(f, "{node} has no {zone} zone on the {plane} plane")
            }
            Denial::PlaneBoundary {
                from,
                to,
                relayed_by,
            } => {
                write!(f, "planes are never bridged ({from} → {to})")?;
                if let Some(gateway) = relayed_by {
                    write!(
                        f,
                        "; {gateway} relays this data at the application level, not as a route"
                    )?;
                }
                Ok(())
            }
            Denial::NoRule {
                from,
                to,
                relation,
                near_misses,
            } => {
                write!(
                    f,
                    "default deny: no rule allows {}:{} → {}:{} {}",
                    from.0,
                    from.1,
                    to.0,
                    to.1,
                    destination_phrase(*relation)
                )?;
                for miss in near_misses {
                    write!(f, "; {miss}")?;
                }
                Ok(())
            }
        }
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'p> {
    /// Allowed by this rule (the first that matches, in file order).
    Allow(&'p Rule),
    /// Denied, with the reason.
    Deny(Denial),
}

impl Verdict<'_> {
    /// The verdict as a sentence.
    pub fn explain(&self) -> String {
        match self {
            Verdict::Allow(rule) => format!("allowed by {rule}"),
            Verdict::Deny(denial) => format!("denied: {denial}"),
        }
    }
}

impl Policy {
    /// Decides a flow from the topology and the policy alone.
    pub fn decide(&self, network: &Network, allocation: &Allocation, query: &Query) -> Verdict<'_> {
        let (from_plane, to_plane) = query.planes();
        let (from_zone, to_zone) = (query.from_zone.zone, query.to_zone.zone);
        for (ix, plane, zone) in [
            (query.from, from_plane, from_zone),
            (query.to, to_plane, to_zone),
        ] {
            let node = network.node(ix).id;
            if allocation.node(plane, ix).is_none() {
                return Verdict::Deny(Denial::NotOnPlane { node, plane });
            }
            if allocation.zone(plane, ix, zone).is_none() {
                return Verdict::Deny(Denial::NoSuchZone { node, plane, zone });
            }
        }
        if from_plane != to_plane {
            let relayed_by = (query.from == query.to)
                .then(|| {
                    self.soft_exchanges.iter().find(|gw| {
                        gw.relays(
                            (from_plane, from_zone),
                            (to_plane, to_zone),
                            query.proto,
                            query.port,
                        )
                    })
                })
                .flatten()
                .map(|gw| gw.to_string());
            return Verdict::Deny(Denial::PlaneBoundary {
                from: from_plane,
                to: to_plane,
                relayed_by,
            });
        }
        let relation = network.relation(query.from, query.to);
        let (a, b) = (network.node(query.from), network.node(query.to));
        let mut near_misses = Vec::new();
        for rule in &self.rules {
            if !rule.planes.contains(&from_plane)
                || rule.from.zone != from_zone
                || rule.to.zone != to_zone
            {
                continue;
            }
            let miss = if !rule.scope.admits(relation) {
                format!("{rule} does not apply: its scope is {}", rule.scope)
            } else if !rule.admits_tiers(a, b) {
                format!(
                    "{rule} applies between tiers {} → {}",
                    tiers_text(&rule.from_tiers),
                    tiers_text(&rule.to_tiers)
                )
            } else if !rule.covers(query.proto, query.port) {
                format!("{rule} does not apply: it allows only {}", rule.service())
            } else {
                return Verdict::Allow(rule);
            };
            near_misses.push(miss);
        }
        Verdict::Deny(Denial::NoRule {
            from: (from_plane, from_zone),
            to: (to_plane, to_zone),
            relation,
            near_misses,
        })
    }

    /// The zone-to-zone matrix between two nodes: for every zone of `from` (rows) and of
    /// `to` (columns), what the policy allows.
    pub fn matrix(
        &self,
        network: &Network,
        allocation: &Allocation,
        from: NodeIx,
        to: NodeIx,
    ) -> Matrix {
        let zones_of = |ix: NodeIx| -> Vec<(Plane, Zone)> {
            allocation
                .planes()
                .flat_map(|plane| {
                    allocation
                        .zones(plane, ix)
                        .into_iter()
                        .map(move |(zone, _)| (plane, zone))
                })
                .collect()
        };
        let rows = zones_of(from);
        let columns = zones_of(to);
        let relation = network.relation(from, to);
        let (a, b) = (network.node(from), network.node(to));
        let cells = rows
            .iter()
            .map(|&(row_plane, row_zone)| {
                columns
                    .iter()
                    .map(|&(column_plane, column_zone)| {
                        if row_plane != column_plane {
                            let gateway = (from == to)
                                .then(|| {
                                    self.soft_exchanges.iter().find(|gw| {
                                        gw.from == (row_plane, row_zone)
                                            && gw.to == (column_plane, column_zone)
                                    })
                                })
                                .flatten();
                            return match gateway {
                                Some(gw) => {
                                    Cell::Relayed(format!("{} via {}", gw.service(), gw.name))
                                }
                                None => Cell::OtherPlane,
                            };
                        }
                        let services: Vec<String> = self
                            .rules
                            .iter()
                            .filter(|rule| {
                                rule.planes.contains(&row_plane)
                                    && rule.from.zone == row_zone
                                    && rule.to.zone == column_zone
                                    && rule.scope.admits(relation)
                                    && rule.admits_tiers(a, b)
                            })
                            .map(|rule| rule.service())
                            .collect();
                        if services.is_empty() {
                            Cell::Deny
                        } else {
                            Cell::Allow(services)
                        }
                    })
                    .collect()
            })
            .collect();
        Matrix {
            from,
            to,
            relation,
            rows,
            columns,
            cells,
        }
    }
}

fn tiers_text(tiers: &[Tier]) -> String {
    if tiers.is_empty() {
        "any".to_owned()
    } else {
        tiers
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// One cell of a [`Matrix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Default deny.
    Deny,
    /// Allowed, for these services (one per matching rule).
    Allow(Vec<String>),
    /// The zones are on different planes: never routed.
    OtherPlane,
    /// Different planes, but a soft-exchange gateway relays this service at the same site.
    Relayed(String),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Deny => f.write_str("·"),
            Cell::Allow(services) => f.write_str(&services.join(" ")),
            Cell::OtherPlane => f.write_str("╳"),
            Cell::Relayed(how) => write!(f, "relay {how}"),
        }
    }
}

/// What the policy allows between every zone of two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// Source node.
    pub from: NodeIx,
    /// Destination node.
    pub to: NodeIx,
    /// How the destination stands to the source.
    pub relation: Relation,
    /// Source zones.
    pub rows: Vec<(Plane, Zone)>,
    /// Destination zones.
    pub columns: Vec<(Plane, Zone)>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Cell>>,
}

/// One representative pair of nodes for every (source tier, destination tier, relation)
/// that occurs in the network, sorted: the pairs a tier-to-tier matrix is printed for.
///
/// Representatives: the ministry and its DR site, a province with a DR site and one
/// without, a municipality, two cities of the first province and one of the second, and
/// sites (offices and endpoints) below them and below the municipality.
pub fn sample_pairs(network: &Network) -> Vec<(NodeIx, NodeIx)> {
    let ministry = network.ministry();
    let children = |ix: NodeIx| network.children(ix).to_vec();
    let of_kind = |ix: NodeIx, kind: NodeKind| -> Vec<NodeIx> {
        children(ix)
            .into_iter()
            .filter(|&c| network.node(c).kind() == kind)
            .collect()
    };
    let has_dr = |ix: NodeIx| !of_kind(ix, NodeKind::DisasterRecovery).is_empty();
    let provinces = of_kind(ministry, NodeKind::DataCentre);
    let ordinary: Vec<NodeIx> = provinces
        .iter()
        .copied()
        .filter(|&p| !network.node(p).municipality)
        .collect();
    let first = ordinary
        .iter()
        .copied()
        .find(|&p| has_dr(p))
        .or(ordinary.first().copied());
    let second = ordinary.iter().copied().find(|&p| Some(p) != first);
    let municipality = provinces
        .iter()
        .copied()
        .find(|&p| network.node(p).municipality);

    let mut picked = vec![ministry];
    picked.extend(of_kind(ministry, NodeKind::DisasterRecovery));
    let sites = |city: NodeIx, n: usize| -> Vec<NodeIx> {
        let mut sites: Vec<NodeIx> = children(city)
            .into_iter()
            .filter(|&c| network.node(c).tier == Tier::Site)
            .take(n)
            .collect();
        let endpoint = children(city)
            .into_iter()
            .find(|&c| matches!(network.node(c).kind(), NodeKind::Endpoint(_)));
        sites.extend(endpoint);
        sites
    };
    for (province, cities) in [(first, 2), (second, 1)] {
        let Some(province) = province else { continue };
        picked.push(province);
        picked.extend(of_kind(province, NodeKind::DisasterRecovery));
        for city in of_kind(province, NodeKind::DataCentre)
            .into_iter()
            .take(cities)
        {
            picked.push(city);
            picked.extend(sites(city, 2));
        }
    }
    if let Some(municipality) = municipality {
        picked.push(municipality);
        picked.extend(sites(municipality, 1));
    }

    let mut pairs: BTreeMap<(Tier, Tier, Relation), (NodeIx, NodeIx)> = BTreeMap::new();
    for &a in &picked {
        for &b in &picked {
            let key = (
                network.node(a).tier,
                network.node(b).tier,
                network.relation(a, b),
            );
            pairs.entry(key).or_insert((a, b));
        }
    }
    pairs.into_values().collect()
}
