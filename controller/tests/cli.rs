//! The `jinbao-controller` command line, run as a user runs it.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jinbao-controller"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("jinbao-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shipped(name: &str) -> String {
    format!("{}/../topology/defaults/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn plan_show_prints_the_national_plan_with_its_counts() {
    let output = run(&["plan", "show"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "31 provinces (4 municipalities) · 365 cities · 3 disaster-recovery sites",
        "44,305 sites: 2,946 district offices · 41,352 street offices · 7 endpoints",
        "31 backbone 部省 · 365 provincial 省市 · 44,305 city-area 市域",
        "business 业务专网   10.0.0.0/8",
        "mgmt +0/27 · exchange +64/26 · production +128/25",
        "35 nodes listed",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    let shanxi = text.lines().find(|l| l.starts_with(" dc:14 ")).unwrap();
    assert!(
        shanxi.contains("10.32.0.0/13") && shanxi.contains("1,480"),
        "{shanxi}"
    );
}

#[test]
fn plan_show_narrows_to_a_province_and_a_level() {
    let text = stdout(&run(&["plan", "show", "--province", "14"]));
    assert!(
        text.contains(" dc:1411 ") && !text.contains(" dc:1501 "),
        "{text}"
    );
    assert!(text.contains("13 nodes listed"), "{text}");
    let text = stdout(&run(&[
        "plan",
        "show",
        "--province",
        "14",
        "--level",
        "site",
        "--plane",
        "business",
    ]));
    let xiaodian = text
        .lines()
        .find(|l| l.starts_with(" site:140105 "))
        .unwrap();
    assert!(
        xiaodian.contains("district office") && xiaodian.contains("10.32.66.0/27"),
        "{xiaodian}"
    );
    assert!(text.contains("1,480 nodes listed"), "{text}");
    let output = run(&["plan", "show", "--province", "1401"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--province takes a 2-digit province code"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn plan_check_reports_findings_with_file_and_line_and_exits_1() {
    let scratch = Scratch::new("check");
    let path = scratch.file(
        "devices.csv",
        "name,address\ndc-1401-prod-db01,10.32.64.130\ndc-1401-prod-db02,10.32.64.130\ndc-1401-exch-mq01,10.32.64.70\n",
    );
    let output = run(&["plan", "check", "--inventory", &path]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains(&format!("{path}:3: dc-1401-prod-db02: duplicate address 10.32.64.130/32, already registered on line 2")), "{text}");
    assert!(text.ends_with("3 devices checked, 1 findings\n"), "{text}");

    let clean = scratch.file("clean.csv", "name,address\ndc-1401-exch-mq01,10.32.64.70\n");
    let output = run(&["plan", "check", "--inventory", &clean]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let output = run(&["plan", "check", "--inventory", "/nonexistent/devices.csv"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read /nonexistent/devices.csv"));
}

#[test]
fn plan_export_covers_every_node_on_every_plane() {
    let output = run(&["plan", "export", "--format", "csv"]);
    assert!(output.status.success());
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let first: Vec<&str> = headers.iter().take(8).collect();
    assert_eq!(
        first,
        [
            "node", "name", "tier", "kind", "parent", "plane", "block", "own"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let count = |plane: &str| rows.iter().filter(|r| &r[5] == plane).count();
    // Business reaches every node; office and public every data centre and DR site.
    assert_eq!(count("business"), 1 + 31 + 365 + 3 + 44_305);
    assert_eq!(count("office"), 1 + 31 + 365 + 3);
    assert_eq!(count("public"), 1 + 31 + 365 + 3);
    let taiyuan = rows
        .iter()
        .find(|r| &r[0] == "dc:1401" && &r[5] == "business")
        .unwrap();
    assert_eq!(&taiyuan[6], "10.32.64.0/18");
    assert_eq!(&taiyuan[4], "dc:14");

    let output = run(&["plan", "export", "--format", "json"]);
    let nodes: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(nodes.len(), 1 + 31 + 365 + 3 + 44_305);
    let window = nodes
        .iter()
        .find(|n| n["node"] == "site:140105:window-01")
        .unwrap();
    assert_eq!(
        window["planes"]["business"]["zones"]["production"],
        "10.32.81.48/28"
    );
    assert_eq!(window["kind"], "window");
}

#[test]
fn policy_check_accepts_the_shipped_policy_and_refuses_a_leaky_one() {
    let output = run(&["policy", "check", &shipped("policy.toml")]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output)
            .contains("accepted — 16 rules, 1 soft-exchange gateway(s), 15 tests passed"),
        "{}",
        stdout(&output)
    );

    let scratch = Scratch::new("policy");
    let shipped_text = std::fs::read_to_string(shipped("policy.toml")).unwrap();
    let line = shipped_text.lines().count() + 2;
    let leaky = scratch.file(
        "leaky.toml",
        &format!("{shipped_text}\n[[rules]]\nname = \"portal-db\"\nfrom = \"public:dmz\"\nto = \"business:production\"\nscope = \"same-site\"\nproto = \"tcp\"\nports = [1521]\n"),
    );
    let output = run(&["policy", "check", &leaky]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "{leaky}:{line}: rule 'portal-db' crosses planes: public:dmz → business:production"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{leaky}:{line}: rule 'portal-db' lets the public plane reach production"
        )),
        "{text}"
    );
}

#[test]
fn policy_query_answers_with_the_rule_or_the_reason() {
    let output = run(&[
        "policy",
        "query",
        "site:140105:window-01",
        "production",
        "dc:1401",
        "production",
        "--proto",
        "tcp",
        "--port",
        "7001",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("allow  site:140105:window-01 business:production → dc:1401 business:production tcp/7001 (parent"), "{text}");
    assert!(
        text.contains("by rule 'sites-to-city-production' (embedded/policy.toml:"),
        "{text}"
    );

    let output = run(&[
        "policy",
        "query",
        "site:140105001",
        "production",
        "site:140105002",
        "production",
        "--port",
        "443",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains(
        "default deny: no rule allows business:production → business:production to a sibling"
    ));

    let output = run(&[
        "policy",
        "query",
        "dc:1401",
        "production",
        "dc:1401",
        "dmz",
        "--port",
        "443",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("planes are never bridged (business → public)"));

    let output = run(&[
        "policy",
        "query",
        "dc:9999",
        "production",
        "dc:1401",
        "production",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no node dc:9999 in the network"));
}

#[test]
fn policy_matrix_shows_sites_reaching_nothing_of_each_other() {
    let output = run(&["policy", "matrix", "--from", "site", "--to", "site"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("site → site (sibling)") && text.contains("site → site (unrelated)"),
        "{text}"
    );
    assert!(
        !text.contains("tcp/") && !text.contains("udp/") && !text.contains("icmp"),
        "{text}"
    );
    let text = stdout(&run(&[
        "policy", "matrix", "--from", "site", "--to", "city",
    ]));
    assert!(text.contains("tcp/443,7001"), "{text}");
}

#[test]
fn a_broken_plan_file_is_refused_with_file_and_line() {
    let scratch = Scratch::new("plan");
    let text = std::fs::read_to_string(shipped("plan.toml"))
        .unwrap()
        .replacen("city = 18 ", "city = 12 ", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("city = 12 "))
        .unwrap()
        + 1;
    let plan = scratch.file("plan.toml", &text);
    let output = run(&["--plan", &plan, "plan", "show"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!(
            "{plan}:{line}: plane business: the city prefix /12 must be longer"
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["plan", "--help"],
        &["plan", "show", "--help"],
        &["plan", "check", "--help"],
        &["plan", "export", "--help"],
        &["policy", "--help"],
        &["policy", "check", "--help"],
        &["policy", "query", "--help"],
        &["policy", "matrix", "--help"],
    ] {
        let output = run(args);
        assert!(output.status.success(), "{args:?}");
        assert!(
            stdout(&output).contains("Usage: jinbao-controller"),
            "{args:?}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn snapshot_of_a_province_plan() {
    let output = run(&["plan", "show", "--province", "14"]);
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn snapshot_of_the_site_to_city_matrix() {
    let output = run(&["policy", "matrix", "--from", "site", "--to", "city"]);
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}
