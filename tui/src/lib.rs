//! The NOC terminal dashboard of Jinbao WAN (`jinbao-tui`) — not built yet.
//!
//! This crate will hold a ratatui front end over the controller's admin API: the tree with
//! link health, link detail with history, alerts, conference timeline, isolation audit and
//! certificate expiry, all keyboard-driven. See issue 8.
