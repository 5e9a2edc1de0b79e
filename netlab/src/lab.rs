//! One controller and many agents in one process, over the emulated underlay.
//!
//! Everything real but the wire: the controller is the real service (its store, CAs and
//! HTTPS API on 127.0.0.1), every agent makes real keys, enrolls with a real one-time token
//! and CSR, follows the controller over real mutual TLS and runs the real sans-IO core with
//! real WireGuard crypto and zone filters. Only the underlay is emulated: datagrams between
//! agents cross [`Underlay`] links (delay, jitter, loss, rate, cuts), addressed by synthetic
//! loopback addresses no socket ever binds.
//!
//! The lab drives every core from one task ([`Lab::run_for`]): due deliveries, due timers
//! (a heap of each core's next timeout), bundles the followers received, and packets the
//! lab injects. Each node has a primary and a backup underlay address; every tree link has
//! a primary path (child ↔ parent's primary address) and a backup path (child ↔ parent's
//! backup address), so a cut primary fails over exactly as on the real network.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agent::control::{ModelSources, PathChoice, PeerHealth, PeerRole, ProbeSettings, Status};
use agent::follow::{AgentDir, Listen};
use agent::model::Model;
use agent::node::{Event, Node, Output, Outputs};
use agent::runtime::Reconfigure;
use controller::server::Controller;
use rustls_pki_types::pem::PemObject;
use tokio::sync::{mpsc, watch};
use topology::{NodeId, Plane, Tier, Zone};

use crate::underlay::{LinkId, LinkProfile, Underlay};

/// The plane the lab runs.
pub const PLANE: Plane = Plane::Business;
/// The WireGuard port of every synthetic address.
const PORT: u16 = 51_820;
/// Packets kept per node's interface for the lab to look at.
const INBOX: usize = 1_024;

/// Why the lab could not do something.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The model.
    #[error("model: {0}")]
    Model(String),
    /// Making or running the controller.
    #[error("controller: {0}")]
    Controller(String),
    /// An agent.
    #[error("{node}: {reason}")]
    Agent {
        /// The node.
        node: NodeId,
        /// What went wrong.
        reason: String,
    },
    /// The emulated underlay.
    #[error("underlay: {0}")]
    Underlay(#[from] crate::underlay::UnderlayError),
    /// Files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Something the lab does not have.
    #[error("{0}")]
    Unknown(String),
}

/// An operator's login files, made by [`Lab::operator`].
#[derive(Debug, Clone)]
pub struct Operator {
    /// The certificate with its CA's (PEM).
    pub certificate: PathBuf,
    /// The private key (PEM, 0600).
    pub key: PathBuf,
    /// The root CA certificate the controller chains to.
    pub root: PathBuf,
}

/// The nodes and tree links the lab builds: parents before children.
#[derive(Debug, Clone)]
pub struct LabTopology {
    /// The nodes, each after its parent.
    pub nodes: Vec<NodeId>,
    /// Each child's uplink: its primary and backup path profiles.
    pub links: Vec<TreeLink>,
}

/// A tree link of the lab.
#[derive(Debug, Clone)]
pub struct TreeLink {
    /// The child.
    pub child: NodeId,
    /// Its parent.
    pub parent: NodeId,
    /// The primary path.
    pub primary: LinkProfile,
    /// The backup path, if the child has one.
    pub backup: Option<LinkProfile>,
}

impl LabTopology {
    /// The ministry, every province and every city data centre, on the profiles of their
    /// tier (backbone 部省, provincial 省市), each with a backup path.
    pub fn national(model: &Model) -> LabTopology {
        let network = &model.network;
        let nodes: Vec<NodeId> = network
            .preorder()
            .into_iter()
            .map(|ix| network.node(ix))
            .filter(|n| matches!(n.id, NodeId::DataCentre(_)) && n.tier != Tier::Site)
            .map(|n| n.id)
            .collect();
        LabTopology::tree(model, nodes)
    }

    /// The tree links among `nodes` (each to its parent, when the parent is among them),
    /// on the profile of the child's tier, with a backup path.
    pub fn tree(model: &Model, nodes: Vec<NodeId>) -> LabTopology {
        let network = &model.network;
        let chosen: std::collections::HashSet<NodeId> = nodes.iter().copied().collect();
        let links = nodes
            .iter()
            .filter_map(|&child| {
                let ix = network.lookup(&child)?;
                let parent = network.node(network.parent(ix)?).id;
                chosen.contains(&parent).then(|| {
                    let profile = match network.node(ix).tier {
                        Tier::Province => LinkProfile::BACKBONE,
                        Tier::City => LinkProfile::PROVINCIAL,
                        _ => LinkProfile::CITY_AREA,
                    };
                    TreeLink {
                        child,
                        parent,
                        primary: profile,
                        backup: Some(profile),
                    }
                })
            })
            .collect();
        LabTopology { nodes, links }
    }
}

/// How the lab runs.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Where the controller and agent directories go.
    pub work: PathBuf,
    /// In-tunnel probe settings for every agent.
    pub probes: ProbeSettings,
    /// How often agents report health.
    pub report_every: Duration,
    /// Enrollments in flight at once.
    pub parallel_enrollments: usize,
    /// The underlay's random seed (loss, jitter).
    pub seed: u64,
}

impl LabOptions {
    /// Defaults, working in `work`.
    pub fn new(work: &Path) -> LabOptions {
        LabOptions {
            work: work.to_owned(),
            probes: ProbeSettings {
                hold_down_ms: 2_000,
                // One task runs every agent of the lab: underlay path probes every second
                // (in-tunnel probes stay at 100 ms, so cuts are still seen within 300 ms).
                // At 100 ms the national lab falls behind — see the closing note.
                path_interval_ms: 1_000,
                ..ProbeSettings::default()
            },
            report_every: Duration::from_secs(2),
            // Each agent's request waits ~40 ms on its own connection (a round trip alone:
            // see `benches/scale.rs`), so 32 in flight keep the controller busy; beyond
            // that the national lab enrolls no faster on 2 cores.
            parallel_enrollments: 32,
            seed: 2006,
        }
    }
}

/// What the lab is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The controller directory is made and the controller serves.
    ControllerUp,
    /// Agents enrolled so far, of all.
    Enrolled(usize, usize),
    /// Tree tunnels up, of all.
    TunnelsUp(usize, usize),
}

/// The controller, when it runs.
struct Serving {
    controller: Arc<Controller>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// One agent of the lab.
struct Member {
    id: NodeId,
    listen: SocketAddr,
    backup: SocketAddr,
    dir: AgentDir,
    core: Option<Node>,
    requests: mpsc::Receiver<Reconfigure>,
    status: watch::Sender<Status>,
    stop: watch::Sender<bool>,
    follower: Option<tokio::task::JoinHandle<()>>,
    inbox: VecDeque<Vec<u8>>,
    /// The time this member's entry in the timer heap is for: other entries are stale.
    scheduled: Option<Instant>,
}

/// A tree link as built: the underlay links of its two paths.
#[derive(Debug, Clone, Copy)]
pub struct BuiltLink {
    /// The child.
    pub child: NodeId,
    /// The parent.
    pub parent: NodeId,
    /// The primary path's underlay link.
    pub primary: LinkId,
    /// The backup path's underlay link.
    pub backup: Option<LinkId>,
}

/// Something a core said, with when.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When.
    pub at: Instant,
    /// Which node.
    pub node: NodeId,
    /// What.
    pub event: Event,
}

/// The running lab.
pub struct Lab {
    options: LabOptions,
    model: Arc<Model>,
    controller_dir: PathBuf,
    controller_addr: SocketAddr,
    serving: Option<Serving>,
    root_pem: String,
    members: Vec<Member>,
    index: HashMap<NodeId, usize>,
    by_addr: HashMap<SocketAddr, usize>,
    underlay: Underlay,
    links: Vec<BuiltLink>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    out: Outputs,
    events: Vec<Seen>,
    next_status: Instant,
    /// How late the latest timers ran (the lab's own load: a busy lab probes late).
    lateness: Duration,
}

impl Lab {
    /// Makes the controller directory, starts the controller, enrolls every node of
    /// `topology` with a one-time token, and starts their cores and followers. `progress`
    /// hears how far it got.
    pub async fn start(
        topology: &LabTopology,
        options: LabOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<Lab, LabError> {
        let model =
            Model::load(&ModelSources::default()).map_err(|e| LabError::Model(e.to_string()))?;
        let controller_dir = options.work.join("controller");
        std::fs::create_dir_all(&options.work)?;
        let wall = wall_clock();
        let setup_model = Arc::clone(&model);
        let dir = controller_dir.clone();
        tokio::task::spawn_blocking(move || {
            controller::setup::init(
                &dir,
                &setup_model.network,
                &setup_model.allocation,
                &[],
                &[],
                "netlab",
                wall,
            )
        })
        .await
        .map_err(|e| LabError::Controller(e.to_string()))?
        .map_err(|e| LabError::Controller(e.to_string()))?;
        let root_pem = std::fs::read_to_string(controller_dir.join("ca/root.pem"))?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let controller_addr = listener.local_addr()?;
        let serving = serve(&controller_dir, listener).await?;
        progress(Progress::ControllerUp);

        let mut lab = Lab {
            options,
            model,
            controller_dir,
            controller_addr,
            serving: Some(serving),
            root_pem,
            members: Vec::new(),
            index: HashMap::new(),
            by_addr: HashMap::new(),
            underlay: Underlay::new(0),
            links: Vec::new(),
            timers: BinaryHeap::new(),
            out: Outputs::new(),
            events: Vec::new(),
            next_status: clock(),
            lateness: Duration::ZERO,
        };
        lab.underlay = Underlay::new(lab.options.seed);
        // The lab's probe settings reach the agents the way an engineer's would: in the
        // store, and from there in every bundle.
        let probes = serde_json::to_string(&lab.options.probes)
            .map_err(|e| LabError::Controller(e.to_string()))?;
        let controller = lab.controller()?;
        tokio::task::spawn_blocking(move || {
            controller
                .store
                .write(|tx| tx.set_setting("probes", &probes, "netlab"))
        })
        .await
        .map_err(|e| LabError::Controller(e.to_string()))?
        .map_err(|e| LabError::Controller(e.to_string()))?;
        lab.build_underlay(topology)?;
        lab.enroll_all(topology, &mut progress).await?;
        Ok(lab)
    }

    /// The synthetic addresses and the underlay links of every tree link.
    fn build_underlay(&mut self, topology: &LabTopology) -> Result<(), LabError> {
        for (i, &id) in topology.nodes.iter().enumerate() {
            let (listen, backup) = addresses(i);
            self.index.insert(id, i);
            self.by_addr.insert(listen, i);
            self.by_addr.insert(backup, i);
            let (control_status, _) = watch::channel(Status::default());
            let (_, requests) = mpsc::channel(1);
            let (stop, _) = watch::channel(false);
            self.members.push(Member {
                id,
                listen,
                backup,
                dir: AgentDir::at(&self.options.work.join(id.tag()))
                    .reporting_every(self.options.report_every),
                core: None,
                requests,
                status: control_status,
                stop,
                follower: None,
                inbox: VecDeque::new(),
                scheduled: None,
            });
        }
        for link in &topology.links {
            let (Some(&child), Some(&parent)) =
                (self.index.get(&link.child), self.index.get(&link.parent))
            else {
                return Err(LabError::Unknown(format!(
                    "the link {}–{} names a node the lab does not have",
                    link.parent, link.child
                )));
            };
            let (child_addr, parent_addr, parent_backup) = (
                self.members[child].listen,
                self.members[parent].listen,
                self.members[parent].backup,
            );
            let primary = self
                .underlay
                .connect(child_addr, parent_addr, link.primary)?;
            let backup = match link.backup {
                Some(profile) => Some(self.underlay.connect(child_addr, parent_backup, profile)?),
                None => None,
            };
            self.links.push(BuiltLink {
                child: link.child,
                parent: link.parent,
                primary,
                backup,
            });
        }
        Ok(())
    }

    /// Tokens for everyone (one store transaction), then enrollments, a few at a time.
    async fn enroll_all(
        &mut self,
        topology: &LabTopology,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), LabError> {
        let controller = self.controller()?;
        let nodes = topology.nodes.clone();
        let wall = wall_clock();
        let tokens: Vec<String> = tokio::task::spawn_blocking(move || {
            controller.store.write(|tx| {
                nodes
                    .iter()
                    .map(|node| {
                        tx.create_token(node, Duration::from_secs(3_600), wall, "netlab")
                            .map(|t| t.token)
                    })
                    .collect()
            })
        })
        .await
        .map_err(|e| LabError::Controller(e.to_string()))?
        .map_err(|e| LabError::Controller(e.to_string()))?;
        let total = self.members.len();
        let mut enrolled = 0;
        progress(Progress::Enrolled(0, total));
        let work: Vec<_> = self
            .members
            .iter()
            .enumerate()
            .zip(tokens)
            .map(|((i, m), token)| (i, m.id, m.dir.clone(), token, m.listen, m.backup))
            .collect();
        let mut pending = work.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < self.options.parallel_enrollments.max(1) {
                let Some((i, id, dir, token, listen, backup)) = pending.next() else {
                    break;
                };
                let (controller, root, model) = (
                    self.controller_addr,
                    self.root_pem.clone(),
                    Arc::clone(&self.model),
                );
                // On a blocking-pool thread: the agent writes its keys and bundle with
                // fsync'd file writes inside its async enrollment, and dozens of those on
                // the runtime's two workers would stall the controller's TLS and HTTP on
                // the same workers for every sync. The connection stays on the runtime.
                let runtime = tokio::runtime::Handle::current();
                running.spawn_blocking(move || {
                    let planes = [Listen {
                        plane: PLANE,
                        listen,
                        backup: Some(backup),
                    }];
                    let bundle = runtime
                        .block_on(dir.enroll(controller, &token, &root, id, &planes, &model))
                        .map_err(|e| LabError::Agent {
                            node: id,
                            reason: e.to_string(),
                        });
                    (i, bundle)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (_, bundle) = done.map_err(|e| LabError::Controller(e.to_string()))?;
            bundle?;
            enrolled += 1;
            progress(Progress::Enrolled(enrolled, total));
        }
        // Cores start once everyone is enrolled, each on its newest bundle: a core started
        // early would be rebuilt with every neighbour that enrolls after it (new handshakes
        // each time), which at national scale is most of the work.
        let controller = self.controller()?;
        let root = rustls_pki_types::CertificateDer::from_pem_slice(self.root_pem.as_bytes())
            .map_err(|e| LabError::Controller(format!("the root: {e}")))?;
        let wall = wall_clock();
        let mut kept = tokio::task::JoinSet::new();
        for i in 0..self.members.len() {
            let id = self.members[i].id;
            let current = controller.current(&id).ok_or_else(|| LabError::Agent {
                node: id,
                reason: "the controller has no bundle for it".into(),
            })?;
            let bundle = current
                .signed
                .open(agent::control::Verifier::Root(&root), Some(id), None, wall)
                .map_err(|e| LabError::Agent {
                    node: id,
                    reason: e.to_string(),
                })?;
            // Kept as the agent's last good bundle, as its follower would keep it: a node
            // restarted later starts from the bundle it ran, not the one it enrolled with
            // (which may predate its parent's enrollment and name no uplink). The writes
            // (each synced) run beside the cores' start.
            let (dir, signed) = (self.members[i].dir.clone(), current.signed.clone());
            kept.spawn_blocking(move || {
                dir.keep(&signed).map_err(|e| LabError::Agent {
                    node: id,
                    reason: e.to_string(),
                })
            });
            self.start_member(i, bundle)?;
        }
        while let Some(done) = kept.join_next().await {
            done.map_err(|e| LabError::Controller(e.to_string()))??;
        }
        Ok(())
    }

    /// Starts a member's core on `bundle` and its follower.
    fn start_member(&mut self, i: usize, bundle: agent::control::Bundle) -> Result<(), LabError> {
        let (now, wall) = (clock(), wall_clock());
        let member = &mut self.members[i];
        let fail = |reason: String| LabError::Agent {
            node: member.id,
            reason,
        };
        let model = Model::load(&bundle.model).map_err(|e| fail(e.to_string()))?;
        let keys = member
            .dir
            .wireguard_keys(&bundle)
            .map_err(|e| fail(e.to_string()))?;
        let core = Node::new(&bundle, &keys, model, now, wall).map_err(|e| fail(e.to_string()))?;
        let (control, requests, status) = agent::runtime::control_channel(core.status(now));
        let (stop, stopped) = watch::channel(false);
        let dir = member.dir.clone();
        let controller = self.controller_addr;
        let follower = tokio::spawn(async move {
            dir.follow(controller, bundle, &control, stopped).await;
        });
        member.core = Some(core);
        member.requests = requests;
        member.status = status;
        member.stop = stop;
        member.follower = Some(follower);
        member.scheduled = None;
        self.schedule(i, now);
        Ok(())
    }

    fn controller(&self) -> Result<Arc<Controller>, LabError> {
        self.serving
            .as_ref()
            .map(|s| Arc::clone(&s.controller))
            .ok_or_else(|| LabError::Controller("the controller is down".into()))
    }

    /// Runs every core for `span` of real time.
    pub async fn run_for(&mut self, span: Duration) {
        let end = clock() + span;
        self.run_until(end, |_| false).await;
    }

    /// Runs until `done` holds (checked after every turn) or `limit` passes; returns how long
    /// it took, or `None` if it never held.
    pub async fn run_until_done(
        &mut self,
        limit: Duration,
        done: impl FnMut(&Lab) -> bool,
    ) -> Option<Duration> {
        let start = clock();
        self.run_until(start + limit, done)
            .await
            .then(|| start.elapsed())
    }

    async fn run_until(&mut self, end: Instant, mut done: impl FnMut(&Lab) -> bool) -> bool {
        let mut next_check = clock();
        loop {
            let now = clock();
            self.turn(now);
            // The condition may look at every node's status: at most every 20 ms.
            if now >= next_check {
                next_check = now + Duration::from_millis(20);
                if done(self) {
                    return true;
                }
            }
            if now >= end {
                return false;
            }
            let next = [
                self.underlay.next_delivery(),
                self.timers.peek().map(|Reverse((t, _))| *t),
                Some(end),
                Some(now + Duration::from_millis(5)),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .max(now + Duration::from_micros(200));
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Everything due at `now`: bundles, deliveries, timers, the statuses followers report.
    fn turn(&mut self, now: Instant) {
        let wall = wall_clock();
        for i in 0..self.members.len() {
            while let Ok(request) = self.members[i].requests.try_recv() {
                if let Some(core) = self.members[i].core.as_mut() {
                    request.apply(core, now, wall);
                    self.schedule(i, now);
                }
            }
        }
        while let Some(delivery) = self.underlay.poll(now) {
            let Some(&i) = self.by_addr.get(&delivery.to) else {
                continue;
            };
            if let Some(core) = self.members[i].core.as_mut() {
                core.handle_datagram(
                    now,
                    PLANE,
                    delivery.to,
                    delivery.from,
                    &delivery.datagram,
                    &mut self.out,
                );
                self.dispatch(now, i);
            }
        }
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.members[i].scheduled != Some(at) {
                continue; // superseded by an earlier or later entry
            }
            self.members[i].scheduled = None;
            self.lateness = now.saturating_duration_since(at);
            let Some(core) = self.members[i].core.as_mut() else {
                continue;
            };
            if core.next_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now, &mut self.out);
                self.dispatch(now, i);
            }
            if let Some(next) = self.members[i].core.as_ref().and_then(Node::next_timeout) {
                self.schedule(i, next.max(now + Duration::from_micros(100)));
            }
        }
        if now >= self.next_status {
            self.next_status = now + Duration::from_millis(250);
            for member in &self.members {
                if let Some(core) = &member.core {
                    member.status.send_replace(core.status(now));
                }
            }
        }
    }

    /// Carries what member `i`'s core wrote: datagrams onto the underlay, packets into its
    /// inbox, events into the record.
    fn dispatch(&mut self, now: Instant, i: usize) {
        for output in self.out.iter() {
            match output {
                Output::Transmit {
                    from, to, datagram, ..
                } => {
                    self.underlay.send(now, from, to, datagram.to_vec());
                }
                Output::Deliver { packet, .. } => {
                    let inbox = &mut self.members[i].inbox;
                    if inbox.len() == INBOX {
                        inbox.pop_front();
                    }
                    inbox.push_back(packet.to_vec());
                }
                Output::Event(event) => self.events.push(Seen {
                    at: now,
                    node: self.members[i].id,
                    event,
                }),
            }
        }
        self.out.clear();
        if let Some(next) = self.members[i].core.as_ref().and_then(Node::next_timeout) {
            self.schedule(i, next);
        }
    }

    /// Makes sure member `i`'s timers run at `at` (or earlier, if already due earlier): one
    /// live heap entry per member; replaced entries are skipped when they come up.
    fn schedule(&mut self, i: usize, at: Instant) {
        let member = &mut self.members[i];
        if member.scheduled.is_some_and(|t| t <= at) {
            return;
        }
        member.scheduled = Some(at);
        self.timers.push(Reverse((at, i)));
    }

    /// How late the last timer ran: near zero on a lab that keeps up.
    pub fn lateness(&self) -> Duration {
        self.lateness
    }

    /// The tree links and their paths.
    pub fn links(&self) -> &[BuiltLink] {
        &self.links
    }

    /// The nodes.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// The model the lab runs on.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What the cores said so far.
    pub fn events(&self) -> &[Seen] {
        &self.events
    }

    /// The emulated underlay (counters, profiles).
    pub fn underlay(&self) -> &Underlay {
        &self.underlay
    }

    /// The controller's address.
    pub fn controller_addr(&self) -> SocketAddr {
        self.controller_addr
    }

    /// A node's status now, if it runs.
    pub fn status(&self, node: NodeId) -> Option<Status> {
        let i = *self.index.get(&node)?;
        let now = clock();
        self.members[i].core.as_ref().map(|core| core.status(now))
    }

    /// Whether `node` has a completed handshake with `peer` (and the peer is still a peer).
    pub fn tunnel_up(&self, node: NodeId, peer: NodeId) -> bool {
        self.index
            .get(&node)
            .and_then(|&i| self.members[i].core.as_ref())
            .is_some_and(|core| core.planes().iter().any(|p| p.handshaken(peer)))
    }

    /// What `node`'s agent did to enforce conference reservations on its tunnel to `peer`
    /// (`None` when it holds none for that peer).
    pub fn conference_counters(
        &self,
        node: NodeId,
        peer: NodeId,
    ) -> Option<agent::control::ConferenceCounters> {
        let core = self.members[*self.index.get(&node)?].core.as_ref()?;
        core.planes()
            .iter()
            .find_map(|plane| plane.conference_counters(peer, clock()))
    }

    /// The running controller, for tests that drive it directly (as its admin API would).
    pub fn running_controller(&self) -> Option<Arc<Controller>> {
        self.controller().ok()
    }

    /// Tree tunnels up (both ends handshaken), of all.
    pub fn tunnels_up(&self) -> (usize, usize) {
        let up = self
            .links
            .iter()
            .filter(|l| self.tunnel_up(l.child, l.parent) && self.tunnel_up(l.parent, l.child))
            .count();
        (up, self.links.len())
    }

    /// The tree links that are not up, each with what both ends say of the other: for a
    /// report when convergence fails.
    pub fn links_down(&self) -> Vec<String> {
        let view = |node: NodeId, peer: NodeId| -> String {
            let Some(status) = self.status(node) else {
                return format!("{node} is not running");
            };
            let plane = status.planes.iter().find(|p| p.plane == PLANE);
            if let Some((_, why)) = plane.and_then(|p| p.refused.iter().find(|(n, _)| *n == peer)) {
                return format!("{node} refused {peer}: {why}");
            }
            match plane.and_then(|p| p.peers.iter().find(|p| p.node == peer)) {
                None => format!("{node} (config v{}) has no peer {peer}", status.version),
                Some(p) => format!(
                    "{node} (v{}, {} malformed) sees {peer} at {:?}: handshake {:?}, {:?}, rx {} tx {}",
                    status.version,
                    plane.map_or(0, |p| p.malformed),
                    p.endpoint,
                    p.handshake_age,
                    p.health,
                    p.rx_packets,
                    p.tx_packets
                ),
            }
        };
        self.links
            .iter()
            .filter(|l| !(self.tunnel_up(l.child, l.parent) && self.tunnel_up(l.parent, l.child)))
            .map(|l| {
                let (c, p) = (self.index[&l.child], self.index[&l.parent]);
                let (child, parent) = (self.members[c].listen, self.members[p].listen);
                let wire = |from, to| {
                    self.underlay.counters_between(from, to).map_or_else(
                        || "no link".to_owned(),
                        |d| {
                            format!(
                                "sent {} delivered {} dropped {}",
                                d.sent,
                                d.delivered,
                                d.dropped_total()
                            )
                        },
                    )
                };
                format!(
                    "{}; {}; up: {}; down: {}",
                    view(l.child, l.parent),
                    view(l.parent, l.child),
                    wire(child, parent),
                    wire(parent, child)
                )
            })
            .collect()
    }

    /// The path a child's uplink traffic takes now, and the uplink's probe health.
    pub fn uplink(&self, child: NodeId) -> Option<(PathChoice, PeerHealth)> {
        let status = self.status(child)?;
        status
            .planes
            .iter()
            .flat_map(|p| &p.peers)
            .find(|p| p.role == PeerRole::Uplink)
            .map(|p| (p.path, p.health))
    }

    /// A zone's first host address of a node.
    pub fn address(&self, node: NodeId, zone: Zone) -> Option<IpAddr> {
        let ix = self.model.network.lookup(&node)?;
        self.model
            .allocation
            .overlay_addresses(PLANE, ix)
            .into_iter()
            .find(|(z, _)| *z == zone)
            .map(|(_, a)| a)
    }

    /// Hands `packet` to `node`'s core as if from its own interface.
    pub fn inject(&mut self, node: NodeId, packet: &[u8]) -> Result<(), LabError> {
        let i = self.member(node)?;
        let now = clock();
        if let Some(core) = self.members[i].core.as_mut() {
            core.handle_local(now, PLANE, packet, &mut self.out);
            self.dispatch(now, i);
        }
        Ok(())
    }

    /// Whether `node`'s interface received `packet` (among the last packets it kept).
    pub fn has_delivered(&self, node: NodeId, packet: &[u8]) -> bool {
        self.index
            .get(&node)
            .is_some_and(|&i| self.members[i].inbox.iter().any(|p| p == packet))
    }

    /// Takes the packets `node`'s interface received.
    pub fn take_delivered(&mut self, node: NodeId) -> Vec<Vec<u8>> {
        self.index
            .get(&node)
            .map(|&i| self.members[i].inbox.drain(..).collect())
            .unwrap_or_default()
    }

    /// Sends a TCP SYN from one node's zone to another's and runs until it arrives (true)
    /// or `within` passes (false).
    pub async fn probe(
        &mut self,
        from: (NodeId, Zone),
        to: (NodeId, Zone),
        port: u16,
        within: Duration,
    ) -> Result<bool, LabError> {
        let (Some(src), Some(dst)) = (self.address(from.0, from.1), self.address(to.0, to.1))
        else {
            return Err(LabError::Unknown(format!(
                "{}/{} or {}/{} has no address",
                from.0, from.1, to.0, to.1
            )));
        };
        let packet = syn(src, dst, port);
        self.take_delivered(to.0);
        self.inject(from.0, &packet)?;
        let arrived = self
            .run_until_done(within, |lab| {
                lab.index
                    .get(&to.0)
                    .is_some_and(|&i| lab.members[i].inbox.iter().any(|p| *p == packet))
            })
            .await;
        Ok(arrived.is_some())
    }

    /// Cuts (or restores) a tree link's path.
    pub fn set_path(&mut self, child: NodeId, path: PathChoice, up: bool) -> Result<(), LabError> {
        let link = self
            .links
            .iter()
            .find(|l| l.child == child)
            .ok_or_else(|| LabError::Unknown(format!("{child} has no uplink in the lab")))?;
        let id = match path {
            PathChoice::Primary => Some(link.primary),
            PathChoice::Backup => link.backup,
        }
        .ok_or_else(|| LabError::Unknown(format!("{child}'s uplink has no backup path")))?;
        self.underlay.set_up(id, up)?;
        Ok(())
    }

    /// Stops the controller (as a crash would: its connections end with it).
    pub async fn kill_controller(&mut self) {
        if let Some(mut serving) = self.serving.take() {
            if let Some(stop) = serving.stop.take() {
                let _ = stop.send(());
            }
            let _ = (&mut serving.task).await;
        }
    }

    /// Starts the controller again on the same directory and address.
    pub async fn restart_controller(&mut self) -> Result<(), LabError> {
        if self.serving.is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.controller_addr).await?;
        self.serving = Some(serve(&self.controller_dir, listener).await?);
        Ok(())
    }

    /// Agents the running controller has fresh health reports from.
    pub fn reporting_agents(&self) -> usize {
        let wall = wall_clock();
        self.serving.as_ref().map_or(0, |serving| {
            serving
                .controller
                .health
                .lock()
                .map(|health| health.reporting(wall))
                .unwrap_or_default()
        })
    }

    /// Whether the controller runs.
    pub fn controller_up(&self) -> bool {
        self.serving.is_some()
    }

    /// Stops a node: its core and its follower.
    pub fn kill_node(&mut self, node: NodeId) -> Result<(), LabError> {
        let i = self.member(node)?;
        let member = &mut self.members[i];
        member.core = None;
        let _ = member.stop.send(true);
        if let Some(follower) = member.follower.take() {
            follower.abort();
        }
        Ok(())
    }

    /// Starts a stopped node again from its last good bundle on disk.
    pub fn restart_node(&mut self, node: NodeId) -> Result<(), LabError> {
        let i = self.member(node)?;
        let bundle = self.members[i]
            .dir
            .last_good()
            .map_err(|e| LabError::Agent {
                node,
                reason: e.to_string(),
            })?;
        self.start_member(i, bundle)
    }

    fn member(&self, node: NodeId) -> Result<usize, LabError> {
        self.index
            .get(&node)
            .copied()
            .ok_or_else(|| LabError::Unknown(format!("{node} is not in the lab")))
    }

    /// The controller directory.
    pub fn controller_dir(&self) -> &Path {
        &self.controller_dir
    }

    /// Signs an operator's login as `jinbao-controller cert request` and `cert issue` do
    /// (a fresh key, a request, the ministry CA's certificate, recorded in the store), and
    /// writes `<login>.key` (0600) and `<login>.pem` (leaf and CA) in `dir`: what the
    /// dashboard logs in with. The root CA is [`Lab::controller_dir`]`/ca/root.pem`.
    pub fn operator(&self, login: &str, role: pki::Role, dir: &Path) -> Result<Operator, LabError> {
        use pki::request::{Request, operator_request, read_request_pem};
        let refused =
            |e: &dyn std::fmt::Display| LabError::Controller(format!("operator {login}: {e}"));
        let key =
            pki::PrivateKey::generate(pki::KeyAlgorithm::EcdsaP256).map_err(|e| refused(&e))?;
        let request = operator_request(&key, login, login).map_err(|e| refused(&e))?;
        let Ok(Request::Operator(request)) = read_request_pem(request.as_bytes()) else {
            return Err(refused(&"not an operator request"));
        };
        let ca = pki::store::CaDir::at(&self.controller_dir)
            .authority(pki::AuthorityScope::Ministry)
            .map_err(|e| refused(&e))?;
        let issued = ca
            .issue_operator(
                &request,
                role,
                None,
                wall_clock(),
                pki::profile::OPERATOR_LIFETIME,
            )
            .map_err(|e| refused(&e))?;
        let record = controller::store::CertificateRecord {
            serial: issued.serial.to_string(),
            subject: login.to_owned(),
            kind: controller::store::CertificateKind::Operator,
            plane: None,
            issuer: pki::AuthorityScope::Ministry.to_string(),
            not_after: issued.not_after,
            pem: issued.pem(),
            revoked: None,
        };
        if let Ok(controller) = self.controller() {
            controller
                .store
                .write(|tx| tx.record_certificate(&record, "netlab"))
                .map_err(|e| refused(&e))?;
        }
        let files = Operator {
            certificate: dir.join(format!("{login}.pem")),
            key: dir.join(format!("{login}.key")),
            root: self.controller_dir.join("ca/root.pem"),
        };
        std::fs::write(
            &files.certificate,
            format!("{}{}", issued.pem(), ca.certificate_pem()),
        )?;
        pki::files::create_new(
            &files.key,
            key.to_pem().as_bytes(),
            pki::files::Secrecy::Secret,
        )
        .map_err(|e| refused(&e))?;
        Ok(files)
    }

    /// Switches the controller to another policy, as an engineer's `PUT /v1/policy` does
    /// (checked as agents will load it, recorded in the store and its change log), and
    /// pushes the new bundles at once; returns how many bundles changed.
    pub async fn set_policy(&self, text: String) -> Result<usize, LabError> {
        let controller = self.controller()?;
        tokio::task::spawn_blocking(move || {
            let sources = ModelSources {
                policy: Some(text.clone()),
                ..ModelSources::default()
            };
            Model::load(&sources).map_err(|problems| LabError::Model(problems.to_string()))?;
            controller
                .store
                .write(|tx| tx.set_setting("policy", &text, "netlab"))
                .map_err(|e| LabError::Controller(e.to_string()))?;
            controller
                .reconcile(wall_clock())
                .map_err(|e| LabError::Controller(e.to_string()))
        })
        .await
        .map_err(|e| LabError::Controller(e.to_string()))?
    }

    /// Packets the zone filters of every running node have denied so far.
    pub fn denied_total(&self) -> u64 {
        let now = clock();
        self.members
            .iter()
            .filter_map(|m| m.core.as_ref())
            .map(|core| {
                core.status(now)
                    .planes
                    .iter()
                    .map(|p| p.default_denied)
                    .sum::<u64>()
            })
            .sum()
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        for member in &mut self.members {
            let _ = member.stop.send(true);
            if let Some(follower) = member.follower.take() {
                follower.abort();
            }
        }
        self.kill_controller().await;
    }
}

/// The lab is the driver of every core: it reads the monotonic clock for them (and passes
/// the time in), as the agent runtime does.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

/// The wall clock, for certificate validity.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// Opens and serves the controller directory on `listener`.
async fn serve(dir: &Path, listener: tokio::net::TcpListener) -> Result<Serving, LabError> {
    let open_dir = dir.to_owned();
    let controller = tokio::task::spawn_blocking(move || Controller::open(&open_dir))
        .await
        .map_err(|e| LabError::Controller(e.to_string()))?
        .map_err(|e| LabError::Controller(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Arc::clone(&controller);
    let task = tokio::spawn(async move {
        if let Err(err) = serving
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
        {
            tracing::error!(%err, "the lab's controller stopped");
        }
    });
    Ok(Serving {
        controller,
        stop: Some(stop),
        task,
    })
}

/// Member `i`'s synthetic primary and backup underlay addresses: loopback addresses no
/// socket binds (127.1.0.0/16 and up for primaries, 127.128.0.0/16 and up for backups).
fn addresses(i: usize) -> (SocketAddr, SocketAddr) {
    let [_, a, b, c] = (i as u32).to_be_bytes();
    let primary = Ipv4Addr::new(127, 1 + a, b, c);
    let backup = Ipv4Addr::new(127, 128 + a, b, c);
    (
        SocketAddr::new(primary.into(), PORT),
        SocketAddr::new(backup.into(), PORT),
    )
}

/// An IPv4 TCP SYN from `src` to `dst` on `port` (the opening of a flow the zone filters
/// decide on): see [`agent::probe::tcp_syn`].
pub use agent::probe::tcp_syn as syn;

/// A lab's work directory under the system's temporary directory, removed when dropped —
/// on panics too, so a failed test leaves nothing behind.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new directory named `netlab-{name}-{pid}-{nanoseconds}` (made by the lab itself).
    pub fn new(name: &str) -> Scratch {
        let stamp = wall_clock()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Scratch {
            path: std::env::temp_dir()
                .join(format!("netlab-{name}-{}-{stamp}", std::process::id())),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
