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

mod build;
mod file;

use std::collections::HashMap;

use crate::DivisionProblem;
use crate::division::{DivisionCode, Divisions};
use crate::link::{Link, LinkIx, LinkLevel};
use crate::node::{Node, NodeId, NodeIx, NodeKind};
use crate::source::{Located, Problems, SourceText};
use crate::vocabulary::{EndpointKind, Tier};

use build::Builder;
pub use file::EMBEDDED as EMBEDDED_NETWORK_FILE;
use file::NetworkFile;

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
        builder.add_file(&file, source);
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
