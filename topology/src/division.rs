//! The national division codes (GB/T 2260, extended to streets) that every node id comes from.
//!
//! The dataset is the National Bureau of Statistics' 2023 edition, compiled into the crate
//! (see `topology/README.md` for its source), so a node's identity and address never depend
//! on a file lying around at run time.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::source::{Located, Problems, SourceText};

/// How deep a division code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DivisionLevel {
    /// The whole country; held only by the ministry.
    Nation,
    /// 省级: two digits.
    Province,
    /// 地级: four digits.
    City,
    /// 县级 (district, county, county-level city): six digits.
    County,
    /// 乡级 (street, town, township): nine digits.
    Street,
}

impl DivisionLevel {
    /// The number of digits a code of this level has.
    pub const fn digits(self) -> u8 {
        match self {
            DivisionLevel::Nation => 0,
            DivisionLevel::Province => 2,
            DivisionLevel::City => 4,
            DivisionLevel::County => 6,
            DivisionLevel::Street => 9,
        }
    }

    fn from_digits(digits: usize) -> Option<DivisionLevel> {
        match digits {
            2 => Some(DivisionLevel::Province),
            4 => Some(DivisionLevel::City),
            6 => Some(DivisionLevel::County),
            9 => Some(DivisionLevel::Street),
            _ => None,
        }
    }
}

/// A statistical division code: `14` (山西省), `1401` (太原市), `140105` (小店区),
/// `140105001` (a street of 小店区). The nation is written `ministry`.
///
/// Codes order the way their digits read, so a county sorts right before its streets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DivisionCode {
    value: u32,
    level: DivisionLevel,
}

/// Text that is not a division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad division code `{0}` (expected 2, 4, 6 or 9 digits, or `ministry`)")]
pub struct BadDivisionCode(pub String);

impl DivisionCode {
    /// The nation, held by the ministry.
    pub const NATION: DivisionCode = DivisionCode {
        value: 0,
        level: DivisionLevel::Nation,
    };

    /// The level of this code.
    pub const fn level(self) -> DivisionLevel {
        self.level
    }

    /// The code as a number (`1401`).
    pub const fn value(self) -> u32 {
        self.value
    }

    /// This code cut to a higher `level` (`140105` → `14` at province level), if it is at
    /// least that deep.
    pub fn truncate(self, level: DivisionLevel) -> Option<DivisionCode> {
        if level > self.level {
            return None;
        }
        let drop = u32::from(self.level.digits() - level.digits());
        Some(DivisionCode {
            value: self.value / 10u32.pow(drop),
            level,
        })
    }

    /// The province this code lies in; the nation has none.
    pub fn province(self) -> Option<DivisionCode> {
        if self.level == DivisionLevel::Nation {
            None
        } else {
            self.truncate(DivisionLevel::Province)
        }
    }

    /// The code's digits right-padded to nine, which orders codes as their text does.
    fn sort_key(self) -> (u64, DivisionLevel) {
        let pad = u32::from(9 - self.level.digits());
        (u64::from(self.value) * 10u64.pow(pad), self.level)
    }
}

impl Ord for DivisionCode {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for DivisionCode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            DivisionLevel::Nation => f.pad("ministry"),
            level => {
                let text = format!(
                    "{:0width$}",
                    self.value,
                    width = usize::from(level.digits())
                );
                f.pad(&text)
            }
        }
    }
}

impl FromStr for DivisionCode {
    type Err = BadDivisionCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ministry" {
            return Ok(DivisionCode::NATION);
        }
        let bad = || BadDivisionCode(s.to_owned());
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let level = DivisionLevel::from_digits(s.len()).ok_or_else(bad)?;
        let value: u32 = s.parse().map_err(|_| bad())?;
        // Real codes never start with 0; refusing them keeps `Display` a faithful inverse.
        if s.starts_with('0') {
            return Err(bad());
        }
        Ok(DivisionCode { value, level })
    }
}

/// One row of the division dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Division {
    /// The division's code.
    pub code: DivisionCode,
    /// Its name as the statistics bureau writes it (`太原市`).
    pub name: String,
    /// The division it belongs to (`None` for provinces).
    pub parent: Option<DivisionCode>,
}

/// A problem in a division CSV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionProblem {
    /// The CSV itself could not be read.
    #[error("unreadable CSV: {0}")]
    Csv(String),
    /// A required column is missing from the header.
    #[error("missing column `{0}`")]
    MissingColumn(&'static str),
    /// A code is malformed or of the wrong length for the file.
    #[error("{0}")]
    BadCode(#[from] BadDivisionCode),
    /// A code of the wrong level for this file.
    #[error("code {code} is not a {expected:?}-level code")]
    WrongLevel {
        /// The code found.
        code: DivisionCode,
        /// The level this file holds.
        expected: DivisionLevel,
    },
    /// The parent column disagrees with the code's own digits.
    #[error("code {code} does not lie in its stated parent {parent}")]
    NotInParent {
        /// The code found.
        code: DivisionCode,
        /// The parent column.
        parent: DivisionCode,
    },
    /// The parent column names a division that does not exist.
    #[error("code {code} names parent {parent}, which is not in the dataset")]
    UnknownParent {
        /// The code found.
        code: DivisionCode,
        /// The missing parent.
        parent: DivisionCode,
    },
    /// The same code appears twice.
    #[error("duplicate code {0}")]
    Duplicate(DivisionCode),
}

/// The national division dataset: provinces, cities, counties (areas) and streets.
#[derive(Debug, Clone)]
pub struct Divisions {
    /// 31 provinces, municipalities and autonomous regions.
    pub provinces: Vec<Division>,
    /// Prefecture-level rows, including the municipalities' `市辖区` rows and the
    /// province-administered county groups (`4190`, `4290`, `4690`, `6590`).
    pub cities: Vec<Division>,
    /// County-level rows (districts, counties, county-level cities).
    pub areas: Vec<Division>,
    /// Street-level rows (streets, towns, townships).
    pub streets: Vec<Division>,
}

const EMBEDDED_PROVINCES: &str = include_str!("../data/divisions/provinces.csv");
const EMBEDDED_CITIES: &str = include_str!("../data/divisions/cities.csv");
const EMBEDDED_AREAS: &str = include_str!("../data/divisions/areas.csv");
const EMBEDDED_STREETS: &str = include_str!("../data/divisions/streets.csv");

impl Divisions {
    /// The national dataset compiled into this crate.
    pub fn embedded() -> Result<Divisions, Problems<DivisionProblem>> {
        Divisions::parse(
            &SourceText::new("embedded/divisions/provinces.csv", EMBEDDED_PROVINCES),
            &SourceText::new("embedded/divisions/cities.csv", EMBEDDED_CITIES),
            &SourceText::new("embedded/divisions/areas.csv", EMBEDDED_AREAS),
            &SourceText::new("embedded/divisions/streets.csv", EMBEDDED_STREETS),
        )
    }

    /// Reads the four CSV files (the columns of the `china-division` package) and checks that
    /// every code has the right length, lies in its parent, and appears once.
    pub fn parse(
        provinces: &SourceText<'_>,
        cities: &SourceText<'_>,
        areas: &SourceText<'_>,
        streets: &SourceText<'_>,
    ) -> Result<Divisions, Problems<DivisionProblem>> {
        let mut problems = Vec::new();
        let mut known = HashSet::new();
        let mut read = |source: &SourceText<'_>, level, parent_column| {
            read_level(source, level, parent_column, &mut known, &mut problems)
        };
        let divisions = Divisions {
            provinces: read(provinces, DivisionLevel::Province, None),
            cities: read(cities, DivisionLevel::City, Some("provinceCode")),
            areas: read(areas, DivisionLevel::County, Some("cityCode")),
            streets: read(streets, DivisionLevel::Street, Some("areaCode")),
        };
        Problems(problems).into_result(divisions)
    }
}

/// Reads one level's file. Parents must already be in `known`, so files are read top-down.
fn read_level(
    source: &SourceText<'_>,
    level: DivisionLevel,
    parent_column: Option<&'static str>,
    known: &mut HashSet<DivisionCode>,
    problems: &mut Vec<Located<DivisionProblem>>,
) -> Vec<Division> {
    let mut reader = csv::ReaderBuilder::new().from_reader(source.text().as_bytes());
    let header_problem = |problem| Located {
        location: source.at_line(1),
        value: problem,
    };
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) => {
            problems.push(header_problem(DivisionProblem::Csv(err.to_string())));
            return Vec::new();
        }
    };
    let column = |name: &'static str| headers.iter().position(|h| h == name);
    let (Some(code_at), Some(name_at)) = (column("code"), column("name")) else {
        problems.push(header_problem(DivisionProblem::MissingColumn("code/name")));
        return Vec::new();
    };
    let parent_at = match parent_column {
        Some(name) => match column(name) {
            Some(at) => Some(at),
            None => {
                problems.push(header_problem(DivisionProblem::MissingColumn(name)));
                return Vec::new();
            }
        },
        None => None,
    };

    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(1, |p| p.line() as usize);
                problems.push(Located {
                    location: source.at_line(line),
                    value: DivisionProblem::Csv(err.to_string()),
                });
                continue;
            }
        };
        let location = source.at_line(record.position().map_or(1, |p| p.line() as usize));
        let field = |at: usize| record.get(at).unwrap_or_default();
        let parsed = parse_row(field(code_at), parent_at.map(field), level, known);
        match parsed {
            Ok((code, parent)) => {
                known.insert(code);
                rows.push(Division {
                    code,
                    name: field(name_at).to_owned(),
                    parent,
                });
            }
            Err(problem) => problems.push(Located {
                location,
                value: problem,
            }),
        }
    }
    rows.sort_by_key(|row| row.code);
    rows
}

fn parse_row(
    code: &str,
    parent: Option<&str>,
    level: DivisionLevel,
    known: &HashSet<DivisionCode>,
) -> Result<(DivisionCode, Option<DivisionCode>), DivisionProblem> {
    let code: DivisionCode = code.parse()?;
    if code.level() != level {
        return Err(DivisionProblem::WrongLevel {
            code,
            expected: level,
        });
    }
    if known.contains(&code) {
        return Err(DivisionProblem::Duplicate(code));
    }
    let Some(parent) = parent else {
        return Ok((code, None));
    };
    let parent: DivisionCode = parent.parse()?;
    if code.truncate(parent.level()) != Some(parent) || parent.level() >= code.level() {
        return Err(DivisionProblem::NotInParent { code, parent });
    }
    if !known.contains(&parent) {
        return Err(DivisionProblem::UnknownParent { code, parent });
    }
    Ok((code, Some(parent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_order_like_their_text() {
        for text in ["14", "1401", "140105", "140105001", "ministry"] {
            assert_eq!(text.parse::<DivisionCode>().unwrap().to_string(), text);
        }
        let code = |s: &str| s.parse::<DivisionCode>().unwrap();
        assert!(code("4117") < code("419001"));
        assert!(code("140105") < code("140105001"));
        assert!(code("140105001") < code("140106"));
        assert!(DivisionCode::NATION < code("11"));
        assert_eq!(
            code("140105").truncate(DivisionLevel::Province),
            Some(code("14"))
        );
        assert_eq!(code("14").truncate(DivisionLevel::City), None);
        for bad in [
            "", "1", "123", "01", "0101", "14a1", "1234567", "+14", "１４",
        ] {
            assert!(bad.parse::<DivisionCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_embedded_dataset_has_the_documented_rows() {
        let divisions = Divisions::embedded().unwrap();
        assert_eq!(divisions.provinces.len(), 31);
        assert_eq!(divisions.cities.len(), 342);
        assert_eq!(divisions.areas.len(), 2_978);
        assert_eq!(divisions.streets.len(), 41_352);
    }

    #[test]
    fn malformed_rows_are_reported_with_their_line() {
        let provinces = SourceText::new("p.csv", "code,name\n14,\"山西省\"\n");
        let cities = SourceText::new(
            "c.csv",
            "code,name,provinceCode\n1401,\"太原市\",14\n1501,\"呼和浩特市\",14\n1402,x,99\n14x2,y,14\n",
        );
        let areas = SourceText::new(
            "a.csv",
            "code,name,cityCode,provinceCode\n140105,\"小店区\",1401,14\n140105,dup,1401,14\n",
        );
        let streets = SourceText::new("s.csv", "name,areaCode\n");
        let problems = Divisions::parse(&provinces, &cities, &areas, &streets).unwrap_err();
        let text = problems.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("c.csv:3: code 1501 does not lie in its stated parent 14"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("c.csv:4: code 1402 does not lie"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("c.csv:5: bad division code `14x2`"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("a.csv:3: duplicate code 140105"),
            "{text}"
        );
        assert!(lines[4].starts_with("s.csv:1: missing column"), "{text}");
    }
}
