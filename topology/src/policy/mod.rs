//! The zone policy: allow rules between zones, the invariants no rule can break, and the
//! policy's own tests.
//!
//! Default deny. A rule allows flows from one zone to another where the destination node
//! stands in a given relation to the source (its scope), for a protocol and ports, and
//! optionally only between given tiers. Three invariants are checked on every load,
//! whatever the rules say: nothing crosses planes; city-area sites never reach each other;
//! the public plane never reaches production. The only crossing between planes is a
//! same-site soft-exchange gateway between the business and office planes, declared as
//! such — an application relay, never a route.
//!
//! [`Policy::decide`] answers "can A, zone X reach B, zone Y on proto/port?" from the
//! topology and the policy alone; see [`reach`].

mod invariants;
pub mod reach;

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::network::{Network, Relation};
use crate::node::{Node, NodeId};
use crate::plan::Allocation;
use crate::source::{Located, Location, Problems, SourceText};
use crate::vocabulary::{Plane, Tier, Zone, ZoneRef, vocabulary};
use invariants::{Names, PolicyFile, check_entries, check_rule, check_soft_exchange};

pub use reach::{Denial, Query, Verdict};

/// The embedded national policy, also shipped as `topology/defaults/policy.toml`.
pub const EMBEDDED_POLICY: &str = include_str!("../../defaults/policy.toml");

vocabulary! {
    /// How the destination node of a flow must stand to its source node.
    Scope, "scope" {
        /// The same node.
        SameSite = "same-site",
        /// The source's parent.
        Parent = "parent",
        /// One of the source's children.
        Child = "child",
        /// Any ancestor of the source, parent included.
        AnyAncestor = "any-ancestor",
        /// Any descendant of the source, children included.
        AnyDescendant = "any-descendant",
        /// Another child of the source's parent (lateral: use with care).
        Sibling = "sibling",
        /// Any node at all (lateral: use with care).
        Any = "any",
    }
}

impl Scope {
    /// Whether a pair of nodes in `relation` is within this scope.
    pub fn admits(self, relation: Relation) -> bool {
        match self {
            Scope::SameSite => relation == Relation::Same,
            Scope::Parent => relation == Relation::Parent,
            Scope::Child => relation == Relation::Child,
            Scope::AnyAncestor => matches!(relation, Relation::Parent | Relation::Ancestor),
            Scope::AnyDescendant => matches!(relation, Relation::Child | Relation::Descendant),
            Scope::Sibling => relation == Relation::Sibling,
            Scope::Any => true,
        }
    }

    /// Whether the scope can join two different nodes of the same tier that are not in a
    /// line of descent (two sites, two cities).
    fn is_lateral(self) -> bool {
        matches!(self, Scope::Sibling | Scope::Any)
    }
}

vocabulary! {
    /// A transport protocol of a rule or query.
    Proto, "protocol" {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
        /// ICMP (no ports).
        Icmp = "icmp",
        /// Any protocol (rules only; no ports).
        Any = "any",
    }
}

impl Proto {
    fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp)
    }
}

/// A port or an inclusive range of ports: `443` or `"8000-8099"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port, inclusive.
    pub last: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad port or range `{s}` (expected 1–65535 or FIRST-LAST)");
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(bad)
        };
        let (first, last) = match s.split_once('-') {
            Some((first, last)) => (port(first)?, port(last)?),
            None => (port(s)?, port(s)?),
        };
        if first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(i64),
            Text(String),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Number(n) => n.to_string(),
            Written::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The protocol and ports of a rule, as `tcp/443,1414`, `icmp` or `any`.
fn service_text(proto: Proto, ports: &[PortRange]) -> String {
    if ports.is_empty() {
        proto.to_string()
    } else {
        let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
        format!("{proto}/{}", ports.join(","))
    }
}

/// Whether a rule's protocol and ports cover a query's.
fn service_covers(proto: Proto, ports: &[PortRange], want: Proto, port: Option<u16>) -> bool {
    let proto_ok = proto == Proto::Any || proto == want;
    let port_ok = ports.is_empty() || port.is_some_and(|p| ports.iter().any(|r| r.contains(p)));
    proto_ok && port_ok
}

/// An allow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name, unique in the policy.
    pub name: String,
    /// Where it was written.
    pub location: Location,
    /// The source zone.
    pub from: ZoneRef,
    /// The destination zone.
    pub to: ZoneRef,
    /// The planes it applies on: those where both zones exist.
    pub planes: Vec<Plane>,
    /// How the destination must stand to the source.
    pub scope: Scope,
    /// Tiers the source must stand at; empty for any.
    pub from_tiers: Vec<Tier>,
    /// Tiers the destination must stand at; empty for any.
    pub to_tiers: Vec<Tier>,
    /// Protocol.
    pub proto: Proto,
    /// Ports; empty for all (and always for icmp and any).
    pub ports: Vec<PortRange>,
}

impl Rule {
    /// The protocol and ports, as `tcp/443,1414`.
    pub fn service(&self) -> String {
        service_text(self.proto, &self.ports)
    }

    /// Whether the rule covers a protocol and port.
    pub fn covers(&self, proto: Proto, port: Option<u16>) -> bool {
        service_covers(self.proto, &self.ports, proto, port)
    }

    /// Whether the tier filters admit this pair of nodes.
    pub fn admits_tiers(&self, from: &Node, to: &Node) -> bool {
        let admits = |tiers: &[Tier], node: &Node| {
            tiers.is_empty() || tiers.iter().any(|&tier| node.stands_at(tier))
        };
        admits(&self.from_tiers, from) && admits(&self.to_tiers, to)
    }

    fn admits_tier(tiers: &[Tier], tier: Tier) -> bool {
        tiers.is_empty() || tiers.contains(&tier)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule '{}' ({})", self.name, self.location)
    }
}

/// A soft-exchange gateway: the one sanctioned crossing between the business and office
/// planes, an application relay at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftExchange {
    /// Its name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
    /// The plane and zone data is relayed from.
    pub from: (Plane, Zone),
    /// The plane and zone data is relayed to.
    pub to: (Plane, Zone),
    /// Protocol of the relayed service.
    pub proto: Proto,
    /// Ports of the relayed service.
    pub ports: Vec<PortRange>,
}

impl fmt::Display for SoftExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "soft-exchange gateway '{}' ({})",
            self.name, self.location
        )
    }
}

impl SoftExchange {
    /// Whether this gateway relays the given crossing and service.
    pub fn relays(
        &self,
        from: (Plane, Zone),
        to: (Plane, Zone),
        proto: Proto,
        port: Option<u16>,
    ) -> bool {
        self.from == from && self.to == to && service_covers(self.proto, &self.ports, proto, port)
    }

    /// The protocol and ports, as `tcp/443`.
    pub fn service(&self) -> String {
        service_text(self.proto, &self.ports)
    }
}

/// A node and a zone in a test or query: `dc:1401/exchange`, `dc:1401/public:exchange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneEndpoint {
    /// The node.
    pub node: NodeId,
    /// The zone, optionally with its plane.
    pub zone: ZoneRef,
}

impl FromStr for ZoneEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, zone) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not NODE/ZONE (e.g. dc:1401/exchange)"))?;
        Ok(ZoneEndpoint {
            node: node.parse().map_err(|e: crate::BadNodeId| e.to_string())?,
            zone: zone
                .parse()
                .map_err(|e: crate::UnknownWord| e.to_string())?,
        })
    }
}

impl fmt::Display for ZoneEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.zone)
    }
}

impl<'de> Deserialize<'de> for ZoneEndpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

vocabulary! {
    /// What a policy test expects.
    Expect, "expectation" {
        /// The flow must be allowed.
        Allow = "allow",
        /// The flow must be denied.
        Deny = "deny",
    }
}

/// A test the policy carries: a flow and whether it must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTest {
    /// Its name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
    /// Source node and zone.
    pub from: ZoneEndpoint,
    /// Destination node and zone.
    pub to: ZoneEndpoint,
    /// Protocol.
    pub proto: Proto,
    /// Port, for tcp and udp.
    pub port: Option<u16>,
    /// The expected outcome.
    pub expect: Expect,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// Not TOML, or not the shape of a policy.
    #[error("{0}")]
    Syntax(String),
    /// A version this build does not read.
    #[error("policy version {0} is not supported (this build reads version 1)")]
    Version(u32),
    /// A name used twice.
    #[error("{what} '{name}' is declared twice (first on line {first_line})")]
    DuplicateName {
        /// `rule`, `test` or `soft-exchange`.
        what: &'static str,
        /// The name.
        name: String,
        /// Line of the first declaration.
        first_line: usize,
    },
    /// A zone written on a plane where it does not exist.
    #[error("{what} '{name}': zone {zone} does not exist on the {plane} plane")]
    ZoneNotOnPlane {
        /// `rule` or `soft-exchange`.
        what: &'static str,
        /// The name.
        name: String,
        /// The zone.
        zone: Zone,
        /// The plane.
        plane: Plane,
    },
    /// A rule between zones with no plane in common.
    #[error(
        "rule '{rule}' crosses planes: {from} → {to} (planes are never bridged; the only crossing is a [[soft-exchange]] gateway between business and office)"
    )]
    CrossesPlanes {
        /// The rule.
        rule: String,
        /// Its source zone.
        from: String,
        /// Its destination zone.
        to: String,
    },
    /// A rule that would let city-area sites reach each other.
    #[error(
        "rule '{rule}' lets city-area sites reach each other (scope {scope} with sites on both ends); sites never reach each other — restrict from-tiers or to-tiers"
    )]
    SitesReachEachOther {
        /// The rule.
        rule: String,
        /// Its scope.
        scope: Scope,
    },
    /// A rule or gateway from the public plane into production.
    #[error("{what} '{name}' lets the public plane reach production, which it never may")]
    PublicReachesProduction {
        /// `rule` or `soft-exchange`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Ports on a protocol that has none.
    #[error("{what} '{name}': ports apply only to tcp and udp, not {proto}")]
    PortsWithoutProtocol {
        /// `rule`, `soft-exchange` or `test`.
        what: &'static str,
        /// The name.
        name: String,
        /// The protocol.
        proto: Proto,
    },
    /// A soft-exchange gateway that is not between the business and office planes.
    #[error("soft-exchange '{name}': {why}")]
    BadSoftExchange {
        /// The name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A test naming a node that does not exist.
    #[error("test '{test}': no node {node} in the network")]
    TestUnknownNode {
        /// The test.
        test: String,
        /// The node.
        node: NodeId,
    },
    /// A test whose flow did not get the expected verdict.
    #[error("test '{test}' failed: {from} → {to} {service}: expected {expect}, but {got}")]
    TestFailed {
        /// The test.
        test: String,
        /// Source.
        from: ZoneEndpoint,
        /// Destination.
        to: ZoneEndpoint,
        /// Protocol and port.
        service: String,
        /// What the test expects.
        expect: Expect,
        /// The verdict, explained.
        got: String,
    },
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from.
    pub origin: String,
    rules: Vec<Rule>,
    soft_exchanges: Vec<SoftExchange>,
    tests: Vec<PolicyTest>,
}

impl Policy {
    /// The embedded national policy, checked against its invariants (not yet its tests).
    pub fn embedded() -> Result<Policy, Problems<PolicyProblem>> {
        Policy::parse(&SourceText::new("embedded/policy.toml", EMBEDDED_POLICY))
    }

    /// Reads a policy and checks every rule against the invariants; reports every problem.
    ///
    /// The policy's own tests need the network and run in [`Policy::run_tests`];
    /// [`Policy::load`] does both.
    pub fn parse(source: &SourceText<'_>) -> Result<Policy, Problems<PolicyProblem>> {
        let file: PolicyFile = source
            .parse_toml()
            .map_err(|e| Problems(vec![e.map(PolicyProblem::Syntax)]))?;
        let mut problems = Vec::new();
        if *file.version.get_ref() != 1 {
            problems.push(Located {
                location: source.locate_span(&file.version.span()),
                value: PolicyProblem::Version(*file.version.get_ref()),
            });
        }
        let mut names = Names::default();
        let rules = check_entries(
            &file.rules,
            source,
            &mut problems,
            |rule, location, found| {
                names.claim("rule", &rule.name, location.line, found);
                check_rule(rule, location, found)
            },
        );
        let soft_exchanges = check_entries(
            &file.soft_exchange,
            source,
            &mut problems,
            |gateway, location, found| {
                names.claim("soft-exchange", &gateway.name, location.line, found);
                check_soft_exchange(gateway, location, found)
            },
        );
        let tests = check_entries(
            &file.tests,
            source,
            &mut problems,
            |test, location, found| {
                names.claim("test", &test.name, location.line, found);
                if test.port.is_some() && !test.proto.has_ports() {
                    found(PolicyProblem::PortsWithoutProtocol {
                        what: "test",
                        name: test.name.clone(),
                        proto: test.proto,
                    });
                    return None;
                }
                Some(PolicyTest {
                    name: test.name.clone(),
                    location,
                    from: test.from,
                    to: test.to,
                    proto: test.proto,
                    port: test.port,
                    expect: test.expect,
                })
            },
        );
        Problems(problems).into_result(Policy {
            origin: source.name().to_string(),
            rules,
            soft_exchanges,
            tests,
        })
    }

    /// Reads a policy, checks its invariants, and runs its tests on the network.
    pub fn load(
        source: &SourceText<'_>,
        network: &Network,
        allocation: &Allocation,
    ) -> Result<Policy, Problems<PolicyProblem>> {
        let policy = Policy::parse(source)?;
        policy.run_tests(network, allocation)?;
        Ok(policy)
    }

    /// This policy with `rule` added after the others, without the load-time invariant
    /// checks: for the tests of what catches a policy the checker would have refused (the
    /// isolation audit's). A policy that agents run is always one that was loaded.
    #[doc(hidden)]
    pub fn with_unchecked_rule(mut self, rule: Rule) -> Policy {
        self.rules.push(rule);
        self
    }

    /// The allow rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The soft-exchange gateways.
    pub fn soft_exchanges(&self) -> &[SoftExchange] {
        &self.soft_exchanges
    }

    /// The policy's own tests.
    pub fn tests(&self) -> &[PolicyTest] {
        &self.tests
    }

    /// Runs the policy's tests; every failing test is reported with its line.
    pub fn run_tests(
        &self,
        network: &Network,
        allocation: &Allocation,
    ) -> Result<(), Problems<PolicyProblem>> {
        let mut problems = Vec::new();
        for test in &self.tests {
            let mut found = |value| {
                problems.push(Located {
                    location: test.location.clone(),
                    value,
                })
            };
            let (Some(from), Some(to)) = (
                network.lookup(&test.from.node),
                network.lookup(&test.to.node),
            ) else {
                let node = if network.lookup(&test.from.node).is_none() {
                    test.from.node
                } else {
                    test.to.node
                };
                found(PolicyProblem::TestUnknownNode {
                    test: test.name.clone(),
                    node,
                });
                continue;
            };
            let query = Query::new(
                from,
                test.from.zone,
                to,
                test.to.zone,
                test.proto,
                test.port,
            );
            let verdict = self.decide(network, allocation, &query);
            let allowed = matches!(verdict, Verdict::Allow(_));
            if allowed != (test.expect == Expect::Allow) {
                found(PolicyProblem::TestFailed {
                    test: test.name.clone(),
                    from: test.from,
                    to: test.to,
                    service: match test.port {
                        Some(port) => format!("{}/{port}", test.proto),
                        None => test.proto.to_string(),
                    },
                    expect: test.expect,
                    got: verdict.explain(),
                });
            }
        }
        Problems(problems).into_result(())
    }
}
