//! The per-node agent of Jinbao WAN: the overlay data plane that builds the
//! ministry–province–city tunnels and enforces isolation on every packet.
//!
//! - [`node`]: the sans-IO core — one instance per plane, one boringtun `Tunn` per peer,
//!   routing on the tree ([`route`]), the stateful default-deny zone filter ([`filter`], over
//!   the shared [`model`]), in-tunnel link probes and uplink failover ([`probe`]), and
//!   Noise-authenticated underlay path probes ([`pathprobe`]). Time and bytes in, actions out.
//! - [`runtime`]: the thin tokio driver over UDP and an in-memory interface.
//! - `tun` (Linux): TUN mode — a kernel device per plane with the node's zone addresses and
//!   a route for the plane, pumped to and from the runtime's interface.
//! - [`control`]: the config bundle the agent runs from (the controller will push it) and the
//!   status it reports; [`metrics`] and [`show`] render that status.
//! - [`identity`]: the node's keys and certificate requests.

pub mod client;
pub mod control;
pub mod filter;
pub mod follow;
pub mod identity;
pub mod metrics;
pub mod model;
pub mod node;
pub mod pathprobe;
pub mod probe;
pub mod route;
pub mod runtime;
pub mod show;
#[cfg(target_os = "linux")]
pub mod tun;
