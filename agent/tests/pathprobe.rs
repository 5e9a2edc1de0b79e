//! Path probes through the public API: two probers wired back to back in memory on synthetic
//! time, hostile datagrams, WireGuard demultiplexing, and one run over real UDP on loopback.
#![allow(clippy::disallowed_methods)] // real time only as the origin of synthetic time

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use agent::pathprobe::{PathHealth, PathId, PathProber, Rejection, is_path_probe};
use pki::WireGuardKey;
use proptest::prelude::*;

const SECOND: Duration = Duration::from_secs(1);

fn key(seed: u8) -> ([u8; 32], WireGuardKey) {
    let private = [seed; 32];
    let secret = x25519_dalek::StaticSecret::from(private);
    (
        private,
        WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes()),
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

const A_ADDR: u16 = 1;
const B_PRIMARY: u16 = 2;
const B_BACKUP: u16 = 3;

/// Node A probes node B on a primary and a backup endpoint; B allows A.
struct Lab {
    a: PathProber,
    b: PathProber,
    b_key: WireGuardKey,
    now: Instant,
    /// Whether datagrams (both ways) on each of B's endpoints get through.
    primary_up: bool,
    backup_up: bool,
    /// Whether B's answers get back to A at all.
    answers_up: bool,
    /// B's answers, as sent, for replay tests.
    answers: Vec<Vec<u8>>,
}

impl Lab {
    fn new(down_after: u32, backup: bool) -> Lab {
        let (a_private, a_key) = key(1);
        let (b_private, b_key) = key(2);
        let now = Instant::now();
        let mut a = PathProber::new(a_private, SECOND, down_after, now);
        let mut b = PathProber::new(b_private, SECOND, down_after, now);
        a.add_path(b_key, addr(B_PRIMARY), now);
        if backup {
            a.add_path(b_key, addr(B_BACKUP), now);
        }
        b.allow_peer(a_key);
        Lab {
            a,
            b,
            b_key,
            now,
            primary_up: true,
            backup_up: true,
            answers_up: true,
            answers: Vec::new(),
        }
    }

    fn link_up(&self, endpoint: SocketAddr) -> bool {
        if endpoint == addr(B_PRIMARY) {
            self.primary_up
        } else {
            self.backup_up
        }
    }

    /// Runs A's timers at `now` and carries every datagram that the links let through.
    fn step(&mut self) {
        for (to, datagram) in self.a.poll(self.now) {
            assert!(is_path_probe(&datagram));
            if !self.link_up(to) {
                continue;
            }
            let Some((back, answer)) = self.b.on_datagram(self.now, addr(A_ADDR), &datagram) else {
                continue;
            };
            assert_eq!(back, addr(A_ADDR));
            self.answers.push(answer.clone());
            if self.answers_up {
                assert!(self.a.on_datagram(self.now, to, &answer).is_none());
            }
        }
    }

    /// Steps once per second until (not including) `until` seconds from the start.
    fn run(&mut self, seconds: u32) {
        for _ in 0..seconds {
            self.step();
            self.now += SECOND;
        }
    }

    fn primary(&self) -> PathHealth {
        self.a.health(&self.b_key, addr(B_PRIMARY))
    }

    fn backup(&self) -> PathHealth {
        self.a.health(&self.b_key, addr(B_BACKUP))
    }
}

#[test]
fn a_path_comes_up_and_has_a_round_trip_time() {
    let mut lab = Lab::new(3, false);
    assert_eq!(lab.primary(), PathHealth::Unknown);
    assert_eq!(lab.a.next_timeout(), Some(lab.now));
    lab.run(5);
    assert_eq!(lab.primary(), PathHealth::Up);
    assert_eq!(lab.a.rtt(&lab.b_key, addr(B_PRIMARY)), Some(Duration::ZERO));
    assert_eq!(lab.a.next_timeout(), Some(lab.now));
    assert_eq!((lab.a.rejected(), lab.b.rejected()), (0, 0));
    let paths: Vec<_> = lab.a.paths().collect();
    let id = PathId {
        peer: lab.b_key,
        endpoint: addr(B_PRIMARY),
    };
    assert_eq!(paths, vec![(id, PathHealth::Up)]);
}

#[test]
fn a_path_goes_down_after_exactly_down_after_unanswered_intervals() {
    for down_after in [1, 3, 5] {
        let mut lab = Lab::new(down_after, false);
        lab.run(4);
        assert_eq!(lab.primary(), PathHealth::Up);
        // From here every answer is lost: the probe sent at `lost` is the first unanswered.
        lab.answers_up = false;
        let lost = lab.now;
        for _ in 0..down_after {
            lab.step();
            assert_eq!(lab.primary(), PathHealth::Up, "down_after {down_after}");
            lab.now += SECOND;
        }
        assert_eq!(lab.now, lost + SECOND * down_after);
        lab.step();
        assert_eq!(lab.primary(), PathHealth::Down, "down_after {down_after}");
        // And back up with the first answer that gets through.
        lab.answers_up = true;
        lab.now += SECOND;
        lab.step();
        assert_eq!(lab.primary(), PathHealth::Up);
    }
}

#[test]
fn a_path_never_answered_goes_from_unknown_to_down() {
    let mut lab = Lab::new(3, false);
    lab.primary_up = false;
    lab.run(3);
    assert_eq!(lab.primary(), PathHealth::Unknown);
    lab.step();
    assert_eq!(lab.primary(), PathHealth::Down);
    assert_eq!(lab.a.rtt(&lab.b_key, addr(B_PRIMARY)), None);
}

#[test]
fn primary_and_backup_are_tracked_independently() {
    let mut lab = Lab::new(3, true);
    lab.backup_up = false;
    lab.run(10);
    assert_eq!(lab.primary(), PathHealth::Up);
    assert_eq!(lab.backup(), PathHealth::Down, "a dead backup is never Up");
    lab.backup_up = true;
    lab.primary_up = false;
    lab.run(1);
    assert_eq!(
        (lab.primary(), lab.backup()),
        (PathHealth::Up, PathHealth::Up)
    );
    lab.run(3);
    assert_eq!(lab.primary(), PathHealth::Down);
    assert_eq!(lab.backup(), PathHealth::Up);
    assert_eq!((lab.a.rejected(), lab.b.rejected()), (0, 0));
}

#[test]
fn a_stranger_gets_no_answer_and_is_counted() {
    let mut lab = Lab::new(3, false);
    let (c_private, _) = key(3);
    let mut stranger = PathProber::new(c_private, SECOND, 3, lab.now);
    stranger.add_path(lab.b_key, addr(B_PRIMARY), lab.now);
    for round in 1..=4 {
        for (_, datagram) in stranger.poll(lab.now) {
            assert!(lab.b.on_datagram(lab.now, addr(9), &datagram).is_none());
        }
        assert_eq!(lab.b.rejected_for(Rejection::UnknownPeer), round);
        lab.now += SECOND;
    }
    assert_eq!(
        stranger.health(&lab.b_key, addr(B_PRIMARY)),
        PathHealth::Down
    );
    // Removing an allowed peer makes it a stranger too.
    let (_, a_key) = key(1);
    lab.b.remove_peer(&a_key);
    lab.run(4);
    assert_eq!(lab.primary(), PathHealth::Down);
    assert_eq!(lab.b.rejected(), 8);
}

#[test]
fn replayed_answers_do_not_keep_a_dead_path_alive() {
    let mut lab = Lab::new(3, false);
    lab.run(5);
    assert_eq!(lab.primary(), PathHealth::Up);
    let recorded = std::mem::take(&mut lab.answers);
    assert_eq!(recorded.len(), 5, "one handshake response, four replies");
    lab.primary_up = false;
    for _ in 0..3 {
        lab.step();
        for answer in &recorded {
            assert!(
                lab.a
                    .on_datagram(lab.now, addr(B_PRIMARY), answer)
                    .is_none()
            );
        }
        lab.now += SECOND;
    }
    lab.step();
    assert_eq!(lab.primary(), PathHealth::Down);
    assert_eq!(lab.a.rejected(), 15);
}

#[test]
fn replayed_probes_and_inits_draw_no_answer() {
    let mut lab = Lab::new(3, false);
    let mut sent = Vec::new();
    for _ in 0..4 {
        for (to, datagram) in lab.a.poll(lab.now) {
            let (_, answer) = lab
                .b
                .on_datagram(lab.now, addr(A_ADDR), &datagram)
                .expect("answer");
            lab.a.on_datagram(lab.now, to, &answer);
            sent.push(datagram);
        }
        lab.now += SECOND;
    }
    for datagram in &sent {
        assert!(lab.b.on_datagram(lab.now, addr(A_ADDR), datagram).is_none());
    }
    assert_eq!(lab.b.rejected_for(Rejection::Replay), 4);
}

/// Feeds every single-byte change of `datagram` to `receiver`: none may be answered or
/// accepted. Returns how many were refused.
fn mutate_all(receiver: &mut PathProber, now: Instant, from: SocketAddr, datagram: &[u8]) -> u64 {
    let before = receiver.rejected();
    let mut tried = 0;
    for at in 0..datagram.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut changed = datagram.to_vec();
            changed[at] ^= mask;
            assert!(
                receiver.on_datagram(now, from, &changed).is_none(),
                "byte {at} ^ {mask:#x}"
            );
            tried += 1;
        }
    }
    assert_eq!(
        receiver.rejected() - before,
        tried,
        "every change is refused and counted"
    );
    tried
}

#[test]
fn every_changed_byte_of_every_kind_of_datagram_is_refused() {
    let mut lab = Lab::new(1, false);
    let from_a = addr(A_ADDR);
    let from_b = addr(B_PRIMARY);
    for round in 0..2 {
        let mut out = lab.a.poll(lab.now);
        let (_, probe) = out.pop().expect("a probe is due");
        assert_eq!(probe[4], if round == 0 { 1 } else { 3 }, "init, then probe");
        mutate_all(&mut lab.b, lab.now, from_a, &probe);
        let (_, answer) = lab
            .b
            .on_datagram(lab.now, from_a, &probe)
            .expect("original answered");
        mutate_all(&mut lab.a, lab.now, from_b, &answer);
        assert_eq!(
            lab.primary(),
            if round == 0 {
                PathHealth::Unknown
            } else {
                PathHealth::Up
            }
        );
        assert!(lab.a.on_datagram(lab.now, from_b, &answer).is_none());
        assert_eq!(lab.primary(), PathHealth::Up, "the original still counts");
        lab.now += SECOND;
    }
}

#[test]
fn wireguard_and_path_probes_are_told_apart() {
    use boringtun::noise::{Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};
    let ours = StaticSecret::from([1; 32]);
    let theirs = PublicKey::from(&StaticSecret::from([2; 32]));
    let mut tunnel = Tunn::new(ours, theirs, None, None, 7, None);
    let mut buf = [0u8; 256];
    let TunnResult::WriteToNetwork(init) = tunnel.format_handshake_initiation(&mut buf, false)
    else {
        panic!("boringtun wrote no handshake initiation");
    };
    assert_eq!(init[..4], [1, 0, 0, 0], "a WireGuard handshake initiation");
    assert!(!is_path_probe(init));
    let mut lab = Lab::new(3, false);
    let out = lab.a.poll(lab.now);
    assert!(is_path_probe(&out[0].1));
    for wireguard_type in 1..=4u8 {
        assert!(!is_path_probe(&[wireguard_type, 0, 0, 0, 9, 9, 9, 9]));
    }
    // And a prober fed WireGuard refuses it quietly.
    assert!(lab.b.on_datagram(lab.now, addr(A_ADDR), init).is_none());
    assert_eq!(lab.b.rejected_for(Rejection::BadMagic), 1);
}

/// One turn of a tiny driver over real sockets: timers, then whatever has arrived.
fn pump(nodes: &mut [(&mut PathProber, &UdpSocket); 2]) {
    for (prober, socket) in nodes.iter_mut() {
        for (to, datagram) in prober.poll(Instant::now()) {
            socket.send_to(&datagram, to).expect("send");
        }
    }
    std::thread::sleep(Duration::from_millis(1));
    let mut buf = [0u8; 2048];
    for (prober, socket) in nodes.iter_mut() {
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            assert!(is_path_probe(&buf[..len]));
            if let Some((to, answer)) = prober.on_datagram(Instant::now(), from, &buf[..len]) {
                socket.send_to(&answer, to).expect("send");
            }
        }
    }
}

#[test]
fn two_probers_come_up_over_real_udp_on_loopback() {
    let a_socket = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b_socket = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    for socket in [&a_socket, &b_socket] {
        socket.set_nonblocking(true).expect("nonblocking");
    }
    let a_addr = a_socket.local_addr().expect("a addr");
    let b_addr = b_socket.local_addr().expect("b addr");
    let (a_private, a_key) = key(1);
    let (b_private, b_key) = key(2);
    let interval = Duration::from_millis(100);
    let mut a = PathProber::new(a_private, interval, 3, Instant::now());
    let mut b = PathProber::new(b_private, interval, 3, Instant::now());
    a.add_path(b_key, b_addr, Instant::now());
    a.allow_peer(b_key);
    b.add_path(a_key, a_addr, Instant::now());
    b.allow_peer(a_key);
    let started = Instant::now();
    while a.health(&b_key, b_addr) != PathHealth::Up || b.health(&a_key, a_addr) != PathHealth::Up {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no Up within 10 s"
        );
        pump(&mut [(&mut a, &a_socket), (&mut b, &b_socket)]);
    }
    let came_up = started.elapsed();
    // Several more intervals of transport probes: still up, nothing refused.
    while started.elapsed() < came_up + interval * 5 {
        pump(&mut [(&mut a, &a_socket), (&mut b, &b_socket)]);
    }
    assert_eq!(a.health(&b_key, b_addr), PathHealth::Up);
    assert_eq!(b.health(&a_key, a_addr), PathHealth::Up);
    eprintln!(
        "loopback: both paths up after {came_up:?}; rtt a->b {:?}, b->a {:?}",
        a.rtt(&b_key, b_addr),
        b.rtt(&a_key, a_addr)
    );
    assert_eq!((a.rejected(), b.rejected()), (0, 0));
}

/// Rough CPU cost of one probe exchange, both sides together, for the module docs.
/// Timing is printed, never asserted (`cargo test --release --test pathprobe -- --nocapture cost`).
#[test]
fn cost_of_a_probe_exchange() {
    const N: u32 = 200;
    let mut lab = Lab::new(3, false);
    lab.run(1);
    let started = Instant::now();
    lab.run(N);
    let transport = started.elapsed() / N;
    let started = Instant::now();
    for _ in 0..N {
        lab.a.remove_peer(&lab.b_key);
        lab.a.add_path(lab.b_key, addr(B_PRIMARY), lab.now);
        lab.step();
    }
    let handshake = started.elapsed() / N;
    assert_eq!(lab.primary(), PathHealth::Up);
    let secret = x25519_dalek::StaticSecret::from([5; 32]);
    let (_, public) = key(6);
    let public = x25519_dalek::PublicKey::from(public.0);
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(secret.diffie_hellman(std::hint::black_box(&public)));
    }
    let x25519 = started.elapsed() / N;
    eprintln!(
        "path probe CPU per exchange (both sides): KK handshake {handshake:?} \
         (~{:.1} X25519 operations of {x25519:?}), transport probe {transport:?} ({:.0}x cheaper)",
        handshake.as_secs_f64() / x25519.as_secs_f64().max(1e-9),
        handshake.as_secs_f64() / transport.as_secs_f64().max(1e-9)
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_are_refused(
        bytes in proptest::collection::vec(any::<u8>(), 0..128),
        kind in 0u8..6,
        framed in any::<bool>(),
    ) {
        let mut lab = Lab::new(3, true);
        lab.run(2);
        let mut datagram = bytes;
        if framed {
            // Reach past the magic and kind checks; lengths are those of real datagrams.
            let len = if kind <= 2 { 65 } else { 38 };
            datagram.resize(len, 0);
            datagram[..4].copy_from_slice(b"JPP1");
            datagram[4] = kind;
        }
        for prober in [&mut lab.a, &mut lab.b] {
            let before = prober.rejected();
            prop_assert!(prober.on_datagram(lab.now, addr(7), &datagram).is_none());
            prop_assert_eq!(prober.rejected(), before + 1);
        }
    }
}

proptest! {
    #[test]
    fn changed_real_probes_are_refused(
        changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        round in 0u32..3,
    ) {
        let mut lab = Lab::new(3, false);
        lab.run(round);
        let (_, original) = lab.a.poll(lab.now).pop().expect("a probe is due");
        let mut changed = original.clone();
        for (at, value) in changes {
            let at = at % changed.len();
            changed[at] = value;
        }
        prop_assume!(changed != original);
        prop_assert!(lab.b.on_datagram(lab.now, addr(A_ADDR), &changed).is_none());
        prop_assert!(lab.b.on_datagram(lab.now, addr(A_ADDR), &original).is_some());
    }
}
