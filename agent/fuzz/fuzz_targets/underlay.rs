//! The agent's underlay input path: any datagram, to a node that has peers and sessions.
//! `cargo +nightly fuzz run underlay` from agent/ (the proptest in
//! agent/tests/untrusted_underlay.rs runs the same path in CI).
#![no_main]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use agent::control::ProbeSettings;
use agent::node::{Node, Output, Outputs};
use common::{CITY, Lab, PLANE, PROVINCE};
use libfuzzer_sys::fuzz_target;

struct Target {
    province: Node,
    local: std::net::SocketAddr,
    from: std::net::SocketAddr,
}

fn target() -> &'static Mutex<Target> {
    static TARGET: OnceLock<Mutex<Target>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let lab = Lab::new(45_000);
        let province = Node::new(
            &lab.bundle(PROVINCE, ProbeSettings::default(), false),
            &lab.keys(PROVINCE),
            lab.model.clone(),
            Instant::now(),
            SystemTime::now(),
        )
        .unwrap();
        Mutex::new(Target {
            province,
            local: lab.member(PROVINCE).listen,
            from: lab.member(CITY).listen,
        })
    })
}

fuzz_target!(|datagram: &[u8]| {
    let mut target = target().lock().unwrap();
    let (local, from) = (target.local, target.from);
    let mut out = Outputs::new();
    target
        .province
        .handle_datagram(Instant::now(), PLANE, local, from, datagram, &mut out);
    assert!(!out.iter().any(|o| matches!(o, Output::Deliver { .. })));
});
