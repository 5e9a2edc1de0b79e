//! The Jinbao WAN lab — not built yet.
//!
//! This crate will run a controller and many agents in one process over an emulated
//! underlay (delay, jitter, loss, rate, up/down per link) or in network namespaces with real
//! TUN devices, drive scenario files with fault timelines, and provide `netlab demo`, the
//! first command a new user runs. See issue 6.
