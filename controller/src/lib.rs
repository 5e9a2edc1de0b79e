//! The Jinbao WAN controller.
//!
//! Today it holds the `jinbao-controller` command line over the national model (`plan …`,
//! `policy …`). It will hold the store, enrollment, config distribution, health and alerts,
//! SNMP polling, the video-conference scheduler, the isolation audit and the admin API
//! (issues 5, 7, 9).
