//! Conferences: today's bookings on a timeline (the day in the configured zone, Beijing
//! time by default), and the selected booking's path down the tree with the share of each
//! link's capacity it reserves. The same path is marked on the overview's tree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use controller::conference::State;
use controller::server::conferences::BookingView;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use topology::NodeId;

use super::{clock, heading, local_seconds, scrolled_table, si};
use crate::app::{App, View};
use crate::feed::link_ends;

const DAY: Duration = Duration::from_secs(86_400);

/// The start of the day `now` falls in, in the configured zone.
pub fn day_start(now: SystemTime, offset_hours: i8) -> SystemTime {
    let local = local_seconds(now, offset_hours);
    let midnight_local = local - local % DAY.as_secs();
    let utc = midnight_local as i64 - i64::from(offset_hours) * 3600;
    UNIX_EPOCH + Duration::from_secs(utc.max(0) as u64)
}

/// Today's bookings (any that overlaps the day, test window included), by start, filtered.
pub fn bookings(app: &App) -> Vec<&BookingView> {
    let from = day_start(app.now, app.settings.utc_offset_hours);
    let to = from + DAY;
    let filter = app.filter_of(View::Conferences).to_lowercase();
    let mut today: Vec<&BookingView> = app
        .feed
        .snapshot
        .conferences
        .iter()
        .filter(|b| b.test_start < to && b.end > from)
        .filter(|b| {
            filter.is_empty()
                || format!("{} {} {} {}", b.id, b.title, b.state, b.form.main_venue)
                    .to_lowercase()
                    .contains(&filter)
        })
        .collect();
    today.sort_by_key(|b| (b.start, b.id));
    today
}

/// The rows' identities: the booking numbers.
pub fn row_ids(app: &App) -> Vec<String> {
    bookings(app).iter().map(|b| b.id.to_string()).collect()
}

/// Draws the conferences in `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.settings.theme;
    let today = bookings(app);
    let ids: Vec<String> = today.iter().map(|b| b.id.to_string()).collect();
    let selected = app.position(&ids);
    let chosen = selected.and_then(|i| today.get(i).copied());
    let path_rows = chosen.map_or(1, |b| b.links.len().max(1)) as u16;
    let [top, table, path] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length((path_rows + 1).min(area.height / 2)),
    ])
    .areas(area);
    let live = today.iter().filter(|b| b.state == State::Live).count();
    let offset = app.settings.utc_offset_hours;
    frame.render_widget(
        Paragraph::new(heading(
            app,
            "conferences",
            vec![Span::raw(format!(
                "{} today · {live} live · day from 00:00 UTC{offset:+}",
                today.len()
            ))],
        )),
        top,
    );
    let bar_width = table.width.saturating_sub(46).max(12);
    let from = day_start(app.now, offset);
    let titles = Row::new(["ID", "TITLE", "STATE", "TIME", "00:00 ─── 24:00"]);
    let widths = vec![
        Constraint::Length(4),
        Constraint::Length(18),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Min(bar_width),
    ];
    scrolled_table(frame, table, app, titles, widths, &today, selected, |b| {
        let style = match b.state {
            State::Live | State::Testing => theme.state(controller::health::LinkState::Up),
            State::Preempted | State::Rejected | State::Cancelled => theme.dim(),
            _ => ratatui::style::Style::new(),
        };
        Row::new([
            Cell::from(format!("#{}", b.id)),
            Cell::from(b.title.clone()),
            Cell::from(Span::styled(b.state.to_string(), style)),
            Cell::from(format!(
                "{}–{}",
                &clock(b.start, offset)[..5],
                &clock(b.end, offset)[..5]
            )),
            Cell::from(timeline(b, from, app.now, bar_width)),
        ])
    });
    frame.render_widget(Paragraph::new(path_lines(app, chosen)), path);
}

/// The day as `width` cells: `▒` test window, `█` the conference, `│` now.
fn timeline(booking: &BookingView, from: SystemTime, now: SystemTime, width: u16) -> String {
    let width = usize::from(width);
    let cell = |at: SystemTime| {
        let into = at.duration_since(from).unwrap_or_default().as_secs_f64();
        ((into / DAY.as_secs_f64()) * width as f64)
            .floor()
            .clamp(0.0, width as f64) as usize
    };
    let (test, start, end, now_at) = (
        cell(booking.test_start),
        cell(booking.start),
        cell(booking.end).max(cell(booking.start) + 1),
        (now >= from && now < from + DAY).then(|| cell(now)),
    );
    (0..width)
        .map(|i| {
            if Some(i) == now_at {
                '│'
            } else if i >= start && i < end {
                '█'
            } else if i >= test && i < start {
                '▒'
            } else {
                '·'
            }
        })
        .collect()
}

/// The selected booking's links, upper tier first, with their share of capacity.
fn path_lines<'a>(app: &App, booking: Option<&BookingView>) -> Vec<Line<'a>> {
    let theme = &app.settings.theme;
    let Some(booking) = booking else {
        return vec![Line::styled(" no conference today", theme.dim())];
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(format!(" path of #{} ", booking.id), theme.heading()),
        Span::raw(format!(
            "main venue {} {} · {} kbit/s · {} · MCUs {}",
            booking.form.main_venue,
            app.names.of(&booking.form.main_venue),
            booking.form.bitrate.0.0,
            booking.form.priority.as_str(),
            booking
                .mcus
                .iter()
                .map(|(node, ports)| format!("{node}×{ports}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    ])];
    let mut links: Vec<_> = booking
        .links
        .iter()
        .map(|l| (link_ends(&l.link), l))
        .collect();
    links.sort_by_key(|(ends, _)| ends.map(|(a, b)| (depth(&a).min(depth(&b)), a, b)));
    for (ends, link) in links {
        let (upper, lower) = match ends {
            Some((a, b)) if depth(&a) <= depth(&b) => (a.to_string(), b),
            Some((a, b)) => (b.to_string(), a),
            None => (link.link.clone(), NodeId::MINISTRY),
        };
        let share = if link.capacity_kbps > 0 {
            link.rate_kbps as f64 / link.capacity_kbps as f64
        } else {
            f64::NAN
        };
        let filled = if share.is_finite() {
            (share * 10.0).ceil().clamp(0.0, 10.0) as usize
        } else {
            0
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  {}{upper} → {lower} {}  ",
                "  ".repeat(depth(&lower).saturating_sub(1)),
                app.names.of(&lower)
            )),
            Span::styled("█".repeat(filled), theme.path()),
            Span::styled("░".repeat(10 - filled), theme.dim()),
            Span::raw(format!(
                " {}bit/s of {}bit/s ({}) {} ×{}",
                si(link.rate_kbps as f64 * 1e3),
                si(link.capacity_kbps as f64 * 1e3),
                super::percent(share),
                link.directions,
                link.streams
            )),
        ]));
    }
    lines
}

fn depth(node: &NodeId) -> usize {
    match node.tier() {
        topology::Tier::Ministry => 0,
        topology::Tier::Province => 1,
        topology::Tier::City => 2,
        topology::Tier::Site => 3,
    }
}
