//! The connectivity census: question 4 of the 2006 ministry questionnaire, answered from the
//! live network instead of by hand.
//!
//! Per province: how many cities it has, how many city data centres are linked to the
//! province over the WAN right now, and how many cities have a live video-conference link.
//! The module exists so that the figure the ministry asks for is computed one way, from the
//! topology ([`Network`]) and the link health ([`HealthState`]), and can be handed over as
//! CSV ([`ConnectivityCensus::to_csv`]) or read in a terminal ([`ConnectivityCensus::to_table`]),
//! each with a total row.
//!
//! # What counts
//!
//! - A city is a city data centre the topology hangs below the province: prefecture-level
//!   cities, and the county-level cities a province administers directly (`dc:419001`
//!   济源市), which the network runs as cities.
//! - A city is WAN-linked when its uplink tunnel on the business plane (业务专网, the
//!   plane the questionnaire is about) carries traffic now — up, degraded or on its backup
//!   path ([`LinkState::carries_traffic`](crate::health::LinkState::carries_traffic)).
//!   Down, unknown (no fresh report from either end) and never-reported links do not count.
//! - Video-linked cities are given by the caller: the nodes taking part in a conference that
//!   is live at the census time — main venues, the sites its streams reach, the MCUs it
//!   cascades through ([`live_sites`](crate::bookings::live_sites)). A city counts when it is
//!   among them.
//!
//! # Municipalities
//!
//! Beijing, Tianjin, Shanghai and Chongqing (11, 12, 31, 50) hang straight off the ministry;
//! their data centre is both the province and the city level, and their districts hang below
//! it. Each counts as a province with **one city — itself**, WAN-linked when its backbone
//! link to the ministry carries traffic: for a municipality that link is the one over which
//! its city-level data reaches the next level, which is what the question asks. The CSV has
//! a `municipality` column and the table marks them with `*`, so nobody mistakes the 1 for a
//! count of districts.

use std::collections::BTreeSet;
use std::time::SystemTime;

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle};
use serde::Serialize;
use topology::{Network, NodeId, NodeIx, NodeKind, Plane, Tier};

use crate::health::{HealthState, LinkKey, rfc3339};

/// The plane the questionnaire asks about.
pub const CENSUS_PLANE: Plane = Plane::Business;

/// The census could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CensusError {
    /// The CSV writer failed.
    #[error("writing the census as CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The CSV buffer could not be taken back from the writer.
    #[error("writing the census as CSV: {0}")]
    Io(#[from] std::io::Error),
}

/// One province's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvinceRow {
    /// The province data centre (`dc:14`).
    pub province: NodeId,
    /// Its name (`山西省`).
    pub name: String,
    /// A direct-administered municipality, counted as its own single city.
    pub municipality: bool,
    /// Cities.
    pub cities: usize,
    /// Cities whose data centre is linked to the province over the WAN now.
    pub wan_linked: usize,
    /// Cities with a live video-conference link.
    pub video_linked: usize,
}

/// The national answer: one row per province, in topology order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectivityCensus {
    /// When it was taken.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Per province.
    pub provinces: Vec<ProvinceRow>,
}

/// The sums over all provinces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CensusTotal {
    /// Provinces (municipalities included).
    pub provinces: usize,
    /// Cities.
    pub cities: usize,
    /// WAN-linked cities.
    pub wan_linked: usize,
    /// Video-linked cities.
    pub video_linked: usize,
}

impl ConnectivityCensus {
    /// Takes the census at `now` from the topology, the link health, and the city data
    /// centres that have a live video-conference link.
    pub fn compute(
        network: &Network,
        health: &HealthState,
        video: &BTreeSet<NodeId>,
        now: SystemTime,
    ) -> ConnectivityCensus {
        let linked = |parent: NodeIx, child: NodeIx| {
            let key = LinkKey {
                plane: CENSUS_PLANE,
                parent: network.node(parent).id,
                child: network.node(child).id,
            };
            health
                .link(&key, now)
                .is_some_and(|link| link.state.carries_traffic())
        };
        let ministry = network.ministry();
        let provinces = network
            .children(ministry)
            .iter()
            .copied()
            .filter(|&ix| is_data_centre_at(network, ix, Tier::Province))
            .map(|province| {
                let node = network.node(province);
                // A municipality is its own city, linked over its backbone link.
                let cities: Vec<(NodeIx, NodeIx)> = if node.municipality {
                    vec![(ministry, province)]
                } else {
                    network
                        .children(province)
                        .iter()
                        .filter(|&&ix| is_data_centre_at(network, ix, Tier::City))
                        .map(|&city| (province, city))
                        .collect()
                };
                ProvinceRow {
                    province: node.id,
                    name: node.name.clone(),
                    municipality: node.municipality,
                    cities: cities.len(),
                    wan_linked: cities.iter().filter(|(p, c)| linked(*p, *c)).count(),
                    video_linked: cities
                        .iter()
                        .filter(|(_, c)| video.contains(&network.node(*c).id))
                        .count(),
                }
            })
            .collect();
        ConnectivityCensus { at: now, provinces }
    }

    /// The sums over all provinces.
    pub fn total(&self) -> CensusTotal {
        self.provinces
            .iter()
            .fold(CensusTotal::default(), |sum, row| CensusTotal {
                provinces: sum.provinces + 1,
                cities: sum.cities + row.cities,
                wan_linked: sum.wan_linked + row.wan_linked,
                video_linked: sum.video_linked + row.video_linked,
            })
    }

    /// The census as CSV: `code,province,municipality,cities,wan_linked,video_linked`, one
    /// row per province, then a `total` row with an empty code.
    pub fn to_csv(&self) -> Result<String, CensusError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record([
            "code",
            "province",
            "municipality",
            "cities",
            "wan_linked",
            "video_linked",
        ])?;
        for row in &self.provinces {
            writer.write_record([
                row.province.code().to_string(),
                row.name.clone(),
                row.municipality.to_string(),
                row.cities.to_string(),
                row.wan_linked.to_string(),
                row.video_linked.to_string(),
            ])?;
        }
        let total = self.total();
        writer.write_record([
            String::new(),
            "total".to_owned(),
            String::new(),
            total.cities.to_string(),
            total.wan_linked.to_string(),
            total.video_linked.to_string(),
        ])?;
        let bytes = writer.into_inner().map_err(|err| err.into_error())?;
        // Every field came from a `String`, so the bytes are UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The census as a terminal table with a total row and a note on municipalities.
    pub fn to_table(&self) -> String {
        let mut table = Table::new();
        table
            .load_style(
                TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─')),
            )
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(vec![
                "code",
                "province",
                "cities",
                "WAN-linked",
                "video-linked",
            ]);
        for column in 2..5 {
            if let Some(column) = table.column_mut(column) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        for row in &self.provinces {
            let marked = if row.municipality { "*" } else { "" };
            table.add_row(vec![
                row.province.code().to_string(),
                format!("{}{marked}", row.name),
                row.cities.to_string(),
                row.wan_linked.to_string(),
                row.video_linked.to_string(),
            ]);
        }
        let total = self.total();
        table.add_row(vec![
            String::new(),
            "total".to_owned(),
            total.cities.to_string(),
            total.wan_linked.to_string(),
            total.video_linked.to_string(),
        ]);
        let mut text: Vec<String> = table.lines().map(|l| l.trim_end().to_owned()).collect();
        text.push(format!(
            "WAN-linked: the city's uplink on the {CENSUS_PLANE} plane carries traffic, as of {}.",
            rfc3339::format(self.at)
        ));
        if self.provinces.iter().any(|row| row.municipality) {
            text.push(
                "* municipality: its data centre is its own city, linked over its backbone link."
                    .to_owned(),
            );
        }
        text.join("\n")
    }
}

/// Whether `ix` is a data centre standing at `tier` (not a disaster-recovery or office site).
fn is_data_centre_at(network: &Network, ix: NodeIx, tier: Tier) -> bool {
    let node = network.node(ix);
    node.kind() == NodeKind::DataCentre && node.tier == tier
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::{at, node, peer, status};
    use agent::control::{PathChoice, PeerHealth, PeerRole};
    use topology::{Divisions, SourceText};

    const PROVINCES: &str = "code,name\n11,北京市\n14,山西省\n41,河南省\n";
    const CITIES: &str = "code,name,provinceCode\n1101,市辖区,11\n1401,太原市,14\n\
        1402,大同市,14\n1403,阳泉市,14\n4101,郑州市,41\n4190,省直辖县级行政区划,41\n";
    const AREAS: &str = "code,name,cityCode,provinceCode\n110101,东城区,1101,11\n\
        140105,小店区,1401,14\n419001,济源市,4190,41\n";
    const STREETS: &str = "code,name,areaCode,provinceCode,cityCode\n";
    const NETWORK: &str = r#"
version = 1
[links.backbone]
capacity = "1 Gbit/s"
cost = 10
primary = { carrier = "china-telecom", circuit = "mstp" }
[links.provincial]
capacity = "200 Mbit/s"
cost = 20
primary = { carrier = "china-telecom", circuit = "mstp" }
[links.city-area]
capacity = "20 Mbit/s"
cost = 40
primary = { carrier = "china-telecom", circuit = "mstp" }
[links.disaster-recovery]
capacity = "10 Gbit/s"
cost = 5
primary = { carrier = "china-telecom", circuit = "fibre" }
[[dr-sites]]
of = "dc:14"
name = "山西省灾备中心"
"#;

    fn network() -> Network {
        let divisions = Divisions::parse(
            &SourceText::new("provinces.csv", PROVINCES),
            &SourceText::new("cities.csv", CITIES),
            &SourceText::new("areas.csv", AREAS),
            &SourceText::new("streets.csv", STREETS),
        )
        .unwrap();
        Network::build(&divisions, &SourceText::new("network.toml", NETWORK)).unwrap()
    }

    /// Shanxi: Taiyuan up, Datong on its backup, Yangquan down. Henan: Jiyuan up on the
    /// office plane only. Beijing: up to the ministry.
    fn health() -> HealthState {
        let mut health = HealthState::default();
        let mut datong = peer("dc:1402", PeerRole::Child, PeerHealth::Up);
        datong.path = PathChoice::Backup;
        let shanxi = vec![
            peer("dc:1401", PeerRole::Child, PeerHealth::Up),
            datong,
            peer("dc:1403", PeerRole::Child, PeerHealth::Down),
        ];
        let report = status("dc:14", shanxi);
        health.ingest(node("dc:14"), &report, at(0)).unwrap();
        let mut henan = status(
            "dc:41",
            vec![peer("dc:419001", PeerRole::Child, PeerHealth::Up)],
        );
        henan.planes[0].plane = Plane::Office;
        health.ingest(node("dc:41"), &henan, at(0)).unwrap();
        let beijing = status(
            "dc:11",
            vec![peer("dc:ministry", PeerRole::Uplink, PeerHealth::Up)],
        );
        health.ingest(node("dc:11"), &beijing, at(0)).unwrap();
        health
    }

    fn rows(census: &ConnectivityCensus) -> Vec<(String, bool, usize, usize, usize)> {
        let row = |r: &ProvinceRow| {
            let code = r.province.to_string();
            (code, r.municipality, r.cities, r.wan_linked, r.video_linked)
        };
        census.provinces.iter().map(row).collect()
    }

    #[test]
    fn cities_count_when_their_business_uplink_carries_traffic() {
        let video = BTreeSet::from([node("dc:4101")]);
        let census = ConnectivityCensus::compute(&network(), &health(), &video, at(1));
        let expected = [
            ("dc:11", true, 1, 1, 0),
            ("dc:14", false, 3, 2, 0),
            ("dc:41", false, 2, 0, 1),
        ]
        .map(|(c, m, n, w, v)| (c.to_owned(), m, n, w, v));
        assert_eq!(rows(&census), expected);
        let total = census.total();
        assert_eq!((total.provinces, total.cities, total.wan_linked), (3, 6, 3));
        assert_eq!(total.video_linked, 1);
    }

    #[test]
    fn stale_reports_link_nothing() {
        let census = ConnectivityCensus::compute(&network(), &health(), &BTreeSet::new(), at(60));
        assert_eq!(census.total().wan_linked, 0);
    }

    #[test]
    fn csv_has_a_header_a_row_per_province_and_a_total() {
        let census = ConnectivityCensus::compute(&network(), &health(), &BTreeSet::new(), at(1));
        let csv = census.to_csv().unwrap();
        let expected = "code,province,municipality,cities,wan_linked,video_linked\n\
            11,北京市,true,1,1,0\n14,山西省,false,3,2,0\n41,河南省,false,2,0,0\n,total,,6,3,0\n";
        assert_eq!(csv, expected);
    }

    #[test]
    fn the_table_has_a_total_row_and_marks_municipalities() {
        let census = ConnectivityCensus::compute(&network(), &health(), &BTreeSet::new(), at(1));
        let table = census.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].trim_start().starts_with("code"), "{table}");
        assert!(lines.iter().any(|l| l.contains("北京市*")), "{table}");
        let total = lines.iter().find(|l| l.contains("total")).unwrap();
        let numbers: Vec<&str> = total.split_whitespace().skip(1).collect();
        assert_eq!(numbers, ["6", "3", "0"], "{table}");
        assert!(table.contains("* municipality"), "{table}");
        assert!(table.contains("business plane"), "{table}");
    }
}
