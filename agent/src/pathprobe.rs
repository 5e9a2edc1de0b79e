//! Underlay path probes: is this peer reachable over this endpoint, right now?
//!
//! A link may have a primary and a backup underlay path. WireGuard only ever talks to one
//! endpoint per peer, so it cannot say whether the backup works until traffic is already on
//! it. A [`PathProber`] sends small BFD-like probes over the same UDP socket as WireGuard, but
//! outside the tunnel, to every configured endpoint of a peer, so failover only moves traffic
//! to a path that answered recently: a dead backup is never chosen.
//!
//! The core is sans-IO in the shape of quinn-proto: the caller passes `now`, sends what
//! [`PathProber::poll`] returns, feeds received datagrams to [`PathProber::on_datagram`], and
//! sleeps until [`PathProber::next_timeout`]. Datagrams start with [`MAGIC`] (`JPP1`), which
//! no WireGuard message can start with; [`is_path_probe`] is the demultiplexer's test.
//!
//! # Authentication
//!
//! Probes are authenticated with Noise [`NOISE_PROTOCOL`] (`Noise_KK_25519_ChaChaPoly_BLAKE2s`)
//! and the prologue [`PROLOGUE`], keyed by the nodes' static X25519 keys: the same 32-byte
//! keys the nodes use for WireGuard on this plane. The different protocol name and prologue
//! keep every hash and key apart from WireGuard's `Noise_IKpsk2`. Only keys given to
//! [`PathProber::allow_peer`] are answered; anything else gets no reply and is counted
//! ([`PathProber::rejected`], by reason in [`PathProber::rejected_for`]). A KK init carries no
//! static key, so it names the pair with an 8-byte hint, BLAKE2s over both public keys: a
//! responder finds the peer without trying keys and the static keys never cross the wire.
//!
//! # Design: one handshake per path, then stateless transport messages
//!
//! The alternative, a full KK handshake per probe, needs no state but costs 5 X25519
//! operations on each side per probe (ephemeral key, `es`, `ss`, `ee`, `se`). Measured with
//! `cargo test -p agent --release --test pathprobe -- --nocapture cost` on a 2-core EPYC VM,
//! a handshake exchange costs 0.62–0.78 ms of CPU for both sides together (10–11 X25519
//! operations of ~65 µs each), a transport probe exchange 4–6 µs: 130–170 times less.
//! Probing 70 paths (35 peers, primary and backup) every 100 ms would take half a core with a
//! handshake per probe, and about 4 ms of CPU per second this way:
//!
//! 1. The first probe on a path is a KK handshake (init, response); an authentic response
//!    counts as the answer. Both sides split into a [`snow::StatelessTransportState`].
//! 2. Later probes are transport messages with an explicit nonce (0, 1, 2, … per session).
//!    The responder answers each nonce once (a sliding window of 64, so reordering is fine)
//!    with a reply sealed under the same nonce in its own direction.
//! 3. After two unanswered probes in a row, and at least every [`REKEY_AFTER`], the next
//!    probe is a new handshake. A responder that restarted (and lost its sessions) therefore
//!    costs two missed probes — fewer than the default three that declare a path down —
//!    while a reply that is only late (a busy peer) costs nothing: found in the national
//!    lab, where re-handshaking after every late reply kept ~800 paths in a handshake storm
//!    that never ended. Responders forget sessions after [`REJECT_AFTER`] and keep at most
//!    [`MAX_SESSIONS_PER_PEER`] per peer.
//!
//! # Replays
//!
//! A reply counts only if it authenticates under the path's current session and carries the
//! nonce of the probe now outstanding; a handshake response counts only if it completes the
//! handshake now outstanding, whose ephemeral key is fresh. So a recorded reply can never make
//! a dead path look alive. Responders refuse probe nonces they have answered and inits whose
//! ephemeral key they saw among the peer's last [`RECENT_INITS`]. Header fields are only
//! lookup keys, repeated inside the authenticated part, or the AEAD nonce, so a changed byte
//! anywhere makes a datagram unknown or unauthentic, never misread.
//!
//! What this does not defend: there is no handshake rate limit. Anyone who has seen an init
//! can send garbage under its pair hint, costing the responder 2 X25519 operations each, and an
//! init replayed after it left that list costs a full responder handshake and a session slot
//! (evicting that peer's least recently used session). Nobody can be made to look alive by it. Replies are
//! accepted from any source address: a multihomed peer may answer from another address, and
//! the session binds the answer to the path.
//!
//! # Health
//!
//! A path is [`PathHealth::Unknown`] until it is first answered or declared down. It is
//! [`PathHealth::Up`] after an authenticated answer, and [`PathHealth::Down`] after
//! `down_after` consecutive unanswered probes; a probe is unanswered when the next one is
//! due, one interval after it was sent. A late answer is refused. [`PathProber::rtt`] is the
//! last round trip measured; for a handshake it includes the responder's DH work (5 X25519,
//! about 0.3 ms here).

mod initiator;
mod responder;
mod window;
mod wire;

#[cfg(test)]
mod tests;

pub use wire::{MAGIC, is_path_probe};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pki::WireGuardKey;
use snow::params::HashChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::Random;
use snow::{Builder, StatelessTransportState};

use initiator::{Awaiting, Expect, Path};
use responder::Allowed;
use wire::{HINT_LEN, KEY_LEN, Kind, Message};

/// The Noise protocol of path probes: KK, because both ends know each other's static key.
pub const NOISE_PROTOCOL: &str = "Noise_KK_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue of path probes, binding every handshake to this protocol and version.
pub const PROLOGUE: &[u8] = b"jinbao path probe v1";
/// An initiator starts a new handshake once its session is this old.
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// A responder refuses, then forgets, sessions this old.
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// A responder keeps at most this many sessions per peer, evicting the least recently used.
pub const MAX_SESSIONS_PER_PEER: usize = 8;
/// A responder remembers the ephemeral keys of this many recent inits per peer.
pub const RECENT_INITS: usize = 64;
/// Intervals shorter than this are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

const HINT_LABEL: &[u8] = b"jinbao path probe v1 pair hint";
/// Room for any decrypted payload (the longest is 8 bytes plus a tag).
const PAYLOAD_BUF: usize = 64;

/// One underlay path: a peer (by its static key) at one of its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathId {
    /// The peer's static X25519 (WireGuard) public key.
    pub peer: WireGuardKey,
    /// The peer's underlay address on this path.
    pub endpoint: SocketAddr,
}

/// What the prober knows about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathHealth {
    /// Not probed yet, or not yet answered nor down; not to be chosen for failover.
    #[default]
    Unknown,
    /// The last probe, or one of fewer than `down_after` since, was answered.
    Up,
    /// `down_after` consecutive probes went unanswered.
    Down,
}

/// Why a datagram was refused; each reason is also a metric label ([`Rejection::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// It does not start with [`MAGIC`].
    #[error("not a path probe (bad magic)")]
    BadMagic,
    /// Unknown kind or wrong length for its kind.
    #[error("malformed path probe")]
    Malformed,
    /// An init naming a key that is not allowed to probe this node.
    #[error("init from a peer that is not allowed to probe")]
    UnknownPeer,
    /// It names a session or handshake this node does not hold (or no longer holds).
    #[error("unknown or superseded session")]
    UnknownSession,
    /// It failed authentication, or its authenticated content contradicts its header.
    #[error("authentication failed")]
    Auth,
    /// Authentic, but already seen, or answering a probe that is no longer outstanding.
    #[error("replayed or late")]
    Replay,
    /// A probe on a session older than [`REJECT_AFTER`].
    #[error("session expired")]
    Expired,
    /// This node failed to build its own answer (a local crypto or RNG error).
    #[error("local crypto failure")]
    Local,
}

impl Rejection {
    /// Every reason, in a fixed order.
    pub const ALL: [Rejection; 8] = [
        Rejection::BadMagic,
        Rejection::Malformed,
        Rejection::UnknownPeer,
        Rejection::UnknownSession,
        Rejection::Auth,
        Rejection::Replay,
        Rejection::Expired,
        Rejection::Local,
    ];

    /// A short snake_case name, for metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::BadMagic => "bad_magic",
            Rejection::Malformed => "malformed",
            Rejection::UnknownPeer => "unknown_peer",
            Rejection::UnknownSession => "unknown_session",
            Rejection::Auth => "auth",
            Rejection::Replay => "replay",
            Rejection::Expired => "expired",
            Rejection::Local => "local",
        }
    }

    fn index(self) -> usize {
        Rejection::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// Probes peers' endpoints (initiator side) and answers allowed peers (responder side).
pub struct PathProber {
    local_private: [u8; KEY_LEN],
    local_public: [u8; KEY_LEN],
    interval: Duration,
    down_after: u32,
    /// Initiator side, ordered so `poll` output is deterministic.
    paths: BTreeMap<PathKey, Path>,
    /// Initiator ids (of pending handshakes and sessions) to their path.
    initiator_ids: HashMap<u32, PathKey>,
    /// Responder side: allowed peers by the pair hint their inits carry.
    allowed: HashMap<[u8; HINT_LEN], Allowed>,
    /// Responder sessions by the id this node gave them.
    sessions: HashMap<u32, responder::ResponderSession>,
    next_expiry: Instant,
    rng: Option<Box<dyn Random>>,
    fallback_id: u32,
    rejected: [u64; Rejection::ALL.len()],
}

/// A path as the initiator's table orders it: peer key, then endpoint.
type PathKey = ([u8; KEY_LEN], SocketAddr);

impl PathProber {
    /// A prober with this node's static X25519 private key (its WireGuard key on the plane),
    /// probing every `interval` (at least [`MIN_INTERVAL`]) and declaring a path down after
    /// `down_after` (at least 1) consecutive unanswered probes.
    pub fn new(
        local_private: [u8; 32],
        interval: Duration,
        down_after: u32,
        now: Instant,
    ) -> PathProber {
        let secret = x25519_dalek::StaticSecret::from(local_private);
        let local_public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        let mut rng = RingResolver.resolve_rng();
        let mut seed = [0; 4];
        let seeded = rng.as_mut().map(|rng| rng.try_fill_bytes(&mut seed));
        if !matches!(seeded, Some(Ok(()))) {
            tracing::warn!("path probe: no system RNG for session ids; counting instead");
        }
        PathProber {
            local_private,
            local_public,
            interval: interval.max(MIN_INTERVAL),
            down_after: down_after.max(1),
            paths: BTreeMap::new(),
            initiator_ids: HashMap::new(),
            allowed: HashMap::new(),
            sessions: HashMap::new(),
            next_expiry: now + REJECT_AFTER,
            rng,
            fallback_id: u32::from_le_bytes(seed),
            rejected: [0; Rejection::ALL.len()],
        }
    }

    /// Probes `peer_public` at `endpoint` from now on (the first probe is due at `now`).
    /// Adding a path that is already probed changes nothing.
    pub fn add_path(&mut self, peer_public: WireGuardKey, endpoint: SocketAddr, now: Instant) {
        self.paths
            .entry((peer_public.0, endpoint))
            .or_insert_with(|| Path {
                health: PathHealth::Unknown,
                rtt: None,
                misses: 0,
                next_send: now,
                session: None,
                awaiting: None,
            });
    }

    /// Answers probes from `peer_public` from now on.
    pub fn allow_peer(&mut self, peer_public: WireGuardKey) {
        let hint = pair_hint(&peer_public.0, &self.local_public);
        let entry = self.allowed.entry(hint).or_insert_with(|| Allowed {
            peer: peer_public,
            sessions: Vec::new(),
            recent: VecDeque::new(),
        });
        if entry.peer != peer_public {
            tracing::warn!(peer = %peer_public, other = %entry.peer, "path probe hint collision");
        }
    }

    /// Stops probing every path of `peer_public` and answering it; forgets its sessions.
    pub fn remove_peer(&mut self, peer_public: &WireGuardKey) {
        self.paths.retain(|key, path| {
            if key.0 != peer_public.0 {
                return true;
            }
            if let Some(session) = &path.session {
                self.initiator_ids.remove(&session.id);
            }
            if let Some(Awaiting {
                expect: Expect::Response { id, .. },
                ..
            }) = &path.awaiting
            {
                self.initiator_ids.remove(id);
            }
            false
        });
        let hint = pair_hint(&peer_public.0, &self.local_public);
        if let Some(allowed) = self.allowed.remove(&hint) {
            for id in allowed.sessions {
                self.sessions.remove(&id);
            }
        }
    }

    /// The datagrams due at `now` (probes and handshake inits), with their destinations.
    /// Also settles the probes that went unanswered for an interval.
    pub fn poll(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        if now >= self.next_expiry {
            self.expire_sessions(now);
        }
        let due: Vec<PathKey> = self
            .paths
            .iter()
            .filter(|(_, path)| path.next_send <= now)
            .map(|(key, _)| *key)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            self.close_round(&key, now);
            if let Some(datagram) = self.send_probe(&key, now) {
                out.push((key.1, datagram));
            }
        }
        out
    }

    /// When [`Self::poll`] next has something to do: a probe due, or responder sessions to
    /// forget. `None` when there is neither.
    pub fn next_timeout(&self) -> Option<Instant> {
        let expiry = (!self.sessions.is_empty()).then_some(self.next_expiry);
        self.paths
            .values()
            .map(|path| path.next_send)
            .chain(expiry)
            .min()
    }

    /// Handles a datagram that [`is_path_probe`]; returns the answer to send, if any.
    /// Anything refused returns `None` and is counted in [`Self::rejected`].
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let outcome = match wire::parse(datagram) {
            Ok(Message::Init { hint, noise }) => self.on_init(now, hint, noise).map(Some),
            Ok(Message::Response { receiver, noise }) => {
                self.on_response(now, receiver, noise).map(|()| None)
            }
            Ok(Message::Probe {
                receiver,
                nonce,
                sealed,
            }) => self.on_probe(now, receiver, nonce, sealed).map(Some),
            Ok(Message::Reply {
                receiver,
                nonce,
                sealed,
            }) => self.on_reply(now, receiver, nonce, sealed).map(|()| None),
            Err(rejection) => Err(rejection),
        };
        match outcome {
            Ok(answer) => answer.map(|datagram| (from, datagram)),
            Err(rejection) => {
                self.rejected[rejection.index()] += 1;
                tracing::debug!(%from, %rejection, "path probe refused");
                None
            }
        }
    }

    /// The health of `peer` at `endpoint`; [`PathHealth::Unknown`] if that path is not probed.
    pub fn health(&self, peer: &WireGuardKey, endpoint: SocketAddr) -> PathHealth {
        self.paths
            .get(&(peer.0, endpoint))
            .map_or(PathHealth::Unknown, |path| path.health)
    }

    /// The last round trip measured on `peer` at `endpoint`.
    pub fn rtt(&self, peer: &WireGuardKey, endpoint: SocketAddr) -> Option<Duration> {
        self.paths
            .get(&(peer.0, endpoint))
            .and_then(|path| path.rtt)
    }

    /// Every probed path and its health, ordered by key, then endpoint.
    pub fn paths(&self) -> impl Iterator<Item = (PathId, PathHealth)> + '_ {
        self.paths.iter().map(|(key, path)| {
            let id = PathId {
                peer: WireGuardKey(key.0),
                endpoint: key.1,
            };
            (id, path.health)
        })
    }

    /// Datagrams refused so far, for any reason.
    pub fn rejected(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Datagrams refused so far for `reason`.
    pub fn rejected_for(&self, reason: Rejection) -> u64 {
        self.rejected[reason.index()]
    }

    /// A Noise builder for this node and `peer`, with the path-probe protocol and prologue.
    fn builder<'a>(&'a self, peer: &'a [u8; KEY_LEN]) -> Result<Builder<'a>, snow::Error> {
        Builder::new(NOISE_PROTOCOL.parse()?)
            .local_private_key(&self.local_private)?
            .remote_public_key(peer)?
            .prologue(PROLOGUE)
    }

    /// A session id not in use on either side, random where the system RNG allows.
    fn fresh_id(&mut self) -> u32 {
        loop {
            let mut bytes = [0; 4];
            let random = self.rng.as_mut().map(|rng| rng.try_fill_bytes(&mut bytes));
            let candidate = if matches!(random, Some(Ok(()))) {
                u32::from_le_bytes(bytes)
            } else {
                self.fallback_id = self.fallback_id.wrapping_add(1);
                self.fallback_id
            };
            if !self.initiator_ids.contains_key(&candidate)
                && !self.sessions.contains_key(&candidate)
            {
                return candidate;
            }
        }
    }
}

impl fmt::Debug for PathProber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathProber")
            .field("local_public", &WireGuardKey(self.local_public))
            .field("interval", &self.interval)
            .field("down_after", &self.down_after)
            .field("paths", &self.paths.len())
            .field("allowed", &self.allowed.len())
            .field("sessions", &self.sessions.len())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

/// The init hint naming the (initiator, responder) pair: BLAKE2s over label and both keys.
fn pair_hint(initiator: &[u8; KEY_LEN], responder: &[u8; KEY_LEN]) -> [u8; HINT_LEN] {
    let mut hint = [0; HINT_LEN];
    match DefaultResolver.resolve_hash(&HashChoice::Blake2s) {
        Some(mut hash) => {
            let mut digest = [0; 32];
            hash.input(HINT_LABEL);
            hash.input(initiator);
            hash.input(responder);
            hash.result(&mut digest);
            hint.copy_from_slice(&digest[..HINT_LEN]);
        }
        // snow always has BLAKE2s; both ends would fall back alike if not.
        None => hint.copy_from_slice(&initiator[..HINT_LEN]),
    }
    hint
}

/// A probe or reply sealed under `nonce`; `None` if sealing failed.
fn seal(
    transport: &StatelessTransportState,
    kind: Kind,
    receiver: u32,
    nonce: u64,
) -> Option<Vec<u8>> {
    let mut sealed = [0; wire::SEALED_LEN];
    let payload = wire::sealed_payload(kind, receiver);
    let len = transport.write_message(nonce, &payload, &mut sealed).ok()?;
    Some(wire::sealed(kind, receiver, nonce, sealed.get(..len)?))
}

/// Checks a probe or reply authenticates under `nonce` and repeats its header.
fn open(
    transport: &StatelessTransportState,
    kind: Kind,
    receiver: u32,
    nonce: u64,
    sealed: &[u8],
) -> Result<(), Rejection> {
    let mut payload = [0; PAYLOAD_BUF];
    let len = transport
        .read_message(nonce, sealed, &mut payload)
        .map_err(|_| Rejection::Auth)?;
    if payload.get(..len) == Some(&wire::sealed_payload(kind, receiver)[..]) {
        Ok(())
    } else {
        Err(Rejection::Auth)
    }
}
