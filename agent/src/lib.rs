//! The per-node agent of Jinbao WAN — not built yet.
//!
//! This crate will hold a sans-IO node core (one boringtun `Tunn` per peer, routing on the
//! tree, a stateful default-deny zone filter, in-tunnel and underlay link probes) driven by a
//! thin tokio runtime over UDP and TUN or netlab's emulated underlay, plus the control
//! protocol types (`agent::control`) shared with the controller. See issue 4.
