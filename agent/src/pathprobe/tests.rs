//! Unit tests of the prober's internals: which message goes when, rekeying, restarts,
//! session limits. The public behaviour is tested in `agent/tests/pathprobe.rs`.
#![allow(clippy::disallowed_methods)] // one real Instant as the origin of synthetic time

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn key(seed: u8) -> ([u8; 32], WireGuardKey) {
    let private = [seed; 32];
    let secret = x25519_dalek::StaticSecret::from(private);
    let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
    (private, WireGuardKey(public))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A probes B at one endpoint; B answers A.
struct Pair {
    a: PathProber,
    b: PathProber,
    a_key: WireGuardKey,
    b_key: WireGuardKey,
    b_private: [u8; 32],
    now: Instant,
}

impl Pair {
    fn new(down_after: u32) -> Pair {
        let (a_private, a_key) = key(1);
        let (b_private, b_key) = key(2);
        let now = Instant::now();
        let mut a = PathProber::new(a_private, SECOND, down_after, now);
        let mut b = PathProber::new(b_private, SECOND, down_after, now);
        a.add_path(b_key, addr(2), now);
        b.allow_peer(a_key);
        Pair {
            a,
            b,
            a_key,
            b_key,
            b_private,
            now,
        }
    }

    /// A polls; returns A's one datagram.
    fn poll_a(&mut self) -> Vec<u8> {
        let mut out = self.a.poll(self.now);
        assert_eq!(out.len(), 1);
        out.remove(0).1
    }

    /// Delivers `datagram` to B, and B's answer to A; returns B's answer.
    fn exchange(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let (to, answer) = self.b.on_datagram(self.now, addr(1), datagram)?;
        assert_eq!(to, addr(1));
        assert!(self.a.on_datagram(self.now, addr(2), &answer).is_none());
        Some(answer)
    }

    fn round(&mut self) -> u8 {
        let datagram = self.poll_a();
        self.exchange(&datagram);
        let kind = datagram[4];
        self.now += SECOND;
        kind
    }

    fn health(&self) -> PathHealth {
        self.a.health(&self.b_key, addr(2))
    }
}

#[test]
fn first_probe_is_a_handshake_then_transport_probes_until_rekey() {
    let mut pair = Pair::new(3);
    assert_eq!(pair.round(), Kind::Init as u8);
    assert_eq!(pair.health(), PathHealth::Up);
    assert_eq!(pair.b.sessions.len(), 1);
    for _ in 1..REKEY_AFTER.as_secs() {
        assert_eq!(pair.round(), Kind::Probe as u8);
        assert_eq!(pair.health(), PathHealth::Up);
    }
    assert_eq!(
        pair.round(),
        Kind::Init as u8,
        "rekey after {REKEY_AFTER:?}"
    );
    assert_eq!(pair.health(), PathHealth::Up);
    assert_eq!(pair.round(), Kind::Probe as u8);
    assert_eq!(pair.b.rejected(), 0);
    assert_eq!(pair.a.rejected(), 0);
}

#[test]
fn a_restarted_responder_costs_two_missed_probes() {
    let mut pair = Pair::new(3);
    pair.round();
    pair.round();
    pair.b = PathProber::new(pair.b_private, SECOND, 3, pair.now);
    pair.b.allow_peer(pair.a_key);
    for miss in 1..=2 {
        let probe = pair.poll_a();
        assert_eq!(probe[4], Kind::Probe as u8, "miss {miss} keeps the session");
        assert!(pair.exchange(&probe).is_none());
        assert_eq!(pair.b.rejected_for(Rejection::UnknownSession), miss);
        pair.now += SECOND;
    }
    assert_eq!(
        pair.round(),
        Kind::Init as u8,
        "two misses in a row start a new handshake"
    );
    assert_eq!(pair.health(), PathHealth::Up);
    assert_eq!(pair.a.paths[&(pair.b_key.0, addr(2))].misses, 0);
}

#[test]
fn a_replayed_init_draws_no_second_response() {
    let mut pair = Pair::new(3);
    let init = pair.poll_a();
    assert!(pair.exchange(&init).is_some());
    assert!(pair.b.on_datagram(pair.now, addr(1), &init).is_none());
    assert_eq!(pair.b.rejected_for(Rejection::Replay), 1);
    assert_eq!(pair.b.sessions.len(), 1);
}

#[test]
fn a_duplicated_response_or_reply_is_a_replay() {
    let mut pair = Pair::new(3);
    let init = pair.poll_a();
    let response = pair.exchange(&init).expect("response");
    assert!(pair.a.on_datagram(pair.now, addr(2), &response).is_none());
    pair.now += SECOND;
    let probe = pair.poll_a();
    let reply = pair.exchange(&probe).expect("reply");
    assert!(pair.a.on_datagram(pair.now, addr(2), &reply).is_none());
    assert_eq!(pair.a.rejected_for(Rejection::Replay), 2);
    assert!(pair.b.on_datagram(pair.now, addr(1), &probe).is_none());
    assert_eq!(pair.b.rejected_for(Rejection::Replay), 1);
}

#[test]
fn a_late_reply_does_not_count() {
    let mut pair = Pair::new(1);
    pair.round();
    let probe = pair.poll_a();
    let (_, reply) = pair
        .b
        .on_datagram(pair.now, addr(1), &probe)
        .expect("reply");
    pair.now += SECOND;
    let next = pair.poll_a();
    assert_eq!(pair.health(), PathHealth::Down);
    assert!(pair.a.on_datagram(pair.now, addr(2), &reply).is_none());
    assert_eq!(pair.health(), PathHealth::Down);
    assert_eq!(pair.a.rejected(), 1);
    pair.exchange(&next);
    assert_eq!(pair.health(), PathHealth::Up);
}

#[test]
fn responders_refuse_old_sessions_and_then_forget_them() {
    let mut pair = Pair::new(3);
    pair.round();
    let probe = pair.poll_a();
    pair.now += REJECT_AFTER;
    assert!(pair.b.on_datagram(pair.now, addr(1), &probe).is_none());
    assert_eq!(pair.b.rejected_for(Rejection::Expired), 1);
    assert!(pair.b.next_timeout().is_some());
    pair.b.poll(pair.now);
    assert!(pair.b.sessions.is_empty());
    assert!(pair.b.allowed.values().all(|a| a.sessions.is_empty()));
    assert_eq!(pair.b.next_timeout(), None);
}

#[test]
fn responders_keep_a_bounded_number_of_sessions_per_peer() {
    let mut pair = Pair::new(3);
    for _ in 0..MAX_SESSIONS_PER_PEER + 5 {
        pair.a.remove_peer(&pair.b_key);
        pair.a.add_path(pair.b_key, addr(2), pair.now);
        assert_eq!(pair.round(), Kind::Init as u8);
        assert_eq!(pair.health(), PathHealth::Up);
    }
    assert_eq!(pair.b.sessions.len(), MAX_SESSIONS_PER_PEER);
    assert_eq!(pair.a.initiator_ids.len(), 1);
    // The newest session survived the evictions.
    assert_eq!(pair.round(), Kind::Probe as u8);
    assert_eq!(pair.health(), PathHealth::Up);
    pair.b.remove_peer(&pair.a_key);
    assert!(pair.b.sessions.is_empty());
}

#[test]
fn zero_settings_are_raised_to_their_minimum() {
    let (private, _) = key(1);
    let now = Instant::now();
    let prober = PathProber::new(private, Duration::ZERO, 0, now);
    assert_eq!(prober.interval, MIN_INTERVAL);
    assert_eq!(prober.down_after, 1);
    assert_eq!(prober.next_timeout(), None);
}

#[test]
fn rejection_labels_are_distinct_and_indexed() {
    let labels: std::collections::HashSet<_> = Rejection::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), Rejection::ALL.len());
    for (at, reason) in Rejection::ALL.iter().enumerate() {
        assert_eq!(reason.index(), at);
    }
}

#[test]
fn the_prober_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<PathProber>();
}

#[test]
fn debug_output_holds_no_private_key() {
    let (private, public) = key(7);
    let prober = PathProber::new(private, SECOND, 3, Instant::now());
    let shown = format!("{prober:?}");
    assert!(shown.contains(&public.to_string()));
    assert!(!shown.contains(&WireGuardKey(private).to_string()));
}
