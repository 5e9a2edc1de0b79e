//! Reading a policy file, and the checks every entry passes on load: the invariants no rule
//! can override (nothing crosses planes, sites never reach each other, the public plane never
//! reaches production), the soft-exchange rules, and well-formed names and ports.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Expect, PolicyProblem, PortRange, Proto, Rule, Scope, SoftExchange, ZoneEndpoint};
use crate::source::{Located, Location, SourceText};
use crate::vocabulary::{Plane, Tier, Zone, ZoneRef};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PolicyFile {
    pub(super) version: Spanned<u32>,
    #[serde(default)]
    pub(super) rules: Vec<Spanned<RuleFile>>,
    #[serde(default)]
    pub(super) soft_exchange: Vec<Spanned<SoftExchangeFile>>,
    #[serde(default)]
    pub(super) tests: Vec<Spanned<TestFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RuleFile {
    pub(super) name: String,
    pub(super) from: ZoneRef,
    pub(super) to: ZoneRef,
    pub(super) scope: Scope,
    pub(super) proto: Proto,
    #[serde(default)]
    pub(super) ports: Vec<PortRange>,
    #[serde(default)]
    pub(super) from_tiers: Vec<Tier>,
    #[serde(default)]
    pub(super) to_tiers: Vec<Tier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SoftExchangeFile {
    pub(super) name: String,
    pub(super) from: ZoneRef,
    pub(super) to: ZoneRef,
    pub(super) proto: Proto,
    #[serde(default)]
    pub(super) ports: Vec<PortRange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TestFile {
    pub(super) name: String,
    pub(super) from: ZoneEndpoint,
    pub(super) to: ZoneEndpoint,
    pub(super) proto: Proto,
    pub(super) port: Option<u16>,
    pub(super) expect: Expect,
}

/// Where problems about one entry go: each is recorded at the entry's line.
type Found<'a> = dyn FnMut(PolicyProblem) + 'a;

/// Checks each entry of a table array, recording its problems at its line; keeps the
/// entries that may stand.
pub(super) fn check_entries<E, T>(
    entries: &[Spanned<E>],
    source: &SourceText<'_>,
    problems: &mut Vec<Located<PolicyProblem>>,
    mut check: impl FnMut(&E, Location, &mut Found<'_>) -> Option<T>,
) -> Vec<T> {
    entries
        .iter()
        .filter_map(|entry| {
            let location = source.locate_span(&entry.span());
            let at = location.clone();
            let mut found = |value| {
                problems.push(Located {
                    location: at.clone(),
                    value,
                })
            };
            check(entry.get_ref(), location, &mut found)
        })
        .collect()
}

/// Names seen so far, per kind, to refuse duplicates.
#[derive(Default)]
pub(super) struct Names(HashMap<(&'static str, String), usize>);

impl Names {
    pub(super) fn claim(
        &mut self,
        what: &'static str,
        name: &str,
        line: usize,
        found: &mut Found<'_>,
    ) {
        if let Some(&first_line) = self.0.get(&(what, name.to_owned())) {
            found(PolicyProblem::DuplicateName {
                what,
                name: name.to_owned(),
                first_line,
            });
        } else {
            self.0.insert((what, name.to_owned()), line);
        }
    }
}

/// A zone reference written with a plane must name a plane the zone exists on.
fn check_zone_ref(what: &'static str, name: &str, zone: ZoneRef, found: &mut Found<'_>) -> bool {
    match zone.plane {
        Some(plane) if !zone.zone.exists_on(plane) => {
            found(PolicyProblem::ZoneNotOnPlane {
                what,
                name: name.to_owned(),
                zone: zone.zone,
                plane,
            });
            false
        }
        _ => true,
    }
}

fn check_ports(
    what: &'static str,
    name: &str,
    proto: Proto,
    ports: &[PortRange],
    found: &mut Found<'_>,
) -> bool {
    if !ports.is_empty() && !proto.has_ports() {
        found(PolicyProblem::PortsWithoutProtocol {
            what,
            name: name.to_owned(),
            proto,
        });
        return false;
    }
    true
}

/// Whether a zone reference reaches onto the public plane as a source.
fn is_public_source(zone: ZoneRef) -> bool {
    match zone.plane {
        Some(plane) => plane == Plane::Public,
        None => zone.zone.planes() == [Plane::Public],
    }
}

/// Checks one rule against the invariants; returns it if it may stand.
pub(super) fn check_rule(
    file: &RuleFile,
    location: Location,
    found: &mut Found<'_>,
) -> Option<Rule> {
    let name = &file.name;
    let mut ok = check_zone_ref("rule", name, file.from, found);
    ok &= check_zone_ref("rule", name, file.to, found);
    ok &= check_ports("rule", name, file.proto, &file.ports, found);
    let to_planes = file.to.planes();
    let planes: Vec<Plane> = file
        .from
        .planes()
        .into_iter()
        .filter(|p| to_planes.contains(p))
        .collect();
    if ok && planes.is_empty() {
        let qualified = |z: ZoneRef| match z.plane {
            Some(_) => z.to_string(),
            None => format!("{}:{}", z.zone.home_plane(), z.zone),
        };
        found(PolicyProblem::CrossesPlanes {
            rule: name.clone(),
            from: qualified(file.from),
            to: qualified(file.to),
        });
        ok = false;
    }
    if file.to.zone == Zone::Production && is_public_source(file.from) {
        found(PolicyProblem::PublicReachesProduction {
            what: "rule",
            name: name.clone(),
        });
        ok = false;
    }
    if file.scope.is_lateral()
        && Rule::admits_tier(&file.from_tiers, Tier::Site)
        && Rule::admits_tier(&file.to_tiers, Tier::Site)
    {
        found(PolicyProblem::SitesReachEachOther {
            rule: name.clone(),
            scope: file.scope,
        });
        ok = false;
    }
    ok.then(|| Rule {
        name: name.clone(),
        location,
        from: file.from,
        to: file.to,
        planes,
        scope: file.scope,
        from_tiers: file.from_tiers.clone(),
        to_tiers: file.to_tiers.clone(),
        proto: file.proto,
        ports: file.ports.clone(),
    })
}

/// Checks a soft-exchange gateway: business exchange ⇄ office decision, nothing else.
pub(super) fn check_soft_exchange(
    file: &SoftExchangeFile,
    location: Location,
    found: &mut Found<'_>,
) -> Option<SoftExchange> {
    let name = &file.name;
    let mut ok = check_zone_ref("soft-exchange", name, file.from, found);
    ok &= check_zone_ref("soft-exchange", name, file.to, found);
    ok &= check_ports("soft-exchange", name, file.proto, &file.ports, found);
    let from = (file.from.query_plane(), file.from.zone);
    let to = (file.to.query_plane(), file.to.zone);
    let bad = |why: String| PolicyProblem::BadSoftExchange {
        name: name.clone(),
        why,
    };
    let planes = [from.0, to.0];
    if planes.contains(&Plane::Public) && to.1 == Zone::Production {
        found(PolicyProblem::PublicReachesProduction {
            what: "soft-exchange",
            name: name.clone(),
        });
        ok = false;
    } else if !(planes.contains(&Plane::Business) && planes.contains(&Plane::Office)) {
        found(bad(format!(
            "a soft exchange joins the business and office planes only, not {} and {}",
            from.0, to.0
        )));
        ok = false;
    } else {
        let (business, office) = if from.0 == Plane::Business {
            (from.1, to.1)
        } else {
            (to.1, from.1)
        };
        if business != Zone::Exchange || office != Zone::Decision {
            found(bad(format!(
                "a soft exchange relays between business:exchange and office:decision, not business:{business} and office:{office}"
            )));
            ok = false;
        }
    }
    ok.then(|| SoftExchange {
        name: name.clone(),
        location,
        from,
        to,
        proto: file.proto,
        ports: file.ports.clone(),
    })
}
