//! The responder side of path probes: which inits start a session, which probes draw a
//! reply, and how many sessions a peer may hold. Kept apart from the initiator side so each
//! half of the protocol reads on its own.

use std::collections::VecDeque;
use std::time::Instant;

use pki::WireGuardKey;
use snow::{Builder, StatelessTransportState};

use super::window::ReplayWindow;
use super::wire::{self, HINT_LEN, KEY_LEN, Kind};
use super::{
    MAX_SESSIONS_PER_PEER, PAYLOAD_BUF, PathProber, RECENT_INITS, REJECT_AFTER, REKEY_AFTER,
    Rejection, open, seal,
};

/// A peer allowed to probe this node, found by the pair hint in its inits.
pub(super) struct Allowed {
    pub(super) peer: WireGuardKey,
    pub(super) sessions: Vec<u32>,
    pub(super) recent: VecDeque<[u8; KEY_LEN]>,
}

/// The responder's half of a session with one initiator path.
pub(super) struct ResponderSession {
    pub(super) hint: [u8; HINT_LEN],
    pub(super) remote_id: u32,
    pub(super) transport: StatelessTransportState,
    pub(super) window: ReplayWindow,
    pub(super) born: Instant,
    pub(super) last_used: Instant,
}

impl PathProber {
    /// Responder: an init from an allowed peer starts a session and draws a response.
    pub(super) fn on_init(
        &mut self,
        now: Instant,
        hint: [u8; HINT_LEN],
        noise: &[u8],
    ) -> Result<Vec<u8>, Rejection> {
        let allowed = self.allowed.get(&hint).ok_or(Rejection::UnknownPeer)?;
        let ephemeral: [u8; KEY_LEN] = noise
            .get(..KEY_LEN)
            .and_then(|e| e.try_into().ok())
            .ok_or(Rejection::Malformed)?;
        if allowed.recent.contains(&ephemeral) {
            return Err(Rejection::Replay);
        }
        let peer = allowed.peer;
        let mut handshake = self
            .builder(&peer.0)
            .and_then(Builder::build_responder)
            .map_err(|_| Rejection::Local)?;
        let mut payload = [0; PAYLOAD_BUF];
        let len = handshake
            .read_message(noise, &mut payload)
            .map_err(|_| Rejection::Auth)?;
        let sender = payload
            .get(..len)
            .and_then(|p| p.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(Rejection::Auth)?;
        let id = self.fresh_id();
        let mut answer = [0; wire::RESPONSE_PAYLOAD_LEN];
        answer[..4].copy_from_slice(&sender.to_le_bytes());
        answer[4..].copy_from_slice(&id.to_le_bytes());
        let mut noise_out = [0; wire::RESPONSE_NOISE_LEN];
        let len = handshake
            .write_message(&answer, &mut noise_out)
            .map_err(|_| Rejection::Local)?;
        let transport = handshake
            .into_stateless_transport_mode()
            .map_err(|_| Rejection::Local)?;
        let session = ResponderSession {
            hint,
            remote_id: sender,
            transport,
            window: ReplayWindow::default(),
            born: now,
            last_used: now,
        };
        self.admit(id, session, ephemeral);
        Ok(wire::response(sender, &noise_out[..len]))
    }

    /// Responder: stores a new session, evicting the peer's least recently used beyond the cap.
    pub(super) fn admit(&mut self, id: u32, session: ResponderSession, ephemeral: [u8; KEY_LEN]) {
        let Some(allowed) = self.allowed.get_mut(&session.hint) else {
            return;
        };
        allowed.recent.push_back(ephemeral);
        if allowed.recent.len() > RECENT_INITS {
            allowed.recent.pop_front();
        }
        allowed.sessions.push(id);
        self.sessions.insert(id, session);
        while allowed.sessions.len() > MAX_SESSIONS_PER_PEER {
            let oldest = allowed
                .sessions
                .iter()
                .enumerate()
                .min_by_key(|(_, id)| self.sessions.get(id).map(|s| s.last_used))
                .map(|(at, _)| at)
                .unwrap_or_default();
            let evicted = allowed.sessions.swap_remove(oldest);
            self.sessions.remove(&evicted);
        }
    }

    /// Responder: a fresh, authentic probe on a live session draws a reply.
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        receiver: u32,
        nonce: u64,
        sealed: &[u8],
    ) -> Result<Vec<u8>, Rejection> {
        let session = self
            .sessions
            .get_mut(&receiver)
            .ok_or(Rejection::UnknownSession)?;
        open(&session.transport, Kind::Probe, receiver, nonce, sealed)?;
        if now.saturating_duration_since(session.born) >= REJECT_AFTER {
            return Err(Rejection::Expired);
        }
        if !session.window.is_fresh(nonce) {
            return Err(Rejection::Replay);
        }
        session.window.accept(nonce);
        session.last_used = now;
        seal(&session.transport, Kind::Reply, session.remote_id, nonce).ok_or(Rejection::Local)
    }

    /// Forgets responder sessions older than [`REJECT_AFTER`].
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        self.next_expiry = now + REKEY_AFTER.min(REJECT_AFTER) / 4;
        let old: Vec<(u32, [u8; HINT_LEN])> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.born) >= REJECT_AFTER)
            .map(|(id, s)| (*id, s.hint))
            .collect();
        for (id, hint) in old {
            self.sessions.remove(&id);
            if let Some(allowed) = self.allowed.get_mut(&hint) {
                allowed.sessions.retain(|other| *other != id);
            }
        }
    }
}
