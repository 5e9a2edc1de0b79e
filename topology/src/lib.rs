//! The shared vocabulary and the national model of Jinbao WAN.
//!
//! Everything here is pure: division codes in, nodes, links, address blocks and policy
//! verdicts out. The crate does no I/O beyond the files it is handed as text, and reads no
//! clock. Every other crate names planes, zones, tiers and nodes with the types defined here.
//!
//! - [`vocabulary`]: planes (三网), zones (三区), tiers, endpoint kinds, capacities.
//! - [`division`]: the GB/T 2260 division codes the network is built from (embedded).
//! - [`node`], [`link`], [`network`]: the tree ministry → province → city → site.
//! - [`plan`]: the IP plan — every address derived from division codes, and the IP
//!   registration check of hand-assigned devices.
//! - [`policy`]: zone-to-zone allow rules, the invariants no rule may break, and static
//!   reachability.
//!
//! Promise: the same inputs give the same nodes, blocks and verdicts, in the same order, on
//! every run and machine.

pub mod division;
pub mod link;
pub mod network;
pub mod node;
pub mod source;
pub mod vocabulary;

pub use division::{DivisionCode, DivisionLevel, DivisionProblem, Divisions};
pub use link::{Circuit, Link, LinkIx, LinkLevel, Underlay};
pub use network::{Census, Network, NetworkError, NetworkProblem, Relation};
pub use node::{BadNodeId, Node, NodeId, NodeIx, NodeKind};
pub use source::{Located, Location, Problems, SourceText};
pub use vocabulary::{EndpointKind, Kbps, Plane, Tier, UnknownWord, Zone, ZoneRef};
pub mod plan;
pub use plan::{Allocation, Plan, PlanProblem, PlaneLayout};
pub mod policy;
pub use policy::{Policy, PolicyProblem};
