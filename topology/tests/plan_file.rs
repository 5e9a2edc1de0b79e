//! Plan files that cannot work are refused with the file, the line and the numbers.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use topology::plan::EMBEDDED_PLAN;
use topology::{Network, Plan, SourceText};

/// The embedded plan with one edit, and the line the edit landed on.
fn edited(from: &str, to: &str) -> (String, usize) {
    assert!(
        EMBEDDED_PLAN.contains(from),
        "fixture text `{from}` not in the plan"
    );
    let at = EMBEDDED_PLAN.find(from).unwrap();
    let line = EMBEDDED_PLAN[..at].matches('\n').count() + 1;
    (EMBEDDED_PLAN.replacen(from, to, 1), line)
}

fn refusal(text: &str) -> Vec<String> {
    let problems = Plan::parse(&SourceText::new("my-plan.toml", text)).unwrap_err();
    problems.iter().map(|p| p.to_string()).collect()
}

fn assert_refused(from: &str, to: &str, expect: &str) {
    let (text, line) = edited(from, to);
    let got = refusal(&text);
    let want = format!("my-plan.toml:{line}: {expect}");
    assert!(
        got.iter().any(|p| p.starts_with(&want)),
        "want `{want}…`, got {got:#?}"
    );
}

#[test]
fn the_embedded_plan_is_valid() {
    let plan = Plan::embedded().unwrap();
    assert_eq!(plan.layouts().len(), 3);
}

#[test]
fn a_supernet_with_host_bits_is_refused() {
    assert_refused(
        "supernet = \"10.0.0.0/8\"",
        "supernet = \"10.0.0.1/8\"",
        "plane business: supernet 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
    );
}

#[test]
fn levels_must_get_longer_down_the_tree() {
    assert_refused(
        "city = 18 ",
        "city = 12 ",
        "plane business: the city prefix /12 must be longer than the province prefix /13",
    );
    assert_refused(
        "site = 27 ",
        "site = 33 ",
        "plane business: the site prefix /33 must be longer than the city prefix /18 and at most /32",
    );
}

#[test]
fn the_own_area_must_fit_a_city_block() {
    assert_refused(
        "data-centre = 24     #",
        "data-centre = 18     #",
        "plane business: a node's own area is two /18 blocks",
    );
}

#[test]
fn a_zone_on_the_wrong_plane_is_refused() {
    assert_refused(
        "dmz = { prefix = 25, index = 1 }",
        "production = { prefix = 25, index = 1 }",
        "plane public: zone production cannot exist on this plane (it lives on: business)",
    );
}

#[test]
fn zone_blocks_must_fit_and_never_overlap() {
    assert_refused(
        "exchange = { prefix = 26, index = 1 }   # .64",
        "exchange = { prefix = 26, index = 4 }   # .64",
        "plane business: zone exchange /26 index 4 does not fit in a /24 data-centre block (4 blocks of /26: index 0–3)",
    );
    assert_refused(
        "exchange = { prefix = 26, index = 1 }   # .64",
        "exchange = { prefix = 26, index = 2 }   # .64",
        "plane business: zone exchange overlaps zone production in the data-centre block",
    );
}

#[test]
fn every_block_kind_needs_a_mgmt_zone() {
    let (text, _) = edited("mgmt = { prefix = 29, index = 0 }       # +0–7\n", "");
    let got = refusal(&text);
    assert!(
        got.iter().any(|p| p.ends_with(
            "plane business: the site block has no mgmt zone (the agent's own address lives there)"
        )),
        "{got:#?}"
    );
}

#[test]
fn planes_never_share_addresses() {
    assert_refused(
        "supernet = \"172.16.0.0/12\"",
        "supernet = \"10.16.0.0/12\"",
        "plane office: supernet 10.16.0.0/12 overlaps plane business's 10.0.0.0/8",
    );
}

#[test]
fn a_bad_naming_rule_is_refused() {
    assert_refused(
        "device = \"{node}-{zone}-{role}{nn}\"",
        "device = \"{zone}-{role}{nn}\"",
        "naming rule `{zone}-{role}{nn}` must contain {node}",
    );
}

#[test]
fn syntax_and_shape_errors_name_the_line() {
    assert_refused("site = 27 ", "sites = 27 ", "unknown field `sites`");
    assert_refused("province = 13 ", "province = \"13\" ", "invalid type");
    let text = EMBEDDED_PLAN.replace("[planes.office", "[planes.voice");
    let line = EMBEDDED_PLAN[..EMBEDDED_PLAN.find("[planes.office]").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let got = refusal(&text);
    assert!(
        got[0].starts_with(&format!("my-plan.toml:{line}: unknown plane `voice`")),
        "{got:#?}"
    );
    assert_refused(
        "mgmt = { prefix = 27, index = 0 }\ndecision",
        "mgmt = { prefix = 27, index = 0, size = 2 }\ndecision",
        "unknown field `size`",
    );
    assert_refused(
        "version = 1",
        "version = 2",
        "plan version 2 is not supported",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = EMBEDDED_PLAN
        .replacen("city = 18 ", "city = 12 ", 1)
        .replacen(
            "dmz = { prefix = 25, index = 1 }",
            "production = { prefix = 25, index = 1 }",
            1,
        );
    assert_eq!(refusal(&text).len(), 2, "{:#?}", refusal(&text));
}

fn no_room(from: &str, to: &str) -> String {
    let (text, _) = edited(from, to);
    let plan = Plan::parse(&SourceText::new("p.toml", &text)).unwrap();
    let network = Network::national().unwrap();
    plan.allocate(&network).unwrap_err().to_string()
}

#[test]
fn a_province_with_more_cities_than_room_is_named_with_the_numbers() {
    // /16 city blocks in a /13 province: 8 blocks, the first holds the own area.
    let err = no_room("city = 18 ", "city = 16 ");
    assert!(
        err.contains("plane business: dc:44 (广东省) has 21 city blocks of /16 to place, but its block 10.152.0.0/13 holds only 7 after its own area; shorten the province prefix or lengthen the city prefix"),
        "{err}"
    );
    assert!(!err.contains("dc:64 "), "Ningxia's 5 cities fit: {err}");
}

#[test]
fn a_city_with_too_many_sites_is_named_with_the_numbers() {
    // /24 sites in a /18 city: 64 blocks, the first two hold the city's own area.
    let err = no_room("site = 27 ", "site = 24 ");
    assert!(
        err.contains(
            "plane business: dc:1306 (保定市) has 385 site blocks of /24 to place, but its block"
        ),
        "{err}"
    );
    assert!(err.contains("holds only 62 after its own area"), "{err}");
}

#[test]
fn a_plane_spanning_the_whole_ipv6_space_is_refused_without_overflow() {
    let text = EMBEDDED_PLAN
        .replacen("supernet = \"10.0.0.0/8\"", "supernet = \"::/0\"", 1)
        .replacen("province = 13 ", "province = 1 ", 1)
        .replacen("city = 18 ", "city = 6 ", 1)
        .replacen("site = 27 ", "site = 100 ", 1)
        .replacen("data-centre = 24     #", "data-centre = 60     #", 1)
        .replacen(
            "prefix = 29, index = 0 }       # +0",
            "prefix = 101, index = 0 }       # +0",
            1,
        )
        .replacen(
            "prefix = 28, index = 1 } # +16",
            "prefix = 101, index = 1 } # +16",
            1,
        )
        .replacen(
            "prefix = 27, index = 0 }       # .0",
            "prefix = 63, index = 0 }       # .0",
            1,
        )
        .replacen(
            "prefix = 26, index = 1 }   # .64",
            "prefix = 62, index = 1 }   # .64",
            1,
        )
        .replacen(
            "prefix = 25, index = 1 } # .128",
            "prefix = 61, index = 1 } # .128",
            1,
        );
    let plan = Plan::parse(&SourceText::new("v6.toml", &text)).unwrap();
    let err = plan
        .allocate(&Network::national().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("dc:ministry (人力资源和社会保障部) has 31 province blocks of /1 to place, but its block ::/0 holds only 1"), "{err}");
}
