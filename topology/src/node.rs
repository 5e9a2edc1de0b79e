//! Node identities: stable, printable names for every data centre and site.
//!
//! An id is derived from a division code and a role, so it is the same in every plan,
//! certificate, log line and dashboard: `dc:ministry`, `dc:14`, `dc:1401`, `dr:14`,
//! `site:140105` (a district office), `site:140105001` (a street office) and
//! `site:140105:window-03` (an endpoint from the site inventory).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::division::{DivisionCode, DivisionLevel};
use crate::vocabulary::{EndpointKind, Tier};

/// The identity of a node of the national network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeId {
    /// A data centre (`dc:`): the ministry, a province, a city, or a county-level city that
    /// its province administers directly (`dc:419001`).
    DataCentre(DivisionCode),
    /// A disaster-recovery site (`dr:`, 灾备) of the ministry or a province.
    DisasterRecovery(DivisionCode),
    /// A district/county office (six digits) or street/township office (nine digits).
    Office(DivisionCode),
    /// A site with no code of its own, numbered within its county: a hospital, pharmacy,
    /// service window, bank or tax office.
    Endpoint {
        /// The county-level division the endpoint lies in.
        area: DivisionCode,
        /// What kind of endpoint it is.
        kind: EndpointKind,
        /// Its number within the area and kind, from 1.
        number: u16,
    },
}

/// Text that is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad node id `{given}`: {why} (e.g. dc:ministry, dc:14, dc:1401, site:140105, site:140105:window-03)"
)]
pub struct BadNodeId {
    /// The text given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

impl NodeId {
    /// The ministry data centre.
    pub const MINISTRY: NodeId = NodeId::DataCentre(DivisionCode::NATION);

    /// The division code the id is built on.
    pub fn code(&self) -> DivisionCode {
        match *self {
            NodeId::DataCentre(code) | NodeId::DisasterRecovery(code) | NodeId::Office(code) => {
                code
            }
            NodeId::Endpoint { area, .. } => area,
        }
    }

    /// The id as a host-name-safe tag for device names: `dc-1401`, `site-140105-window-03`.
    pub fn tag(&self) -> String {
        self.to_string().replace(':', "-")
    }

    /// The id a [`tag`](Self::tag) was made from.
    pub fn from_tag(tag: &str) -> Result<NodeId, BadNodeId> {
        let mut parts = tag.splitn(3, '-');
        let (role, code, rest) = (parts.next(), parts.next(), parts.next());
        let text = match (role, code, rest) {
            (Some(role), Some(code), None) => format!("{role}:{code}"),
            (Some(role), Some(code), Some(rest)) => format!("{role}:{code}:{rest}"),
            _ => tag.to_owned(),
        };
        text.parse().map_err(|err: BadNodeId| BadNodeId {
            given: tag.to_owned(),
            why: err.why,
        })
    }

    /// The tier a node of this id stands at, judged from the id alone.
    ///
    /// A `dc:` with a six-digit code is a county-level city administered by its province
    /// (`dc:419001` 济源市), which the network models as a city.
    pub fn tier(&self) -> Tier {
        match self {
            NodeId::DataCentre(code) | NodeId::DisasterRecovery(code) => match code.level() {
                DivisionLevel::Nation => Tier::Ministry,
                DivisionLevel::Province => Tier::Province,
                _ => Tier::City,
            },
            NodeId::Office(_) | NodeId::Endpoint { .. } => Tier::Site,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            NodeId::DataCentre(code) => format!("dc:{code}"),
            NodeId::DisasterRecovery(code) => format!("dr:{code}"),
            NodeId::Office(code) => format!("site:{code}"),
            NodeId::Endpoint { area, kind, number } => format!("site:{area}:{kind}-{number:02}"),
        };
        f.pad(&text)
    }
}

impl FromStr for NodeId {
    type Err = BadNodeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| BadNodeId {
            given: s.to_owned(),
            why: why.to_owned(),
        };
        let mut parts = s.splitn(3, ':');
        let role = parts.next().unwrap_or_default();
        let code: DivisionCode = parts
            .next()
            .ok_or_else(|| bad("missing `:` after the role"))?
            .parse()
            .map_err(|_| bad("the code is not a division code"))?;
        let endpoint = parts.next();
        let level = code.level();
        match (role, endpoint) {
            ("dc", None) => match level {
                DivisionLevel::Street => Err(bad("a data centre has a 2, 4 or 6-digit code")),
                _ => Ok(NodeId::DataCentre(code)),
            },
            ("dr", None) => match level {
                DivisionLevel::Nation | DivisionLevel::Province => {
                    Ok(NodeId::DisasterRecovery(code))
                }
                _ => Err(bad(
                    "disaster-recovery sites belong to the ministry or a province",
                )),
            },
            ("site", None) => match level {
                DivisionLevel::County | DivisionLevel::Street => Ok(NodeId::Office(code)),
                _ => Err(bad("an office site has a 6 or 9-digit code")),
            },
            ("site", Some(endpoint)) => {
                if level != DivisionLevel::County {
                    return Err(bad("an endpoint lies in a 6-digit county-level area"));
                }
                let (kind, number) = endpoint
                    .split_once('-')
                    .ok_or_else(|| bad("an endpoint is written kind-NN, e.g. window-03"))?;
                let kind: EndpointKind = kind
                    .parse()
                    .map_err(|e: crate::UnknownWord| bad(&e.to_string()))?;
                let parsed: u16 = number
                    .parse()
                    .map_err(|_| bad("the endpoint number is not a number"))?;
                if parsed == 0 || format!("{parsed:02}") != number {
                    return Err(bad(
                        "the endpoint number is written with two digits from 01",
                    ));
                }
                Ok(NodeId::Endpoint {
                    area: code,
                    kind,
                    number: parsed,
                })
            }
            ("dc" | "dr", Some(_)) => Err(bad("only sites have a third part")),
            _ => Err(bad("the role is one of dc, dr, site")),
        }
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An index into a [`Network`](crate::Network)'s nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIx(pub(crate) u32);

impl NodeIx {
    /// The position in [`Network::nodes`](crate::Network::nodes).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a node is, beyond its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A data centre of the ministry, a province or a city.
    DataCentre,
    /// A disaster-recovery site.
    DisasterRecovery,
    /// A district or county office (区县经办机构).
    DistrictOffice,
    /// A street, town or township office (街道/乡镇).
    StreetOffice,
    /// An endpoint site from the inventory.
    Endpoint(EndpointKind),
}

impl NodeKind {
    /// The kind of a node with this id.
    pub fn of(id: &NodeId) -> NodeKind {
        match id {
            NodeId::DataCentre(_) => NodeKind::DataCentre,
            NodeId::DisasterRecovery(_) => NodeKind::DisasterRecovery,
            NodeId::Office(code) if code.level() == DivisionLevel::Street => NodeKind::StreetOffice,
            NodeId::Office(_) => NodeKind::DistrictOffice,
            NodeId::Endpoint { kind, .. } => NodeKind::Endpoint(*kind),
        }
    }

    /// Whether nodes of this kind hold a data-centre block (zones of a data centre) rather
    /// than a site block.
    pub fn holds_data_centre_block(self) -> bool {
        matches!(self, NodeKind::DataCentre | NodeKind::DisasterRecovery)
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            NodeKind::DataCentre => "data centre",
            NodeKind::DisasterRecovery => "disaster recovery",
            NodeKind::DistrictOffice => "district office",
            NodeKind::StreetOffice => "street office",
            NodeKind::Endpoint(kind) => kind.as_str(),
        };
        f.pad(text)
    }
}

/// A node of the national network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its stable id.
    pub id: NodeId,
    /// Its name (`太原市`, `小店区`, `国家灾备中心`).
    pub name: String,
    /// Its tier. A municipality is a province that is also its own city level.
    pub tier: Tier,
    /// Whether this is a direct-administered municipality (11, 12, 31, 50): a province-level
    /// data centre that is also the city level for its sites and links to the ministry.
    pub municipality: bool,
    /// The node above it; `None` only for the ministry.
    pub parent: Option<NodeIx>,
}

impl Node {
    /// What kind of node this is.
    pub fn kind(&self) -> NodeKind {
        NodeKind::of(&self.id)
    }

    /// Whether a tier filter naming `tier` covers this node. A municipality counts as both
    /// a province and a city.
    pub fn stands_at(&self, tier: Tier) -> bool {
        self.tier == tier || (self.municipality && tier == Tier::City)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_tags() {
        for text in [
            "dc:ministry",
            "dr:ministry",
            "dc:14",
            "dr:14",
            "dc:1401",
            "dc:419001",
            "site:140105",
            "site:140105001",
            "site:140105:window-03",
            "site:140105:hospital-12",
        ] {
            let id: NodeId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
            assert_eq!(NodeId::from_tag(&id.tag()).unwrap(), id, "{}", id.tag());
        }
    }

    #[test]
    fn malformed_ids_say_what_is_wrong() {
        for (text, why) in [
            ("dc", "missing `:`"),
            ("dc:14:window-01", "only sites"),
            ("site:14", "6 or 9-digit"),
            ("site:140105:window-3", "two digits"),
            ("site:140105:window-00", "two digits"),
            ("site:140105:kiosk-01", "unknown endpoint kind"),
            ("site:140105001:window-01", "6-digit county-level"),
            ("dr:1401", "ministry or a province"),
            ("dc:140105001", "2, 4 or 6-digit"),
            ("router:14", "role is one of"),
            ("dc:1x", "not a division code"),
        ] {
            let err = text.parse::<NodeId>().unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn tiers_follow_from_ids() {
        let tier = |s: &str| s.parse::<NodeId>().unwrap().tier();
        assert_eq!(tier("dc:ministry"), Tier::Ministry);
        assert_eq!(tier("dr:14"), Tier::Province);
        assert_eq!(tier("dc:1401"), Tier::City);
        assert_eq!(tier("dc:419001"), Tier::City);
        assert_eq!(tier("site:140105:bank-01"), Tier::Site);
    }
}
