//! Alerts: the open ones (firing first, critical first, oldest first), then the recently
//! resolved, each with its age; an engineer acknowledges the selected one from here.

use controller::alerts::{Alert, AlertChange, AlertState, Severity};
use controller::health::LinkKey;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row};

use super::{age, heading, scrolled_table};
use crate::app::{App, View};

/// How many resolved alerts are listed after the open ones.
pub const RESOLVED_SHOWN: usize = 50;

/// One row: an open alert or a resolution.
pub enum Entry<'a> {
    /// Firing or acknowledged.
    Open(&'a Alert),
    /// Resolved recently.
    Resolved(&'a AlertChange),
}

impl Entry<'_> {
    fn id(&self) -> String {
        match self {
            Entry::Open(a) => format!("open:{}", a.id),
            Entry::Resolved(c) => format!("resolved:{}", c.id),
        }
    }

    fn text(&self) -> String {
        match self {
            Entry::Open(a) => format!("{} {} {}", a.rule, a.subject, a.detail),
            Entry::Resolved(c) => format!("{} {} {} resolved", c.rule, c.subject, c.detail),
        }
    }
}

/// The rows, filtered.
pub fn entries(app: &App) -> Vec<Entry<'_>> {
    let alerts = &app.feed.snapshot.alerts;
    let mut open: Vec<&Alert> = alerts.open.iter().collect();
    open.sort_by(|a, b| {
        a.acknowledged
            .is_some()
            .cmp(&b.acknowledged.is_some())
            .then((b.severity == Severity::Critical).cmp(&(a.severity == Severity::Critical)))
            .then(a.fired_at.cmp(&b.fired_at))
            .then(a.id.cmp(&b.id))
    });
    let filter = app.filter_of(View::Alerts).to_lowercase();
    open.into_iter()
        .map(Entry::Open)
        .chain(
            alerts
                .recent
                .iter()
                .filter(|c| c.state == AlertState::Resolved)
                .take(RESOLVED_SHOWN)
                .map(Entry::Resolved),
        )
        .filter(|e| filter.is_empty() || e.text().to_lowercase().contains(&filter))
        .collect()
}

/// The rows' identities.
pub fn row_ids(app: &App) -> Vec<String> {
    entries(app).iter().map(Entry::id).collect()
}

fn selected<'a>(app: &'a App, entries: &[Entry<'a>]) -> Option<usize> {
    let ids: Vec<String> = entries.iter().map(Entry::id).collect();
    app.position(&ids)
}

/// The open alert selected, if the selection is one.
pub fn selected_open(app: &App) -> Option<&Alert> {
    let entries = entries(app);
    match entries.get(selected(app, &entries)?)? {
        Entry::Open(alert) => Some(alert),
        Entry::Resolved(_) => None,
    }
}

/// The link the selected alert is about, if it is about a link.
pub fn selected_link(app: &App) -> Option<LinkKey> {
    let entries = entries(app);
    let subject = match entries.get(selected(app, &entries)?)? {
        Entry::Open(alert) => &alert.subject,
        Entry::Resolved(change) => &change.subject,
    };
    link_of(subject)
}

/// The link an alert subject names (`business dc:14 — dc:1401`).
pub fn link_of(subject: &str) -> Option<LinkKey> {
    let mut words = subject.split_whitespace();
    let plane = words.next()?.parse().ok()?;
    let parent = words.next()?.parse().ok()?;
    let _dash = words.next().filter(|w| *w == "—")?;
    let child = words.next()?.parse().ok()?;
    words.next().is_none().then_some(LinkKey {
        plane,
        parent,
        child,
    })
}

/// Draws the alerts in `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.settings.theme;
    let [top, table] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let entries = entries(app);
    let open = app.feed.snapshot.alerts.open.len();
    let firing = app
        .feed
        .snapshot
        .alerts
        .open
        .iter()
        .filter(|a| a.acknowledged.is_none())
        .count();
    frame.render_widget(
        Paragraph::new(heading(
            app,
            "alerts",
            vec![Span::raw(format!(
                "{firing} firing · {} acknowledged · recently resolved below",
                open - firing
            ))],
        )),
        top,
    );
    let selected = selected(app, &entries);
    let titles = Row::new(["SEV", "STATE", "AGE", "RULE", "SUBJECT", "BY", "DETAIL"]);
    let widths = vec![
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(20),
        Constraint::Length(28),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    scrolled_table(
        frame,
        table,
        app,
        titles,
        widths,
        &entries,
        selected,
        |entry| match entry {
            Entry::Open(alert) => {
                let (state, by) = match &alert.acknowledged {
                    Some(ack) => ("acked", ack.by.as_str()),
                    None => ("FIRING", ""),
                };
                Row::new([
                    Cell::from(Span::styled(
                        format!("{:?}", alert.severity).to_lowercase(),
                        theme.severity(alert.severity),
                    )),
                    Cell::from(Span::styled(state, theme.severity(alert.severity))),
                    Cell::from(age(app.now, alert.fired_at)),
                    Cell::from(alert.rule.to_string()),
                    Cell::from(alert.subject.clone()),
                    Cell::from(by.to_owned()),
                    Cell::from(alert.detail.clone()),
                ])
            }
            Entry::Resolved(change) => Row::new([
                Cell::from(format!("{:?}", change.severity).to_lowercase()),
                Cell::from("resolved"),
                Cell::from(age(app.now, change.since)),
                Cell::from(change.rule.to_string()),
                Cell::from(change.subject.clone()),
                Cell::from(change.by.clone().unwrap_or_default()),
                Cell::from(change.detail.clone()),
            ])
            .style(theme.dim()),
        },
    );
}
