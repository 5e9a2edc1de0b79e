//! A peer of one plane instance: its tunnel, its probes, the path its traffic takes, and the
//! certificate check that decides whether it is a peer at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use boringtun::noise::Tunn;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey, StaticSecret};
use pki::{NodeExpectation, TrustBundle, Usage};
use topology::Plane;

use crate::control::{PathChoice, PeerConfig, PeerHealth, PeerRole, PeerStatus, ProbeSettings};
use crate::probe::{Failover, LinkProbe};

/// Overlay traffic counters of one peer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    pub(crate) rx_packets: u64,
    pub(crate) tx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
}

/// A peer that passed its certificate check.
pub(crate) struct Peer {
    pub(crate) config: PeerConfig,
    pub(crate) tunn: Box<Tunn>,
    /// In-tunnel probes and the overlay addresses they run between (ours, theirs); `None`
    /// for unmanaged peers, which do not answer them.
    pub(crate) probe: Option<(LinkProbe, IpAddr, IpAddr)>,
    /// Primary/backup choice, for a peer with a backup endpoint.
    pub(crate) failover: Option<Failover>,
    pub(crate) path: PathChoice,
    /// Where its traffic goes now: (our socket, its address).
    pub(crate) endpoint: Option<(SocketAddr, SocketAddr)>,
    pub(crate) traffic: Traffic,
    pub(crate) reported: PeerHealth,
    /// Until when this side leaves opening the tunnel to the other (see `PlaneNode`'s
    /// probes); `None` once it may open it itself.
    pub(crate) waits_until: Option<Instant>,
    /// Its allowed prefixes as (family, network bits, mask): checked on every packet.
    sources: Vec<(bool, u128, u128)>,
    /// Conference reservations toward it, when it has any (see `qos`).
    pub(crate) shaper: Option<super::qos::LinkShaper>,
}

impl Peer {
    /// Checks the peer's certificate — chain to the root, CRLs, plane, node and WireGuard
    /// key — and sets up its tunnel; `Err` says why it is refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn admit(
        config: &PeerConfig,
        plane: Plane,
        index: u32,
        private: &StaticSecret,
        limiter: &Arc<RateLimiter>,
        trust: &TrustBundle,
        wall: SystemTime,
        probing: Option<(&ProbeSettings, IpAddr, IpAddr, Instant)>,
        listen: SocketAddr,
    ) -> Result<Peer, String> {
        check_certificate(config, plane, trust, wall)?;
        let tunn = Tunn::new(
            private.clone(),
            PublicKey::from(config.public_key.0),
            None,
            config.keepalive_s,
            index,
            Some(Arc::clone(limiter)),
        );
        let probe = match (config.role, probing) {
            (PeerRole::Unmanaged, _) | (_, None) => None,
            (_, Some((settings, ours, theirs, now))) => {
                Some((LinkProbe::new(settings, now), ours, theirs))
            }
        };
        let failover = match (config.backup, probing) {
            (Some(_), Some((settings, ..))) => Some(Failover::new(settings.hold_down())),
            _ => None,
        };
        Ok(Peer {
            config: config.clone(),
            tunn: Box::new(tunn),
            probe,
            failover,
            path: PathChoice::Primary,
            endpoint: config.endpoint.map(|remote| (listen, remote)),
            traffic: Traffic::default(),
            reported: PeerHealth::Unknown,
            waits_until: None,
            sources: config.allowed.iter().map(|net| prefix_bits(*net)).collect(),
            shaper: None,
        })
    }

    /// The probes' view of the peer (unmanaged peers: up while a handshake is recent).
    pub(crate) fn health(&self) -> PeerHealth {
        match &self.probe {
            Some((probe, ..)) => probe.health(),
            None => match self.tunn.time_since_last_handshake() {
                Some(age) if age.as_secs() < 180 => PeerHealth::Up,
                Some(_) => PeerHealth::Down,
                None => PeerHealth::Unknown,
            },
        }
    }

    /// Whether `addr` may be the source of a packet from this peer (cryptokey routing).
    pub(crate) fn allows_source(&self, addr: IpAddr) -> bool {
        let (v6, bits) = address_bits(addr);
        self.sources
            .iter()
            .any(|&(family, network, mask)| family == v6 && bits & mask == network)
    }

    pub(crate) fn status(&self, now: Instant) -> PeerStatus {
        let (rtt, loss, jitter) = match &self.probe {
            Some((probe, ..)) => (probe.rtt(), probe.loss(), probe.jitter()),
            None => (None, 0.0, std::time::Duration::ZERO),
        };
        PeerStatus {
            node: self.config.node,
            role: self.config.role,
            public_key: self.config.public_key,
            endpoint: self.endpoint.map(|(_, remote)| remote),
            path: self.path,
            allowed: self.config.allowed.clone(),
            handshake_age: self.tunn.time_since_last_handshake(),
            rx_bytes: self.traffic.rx_bytes,
            tx_bytes: self.traffic.tx_bytes,
            rx_packets: self.traffic.rx_packets,
            tx_packets: self.traffic.tx_packets,
            health: self.health(),
            rtt,
            loss,
            jitter,
            conference: self.shaper.as_ref().map(|shaper| shaper.counters(now)),
        }
    }
}

/// The peer's certificate must chain to the root through a CA of the bundle, be on no CRL,
/// be for this plane and this node, and bind the key the bundle gives for it. Unmanaged
/// peers have no certificate: their key is pinned by the bundle instead.
pub(crate) fn check_certificate(
    config: &PeerConfig,
    plane: Plane,
    trust: &TrustBundle,
    wall: SystemTime,
) -> Result<(), String> {
    if config.role == PeerRole::Unmanaged {
        return Ok(());
    }
    let pem = config
        .certificate
        .as_deref()
        .ok_or_else(|| "no certificate".to_owned())?;
    let chain = super::chain(pem)?;
    let expect = NodeExpectation {
        plane: Some(plane),
        node: Some(config.node),
        wireguard_key: Some(config.public_key),
    };
    trust
        .verify_node(&chain, wall, Usage::Server, &expect)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// An address as (is IPv6, its bits in the low end of a u128).
fn address_bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// A prefix as (is IPv6, network bits, mask), so membership is one AND and one compare.
fn prefix_bits(net: ipnet::IpNet) -> (bool, u128, u128) {
    let (v6, bits) = address_bits(net.addr());
    let width = if v6 { 128 } else { 32 };
    let host = width - u32::from(net.prefix_len());
    let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let mask = if host >= 128 {
        0
    } else {
        all & !((1u128 << host) - 1)
    };
    (v6, bits & mask, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_membership_matches_ipnet() {
        let nets = [
            "10.32.0.0/12",
            "0.0.0.0/0",
            "10.1.2.3/32",
            "fd00::/8",
            "::/0",
            "fd00::1/128",
        ];
        let addrs = [
            "10.32.7.9",
            "10.48.0.1",
            "10.1.2.3",
            "10.1.2.4",
            "fd12::1",
            "fe80::1",
            "fd00::1",
        ];
        for net in nets {
            let net: ipnet::IpNet = net.parse().unwrap();
            let (family, network, mask) = prefix_bits(net);
            for addr in addrs {
                let addr: IpAddr = addr.parse().unwrap();
                let (v6, bits) = address_bits(addr);
                let ours = family == v6 && bits & mask == network;
                assert_eq!(ours, net.contains(&addr), "{net} ∋ {addr}");
            }
        }
    }
}
