//! Kernel mode: the real `jinbao-controller` and three real `jinbao-agent`s — the ministry,
//! Shanxi (14) and Taiyuan (1401) — each in its own network namespace with a TUN device,
//! joined by a bridge on 192.168.251.0/24 (`netlab::kernel`).
//!
//! 1. TCP from Taiyuan's exchange zone to the ministry's on 443 (`exchange-up`), and from
//!    the ministry's exchange zone down to Taiyuan's on 1414 (`exchange-down`), through the
//!    hosts' TUN devices; Shanxi relays both (decrypts, filters, re-encrypts: its counters
//!    show the rules and both tunnels carrying the flows).
//! 2. TCP from Taiyuan's exchange zone to the ministry's production zone (1521) is denied:
//!    the SYN never arrives (no answer, not even a reset), and Taiyuan counts the denial.
//! 3. A lab removes everything it made when a test panics, and removes what a killed run
//!    left (a namespace named for a process that is gone, with a process still in it).
//!
//! Skips, with the reason printed, when not root, when `ip netns add` fails, or when there is
//! no `/dev/net/tun` or the kernel refuses a TUN device.
//!
//! The TCP ends inside the namespaces are this test binary itself, re-run under `ip netns
//! exec` with [`HELPER`] set (see [`kernel_helper`]).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use agent::control::{PlaneStatus, Status};
use netlab::kernel::{self, Binaries, KernelLab, KernelOptions, PREFIX, SCRATCH_PREFIX};
use topology::{NodeId, Zone};

const MINISTRY: &str = "dc:ministry";
const PROVINCE: &str = "dc:14";
const CITY: &str = "dc:1401";
/// `exchange-up` allows it from a city's exchange zone to any ancestor's.
const UP_PORT: u16 = 443;
/// `exchange-down` allows it from the ministry's exchange zone to any descendant's.
const DOWN_PORT: u16 = 1414;
/// Database synchronisation: production is never reachable from the WAN.
const DENIED_PORT: u16 = 1521;
/// Set to a task when this binary runs as a TCP end inside a namespace.
const HELPER: &str = "JINBAO_KERNEL_HELPER";
const MARK: &str = "HELPER ";

/// One lab at a time: each runs a controller and agents, and CI has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn id(node: &str) -> NodeId {
    node.parse().unwrap()
}

/// The lab of `nodes`, or `None` (reason printed) where kernel mode is unavailable.
fn start(nodes: &[&str]) -> Option<KernelLab> {
    if let Err(err) = kernel::check_host() {
        eprintln!("skipping: {err}");
        return None;
    }
    // RUST_LOG=netlab=debug shows the lab's steps.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let binaries = Binaries::for_tests().unwrap();
    let options = KernelOptions::new(nodes.iter().map(|n| id(n)).collect(), binaries);
    match KernelLab::start(options) {
        Ok(lab) => Some(lab),
        Err(err) if err.is_unavailable() => {
            eprintln!("skipping: {err}");
            None
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn exchange_traffic_crosses_the_tree_through_tun_devices() {
    let _serial = serial();
    let started = Instant::now();
    let Some(mut lab) = start(&[MINISTRY, PROVINCE, CITY]) else {
        return;
    };
    let ready = started.elapsed();
    let (ministry, province, city) = (id(MINISTRY), id(PROVINCE), id(CITY));
    let ministry_exchange = lab.address(ministry, Zone::Exchange).unwrap();
    let ministry_production = lab.address(ministry, Zone::Production).unwrap();
    let city_exchange = lab.address(city, Zone::Exchange).unwrap();

    let up = serve(
        &mut lab,
        ministry,
        &[
            (ministry_exchange, UP_PORT),
            (ministry_production, DENIED_PORT),
        ],
    );
    let down = serve(&mut lab, city, &[(city_exchange, DOWN_PORT)]);

    // Up: Taiyuan → the ministry, relayed by Shanxi.
    let outcome = connect(
        &lab,
        city,
        city_exchange,
        (ministry_exchange, UP_PORT),
        10_000,
    );
    assert_eq!(outcome, "reply pong ping", "{}", lab.diagnostics());
    let seen = up.lines(Duration::ZERO);
    let from_city = format!("accept {ministry_exchange}:{UP_PORT} {city_exchange}:");
    assert!(
        seen.iter().any(|l| l.starts_with(&from_city)),
        "the ministry did not see Taiyuan's connection: {seen:?}"
    );

    // Down: the ministry → Taiyuan.
    let to_city = (city_exchange, DOWN_PORT);
    let outcome = connect(&lab, ministry, ministry_exchange, to_city, 10_000);
    assert_eq!(outcome, "reply pong ping", "{}", lab.diagnostics());
    let seen = down.lines(Duration::ZERO);
    let from_ministry = format!("accept {city_exchange}:{DOWN_PORT} {ministry_exchange}:");
    assert!(
        seen.iter().any(|l| l.starts_with(&from_ministry)),
        "Taiyuan did not see the ministry's connection: {seen:?}"
    );

    // Denied: Taiyuan's exchange zone → the ministry's production zone. A reset would mean
    // the SYN arrived; the listener would have accepted it.
    let to_production = (ministry_production, DENIED_PORT);
    let outcome = connect(&lab, city, city_exchange, to_production, 2_000);
    assert_eq!(outcome, "timeout", "a denied flow got somewhere");
    let seen = up.lines(Duration::from_millis(200));
    let denied = format!("accept {ministry_production}:{DENIED_PORT} ");
    assert!(
        !seen.iter().any(|l| l.starts_with(&denied)),
        "a denied connection reached the ministry: {seen:?}"
    );

    // Shanxi relayed both flows through its filter, and Taiyuan denied the third.
    let statuses = wait_for_counters(&lab, &[ministry, province, city]);
    let (ministry_plane, province_plane, city_plane) = (&statuses[0], &statuses[1], &statuses[2]);
    assert!(
        flows(ministry_plane, "exchange-up") >= 1,
        "{ministry_plane:?}"
    );
    assert!(
        flows(province_plane, "exchange-up") >= 1,
        "{province_plane:?}"
    );
    assert!(
        flows(province_plane, "exchange-down") >= 1,
        "{province_plane:?}"
    );
    for peer in [ministry, city] {
        let p = province_plane
            .peers
            .iter()
            .find(|p| p.node == peer)
            .unwrap();
        assert!(p.rx_packets > 0 && p.tx_packets > 0, "{p:?}");
    }
    assert!(city_plane.default_denied >= 1, "{city_plane:?}");
    eprintln!(
        "kernel: {CITY} ({city_exchange}) ⇄ {MINISTRY} ({ministry_exchange}) through {PROVINCE}; \
         lab ready in {ready:.1?}, test done in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn everything_made_is_removed_even_when_a_test_panics() {
    let _serial = serial();
    if let Err(err) = kernel::check_host() {
        eprintln!("skipping: {err}");
        return;
    }
    // What a killed run leaves: its namespace, a process still in it, its scratch files,
    // all named for a process id that no longer exists.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = gone.id();
    let stale = format!("{PREFIX}{dead}-0-ul");
    let made = Command::new("ip")
        .args(["netns", "add", &stale])
        .output()
        .unwrap();
    if !made.status.success() {
        eprintln!(
            "skipping: `ip netns add` failed: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        );
        return;
    }
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stale_dir = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{dead}-0"));
    std::fs::create_dir_all(&stale_dir).unwrap();

    let Some(lab) = start(&[MINISTRY]) else {
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        kernel::sweep_stale();
        return;
    };
    assert!(
        !namespaces().contains(&stale),
        "the stale namespace is still there"
    );
    assert!(
        !stale_dir.exists(),
        "the stale scratch directory is still there"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeper.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the stale namespace's process lives on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let made = lab.namespaces().to_vec();
    let pids = lab.pids();
    let scratch = lab.scratch().to_owned();
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made.iter().all(|ns| namespaces().contains(ns)), "{made:?}");
    assert!(pids.iter().all(|&pid| alive(pid)), "{pids:?}");
    assert!(scratch.exists());

    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("a check fails half-way through a kernel test");
    }));
    assert!(failed.is_err());
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|ns| made.contains(ns))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let running: Vec<u32> = pids.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(running.is_empty(), "processes left: {running:?}");
    assert!(!scratch.exists(), "{} left", scratch.display());
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn flows(plane: &PlaneStatus, rule: &str) -> u64 {
    plane
        .rules
        .iter()
        .find(|r| r.rule == rule)
        .map_or(0, |r| r.allowed_flows)
}

/// The business plane of each node's status, once the counters show the flows (the
/// published status lags the datapath by up to a refresh).
fn wait_for_counters(lab: &KernelLab, nodes: &[NodeId]) -> Vec<PlaneStatus> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let planes: Vec<PlaneStatus> = nodes
            .iter()
            .map(|&node| plane(&lab.status(node).unwrap()))
            .collect();
        let caught_up = flows(&planes[1], "exchange-up") >= 1
            && flows(&planes[1], "exchange-down") >= 1
            && planes[2].default_denied >= 1;
        if caught_up || Instant::now() > deadline {
            return planes;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn plane(status: &Status) -> PlaneStatus {
    status
        .planes
        .iter()
        .find(|p| p.plane == kernel::PLANE)
        .cloned()
        .unwrap()
}

/// A TCP server helper's output, line by line.
struct Server {
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Lines printed so far, waiting `wait` for more.
    fn lines(&self, wait: Duration) -> Vec<String> {
        std::thread::sleep(wait);
        self.lines.try_iter().collect()
    }
}

fn helper(lab: &KernelLab, node: NodeId, task: &str) -> Command {
    let mut command = lab.command(node, std::env::current_exe().unwrap()).unwrap();
    command
        .args([
            "--exact",
            "kernel_helper",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(HELPER, task)
        .stdin(Stdio::null());
    command
}

/// TCP listeners in `node`'s namespace, answering each line with `pong <line>`; returns
/// once they listen. The lab kills the helper when it is dropped.
fn serve(lab: &mut KernelLab, node: NodeId, addresses: &[(IpAddr, u16)]) -> Server {
    let addresses: Vec<String> = addresses
        .iter()
        .map(|&a| SocketAddr::from(a).to_string())
        .collect();
    let mut command = helper(lab, node, &format!("serve {}", addresses.join(",")));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = lab.spawn(&format!("server {node}"), command).unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // libtest may have printed "test kernel_helper ... " on the same line.
            if let Some((_, rest)) = line.split_once(MARK)
                && tx.send(rest.to_owned()).is_err()
            {
                return;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line == "ready" => {}
        other => panic!("the server in {node} did not start: {other:?}"),
    }
    Server { lines: rx }
}

/// Connects from `from` in `node`'s namespace to `to`, sends `ping`, and returns what
/// happened: `reply <line>`, `timeout`, or `error <reason>`.
fn connect(
    lab: &KernelLab,
    node: NodeId,
    from: IpAddr,
    to: (IpAddr, u16),
    timeout_ms: u64,
) -> String {
    let to = SocketAddr::from(to);
    let out = helper(lab, node, &format!("connect {from} {to} {timeout_ms}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, rest)| rest.to_owned()))
    {
        Some(outcome) => outcome,
        None => panic!(
            "the helper in {node} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Not a test on its own: the TCP end the tests above run inside a namespace. Does nothing
/// unless [`HELPER`] is set.
#[test]
fn kernel_helper() {
    if let Ok(task) = std::env::var(HELPER) {
        helper::run(&task);
    }
}

mod helper {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{IpAddr, SocketAddr, TcpListener};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    use super::MARK;

    /// `serve ADDR:PORT,ADDR:PORT…`: answer every connection's first line until killed.
    /// `connect FROM TO:PORT TIMEOUT_MS`: connect from FROM, send `ping`, print the outcome.
    pub fn run(task: &str) {
        let words: Vec<&str> = task.split_whitespace().collect();
        match words.as_slice() {
            ["serve", addresses] => serve(addresses),
            ["connect", from, to, timeout] => {
                let outcome = connect(
                    from.parse().unwrap(),
                    to.parse().unwrap(),
                    Duration::from_millis(timeout.parse().unwrap()),
                );
                println!("{MARK}{outcome}");
            }
            _ => panic!("unknown helper task {task:?}"),
        }
    }

    fn serve(addresses: &str) {
        let listeners: Vec<TcpListener> = addresses
            .split(',')
            .map(|a| TcpListener::bind(a.parse::<SocketAddr>().unwrap()).unwrap())
            .collect();
        println!("{MARK}ready");
        let threads: Vec<_> = listeners
            .into_iter()
            .map(|listener| {
                std::thread::spawn(move || {
                    let local = listener.local_addr().unwrap();
                    for stream in listener.incoming() {
                        let Ok(mut stream) = stream else { continue };
                        let peer = stream.peer_addr().unwrap();
                        println!("{MARK}accept {local} {peer}");
                        let mut line = String::new();
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        if reader.read_line(&mut line).is_ok() {
                            let _ = writeln!(stream, "pong {}", line.trim());
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn connect(from: IpAddr, to: SocketAddr, timeout: Duration) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            // The source is the zone's address: the filters judge zones by address.
            socket.bind(SocketAddr::new(from, 0)).unwrap();
            let stream = match tokio::time::timeout(timeout, socket.connect(to)).await {
                Err(_) => return "timeout".to_owned(),
                Ok(Err(err)) => return format!("error {err}"),
                Ok(Ok(stream)) => stream,
            };
            let (read, mut write) = stream.into_split();
            write.write_all(b"ping\n").await.unwrap();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read);
            match tokio::time::timeout(timeout, reader.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => format!("reply {}", line.trim()),
                Ok(Ok(_)) => "error closed without a reply".to_owned(),
                Ok(Err(err)) => format!("error {err}"),
                Err(_) => "error no reply in time".to_owned(),
            }
        })
    }
}
