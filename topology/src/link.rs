//! Links of the tree (部省, 省市, 市域), disaster-recovery links and declared lateral links.
//!
//! A link is what the scheduler reserves bandwidth on and what the agents probe: it has a
//! capacity, a cost, a primary underlay circuit and optionally a backup one.

use serde::Deserialize;

use crate::node::NodeIx;
use crate::vocabulary::{Kbps, vocabulary};
use std::fmt;

vocabulary! {
    /// Which part of the network a link belongs to.
    LinkLevel, "link level" {
        /// 部省: ministry ⇄ province (and municipality).
        Backbone = "backbone",
        /// 省市: province ⇄ city.
        Provincial = "provincial",
        /// 市域: city ⇄ city-area site.
        CityArea = "city-area",
        /// 灾备: ministry or province ⇄ its disaster-recovery site.
        DisasterRecovery = "disaster-recovery",
        /// A lateral link declared in the network file; never implied by the tree.
        Lateral = "lateral",
    }
}

impl LinkLevel {
    /// The Chinese name used in the national documents.
    pub const fn chinese(self) -> &'static str {
        match self {
            LinkLevel::Backbone => "部省",
            LinkLevel::Provincial => "省市",
            LinkLevel::CityArea => "市域",
            LinkLevel::DisasterRecovery => "灾备",
            LinkLevel::Lateral => "横向",
        }
    }
}

vocabulary! {
    /// The kind of carrier circuit an underlay path runs on.
    Circuit, "circuit" {
        /// SDH leased line.
        Sdh = "sdh",
        /// MSTP leased line.
        Mstp = "mstp",
        /// A carrier MPLS VPN.
        MplsVpn = "mpls-vpn",
        /// An encrypted tunnel over the internet.
        InternetVpn = "internet-vpn",
        /// 4G/5G mobile access.
        Mobile = "mobile",
        /// A satellite link.
        Satellite = "satellite",
        /// Dark fibre owned or leased outright.
        Fibre = "fibre",
    }
}

/// One underlay path of a link: which carrier and what circuit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Underlay {
    /// The carrier (`china-telecom`, `china-unicom`, `china-mobile`, …).
    pub carrier: String,
    /// The circuit type.
    pub circuit: Circuit,
}

impl fmt::Display for Underlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.carrier, self.circuit)
    }
}

/// An index into a [`Network`](crate::Network)'s links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkIx(pub(crate) u32);

impl LinkIx {
    /// The position in [`Network::links`](crate::Network::links).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A link between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The node nearer the ministry (for a lateral link, the first one declared).
    pub upper: NodeIx,
    /// The node further from the ministry (for a lateral link, the second one).
    pub lower: NodeIx,
    /// Which part of the network this link belongs to.
    pub level: LinkLevel,
    /// Capacity of the link.
    pub capacity: Kbps,
    /// Routing cost; lower is preferred.
    pub cost: u32,
    /// The underlay path used while it is healthy.
    pub primary: Underlay,
    /// The underlay path traffic fails over to, if the link has one.
    pub backup: Option<Underlay>,
}
