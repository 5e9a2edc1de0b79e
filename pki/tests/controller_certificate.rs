//! The controller's certificate: only the ministry CA issues it, it has the controller
//! profile, and `verify_controller` accepts it and nothing else — not a node's, not an
//! operator's, not one forged with a province CA's key, not a revoked or expired one.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::{Hierarchy, NodeKeys, ministry_address};
use pki::authority::{CONTROLLER_COMMON_NAME, Revocation};
use pki::binding::CONTROLLER_URI;
use pki::inspect::Summary;
use pki::profile::NODE_LIFETIME;
use pki::{
    Authority, AuthorityScope, IssueRefusal, KeyAlgorithm, PrivateKey, Reason, Role, VerifyError,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use topology::Plane;
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);

fn chain(leaf: &CertificateDer<'static>, ca: &Authority) -> Vec<CertificateDer<'static>> {
    vec![leaf.clone(), ca.certificate().clone()]
}

/// A certificate with the controller's profile and `uri`, signed by `signer` directly with
/// rcgen: what a stolen CA key could produce, bypassing `issue_controller`'s checks.
fn forge(signer: &Authority, uri: &str, key: &PrivateKey) -> CertificateDer<'static> {
    forge_for(
        signer,
        uri,
        key,
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )
}

fn forge_for(
    signer: &Authority,
    uri: &str,
    key: &PrivateKey,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> CertificateDer<'static> {
    let ca_key = KeyPair::from_pem(&signer.key_pem()).unwrap();
    let issuer = Issuer::from_ca_cert_der(signer.certificate(), ca_key).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CONTROLLER_COMMON_NAME);
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(300)).into();
    params.not_after = (now + DAY).into();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::from_pem(&key.to_pem()).unwrap();
    params.signed_by(&key, &issuer).unwrap().der().clone()
}

#[test]
fn the_controller_certificate_has_its_profile_and_verifies() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let pki = Hierarchy::new(algorithm);
        let now = SystemTime::now();
        let (key, issued) = pki.controller(algorithm, now, 90 * DAY);
        assert_eq!(issued.subject, "jinbao-controller");

        let identity = pki
            .bundle(&[], 1)
            .verify_controller(&chain(&issued.certificate, &pki.ministry), now)
            .unwrap();
        assert_eq!(identity.serial, issued.serial);
        assert_eq!(identity.not_after, issued.not_after);
        assert_eq!(
            identity.names,
            [
                "controller.jinbao.example".to_owned(),
                ministry_address().to_string()
            ]
        );
        let lifetime = identity.not_after.duration_since(now).unwrap();
        assert!(lifetime > 89 * DAY && lifetime <= 90 * DAY, "{lifetime:?}");
        assert!(identity.renew_at > now + 59 * DAY && identity.renew_at < now + 61 * DAY);

        // The profile, read independently of the crate.
        let (_, cert) = X509Certificate::from_der(issued.certificate.as_ref()).unwrap();
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["jinbao-controller"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth && !eku.code_signing && eku.other.is_empty());
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature() && !usage.key_cert_sign() && !usage.crl_sign());
        assert!(!cert.is_ca());
        assert_eq!(
            cert.public_key().raw,
            key.public_key_der(),
            "the certificate is for the controller's own key"
        );
        let summary = Summary::read(&issued.certificate).unwrap();
        assert_eq!(summary.uris, [CONTROLLER_URI]);
        assert_eq!(summary.dns_names, ["controller.jinbao.example"]);
        assert_eq!(summary.addresses, [ministry_address()]);
        assert_eq!(summary.kind(), "controller");
        assert_eq!(summary.issuer, "Jinbao WAN Ministry CA");
    }
}

#[test]
fn only_the_ministry_issues_it_and_only_for_names_that_will_verify() {
    let pki = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = SystemTime::now();
    for ca in [&pki.root, &pki.shanxi] {
        assert_eq!(
            ca.issue_controller(&key, &[], &[], now, DAY).unwrap_err(),
            IssueRefusal::ControllerAtMinistry(ca.scope())
        );
    }
    assert_eq!(
        pki.shanxi
            .issue_controller(&key, &[], &[], now, DAY)
            .unwrap_err()
            .to_string(),
        "the controller's certificate is issued by the ministry CA, not the 14 CA"
    );

    for bad in ["not a name", "", "控制器.example", "a..b"] {
        assert_eq!(
            pki.ministry
                .issue_controller(&key, &[bad.to_owned()], &[], now, DAY)
                .unwrap_err(),
            IssueRefusal::BadDnsName(bad.to_owned()),
            "{bad}"
        );
    }

    // Loopback, and a Shanxi address: outside the ministry CA's IP name constraints.
    let shanxi = NodeKeys::new("dc:14", Plane::Business, KeyAlgorithm::EcdsaP256).addresses[0];
    for outside in ["127.0.0.1".parse::<IpAddr>().unwrap(), shanxi] {
        let refusal = pki
            .ministry
            .issue_controller(&key, &[], &[ministry_address(), outside], now, DAY)
            .unwrap_err();
        let IssueRefusal::OutsideNameConstraints {
            address,
            authority,
            permitted,
        } = &refusal
        else {
            panic!("expected OutsideNameConstraints, got {refusal:?}");
        };
        assert_eq!((*address, *authority), (outside, AuthorityScope::Ministry));
        let blocks: Vec<ipnet::IpNet> = permitted.split(", ").map(|b| b.parse().unwrap()).collect();
        assert!(
            blocks.iter().any(|b| b.contains(&ministry_address())),
            "{permitted}"
        );
        assert!(!blocks.iter().any(|b| b.contains(&outside)), "{permitted}");
    }

    // Single-label names are DNS names too (what a local deployment dials).
    let local = ["jinbao-controller".to_owned(), "localhost".to_owned()];
    let issued = pki
        .ministry
        .issue_controller(&key, &local, &[], now, DAY)
        .unwrap();
    let identity = pki
        .bundle(&[], 1)
        .verify_controller(&chain(&issued.certificate, &pki.ministry), now)
        .unwrap();
    assert_eq!(identity.names, local);

    // Without names at all: the URI alone is the identity.
    let issued = pki
        .ministry
        .issue_controller(&key, &[], &[], now, DAY)
        .unwrap();
    let identity = pki
        .bundle(&[], 1)
        .verify_controller(&chain(&issued.certificate, &pki.ministry), now)
        .unwrap();
    assert!(identity.names.is_empty());
}

#[test]
fn verify_controller_accepts_nothing_but_the_controller() {
    let pki = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let bundle = pki.bundle(&[], 1);
    let now = SystemTime::now();

    let node = NodeKeys::new("dc:ministry", Plane::Business, KeyAlgorithm::EcdsaP256);
    let node_cert = node.issue(&pki.ministry, now, NODE_LIFETIME).certificate;
    assert_eq!(
        bundle.verify_controller(&chain(&node_cert, &pki.ministry), now),
        Err(VerifyError::WrongKind {
            expected: "controller"
        })
    );

    let (_, operator) = pki.operator("zhangsan", "张三", Role::Engineer, None);
    assert_eq!(
        bundle.verify_controller(&chain(&operator.certificate, &pki.ministry), now),
        Err(VerifyError::WrongKind {
            expected: "controller"
        })
    );

    // The controller profile, signed with the Shanxi CA's key.
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let rogue = forge(&pki.shanxi, CONTROLLER_URI, &key);
    assert_eq!(
        bundle.verify_controller(&chain(&rogue, &pki.shanxi), now),
        Err(VerifyError::WrongIssuer {
            what: "controller",
            expected: AuthorityScope::Ministry,
            found: "14".parse().unwrap(),
        })
    );
    // The ministry's key, another identity.
    let rogue = forge(&pki.ministry, "spiffe://jinbao/somebody", &key);
    let refusal = bundle
        .verify_controller(&chain(&rogue, &pki.ministry), now)
        .unwrap_err();
    assert_eq!(
        refusal,
        VerifyError::NotController {
            found: "spiffe://jinbao/somebody".into()
        }
    );
    assert_eq!(
        refusal.to_string(),
        "the certificate's identity is `spiffe://jinbao/somebody`, not the controller's spiffe://jinbao/controller"
    );

    // The ministry's key and the controller's identity, but for client authentication only.
    let rogue = forge_for(
        &pki.ministry,
        CONTROLLER_URI,
        &key,
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    assert_eq!(
        bundle.verify_controller(&chain(&rogue, &pki.ministry), now),
        Err(VerifyError::WrongUsage { required: "server" })
    );

    // Not the root's to sign, and not without the issuing CA in the bundle or the chain.
    let (_, issued) = pki.controller(KeyAlgorithm::EcdsaP256, now, DAY);
    let bare_bundle = pki::TrustBundle::new(
        pki.root.certificate().clone(),
        Vec::new(),
        &pki.crls(&[], 1),
    )
    .unwrap();
    assert_eq!(
        bare_bundle.verify_controller(std::slice::from_ref(&issued.certificate), now),
        Err(VerifyError::UnknownIssuer)
    );
    assert_eq!(
        bare_bundle.verify_controller(&chain(&issued.certificate, &pki.ministry), now),
        Ok(bundle
            .verify_controller(std::slice::from_ref(&issued.certificate), now)
            .unwrap())
    );
}

#[test]
fn a_revoked_or_expired_controller_certificate_is_refused() {
    let pki = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let now = SystemTime::now();
    let (_, issued) = pki.controller(KeyAlgorithm::EcdsaP256, now, DAY);
    let leaf = chain(&issued.certificate, &pki.ministry);
    let revoked = Revocation {
        serial: issued.serial.clone(),
        reason: Reason::KeyCompromise,
        revoked_at: now,
    };
    let bundle = pki.bundle(&[(AuthorityScope::Ministry, revoked.clone())], 2);
    assert_eq!(
        bundle.verify_controller(&leaf, now),
        Err(VerifyError::Revoked)
    );
    // On the Shanxi CRL the serial means nothing: the ministry's CRL is the one that counts.
    let bundle = pki.bundle(&[("14".parse().unwrap(), revoked)], 2);
    assert!(bundle.verify_controller(&leaf, now).is_ok());

    let (_, old) = pki.controller(KeyAlgorithm::EcdsaP256, now - 3 * DAY, DAY);
    let refusal = pki
        .bundle(&[], 1)
        .verify_controller(&chain(&old.certificate, &pki.ministry), now)
        .unwrap_err();
    assert!(
        matches!(refusal, VerifyError::Expired { .. }),
        "{refusal:?}"
    );
}
