//! The tokio driver around the sans-IO [`Node`]: UDP sockets in, the core in one task,
//! datagrams and local packets out. Nothing here decides anything; it moves bytes and reads
//! the clock.
//!
//! One reader task per socket hands datagrams to the core task over a channel; the core task
//! owns the [`Node`], drains whatever is ready before sending (so a burst costs one wake-up),
//! sends with non-blocking `try_send_to` and waits only when the socket is full. The local
//! interface is a pair of channels ([`Interface`]): tests and netlab use them directly, a TUN
//! device is one more pump on the same channels.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use topology::Plane;

use crate::control::Status;
use crate::node::{Node, Output};

/// How often the published status is refreshed.
const STATUS_PERIOD: Duration = Duration::from_millis(100);
/// Datagrams or packets handled per wake-up before outputs are flushed.
const BATCH: usize = 64;
/// Queue depth between the socket readers and the core.
const QUEUE: usize = 4096;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A socket could not be bound.
    #[error("cannot listen on {addr} ({plane} plane): {source}")]
    Bind {
        /// The plane.
        plane: Plane,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The node's side of its local interface: packets it receives from the overlay, and packets
/// to send into it.
#[derive(Debug)]
pub struct Interface {
    /// Packets from the local host into the overlay.
    pub send: mpsc::Sender<(Plane, Vec<u8>)>,
    /// Packets the overlay delivered to this host.
    pub received: mpsc::Receiver<(Plane, Vec<u8>)>,
}

/// A running agent.
#[derive(Debug)]
pub struct Running {
    /// Its local interface.
    pub interface: Interface,
    /// Its status, refreshed every 100 ms.
    pub status: watch::Receiver<Status>,
    /// The addresses it listens on, per plane (useful with port 0).
    pub listening: Vec<(Plane, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops the agent and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

struct Datagram {
    plane: Plane,
    local: SocketAddr,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// Binds the node's sockets and starts it. `bind` overrides a plane's listen address (tests
/// bind port 0 and learn the port from [`Running::listening`]).
pub async fn start(node: Node, bind: &[(Plane, SocketAddr)]) -> Result<Running, RuntimeError> {
    let (datagram_tx, datagram_rx) = mpsc::channel(QUEUE);
    let mut sockets = HashMap::new();
    let mut listening = Vec::new();
    let mut readers = Vec::new();
    for instance in node.planes() {
        let plane = instance.plane();
        let primary = bind
            .iter()
            .find(|(p, _)| *p == plane)
            .map(|(_, a)| *a)
            .unwrap_or(instance.listen());
        let addresses = [(instance.listen(), primary)]
            .into_iter()
            .chain(instance.backup_listen().map(|a| (a, a)));
        for (configured, addr) in addresses {
            let bound = async {
                let socket = UdpSocket::bind(addr).await?;
                let local = socket.local_addr()?;
                Ok::<_, std::io::Error>((Arc::new(socket), local))
            };
            let (socket, local) = bound.await.map_err(|source| RuntimeError::Bind {
                plane,
                addr,
                source,
            })?;
            // The core names sockets by their configured address.
            sockets.insert(configured, Arc::clone(&socket));
            listening.push((plane, local));
            readers.push(tokio::spawn(read_socket(
                plane,
                configured,
                socket,
                datagram_tx.clone(),
            )));
        }
    }
    let (local_tx, local_rx) = mpsc::channel(QUEUE);
    let (delivered_tx, delivered_rx) = mpsc::channel(QUEUE);
    #[allow(clippy::disallowed_methods)] // the driver reads the clock for the core
    let now = Instant::now();
    let (status_tx, status_rx) = watch::channel(node.status(now));
    let (stop_tx, stop_rx) = oneshot::channel();
    let core = Core {
        node,
        sockets,
        delivered: delivered_tx,
        status: status_tx,
    };
    let task = tokio::spawn(async move {
        core.run(datagram_rx, local_rx, stop_rx).await;
        for reader in readers {
            reader.abort();
        }
    });
    Ok(Running {
        interface: Interface {
            send: local_tx,
            received: delivered_rx,
        },
        status: status_rx,
        listening,
        stop: Some(stop_tx),
        task,
    })
}

async fn read_socket(
    plane: Plane,
    local: SocketAddr,
    socket: Arc<UdpSocket>,
    to_core: mpsc::Sender<Datagram>,
) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, from)) => {
                let datagram = Datagram {
                    plane,
                    local,
                    from,
                    bytes: buffer[..len].to_vec(),
                };
                if to_core.send(datagram).await.is_err() {
                    return;
                }
            }
            // ICMP errors for earlier sends surface here on some systems; keep reading.
            Err(err) => tracing::debug!(%plane, %err, "receive error"),
        }
    }
}

struct Core {
    node: Node,
    sockets: HashMap<SocketAddr, Arc<UdpSocket>>,
    delivered: mpsc::Sender<(Plane, Vec<u8>)>,
    status: watch::Sender<crate::control::Status>,
}

impl Core {
    #[allow(clippy::disallowed_methods)] // the driver reads the clock for the core
    async fn run(
        mut self,
        mut datagrams: mpsc::Receiver<Datagram>,
        mut local: mpsc::Receiver<(Plane, Vec<u8>)>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut out = Vec::with_capacity(BATCH * 2);
        let mut next_status = Instant::now();
        loop {
            let deadline = self
                .node
                .next_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = &mut stop => break,
                Some(datagram) = datagrams.recv() => {
                    let now = Instant::now();
                    self.datagram(now, &datagram, &mut out);
                    for _ in 1..BATCH {
                        match datagrams.try_recv() {
                            Ok(datagram) => self.datagram(now, &datagram, &mut out),
                            Err(_) => break,
                        }
                    }
                }
                Some((plane, packet)) = local.recv() => {
                    let now = Instant::now();
                    self.node.handle_local(now, plane, &packet, &mut out);
                    for _ in 1..BATCH {
                        match local.try_recv() {
                            Ok((plane, packet)) => self.node.handle_local(now, plane, &packet, &mut out),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.node.handle_timeout(Instant::now(), &mut out);
                }
            }
            self.flush(&mut out).await;
            let now = Instant::now();
            if now >= next_status {
                next_status = now + STATUS_PERIOD;
                self.status.send_replace(self.node.status(now));
            }
        }
    }

    fn datagram(&mut self, now: Instant, datagram: &Datagram, out: &mut Vec<Output>) {
        self.node.handle_datagram(
            now,
            datagram.plane,
            datagram.local,
            datagram.from,
            &datagram.bytes,
            out,
        );
    }

    async fn flush(&mut self, out: &mut Vec<Output>) {
        for output in out.drain(..) {
            match output {
                Output::Transmit {
                    plane,
                    from,
                    to,
                    datagram,
                } => {
                    let Some(socket) = self.sockets.get(&from) else {
                        tracing::warn!(%plane, %from, "no socket for this local address");
                        continue;
                    };
                    let sent = match socket.try_send_to(&datagram, to) {
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                            socket.send_to(&datagram, to).await.map(|_| ())
                        }
                        other => other.map(|_| ()),
                    };
                    if let Err(err) = sent {
                        tracing::debug!(%plane, %to, %err, "send failed");
                    }
                }
                Output::Deliver { plane, packet } => {
                    if self.delivered.try_send((plane, packet)).is_err() {
                        tracing::debug!(%plane, "local interface full; packet dropped");
                    }
                }
                Output::Event(event) => tracing::info!(?event, "agent event"),
            }
        }
    }
}
