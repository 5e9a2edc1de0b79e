//! The live isolation audit through real agents: the controller puts probe flows in the
//! agents' bundles, the agents send them through their filters and tunnels, and what
//! arrives is compared with what the static audit predicts.
//!
//! On a small lab (the ministry, Shanxi, two of its cities and Hebei: every pair probed)
//! the national policy passes with zero findings and every probe accounted for; a policy
//! opening production to a sibling city fails statically with a counterexample that the
//! live probe confirms; a plane-bridging rule (injected below the policy checker, as only
//! a test can) fails statically, and its live probe shows the planes do not route to each
//! other. Every report verifies with the root certificate.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use agent::control::ModelSources;
use agent::model::Model;
use controller::audit::{self, Report};
use controller::server::Controller;
use controller::server::audits::{AuditRun, run_audit};
use netlab::lab::{Lab, LabOptions, LabTopology, Scratch};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use topology::policy::{PortRange, Proto, Rule, Scope};
use topology::{Location, NodeId, Plane, Zone, ZoneRef};

fn id(text: &str) -> NodeId {
    text.parse().unwrap()
}

/// Runs `run` on the lab's controller while driving the lab; the report, verified.
async fn audit(lab: &mut Lab, run: AuditRun) -> Report {
    let controller: Arc<Controller> = lab.running_controller().unwrap();
    let task = tokio::spawn(run_audit(Arc::clone(&controller), run));
    while !task.is_finished() {
        lab.run_for(Duration::from_millis(100)).await;
    }
    let (report, path) = task.await.unwrap().unwrap();
    let root = std::fs::read(lab.controller_dir().join("ca/root.pem")).unwrap();
    let root = CertificateDer::from_pem_slice(&root).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let verified = audit::SignedReport::parse("report", &text)
        .unwrap()
        .open(&root)
        .unwrap();
    assert!(
        verified == report,
        "the kept report is the one answered, and it verifies"
    );
    report
}

fn live(by: &str) -> AuditRun {
    AuditRun {
        live: true,
        by: by.into(),
        ..AuditRun::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_probes_match_the_static_audit_and_confirm_its_counterexamples() {
    let model = Model::load(&ModelSources::default()).unwrap();
    let nodes = ["dc:ministry", "dc:14", "dc:1401", "dc:1402", "dc:13"];
    let topology = LabTopology::tree(&model, nodes.iter().map(|n| id(n)).collect());
    let work = Scratch::new("audit");
    let mut lab = Lab::start(&topology, LabOptions::new(work.path()), |_| {})
        .await
        .unwrap();
    let converged = lab
        .run_until_done(Duration::from_secs(20), |lab| lab.tunnels_up().0 == 4)
        .await;
    assert!(converged.is_some(), "{:#?}", lab.links_down());

    // The national policy: nothing found, every probe sent, what arrived is what the policy
    // allows.
    let passed = audit(&mut lab, live("netlab")).await;
    let summary = passed.live_summary.clone().unwrap();
    println!("national policy: {} — {:?}", passed.coverage, summary);
    assert!(passed.live);
    assert_eq!(passed.findings, Vec::new(), "{:#?}", passed.findings);
    assert_eq!(summary.silent_sources, Vec::<NodeId>::new());
    assert_eq!(summary.sent, summary.flows);
    assert!(
        summary.flows >= 20 * 4,
        "every ordered pair, several zones each: {summary:?}"
    );
    assert_eq!(summary.arrived, summary.predicted_allowed, "{summary:?}");
    assert!(
        summary.arrived > 0 && summary.arrived < summary.flows,
        "{summary:?}"
    );
    // The filters' denials are queryable: the denied probes left records.
    let controller = lab.running_controller().unwrap();
    let denied = {
        let observed = controller.observations.lock().unwrap();
        let query = controller::audit::live::DeniedQuery {
            to_zone: Some(Zone::Production),
            ..Default::default()
        };
        observed
            .denied(&query, None, None)
            .into_iter()
            .filter(|d| d.audit.is_some_and(|(audit, _)| audit == passed.id))
            .count()
    };
    assert!(denied > 0, "denied probes into production left records");
    // An auditor asks the API for them by node and zone pair; the NOC may not.
    let auditor = lab
        .operator("zhaolei", pki::Role::Auditor, work.path())
        .unwrap();
    let noc = lab.operator("sunqi", pki::Role::Noc, work.path()).unwrap();
    let session = |who: &netlab::lab::Operator| {
        tui::client::connect(lab.controller_addr(), &who.root, &who.certificate, &who.key).unwrap()
    };
    let path = "/v1/denied?node=dc:1402&to_zone=production&limit=5";
    let ask = |mut session: agent::client::Session| {
        let path = path.to_owned();
        tokio::spawn(async move { session.get::<serde_json::Value>(&path).await })
    };
    let answer = ask(session(&auditor));
    let refused = ask(session(&noc));
    while !(answer.is_finished() && refused.is_finished()) {
        lab.run_for(Duration::from_millis(50)).await;
    }
    let records = answer.await.unwrap().unwrap();
    let records = records.as_array().unwrap();
    assert!(!records.is_empty() && records.len() <= 5, "{records:?}");
    for record in records {
        assert_eq!(record["to"][1], "production", "{record}");
        let touches = [&record["node"], &record["from"][0], &record["to"][0]];
        assert!(touches.iter().any(|n| **n == "dc:1402"), "{record}");
    }
    assert!(
        matches!(
            refused.await.unwrap(),
            Err(agent::client::ClientError::Refused { status: 403, .. })
        ),
        "the NOC does not read denied flows"
    );

    // Production opened to a sibling city: found statically, confirmed live.
    let leaky = format!(
        "{}\n[[rules]]\nname = \"sibling-db\"\nfrom = \"exchange\"\nto = \"production\"\nscope = \"sibling\"\nfrom-tiers = [\"city\"]\nto-tiers = [\"city\"]\nproto = \"tcp\"\nports = [1521]\n",
        topology::policy::EMBEDDED_POLICY
    );
    lab.set_policy(leaky).await.unwrap();
    lab.run_for(Duration::from_secs(2)).await; // the agents take the new policy
    let leak = audit(&mut lab, live("netlab")).await;
    println!("leaky policy: {:#?}", leak.findings);
    assert_eq!(leak.findings.len(), 1, "{:#?}", leak.findings);
    let finding = &leak.findings[0];
    assert_eq!(finding.kind, "production-exposed");
    assert!(finding.rule.as_deref().unwrap().contains("sibling-db"));
    let evidence = finding.evidence.as_deref().unwrap();
    assert!(
        evidence.contains("live: confirmed") && evidence.contains("delivered by dc:140"),
        "{evidence}"
    );
    assert!(
        finding.source.starts_with("dc:140") && finding.destination.starts_with("dc:140"),
        "a sibling city of the lab: {finding:?}"
    );

    // The agents still run the leaky policy; audited against the national one, the probes
    // that get through though it denies them are the live audit's own findings.
    let strict = Model::load(&ModelSources::default())
        .unwrap()
        .policy
        .clone();
    let differs = audit(
        &mut lab,
        AuditRun {
            policy: Some(strict),
            ..live("netlab")
        },
    )
    .await;
    let arrived: Vec<_> = differs
        .findings
        .iter()
        .filter(|f| f.kind == "live-denied-but-arrived")
        .collect();
    assert!(!arrived.is_empty(), "{:#?}", differs.findings);
    for finding in &arrived {
        assert!(
            finding.destination.ends_with("business:production"),
            "{finding:?}"
        );
        assert_eq!(finding.flow, "tcp/1521");
        let evidence = finding.evidence.as_deref().unwrap();
        assert!(evidence.contains("'s agent delivered it"), "{evidence}");
    }
    assert!(
        differs
            .findings
            .iter()
            .all(|f| f.kind == "live-denied-but-arrived"),
        "nothing else differs: {:#?}",
        differs.findings
    );

    // A rule bridging planes, injected below the checker: found statically; live, its probe
    // is not delivered: the overlays do not route to each other.
    let bridge = Rule {
        name: "bridge".into(),
        location: Location {
            file: "injected.toml".into(),
            line: 3,
        },
        from: ZoneRef {
            plane: Some(Plane::Business),
            zone: Zone::Exchange,
        },
        to: ZoneRef {
            plane: Some(Plane::Office),
            zone: Zone::Decision,
        },
        planes: vec![Plane::Business, Plane::Office],
        scope: Scope::Child,
        from_tiers: Vec::new(),
        to_tiers: Vec::new(),
        proto: Proto::Tcp,
        ports: vec![PortRange {
            first: 443,
            last: 443,
        }],
    };
    let policy = controller
        .model()
        .policy
        .clone()
        .with_unchecked_rule(bridge);
    let bridged = audit(
        &mut lab,
        AuditRun {
            policy: Some(policy),
            ..live("netlab")
        },
    )
    .await;
    let finding = bridged
        .findings
        .iter()
        .find(|f| f.kind == "plane-bridged")
        .unwrap_or_else(|| panic!("{:#?}", bridged.findings));
    assert!(finding.source.ends_with("business:exchange"), "{finding:?}");
    assert!(
        finding.destination.ends_with("office:decision"),
        "{finding:?}"
    );
    assert_eq!(
        finding.rule.as_deref(),
        Some("rule 'bridge' (injected.toml:3)")
    );
    let evidence = finding.evidence.as_deref().unwrap();
    assert!(
        evidence.contains("do not route to each other"),
        "{evidence}"
    );
    lab.stop().await;
}
