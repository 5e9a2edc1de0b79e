//! boringtun-cli — userspace WireGuard on TUN devices — in three network namespaces that
//! this bench creates and removes, chained like the agents: city → province (forwarding
//! between its two peers) → ministry, over veth pairs. One thread per instance, as the
//! agent's core is one task. The sender (in the city's namespace) and the counter (in the
//! ministry's) are this binary again, as helpers; the underlay and overlay addresses exist
//! only inside those namespaces.
//!
//! The helpers at the bottom run as this bench binary again (`--bt-sink`, `--bt-send`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use quinn_udp::{BATCH_SIZE, RecvMeta};

use super::{Hop, IDLE, Run, SLOT};

/// Where the counter listens, inside the ministry's namespace.
pub const SINK: &str = "10.98.0.3:9000";
/// The first byte of a warm-up datagram (data datagrams carry 1).
pub const WARM: u8 = 0;

/// Why the comparison cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("boringtun-cli"))
            .find(|file| file.is_file())
    });
    if found.is_none() {
        return Some("not installed".into());
    }
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root {
        return Some("needs root for network namespaces".into());
    }
    for tool in ["ip", "wg"] {
        if Command::new(tool).arg("help").output().is_err() {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// The three namespaces and daemons; dropping it removes them.
pub struct Chain {
    namespaces: Vec<String>,
    interfaces: Vec<String>,
    daemons: Vec<Child>,
    scratch: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(|_| ())
}

impl Chain {
    pub fn build() -> Result<Chain, String> {
        let tag = std::process::id() % 100_000;
        let mut chain = Chain {
            namespaces: Vec::new(),
            interfaces: ["c", "p", "m"]
                .iter()
                .map(|r| format!("jbwg{r}{tag}"))
                .collect(),
            daemons: Vec::new(),
            scratch: std::env::temp_dir().join(format!("jinbao-udp-bench-{tag}")),
        };
        std::fs::create_dir_all(&chain.scratch).map_err(|e| e.to_string())?;
        for role in ["c", "p", "m"] {
            let ns = format!("jbudp-{role}{tag}");
            ip(&["netns", "add", &ns])?;
            chain.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let [c, p, m] = [0, 1, 2].map(|i| chain.namespaces[i].clone());
        ip(&[
            "-n", &c, "link", "add", "u0", "type", "veth", "peer", "name", "u1", "netns", &p,
        ])?;
        ip(&[
            "-n", &p, "link", "add", "u2", "type", "veth", "peer", "name", "u3", "netns", &m,
        ])?;
        for (ns, dev, addr) in [
            (&c, "u0", "10.99.1.1/30"),
            (&p, "u1", "10.99.1.2/30"),
            (&p, "u2", "10.99.2.1/30"),
            (&m, "u3", "10.99.2.2/30"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        run(
            "ip",
            &[
                "netns",
                "exec",
                &p,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        let mut publics = Vec::new();
        for (i, ns) in [&c, &p, &m].into_iter().enumerate() {
            let private = run("wg", &["genkey"])?;
            let key = chain.scratch.join(format!("{i}.key"));
            std::fs::write(&key, format!("{private}\n")).map_err(|e| e.to_string())?;
            let mut pubkey = Command::new("wg")
                .arg("pubkey")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut pubkey.stdin.take().unwrap(), private.as_bytes())
                .map_err(|e| e.to_string())?;
            let out = pubkey.wait_with_output().map_err(|e| e.to_string())?;
            publics.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
            let daemon = Command::new("ip")
                .args(["netns", "exec", ns, "boringtun-cli"])
                .arg(&chain.interfaces[i])
                .args([
                    "--foreground",
                    "--threads",
                    "1",
                    "--disable-drop-privileges",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            chain.daemons.push(daemon);
            wait_for(&uapi(&chain.interfaces[i]))?;
        }
        let peers: [&[(usize, &str, &str)]; 3] = [
            &[(1, "10.98.0.0/24", "10.99.1.2:51820")],
            &[
                (0, "10.98.0.1/32", "10.99.1.1:51820"),
                (2, "10.98.0.3/32", "10.99.2.2:51820"),
            ],
            &[(1, "10.98.0.0/24", "10.99.2.1:51820")],
        ];
        for (i, ns) in [&c, &p, &m].into_iter().enumerate() {
            let iface = &chain.interfaces[i];
            let key = chain.scratch.join(format!("{i}.key"));
            let mut args = vec![
                "netns".to_owned(),
                "exec".into(),
                ns.clone(),
                "wg".into(),
                "set".into(),
                iface.clone(),
                "listen-port".into(),
                "51820".into(),
                "private-key".into(),
                key.display().to_string(),
            ];
            for (peer, allowed, endpoint) in peers[i] {
                args.extend(
                    [
                        "peer",
                        &publics[*peer],
                        "allowed-ips",
                        allowed,
                        "endpoint",
                        endpoint,
                    ]
                    .map(String::from),
                );
            }
            run("ip", &args.iter().map(String::as_str).collect::<Vec<_>>())?;
            let address = format!("10.98.0.{}/24", i + 1);
            ip(&["-n", ns, "addr", "add", &address, "dev", iface])?;
            ip(&["-n", ns, "link", "set", iface, "mtu", "1420", "up"])?;
        }
        Ok(chain)
    }

    /// `count` packets of `size` bytes from the city's namespace to the ministry's.
    pub fn carry(&self, size: usize, count: u64, rate: f64) -> Result<Run, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let helper = |ns: &str, args: &[&str]| {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(&exe).args(args);
            command
        };
        let mut sink = helper(&self.namespaces[2], &["--bt-sink", SINK])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let lines = {
            let (tx, rx) = std_mpsc::channel();
            let stdout = sink.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let expect = |what: &str, within: Duration| {
            let deadline = Instant::now() + within;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match lines.recv_timeout(left) {
                    Ok(line) if line.starts_with(what) => return Some(line),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        };
        let size_arg = size.to_string();
        let rate_arg = format!("{rate:.0}");
        let send = |count: &str, marker: &str| {
            helper(
                &self.namespaces[0],
                &["--bt-send", SINK, &size_arg, count, marker, &rate_arg],
            )
            .status()
            .map_err(|e| e.to_string())
        };
        let result = (|| {
            expect("ready", Duration::from_secs(5)).ok_or("the counter did not start")?;
            // The first datagrams start both WireGuard handshakes.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                send("1", "warm")?;
                if expect("warm", Duration::from_millis(300)).is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("nothing crossed boringtun-cli's tunnels".to_owned());
                }
            }
            send(&count.to_string(), "data")?;
            let done = expect("done", Duration::from_secs(60)).ok_or("the counter hung")?;
            let mut fields = done.split_whitespace().skip(1).map(|f| f.parse::<u64>());
            match (fields.next(), fields.next()) {
                (Some(Ok(delivered)), Some(Ok(nanos))) => Ok(Run {
                    sent: count,
                    offered: rate,
                    delivered,
                    elapsed: Duration::from_nanos(nanos.max(1)),
                }),
                _ => Err(format!("the counter said {done:?}")),
            }
        })();
        let _ = sink.kill();
        let _ = sink.wait();
        result
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        for iface in &self.interfaces {
            let _ = std::fs::remove_file(uapi(iface));
        }
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn uapi(iface: &str) -> PathBuf {
    Path::new("/var/run/wireguard").join(format!("{iface}.sock"))
}

fn wait_for(file: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !file.exists() {
        if Instant::now() > deadline {
            return Err(format!("boringtun-cli never opened {}", file.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Helper, in the ministry's namespace: counts data datagrams until the flow stops, then
/// prints `done <count> <nanoseconds from the first to the last>`.
async fn sink(addr: SocketAddr) {
    let hop = Hop::bind(addr).await;
    println!("ready");
    let mut buffer = vec![0u8; SLOT * BATCH_SIZE];
    let mut meta = [RecvMeta::default(); BATCH_SIZE];
    let (mut delivered, mut first, mut last, mut warm) = (0u64, None, Instant::now(), false);
    let quiet = |first: &Option<Instant>| first.map_or(Duration::from_secs(60), |_| IDLE);
    while let Ok(n) = tokio::time::timeout(quiet(&first), hop.receive(&mut buffer, &mut meta)).await
    {
        let now = Instant::now();
        for (slot, meta) in buffer.chunks(SLOT).zip(&meta[..n]) {
            for datagram in slot[..meta.len].chunks(meta.stride.max(1)) {
                if datagram.first() == Some(&WARM) {
                    if !warm {
                        println!("warm");
                        warm = true;
                    }
                } else {
                    delivered += 1;
                    first.get_or_insert(now);
                    last = now;
                }
            }
        }
    }
    let nanos = first.map_or(0, |first| (last - first).as_nanos());
    println!("done {delivered} {nanos}");
}

/// Helper, in the city's namespace: `count` UDP datagrams making `size`-byte IP packets,
/// batched with GSO, paced at `rate` packets/s. (A TUN device drops what its reader has
/// not taken yet, without pushing back on the sender: unpaced, the sender only measures
/// how fast the kernel can drop.)
async fn source(to: SocketAddr, size: usize, count: u64, warm: bool, rate: f64) {
    let hop = Hop::bind(SocketAddr::from(([0, 0, 0, 0], 0))).await;
    let payload = size.saturating_sub(28).max(1);
    let per_send = hop.socket.gso_segments(payload);
    let batch = vec![if warm { WARM } else { 1 }; payload * per_send];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).clamp(sent + 1, count);
        while sent < due {
            let n = (due - sent).min(per_send as u64);
            hop.socket
                .send(to, &batch[..n as usize * payload], payload)
                .await;
            sent += n;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Runs a helper mode if asked to; true if it did.
pub fn helper() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let tokio = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    match args.get(1).map(String::as_str) {
        Some("--bt-sink") => tokio().block_on(sink(args[2].parse().unwrap())),
        Some("--bt-send") => tokio().block_on(source(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            args[5] == "warm",
            args[6].parse().unwrap(),
        )),
        _ => return false,
    }
    true
}
