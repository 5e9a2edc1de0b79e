//! Three agents — ministry, Shanxi, Taiyuan — over real UDP on 127.0.0.1 with the tokio
//! runtime: allowed zone pairs pass through the province, denied ones are dropped, and the
//! counters say so.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use agent::control::{PeerHealth, ProbeSettings, Status};
use agent::node::Node;
use agent::runtime::{self, Running};
use common::{CITY, Lab, MINISTRY, PLANE, PROVINCE, packet};
use topology::Zone;

async fn start(lab: &Lab, name: &str) -> Running {
    let bundle = lab.bundle(name, ProbeSettings::default(), false);
    let node = Node::new(
        &bundle,
        &lab.keys(name),
        lab.model.clone(),
        Instant::now(),
        SystemTime::now(),
    )
    .unwrap();
    runtime::start(node, &[]).await.unwrap()
}

async fn wait_for(running: &mut Running, what: &str, done: impl Fn(&Status) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&running.status.borrow()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            *running.status.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_up(status: &Status) -> bool {
    status
        .planes
        .iter()
        .all(|p| !p.peers.is_empty() && p.peers.iter().all(|peer| peer.health == PeerHealth::Up))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_pass_allowed_zone_pairs_and_drop_denied_ones() {
    let lab = Lab::new(42_000);
    let mut ministry = start(&lab, MINISTRY).await;
    let mut province = start(&lab, PROVINCE).await;
    let mut city = start(&lab, CITY).await;
    for (running, name) in [
        (&mut ministry, MINISTRY),
        (&mut province, PROVINCE),
        (&mut city, CITY),
    ] {
        wait_for(running, &format!("{name}'s peers up"), all_up).await;
    }

    let (city_exchange, ministry_exchange) = (
        lab.address(CITY, Zone::Exchange),
        lab.address(MINISTRY, Zone::Exchange),
    );
    let allowed = packet(city_exchange, ministry_exchange, 6, 1414, true);
    city.interface
        .send
        .send((PLANE, allowed.clone()))
        .await
        .unwrap();
    let (plane, arrived) =
        tokio::time::timeout(Duration::from_secs(5), ministry.interface.received.recv())
            .await
            .expect("the allowed packet arrived in time")
            .unwrap();
    assert_eq!((plane, arrived), (PLANE, allowed));

    let denied = packet(
        lab.address(CITY, Zone::Production),
        ministry_exchange,
        6,
        1414,
        true,
    );
    city.interface.send.send((PLANE, denied)).await.unwrap();
    let nothing = tokio::time::timeout(
        Duration::from_millis(500),
        ministry.interface.received.recv(),
    )
    .await;
    assert!(nothing.is_err(), "a denied packet arrived: {nothing:?}");

    wait_for(&mut city, "the city's deny counter", |s| {
        s.planes[0].default_denied == 1
    })
    .await;
    wait_for(&mut province, "the province's rule counter", |s| {
        s.planes[0]
            .rules
            .iter()
            .any(|r| r.rule.contains("exchange-up") && r.allowed_flows == 1)
    })
    .await;
    let province_status = province.status.borrow().clone();
    let city_peer = province_status.planes[0]
        .peers
        .iter()
        .find(|p| p.node.to_string() == CITY)
        .unwrap();
    assert!(city_peer.rx_bytes > 0 && city_peer.handshake_age.is_some());
    assert_eq!(
        province_status.planes[0].default_denied, 0,
        "the denied flow never left the city"
    );

    for running in [ministry, province, city] {
        running.stop().await;
    }
}
