//! Drawing: [`render`] draws the whole screen from an [`App`], nothing else. One file per
//! view; this one draws the frame around them (tabs, the stale-data banner, the bottom line)
//! and the popups (help, column chooser).
//!
//! Layout degrades by dropping what matters least: at 80×24 the link table keeps link,
//! state, loss, RTT and path; wider terminals get every column and longer histories.

pub mod alerts;
pub mod audit;
pub mod certificates;
pub mod conferences;
pub mod link;
pub mod overview;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState};

use crate::app::{App, Prompt, View};
use crate::keys::Action;
use crate::links::Column;

/// Draws the dashboard.
pub fn render(frame: &mut Frame<'_>, app: &App) {
    let banner = banner(app);
    let [tabs, banner_area, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(tab_line(app, tabs.width), tabs);
    if let Some(banner) = banner {
        frame.render_widget(banner, banner_area);
    }
    match app.view {
        View::Overview => overview::render(frame, body, app),
        View::Link => link::render(frame, body, app),
        View::Alerts => alerts::render(frame, body, app),
        View::Conferences => conferences::render(frame, body, app),
        View::Audit => audit::render(frame, body, app),
        View::Certificates => certificates::render(frame, body, app),
    }
    frame.render_widget(bottom_line(app), bottom);
    if app.choosing.is_some() {
        column_chooser(frame, app);
    }
    if app.help {
        help(frame, app);
    }
}

/// Draws `items` as a table under `titles`, the selected row highlighted and kept in view;
/// only the rows in view are built (a national tree has hundreds).
#[allow(clippy::too_many_arguments)]
pub fn scrolled_table<'a, T>(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    titles: Row<'a>,
    widths: Vec<Constraint>,
    items: &'a [T],
    selected: Option<usize>,
    row: impl Fn(&'a T) -> Row<'a>,
) {
    let theme = &app.settings.theme;
    let height = table_rows(area) + 1;
    let offset = window(selected, height, items.len());
    let body: Vec<Row<'a>> = items.iter().skip(offset).take(height).map(row).collect();
    let mut state = TableState::new().with_selected(selected.map(|s| s - offset));
    frame.render_stateful_widget(
        Table::new(body, widths)
            .header(titles.style(theme.heading()))
            .column_spacing(1)
            .row_highlight_style(theme.selected()),
        area,
        &mut state,
    );
}

/// The first row drawn so that `selected` is in a window of `height` rows.
pub fn window(selected: Option<usize>, height: usize, len: usize) -> usize {
    let selected = selected.unwrap_or(0);
    if height == 0 || len <= height {
        return 0;
    }
    selected
        .saturating_add(1)
        .saturating_sub(height)
        .min(len - height)
}

/// How many body rows a table gets in `area` under its heading line and column titles.
pub fn table_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(2))
}

fn tab_line(app: &App, width: u16) -> Line<'static> {
    let theme = &app.settings.theme;
    let mut spans = vec![Span::styled(" jinbao ", theme.heading())];
    let open = app.feed.snapshot.alerts.open.len();
    let narrow = width < 100;
    for view in View::TABS {
        let name = match view {
            View::Conferences if narrow => "conf",
            View::Certificates if narrow => "certs",
            _ => view.name(),
        };
        let mut label = format!(" {name} ");
        if view == View::Alerts && open > 0 {
            label = format!(" alerts {open} ");
        }
        let current = app.view == view || (app.view == View::Link && view == View::Overview);
        let style = if current {
            theme.selected()
        } else if view == View::Alerts && open > 0 {
            theme.severity(controller::alerts::Severity::Critical)
        } else {
            Style::new()
        };
        spans.push(Span::raw("│"));
        spans.push(Span::styled(label, style));
    }
    let right = match app.frozen {
        Some(since) => format!(" FROZEN {} ", age(app.now, since)),
        None => format!(
            " every {} · {} ",
            short_duration(app.settings.refresh),
            clock(app.now, app.settings.utc_offset_hours)
        ),
    };
    let used: usize = spans.iter().map(Span::width).sum();
    let pad = usize::from(width).saturating_sub(used + right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    let right_style = if app.frozen.is_some() {
        theme.stale()
    } else {
        theme.dim()
    };
    spans.push(Span::styled(right, right_style));
    Line::from(spans)
}

/// The stale-data banner: shown while the controller does not answer.
fn banner(app: &App) -> Option<Paragraph<'static>> {
    let failure = app.feed.failing.as_ref()?;
    let theme = &app.settings.theme;
    let shown = match app.feed.fetched_at {
        Some(at) => format!("data is {} old", age(app.now, at)),
        None => "no data yet".to_owned(),
    };
    let text = format!(
        " ✖ CONTROLLER UNREACHABLE for {} · {shown} · {}",
        age(app.now, failure.since),
        failure.error
    );
    Some(Paragraph::new(Line::styled(text, theme.stale())))
}

fn bottom_line(app: &App) -> Line<'_> {
    let theme = &app.settings.theme;
    match &app.prompt {
        Some(Prompt::Filter(text)) => return Line::from(format!("/{text}▏")),
        Some(Prompt::Command(text)) => return Line::from(format!(":{text}▏")),
        None => {}
    }
    if let Some(message) = app.message() {
        return Line::styled(format!(" {message}"), theme.heading());
    }
    // The shortest key bound to each action: `q` rather than `ctrl-c`.
    let key = |action: Action| {
        let keys = app.settings.keys.keys_of(action);
        let shortest = keys.split(", ").min_by_key(|k| k.chars().count());
        shortest.unwrap_or_default().to_owned()
    };
    let mut hints = vec![
        (Action::Help, "help"),
        (Action::Filter, "filter"),
        (Action::Command, "view"),
    ];
    match app.view {
        View::Overview => hints.extend([
            (Action::Open, "detail"),
            (Action::Sort, "sort"),
            (Action::Columns, "columns"),
        ]),
        View::Alerts => hints.push((Action::Acknowledge, "ack")),
        View::Link => hints.push((Action::Back, "back")),
        _ => {}
    }
    hints.extend([(Action::Freeze, "freeze"), (Action::Quit, "quit")]);
    let mut spans = Vec::new();
    for (action, what) in hints {
        spans.push(Span::styled(format!(" {}", key(action)), theme.heading()));
        spans.push(Span::raw(format!(" {what}")));
    }
    if !app.filter().is_empty() {
        spans.push(Span::styled(
            format!("  filter: {}", app.filter()),
            theme.path(),
        ));
    }
    Line::from(spans)
}

fn help(frame: &mut Frame<'_>, app: &App) {
    let theme = &app.settings.theme;
    // One column when it fits the screen's height, two when it does not (80×24); then
    // only the shortest key of each action.
    let screen = frame.area();
    let columns: usize = if Action::ALL.len() as u16 + 6 <= screen.height {
        1
    } else {
        2
    };
    let entries: Vec<Line<'_>> = Action::ALL
        .iter()
        .map(|action| {
            let keys = app.settings.keys.keys_of(*action);
            let keys = if columns == 1 {
                format!("{keys:>16}  ")
            } else {
                let shortest = keys.split(", ").min_by_key(|k| k.chars().count());
                format!("{:>9}  ", shortest.unwrap_or_default())
            };
            Line::from(vec![
                Span::styled(keys, theme.heading()),
                Span::raw(action.describe()),
            ])
        })
        .collect();
    let footer = vec![
        Line::styled(
            " ▼ down  ? unknown  ◆ backup  ▲ degraded  ● up",
            theme.dim(),
        ),
        Line::styled(
            " views: :overview :alerts :conf :audit :certs · filter: enter keeps, esc clears",
            theme.dim(),
        ),
    ];
    let per_column = entries.len().div_ceil(columns);
    let area = centred(screen, 78, per_column as u16 + 4);
    frame.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(" help — any key closes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [keys, legend_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
    let halves =
        Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(keys);
    for (chunk, half) in entries.chunks(per_column).zip(halves.iter()) {
        frame.render_widget(Paragraph::new(chunk.to_vec()), *half);
    }
    let legend = footer;
    frame.render_widget(Paragraph::new(legend), legend_area);
}

fn column_chooser(frame: &mut Frame<'_>, app: &App) {
    let theme = &app.settings.theme;
    let at = app.choosing.unwrap_or(0);
    let lines: Vec<Line<'_>> = Column::ALL
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let mark = if app.hidden.contains(column) {
                "[ ]"
            } else {
                "[x]"
            };
            let line = Line::raw(format!(" {mark} {}", column.title().to_lowercase()));
            if i == at {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    let area = centred(frame.area(), 30, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(" columns — space toggles "),
        ),
        area,
    );
}

fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let [area] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(area);
    let [area] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    area
}

/// `HH:MM:SS` at `offset_hours` east of UTC.
pub fn clock(at: SystemTime, offset_hours: i8) -> String {
    let secs = local_seconds(at, offset_hours);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD HH:MM` at `offset_hours` east of UTC.
pub fn date_time(at: SystemTime, offset_hours: i8) -> String {
    let shifted = UNIX_EPOCH + Duration::from_secs(local_seconds(at, offset_hours));
    let text = controller::health::rfc3339::format(shifted);
    format!("{} {}", &text[..10], &text[11..16])
}

/// Seconds since the epoch, shifted to the zone (never before the epoch).
pub fn local_seconds(at: SystemTime, offset_hours: i8) -> u64 {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    (secs + i64::from(offset_hours) * 3600).max(0) as u64
}

/// How long ago `then` was at `now`, shortly: `5s`, `3m`, `2h`, `4d`.
pub fn age(now: SystemTime, then: SystemTime) -> String {
    short_duration(now.duration_since(then).unwrap_or_default())
}

/// A duration shortly: `250ms`, `5s`, `3m`, `2h`, `4d`.
pub fn short_duration(span: Duration) -> String {
    let secs = span.as_secs();
    match secs {
        0 if span.as_millis() > 0 => format!("{}ms", span.as_millis()),
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A latency in milliseconds: `12.3ms`, `—` when none.
pub fn millis(value: Option<Duration>) -> String {
    match value {
        Some(d) => format!("{:.1}ms", d.as_secs_f64() * 1e3),
        None => "—".into(),
    }
}

/// A loss ratio as a percentage: `0.0%`.
pub fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.1}%", ratio * 100.0)
    } else {
        "—".into()
    }
}

/// Bytes per second as bits per second: `12.3M`, `640k`, `—` when none.
pub fn bits(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        Some(rate) if rate.is_finite() && rate >= 0.0 => si(rate * 8.0),
        _ => "—".into(),
    }
}

/// A number with an SI prefix: `12.3M`, `640k`, `87`.
pub fn si(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.1}G", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// A heading line for a view: its title, then what it shows.
pub fn heading<'a>(app: &App, title: &str, rest: Vec<Span<'a>>) -> Line<'a> {
    let mut spans = vec![Span::styled(
        format!(" {title} "),
        app.settings.theme.heading(),
    )];
    spans.extend(rest);
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_rates_and_clocks_read_shortly() {
        assert_eq!(short_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(short_duration(Duration::from_secs(59)), "59s");
        assert_eq!(short_duration(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(bits(Some(1_250_000.0)), "10.0M");
        assert_eq!(bits(Some(f64::NAN)), "—");
        assert_eq!(percent(0.125), "12.5%");
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(clock(at, 0), "11:06:40");
        assert_eq!(clock(at, 8), "19:06:40");
        assert_eq!(date_time(at, 8), "2026-11-18 19:06");
    }
}
