//! Scenario files: the built-ins parse and resolve to the footprints the network gives,
//! every mistake is reported as `file:line: what`, and no text makes parsing panic.

use std::sync::LazyLock;
use std::time::Duration;

use netlab::scenario::{
    Action, CheckKind, Footprint, LinkRef, NodeSelection, Outcome, PolicyChange, ProfileSpec,
    Queue, Rate, Scenario, ScenarioError, UnderlayPath, builtin, builtins,
};
use proptest::prelude::*;
use topology::{LinkLevel, Network, NodeId, NodeKind, SourceText};

static NETWORK: LazyLock<Network> =
    LazyLock::new(|| Network::national().expect("the embedded network builds"));

fn id(text: &str) -> NodeId {
    text.parse().expect("a node id")
}

fn load(name: &str) -> (Scenario, Footprint) {
    let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let footprint = scenario
        .resolve(&NETWORK)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (scenario, footprint)
}

/// Every message about `text`, read as `bad.toml`: from parsing, or else from resolving.
fn problems(text: &str) -> Vec<String> {
    let scenario = match Scenario::parse(&SourceText::new("bad.toml", text)) {
        Ok(scenario) => scenario,
        Err(problems) => return problems.iter().map(|p| p.to_string()).collect(),
    };
    match scenario.resolve(&NETWORK) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// A scenario with `nodes` on line 4 and `body` from line 5.
fn file(nodes: &str, body: &str) -> String {
    format!("version = 1\nname = \"bad\"\nduration = \"20s\"\nnodes = {nodes}\n{body}")
}

/// Parents come first, `links[i]` is the uplink of `nodes[i + 1]`, and nodes come level by
/// level (a municipality's sites stand at the depth of cities).
fn assert_tree_order(footprint: &Footprint) {
    assert_eq!(footprint.nodes[0], NodeId::MINISTRY);
    assert_eq!(footprint.links.len(), footprint.nodes.len() - 1);
    let mut depth = std::collections::HashMap::from([(NodeId::MINISTRY, 0)]);
    let mut deepest = 0;
    for (i, link) in footprint.links.iter().enumerate() {
        assert_eq!(link.child, footprint.nodes[i + 1]);
        assert_eq!(footprint.uplink(&link.child), Some(link));
        let parent = depth.get(&link.parent).copied();
        let parent = parent.unwrap_or_else(|| panic!("{} before {}", link.child, link.parent));
        assert!(parent + 1 >= deepest, "{} out of level order", link.child);
        deepest = parent + 1;
        depth.insert(link.child, deepest);
    }
}

#[test]
fn every_builtin_is_listed_embedded_parses_and_resolves() {
    assert_eq!(builtins(), ["national", "province-14", "streets"]);
    for name in builtins() {
        assert!(builtin(name).is_some(), "{name}");
        let (scenario, footprint) = load(name);
        assert_eq!(scenario.name, *name);
        assert_eq!(&*scenario.origin, format!("scenarios/{name}.toml"));
        assert!(!scenario.description.is_empty());
        assert_tree_order(&footprint);
    }
    assert!(builtin("nowhere").is_none());
}

#[test]
fn national_runs_the_ministry_every_province_and_every_city() {
    let (scenario, footprint) = load("national");
    assert_eq!(scenario.nodes, NodeSelection::All);
    let census = NETWORK.census();
    assert_eq!(footprint.nodes.len(), 1 + census.provinces + census.cities);
    assert_eq!(footprint.nodes.len(), 397);
    assert_eq!(footprint.count(LinkLevel::Backbone), census.provinces);
    assert_eq!(footprint.count(LinkLevel::Provincial), census.cities);
    assert_eq!(footprint.count(LinkLevel::CityArea), 0);
    assert!(
        !footprint.contains(&id("dr:14")),
        "DR sites are not selected by `all`"
    );
    assert!(
        footprint.contains(&id("dc:419001")),
        "county-level cities are cities"
    );
    assert!(footprint.links.iter().all(|l| l.backup));

    let timeline: Vec<(u64, &str)> = scenario
        .timeline
        .iter()
        .map(|e| (e.at.as_secs(), e.action.word()))
        .collect();
    assert_eq!(
        timeline,
        [
            (4, "load"),
            (5, "cut"),
            (8, "restore"),
            (10, "kill-controller"),
            (13, "restart-controller")
        ]
    );
    let shanxi = LinkRef {
        a: NodeId::MINISTRY,
        b: id("dc:14"),
    };
    assert!(scenario.timeline.iter().any(|e| matches!(&e.action,
        Action::Cut(p) if p.link == shanxi && p.path == UnderlayPath::Primary)));
    let kinds: Vec<&CheckKind> = scenario.checks.iter().map(|c| &c.kind).collect();
    assert!(
        matches!(kinds[0], CheckKind::TunnelsUp { within } if *within == Duration::from_secs(3))
    );
    assert!(matches!(
        kinds[1],
        CheckKind::Reach {
            expect: Outcome::Pass,
            ..
        }
    ));
    assert!(matches!(
        kinds[2],
        CheckKind::Reach {
            expect: Outcome::Drop,
            ..
        }
    ));
    assert_eq!(
        *kinds[3],
        CheckKind::Failover {
            link: shanxi,
            within: Duration::from_secs(1),
            after: Duration::from_secs(5)
        }
    );
    let CheckKind::ForwardingWhileControllerDown { down, .. } = kinds[4] else {
        panic!("{:?}", kinds[4]);
    };
    assert_eq!(*down, [Duration::from_secs(10)..Duration::from_secs(13)]);
    assert_eq!(
        footprint.link(&shanxi).map(|l| l.level),
        Some(LinkLevel::Backbone)
    );
}

#[test]
fn province_14_runs_shanxi_down_to_its_district_and_street_sites() {
    let (scenario, footprint) = load("province-14");
    let shanxi = NETWORK.lookup(&id("dc:14")).unwrap();
    let cities: Vec<_> = NETWORK
        .children(shanxi)
        .iter()
        .copied()
        .filter(|&c| NETWORK.node(c).kind() == NodeKind::DataCentre)
        .collect();
    let sites: usize = cities.iter().map(|&c| NETWORK.children(c).len()).sum();
    assert_eq!(cities.len(), 11);
    assert_eq!(footprint.nodes.len(), 2 + cities.len() + sites);
    let streets = footprint
        .nodes
        .iter()
        .filter(|n| NodeKind::of(n) == NodeKind::StreetOffice)
        .count();
    assert_eq!(streets, 1_352, "every Shanxi street in the division data");
    for node in [
        "site:140105",
        "site:140105001",
        "site:140105:window-01",
        "dc:1411",
    ] {
        assert!(footprint.contains(&id(node)), "{node}");
    }
    for node in ["dr:14", "dc:13", "dc:1301", "site:130102"] {
        assert!(!footprint.contains(&id(node)), "{node}");
    }
    // With city-area in `backup`, a street's access line has its mobile backup.
    assert!(scenario.backup.contains(&LinkLevel::CityArea));
    let street = footprint
        .link(&"site:140105001-dc:1401".parse().unwrap())
        .unwrap();
    assert_eq!((street.level, street.backup), (LinkLevel::CityArea, true));
    let policy = scenario.policy_changes().next().unwrap().1;
    assert!(matches!(policy, PolicyChange::Inline { at, .. } if at.line > 1));
    assert!(policy.policy().is_ok());
}

#[test]
fn streets_runs_every_site_in_china() {
    let (scenario, footprint) = load("streets");
    assert!(scenario.sites);
    let census = NETWORK.census();
    assert_eq!(
        footprint.nodes.len(),
        1 + census.provinces + census.cities + census.sites()
    );
    assert_eq!(footprint.nodes.len(), 44_702);
    assert_eq!(footprint.count(LinkLevel::CityArea), census.sites());
    let streets = footprint
        .nodes
        .iter()
        .filter(|n| NodeKind::of(n) == NodeKind::StreetOffice)
        .count();
    assert_eq!(streets, census.street_offices);
    // Municipalities are their own city level: Beijing's streets hang below dc:11.
    assert_eq!(
        footprint.uplink(&id("site:110101001")).map(|l| l.parent),
        Some(id("dc:11"))
    );
    assert!(
        footprint
            .links
            .iter()
            .filter(|l| l.level == LinkLevel::CityArea)
            .all(|l| !l.backup)
    );
    assert_eq!(scenario.profiles.city_area.queue, Queue::Bytes(16_384));
}

#[test]
fn profiles_override_only_the_fields_written_and_rates_follow_capacity() {
    let (scenario, footprint) = load("national");
    let provincial = scenario.profiles.provincial;
    assert_eq!(provincial.delay, Duration::from_millis(5));
    assert_eq!(provincial.queue, ProfileSpec::PROVINCIAL.queue);
    assert_eq!(scenario.profiles.city_area, ProfileSpec::CITY_AREA);

    let tibet = footprint.uplink(&id("dc:54")).unwrap();
    let shanxi = footprint.uplink(&id("dc:14")).unwrap();
    let (delay, jitter, loss, rate, queue) = scenario.underlay(shanxi);
    assert_eq!(
        (delay, jitter, loss, rate, queue),
        (
            Duration::from_millis(15),
            Duration::from_millis(2),
            0.0,
            Some(1_000_000_000),
            2_500_000 // 20 ms at 1 Gbit/s
        )
    );
    // The network file's override gives Tibet 100 Mbit/s; rate and queue follow it.
    assert_eq!(scenario.underlay(tibet).3, Some(100_000_000));
    assert_eq!(scenario.underlay(tibet).4, 250_000);

    let text = file(
        "\"all\"",
        "[profiles.backbone]\nrate = \"unlimited\"\nloss = 0.25\n\
         [profiles.city-area]\nrate = \"2 Mbit/s\"\nloss = \"1.5%\"\nqueue = \"100ms\"\n",
    );
    let scenario = Scenario::parse(&SourceText::new("p.toml", &text)).unwrap();
    assert_eq!(scenario.profiles.backbone.rate, Rate::Unlimited);
    assert_eq!(scenario.profiles.backbone.loss, 0.25);
    assert_eq!(scenario.profiles.city_area.loss, 0.015);
    let city_area = scenario.profiles.city_area.values(topology::Kbps(20_000));
    assert_eq!((city_area.3, city_area.4), (Some(2_000_000), 25_000));
    // Unlimited: no rate, and so no queue forms.
    assert_eq!(scenario.underlay(shanxi).3, None);
    assert_eq!(scenario.underlay(shanxi).4, 0);
}

#[test]
fn links_name_their_ends_in_either_order_endpoint_ids_included() {
    let link: LinkRef = "dc:1401-site:140105:window-01".parse().unwrap();
    assert_eq!(
        (link.a, link.b),
        (id("dc:1401"), id("site:140105:window-01"))
    );
    let back: LinkRef = "site:140105:window-01-dc:1401".parse().unwrap();
    assert_eq!(back.key(), link.key());
    assert_eq!(link.to_string(), "dc:1401-site:140105:window-01");
    for bad in [
        "dc:1401",
        "dc:1401-",
        "-dc:1401",
        "dc:14-dc:14",
        "dc:14--dc:1401",
        "",
    ] {
        assert!(bad.parse::<LinkRef>().is_err(), "{bad}");
    }
    let (_, footprint) = load("province-14");
    assert_eq!(
        footprint.link(&back).map(|l| l.child),
        Some(id("site:140105:window-01"))
    );
}

#[test]
fn selection_mistakes_name_the_line() {
    let cases = [
        (
            r#"{ codes = ["dc:ministry", "dc:1401"] }"#,
            "bad.toml:4: dc:1401 is selected but its parent dc:14 is not (list it too)",
        ),
        (
            r#"{ codes = ["dc:ministry", "dc:14", "dc:9999"] }"#,
            "bad.toml:4: no node dc:9999 in the network",
        ),
        (
            r#"{ codes = ["dc:ministry", "dc:14", "dc:14"] }"#,
            "bad.toml:4: dc:14 is listed twice",
        ),
        (
            r#"{ codes = [] }"#,
            "bad.toml:4: codes lists no nodes (the ministry at least)",
        ),
        (
            r#"{ province = "1401" }"#,
            r#"bad.toml:4: `1401` is not a province code (write its two digits, e.g. province = "14")"#,
        ),
        (
            r#"{ province = "99" }"#,
            "bad.toml:4: no province 99 in the network",
        ),
        (
            r#""everything""#,
            r#"bad.toml:4: unknown node selection `everything` (write "all", { province = "14" } or { codes = ["dc:ministry", "dc:14", …] })"#,
        ),
        (
            r#"{ province = "14", codes = ["dc:ministry"] }"#,
            r#"bad.toml:4: a node selection is exactly one of "all", { province = "14" } or { codes = ["dc:ministry", "dc:14", …] }"#,
        ),
    ];
    for (nodes, want) in cases {
        assert_eq!(problems(&file(nodes, "")), [want], "{nodes}");
    }
}

#[test]
fn names_the_network_or_the_selection_lacks_are_reported_on_resolve() {
    let text = file(
        r#"{ codes = ["dc:ministry", "dc:14", "dc:1401", "site:140105001"] }"#,
        r#"
[[timeline]]
at = "5s"
action = "kill"
node = "dc:1402"

[[timeline]]
at = "6s"
action = "cut"
link = "dc:1401-dc:13"

[[timeline]]
at = "7s"
action = "cut"
link = "dc:14-site:140105001"

[[timeline]]
at = "8s"
action = "cut"
link = "dc:1401-site:140105001"
path = "backup"

[[checks]]
check = "reach"
from = "dc:4401/exchange"
to = "dc:ministry/exchange"
proto = "tcp"
port = 1414
expect = "pass"
at = "9s"

[[timeline]]
at = "9s"
action = "kill"
node = "dc:9999"
"#,
    );
    assert_eq!(
        problems(&text),
        [
            "bad.toml:9: dc:1402 is not one of this scenario's nodes",
            "bad.toml:14: dc:13 is not one of this scenario's nodes",
            "bad.toml:19: dc:14-site:140105001 is not a tree link: neither end is the other's parent",
            "bad.toml:24: dc:1401-site:140105001 has no backup path in this scenario: backup = [backbone, provincial] does not list city-area links",
            "bad.toml:29: dc:4401 is not one of this scenario's nodes",
            "bad.toml:39: no node dc:9999 in the network",
        ]
    );
}

#[test]
fn timeline_mistakes_are_reported_together_at_their_lines() {
    let text = file(
        r#"{ province = "14" }"#,
        r#"[[timeline]]
at = "5 parsecs"
action = "kill-controller"

[[timeline]]
at = "30s"
action = "kill"
node = "dc:1401"

[[timeline]]
at = "3s"
action = "kill"
node = "dc:1401"
link = "dc:14-dc:1401"

[[timeline]]
at = "3s"
action = "cut"

[[timeline]]
at = "4s"
action = "restore"
link = "dc:ministry-dc:14"

[[timeline]]
at = "5s"
action = "restart"
node = "dc:1402"

[[timeline]]
at = "6s"
action = "restart-controller"

[[timeline]]
at = "15s"
action = "load"
from = "dc:1401/exchange"
to = "dc:14/exchange"
proto = "udp"
port = 9
rate-pps = 10
duration = "10s"
"#,
    );
    assert_eq!(
        problems(&text),
        [
            r#"bad.toml:6: bad duration `5 parsecs`: unknown time unit "parsecs", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (write a number and a unit, e.g. "500ms", "3s", "1m 30s")"#,
            "bad.toml:9: the kill event at 30s is after the scenario's end (20s)",
            "bad.toml:18: `link` does not apply to a kill event",
            "bad.toml:20: a cut event needs `link`",
            "bad.toml:24: the primary path of dc:ministry-dc:14 is restored at 4s, but it is not cut",
            "bad.toml:29: dc:1402 is restarted at 5s, but it is not down (kill it first)",
            "bad.toml:34: the controller is restarted at 6s, but it is not down (kill-controller first)",
            "bad.toml:38: the end of the load at 25s is after the scenario's end (20s)",
        ]
    );
}

#[test]
fn checks_must_find_their_events_and_send_what_the_lab_can() {
    let text = file(
        r#"{ province = "14" }"#,
        r#"[[timeline]]
at = "5s"
action = "cut"
link = "dc:ministry-dc:14"

[[checks]]
check = "failover"
link = "dc:14-dc:ministry"
within = "1s"
after = "6s"

[[checks]]
check = "failover"
link = "dc:14-dc:1401"
within = "1s"

[[checks]]
check = "forwarding-while-controller-down"
from = "dc:1401/exchange"
to = "dc:ministry/exchange"
proto = "tcp"
port = 1414

[[checks]]
check = "reach"
from = "dc:1401/exchange"
to = "dc:ministry/decision"
proto = "tcp"
expect = "pass"
at = "3s"

[[checks]]
check = "tunnels-up"
within = "21s"
at = "1s"
"#,
    );
    assert_eq!(
        problems(&text),
        [
            "bad.toml:10: this failover check refers to a missing event: no cut of the primary path of dc:14-dc:ministry at 6s",
            "bad.toml:16: this failover check refers to a missing event: the timeline never cuts the primary path of dc:14-dc:1401",
            "bad.toml:21: this forwarding-while-controller-down check refers to a missing event: the timeline never kills the controller",
            "bad.toml:31: decision is on a plane this scenario does not run (planes = [business])",
            "bad.toml:32: tcp needs a port",
            "bad.toml:36: the tunnels-up deadline at 21s is after the scenario's end (20s)",
            "bad.toml:39: `at` does not apply to a tunnels-up check",
        ]
    );
}

#[test]
fn the_file_shape_is_strict() {
    assert_eq!(
        problems(&file(r#""all""#, "colour = \"red\"\n")),
        [
            "bad.toml:5: unknown field `colour`, expected one of `version`, `name`, `description`, `duration`, `nodes`, `sites`, `planes`, `profiles`, `backup`, `timeline`, `checks`"
        ]
    );
    let text = file(
        r#""all""#,
        "planes = [\"business\", \"business\"]\nbackup = [\"lateral\"]\n\
         [profiles.backbone]\nloss = 1.5\nrate = \"fast\"\nqueue = 0\n\
         [profiles.city-area]\ndelay = \"2h\"\nqueue = \"lots\"\n",
    );
    assert_eq!(
        problems(&text),
        [
            "bad.toml:5: plane business is listed twice",
            "bad.toml:6: lateral links are never part of a scenario, which runs the tree only",
            r#"bad.toml:8: bad loss `1.5` (write a fraction from 0 to 1, e.g. 0.001, or a percentage, e.g. "0.1%")"#,
            r#"bad.toml:9: bad rate `fast` (write a capacity such as "100 Mbit/s", "capacity" for the link's own, or "unlimited")"#,
            "bad.toml:10: the queue must be more than zero",
            "bad.toml:12: delay 2h plus jitter 500us is more than 1h, the most the emulated underlay takes",
            "bad.toml:13: bad queue `lots` (write a time at the link's rate, e.g. \"20ms\", or a number of bytes, e.g. 16384)",
        ]
    );
    let text = "version = 2\nname = \" \"\nduration = \"0s\"\nnodes = \"all\"\n";
    assert_eq!(
        problems(text),
        [
            "bad.toml:1: scenario file version 2 is not supported (this build reads version 1)",
            "bad.toml:2: the scenario's name is empty",
            "bad.toml:3: the scenario's duration must be more than zero",
        ]
    );
}

#[test]
fn inline_policy_problems_name_the_scenario_lines() {
    let text = file(
        r#"{ province = "14" }"#,
        r#"[[timeline]]
at = "5s"
action = "policy"
text = """
version = 1

[[rules]]
name = "bridge"
from = "business:exchange"
to = "office:decision"
scope = "same-site"
proto = "tcp"
"""
"#,
    );
    assert_eq!(
        problems(&text),
        [
            "bad.toml:11: rule 'bridge' crosses planes: business:exchange → office:decision (planes are never bridged; the only crossing is a [[soft-exchange]] gateway between business and office)"
        ]
    );
    let both = file(
        r#""all""#,
        "[[timeline]]\nat = \"1s\"\naction = \"policy\"\nfile = \"a.toml\"\ntext = \"version = 1\"\n",
    );
    assert_eq!(
        problems(&both),
        ["bad.toml:5: a policy event takes `file = \"…\"` or `text = \"\"\"…\"\"\"`, exactly one"]
    );
}

#[test]
fn load_reads_files_and_the_policies_they_switch_to() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-load");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("lockdown.toml");
    std::fs::write(&policy, "version = 1\n[[rules]]\nname = \"x\"\n").unwrap();
    let scenario = dir.join("s.toml");
    let good = "[[timeline]]\nat = \"1s\"\naction = \"policy\"\nfile = \"lockdown.toml\"\n";
    let missing = "[[timeline]]\nat = \"2s\"\naction = \"policy\"\nfile = \"missing.toml\"\n";
    std::fs::write(&scenario, file(r#""all""#, &format!("{good}{missing}"))).unwrap();
    let path = scenario.to_str().unwrap();
    let Err(ScenarioError::Invalid(found)) = Scenario::load(path) else {
        panic!("loaded a scenario with a broken policy");
    };
    let found: Vec<String> = found.iter().map(|p| p.to_string()).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    let policy_name = policy.display().to_string();
    assert!(
        found[0].starts_with(&format!("{policy_name}:2: missing field `from`")),
        "{found:#?}"
    );
    let missing = dir.join("missing.toml").display().to_string();
    assert!(
        found[1].starts_with(&format!("{path}:9: policy file {missing}: cannot read")),
        "{found:#?}"
    );

    std::fs::write(&policy, "version = 1\n").unwrap();
    std::fs::write(&scenario, file(r#""all""#, good)).unwrap();
    let loaded = Scenario::load(path).unwrap();
    let (_, change) = loaded.policy_changes().next().unwrap();
    assert_eq!(*change, PolicyChange::File(dir.join("lockdown.toml")));

    let by_path = Scenario::load("scenarios/national.toml").unwrap();
    let by_name = Scenario::load("national").unwrap();
    assert_eq!(
        (by_path.timeline.len(), by_path.checks.len(), by_path.nodes),
        (by_name.timeline.len(), by_name.checks.len(), by_name.nodes)
    );
    let err = Scenario::load("nationale").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no scenario `nationale`: it is not a built-in (national, province-14, streets) and no such file exists"
    );
}

/// Deletes or duplicates lines: `(true, i)` duplicates line `i % len`, `(false, i)` deletes it.
fn mangle(text: &str, edits: &[(bool, usize)]) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    for &(duplicate, at) in edits {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        if duplicate {
            lines.insert(i, lines[i]);
        } else {
            lines.remove(i);
        }
    }
    lines.join("\n")
}

/// Parses and resolves; every problem must name a line of the file.
fn survives(name: &str, text: &str) {
    let source = SourceText::new(format!("{name}.toml"), text);
    let lines = text.lines().count() + 1;
    let located = |problems: topology::Problems<_>| {
        for problem in problems.iter() {
            assert!(
                (1..=lines).contains(&problem.location.line),
                "{problem} outside 1..={lines}"
            );
        }
    };
    match Scenario::parse(&source) {
        Ok(scenario) => {
            if let Err(problems) = scenario.resolve(&NETWORK) {
                located(problems);
            }
        }
        Err(problems) => located(problems),
    }
}

#[test]
fn deleting_or_duplicating_any_one_line_of_a_builtin_never_panics() {
    for name in builtins() {
        let text = builtin(name).unwrap();
        for line in 0..text.lines().count() {
            survives(name, &mangle(text, &[(false, line)]));
            survives(name, &mangle(text, &[(true, line)]));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mangled_builtins_never_panic(
        which in 0..3usize,
        edits in prop::collection::vec((any::<bool>(), any::<usize>()), 1..12),
    ) {
        let name = builtins()[which];
        let text = builtin(name).unwrap();
        survives(name, &mangle(text, &edits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        survives("noise", &text);
    }

    #[test]
    fn extreme_profile_values_never_panic(
        delay in "[0-9]{0,25}(ns|ms|s|h|y)?",
        queue in any::<i64>(),
        queue_time in "[0-9]{0,25}(ns|ms|s|y)",
        loss in any::<f64>(),
        rate in "[0-9]{0,25} ?[kMG]bit/s",
        load_for in "[0-9]{0,25}(s|y)",
    ) {
        let text = file(
            r#""all""#,
            &format!(
                "[profiles.backbone]\ndelay = {delay:?}\njitter = {delay:?}\nqueue = {queue}\n\
                 loss = {loss:?}\nrate = {rate:?}\n[profiles.provincial]\nqueue = {queue_time:?}\n\
                 [[timeline]]\nat = {delay:?}\naction = \"load\"\nfrom = \"dc:14/exchange\"\n\
                 to = \"dc:ministry/exchange\"\nproto = \"udp\"\nport = 9\nrate-pps = 1\n\
                 duration = {load_for:?}\n"
            ),
        );
        survives("extreme", &text);
        if let Ok(scenario) = Scenario::parse(&SourceText::new("x.toml", &text)) {
            for level in LinkLevel::ALL {
                let _ = scenario.profiles.for_level(*level).values(topology::Kbps(u64::MAX));
            }
        }
    }

    #[test]
    fn arbitrary_link_and_duration_text_never_panics(
        link in "[a-z:0-9-]{0,40}",
        at in "[0-9a-z .]{0,12}",
    ) {
        let text = file(
            r#"{ province = "14" }"#,
            &format!("[[timeline]]\nat = {at:?}\naction = \"cut\"\nlink = {link:?}\n"),
        );
        survives("fields", &text);
    }
}
