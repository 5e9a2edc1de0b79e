//! Real TLS over 127.0.0.1 with the controller's configurations of `pki::tls`: an enrolling
//! agent without a certificate reaches the controller on the root alone; a node and a
//! provincial operator present their certificates and `caller` says which is which; a
//! revoked node is refused at the handshake; and a server presenting a node certificate is
//! not taken for the controller, whatever the trust mode. Each refusal is asserted on the
//! side that detects it, with the precise `VerifyError`, and the peer sees the TLS alert.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::tls::{HELLO, Outcome, REPLY, handshake, refused_by_client, refused_by_server};
use common::{Hierarchy, NodeKeys};
use pki::authority::{Revocation, pem_certificate};
use pki::profile::NODE_LIFETIME;
use pki::tls::{
    Caller, ControllerTrust, Credentials, SharedTrust, caller, controller_client_config,
    controller_server_config,
};
use pki::{Authority, AuthorityScope, Issued, KeyAlgorithm, PrivateKey, Reason, Role, VerifyError};
use rustls::{AlertDescription, ClientConfig, HandshakeKind, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use topology::Plane;

const DAY: Duration = Duration::from_secs(86_400);

/// Any name: the controller is known by its URI, and its certificate does not name
/// 127.0.0.1 (it could not: loopback lies outside the ministry CA's blocks).
fn dialled() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

fn credentials(key: &PrivateKey, leaf: &CertificateDer<'_>, ca: &Authority) -> Credentials {
    let chain = pem_certificate(leaf) + &ca.certificate_pem();
    Credentials::from_pem(&chain, &key.to_pem()).unwrap()
}

/// The national PKI, the controller's credentials, and the controller's view of the trust.
struct Lab {
    pki: Hierarchy,
    controller_key: PrivateKey,
    controller: Issued,
    server_trust: Arc<SharedTrust>,
    client_trust: Arc<SharedTrust>,
}

impl Lab {
    fn new() -> Lab {
        let pki = Hierarchy::new(KeyAlgorithm::EcdsaP256);
        let (controller_key, controller) =
            pki.controller(KeyAlgorithm::EcdsaP256, SystemTime::now(), 90 * DAY);
        Lab {
            server_trust: SharedTrust::new(pki.bundle(&[], 1)),
            client_trust: SharedTrust::new(pki.bundle(&[], 1)),
            controller_key,
            controller,
            pki,
        }
    }

    /// The controller's HTTPS server.
    fn server(&self) -> Arc<ServerConfig> {
        let credentials = credentials(
            &self.controller_key,
            &self.controller.certificate,
            &self.pki.ministry,
        );
        Arc::new(controller_server_config(self.server_trust.clone(), credentials).unwrap())
    }

    /// A server that presents `leaf` (issued by `ca`) where the controller should be.
    fn impostor(
        &self,
        key: &PrivateKey,
        leaf: &CertificateDer<'_>,
        ca: &Authority,
    ) -> Arc<ServerConfig> {
        let credentials = credentials(key, leaf, ca);
        Arc::new(controller_server_config(self.server_trust.clone(), credentials).unwrap())
    }

    fn bootstrap(&self) -> ControllerTrust {
        ControllerTrust::Bootstrap(self.pki.root.certificate().clone())
    }

    fn full(&self) -> ControllerTrust {
        ControllerTrust::Full(self.client_trust.clone())
    }

    fn client(&self, trust: ControllerTrust, client: Option<Credentials>) -> Arc<ClientConfig> {
        Arc::new(controller_client_config(trust, client).unwrap())
    }

    /// dc:1401's business-plane key and certificate from the Shanxi CA.
    fn node(&self) -> (NodeKeys, Issued) {
        let keys = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
        let issued = keys.issue(&self.pki.shanxi, SystemTime::now(), NODE_LIFETIME);
        (keys, issued)
    }

    /// A client with `trust` that presents a fresh certificate of dc:1401 ([`Lab::node`]);
    /// with that node's keys and certificate.
    fn node_client(&self, trust: ControllerTrust) -> (NodeKeys, Issued, Arc<ClientConfig>) {
        let (keys, node) = self.node();
        let credentials = credentials(&keys.key, &node.certificate, &self.pki.shanxi);
        let client = self.client(trust, Some(credentials));
        (keys, node, client)
    }

    /// Who the server says called, from the chain it received.
    fn caller_of(&self, outcome: &Outcome) -> Result<Caller, VerifyError> {
        let session = outcome.as_ref().unwrap();
        caller(
            &self.server_trust.current(),
            &session.peer,
            SystemTime::now(),
        )
    }
}

#[test]
fn an_enrolling_agent_without_a_certificate_reaches_the_controller() {
    let lab = Lab::new();
    let server = lab.server();
    let client = lab.client(lab.bootstrap(), None);
    let (client_side, server_side) = handshake(&server, &client, dialled());
    let agent = client_side.unwrap();
    assert_eq!(agent.received, REPLY);
    assert_eq!(
        agent.peer,
        [
            lab.controller.certificate.clone(),
            lab.pki.ministry.certificate().clone()
        ]
    );
    let identity = lab
        .pki
        .bundle(&[], 1)
        .verify_controller(&agent.peer, SystemTime::now())
        .unwrap();
    assert_eq!(identity.serial, lab.controller.serial);

    // The server served an anonymous client; `caller` says so.
    assert_eq!(server_side.as_ref().unwrap().received, HELLO);
    assert!(server_side.as_ref().unwrap().peer.is_empty());
    assert_eq!(lab.caller_of(&server_side), Err(VerifyError::NoCertificate));

    // The same configuration again: a full handshake, never a resumed one.
    let (again, _) = handshake(&server, &client, dialled());
    assert_eq!(again.unwrap().kind, Some(HandshakeKind::Full));

    // With the full bundle too, and dialled by a DNS name the certificate does not carry.
    let client = lab.client(lab.full(), None);
    let name = ServerName::try_from("api.example.org").unwrap();
    let (client_side, server_side) = handshake(&server, &client, name);
    assert_eq!(client_side.unwrap().received, REPLY);
    assert_eq!(server_side.unwrap().kind, Some(HandshakeKind::Full));
}

#[test]
fn nodes_and_operators_are_told_apart() {
    let lab = Lab::new();
    let server = lab.server();

    let (keys, node, client) = lab.node_client(lab.full());
    let (client_side, server_side) = handshake(&server, &client, dialled());
    assert_eq!(client_side.unwrap().received, REPLY);
    let Ok(Caller::Node(identity)) = lab.caller_of(&server_side) else {
        panic!("not a node: {:?}", lab.caller_of(&server_side));
    };
    assert_eq!(identity.node.to_string(), "dc:1401");
    assert_eq!(
        (identity.plane, identity.wireguard_key, identity.serial),
        (Plane::Business, keys.wireguard, node.serial)
    );

    let (key, operator) = lab.pki.operator("lisi", "李四", Role::Engineer, Some("14"));
    let client = lab.client(
        lab.bootstrap(),
        Some(credentials(&key, &operator.certificate, &lab.pki.ministry)),
    );
    let (client_side, server_side) = handshake(&server, &client, dialled());
    assert_eq!(client_side.unwrap().received, REPLY);
    let Ok(Caller::Operator(identity)) = lab.caller_of(&server_side) else {
        panic!("not an operator: {:?}", lab.caller_of(&server_side));
    };
    assert_eq!(
        (
            identity.login.as_str(),
            identity.name.as_str(),
            identity.role
        ),
        ("lisi", "李四", Role::Engineer)
    );
    assert_eq!(identity.province.as_deref(), Some("14"));

    let (key, operator) = lab.pki.operator("zhangsan", "张三", Role::Auditor, None);
    let client = lab.client(
        lab.full(),
        Some(credentials(&key, &operator.certificate, &lab.pki.ministry)),
    );
    let (_, server_side) = handshake(&server, &client, dialled());
    let Ok(Caller::Operator(identity)) = lab.caller_of(&server_side) else {
        panic!("not an operator: {:?}", lab.caller_of(&server_side));
    };
    assert_eq!((identity.role, identity.province), (Role::Auditor, None));
}

#[test]
fn a_revoked_node_is_refused_at_the_handshake() {
    let lab = Lab::new();
    let server = lab.server();
    let (_, node, client) = lab.node_client(lab.full());
    let (first, _) = handshake(&server, &client, dialled());
    assert_eq!(first.unwrap().received, REPLY);

    let revoked = Revocation {
        serial: node.serial.clone(),
        reason: Reason::KeyCompromise,
        revoked_at: SystemTime::now(),
    };
    lab.server_trust
        .replace(lab.pki.bundle(&[(lab.pki.shanxi.scope(), revoked)], 2));
    let refusal = refused_by_server(
        handshake(&server, &client, dialled()),
        AlertDescription::CertificateRevoked,
    );
    assert_eq!(refusal, VerifyError::Revoked);

    // A certificate that is neither a node's nor an operator's: the controller's own.
    let client = lab.client(
        lab.full(),
        Some(credentials(
            &lab.controller_key,
            &lab.controller.certificate,
            &lab.pki.ministry,
        )),
    );
    let refusal = refused_by_server(
        handshake(&server, &client, dialled()),
        AlertDescription::CertificateUnknown,
    );
    assert_eq!(
        refusal,
        VerifyError::WrongKind {
            expected: "node or operator"
        }
    );
}

#[test]
fn a_node_is_not_taken_for_the_controller_in_either_mode() {
    let lab = Lab::new();
    // The ministry's own node, issued by the very CA that issues the controller, and a
    // province's node.
    let ministry = NodeKeys::new("dc:ministry", Plane::Business, KeyAlgorithm::EcdsaP256);
    let ministry_cert = ministry
        .issue(&lab.pki.ministry, SystemTime::now(), NODE_LIFETIME)
        .certificate;
    let (province, province_cert) = lab.node();
    let impostors = [
        lab.impostor(&ministry.key, &ministry_cert, &lab.pki.ministry),
        lab.impostor(&province.key, &province_cert.certificate, &lab.pki.shanxi),
    ];
    for server in &impostors {
        for trust in [lab.bootstrap(), lab.full()] {
            let (_, _, as_node) = lab.node_client(trust.clone());
            for client in [lab.client(trust, None), as_node] {
                let refusal = refused_by_client(
                    handshake(server, &client, dialled()),
                    AlertDescription::CertificateUnknown,
                );
                assert_eq!(
                    refusal,
                    VerifyError::WrongKind {
                        expected: "controller"
                    }
                );
            }
        }
    }
}

#[test]
fn a_revoked_controller_is_refused_with_full_trust_only() {
    let lab = Lab::new();
    let server = lab.server();
    let revoked = Revocation {
        serial: lab.controller.serial.clone(),
        reason: Reason::KeyCompromise,
        revoked_at: SystemTime::now(),
    };
    lab.client_trust
        .replace(lab.pki.bundle(&[(AuthorityScope::Ministry, revoked)], 2));
    let refusal = refused_by_client(
        handshake(&server, &lab.client(lab.full(), None), dialled()),
        AlertDescription::CertificateRevoked,
    );
    assert_eq!(refusal, VerifyError::Revoked);
    // Bootstrap has no CRL (see `pki::tls::controller` for why that is acceptable).
    let (client_side, _) = handshake(&server, &lab.client(lab.bootstrap(), None), dialled());
    assert_eq!(client_side.unwrap().received, REPLY);

    // Bootstrap still checks the chain: another PKI's root does not vouch for this one.
    let other = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let stranger = ControllerTrust::Bootstrap(other.root.certificate().clone());
    let refusal = refused_by_client(
        handshake(&server, &lab.client(stranger, None), dialled()),
        AlertDescription::DecryptError,
    );
    assert_eq!(refusal, VerifyError::BadSignature);

    // A Bootstrap root that is no certificate fails when the configuration is built.
    let junk = ControllerTrust::Bootstrap(CertificateDer::from(b"junk".to_vec()));
    let err = controller_client_config(junk, None).unwrap_err();
    assert!(
        matches!(
            pki::tls::verify_error(&err),
            Some(VerifyError::Malformed(_))
        ),
        "{err:?}"
    );
}
