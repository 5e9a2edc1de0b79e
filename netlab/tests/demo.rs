//! `netlab demo --headless` — the README's first command, on a small scenario: every step
//! passes, the report says so, and the exit code is 0.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_headless_demo_walks_through_every_step_and_exits_0() {
    let work = std::env::temp_dir().join(format!("netlab-demo-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .args(["demo", "--headless", "--scenario", "north", "--work"])
        .arg(&work)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "tree tunnels up",
        "exchange → dc:ministry exchange, tcp/1414",
        "production, tcp/1521 (denied by policy)",
        "cut the backbone primary",
        "restore dc:ministry–dc:14",
        "controller down",
        "controller restarted",
    ] {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no step `{step}` in:\n{stdout}"));
        assert!(line.contains("[ ok ]"), "{line}");
    }
    assert!(stdout.trim_end().ends_with("all steps passed"), "{stdout}");
}

#[test]
fn an_unknown_scenario_is_refused_with_the_names_of_the_known_ones() {
    let output = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .args(["demo", "--headless", "--scenario", "atlantis"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown scenario `atlantis`"), "{stderr}");
    assert!(stderr.contains("national"), "{stderr}");
}

#[test]
fn netlab_run_plays_a_scenario_file_and_its_exit_code_is_the_verdict() {
    let dir = std::env::temp_dir().join(format!("netlab-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = |name: &str, expect: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"version = 1
name = "{name}"
description = "three nodes and a zone probe"
duration = "3s"
nodes = {{ codes = ["dc:ministry", "dc:14", "dc:1401"] }}

[[checks]]
check = "tunnels-up"
within = "3s"

[[checks]]
check = "reach"
name = "Taiyuan exchange to the ministry's"
from = "dc:1401/exchange"
to = "dc:ministry/exchange"
proto = "tcp"
port = 1414
expect = "{expect}"
at = "2s"
"#
            ),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_netlab"))
            .args(["run", "--headless", "--work"])
            .arg(dir.join(format!("work-{name}")))
            .arg(&path)
            .output()
            .unwrap()
    };
    let holds = scenario("holds", "pass");
    let stdout = String::from_utf8_lossy(&holds.stdout);
    assert_eq!(holds.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("[ ok ] Taiyuan exchange to the ministry's"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("scenario passed"), "{stdout}");

    let fails = scenario("fails", "drop");
    let stdout = String::from_utf8_lossy(&fails.stdout);
    assert_eq!(fails.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAIL] Taiyuan exchange to the ministry's"),
        "{stdout}"
    );
    assert!(stdout.contains("LEAKED"), "{stdout}");

    // A mistake is reported with its file and line before anything starts.
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "version = 1\nname = \"broken\"\ndescription = \"\"\nnodes = \"all\"\nduration = \"soon\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .args(["run", "--headless"])
        .arg(&broken)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.toml:5"), "{stderr}");
}

#[test]
fn netlab_scenarios_lists_the_built_ins() {
    let output = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .arg("scenarios")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in ["national", "province-14", "streets"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no {name} in {stdout}"
        );
    }
}
