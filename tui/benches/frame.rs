//! Benchmark: one frame of the dashboard with the whole national network.
//!
//! Goal (issue 8): drawing one frame with the national scenario (about 375 data centres and
//! their links) takes under 5 ms. The model is every ministry–province and province–city
//! link of the national network with states spread over it (`tui::sample::national`), drawn
//! by `tui::views::render` on ratatui's TestBackend — the whole frame: the tree built and
//! ordered, the visible rows laid out, the buffer filled. Measured at 80×24 and at 200×60,
//! for the overview (the heaviest: it orders the whole tree every frame), the overview
//! sorted by loss, and the conference and alert views.
//!
//! The reference, in the same run: the same frame for the small fixed model (nine links),
//! so the ratio shows what the national tree costs over the frame's fixed work. Run:
//! `cargo bench -p tui --bench frame`.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // a benchmark reads the clock

use std::hint::black_box;
use std::time::{Duration, Instant};

use agent::control::ModelSources;
use agent::model::Model;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::app::{App, View};
use tui::config::Settings;
use tui::feed::{Names, Snapshot};
use tui::links::{Column, Order};
use tui::sample;
use tui::theme::Theme;

/// Frames measured per case.
const FRAMES: usize = 300;
/// The goal per frame.
const GOAL: Duration = Duration::from_millis(5);

fn app(snapshot: Snapshot, names: &Names) -> App {
    let mut settings = Settings::defaults();
    settings.theme = Theme::new(true);
    let mut app = App::new(settings, names.clone(), sample::now());
    app.arrived(snapshot, sample::now());
    app
}

/// Median and 99th percentile of one frame.
fn measure(app: &App, width: u16, height: u16) -> (Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    for _ in 0..20 {
        terminal.draw(|f| tui::views::render(f, app)).unwrap();
    }
    let mut times: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let start = Instant::now();
            terminal
                .draw(|f| tui::views::render(f, black_box(app)))
                .unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[FRAMES / 2], times[FRAMES * 99 / 100])
}

fn main() {
    let model = Model::load(&ModelSources::default()).unwrap();
    let names = Names::national();
    let national = sample::national(&model.network);
    println!(
        "national model: {} links; {} frames per case",
        national.links.len(),
        FRAMES
    );
    println!(
        "{:<34} {:>9} {:>11} {:>11} {:>11} {:>7}",
        "case", "size", "national", "p99", "small (ref)", "ratio"
    );
    let mut worst = Duration::ZERO;
    let cases: [(&str, View, Order); 4] = [
        ("overview, tree", View::Overview, Order::Tree),
        (
            "overview, sorted by loss",
            View::Overview,
            Order::By(Column::Loss, false),
        ),
        ("conferences", View::Conferences, Order::Tree),
        ("alerts", View::Alerts, Order::Tree),
    ];
    for (name, view, order) in cases {
        for (width, height) in [(80, 24), (200, 60)] {
            let mut big = app(national.clone(), &names);
            let mut small = app(sample::small(), &names);
            for a in [&mut big, &mut small] {
                a.view = view;
                a.order = order;
            }
            let (median, p99) = measure(&big, width, height);
            let (reference, _) = measure(&small, width, height);
            worst = worst.max(median);
            println!(
                "{name:<34} {:>9} {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>6.1}×",
                format!("{width}×{height}"),
                median.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                reference.as_secs_f64() * 1e3,
                median.as_secs_f64() / reference.as_secs_f64().max(1e-9)
            );
        }
    }
    println!(
        "slowest national frame (median): {:.3} ms — goal < {} ms: {}",
        worst.as_secs_f64() * 1e3,
        GOAL.as_millis(),
        if worst < GOAL { "met" } else { "NOT met" }
    );
}
