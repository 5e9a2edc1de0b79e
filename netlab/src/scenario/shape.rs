//! The shape of a scenario file as serde reads it: every table and field, and the words
//! that pick an event's action and a check's kind.
//!
//! Events and checks are flat tables (`action = "cut"` beside `link = …`) rather than
//! nested ones, so a timeline reads like a run sheet; which fields each kind takes is listed
//! here and enforced by the reader. Node ids, links, zones and durations are kept as text
//! with their spans, so the reader reports all of them in one pass, not just the first.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use toml::Spanned;

use topology::policy::Proto;
use topology::{LinkLevel, Plane};

use super::profile::ProfilesFile;
use super::{Outcome, UnderlayPath};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ScenarioFile {
    pub(super) version: Spanned<u32>,
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    pub(super) duration: Spanned<String>,
    pub(super) nodes: Spanned<SelectionFile>,
    #[serde(default)]
    pub(super) sites: bool,
    pub(super) planes: Option<Spanned<Vec<Spanned<Plane>>>>,
    #[serde(default)]
    pub(super) profiles: ProfilesFile,
    pub(super) backup: Option<Vec<Spanned<LinkLevel>>>,
    #[serde(default)]
    pub(super) timeline: Vec<Spanned<EventFile>>,
    #[serde(default)]
    pub(super) checks: Vec<Spanned<CheckFile>>,
}

/// `nodes = "all"`, `nodes = { province = "14" }` or `nodes = { codes = […] }`.
#[derive(Debug)]
pub(super) enum SelectionFile {
    All,
    Province(Spanned<String>),
    Codes(Vec<Spanned<String>>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SelectionTable {
    pub(super) province: Option<Spanned<String>>,
    pub(super) codes: Option<Vec<Spanned<String>>>,
}

pub(super) const SELECTION_FORMS: &str =
    "\"all\", { province = \"14\" } or { codes = [\"dc:ministry\", \"dc:14\", …] }";

impl<'de> Deserialize<'de> for SelectionFile {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Written;
        impl<'de> Visitor<'de> for Written {
            type Value = SelectionFile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SELECTION_FORMS)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SelectionFile, E> {
                match v {
                    "all" => Ok(SelectionFile::All),
                    _ => Err(E::custom(format!(
                        "unknown node selection `{v}` (write {SELECTION_FORMS})"
                    ))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SelectionFile, A::Error> {
                let table = SelectionTable::deserialize(MapAccessDeserializer::new(map))?;
                match (table.province, table.codes) {
                    (Some(province), None) => Ok(SelectionFile::Province(province)),
                    (None, Some(codes)) => Ok(SelectionFile::Codes(codes)),
                    _ => Err(de::Error::custom(format!(
                        "a node selection is exactly one of {SELECTION_FORMS}"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(Written)
    }
}

/// What an event does, as written in `action = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ActionWord {
    Cut,
    Restore,
    Kill,
    Restart,
    KillController,
    RestartController,
    Policy,
    Load,
}

impl ActionWord {
    pub(super) fn what(self) -> &'static str {
        match self {
            ActionWord::Cut => "a cut event",
            ActionWord::Restore => "a restore event",
            ActionWord::Kill => "a kill event",
            ActionWord::Restart => "a restart event",
            ActionWord::KillController => "a kill-controller event",
            ActionWord::RestartController => "a restart-controller event",
            ActionWord::Policy => "a policy event",
            ActionWord::Load => "a load event",
        }
    }

    /// The fields besides `at` and `action` this kind takes.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
            ActionWord::Cut | ActionWord::Restore => &["link", "path"],
            ActionWord::Kill | ActionWord::Restart => &["node"],
            ActionWord::KillController | ActionWord::RestartController => &[],
            ActionWord::Policy => &["file", "text"],
            ActionWord::Load => &["from", "to", "proto", "port", "rate-pps", "duration"],
        }
    }
}

/// `[[timeline]]`: one flat table per event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct EventFile {
    pub(super) at: Spanned<String>,
    pub(super) action: Spanned<ActionWord>,
    pub(super) link: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<UnderlayPath>>,
    pub(super) node: Option<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) text: Option<Spanned<String>>,
    pub(super) from: Option<Spanned<String>>,
    pub(super) to: Option<Spanned<String>>,
    pub(super) proto: Option<Spanned<Proto>>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) rate_pps: Option<Spanned<u32>>,
    pub(super) duration: Option<Spanned<String>>,
}

/// The optional fields written in a table, with where each was written.
macro_rules! written {
    ($table:expr; $($name:literal => $field:ident),* $(,)?) => {{
        let mut written: Vec<(&'static str, Range<usize>)> = Vec::new();
        $(if let Some(field) = &$table.$field {
            written.push(($name, field.span()));
        })*
        written
    }};
}

impl EventFile {
    pub(super) fn written(&self) -> Vec<(&'static str, Range<usize>)> {
        written!(self;
            "link" => link, "path" => path, "node" => node, "file" => file, "text" => text,
            "from" => from, "to" => to, "proto" => proto, "port" => port,
            "rate-pps" => rate_pps, "duration" => duration,
        )
    }
}

/// What a check verifies, as written in `check = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum CheckWord {
    TunnelsUp,
    Reach,
    Failover,
    ForwardingWhileControllerDown,
}

impl CheckWord {
    pub(super) fn what(self) -> &'static str {
        match self {
            CheckWord::TunnelsUp => "a tunnels-up check",
            CheckWord::Reach => "a reach check",
            CheckWord::Failover => "a failover check",
            CheckWord::ForwardingWhileControllerDown => "a forwarding-while-controller-down check",
        }
    }

    pub(super) fn word(self) -> &'static str {
        match self {
            CheckWord::TunnelsUp => "tunnels-up",
            CheckWord::Reach => "reach",
            CheckWord::Failover => "failover",
            CheckWord::ForwardingWhileControllerDown => "forwarding-while-controller-down",
        }
    }

    /// The fields besides `check` and `name` this kind takes.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
            CheckWord::TunnelsUp => &["within"],
            CheckWord::Reach => &["from", "to", "proto", "port", "expect", "at"],
            CheckWord::Failover => &["link", "within", "after"],
            CheckWord::ForwardingWhileControllerDown => &["from", "to", "proto", "port"],
        }
    }
}

/// `[[checks]]`: one flat table per check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CheckFile {
    pub(super) check: Spanned<CheckWord>,
    pub(super) name: Option<String>,
    pub(super) within: Option<Spanned<String>>,
    pub(super) from: Option<Spanned<String>>,
    pub(super) to: Option<Spanned<String>>,
    pub(super) proto: Option<Spanned<Proto>>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) expect: Option<Spanned<Outcome>>,
    pub(super) at: Option<Spanned<String>>,
    pub(super) link: Option<Spanned<String>>,
    pub(super) after: Option<Spanned<String>>,
}

impl CheckFile {
    pub(super) fn written(&self) -> Vec<(&'static str, Range<usize>)> {
        written!(self;
            "within" => within, "from" => from, "to" => to, "proto" => proto, "port" => port,
            "expect" => expect, "at" => at, "link" => link, "after" => after,
        )
    }
}
