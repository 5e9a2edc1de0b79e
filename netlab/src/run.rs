//! Playing a scenario on the lab: its nodes and link profiles built, its timeline carried
//! out at its times, its checks verified, and a report of what happened.
//!
//! A scenario file says what must hold ("Shanxi's backbone fails over within 1 s"); this
//! module is what makes that a verdict rather than a hope. It drives a running [`Lab`] from
//! one loop: every turn it applies the events that are due, injects the packets that loads
//! and checks owe, reads what the nodes' interfaces received, and measures what checks
//! wait for (tunnels up, an uplink on its backup path, a probe arriving).
//!
//! The scenario's clock starts when every agent is enrolled and its core starts: enrollment
//! is setup, reported on its own line, so a timeline means the same on a slow machine as on
//! a fast one.
//!
//! How each check is decided:
//! - `tunnels-up`: the first moment every tree tunnel has a completed handshake at both
//!   ends, from the start.
//! - `reach`: one packet of the flow is sent at `at`. `pass` needs it delivered to the
//!   destination zone within [`REACH_WAIT`]; `drop` needs it not delivered within that time
//!   *and* a zone filter to have counted a denial meanwhile, so a broken tunnel cannot pass
//!   for a working filter.
//! - `failover`: from the moment the cut was applied, how long until the child's uplink
//!   carries traffic on its backup path.
//! - `forwarding-while-controller-down`: a packet of the flow every [`DOWN_PROBE_EVERY`]
//!   while the controller is down; every one must arrive within [`REACH_WAIT`].
//!
//! Loads send a numbered stream of packets (the IPv4 identification field counts them) and
//! report how many arrived. After a controller restart the report says how long the agents
//! took to report to it again; after a node restart, how long until its uplink is back.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use agent::control::PathChoice;
use topology::policy::{Proto, ZoneEndpoint};
use topology::{Location, NodeId};

use crate::lab::{Lab, LabError, LabTopology, PLANE, TreeLink};
use crate::scenario::{Action, CheckKind, Flow, Footprint, Outcome, Scenario, UnderlayPath};
use crate::underlay::LinkProfile;

/// How long a probe may take to arrive before it counts as not delivered.
pub const REACH_WAIT: Duration = Duration::from_secs(1);
/// How often the flow of a `forwarding-while-controller-down` check is probed.
pub const DOWN_PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long the lab keeps running after the scenario's end for answers still on their way.
const GRACE: Duration = REACH_WAIT;
/// How much longer it waits, at most, for what follows an event (agents resynchronising
/// with a restarted controller, a restarted node's tunnel) when the scenario ends first.
const FOLLOW_LIMIT: Duration = Duration::from_secs(15);
/// The longest the loop sleeps between turns.
const TICK: Duration = Duration::from_millis(5);

/// The lab's nodes and tree links for a scenario's footprint, each link on the profile its
/// level has in the scenario, with a backup path where the footprint gives it one.
pub fn topology(scenario: &Scenario, footprint: &Footprint) -> LabTopology {
    let links = footprint
        .links
        .iter()
        .map(|link| {
            let (delay, jitter, loss, rate_bps, queue_bytes) = scenario.underlay(link);
            let profile = LinkProfile {
                delay,
                jitter,
                loss,
                rate_bps,
                queue_bytes,
            };
            TreeLink {
                child: link.child,
                parent: link.parent,
                primary: profile,
                backup: link.backup.then_some(profile),
            }
        })
        .collect();
    LabTopology {
        nodes: footprint.nodes.clone(),
        links,
    }
}

/// What a scenario run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// What happened, in order: the timeline's events and what followed from them.
    pub events: Vec<Happening>,
    /// Every check with its verdict, in the file's order.
    pub checks: Vec<Verdict>,
}

/// Something that happened during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happening {
    /// When, from the start.
    pub at: Duration,
    /// What.
    pub what: String,
    /// Whether it went as the file meant (an event the lab could not carry out is not).
    pub ok: bool,
}

/// A check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The check's name, or its kind when the file gives none.
    pub name: String,
    /// Where the file states it.
    pub location: Location,
    /// Whether it held.
    pub passed: bool,
    /// The time the check is about (convergence, failover, a probe's flight), when it has one.
    pub measured: Option<Duration>,
    /// What was seen.
    pub detail: String,
}

impl Report {
    /// Whether every check held and every event could be carried out.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.events.iter().all(|e| e.ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {}: timeline", self.scenario)?;
        for event in &self.events {
            writeln!(
                f,
                "  {:>6.1}s  {}{}",
                event.at.as_secs_f64(),
                if event.ok { "" } else { "FAILED: " },
                event.what
            )?;
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        writeln!(f, "checks ({passed} of {} held):", self.checks.len())?;
        for check in &self.checks {
            writeln!(
                f,
                "  [{}] {:<58} {:>8}  {}  ({})",
                if check.passed { " ok " } else { "FAIL" },
                check.name,
                check.measured.map_or("—".into(), |t| format!("{t:.0?}")),
                check.detail,
                check.location
            )?;
        }
        write!(
            f,
            "{}",
            if self.passed() {
                "scenario passed"
            } else {
                "SCENARIO FAILED"
            }
        )
    }
}

/// Plays `scenario` on `lab` (started on [`topology`] of its footprint): carries out the
/// timeline, verifies the checks, and returns the report. `tick` is called every turn (for
/// a live display). Flows whose ends have no address on the lab's plane are refused before
/// anything runs, with the file's line.
pub async fn play(
    lab: &mut Lab,
    scenario: &Scenario,
    mut tick: impl FnMut(&Lab, Duration),
) -> Result<Report, LabError> {
    let mut run = Run::prepare(lab, scenario)?;
    let start = clock();
    loop {
        let now = start.elapsed();
        run.turn(lab, now).await;
        tick(lab, now);
        let end = scenario.duration + GRACE;
        if now >= end && (run.settled() || now >= end + FOLLOW_LIMIT) {
            break;
        }
        lab.run_for(TICK).await;
    }
    Ok(run.report(scenario))
}

/// A packet of a flow, resolved to the lab's addresses.
#[derive(Debug, Clone, Copy)]
struct Endpoints {
    from: NodeId,
    to: NodeId,
    src: IpAddr,
    dst: IpAddr,
    proto: Proto,
    port: u16,
}

impl Endpoints {
    fn packet(&self, id: u16) -> Vec<u8> {
        flow_packet(self.src, self.dst, self.proto, self.port, id)
    }
}

/// What a packet in flight is for.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// The check with this index.
    Check(usize),
    /// The load with this index.
    Load(usize),
}

/// A packet sent and not yet seen at its destination.
#[derive(Debug)]
struct InFlight {
    to: NodeId,
    at: Duration,
    for_: Sent,
}

/// A load of the timeline while it runs.
#[derive(Debug)]
struct Running {
    flow: Endpoints,
    label: String,
    started: Option<Duration>,
    rate_pps: u32,
    duration: Duration,
    sent: u64,
    delivered: u64,
    reported: bool,
}

/// A check's progress.
#[derive(Debug)]
enum Progress {
    TunnelsUp {
        within: Duration,
        up_at: Option<Duration>,
    },
    Reach {
        flow: Endpoints,
        expect: Outcome,
        at: Duration,
        sent: bool,
        arrived: Option<Duration>,
        denied_before: u64,
        denied_after: Option<u64>,
    },
    Failover {
        child: NodeId,
        within: Duration,
        after: Duration,
        cut_at: Option<Duration>,
        already_on_backup: bool,
        moved_at: Option<Duration>,
    },
    ForwardingWhileDown {
        flow: Endpoints,
        windows: Vec<std::ops::Range<Duration>>,
        next: Option<Duration>,
        sent: u32,
        arrived: u32,
        slowest: Duration,
    },
}

/// Something that follows from an event and is watched until it happens.
#[derive(Debug)]
enum Follow {
    /// Agents reporting to a restarted controller.
    Resync { since: Duration },
    /// A restarted node's uplink tunnel up again.
    Rejoin { node: NodeId, since: Duration },
}

struct Run {
    next_event: usize,
    checks: Vec<Progress>,
    loads: Vec<Running>,
    load_of_event: HashMap<usize, usize>,
    in_flight: HashMap<Vec<u8>, InFlight>,
    watched: Vec<NodeId>,
    follows: Vec<Follow>,
    events: Vec<Happening>,
    packet_id: u16,
    timeline: Vec<crate::scenario::Event>,
    footprint_links: HashMap<(NodeId, NodeId), NodeId>,
    total_links: usize,
}

impl Run {
    /// Resolves every flow to addresses and every link to its child, so nothing the file
    /// names can fail halfway through the run.
    fn prepare(lab: &Lab, scenario: &Scenario) -> Result<Run, LabError> {
        let mut problems = Vec::new();
        let endpoints =
            |flow: &Flow, location: &Location, problems: &mut Vec<String>| match resolve(lab, flow)
            {
                Ok(e) => Some(e),
                Err(why) => {
                    problems.push(format!("{location}: {why}"));
                    None
                }
            };
        let mut loads = Vec::new();
        let mut load_of_event = HashMap::new();
        for (i, event) in scenario.timeline.iter().enumerate() {
            if let Action::Load(load) = &event.action
                && let Some(flow) = endpoints(&load.flow, &event.location, &mut problems)
            {
                load_of_event.insert(i, loads.len());
                loads.push(Running {
                    flow,
                    label: load.flow.to_string(),
                    started: None,
                    rate_pps: load.rate_pps,
                    duration: load.duration,
                    sent: 0,
                    delivered: 0,
                    reported: false,
                });
            }
        }
        let footprint_links: HashMap<(NodeId, NodeId), NodeId> = lab
            .links()
            .iter()
            .flat_map(|l| {
                [
                    ((l.parent, l.child), l.child),
                    ((l.child, l.parent), l.child),
                ]
            })
            .collect();
        let mut checks = Vec::new();
        for check in &scenario.checks {
            let progress = match &check.kind {
                CheckKind::TunnelsUp { within } => Some(Progress::TunnelsUp {
                    within: *within,
                    up_at: None,
                }),
                CheckKind::Reach { flow, expect, at } => {
                    endpoints(flow, &check.location, &mut problems).map(|flow| Progress::Reach {
                        flow,
                        expect: *expect,
                        at: *at,
                        sent: false,
                        arrived: None,
                        denied_before: 0,
                        denied_after: None,
                    })
                }
                CheckKind::Failover {
                    link,
                    within,
                    after,
                } => match footprint_links.get(&(link.a, link.b)) {
                    Some(&child) => Some(Progress::Failover {
                        child,
                        within: *within,
                        after: *after,
                        cut_at: None,
                        already_on_backup: false,
                        moved_at: None,
                    }),
                    None => {
                        problems.push(format!(
                            "{}: {link} is not a tree link of the lab",
                            check.location
                        ));
                        None
                    }
                },
                CheckKind::ForwardingWhileControllerDown { flow, down } => {
                    endpoints(flow, &check.location, &mut problems).map(|flow| {
                        Progress::ForwardingWhileDown {
                            flow,
                            windows: down.clone(),
                            next: down.first().map(|w| w.start + DOWN_PROBE_EVERY / 2),
                            sent: 0,
                            arrived: 0,
                            slowest: Duration::ZERO,
                        }
                    })
                }
            };
            checks.extend(progress);
        }
        if !problems.is_empty() {
            return Err(LabError::Unknown(problems.join("\n")));
        }
        let mut watched: Vec<NodeId> = loads
            .iter()
            .map(|l| l.flow.to)
            .chain(checks.iter().filter_map(|c| match c {
                Progress::Reach { flow, .. } | Progress::ForwardingWhileDown { flow, .. } => {
                    Some(flow.to)
                }
                _ => None,
            }))
            .collect();
        watched.sort();
        watched.dedup();
        Ok(Run {
            next_event: 0,
            checks,
            loads,
            load_of_event,
            in_flight: HashMap::new(),
            watched,
            follows: Vec::new(),
            events: Vec::new(),
            packet_id: 0,
            timeline: scenario.timeline.clone(),
            footprint_links,
            total_links: lab.links().len(),
        })
    }

    /// One turn at scenario time `now`.
    async fn turn(&mut self, lab: &mut Lab, now: Duration) {
        while let Some(event) = self.timeline.get(self.next_event).cloned() {
            if event.at > now {
                break;
            }
            let index = self.next_event;
            self.next_event += 1;
            self.apply(lab, index, &event, now).await;
        }
        self.send_loads(lab, now);
        self.send_probes(lab, now);
        self.receive(lab, now);
        self.observe(lab, now);
    }

    /// Carries out one event of the timeline.
    async fn apply(
        &mut self,
        lab: &mut Lab,
        index: usize,
        event: &crate::scenario::Event,
        now: Duration,
    ) {
        let outcome: Result<String, LabError> = match &event.action {
            Action::Cut(path) | Action::Restore(path) => {
                let up = matches!(event.action, Action::Restore(_));
                let choice = match path.path {
                    UnderlayPath::Primary => PathChoice::Primary,
                    UnderlayPath::Backup => PathChoice::Backup,
                };
                match self.footprint_links.get(&(path.link.a, path.link.b)) {
                    Some(&child) => {
                        let on_backup = lab
                            .uplink(child)
                            .is_some_and(|(path, _)| path == PathChoice::Backup);
                        lab.set_path(child, choice, up).map(|()| {
                            if !up && path.path == UnderlayPath::Primary {
                                self.mark_cut(child, now, on_backup);
                            }
                            format!("{} {path}", if up { "restored" } else { "cut" })
                        })
                    }
                    None => Err(LabError::Unknown(format!(
                        "{} is not a tree link",
                        path.link
                    ))),
                }
            }
            Action::Kill(node) => lab.kill_node(*node).map(|()| format!("killed {node}")),
            Action::Restart(node) => lab.restart_node(*node).map(|()| {
                self.follows.push(Follow::Rejoin {
                    node: *node,
                    since: now,
                });
                format!("restarted {node} from its last good bundle")
            }),
            Action::KillController => {
                lab.kill_controller().await;
                Ok("killed the controller".into())
            }
            Action::RestartController => lab.restart_controller().await.map(|()| {
                self.follows.push(Follow::Resync { since: now });
                "restarted the controller from its store".into()
            }),
            Action::Policy(change) => match change.policy() {
                Err(err) => Err(LabError::Unknown(err.to_string())),
                Ok(_) => {
                    let text = match change {
                        crate::scenario::PolicyChange::Inline { text, .. } => Ok(text.clone()),
                        crate::scenario::PolicyChange::File(path) => {
                            std::fs::read_to_string(path).map_err(LabError::from)
                        }
                    };
                    match text {
                        Ok(text) => lab
                            .set_policy(text)
                            .await
                            .map(|pushed| format!("new policy: {pushed} bundle(s) pushed")),
                        Err(err) => Err(err),
                    }
                }
            },
            Action::Load(load) => {
                if let Some(&i) = self.load_of_event.get(&index) {
                    self.loads[i].started = Some(now);
                }
                Ok(format!(
                    "load {}: {} packets/s for {:?}",
                    load.flow, load.rate_pps, load.duration
                ))
            }
        };
        let (what, ok) = match outcome {
            Ok(what) => (what, true),
            Err(err) => (
                format!("{} ({}): {err}", event.action.word(), event.location),
                false,
            ),
        };
        self.events.push(Happening { at: now, what, ok });
    }

    /// A primary path was cut: the failover checks of that link start timing, unless the
    /// uplink was not on its primary path then (nothing to fail over from).
    fn mark_cut(&mut self, cut: NodeId, now: Duration, on_backup: bool) {
        for check in &mut self.checks {
            if let Progress::Failover {
                child,
                after,
                cut_at,
                already_on_backup,
                ..
            } = check
                && *child == cut
                && cut_at.is_none()
                && now >= *after
            {
                *cut_at = Some(now);
                *already_on_backup = on_backup;
            }
        }
    }

    fn next_id(&mut self) -> u16 {
        self.packet_id = self.packet_id.wrapping_add(1);
        self.packet_id
    }

    /// Injects `packet` at the flow's source and remembers it until it arrives.
    fn send(&mut self, lab: &mut Lab, flow: &Endpoints, now: Duration, for_: Sent) {
        let packet = flow.packet(self.next_id());
        if lab.inject(flow.from, &packet).is_ok() {
            self.in_flight.insert(
                packet,
                InFlight {
                    to: flow.to,
                    at: now,
                    for_,
                },
            );
        }
    }

    /// The packets each running load owes by now.
    fn send_loads(&mut self, lab: &mut Lab, now: Duration) {
        for i in 0..self.loads.len() {
            let load = &self.loads[i];
            let Some(started) = load.started else {
                continue;
            };
            let elapsed = (now - started).min(load.duration);
            let owed = (elapsed.as_secs_f64() * f64::from(load.rate_pps)) as u64;
            let (flow, sent) = (load.flow, load.sent);
            for _ in sent..owed {
                self.send(lab, &flow, now, Sent::Load(i));
            }
            self.loads[i].sent = owed.max(sent);
        }
    }

    /// The probes checks owe by now.
    fn send_probes(&mut self, lab: &mut Lab, now: Duration) {
        for i in 0..self.checks.len() {
            let due = match &mut self.checks[i] {
                Progress::Reach { flow, at, sent, .. } if !*sent && now >= *at => {
                    *sent = true;
                    Some(*flow)
                }
                Progress::ForwardingWhileDown {
                    flow,
                    windows,
                    next,
                    sent,
                    ..
                } => match *next {
                    Some(t) if now >= t => {
                        let following = t + DOWN_PROBE_EVERY;
                        *next = windows
                            .iter()
                            .find(|w| w.contains(&following))
                            .map(|_| following)
                            .or_else(|| {
                                windows
                                    .iter()
                                    .find(|w| w.start > t)
                                    .map(|w| w.start + DOWN_PROBE_EVERY / 2)
                            });
                        // A probe still in flight when the controller returns is fine; one
                        // sent after it returned proves nothing about the outage.
                        windows.iter().any(|w| w.contains(&now)).then(|| {
                            *sent += 1;
                            *flow
                        })
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(flow) = due {
                if let Progress::Reach { denied_before, .. } = &mut self.checks[i] {
                    *denied_before = lab.denied_total();
                }
                self.send(lab, &flow, now, Sent::Check(i));
            }
        }
    }

    /// What the watched nodes' interfaces received since the last turn.
    fn receive(&mut self, lab: &mut Lab, now: Duration) {
        for &node in &self.watched {
            for packet in lab.take_delivered(node) {
                let Some(flight) = self.in_flight.remove(&packet) else {
                    continue;
                };
                if flight.to != node {
                    continue;
                }
                let took = now.saturating_sub(flight.at);
                match flight.for_ {
                    Sent::Load(i) => self.loads[i].delivered += 1,
                    Sent::Check(i) => match &mut self.checks[i] {
                        Progress::Reach { arrived, .. } => *arrived = Some(took),
                        Progress::ForwardingWhileDown {
                            arrived, slowest, ..
                        } if took <= REACH_WAIT => {
                            *arrived += 1;
                            *slowest = (*slowest).max(took);
                        }
                        _ => {}
                    },
                }
            }
        }
    }

    /// What checks and follow-ups wait for.
    fn observe(&mut self, lab: &Lab, now: Duration) {
        for check in &mut self.checks {
            match check {
                Progress::TunnelsUp { up_at, .. }
                    if up_at.is_none() && lab.tunnels_up().0 == self.total_links =>
                {
                    *up_at = Some(now);
                }
                Progress::Failover {
                    child,
                    cut_at: Some(cut),
                    moved_at,
                    ..
                } if moved_at.is_none()
                    && lab
                        .uplink(*child)
                        .is_some_and(|(path, _)| path == PathChoice::Backup) =>
                {
                    *moved_at = Some(now.saturating_sub(*cut));
                }
                Progress::Reach {
                    sent: true,
                    at,
                    denied_after,
                    ..
                } if denied_after.is_none() && now >= *at + REACH_WAIT => {
                    *denied_after = Some(lab.denied_total());
                }
                _ => {}
            }
        }
        let nodes = lab.nodes().count();
        let mut done = Vec::new();
        self.follows.retain(|follow| match follow {
            Follow::Resync { since } => {
                if !lab.controller_up() {
                    return false;
                }
                let reporting = lab.reporting_agents();
                let finished = reporting == nodes;
                if finished {
                    done.push(format!(
                        "all {nodes} agents report to the controller again ({:.1?} after its restart)",
                        now - *since
                    ));
                }
                !finished
            }
            Follow::Rejoin { node, since } => {
                let up = lab
                    .links()
                    .iter()
                    .find(|l| l.child == *node)
                    .is_none_or(|l| lab.tunnel_up(l.child, l.parent) && lab.tunnel_up(l.parent, l.child));
                if up {
                    done.push(format!(
                        "{node}'s uplink tunnel is up again ({:.1?} after its restart)",
                        now - *since
                    ));
                }
                !up
            }
        });
        for what in done {
            self.events.push(Happening {
                at: now,
                what,
                ok: true,
            });
        }
        for load in &mut self.loads {
            if let Some(started) = load.started
                && !load.reported
                && now >= started + load.duration + REACH_WAIT
            {
                load.reported = true;
                let lost = load.sent.saturating_sub(load.delivered);
                self.events.push(Happening {
                    at: now,
                    what: format!(
                        "load {}: {} sent, {} delivered, {lost} lost ({:.2} %)",
                        load.label,
                        load.sent,
                        load.delivered,
                        percent(lost, load.sent)
                    ),
                    ok: true,
                });
            }
        }
    }

    /// Whether nothing is still being waited for.
    fn settled(&self) -> bool {
        self.follows.is_empty() && self.loads.iter().all(|l| l.reported || l.started.is_none())
    }

    fn report(mut self, scenario: &Scenario) -> Report {
        for follow in &self.follows {
            let what = match follow {
                Follow::Resync { since } => format!(
                    "agents did not all report to the restarted controller (restarted at {since:.1?})"
                ),
                Follow::Rejoin { node, since } => {
                    format!("{node}'s uplink never came back after its restart at {since:.1?}")
                }
            };
            self.events.push(Happening {
                at: scenario.duration + GRACE + FOLLOW_LIMIT,
                what,
                ok: false,
            });
        }
        let checks = scenario
            .checks
            .iter()
            .zip(&self.checks)
            .map(|(check, progress)| {
                let (passed, measured, detail) = verdict(progress);
                Verdict {
                    name: check
                        .name
                        .clone()
                        .unwrap_or_else(|| check.kind.word().to_owned()),
                    location: check.location.clone(),
                    passed,
                    measured,
                    detail,
                }
            })
            .collect();
        Report {
            scenario: scenario.name.clone(),
            events: self.events,
            checks,
        }
    }
}

/// A check's verdict from what was seen: passed, the time it measured, what it saw.
fn verdict(progress: &Progress) -> (bool, Option<Duration>, String) {
    match progress {
        Progress::TunnelsUp { within, up_at } => match up_at {
            Some(t) => (
                t <= within,
                Some(*t),
                format!("every tree tunnel up at {t:.1?} (bound {within:?})"),
            ),
            None => (false, None, "not every tree tunnel came up".into()),
        },
        Progress::Reach {
            expect,
            sent,
            arrived,
            denied_before,
            denied_after,
            ..
        } => match (expect, sent, arrived) {
            (_, false, _) => (false, None, "the probe was never sent".into()),
            (Outcome::Pass, true, Some(t)) => (true, Some(*t), format!("arrived after {t:.1?}")),
            (Outcome::Pass, true, None) => (false, None, "did not arrive".into()),
            (Outcome::Drop, true, Some(t)) => {
                (false, Some(*t), format!("LEAKED: arrived after {t:.1?}"))
            }
            (Outcome::Drop, true, None) => {
                let denied = denied_after.map(|after| after.saturating_sub(*denied_before));
                match denied {
                    Some(n) if n > 0 => (
                        true,
                        None,
                        format!("not delivered; dropped by a zone filter ({n} denial(s))"),
                    ),
                    _ => (
                        false,
                        None,
                        "not delivered, but no zone filter denied it (lost, not dropped)".into(),
                    ),
                }
            }
        },
        Progress::Failover {
            within,
            cut_at,
            moved_at,
            already_on_backup,
            ..
        } => match (cut_at, moved_at) {
            (None, _) => (
                false,
                None,
                "the timeline never cut its primary path".into(),
            ),
            (Some(_), _) if *already_on_backup => (
                false,
                None,
                "the uplink was already on its backup path when the primary was cut".into(),
            ),
            (Some(_), Some(t)) => (
                t <= within,
                Some(*t),
                format!("on the backup path {t:.0?} after the cut (bound {within:?})"),
            ),
            (Some(_), None) => (false, None, "never moved to the backup path".into()),
        },
        Progress::ForwardingWhileDown {
            sent,
            arrived,
            slowest,
            ..
        } => (
            *sent > 0 && arrived == sent,
            (*sent > 0).then_some(*slowest),
            if *sent == 0 {
                "the controller was never down while probing".into()
            } else {
                format!(
                    "{arrived} of {sent} probes arrived while the controller was down (slowest {slowest:.1?})"
                )
            },
        ),
    }
}

/// A flow's ends as lab addresses: the zone's first host address of each node.
fn resolve(lab: &Lab, flow: &Flow) -> Result<Endpoints, String> {
    let address = |end: &ZoneEndpoint| -> Result<IpAddr, String> {
        if end.zone.plane.is_some_and(|p| p != PLANE) {
            return Err(format!("{end}: the lab runs the {PLANE} plane only"));
        }
        if !lab.nodes().any(|n| n == end.node) {
            return Err(format!("{} is not in the lab", end.node));
        }
        lab.address(end.node, end.zone.zone)
            .ok_or_else(|| format!("{end} has no address on the {PLANE} plane"))
    };
    Ok(Endpoints {
        from: flow.from.node,
        to: flow.to.node,
        src: address(&flow.from)?,
        dst: address(&flow.to)?,
        proto: flow.proto,
        port: flow.port.unwrap_or(0),
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// An IPv4 packet of a flow, numbered by its identification field: a TCP SYN, a UDP
/// datagram with 32 bytes of payload, or an ICMP echo request. Empty for IPv6 ends (the
/// plan's overlay is IPv4).
pub fn flow_packet(src: IpAddr, dst: IpAddr, proto: Proto, port: u16, id: u16) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        return Vec::new();
    };
    let (number, transport): (u8, Vec<u8>) = match proto {
        Proto::Udp => {
            let mut udp = vec![0u8; 8 + 32];
            udp[0..2].copy_from_slice(&40_000u16.to_be_bytes());
            udp[2..4].copy_from_slice(&port.to_be_bytes());
            udp[4..6].copy_from_slice(&40u16.to_be_bytes());
            // Checksum 0: "none", allowed for UDP over IPv4.
            (17, udp)
        }
        Proto::Icmp | Proto::Any => {
            let mut icmp = vec![0u8; 8 + 32];
            icmp[0] = 8; // echo request
            icmp[4..6].copy_from_slice(&0x6a62u16.to_be_bytes()); // "jb"
            icmp[6..8].copy_from_slice(&id.to_be_bytes());
            let sum = internet_checksum(&icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (1, icmp)
        }
        Proto::Tcp => {
            let mut tcp = vec![0u8; 20];
            tcp[0..2].copy_from_slice(&40_000u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&port.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x02; // SYN
            (6, tcp)
        }
    };
    let total = 20 + transport.len();
    let mut packet = vec![0u8; 20];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[8] = 64;
    packet[9] = number;
    packet[12..16].copy_from_slice(&src.octets());
    packet[16..20].copy_from_slice(&dst.octets());
    let sum = internet_checksum(&packet);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(&transport);
    packet
}

/// The Internet checksum (RFC 1071) of `bytes`.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The scenario clock: the lab drives every core and reads the monotonic clock for them.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}
