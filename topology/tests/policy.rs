//! The zone policy: invariants refused with file:line, tests carried by the policy, and
//! static reachability under the default policy.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::OnceLock;

use topology::network::Relation;
use topology::plan::Allocation;
use topology::policy::reach::{Cell, sample_pairs};
use topology::policy::{EMBEDDED_POLICY, Proto, Query, Verdict};
use topology::{Network, NodeIx, Plan, Plane, Policy, SourceText, Tier, Zone, ZoneRef};

fn national() -> &'static (Network, Allocation) {
    static NATIONAL: OnceLock<(Network, Allocation)> = OnceLock::new();
    NATIONAL.get_or_init(|| {
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        (network, allocation)
    })
}

fn default_policy() -> Policy {
    let (network, allocation) = national();
    Policy::load(
        &SourceText::new("embedded/policy.toml", EMBEDDED_POLICY),
        network,
        allocation,
    )
    .unwrap()
}

fn ix(id: &str) -> NodeIx {
    national().0.lookup(&id.parse().unwrap()).unwrap()
}

fn decide<'p>(
    policy: &'p Policy,
    from: &str,
    to: &str,
    proto: Proto,
    port: Option<u16>,
) -> Verdict<'p> {
    let (network, allocation) = national();
    let (a, x) = from.split_once('/').unwrap();
    let (b, y) = to.split_once('/').unwrap();
    let query = Query::new(
        ix(a),
        x.parse().unwrap(),
        ix(b),
        y.parse().unwrap(),
        proto,
        port,
    );
    policy.decide(network, allocation, &query)
}

/// Appends `extra` to the default policy; returns the text and the line `extra` starts on.
fn with(extra: &str) -> (String, usize) {
    let line = EMBEDDED_POLICY.lines().count() + 2;
    (format!("{EMBEDDED_POLICY}\n{extra}"), line)
}

fn refusals(text: &str) -> Vec<String> {
    let (network, allocation) = national();
    let problems =
        Policy::load(&SourceText::new("leaky.toml", text), network, allocation).unwrap_err();
    problems.iter().map(|p| p.to_string()).collect()
}

fn assert_refused(extra: &str, expect: &str) {
    assert_refused_at(extra, 0, expect);
}

/// Like `assert_refused`, for problems reported `offset` lines into `extra` (values that
/// cannot be read are reported on their own line).
fn assert_refused_at(extra: &str, offset: usize, expect: &str) {
    let (text, line) = with(extra);
    let line = line + offset;
    let got = refusals(&text);
    let want = format!("leaky.toml:{line}: {expect}");
    assert!(
        got.iter().any(|p| p.starts_with(&want)),
        "want `{want}…`, got {got:#?}"
    );
}

#[test]
fn the_default_policy_loads_and_its_tests_pass() {
    let policy = default_policy();
    assert!(policy.tests().len() >= 10);
    assert!(policy.rules().len() >= 10);
}

#[test]
fn a_rule_bridging_planes_is_refused() {
    assert_refused(
        "[[rules]]\nname = \"bridge\"\nfrom = \"office:decision\"\nto = \"business:exchange\"\nscope = \"same-site\"\nproto = \"tcp\"\nports = [443]\n",
        "rule 'bridge' crosses planes: office:decision → business:exchange",
    );
    // Unqualified zones with no plane in common cross planes too.
    assert_refused(
        "[[rules]]\nname = \"bridge\"\nfrom = \"decision\"\nto = \"exchange\"\nscope = \"parent\"\nproto = \"tcp\"\n",
        "rule 'bridge' crosses planes: office:decision → business:exchange",
    );
}

#[test]
fn a_rule_from_the_public_plane_into_production_is_refused_for_both_reasons() {
    let (text, line) = with(
        "[[rules]]\nname = \"portal-db\"\nfrom = \"dmz\"\nto = \"production\"\nscope = \"same-site\"\nproto = \"tcp\"\nports = [1521]\n",
    );
    let got = refusals(&text);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with(&format!(
            "leaky.toml:{line}: rule 'portal-db' crosses planes: public:dmz → business:production"
        )),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with(&format!(
            "leaky.toml:{line}: rule 'portal-db' lets the public plane reach production"
        )),
        "{got:#?}"
    );
}

#[test]
fn a_rule_letting_sites_reach_each_other_is_refused() {
    assert_refused(
        "[[rules]]\nname = \"neighbours\"\nfrom = \"production\"\nto = \"production\"\nscope = \"sibling\"\nproto = \"tcp\"\nports = [443]\n",
        "rule 'neighbours' lets city-area sites reach each other (scope sibling",
    );
    assert_refused(
        "[[rules]]\nname = \"everyone\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"any\"\nfrom-tiers = [\"site\", \"city\"]\nproto = \"icmp\"\n",
        "rule 'everyone' lets city-area sites reach each other (scope any",
    );
}

#[test]
fn a_lateral_rule_between_cities_is_allowed_by_the_invariants() {
    // Not an invariant violation (the isolation audit judges it); sites are excluded.
    let (text, _) = with(
        "[[rules]]\nname = \"city-peering\"\nfrom = \"production\"\nto = \"production\"\nscope = \"sibling\"\nfrom-tiers = [\"city\"]\nto-tiers = [\"city\"]\nproto = \"tcp\"\nports = [1521]\n",
    );
    let (network, allocation) = national();
    let policy = Policy::load(&SourceText::new("p.toml", &text), network, allocation).unwrap();
    assert!(
        matches!(decide(&policy, "dc:1401/production", "dc:1402/production", Proto::Tcp, Some(1521)), Verdict::Allow(r) if r.name == "city-peering")
    );
    assert!(matches!(
        decide(
            &policy,
            "site:140105001/production",
            "site:140105002/production",
            Proto::Tcp,
            Some(1521)
        ),
        Verdict::Deny(_)
    ));
}

#[test]
fn malformed_rules_are_refused_with_their_line() {
    assert_refused(
        "[[rules]]\nname = \"x\"\nfrom = \"public:production\"\nto = \"production\"\nscope = \"parent\"\nproto = \"tcp\"\n",
        "rule 'x': zone production does not exist on the public plane",
    );
    assert_refused(
        "[[rules]]\nname = \"x\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"parent\"\nproto = \"icmp\"\nports = [7]\n",
        "rule 'x': ports apply only to tcp and udp, not icmp",
    );
    assert_refused(
        "[[rules]]\nname = \"exchange-up\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"parent\"\nproto = \"icmp\"\n",
        "rule 'exchange-up' is declared twice (first on line",
    );
    // A value that cannot be read is reported on its own line.
    let (text, line) = with(
        "[[rules]]\nname = \"x\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"cousin\"\nproto = \"icmp\"\n",
    );
    let got = refusals(&text);
    assert!(
        got[0].starts_with(&format!("leaky.toml:{}: unknown scope `cousin`", line + 4)),
        "{got:#?}"
    );
    assert_refused_at(
        "[[rules]]\nname = \"x\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"parent\"\nproto = \"tcp\"\nports = [\"9000-8000\"]\n",
        6,
        "bad port or range `9000-8000`",
    );
    assert_refused_at(
        "[[rules]]\nname = \"x\"\nfrom = \"mgmt\"\nto = \"mgmt\"\nscope = \"parent\"\nproto = \"tcp\"\nports = [70000]\n",
        6,
        "bad port or range `70000`",
    );
}

#[test]
fn an_unknown_version_and_ports_on_an_icmp_test_are_refused() {
    let text = EMBEDDED_POLICY.replacen("version = 1", "version = 7", 1);
    let line = EMBEDDED_POLICY[..EMBEDDED_POLICY.find("version = 1").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let got = refusals(&text);
    assert_eq!(
        got,
        [format!(
            "leaky.toml:{line}: policy version 7 is not supported (this build reads version 1)"
        )]
    );
    assert_refused(
        "[[tests]]\nname = \"ping\"\nfrom = \"dc:14/mgmt\"\nto = \"dc:1401/mgmt\"\nproto = \"icmp\"\nport = 7\nexpect = \"allow\"\n",
        "test 'ping': ports apply only to tcp and udp, not icmp",
    );
}

#[test]
fn soft_exchange_joins_only_business_exchange_and_office_decision() {
    assert_refused(
        "[[soft-exchange]]\nname = \"portal\"\nfrom = \"public:dmz\"\nto = \"business:exchange\"\nproto = \"tcp\"\n",
        "soft-exchange 'portal': a soft exchange joins the business and office planes only, not public and business",
    );
    assert_refused(
        "[[soft-exchange]]\nname = \"leak\"\nfrom = \"business:production\"\nto = \"office:decision\"\nproto = \"tcp\"\n",
        "soft-exchange 'leak': a soft exchange relays between business:exchange and office:decision, not business:production",
    );
    assert_refused(
        "[[soft-exchange]]\nname = \"in\"\nfrom = \"public:exchange\"\nto = \"business:production\"\nproto = \"tcp\"\n",
        "soft-exchange 'in' lets the public plane reach production",
    );
}

#[test]
fn a_failing_policy_test_is_refused_naming_the_test() {
    assert_refused(
        "[[tests]]\nname = \"provinces talk production directly\"\nfrom = \"dc:14/production\"\nto = \"dc:44/production\"\nproto = \"tcp\"\nport = 1521\nexpect = \"allow\"\n",
        "test 'provinces talk production directly' failed: dc:14/production → dc:44/production tcp/1521: expected allow, but denied: default deny: no rule allows business:production → business:production to a sibling; rule 'sites-to-city-production' (leaky.toml:",
    );
    assert_refused(
        "[[tests]]\nname = \"no exchange up\"\nfrom = \"dc:1401/exchange\"\nto = \"dc:14/exchange\"\nproto = \"tcp\"\nport = 443\nexpect = \"deny\"\n",
        "test 'no exchange up' failed: dc:1401/exchange → dc:14/exchange tcp/443: expected deny, but allowed by rule 'exchange-up' (leaky.toml:",
    );
    assert_refused(
        "[[tests]]\nname = \"ghost\"\nfrom = \"dc:9901/exchange\"\nto = \"dc:14/exchange\"\nproto = \"tcp\"\nport = 443\nexpect = \"deny\"\n",
        "test 'ghost': no node dc:9901 in the network",
    );
    assert_refused_at(
        "[[tests]]\nname = \"bad end\"\nfrom = \"dc:1401\"\nto = \"dc:14/exchange\"\nproto = \"tcp\"\nport = 443\nexpect = \"deny\"\n",
        2,
        "`dc:1401` is not NODE/ZONE",
    );
}

#[test]
fn sites_never_reach_each_other_under_the_default_policy() {
    let policy = default_policy();
    let (network, allocation) = national();
    // Every zone pair, every protocol, between sites of one city, of two cities, and
    // between an office and an endpoint.
    let pairs = [
        ("site:140105001", "site:140105002"),
        ("site:140105", "site:140105:window-01"),
        ("site:140105:hospital-01", "site:140105:pharmacy-01"),
        ("site:140105001", "site:140213050"),
        ("site:110101", "site:110102"),
    ];
    for (a, b) in pairs {
        for (from, to) in [(a, b), (b, a)] {
            let matrix = policy.matrix(network, allocation, ix(from), ix(to));
            assert!(!matrix.rows.is_empty() && !matrix.columns.is_empty());
            for row in &matrix.cells {
                for cell in row {
                    assert!(
                        matches!(cell, Cell::Deny | Cell::OtherPlane),
                        "{from} → {to}: {cell}"
                    );
                }
            }
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                let verdict = decide(
                    &policy,
                    &format!("{from}/production"),
                    &format!("{to}/production"),
                    proto,
                    Some(443),
                );
                assert!(matches!(verdict, Verdict::Deny(_)), "{from} → {to} {proto}");
            }
        }
    }
}

#[test]
fn nothing_crosses_planes_under_the_default_policy() {
    let policy = default_policy();
    let (network, allocation) = national();
    let mut crossings_checked = 0;
    for (a, b) in sample_pairs(network) {
        let matrix = policy.matrix(network, allocation, a, b);
        for (r, &(row_plane, row_zone)) in matrix.rows.iter().enumerate() {
            for (c, &(column_plane, column_zone)) in matrix.columns.iter().enumerate() {
                if row_plane == column_plane {
                    continue;
                }
                crossings_checked += 1;
                assert!(
                    !matches!(matrix.cells[r][c], Cell::Allow(_)),
                    "{row_plane}:{row_zone} → {column_plane}:{column_zone}"
                );
                let query = Query::new(
                    a,
                    ZoneRef {
                        plane: Some(row_plane),
                        zone: row_zone,
                    },
                    b,
                    ZoneRef {
                        plane: Some(column_plane),
                        zone: column_zone,
                    },
                    Proto::Tcp,
                    Some(443),
                );
                assert!(matches!(
                    policy.decide(network, allocation, &query),
                    Verdict::Deny(_)
                ));
            }
        }
    }
    assert!(
        crossings_checked > 100,
        "only {crossings_checked} crossings checked"
    );
}

#[test]
fn queries_explain_allow_and_deny() {
    let policy = default_policy();
    match decide(
        &policy,
        "dc:1401/exchange",
        "dc:ministry/exchange",
        Proto::Tcp,
        Some(1414),
    ) {
        Verdict::Allow(rule) => {
            assert_eq!(rule.name, "exchange-up");
            assert_eq!(
                rule.location.to_string(),
                format!("embedded/policy.toml:{}", line_of("name = \"exchange-up\""))
            );
        }
        other => panic!("{other:?}"),
    }
    let deny = decide(
        &policy,
        "dc:1401/exchange",
        "dc:ministry/exchange",
        Proto::Tcp,
        Some(1521),
    )
    .explain();
    assert!(
        deny.contains("rule 'exchange-up'")
            && deny.contains("does not apply: it allows only tcp/443,1414"),
        "{deny}"
    );
    let deny = decide(
        &policy,
        "dc:1401/exchange",
        "dc:1402/exchange",
        Proto::Tcp,
        Some(443),
    )
    .explain();
    assert!(
        deny.contains("to a sibling") && deny.contains("does not apply: its scope is any-ancestor"),
        "{deny}"
    );
    let deny = decide(
        &policy,
        "site:140105/exchange",
        "dc:1401/exchange",
        Proto::Tcp,
        Some(443),
    )
    .explain();
    assert_eq!(
        deny,
        "denied: site:140105 has no exchange zone on the business plane"
    );
    let deny = decide(
        &policy,
        "site:140105/business:mgmt",
        "dc:1401/decision",
        Proto::Tcp,
        Some(443),
    )
    .explain();
    assert!(
        deny.contains("planes are never bridged (business → office)"),
        "{deny}"
    );
    // Without a plane, mgmt is taken on the plane it shares with the other end.
    let deny = decide(
        &policy,
        "site:140105/mgmt",
        "dc:1401/decision",
        Proto::Tcp,
        Some(443),
    )
    .explain();
    assert_eq!(deny, "denied: site:140105 is not on the office plane");
    let deny = decide(
        &policy,
        "dc:1401/exchange",
        "dc:1401/decision",
        Proto::Tcp,
        Some(443),
    )
    .explain();
    assert!(
        deny.contains("soft-exchange gateway 'decision-feed'") && deny.contains("not as a route"),
        "{deny}"
    );
    // dmz → exchange is taken on the public plane, where both exist.
    assert!(
        matches!(decide(&policy, "dc:1401/dmz", "dc:1401/exchange", Proto::Tcp, Some(8443)), Verdict::Allow(r) if r.name == "dmz-to-exchange-services")
    );
}

fn line_of(text: &str) -> usize {
    EMBEDDED_POLICY[..EMBEDDED_POLICY.find(text).unwrap()]
        .matches('\n')
        .count()
}

#[test]
fn sample_pairs_cover_every_tier_relation_once() {
    let (network, _) = national();
    let pairs = sample_pairs(network);
    let keys: Vec<(Tier, Tier, Relation)> = pairs
        .iter()
        .map(|&(a, b)| {
            (
                network.node(a).tier,
                network.node(b).tier,
                network.relation(a, b),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.dedup();
    assert_eq!(sorted, keys, "one pair per key, in order");
    for key in [
        (Tier::Site, Tier::City, Relation::Parent),
        (Tier::Site, Tier::Site, Relation::Sibling),
        (Tier::Site, Tier::Site, Relation::Unrelated),
        (Tier::City, Tier::Province, Relation::Parent),
        (Tier::City, Tier::Ministry, Relation::Ancestor),
        (Tier::Province, Tier::Province, Relation::Child),
        (Tier::Site, Tier::Province, Relation::Parent),
    ] {
        assert!(keys.contains(&key), "{key:?} missing");
    }
    let _ = (Plane::Business, Zone::Mgmt);
}
