//! The overlay over real UDP against plain sockets moving the same bytes, in one run.
//!
//! Measured: three agents — city dc:1401 → province dc:14 (the hub) → ministry — on the
//! tokio runtime ([`agent::runtime`]) over 127.0.0.1. A sender pushes the ACK-flagged
//! packets of an established, allowed flow (city exchange → ministry exchange tcp/1414,
//! opened with a SYN and answered with a SYN+ACK first: the zone filter is stateful) into the
//! city's interface as fast as it takes them, for the budget; the ministry's interface counts
//! what arrives.
//!
//! Reference, measured in the same run: the same number of datagrams, of the size the
//! overlay puts on the wire, through a relay of plain UDP sockets of the same shape (channel
//! → city → UDP → province → UDP → ministry → channel), batched the way the runtime batches
//! (recvmmsg + GRO in, GSO out, through quinn-udp), with no crypto, no filter and no routing.
//! The ratio is what the overlay costs on top of moving the bytes.
//!
//! Comparison, when `boringtun-cli` is on the PATH and we are root: the same packets, offered
//! at the rate the overlay's city took them, through three boringtun-cli instances chained
//! the same way in network namespaces this bench creates and removes ([`wireguard`]).
//!
//! Each cell is the median of five runs (one with `--quick`): two cores shared by three
//! agents, a sender and a counter make single runs noisy.
//!
//! `cargo bench -p agent --bench udp` (`-- --quick` for a short run, `--size N` for one
//! packet size). The agents and the relay stay on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark reads the clock

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "udp/wireguard.rs"]
mod wireguard;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use agent::control::ProbeSettings;
use agent::node::Node;
use agent::runtime::{self, GSO_BYTES, Running, SLOT};
use common::{CITY, Lab, MINISTRY, PLANE, PROVINCE, packet, pad};
use quinn_udp::{BATCH_SIZE, RecvMeta};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use topology::{Plane, Zone};

/// How long the pipeline may stay quiet after the sender stops before counting ends.
const IDLE: Duration = Duration::from_millis(300);
/// Channel depth of the relay's two ends, as the runtime's interface.
const QUEUE: usize = 4096;
/// Local packets per wake-up of the relay's first hop, as the runtime.
const LOCAL_BATCH: usize = 64;

fn main() {
    if wireguard::helper() {
        return;
    }
    let quick =
        std::env::args().any(|a| a == "--quick") || !std::env::args().any(|a| a == "--bench");
    let (budget, rounds) = if quick {
        (Duration::from_millis(100), 1)
    } else {
        (Duration::from_secs(2), 5)
    };
    let only: Option<usize> = std::env::args()
        .skip_while(|a| a != "--size")
        .nth(1)
        .and_then(|s| s.parse().ok());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = Lab::new(48_000);
    println!(
        "udp: city {CITY} → province {PROVINCE} → ministry over 127.0.0.1, {PLANE} plane, \
         {} tokio workers; {budget:?} of sending per run, median of {rounds}\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let unavailable = wireguard::unavailable();
    let chain = match &unavailable {
        None => match wireguard::Chain::build() {
            Ok(chain) => Some(chain),
            Err(err) => {
                println!("boringtun-cli: cannot build its namespaces ({err}); skipped");
                None
            }
        },
        Some(why) => {
            println!("boringtun-cli: {why} (skipped)");
            None
        }
    };
    println!(
        "{:>6}  {:<22}  {:>9}  {:>12}  {:>7}  {:>6}  {:>8}",
        "packet", "path", "sent", "delivered/s", "Gbit/s", "loss", "vs relay"
    );
    for size in [1420usize, 64]
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
    {
        let (mut overlays, mut relays, mut tunnels) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let overlay = tokio.block_on(overlay(&lab, size, budget));
            relays.push(tokio.block_on(relay(wire_size(size), size, overlay.sent)));
            if let Some(chain) = &chain {
                match chain.carry(size, overlay.sent, overlay.offered) {
                    Ok(run) => tunnels.push(run),
                    Err(err) => println!("boringtun-cli: {err}"),
                }
            }
            overlays.push(overlay);
        }
        let (overlay, relay) = (median(overlays), median(relays));
        let row = |path: &str, run: &Run| {
            println!(
                "{size:>6}  {path:<22}  {:>9}  {:>12.0}  {:>7.2}  {:>5.1}%  {:>8.3}",
                run.sent,
                run.rate(),
                run.gbits(size),
                run.loss() * 100.0,
                run.rate() / relay.rate(),
            );
        };
        row("relay (plain UDP)", &relay);
        row("overlay (jinbao-agent)", &overlay);
        if !tunnels.is_empty() {
            row("boringtun-cli (netns)", &median(tunnels));
        }
    }
}

/// The run with the median delivery rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    runs.swap_remove(runs.len() / 2)
}

/// What one cell moved.
struct Run {
    sent: u64,
    /// How fast the sender got its packets in, packets/s.
    offered: f64,
    delivered: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    fn gbits(&self, size: usize) -> f64 {
        self.rate() * size as f64 * 8.0 / 1e9
    }

    fn loss(&self) -> f64 {
        1.0 - self.delivered as f64 / self.sent.max(1) as f64
    }
}

/// The overlay's datagram for a `size`-byte packet: WireGuard's 16-byte header, the packet
/// padded to 16 bytes, the 16-byte tag.
fn wire_size(size: usize) -> usize {
    16 + size.div_ceil(16) * 16 + 16
}

async fn start(lab: &Lab, name: &str) -> Running {
    let probes = ProbeSettings {
        interval_ms: 3_600_000,
        ..ProbeSettings::default()
    };
    let node = Node::new(
        &lab.bundle(name, probes, false),
        &lab.keys(name),
        lab.model.clone(),
        Instant::now(),
        SystemTime::now(),
    )
    .unwrap();
    runtime::start(node, &[]).await.unwrap()
}

/// Three agents, a flow opened through them, then data for `budget`.
async fn overlay(lab: &Lab, size: usize, budget: Duration) -> Run {
    let mut ministry = start(lab, MINISTRY).await;
    let province = start(lab, PROVINCE).await;
    let mut city = start(lab, CITY).await;
    let (city_exchange, ministry_exchange) = (
        lab.address(CITY, Zone::Exchange),
        lab.address(MINISTRY, Zone::Exchange),
    );
    // The SYN brings up both WireGuard sessions; the SYN+ACK establishes the flow at every
    // filter on the way.
    let syn = packet(city_exchange, ministry_exchange, 6, 1414, true);
    carry(&city, &mut ministry, &syn, "the SYN").await;
    let mut syn_ack = packet(ministry_exchange, city_exchange, 6, 40_000, false);
    syn_ack[20..22].copy_from_slice(&1414u16.to_be_bytes());
    syn_ack[33] = 0x12;
    carry(&ministry, &mut city, &syn_ack, "the SYN+ACK").await;

    let mut data = packet(city_exchange, ministry_exchange, 6, 1414, false);
    pad(&mut data, size);
    let send = city.interface.send.clone();
    let run = measure(
        send,
        &mut ministry.interface.received,
        data,
        Pushing::For(budget),
    )
    .await;
    assert!(
        run.delivered > 0,
        "the ministry received nothing: the overlay is broken"
    );
    for running in [ministry, province, city] {
        running.stop().await;
    }
    run
}

/// Sends `packet` from `from`'s interface until it arrives at `to`'s.
async fn carry(from: &Running, to: &mut Running, packet: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        from.interface
            .send
            .send((PLANE, packet.to_vec()))
            .await
            .unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(300), to.interface.received.recv());
        if let Ok(Some((_, arrived))) = wait.await
            && arrived == packet
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never arrived");
    }
}

/// How long the sender pushes.
#[derive(Clone, Copy)]
enum Pushing {
    For(Duration),
    Count(u64),
}

/// Pushes copies of `packet` into `send` and counts what `received` delivers until the
/// pipeline is quiet.
async fn measure(
    send: mpsc::Sender<(Plane, Vec<u8>)>,
    received: &mut mpsc::Receiver<(Plane, Vec<u8>)>,
    packet: Vec<u8>,
    pushing: Pushing,
) -> Run {
    let start = Instant::now();
    let sender: JoinHandle<(u64, Instant)> = tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let more = match pushing {
                Pushing::For(budget) => sent % 256 != 0 || start.elapsed() < budget,
                Pushing::Count(count) => sent < count,
            };
            if !more || send.send((PLANE, packet.clone())).await.is_err() {
                return (sent, Instant::now());
            }
            sent += 1;
        }
    });
    let mut batch = Vec::with_capacity(1024);
    let (mut delivered, mut last) = (0u64, start);
    loop {
        match tokio::time::timeout(IDLE, received.recv_many(&mut batch, 1024)).await {
            Ok(0) => break,
            Ok(n) => {
                delivered += n as u64;
                last = Instant::now();
                batch.clear();
            }
            Err(_) if sender.is_finished() => break,
            Err(_) => {}
        }
    }
    let (sent, stopped) = sender.await.unwrap();
    Run {
        sent,
        offered: sent as f64 / (stopped - start).as_secs_f64(),
        delivered,
        elapsed: last - start,
    }
}

/// The plain relay: `count` packets of `size` bytes go out as `datagram`-byte datagrams.
async fn relay(datagram: usize, size: usize, count: u64) -> Run {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (city, province, ministry) = (
        Hop::bind(loopback).await,
        Hop::bind(loopback).await,
        Hop::bind(loopback).await,
    );
    let (to_province, to_ministry) = (province.local, ministry.local);
    let (send, local) = mpsc::channel(QUEUE);
    let (deliver, mut received) = mpsc::channel(QUEUE);
    let tasks = [
        tokio::spawn(city.first(local, to_province, datagram)),
        tokio::spawn(province.middle(to_ministry)),
        tokio::spawn(ministry.last(deliver)),
    ];
    let run = measure(send, &mut received, vec![0x45; size], Pushing::Count(count)).await;
    for task in tasks {
        task.abort();
    }
    run
}

/// One hop of the plain relay: the agent's own batched socket, with no core behind it.
struct Hop {
    socket: runtime::Socket,
    local: SocketAddr,
}

impl Hop {
    async fn bind(addr: SocketAddr) -> Hop {
        let (socket, local) = runtime::Socket::bind(PLANE, addr, addr).await.unwrap();
        Hop { socket, local }
    }

    /// Local packets in, datagrams out: each packet grows to `datagram` bytes, same-sized
    /// ones go out together in one GSO send.
    async fn first(
        self,
        mut local: mpsc::Receiver<(Plane, Vec<u8>)>,
        to: SocketAddr,
        datagram: usize,
    ) {
        let mut packets = Vec::with_capacity(LOCAL_BATCH);
        let mut gso = Vec::with_capacity(GSO_BYTES);
        let per_send = self.socket.gso_segments(datagram);
        while local.recv_many(&mut packets, LOCAL_BATCH).await > 0 {
            for chunk in packets.chunks(per_send) {
                gso.clear();
                for (_, packet) in chunk {
                    gso.extend_from_slice(packet);
                    gso.resize(gso.len() + datagram - packet.len(), 0);
                }
                self.socket.send(to, &gso, datagram).await;
            }
            packets.clear();
        }
    }

    /// Datagrams in, the same datagrams out: a GRO batch leaves as one GSO send.
    async fn middle(self, to: SocketAddr) {
        let mut buffer = vec![0u8; SLOT * BATCH_SIZE];
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        loop {
            let n = self.receive(&mut buffer, &mut meta).await;
            for (slot, meta) in buffer.chunks(SLOT).zip(&meta[..n]) {
                self.socket.send(to, &slot[..meta.len], meta.stride).await;
            }
        }
    }

    /// Datagrams in, one packet per datagram delivered.
    async fn last(self, deliver: mpsc::Sender<(Plane, Vec<u8>)>) {
        let mut buffer = vec![0u8; SLOT * BATCH_SIZE];
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        loop {
            let n = self.receive(&mut buffer, &mut meta).await;
            for (_, datagram) in runtime::datagrams(&buffer, &meta[..n]) {
                let _ = deliver.try_send((PLANE, datagram.to_vec()));
            }
        }
    }

    async fn receive(&self, buffer: &mut [u8], meta: &mut [RecvMeta]) -> usize {
        loop {
            self.socket.readable().await.unwrap();
            match self.socket.receive(buffer, meta) {
                Ok(n) => return n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("relay receive: {err}"),
            }
        }
    }
}
