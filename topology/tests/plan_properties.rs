//! Properties of address derivation over the full national dataset (all 41,352 streets):
//! no two blocks overlap, every child block lies in its parent's, and derivation is
//! deterministic — the same for any plan that fits, any input order, any run.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::collections::HashMap;
use std::sync::OnceLock;

use ipnet::IpNet;
use proptest::prelude::*;
use topology::network::EMBEDDED_NETWORK_FILE;
use topology::plan::Allocation;
use topology::{Divisions, Network, NodeId, Plan, SourceText};

fn network() -> &'static Network {
    static NETWORK: OnceLock<Network> = OnceLock::new();
    NETWORK.get_or_init(|| Network::national().unwrap())
}

fn range(net: &IpNet) -> (u128, u128) {
    let value = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    (value(net.network()), value(net.broadcast()))
}

/// Checks the structural promises of an allocation; returns the number of blocks checked.
fn check_sound(network: &Network, allocation: &Allocation) -> Result<usize, String> {
    let mut checked = 0;
    for plane in allocation.planes() {
        let mut owned: Vec<(u128, u128, NodeId)> = Vec::new();
        for ix in network.indices() {
            let node = network.node(ix);
            let Some(blocks) = allocation.node(plane, ix) else {
                continue;
            };
            if !blocks.block.contains(&blocks.own) {
                return Err(format!(
                    "{plane} {}: own {} not in block {}",
                    node.id, blocks.own, blocks.block
                ));
            }
            if let Some(parent) = node.parent {
                let parent_blocks = allocation
                    .node(plane, parent)
                    .ok_or_else(|| format!("{plane} {}: placed but its parent is not", node.id))?;
                if !parent_blocks.block.contains(&blocks.block) {
                    return Err(format!(
                        "{plane} {}: {} not in parent's {}",
                        node.id, blocks.block, parent_blocks.block
                    ));
                }
            }
            // Zone blocks lie inside the own block and never overlap each other.
            let mut zones: Vec<(u128, u128)> = Vec::new();
            for (zone, net) in allocation.zones(plane, ix) {
                if !blocks.own.contains(&net) {
                    return Err(format!(
                        "{plane} {}: zone {zone} {net} outside own {}",
                        node.id, blocks.own
                    ));
                }
                zones.push(range(&net));
            }
            zones.sort_unstable();
            if zones.windows(2).any(|w| w[0].1 >= w[1].0) {
                return Err(format!("{plane} {}: zone blocks overlap", node.id));
            }
            owned.push((range(&blocks.own).0, range(&blocks.own).1, node.id));
        }
        // Own blocks of all nodes are pairwise disjoint.
        owned.sort_unstable();
        for pair in owned.windows(2) {
            if pair[0].1 >= pair[1].0 {
                return Err(format!("{plane}: {} and {} overlap", pair[0].2, pair[1].2));
            }
        }
        // Sibling subtree blocks are disjoint, so each parent routes one prefix per child.
        for ix in network.indices() {
            let mut children: Vec<(u128, u128)> = network
                .children(ix)
                .iter()
                .filter_map(|&c| allocation.node(plane, c).map(|b| range(&b.block)))
                .collect();
            children.sort_unstable();
            if children.windows(2).any(|w| w[0].1 >= w[1].0) {
                return Err(format!(
                    "{plane}: children of {} overlap",
                    network.node(ix).id
                ));
            }
        }
        checked += owned.len();
    }
    Ok(checked)
}

/// A plan text with the given prefix lengths; zones are laid out relative to the blocks.
fn plan_text(v6: bool, supernet: u8, province: u8, city: u8, site: u8, data_centre: u8) -> String {
    let (business, office) = if v6 {
        (format!("fd00::/{supernet}"), "fc00::/8".to_owned())
    } else {
        (format!("10.0.0.0/{supernet}"), "172.16.0.0/12".to_owned())
    };
    let (office_province, office_city) = if v6 { (15, 20) } else { (17, 22) };
    format!(
        r#"
version = 1
name = "generated"
[naming]
device = "{{node}}-{{zone}}-{{role}}{{nn}}"
[planes.business]
supernet = "{business}"
province = {province}
city = {city}
site = {site}
data-centre = {data_centre}
[planes.business.data-centre-zones]
mgmt = {{ prefix = {dc_mgmt}, index = 0 }}
exchange = {{ prefix = {dc_half}, index = 1 }}
[planes.business.site-zones]
mgmt = {{ prefix = {site_mgmt}, index = 0 }}
production = {{ prefix = {site_half}, index = 1 }}
[planes.office]
supernet = "{office}"
province = {office_province}
city = {office_city}
data-centre = {office_dc}
[planes.office.data-centre-zones]
mgmt = {{ prefix = {office_dc}, index = 0 }}
"#,
        dc_mgmt = data_centre + 1,
        dc_half = data_centre + 1,
        site_mgmt = site + 1,
        site_half = site + 1,
        office_dc = office_city + 1,
    )
}

/// Prefix lengths that hold the national network: 32 province blocks per supernet, 32 or
/// more city blocks per province, 512 or more site blocks per city, and an own area of
/// 2/16 to 2/64 of a city block. IPv4 plans fit in 10.0.0.0/8; IPv6 plans vary more.
fn fitting_plan() -> impl Strategy<Value = (bool, u8, u8, u8, u8, u8)> {
    let v4 = (
        Just(false),
        Just(8u8),
        Just(5u8),
        Just(5u8),
        Just(9u8),
        4u8..=6,
    );
    let v6 = (Just(true), 8u8..=48, 5u8..=8, 5u8..=8, 9u8..=12, 4u8..=6);
    prop_oneof![v4, v6].prop_map(|(v6, supernet, p, c, site_gap, dc_gap)| {
        let province = supernet + p;
        let city = province + c;
        (v6, supernet, province, city, city + site_gap, city + dc_gap)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn blocks_never_overlap_and_nest_in_their_parents(
        (v6, supernet, province, city, site, data_centre) in fitting_plan()
    ) {
        let text = plan_text(v6, supernet, province, city, site, data_centre);
        let plan = Plan::parse(&SourceText::new("generated.toml", &text)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let allocation = plan.allocate(network()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let checked = check_sound(network(), &allocation).map_err(TestCaseError::fail)?;
        // Business reaches every node (45k), office every data centre.
        prop_assert!(checked > network().nodes().len(), "only {checked} blocks");
        let again = plan.allocate(network()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for ix in network().indices() {
            for plane in allocation.planes() {
                prop_assert_eq!(allocation.node(plane, ix), again.node(plane, ix));
            }
        }
    }
}

#[test]
fn the_national_plan_is_sound_over_every_street() {
    let network = network();
    let allocation = Plan::embedded().unwrap().allocate(network).unwrap();
    let checked = check_sound(network, &allocation).unwrap();
    let streets = network.census().street_offices;
    assert_eq!(streets, 41_352);
    assert!(checked > 45_000, "{checked}");
}

/// The embedded CSV files with their data rows in a different order.
fn shuffled(text: &str, seed: u64) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut state = seed | 1;
    for i in (1..lines.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lines.swap(i, (state % (i as u64 + 1)) as usize);
    }
    std::iter::once(header)
        .chain(lines)
        .map(|l| format!("{l}\n"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn derivation_does_not_depend_on_input_order(seed in any::<u64>()) {
        let read = |name: &str| std::fs::read_to_string(format!("{}/data/divisions/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let files = ["provinces.csv", "cities.csv", "areas.csv", "streets.csv"].map(|n| shuffled(&read(n), seed));
        let sources = files.each_ref().map(|text| SourceText::new("shuffled.csv", text));
        let divisions = Divisions::parse(&sources[0], &sources[1], &sources[2], &sources[3]).unwrap();
        let shuffled_network = Network::build(&divisions, &SourceText::new("n.toml", EMBEDDED_NETWORK_FILE)).unwrap();
        let plan = Plan::embedded().unwrap();
        let reference = plan.allocate(network()).unwrap();
        let allocation = plan.allocate(&shuffled_network).unwrap();
        let by_id: HashMap<NodeId, _> = shuffled_network.indices().map(|ix| (shuffled_network.node(ix).id, ix)).collect();
        prop_assert_eq!(by_id.len(), network().nodes().len());
        for ix in network().indices() {
            let other = by_id[&network().node(ix).id];
            for plane in reference.planes() {
                prop_assert_eq!(reference.node(plane, ix), allocation.node(plane, other));
            }
        }
    }
}
