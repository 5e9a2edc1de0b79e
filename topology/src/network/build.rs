//! Building the tree: division rows and network-file entries become nodes, children are put
//! in addressing order, and every node gets its uplink from its level's link profile, with
//! the file's overrides and lateral links applied last.

use std::collections::HashMap;

use super::file::{LinkProfile, NetworkFile};
use super::{MUNICIPALITIES, Network, NetworkProblem, Relation};
use crate::division::{DivisionCode, DivisionLevel, Divisions};
use crate::link::{Link, LinkIx, LinkLevel};
use crate::node::NodeKind;
use crate::node::{Node, NodeId, NodeIx};
use crate::source::{Located, Problems, SourceText};
use crate::vocabulary::Tier;

/// Collects nodes, then wires the tree and the links.
#[derive(Default)]
pub(super) struct Builder {
    nodes: Vec<Node>,
    index: HashMap<NodeId, NodeIx>,
    /// The data centre that serves each city-level or county-level code as its city.
    city_of: HashMap<DivisionCode, NodeIx>,
    problems: Vec<Located<NetworkProblem>>,
}

impl Builder {
    fn add(&mut self, id: NodeId, name: &str, parent: Option<NodeIx>) -> Option<NodeIx> {
        let ix = NodeIx(self.nodes.len() as u32);
        if self.index.insert(id, ix).is_some() {
            return None;
        }
        let municipality = matches!(id, NodeId::DataCentre(code)
            if code.level() == DivisionLevel::Province && MUNICIPALITIES.contains(&code.value()));
        self.nodes.push(Node {
            id,
            name: name.to_owned(),
            tier: id.tier(),
            municipality,
            parent,
        });
        Some(ix)
    }

    pub(super) fn add_divisions(&mut self, divisions: &Divisions) {
        let ministry = self.add(NodeId::MINISTRY, "人力资源和社会保障部", None);
        let mut province_of = HashMap::new();
        for province in &divisions.provinces {
            if let Some(ix) = self.add(NodeId::DataCentre(province.code), &province.name, ministry)
            {
                province_of.insert(province.code, ix);
            }
        }
        for city in &divisions.cities {
            let Some(&province) = city.parent.as_ref().and_then(|p| province_of.get(p)) else {
                continue;
            };
            if self.nodes[province.index()].municipality {
                self.city_of.insert(city.code, province);
            } else if is_county_group(city.code) {
                // Its counties become city data centres below, one by one.
            } else if let Some(ix) =
                self.add(NodeId::DataCentre(city.code), &city.name, Some(province))
            {
                self.city_of.insert(city.code, ix);
            }
        }
        for area in &divisions.areas {
            let Some(city_code) = area.parent else {
                continue;
            };
            if is_county_group(city_code) {
                let province = city_code
                    .province()
                    .and_then(|p| province_of.get(&p).copied());
                if let Some(ix) = self.add(NodeId::DataCentre(area.code), &area.name, province) {
                    self.city_of.insert(area.code, ix);
                }
            } else if let Some(&city) = self.city_of.get(&city_code) {
                self.city_of.insert(area.code, city);
                self.add(NodeId::Office(area.code), &area.name, Some(city));
            }
        }
        for street in &divisions.streets {
            if let Some(&city) = street.parent.as_ref().and_then(|a| self.city_of.get(a)) {
                self.add(NodeId::Office(street.code), &street.name, Some(city));
            }
        }
    }

    pub(super) fn add_file(&mut self, file: &NetworkFile, source: &SourceText<'_>) {
        for entry in &file.dr_sites {
            let location = source.locate_span(&entry.span());
            let dr = entry.get_ref();
            let backed = match dr.of {
                NodeId::DataCentre(code)
                    if matches!(
                        code.level(),
                        DivisionLevel::Nation | DivisionLevel::Province
                    ) =>
                {
                    self.index.get(&dr.of).copied()
                }
                _ => None,
            };
            let problem = match backed {
                None if matches!(dr.of, NodeId::DataCentre(c) if c.level() <= DivisionLevel::Province) => {
                    NetworkProblem::UnknownNode(dr.of)
                }
                None => NetworkProblem::DrOfNonProvince(dr.of),
                Some(parent) => {
                    let id = NodeId::DisasterRecovery(dr.of.code());
                    match self.add(id, &dr.name, Some(parent)) {
                        Some(_) => continue,
                        None => NetworkProblem::Duplicate(id),
                    }
                }
            };
            self.problems.push(Located {
                location,
                value: problem,
            });
        }
        for entry in &file.endpoints {
            let location = source.locate_span(&entry.span());
            let endpoint = entry.get_ref();
            let problem = match endpoint.id {
                // `city_of` knows every county-level code of the dataset.
                NodeId::Endpoint { area, .. } => match self.city_of.get(&area).copied() {
                    Some(city) => match self.add(endpoint.id, &endpoint.name, Some(city)) {
                        Some(_) => continue,
                        None => NetworkProblem::Duplicate(endpoint.id),
                    },
                    _ => NetworkProblem::UnknownArea {
                        id: endpoint.id,
                        area,
                    },
                },
                other => NetworkProblem::NotAnEndpoint(other),
            };
            self.problems.push(Located {
                location,
                value: problem,
            });
        }
    }

    pub(super) fn finish(
        mut self,
        file: &NetworkFile,
        source: &SourceText<'_>,
    ) -> Result<Network, Problems<NetworkProblem>> {
        let mut children = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(parent) = node.parent {
                children[parent.index()].push(NodeIx(i as u32));
            }
        }
        let nodes = &self.nodes;
        for list in &mut children {
            list.sort_by_key(|ix| child_order(&nodes[ix.index()].id));
        }

        let mut links = Vec::with_capacity(self.nodes.len());
        let mut uplinks = vec![None; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(parent) = node.parent else { continue };
            let level = uplink_level(node, &self.nodes[parent.index()]);
            let profile = match level {
                LinkLevel::Backbone => &file.links.backbone,
                LinkLevel::Provincial => &file.links.provincial,
                LinkLevel::CityArea => &file.links.city_area,
                LinkLevel::DisasterRecovery | LinkLevel::Lateral => &file.links.disaster_recovery,
            };
            uplinks[i] = Some(LinkIx(links.len() as u32));
            links.push(link_from(profile, parent, NodeIx(i as u32), level));
        }

        let mut network = Network {
            nodes: self.nodes,
            children,
            uplinks,
            links,
            index: self.index,
        };
        network.apply_link_overrides(file, source, &mut self.problems);
        network.add_lateral_links(file, source, &mut self.problems);
        Problems(self.problems).into_result(network)
    }
}

/// Whether a city row is a group of county-level cities that the province administers
/// directly (省直辖县级行政区划: 4190, 4290, 4690, 6590), which is not one city.
fn is_county_group(code: DivisionCode) -> bool {
    code.level() == DivisionLevel::City && code.value() % 100 == 90
}

/// The order children are listed and addressed in: disaster recovery, data centres,
/// offices, endpoints; each by id. Endpoints come last so adding one never moves an office.
fn child_order(id: &NodeId) -> (u8, NodeId) {
    let rank = match id {
        NodeId::DisasterRecovery(_) => 0,
        NodeId::DataCentre(_) => 1,
        NodeId::Office(_) => 2,
        NodeId::Endpoint { .. } => 3,
    };
    (rank, *id)
}

fn uplink_level(node: &Node, parent: &Node) -> LinkLevel {
    match (node.kind(), parent.tier) {
        (NodeKind::DisasterRecovery, _) => LinkLevel::DisasterRecovery,
        (NodeKind::DataCentre, Tier::Ministry) => LinkLevel::Backbone,
        (NodeKind::DataCentre, _) => LinkLevel::Provincial,
        _ => LinkLevel::CityArea,
    }
}

fn link_from(profile: &LinkProfile, upper: NodeIx, lower: NodeIx, level: LinkLevel) -> Link {
    Link {
        upper,
        lower,
        level,
        capacity: profile.capacity,
        cost: profile.cost,
        primary: profile.primary.clone(),
        backup: profile.backup.clone(),
    }
}

impl Network {
    fn apply_link_overrides(
        &mut self,
        file: &NetworkFile,
        source: &SourceText<'_>,
        problems: &mut Vec<Located<NetworkProblem>>,
    ) {
        for entry in &file.link_overrides {
            let change = entry.get_ref();
            let uplink = self.lookup(&change.node).map(|ix| self.uplink(ix));
            let link = match uplink {
                Some(Some(link)) => &mut self.links[link.index()],
                Some(None) => {
                    problems.push(Located {
                        location: source.locate_span(&entry.span()),
                        value: NetworkProblem::NoUplink(change.node),
                    });
                    continue;
                }
                None => {
                    problems.push(Located {
                        location: source.locate_span(&entry.span()),
                        value: NetworkProblem::UnknownNode(change.node),
                    });
                    continue;
                }
            };
            if let Some(capacity) = change.capacity {
                link.capacity = capacity;
            }
            if let Some(cost) = change.cost {
                link.cost = cost;
            }
            if let Some(primary) = &change.primary {
                link.primary = primary.clone();
            }
            if let Some(backup) = &change.backup {
                link.backup = Some(backup.clone());
            }
        }
    }

    fn add_lateral_links(
        &mut self,
        file: &NetworkFile,
        source: &SourceText<'_>,
        problems: &mut Vec<Located<NetworkProblem>>,
    ) {
        for entry in &file.lateral_links {
            let lateral = entry.get_ref();
            let bad = |why| NetworkProblem::BadLateral {
                a: lateral.a,
                b: lateral.b,
                why,
            };
            let problem = match (self.lookup(&lateral.a), self.lookup(&lateral.b)) {
                (None, _) => NetworkProblem::UnknownNode(lateral.a),
                (_, None) => NetworkProblem::UnknownNode(lateral.b),
                (Some(a), Some(b)) => match self.relation(a, b) {
                    Relation::Same => bad("both ends are the same node"),
                    Relation::Parent | Relation::Child => bad("the tree already links them"),
                    _ if self.links.iter().any(|l| {
                        l.level == LinkLevel::Lateral
                            && ((l.upper, l.lower) == (a, b) || (l.upper, l.lower) == (b, a))
                    }) =>
                    {
                        bad("declared twice")
                    }
                    _ => {
                        self.links.push(Link {
                            upper: a,
                            lower: b,
                            level: LinkLevel::Lateral,
                            capacity: lateral.capacity,
                            cost: lateral.cost,
                            primary: lateral.primary.clone(),
                            backup: lateral.backup.clone(),
                        });
                        continue;
                    }
                },
            };
            problems.push(Located {
                location: source.locate_span(&entry.span()),
                value: problem,
            });
        }
    }
}
