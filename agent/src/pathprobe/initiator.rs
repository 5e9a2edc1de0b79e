//! The initiator side of path probes: when each path's next probe goes, whether it is a
//! handshake or a transport probe, and which answers count. Kept apart from the responder
//! side so each half of the protocol reads on its own.

use std::time::{Duration, Instant};

use snow::{HandshakeState, StatelessTransportState};

use super::wire::{self, KEY_LEN, Kind};
use super::{
    PAYLOAD_BUF, PathHealth, PathKey, PathProber, REKEY_AFTER, Rejection, open, pair_hint, seal,
};

/// Misses in a row after which a path's session is dropped and the next probe is a new
/// handshake (a responder that restarted has lost it).
const SESSION_MISSES: u32 = 2;

/// One probed path: its health and the session and probe in flight on it.
pub(super) struct Path {
    pub(super) health: PathHealth,
    pub(super) rtt: Option<Duration>,
    pub(super) misses: u32,
    pub(super) next_send: Instant,
    pub(super) session: Option<InitiatorSession>,
    pub(super) awaiting: Option<Awaiting>,
}

/// The initiator's half of a session with the peer on one path.
pub(super) struct InitiatorSession {
    pub(super) id: u32,
    pub(super) remote_id: u32,
    pub(super) transport: StatelessTransportState,
    pub(super) next_nonce: u64,
    pub(super) born: Instant,
}

/// The probe in flight on a path and what would answer it.
pub(super) struct Awaiting {
    pub(super) sent: Instant,
    pub(super) expect: Expect,
}

/// What would answer the probe in flight.
pub(super) enum Expect {
    Response {
        id: u32,
        handshake: Box<HandshakeState>,
    },
    Reply {
        nonce: u64,
    },
    /// Nothing can answer: building the probe failed locally.
    Nothing,
}

impl PathProber {
    /// Settles the probe in flight on a due path and schedules the next round.
    pub(super) fn close_round(&mut self, key: &PathKey, now: Instant) {
        let Some(path) = self.paths.get_mut(key) else {
            return;
        };
        let next = path.next_send + self.interval;
        path.next_send = if next > now {
            next
        } else {
            now + self.interval
        };
        let Some(unanswered) = path.awaiting.take() else {
            return;
        };
        path.misses = path.misses.saturating_add(1);
        if path.misses >= self.down_after {
            path.health = PathHealth::Down;
        }
        if let Expect::Response { id, .. } = unanswered.expect {
            self.initiator_ids.remove(&id);
        }
        // The responder may have lost the session (restart): start afresh — after two
        // misses in a row, not one, so a reply that is only late (a busy peer) costs no
        // handshake; handshakes cost ~150 times a probe, and a busy network answering
        // late probes with handshakes only gets busier.
        if path.misses >= SESSION_MISSES
            && let Some(session) = path.session.take()
        {
            self.initiator_ids.remove(&session.id);
        }
    }

    /// Builds the next probe on a path: a transport probe, or a handshake init.
    pub(super) fn send_probe(&mut self, key: &PathKey, now: Instant) -> Option<Vec<u8>> {
        let path = self.paths.get_mut(key)?;
        if let Some(session) = path.session.as_mut().filter(|s| s.usable(now)) {
            let nonce = session.next_nonce;
            session.next_nonce += 1;
            let datagram = seal(&session.transport, Kind::Probe, session.remote_id, nonce);
            let expect = match datagram {
                Some(_) => Expect::Reply { nonce },
                None => Expect::Nothing,
            };
            path.awaiting = Some(Awaiting { sent: now, expect });
            return datagram;
        }
        if let Some(old) = path.session.take() {
            self.initiator_ids.remove(&old.id);
        }
        let id = self.fresh_id();
        let started = self.initiate(&key.0, id);
        let path = self.paths.get_mut(key)?;
        let (expect, datagram) = match started {
            Ok((handshake, datagram)) => {
                self.initiator_ids.insert(id, *key);
                let handshake = Box::new(handshake);
                (Expect::Response { id, handshake }, Some(datagram))
            }
            Err(error) => {
                tracing::warn!(%error, "path probe: cannot start a handshake");
                (Expect::Nothing, None)
            }
        };
        path.awaiting = Some(Awaiting { sent: now, expect });
        datagram
    }

    /// KK message 1 to `peer`, framed as an init from `id`.
    pub(super) fn initiate(
        &self,
        peer: &[u8; KEY_LEN],
        id: u32,
    ) -> Result<(HandshakeState, Vec<u8>), snow::Error> {
        let mut handshake = self.builder(peer)?.build_initiator()?;
        let mut noise = [0; wire::INIT_NOISE_LEN];
        let len = handshake.write_message(&id.to_le_bytes(), &mut noise)?;
        let hint = pair_hint(&self.local_public, peer);
        Ok((handshake, wire::init(hint, &noise[..len])))
    }

    /// Initiator: a response completing the handshake in flight answers the probe.
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        receiver: u32,
        noise: &[u8],
    ) -> Result<(), Rejection> {
        let key = *self
            .initiator_ids
            .get(&receiver)
            .ok_or(Rejection::UnknownSession)?;
        let path = self.paths.get_mut(&key).ok_or(Rejection::UnknownSession)?;
        let (sent, mut handshake) = match path.awaiting.take() {
            Some(Awaiting {
                sent,
                expect: Expect::Response { id, handshake },
            }) if id == receiver => (sent, handshake),
            other => {
                path.awaiting = other;
                let established = path.session.as_ref().is_some_and(|s| s.id == receiver);
                return Err(if established {
                    Rejection::Replay
                } else {
                    Rejection::UnknownSession
                });
            }
        };
        let mut payload = [0; PAYLOAD_BUF];
        let sender = match handshake.read_message(noise, &mut payload) {
            Err(_) => {
                // A forgery must not cost the genuine response its chance (snow rolled back).
                let expect = Expect::Response {
                    id: receiver,
                    handshake,
                };
                path.awaiting = Some(Awaiting { sent, expect });
                return Err(Rejection::Auth);
            }
            Ok(wire::RESPONSE_PAYLOAD_LEN) if payload[..4] == receiver.to_le_bytes() => {
                u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]])
            }
            Ok(_) => {
                // Only the peer could have sent this; the handshake is spent.
                self.initiator_ids.remove(&receiver);
                let expect = Expect::Nothing;
                path.awaiting = Some(Awaiting { sent, expect });
                return Err(Rejection::Auth);
            }
        };
        let Ok(transport) = handshake.into_stateless_transport_mode() else {
            self.initiator_ids.remove(&receiver);
            let expect = Expect::Nothing;
            path.awaiting = Some(Awaiting { sent, expect });
            return Err(Rejection::Local);
        };
        path.session = Some(InitiatorSession {
            id: receiver,
            remote_id: sender,
            transport,
            next_nonce: 0,
            born: now,
        });
        path.answered(now, sent);
        Ok(())
    }

    /// Initiator: an authentic reply to the probe in flight answers it.
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        receiver: u32,
        nonce: u64,
        sealed: &[u8],
    ) -> Result<(), Rejection> {
        let key = *self
            .initiator_ids
            .get(&receiver)
            .ok_or(Rejection::UnknownSession)?;
        let path = self.paths.get_mut(&key).ok_or(Rejection::UnknownSession)?;
        let session = path
            .session
            .as_ref()
            .filter(|s| s.id == receiver)
            .ok_or(Rejection::UnknownSession)?;
        open(&session.transport, Kind::Reply, receiver, nonce, sealed)?;
        match path.awaiting {
            Some(Awaiting {
                sent,
                expect: Expect::Reply { nonce: outstanding },
            }) if outstanding == nonce => {
                path.answered(now, sent);
                Ok(())
            }
            _ => Err(Rejection::Replay),
        }
    }
}

impl Path {
    pub(super) fn answered(&mut self, now: Instant, sent: Instant) {
        self.health = PathHealth::Up;
        self.misses = 0;
        self.rtt = Some(now.saturating_duration_since(sent));
        self.awaiting = None;
    }
}

impl InitiatorSession {
    /// Whether the next probe may use this session rather than a new handshake.
    pub(super) fn usable(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.born) < REKEY_AFTER && self.next_nonce < u64::MAX - 1
    }
}
