//! The tokio driver around the sans-IO [`Node`]: UDP sockets in, the core in one task,
//! datagrams and local packets out. Nothing here decides anything; it moves bytes and reads
//! the clock.
//!
//! # Batches, not datagrams
//!
//! Over real UDP the cost that bounds a tunnel is one system call per datagram, so datagrams
//! move in batches through quinn-udp's [`UdpSocketState`]:
//!
//! - In: one `recvmmsg` fills up to [`BATCH_SIZE`] slots, and with UDP GRO each slot may
//!   hold up to 64 same-sized datagrams from one sender ([`RecvMeta::stride`]); the runtime
//!   splits them and hands the core one datagram at a time, straight from the slot.
//! - Out: consecutive transmits from one socket to one address with one size (the last may
//!   be shorter) — what a burst of one flow looks like once encrypted — lie back to back in
//!   the core's [`Outputs`] (boringtun encrypts straight into it) and leave from there, with
//!   no copy, in one `sendmsg` with UDP GSO (at most 64 datagrams, 65,000 bytes).
//!   Without GSO in the kernel every datagram is one `sendmsg`, as before.
//! - Socket buffers are raised to 7 MiB, as wireguard-go does (the kernel caps the request
//!   at `net.core.rmem_max`/`wmem_max`), so a burst that outruns the core for a moment waits
//!   in the kernel instead of being dropped.
//!
//! quinn-udp also sets, on every socket: `IP_PMTUDISC_PROBE` (the don't-fragment bit, no
//! local fragmentation: a datagram over the interface MTU fails with `EMSGSIZE` and is
//! dropped and logged — the overlay's MTU has to fit the underlay's, as WireGuard's does),
//! and `IP_PKTINFO`, `IP_RECVTOS` and `SO_TIMESTAMPNS`, which the runtime does not use.
//!
//! # One task
//!
//! The core task owns the [`Node`] and reads the sockets itself; there is no reader task and
//! no channel between socket and core. With batched reads the receive call is a small share
//! of a datagram's cost and the core's crypto is the bulk, while a reader task cost a copy
//! into a fresh `Vec`, a channel send and often a cross-thread wake-up per datagram, for
//! parallelism the core (one task, one `Node`) cannot use. One task also makes fairness
//! explicit: a round takes at most one batch from every socket, at most 64 local packets
//! and any due timer, flushes what the core produced, and yields to the scheduler; the task
//! sleeps only when a round found nothing to do, until a socket is readable, a local packet
//! arrives, the core's next timer or the next status refresh.
//!
//! `cargo bench -p agent --bench udp` measures the whole of it — three agents over
//! loopback — against plain sockets relaying the same datagrams with the same batching.
//!
//! # Errors
//!
//! Nothing from the network stops the runtime. A receive error (an ICMP error surfacing on
//! some systems) is logged and the socket read again. A send that would block waits for the
//! socket to become writable, at most 100 ms, then drops its datagrams; any other send
//! error is logged and its datagrams dropped — UDP's contract, which WireGuard's timers
//! already cover. A GSO batch the kernel refuses is sent again datagram by datagram
//! (quinn-udp stops using GSO on a socket whose kernel refused it).
//!
//! The local interface is a pair of channels ([`Interface`]): tests and netlab use them
//! directly, a TUN device is one more pump on the same channels.

use std::io::{self, ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use topology::Plane;

use crate::control::{Bundle, Status};
use crate::model::Model;
use crate::node::{Node, NodeError, Output, Outputs, Reconfigured};

/// How often the published status is refreshed.
const STATUS_PERIOD: Duration = Duration::from_millis(100);
/// Local packets handled per round before the outputs are flushed.
const LOCAL_BATCH: usize = 64;
/// Queue depth of the local interface, each way.
const QUEUE: usize = 4096;
/// One receive slot: the largest UDP payload, or a whole GRO batch (at most 64 KiB).
pub const SLOT: usize = 65_536;
/// The most bytes one GSO send carries (one UDP datagram's limit, less headers).
pub const GSO_BYTES: usize = 65_000;
/// Socket buffer size asked for, as wireguard-go's.
const SOCKET_BUFFER: usize = 7 << 20;
/// How long a send waits for a full socket before its datagrams are dropped.
const SEND_STALL: Duration = Duration::from_millis(100);

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
    reconfigure: mpsc::Sender<Reconfigure>,
    task: JoinHandle<()>,
}

/// A newer bundle for a running core, and where to say how it went. A driver that is not
/// this runtime (netlab's, which runs many cores over an emulated underlay) receives these
/// from [`control_channel`] and applies them with [`Reconfigure::apply`].
#[derive(Debug)]
pub struct Reconfigure {
    bundle: Box<Bundle>,
    keys: Vec<(Plane, [u8; 32])>,
    model: Arc<Model>,
    done: oneshot::Sender<Result<Reconfigured, NodeError>>,
}

impl Reconfigure {
    /// Applies the bundle to `node` at (`now`, `wall`) and answers the follower.
    pub fn apply(self, node: &mut Node, now: Instant, wall: std::time::SystemTime) {
        let result = node.reconfigure(&self.bundle, &self.keys, self.model, now, wall);
        let _ = self.done.send(result);
    }
}

/// A [`Control`] for a core that some other driver runs: the driver keeps the receiver
/// (applying what arrives) and the status sender (publishing the core's status).
pub fn control_channel(
    status: Status,
) -> (Control, mpsc::Receiver<Reconfigure>, watch::Sender<Status>) {
    let (reconfigure, requests) = mpsc::channel(1);
    let (publish, status) = watch::channel(status);
    (
        Control {
            reconfigure,
            status,
        },
        requests,
        publish,
    )
}

impl Running {
    /// A handle that applies bundles and reads the status, for a task of its own (the
    /// controller follower) while the owner keeps the interface.
    pub fn control(&self) -> Control {
        Control {
            reconfigure: self.reconfigure.clone(),
            status: self.status.clone(),
        }
    }
}

/// What a follower needs of a running agent: apply a bundle, read the status.
#[derive(Debug, Clone)]
pub struct Control {
    reconfigure: mpsc::Sender<Reconfigure>,
    /// The agent's status.
    pub status: watch::Receiver<Status>,
}

impl Control {
    /// Applies a newer bundle to the running core (see [`Node::reconfigure`]); `None` when
    /// the agent has stopped.
    pub async fn reconfigure(
        &self,
        bundle: Bundle,
        keys: Vec<(Plane, [u8; 32])>,
        model: Arc<Model>,
    ) -> Option<Result<Reconfigured, NodeError>> {
        let (done, result) = oneshot::channel();
        let request = Reconfigure {
            bundle: Box::new(bundle),
            keys,
            model,
            done,
        };
        self.reconfigure.send(request).await.ok()?;
        result.await.ok()
    }
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

/// Binds the node's sockets and starts it. `bind` overrides a plane's listen address (tests
/// bind port 0 and learn the port from [`Running::listening`]).
pub async fn start(node: Node, bind: &[(Plane, SocketAddr)]) -> Result<Running, RuntimeError> {
    let mut sockets = Vec::new();
    let mut listening = Vec::new();
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
            let (socket, local) =
                Socket::bind(plane, configured, addr)
                    .await
                    .map_err(|source| RuntimeError::Bind {
                        plane,
                        addr,
                        source,
                    })?;
            sockets.push(socket);
            listening.push((plane, local));
        }
    }
    let (local_tx, local_rx) = mpsc::channel(QUEUE);
    let (delivered_tx, delivered_rx) = mpsc::channel(QUEUE);
    #[allow(clippy::disallowed_methods)] // the driver reads the clock for the core
    let now = Instant::now();
    let (status_tx, status_rx) = watch::channel(node.status(now));
    let (stop_tx, stop_rx) = oneshot::channel();
    let (reconfigure_tx, reconfigure_rx) = mpsc::channel(1);
    let core = Core {
        node,
        sockets,
        delivered: delivered_tx,
        status: status_tx,
        slots: vec![0; SLOT * BATCH_SIZE],
        meta: [RecvMeta::default(); BATCH_SIZE],
    };
    let task = tokio::spawn(core.run(local_rx, reconfigure_rx, stop_rx));
    Ok(Running {
        interface: Interface {
            send: local_tx,
            received: delivered_rx,
        },
        status: status_rx,
        listening,
        stop: Some(stop_tx),
        reconfigure: reconfigure_tx,
        task,
    })
}

/// One underlay socket of a plane, batched: `recvmmsg` with GRO in, GSO sends out. Public so
/// the UDP benchmark's plain relay moves bytes exactly as the agent does.
pub struct Socket {
    plane: Plane,
    /// The address the core names this socket by: its configured listen address.
    configured: SocketAddr,
    io: UdpSocket,
    state: UdpSocketState,
}

impl Socket {
    /// Binds `addr` (named `configured` in logs and by the core) with large buffers.
    pub async fn bind(
        plane: Plane,
        configured: SocketAddr,
        addr: SocketAddr,
    ) -> io::Result<(Socket, SocketAddr)> {
        let io = UdpSocket::bind(addr).await?;
        let state = UdpSocketState::new((&io).into())?;
        // Best effort: the kernel caps the size, and a smaller buffer only costs bursts.
        if let Err(err) = state.set_recv_buffer_size((&io).into(), SOCKET_BUFFER) {
            tracing::debug!(%plane, %addr, %err, "cannot raise the receive buffer");
        }
        if let Err(err) = state.set_send_buffer_size((&io).into(), SOCKET_BUFFER) {
            tracing::debug!(%plane, %addr, %err, "cannot raise the send buffer");
        }
        let local = io.local_addr()?;
        let socket = Socket {
            plane,
            configured,
            io,
            state,
        };
        Ok((socket, local))
    }

    /// One `recvmmsg` into `slots` ([`SLOT`] bytes each); `WouldBlock` when nothing waits.
    pub fn receive(&self, slots: &mut [u8], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let mut chunks = slots.chunks_mut(SLOT);
        let mut buffers: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        self.io.try_io(Interest::READABLE, || {
            self.state.recv((&self.io).into(), &mut buffers, meta)
        })
    }

    /// Sends `contents` to `to`: one datagram, or several `segment`-byte ones (the last may
    /// be shorter) in one GSO send.
    pub async fn send(&self, to: SocketAddr, contents: &[u8], segment: usize) {
        let err = match self.send_once(to, contents, segment).await {
            Ok(()) => return,
            Err(err) => err,
        };
        if contents.len() <= segment || err.kind() == ErrorKind::WouldBlock {
            tracing::debug!(plane = %self.plane, %to, %err, "send failed; datagram dropped");
            return;
        }
        tracing::debug!(plane = %self.plane, %to, %err, "GSO send failed; sending one by one");
        let mut failed = 0;
        for datagram in contents.chunks(segment) {
            if let Err(err) = self.send_once(to, datagram, datagram.len()).await {
                failed += 1;
                if failed == 1 {
                    let plane = self.plane;
                    tracing::debug!(%plane, %to, %err, "send failed; datagram dropped");
                }
            }
        }
    }

    /// Waits until the socket has something to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// How many `size`-byte datagrams one GSO send may carry here.
    pub fn gso_segments(&self, size: usize) -> usize {
        self.state
            .max_gso_segments()
            .min(GSO_BYTES / size.max(1))
            .max(1)
    }

    async fn send_once(&self, to: SocketAddr, contents: &[u8], segment: usize) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        loop {
            let sent = self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &transmit)
            });
            match sent {
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    match tokio::time::timeout(SEND_STALL, self.io.writable()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => return Err(err),
                        Err(_) => return Err(err),
                    }
                }
                other => return other,
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C: how the agent and the controller are asked to stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when any of `sockets` has something to read (or an error to report).
async fn readable(sockets: &[Socket]) {
    std::future::poll_fn(|cx| {
        // Poll every socket, so each one that is not ready registers the waker.
        let mut ready = false;
        for socket in sockets {
            ready |= socket.io.poll_recv_ready(cx).is_ready();
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The datagrams of one receive batch, with their senders: GRO batches are split at their
/// stride.
pub fn datagrams<'a>(
    slots: &'a [u8],
    meta: &'a [RecvMeta],
) -> impl Iterator<Item = (SocketAddr, &'a [u8])> {
    slots.chunks(SLOT).zip(meta).flat_map(|(slot, meta)| {
        let received = &slot[..meta.len.min(SLOT)];
        received
            .chunks(meta.stride.max(1))
            .map(move |datagram| (meta.addr, datagram))
    })
}

struct Core {
    node: Node,
    sockets: Vec<Socket>,
    delivered: mpsc::Sender<(Plane, Vec<u8>)>,
    status: watch::Sender<Status>,
    /// Receive slots, [`BATCH_SIZE`] × [`SLOT`] bytes, shared by every socket.
    slots: Vec<u8>,
    meta: [RecvMeta; BATCH_SIZE],
}

impl Core {
    #[allow(clippy::disallowed_methods)] // the driver reads the clock for the core
    async fn run(
        mut self,
        mut local: mpsc::Receiver<(Plane, Vec<u8>)>,
        mut reconfigure: mpsc::Receiver<Reconfigure>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut out = Outputs::new();
        let mut local_open = true;
        let mut next_status = Instant::now() + STATUS_PERIOD;
        loop {
            // One round: whatever is ready, without waiting.
            if let Ok(request) = reconfigure.try_recv() {
                self.reconfigure(request);
            }
            let now = Instant::now();
            let mut busy = false;
            for ix in 0..self.sockets.len() {
                busy |= self.receive(ix, now, &mut out);
            }
            for _ in 0..LOCAL_BATCH {
                match local.try_recv() {
                    Ok((plane, packet)) => {
                        self.node.handle_local(now, plane, &packet, &mut out);
                        busy = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        local_open = false;
                        break;
                    }
                }
            }
            if self.node.next_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now, &mut out);
            }
            self.flush(&mut out).await;
            let now = Instant::now();
            if now >= next_status {
                next_status = now + STATUS_PERIOD;
                self.status.send_replace(self.node.status(now));
            }
            // A dropped `Running` stops the agent too.
            if !matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                break;
            }
            if busy {
                // Let the other tasks and the I/O driver run; then the next round.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self
                .node
                .next_timeout()
                .map_or(next_status, |t| t.min(next_status));
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(request) = reconfigure.recv() => self.reconfigure(request),
                () = readable(&self.sockets) => {}
                packet = local.recv(), if local_open => match packet {
                    Some((plane, packet)) => {
                        self.node.handle_local(Instant::now(), plane, &packet, &mut out);
                    }
                    None => local_open = false,
                },
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    #[allow(clippy::disallowed_methods)] // the driver reads the clocks for the core
    fn reconfigure(&mut self, request: Reconfigure) {
        request.apply(&mut self.node, Instant::now(), std::time::SystemTime::now());
        self.status.send_replace(self.node.status(Instant::now()));
    }

    /// One batch from socket `ix` into the core; false when it had nothing.
    fn receive(&mut self, ix: usize, now: Instant, out: &mut Outputs) -> bool {
        let Core {
            node,
            sockets,
            slots,
            meta,
            ..
        } = self;
        let socket = &sockets[ix];
        match socket.receive(slots, meta) {
            Ok(count) => {
                for (from, datagram) in datagrams(slots, &meta[..count]) {
                    let (plane, local) = (socket.plane, socket.configured);
                    node.handle_datagram(now, plane, local, from, datagram, out);
                }
                count > 0
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => false,
            // ICMP errors for earlier sends surface here on some systems; keep reading.
            Err(err) => {
                let (plane, local) = (socket.plane, socket.configured);
                tracing::debug!(%plane, %local, %err, "receive error");
                true
            }
        }
    }

    /// Sends every datagram (runs to one destination as one GSO batch, straight from the
    /// core's output buffer), hands packets to the interface, logs events.
    async fn flush(&mut self, out: &mut Outputs) {
        let sockets = &self.sockets;
        let most = |from: SocketAddr, size: usize| {
            sockets
                .iter()
                .find(|s| s.configured == from)
                .map_or(1, |s| s.gso_segments(size))
        };
        for run in out.runs(most) {
            match run {
                Ok(run) => {
                    let Some(socket) = sockets.iter().find(|s| s.configured == run.from) else {
                        tracing::warn!(plane = %run.plane, from = %run.from, "no socket for this local address");
                        continue;
                    };
                    socket.send(run.to, run.datagrams, run.segment).await;
                }
                Err(Output::Deliver { plane, packet }) => {
                    if self.delivered.try_send((plane, packet.to_vec())).is_err() {
                        tracing::debug!(%plane, "local interface full; packet dropped");
                    }
                }
                Err(Output::Event(event)) => tracing::info!(?event, "agent event"),
                Err(Output::Transmit { .. }) => {} // always part of a run
            }
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn socket() -> (Socket, SocketAddr) {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Socket::bind(Plane::Business, any, any).await.unwrap()
    }

    /// Receives until `count` datagrams have arrived.
    async fn receive(socket: &Socket, count: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut slots = vec![0; SLOT * BATCH_SIZE];
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let mut got = Vec::new();
        while got.len() < count {
            socket.io.readable().await.unwrap();
            match socket.receive(&mut slots, &mut meta) {
                Ok(n) => got.extend(datagrams(&slots, &meta[..n]).map(|(a, d)| (a, d.to_vec()))),
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => panic!("{err}"),
            }
        }
        got
    }

    #[tokio::test]
    async fn a_batch_arrives_as_the_datagrams_it_was_made_of_in_order() {
        let ((sender, from), (receiver, to)) = (socket().await, socket().await);
        // Ten full segments and a shorter last one: one GSO send where the kernel has GSO.
        let sent: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; 1200])
            .chain([vec![10; 300]])
            .collect();
        sender.send(to, &sent.concat(), 1200).await;
        // And datagrams of other sizes after it, one send each.
        for size in [1, 64, 1500, 9000] {
            sender.send(to, &vec![0xee; size], size).await;
        }
        let got = receive(&receiver, sent.len() + 4).await;
        assert!(got.iter().all(|(a, _)| *a == from));
        let sizes: Vec<usize> = got.iter().map(|(_, d)| d.len()).collect();
        assert_eq!(sizes[sent.len()..], [1, 64, 1500, 9000]);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(_, d)| d).take(sent.len()).collect();
        assert_eq!(got, sent);
    }
}
