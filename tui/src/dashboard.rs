//! The loop: draw, wait for a key or the next refresh, apply, draw again.
//!
//! Fetching runs as a task on a tokio runtime and hands each snapshot (or the error) over a
//! channel; the drawing loop never waits for the network, so keys answer at once even when
//! the controller hangs, and the screen keeps the last data with the stale banner.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use agent::client::Session;
use controller::alerts::AlertId;
use controller::health::LinkKey;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc as async_mpsc;

use crate::app::{App, Effect};
use crate::client;
use crate::config::Settings;
use crate::feed::{Names, Snapshot};

/// How often the screen is redrawn with nothing new (ages and the clock move).
const REDRAW: Duration = Duration::from_millis(250);

/// What the fetcher is asked to do.
enum Order {
    Refresh(Duration),
    Watch(Option<LinkKey>),
    Acknowledge(AlertId),
}

/// What the fetcher reports.
enum Report {
    Fetched(Box<Snapshot>, SystemTime),
    Failed(String, SystemTime),
    Said(String),
}

/// Runs the dashboard on this terminal until the operator quits; fetches on `runtime`.
#[allow(clippy::disallowed_methods)] // the dashboard shows wall-clock time
pub fn run(
    runtime: &tokio::runtime::Handle,
    session: Session,
    settings: Settings,
    names: Names,
) -> std::io::Result<()> {
    let (reports, from_fetcher) = mpsc::channel();
    let (orders, to_fetcher) = async_mpsc::unbounded_channel();
    let fetcher = runtime.spawn(fetch_forever(
        session,
        settings.refresh,
        to_fetcher,
        reports,
    ));
    let mut app = App::new(settings, names, SystemTime::now());
    let mut terminal = ratatui::init();
    let outcome = (|| -> std::io::Result<()> {
        loop {
            app.now = SystemTime::now();
            while let Ok(report) = from_fetcher.try_recv() {
                match report {
                    Report::Fetched(snapshot, at) => app.arrived(*snapshot, at),
                    Report::Failed(error, at) => app.failed(error, at),
                    Report::Said(message) => app.say(message),
                }
            }
            terminal.draw(|frame| {
                app.page = crate::views::table_rows(frame.area()).saturating_sub(3);
                crate::views::render(frame, &app);
            })?;
            if !event::poll(REDRAW)? {
                continue;
            }
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind == KeyEventKind::Release {
                continue;
            }
            app.now = SystemTime::now();
            for effect in app.on_key(key) {
                let order = match effect {
                    Effect::Quit => return Ok(()),
                    Effect::Acknowledge(id) => Order::Acknowledge(id),
                    Effect::Watch(link) => Order::Watch(link),
                    Effect::Refresh(every) => Order::Refresh(every),
                };
                let _ = orders.send(order);
            }
        }
    })();
    ratatui::restore();
    fetcher.abort();
    outcome
}

#[allow(clippy::disallowed_methods)] // snapshots are stamped with wall-clock time
async fn fetch_forever(
    mut session: Session,
    mut every: Duration,
    mut orders: async_mpsc::UnboundedReceiver<Order>,
    reports: mpsc::Sender<Report>,
) {
    let mut watched = None;
    loop {
        let report = match client::fetch(&mut session, watched).await {
            Ok(snapshot) => Report::Fetched(Box::new(snapshot), SystemTime::now()),
            Err(err) => Report::Failed(err.to_string(), SystemTime::now()),
        };
        if reports.send(report).is_err() {
            return;
        }
        let next = tokio::time::Instant::now() + every;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => break,
                order = orders.recv() => match order {
                    None => return,
                    Some(Order::Refresh(to)) => every = to,
                    Some(Order::Watch(link)) => {
                        // A newly opened link is fetched at once, not at the next tick.
                        let fresh = link != watched;
                        watched = link;
                        if fresh {
                            break;
                        }
                    }
                    Some(Order::Acknowledge(id)) => {
                        let said = match client::acknowledge(&mut session, id).await {
                            Ok(change) => format!("alert {id} acknowledged by {}", change.by.unwrap_or_default()),
                            Err(err) => format!("alert {id} not acknowledged: {err}"),
                        };
                        if reports.send(Report::Said(said)).is_err() {
                            return;
                        }
                        break;
                    }
                },
            }
        }
    }
}
