//! The network file: what the division codes cannot say about the network.
//!
//! Link profiles per level (capacity, cost, primary and backup underlay), disaster-recovery
//! sites, endpoint sites (hospitals, pharmacies, windows, banks, tax offices), per-link
//! overrides and lateral links. The national default is embedded; a user passes their own
//! copy with `--network FILE`.

use serde::Deserialize;
use toml::Spanned;

use crate::link::Underlay;
use crate::node::NodeId;
use crate::vocabulary::Kbps;

/// The embedded default network file.
pub const EMBEDDED: &str = include_str!("../../defaults/network.toml");

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct NetworkFile {
    pub(crate) version: Spanned<u32>,
    pub(crate) links: LinkProfiles,
    #[serde(default)]
    pub(crate) dr_sites: Vec<Spanned<DrSite>>,
    #[serde(default)]
    pub(crate) endpoints: Vec<Spanned<Endpoint>>,
    #[serde(default)]
    pub(crate) link_overrides: Vec<Spanned<LinkOverride>>,
    #[serde(default)]
    pub(crate) lateral_links: Vec<Spanned<LateralLink>>,
}

/// The profile every link of a level starts from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LinkProfiles {
    pub(crate) backbone: LinkProfile,
    pub(crate) provincial: LinkProfile,
    pub(crate) city_area: LinkProfile,
    pub(crate) disaster_recovery: LinkProfile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LinkProfile {
    pub(crate) capacity: Kbps,
    pub(crate) cost: u32,
    pub(crate) primary: Underlay,
    pub(crate) backup: Option<Underlay>,
}

/// `[[dr-sites]]`: a disaster-recovery site of the ministry or a province.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DrSite {
    /// The data centre it backs up (`dc:ministry` or `dc:14`).
    pub(crate) of: NodeId,
    pub(crate) name: String,
}

/// `[[endpoints]]`: a site with no division code of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Endpoint {
    pub(crate) id: NodeId,
    pub(crate) name: String,
}

/// `[[link-overrides]]`: changes to the uplink of one node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LinkOverride {
    /// The node whose uplink this is.
    pub(crate) node: NodeId,
    pub(crate) capacity: Option<Kbps>,
    pub(crate) cost: Option<u32>,
    pub(crate) primary: Option<Underlay>,
    pub(crate) backup: Option<Underlay>,
}

/// `[[lateral-links]]`: a link outside the tree, which exists only because it is declared.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LateralLink {
    pub(crate) a: NodeId,
    pub(crate) b: NodeId,
    pub(crate) capacity: Kbps,
    pub(crate) cost: u32,
    pub(crate) primary: Underlay,
    pub(crate) backup: Option<Underlay>,
}
