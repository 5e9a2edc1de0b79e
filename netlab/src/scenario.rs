//! Scenario files: which part of the national network the lab builds, how its links behave,
//! what breaks when, and what must hold.
//!
//! A scenario is data, not code, so that a run can be read, reviewed and repeated: a NOC
//! engineer writes "cut the primary backbone circuit of Shanxi at 5 s; traffic must be on the
//! backup within 1 s" as a file, and the lab checks exactly that. The built-in scenarios live
//! in `netlab/scenarios/*.toml` and are compiled in ([`builtin`], [`builtins`]).
//!
//! Mistakes are reported before anything starts, each as `file:line: what`, all in one pass,
//! in two steps:
//! 1. [`Scenario::parse`] reads the text: its shape, durations, profiles, whether the
//!    timeline makes sense on its own (a restore needs an earlier cut, a restart an earlier
//!    kill, nothing happens after the end) and whether every check finds the event it refers
//!    to. Inline policies are checked here too.
//! 2. [`Scenario::resolve`] holds it against a [`Network`]: the selection becomes the ordered
//!    nodes and tree links the lab runs (a [`Footprint`]), and every node and link the
//!    timeline and checks name must be one of them.
//!
//! The words are topology's: [`NodeId`], [`LinkLevel`] (`backbone` 部省, `provincial` 省市,
//! `city-area` 市域, `disaster-recovery` 灾备), [`Plane`], [`ZoneEndpoint`]
//! (`dc:1401/exchange`), [`Proto`], [`Kbps`]. Links are the network's own tree links, with the
//! capacity and backup underlay the network file gives them; a scenario only adds how the
//! emulated underlay behaves (delay, jitter, loss, rate, queue) and which levels run their
//! backup path.
//!
//! Promise: parsing and resolving never panic, whatever the text, and the same text and
//! network give the same footprint in the same order.

mod file;
mod footprint;
mod problem;
mod profile;
mod shape;
mod timeline;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use topology::policy::{Policy, Proto, ZoneEndpoint};
use topology::{DivisionCode, Kbps, LinkLevel, Location, Network, NodeId, Plane, Problems};
use topology::{Located, SourceText};

pub use footprint::{Footprint, TreeLink};
pub use problem::{ScenarioError, ScenarioProblem};
pub use profile::{DEFAULT_QUEUE_TIME, MAX_LINK_DELAY, ProfileSpec, Profiles, Queue, Rate};

/// The names of the built-in scenarios, in the order `netlab` lists them.
const BUILTIN_NAMES: &[&str] = &["national", "province-14", "streets"];

/// The text of a built-in scenario.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "national" => Some(include_str!("../scenarios/national.toml")),
        "province-14" => Some(include_str!("../scenarios/province-14.toml")),
        "streets" => Some(include_str!("../scenarios/streets.toml")),
        _ => None,
    }
}

/// The names of the built-in scenarios.
pub fn builtins() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// A scenario: nodes, link behaviour, a timeline of events, and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name (`national`).
    pub name: String,
    /// What it shows, for people.
    pub description: String,
    /// How long it runs; no event or check reaches past it.
    pub duration: Duration,
    /// Which data centres it runs.
    pub nodes: NodeSelection,
    /// Whether the city-area sites below the selected cities run too.
    pub sites: bool,
    /// The planes that run (default: business only).
    pub planes: Vec<Plane>,
    /// How the emulated underlay of each link level behaves.
    pub profiles: Profiles,
    /// The link levels whose links get their backup underlay path (default: backbone and
    /// provincial, i.e. provinces and cities have a backup uplink).
    pub backup: Vec<LinkLevel>,
    /// Events, in time order (events at the same time keep their file order).
    pub timeline: Vec<Event>,
    /// What the lab verifies.
    pub checks: Vec<Check>,
    /// The file it was read from, as messages name it.
    pub origin: Arc<str>,
    /// Every node and link the file names, with its line, for [`Scenario::resolve`].
    references: Vec<Located<Reference>>,
}

/// Which data centres a scenario runs. Every selection is a tree rooted at the ministry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSelection {
    /// `nodes = "all"`: the ministry, every province (municipalities included) and every
    /// city data centre.
    All,
    /// `nodes = { province = "14" }`: the ministry, that province and its city data centres.
    Province(DivisionCode),
    /// `nodes = { codes = ["dc:ministry", "dc:14", "dc:1401"] }`: exactly these nodes; each
    /// one's parent must be listed too.
    Codes(Vec<NodeId>),
}

/// Which underlay path of a link an event acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnderlayPath {
    /// The path used while it is healthy.
    Primary,
    /// The path traffic fails over to.
    Backup,
}

impl fmt::Display for UnderlayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            UnderlayPath::Primary => "primary",
            UnderlayPath::Backup => "backup",
        })
    }
}

/// A link named by its two ends, as written: `dc:14-dc:1401` (either order).
///
/// Find the tree link it names with [`Footprint::link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkRef {
    /// The end written first.
    pub a: NodeId,
    /// The end written second.
    pub b: NodeId,
}

impl LinkRef {
    /// The ends in a fixed order, so `a-b` and `b-a` compare equal.
    pub fn key(&self) -> (NodeId, NodeId) {
        if self.a <= self.b {
            (self.a, self.b)
        } else {
            (self.b, self.a)
        }
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.a, self.b)
    }
}

impl FromStr for LinkRef {
    type Err = &'static str;

    /// Node ids of endpoints contain `-` themselves (`site:140105:window-01`), so the split
    /// is the one `-` where both sides are node ids.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut found = None;
        for (i, _) in s.match_indices('-') {
            let (Some(a), Some(b)) = (s.get(..i), s.get(i + 1..)) else {
                continue;
            };
            if let (Ok(a), Ok(b)) = (a.parse::<NodeId>(), b.parse::<NodeId>()) {
                if found.is_some() {
                    return Err("it splits into two nodes in more than one way");
                }
                found = Some(LinkRef { a, b });
            }
        }
        match found {
            None => Err("write its two ends joined by `-`, e.g. dc:14-dc:1401"),
            Some(link) if link.a == link.b => Err("both ends are the same node"),
            Some(link) => Ok(link),
        }
    }
}

/// One underlay path of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathRef {
    /// The link.
    pub link: LinkRef,
    /// Which of its paths.
    pub path: UnderlayPath,
}

impl fmt::Display for PathRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} path of {}", self.path, self.link)
    }
}

/// A flow between two zones: what a probe, a load or a check sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source node and zone.
    pub from: ZoneEndpoint,
    /// Destination node and zone.
    pub to: ZoneEndpoint,
    /// `tcp`, `udp` or `icmp` (never `any`).
    pub proto: Proto,
    /// Destination port, for tcp and udp.
    pub port: Option<u16>,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {} {}", self.from, self.to, self.proto)?;
        match self.port {
            Some(port) => write!(f, "/{port}"),
            None => Ok(()),
        }
    }
}

/// Traffic added between two zones for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// What is sent.
    pub flow: Flow,
    /// Packets per second.
    pub rate_pps: u32,
    /// For how long.
    pub duration: Duration,
}

/// A policy the controller switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChange {
    /// `file = "…"`: a policy file; a relative path was taken from the scenario file's
    /// directory. [`Scenario::load`] has read and checked it.
    File(PathBuf),
    /// `text = """…"""`: policy text written in the scenario, checked on parse.
    Inline {
        /// The policy, in topology's policy format.
        text: String,
        /// Where its first line stands in the scenario file.
        at: Location,
    },
}

impl PolicyChange {
    /// Reads and checks the policy (invariants, not its tests, which need the network and
    /// the plan). Problems in inline text name the scenario file's lines.
    pub fn policy(&self) -> Result<Policy, ScenarioError> {
        let invalid = |problems: Problems<_>| {
            ScenarioError::Invalid(Problems(
                problems
                    .0
                    .into_iter()
                    .map(|p: Located<_>| p.map(ScenarioProblem::Policy))
                    .collect(),
            ))
        };
        match self {
            PolicyChange::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                    path: path.clone(),
                    source,
                })?;
                let name = path.display().to_string();
                Policy::parse(&SourceText::new(name, &text)).map_err(invalid)
            }
            PolicyChange::Inline { text, at } => {
                // Pad with the lines before it, so the policy's lines are the scenario's.
                let padded = "\n".repeat(at.line.saturating_sub(1)) + text;
                Policy::parse(&SourceText::new(at.file.clone(), &padded)).map_err(invalid)
            }
        }
    }
}

/// What happens at a point of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `cut`: an underlay path of a link goes down.
    Cut(PathRef),
    /// `restore`: a cut path comes back.
    Restore(PathRef),
    /// `kill`: a node's agent stops.
    Kill(NodeId),
    /// `restart`: a killed node's agent starts again.
    Restart(NodeId),
    /// `kill-controller`: the controller stops.
    KillController,
    /// `restart-controller`: the controller starts again from its store.
    RestartController,
    /// `policy`: the controller switches to another policy.
    Policy(PolicyChange),
    /// `load`: traffic between two zones.
    Load(Load),
}

impl Action {
    /// The word the file uses for it.
    pub fn word(&self) -> &'static str {
        match self {
            Action::Cut(_) => "cut",
            Action::Restore(_) => "restore",
            Action::Kill(_) => "kill",
            Action::Restart(_) => "restart",
            Action::KillController => "kill-controller",
            Action::RestartController => "restart-controller",
            Action::Policy(_) => "policy",
            Action::Load(_) => "load",
        }
    }
}

/// An event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When, from the start of the scenario.
    pub at: Duration,
    /// What.
    pub action: Action,
    /// Where it was written, for the lab's reports.
    pub location: Location,
}

/// Whether a probe must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It reaches the destination zone.
    Pass,
    /// A zone filter drops it.
    Drop,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Outcome::Pass => "pass",
            Outcome::Drop => "drop",
        })
    }
}

/// What a check verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `tunnels-up`: every tree link's tunnel is up within this time of the start.
    TunnelsUp {
        /// The deadline, from the start.
        within: Duration,
    },
    /// `reach`: a probe sent at `at` passes or is dropped.
    Reach {
        /// The probe.
        flow: Flow,
        /// What must happen to it.
        expect: Outcome,
        /// When it is sent.
        at: Duration,
    },
    /// `failover`: after the link's primary path is cut at `after`, traffic crosses the
    /// link on its backup path within `within`.
    Failover {
        /// The link.
        link: LinkRef,
        /// The deadline, from the cut.
        within: Duration,
        /// When the timeline cuts the primary path.
        after: Duration,
    },
    /// `forwarding-while-controller-down`: the flow keeps passing while the controller is
    /// down, in every window the timeline gives.
    ForwardingWhileControllerDown {
        /// The flow probed.
        flow: Flow,
        /// When the controller is down: from each kill to its restart (or the end).
        down: Vec<Range<Duration>>,
    },
}

impl CheckKind {
    /// The word the file uses for it.
    pub fn word(&self) -> &'static str {
        match self {
            CheckKind::TunnelsUp { .. } => "tunnels-up",
            CheckKind::Reach { .. } => "reach",
            CheckKind::Failover { .. } => "failover",
            CheckKind::ForwardingWhileControllerDown { .. } => "forwarding-while-controller-down",
        }
    }
}

/// A check the lab verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A name for reports, if the file gives one.
    pub name: Option<String>,
    /// What is verified.
    pub kind: CheckKind,
    /// Where it was written, for the lab's reports.
    pub location: Location,
}

/// A node or link the file names, checked against the network by [`Scenario::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Reference {
    /// `nodes = { province = … }`.
    Province(DivisionCode),
    /// One entry of `nodes = { codes = […] }`.
    Selected(NodeId),
    /// A node an event or check acts on or sends from/to: it must be selected.
    Node(NodeId),
    /// A link an event or check acts on: it must be a tree link between selected nodes,
    /// with a backup path when `backup` is set.
    Link {
        /// The link.
        link: LinkRef,
        /// Whether the event or check needs its backup path.
        backup: bool,
    },
}

impl Scenario {
    /// A built-in scenario by name (`national`), or a scenario file by path; a built-in's
    /// name is never read from disk. Policy files its timeline switches to are read and
    /// checked too, so a broken one is reported before the run, not at its event.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some(text) = builtin(name_or_path) {
            let source = SourceText::new(format!("scenarios/{name_or_path}.toml"), text);
            return Scenario::parse(&source).map_err(ScenarioError::Invalid);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| {
            let looks_like_a_name = !name_or_path.contains(['/', '.']);
            if source.kind() == std::io::ErrorKind::NotFound && looks_like_a_name {
                ScenarioError::NotFound {
                    given: name_or_path.to_owned(),
                    builtins: BUILTIN_NAMES.join(", "),
                }
            } else {
                ScenarioError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let scenario = Scenario::parse(&SourceText::new(name_or_path, &text))
            .map_err(ScenarioError::Invalid)?;
        let mut problems = Vec::new();
        for event in &scenario.timeline {
            let Action::Policy(change @ PolicyChange::File(path)) = &event.action else {
                continue;
            };
            match change.policy() {
                Ok(_) => {}
                Err(ScenarioError::Invalid(found)) => problems.extend(found.0),
                Err(other) => problems.push(Located {
                    location: event.location.clone(),
                    value: ScenarioProblem::PolicyUnreadable {
                        path: path.display().to_string(),
                        why: match other {
                            ScenarioError::Read { source, .. } => {
                                format!("cannot read it: {source}")
                            }
                            other => other.to_string(),
                        },
                    },
                }),
            }
        }
        Problems(problems)
            .into_result(scenario)
            .map_err(ScenarioError::Invalid)
    }

    /// Reads a scenario from its text; reports every problem the text alone shows.
    ///
    /// The source's name is the path the scenario was read from: relative policy file paths
    /// are taken from its directory (nothing is read here).
    pub fn parse(source: &SourceText<'_>) -> Result<Scenario, Problems<ScenarioProblem>> {
        file::parse(source)
    }

    /// The nodes and tree links this scenario runs on `network`, parents before children;
    /// reports every node and link the file names that the network or the selection lacks.
    pub fn resolve(&self, network: &Network) -> Result<Footprint, Problems<ScenarioProblem>> {
        footprint::resolve(self, network)
    }

    /// The five values of the emulated underlay of a link of the footprint: delay, jitter,
    /// loss (a fraction), rate in bit/s (`None`: unlimited) and queue in bytes — the fields
    /// of `netlab::underlay::LinkProfile`, in that order.
    pub fn underlay(&self, link: &TreeLink) -> (Duration, Duration, f64, Option<u64>, usize) {
        self.profiles.for_level(link.level).values(link.capacity)
    }

    /// The policy changes of the timeline, in time order.
    pub fn policy_changes(&self) -> impl Iterator<Item = (&Event, &PolicyChange)> {
        self.timeline
            .iter()
            .filter_map(|event| match &event.action {
                Action::Policy(change) => Some((event, change)),
                _ => None,
            })
    }
}

/// `5s`, `1m 30s`: how durations are written in scenario files and messages.
fn show(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(duration)
}

/// The capacity a rate of `kbps` is in bit/s, saturating.
fn bits_per_second(kbps: Kbps) -> u64 {
    kbps.0.saturating_mul(1_000)
}
