//! The dashboard's state and what each key does to it: sans-IO, with time passed in, so key
//! handling is tested without a terminal and rendering is a pure function of [`App`].
//!
//! The selection is kept by identity (a link, an alert, a booking, a certificate), not by
//! row number: when a refresh reorders the worst links, the row under the cursor stays the
//! one the operator was reading.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use controller::alerts::AlertId;
use controller::health::LinkKey;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use topology::{NodeId, Plane};

use crate::config::{FASTEST, SLOWEST, Settings};
use crate::feed::{Feed, Names, Snapshot};
use crate::keys::Action;
use crate::links::{self, Column, Order};
use crate::views;

/// A screen of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// The tree with link health.
    Overview,
    /// One link: history, ends, devices, alerts.
    Link,
    /// Firing and recently resolved alerts.
    Alerts,
    /// Today's bookings.
    Conferences,
    /// The last isolation audit.
    Audit,
    /// Certificates, expiring first.
    Certificates,
}

impl View {
    /// The views the tabs show, in order (the link detail is opened from a row).
    pub const TABS: [View; 5] = [
        View::Overview,
        View::Alerts,
        View::Conferences,
        View::Audit,
        View::Certificates,
    ];

    /// Its name in the tabs and after `:`.
    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Link => "link",
            View::Alerts => "alerts",
            View::Conferences => "conferences",
            View::Audit => "audit",
            View::Certificates => "certificates",
        }
    }

    /// The view a `:` command names: a prefix of its name, or its usual short form.
    pub fn named(text: &str) -> Option<View> {
        let text = text.trim().to_lowercase();
        if text.is_empty() {
            return None;
        }
        let aliases = [("conf", View::Conferences), ("certs", View::Certificates)];
        if let Some((_, view)) = aliases.iter().find(|(a, _)| *a == text) {
            return Some(*view);
        }
        View::TABS
            .into_iter()
            .chain([View::Link])
            .find(|v| v.name().starts_with(&text))
    }

    fn slot(self) -> usize {
        match self {
            View::Overview => 0,
            View::Link => 1,
            View::Alerts => 2,
            View::Conferences => 3,
            View::Audit => 4,
            View::Certificates => 5,
        }
    }
}

/// What the operator is typing at the bottom line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `/…`: the filter, applied as it is typed.
    Filter(String),
    /// `:…`: a view to jump to.
    Command(String),
}

/// What the dashboard asks its surroundings to do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave.
    Quit,
    /// Acknowledge this alert at the controller.
    Acknowledge(AlertId),
    /// Fetch this link's history with every refresh (or none).
    Watch(Option<LinkKey>),
    /// Refresh at this rate from now on.
    Refresh(Duration),
}

/// The whole state of the dashboard.
#[derive(Debug, Clone)]
pub struct App {
    /// What the controller said, and whether it still answers.
    pub feed: Feed,
    /// Arrivals held back while frozen, applied on resume.
    pub held: Option<(Snapshot, SystemTime)>,
    /// Division names.
    pub names: Names,
    /// The clock, as last told.
    pub now: SystemTime,
    /// Keys, colours, refresh and the timeline's zone.
    pub settings: Settings,
    /// The screen shown.
    pub view: View,
    /// The row selected in each view, by identity.
    selected: [Option<String>; 6],
    /// The rows visible in the body at the last draw (for page up and down).
    pub page: usize,
    /// The filter, per view.
    filters: [String; 6],
    /// What is being typed, if anything.
    pub prompt: Option<Prompt>,
    /// The link table's order.
    pub order: Order,
    /// Columns not shown.
    pub hidden: BTreeSet<Column>,
    /// The column chooser, open at this column.
    pub choosing: Option<usize>,
    /// Subtrees folded away.
    pub folded: BTreeSet<(Plane, NodeId)>,
    /// Frozen since.
    pub frozen: Option<SystemTime>,
    /// The help is shown.
    pub help: bool,
    /// The link the detail view shows.
    pub detail: Option<LinkKey>,
    /// A message for the bottom line (an acknowledgement's outcome) and when it was said.
    pub message: Option<(String, SystemTime)>,
}

/// How long a message stays on the bottom line.
pub const MESSAGE_FOR: Duration = Duration::from_secs(5);

impl App {
    /// A dashboard with no data yet.
    pub fn new(settings: Settings, names: Names, now: SystemTime) -> App {
        App {
            feed: Feed::default(),
            held: None,
            names,
            now,
            hidden: settings.hidden.iter().copied().collect(),
            settings,
            view: View::Overview,
            selected: Default::default(),
            page: 10,
            filters: Default::default(),
            prompt: None,
            order: Order::Tree,
            choosing: None,
            folded: BTreeSet::new(),
            frozen: None,
            help: false,
            detail: None,
            message: None,
        }
    }

    /// A refresh arrived (held back while frozen).
    pub fn arrived(&mut self, snapshot: Snapshot, at: SystemTime) {
        if self.frozen.is_some() {
            self.held = Some((snapshot, at));
        } else {
            self.feed.arrived(snapshot, at);
        }
    }

    /// A refresh failed; what is shown stays, and says how old it is.
    pub fn failed(&mut self, error: String, at: SystemTime) {
        self.feed.failed(error, at);
    }

    /// Says something on the bottom line for a while.
    pub fn say(&mut self, message: impl Into<String>) {
        self.message = Some((message.into(), self.now));
    }

    /// The message to show now, if any.
    pub fn message(&self) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, at)| self.now.duration_since(*at).unwrap_or_default() < MESSAGE_FOR)
            .map(|(m, _)| m.as_str())
    }

    /// The filter of the current view.
    pub fn filter(&self) -> &str {
        self.filter_of(self.view)
    }

    /// The filter of `view`: what is being typed, when that is its filter.
    pub fn filter_of(&self, view: View) -> &str {
        match &self.prompt {
            Some(Prompt::Filter(text)) if view == self.view => text,
            _ => &self.filters[view.slot()],
        }
    }

    /// The selected row's identity in the current view.
    pub fn selected(&self) -> Option<&str> {
        self.selected[self.view.slot()].as_deref()
    }

    /// Selects the row with this identity in the current view.
    pub fn select(&mut self, id: Option<String>) {
        self.selected[self.view.slot()] = id;
    }

    /// The booking selected in the conferences view (its path is marked on the tree).
    pub fn selected_booking(&self) -> Option<u64> {
        self.selected[View::Conferences.slot()]
            .as_deref()
            .and_then(|id| id.parse().ok())
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if let Some(prompt) = self.prompt.take() {
            return self.on_prompt_key(prompt, key);
        }
        let Some(action) = self.settings.keys.action(&key) else {
            return Vec::new();
        };
        if self.help {
            // Any bound key closes the help; quit still quits.
            self.help = false;
            return if action == Action::Quit {
                vec![Effect::Quit]
            } else {
                Vec::new()
            };
        }
        if let Some(at) = self.choosing {
            return self.on_chooser_key(at, action);
        }
        self.act(action)
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Help => self.help = true,
            Action::Filter => self.prompt = Some(Prompt::Filter(self.filter().to_owned())),
            Action::Command => self.prompt = Some(Prompt::Command(String::new())),
            Action::NextView | Action::PreviousView => {
                let at = View::TABS.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = View::TABS.len();
                let next = if action == Action::NextView {
                    at + 1
                } else {
                    at + n - 1
                };
                return self.show(View::TABS[next % n]);
            }
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-(self.page.max(1) as isize)),
            Action::PageDown => self.step(self.page.max(1) as isize),
            Action::Top => self.step(isize::MIN),
            Action::Bottom => self.step(isize::MAX),
            Action::Open => return self.open(),
            Action::Back => return self.back(),
            Action::Fold => self.fold(),
            Action::Sort if self.view == View::Overview => self.order = self.order.next(),
            Action::ReverseSort if self.view == View::Overview => {
                self.order = self.order.reversed();
            }
            Action::Columns if self.view == View::Overview => self.choosing = Some(0),
            Action::Sort | Action::ReverseSort | Action::Columns => {}
            Action::Freeze => self.freeze(),
            Action::Acknowledge => return self.acknowledge(),
            Action::Faster | Action::Slower => {
                let now = self.settings.refresh;
                let next = if action == Action::Faster {
                    now / 2
                } else {
                    now * 2
                };
                self.settings.refresh = next.clamp(FASTEST, SLOWEST);
                self.say(format!("refresh every {:?}", self.settings.refresh));
                return vec![Effect::Refresh(self.settings.refresh)];
            }
        }
        Vec::new()
    }

    fn on_prompt_key(&mut self, prompt: Prompt, key: KeyEvent) -> Vec<Effect> {
        let (mut text, filter) = match prompt {
            Prompt::Filter(text) => (text, true),
            Prompt::Command(text) => (text, false),
        };
        match key.code {
            KeyCode::Esc => {
                if filter {
                    self.filters[self.view.slot()].clear();
                }
                return Vec::new();
            }
            KeyCode::Enter => {
                if filter {
                    self.filters[self.view.slot()] = text;
                    return Vec::new();
                }
                return match View::named(&text) {
                    Some(View::Link) if self.detail.is_none() => {
                        self.say("open a link from the overview first (Enter on its row)");
                        Vec::new()
                    }
                    Some(view) => self.show(view),
                    None => {
                        self.say(format!(
                            "no view `{text}`: overview, alerts, conferences, audit, certificates"
                        ));
                        Vec::new()
                    }
                };
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !c.is_control() => text.push(c),
            _ => {}
        }
        self.prompt = Some(if filter {
            Prompt::Filter(text)
        } else {
            Prompt::Command(text)
        });
        Vec::new()
    }

    fn on_chooser_key(&mut self, at: usize, action: Action) -> Vec<Effect> {
        let last = Column::ALL.len() - 1;
        match action {
            Action::Up => self.choosing = Some(at.saturating_sub(1)),
            Action::Down => self.choosing = Some((at + 1).min(last)),
            Action::Fold | Action::Open => {
                let column = Column::ALL[at.min(last)];
                if column != Column::Link && !self.hidden.remove(&column) {
                    self.hidden.insert(column);
                }
            }
            Action::Quit => return vec![Effect::Quit],
            _ => self.choosing = None,
        }
        Vec::new()
    }

    /// Shows `view`; the detail view watches its link's history, the others none.
    pub fn show(&mut self, view: View) -> Vec<Effect> {
        self.view = view;
        let watch = if view == View::Link {
            self.detail
        } else {
            None
        };
        vec![Effect::Watch(watch)]
    }

    fn open(&mut self) -> Vec<Effect> {
        let key = match self.view {
            View::Overview => self.selected_link(),
            View::Alerts => views::alerts::selected_link(self),
            _ => None,
        };
        match key {
            Some(key) => {
                self.detail = Some(key);
                self.show(View::Link)
            }
            None => Vec::new(),
        }
    }

    fn back(&mut self) -> Vec<Effect> {
        if self.view == View::Link {
            return self.show(View::Overview);
        }
        self.filters[self.view.slot()].clear();
        Vec::new()
    }

    fn fold(&mut self) {
        if self.view != View::Overview || self.order != Order::Tree {
            return;
        }
        if let Some(key) = self.selected_link() {
            let at = (key.plane, key.child);
            if !self.folded.remove(&at) {
                self.folded.insert(at);
            }
        }
    }

    fn freeze(&mut self) {
        match self.frozen.take() {
            Some(_) => {
                if let Some((snapshot, at)) = self.held.take() {
                    self.feed.arrived(snapshot, at);
                }
                self.say("resumed");
            }
            None => {
                self.frozen = Some(self.now);
                self.say("frozen: no updates until f again");
            }
        }
    }

    fn acknowledge(&mut self) -> Vec<Effect> {
        if self.view != View::Alerts {
            return Vec::new();
        }
        let selected = views::alerts::selected_open(self)
            .map(|a| (a.id, a.acknowledged.as_ref().map(|ack| ack.by.clone())));
        match selected {
            Some((id, None)) => {
                self.say(format!("acknowledging alert {id}…"));
                vec![Effect::Acknowledge(id)]
            }
            Some((id, Some(by))) => {
                self.say(format!("alert {id} is already acknowledged by {by}"));
                Vec::new()
            }
            None => {
                self.say("select a firing alert to acknowledge");
                Vec::new()
            }
        }
    }

    /// The link selected in the overview.
    pub fn selected_link(&self) -> Option<LinkKey> {
        let id = self.selected[View::Overview.slot()].as_deref();
        let rows = self.link_rows();
        let row = match id {
            Some(id) => rows.iter().find(|r| r.id() == id).or(rows.first()),
            None => rows.first(),
        };
        row.map(|r| r.link.key)
    }

    /// The overview's rows as they stand.
    pub fn link_rows(&self) -> Vec<links::Row<'_>> {
        links::rows(
            &self.feed.snapshot.links,
            self.order,
            self.filter_of(View::Overview),
            &self.folded,
            &self.names,
            self.now,
        )
    }

    /// The identities of the current view's rows, in order.
    fn row_ids(&self) -> Vec<String> {
        match self.view {
            View::Overview => self.link_rows().iter().map(links::Row::id).collect(),
            View::Alerts => views::alerts::row_ids(self),
            View::Conferences => views::conferences::row_ids(self),
            View::Certificates => views::certificates::row_ids(self),
            View::Audit => views::audit::row_ids(self),
            View::Link => Vec::new(),
        }
    }

    /// The index of the selected row among `ids` (the first when none or gone).
    pub fn position(&self, ids: &[String]) -> Option<usize> {
        if ids.is_empty() {
            return None;
        }
        Some(
            self.selected()
                .and_then(|id| ids.iter().position(|i| i == id))
                .unwrap_or(0),
        )
    }

    fn step(&mut self, by: isize) {
        let ids = self.row_ids();
        let Some(at) = self.position(&ids) else {
            return;
        };
        let last = ids.len() - 1;
        let next = (at as isize).saturating_add(by).clamp(0, last as isize) as usize;
        self.select(Some(ids[next].clone()));
    }
}
