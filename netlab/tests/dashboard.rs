//! The dashboard end to end: the real `jinbao-tui` binary in a tmux pane, logged in with a
//! noc operator's certificate to the real controller of a three-node lab. The test cuts
//! Taiyuan's uplink (both underlay paths) and reads the pane until the dashboard shows that
//! link down; then an isolation audit is run and `:audit` shows it; then `q` must leave the
//! dashboard.
//!
//! Needs tmux (installed through `scripts/setup.sh tmux` where missing); skips, saying why,
//! where it cannot be had. The tmux server runs on a socket of its own and is killed at the
//! end however the test ends.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent::control::{ModelSources, PathChoice};
use agent::model::Model;
use netlab::lab::{Lab, LabOptions, LabTopology, Scratch};
use topology::NodeId;

fn id(text: &str) -> NodeId {
    text.parse().unwrap()
}

/// A tmux server of this test's own; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut tmux = Command::new("tmux");
        tmux.args(["-L", &self.socket]);
        tmux
    }

    /// The pane's text now.
    fn pane(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "dashboard"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn running(&self) -> bool {
        self.command()
            .args(["has-session", "-t", "dashboard"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

fn have_tmux() -> bool {
    let found = || {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if found() {
        return true;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
    let _ = Command::new("bash").arg(script).arg("tmux").status();
    found()
}

/// The `jinbao-tui` binary of this build: next to the test's own target directory (cargo
/// test --workspace builds it), or built now.
fn dashboard_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let binary = profile_dir.join("jinbao-tui");
    if !binary.exists() {
        eprintln!("building jinbao-tui for the end-to-end test");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "tui", "--bin", "jinbao-tui"])
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p tui");
    }
    binary
}

/// The pane's line for `node`'s link.
fn row<'a>(pane: &'a str, node: &str) -> Option<&'a str> {
    pane.lines().find(|l| {
        l.split_whitespace().any(|w| w == node)
            && (l.contains('●')
                || l.contains('▼')
                || l.contains('?')
                || l.contains('◆')
                || l.contains('▲'))
    })
}

/// Runs the lab until the pane's row for `node` contains `wanted` (30 s at most): that row,
/// and the pane as last read.
async fn wait_for_row(
    lab: &mut Lab,
    tmux: &Tmux,
    node: &str,
    wanted: &str,
) -> (Option<String>, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pane = String::new();
    while Instant::now() < deadline {
        lab.run_for(Duration::from_millis(200)).await;
        pane = tmux.pane();
        if let Some(line) = row(&pane, node).filter(|r| r.contains(wanted)) {
            return (Some(line.to_owned()), pane);
        }
    }
    (None, pane)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_cut_link_down() {
    if !have_tmux() {
        eprintln!("skipped: no tmux, and scripts/setup.sh could not install it");
        return;
    }
    let binary = dashboard_binary();
    let model = Model::load(&ModelSources::default()).unwrap();
    let topology = LabTopology::tree(&model, vec![id("dc:ministry"), id("dc:14"), id("dc:1401")]);
    let work = Scratch::new("dashboard");
    let mut lab = Lab::start(&topology, LabOptions::new(work.path()), |_| {})
        .await
        .unwrap();
    let converged = lab
        .run_until_done(Duration::from_secs(20), |lab| lab.tunnels_up().0 == 2)
        .await;
    assert!(converged.is_some(), "{:#?}", lab.links_down());
    let noc = lab
        .operator("noc-e2e", pki::Role::Noc, work.path())
        .unwrap();

    let tmux = Tmux {
        socket: format!("jinbao-e2e-{}", std::process::id()),
    };
    let command = format!(
        "{} --controller {} --ca {} --cert {} --key {} --refresh 200ms",
        binary.display(),
        lab.controller_addr(),
        noc.root.display(),
        noc.certificate.display(),
        noc.key.display()
    );
    let started = tmux
        .command()
        .args([
            "new-session",
            "-d",
            "-s",
            "dashboard",
            "-x",
            "120",
            "-y",
            "30",
        ])
        .arg(command)
        .status()
        .unwrap();
    assert!(started.success(), "tmux new-session");

    // Wait until the dashboard shows Taiyuan's uplink up.
    let (before, pane) = wait_for_row(&mut lab, &tmux, "dc:1401", "● up").await;
    assert!(
        before.is_some(),
        "the dashboard never showed dc:1401 up:\n{pane}"
    );

    // Cut both underlay paths of Taiyuan's uplink.
    lab.set_path(id("dc:1401"), PathChoice::Primary, false)
        .unwrap();
    lab.set_path(id("dc:1401"), PathChoice::Backup, false)
        .unwrap();
    let cut = Instant::now();
    let (after, mut pane) = wait_for_row(&mut lab, &tmux, "dc:1401", "▼ down").await;
    let after = after.unwrap_or_else(|| panic!("the dashboard never showed dc:1401 down:\n{pane}"));
    eprintln!(
        "dc:1401 shown down {:.1?} after the cut:\n{after}",
        cut.elapsed()
    );
    assert!(pane.contains("▼ 1 down"), "the counts say so too:\n{pane}");

    // An isolation audit run now is what the audit view shows.
    let controller = lab.running_controller().unwrap();
    let run = controller::server::audits::AuditRun {
        by: "netlab".into(),
        ..Default::default()
    };
    let (report, _) = controller::server::audits::run_audit(controller, run)
        .await
        .unwrap();
    assert!(report.findings.is_empty());
    let jumped = tmux
        .command()
        .args(["send-keys", "-t", "dashboard", ":audit", "Enter"])
        .status()
        .unwrap();
    assert!(jumped.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(pane.contains("isolation audit #1") && pane.contains("PASSED"))
        && Instant::now() < deadline
    {
        lab.run_for(Duration::from_millis(200)).await;
        pane = tmux.pane();
    }
    assert!(
        pane.contains("isolation audit #1") && pane.contains("PASSED"),
        "{pane}"
    );

    // q leaves the dashboard (the pane's command ends, so its session does).
    let sent = tmux
        .command()
        .args(["send-keys", "-t", "dashboard", "q"])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !tmux.running(),
        "q did not leave the dashboard:\n{}",
        tmux.pane()
    );
    lab.stop().await;
}
