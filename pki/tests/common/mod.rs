//! A small national PKI for tests: root, ministry CA, the Shanxi (14) and Guangdong (44)
//! CAs, and node, operator and controller credentials issued the way the controller issues
//! them.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

pub mod tls;

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pki::authority::Revocation;
use pki::profile::OPERATOR_LIFETIME;
use pki::request::{Request, node_request, operator_request, read_request_pem};
use pki::{
    Authority, AuthorityScope, Issued, KeyAlgorithm, NodeBinding, PrivateKey, Role, TrustBundle,
    WireGuardKey,
};
use rustls_pki_types::CertificateRevocationListDer;
use topology::plan::Allocation;
use topology::{Network, NodeId, Plan, Plane};

pub fn national() -> &'static (Network, Allocation) {
    static NATIONAL: OnceLock<(Network, Allocation)> = OnceLock::new();
    NATIONAL.get_or_init(|| {
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        (network, allocation)
    })
}

pub struct Hierarchy {
    pub root: Authority,
    pub ministry: Authority,
    pub shanxi: Authority,
    pub guangdong: Authority,
}

impl Hierarchy {
    pub fn new(algorithm: KeyAlgorithm) -> Hierarchy {
        let (network, allocation) = national();
        let now = SystemTime::now();
        let root = Authority::create_root(algorithm, now).unwrap();
        let issuing = |scope: &str| {
            root.create_issuing(scope.parse().unwrap(), algorithm, network, allocation, now)
                .unwrap()
        };
        Hierarchy {
            ministry: issuing("ministry"),
            shanxi: issuing("14"),
            guangdong: issuing("44"),
            root,
        }
    }

    pub fn authority(&self, scope: AuthorityScope) -> &Authority {
        [&self.ministry, &self.shanxi, &self.guangdong]
            .into_iter()
            .find(|a| a.scope() == scope)
            .unwrap()
    }

    /// Every CA's CRL, with `revoked` on the CRL of the CA that issued them.
    pub fn crls(
        &self,
        revoked: &[(AuthorityScope, Revocation)],
        number: u64,
    ) -> Vec<CertificateRevocationListDer<'static>> {
        [&self.root, &self.ministry, &self.shanxi, &self.guangdong]
            .into_iter()
            .map(|ca| {
                let mine: Vec<Revocation> = revoked
                    .iter()
                    .filter(|(s, _)| *s == ca.scope())
                    .map(|(_, r)| r.clone())
                    .collect();
                ca.revocation_list(&mine, number, SystemTime::now(), Duration::from_secs(3600))
                    .unwrap()
            })
            .collect()
    }

    pub fn bundle(&self, revoked: &[(AuthorityScope, Revocation)], number: u64) -> TrustBundle {
        TrustBundle::new(
            self.root.certificate().clone(),
            vec![
                self.ministry.certificate().clone(),
                self.shanxi.certificate().clone(),
                self.guangdong.certificate().clone(),
            ],
            &self.crls(revoked, number),
        )
        .unwrap()
    }
}

/// An address of the ministry's own block (its business-plane management address): inside
/// the ministry CA's name constraints, so a controller certificate may name it.
pub fn ministry_address() -> IpAddr {
    let (network, allocation) = national();
    allocation.overlay_addresses(Plane::Business, network.ministry())[0].1
}

impl Hierarchy {
    /// The controller's key and its certificate from the ministry CA, valid from `now` for
    /// `lifetime`, reached as `controller.jinbao.example` and the ministry address.
    pub fn controller(
        &self,
        algorithm: KeyAlgorithm,
        now: SystemTime,
        lifetime: Duration,
    ) -> (PrivateKey, Issued) {
        let key = PrivateKey::generate(algorithm).unwrap();
        let issued = self
            .ministry
            .issue_controller(
                &key,
                &["controller.jinbao.example".to_owned()],
                &[ministry_address()],
                now,
                lifetime,
            )
            .unwrap();
        (key, issued)
    }

    /// An operator's key and certificate from the ministry CA.
    pub fn operator(
        &self,
        login: &str,
        name: &str,
        role: Role,
        province: Option<&str>,
    ) -> (PrivateKey, Issued) {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = operator_request(&key, name, login).unwrap();
        let Request::Operator(request) = read_request_pem(pem.as_bytes()).unwrap() else {
            panic!("not an operator request")
        };
        let province = province.map(|p| p.parse().unwrap());
        let issued = self
            .ministry
            .issue_operator(
                &request,
                role,
                province,
                SystemTime::now(),
                OPERATOR_LIFETIME,
            )
            .unwrap();
        (key, issued)
    }
}

/// A node's keys and the request it would send for `plane`.
pub struct NodeKeys {
    pub key: PrivateKey,
    pub wireguard: WireGuardKey,
    pub binding: NodeBinding,
    pub addresses: Vec<IpAddr>,
}

impl NodeKeys {
    pub fn new(node: &str, plane: Plane, algorithm: KeyAlgorithm) -> NodeKeys {
        let (network, allocation) = national();
        let node: NodeId = node.parse().unwrap();
        let ix = network.lookup(&node).unwrap();
        let planned = allocation.overlay_addresses(plane, ix);
        let secret = x25519_dalek::StaticSecret::random();
        let wireguard = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        NodeKeys {
            key: PrivateKey::generate(algorithm).unwrap(),
            wireguard,
            binding: NodeBinding {
                node,
                plane,
                zones: planned.iter().map(|(z, _)| *z).collect(),
                wireguard_key: wireguard,
            },
            addresses: planned.iter().map(|(_, a)| *a).collect(),
        }
    }

    pub fn request_pem(&self) -> String {
        node_request(&self.key, &self.binding, &self.addresses).unwrap()
    }

    pub fn request(&self) -> pki::request::NodeRequest {
        match read_request_pem(self.request_pem().as_bytes()).unwrap() {
            Request::Node(request) => request,
            Request::Operator(_) => panic!("not a node request"),
        }
    }

    /// Issued by `ca` at `now` for `lifetime`.
    pub fn issue(&self, ca: &Authority, now: SystemTime, lifetime: Duration) -> Issued {
        let (network, allocation) = national();
        ca.issue_node(&self.request(), network, allocation, now, lifetime)
            .unwrap()
    }
}
