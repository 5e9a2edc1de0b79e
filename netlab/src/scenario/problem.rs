//! What can be wrong with a scenario, each problem worded for the line it is reported on.

use std::path::PathBuf;
use std::time::Duration;

use topology::policy::{PolicyProblem, Proto};
use topology::{BadNodeId, DivisionCode, LinkLevel, NodeId, Plane, Problems, Zone, ZoneRef};

use super::{LinkRef, PathRef, show};

/// A problem in a scenario file, reported at its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioProblem {
    /// Not TOML, or not the shape of a scenario.
    #[error("{0}")]
    Syntax(String),
    /// A version this build does not read.
    #[error("scenario file version {0} is not supported (this build reads version 1)")]
    Version(u32),
    /// An empty `name`.
    #[error("the scenario's name is empty")]
    NoName,
    /// Text that is not a duration.
    #[error(
        "bad duration `{given}`: {why} (write a number and a unit, e.g. \"500ms\", \"3s\", \"1m 30s\")"
    )]
    BadDuration {
        /// The text.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// A scenario that lasts no time.
    #[error("the scenario's duration must be more than zero")]
    ZeroDuration,
    /// `province = …` that is not a province code.
    #[error("`{0}` is not a province code (write its two digits, e.g. province = \"14\")")]
    NotAProvince(String),
    /// Text that is not a node id.
    #[error("{0}")]
    BadNode(BadNodeId),
    /// Text that is not `NODE/ZONE`.
    #[error("{0}")]
    BadEndpoint(String),
    /// Text that is not a link.
    #[error("`{given}` is not a link: {why}")]
    BadLink {
        /// The text.
        given: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `codes = []`.
    #[error("codes lists no nodes (the ministry at least)")]
    EmptySelection,
    /// A node listed twice in `codes`.
    #[error("{0} is listed twice")]
    DuplicateCode(NodeId),
    /// `planes = []`.
    #[error("planes lists no plane")]
    NoPlanes,
    /// A plane listed twice.
    #[error("plane {0} is listed twice")]
    DuplicatePlane(Plane),
    /// A level that is not part of a scenario's tree.
    #[error("{0} links are never part of a scenario, which runs the tree only")]
    NotATreeLevel(LinkLevel),
    /// A level listed twice in `backup`.
    #[error("{0} is listed twice")]
    DuplicateLevel(LinkLevel),
    /// A loss that is not a fraction or a percentage.
    #[error(
        "bad loss `{0}` (write a fraction from 0 to 1, e.g. 0.001, or a percentage, e.g. \"0.1%\")"
    )]
    BadLoss(String),
    /// A rate that is not a capacity.
    #[error(
        "bad rate `{0}` (write a capacity such as \"100 Mbit/s\", \"capacity\" for the link's own, or \"unlimited\")"
    )]
    BadRate(String),
    /// An empty queue.
    #[error("the queue must be more than zero")]
    ZeroQueue,
    /// A queue that is neither a time nor a byte count.
    #[error(
        "bad queue `{0}` (write a time at the link's rate, e.g. \"20ms\", or a number of bytes, e.g. 16384)"
    )]
    BadQueue(String),
    /// Delay plus jitter beyond what the underlay emulates.
    #[error("delay {} plus jitter {} is more than {}, the most the emulated underlay takes", show(*.delay), show(*.jitter), show(super::profile::MAX_LINK_DELAY))]
    TooMuchDelay {
        /// The delay.
        delay: Duration,
        /// The jitter.
        jitter: Duration,
    },
    /// An event or check without a field its kind needs.
    #[error("{what} needs `{field}`")]
    MissingField {
        /// `a cut event`, `a reach check`.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field the event or check kind does not take.
    #[error("`{field}` does not apply to {what}")]
    FieldDoesNotApply {
        /// The field.
        field: &'static str,
        /// `a cut event`, `a reach check`.
        what: &'static str,
    },
    /// A policy event with both `file` and `text`, or neither.
    #[error("a policy event takes `file = \"…\"` or `text = \"\"\"…\"\"\"`, exactly one")]
    PolicyEitherOr,
    /// tcp or udp without a port.
    #[error("{0} needs a port")]
    PortNeeded(Proto),
    /// A port on icmp.
    #[error("{0} has no ports")]
    PortNotApplicable(Proto),
    /// `port = 0`.
    #[error("port 0 is not a port (1–65535)")]
    ZeroPort,
    /// `proto = "any"` on traffic the lab sends.
    #[error("traffic the lab sends is tcp, udp or icmp, not any")]
    ProtoAny,
    /// `rate-pps = 0`.
    #[error("rate-pps must be more than zero")]
    ZeroRate,
    /// A zone on a plane the scenario does not run.
    #[error("{zone} is on a plane this scenario does not run (planes = [{planes}])")]
    PlaneNotRun {
        /// The zone as written.
        zone: ZoneRef,
        /// The planes it runs.
        planes: String,
    },
    /// A zone pinned to a plane where it does not exist.
    #[error("zone {zone} does not exist on the {plane} plane")]
    ZoneNotOnPlane {
        /// The zone.
        zone: Zone,
        /// The plane.
        plane: Plane,
    },
    /// Something scheduled after the end.
    #[error("{what} at {} is after the scenario's end ({})", show(*.at), show(*.end))]
    AfterEnd {
        /// What (`the cut event`, `the end of the load`).
        what: String,
        /// When.
        at: Duration,
        /// The scenario's duration.
        end: Duration,
    },
    /// A time that cannot be represented.
    #[error("{0} does not fit in a scenario's clock")]
    TimeOverflow(String),
    /// A node killed twice.
    #[error("{node} is killed at {}, but it is down since {}", show(*.at), show(*.since))]
    NodeAlreadyDown {
        /// The node.
        node: NodeId,
        /// When the second kill is.
        at: Duration,
        /// When it was killed.
        since: Duration,
    },
    /// A node restarted that is not down.
    #[error("{node} is restarted at {}, but it is not down (kill it first)", show(*.at))]
    NodeNotDown {
        /// The node.
        node: NodeId,
        /// When.
        at: Duration,
    },
    /// The controller killed twice.
    #[error("the controller is killed at {}, but it is down since {}", show(*.at), show(*.since))]
    ControllerAlreadyDown {
        /// When the second kill is.
        at: Duration,
        /// When it was killed.
        since: Duration,
    },
    /// The controller restarted while up.
    #[error("the controller is restarted at {}, but it is not down (kill-controller first)", show(*.at))]
    ControllerNotDown {
        /// When.
        at: Duration,
    },
    /// A path cut twice.
    #[error("{path} is cut at {}, but it is cut since {}", show(*.at), show(*.since))]
    PathAlreadyCut {
        /// The path.
        path: PathRef,
        /// When the second cut is.
        at: Duration,
        /// When it was cut.
        since: Duration,
    },
    /// A path restored that is not cut.
    #[error("{path} is restored at {}, but it is not cut", show(*.at))]
    PathNotCut {
        /// The path.
        path: PathRef,
        /// When.
        at: Duration,
    },
    /// A check whose event is not in the timeline.
    #[error("this {check} check refers to a missing event: {missing}")]
    MissingEvent {
        /// The check's kind.
        check: &'static str,
        /// The event it needs.
        missing: String,
    },
    /// A failover check that could mean more than one cut.
    #[error(
        "the timeline cuts the primary path of {link} more than once; say which cut with `after`"
    )]
    AmbiguousCut {
        /// The link.
        link: LinkRef,
    },
    /// A node the network does not have.
    #[error("no node {0} in the network")]
    UnknownNode(NodeId),
    /// A province the network does not have.
    #[error("no province {0} in the network")]
    UnknownProvince(DivisionCode),
    /// A selected node whose parent is not selected.
    #[error("{node} is selected but its parent {parent} is not (list it too)")]
    ParentNotSelected {
        /// The node.
        node: NodeId,
        /// Its parent.
        parent: NodeId,
    },
    /// A node named by an event or check that the scenario does not run.
    #[error("{0} is not one of this scenario's nodes")]
    NotSelected(NodeId),
    /// A link between two nodes neither of which is the other's parent.
    #[error("{0} is not a tree link: neither end is the other's parent")]
    NotATreeLink(LinkRef),
    /// A backup path that the link does not have.
    #[error("{link} has no backup path in this scenario: {why}")]
    NoBackup {
        /// The link.
        link: LinkRef,
        /// Why not.
        why: String,
    },
    /// A problem in a policy the timeline switches to.
    #[error("{0}")]
    Policy(PolicyProblem),
    /// A policy file that cannot be read.
    #[error("policy file {path}: {why}")]
    PolicyUnreadable {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in nor a file.
    #[error("no scenario `{given}`: it is not a built-in ({builtins}) and no such file exists")]
    NotFound {
        /// The name given.
        given: String,
        /// The built-in names.
        builtins: String,
    },
    /// A file that cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Problems in the scenario or a policy it switches to, one per line.
    #[error("{0}")]
    Invalid(Problems<ScenarioProblem>),
}
