//! Certificates: the ones expiring soonest first (expired at the very top), revoked ones
//! last; nodes, operators and the controller alike.

use std::time::{Duration, SystemTime};

use controller::store::CertificateRecord;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row};

use super::{date_time, heading, scrolled_table};
use crate::app::{App, View};

/// Expiring within this is shown as a warning.
pub const SOON: Duration = Duration::from_secs(14 * 86_400);

/// The rows: not revoked first, by expiry; filtered.
pub fn certificates(app: &App) -> Vec<&CertificateRecord> {
    let filter = app.filter_of(View::Certificates).to_lowercase();
    let mut all: Vec<&CertificateRecord> = app
        .feed
        .snapshot
        .certificates
        .iter()
        .filter(|c| {
            filter.is_empty()
                || format!(
                    "{} {} {} {}",
                    c.subject,
                    c.kind.as_str(),
                    c.issuer,
                    c.serial
                )
                .to_lowercase()
                .contains(&filter)
        })
        .collect();
    all.sort_by(|a, b| {
        a.revoked
            .is_some()
            .cmp(&b.revoked.is_some())
            .then(a.not_after.cmp(&b.not_after))
            .then(a.serial.cmp(&b.serial))
    });
    all
}

/// The rows' identities: serials.
pub fn row_ids(app: &App) -> Vec<String> {
    certificates(app).iter().map(|c| c.serial.clone()).collect()
}

/// Draws the certificates in `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.settings.theme;
    let [top, table] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let all = certificates(app);
    let expired = all
        .iter()
        .filter(|c| c.revoked.is_none() && c.not_after <= app.now)
        .count();
    let soon = all
        .iter()
        .filter(|c| c.revoked.is_none() && c.not_after > app.now && c.not_after <= app.now + SOON)
        .count();
    frame.render_widget(
        Paragraph::new(heading(
            app,
            "certificates",
            vec![Span::raw(format!(
                "{} · {expired} expired · {soon} within {} days",
                all.len(),
                SOON.as_secs() / 86_400
            ))],
        )),
        top,
    );
    let ids: Vec<String> = all.iter().map(|c| c.serial.clone()).collect();
    let selected = app.position(&ids);
    let titles = Row::new([
        "EXPIRES",
        "KIND",
        "SUBJECT",
        "PLANE",
        "ISSUER",
        "NOT AFTER",
        "SERIAL",
    ]);
    let widths = vec![
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(22),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(16),
        Constraint::Min(8),
    ];
    scrolled_table(frame, table, app, titles, widths, &all, selected, |c| {
        let (left, style) = match &c.revoked {
            Some(_) => ("revoked".to_owned(), theme.dim()),
            None => expiry(c.not_after, app.now, theme),
        };
        Row::new([
            Cell::from(Span::styled(left, style)),
            Cell::from(c.kind.as_str()),
            Cell::from(c.subject.clone()),
            Cell::from(c.plane.map(|p| p.to_string()).unwrap_or_default()),
            Cell::from(c.issuer.clone()),
            Cell::from(date_time(c.not_after, app.settings.utc_offset_hours)),
            Cell::from(c.serial.chars().take(16).collect::<String>()),
        ])
    });
}

fn expiry(
    not_after: SystemTime,
    now: SystemTime,
    theme: &crate::theme::Theme,
) -> (String, ratatui::style::Style) {
    match not_after.duration_since(now) {
        Err(_) => (
            "EXPIRED".into(),
            theme.state(controller::health::LinkState::Down),
        ),
        Ok(left) if left <= SOON => (
            format!("in {}", super::short_duration(left)),
            theme.state(controller::health::LinkState::Degraded),
        ),
        Ok(left) => (
            format!("in {}", super::short_duration(left)),
            ratatui::style::Style::new(),
        ),
    }
}
