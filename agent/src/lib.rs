//! The per-node agent of Jinbao WAN.
//!
//! Today it holds the node's identity: its keys and the certificate request it sends its CA
//! ([`identity`]). Issue 4 adds the sans-IO node core (one boringtun `Tunn` per peer, routing
//! on the tree, a stateful default-deny zone filter, in-tunnel and underlay link probes),
//! driven by a thin tokio runtime over UDP and TUN or netlab's emulated underlay, and the
//! control protocol types (`agent::control`) shared with the controller.

pub mod control;
pub mod filter;
pub mod identity;
pub mod metrics;
pub mod model;
pub mod node;
pub mod pathprobe;
pub mod probe;
pub mod route;
pub mod runtime;
pub mod show;
