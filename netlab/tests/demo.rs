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
