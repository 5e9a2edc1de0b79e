//! The words every Jinbao WAN crate shares: planes, zones, tiers, endpoint kinds, capacities.
//!
//! They are newtypes parsed at the boundary (`FromStr`, serde as strings), so a misspelt
//! zone in a plan or policy file is an error at load time with the file's line, never a
//! silent default later.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A closed vocabulary word that was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {expected})")]
pub struct UnknownWord {
    /// Which vocabulary was being parsed (`plane`, `zone`, …).
    pub what: &'static str,
    /// The text that did not match.
    pub given: String,
    /// The accepted words, comma separated.
    pub expected: String,
}

/// Defines a closed vocabulary: `ALL`, `as_str`, `Display`, `FromStr` and serde as a string.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every word of this vocabulary, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word as written in files and on the command line.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::vocabulary::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::vocabulary::UnknownWord {
                        what: $what,
                        given: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// One of the three networks (三网). Each is its own overlay; none is ever bridged to another.
    Plane, "plane" {
        /// 业务专网: the business private WAN, ministry to city-area sites.
        Business = "business",
        /// 办公网: the office network, tied to the e-government intranet.
        Office = "office",
        /// 公共服务网: internet-facing public services.
        Public = "public",
    }
}

impl Plane {
    /// The Chinese name used in the national documents.
    pub const fn chinese(self) -> &'static str {
        match self {
            Plane::Business => "业务专网",
            Plane::Office => "办公网",
            Plane::Public => "公共服务网",
        }
    }
}

vocabulary! {
    /// A security zone (三区) inside a site's block on one plane.
    Zone, "zone" {
        /// 生产区: business resource databases; never reachable from the WAN directly.
        Production = "production",
        /// 交换区: the only zone that talks across levels.
        Exchange = "exchange",
        /// 决策区: decision support, on the office plane.
        Decision = "decision",
        /// 公共服务区: public-plane front ends.
        Dmz = "dmz",
        /// 网管: agents' own control and probe traffic, controller, SNMP.
        Mgmt = "mgmt",
    }
}

impl Zone {
    /// The planes on which this zone may exist. A plan that puts a zone on any other plane
    /// is rejected, and a policy rule between zones with no plane in common crosses planes.
    ///
    /// The exchange zone has a presence on the public plane too: that is where the public
    /// front ends reach "declared exchange services" without a route between planes.
    pub const fn planes(self) -> &'static [Plane] {
        match self {
            Zone::Production => &[Plane::Business],
            Zone::Exchange => &[Plane::Business, Plane::Public],
            Zone::Decision => &[Plane::Office],
            Zone::Dmz => &[Plane::Public],
            Zone::Mgmt => &[Plane::Business, Plane::Office, Plane::Public],
        }
    }

    /// The plane meant when a zone is named without one (`exchange` means `business:exchange`).
    pub const fn home_plane(self) -> Plane {
        self.planes()[0]
    }

    /// Whether the zone may exist on `plane`.
    pub fn exists_on(self, plane: Plane) -> bool {
        self.planes().contains(&plane)
    }

    /// The short tag used in device names (`prod`, `exch`, …).
    pub const fn tag(self) -> &'static str {
        match self {
            Zone::Production => "prod",
            Zone::Exchange => "exch",
            Zone::Decision => "dec",
            Zone::Dmz => "dmz",
            Zone::Mgmt => "mgmt",
        }
    }

    /// The zone whose device-name tag is `tag`.
    pub fn from_tag(tag: &str) -> Option<Zone> {
        Zone::ALL.iter().copied().find(|zone| zone.tag() == tag)
    }
}

vocabulary! {
    /// A level of the tree (上下一个中心联网不拐弯).
    Tier, "tier" {
        /// The ministry data centre (部).
        Ministry = "ministry",
        /// A provincial data centre (省), including the four municipalities.
        Province = "province",
        /// A prefecture-level city data centre (市), or a county-level city the province
        /// administers directly.
        City = "city",
        /// A city-area site (市域): district/county or street/township office, or an endpoint.
        Site = "site",
    }
}

vocabulary! {
    /// A city-area site that has no division code of its own and comes from the site inventory.
    EndpointKind, "endpoint kind" {
        /// 定点医院: a designated hospital.
        Hospital = "hospital",
        /// 定点药店: a designated pharmacy.
        Pharmacy = "pharmacy",
        /// 服务窗口: a service window (经办大厅).
        Window = "window",
        /// 合作银行: a partner bank branch.
        Bank = "bank",
        /// 税务: a tax office (social-insurance contributions).
        Tax = "tax",
    }
}

impl EndpointKind {
    /// The Chinese name used in site lists.
    pub const fn chinese(self) -> &'static str {
        match self {
            EndpointKind::Hospital => "定点医院",
            EndpointKind::Pharmacy => "定点药店",
            EndpointKind::Window => "服务窗口",
            EndpointKind::Bank => "合作银行",
            EndpointKind::Tax => "税务",
        }
    }
}

/// A zone, optionally on a named plane: `exchange` or `public:exchange`.
///
/// Without a plane it means the zone on every plane where the zone exists, which is what a
/// policy rule wants; a query uses [`Zone::home_plane`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneRef {
    /// The plane, when written.
    pub plane: Option<Plane>,
    /// The zone.
    pub zone: Zone,
}

impl ZoneRef {
    /// The planes this reference covers.
    pub fn planes(self) -> Vec<Plane> {
        match self.plane {
            Some(plane) => vec![plane],
            None => self.zone.planes().to_vec(),
        }
    }

    /// The one plane a query means.
    pub fn query_plane(self) -> Plane {
        self.plane.unwrap_or(self.zone.home_plane())
    }
}

impl fmt::Display for ZoneRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plane {
            Some(plane) => write!(f, "{plane}:{}", self.zone),
            None => write!(f, "{}", self.zone),
        }
    }
}

impl FromStr for ZoneRef {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((plane, zone)) => Ok(ZoneRef {
                plane: Some(plane.parse()?),
                zone: zone.parse()?,
            }),
            None => Ok(ZoneRef {
                plane: None,
                zone: s.parse()?,
            }),
        }
    }
}

impl<'de> Deserialize<'de> for ZoneRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A link or reservation capacity in kilobits per second.
///
/// Written as `768 kbit/s`, `100 Mbit/s` or `1 Gbit/s` (decimal units, as carriers sell them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kbps(pub u64);

/// A capacity that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad capacity `{0}` (expected a number and a unit: kbit/s, Mbit/s or Gbit/s, e.g. `100 Mbit/s`)"
)]
pub struct BadCapacity(pub String);

impl FromStr for Kbps {
    type Err = BadCapacity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCapacity(s.to_owned());
        let text = s.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let factor = match unit.trim() {
            "kbit/s" | "kbps" => 1,
            "Mbit/s" | "Mbps" => 1_000,
            "Gbit/s" | "Gbps" => 1_000_000,
            _ => return Err(bad()),
        };
        number.checked_mul(factor).map(Kbps).ok_or_else(bad)
    }
}

impl fmt::Display for Kbps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0 {
            k if k >= 1_000_000 && k % 1_000_000 == 0 => format!("{} Gbit/s", k / 1_000_000),
            k if k >= 1_000 && k % 1_000 == 0 => format!("{} Mbit/s", k / 1_000),
            k => format!("{k} kbit/s"),
        };
        f.pad(&text)
    }
}

impl Serialize for Kbps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Kbps {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        for zone in Zone::ALL {
            assert_eq!(zone.as_str().parse::<Zone>(), Ok(*zone));
            assert_eq!(Zone::from_tag(zone.tag()), Some(*zone));
        }
        let err = "prod".parse::<Zone>().unwrap_err();
        assert_eq!(err.given, "prod");
        assert!(err.to_string().contains("production, exchange"), "{err}");
    }

    #[test]
    fn every_zone_has_its_home_plane_among_its_planes() {
        for zone in Zone::ALL {
            assert!(zone.exists_on(zone.home_plane()));
        }
        assert!(!Zone::Production.exists_on(Plane::Public));
        assert!(!Zone::Decision.exists_on(Plane::Business));
    }

    #[test]
    fn zone_refs_parse_with_and_without_plane() {
        let r: ZoneRef = "public:exchange".parse().unwrap();
        assert_eq!(r.planes(), vec![Plane::Public]);
        let r: ZoneRef = "exchange".parse().unwrap();
        assert_eq!(r.planes(), vec![Plane::Business, Plane::Public]);
        assert_eq!(r.query_plane(), Plane::Business);
        assert!("dark:exchange".parse::<ZoneRef>().is_err());
    }

    #[test]
    fn capacities_read_carrier_units() {
        assert_eq!("768 kbit/s".parse(), Ok(Kbps(768)));
        assert_eq!("100 Mbit/s".parse(), Ok(Kbps(100_000)));
        assert_eq!("1Gbit/s".parse(), Ok(Kbps(1_000_000)));
        assert_eq!(Kbps(2_000).to_string(), "2 Mbit/s");
        assert_eq!(Kbps(1_500).to_string(), "1500 kbit/s");
        for bad in [
            "",
            "fast",
            "100",
            "100 furlongs",
            "99999999999999999999 Gbit/s",
            "-1 Mbit/s",
        ] {
            assert!(bad.parse::<Kbps>().is_err(), "{bad}");
        }
    }
}
