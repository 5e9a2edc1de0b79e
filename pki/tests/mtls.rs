//! Real mutual-TLS handshakes over 127.0.0.1 with the configurations of `pki::tls`: a city
//! node (dc:1401) dials its province (dc:14), both present node certificates and verify the
//! other's, and a few bytes go each way. Each refusal is asserted on the side that detects
//! it, with the precise [`VerifyError`], and the other side sees the matching TLS alert:
//! expiry, a revocation published after a first successful handshake, a certificate forged
//! with another province's CA, the wrong plane, the wrong node, and a tampered certificate.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::tls::{self, HELLO, Outcome, REPLY, refused_by_client, refused_by_server};
use common::{Hierarchy, NodeKeys};
use pki::authority::pem_certificate;
use pki::binding::{NODE_OID, node_uri};
use pki::profile::NODE_LIFETIME;
use pki::tls::{Credentials, SharedTrust, node_client_config, node_server_config, server_name};
use pki::{Authority, KeyAlgorithm, NodeExpectation, Reason, Revocation, Usage, VerifyError};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::{AlertDescription, ClientConfig, HandshakeKind, ServerConfig};
use rustls_pki_types::CertificateDer;
use topology::{NodeId, Plane};

const DAY: u64 = 86_400;

/// One handshake on 127.0.0.1: the server in a thread, the client here dialling `peer`.
/// Returns (client outcome, server outcome).
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    peer: &str,
) -> (Outcome, Outcome) {
    tls::handshake(server, client, server_name(&node(peer)))
}

fn node(id: &str) -> NodeId {
    id.parse().unwrap()
}

/// The national PKI, and each side's view of it (the server's is the one CRLs update).
struct Lab {
    pki: Hierarchy,
    server_trust: Arc<SharedTrust>,
    client_trust: Arc<SharedTrust>,
}

impl Lab {
    fn new() -> Lab {
        let pki = Hierarchy::new(KeyAlgorithm::EcdsaP256);
        Lab {
            server_trust: SharedTrust::new(pki.bundle(&[], 1)),
            client_trust: SharedTrust::new(pki.bundle(&[], 1)),
            pki,
        }
    }

    /// A node's keys and its certificate from the responsible CA, valid from `start`.
    fn node(
        &self,
        id: &str,
        plane: Plane,
        start: SystemTime,
    ) -> (NodeKeys, CertificateDer<'static>) {
        let keys = NodeKeys::new(id, plane, KeyAlgorithm::EcdsaP256);
        let cert = keys
            .issue(&self.pki.shanxi, start, NODE_LIFETIME)
            .certificate;
        (keys, cert)
    }

    /// A business-plane server presenting `cert`.
    fn server(&self, keys: &NodeKeys, cert: &CertificateDer<'_>) -> Arc<ServerConfig> {
        let credentials = credentials(keys, cert, &self.pki.shanxi);
        Arc::new(
            node_server_config(self.server_trust.clone(), Plane::Business, credentials).unwrap(),
        )
    }

    /// A business-plane client presenting `cert` (issued by `ca`) and dialling `peer`.
    fn client(
        &self,
        keys: &NodeKeys,
        cert: &CertificateDer<'_>,
        ca: &Authority,
        peer: &str,
    ) -> Arc<ClientConfig> {
        let credentials = credentials(keys, cert, ca);
        let config = node_client_config(
            self.client_trust.clone(),
            Plane::Business,
            node(peer),
            credentials,
        );
        Arc::new(config.unwrap())
    }

    /// The province dc:14 serving; a Shanxi-issued client certificate dialling it.
    fn to_province(&self, keys: &NodeKeys, cert: &CertificateDer<'_>) -> (Outcome, Outcome) {
        self.to_province_from(keys, cert, &self.pki.shanxi)
    }

    fn to_province_from(
        &self,
        keys: &NodeKeys,
        cert: &CertificateDer<'_>,
        ca: &Authority,
    ) -> (Outcome, Outcome) {
        let (province, province_cert) = self.node("dc:14", Plane::Business, SystemTime::now());
        let server = self.server(&province, &province_cert);
        handshake(&server, &self.client(keys, cert, ca, "dc:14"), "dc:14")
    }
}

/// The PEM path a node uses: its certificate, then the issuing CA's, and its own key.
fn credentials(keys: &NodeKeys, cert: &CertificateDer<'_>, ca: &Authority) -> Credentials {
    let chain = pem_certificate(cert) + &ca.certificate_pem();
    Credentials::from_pem(&chain, &keys.key.to_pem()).unwrap()
}

/// A node certificate for `id` with `addresses`, signed by `signer` directly with rcgen:
/// what a stolen province CA key could produce, bypassing `issue_node`'s topology checks.
fn forge(
    keys: &NodeKeys,
    id: &str,
    addresses: &[IpAddr],
    signer: &Authority,
) -> CertificateDer<'static> {
    let id = node(id);
    let ca_key = KeyPair::from_pem(&signer.key_pem()).unwrap();
    let issuer = Issuer::from_ca_cert_der(signer.certificate(), ca_key).unwrap();
    let binding = pki::NodeBinding {
        node: id,
        ..keys.binding.clone()
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, id.to_string());
    let uri = SanType::URI(node_uri(binding.plane, &id).try_into().unwrap());
    params.subject_alt_names = std::iter::once(uri)
        .chain(addresses.iter().map(|&a| SanType::IpAddress(a)))
        .collect();
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(300)).into();
    params.not_after = (now + Duration::from_secs(DAY)).into();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &NODE_OID,
        binding.to_der(),
    )];
    let key = KeyPair::from_pem(&keys.key.to_pem()).unwrap();
    params.signed_by(&key, &issuer).unwrap().der().clone()
}

#[test]
fn a_city_and_its_province_authenticate_each_other() {
    let lab = Lab::new();
    let now = SystemTime::now();
    let (city, city_cert) = lab.node("dc:1401", Plane::Business, now);
    let (province, province_cert) = lab.node("dc:14", Plane::Business, now);
    let server = lab.server(&province, &province_cert);
    let client = lab.client(&city, &city_cert, &lab.pki.shanxi, "dc:14");
    let (client, server) = handshake(&server, &client, "dc:14");
    let (client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(
        (client.received.as_slice(), server.received.as_slice()),
        (REPLY, HELLO)
    );

    // Each side saw the other's leaf and the Shanxi CA, and they name the expected nodes.
    let bundle = lab.pki.bundle(&[], 1);
    let expect = NodeExpectation {
        plane: Some(Plane::Business),
        ..NodeExpectation::default()
    };
    let seen_by_server = bundle
        .verify_node(&server.peer, now, Usage::Client, &expect)
        .unwrap();
    let seen_by_client = bundle
        .verify_node(&client.peer, now, Usage::Server, &expect)
        .unwrap();
    assert_eq!(
        server.peer,
        [city_cert, lab.pki.shanxi.certificate().clone()]
    );
    assert_eq!(
        (seen_by_server.node, seen_by_server.wireguard_key),
        (node("dc:1401"), city.wireguard)
    );
    assert_eq!(
        (seen_by_client.node, seen_by_client.wireguard_key),
        (node("dc:14"), province.wireguard)
    );
    assert_eq!(seen_by_server.issuer.to_string(), "14");
    assert_eq!(
        (client.kind, server.kind),
        (Some(HandshakeKind::Full), Some(HandshakeKind::Full))
    );
}

#[test]
fn an_expired_node_certificate_is_refused() {
    let lab = Lab::new();
    let issued_at = SystemTime::now() - Duration::from_secs(40 * DAY);
    let (city, cert) = lab.node("dc:1401", Plane::Business, issued_at);
    let refusal = refused_by_server(
        lab.to_province(&city, &cert),
        AlertDescription::CertificateExpired,
    );
    let VerifyError::Expired { not_after, now } = refusal else {
        panic!("expected Expired, got {refusal:?}");
    };
    // Issued 40 days ago for 30 days: expired ten days ago (plus the seconds the test took).
    assert!(
        (10 * DAY..10 * DAY + 60).contains(&(now - not_after)),
        "{now} - {not_after}"
    );
}

#[test]
fn a_revocation_takes_effect_on_the_next_handshake() {
    let lab = Lab::new();
    let now = SystemTime::now();
    let (city, city_cert) = lab.node("dc:1401", Plane::Business, now);
    let issued = city.issue(&lab.pki.shanxi, now, NODE_LIFETIME);
    let (province, province_cert) = lab.node("dc:14", Plane::Business, now);
    // The same configurations for every handshake: only the shared bundle changes. Reusing
    // them also proves there is no session resumption, which would skip the CRL check.
    let server = lab.server(&province, &province_cert);
    let client = lab.client(&city, &issued.certificate, &lab.pki.shanxi, "dc:14");
    let (first, accepted) = handshake(&server, &client, "dc:14");
    let (first, accepted) = (first.unwrap(), accepted.unwrap());
    assert_eq!(
        (first.received.as_slice(), accepted.received.as_slice()),
        (REPLY, HELLO)
    );

    let revoked = Revocation {
        serial: issued.serial.clone(),
        reason: Reason::KeyCompromise,
        revoked_at: now,
    };
    lab.server_trust
        .replace(lab.pki.bundle(&[(lab.pki.shanxi.scope(), revoked)], 2));
    let refusal = refused_by_server(
        handshake(&server, &client, "dc:14"),
        AlertDescription::CertificateRevoked,
    );
    assert_eq!(refusal, VerifyError::Revoked);

    // Another certificate from the same CA is still accepted under the new CRL.
    let (_, second) = handshake(
        &server,
        &lab.client(&city, &city_cert, &lab.pki.shanxi, "dc:14"),
        "dc:14",
    );
    assert_eq!(second.unwrap().received, HELLO);
}

#[test]
fn another_provinces_ca_cannot_sign_for_shanxi() {
    let lab = Lab::new();
    let guangdong = &lab.pki.guangdong;

    // dc:1401 with its own Shanxi addresses (10.32.64.x), signed by the Guangdong CA: the
    // addresses lie outside Guangdong's IP name constraints (webpki's check).
    let city = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
    let rogue = forge(&city, "dc:1401", &city.addresses, guangdong);
    let refusal = refused_by_server(
        lab.to_province_from(&city, &rogue, guangdong),
        AlertDescription::CertificateUnknown,
    );
    assert_eq!(
        refusal,
        VerifyError::OutsideNameConstraints(
            "an address lies outside the issuing CA's blocks".into()
        )
    );

    // A province server "dc:14" with Guangdong addresses, signed by the Guangdong CA: the IPs
    // pass webpki, the node id does not belong to that CA. The dialling city refuses it.
    let (city, city_cert) = lab.node("dc:1401", Plane::Business, SystemTime::now());
    let impostor = NodeKeys::new("dc:44", Plane::Business, KeyAlgorithm::EcdsaP256);
    let rogue = forge(&impostor, "dc:14", &impostor.addresses, guangdong);
    let server = Arc::new(
        node_server_config(
            lab.server_trust.clone(),
            Plane::Business,
            credentials(&impostor, &rogue, guangdong),
        )
        .unwrap(),
    );
    let client = lab.client(&city, &city_cert, &lab.pki.shanxi, "dc:14");
    let refusal = refused_by_client(
        handshake(&server, &client, "dc:14"),
        AlertDescription::CertificateUnknown,
    );
    assert_eq!(
        refusal,
        VerifyError::OutsideNameConstraints(
            "dc:14 belongs to the 14 CA, but the 44 CA issued it".into()
        )
    );
}

#[test]
fn an_office_plane_certificate_is_refused_on_the_business_plane() {
    let lab = Lab::new();
    let (city, cert) = lab.node("dc:1401", Plane::Office, SystemTime::now());
    let refusal = refused_by_server(
        lab.to_province(&city, &cert),
        AlertDescription::CertificateUnknown,
    );
    assert_eq!(
        refusal,
        VerifyError::WrongPlane {
            expected: Plane::Business,
            found: Plane::Office
        }
    );
}

#[test]
fn a_client_refuses_a_server_that_is_not_the_node_it_dialled() {
    let lab = Lab::new();
    let now = SystemTime::now();
    let (city, city_cert) = lab.node("dc:1401", Plane::Business, now);
    let (neighbour, neighbour_cert) = lab.node("dc:1402", Plane::Business, now);
    let server = lab.server(&neighbour, &neighbour_cert);
    let client = lab.client(&city, &city_cert, &lab.pki.shanxi, "dc:14");
    let refusal = refused_by_client(
        handshake(&server, &client, "dc:14"),
        AlertDescription::CertificateUnknown,
    );
    assert_eq!(
        refusal,
        VerifyError::WrongNode {
            expected: node("dc:14"),
            found: node("dc:1402")
        }
    );
}

#[test]
fn a_tampered_certificate_is_refused_for_its_signature() {
    let lab = Lab::new();
    let (city, cert) = lab.node("dc:1401", Plane::Business, SystemTime::now());
    // The last byte of the signature's s, and the last octet of the first IP SAN
    // (10.32.64.1 → 10.32.64.3, still in Shanxi's block): both leave the DER well-formed.
    let mut signature = cert.to_vec();
    *signature.last_mut().unwrap() ^= 0x01;
    let mut address = cert.to_vec();
    let san = address
        .windows(6)
        .position(|w| w == [0x87, 4, 10, 32, 64, 1])
        .unwrap();
    address[san + 5] ^= 0x02;
    for tampered in [signature, address] {
        let tampered = CertificateDer::from(tampered);
        let refusal = refused_by_server(
            lab.to_province(&city, &tampered),
            AlertDescription::DecryptError,
        );
        assert_eq!(refusal, VerifyError::BadSignature);
    }
}
