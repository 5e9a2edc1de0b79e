//! The Jinbao WAN lab: the whole system at national scale on one machine.
//!
//! - [`underlay`]: the emulated underlay — links with delay, jitter, loss, a rate limit and
//!   up/down state, sans-IO; [`relay`] puts real UDP sockets on 127.0.0.1 in front of it.
//! - [`scenario`]: scenario files — which nodes, which link profiles, a timeline of faults,
//!   the checks the lab verifies.
//! - [`run`]: plays a scenario on the lab — its timeline at its times, its checks verified,
//!   a report.
//! - [`kernel`]: root only — nodes in network namespaces running the real `jinbao-agent`
//!   with TUN devices and the real `jinbao-controller`, for tests of the kernel path;
//!   everything it makes is removed, on failure too.
//! - [`lab`]: one controller and many agents in one process on one tokio runtime, with real
//!   keys, certificates, enrollment and WireGuard crypto, over the emulated underlay.
//!
//! `netlab demo` (the binary) is the first thing a new user runs.

pub mod kernel;
pub mod lab;
pub mod relay;
pub mod run;
pub mod scenario;
pub mod underlay;
