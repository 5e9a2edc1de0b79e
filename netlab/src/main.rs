//! `netlab`: the emulated national WAN on this machine.
//!
//! `netlab demo` brings up the national scenario — the real controller and one real agent
//! per data centre, enrolled with one-time tokens, over the emulated underlay — and walks
//! through what the network does: a probe across the tree, a cross-zone probe the zone
//! filters drop, a backbone cut and its failover, the controller going away and coming back.
//! It prints what happens with the timings, and exits 0 when every step did what it should
//! (`--headless` prints only the progress and the final report: what CI runs).

// The demo reads the clock to time each step it shows.
#[allow(clippy::disallowed_methods)]
mod demo;
// The table and the run command read the clock to show elapsed times.
#[allow(clippy::disallowed_methods)]
mod live;
#[allow(clippy::disallowed_methods)]
mod play;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Jinbao WAN lab (金保工程 secure WAN, emulated).
#[derive(Debug, Parser)]
#[command(name = "netlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring up a scenario and walk through it: probes, a cut, failover, a controller restart.
    Demo {
        /// The scenario: national (ministry, provinces, cities), province-14 (Shanxi with
        /// its city-area sites) or north (Shanxi and Hebei with their cities: a quick one).
        #[arg(long, default_value = "national")]
        scenario: String,
        /// No live display: progress lines and the final report only (for CI).
        #[arg(long)]
        headless: bool,
        /// Where the lab keeps its controller and agent directories (default: a new
        /// temporary directory, removed afterwards).
        #[arg(long, value_name = "DIR")]
        work: Option<std::path::PathBuf>,
    },
    /// Play a scenario: build its nodes and links, carry out its timeline, verify its
    /// checks; exits 0 when every check held.
    Run {
        /// A built-in scenario (national, province-14, streets) or a scenario file's path.
        scenario: String,
        /// No live link table: progress lines and the report only.
        #[arg(long)]
        headless: bool,
        /// Where the lab keeps its controller and agent directories (default: a new
        /// temporary directory, removed afterwards).
        #[arg(long, value_name = "DIR")]
        work: Option<std::path::PathBuf>,
    },
    /// List the built-in scenarios with what each shows.
    Scenarios,
}

fn scenarios() -> anyhow::Result<bool> {
    for name in netlab::scenario::builtins() {
        let scenario = netlab::scenario::Scenario::load(name)?;
        println!(
            "{name:<12} {} ({:?})",
            scenario.description, scenario.duration
        );
    }
    Ok(true)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo {
            scenario,
            headless,
            work,
        } => demo::run(&scenario, headless, work),
        Command::Run {
            scenario,
            headless,
            work,
        } => demo::in_lab(headless, work, |live, dir| async move {
            play::play(&scenario, live, &dir).await
        }),
        Command::Scenarios => scenarios(),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
