//! `netlab demo`: the walk-through. Each step says what it does, does it on the running
//! lab, and says what happened and how long it took; the report at the end lists every
//! step with its verdict. With a terminal (and without `--headless`) a table of the worst
//! links is redrawn in place while the lab runs, and after the last step the NOC dashboard
//! (`tui`) opens on the running lab until the operator leaves it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent::control::{ModelSources, PathChoice, PeerHealth};
use agent::model::Model;
use anyhow::{Context, Result, bail};
use netlab::lab::{Lab, LabTopology, Scratch};

use crate::live::LiveTable;
use topology::{NodeId, Zone};

/// One step's outcome, for the report.
struct Step {
    what: String,
    ok: bool,
    took: Option<Duration>,
    note: String,
}

/// Runs the demo; `Ok(true)` when every step did what it should.
pub(crate) fn run(scenario: &str, headless: bool, work: Option<PathBuf>) -> Result<bool> {
    let scenario = scenario.to_owned();
    in_lab(headless, work, move |live, dir| async move {
        walk(&scenario, live, &dir).await
    })
}

/// Runs `body` (given whether to draw live, and the work directory) on a tokio runtime, in
/// `work` or a temporary directory removed afterwards; live when there is a terminal and
/// `--headless` was not given.
pub(crate) fn in_lab<F>(
    headless: bool,
    work: Option<PathBuf>,
    body: impl FnOnce(bool, PathBuf) -> F,
) -> Result<bool>
where
    F: std::future::Future<Output = Result<bool>>,
{
    let live = !headless && std::io::stdout().is_terminal();
    // A directory of our own is removed however the run ends (a panic included).
    let (_scratch, work) = match work {
        Some(work) => (None, work),
        None => {
            let scratch = Scratch::new("demo");
            let path = scratch.path().to_owned();
            (Some(scratch), path)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(body(live, work))
}

async fn walk(scenario: &str, live: bool, work: &std::path::Path) -> Result<bool> {
    let model = Model::load(&ModelSources::default()).context("the national model")?;
    let topology = match scenario {
        "national" => LabTopology::national(&model),
        "province-14" => province(&model, "14"),
        "north" => north(&model),
        other => bail!("unknown scenario `{other}` (national, province-14 or north)"),
    };
    println!(
        "netlab demo: scenario {scenario} — {} nodes, {} tree links, each with a backup path",
        topology.nodes.len(),
        topology.links.len()
    );
    let (mut lab, enrolled) = crate::play::start_lab(&topology, work, live).await?;
    let mut steps = Vec::new();

    // Convergence.
    let total = lab.links().len();
    let mut table = live.then(LiveTable::new);
    let mut last_line: Option<Instant> = None;
    let converged = lab
        .run_until_done(Duration::from_secs(60), |lab| {
            let (up, _) = lab.tunnels_up();
            match table.as_mut() {
                Some(table) => table.draw(lab, "converging"),
                None if last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) => {
                    last_line = Some(Instant::now());
                    println!("  tunnels up {up}/{total}");
                }
                None => {}
            }
            up == total
        })
        .await;
    if let Some(table) = table.as_mut() {
        table.draw_now(&lab, "converged");
        table.finish();
    }
    steps.push(Step {
        what: format!(
            "{} nodes enrolled, {total} tree tunnels up",
            topology.nodes.len()
        ),
        ok: converged.is_some(),
        took: converged.map(|c| c + enrolled),
        note: format!(
            "enrollment {enrolled:.1?}, tunnels {}",
            converged.map_or("never".into(), |c| format!("{c:.1?} after"))
        ),
    });
    println!("{}", line(steps.last()));

    let ministry: NodeId = "dc:ministry".parse()?;
    let (city, province) = pick_city(&lab, &model)?;

    // A probe across the tree.
    let (crossed, took) = timed_probe(&mut lab, city, ministry, 1414).await?;
    steps.push(Step {
        what: format!("{city} exchange → {ministry} exchange, tcp/1414 (MQ)"),
        ok: crossed,
        took: Some(took),
        note: if crossed {
            format!("passed via {province}")
        } else {
            "did not arrive".into()
        },
    });
    println!("{}", line(steps.last()));

    // A cross-zone probe the filters drop.
    let t = Instant::now();
    let leaked = lab
        .probe(
            (province, Zone::Exchange),
            (city, Zone::Production),
            1521,
            Duration::from_secs(1),
        )
        .await?;
    let denied_at = |node| {
        lab.status(node)
            .map(|s| s.planes.iter().map(|p| p.default_denied).sum::<u64>())
            .unwrap_or_default()
    };
    let denied = denied_at(province) + denied_at(city);
    steps.push(Step {
        what: format!("{province} exchange → {city} production, tcp/1521 (denied by policy)"),
        ok: !leaked && denied > 0,
        took: Some(t.elapsed()),
        note: format!("dropped by the zone filter (default deny; {denied} packet(s) denied)"),
    });
    println!("{}", line(steps.last()));

    // A backbone cut and failover: first the uplink must be on its primary, with both
    // paths known healthy (path probes answer about once a second).
    lab.run_until_done(Duration::from_secs(5), |lab| {
        lab.uplink(province)
            .is_some_and(|(path, health)| path == PathChoice::Primary && health == PeerHealth::Up)
    })
    .await;
    lab.run_for(Duration::from_millis(1_500)).await;
    lab.set_path(province, PathChoice::Primary, false)?;
    let failover = lab
        .run_until_done(Duration::from_secs(5), |lab| {
            lab.uplink(province)
                .is_some_and(|(path, _)| path == PathChoice::Backup)
        })
        .await;
    let (across, _) = timed_probe(&mut lab, city, ministry, 443).await?;
    steps.push(Step {
        what: format!("cut the backbone primary {ministry}–{province}"),
        ok: failover.is_some_and(|t| t <= Duration::from_secs(1)) && across,
        took: failover,
        note: format!(
            "on the backup path after {}; traffic {}",
            failover.map_or("never".into(), |t| format!("{t:.0?}")),
            if across { "flows" } else { "does NOT flow" }
        ),
    });
    if let Some(table) = table.as_mut() {
        table.draw_now(&lab, "after the cut");
        table.finish();
    }
    println!("{}", line(steps.last()));
    lab.set_path(province, PathChoice::Primary, true)?;
    let failback = lab
        .run_until_done(Duration::from_secs(10), |lab| {
            lab.uplink(province).is_some_and(|(path, health)| {
                path == PathChoice::Primary && health == PeerHealth::Up
            })
        })
        .await;
    steps.push(Step {
        what: format!("restore {ministry}–{province}"),
        ok: failback.is_some(),
        took: failback,
        note: "back on the primary after the hold-down".into(),
    });
    println!("{}", line(steps.last()));

    // The controller goes away and comes back.
    lab.kill_controller().await;
    let (without, took) = timed_probe(&mut lab, city, ministry, 1414).await?;
    steps.push(Step {
        what: "controller down".into(),
        ok: without,
        took: Some(took),
        note: if without {
            "agents keep forwarding on their last good bundles".into()
        } else {
            "traffic stopped".into()
        },
    });
    println!("{}", line(steps.last()));
    let t = Instant::now();
    lab.restart_controller().await?;
    let resynced = lab
        .run_until_done(Duration::from_secs(15), |lab| {
            lab.reporting_agents() == lab.nodes().count()
        })
        .await;
    steps.push(Step {
        what: "controller restarted".into(),
        ok: resynced.is_some(),
        took: Some(t.elapsed()),
        note: format!(
            "{} of {} agents reporting to it again",
            lab.reporting_agents(),
            lab.nodes().count()
        ),
    });
    println!("{}", line(steps.last()));

    if live && let Err(err) = watch(&mut lab, work).await {
        println!("  the dashboard could not open: {err:#}");
    }
    lab.stop().await;
    let passed = steps.iter().all(|s| s.ok);
    println!(
        "\nreport ({} steps, {} passed):",
        steps.len(),
        steps.iter().filter(|s| s.ok).count()
    );
    for step in &steps {
        println!("{}", line(Some(step)));
    }
    println!(
        "{}",
        if passed {
            "all steps passed"
        } else {
            "SOME STEPS FAILED"
        }
    );
    Ok(passed)
}

/// How long each phase of the dashboard's fault cycle lasts.
const FAULT_PHASE: Duration = Duration::from_secs(10);

/// Opens the NOC dashboard (`jinbao-tui`'s screen, logged in as an engineer) on the running
/// lab until the operator leaves it with `q`. Meanwhile one province's uplink cycles through
/// healthy, on backup (primary cut) and down (both paths cut) every [`FAULT_PHASE`], so
/// there is something to watch; it is healthy again when the dashboard closes.
async fn watch(lab: &mut Lab, work: &std::path::Path) -> Result<()> {
    println!(
        "\nopening the NOC dashboard on the running lab: a province's uplink goes to backup, \
         then down, then back, every {}s (q leaves, ? lists the keys)",
        FAULT_PHASE.as_secs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let login = lab.operator("demo", pki::Role::Engineer, work)?;
    let session = tui::client::connect(
        lab.controller_addr(),
        &login.root,
        &login.certificate,
        &login.key,
    )?;
    let runtime = tokio::runtime::Handle::current();
    let dashboard = std::thread::spawn(move || {
        let settings = tui::config::Settings::defaults();
        tui::dashboard::run(&runtime, session, settings, tui::Names::national())
    });
    let province = lab
        .nodes()
        .find(|n| n.tier() == topology::Tier::Province)
        .context("no province in the lab")?;
    let mut phase = 0usize;
    let mut next = Instant::now() + FAULT_PHASE;
    while !dashboard.is_finished() {
        lab.run_for(Duration::from_millis(100)).await;
        if Instant::now() < next {
            continue;
        }
        next += FAULT_PHASE;
        phase = (phase + 1) % 3;
        lab.set_path(province, PathChoice::Primary, phase == 0)?;
        lab.set_path(province, PathChoice::Backup, phase != 2)?;
    }
    lab.set_path(province, PathChoice::Primary, true)?;
    lab.set_path(province, PathChoice::Backup, true)?;
    match dashboard.join() {
        Ok(outcome) => outcome.context("the dashboard"),
        Err(_) => bail!("the dashboard stopped unexpectedly"),
    }
}

/// Sends an exchange-to-exchange TCP SYN across the lab: whether it arrived within 3 s,
/// and how long it took.
async fn timed_probe(
    lab: &mut Lab,
    from: NodeId,
    to: NodeId,
    port: u16,
) -> Result<(bool, Duration)> {
    let start = Instant::now();
    let arrived = lab
        .probe(
            (from, Zone::Exchange),
            (to, Zone::Exchange),
            port,
            Duration::from_secs(3),
        )
        .await?;
    Ok((arrived, start.elapsed()))
}

/// A city of the lab with its province (Taiyuan when present).
fn pick_city(lab: &Lab, model: &Model) -> Result<(NodeId, NodeId)> {
    let preferred: NodeId = "dc:1401".parse()?;
    let city = lab
        .nodes()
        .find(|n| *n == preferred)
        .or_else(|| {
            lab.nodes().find(|n| {
                model
                    .network
                    .lookup(n)
                    .is_some_and(|ix| model.network.node(ix).tier == topology::Tier::City)
            })
        })
        .context("the scenario has no city")?;
    let ix = model.network.lookup(&city).context("city")?;
    let parent = model
        .network
        .parent(ix)
        .context("a city without a province")?;
    Ok((city, model.network.node(parent).id))
}

/// A province's data centre, its cities, and their city-area sites.
fn province(model: &Model, code: &str) -> LabTopology {
    let network = &model.network;
    let ministry = network.ministry();
    let Some(root) = network.lookup(
        &format!("dc:{code}")
            .parse()
            .unwrap_or(network.node(ministry).id),
    ) else {
        return LabTopology::tree(model, Vec::new());
    };
    let mut nodes = vec![network.node(ministry).id];
    let mut stack = vec![root];
    while let Some(ix) = stack.pop() {
        nodes.push(network.node(ix).id);
        stack.extend(network.children(ix).iter().rev().copied());
    }
    LabTopology::tree(model, nodes)
}

/// The ministry, Shanxi and Hebei with their cities: the demo in a few seconds (tests).
fn north(model: &Model) -> LabTopology {
    let network = &model.network;
    let mut nodes = vec![network.node(network.ministry()).id];
    for code in ["dc:14", "dc:13"] {
        let Some(ix) = code.parse().ok().and_then(|id| network.lookup(&id)) else {
            continue;
        };
        nodes.push(network.node(ix).id);
        nodes.extend(
            network
                .children(ix)
                .iter()
                .map(|&c| network.node(c).id)
                .filter(|id| matches!(id, NodeId::DataCentre(_))),
        );
    }
    LabTopology::tree(model, nodes)
}

fn line(step: Option<&Step>) -> String {
    let Some(step) = step else {
        return String::new();
    };
    format!(
        "  [{}] {:<62} {:>9}  {}",
        if step.ok { " ok " } else { "FAIL" },
        step.what,
        step.took.map_or("—".into(), |t| format!("{t:.0?}")),
        step.note
    )
}
