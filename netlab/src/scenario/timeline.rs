//! The timeline on its own: events in time order, nothing after the end, and every event
//! possible when it happens — a restore needs an earlier cut of that path, a restart an
//! earlier kill, a kill a node that is up. Checks find the events they refer to here.
//!
//! These are the mistakes a lab run would otherwise discover minutes in, as a confusing
//! failure; here they are a line number before anything starts.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use topology::{Located, NodeId};

use super::{Action, Event, LinkRef, PathRef, ScenarioProblem, UnderlayPath};

/// The scenario's end, when its duration could be read.
#[derive(Debug, Clone, Copy)]
pub(super) struct End(pub(super) Option<Duration>);

impl End {
    /// The problem with `at` (`None`: it overflowed), if it is not within the scenario.
    pub(super) fn past(self, what: &str, at: Option<Duration>) -> Option<ScenarioProblem> {
        match (at, self.0) {
            (None, _) => Some(ScenarioProblem::TimeOverflow(what.to_owned())),
            (Some(at), Some(end)) if at > end => Some(ScenarioProblem::AfterEnd {
                what: what.to_owned(),
                at,
                end,
            }),
            _ => None,
        }
    }
}

/// Puts the events in time order (file order among equals) and reports every event that
/// comes after the end or cannot happen when it does.
pub(super) fn settle(events: &mut [Event], end: End, problems: &mut Vec<Located<ScenarioProblem>>) {
    events.sort_by_key(|event| event.at);
    let mut down: HashMap<NodeId, Duration> = HashMap::new();
    let mut cut: HashMap<((NodeId, NodeId), UnderlayPath), Duration> = HashMap::new();
    let mut controller_down: Option<Duration> = None;
    for event in events.iter() {
        let at = event.at;
        let what = format!("the {} event", event.action.word());
        if let Some(value) = end.past(&what, Some(at)) {
            problems.push(Located {
                location: event.location.clone(),
                value,
            });
            continue;
        }
        let problem = match &event.action {
            Action::Kill(node) => down.insert(*node, at).map(|since| {
                down.insert(*node, since);
                ScenarioProblem::NodeAlreadyDown {
                    node: *node,
                    at,
                    since,
                }
            }),
            Action::Restart(node) => down
                .remove(node)
                .is_none()
                .then_some(ScenarioProblem::NodeNotDown { node: *node, at }),
            Action::KillController => match controller_down {
                Some(since) => Some(ScenarioProblem::ControllerAlreadyDown { at, since }),
                None => {
                    controller_down = Some(at);
                    None
                }
            },
            Action::RestartController => match controller_down.take() {
                Some(_) => None,
                None => Some(ScenarioProblem::ControllerNotDown { at }),
            },
            Action::Cut(path) => cut.insert(key(path), at).map(|since| {
                cut.insert(key(path), since);
                ScenarioProblem::PathAlreadyCut {
                    path: *path,
                    at,
                    since,
                }
            }),
            Action::Restore(path) => cut
                .remove(&key(path))
                .is_none()
                .then_some(ScenarioProblem::PathNotCut { path: *path, at }),
            Action::Load(load) => end.past("the end of the load", at.checked_add(load.duration)),
            Action::Policy(_) => None,
        };
        if let Some(value) = problem {
            problems.push(Located {
                location: event.location.clone(),
                value,
            });
        }
    }
}

fn key(path: &PathRef) -> ((NodeId, NodeId), UnderlayPath) {
    (path.link.key(), path.path)
}

/// The time of the cut a failover check on `link` follows: the primary cut at `after`, or
/// the only primary cut of the link when `after` is not written. When the timeline is not
/// `whole` (an event was broken and reported), a missing cut is not reported again.
pub(super) fn failover_cut(
    events: &[Event],
    link: &LinkRef,
    after: Option<Duration>,
    whole: bool,
) -> Result<Duration, Option<ScenarioProblem>> {
    let cuts: Vec<Duration> = events
        .iter()
        .filter(|event| {
            matches!(&event.action, Action::Cut(path)
                if path.path == UnderlayPath::Primary && path.link.key() == link.key())
        })
        .map(|event| event.at)
        .collect();
    Err(Some(match (after, cuts.as_slice()) {
        (Some(after), _) if cuts.contains(&after) => return Ok(after),
        (None, [only]) => return Ok(*only),
        (None, [_, _, ..]) => ScenarioProblem::AmbiguousCut { link: *link },
        _ if !whole => return Err(None),
        (Some(after), _) => ScenarioProblem::MissingEvent {
            check: "failover",
            missing: format!(
                "no cut of the primary path of {link} at {}",
                super::show(after)
            ),
        },
        (None, _) => ScenarioProblem::MissingEvent {
            check: "failover",
            missing: format!("the timeline never cuts the primary path of {link}"),
        },
    }))
}

/// When the controller is down: from each kill to its restart, or to the end. Assumes a
/// settled timeline; a kill while down or a restart while up changes nothing.
pub(super) fn controller_down(events: &[Event], end: End) -> Vec<Range<Duration>> {
    let mut windows = Vec::new();
    let mut since = None;
    for event in events {
        match (&event.action, since) {
            (Action::KillController, None) => since = Some(event.at),
            (Action::RestartController, Some(start)) => {
                windows.push(start..event.at);
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        windows.push(start..end.0.unwrap_or(start).max(start));
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use topology::Location;

    fn event(secs: u64, action: Action) -> Event {
        Event {
            at: Duration::from_secs(secs),
            action,
            location: Location {
                file: Arc::from("t.toml"),
                line: usize::try_from(secs).unwrap_or(0),
            },
        }
    }

    #[test]
    fn the_controller_is_down_from_each_kill_to_its_restart_or_the_end() {
        let mut events = vec![
            event(9, Action::KillController),
            event(2, Action::KillController),
            event(4, Action::RestartController),
        ];
        let mut problems = Vec::new();
        let end = End(Some(Duration::from_secs(12)));
        settle(&mut events, end, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            controller_down(&events, end),
            [secs(2)..secs(4), secs(9)..secs(12)]
        );
    }

    #[test]
    fn a_second_kill_is_reported_at_its_own_line() {
        let node: NodeId = "dc:14".parse().unwrap();
        let mut events = vec![
            event(3, Action::Kill(node)),
            event(5, Action::Kill(node)),
            event(7, Action::Restart(node)),
            event(8, Action::Restart(node)),
        ];
        let mut problems = Vec::new();
        settle(&mut events, End(None), &mut problems);
        let lines: Vec<(usize, String)> = problems
            .iter()
            .map(|p| (p.location.line, p.value.to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                (
                    5,
                    "dc:14 is killed at 5s, but it is down since 3s".to_owned()
                ),
                (
                    8,
                    "dc:14 is restarted at 8s, but it is not down (kill it first)".to_owned()
                ),
            ]
        );
    }
}
