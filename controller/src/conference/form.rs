//! The booking form (申请表) of the 2005 interim rules on ministry–province video
//! conferences, as a TOML file.
//!
//! ```toml
//! title = "2027年全国人力资源社会保障工作视频会议"
//! organiser = "人力资源和社会保障部办公厅"
//! contact = "王芳"
//! phone = "010-84201234"
//! start = 2027-01-10T09:00:00+08:00      # or "2027-01-10 09:00", Beijing time
//! end = 2027-01-10T11:30:00+08:00
//! main-venue = "dc:ministry"             # the node whose MCU runs the conference
//! sites = ["dc:14", "dc:44", "dc:1401"]  # participating sites (分会场)
//! receive-only = ["dc:1402"]             # sites that only watch (收看会场), optional
//! bitrate = "hd"                         # sd, hd, 1080p, or e.g. "1500 kbit/s"
//! priority = "important"                 # routine (default), important, urgent
//! test-window = "30m"                    # bandwidth held before the start; default 30m
//! ```
//!
//! Times without an offset are Beijing time (UTC+8), as the rules and every form use.
//! Forms come from outside the controller: every problem is reported with its line, all of
//! them in one pass, and nothing in a form can make the reader panic.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use toml::Spanned;
use topology::{BadNodeId, Located, Location, Network, NodeId, Problems, SourceText};

use super::config::SchedulerConfig;
use super::plan::{Plan, PlanError};
use super::time::{self, BadTime};
use super::words::{Bitrate, Priority};

/// The test window when a form names none: the rules' 30 minutes.
pub const DEFAULT_TEST_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The longest test window a form may ask for.
pub const MAX_TEST_WINDOW: Duration = Duration::from_secs(4 * 3600);

/// The longest conference one form may book; longer is a wrong date far more often than a
/// real conference, and a meeting over several days is booked day by day.
pub const MAX_CONFERENCE: Duration = Duration::from_secs(24 * 3600);

/// A participating site (分会场).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Site {
    /// The node where the site's terminal is.
    pub node: NodeId,
    /// Whether the site only watches (收看会场) and sends nothing.
    pub receive_only: bool,
}

/// A booking form as filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BookingForm {
    /// The conference's title.
    pub title: String,
    /// The organising unit (主办单位).
    pub organiser: String,
    /// The contact person.
    pub contact: String,
    /// The contact person's phone.
    pub phone: String,
    /// When the conference starts.
    #[serde(with = "crate::health::rfc3339")]
    pub start: SystemTime,
    /// When it ends (exclusive).
    #[serde(with = "crate::health::rfc3339")]
    pub end: SystemTime,
    /// The main venue (主会场): the node whose MCU runs the conference.
    pub main_venue: NodeId,
    /// The other participating sites.
    pub sites: Vec<Site>,
    /// The video bitrate of every stream.
    pub bitrate: Bitrate,
    /// The priority.
    pub priority: Priority,
    /// How long before the start the bandwidth is held for testing.
    #[serde(with = "time::humantime_duration")]
    pub test_window: Duration,
}

/// A problem in a booking form, reported at its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormProblem {
    /// Not TOML, or not the shape of a form.
    #[error("{0}")]
    Syntax(String),
    /// A required field is not there.
    #[error("the form has no `{field}` ({what})")]
    Missing {
        /// The field.
        field: &'static str,
        /// What it is for.
        what: &'static str,
    },
    /// A required text field is blank.
    #[error("`{0}` is empty")]
    Empty(&'static str),
    /// A phone number that is not one.
    #[error("`{0}` is not a phone number (write digits, e.g. 010-84201234 or 13800138000)")]
    BadPhone(String),
    /// A start or end that is not a date and time.
    #[error("{0}")]
    BadTime(BadTime),
    /// An end at or before the start.
    #[error("the conference ends at or before its start")]
    EndNotAfterStart,
    /// A conference longer than [`MAX_CONFERENCE`].
    #[error("the conference lasts {} (at most 24h per form: book each day separately)", humantime::format_duration(*.0))]
    TooLong(Duration),
    /// Text that is not a node id.
    #[error("{0}")]
    BadNode(BadNodeId),
    /// No site besides the main venue.
    #[error("no participating sites: list them in `sites` (or `receive-only`)")]
    NoSites,
    /// A site named twice.
    #[error("{0} is listed twice")]
    ListedTwice(NodeId),
    /// The main venue listed as a site.
    #[error("{0} is the main venue, which always takes part: do not list it as a site")]
    MainVenueListed(NodeId),
    /// A bitrate that is not one.
    #[error("{0}")]
    BadBitrate(super::words::BadBitrate),
    /// A priority that is not one.
    #[error("{0}")]
    BadPriority(super::words::BadPriority),
    /// A test window that is not a duration.
    #[error("bad test window `{given}`: {why} (write e.g. \"30m\" or \"1h\")")]
    BadTestWindow {
        /// The text.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// A test window longer than [`MAX_TEST_WINDOW`].
    #[error("a test window of {} is longer than the 4h allowed", humantime::format_duration(*.0))]
    TestWindowTooLong(Duration),
    /// The form cannot be laid out on the network.
    #[error("{0}")]
    Plan(PlanError),
}

impl BookingForm {
    /// Reads a form, reporting every problem with its line.
    pub fn parse(source: &SourceText<'_>) -> Result<BookingForm, Problems<FormProblem>> {
        read(source).map(|(form, _)| form)
    }

    /// Reads a form and lays it out on `network`: problems of the form and problems of
    /// its nodes on the network (unknown, no MCU at the main venue, not below the main
    /// venue) all at once, each at the line that names the node.
    pub fn parse_and_plan(
        source: &SourceText<'_>,
        network: &Network,
        config: &SchedulerConfig,
    ) -> Result<(BookingForm, Plan), Problems<FormProblem>> {
        let (form, lines) = read(source)?;
        let at = |node: &NodeId| lines.nodes.get(node).cloned();
        let mut problems: Vec<Located<FormProblem>> = Plan::check_nodes(
            network,
            config,
            form.main_venue,
            form.sites.iter().map(|s| s.node),
        )
        .into_iter()
        .map(|(node, problem)| Located {
            location: at(&node).unwrap_or_else(|| source.at_line(1)),
            value: FormProblem::Plan(problem),
        })
        .collect();
        if problems.is_empty() {
            match form.plan(network, config) {
                Ok(plan) => return Ok((form, plan)),
                Err(problem) => problems.push(Located {
                    location: lines.bitrate.clone(),
                    value: FormProblem::Plan(problem),
                }),
            }
        }
        problems.sort_by_key(|p| p.location.line);
        Err(Problems(problems))
    }

    /// Lays the form out on `network`.
    pub fn plan(&self, network: &Network, config: &SchedulerConfig) -> Result<Plan, PlanError> {
        Plan::compute(
            network,
            config,
            self.main_venue,
            &self.sites,
            self.bitrate.0,
        )
    }

    /// How long the conference lasts.
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }
}

/// The shape serde reads: everything optional and kept as text with its span, so the
/// reader reports every problem, not only the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FormFile {
    title: Option<Spanned<String>>,
    organiser: Option<Spanned<String>>,
    contact: Option<Spanned<String>>,
    phone: Option<Spanned<String>>,
    start: Option<Spanned<toml::Value>>,
    end: Option<Spanned<toml::Value>>,
    main_venue: Option<Spanned<String>>,
    sites: Option<Spanned<Vec<Spanned<String>>>>,
    receive_only: Option<Spanned<Vec<Spanned<String>>>>,
    bitrate: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    test_window: Option<Spanned<String>>,
}

/// Where the form names things the network may not know.
struct Lines {
    nodes: BTreeMap<NodeId, Location>,
    bitrate: Location,
}

/// Turns the file into a form, collecting problems as it goes.
struct Reader<'s, 't> {
    source: &'s SourceText<'t>,
    problems: Vec<Located<FormProblem>>,
}

fn read(source: &SourceText<'_>) -> Result<(BookingForm, Lines), Problems<FormProblem>> {
    let file: FormFile = source
        .parse_toml()
        .map_err(|e| Problems(vec![e.map(FormProblem::Syntax)]))?;
    let mut reader = Reader {
        source,
        problems: Vec::new(),
    };
    let title = reader.text(file.title.as_ref(), "title", "the conference's title");
    let organiser = reader.text(file.organiser.as_ref(), "organiser", "the organising unit");
    let contact = reader.text(file.contact.as_ref(), "contact", "the contact person");
    let phone = reader.phone(file.phone.as_ref());
    let start = reader.time(file.start.as_ref(), "start");
    let end = reader.time(file.end.as_ref(), "end");
    let window = reader.window(&file, start, end);
    let main_venue = reader.main_venue(file.main_venue.as_ref());
    let (sites, mut nodes) = reader.sites(&file, main_venue);
    let bitrate = reader.bitrate(file.bitrate.as_ref());
    let priority = reader.priority(file.priority.as_ref());
    let test_window = reader.test_window(file.test_window.as_ref());

    let mut problems = reader.problems;
    problems.sort_by_key(|p| p.location.line);
    let (
        Some(title),
        Some(organiser),
        Some(contact),
        Some(phone),
        Some((start, end)),
        Some(main_venue),
        Some(bitrate),
        Some(priority),
        Some(test_window),
    ) = (
        title,
        organiser,
        contact,
        phone,
        window,
        main_venue,
        bitrate,
        priority,
        test_window,
    )
    else {
        return Err(Problems(problems));
    };
    if let Some(written) = &file.main_venue {
        nodes.insert(main_venue, source.locate_span(&written.span()));
    }
    let lines = Lines {
        nodes,
        bitrate: file
            .bitrate
            .as_ref()
            .map_or_else(|| source.at_line(1), |b| source.locate_span(&b.span())),
    };
    let form = BookingForm {
        title,
        organiser,
        contact,
        phone,
        start,
        end,
        main_venue,
        sites,
        bitrate,
        priority,
        test_window,
    };
    Problems(problems).into_result((form, lines))
}

impl Reader<'_, '_> {
    fn report(&mut self, span: &Range<usize>, value: FormProblem) {
        let location = self.source.locate_span(span);
        self.problems.push(Located { location, value });
    }

    /// A required field; reported at the top of the form when missing.
    fn need<'f, T>(
        &mut self,
        field: Option<&'f Spanned<T>>,
        name: &'static str,
        what: &'static str,
    ) -> Option<&'f Spanned<T>> {
        if field.is_none() {
            let location = self.source.at_line(1);
            let value = FormProblem::Missing { field: name, what };
            self.problems.push(Located { location, value });
        }
        field
    }

    fn text(
        &mut self,
        field: Option<&Spanned<String>>,
        name: &'static str,
        what: &'static str,
    ) -> Option<String> {
        let written = self.need(field, name, what)?;
        let text = written.get_ref().trim();
        if text.is_empty() {
            self.report(&written.span(), FormProblem::Empty(name));
            return None;
        }
        Some(text.to_owned())
    }

    fn phone(&mut self, field: Option<&Spanned<String>>) -> Option<String> {
        let written = self.need(field, "phone", "the contact person's phone")?;
        let text = written.get_ref().trim();
        let allowed = |c: char| c.is_ascii_digit() || " -+()".contains(c);
        let digits = text.chars().filter(char::is_ascii_digit).count();
        if !text.chars().all(allowed) || !(7..=15).contains(&digits) {
            self.report(&written.span(), FormProblem::BadPhone(text.to_owned()));
            return None;
        }
        Some(text.to_owned())
    }

    fn time(
        &mut self,
        field: Option<&Spanned<toml::Value>>,
        name: &'static str,
    ) -> Option<SystemTime> {
        let what = if name == "start" {
            "when the conference starts"
        } else {
            "when the conference ends"
        };
        let written = self.need(field, name, what)?;
        match time::instant(name, written.get_ref()) {
            Ok(at) => Some(at),
            Err(bad) => {
                self.report(&written.span(), FormProblem::BadTime(bad));
                None
            }
        }
    }

    /// Start and end together: the end after the start, within [`MAX_CONFERENCE`].
    fn window(
        &mut self,
        file: &FormFile,
        start: Option<SystemTime>,
        end: Option<SystemTime>,
    ) -> Option<(SystemTime, SystemTime)> {
        let (start, end) = (start?, end?);
        let span = file.end.as_ref().map(Spanned::span).unwrap_or_default();
        match end.duration_since(start) {
            Ok(length) if length > MAX_CONFERENCE => {
                self.report(&span, FormProblem::TooLong(length));
                None
            }
            Ok(length) if !length.is_zero() => Some((start, end)),
            _ => {
                self.report(&span, FormProblem::EndNotAfterStart);
                None
            }
        }
    }

    fn node(&mut self, written: &Spanned<String>) -> Option<NodeId> {
        match written.get_ref().trim().parse() {
            Ok(node) => Some(node),
            Err(bad) => {
                self.report(&written.span(), FormProblem::BadNode(bad));
                None
            }
        }
    }

    fn main_venue(&mut self, field: Option<&Spanned<String>>) -> Option<NodeId> {
        let written = self.need(
            field,
            "main-venue",
            "the node whose MCU runs the conference",
        )?;
        self.node(written)
    }

    /// `sites` and `receive-only` together: each node once, never the main venue.
    fn sites<'f>(
        &mut self,
        file: &'f FormFile,
        main_venue: Option<NodeId>,
    ) -> (Vec<Site>, BTreeMap<NodeId, Location>) {
        let mut sites = Vec::new();
        let mut lines = BTreeMap::new();
        let written = |list: &'f Option<Spanned<Vec<Spanned<String>>>>| {
            list.iter().flat_map(|l| l.get_ref().iter())
        };
        let listed = written(&file.sites).map(|s| (s, false));
        let watching = written(&file.receive_only).map(|s| (s, true));
        for (written, receive_only) in listed.chain(watching) {
            let Some(node) = self.node(written) else {
                continue;
            };
            let location = self.source.locate_span(&written.span());
            let problem = if Some(node) == main_venue {
                FormProblem::MainVenueListed(node)
            } else if let Entry::Vacant(slot) = lines.entry(node) {
                slot.insert(location);
                sites.push(Site { node, receive_only });
                continue;
            } else {
                FormProblem::ListedTwice(node)
            };
            self.report(&written.span(), problem);
        }
        if written(&file.sites)
            .chain(written(&file.receive_only))
            .next()
            .is_none()
        {
            let location = file
                .sites
                .as_ref()
                .or(file.receive_only.as_ref())
                .map_or_else(
                    || self.source.at_line(1),
                    |l| self.source.locate_span(&l.span()),
                );
            self.problems.push(Located {
                location,
                value: FormProblem::NoSites,
            });
        }
        (sites, lines)
    }

    fn bitrate(&mut self, field: Option<&Spanned<String>>) -> Option<Bitrate> {
        let written = self.need(field, "bitrate", "sd, hd, 1080p or a rate")?;
        match written.get_ref().parse() {
            Ok(bitrate) => Some(bitrate),
            Err(bad) => {
                self.report(&written.span(), FormProblem::BadBitrate(bad));
                None
            }
        }
    }

    fn priority(&mut self, field: Option<&Spanned<String>>) -> Option<Priority> {
        let Some(written) = field else {
            return Some(Priority::default());
        };
        match written.get_ref().parse() {
            Ok(priority) => Some(priority),
            Err(bad) => {
                self.report(&written.span(), FormProblem::BadPriority(bad));
                None
            }
        }
    }

    fn test_window(&mut self, field: Option<&Spanned<String>>) -> Option<Duration> {
        let Some(written) = field else {
            return Some(DEFAULT_TEST_WINDOW);
        };
        let text = written.get_ref().trim();
        let parsed = if text == "0" {
            Ok(Duration::ZERO)
        } else {
            humantime::parse_duration(text)
        };
        let problem = match parsed {
            Ok(window) if window <= MAX_TEST_WINDOW => return Some(window),
            Ok(window) => FormProblem::TestWindowTooLong(window),
            Err(why) => FormProblem::BadTestWindow {
                given: text.to_owned(),
                why: why.to_string(),
            },
        };
        self.report(&written.span(), problem);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lines a form is made of, right and wrong, for the reader to choke on if it can.
    const LINES: &[&str] = &[
        "title = \"视频会议\"",
        "title = \"\"",
        "organiser = \"人社部\"",
        "contact = \"王芳\"",
        "phone = \"010-84201234\"",
        "phone = \"++++\"",
        "start = 2027-01-10T09:00:00+08:00",
        "start = \"2027-01-10 09:00\"",
        "start = \"9999-12-31 23:59\"",
        "start = 0000-01-01T00:00:00-23:59",
        "end = \"2027-01-10 10:00\"",
        "end = 9999-12-31T23:59:59.999999999-23:59",
        "end = 1970-01-01T00:00:00+23:59",
        "main-venue = \"dc:ministry\"",
        "main-venue = \"site:140105:window-00\"",
        "sites = [\"dc:14\", \"dc:14\"]",
        "sites = []",
        "receive-only = [\"dc:ministry\"]",
        "bitrate = \"18446744073709551615 kbit/s\"",
        "bitrate = \"hd\"",
        "priority = \"urgent\"",
        "test-window = \"99999999999999h\"",
        "test-window = \"0\"",
        "[oops]",
        "sites = \"dc:14\"",
    ];

    proptest! {
        #[test]
        fn no_text_makes_the_reader_panic(text in any::<String>()) {
            let _ = BookingForm::parse(&SourceText::new("f.toml", &text));
        }

        #[test]
        fn no_mix_of_form_lines_makes_the_reader_panic(
            picks in prop::collection::vec(0..LINES.len(), 0..16),
        ) {
            let text: Vec<&str> = picks.iter().map(|&i| LINES[i]).collect();
            let text = text.join("\n");
            if let Err(problems) = BookingForm::parse(&SourceText::new("f.toml", &text)) {
                let lines = text.lines().count().max(1);
                prop_assert!(!problems.0.is_empty());
                prop_assert!(problems.iter().all(|p| p.location.line <= lines), "{problems}");
            }
        }
    }
}
