//! The relay: plain UDP sockets on 127.0.0.1 talking to each other through emulated links.
//! Only lower bounds on time are checked (a datagram never arrives before its delay), and
//! absences are checked after the underlay has counted the datagram, so a slow machine cannot
//! make these tests fail.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests read the real clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netlab::relay::{Relay, RelayError};
use netlab::underlay::{DirectionCounters, LinkId, LinkProfile, Underlay};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const DELAY: Duration = Duration::from_millis(50);
const PATIENCE: Duration = Duration::from_secs(10);

/// Emulated addresses of the two nodes.
fn node(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 51820))
}

struct Pair {
    relay: Relay,
    link: LinkId,
    a: UdpSocket,
    b: UdpSocket,
    /// The relay sockets standing for node 1 and node 2.
    relay_a: SocketAddr,
    relay_b: SocketAddr,
}

/// Two agents (plain sockets) playing nodes 1 and 2, joined by one link of `profile`.
async fn pair(profile: LinkProfile) -> Pair {
    let mut underlay = Underlay::new(6);
    let link = underlay.connect(node(1), node(2), profile).unwrap();
    let relay = Relay::start(underlay).unwrap();
    let (relay_a, relay_b) = (
        relay.add_node(node(1)).await.unwrap(),
        relay.add_node(node(2)).await.unwrap(),
    );
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relay.attach(node(1), a.local_addr().unwrap()).unwrap();
    relay.attach(node(2), b.local_addr().unwrap()).unwrap();
    assert_eq!(relay.relay_addr(node(2)), Some(relay_b));
    Pair {
        relay,
        link,
        a,
        b,
        relay_a,
        relay_b,
    }
}

impl Pair {
    /// Node 1 → node 2 counters.
    fn forward(&self) -> DirectionCounters {
        self.relay
            .with_underlay(|u| u.counters(self.link).unwrap().forward)
    }

    /// Waits until the underlay's node 1 → node 2 counters satisfy `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&DirectionCounters) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.forward()) {
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}: {:?}",
                self.forward()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0; 2048];
    let (len, from) = timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .expect("a datagram")
        .unwrap();
    (buf[..len].to_vec(), from)
}

/// Nothing arrives within `wait`.
async fn silent(socket: &UdpSocket, wait: Duration) {
    let mut buf = [0; 2048];
    if let Ok(received) = timeout(wait, socket.recv_from(&mut buf)).await {
        panic!("expected silence, got {received:?}");
    }
}

#[tokio::test]
async fn datagrams_cross_after_the_links_delay_from_the_senders_relay_socket() {
    let pair = pair(LinkProfile::fixed(DELAY)).await;

    let sent_at = Instant::now();
    pair.a.send_to(b"hello", pair.relay_b).await.unwrap();
    let (datagram, from) = recv(&pair.b).await;
    assert!(
        sent_at.elapsed() >= DELAY,
        "arrived after {:?}",
        sent_at.elapsed()
    );
    assert_eq!((datagram.as_slice(), from), (&b"hello"[..], pair.relay_a));

    // The reply goes to where it came from, through the emulator again.
    let sent_at = Instant::now();
    pair.b.send_to(b"hello yourself", from).await.unwrap();
    let (datagram, from) = recv(&pair.a).await;
    assert!(sent_at.elapsed() >= DELAY);
    assert_eq!(
        (datagram.as_slice(), from),
        (&b"hello yourself"[..], pair.relay_b)
    );

    let counters = pair
        .relay
        .with_underlay(|u| *u.counters(pair.link).unwrap());
    assert_eq!(
        (counters.forward.delivered, counters.reverse.delivered),
        (1, 1)
    );
    let relay = pair.relay.counters();
    assert_eq!(
        (relay.received, relay.forwarded, relay.unknown_source),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn many_datagrams_arrive_in_order() {
    let profile = LinkProfile {
        jitter: Duration::from_millis(5),
        ..LinkProfile::CITY_AREA
    };
    let pair = pair(profile).await;
    for i in 0..100u32 {
        pair.a
            .send_to(&i.to_be_bytes(), pair.relay_b)
            .await
            .unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(recv(&pair.b).await.0, i.to_be_bytes());
    }
}

#[tokio::test]
async fn loss_of_one_drops_everything() {
    let pair = pair(LinkProfile {
        loss: 1.0,
        ..LinkProfile::fixed(DELAY)
    })
    .await;
    for _ in 0..20 {
        pair.a.send_to(b"lost", pair.relay_b).await.unwrap();
    }
    pair.wait_for("20 losses", |c| c.dropped_loss == 20).await;
    silent(&pair.b, 4 * DELAY).await;
    assert_eq!(pair.forward().delivered, 0);
}

#[tokio::test]
async fn a_cut_drops_in_flight_and_later_datagrams_and_a_restore_delivers() {
    let pair = pair(LinkProfile::fixed(4 * DELAY)).await;

    pair.a.send_to(b"in flight", pair.relay_b).await.unwrap();
    pair.wait_for("the first datagram on the wire", |c| c.sent == 1)
        .await;
    pair.relay
        .with_underlay(|u| u.set_up(pair.link, false))
        .unwrap();
    pair.a.send_to(b"while cut", pair.relay_b).await.unwrap();
    pair.wait_for("a drop while down", |c| c.dropped_down == 1)
        .await;
    silent(&pair.b, 8 * DELAY).await;
    assert_eq!(pair.forward().dropped_cut, 1);

    pair.relay
        .with_underlay(|u| u.set_up(pair.link, true))
        .unwrap();
    pair.a.send_to(b"restored", pair.relay_b).await.unwrap();
    assert_eq!(recv(&pair.b).await.0, b"restored");
}

#[tokio::test]
async fn strangers_are_dropped_and_bad_attachments_refused() {
    let pair = pair(LinkProfile::fixed(DELAY)).await;

    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(b"who am I", pair.relay_b).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while pair.relay.counters().unknown_source == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pair.forward().sent, 0, "never reached the underlay");

    let outside = SocketAddr::from(([192, 0, 2, 1], 9));
    assert!(
        matches!(pair.relay.attach(node(1), outside), Err(RelayError::NotLoopback(a)) if a == outside)
    );
    let agent = stranger.local_addr().unwrap();
    assert!(
        matches!(pair.relay.attach(node(3), agent), Err(RelayError::UnknownNode(n)) if n == node(3))
    );
    let b = pair.b.local_addr().unwrap();
    assert!(
        matches!(pair.relay.attach(node(1), b), Err(RelayError::AgentTaken { node: n, .. }) if n == node(2))
    );
    assert!(matches!(
        pair.relay.add_node(node(1)).await,
        Err(RelayError::DuplicateNode(_))
    ));

    // A restarted agent on a new port re-attaches; the old address is a stranger now.
    pair.relay.attach(node(1), agent).unwrap();
    stranger.send_to(b"me again", pair.relay_b).await.unwrap();
    assert_eq!(recv(&pair.b).await, (b"me again".to_vec(), pair.relay_a));
}

#[test]
fn the_relay_needs_a_runtime() {
    assert!(matches!(
        Relay::start(Underlay::new(1)),
        Err(RelayError::NoRuntime)
    ));
}
