//! `jinbao-agent run` and `show` as an operator uses them: the agent comes up from a bundle
//! file, `show` reads it like `wg show`, the metrics parse, SIGTERM stops it cleanly, and a
//! broken bundle is refused with its file and line.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::control::ProbeSettings;
use base64::Engine;
use common::{CITY, Lab, PROVINCE};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("jinbao-agent-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jinbao-agent"))
}

/// Writes `node`'s key and bundle; returns the bundle file.
fn write_bundle(lab: &Lab, scratch: &Scratch, node: &str) -> PathBuf {
    let key = scratch.0.join(format!("{}.key", node.replace(':', "-")));
    let secret = base64::engine::general_purpose::STANDARD.encode(lab.member(node).wireguard);
    std::fs::write(&key, format!("{secret}\n")).unwrap();
    let mut bundle = lab.bundle(node, ProbeSettings::default(), false);
    bundle.planes[0].private_key = key;
    let file = scratch.0.join(format!("{}.toml", node.replace(':', "-")));
    std::fs::write(&file, bundle.to_toml()).unwrap();
    file
}

#[test]
fn an_agent_runs_from_its_bundle_shows_its_peers_and_stops_on_sigterm() {
    let lab = Lab::new(43_000);
    let scratch = Scratch::new("run");
    let metrics = ["127.0.0.1:43101", "127.0.0.1:43102"];
    let mut agents = Vec::new();
    for (node, metrics) in [(PROVINCE, metrics[0]), (CITY, metrics[1])] {
        let config = write_bundle(&lab, &scratch, node);
        let child = agent()
            .args(["run", "--config"])
            .arg(&config)
            .args(["--metrics", metrics])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        agents.push(Agent(child));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let shown = loop {
        let output = agent()
            .args(["show", "--agent", metrics[1]])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && text.contains("health: up") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the city never showed its uplink up:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for expected in [
        "peer: dc:14 (uplink)",
        &lab.member(PROVINCE).public.to_string(),
        "latest handshake:",
        "transfer:",
    ] {
        assert!(shown.contains(expected), "missing {expected}:\n{shown}");
    }
    let json = agent()
        .args(["show", "--json", "--agent", metrics[1]])
        .output()
        .unwrap();
    let status: agent::control::Status = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(status.node.unwrap().to_string(), CITY);

    // SIGTERM: a clean stop, exit status 0.
    let city = agents.pop().unwrap();
    let pid = city.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut city = city;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = city.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let output = agent()
        .args(["show", "--agent", metrics[1]])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("no agent answers"));
}

#[test]
fn a_broken_bundle_is_refused_with_its_file_and_line() {
    let lab = Lab::new(43_200);
    let scratch = Scratch::new("broken");
    let config = write_bundle(&lab, &scratch, CITY);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("format = 1", "format = 9", 1)).unwrap();
    let output = agent()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(err.contains("bundle format 9 is not supported"), "{err}");

    std::fs::write(
        &config,
        text.replacen("version = 1", "version = \"one\"", 1),
    )
    .unwrap();
    let output = agent()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&config.display().to_string()) && err.contains("line 2"),
        "{err}"
    );
}
