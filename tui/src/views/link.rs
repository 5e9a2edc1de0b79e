//! One link in detail: both ends' views, RTT, loss, jitter and throughput over the stored
//! history, the SNMP counters of the underlay devices that carry it, and its alerts.

use agent::control::PathChoice;
use controller::health::{EndReport, LinkKey, LinkSample, LinkView};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use super::{age, bits, heading, millis, percent, si};
use crate::app::App;
use crate::feed::Device;
use crate::links::find;
use crate::theme::glyph;

/// Draws the detail of the link the app has open.
pub fn render(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(key) = app.detail else {
        frame.render_widget(
            Paragraph::new(" no link open: Enter on a row of the overview"),
            area,
        );
        return;
    };
    let snapshot = &app.feed.snapshot;
    let link = find(&snapshot.links, &key);
    let samples: &[LinkSample] = match &snapshot.history {
        Some(history) if history.link == key => &history.samples,
        _ => &[],
    };
    let devices: Vec<&Device> = snapshot
        .devices
        .iter()
        .filter(|d| d.carries(key.parent, key.child))
        .collect();
    let alerts = alert_lines(app, &key);
    let device_rows = if devices.is_empty() {
        1
    } else {
        devices.len().min(3)
    } as u16;
    let alert_rows = alerts.len().clamp(1, 4) as u16;
    let [top, ends, charts, device_area, alert_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(device_rows + 1),
        Constraint::Length(alert_rows + 1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(title(app, &key, link)), top);
    frame.render_widget(Paragraph::new(end_lines(app, link)), ends);
    render_charts(frame, charts, app, samples);
    frame.render_widget(Paragraph::new(device_lines(app, &devices)), device_area);
    frame.render_widget(Paragraph::new(alerts), alert_area);
}

fn title<'a>(app: &'a App, key: &LinkKey, link: Option<&LinkView>) -> Line<'a> {
    let theme = &app.settings.theme;
    let names = &app.names;
    let mut spans = vec![Span::raw(format!(
        "{} {} {} — {} {}  ",
        key.plane,
        key.parent,
        names.of(&key.parent),
        key.child,
        names.of(&key.child)
    ))];
    match link {
        Some(link) => {
            spans.push(Span::styled(
                format!("{} {}", glyph(link.state), link.state.as_str()),
                theme.state(link.state),
            ));
            let path = match link.path {
                PathChoice::Primary => "on the primary path",
                PathChoice::Backup => "on the BACKUP path",
            };
            spans.push(Span::raw(format!("  {path}")));
        }
        None => spans.push(Span::styled("no longer reported", theme.dim())),
    }
    heading(app, "link", spans)
}

fn end_lines<'a>(app: &App, link: Option<&LinkView>) -> Vec<Line<'a>> {
    let theme = &app.settings.theme;
    let line = |which: &str, end: Option<&EndReport>| match end {
        Some(end) => Line::from(vec![
            Span::raw(format!(" {which:<6} sees ")),
            Span::raw(format!("{:?}", end.health).to_lowercase()),
            Span::raw(format!(
                " on {}, rtt {}, ",
                format!("{:?}", end.path).to_lowercase(),
                millis(end.rtt)
            )),
            Span::styled(format!("loss {}", percent(end.loss)), theme.loss(end.loss)),
            Span::raw(format!(
                ", jitter {}, reported {} ago",
                millis(Some(end.jitter)),
                age(app.now, end.at)
            )),
        ]),
        None => Line::styled(format!(" {which:<6} has not reported"), theme.dim()),
    };
    vec![
        line("upper", link.and_then(|l| l.parent_end.as_ref())),
        line("lower", link.and_then(|l| l.child_end.as_ref())),
    ]
}

/// The four histories, each a title line over a sparkline.
fn render_charts(frame: &mut Frame<'_>, area: Rect, app: &App, samples: &[LinkSample]) {
    let theme = &app.settings.theme;
    let micros = |d: Option<std::time::Duration>| d.map(|d| d.as_micros() as u64);
    let series: [(&str, Vec<Option<u64>>, String); 4] = [
        (
            "rtt",
            samples.iter().map(|s| micros(s.rtt)).collect(),
            millis(samples.last().and_then(|s| s.rtt)),
        ),
        (
            "loss",
            samples
                .iter()
                .map(|s| Some((s.loss * 1000.0).round() as u64))
                .collect(),
            samples.last().map_or("—".into(), |s| percent(s.loss)),
        ),
        (
            "jitter",
            samples.iter().map(|s| micros(Some(s.jitter))).collect(),
            millis(samples.last().map(|s| s.jitter)),
        ),
        (
            "traffic",
            samples
                .iter()
                .map(|s| match (s.up_rate, s.down_rate) {
                    (None, None) => None,
                    (up, down) => Some((up.unwrap_or(0.0) + down.unwrap_or(0.0)) as u64),
                })
                .collect(),
            samples.last().map_or("—".into(), |s| {
                format!("↑{} ↓{}", bits(s.up_rate), bits(s.down_rate))
            }),
        ),
    ];
    let rows = Layout::vertical([Constraint::Ratio(1, 4); 4]).split(area);
    for ((name, values, now), row) in series.into_iter().zip(rows.iter()) {
        let [label, chart] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(*row);
        let width = usize::from(chart.width.max(1));
        let shown = &values[values.len().saturating_sub(width)..];
        let peak = shown.iter().flatten().max().copied().unwrap_or(0);
        // Latencies sit far above zero: drawn above their lowest value, so a change of a
        // millisecond shows. Loss and traffic are drawn from zero.
        let floor = match name {
            "rtt" | "jitter" => {
                let low = shown.iter().flatten().min().copied().unwrap_or(0);
                low.saturating_sub((peak - low) / 4 + 1)
            }
            _ => 0,
        };
        let bars: Vec<Option<u64>> = shown.iter().map(|v| v.map(|v| v - floor)).collect();
        let peak_text = match name {
            "rtt" | "jitter" => format!(
                "{:.1}ms, floor {:.1}ms",
                peak as f64 / 1e3,
                floor as f64 / 1e3
            ),
            "loss" => format!("{:.1}%", peak as f64 / 10.0),
            _ => format!("{}bit/s", si(peak as f64 * 8.0)),
        };
        let style = if name == "loss" && peak > 0 {
            theme.loss(peak as f64 / 1000.0)
        } else {
            theme.fg(crate::theme::Role::Accent)
        };
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!(" {name:<8}"), theme.heading()),
                Span::raw(format!(
                    "{now:<14} peak {peak_text}  ({} samples)",
                    shown.len()
                )),
            ])),
            label,
        );
        frame.render_widget(Sparkline::default().data(bars).style(style), chart);
    }
}

fn device_lines<'a>(app: &App, devices: &[&Device]) -> Vec<Line<'a>> {
    let theme = &app.settings.theme;
    let mut lines = vec![Line::styled(" underlay devices (SNMP)", theme.heading())];
    if devices.is_empty() {
        lines.push(Line::styled("  none polled for this link", theme.dim()));
    }
    for device in devices.iter().take(3) {
        let mut text = format!("  {} {}  ", device.name, device.address);
        if device.reachable {
            if let Some(ticks) = device.sys_uptime {
                text.push_str(&format!(
                    "up {}  ",
                    super::short_duration(std::time::Duration::from_secs(u64::from(ticks / 100)))
                ));
            }
            for interface in device.interfaces.iter().take(3) {
                let rate = |r: &controller::snmp::CounterRate| r.bps().map_or("—".to_owned(), si);
                text.push_str(&format!(
                    "if{} {} in {} out {}  ",
                    interface.index,
                    format!("{:?}", interface.oper).to_lowercase(),
                    rate(&interface.inbound),
                    rate(&interface.outbound)
                ));
            }
            lines.push(Line::raw(text));
        } else {
            let why = device.last_error.as_deref().unwrap_or("no answer");
            lines.push(Line::styled(
                format!("{text}UNREACHABLE: {why}"),
                theme.state(controller::health::LinkState::Down),
            ));
        }
    }
    lines
}

fn alert_lines<'a>(app: &App, key: &LinkKey) -> Vec<Line<'a>> {
    let theme = &app.settings.theme;
    let subject = key.to_string();
    let alerts = &app.feed.snapshot.alerts;
    let mut lines = vec![Line::styled(" alerts on this link", theme.heading())];
    for alert in alerts.open.iter().filter(|a| a.subject == subject) {
        let state = if alert.acknowledged.is_some() {
            "acknowledged"
        } else {
            "FIRING"
        };
        lines.push(Line::styled(
            format!(
                "  {state} {} {} ago: {}",
                alert.rule,
                age(app.now, alert.fired_at),
                alert.detail
            ),
            theme.severity(alert.severity),
        ));
    }
    for change in alerts
        .recent
        .iter()
        .filter(|c| c.subject == subject)
        .take(3)
    {
        lines.push(Line::styled(
            format!(
                "  {} {} {} ago: {}",
                format!("{:?}", change.state).to_lowercase(),
                change.rule,
                age(app.now, change.since),
                change.detail
            ),
            theme.dim(),
        ));
    }
    if lines.len() == 1 {
        lines.push(Line::styled("  none", theme.dim()));
    }
    lines
}
