//! Scenarios played on the lab: the timeline happens at its times and every kind of check
//! gives the verdict it should — including verdicts that must fail, so a check that could
//! never fail would be caught here.
//!
//! - The built-in `national` scenario (the national backbone: a cut, failover, the
//!   controller away and back) passes every check.
//! - A small scenario uses every event (load, cut, restore, kill, restart, kill-controller,
//!   restart-controller, policy) and both outcomes of `reach`; a second copy of it states
//!   checks that are false (a denied flow expected to pass, a failover bound of 1 ms, a
//!   policy-allowed flow expected to drop), and each of them must fail.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use agent::control::ModelSources;
use agent::model::Model;
use netlab::lab::{Lab, LabOptions, Scratch};
use netlab::run::{Report, play, topology};
use netlab::scenario::Scenario;
use topology::SourceText;

/// One lab at a time: each drives hundreds of cores from one task, and two at once on a
/// 2-core machine would only measure each other.
static ONE_LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(scenario: &Scenario, name: &str) -> Report {
    let _alone = ONE_LAB.lock().await;
    let model = Model::load(&ModelSources::default()).unwrap();
    let footprint = scenario.resolve(&model.network).unwrap();
    let work = Scratch::new(name);
    let mut lab = Lab::start(
        &topology(scenario, &footprint),
        LabOptions::new(work.path()),
        |_| {},
    )
    .await
    .unwrap();
    let report = play(&mut lab, scenario, |_, _| {}).await.unwrap();
    lab.stop().await;
    println!("{report}");
    report
}

fn check<'a>(report: &'a Report, name: &str) -> &'a netlab::run::Verdict {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_scenario_passes_every_check() {
    let scenario = Scenario::load("national").unwrap();
    let report = run(&scenario, "national").await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks.len(), scenario.checks.len());
    // The load crossed the cut: most of it arrived, and the report says how much.
    let load = report
        .events
        .iter()
        .find(|e| e.what.contains(" sent, "))
        .unwrap_or_else(|| panic!("no load outcome in {report}"));
    let sent: u64 = load
        .what
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sent, 200 * 6, "{}", load.what);
    // The agents came back to the restarted controller.
    assert!(
        report.events.iter().any(|e| e.ok
            && e.what
                .starts_with("all 397 agents report to the controller again")),
        "{report}"
    );
}

/// The ministry, Shanxi, Taiyuan and two of its street offices; `checks` appended.
fn small(checks: &str) -> Scenario {
    let text = format!(
        r#"
version = 1
name = "small"
description = "every event kind on five nodes"
duration = "9s"
nodes = {{ codes = ["dc:ministry", "dc:14", "dc:1401", "site:140105001", "site:140105002"] }}
sites = false
backup = ["backbone", "provincial", "city-area"]

[[timeline]]
at = "1s"
action = "load"
from = "site:140105001/production"
to = "dc:1401/production"
proto = "tcp"
port = 7001
rate-pps = 100
duration = "2s"

[[timeline]]
at = "2s"
action = "cut"
link = "dc:14-dc:1401"

[[timeline]]
at = "3s"
action = "restore"
link = "dc:14-dc:1401"

[[timeline]]
at = "3s"
action = "kill"
node = "site:140105002"

[[timeline]]
at = "4s"
action = "restart"
node = "site:140105002"

[[timeline]]
at = "4s"
action = "kill-controller"

[[timeline]]
at = "6s"
action = "restart-controller"

[[timeline]]
at = "7s"
action = "policy"
text = """
version = 1

[[rules]]
name = "exchange-up"
from = "business:exchange"
to = "business:exchange"
scope = "any-ancestor"
proto = "tcp"
ports = [443, 1414]

[[rules]]
name = "mgmt-probe-up"
from = "mgmt"
to = "mgmt"
scope = "parent"
proto = "udp"
ports = [3784]

[[rules]]
name = "mgmt-probe-down"
from = "mgmt"
to = "mgmt"
scope = "child"
proto = "udp"
ports = [3784]
"""
{checks}
"#
    );
    Scenario::parse(&SourceText::new("small.toml", &text)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_happens_and_true_checks_hold() {
    let scenario = small(
        r#"
[[checks]]
check = "tunnels-up"
within = "3s"

[[checks]]
check = "reach"
name = "street to city production"
from = "site:140105001/production"
to = "dc:1401/production"
proto = "tcp"
port = 7001
expect = "pass"
at = "1s"

[[checks]]
check = "reach"
name = "street to street"
from = "site:140105001/production"
to = "site:140105002/production"
proto = "tcp"
port = 7001
expect = "drop"
at = "1s"

[[checks]]
check = "failover"
name = "Taiyuan fails over"
link = "dc:14-dc:1401"
within = "1s"

[[checks]]
check = "forwarding-while-controller-down"
name = "exchange while the controller is away"
from = "dc:1401/exchange"
to = "dc:ministry/exchange"
proto = "tcp"
port = 1414

[[checks]]
check = "reach"
name = "after the lock-down"
from = "site:140105001/production"
to = "dc:1401/production"
proto = "tcp"
port = 7001
expect = "drop"
at = "8s"
"#,
    );
    let report = run(&scenario, "small").await;
    assert!(report.passed(), "{report}");
    let words: Vec<&str> = report.events.iter().map(|e| e.what.as_str()).collect();
    for expected in [
        "load site:140105001/production",
        "cut the primary path of dc:14-dc:1401",
        "restored the primary path of dc:14-dc:1401",
        "killed site:140105002",
        "restarted site:140105002",
        "site:140105002's uplink tunnel is up again",
        "killed the controller",
        "restarted the controller",
        "all 5 agents report to the controller again",
        "new policy: ",
    ] {
        assert!(
            words.iter().any(|w| w.starts_with(expected)),
            "no `{expected}` in {report}"
        );
    }
    let failover = check(&report, "Taiyuan fails over");
    assert!(
        failover.measured.is_some_and(|t| t.as_millis() < 1_000),
        "{failover:?}"
    );
    let down = check(&report, "exchange while the controller is away");
    assert!(down.detail.starts_with("4 of 4 probes"), "{down:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_checks_fail_with_what_was_seen() {
    let scenario = small(
        r#"
[[checks]]
check = "reach"
name = "street to street, wrongly expected to pass"
from = "site:140105001/production"
to = "site:140105002/production"
proto = "tcp"
port = 7001
expect = "pass"
at = "1s"

[[checks]]
check = "reach"
name = "an allowed flow, wrongly expected to drop"
from = "dc:1401/exchange"
to = "dc:ministry/exchange"
proto = "tcp"
port = 1414
expect = "drop"
at = "1s"

[[checks]]
check = "failover"
name = "an impossible failover bound"
link = "dc:14-dc:1401"
within = "1ms"

[[checks]]
check = "reach"
name = "a killed node sends nothing"
from = "site:140105002/production"
to = "dc:1401/production"
proto = "tcp"
port = 7001
expect = "pass"
at = "3500ms"
"#,
    );
    let report = run(&scenario, "false").await;
    assert!(!report.passed());
    for verdict in &report.checks {
        assert!(
            !verdict.passed,
            "{} should have failed: {report}",
            verdict.name
        );
    }
    assert_eq!(
        check(&report, "street to street, wrongly expected to pass").detail,
        "did not arrive"
    );
    assert!(
        check(&report, "an allowed flow, wrongly expected to drop")
            .detail
            .starts_with("LEAKED"),
        "{report}"
    );
    let failover = check(&report, "an impossible failover bound");
    assert!(
        failover.measured.is_some() && failover.detail.contains("bound 1ms"),
        "{failover:?}"
    );
}
