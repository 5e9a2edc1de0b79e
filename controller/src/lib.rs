//! The Jinbao WAN controller: it turns topology, plan, policy and certificates into running
//! agents, and gathers what they see.
//!
//! - [`store`]: the durable SQLite store (nodes, tokens, certificates, config versions,
//!   alerts, operators, the hash-chained change log).
//! - [`health`], [`alerts`], [`census`]: link health with bounded history, alert rules, the
//!   connectivity census — sans-IO, time passed in.
//! - [`conference`]: video-conference scheduling — booking forms, states, MCU cascades on
//!   the tree, admission control over time with refusals that explain themselves, preemption
//!   (sans-IO); [`bookings`]: the scheduler kept in step with the store.
//! - [`snmp`]: polling underlay devices (IF-MIB counters into rates).
//! - [`metrics`]: the controller's Prometheus exposition.
//! - [`bundles`], [`server`]: config bundles per agent, and the HTTPS (mutual TLS) service for
//!   agents and operators.
//!
//! The `jinbao-controller` command line (plan, policy, CAs, serve) is the binary.

pub mod alerts;
pub mod audit;
pub mod bookings;
pub mod bundles;
pub mod census;
pub mod conference;
pub mod health;
pub mod metrics;
pub mod server;
pub mod setup;
pub mod snmp;
pub mod store;
