//! `jinbao-tui`: the NOC's terminal dashboard over the controller's admin API.
//!
//! Built like trippy: a core that knows nothing of terminals — [`feed`] (what the
//! controller said), [`links`] (the tree and its order), [`app`] (state and keys, time
//! passed in) — and a thin front end: [`views`] draws a frame from the state, [`client`]
//! fetches over mutual TLS with an operator certificate, and the binary runs the loop. So
//! every view is snapshot-tested on ratatui's `TestBackend`, every key is tested without a
//! terminal, and a frame of the national network is benchmarked.

pub mod app;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod feed;
pub mod keys;
pub mod links;
pub mod sample;
pub mod theme;
pub mod views;

pub use app::{App, Effect, View};
pub use feed::{Feed, Names, Snapshot};
