//! The national network as a tree: ministry → provinces → cities → city-area sites.
//!
//! Built from the division codes plus the network file. The shape follows the national
//! rules: one main line (city → province → ministry), municipalities straight to the
//! ministry, disaster-recovery sites under the ministry or a province, lateral links only
//! where declared.
//!
//! How the division rows become nodes:
//! - every province row is a province data centre (`dc:14`); 11, 12, 31 and 50 are
//!   municipalities, whose `市辖区`/`县` city rows are not nodes: the municipality's data
//!   centre is its own city level and its districts hang straight below it;
//! - every other city row is a city data centre (`dc:1401`), except the groups of
//!   county-level cities a province administers directly (city codes ending in `90`: 4190,
//!   4290, 4690, 6590): each county-level city in them is a city data centre of its own
//!   (`dc:419001` 济源市) linked to the province, because that is how they are run;
//! - every other area row is a district/county office site (`site:140105`) and every street
//!   row a street/township office site (`site:140105001`), both under their city;
//! - endpoint sites and disaster-recovery sites come from the network file.

mod file;

use std::collections::HashMap;

use crate::DivisionProblem;
use crate::division::{DivisionCode, DivisionLevel, Divisions};
use crate::link::{Link, LinkIx, LinkLevel};
use crate::node::{Node, NodeId, NodeIx, NodeKind};
use crate::source::{Located, Problems, SourceText};
use crate::vocabulary::{EndpointKind, Tier};

pub use file::EMBEDDED as EMBEDDED_NETWORK_FILE;
use file::{LinkProfile, NetworkFile};

/// Province codes of the four direct-administered municipalities.
pub const MUNICIPALITIES: [u32; 4] = [11, 12, 31, 50];

/// A problem in the network file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkProblem {
    /// The file is not valid TOML or not the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// A version this build does not read.
    #[error("network file version {0} is not supported (this build reads version 1)")]
    Version(u32),
    /// A node the file refers to does not exist.
    #[error("no node {0} in the network")]
    UnknownNode(NodeId),
    /// An endpoint's county code is not in the division dataset.
    #[error("endpoint {id}: county {area} is not in the division dataset")]
    UnknownArea {
        /// The endpoint.
        id: NodeId,
        /// Its county code.
        area: DivisionCode,
    },
    /// An `[[endpoints]]` id that is not an endpoint id.
    #[error("{0} is not an endpoint id (write site:AREA:KIND-NN, e.g. site:140105:window-03)")]
    NotAnEndpoint(NodeId),
    /// A disaster-recovery site for something other than the ministry or a province.
    #[error("disaster-recovery sites attach to the ministry or a province data centre, not {0}")]
    DrOfNonProvince(NodeId),
    /// A node declared twice.
    #[error("{0} is declared twice")]
    Duplicate(NodeId),
    /// A lateral link that is not lateral.
    #[error("lateral link {a} — {b}: {why}")]
    BadLateral {
        /// First end.
        a: NodeId,
        /// Second end.
        b: NodeId,
        /// What is wrong.
        why: &'static str,
    },
    /// An override for the ministry, which has no uplink.
    #[error("{0} has no uplink to override")]
    NoUplink(NodeId),
}

/// Why the network could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The division dataset is broken.
    #[error("division dataset:\n{0}")]
    Divisions(Problems<DivisionProblem>),
    /// The network file is broken.
    #[error("{0}")]
    File(Problems<NetworkProblem>),
}

/// How two nodes stand to each other in the tree, seen from the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    /// The same node.
    Same,
    /// The second is the first's parent.
    Parent,
    /// The second is one of the first's children.
    Child,
    /// The second is an ancestor of the first, above its parent.
    Ancestor,
    /// The second is a descendant of the first, below its children.
    Descendant,
    /// Both have the same parent.
    Sibling,
    /// None of the above (e.g. cities of two provinces).
    Unrelated,
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Relation::Same => "same site",
            Relation::Parent => "parent",
            Relation::Child => "child",
            Relation::Ancestor => "ancestor above the parent",
            Relation::Descendant => "descendant below the children",
            Relation::Sibling => "sibling",
            Relation::Unrelated => "unrelated",
        })
    }
}

/// The national network: nodes, the tree, and links.
#[derive(Debug, Clone)]
pub struct Network {
    nodes: Vec<Node>,
    children: Vec<Vec<NodeIx>>,
    uplinks: Vec<Option<LinkIx>>,
    links: Vec<Link>,
    index: HashMap<NodeId, NodeIx>,
}

/// How many nodes and links of each kind a network has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Province-level data centres, municipalities included.
    pub provinces: usize,
    /// Of which municipalities.
    pub municipalities: usize,
    /// City data centres (county-level cities of the province-administered groups included).
    pub cities: usize,
    /// Disaster-recovery sites.
    pub dr_sites: usize,
    /// District/county office sites.
    pub district_offices: usize,
    /// Street/township office sites.
    pub street_offices: usize,
    /// Endpoint sites by kind.
    pub endpoints: Vec<(EndpointKind, usize)>,
    /// Links by level.
    pub links: Vec<(LinkLevel, usize)>,
}

impl Census {
    /// All city-area sites.
    pub fn sites(&self) -> usize {
        self.district_offices + self.street_offices + self.endpoint_total()
    }

    /// All endpoint sites.
    pub fn endpoint_total(&self) -> usize {
        self.endpoints.iter().map(|(_, n)| n).sum()
    }
}

impl Network {
    /// The national network from the embedded divisions and the embedded network file.
    pub fn national() -> Result<Network, NetworkError> {
        let divisions = Divisions::embedded().map_err(NetworkError::Divisions)?;
        let file = SourceText::new("embedded/network.toml", EMBEDDED_NETWORK_FILE);
        Network::build(&divisions, &file).map_err(NetworkError::File)
    }

    /// Builds the network from the division dataset and a network file.
    pub fn build(
        divisions: &Divisions,
        source: &SourceText<'_>,
    ) -> Result<Network, Problems<NetworkProblem>> {
        let file: NetworkFile = source
            .parse_toml()
            .map_err(|e| Problems(vec![e.map(NetworkProblem::Syntax)]))?;
        if *file.version.get_ref() != 1 {
            return Err(Problems(vec![Located {
                location: source.locate_span(&file.version.span()),
                value: NetworkProblem::Version(*file.version.get_ref()),
            }]));
        }
        let mut builder = Builder::default();
        builder.add_divisions(divisions);
        builder.add_file(&file, divisions, source);
        builder.finish(&file, source)
    }

    /// All nodes, ministry first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node index.
    pub fn indices(&self) -> impl Iterator<Item = NodeIx> + '_ {
        (0..self.nodes.len() as u32).map(NodeIx)
    }

    /// The node at `ix`.
    pub fn node(&self, ix: NodeIx) -> &Node {
        &self.nodes[ix.index()]
    }

    /// The ministry data centre, root of the tree.
    pub fn ministry(&self) -> NodeIx {
        NodeIx(0)
    }

    /// The node with this id, if it exists.
    pub fn lookup(&self, id: &NodeId) -> Option<NodeIx> {
        self.index.get(id).copied()
    }

    /// The children of a node: its disaster-recovery site first, then data centres, then
    /// offices, then endpoints, each in code order. This is the order addresses follow.
    pub fn children(&self, ix: NodeIx) -> &[NodeIx] {
        &self.children[ix.index()]
    }

    /// The parent of a node.
    pub fn parent(&self, ix: NodeIx) -> Option<NodeIx> {
        self.node(ix).parent
    }

    /// The node's ancestors, nearest first.
    pub fn ancestors(&self, ix: NodeIx) -> impl Iterator<Item = NodeIx> + '_ {
        std::iter::successors(self.parent(ix), |&p| self.parent(p))
    }

    /// All links: the tree's uplinks, then lateral links.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link at `ix`.
    pub fn link(&self, ix: LinkIx) -> &Link {
        &self.links[ix.index()]
    }

    /// The link from a node to its parent.
    pub fn uplink(&self, ix: NodeIx) -> Option<LinkIx> {
        self.uplinks[ix.index()]
    }

    /// How `b` stands to `a`.
    pub fn relation(&self, a: NodeIx, b: NodeIx) -> Relation {
        let (pa, pb) = (self.parent(a), self.parent(b));
        if a == b {
            Relation::Same
        } else if pa == Some(b) {
            Relation::Parent
        } else if pb == Some(a) {
            Relation::Child
        } else if self.ancestors(a).any(|x| x == b) {
            Relation::Ancestor
        } else if self.ancestors(b).any(|x| x == a) {
            Relation::Descendant
        } else if pa.is_some() && pa == pb {
            Relation::Sibling
        } else {
            Relation::Unrelated
        }
    }

    /// The tree links a flow from `a` to `b` crosses, in order: up to the nearest common
    /// ancestor, then down. Lateral links are never part of a path.
    pub fn path(&self, a: NodeIx, b: NodeIx) -> Vec<LinkIx> {
        let up_a: Vec<NodeIx> = std::iter::once(a).chain(self.ancestors(a)).collect();
        let up_b: Vec<NodeIx> = std::iter::once(b).chain(self.ancestors(b)).collect();
        let meet = up_a.iter().find(|x| up_b.contains(x)).copied();
        let climb = |chain: &[NodeIx]| -> Vec<LinkIx> {
            chain
                .iter()
                .take_while(|&&x| Some(x) != meet)
                .filter_map(|&x| self.uplink(x))
                .collect()
        };
        let mut links = climb(&up_a);
        let mut down = climb(&up_b);
        down.reverse();
        links.extend(down);
        links
    }

    /// The nodes in tree order (each node before its children), as a plan is read.
    pub fn preorder(&self) -> Vec<NodeIx> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![self.ministry()];
        while let Some(ix) = stack.pop() {
            order.push(ix);
            stack.extend(self.children(ix).iter().rev());
        }
        order
    }

    /// The number of nodes and links of each kind.
    pub fn census(&self) -> Census {
        let mut census = Census::default();
        let mut endpoints: HashMap<EndpointKind, usize> = HashMap::new();
        for node in &self.nodes {
            match node.kind() {
                NodeKind::DataCentre => match node.tier {
                    Tier::Province => {
                        census.provinces += 1;
                        census.municipalities += usize::from(node.municipality);
                    }
                    Tier::City => census.cities += 1,
                    Tier::Ministry | Tier::Site => {}
                },
                NodeKind::DisasterRecovery => census.dr_sites += 1,
                NodeKind::DistrictOffice => census.district_offices += 1,
                NodeKind::StreetOffice => census.street_offices += 1,
                NodeKind::Endpoint(kind) => *endpoints.entry(kind).or_default() += 1,
            }
        }
        census.endpoints = EndpointKind::ALL
            .iter()
            .map(|&kind| (kind, endpoints.get(&kind).copied().unwrap_or(0)))
            .collect();
        census.links = LinkLevel::ALL
            .iter()
            .map(|&level| {
                (
                    level,
                    self.links.iter().filter(|l| l.level == level).count(),
                )
            })
            .collect();
        census
    }
}

/// Collects nodes, then wires the tree and the links.
#[derive(Default)]
struct Builder {
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

    fn add_divisions(&mut self, divisions: &Divisions) {
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

    fn add_file(&mut self, file: &NetworkFile, divisions: &Divisions, source: &SourceText<'_>) {
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
                NodeId::Endpoint { area, .. } => match self.city_of.get(&area).copied() {
                    Some(city) if divisions_has_area(divisions, area) => {
                        match self.add(endpoint.id, &endpoint.name, Some(city)) {
                            Some(_) => continue,
                            None => NetworkProblem::Duplicate(endpoint.id),
                        }
                    }
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

    fn finish(
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

fn divisions_has_area(divisions: &Divisions, area: DivisionCode) -> bool {
    divisions
        .areas
        .binary_search_by_key(&area, |a| a.code)
        .is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn national() -> Network {
        Network::national().unwrap()
    }

    fn ix(network: &Network, id: &str) -> NodeIx {
        network.lookup(&id.parse().unwrap()).unwrap()
    }

    #[test]
    fn the_national_census_follows_the_division_data() {
        let census = national().census();
        assert_eq!(census.provinces, 31);
        assert_eq!(census.municipalities, 4);
        // 342 city rows − 5 municipality rows − 4 county groups + 32 county-level cities.
        assert_eq!(census.cities, 365);
        // 2,978 areas − the 32 county-level cities that are city nodes themselves.
        assert_eq!(census.district_offices, 2_946);
        assert_eq!(census.street_offices, 41_352);
        assert_eq!(census.dr_sites, 3);
        assert_eq!(census.endpoint_total(), 7);
        let links = |level| census.links.iter().find(|(l, _)| *l == level).unwrap().1;
        assert_eq!(links(LinkLevel::Backbone), 31);
        assert_eq!(links(LinkLevel::Provincial), 365);
        assert_eq!(links(LinkLevel::CityArea), census.sites());
        assert_eq!(links(LinkLevel::DisasterRecovery), 3);
    }

    #[test]
    fn municipalities_and_county_groups_take_their_documented_shape() {
        let network = national();
        let beijing = ix(&network, "dc:11");
        assert!(network.node(beijing).municipality);
        assert!(network.lookup(&"dc:1101".parse().unwrap()).is_none());
        let dongcheng = ix(&network, "site:110101");
        assert_eq!(network.parent(dongcheng), Some(beijing));
        assert_eq!(
            network.link(network.uplink(beijing).unwrap()).level,
            LinkLevel::Backbone
        );
        // Chongqing's 市辖区 (5001) and 县 (5002) both hang below dc:50.
        let chongqing = ix(&network, "dc:50");
        assert_eq!(network.parent(ix(&network, "site:500229")), Some(chongqing));

        let jiyuan = ix(&network, "dc:419001");
        assert_eq!(network.node(jiyuan).tier, Tier::City);
        assert_eq!(network.parent(jiyuan), Some(ix(&network, "dc:41")));
        assert!(network.lookup(&"site:419001".parse().unwrap()).is_none());
        let street = network.children(jiyuan)[0];
        assert_eq!(network.node(street).id.code().to_string().len(), 9);
    }

    #[test]
    fn relations_and_paths_follow_the_tree() {
        let network = national();
        let street = ix(&network, "site:140105001");
        let window = ix(&network, "site:140105:window-01");
        let taiyuan = ix(&network, "dc:1401");
        let datong = ix(&network, "dc:1402");
        let shanxi = ix(&network, "dc:14");
        let ministry = network.ministry();
        let guangzhou = ix(&network, "dc:4401");
        assert_eq!(network.relation(street, street), Relation::Same);
        assert_eq!(network.relation(street, taiyuan), Relation::Parent);
        assert_eq!(network.relation(taiyuan, street), Relation::Child);
        assert_eq!(network.relation(street, shanxi), Relation::Ancestor);
        assert_eq!(network.relation(ministry, street), Relation::Descendant);
        assert_eq!(network.relation(street, window), Relation::Sibling);
        assert_eq!(network.relation(taiyuan, datong), Relation::Sibling);
        assert_eq!(network.relation(taiyuan, guangzhou), Relation::Unrelated);

        let hops = |a, b| -> Vec<(NodeIx, NodeIx)> {
            network
                .path(a, b)
                .iter()
                .map(|&l| (network.link(l).upper, network.link(l).lower))
                .collect()
        };
        assert_eq!(
            hops(street, guangzhou),
            vec![
                (taiyuan, street),
                (shanxi, taiyuan),
                (ministry, shanxi),
                (ministry, ix(&network, "dc:44")),
                (ix(&network, "dc:44"), guangzhou),
            ]
        );
        assert_eq!(
            hops(street, window),
            vec![(taiyuan, street), (taiyuan, window)]
        );
        assert!(hops(taiyuan, taiyuan).is_empty());
    }

    #[test]
    fn children_are_ordered_for_addressing() {
        let network = national();
        let kinds: Vec<NodeKind> = network
            .children(ix(&network, "dc:14"))
            .iter()
            .map(|&c| network.node(c).kind())
            .collect();
        assert_eq!(kinds[0], NodeKind::DisasterRecovery);
        assert!(kinds[1..].iter().all(|k| *k == NodeKind::DataCentre));
        let taiyuan = network.children(ix(&network, "dc:1401"));
        let last = network.node(*taiyuan.last().unwrap());
        assert!(
            matches!(last.kind(), NodeKind::Endpoint(_)),
            "{:?}",
            last.id
        );
        assert_eq!(network.preorder().len(), network.nodes().len());
    }

    #[test]
    fn a_broken_network_file_reports_every_problem_with_its_line() {
        let divisions = Divisions::embedded().unwrap();
        let head = EMBEDDED_NETWORK_FILE
            .split("# Disaster-recovery sites")
            .next()
            .unwrap();
        let head_lines = head.lines().count();
        let text = format!(
            "{head}\
[[dr-sites]]
of = \"dc:1401\"
name = \"x\"

[[endpoints]]
id = \"site:999999:window-01\"
name = \"nowhere\"

[[endpoints]]
id = \"site:140105\"
name = \"not an endpoint\"

[[link-overrides]]
node = \"dc:ministry\"
capacity = \"1 Gbit/s\"

[[lateral-links]]
a = \"dc:1401\"
b = \"dc:14\"
capacity = \"1 Gbit/s\"
cost = 1
primary = {{ carrier = \"x\", circuit = \"fibre\" }}
"
        );
        let source = SourceText::new("net.toml", &text);
        let problems = Network::build(&divisions, &source).unwrap_err();
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expected = [
            (1, "disaster-recovery sites attach"),
            (5, "endpoint site:999999:window-01: county 999999"),
            (9, "site:140105 is not an endpoint id"),
            (13, "dc:ministry has no uplink"),
            (17, "lateral link dc:1401 — dc:14: the tree already"),
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (problem, (line, text)) in got.iter().zip(expected) {
            let want = format!("net.toml:{}: {text}", head_lines + line);
            assert!(problem.starts_with(&want), "want {want}, got {got:#?}");
        }
    }

    #[test]
    fn a_network_file_of_the_wrong_shape_names_the_line() {
        let divisions = Divisions::embedded().unwrap();
        let text = EMBEDDED_NETWORK_FILE.replace("cost = 20", "cost = \"twenty\"");
        let line = text.lines().position(|l| l.contains("twenty")).unwrap() + 1;
        let problems = Network::build(&divisions, &SourceText::new("n.toml", &text)).unwrap_err();
        assert_eq!(problems.0.len(), 1);
        assert_eq!(problems.0[0].location.line, line, "{problems}");
    }
}
