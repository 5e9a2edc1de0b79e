//! A three-node lab (ministry, Shanxi, Taiyuan): fast checks of the lab's own machinery —
//! enrollment, convergence, a primary cut and failover, a node restart, the controller
//! going away.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::Duration;

use agent::control::{ModelSources, PathChoice};
use agent::model::Model;
use netlab::lab::{Lab, LabOptions, LabTopology, Scratch};
use topology::{NodeId, Zone};

fn id(text: &str) -> NodeId {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_primary_fails_over_to_the_backup_and_back() {
    let model = Model::load(&ModelSources::default()).unwrap();
    let topology = LabTopology::tree(&model, vec![id("dc:ministry"), id("dc:14"), id("dc:1401")]);
    let work = Scratch::new("small");
    let mut lab = Lab::start(&topology, LabOptions::new(work.path()), |_| {})
        .await
        .unwrap();
    let converged = lab
        .run_until_done(Duration::from_secs(20), |lab| lab.tunnels_up().0 == 2)
        .await;
    assert!(converged.is_some(), "{:#?}", lab.links_down());
    // The backup path's probes must have answered before it may carry traffic.
    lab.run_for(Duration::from_millis(1500)).await;
    assert_eq!(
        lab.uplink(id("dc:14")).map(|(path, _)| path),
        Some(PathChoice::Primary)
    );
    lab.set_path(id("dc:14"), PathChoice::Primary, false)
        .unwrap();
    let failover = lab
        .run_until_done(Duration::from_secs(3), |lab| {
            lab.uplink(id("dc:14"))
                .is_some_and(|(path, _)| path == PathChoice::Backup)
        })
        .await;
    assert!(
        failover.is_some_and(|t| t < Duration::from_secs(1)),
        "failover took {failover:?}: {:?}",
        lab.events()
    );
    assert!(
        lab.probe(
            (id("dc:1401"), Zone::Exchange),
            (id("dc:ministry"), Zone::Exchange),
            1414,
            Duration::from_secs(2)
        )
        .await
        .unwrap(),
        "traffic crosses the backup path"
    );
    // Restored: back on the primary after the hold-down (2 s in the lab).
    lab.set_path(id("dc:14"), PathChoice::Primary, true)
        .unwrap();
    let failback = lab
        .run_until_done(Duration::from_secs(6), |lab| {
            lab.uplink(id("dc:14"))
                .is_some_and(|(path, _)| path == PathChoice::Primary)
        })
        .await;
    assert!(
        failback.is_some_and(|t| t >= Duration::from_secs(2)),
        "failback after {failback:?}: the hold-down protects a working backup"
    );
    // A node restarted from its last good bundle joins again; with the controller down too.
    lab.kill_controller().await;
    lab.kill_node(id("dc:1401")).unwrap();
    lab.restart_node(id("dc:1401")).unwrap();
    assert!(
        lab.probe(
            (id("dc:1401"), Zone::Exchange),
            (id("dc:ministry"), Zone::Exchange),
            1414,
            Duration::from_secs(5)
        )
        .await
        .unwrap(),
        "a restarted node forwards on its last good bundle while the controller is down"
    );
    lab.restart_controller().await.unwrap();
    lab.stop().await;
}
