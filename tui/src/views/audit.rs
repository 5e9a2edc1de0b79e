//! The last isolation audit: when, against which policy and plan, what it covered, and each
//! finding with its counterexample and evidence. Says plainly when none has been run.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{date_time, heading};
use crate::app::{App, View};
use crate::feed::Finding;

/// The findings shown, filtered.
fn findings(app: &App) -> Vec<&Finding> {
    let filter = app.filter_of(View::Audit).to_lowercase();
    app.feed
        .snapshot
        .audit
        .iter()
        .flat_map(|a| a.findings.iter())
        .filter(|f| {
            filter.is_empty()
                || format!("{} {} {} {}", f.kind, f.source, f.destination, f.flow)
                    .to_lowercase()
                    .contains(&filter)
        })
        .collect()
}

/// The rows' identities: findings by position.
pub fn row_ids(app: &App) -> Vec<String> {
    (0..findings(app).len()).map(|i| i.to_string()).collect()
}

/// Draws the audit in `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.settings.theme;
    let [top, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let Some(audit) = &app.feed.snapshot.audit else {
        frame.render_widget(
            Paragraph::new(heading(
                app,
                "isolation audit",
                vec![Span::raw("none run yet")],
            )),
            top,
        );
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::raw(" The controller has no isolation audit to show."),
                Line::styled(
                    " An auditor runs one with: jinbao-controller audit run",
                    theme.dim(),
                ),
            ]),
            body,
        );
        return;
    };
    let shown = findings(app);
    let verdict = if audit.findings.is_empty() {
        Span::styled(
            "PASSED — no findings",
            theme.state(controller::health::LinkState::Up),
        )
    } else {
        Span::styled(
            format!("{} FINDINGS", audit.findings.len()),
            theme.state(controller::health::LinkState::Down),
        )
    };
    frame.render_widget(
        Paragraph::new(heading(
            app,
            &format!("isolation audit #{}", audit.id),
            vec![verdict],
        )),
        top,
    );
    let when = date_time(audit.at, app.settings.utc_offset_hours);
    let mut lines = vec![
        Line::raw(format!(" run {when} by {}", audit.by)),
        Line::raw(format!(
            " policy {} (sha256 {})  plan sha256 {}",
            audit.policy,
            short_hash(&audit.policy_hash),
            short_hash(&audit.plan_hash)
        )),
        Line::raw(format!(
            " coverage: {} · {} flows decided",
            audit.coverage, audit.flows
        )),
        Line::raw(""),
    ];
    let selected = app.position(&row_ids(app));
    for (i, finding) in shown.iter().enumerate() {
        let style = if Some(i) == selected {
            theme.selected()
        } else {
            theme.severity(controller::alerts::Severity::Critical)
        };
        lines.push(Line::styled(
            format!(
                " ✖ {}: {} → {} {}",
                finding.kind, finding.source, finding.destination, finding.flow
            ),
            style,
        ));
        if let Some(rule) = &finding.rule {
            lines.push(Line::raw(format!("     allowed by {rule}")));
        }
        if let Some(evidence) = &finding.evidence {
            lines.push(Line::styled(
                format!("     evidence: {evidence}"),
                theme.dim(),
            ));
        }
    }
    let scroll = selected.map_or(0, |s| (s as u16 * 3).saturating_sub(body.height / 2));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        body,
    );
}

fn short_hash(hash: &str) -> &str {
    if hash.is_empty() {
        "—"
    } else {
        &hash[..hash.len().min(16)]
    }
}
