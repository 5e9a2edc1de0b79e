//! The IP plan: one file that says how every address of every plane is derived.
//!
//! A plan gives each plane a supernet, the prefix length of a province, city and site
//! block, the size of a data centre's own block and the zone sub-blocks inside it, and the
//! device naming rule. [`Plan::allocate`] then derives every node's block from the division
//! codes alone, deterministically; [`inventory`] checks hand-assigned devices against it.
//!
//! Layout of a block, at every level: first the node's own area — its data-centre block,
//! then its disaster-recovery block — and then its children, one block each, in code order.

mod allocate;
mod block;
mod index;
pub mod inventory;
mod naming;

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::node::NodeKind;
use crate::source::{Located, Problems, SourceText};
use crate::vocabulary::{Plane, Tier, Zone};

pub use allocate::{Allocation, AllocationError, Locator, NoRoom, NodeBlock, Owner};
pub use index::AddressIndex;
pub use naming::{DeviceName, NamingRule};

/// The embedded national plan, also shipped as `topology/defaults/plan.toml`.
pub const EMBEDDED_PLAN: &str = include_str!("../../defaults/plan.toml");

/// A zone's sub-block: the `index`-th block of length `prefix` inside the node's own block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneBlock {
    /// The zone.
    pub zone: Zone,
    /// Prefix length of the zone's block.
    pub prefix: u8,
    /// Which block of that length, counting from 0 at the start of the own block.
    pub index: u32,
}

/// How one plane is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneLayout {
    /// The plane.
    pub plane: Plane,
    /// Everything of the plane lies in this block; the ministry's block is the supernet.
    pub supernet: IpNet,
    /// Prefix length of a province block.
    pub province: u8,
    /// Prefix length of a city block.
    pub city: u8,
    /// Prefix length of a city-area site block; `None` if the plane does not reach sites.
    pub site: Option<u8>,
    /// Prefix length of a data centre's own block (and of a disaster-recovery site's).
    pub data_centre: u8,
    /// Zone blocks inside a data-centre block, in address order.
    pub data_centre_zones: Vec<ZoneBlock>,
    /// Zone blocks inside a site block, in address order.
    pub site_zones: Vec<ZoneBlock>,
}

impl ZoneBlock {
    /// How many addresses into the own block the zone block starts, in a family of `bits`.
    pub fn offset(&self, bits: u8) -> u128 {
        block::size(bits, self.prefix).unwrap_or(0) * u128::from(self.index)
    }
}

impl PlaneLayout {
    /// Address bits of the plane's family (32 or 128).
    pub fn family_bits(&self) -> u8 {
        block::family_bits(&self.supernet)
    }

    /// The prefix length of the block of a node at `tier`, if the plane reaches that tier.
    pub fn prefix_for(&self, tier: Tier) -> Option<u8> {
        match tier {
            Tier::Ministry => Some(self.supernet.prefix_len()),
            Tier::Province => Some(self.province),
            Tier::City => Some(self.city),
            Tier::Site => self.site,
        }
    }

    /// The zones a node of this kind has on this plane.
    pub fn zones_for(&self, kind: NodeKind) -> &[ZoneBlock] {
        if kind.holds_data_centre_block() {
            &self.data_centre_zones
        } else {
            &self.site_zones
        }
    }
}

/// A checked plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan's name (`national`).
    pub name: String,
    /// Where it was read from.
    pub origin: String,
    /// The device naming rule.
    pub naming: NamingRule,
    layouts: Vec<PlaneLayout>,
}

/// A problem in a plan file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanProblem {
    /// Not TOML, or not the shape of a plan.
    #[error("{0}")]
    Syntax(String),
    /// A version this build does not read.
    #[error("plan version {0} is not supported (this build reads version 1)")]
    Version(u32),
    /// No plane at all.
    #[error("the plan has no planes")]
    NoPlanes,
    /// A supernet written with host bits.
    #[error("plane {plane}: supernet {given} has host bits set (did you mean {network}?)")]
    HostBits {
        /// The plane.
        plane: Plane,
        /// As written.
        given: IpNet,
        /// With host bits cleared.
        network: IpNet,
    },
    /// A level prefix not longer than the level above it, or longer than the family allows.
    #[error(
        "plane {plane}: the {level} prefix /{len} must be longer than the {above} prefix /{above_len} and at most /{max}"
    )]
    LevelOrder {
        /// The plane.
        plane: Plane,
        /// The level (`province`, `city`, `site`, `data-centre`).
        level: &'static str,
        /// Its prefix length.
        len: u8,
        /// The level it must be longer than.
        above: &'static str,
        /// That level's prefix length.
        above_len: u8,
        /// The family's address bits.
        max: u8,
    },
    /// The own area (data-centre block plus disaster-recovery block) does not fit a city.
    #[error("plane {plane}: a node's own area is two /{data_centre} blocks (data centre and disaster recovery), which does not fit in a /{city} city block; use a data-centre prefix of /{} or longer", city + 1)]
    OwnAreaTooBig {
        /// The plane.
        plane: Plane,
        /// The data-centre prefix length.
        data_centre: u8,
        /// The city prefix length.
        city: u8,
    },
    /// Site zones given for a plane without sites, or the reverse.
    #[error("plane {plane}: {why}")]
    SiteLevel {
        /// The plane.
        plane: Plane,
        /// What is inconsistent.
        why: &'static str,
    },
    /// A zone that cannot exist on this plane.
    #[error("plane {plane}: zone {zone} cannot exist on this plane (it lives on: {allowed})")]
    WrongPlane {
        /// The plane.
        plane: Plane,
        /// The zone.
        zone: Zone,
        /// The planes it may exist on.
        allowed: String,
    },
    /// A zone block that does not fit inside its own block.
    #[error("plane {plane}: zone {zone} /{prefix} index {index} does not fit in a /{within} {block} block ({count} blocks of /{prefix}: index 0–{last})", last = count.saturating_sub(1))]
    ZoneOutside {
        /// The plane.
        plane: Plane,
        /// The zone.
        zone: Zone,
        /// Its prefix length.
        prefix: u8,
        /// Its index.
        index: u32,
        /// The prefix length of the block it must lie in.
        within: u8,
        /// `data-centre` or `site`.
        block: &'static str,
        /// How many blocks of `prefix` the block holds.
        count: u128,
    },
    /// Two zone blocks overlap.
    #[error("plane {plane}: zone {zone} overlaps zone {other} in the {block} block")]
    ZoneOverlap {
        /// The plane.
        plane: Plane,
        /// The zone.
        zone: Zone,
        /// The zone it overlaps.
        other: Zone,
        /// `data-centre` or `site`.
        block: &'static str,
    },
    /// A block kind without a `mgmt` zone, which the agent itself lives in.
    #[error(
        "plane {plane}: the {block} block has no mgmt zone (the agent's own address lives there)"
    )]
    NoMgmt {
        /// The plane.
        plane: Plane,
        /// `data-centre` or `site`.
        block: &'static str,
    },
    /// Two planes whose supernets overlap.
    #[error(
        "plane {plane}: supernet {supernet} overlaps plane {other}'s {other_supernet}; planes never share addresses"
    )]
    PlanesOverlap {
        /// The plane.
        plane: Plane,
        /// Its supernet.
        supernet: IpNet,
        /// The other plane.
        other: Plane,
        /// Its supernet.
        other_supernet: IpNet,
    },
    /// A naming rule that cannot be used.
    #[error("{0}")]
    Naming(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PlanFile {
    version: Spanned<u32>,
    name: String,
    naming: NamingFile,
    planes: BTreeMap<Plane, Spanned<PlaneFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NamingFile {
    device: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PlaneFile {
    supernet: Spanned<IpNet>,
    province: Spanned<u8>,
    city: Spanned<u8>,
    site: Option<Spanned<u8>>,
    data_centre: Spanned<u8>,
    data_centre_zones: BTreeMap<Zone, Spanned<ZoneBlockFile>>,
    #[serde(default)]
    site_zones: BTreeMap<Zone, Spanned<ZoneBlockFile>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneBlockFile {
    prefix: u8,
    index: u32,
}

impl Plan {
    /// The embedded national plan.
    pub fn embedded() -> Result<Plan, Problems<PlanProblem>> {
        Plan::parse(&SourceText::new("embedded/plan.toml", EMBEDDED_PLAN))
    }

    /// Reads and checks a plan file, reporting every problem with its line.
    pub fn parse(source: &SourceText<'_>) -> Result<Plan, Problems<PlanProblem>> {
        let file: PlanFile = source
            .parse_toml()
            .map_err(|e| Problems(vec![e.map(PlanProblem::Syntax)]))?;
        let mut problems = Vec::new();
        let mut report = |span: std::ops::Range<usize>, problem| {
            problems.push(Located {
                location: source.locate_span(&span),
                value: problem,
            });
        };
        if *file.version.get_ref() != 1 {
            report(
                file.version.span(),
                PlanProblem::Version(*file.version.get_ref()),
            );
        }
        let naming = NamingRule::new(file.naming.device.get_ref());
        if let Err(why) = &naming {
            report(file.naming.device.span(), PlanProblem::Naming(why.clone()));
        }
        if file.planes.is_empty() {
            report(0..0, PlanProblem::NoPlanes);
        }
        let mut layouts = Vec::new();
        for (&plane, spec) in &file.planes {
            if let Some(layout) = check_plane(plane, spec, &mut report) {
                layouts.push((layout, spec.get_ref().supernet.span()));
            }
        }
        for (i, (layout, span)) in layouts.iter().enumerate() {
            for (other, _) in &layouts[..i] {
                if layout.supernet.contains(&other.supernet.network())
                    || other.supernet.contains(&layout.supernet.network())
                {
                    report(
                        span.clone(),
                        PlanProblem::PlanesOverlap {
                            plane: layout.plane,
                            supernet: layout.supernet,
                            other: other.plane,
                            other_supernet: other.supernet,
                        },
                    );
                }
            }
        }
        match naming {
            Ok(naming) if problems.is_empty() => Ok(Plan {
                name: file.name,
                origin: source.name().to_string(),
                naming,
                layouts: layouts.into_iter().map(|(layout, _)| layout).collect(),
            }),
            _ => Err(Problems(problems)),
        }
    }

    /// The layouts of the planes this plan covers, in plane order.
    pub fn layouts(&self) -> &[PlaneLayout] {
        &self.layouts
    }

    /// The layout of one plane.
    pub fn layout(&self, plane: Plane) -> Option<&PlaneLayout> {
        self.layouts.iter().find(|layout| layout.plane == plane)
    }
}

/// Checks one plane's table; reports problems and returns the layout if it is usable.
fn check_plane(
    plane: Plane,
    spec: &Spanned<PlaneFile>,
    report: &mut impl FnMut(std::ops::Range<usize>, PlanProblem),
) -> Option<PlaneLayout> {
    let file = spec.get_ref();
    let supernet = *file.supernet.get_ref();
    let bits = block::family_bits(&supernet);
    let mut usable = true;
    if supernet.trunc() != supernet {
        report(
            file.supernet.span(),
            PlanProblem::HostBits {
                plane,
                given: supernet,
                network: supernet.trunc(),
            },
        );
        usable = false;
    }

    usable &= check_levels(plane, file, report);
    let site = file.site.as_ref();
    let (city, data_centre) = (*file.city.get_ref(), *file.data_centre.get_ref());

    match (site.is_some(), file.site_zones.is_empty()) {
        (true, true) => {
            report(
                spec.span(),
                PlanProblem::SiteLevel {
                    plane,
                    why: "a plane that reaches sites needs site-zones",
                },
            );
            usable = false;
        }
        (false, false) => {
            report(
                spec.span(),
                PlanProblem::SiteLevel {
                    plane,
                    why: "site-zones given but the plane has no site prefix",
                },
            );
            usable = false;
        }
        _ => {}
    }

    let data_centre_zones = check_zones(
        plane,
        "data-centre",
        data_centre,
        bits,
        &file.data_centre_zones,
        spec,
        report,
    );
    let site_zones = match site {
        Some(site) => check_zones(
            plane,
            "site",
            *site.get_ref(),
            bits,
            &file.site_zones,
            spec,
            report,
        ),
        None => Some(Vec::new()),
    };
    match (usable, data_centre_zones, site_zones) {
        (true, Some(data_centre_zones), Some(site_zones)) => Some(PlaneLayout {
            plane,
            supernet,
            province: *file.province.get_ref(),
            city,
            site: site.map(|s| *s.get_ref()),
            data_centre,
            data_centre_zones,
            site_zones,
        }),
        _ => None,
    }
}

/// Checks that prefix lengths grow down the tree and that a node's own area fits a city.
fn check_levels(
    plane: Plane,
    file: &PlaneFile,
    report: &mut impl FnMut(std::ops::Range<usize>, PlanProblem),
) -> bool {
    let supernet = *file.supernet.get_ref();
    let bits = block::family_bits(&supernet);
    let mut usable = true;
    let mut above = ("supernet", supernet.prefix_len());
    let levels = [
        Some(("province", &file.province)),
        Some(("city", &file.city)),
        file.site.as_ref().map(|s| ("site", s)),
    ];
    for (level, len) in levels.into_iter().flatten() {
        if *len.get_ref() <= above.1 || *len.get_ref() > bits {
            let problem = PlanProblem::LevelOrder {
                plane,
                level,
                len: *len.get_ref(),
                above: above.0,
                above_len: above.1,
                max: bits,
            };
            report(len.span(), problem);
            usable = false;
        }
        above = (level, *len.get_ref());
    }
    let (city, data_centre) = (*file.city.get_ref(), *file.data_centre.get_ref());
    if data_centre > bits {
        let problem = PlanProblem::LevelOrder {
            plane,
            level: "data-centre",
            len: data_centre,
            above: "city",
            above_len: city,
            max: bits,
        };
        report(file.data_centre.span(), problem);
        usable = false;
    } else if data_centre <= city {
        let problem = PlanProblem::OwnAreaTooBig {
            plane,
            data_centre,
            city,
        };
        report(file.data_centre.span(), problem);
        usable = false;
    }
    usable
}

/// Checks the zone blocks of one block kind: on the right plane, inside the block, apart.
fn check_zones(
    plane: Plane,
    block: &'static str,
    within: u8,
    bits: u8,
    zones: &BTreeMap<Zone, Spanned<ZoneBlockFile>>,
    spec: &Spanned<PlaneFile>,
    report: &mut impl FnMut(std::ops::Range<usize>, PlanProblem),
) -> Option<Vec<ZoneBlock>> {
    let mut usable = true;
    let mut placed: Vec<(ZoneBlock, u128, u128)> = Vec::new();
    for (&zone, entry) in zones {
        let ZoneBlockFile { prefix, index } = *entry.get_ref();
        let zone_block = ZoneBlock {
            zone,
            prefix,
            index,
        };
        if !zone.exists_on(plane) {
            let allowed = zone
                .planes()
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            report(
                entry.span(),
                PlanProblem::WrongPlane {
                    plane,
                    zone,
                    allowed,
                },
            );
            usable = false;
            continue;
        }
        let count = if prefix >= within && prefix <= bits {
            1u128
                .checked_shl(u32::from(prefix - within))
                .unwrap_or(u128::MAX)
        } else {
            0
        };
        let size = block::size(bits, prefix).unwrap_or(0);
        if u128::from(index) >= count {
            report(
                entry.span(),
                PlanProblem::ZoneOutside {
                    plane,
                    zone,
                    prefix,
                    index,
                    within,
                    block,
                    count,
                },
            );
            usable = false;
            continue;
        }
        let start = u128::from(index) * size;
        let end = start + size - 1;
        if let Some((other, _, _)) = placed.iter().find(|(_, s, e)| start <= *e && *s <= end) {
            report(
                entry.span(),
                PlanProblem::ZoneOverlap {
                    plane,
                    zone,
                    other: other.zone,
                    block,
                },
            );
            usable = false;
        }
        placed.push((zone_block, start, end));
    }
    if !zones.contains_key(&Zone::Mgmt) {
        report(spec.span(), PlanProblem::NoMgmt { plane, block });
        usable = false;
    }
    placed.sort_by_key(|&(_, start, _)| start);
    usable.then(|| placed.into_iter().map(|(z, _, _)| z).collect())
}
