//! A stock WireGuard peer joins a jinbao agent: an unmanaged city-area site (Taiyuan's
//! service window `site:140105:window-01`), configured by hand with `wg` and pinned in the
//! city's bundle by its public key alone, exchanges traffic with `jinbao-agent run --tun`.
//!
//! Two network namespaces made here and removed on every exit (a Drop guard, panics
//! included), joined by a veth pair on 192.168.250.0/24: the agent runs in one, the site's
//! WireGuard (the kernel's, or the userspace `boringtun-cli` where the kernel has none) in
//! the other. Through the tunnel, UDP both ways between the site's and the city's mgmt
//! addresses on the port the embedded policy allows (3784, `mgmt-probe-up` and
//! `mgmt-probe-down`), each answered; a port the policy denies (161 upwards) is dropped by
//! the agent's zone filter like any other peer's traffic. The handshake shows on both
//! sides, and SIGTERM takes the TUN device away with the agent.
//!
//! Namespaces and sockets a killed run left behind (its process gone) are removed first.
//!
//! Skips, with the reason printed, when not root, when `ip netns add` fails, when
//! wireguard-tools is missing and `scripts/setup.sh` cannot install it, or when there is
//! neither kernel WireGuard nor boringtun-cli (after setup.sh tried to install it).
//!
//! The UDP ends inside the namespaces are this test binary itself, re-run under `ip netns
//! exec` with [`HELPER`] set (see [`interop_helper`]).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent::control::{PeerConfig, PeerRole, ProbeSettings, Status};
use base64::Engine;
use common::{CITY, Lab, PLANE};
use ipnet::IpNet;
use pki::WireGuardKey;
use topology::{NodeId, Zone};

/// The site the stock peer stands for.
const SITE: &str = "site:140105:window-01";
/// The port the policy allows between a site's and its city's mgmt zones (both ways).
const ALLOWED_PORT: u16 = 3784;
/// A port it does not allow from a site up to its city (SNMP polls go downwards only).
const DENIED_PORT: u16 = 161;
const AGENT_UNDERLAY: &str = "192.168.250.1";
const SITE_UNDERLAY: &str = "192.168.250.2";
const WIREGUARD_PORT: u16 = 51820;
const METRICS: &str = "127.0.0.1:9586";
/// Set to a task when this binary runs as a UDP end inside a namespace.
const HELPER: &str = "JINBAO_INTEROP_HELPER";
const MARK: &str = "HELPER ";

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_stock_wireguard_site_exchanges_traffic_with_a_tun_agent() {
    let Some(tools) = Tools::find() else { return };
    let Some(mut lab) = Netns::new() else { return };
    let Some(wireguard) = lab.site_wireguard(&tools) else {
        return;
    };
    let pki = Lab::new(45_000);
    let parts = Parts::new(&pki);
    let (agent_ns, site_ns) = (lab.agent.clone(), lab.site.clone());
    let (site_mgmt, city_mgmt) = (parts.site_mgmt.addr(), parts.city_mgmt);

    start_city(&mut lab, &pki, &parts);
    configure_site(&lab, &wireguard, &parts);

    // Site → city on the allowed port, answered.
    let server = lab.serve(&agent_ns, city_mgmt, &[ALLOWED_PORT, DENIED_PORT]);
    let reply = lab.ask(&site_ns, site_mgmt, (city_mgmt, ALLOWED_PORT), 20_000);
    assert!(
        reply.as_deref().is_some_and(|r| r.starts_with("pong ping")),
        "no answer from the city to the site: {reply:?}\n{}",
        lab.diagnostics()
    );
    let seen = server.lines(Duration::from_millis(200));
    let from_site = format!("recv {ALLOWED_PORT} {site_mgmt}:");
    assert!(
        seen.iter().any(|l| l.starts_with(&from_site)),
        "the city's TUN side did not see the site's datagram: {seen:?}"
    );

    // Site → city on a port the policy denies: dropped by the zone filter.
    let reply = lab.ask(&site_ns, site_mgmt, (city_mgmt, DENIED_PORT), 2_000);
    assert_eq!(reply, None, "a denied flow was answered");
    let seen = server.lines(Duration::from_millis(500));
    let denied = format!("recv {DENIED_PORT} ");
    assert!(
        !seen.iter().any(|l| l.starts_with(&denied)),
        "a denied datagram reached the city: {seen:?}"
    );

    // City → site: a flow the city opens, through the TUN device into the tunnel.
    let _site_server = lab.serve(&site_ns, site_mgmt, &[ALLOWED_PORT]);
    let reply = lab.ask(&agent_ns, city_mgmt, (site_mgmt, ALLOWED_PORT), 10_000);
    assert!(
        reply.as_deref().is_some_and(|r| r.starts_with("pong ping")),
        "no answer from the site to the city: {reply:?}\n{}",
        lab.diagnostics()
    );

    check_site_handshake(&lab, &wireguard, &parts);
    check_agent_status(&lab, &parts);

    // SIGTERM: the agent stops cleanly and its device goes with it.
    lab.stop_agent();
    let gone = lab.ip_output(&["-n", &agent_ns, "link", "show", "jb-business"]);
    assert!(!gone.status.success(), "jb-business outlived the agent");
    eprintln!(
        "interop: {} site {SITE} ({site_mgmt}) ⇄ {CITY} ({city_mgmt}) over {}",
        wireguard.kind, wireguard.name
    );
}

/// The site and the city as the plan and the PKI lab have them.
struct Parts {
    site: NodeId,
    site_secret: [u8; 32],
    site_public: WireGuardKey,
    /// The site's block: the one prefix the city accepts from and routes to the site.
    site_block: IpNet,
    /// The site's mgmt address with its zone block's prefix length.
    site_mgmt: IpNet,
    city_mgmt: IpAddr,
    city_public: String,
    /// The plane's supernet: the stock peer's allowed-ips and route.
    supernet: IpNet,
}

impl Parts {
    fn new(pki: &Lab) -> Parts {
        let site: NodeId = SITE.parse().unwrap();
        let secret = x25519_dalek::StaticSecret::random();
        let ix = pki.model.network.lookup(&site).unwrap();
        let mgmt_block = pki.model.allocation.zone(PLANE, ix, Zone::Mgmt).unwrap();
        let site_mgmt = pki.address(SITE, Zone::Mgmt);
        Parts {
            site,
            site_secret: secret.to_bytes(),
            site_public: WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes()),
            site_block: pki.subtree(SITE),
            site_mgmt: IpNet::new(site_mgmt, mgmt_block.prefix_len()).unwrap(),
            city_mgmt: pki.address(CITY, Zone::Mgmt),
            city_public: pki.member(CITY).public.to_string(),
            supernet: pki.subtree(common::MINISTRY),
        }
    }
}

/// The city's bundle — its business plane on the veth, one peer, the stock site pinned by
/// its key — and its agent in TUN mode.
fn start_city(lab: &mut Netns, pki: &Lab, parts: &Parts) {
    let mut bundle = pki.bundle(CITY, ProbeSettings::default(), false);
    let plane = &mut bundle.planes[0];
    plane.listen = SocketAddr::new(AGENT_UNDERLAY.parse().unwrap(), WIREGUARD_PORT);
    plane.backup_listen = None;
    plane.private_key = lab.write("city.key", &base64(&pki.member(CITY).wireguard));
    plane.peers = vec![PeerConfig {
        node: parts.site,
        role: PeerRole::Unmanaged,
        public_key: parts.site_public,
        certificate: None,
        endpoint: Some(SocketAddr::new(
            SITE_UNDERLAY.parse().unwrap(),
            WIREGUARD_PORT,
        )),
        backup: None,
        allowed: vec![parts.site_block],
        keepalive_s: None,
        qos: Default::default(),
    }];
    let config = lab.write("city.toml", &bundle.to_toml());
    lab.start_agent(&config);
    lab.wait_for_device(parts.city_mgmt, parts.supernet);
}

/// The site, by hand, as its operator would: key, peer, address, route.
fn configure_site(lab: &Netns, wireguard: &WireGuard, parts: &Parts) {
    let key = lab.write("site.key", &base64(&parts.site_secret));
    let (ns, interface) = (lab.site.as_str(), wireguard.name.as_str());
    let endpoint = format!("{AGENT_UNDERLAY}:{WIREGUARD_PORT}");
    let (port, allowed) = (WIREGUARD_PORT.to_string(), parts.supernet.to_string());
    #[rustfmt::skip]
    lab.netns_exec(ns, "wg", &[
        "set", interface, "private-key", key.to_str().unwrap(), "listen-port", &port,
        "peer", &parts.city_public, "endpoint", &endpoint, "allowed-ips", &allowed,
    ]);
    let address = parts.site_mgmt.to_string();
    lab.ip(&["-n", ns, "addr", "add", &address, "dev", interface]);
    lab.ip(&["-n", ns, "link", "set", interface, "up"]);
    lab.ip(&["-n", ns, "route", "add", &allowed, "dev", interface]);
}

/// `wg show` on the stock side has a handshake with the city.
fn check_site_handshake(lab: &Netns, wireguard: &WireGuard, parts: &Parts) {
    let args = ["show", wireguard.name.as_str(), "latest-handshakes"];
    let out = lab.netns_exec(&lab.site, "wg", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stamp: u64 = text
        .split_whitespace()
        .skip_while(|w| *w != parts.city_public)
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(stamp > 0, "no handshake on the site: {text:?}");
}

/// The agent shows the unmanaged peer, its traffic and the filter's verdicts.
fn check_agent_status(lab: &Netns, parts: &Parts) {
    // The published status lags the datapath by up to a refresh: ask until it caught up.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = lab.agent_status();
        let peer = status.planes[0].peers.iter().find(|p| p.node == parts.site);
        // In: the ping, the denied pings, the answer; out: the answer, the ping.
        let caught_up = peer.is_some_and(|p| p.rx_packets >= 3 && p.tx_packets >= 2);
        if caught_up || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let plane = &status.planes[0];
    let peer = plane.peers.iter().find(|p| p.node == parts.site).unwrap();
    assert_eq!(peer.role, PeerRole::Unmanaged);
    assert!(peer.handshake_age.is_some(), "{peer:?}");
    assert!(peer.rx_packets >= 3 && peer.tx_packets >= 2, "{peer:?}");
    let flows = |rule: &str| {
        let counters = plane.rules.iter().find(|r| r.rule == rule);
        counters.map_or(0, |r| r.allowed_flows)
    };
    assert!(flows("mgmt-probe-up") >= 1, "{:?}", plane.rules);
    assert!(flows("mgmt-probe-down") >= 1, "{:?}", plane.rules);
    assert!(plane.default_denied >= 1, "{plane:?}");
}

/// Not a test on its own: the UDP end the test above runs inside a namespace. Does nothing
/// unless [`HELPER`] is set.
#[test]
fn interop_helper() {
    if let Ok(task) = std::env::var(HELPER) {
        helper::run(&task);
    }
}

mod helper {
    use super::*;

    /// `serve ADDR PORT,PORT…`: answer every datagram with `pong <payload>` until killed.
    /// `ask FROM TO:PORT TIMEOUT_MS`: send `ping N` until answered or out of time.
    pub fn run(task: &str) {
        let words: Vec<&str> = task.split_whitespace().collect();
        match words.as_slice() {
            ["serve", addr, ports] => serve(addr.parse().unwrap(), ports),
            ["ask", from, to, timeout] => ask(
                from.parse().unwrap(),
                to.parse().unwrap(),
                Duration::from_millis(timeout.parse().unwrap()),
            ),
            _ => panic!("unknown helper task {task:?}"),
        }
    }

    fn serve(addr: IpAddr, ports: &str) {
        let sockets: Vec<UdpSocket> = ports
            .split(',')
            .map(|p| UdpSocket::bind((addr, p.parse::<u16>().unwrap())).unwrap())
            .collect();
        println!("{MARK}ready");
        let threads: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                std::thread::spawn(move || {
                    let port = socket.local_addr().unwrap().port();
                    let mut buffer = [0u8; 1500];
                    loop {
                        let (len, from) = socket.recv_from(&mut buffer).unwrap();
                        let payload = String::from_utf8_lossy(&buffer[..len]).into_owned();
                        println!("{MARK}recv {port} {from} {payload}");
                        socket
                            .send_to(format!("pong {payload}").as_bytes(), from)
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn ask(from: IpAddr, to: SocketAddr, timeout: Duration) {
        let socket = UdpSocket::bind((from, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 1500];
        let mut n = 0;
        while Instant::now() < deadline {
            n += 1;
            // Sends fail while the route or the tunnel is not there yet; try again.
            let _ = socket.send_to(format!("ping {n}").as_bytes(), to);
            if let Ok((len, source)) = socket.recv_from(&mut buffer) {
                let reply = String::from_utf8_lossy(&buffer[..len]);
                println!("{MARK}reply {source} {reply}");
                return;
            }
        }
        println!("{MARK}timeout");
    }
}

/// The tools the test needs, installed by `scripts/setup.sh` where missing.
struct Tools {
    boringtun: Option<PathBuf>,
    setup_ran: bool,
}

impl Tools {
    fn find() -> Option<Tools> {
        if !is_root() {
            eprintln!("skipping: not root (network namespaces and TUN devices need root)");
            return None;
        }
        let mut setup_ran = false;
        if which("ip").is_none() || which("wg").is_none() {
            run_setup();
            setup_ran = true;
        }
        if which("ip").is_none() {
            eprintln!(
                "skipping: iproute2 (`ip`) is missing and scripts/setup.sh could not install it"
            );
            return None;
        }
        if which("wg").is_none() {
            eprintln!(
                "skipping: wireguard-tools (`wg`) is missing and scripts/setup.sh could not install it"
            );
            return None;
        }
        Some(Tools {
            boringtun: find_boringtun(),
            setup_ran,
        })
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// boringtun-cli on PATH or where `cargo install` puts it.
fn find_boringtun() -> Option<PathBuf> {
    which("boringtun-cli").or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let candidate = cargo_home.join("bin/boringtun-cli");
        is_executable(&candidate).then_some(candidate)
    })
}

fn run_setup() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = workspace.join("scripts/setup.sh");
    eprintln!("running {}", script.display());
    match Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("{} failed: {status}", script.display()),
        Err(err) => eprintln!("cannot run {}: {err}", script.display()),
    }
}

/// The site's WireGuard interface.
struct WireGuard {
    name: String,
    kind: &'static str,
}

/// A UDP server helper's output, line by line.
struct Server {
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Lines printed so far, waiting up to `wait` for more.
    fn lines(&self, wait: Duration) -> Vec<String> {
        std::thread::sleep(wait);
        self.lines.try_iter().collect()
    }
}

/// The two namespaces and everything started in them; Drop removes it all.
struct Netns {
    agent: String,
    site: String,
    scratch: PathBuf,
    children: Vec<(&'static str, Child)>,
    agent_child: Option<Child>,
    uapi_socket: Option<PathBuf>,
}

impl Netns {
    fn new() -> Option<Netns> {
        remove_stale();
        let pid = std::process::id();
        let scratch = std::env::temp_dir().join(format!("jinbao-interop-{pid}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        let lab = Netns {
            agent: format!("jbtest-agent-{pid}"),
            site: format!("jbtest-site-{pid}"),
            scratch,
            children: Vec::new(),
            agent_child: None,
            uapi_socket: None,
        };
        for ns in [lab.agent.clone(), lab.site.clone()] {
            let made = lab.ip_output(&["netns", "add", &ns]);
            if !made.status.success() {
                eprintln!(
                    "skipping: `ip netns add {ns}` failed: {}",
                    String::from_utf8_lossy(&made.stderr).trim()
                );
                return None; // Drop removes the one that was made
            }
        }
        let (agent, site) = (lab.agent.clone(), lab.site.clone());
        lab.ip(&[
            "-n", &agent, "link", "add", "jbveth0", "type", "veth", "peer", "name", "jbveth1",
            "netns", &site,
        ]);
        for (ns, dev, addr) in [
            (&agent, "jbveth0", AGENT_UNDERLAY),
            (&site, "jbveth1", SITE_UNDERLAY),
        ] {
            lab.ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            lab.ip(&["-n", ns, "link", "set", dev, "up"]);
            lab.ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Some(lab)
    }

    /// The site's WireGuard interface: the kernel's if it can make one, else boringtun-cli.
    fn site_wireguard(&mut self, tools: &Tools) -> Option<WireGuard> {
        let name = format!("jbwg{}", std::process::id());
        let site = self.site.clone();
        let kernel = self.ip_output(&["-n", &site, "link", "add", &name, "type", "wireguard"]);
        if kernel.status.success() {
            return Some(WireGuard {
                name,
                kind: "kernel WireGuard",
            });
        }
        let boringtun = match (&tools.boringtun, tools.setup_ran) {
            (Some(path), _) => Some(path.clone()),
            (None, false) => {
                run_setup();
                find_boringtun()
            }
            (None, true) => None,
        };
        let Some(boringtun) = boringtun else {
            eprintln!(
                "skipping: no kernel WireGuard ({}) and no boringtun-cli (scripts/setup.sh \
                 installs it with cargo)",
                String::from_utf8_lossy(&kernel.stderr).trim()
            );
            return None;
        };
        let socket = PathBuf::from(format!("/var/run/wireguard/{name}.sock"));
        self.uapi_socket = Some(socket.clone());
        let log = std::fs::File::create(self.scratch.join("boringtun.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &site])
            .arg(&boringtun)
            .args([
                &name,
                "--foreground",
                "--disable-drop-privileges",
                "--threads",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(("boringtun-cli", child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "boringtun-cli did not come up\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(WireGuard {
            name,
            kind: "boringtun-cli",
        })
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.scratch.join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn ip_output(&self, args: &[&str]) -> Output {
        Command::new("ip").args(args).output().unwrap()
    }

    fn ip(&self, args: &[&str]) {
        let out = self.ip_output(args);
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn netns_exec(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {} in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start_agent(&mut self, config: &Path) {
        let log = std::fs::File::create(self.scratch.join("agent.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.agent])
            .arg(env!("CARGO_BIN_EXE_jinbao-agent"))
            .args(["run", "--tun", "--config"])
            .arg(config)
            .args(["--metrics", METRICS])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent_child = Some(child);
    }

    /// Waits until the agent's device carries its mgmt address and the plane's route.
    fn wait_for_device(&mut self, mgmt: IpAddr, supernet: IpNet) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.agent_child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the agent exited: {status}\n{}", self.diagnostics());
            }
            let addr = self.ip_output(&["-n", &self.agent, "addr", "show", "dev", "jb-business"]);
            let route =
                self.ip_output(&["-n", &self.agent, "route", "show", &supernet.to_string()]);
            let (addr, route) = (
                String::from_utf8_lossy(&addr.stdout),
                String::from_utf8_lossy(&route.stdout),
            );
            if addr.contains(&format!("inet {mgmt}/")) && route.contains("dev jb-business") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jb-business never came up:\n{addr}\n{route}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn helper(&self, ns: &str, task: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "interop_helper",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(HELPER, task)
            .stdin(Stdio::null());
        command
    }

    /// Starts a UDP server on `addr` in `ns`; returns once it listens.
    fn serve(&mut self, ns: &str, addr: IpAddr, ports: &[u16]) -> Server {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let log = self.scratch.join(format!("server-{ns}.log"));
        let mut child = self
            .helper(ns, &format!("serve {addr} {}", ports.join(",")))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.children.push(("server", child));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // libtest may have printed "test interop_helper ... " on the same line.
                if let Some((_, rest)) = line.split_once(MARK)
                    && tx.send(rest.to_owned()).is_err()
                {
                    return;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line == "ready" => {}
            other => panic!(
                "the server in {ns} did not start: {other:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        Server { lines: rx }
    }

    /// Sends from `from` in `ns` to `to` until answered; the answer, or `None`.
    fn ask(&self, ns: &str, from: IpAddr, to: (IpAddr, u16), timeout_ms: u64) -> Option<String> {
        let to = SocketAddr::from(to);
        let out = self
            .helper(ns, &format!("ask {from} {to} {timeout_ms}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.split_once(MARK).map(|(_, rest)| rest));
        match line {
            Some(reply) if reply.starts_with("reply ") => {
                // "reply SOURCE PAYLOAD": the answer must come from where it was sent.
                let mut words = reply.splitn(3, ' ').skip(1);
                assert_eq!(words.next(), Some(to.to_string().as_str()), "{reply}");
                words.next().map(str::to_owned)
            }
            Some("timeout") => None,
            _ => panic!(
                "the helper in {ns} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn agent_status(&self) -> Status {
        let out = self.netns_exec(
            &self.agent,
            env!("CARGO_BIN_EXE_jinbao-agent"),
            &["show", "--json", "--agent", METRICS],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn stop_agent(&mut self) {
        let mut child = self.agent_child.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the agent did not stop on SIGTERM\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "exit {status}\n{}", self.diagnostics());
    }

    /// The agent's and boringtun's logs, for failure messages.
    fn diagnostics(&self) -> String {
        ["agent.log", "boringtun.log"]
            .iter()
            .filter_map(|name| {
                let text = std::fs::read_to_string(self.scratch.join(name)).ok()?;
                Some(format!("--- {name}\n{text}"))
            })
            .collect()
    }
}

/// What a run killed before its Drop guard ran (SIGKILL, a timeout) left behind: its
/// namespaces and boringtun's socket, named by a process id that no longer exists.
fn remove_stale() {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    let listed = Command::new("ip").args(["netns", "list"]).output();
    let listed = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for name in listed
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let pid = name
            .strip_prefix("jbtest-agent-")
            .or_else(|| name.strip_prefix("jbtest-site-"));
        if let Some(pid) = pid.filter(|pid| !alive(pid)) {
            eprintln!("removing namespace {name} left by process {pid}");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    let sockets = std::fs::read_dir("/var/run/wireguard")
        .into_iter()
        .flatten();
    for entry in sockets.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("jbwg")
            .and_then(|n| n.strip_suffix(".sock"));
        if pid.is_some_and(|pid| !alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.agent, &self.site] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(socket) = &self.uapi_socket {
            let _ = std::fs::remove_file(socket);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
