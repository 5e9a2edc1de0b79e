//! One plane's overlay instance: the datapath (decapsulate → filter → route → deliver or
//! re-encapsulate) and the timers (probes, path probes, WireGuard, failover).
//!
//! Every packet that comes out of a tunnel is checked against the peer's allowed prefixes
//! (cryptokey routing), then intercepted if it is a link probe for this node, else filtered
//! and routed. Every packet from the local interface is filtered before it is encrypted. A
//! hub (province, ministry) forwards between its children and its uplink through the same
//! path, so forwarded traffic is filtered at every hop.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use pki::{TrustBundle, WireGuardKey};
use topology::{NodeId, Plane, Zone};

use super::peer::{Peer, check_certificate};
use super::qos::{self, Lane, LinkShaper};
use super::{NodeError, Outputs};
use crate::control::{
    Bundle, DENIED_KEPT, DeniedRecord, PathChoice, PeerHealth, PeerRole, PlaneConfig, PlaneStatus,
};
use crate::filter::{DeniedFlow, Verdict, ZoneFilter};
use crate::model::Model;
use crate::pathprobe::{self, PathHealth, PathProber};
use crate::probe::{parse_probe_packet, probe_packet};
use crate::route::{Hop, RouteTable};

/// WireGuard timers are driven at this period (as boringtun's own device does).
const WIREGUARD_TICK: Duration = Duration::from_millis(250);
/// The handshake rate limiter's window.
const LIMITER_RESET: Duration = Duration::from_secs(1);
/// Handshakes per second before cookies are demanded (boringtun's device default).
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// How long the side that does not open a tunnel waits for the other before it opens it
/// anyway (WireGuard's own handshake retry interval); sooner when the peer evidently holds
/// a session this side does not have.
const OPEN_GRACE: Duration = Duration::from_secs(5);
/// Room for the largest datagram plus WireGuard's overhead.
const BUFFER: usize = 65_535 + 148;

/// One plane's instance.
pub struct PlaneNode {
    plane: Plane,
    listen: SocketAddr,
    backup_listen: Option<SocketAddr>,
    private: StaticSecret,
    public: WireGuardKey,
    limiter: Arc<RateLimiter>,
    /// Indexed by the tunnel index; `None` once a peer is torn down (revoked).
    peers: Vec<Option<Peer>>,
    by_key: HashMap<[u8; 32], usize>,
    routes: RouteTable,
    filter: ZoneFilter,
    paths: PathProber,
    refused: Vec<(NodeId, String)>,
    malformed: u64,
    unroutable: u64,
    next_wireguard_tick: Instant,
    next_limiter_reset: Instant,
    /// The newest denied-flow records for the reports, numbered.
    denied_log: VecDeque<Logged>,
    denied_seq: u64,
    /// Live-audit probes delivered here: the audit, and its flows.
    arrivals: Option<(u64, Vec<u32>)>,
}

/// A denied-flow record as kept: its number, the record, the live audit's flow if a probe.
type Logged = (u64, DeniedFlow, Option<(u64, u32)>);

/// The most audit flows a plane instance remembers as arrived.
const ARRIVALS_KEPT: usize = 1 << 16;

impl PlaneNode {
    pub(super) fn new(
        bundle: &Bundle,
        config: &PlaneConfig,
        key: [u8; 32],
        trust: &TrustBundle,
        model: Arc<Model>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<PlaneNode, NodeError> {
        let plane = config.plane;
        let private = StaticSecret::from(key);
        let public = PublicKey::from(&private);
        let own = own_addresses(&model, bundle.node, plane)?;
        let own_probe = own
            .iter()
            .find(|(zone, _, _)| *zone == Zone::Mgmt)
            .or(own.first())
            .map(|(_, addr, _)| *addr);
        let mut routes = RouteTable::new();
        for (_, _, block) in &own {
            routes.insert(*block, Hop::Local);
        }
        if let Some(block) = subtree_block(&model, bundle.node, plane) {
            routes.insert(block, Hop::Unreachable);
        }
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        let settings = &bundle.probes;
        let mut paths = PathProber::new(key, settings.path_interval(), settings.down_after, now);
        let (mut peers, mut by_key, mut refused) = (Vec::new(), HashMap::new(), Vec::new());
        for peer_config in &config.peers {
            let index = peers.len();
            let probing = own_probe
                .zip(peer_probe_address(&model, peer_config.node, plane))
                .map(|(ours, theirs)| (settings, ours, theirs, now));
            let admitted = Peer::admit(
                peer_config,
                plane,
                index as u32,
                &private,
                &limiter,
                trust,
                wall,
                probing,
                config.listen,
            );
            match admitted {
                Ok(mut peer) => {
                    peer.shaper = LinkShaper::new(&peer_config.qos, &bundle.conference, now, wall);
                    if !opens(WireGuardKey(public.to_bytes()), &peer) {
                        peer.waits_until = Some(now + OPEN_GRACE);
                    }
                    let key = peer_config.public_key;
                    paths.allow_peer(key);
                    if peer.failover.is_some() {
                        for endpoint in [peer_config.endpoint, peer_config.backup]
                            .into_iter()
                            .flatten()
                        {
                            paths.add_path(key, endpoint, now);
                        }
                    }
                    for prefix in &peer_config.allowed {
                        routes.insert(*prefix, Hop::Peer(index));
                    }
                    by_key.insert(key.0, index);
                    peers.push(Some(peer));
                }
                Err(reason) => {
                    tracing::warn!(%plane, peer = %peer_config.node, %reason, "peer refused");
                    refused.push((peer_config.node, reason));
                    peers.push(None);
                }
            }
        }
        Ok(PlaneNode {
            plane,
            listen: config.listen,
            backup_listen: config.backup_listen,
            private,
            public: WireGuardKey(public.to_bytes()),
            limiter,
            peers,
            by_key,
            routes,
            filter: ZoneFilter::new(Arc::clone(&model), plane, &bundle.filter),
            paths,
            refused,
            malformed: 0,
            unroutable: 0,
            next_wireguard_tick: now,
            next_limiter_reset: now + LIMITER_RESET,
            denied_log: VecDeque::new(),
            denied_seq: 0,
            arrivals: None,
        })
    }

    /// The plane.
    pub fn plane(&self) -> Plane {
        self.plane
    }

    /// The underlay address it listens on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The second underlay address, if any.
    pub fn backup_listen(&self) -> Option<SocketAddr> {
        self.backup_listen
    }

    /// This instance's WireGuard public key.
    pub fn public_key(&self) -> WireGuardKey {
        self.public
    }

    /// Whether the peer `node` has a completed WireGuard handshake (cheaper than a status).
    pub fn handshaken(&self, node: NodeId) -> bool {
        self.peers
            .iter()
            .flatten()
            .find(|p| p.config.node == node)
            .is_some_and(|p| p.tunn.time_since_last_handshake().is_some())
    }

    /// Peers refused, with the reason.
    pub fn refused(&self) -> &[(NodeId, String)] {
        &self.refused
    }

    pub(super) fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Outputs,
    ) {
        if pathprobe::is_path_probe(datagram) {
            if let Some((to, reply)) = self.paths.on_datagram(now, from, datagram) {
                out.transmit(self.plane, local, to, &reply);
            }
            return;
        }
        if let Some(index) = data_receiver(datagram) {
            if matches!(self.peers.get(index), Some(Some(_))) {
                self.decapsulate(now, index, local, from, datagram, out);
            } else {
                self.malformed += 1;
            }
            return;
        }
        let index = match Tunn::parse_incoming_packet(datagram) {
            Ok(Packet::HandshakeInit(init)) => {
                let mut cookie = [0u8; 64];
                match self
                    .limiter
                    .verify_packet(Some(from.ip()), datagram, &mut cookie)
                {
                    Ok(_) => {}
                    Err(TunnResult::WriteToNetwork(reply)) => {
                        out.transmit(self.plane, local, from, reply);
                        return;
                    }
                    Err(_) => {
                        self.malformed += 1;
                        return;
                    }
                }
                let public = PublicKey::from(self.public.0);
                match parse_handshake_anon(&self.private, &public, &init) {
                    Ok(half) => self.by_key.get(&half.peer_static_public).copied(),
                    Err(_) => None,
                }
            }
            Ok(Packet::HandshakeResponse(p)) => Some((p.receiver_idx >> 8) as usize),
            Ok(Packet::PacketCookieReply(p)) => Some((p.receiver_idx >> 8) as usize),
            Ok(Packet::PacketData(p)) => Some((p.receiver_idx >> 8) as usize),
            Err(_) => None,
        };
        match index.filter(|&i| matches!(self.peers.get(i), Some(Some(_)))) {
            Some(index) => self.decapsulate(now, index, local, from, datagram, out),
            None => self.malformed += 1,
        }
    }

    /// Decrypts straight into `out`'s spare room: a packet for this node is committed
    /// where it lies, a forwarded one is encrypted again from there.
    fn decapsulate(
        &mut self,
        now: Instant,
        index: usize,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Outputs,
    ) {
        let mut input = datagram;
        while let Some(Some(peer)) = self.peers.get_mut(index) {
            let result = peer
                .tunn
                .decapsulate(Some(from.ip()), input, out.spare(BUFFER));
            input = &[];
            // boringtun writes every result at the start of the buffer it is given.
            let (len, source) = match result {
                TunnResult::Done => break,
                TunnResult::Err(err) => {
                    tracing::debug!(plane = %self.plane, peer = %peer.config.node, ?err, "datagram refused");
                    self.malformed += 1;
                    // Data this side cannot read, with no session of its own: the peer holds
                    // a session this side lost (it was rebuilt). Stop waiting for the peer to
                    // open the tunnel; the next probe does.
                    if peer.tunn.time_since_last_handshake().is_none() {
                        peer.waits_until = None;
                    }
                    break;
                }
                TunnResult::WriteToNetwork(reply) => {
                    let len = reply.len();
                    self.roam(index, local, from);
                    out.commit_transmit(self.plane, local, from, len);
                    // Packets queued while the handshake ran follow (empty input).
                    continue;
                }
                TunnResult::WriteToTunnelV4(packet, source) => (packet.len(), IpAddr::V4(source)),
                TunnResult::WriteToTunnelV6(packet, source) => (packet.len(), IpAddr::V6(source)),
            };
            self.roam(index, local, from);
            self.inbound(now, index, source, len, out);
            break;
        }
    }

    /// A peer without a fixed path answers where it was last heard from (WireGuard roaming);
    /// an uplink's path is chosen by failover instead.
    fn roam(&mut self, index: usize, local: SocketAddr, from: SocketAddr) {
        if let Some(Some(peer)) = self.peers.get_mut(index)
            && peer.failover.is_none()
        {
            peer.endpoint = Some((local, from));
        }
    }

    /// A packet out of peer `index`'s tunnel: the first `len` spare bytes of `out`.
    fn inbound(
        &mut self,
        now: Instant,
        index: usize,
        source: IpAddr,
        len: usize,
        out: &mut Outputs,
    ) {
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        let packet = out.decrypted(len);
        peer.traffic.rx_packets += 1;
        peer.traffic.rx_bytes += len as u64;
        if !peer.allows_source(source) {
            tracing::debug!(plane = %self.plane, peer = %peer.config.node, %source, "source outside the peer's allowed prefixes");
            self.unroutable += 1;
            return;
        }
        if let Some((probe, ours, theirs)) = &mut peer.probe
            && let Some((src, dst, message)) = parse_probe_packet(packet)
            && dst == *ours
            && src == *theirs
        {
            if let Some(reply) = probe.on_message(now, &message) {
                let reply = probe_packet(*ours, *theirs, &reply);
                self.encapsulate(now, index, Cleartext::Probe(&reply), out);
            }
            return;
        }
        let probe = super::audit::probe_of(packet);
        match self.route(now, Some(index), packet) {
            Some(Next::Deliver) => {
                if let Some(probe) = probe {
                    self.arrived(probe);
                }
                out.commit_deliver(self.plane, len);
            }
            Some(Next::Peer(to)) => self.encapsulate(now, to, Cleartext::Decrypted(len), out),
            None => {}
        }
    }

    pub(super) fn handle_local(&mut self, now: Instant, packet: &[u8], out: &mut Outputs) {
        if let Some(Next::Peer(to)) = self.route(now, None, packet) {
            self.encapsulate(now, to, Cleartext::Local(packet), out);
        }
    }

    /// Where a packet that came out of tunnel `came_from` (or from the local interface when
    /// `None`) goes, once routed and filtered; `None` when it is dropped (and counted).
    fn route(&mut self, now: Instant, came_from: Option<usize>, packet: &[u8]) -> Option<Next> {
        let Some(destination) = Tunn::dst_address(packet) else {
            self.malformed += 1;
            return None;
        };
        let next = match self.routes.lookup(destination) {
            Some(Hop::Local) if came_from.is_some() => Next::Deliver,
            Some(Hop::Peer(to))
                if Some(to) != came_from && matches!(self.peers.get(to), Some(Some(_))) =>
            {
                Next::Peer(to)
            }
            _ => {
                self.unroutable += 1;
                return None;
            }
        };
        match self.filter.check(now, packet) {
            Verdict::Allow { .. } => Some(next),
            Verdict::Deny(_) => {
                self.keep_denied(packet);
                None
            }
            Verdict::Malformed => None,
        }
    }

    /// Moves the filter's new denied-flow records into the log the reports carry, the
    /// live audit's flow noted on the record of `packet` when it is a probe.
    fn keep_denied(&mut self, packet: &[u8]) {
        let probe = super::audit::probe_of(packet);
        for record in self.filter.drain_denied() {
            self.denied_seq += 1;
            let audit = probe.filter(|_| Tunn::dst_address(packet) == Some(record.dst));
            self.denied_log.push_back((self.denied_seq, record, audit));
            if self.denied_log.len() > DENIED_KEPT {
                self.denied_log.pop_front();
            }
        }
    }

    /// A live-audit probe was delivered here.
    fn arrived(&mut self, (audit, flow): (u64, u32)) {
        match &mut self.arrivals {
            Some((current, flows)) if *current == audit => {
                if flows.len() < ARRIVALS_KEPT && !flows.contains(&flow) {
                    flows.push(flow);
                }
            }
            Some((current, _)) if *current > audit => {}
            _ => self.arrivals = Some((audit, vec![flow])),
        }
    }

    /// The live-audit probes delivered here: the newest audit's flows.
    pub(super) fn arrivals(&self) -> Option<&(u64, Vec<u32>)> {
        self.arrivals.as_ref()
    }

    /// Encrypts a packet into peer `index`'s tunnel, straight into `out`, and sends it on the
    /// peer's current path — or, while the tunnel has a conference reservation in force,
    /// marks conference media and lets the peer's shaper decide when (see `qos`).
    fn encapsulate(
        &mut self,
        now: Instant,
        index: usize,
        packet: Cleartext<'_>,
        out: &mut Outputs,
    ) {
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        let lane = match &mut peer.shaper {
            Some(shaper) if shaper.active(now) => Some(match packet {
                Cleartext::Probe(_) => (Lane::Control, None),
                Cleartext::Local(packet) => shaper.classify(now, packet),
                Cleartext::Decrypted(len) => shaper.classify(now, out.decrypted(len)),
            }),
            _ => None,
        };
        let marked;
        let packet = match (packet, lane) {
            (Cleartext::Local(packet) | Cleartext::Probe(packet), Some((_, Some(dscp)))) => {
                marked = qos::marked(packet, dscp);
                Cleartext::Local(&marked)
            }
            (Cleartext::Decrypted(len), Some((_, Some(dscp)))) => {
                qos::mark(&mut out.spare(len)[..len], dscp);
                Cleartext::Decrypted(len)
            }
            (packet, _) => packet,
        };
        let (len, sealed) = match packet {
            Cleartext::Local(packet) | Cleartext::Probe(packet) => (
                packet.len(),
                sealed(peer.tunn.encapsulate(packet, out.spare(BUFFER))),
            ),
            Cleartext::Decrypted(len) => {
                let (packet, room) = out.spare_split(len, BUFFER);
                let sealed = sealed(peer.tunn.encapsulate(packet, room));
                if let Ok(sealed) = sealed {
                    out.shift(len, sealed);
                }
                (len, sealed)
            }
        };
        match (sealed, peer.endpoint) {
            (Ok(sealed), Some((local, remote))) => {
                peer.traffic.tx_packets += 1;
                peer.traffic.tx_bytes += len as u64;
                if let (Some(shaper), Some((lane, _))) = (&mut peer.shaper, lane)
                    && !shaper.send_now(now, lane, sealed, remote)
                {
                    shaper.enqueue(now, lane, local, remote, &out.spare(sealed)[..sealed]);
                    return;
                }
                out.commit_transmit(self.plane, local, remote, sealed);
            }
            (Ok(_), None) => self.unroutable += 1,
            (Err(Some(err)), _) => {
                tracing::debug!(plane = %self.plane, peer = %peer.config.node, ?err, "encapsulation failed");
            }
            (Err(None), _) => {}
        }
    }

    /// Puts a new bundle's conference reservations in force on the running tunnels; what
    /// a shaper still queues moves to its successor.
    pub(super) fn update_conferences(
        &mut self,
        config: &PlaneConfig,
        media: &crate::control::ConferenceMedia,
        now: Instant,
        wall: SystemTime,
    ) {
        for peer in self.peers.iter_mut().flatten() {
            let Some(wanted) = config.peers.iter().find(|p| p.node == peer.config.node) else {
                continue;
            };
            peer.config.qos = wanted.qos.clone();
            let mut shaper = LinkShaper::new(&wanted.qos, media, now, wall);
            match (&mut shaper, peer.shaper.take()) {
                (Some(new), Some(old)) => new.inherit(old),
                (None, Some(old)) => shaper = Some(old.draining()),
                _ => {}
            }
            peer.shaper = shaper;
        }
    }

    /// Conference enforcement counters of the tunnel to `node`, if it has reservations.
    pub fn conference_counters(
        &self,
        node: NodeId,
        now: Instant,
    ) -> Option<crate::control::ConferenceCounters> {
        self.peers
            .iter()
            .flatten()
            .find(|p| p.config.node == node)
            .and_then(|p| p.shaper.as_ref())
            .map(|shaper| shaper.counters(now))
    }

    /// Sends what the tunnels' shapers release by `now`.
    fn release_shaped(&mut self, now: Instant, out: &mut Outputs) {
        let plane = self.plane;
        for peer in self.peers.iter_mut().flatten() {
            if let Some(shaper) = &mut peer.shaper {
                shaper.release(now, |local, remote, datagram| {
                    out.transmit(plane, local, remote, datagram);
                });
            }
        }
    }

    pub(super) fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) {
        self.release_shaped(now, out);
        for (to, datagram) in self.paths.poll(now) {
            out.transmit(self.plane, self.listen, to, &datagram);
        }
        for index in 0..self.peers.len() {
            self.probe_peer(now, index, out);
            self.fail_over(now, index, out);
        }
        if now >= self.next_wireguard_tick {
            self.next_wireguard_tick = now + WIREGUARD_TICK;
            self.wireguard_timers(out);
        }
        if now >= self.next_limiter_reset {
            self.next_limiter_reset = now + LIMITER_RESET;
            self.limiter.reset_count();
        }
    }

    fn probe_peer(&mut self, now: Instant, index: usize, out: &mut Outputs) {
        let plane = self.plane;
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        let mut requests = Vec::new();
        if let Some((probe, ours, theirs)) = &mut peer.probe {
            while let Some(message) = probe.poll(now) {
                requests.push(probe_packet(*ours, *theirs, &message));
            }
        }
        let health = peer.health();
        if health != peer.reported && health != PeerHealth::Unknown {
            peer.reported = health;
            tracing::info!(%plane, peer = %peer.config.node, ?health, "peer health");
            out.event(super::Event::PeerHealth {
                plane,
                peer: peer.config.node,
                up: health == PeerHealth::Up,
            });
        }
        // One side opens each tunnel: the child (the uplink's end) and, between lateral
        // peers, the lower key. If both sent their first probe at once, each would answer
        // the other's handshake and wait, as WireGuard's responder must, for the other to
        // send first: a deadlock until the 5 s rekey. So the other side's probes wait for
        // the session, for [`OPEN_GRACE`] at most (missing them until then is the truth: no
        // tunnel yet) — and no longer once the peer sends data this side cannot read: it
        // holds a session this side lost (rebuilt on a new bundle), and would not notice
        // for 15 s.
        if peer.waits_until.is_some_and(|until| now < until)
            && peer.tunn.time_since_last_handshake().is_none()
        {
            return;
        }
        for request in requests {
            self.encapsulate(now, index, Cleartext::Probe(&request), out);
        }
    }

    /// Moves an uplink with a backup to the path the probes say is healthy.
    fn fail_over(&mut self, now: Instant, index: usize, out: &mut Outputs) {
        let plane = self.plane;
        let listen = self.listen;
        let Some(Some(peer)) = self.peers.get_mut(index) else {
            return;
        };
        let (Some(primary), Some(backup)) = (peer.config.endpoint, peer.config.backup) else {
            return;
        };
        let key = peer.config.public_key;
        let overlay = peer.health();
        let underlay = |endpoint| health_of(self.paths.health(&key, endpoint));
        let primary_health = match (peer.path, underlay(primary)) {
            // On the primary, the tunnel's own probes count too: a cut shows in both.
            (PathChoice::Primary, PeerHealth::Up) if overlay == PeerHealth::Down => {
                PeerHealth::Down
            }
            (_, health) => health,
        };
        let backup_health = underlay(backup);
        let Some(failover) = &mut peer.failover else {
            return;
        };
        let choice = failover.update(now, primary_health, Some(backup_health));
        if choice != peer.path {
            peer.path = choice;
            let remote = match choice {
                PathChoice::Primary => primary,
                PathChoice::Backup => backup,
            };
            peer.endpoint = Some((listen, remote));
            tracing::info!(%plane, peer = %peer.config.node, ?choice, "uplink path switched");
            out.event(super::Event::PathSwitch {
                plane,
                peer: peer.config.node,
                backup: choice == PathChoice::Backup,
            });
        }
    }

    fn wireguard_timers(&mut self, out: &mut Outputs) {
        for peer in self.peers.iter_mut().flatten() {
            if let (TunnResult::WriteToNetwork(datagram), Some((local, remote))) =
                (peer.tunn.update_timers(out.spare(BUFFER)), peer.endpoint)
            {
                let len = datagram.len();
                out.commit_transmit(self.plane, local, remote, len);
            }
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let probes = self
            .peers
            .iter()
            .flatten()
            .filter_map(|peer| peer.probe.as_ref().map(|(probe, ..)| probe.next_timeout()));
        let shaped = self
            .peers
            .iter()
            .flatten()
            .filter_map(|peer| peer.shaper.as_ref().and_then(LinkShaper::next_release));
        probes
            .chain(shaped)
            .chain(self.paths.next_timeout())
            .chain([self.next_wireguard_tick, self.next_limiter_reset])
            .min()
    }

    pub(super) fn status(&self, now: Instant) -> PlaneStatus {
        PlaneStatus {
            plane: self.plane,
            listen: self.listen,
            public_key: self.public,
            peers: self.peers.iter().flatten().map(|p| p.status(now)).collect(),
            refused: self.refused.clone(),
            rules: self.filter.rule_counters(),
            default_denied: self.filter.default_denied(),
            denied: self
                .filter
                .denied_counts()
                .into_iter()
                .map(|(reason, packets)| (reason.label().to_owned(), packets))
                .collect(),
            malformed: self.malformed + self.filter.malformed(),
            unroutable: self.unroutable,
            denied_flows: self
                .denied_log
                .iter()
                .map(|(seq, record, audit)| DeniedRecord {
                    seq: *seq,
                    ago_ms: now.saturating_duration_since(record.at).as_millis() as u64,
                    src: record.src,
                    dst: record.dst,
                    proto: record.proto,
                    port: record.dst_port,
                    reason: record.reason.clone(),
                    audit: *audit,
                })
                .collect(),
        }
    }

    /// Re-verifies every managed peer against a new trust bundle; tears down and returns
    /// those that fail (a revoked certificate).
    pub(super) fn recheck_peers(
        &mut self,
        trust: &TrustBundle,
        wall: SystemTime,
    ) -> Vec<(NodeId, String)> {
        let mut dropped = Vec::new();
        for slot in &mut self.peers {
            let Some(peer) = slot else { continue };
            if peer.config.role == PeerRole::Unmanaged {
                continue;
            }
            if let Err(reason) = check_certificate(&peer.config, self.plane, trust, wall) {
                tracing::warn!(plane = %self.plane, peer = %peer.config.node, %reason, "peer torn down");
                self.by_key.remove(&peer.config.public_key.0);
                self.paths.remove_peer(&peer.config.public_key);
                dropped.push((peer.config.node, reason.clone()));
                self.refused.push((peer.config.node, reason));
                *slot = None;
            }
        }
        dropped
    }
}

/// The peer index a transport-data datagram is for (WireGuard message type 4, at least the
/// 32 bytes of header and tag); `None` for anything else, which takes the full parse.
fn data_receiver(datagram: &[u8]) -> Option<usize> {
    let header = datagram.get(..8).filter(|_| datagram.len() >= 32)?;
    if header[..4] != [4, 0, 0, 0] {
        return None;
    }
    let receiver = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    Some((receiver >> 8) as usize)
}

/// Whether the side with key `ours` starts the handshake with `peer` when nothing else
/// does: towards its uplink always, towards a lateral peer when its key is the lower.
fn opens(ours: WireGuardKey, peer: &Peer) -> bool {
    match peer.config.role {
        PeerRole::Uplink => true,
        PeerRole::Child | PeerRole::Unmanaged => false,
        PeerRole::Lateral => ours.0 < peer.config.public_key.0,
    }
}

/// Where a routed packet goes.
enum Next {
    /// To this node's interface.
    Deliver,
    /// Into peer `n`'s tunnel.
    Peer(usize),
}

/// A packet to encrypt: the caller's, or the first `n` spare bytes of the outputs (decrypted
/// there, being forwarded).
enum Cleartext<'a> {
    Local(&'a [u8]),
    /// The agent's own link probe (shaped ahead of everything).
    Probe(&'a [u8]),
    Decrypted(usize),
}

/// The length of what boringtun wrote, or why there is nothing to send (`None`: a packet
/// queued behind a handshake, or nothing due).
fn sealed(
    result: TunnResult<'_>,
) -> Result<usize, Option<boringtun::noise::errors::WireGuardError>> {
    match result {
        TunnResult::WriteToNetwork(datagram) => Ok(datagram.len()),
        TunnResult::Err(err) => Err(Some(err)),
        _ => Err(None),
    }
}

fn health_of(path: PathHealth) -> PeerHealth {
    match path {
        PathHealth::Up => PeerHealth::Up,
        PathHealth::Down => PeerHealth::Down,
        PathHealth::Unknown => PeerHealth::Unknown,
    }
}

/// This node's zone addresses and blocks on the plane: (zone, first host, zone block).
fn own_addresses(
    model: &Model,
    node: NodeId,
    plane: Plane,
) -> Result<Vec<(Zone, IpAddr, ipnet::IpNet)>, NodeError> {
    let ix = model
        .network
        .lookup(&node)
        .ok_or(NodeError::NotOnPlane { node, plane })?;
    let blocks = model.allocation.zones(plane, ix);
    if blocks.is_empty() {
        return Err(NodeError::NotOnPlane { node, plane });
    }
    let addresses = model.allocation.overlay_addresses(plane, ix);
    Ok(blocks
        .into_iter()
        .zip(addresses)
        .map(|((zone, block), (_, addr))| (zone, addr, block))
        .collect())
}

/// Everything routed to the node on the plane: its own block and its children's.
fn subtree_block(model: &Model, node: NodeId, plane: Plane) -> Option<ipnet::IpNet> {
    let ix = model.network.lookup(&node)?;
    model.allocation.node(plane, ix).map(|blocks| blocks.block)
}

/// The overlay address a peer answers link probes on: its mgmt zone's first host.
fn peer_probe_address(model: &Model, node: NodeId, plane: Plane) -> Option<IpAddr> {
    let ix = model.network.lookup(&node)?;
    let addresses = model.allocation.overlay_addresses(plane, ix);
    addresses
        .iter()
        .find(|(zone, _)| *zone == Zone::Mgmt)
        .or(addresses.first())
        .map(|(_, addr)| *addr)
}
