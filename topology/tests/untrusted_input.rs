//! Files and command-line words come from people and other programs: whatever they hold,
//! parsing returns a value or an error that names a line of the file — it never panics.
//!
//! Mutations of the real embedded files (lines dropped, duplicated, spliced with TOML and
//! CSV punctuation) reach far deeper into the parsers than random bytes would.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::OnceLock;

use proptest::prelude::*;
use topology::network::EMBEDDED_NETWORK_FILE;
use topology::plan::inventory::check_file;
use topology::plan::{Allocation, EMBEDDED_PLAN};
use topology::policy::{EMBEDDED_POLICY, PortRange, ZoneEndpoint};
use topology::{
    DivisionCode, Divisions, Kbps, Location, Network, NodeId, Plan, Policy, SourceText, ZoneRef,
};

fn national() -> &'static (Divisions, Network, Plan, Allocation) {
    static NATIONAL: OnceLock<(Divisions, Network, Plan, Allocation)> = OnceLock::new();
    NATIONAL.get_or_init(|| {
        let divisions = Divisions::embedded().unwrap();
        let network = Network::national().unwrap();
        let plan = Plan::embedded().unwrap();
        let allocation = plan.allocate(&network).unwrap();
        (divisions, network, plan, allocation)
    })
}

/// An edit to a text: (where, what, with).
type Edit = (u16, u8, String);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let splice = prop_oneof![
        Just("=".to_owned()),
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("{".to_owned()),
        Just("\"".to_owned()),
        Just(",".to_owned()),
        Just("\n".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999".to_owned()),
        Just("/0".to_owned()),
        Just("::".to_owned()),
        Just("production".to_owned()),
        Just("dc:1401".to_owned()),
        Just("\u{0}".to_owned()),
        "[a-z0-9 .:/-]{0,12}",
    ];
    proptest::collection::vec((any::<u16>(), 0u8..4, splice), 1..6)
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (at, what, with) in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = usize::from(*at) % lines.len();
        match what {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            2 => {
                let cut = lines[i]
                    .char_indices()
                    .map(|(at, _)| at)
                    .nth(usize::from(*at) % (lines[i].chars().count() + 1))
                    .unwrap_or(lines[i].len());
                lines[i].insert_str(cut, with);
            }
            _ => lines[i] = with.clone(),
        }
    }
    lines.join("\n")
}

/// Every location in a report points into the file that was read.
fn assert_points_into(
    name: &str,
    text: &str,
    locations: impl Iterator<Item = Location>,
) -> Result<(), TestCaseError> {
    let lines = text.lines().count().max(1) + 1;
    for location in locations {
        prop_assert_eq!(&*location.file, name);
        prop_assert!(
            (1..=lines).contains(&location.line),
            "line {} of {}",
            location.line,
            lines
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mutated_plans_are_refused_with_a_line_or_allocate(edits in edits()) {
        let text = mutate(EMBEDDED_PLAN, &edits);
        match Plan::parse(&SourceText::new("fuzz.toml", &text)) {
            Ok(plan) => {
                // A plan that parses either holds the network or says which node does not fit.
                if let Err(err) = plan.allocate(&national().1) {
                    prop_assert!(!err.0.is_empty());
                }
            }
            Err(problems) => {
                prop_assert!(!problems.0.is_empty());
                assert_points_into("fuzz.toml", &text, problems.iter().map(|p| p.location.clone()))?;
            }
        }
    }

    #[test]
    fn mutated_policies_are_refused_with_a_line_or_load(edits in edits()) {
        let text = mutate(EMBEDDED_POLICY, &edits);
        let (_, network, _, allocation) = national();
        if let Err(problems) = Policy::load(&SourceText::new("fuzz.toml", &text), network, allocation) {
            prop_assert!(!problems.0.is_empty());
            assert_points_into("fuzz.toml", &text, problems.iter().map(|p| p.location.clone()))?;
        }
    }

    #[test]
    fn mutated_inventories_give_findings_with_a_line(edits in edits()) {
        let base = "name,address\ndc-1401-prod-db01,10.32.64.130\ndc-1401-exch-mq01,10.32.64.70/26\nsite-140105-mgmt-sw01,10.32.66.1\n";
        let text = mutate(base, &edits);
        let (_, network, plan, allocation) = national();
        for name in ["fuzz.csv", "fuzz.toml"] {
            let report = check_file(&SourceText::new(name, &text), plan, network, allocation);
            assert_points_into(name, &text, report.findings.iter().map(|f| f.location.clone()))?;
        }
    }

    #[test]
    fn words_parse_or_refuse_and_round_trip(text in "\\PC{0,24}") {
        if let Ok(id) = text.parse::<NodeId>() {
            prop_assert_eq!(id.to_string(), text.clone());
        }
        if let Ok(code) = text.parse::<DivisionCode>() {
            prop_assert_eq!(code.to_string(), text.clone());
        }
        if let Ok(endpoint) = text.parse::<ZoneEndpoint>() {
            prop_assert_eq!(endpoint.to_string().parse::<ZoneEndpoint>(), Ok(endpoint));
        }
        if let Ok(zone) = text.parse::<ZoneRef>() {
            prop_assert_eq!(zone.to_string().parse::<ZoneRef>(), Ok(zone));
        }
        if let Ok(capacity) = text.parse::<Kbps>() {
            prop_assert_eq!(capacity.to_string().parse::<Kbps>(), Ok(capacity));
        }
        if let Ok(ports) = text.parse::<PortRange>() {
            prop_assert!(ports.first >= 1 && ports.first <= ports.last);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn mutated_network_files_are_refused_with_a_line_or_build(edits in edits()) {
        let text = mutate(EMBEDDED_NETWORK_FILE, &edits);
        if let Err(problems) = Network::build(&national().0, &SourceText::new("fuzz.toml", &text)) {
            prop_assert!(!problems.0.is_empty());
            assert_points_into("fuzz.toml", &text, problems.iter().map(|p| p.location.clone()))?;
        }
    }

    #[test]
    fn mutated_division_files_are_refused_with_a_line_or_read(edits in edits()) {
        let cities = std::fs::read_to_string(format!("{}/data/divisions/cities.csv", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let provinces = std::fs::read_to_string(format!("{}/data/divisions/provinces.csv", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let text = mutate(&cities, &edits);
        let result = Divisions::parse(
            &SourceText::new("provinces.csv", &provinces),
            &SourceText::new("cities.csv", &text),
            &SourceText::new("areas.csv", "code,name,cityCode\n"),
            &SourceText::new("streets.csv", "code,name,areaCode\n"),
        );
        if let Err(problems) = result {
            assert_points_into("cities.csv", &text, problems.iter().map(|p| p.location.clone()))?;
        }
    }
}
