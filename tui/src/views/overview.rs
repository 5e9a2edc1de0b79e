//! The overview: link counts per state, then the tree ministry → provinces → cities with
//! each link's health, worst subtree first (or every link sorted by a column).

use std::collections::BTreeSet;

use agent::control::PathChoice;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use topology::NodeId;

use super::{age, bits, heading, millis, percent, scrolled_table};
use crate::app::{App, View};
use crate::feed::link_ends;
use crate::links::{self, Column, Order};
use crate::theme::glyph;

/// Draws the overview in `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [top, table] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(counts_line(app)), top);
    let rows = app.link_rows();
    let ids: Vec<String> = rows.iter().map(links::Row::id).collect();
    let selected = app.position(&ids);
    let columns = Column::fitting(&app.hidden, table.width);
    let on_path = booking_path(app);
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| match c {
            Column::Link => Constraint::Min(c.width()),
            _ => Constraint::Length(c.width()),
        })
        .collect();
    let titles = Row::new(columns.iter().map(|c| {
        let mut title = c.title().to_owned();
        if app.order == Order::By(*c, false) {
            title.push('↓');
        } else if app.order == Order::By(*c, true) {
            title.push('↑');
        }
        Cell::from(title)
    }));
    scrolled_table(frame, table, app, titles, widths, &rows, selected, |row| {
        let marked = on_path.contains(&ordered(row.link.key.parent, row.link.key.child));
        Row::new(columns.iter().map(|c| cell(app, row, *c, marked)))
    });
}

fn counts_line(app: &App) -> Line<'_> {
    let theme = &app.settings.theme;
    let links = &app.feed.snapshot.links;
    let mut spans = vec![Span::raw(format!("{} links", links.len()))];
    for (state, count) in links::counts(links) {
        let style = if count > 0 {
            theme.state(state)
        } else {
            theme.dim()
        };
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("{} {count} {}", glyph(state), state.as_str()),
            style,
        ));
    }
    if let Some(id) = app
        .selected_booking()
        .filter(|_| !booking_path(app).is_empty())
    {
        spans.push(Span::styled(format!("  ⇄ #{id}"), theme.path()));
    }
    spans.push(Span::styled(
        format!("  sort: {}", app.order.describe()),
        theme.dim(),
    ));
    heading(app, "overview", spans)
}

fn cell<'a>(app: &'a App, row: &links::Row<'a>, column: Column, marked: bool) -> Cell<'a> {
    let theme = &app.settings.theme;
    let link = row.link;
    match column {
        Column::Link => {
            let mut spans = vec![
                Span::styled(row.branch.clone(), theme.dim()),
                Span::styled(glyph(link.state), theme.state(link.state)),
                Span::raw(" "),
            ];
            let name_style = if marked { theme.path() } else { Style::new() };
            spans.push(Span::styled(link.key.child.to_string(), name_style));
            let name = app.names.of(&link.key.child);
            if !name.is_empty() {
                spans.push(Span::styled(format!(" {name}"), theme.dim()));
            }
            if row.folded > 0 {
                spans.push(Span::styled(format!(" +{}", row.folded), theme.dim()));
            }
            if let Some(worst) = row.worst_below {
                spans.push(Span::styled(
                    format!(" {}", glyph(worst)),
                    theme.state(worst),
                ));
            }
            if marked {
                spans.push(Span::styled(" ⇄", theme.path()));
            }
            Cell::from(Line::from(spans))
        }
        Column::Plane => Cell::from(link.key.plane.to_string()),
        Column::State => Cell::from(Span::styled(
            format!("{} {}", glyph(link.state), link.state.as_str()),
            theme.state(link.state),
        )),
        Column::Loss => Cell::from(Span::styled(percent(link.loss), theme.loss(link.loss))),
        Column::Rtt => Cell::from(millis(link.rtt)),
        Column::Jitter => Cell::from(millis(Some(link.jitter))),
        Column::Path => Cell::from(match link.path {
            PathChoice::Primary => Span::raw("primary"),
            PathChoice::Backup => Span::styled("backup", theme.state(link.state)),
        }),
        Column::Up => Cell::from(bits(link.up_rate)),
        Column::Down => Cell::from(bits(link.down_rate)),
        Column::Seen => Cell::from(match link.last_report() {
            Some(at) => age(app.now, at),
            None => "never".into(),
        }),
    }
}

/// The links of the booking selected in the conferences view, as ordered pairs.
pub fn booking_path(app: &App) -> BTreeSet<(NodeId, NodeId)> {
    let Some(id) = app.selected_booking() else {
        return BTreeSet::new();
    };
    if app.view != View::Overview && app.view != View::Conferences {
        return BTreeSet::new();
    }
    app.feed
        .snapshot
        .conferences
        .iter()
        .filter(|b| b.id == id)
        .flat_map(|b| b.links.iter().filter_map(|l| link_ends(&l.link)))
        .collect()
}

fn ordered(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}
