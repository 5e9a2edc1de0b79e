//! `netlab run SCENARIO`: a scenario file (or a built-in's name) played on the lab, with
//! its report. The work is in [`netlab::run`]; this is the command around it: loading and
//! resolving the file (every mistake with its line, before anything starts), the progress
//! of enrollment, the live link table on a terminal, and the exit code.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use agent::control::ModelSources;
use agent::model::Model;
use anyhow::{Context, Result};
use netlab::lab::{Lab, LabOptions, LabTopology, Progress};
use netlab::scenario::Scenario;

use crate::live::LiveTable;

/// Plays the scenario; `Ok(true)` when every check held.
pub(crate) async fn play(name_or_path: &str, live: bool, work: &Path) -> Result<bool> {
    let scenario = Scenario::load(name_or_path)?;
    let model = Model::load(&ModelSources::default()).context("the national model")?;
    let footprint = scenario
        .resolve(&model.network)
        .map_err(|problems| anyhow::anyhow!("{problems}"))?;
    let topology = netlab::run::topology(&scenario, &footprint);
    println!(
        "netlab run: scenario {} — {} nodes, {} tree links; {}",
        scenario.name,
        topology.nodes.len(),
        topology.links.len(),
        scenario.description
    );
    let (mut lab, enrolled) = start_lab(&topology, work, live).await?;
    println!(
        "  every agent enrolled after {enrolled:.1?}; the scenario's clock starts now ({:?} long)",
        scenario.duration
    );
    let mut table = live.then(LiveTable::new);
    let mut next_line = Duration::ZERO;
    let report = netlab::run::play(&mut lab, &scenario, |lab, now| match table.as_mut() {
        Some(table) => table.draw(
            lab,
            &format!("{} t={:.1}s", scenario.name, now.as_secs_f64()),
        ),
        None => {
            if now >= next_line {
                next_line = now + Duration::from_secs(2);
                let (up, total) = lab.tunnels_up();
                println!(
                    "  t={:>4.1}s  tunnels up {up}/{total}  controller {}  timers late by {:?}",
                    now.as_secs_f64(),
                    if lab.controller_up() { "up" } else { "down" },
                    lab.lateness()
                );
            }
        }
    })
    .await
    .context("playing the scenario")?;
    if let Some(table) = table.as_mut() {
        table.finish();
    }
    lab.stop().await;
    println!("\n{report}");
    Ok(report.passed())
}

/// Starts the lab on `topology` with a progress display (enrolled n/N, redrawn in place on
/// a terminal, a line a second otherwise); returns it with how long it took.
pub(crate) async fn start_lab(
    topology: &LabTopology,
    work: &Path,
    live: bool,
) -> Result<(Lab, Duration)> {
    let started = Instant::now();
    let mut shown = Instant::now();
    let lab = Lab::start(topology, LabOptions::new(work), |progress| match progress {
        Progress::ControllerUp => println!(
            "  controller up: CAs, store, HTTPS on 127.0.0.1 ({:.1?})",
            started.elapsed()
        ),
        Progress::Enrolled(n, total) => {
            if live {
                print!("\r  enrolled {n}/{total}");
                let _ = std::io::stdout().flush();
            } else if n == total || shown.elapsed() >= Duration::from_secs(1) {
                shown = Instant::now();
                println!("  enrolled {n}/{total} ({:.1?})", started.elapsed());
            }
        }
        Progress::TunnelsUp(..) => {}
    })
    .await
    .context("starting the lab")?;
    if live {
        println!();
    }
    Ok((lab, started.elapsed()))
}
