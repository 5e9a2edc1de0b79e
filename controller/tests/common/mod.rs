//! What several of the controller's integration tests share.
// Each test binary uses its own part; harnesses drive real processes in real time and a
// harness that cannot unwrap has failed its test.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

pub mod kill_9;
pub mod served;
