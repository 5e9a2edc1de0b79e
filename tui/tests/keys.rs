//! What each key does to the dashboard's state, on the small fixed model: moving through
//! rows (kept by identity across refreshes), filtering, jumping and cycling between views,
//! help, freezing, folding, sorting, choosing columns, acknowledging, rebinding.

use std::time::Duration;

use controller::alerts::AlertId;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui::app::{App, Effect, Prompt, View};
use tui::config::{self, Settings};
use tui::feed::Names;
use tui::links::{Column, Order};
use tui::sample;

fn app() -> App {
    let mut app = App::new(Settings::defaults(), Names::default(), sample::now());
    app.arrived(sample::small(), sample::now());
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.on_key(key(code))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn selected_child(app: &App) -> String {
    app.selected_link()
        .map(|k| k.child.to_string())
        .unwrap_or_default()
}

#[test]
fn navigation_moves_through_the_tree_and_stays_on_the_row_across_a_refresh() {
    let mut app = app();
    assert_eq!(selected_child(&app), "dc:14", "the worst subtree first");
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_child(&app), "dc:1402");
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(selected_child(&app), "dc:1403");
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    assert_eq!(selected_child(&app), "dc:14", "up stops at the first row");
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(selected_child(&app), "dc:11", "the last row");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(selected_child(&app), "dc:14");
    press(&mut app, KeyCode::PageDown);
    assert_eq!(
        selected_child(&app),
        "dc:11",
        "a page down past the end stops at the last"
    );

    // A refresh in which Tibet's link goes down moves it up the tree; the cursor stays on
    // the link it was on.
    press(&mut app, KeyCode::Char('g'));
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_child(&app), "dc:1403");
    let mut refreshed = sample::small();
    for link in &mut refreshed.links {
        if link.key.child.to_string() == "dc:54" {
            link.state = controller::health::LinkState::Down;
        }
    }
    app.arrived(refreshed, sample::now() + Duration::from_secs(1));
    assert_eq!(selected_child(&app), "dc:1403");
    let first = app.link_rows()[0].link.key.child.to_string();
    assert_eq!(first, "dc:54", "the down province is first now");
}

#[test]
fn enter_opens_the_link_and_esc_comes_back() {
    let mut app = app();
    press(&mut app, KeyCode::Down);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Link);
    let link = app.detail.expect("a link is open");
    assert_eq!(link.child.to_string(), "dc:1402");
    assert_eq!(
        effects,
        vec![Effect::Watch(Some(link))],
        "its history is fetched"
    );
    let effects = press(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Overview);
    assert_eq!(effects, vec![Effect::Watch(None)]);
    assert_eq!(selected_child(&app), "dc:1402", "back on the same row");
}

#[test]
fn the_filter_narrows_rows_as_typed_and_esc_clears_it() {
    let mut app = app();
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "1403");
    assert_eq!(app.prompt, Some(Prompt::Filter("1403".into())));
    let rows: Vec<String> = app
        .link_rows()
        .iter()
        .map(|r| r.link.key.child.to_string())
        .collect();
    assert_eq!(rows, ["dc:14", "dc:1403"], "the match and its ancestor");
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.prompt, None);
    assert_eq!(app.filter(), "1402", "enter keeps it");
    assert_eq!(app.link_rows().len(), 2);
    // The filter matches states too, and belongs to its view.
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Alerts);
    assert_eq!(app.filter(), "");
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.filter(), "1402");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.filter(), "", "esc clears it");
    assert_eq!(app.link_rows().len(), 9);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "down");
    assert_eq!(app.link_rows().len(), 2, "dc:1402 and its province");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.link_rows().len(), 9, "esc while typing drops it");
}

#[test]
fn colon_jumps_to_a_view_and_tab_cycles_through_them() {
    let mut app = app();
    for (typed_name, view) in [
        ("alerts", View::Alerts),
        ("conf", View::Conferences),
        ("cert", View::Certificates),
        ("au", View::Audit),
        ("o", View::Overview),
    ] {
        press(&mut app, KeyCode::Char(':'));
        typed(&mut app, typed_name);
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.view, view, ":{typed_name}");
    }
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "nowhere");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Overview);
    assert!(
        app.message()
            .is_some_and(|m| m.contains("no view `nowhere`"))
    );
    let mut seen = Vec::new();
    for _ in 0..5 {
        press(&mut app, KeyCode::Tab);
        seen.push(app.view);
    }
    assert_eq!(
        seen,
        [
            View::Alerts,
            View::Conferences,
            View::Audit,
            View::Certificates,
            View::Overview
        ]
    );
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Certificates);
}

#[test]
fn help_opens_with_question_mark_and_any_key_closes_it() {
    let mut app = app();
    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    let effects = press(&mut app, KeyCode::Down);
    assert!(!app.help, "closed");
    assert!(effects.is_empty());
    assert_eq!(
        selected_child(&app),
        "dc:14",
        "the key only closed the help"
    );
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        vec![Effect::Quit],
        "q still quits"
    );
}

#[test]
fn freeze_holds_new_data_back_until_resumed() {
    let mut app = app();
    press(&mut app, KeyCode::Char('f'));
    assert!(app.frozen.is_some());
    let mut newer = sample::small();
    newer.links.truncate(2);
    app.arrived(newer, sample::now() + Duration::from_secs(2));
    assert_eq!(
        app.feed.snapshot.links.len(),
        9,
        "frozen: what is read stays"
    );
    // A failure is still told while frozen.
    app.failed("timeout".into(), sample::now() + Duration::from_secs(3));
    assert!(app.feed.failing.is_some());
    press(&mut app, KeyCode::Char('f'));
    assert!(app.frozen.is_none());
    assert_eq!(
        app.feed.snapshot.links.len(),
        2,
        "resumed: the held data is shown"
    );
}

#[test]
fn sort_cycles_columns_and_reverses_and_fold_hides_a_subtree() {
    let mut app = app();
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.order, Order::By(Column::State, false));
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.order, Order::By(Column::Loss, false));
    let worst = app.link_rows()[0].link.key.child.to_string();
    assert_eq!(worst, "dc:1402", "100 % loss first");
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(app.order, Order::By(Column::Loss, true));
    let last = app.link_rows().last().map(|r| r.link.key.child.to_string());
    assert_eq!(last.as_deref(), Some("dc:1402"), "reversed");
    while app.order != Order::Tree {
        press(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.link_rows().len(), 9);
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(app.link_rows().len(), 6, "dc:14's three cities folded away");
    assert_eq!(app.link_rows()[0].folded, 3);
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(app.link_rows().len(), 9);
}

#[test]
fn the_column_chooser_hides_and_shows_columns() {
    let mut app = app();
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(app.choosing, Some(0));
    press(&mut app, KeyCode::Char(' '));
    assert!(app.hidden.is_empty(), "the link column cannot be hidden");
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char(' '));
    assert!(app.hidden.contains(&Column::Loss));
    press(&mut app, KeyCode::Enter);
    assert!(!app.hidden.contains(&Column::Loss), "enter toggles too");
    press(&mut app, KeyCode::Char(' '));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.choosing, None);
    assert!(!Column::fitting(&app.hidden, 200).contains(&Column::Loss));
    // In 80 columns the most important ones stay.
    let narrow = Column::fitting(&Default::default(), 80);
    assert!(narrow.starts_with(&[Column::Link, Column::State, Column::Loss, Column::Rtt]));
    assert!(!narrow.contains(&Column::Plane));
}

#[test]
fn a_acknowledges_the_selected_firing_alert_only() {
    let mut app = app();
    assert!(
        press(&mut app, KeyCode::Char('a')).is_empty(),
        "not from the overview"
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(
        press(&mut app, KeyCode::Char('a')),
        vec![Effect::Acknowledge(AlertId(7))]
    );
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert!(
        press(&mut app, KeyCode::Char('a')).is_empty(),
        "already acknowledged"
    );
    assert!(
        app.message()
            .is_some_and(|m| m.contains("already acknowledged by wangfang"))
    );
    press(&mut app, KeyCode::Down);
    assert!(
        press(&mut app, KeyCode::Char('a')).is_empty(),
        "a resolved alert"
    );
    // Enter on an alert about a link opens that link.
    press(&mut app, KeyCode::Char('g'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Link);
    assert_eq!(
        app.detail.map(|k| k.child.to_string()).as_deref(),
        Some("dc:1402")
    );
}

#[test]
fn refresh_keys_stay_between_100ms_and_a_minute() {
    let mut app = app();
    let mut last = Vec::new();
    for _ in 0..6 {
        last = press(&mut app, KeyCode::Char('+'));
    }
    assert_eq!(last, vec![Effect::Refresh(config::FASTEST)]);
    for _ in 0..12 {
        last = press(&mut app, KeyCode::Char('-'));
    }
    assert_eq!(last, vec![Effect::Refresh(config::SLOWEST)]);
}

#[test]
fn rebound_keys_from_the_config_file_take_effect() {
    let settings = config::parse("tui.toml", "[keys]\nfreeze = [\"p\"]\nquit = [\"x\"]\n").unwrap();
    let mut app = App::new(settings, Names::default(), sample::now());
    app.arrived(sample::small(), sample::now());
    press(&mut app, KeyCode::Char('f'));
    assert!(app.frozen.is_none(), "f is no longer freeze");
    press(&mut app, KeyCode::Char('p'));
    assert!(app.frozen.is_some());
    assert!(press(&mut app, KeyCode::Char('q')).is_empty());
    assert_eq!(press(&mut app, KeyCode::Char('x')), vec![Effect::Quit]);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(
        app.on_key(ctrl_c).is_empty(),
        "quit's defaults went with the rebinding"
    );
}
