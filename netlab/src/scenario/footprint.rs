//! From a selection to the nodes and tree links the lab runs, and every node and link the
//! file names held against them.
//!
//! The lab starts nodes in footprint order, so parents come before children: the ministry,
//! then the provinces, then the cities, then the city-area sites, each level in the
//! network's own child order (the order addresses follow). Links are the network's tree
//! links — with its capacities and underlay circuits — one per node below the ministry.

use std::collections::HashMap;

use topology::{
    Kbps, LinkIx, LinkLevel, Located, Location, Network, NodeId, NodeIx, NodeKind, Problems, Tier,
};

use super::{LinkRef, NodeSelection, Reference, Scenario, ScenarioProblem};

/// The nodes and tree links a scenario runs on a network.
#[derive(Debug, Clone)]
pub struct Footprint {
    /// The nodes, parents before children; the ministry first.
    pub nodes: Vec<NodeId>,
    /// The tree links: `links[i]` is the uplink of `nodes[i + 1]`.
    pub links: Vec<TreeLink>,
    position: HashMap<NodeId, usize>,
}

/// A tree link between two nodes of a footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLink {
    /// The upper end.
    pub parent: NodeId,
    /// The lower end, whose uplink this is.
    pub child: NodeId,
    /// Which part of the network it belongs to: picks its profile.
    pub level: LinkLevel,
    /// The link in the network, for its underlay circuits.
    pub link: LinkIx,
    /// Its capacity, from the network file.
    pub capacity: Kbps,
    /// Whether the lab gives it a backup path: its level is in the scenario's `backup` and
    /// the network file gives it a backup underlay.
    pub backup: bool,
}

impl Footprint {
    /// Whether the node runs in this scenario.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.position.contains_key(node)
    }

    /// The link from a node of the footprint to its parent.
    pub fn uplink(&self, child: &NodeId) -> Option<&TreeLink> {
        let position = *self.position.get(child)?;
        self.links.get(position.checked_sub(1)?)
    }

    /// The tree link a [`LinkRef`] names, whichever way round it was written.
    pub fn link(&self, link: &LinkRef) -> Option<&TreeLink> {
        [(link.a, link.b), (link.b, link.a)]
            .into_iter()
            .find_map(|(parent, child)| self.uplink(&child).filter(|l| l.parent == parent))
    }

    /// How many of its links are of a level.
    pub fn count(&self, level: LinkLevel) -> usize {
        self.links.iter().filter(|l| l.level == level).count()
    }
}

/// See [`Scenario::resolve`].
pub(super) fn resolve(
    scenario: &Scenario,
    network: &Network,
) -> Result<Footprint, Problems<ScenarioProblem>> {
    let mut problems = Vec::new();
    let selected = select(scenario, network, &mut problems);
    let footprint = walk(scenario, network, &selected);
    for reference in &scenario.references {
        let mut found = |value| {
            problems.push(Located {
                location: reference.location.clone(),
                value,
            });
        };
        match &reference.value {
            Reference::Province(_) | Reference::Selected(_) => {}
            Reference::Node(node) => {
                if let Err(problem) = selected_node(network, &footprint, node) {
                    found(problem);
                }
            }
            Reference::Link { link, backup } => {
                let ends = [link.a, link.b].map(|end| selected_node(network, &footprint, &end));
                if let Some(problem) = ends.into_iter().find_map(Result::err) {
                    found(problem);
                    continue;
                }
                match footprint.link(link) {
                    None => found(ScenarioProblem::NotATreeLink(*link)),
                    Some(tree) if *backup && !tree.backup => {
                        found(ScenarioProblem::NoBackup {
                            link: *link,
                            why: why_no_backup(scenario, tree.level),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    problems.sort_by_key(|p| p.location.line);
    Problems(problems).into_result(footprint)
}

/// Marks the selected nodes; reports unknown ones and ones whose parent is missing.
fn select(
    scenario: &Scenario,
    network: &Network,
    problems: &mut Vec<Located<ScenarioProblem>>,
) -> Vec<bool> {
    let mut selected = vec![false; network.nodes().len()];
    let is_data_centre = |ix: NodeIx| network.node(ix).kind() == NodeKind::DataCentre;
    // Where the file wrote each selection entry; the first line if it was changed since.
    let places: HashMap<&Reference, &Location> = scenario
        .references
        .iter()
        .map(|r| (&r.value, &r.location))
        .collect();
    let written = |wanted: &Reference| -> Location {
        places
            .get(wanted)
            .map_or_else(|| first_line(scenario), |&location| location.clone())
    };
    match &scenario.nodes {
        NodeSelection::All => {
            for ix in network.indices().filter(|&ix| is_data_centre(ix)) {
                selected[ix.index()] = true;
            }
        }
        NodeSelection::Province(code) => {
            selected[network.ministry().index()] = true;
            match network.lookup(&NodeId::DataCentre(*code)) {
                Some(province) => {
                    selected[province.index()] = true;
                    for &city in network.children(province) {
                        selected[city.index()] |= is_data_centre(city);
                    }
                }
                None => problems.push(Located {
                    location: written(&Reference::Province(*code)),
                    value: ScenarioProblem::UnknownProvince(*code),
                }),
            }
        }
        NodeSelection::Codes(codes) => {
            let mut listed = Vec::with_capacity(codes.len());
            for id in codes {
                let location = written(&Reference::Selected(*id));
                match network.lookup(id) {
                    Some(ix) => {
                        selected[ix.index()] = true;
                        listed.push((ix, location));
                    }
                    None => problems.push(Located {
                        location,
                        value: ScenarioProblem::UnknownNode(*id),
                    }),
                }
            }
            for (ix, location) in listed {
                let Some(parent) = network.parent(ix) else {
                    continue;
                };
                if !selected[parent.index()] {
                    problems.push(Located {
                        location,
                        value: ScenarioProblem::ParentNotSelected {
                            node: network.node(ix).id,
                            parent: network.node(parent).id,
                        },
                    });
                }
            }
        }
    }
    if scenario.sites {
        add_sites(network, &mut selected);
    }
    selected
}

/// Selects the city-area sites below every selected city (a municipality is its own city).
fn add_sites(network: &Network, selected: &mut [bool]) {
    let cities: Vec<NodeIx> = network
        .indices()
        .filter(|&ix| selected[ix.index()] && network.node(ix).stands_at(Tier::City))
        .collect();
    for city in cities {
        for &site in network.children(city) {
            selected[site.index()] |= network.node(site).tier == Tier::Site;
        }
    }
}

/// The selected nodes reachable from the ministry, level by level, and their uplinks.
fn walk(scenario: &Scenario, network: &Network, selected: &[bool]) -> Footprint {
    let is_selected = |ix: NodeIx| selected.get(ix.index()).copied().unwrap_or(false);
    let mut order = Vec::new();
    if is_selected(network.ministry()) {
        order.push(network.ministry());
    }
    let mut next = 0;
    while let Some(&ix) = order.get(next) {
        next += 1;
        order.extend(
            network
                .children(ix)
                .iter()
                .copied()
                .filter(|&c| is_selected(c)),
        );
    }
    let mut links = Vec::with_capacity(order.len().saturating_sub(1));
    for &ix in order.iter().skip(1) {
        let (Some(parent), Some(uplink)) = (network.parent(ix), network.uplink(ix)) else {
            continue;
        };
        let link = network.link(uplink);
        links.push(TreeLink {
            parent: network.node(parent).id,
            child: network.node(ix).id,
            level: link.level,
            link: uplink,
            capacity: link.capacity,
            backup: scenario.backup.contains(&link.level) && link.backup.is_some(),
        });
    }
    let nodes: Vec<NodeId> = order.iter().map(|&ix| network.node(ix).id).collect();
    let position = nodes.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    Footprint {
        nodes,
        links,
        position,
    }
}

/// A node an event or check names: it must exist and run in the scenario.
fn selected_node(
    network: &Network,
    footprint: &Footprint,
    node: &NodeId,
) -> Result<(), ScenarioProblem> {
    if network.lookup(node).is_none() {
        Err(ScenarioProblem::UnknownNode(*node))
    } else if !footprint.contains(node) {
        Err(ScenarioProblem::NotSelected(*node))
    } else {
        Ok(())
    }
}

fn why_no_backup(scenario: &Scenario, level: LinkLevel) -> String {
    if scenario.backup.contains(&level) {
        "the network file gives it no backup underlay".to_owned()
    } else {
        let levels: Vec<&str> = scenario.backup.iter().map(|l| l.as_str()).collect();
        format!(
            "backup = [{}] does not list {level} links",
            levels.join(", ")
        )
    }
}

fn first_line(scenario: &Scenario) -> Location {
    Location {
        file: scenario.origin.clone(),
        line: 1,
    }
}
