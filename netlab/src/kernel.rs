//! Kernel mode (root only): lab nodes in network namespaces with TUN devices.
//!
//! Why it exists: [`crate::lab::Lab`] runs every agent's core in one process over an
//! emulated wire, which is fast and deterministic but never touches the kernel. Some things
//! only the kernel path shows — the TUN device the host's traffic goes through, its
//! addresses and routes, real UDP sockets between hosts, the binaries' own wiring (`enroll`,
//! `run --tun`, `show`) — and a [`KernelLab`] runs exactly those: the real `jinbao-controller`
//! and `jinbao-agent` executables, one network namespace per node, joined by an underlay.
//!
//! What it builds:
//!
//! - an underlay namespace with a Linux bridge on [`UNDERLAY`] (`.1`, the bridge, is the
//!   controller's address; the nodes have `.10`, `.11`, … in the order given), where
//!   `jinbao-controller serve` runs;
//! - per node a namespace joined to the bridge by a veth pair (`ul0` on the node's side),
//!   where `jinbao-agent enroll` (with a one-time token from `jinbao-controller node token`)
//!   and then `jinbao-agent run --controller … --tun` run: the node's zone addresses on
//!   `jb-business`, the business supernet routed into it, its metrics on [`METRICS`] (each
//!   namespace has its own loopback).
//!
//! [`KernelLab::start`] returns once every agent's device carries its addresses and every
//! tree tunnel of the lab has a handshake. Test traffic goes only to addresses inside these
//! namespaces ([`KernelLab::command`] runs a program in a node's namespace).
//!
//! Cleanup: everything made is recorded as it is made and removed when the lab is dropped,
//! panics included: processes killed and reaped, anything else still running in the
//! namespaces killed, the namespaces deleted (their bridge, veths and TUN devices go with
//! them), the scratch directory removed. A run killed before Drop could run (SIGKILL, a
//! timeout) leaves names with its process id in them; the next [`KernelLab::start`] removes
//! those whose process is gone ([`sweep_stale`]).
//!
//! Needs root, `ip` (iproute2) and `/dev/net/tun`. Where one is missing, or the kernel
//! refuses a namespace or a TUN device, [`KernelLab::start`] fails with
//! [`KernelError::Unavailable`], which tests report as a skip.

mod binaries;
mod error;
mod netns;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::control::{ModelSources, Status};
use agent::model::Model;
use ipnet::Ipv4Net;
use topology::{NodeId, Plane, Zone};

pub use binaries::{AGENT, AGENT_ENV, Binaries, CONTROLLER, CONTROLLER_ENV};
pub use error::KernelError;
pub use netns::{PREFIX, SCRATCH_PREFIX, sweep_stale};

/// The plane a kernel lab runs.
pub const PLANE: Plane = Plane::Business;
/// The underlay network inside the lab's namespaces: outside every plane's supernet, so an
/// underlay address is never mistaken for an overlay one.
pub const UNDERLAY: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(192, 168, 251, 0), 24) {
    Ok(net) => net,
    Err(_) => panic!("a /24 is a valid prefix"),
};
/// The controller's port on the underlay.
pub const CONTROLLER_PORT: u16 = 7443;
/// Every agent's WireGuard port on the underlay.
pub const WIREGUARD_PORT: u16 = 51_820;
/// Every agent's metrics and status endpoint, on its namespace's own loopback.
pub const METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9586);
/// The most nodes a lab has (`.10` to `.209` of [`UNDERLAY`]).
pub const MAX_NODES: usize = 200;
/// The first node's host number on [`UNDERLAY`].
const FIRST_HOST: u8 = 10;
/// The bridge in the underlay namespace.
const BRIDGE: &str = "jbbr0";
/// A node's end of its veth pair, in its namespace.
const NODE_LINK: &str = "ul0";
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(200);

/// Checks what kernel mode needs before anything is made or built: root, `ip`, and
/// `/dev/net/tun`. [`KernelError::Unavailable`] says which is missing.
pub fn check_host() -> Result<(), KernelError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs"
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if effective != Some("0") {
        return Err(KernelError::Unavailable(
            "not root (network namespaces and TUN devices need root)".into(),
        ));
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Err(KernelError::Unavailable(
            "iproute2 (`ip`) is missing (scripts/setup.sh installs it)".into(),
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(KernelError::Unavailable(
            "/dev/net/tun is missing (no TUN support in this kernel or container)".into(),
        ));
    }
    Ok(())
}

/// What a kernel lab runs.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// The nodes: one tree (every node but the top one has its parent among them).
    pub nodes: Vec<NodeId>,
    /// The executables.
    pub binaries: Binaries,
    /// How long [`KernelLab::start`] waits for the controller, the devices and the tunnels.
    pub ready_timeout: Duration,
    /// `RUST_LOG` for the controller and the agents (their logs are in the scratch
    /// directory, and in failures).
    pub log_filter: String,
}

impl KernelOptions {
    /// `nodes` run by `binaries`, waiting up to 60 s, logging at `info`.
    pub fn new(nodes: Vec<NodeId>, binaries: Binaries) -> KernelOptions {
        KernelOptions {
            nodes,
            binaries,
            ready_timeout: Duration::from_secs(60),
            log_filter: "info".into(),
        }
    }
}

/// One node of a kernel lab.
#[derive(Debug, Clone)]
pub struct KernelNode {
    /// The node.
    pub id: NodeId,
    /// Its namespace.
    pub namespace: String,
    /// Its underlay address (on `ul0`).
    pub underlay: Ipv4Addr,
    /// Its parent in the lab, if it has one there.
    pub parent: Option<NodeId>,
    /// Its agent directory (keys, certificates, last good bundle).
    pub dir: PathBuf,
    /// Its agent's log.
    pub log: PathBuf,
}

/// The running kernel lab; dropping it removes everything it made.
pub struct KernelLab {
    model: Arc<Model>,
    binaries: Binaries,
    underlay_ns: String,
    controller_dir: PathBuf,
    controller_log: PathBuf,
    nodes: Vec<KernelNode>,
    scratch: PathBuf,
    made: netns::Made,
}

impl std::fmt::Debug for KernelLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLab")
            .field("underlay", &self.underlay_ns)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl KernelLab {
    /// Builds the lab: sweeps what killed runs left, makes the namespaces and the underlay,
    /// starts the controller, enrolls every node with a one-time token, runs every agent
    /// with `--tun`, and waits until every device is up and every tree tunnel has a
    /// handshake. On any error, what was made so far is removed before it returns.
    pub fn start(options: KernelOptions) -> Result<KernelLab, KernelError> {
        check_host()?;
        let model =
            Model::load(&ModelSources::default()).map_err(|e| KernelError::Model(e.to_string()))?;
        let tree = order_tree(&model, &options.nodes)?;
        let removed = sweep_stale();
        if !removed.is_empty() {
            eprintln!("kernel lab: removed {removed:?}, left by runs that were killed");
        }
        #[allow(clippy::disallowed_methods)] // the lab's I/O driver waits in real time
        let deadline = Instant::now() + options.ready_timeout;
        let stem = netns::stem();
        let scratch = std::env::temp_dir().join(format!(
            "{SCRATCH_PREFIX}{}",
            stem.trim_start_matches(PREFIX)
        ));
        let mut made = netns::Made::default();
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .map_err(KernelError::io(scratch.display().to_string()))?;
        made.scratch = Some(scratch.clone());
        let underlay_ns = format!("{stem}-ul");
        if let Err(err) = made.add_namespace(&underlay_ns) {
            return Err(KernelError::Unavailable(format!(
                "cannot make a namespace: {err}"
            )));
        }
        let mut lab = KernelLab {
            model,
            binaries: options.binaries.clone(),
            underlay_ns,
            controller_dir: scratch.join("controller"),
            controller_log: scratch.join("controller.log"),
            nodes: layout(&stem, &scratch, tree),
            scratch,
            made,
        };
        lab.make_underlay()?;
        lab.check_tun()?;
        lab.start_controller(&options.log_filter, deadline)?;
        lab.enroll_all()?;
        lab.run_agents(&options.log_filter)?;
        lab.wait_ready(deadline)?;
        tracing::info!(nodes = lab.nodes.len(), "kernel lab ready");
        Ok(lab)
    }

    /// The nodes, parents before children.
    pub fn nodes(&self) -> &[KernelNode] {
        &self.nodes
    }

    /// A node of the lab.
    pub fn node(&self, id: NodeId) -> Result<&KernelNode, KernelError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(KernelError::NotInLab(id))
    }

    /// The model the agents run (the embedded national one).
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The controller's address on the underlay.
    pub fn controller(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(host_address(1)), CONTROLLER_PORT)
    }

    /// The controller directory (CAs, store).
    pub fn controller_dir(&self) -> &Path {
        &self.controller_dir
    }

    /// The underlay namespace (the bridge and the controller).
    pub fn underlay_namespace(&self) -> &str {
        &self.underlay_ns
    }

    /// Every namespace the lab made.
    pub fn namespaces(&self) -> &[String] {
        &self.made.namespaces
    }

    /// The scratch directory (controller and agent directories, logs); removed with the lab.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The process ids of every process the lab started and still holds.
    pub fn pids(&self) -> Vec<u32> {
        self.made.processes.iter().map(|p| p.child.id()).collect()
    }

    /// A node's own address in a zone, on the lab's plane.
    pub fn address(&self, node: NodeId, zone: Zone) -> Option<IpAddr> {
        let ix = self.model.network.lookup(&node)?;
        self.model
            .allocation
            .overlay_addresses(PLANE, ix)
            .into_iter()
            .find_map(|(z, a)| (z == zone).then_some(a))
    }

    /// A command that runs `program` in `node`'s namespace.
    pub fn command(
        &self,
        node: NodeId,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, KernelError> {
        Ok(netns::exec_in(&self.node(node)?.namespace, program))
    }

    /// Spawns `command` (from [`command`](Self::command)) and keeps it: it is killed when the
    /// lab is dropped, if it has not ended before.
    pub fn spawn(&mut self, label: &str, command: Command) -> Result<&mut Child, KernelError> {
        self.made.spawn(label, command)
    }

    /// `node`'s agent status (`jinbao-agent show --json` in its namespace).
    pub fn status(&self, node: NodeId) -> Result<Status, KernelError> {
        let mut command = self.command(node, &self.binaries.agent)?;
        let output = command
            .args(["show", "--json", "--agent", &METRICS.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| KernelError::Status {
                node,
                reason: e.to_string(),
            })?;
        if !output.status.success() {
            return Err(KernelError::Status {
                node,
                reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| KernelError::Status {
            node,
            reason: format!("not a status: {e}"),
        })
    }

    /// The ends of the controller's and every agent's logs, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = format!("--- controller\n{}\n", tail(&self.controller_log, 20));
        for node in &self.nodes {
            text.push_str(&format!("--- {}\n{}\n", node.id, tail(&node.log, 20)));
        }
        text
    }

    fn make_underlay(&mut self) -> Result<(), KernelError> {
        let ul = self.underlay_ns.clone();
        let bridge = format!("{}/{}", host_address(1), UNDERLAY.prefix_len());
        netns::ip(&["-n", &ul, "link", "add", BRIDGE, "type", "bridge"])
            .map_err(|err| KernelError::Unavailable(format!("cannot make a bridge: {err}")))?;
        netns::ip(&["-n", &ul, "addr", "add", &bridge, "dev", BRIDGE])?;
        netns::ip(&["-n", &ul, "link", "set", BRIDGE, "up"])?;
        for (i, node) in self.nodes.clone().iter().enumerate() {
            let ns = node.namespace.as_str();
            self.made.add_namespace(ns)?;
            let port = format!("jbv{i}");
            #[rustfmt::skip]
            netns::ip(&[
                "-n", ns, "link", "add", NODE_LINK, "type", "veth", "peer", "name", &port,
                "netns", &ul,
            ])
            .map_err(|err| KernelError::Unavailable(format!("cannot make a veth pair: {err}")))?;
            netns::ip(&["-n", &ul, "link", "set", &port, "master", BRIDGE])?;
            netns::ip(&["-n", &ul, "link", "set", &port, "up"])?;
            let address = format!("{}/{}", node.underlay, UNDERLAY.prefix_len());
            netns::ip(&["-n", ns, "addr", "add", &address, "dev", NODE_LINK])?;
            netns::ip(&["-n", ns, "link", "set", NODE_LINK, "up"])?;
        }
        tracing::info!(namespaces = self.made.namespaces.len(), "underlay made");
        Ok(())
    }

    /// Whether the kernel makes a TUN device in a lab namespace (it goes with the namespace).
    fn check_tun(&self) -> Result<(), KernelError> {
        let Some(node) = self.nodes.first() else {
            return Err(KernelError::NoNodes);
        };
        let ns = node.namespace.as_str();
        let output = netns::ip_output(&["-n", ns, "tuntap", "add", "dev", "jbtun", "mode", "tun"])?;
        if !output.status.success() {
            return Err(KernelError::Unavailable(format!(
                "the kernel refused a TUN device: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        netns::ip(&["-n", ns, "link", "del", "jbtun"])
    }

    fn controller_command(&self) -> Command {
        let mut command = Command::new(&self.binaries.controller);
        command.arg("--dir").arg(&self.controller_dir);
        command.stdin(Stdio::null());
        command
    }

    /// Runs a controller command on the host (it only touches the controller directory).
    fn controller_run(&self, args: &[&str]) -> Result<String, KernelError> {
        let output = self
            .controller_command()
            .args(args)
            .output()
            .map_err(|source| KernelError::Spawn {
                command: format!("{CONTROLLER} {}", args.join(" ")),
                source,
            })?;
        if !output.status.success() {
            return Err(KernelError::command(
                &format!("{CONTROLLER} {}", args.join(" ")),
                &output,
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn start_controller(&mut self, log_filter: &str, deadline: Instant) -> Result<(), KernelError> {
        self.controller_run(&["init"])?;
        let log = log_file(&self.controller_log)?;
        let mut command = netns::exec_in(&self.underlay_ns, &self.binaries.controller);
        command
            .arg("--dir")
            .arg(&self.controller_dir)
            .args(["serve", "--listen", &self.controller().to_string()])
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1);
        self.made.spawn("controller", command)?;
        let what = format!("the controller serving on {}", self.controller());
        self.wait_for(&what, deadline, |lab| {
            lab.check_running("controller", &lab.controller_log.clone())?;
            let text = std::fs::read_to_string(&lab.controller_log).unwrap_or_default();
            Ok(text.contains("serving on"))
        })?;
        tracing::info!(controller = %self.controller(), "controller serving");
        Ok(())
    }

    /// A one-time token per node, then `jinbao-agent enroll` in its namespace, children
    /// first: a child opens its uplink's tunnel, and its first bundle then lacks the parent
    /// (not enrolled yet), so it opens only once it follows the controller to a bundle that
    /// has it, by when the parent's own first bundle has the child. Parents first, the
    /// child's first handshake would reach a parent that does not know it yet, and be
    /// retried only after WireGuard's 5 s.
    fn enroll_all(&mut self) -> Result<(), KernelError> {
        let root = self.controller_dir.join("ca/root.pem");
        for node in self.nodes.iter().rev() {
            let id = node.id.to_string();
            let printed = self.controller_run(&["node", "token", &id, "--ttl", "10m"])?;
            let token = printed.lines().next().unwrap_or_default().trim().to_owned();
            let listen = format!(
                "{PLANE}={}",
                SocketAddr::new(IpAddr::V4(node.underlay), WIREGUARD_PORT)
            );
            let mut command = netns::exec_in(&node.namespace, &self.binaries.agent);
            let output = command
                .arg("--dir")
                .arg(&node.dir)
                .args(["enroll", "--controller", &self.controller().to_string()])
                .args(["--node", &id, "--listen", &listen])
                .arg("--root")
                .arg(&root)
                // The token stays out of the process list.
                .env("JINBAO_TOKEN", token)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| KernelError::Spawn {
                    command: format!("{AGENT} enroll --node {id}"),
                    source,
                })?;
            if !output.status.success() {
                return Err(KernelError::command(
                    &format!("{AGENT} enroll --node {id} (in {})", node.namespace),
                    &output,
                ));
            }
            tracing::info!(node = %node.id, "enrolled");
        }
        Ok(())
    }

    fn run_agents(&mut self, log_filter: &str) -> Result<(), KernelError> {
        for node in self.nodes.clone() {
            let log = log_file(&node.log)?;
            let mut command = netns::exec_in(&node.namespace, &self.binaries.agent);
            command
                .arg("--dir")
                .arg(&node.dir)
                .args([
                    "run",
                    "--tun",
                    "--controller",
                    &self.controller().to_string(),
                ])
                .args(["--metrics", &METRICS.to_string()])
                .env("RUST_LOG", log_filter)
                .stdin(Stdio::null())
                .stdout(log.0)
                .stderr(log.1);
            self.made.spawn(&agent_label(node.id), command)?;
        }
        Ok(())
    }

    /// Every agent runs, its device carries its addresses, and every tree tunnel in the lab
    /// has a handshake on both sides.
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), KernelError> {
        let what = "every device up and every tree tunnel handshaken";
        self.wait_for(what, deadline, |lab| {
            for node in lab.nodes.clone() {
                lab.check_running(&agent_label(node.id), &node.log)?;
                if !lab.device_ready(&node)? || !lab.tunnels_up(&node) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// The node's device carries every zone address of the node.
    fn device_ready(&self, node: &KernelNode) -> Result<bool, KernelError> {
        let device = agent::tun::default_name(PLANE);
        let output =
            netns::ip_output(&["-n", &node.namespace, "-o", "addr", "show", "dev", &device])?;
        let shown = String::from_utf8_lossy(&output.stdout);
        let Some(ix) = self.model.network.lookup(&node.id) else {
            return Err(KernelError::UnknownNode(node.id));
        };
        let addresses = self.model.allocation.overlay_addresses(PLANE, ix);
        Ok(!addresses.is_empty()
            && addresses
                .iter()
                .all(|(_, a)| shown.contains(&format!("inet {a}/"))))
    }

    /// The node has a handshake with its parent and each of its children in the lab.
    fn tunnels_up(&self, node: &KernelNode) -> bool {
        let Ok(status) = self.status(node.id) else {
            return false;
        };
        let Some(plane) = status.planes.iter().find(|p| p.plane == PLANE) else {
            return false;
        };
        self.neighbours(node.id).all(|peer| {
            plane
                .peers
                .iter()
                .any(|p| p.node == peer && p.handshake_age.is_some())
        })
    }

    /// A node's parent and children among the lab's nodes.
    fn neighbours(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().filter_map(move |n| {
            if n.id == id {
                n.parent
            } else {
                (n.parent == Some(id)).then_some(n.id)
            }
        })
    }

    /// An error if the labelled process has exited: [`KernelError::Unavailable`] when an
    /// agent could not make its TUN device, else [`KernelError::Exited`].
    fn check_running(&mut self, label: &str, log: &Path) -> Result<(), KernelError> {
        let Some(child) = self.made.process(label) else {
            return Ok(());
        };
        let Ok(Some(status)) = child.try_wait() else {
            return Ok(());
        };
        let text = tail(log, 30);
        if text.contains("TUN device") && text.contains(": create:") {
            return Err(KernelError::Unavailable(format!(
                "the kernel refused the agent's TUN device:\n{text}"
            )));
        }
        Err(KernelError::Exited {
            what: label.to_owned(),
            status,
            log: text,
        })
    }

    /// Polls `ready` until it says yes, fails, or `deadline` passes.
    fn wait_for(
        &mut self,
        what: &str,
        deadline: Instant,
        mut ready: impl FnMut(&mut KernelLab) -> Result<bool, KernelError>,
    ) -> Result<(), KernelError> {
        #[allow(clippy::disallowed_methods)] // the lab's I/O driver waits in real time
        let started = Instant::now();
        loop {
            if ready(self)? {
                return Ok(());
            }
            #[allow(clippy::disallowed_methods)] // as above
            let now = Instant::now();
            if now >= deadline {
                return Err(KernelError::Timeout {
                    what: what.to_owned(),
                    after: now - started,
                    diagnostics: self.diagnostics(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for KernelLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The logs go with the scratch directory: show them while they exist.
            eprintln!("kernel lab, removed after a panic:\n{}", self.diagnostics());
        }
        tracing::info!(namespaces = ?self.made.namespaces, "removing the kernel lab");
        // `made` removes everything when it is dropped, right after this.
    }
}

/// The nodes with their parents in the lab, parents first; checks they are one tree.
fn order_tree(
    model: &Model,
    nodes: &[NodeId],
) -> Result<Vec<(NodeId, Option<NodeId>)>, KernelError> {
    if nodes.is_empty() {
        return Err(KernelError::NoNodes);
    }
    if nodes.len() > MAX_NODES {
        return Err(KernelError::TooManyNodes(nodes.len()));
    }
    let network = &model.network;
    let mut tree = Vec::with_capacity(nodes.len());
    for (i, &id) in nodes.iter().enumerate() {
        if nodes[..i].contains(&id) {
            return Err(KernelError::Duplicate(id));
        }
        let ix = network.lookup(&id).ok_or(KernelError::UnknownNode(id))?;
        let parent = network
            .parent(ix)
            .map(|p| network.node(p).id)
            .filter(|p| nodes.contains(p));
        tree.push((id, parent, network.ancestors(ix).count()));
    }
    let tops: Vec<NodeId> = tree
        .iter()
        .filter(|(_, parent, _)| parent.is_none())
        .map(|(id, _, _)| *id)
        .collect();
    if tops.len() > 1 {
        return Err(KernelError::NotATree { tops });
    }
    tree.sort_by_key(|&(_, _, depth)| depth);
    Ok(tree
        .into_iter()
        .map(|(id, parent, _)| (id, parent))
        .collect())
}

/// Each node's namespace, underlay address and files.
fn layout(stem: &str, scratch: &Path, tree: Vec<(NodeId, Option<NodeId>)>) -> Vec<KernelNode> {
    tree.into_iter()
        .zip(FIRST_HOST..=u8::MAX)
        .map(|((id, parent), host)| KernelNode {
            id,
            namespace: format!("{stem}-{}", id.tag()),
            underlay: host_address(host),
            parent,
            dir: scratch.join(id.tag()),
            log: scratch.join(format!("{}.log", id.tag())),
        })
        .collect()
}

fn host_address(host: u8) -> Ipv4Addr {
    let [a, b, c, _] = UNDERLAY.network().octets();
    Ipv4Addr::new(a, b, c, host)
}

fn agent_label(node: NodeId) -> String {
    format!("agent {node}")
}

/// A log file opened twice, for a child's stdout and stderr.
fn log_file(path: &Path) -> Result<(std::fs::File, std::fs::File), KernelError> {
    let what = || format!("log {}", path.display());
    let file = std::fs::File::create(path).map_err(KernelError::io(what()))?;
    let again = file.try_clone().map_err(KernelError::io(what()))?;
    Ok((file, again))
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(nodes: &[&str]) -> Vec<NodeId> {
        nodes.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn nodes_are_ordered_parents_first_and_must_be_one_tree() {
        let model = Model::load(&ModelSources::default()).unwrap();
        let tree = order_tree(&model, &ids(&["dc:1401", "dc:ministry", "dc:14"])).unwrap();
        let [city, ministry, province] = ids(&["dc:1401", "dc:ministry", "dc:14"])[..] else {
            unreachable!()
        };
        assert_eq!(
            tree,
            [
                (ministry, None),
                (province, Some(ministry)),
                (city, Some(province))
            ]
        );
        // A province's subtree is a tree too.
        let subtree = order_tree(&model, &ids(&["dc:14", "dc:1401"])).unwrap();
        assert_eq!(subtree, [(province, None), (city, Some(province))]);

        let gap = order_tree(&model, &ids(&["dc:ministry", "dc:1401"])).unwrap_err();
        assert!(
            matches!(&gap, KernelError::NotATree { tops } if tops == &[ministry, city]),
            "{gap}"
        );
        assert!(gap.to_string().contains("dc:ministry, dc:1401"), "{gap}");
        assert!(matches!(
            order_tree(&model, &ids(&["dc:14", "dc:14"])),
            Err(KernelError::Duplicate(_))
        ));
        assert!(matches!(
            order_tree(&model, &ids(&["dc:1499"])),
            Err(KernelError::UnknownNode(_))
        ));
        assert!(matches!(order_tree(&model, &[]), Err(KernelError::NoNodes)));
    }

    #[test]
    fn node_addresses_lie_in_the_underlay() {
        let ministry = ids(&["dc:ministry"])[0];
        let nodes = layout("jbk-1-0", Path::new("/tmp/x"), vec![(ministry, None)]);
        assert_eq!(nodes[0].underlay, Ipv4Addr::new(192, 168, 251, 10));
        assert_eq!(nodes[0].namespace, "jbk-1-0-dc-ministry");
        assert!(UNDERLAY.contains(&host_address(1)));
    }
}
