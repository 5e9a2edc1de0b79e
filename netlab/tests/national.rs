//! The national lab converges: every province and city data centre enrolls with a one-time
//! token, every tree tunnel comes up, and a probe from every city reaches the ministry's
//! exchange zone — real certificates, real enrollment, real WireGuard over the emulated
//! underlay. A full isolation audit, live through the agents, passes. Then the faults: a backbone primary cut fails over to the backup, and the
//! agents keep forwarding while the controller is down and take its bundles again after.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use agent::control::{ModelSources, PathChoice};
use agent::model::Model;
use netlab::lab::{Lab, LabOptions, LabTopology, Scratch, syn};
use rustls_pki_types::pem::PemObject;
use topology::{NodeId, Tier, Zone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_lab_converges_fails_over_and_outlives_its_controller() {
    let model = Model::load(&ModelSources::default()).unwrap();
    let topology = LabTopology::national(&model);
    let cities: Vec<NodeId> = topology
        .nodes
        .iter()
        .copied()
        .filter(|n| model.network.node(model.network.lookup(n).unwrap()).tier == Tier::City)
        .collect();
    assert!(topology.nodes.len() > 370, "{}", topology.nodes.len());
    let work = Scratch::new("national");
    let started = Instant::now();
    let mut lab = Lab::start(&topology, LabOptions::new(work.path()), |_| {})
        .await
        .unwrap();
    let enrolled = started.elapsed();
    let total = lab.links().len();
    let converged = lab
        .run_until_done(Duration::from_secs(60), |lab| lab.tunnels_up().0 == total)
        .await;
    assert!(
        converged.is_some(),
        "tunnels up: {:?} after 60 s; down: {:#?}",
        lab.tunnels_up(),
        lab.links_down()
    );
    println!(
        "national: {} nodes enrolled in {enrolled:?}, {total} tree tunnels up {:?} later",
        topology.nodes.len(),
        converged.unwrap()
    );

    // A probe from every city reaches the ministry's exchange zone.
    let ministry: NodeId = "dc:ministry".parse().unwrap();
    let to = lab.address(ministry, Zone::Exchange).unwrap();
    let mut sent = Vec::new();
    for &city in &cities {
        let packet = syn(lab.address(city, Zone::Exchange).unwrap(), to, 1414);
        lab.inject(city, &packet).unwrap();
        sent.push(packet);
    }
    lab.run_until_done(Duration::from_secs(10), |lab| {
        sent.iter().all(|p| lab.has_delivered(ministry, p))
    })
    .await;
    let missing: Vec<_> = cities
        .iter()
        .zip(&sent)
        .filter(|(_, p)| !lab.has_delivered(ministry, p))
        .map(|(c, _)| c.to_string())
        .collect();
    assert!(missing.is_empty(), "no probe arrived from {missing:?}");

    // A full isolation audit, static and live through the agents: no findings, every
    // probe sent, what arrived exactly what the policy allows, and the report verifies
    // with the root certificate alone.
    let controller = lab.running_controller().unwrap();
    let run = controller::server::audits::AuditRun {
        live: true,
        extra_pairs: 20,
        by: "netlab".into(),
        policy: None,
    };
    let audit = tokio::spawn(controller::server::audits::run_audit(controller, run));
    let begun = Instant::now();
    while !audit.is_finished() {
        lab.run_for(Duration::from_millis(100)).await;
    }
    let (report, path) = audit.await.unwrap().unwrap();
    let summary = report.live_summary.clone().unwrap();
    println!(
        "national audit in {:.1?}: {}",
        begun.elapsed(),
        report.coverage
    );
    assert_eq!(report.findings, Vec::new(), "{:#?}", report.findings);
    assert!(summary.silent_sources.is_empty(), "{summary:?}");
    assert_eq!(
        (summary.sent, summary.arrived),
        (summary.flows, summary.predicted_allowed)
    );
    assert!(summary.flows > 100, "{summary:?}");
    let root = std::fs::read(lab.controller_dir().join("ca/root.pem")).unwrap();
    let root = rustls_pki_types::CertificateDer::from_pem_slice(&root).unwrap();
    let signed =
        controller::audit::SignedReport::parse("report", &std::fs::read_to_string(&path).unwrap())
            .unwrap();
    assert!(
        signed.open(&root).unwrap() == report,
        "the kept report verifies"
    );

    // A backbone primary cut: Shanxi's uplink moves to its backup within a second.
    let shanxi: NodeId = "dc:14".parse().unwrap();
    lab.set_path(shanxi, PathChoice::Primary, false).unwrap();
    let failover = lab
        .run_until_done(Duration::from_secs(5), |lab| {
            lab.uplink(shanxi)
                .is_some_and(|(path, _)| path == PathChoice::Backup)
        })
        .await;
    assert!(
        failover.is_some_and(|t| t < Duration::from_secs(1)),
        "failover took {failover:?}"
    );
    let taiyuan: NodeId = "dc:1401".parse().unwrap();
    assert!(
        lab.probe(
            (taiyuan, Zone::Exchange),
            (ministry, Zone::Exchange),
            443,
            Duration::from_secs(3)
        )
        .await
        .unwrap(),
        "traffic crosses the backup path"
    );

    // The controller goes away: traffic still flows.
    lab.kill_controller().await;
    assert!(
        lab.probe(
            (taiyuan, Zone::Exchange),
            (ministry, Zone::Exchange),
            1414,
            Duration::from_secs(3)
        )
        .await
        .unwrap(),
        "agents forward while the controller is down"
    );
    // The controller comes back: every agent resynchronises (follows it and reports).
    lab.restart_controller().await.unwrap();
    let nodes = lab.nodes().count();
    let resynced = lab
        .run_until_done(Duration::from_secs(20), |lab| {
            lab.reporting_agents() == nodes
        })
        .await;
    assert!(
        resynced.is_some(),
        "{} of {nodes} agents report to the restarted controller",
        lab.reporting_agents()
    );
    lab.stop().await;
}
