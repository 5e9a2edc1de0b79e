//! The IP registration check: every finding, with the file and line that caused it.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::OnceLock;

use topology::plan::inventory::{Report, check_file};
use topology::plan::{Allocation, EMBEDDED_PLAN};
use topology::{Network, Plan, SourceText};

fn national() -> &'static (Network, Plan, Allocation) {
    static NATIONAL: OnceLock<(Network, Plan, Allocation)> = OnceLock::new();
    NATIONAL.get_or_init(|| {
        let network = Network::national().unwrap();
        let plan = Plan::embedded().unwrap();
        let allocation = plan.allocate(&network).unwrap();
        (network, plan, allocation)
    })
}

fn check(name: &str, text: &str) -> Report {
    let (network, plan, allocation) = national();
    check_file(&SourceText::new(name, text), plan, network, allocation)
}

fn findings(report: &Report) -> Vec<String> {
    report.findings.iter().map(|f| f.to_string()).collect()
}

// Shanxi in the national plan: dc:1401 owns 10.32.64.0/24 (mgmt .0/27, exchange .64/26,
// production .128/25); dc:1402 owns 10.32.128.0/24; site:140105 owns 10.32.66.0/27
// (mgmt +0/29, production +16/28) and the next site 10.32.66.32/27.
const DEVICES_CSV: &str = "\
name,address,note
dc-1401-prod-db01,10.32.64.130,core database
dc-1401-exch-mq01,10.32.64.70,
dc-1401-prod-db02,10.32.64.130,
dc-1401-prod-db01,10.32.64.131,
dc-1401-prod-app01,10.32.128.140,
dc-1401-exch-app01,10.32.64.140,
core-router-1,10.32.64.1,
site-140105-mgmt-sw01,10.32.66.0/26,
site-140105-prod-lan01,10.32.66.16/28,
dc-1402-prod-pc01,10.32.66.20,
dc-9901-prod-db01,10.32.64.132,
dc-1401-prod-db03,10.32.64.300,
dc-1401-prod-db04,192.0.2.10,
dc-1401-prod-db05,10.32.64.40,
site-140105-prod-pc01,10.32.66.17,
";

#[test]
fn every_finding_names_the_file_and_line() {
    let report = check("devices.csv", DEVICES_CSV);
    let got = findings(&report);
    let want = [
        "devices.csv:4: dc-1401-prod-db02: duplicate address 10.32.64.130/32, already registered on line 2 as dc-1401-prod-db01",
        "devices.csv:5: dc-1401-prod-db01: duplicate name, first registered on line 2",
        "devices.csv:6: dc-1401-prod-app01: 10.32.128.140/32 is outside dc:1401's blocks (it belongs to dc:1402)",
        "devices.csv:7: dc-1401-exch-app01: 10.32.64.140/32 is in dc:1401's production block, not its exchange block",
        "devices.csv:8: core-router-1: name does not match the naming rule `{node}-{zone}-{role}{nn}`",
        "devices.csv:9: site-140105-mgmt-sw01: 10.32.66.0/26 overlaps the blocks of site:140105, site:140105001",
        "devices.csv:11: dc-1402-prod-pc01: 10.32.66.20/32 is outside dc:1402's blocks (it belongs to site:140105)",
        "devices.csv:11: dc-1402-prod-pc01: 10.32.66.20/32 overlaps 10.32.66.0/26 registered on line 9 for site:140105",
        "devices.csv:11: dc-1402-prod-pc01: 10.32.66.20/32 overlaps 10.32.66.16/28 registered on line 10 for site:140105",
        "devices.csv:12: dc-9901-prod-db01: names node dc:9901, which is not in the network",
        "devices.csv:13: dc-1401-prod-db03: `10.32.64.300` is not an address or prefix",
        "devices.csv:14: dc-1401-prod-db04: 192.0.2.10/32 is outside every plane of the plan",
        "devices.csv:15: dc-1401-prod-db05: 10.32.64.40/32 is in dc:1401's unzoned block, not its production block",
    ];
    assert_eq!(got, want, "{got:#?}");
    assert_eq!(report.devices, 15);
}

#[test]
fn an_address_in_unallocated_space_belongs_to_no_node() {
    // 10.32.65.0/24 is dc:1401's disaster-recovery slot; Taiyuan has no DR site.
    let got = findings(&check(
        "spare.csv",
        "name,address\ndc-1401-mgmt-rtr01,10.32.65.10\n",
    ));
    assert_eq!(
        got,
        [
            "spare.csv:2: dc-1401-mgmt-rtr01: 10.32.65.10/32 is outside dc:1401's blocks (no node holds it)"
        ]
    );
}

#[test]
fn a_clean_inventory_has_no_findings() {
    let clean: String = DEVICES_CSV
        .lines()
        .enumerate()
        .filter(|(i, _)| [0, 1, 2, 9, 15].contains(i))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let report = check("clean.csv", &clean);
    assert!(report.findings.is_empty(), "{report}");
    assert_eq!(report.to_string(), "4 devices checked, 0 findings");
}

#[test]
fn toml_inventories_are_checked_the_same_way() {
    let text = "\
# registered by the Shanxi NOC
[[devices]]
name = \"dc-1401-prod-db01\"
address = \"10.32.64.130\"

[[devices]]
name = \"dc-1401-mgmt-rtr01\"
address = \"10.32.64.130\"
";
    let got = findings(&check("devices.toml", text));
    assert_eq!(
        got,
        [
            "devices.toml:6: dc-1401-mgmt-rtr01: duplicate address 10.32.64.130/32, already registered on line 2 as dc-1401-prod-db01",
            "devices.toml:6: dc-1401-mgmt-rtr01: 10.32.64.130/32 is in dc:1401's production block, not its mgmt block",
        ]
    );
    let broken = check(
        "broken.toml",
        "[[devices]]\nname = \"x\"\nadress = \"10.0.0.1\"\n",
    );
    assert_eq!(broken.findings.len(), 1);
    assert!(
        broken.findings[0]
            .to_string()
            .starts_with("broken.toml:1: unreadable entry"),
        "{broken}"
    );
}

#[test]
fn unreadable_csv_is_a_finding_not_a_failure() {
    let got = findings(&check("bad.csv", "host,ip\nx,10.0.0.1\n"));
    assert_eq!(
        got,
        ["bad.csv:1: unreadable entry: the header must have `name` and `address` columns"]
    );
    let got = findings(&check(
        "short.csv",
        "name,note,address\ndc-1401-prod-db01,x\n",
    ));
    assert_eq!(
        got,
        ["short.csv:2: unreadable entry: expected at least 3 fields, found 2"]
    );
    let report = check("empty.csv", "");
    assert_eq!(report.findings.len(), 1);
    let binary = check("binary.csv", "name,address\n\u{0}\u{1}\u{7f},\u{ff}\n");
    assert_eq!(binary.findings.len(), 1, "{binary}");
}

#[test]
fn a_plane_in_the_name_must_match_the_address() {
    let text = EMBEDDED_PLAN.replace(
        "device = \"{node}-{zone}-{role}{nn}\"",
        "device = \"{plane}.{node}.{zone}.{role}{nn}\"",
    );
    let plan = Plan::parse(&SourceText::new("p.toml", &text)).unwrap();
    let (network, _, allocation) = national();
    let devices = "name,address\nbusiness.dc-1401.mgmt.rtr01,10.32.64.1\noffice.dc-1401.mgmt.rtr02,10.32.64.2\n";
    let report = check_file(
        &SourceText::new("d.csv", devices),
        &plan,
        network,
        allocation,
    );
    assert_eq!(
        findings(&report),
        [
            "d.csv:3: office.dc-1401.mgmt.rtr02: 10.32.64.2/32 is on the business plane, not the office plane"
        ]
    );
}
