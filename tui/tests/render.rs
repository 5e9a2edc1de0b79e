//! Every view drawn from the small fixed model on ratatui's TestBackend, compared with its
//! snapshot; the overview and the link detail at 80×24 too. Colour is checked apart: the
//! snapshots are the text, and a second test checks what colour (or none) each state gets.

use controller::health::{LinkKey, LinkState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use topology::Plane;
use tui::app::{App, View};
use tui::config::Settings;
use tui::feed::Names;
use tui::sample;
use tui::theme::Theme;

fn app(colour: bool) -> App {
    let mut settings = Settings::defaults();
    settings.theme = Theme::new(colour);
    let mut app = App::new(settings, Names::national(), sample::now());
    app.arrived(
        sample::small(),
        sample::now() - std::time::Duration::from_secs(1),
    );
    app
}

fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| tui::views::render(frame, app))
        .expect("drawn");
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let width = usize::from(buffer.area.width);
    let mut out = String::new();
    for row in buffer.content.chunks(width) {
        let mut line = String::new();
        let mut skip = 0;
        for cell in row {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            line.push_str(cell.symbol());
            skip = unicode_cells(cell.symbol()).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How many cells a symbol takes: two for CJK ideographs, one otherwise.
fn unicode_cells(symbol: &str) -> usize {
    if symbol
        .chars()
        .any(|c| ('\u{2E80}'..='\u{9FFF}').contains(&c) || ('\u{FF00}'..='\u{FFEF}').contains(&c))
    {
        2
    } else {
        1
    }
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn down_link() -> LinkKey {
    LinkKey {
        plane: Plane::Business,
        parent: "dc:14".parse().expect("node"),
        child: "dc:1402".parse().expect("node"),
    }
}

#[test]
fn overview_wide() {
    insta::assert_snapshot!(text(&draw(&app(false), 130, 20)));
}

#[test]
fn overview_80x24() {
    insta::assert_snapshot!(text(&draw(&app(false), 80, 24)));
}

#[test]
fn overview_sorted_by_loss_with_a_folded_province_and_a_hidden_column() {
    let mut app = app(false);
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    insta::assert_snapshot!("sorted_by_loss", text(&draw(&app, 100, 16)));
    for _ in 0..8 {
        press(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(
        app.order,
        tui::links::Order::Tree,
        "the sort cycles back to the tree"
    );
    press(&mut app, KeyCode::Char('c'));
    for _ in 0..4 {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Char(' '));
    press(&mut app, KeyCode::Esc);
    // dc:14 is the worst province: the first row. Fold it.
    press(&mut app, KeyCode::Char(' '));
    insta::assert_snapshot!("folded_without_jitter", text(&draw(&app, 100, 16)));
}

#[test]
fn link_detail_wide_and_80x24() {
    let mut app = app(false);
    app.detail = Some(down_link());
    app.view = View::Link;
    insta::assert_snapshot!("link_wide", text(&draw(&app, 120, 30)));
    insta::assert_snapshot!("link_80x24", text(&draw(&app, 80, 24)));
}

#[test]
fn alerts_view() {
    let mut app = app(false);
    app.view = View::Alerts;
    insta::assert_snapshot!(text(&draw(&app, 120, 12)));
}

#[test]
fn conferences_view_with_the_path_of_the_selected_booking() {
    let mut app = app(false);
    app.view = View::Conferences;
    insta::assert_snapshot!("conferences_first", text(&draw(&app, 120, 14)));
    press(&mut app, KeyCode::Down);
    insta::assert_snapshot!("conferences_second", text(&draw(&app, 80, 24)));
    // The second booking's links are marked on the tree.
    app.view = View::Overview;
    let overview = text(&draw(&app, 100, 16));
    let marked: Vec<&str> = overview.lines().filter(|l| l.contains('⇄')).collect();
    assert!(
        marked[0].contains("⇄ #2"),
        "the heading names the booking:\n{overview}"
    );
    assert_eq!(marked.len(), 3, "the heading and two links:\n{overview}");
    assert!(marked.iter().any(|l| l.contains("dc:1401")), "{overview}");
    assert!(marked.iter().any(|l| l.contains("dc:1402")), "{overview}");
}

#[test]
fn audit_view() {
    let mut app = app(false);
    app.view = View::Audit;
    insta::assert_snapshot!(text(&draw(&app, 100, 14)));
    app.feed.snapshot.audit = None;
    let none = text(&draw(&app, 100, 8));
    assert!(none.contains("none run yet"), "{none}");
}

#[test]
fn certificates_view() {
    let mut app = app(false);
    app.view = View::Certificates;
    insta::assert_snapshot!(text(&draw(&app, 110, 10)));
}

#[test]
fn help_lists_the_keys_in_force() {
    let mut app = app(false);
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_tall", text(&draw(&app, 100, 32)));
    insta::assert_snapshot!("help_80x24", text(&draw(&app, 80, 24)));
}

#[test]
fn an_unreachable_controller_keeps_the_data_and_says_how_stale_it_is() {
    let mut app = app(false);
    let at = sample::now();
    app.failed(
        "/v1/links: cannot reach the controller at 127.0.0.1:8443: Connection refused".into(),
        at,
    );
    app.now = at + std::time::Duration::from_secs(12);
    let screen = text(&draw(&app, 120, 12));
    insta::assert_snapshot!("stale", screen);
    assert!(
        screen.contains("CONTROLLER UNREACHABLE for 12s"),
        "{screen}"
    );
    assert!(screen.contains("data is 13s old"), "{screen}");
    assert!(
        screen.contains("dc:1402"),
        "the links stay on screen:\n{screen}"
    );
}

#[test]
fn colour_means_state_and_no_color_draws_none() {
    let row_of = |buffer: &Buffer, needle: &str| -> Vec<Color> {
        let width = usize::from(buffer.area.width);
        buffer
            .content
            .chunks(width)
            .find(|row| {
                row.iter()
                    .map(|c| c.symbol())
                    .collect::<String>()
                    .contains(needle)
            })
            .map(|row| row.iter().map(|c| c.fg).collect())
            .unwrap_or_default()
    };
    let coloured = draw(&app(true), 130, 20);
    let down_row = row_of(&coloured, "dc:1402");
    assert!(down_row.contains(&Color::LightRed), "a down link is red");
    let up_row = row_of(&coloured, "dc:1401");
    assert!(up_row.contains(&Color::Green) && !up_row.contains(&Color::LightRed));
    let plain = draw(&app(false), 130, 20);
    assert!(
        plain
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "no colour at all without colour"
    );
    // Without colour the state is still there, in words and glyphs.
    let screen = text(&plain);
    for word in ["▼ down", "▲ degraded", "◆ backup", "? unknown", "● up"] {
        assert!(screen.contains(word), "{word}:\n{screen}");
    }
    let _ = LinkState::Up;
}
