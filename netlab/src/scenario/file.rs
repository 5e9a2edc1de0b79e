//! Reading a scenario file: every field of its [shape](super::shape) turned into the model,
//! each problem recorded at the line of the field it is about, all of them in one pass.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use topology::policy::{Proto, ZoneEndpoint};
use topology::{DivisionCode, DivisionLevel, LinkLevel, Located, Location, NodeId, Plane};
use topology::{Problems, SourceText};

use super::profile::{MAX_LINK_DELAY, ProfilesFile, Rate};
use super::shape::{ActionWord, CheckFile, CheckWord, EventFile, ScenarioFile, SelectionFile};
use super::timeline::{self, End};
use super::{
    Action, Check, CheckKind, Event, Flow, LinkRef, Load, NodeSelection, PathRef, PolicyChange,
    Profiles, Reference, Scenario, ScenarioError, ScenarioProblem, UnderlayPath,
};

/// The fields of a flow, wherever they are written.
struct FlowFields<'f> {
    from: &'f Option<Spanned<String>>,
    to: &'f Option<Spanned<String>>,
    proto: &'f Option<Spanned<Proto>>,
    port: &'f Option<Spanned<u16>>,
}

/// Reads a scenario; see [`Scenario::parse`].
pub(super) fn parse(source: &SourceText<'_>) -> Result<Scenario, Problems<ScenarioProblem>> {
    let file: ScenarioFile = source
        .parse_toml()
        .map_err(|e| Problems(vec![e.map(ScenarioProblem::Syntax)]))?;
    let mut reader = Reader {
        source,
        problems: Vec::new(),
        references: Vec::new(),
        planes: Vec::new(),
    };
    if *file.version.get_ref() != 1 {
        reader.report(
            &file.version.span(),
            ScenarioProblem::Version(*file.version.get_ref()),
        );
    }
    let name = file.name.get_ref().trim().to_owned();
    if name.is_empty() {
        reader.report(&file.name.span(), ScenarioProblem::NoName);
    }
    let duration = reader.duration(&file.duration);
    if duration == Some(Duration::ZERO) {
        reader.report(&file.duration.span(), ScenarioProblem::ZeroDuration);
    }
    let end = End(duration);
    reader.planes = reader.planes(file.planes.as_ref());
    let nodes = reader.selection(&file.nodes);
    let profiles = reader.profiles(&file.profiles);
    let backup = reader.backup(file.backup.as_deref());

    let mut events: Vec<Event> = file
        .timeline
        .iter()
        .filter_map(|e| reader.event(e))
        .collect();
    // Only a whole timeline can say an event is missing; a broken event is reported already.
    let whole = events.len() == file.timeline.len();
    timeline::settle(&mut events, end, &mut reader.problems);
    let checks: Vec<Check> = file
        .checks
        .iter()
        .filter_map(|c| reader.check(c, &events, end, whole))
        .collect();

    let Reader {
        mut problems,
        references,
        planes,
        ..
    } = reader;
    problems.sort_by_key(|p| p.location.line);
    let (Some(duration), Some(nodes)) = (duration, nodes) else {
        return Err(Problems(problems));
    };
    Problems(problems).into_result(Scenario {
        name,
        description: file.description.trim().to_owned(),
        duration,
        nodes,
        sites: file.sites,
        planes,
        profiles,
        backup,
        timeline: events,
        checks,
        origin: source.name().clone(),
        references,
    })
}

/// Turns the file into the model, collecting problems and references as it goes.
struct Reader<'s, 't> {
    source: &'s SourceText<'t>,
    problems: Vec<Located<ScenarioProblem>>,
    references: Vec<Located<Reference>>,
    /// The planes the scenario runs, once read.
    planes: Vec<Plane>,
}

impl Reader<'_, '_> {
    fn at(&self, span: &Range<usize>) -> Location {
        self.source.locate_span(span)
    }

    fn report(&mut self, span: &Range<usize>, value: ScenarioProblem) {
        let location = self.at(span);
        self.problems.push(Located { location, value });
    }

    fn refer(&mut self, span: &Range<usize>, value: Reference) {
        let location = self.at(span);
        self.references.push(Located { location, value });
    }

    /// The field `name` of an entry that needs it; reported at the entry when missing.
    fn need<'f, T>(
        &mut self,
        field: &'f Option<Spanned<T>>,
        name: &'static str,
        what: &'static str,
        entry: &Range<usize>,
    ) -> Option<&'f Spanned<T>> {
        if field.is_none() {
            self.report(entry, ScenarioProblem::MissingField { what, field: name });
        }
        field.as_ref()
    }

    /// Reports every written field the kind does not take.
    fn only(
        &mut self,
        what: &'static str,
        written: &[(&'static str, Range<usize>)],
        takes: &[&str],
    ) {
        for (field, span) in written {
            if !takes.contains(field) {
                self.report(span, ScenarioProblem::FieldDoesNotApply { field, what });
            }
        }
    }

    fn duration(&mut self, written: &Spanned<String>) -> Option<Duration> {
        let text = written.get_ref();
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(why) => {
                let problem = ScenarioProblem::BadDuration {
                    given: text.clone(),
                    why: why.to_string(),
                };
                self.report(&written.span(), problem);
                None
            }
        }
    }

    fn node(&mut self, written: &Spanned<String>) -> Option<NodeId> {
        match written.get_ref().trim().parse::<NodeId>() {
            Ok(id) => Some(id),
            Err(bad) => {
                self.report(&written.span(), ScenarioProblem::BadNode(bad));
                None
            }
        }
    }

    /// A node and zone on a plane the scenario runs; the node must be selected.
    fn endpoint(&mut self, written: &Spanned<String>) -> Option<ZoneEndpoint> {
        let span = written.span();
        let endpoint: ZoneEndpoint = match written.get_ref().trim().parse() {
            Ok(endpoint) => endpoint,
            Err(why) => {
                self.report(&span, ScenarioProblem::BadEndpoint(why));
                return None;
            }
        };
        let zone = endpoint.zone;
        if let Some(plane) = zone.plane.filter(|&plane| !zone.zone.exists_on(plane)) {
            let problem = ScenarioProblem::ZoneNotOnPlane {
                zone: zone.zone,
                plane,
            };
            self.report(&span, problem);
            return None;
        }
        if !zone.planes().iter().any(|p| self.planes.contains(p)) {
            let planes: Vec<&str> = self.planes.iter().map(|p| p.as_str()).collect();
            let problem = ScenarioProblem::PlaneNotRun {
                zone,
                planes: planes.join(", "),
            };
            self.report(&span, problem);
            return None;
        }
        self.refer(&span, Reference::Node(endpoint.node));
        Some(endpoint)
    }

    /// A link of the scenario's tree; `backup` when the use needs its backup path.
    fn link(&mut self, written: &Spanned<String>, backup: bool) -> Option<LinkRef> {
        let span = written.span();
        match written.get_ref().trim().parse() {
            Ok(link) => {
                self.refer(&span, Reference::Link { link, backup });
                Some(link)
            }
            Err(why) => {
                let given = written.get_ref().clone();
                self.report(&span, ScenarioProblem::BadLink { given, why });
                None
            }
        }
    }

    fn planes(&mut self, written: Option<&Spanned<Vec<Spanned<Plane>>>>) -> Vec<Plane> {
        let Some(written) = written else {
            return vec![Plane::Business];
        };
        if written.get_ref().is_empty() {
            self.report(&written.span(), ScenarioProblem::NoPlanes);
        }
        let mut planes = Vec::new();
        for plane in written.get_ref() {
            if planes.contains(plane.get_ref()) {
                self.report(
                    &plane.span(),
                    ScenarioProblem::DuplicatePlane(*plane.get_ref()),
                );
            } else {
                planes.push(*plane.get_ref());
            }
        }
        planes
    }

    fn selection(&mut self, written: &Spanned<SelectionFile>) -> Option<NodeSelection> {
        match written.get_ref() {
            SelectionFile::All => Some(NodeSelection::All),
            SelectionFile::Province(code) => {
                let text = code.get_ref().trim();
                match text.parse::<DivisionCode>() {
                    Ok(province) if province.level() == DivisionLevel::Province => {
                        self.refer(&code.span(), Reference::Province(province));
                        Some(NodeSelection::Province(province))
                    }
                    _ => {
                        let problem = ScenarioProblem::NotAProvince(text.to_owned());
                        self.report(&code.span(), problem);
                        None
                    }
                }
            }
            SelectionFile::Codes(codes) => {
                if codes.is_empty() {
                    self.report(&written.span(), ScenarioProblem::EmptySelection);
                    return None;
                }
                let mut seen = HashSet::new();
                let mut ids = Vec::with_capacity(codes.len());
                for code in codes {
                    let Some(id) = self.node(code) else { continue };
                    if seen.insert(id) {
                        self.refer(&code.span(), Reference::Selected(id));
                        ids.push(id);
                    } else {
                        self.report(&code.span(), ScenarioProblem::DuplicateCode(id));
                    }
                }
                Some(NodeSelection::Codes(ids))
            }
        }
    }

    fn profiles(&mut self, written: &ProfilesFile) -> Profiles {
        let mut profiles = Profiles::default();
        for (level, file) in written.written() {
            let delay = file.delay.as_ref().and_then(|d| self.duration(d));
            let jitter = file.jitter.as_ref().and_then(|d| self.duration(d));
            let loss = file.loss.as_ref().and_then(|loss| {
                loss.get_ref()
                    .fraction()
                    .map_err(|problem| self.report(&loss.span(), problem))
                    .ok()
            });
            let rate = file.rate.as_ref().and_then(|rate| {
                Rate::parse(rate.get_ref())
                    .map_err(|problem| self.report(&rate.span(), problem))
                    .ok()
            });
            let queue = file.queue.as_ref().and_then(|queue| {
                queue
                    .get_ref()
                    .queue()
                    .map_err(|problem| self.report(&queue.span(), problem))
                    .ok()
            });
            let spec = profiles.for_level_mut(level);
            spec.delay = delay.unwrap_or(spec.delay);
            spec.jitter = jitter.unwrap_or(spec.jitter);
            spec.loss = loss.unwrap_or(spec.loss);
            spec.rate = rate.unwrap_or(spec.rate);
            spec.queue = queue.unwrap_or(spec.queue);
            let worst = spec.delay.checked_add(spec.jitter);
            let written = file.delay.as_ref().or(file.jitter.as_ref());
            if let Some(span) = written.map(Spanned::span)
                && worst.is_none_or(|worst| worst > MAX_LINK_DELAY)
            {
                let (delay, jitter) = (spec.delay, spec.jitter);
                self.report(&span, ScenarioProblem::TooMuchDelay { delay, jitter });
            }
        }
        profiles
    }

    fn backup(&mut self, written: Option<&[Spanned<LinkLevel>]>) -> Vec<LinkLevel> {
        let Some(written) = written else {
            return vec![LinkLevel::Backbone, LinkLevel::Provincial];
        };
        let mut levels = Vec::new();
        for level in written {
            let value = *level.get_ref();
            if value == LinkLevel::Lateral {
                self.report(&level.span(), ScenarioProblem::NotATreeLevel(value));
            } else if levels.contains(&value) {
                self.report(&level.span(), ScenarioProblem::DuplicateLevel(value));
            } else {
                levels.push(value);
            }
        }
        levels
    }

    fn flow(
        &mut self,
        what: &'static str,
        f: FlowFields<'_>,
        entry: &Range<usize>,
    ) -> Option<Flow> {
        let from = self
            .need(f.from, "from", what, entry)
            .and_then(|w| self.endpoint(w));
        let to = self
            .need(f.to, "to", what, entry)
            .and_then(|w| self.endpoint(w));
        let proto = self.need(f.proto, "proto", what, entry);
        let mut ok = true;
        let port = f.port.as_ref().map(|port| (*port.get_ref(), port.span()));
        match (proto.map(|p| (*p.get_ref(), p.span())), &port) {
            (Some((Proto::Any, span)), _) => {
                self.report(&span, ScenarioProblem::ProtoAny);
                ok = false;
            }
            (Some((proto @ (Proto::Tcp | Proto::Udp), span)), None) => {
                self.report(&span, ScenarioProblem::PortNeeded(proto));
                ok = false;
            }
            (Some((Proto::Icmp, _)), Some((_, span))) => {
                self.report(span, ScenarioProblem::PortNotApplicable(Proto::Icmp));
                ok = false;
            }
            (_, Some((0, span))) => {
                self.report(span, ScenarioProblem::ZeroPort);
                ok = false;
            }
            _ => {}
        }
        Some(Flow {
            from: from?,
            to: to?,
            proto: *proto?.get_ref(),
            port: port.map(|(port, _)| port),
        })
        .filter(|_| ok)
    }

    fn event(&mut self, entry: &Spanned<EventFile>) -> Option<Event> {
        let span = entry.span();
        let e = entry.get_ref();
        let word = *e.action.get_ref();
        let what = word.what();
        self.only(what, &e.written(), word.fields());
        let at = self.duration(&e.at);
        let action = match word {
            ActionWord::Cut | ActionWord::Restore => {
                let path = e
                    .path
                    .as_ref()
                    .map_or(UnderlayPath::Primary, |p| *p.get_ref());
                let link = self.need(&e.link, "link", what, &span);
                let link = link.and_then(|l| self.link(l, path == UnderlayPath::Backup))?;
                let path = PathRef { link, path };
                match word {
                    ActionWord::Cut => Action::Cut(path),
                    _ => Action::Restore(path),
                }
            }
            ActionWord::Kill | ActionWord::Restart => {
                let written = self.need(&e.node, "node", what, &span)?;
                let node = self.node(written)?;
                self.refer(&written.span(), Reference::Node(node));
                match word {
                    ActionWord::Kill => Action::Kill(node),
                    _ => Action::Restart(node),
                }
            }
            ActionWord::KillController => Action::KillController,
            ActionWord::RestartController => Action::RestartController,
            ActionWord::Policy => match (&e.file, &e.text) {
                (Some(file), None) => Action::Policy(self.policy_file(file)),
                (None, Some(text)) => Action::Policy(self.inline_policy(text)),
                _ => {
                    self.report(&span, ScenarioProblem::PolicyEitherOr);
                    return None;
                }
            },
            ActionWord::Load => {
                let fields = FlowFields {
                    from: &e.from,
                    to: &e.to,
                    proto: &e.proto,
                    port: &e.port,
                };
                let flow = self.flow(what, fields, &span);
                let rate = self.need(&e.rate_pps, "rate-pps", what, &span);
                let rate = rate.and_then(|rate| match *rate.get_ref() {
                    0 => {
                        self.report(&rate.span(), ScenarioProblem::ZeroRate);
                        None
                    }
                    pps => Some(pps),
                });
                let duration = self.need(&e.duration, "duration", what, &span);
                let duration = duration.and_then(|d| self.duration(d));
                Action::Load(Load {
                    flow: flow?,
                    rate_pps: rate?,
                    duration: duration?,
                })
            }
        };
        Some(Event {
            at: at?,
            action,
            location: self.at(&span),
        })
    }

    /// A policy file; a relative path is taken from the scenario file's directory.
    fn policy_file(&mut self, written: &Spanned<String>) -> PolicyChange {
        let path = Path::new(written.get_ref().trim());
        let base = Path::new(&**self.source.name()).parent();
        match base {
            Some(base) if path.is_relative() => PolicyChange::File(base.join(path)),
            _ => PolicyChange::File(path.to_owned()),
        }
    }

    /// Inline policy text, checked now, its problems reported at the scenario's lines.
    fn inline_policy(&mut self, written: &Spanned<String>) -> PolicyChange {
        let span = written.span();
        let mut line = self.at(&span).line;
        // A multi-line string starts on the line after its opening quotes.
        let raw = self.source.text().get(span.start..).unwrap_or_default();
        let opens = raw.starts_with("\"\"\"") || raw.starts_with("'''");
        let rest = raw.get(3..).unwrap_or_default();
        if opens && (rest.starts_with('\n') || rest.starts_with("\r\n")) {
            line += 1;
        }
        let change = PolicyChange::Inline {
            text: written.get_ref().clone(),
            at: self.source.at_line(line),
        };
        if let Err(ScenarioError::Invalid(problems)) = change.policy() {
            self.problems.extend(problems.0);
        }
        change
    }

    /// `Some(())` when `at` (`None`: it overflowed) is within the scenario; reported at
    /// `span` otherwise.
    fn in_time(
        &mut self,
        end: End,
        what: &str,
        at: Option<Duration>,
        span: &Range<usize>,
    ) -> Option<()> {
        match end.past(what, at) {
            Some(problem) => {
                self.report(span, problem);
                None
            }
            None => Some(()),
        }
    }

    fn check(
        &mut self,
        entry: &Spanned<CheckFile>,
        events: &[Event],
        end: End,
        whole: bool,
    ) -> Option<Check> {
        let span = entry.span();
        let c = entry.get_ref();
        let word = *c.check.get_ref();
        let what = word.what();
        self.only(what, &c.written(), word.fields());
        let fields = FlowFields {
            from: &c.from,
            to: &c.to,
            proto: &c.proto,
            port: &c.port,
        };
        let kind = match word {
            CheckWord::TunnelsUp => {
                let within = self.need(&c.within, "within", what, &span);
                let within = within.and_then(|w| self.duration(w))?;
                self.in_time(end, "the tunnels-up deadline", Some(within), &span)?;
                CheckKind::TunnelsUp { within }
            }
            CheckWord::Reach => {
                let flow = self.flow(what, fields, &span);
                let expect = self.need(&c.expect, "expect", what, &span);
                let at = self.need(&c.at, "at", what, &span);
                let at = at.and_then(|at| self.duration(at))?;
                self.in_time(end, "the reach probe", Some(at), &span)?;
                CheckKind::Reach {
                    flow: flow?,
                    expect: *expect?.get_ref(),
                    at,
                }
            }
            CheckWord::Failover => self.failover(c, &span, events, end, whole)?,
            CheckWord::ForwardingWhileControllerDown => {
                let flow = self.flow(what, fields, &span)?;
                let down = timeline::controller_down(events, end);
                if down.is_empty() && whole {
                    let problem = ScenarioProblem::MissingEvent {
                        check: word.word(),
                        missing: "the timeline never kills the controller".to_owned(),
                    };
                    self.report(&span, problem);
                }
                if down.is_empty() {
                    return None;
                }
                CheckKind::ForwardingWhileControllerDown { flow, down }
            }
        };
        Some(Check {
            name: c.name.clone(),
            kind,
            location: self.at(&span),
        })
    }

    /// A failover check: its link, deadline and the cut it follows.
    fn failover(
        &mut self,
        c: &CheckFile,
        span: &Range<usize>,
        events: &[Event],
        end: End,
        whole: bool,
    ) -> Option<CheckKind> {
        let what = CheckWord::Failover.what();
        let link = self.need(&c.link, "link", what, span);
        let link = link.and_then(|l| self.link(l, true));
        let within = self.need(&c.within, "within", what, span);
        let within = within.and_then(|w| self.duration(w));
        let after = match &c.after {
            Some(after) => Some(self.duration(after)?),
            None => None,
        };
        let (link, within) = (link?, within?);
        let after = match timeline::failover_cut(events, &link, after, whole) {
            Ok(after) => after,
            Err(problem) => {
                if let Some(problem) = problem {
                    self.report(span, problem);
                }
                return None;
            }
        };
        self.in_time(
            end,
            "the failover deadline",
            after.checked_add(within),
            span,
        )?;
        Some(CheckKind::Failover {
            link,
            within,
            after,
        })
    }
}
