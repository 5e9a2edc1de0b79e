//! A three-level overlay for tests: the ministry, Shanxi (dc:14) and Taiyuan (dc:1401) on the
//! business plane, with a real root, real ministry and Shanxi CAs, real certificates issued
//! from CSRs and real WireGuard keys — the bundles the controller will push.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agent::control::{
    BUNDLE_FORMAT, Bundle, FilterSettings, ModelSources, PeerConfig, PeerRole, PlaneConfig,
    ProbeSettings, Trust,
};
use agent::model::Model;
use ipnet::IpNet;
use pki::authority::{Revocation, pem_crl};
use pki::request::{Request, node_request, read_request_pem};
use pki::{Authority, AuthorityScope, KeyAlgorithm, NodeBinding, PrivateKey, WireGuardKey};
use topology::{NodeId, Plane, Zone};

pub const PLANE: Plane = Plane::Business;

pub struct Member {
    pub node: NodeId,
    pub wireguard: [u8; 32],
    pub public: WireGuardKey,
    pub chain: String,
    pub serial: pki::Serial,
    pub listen: SocketAddr,
    /// A second underlay address of the same node (its backup uplink path).
    pub backup: SocketAddr,
}

pub struct Lab {
    pub model: Arc<Model>,
    pub root: Authority,
    pub ministry_ca: Authority,
    pub shanxi_ca: Authority,
    pub members: Vec<Member>,
    pub revoked: Vec<(AuthorityScope, Revocation)>,
    pub crl_number: u64,
}

pub const MINISTRY: &str = "dc:ministry";
pub const PROVINCE: &str = "dc:14";
pub const CITY: &str = "dc:1401";

impl Lab {
    /// The three nodes, listening on 127.0.0.1 at `base_port`, +1, +2 (backups at +10…).
    pub fn new(base_port: u16) -> Lab {
        let model = Model::load(&ModelSources::default()).unwrap();
        let now = SystemTime::now();
        let root = Authority::create_root(KeyAlgorithm::EcdsaP256, now).unwrap();
        let issuing = |scope: &str| {
            root.create_issuing(
                scope.parse().unwrap(),
                KeyAlgorithm::EcdsaP256,
                &model.network,
                &model.allocation,
                now,
            )
            .unwrap()
        };
        let (ministry_ca, shanxi_ca) = (issuing("ministry"), issuing("14"));
        let mut lab = Lab {
            model,
            root,
            ministry_ca,
            shanxi_ca,
            members: Vec::new(),
            revoked: Vec::new(),
            crl_number: 1,
        };
        for (i, node) in [MINISTRY, PROVINCE, CITY].into_iter().enumerate() {
            let member = lab.enrol(node, base_port + i as u16, base_port + 10 + i as u16);
            lab.members.push(member);
        }
        lab
    }

    fn enrol(&self, node: &str, port: u16, backup_port: u16) -> Member {
        self.enrol_on(node, PLANE, port, backup_port)
    }

    /// A member's certificate and keys for another plane (each plane has its own).
    pub fn enrol_on(&self, node: &str, plane: Plane, port: u16, backup_port: u16) -> Member {
        let node: NodeId = node.parse().unwrap();
        let secret = x25519_dalek::StaticSecret::random();
        let public = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        let (zones, addresses) = agent::identity::planned(
            &self.model.network,
            &self.model.allocation,
            node,
            plane,
            None,
        )
        .unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let binding = NodeBinding {
            node,
            plane,
            zones,
            wireguard_key: public,
        };
        let Request::Node(request) =
            read_request_pem(node_request(&key, &binding, &addresses).unwrap().as_bytes()).unwrap()
        else {
            panic!("node request")
        };
        let ca = self.ca_of(node);
        let issued = ca
            .issue_node(
                &request,
                &self.model.network,
                &self.model.allocation,
                SystemTime::now(),
                Duration::from_secs(30 * 86_400),
            )
            .unwrap();
        Member {
            node,
            wireguard: secret.to_bytes(),
            public,
            chain: format!("{}{}", issued.pem(), ca.certificate_pem()),
            serial: issued.serial,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            backup: SocketAddr::from(([127, 0, 0, 1], backup_port)),
        }
    }

    fn ca_of(&self, node: NodeId) -> &Authority {
        match AuthorityScope::of_node(&node) {
            AuthorityScope::Ministry => &self.ministry_ca,
            _ => &self.shanxi_ca,
        }
    }

    pub fn member(&self, node: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.node.to_string() == node)
            .unwrap()
    }

    /// A zone's first host address of a node.
    pub fn address(&self, node: &str, zone: Zone) -> IpAddr {
        self.address_on(node, PLANE, zone)
    }

    /// A zone's first host address of a node on a plane.
    pub fn address_on(&self, node: &str, plane: Plane, zone: Zone) -> IpAddr {
        let ix = self.model.network.lookup(&node.parse().unwrap()).unwrap();
        self.model
            .allocation
            .overlay_addresses(plane, ix)
            .into_iter()
            .find(|(z, _)| *z == zone)
            .unwrap()
            .1
    }

    pub fn subtree(&self, node: &str) -> IpNet {
        self.subtree_on(node, PLANE)
    }

    pub fn subtree_on(&self, node: &str, plane: Plane) -> IpNet {
        let ix = self.model.network.lookup(&node.parse().unwrap()).unwrap();
        self.model.allocation.node(plane, ix).unwrap().block
    }

    pub fn trust(&self) -> Trust {
        let crls = [&self.root, &self.ministry_ca, &self.shanxi_ca]
            .into_iter()
            .map(|ca| {
                let mine: Vec<Revocation> = self
                    .revoked
                    .iter()
                    .filter(|(s, _)| *s == ca.scope())
                    .map(|(_, r)| r.clone())
                    .collect();
                let der = ca
                    .revocation_list(
                        &mine,
                        self.crl_number,
                        SystemTime::now(),
                        Duration::from_secs(3600),
                    )
                    .unwrap();
                pem_crl(&der)
            })
            .collect();
        Trust {
            root: self.root.certificate_pem(),
            intermediates: vec![
                self.ministry_ca.certificate_pem(),
                self.shanxi_ca.certificate_pem(),
            ],
            crls,
        }
    }

    /// Revokes a member's certificate on its CA's next CRL.
    pub fn revoke(&mut self, node: &str) {
        let member = self.member(node);
        let scope = AuthorityScope::of_node(&member.node);
        let serial = member.serial.clone();
        self.revoked.push((
            scope,
            Revocation {
                serial,
                reason: pki::Reason::KeyCompromise,
                revoked_at: SystemTime::now(),
            },
        ));
        self.crl_number += 1;
    }

    fn peer(
        &self,
        node: &str,
        role: PeerRole,
        allowed: Vec<IpNet>,
        with_backup: bool,
    ) -> PeerConfig {
        let member = self.member(node);
        PeerConfig {
            node: member.node,
            role,
            public_key: member.public,
            certificate: Some(member.chain.clone()),
            endpoint: Some(member.listen),
            backup: with_backup.then_some(member.backup),
            allowed,
            keepalive_s: None,
            qos: Default::default(),
        }
    }

    /// The bundle of `node`: its uplink and children among the three.
    pub fn bundle(&self, node: &str, probes: ProbeSettings, uplink_backup: bool) -> Bundle {
        // The uplink carries the whole plane (the ministry's block is the plane's supernet).
        let everything = self.subtree(MINISTRY);
        let peers = match node {
            MINISTRY => vec![self.peer(
                PROVINCE,
                PeerRole::Child,
                vec![self.subtree(PROVINCE)],
                false,
            )],
            PROVINCE => vec![
                self.peer(MINISTRY, PeerRole::Uplink, vec![everything], false),
                self.peer(CITY, PeerRole::Child, vec![self.subtree(CITY)], false),
            ],
            _ => vec![self.peer(PROVINCE, PeerRole::Uplink, vec![everything], uplink_backup)],
        };
        let member = self.member(node);
        Bundle {
            format: BUNDLE_FORMAT,
            version: 1,
            node: member.node,
            trust: self.trust(),
            probes,
            filter: FilterSettings::default(),
            model: ModelSources::default(),
            conference: Default::default(),
            audit: None,
            planes: vec![PlaneConfig {
                plane: PLANE,
                listen: member.listen,
                backup_listen: (node != CITY).then_some(member.backup),
                private_key: format!("/nonexistent/{node}.key").into(),
                certificate: member.chain.clone(),
                peers,
            }],
        }
    }

    pub fn keys(&self, node: &str) -> Vec<(Plane, [u8; 32])> {
        vec![(PLANE, self.member(node).wireguard)]
    }
}

/// An IPv4 TCP SYN (or UDP datagram) between two overlay addresses.
pub fn packet(src: IpAddr, dst: IpAddr, proto: u8, port: u16, syn: bool) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let transport_len = if proto == 6 { 20 } else { 8 };
    let total = 20 + transport_len + 16;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let checksum = ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    p[20..22].copy_from_slice(&40_000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    if proto == 6 {
        p[32] = 5 << 4; // data offset
        p[33] = if syn { 0x02 } else { 0x10 };
        p[34..36].copy_from_slice(&65_535u16.to_be_bytes());
    } else {
        p[24..26].copy_from_slice(&((transport_len + 16) as u16).to_be_bytes());
    }
    p
}

/// Grows an IPv4 packet from [`packet`] to `size` bytes, fixing its length and checksum.
pub fn pad(packet: &mut Vec<u8>, size: usize) {
    packet.resize(size.max(packet.len()), 0);
    let len = packet.len() as u16;
    packet[2..4].copy_from_slice(&len.to_be_bytes());
    packet[10..12].copy_from_slice(&[0, 0]);
    let checksum = ipv4_checksum(&packet[..20]);
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
