//! Real UDP sockets on 127.0.0.1 in front of the emulated [`Underlay`], so an agent with real
//! sockets (the agent's tokio runtime, or any UDP program) can run over emulated links.
//!
//! The main lab drives the agents' sans-IO cores straight over the underlay on a virtual
//! clock; the relay exists for what only real sockets show: the agent runtime's own I/O, and
//! tools pointed at a running lab. It reads the real clock, as an I/O driver may.
//!
//! # The mapping
//!
//! Each emulated node address `E` (an underlay address from the scenario, such as
//! `10.0.1.1:51820`) gets a **relay socket** `R(E)` bound on `127.0.0.1:0`
//! ([`Relay::add_node`]). `R(E)` stands for `E` to everyone else: to reach node `Y`, an agent
//! sends to `R(Y)`. The real agent playing node `E` has its own socket `A(E)` on 127.0.0.1,
//! told to the relay with [`Relay::attach`] once its port is known (and again if it restarts).
//!
//! ```text
//!  agent X at A(X) ──send to R(Y)──▶ R(Y) ─┐                 ┌─ R(X) ──from R(X)──▶ agent Y at A(Y)
//!                                          └▶ underlay E(X) → E(Y), delivered when due ─┘
//! ```
//!
//! A datagram read on `R(Y)` from `A(X)` enters the underlay from `E(X)` to `E(Y)`; when the
//! underlay delivers it, it is written from `R(X)` to `A(Y)`. So agent Y sees it come from
//! `R(X)`, the very address it sends to for X: replies, and a WireGuard peer's roaming
//! endpoint, stay inside the emulator. Configure each agent's peer endpoints as the peers'
//! relay sockets.
//!
//! Datagrams from a real address attached to no node are dropped and counted
//! ([`RelayCounters::unknown_source`]), as are deliveries to a node with no agent attached
//! ([`RelayCounters::unattached`]). Agents must be on 127.0.0.1: the relay talks to nothing
//! else.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::underlay::{Sent, Underlay};

/// The largest datagram the relay reads.
const MAX_DATAGRAM: usize = 65_535;

/// A running relay: its sockets' tasks and the delivery task stop when it is dropped.
pub struct Relay {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// What the relay did with the datagrams it saw, besides what the underlay counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayCounters {
    /// Datagrams read from relay sockets.
    pub received: u64,
    /// Read from a real address attached to no node; dropped.
    pub unknown_source: u64,
    /// Delivered by the underlay to a node with no agent attached; dropped.
    pub unattached: u64,
    /// Written to an agent.
    pub forwarded: u64,
    /// Failed writes to an agent.
    pub send_errors: u64,
    /// Failed reads from a relay socket.
    pub receive_errors: u64,
}

/// Why the relay refused a request.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// [`Relay::start`] was called outside a tokio runtime.
    #[error("the relay runs on a tokio runtime; start it inside one")]
    NoRuntime,
    /// The relay socket for a node could not be bound.
    #[error("binding the relay socket for {node} on 127.0.0.1: {source}")]
    Bind {
        /// The emulated node address.
        node: SocketAddr,
        /// The bind error.
        source: io::Error,
    },
    /// The node already has a relay socket.
    #[error("{0} already has a relay socket")]
    DuplicateNode(SocketAddr),
    /// The node has no relay socket yet.
    #[error("{0} has no relay socket; add the node first")]
    UnknownNode(SocketAddr),
    /// The real address already plays another node.
    #[error("agent address {agent} is already attached to {node}")]
    AgentTaken {
        /// The real agent address.
        agent: SocketAddr,
        /// The node it plays.
        node: SocketAddr,
    },
    /// The relay only talks to 127.0.0.0/8.
    #[error("agent address {0} is not on IPv4 loopback; the relay only talks to 127.0.0.1")]
    NotLoopback(SocketAddr),
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the delivery task when the earliest delivery may have moved.
    wake: Notify,
}

struct State {
    underlay: Underlay,
    /// By emulated address.
    nodes: foldhash::HashMap<SocketAddr, Node>,
    /// Real agent address → the emulated address it plays.
    agents: foldhash::HashMap<SocketAddr, SocketAddr>,
    counters: RelayCounters,
}

struct Node {
    socket: Arc<UdpSocket>,
    relay_addr: SocketAddr,
    agent: Option<SocketAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a caller's closure leaves the state consistent: every update is one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Relay {
    /// Starts a relay over `underlay`; call inside a tokio runtime. Links are the underlay's:
    /// connect emulated addresses before or through [`with_underlay`](Self::with_underlay).
    pub fn start(underlay: Underlay) -> Result<Relay, RelayError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| RelayError::NoRuntime)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                underlay,
                nodes: foldhash::HashMap::default(),
                agents: foldhash::HashMap::default(),
                counters: RelayCounters::default(),
            }),
            wake: Notify::new(),
        });
        let driver = runtime.spawn(deliver(Arc::clone(&shared)));
        Ok(Relay {
            shared,
            runtime,
            tasks: Mutex::new(vec![driver.abort_handle()]),
        })
    }

    /// Binds the relay socket that stands for emulated address `node` and returns its real
    /// address: agents send there to reach `node`.
    pub async fn add_node(&self, node: SocketAddr) -> Result<SocketAddr, RelayError> {
        if self.shared.lock().nodes.contains_key(&node) {
            return Err(RelayError::DuplicateNode(node));
        }
        let bind = |source| RelayError::Bind { node, source };
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(bind)?;
        let relay_addr = socket.local_addr().map_err(bind)?;
        let socket = Arc::new(socket);
        {
            let mut state = self.shared.lock();
            if state.nodes.contains_key(&node) {
                return Err(RelayError::DuplicateNode(node));
            }
            let entry = Node {
                socket: Arc::clone(&socket),
                relay_addr,
                agent: None,
            };
            state.nodes.insert(node, entry);
        }
        let task = self
            .runtime
            .spawn(receive(Arc::clone(&self.shared), socket, node));
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        Ok(relay_addr)
    }

    /// Says that the real agent at `agent` plays emulated node `node`, replacing the node's
    /// previous agent.
    pub fn attach(&self, node: SocketAddr, agent: SocketAddr) -> Result<(), RelayError> {
        if !matches!(agent, SocketAddr::V4(v4) if v4.ip().is_loopback()) {
            return Err(RelayError::NotLoopback(agent));
        }
        let mut state = self.shared.lock();
        match state.agents.get(&agent) {
            Some(&other) if other != node => {
                return Err(RelayError::AgentTaken { agent, node: other });
            }
            _ => {}
        }
        let entry = state
            .nodes
            .get_mut(&node)
            .ok_or(RelayError::UnknownNode(node))?;
        let previous = entry.agent.replace(agent);
        if let Some(previous) = previous {
            state.agents.remove(&previous);
        }
        state.agents.insert(agent, node);
        Ok(())
    }

    /// The relay socket standing for emulated address `node`.
    pub fn relay_addr(&self, node: SocketAddr) -> Option<SocketAddr> {
        self.shared.lock().nodes.get(&node).map(|n| n.relay_addr)
    }

    /// Reads or changes the underlay (profiles, cuts, counters) while the relay runs.
    pub fn with_underlay<R>(&self, change: impl FnOnce(&mut Underlay) -> R) -> R {
        let result = change(&mut self.shared.lock().underlay);
        self.shared.wake.notify_one();
        result
    }

    /// The relay's own counters.
    pub fn counters(&self) -> RelayCounters {
        self.shared.lock().counters
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Reads one relay socket: datagrams to `node` enter the underlay from their sender's node.
async fn receive(shared: Arc<Shared>, socket: Arc<UdpSocket>, node: SocketAddr) {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, source)) => {
                if shared.lock().enter(source, node, &buf[..len]) {
                    shared.wake.notify_one();
                }
            }
            Err(_) => {
                shared.lock().counters.receive_errors += 1;
                tokio::task::yield_now().await;
            }
        }
    }
}

impl State {
    /// Feeds a datagram read on `node`'s relay socket from real address `source` to the
    /// underlay. True when it is now the earliest delivery, so the delivery task must wake.
    fn enter(&mut self, source: SocketAddr, node: SocketAddr, datagram: &[u8]) -> bool {
        #[allow(clippy::disallowed_methods)] // the relay is an I/O driver: it reads the clock
        let now = Instant::now();
        self.counters.received += 1;
        let Some(&from) = self.agents.get(&source) else {
            self.counters.unknown_source += 1;
            return false;
        };
        match self.underlay.send(now, from, node, datagram.to_vec()) {
            Sent::Queued { deliver_at } => self.underlay.next_delivery() == Some(deliver_at),
            Sent::Dropped(_) => false,
        }
    }
}

/// Hands out the underlay's deliveries when due: written from the sender's relay socket to
/// the receiving node's agent.
async fn deliver(shared: Arc<Shared>) {
    let mut due: Vec<(Arc<UdpSocket>, SocketAddr, Vec<u8>)> = Vec::new();
    loop {
        let next = {
            #[allow(clippy::disallowed_methods)] // the relay is an I/O driver: it reads the clock
            let now = Instant::now();
            let mut state = shared.lock();
            while let Some(delivery) = state.underlay.poll(now) {
                let agent = state.nodes.get(&delivery.to).and_then(|n| n.agent);
                match (state.nodes.get(&delivery.from), agent) {
                    (Some(from), Some(agent)) => {
                        due.push((Arc::clone(&from.socket), agent, delivery.datagram));
                    }
                    _ => state.counters.unattached += 1,
                }
            }
            state.underlay.next_delivery()
        };
        let (mut forwarded, mut failed) = (0, 0);
        for (socket, agent, datagram) in due.drain(..) {
            match socket.send_to(&datagram, agent).await {
                Ok(_) => forwarded += 1,
                Err(_) => failed += 1,
            }
        }
        if forwarded + failed > 0 {
            let mut state = shared.lock();
            state.counters.forwarded += forwarded;
            state.counters.send_errors += failed;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}
