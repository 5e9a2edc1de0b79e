//! Documents signed by the controller: a good signature verifies with the full bundle and
//! with the root alone; one flipped bit anywhere in the message or the signature fails; a
//! signer that is not the controller fails whatever it signed; a revoked controller fails
//! with the full bundle (and, as documented, not with the root alone).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Hierarchy, NodeKeys};
use pki::authority::Revocation;
use pki::profile::NODE_LIFETIME;
use pki::signature::{SignatureError, sign, verify_signature_with_root};
use pki::{AuthorityScope, KeyAlgorithm, Reason, Role, VerifyError};
use rustls_pki_types::CertificateDer;
use topology::Plane;

const DAY: Duration = Duration::from_secs(86_400);
const BUNDLE: &[u8] = b"{\"kind\":\"config-bundle\",\"node\":\"dc:1401\",\"version\":42}";

struct Signer {
    pki: Hierarchy,
    key: pki::PrivateKey,
    chain: Vec<CertificateDer<'static>>,
    serial: pki::Serial,
}

fn signer(algorithm: KeyAlgorithm) -> Signer {
    let pki = Hierarchy::new(algorithm);
    let (key, issued) = pki.controller(algorithm, SystemTime::now(), DAY);
    Signer {
        chain: vec![issued.certificate, pki.ministry.certificate().clone()],
        serial: issued.serial,
        key,
        pki,
    }
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

#[test]
fn a_good_signature_verifies_and_any_flipped_bit_fails() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let s = signer(algorithm);
        let bundle = s.pki.bundle(&[], 1);
        let root = s.pki.root.certificate();
        let now = SystemTime::now();
        let signature = sign(&s.key, BUNDLE).unwrap();

        let identity = bundle
            .verify_signature(&s.chain, BUNDLE, &signature, now)
            .unwrap();
        assert_eq!(identity.serial, s.serial);
        assert_eq!(
            verify_signature_with_root(root, &s.chain, BUNDLE, &signature, now),
            Ok(identity)
        );

        for bit in 0..BUNDLE.len() * 8 {
            assert_eq!(
                bundle.verify_signature(&s.chain, &flip(BUNDLE, bit), &signature, now),
                Err(SignatureError::BadSignature),
                "{algorithm}: message bit {bit}"
            );
        }
        for bit in 0..signature.len() * 8 {
            let flipped = flip(&signature, bit);
            assert_eq!(
                bundle.verify_signature(&s.chain, BUNDLE, &flipped, now),
                Err(SignatureError::BadSignature),
                "{algorithm}: signature bit {bit}"
            );
            assert_eq!(
                verify_signature_with_root(root, &s.chain, BUNDLE, &flipped, now),
                Err(SignatureError::BadSignature),
                "{algorithm}: signature bit {bit}"
            );
        }
        assert_eq!(
            bundle.verify_signature(&s.chain, BUNDLE, &signature[..signature.len() - 1], now),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            bundle.verify_signature(&s.chain, BUNDLE, &[], now),
            Err(SignatureError::BadSignature)
        );
    }
}

#[test]
fn only_the_controller_signs() {
    let s = signer(KeyAlgorithm::EcdsaP256);
    let bundle = s.pki.bundle(&[], 1);
    let root = s.pki.root.certificate();
    let now = SystemTime::now();

    // A node signs with its own key and presents its own (valid) certificate.
    let node = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
    let node_chain = vec![
        node.issue(&s.pki.shanxi, now, NODE_LIFETIME).certificate,
        s.pki.shanxi.certificate().clone(),
    ];
    let signature = sign(&node.key, BUNDLE).unwrap();
    let not_controller = Err(SignatureError::BadSigner(VerifyError::WrongKind {
        expected: "controller",
    }));
    assert_eq!(
        bundle.verify_signature(&node_chain, BUNDLE, &signature, now),
        not_controller
    );
    assert_eq!(
        verify_signature_with_root(root, &node_chain, BUNDLE, &signature, now),
        not_controller
    );

    // An operator likewise.
    let (operator_key, operator) = s.pki.operator("zhangsan", "张三", Role::Engineer, None);
    let signature = sign(&operator_key, BUNDLE).unwrap();
    assert_eq!(
        bundle.verify_signature(&[operator.certificate], BUNDLE, &signature, now),
        not_controller
    );

    // The controller's chain with another key's signature.
    assert_eq!(
        bundle.verify_signature(&s.chain, BUNDLE, &signature, now),
        Err(SignatureError::BadSignature)
    );

    // The controller of another PKI, whose CAs bear the same names as ours: its ministry CA
    // is not signed by this root, a forgery as far as this root is concerned.
    let other = signer(KeyAlgorithm::EcdsaP256);
    let signature = sign(&other.key, BUNDLE).unwrap();
    assert_eq!(
        verify_signature_with_root(root, &other.chain, BUNDLE, &signature, now),
        Err(SignatureError::BadSigner(VerifyError::BadSignature))
    );
    assert_eq!(
        bundle.verify_signature(&other.chain, BUNDLE, &signature, now),
        Err(SignatureError::BadSigner(VerifyError::BadSignature))
    );

    // With the root alone, the chain must bring the ministry CA.
    let signature = sign(&s.key, BUNDLE).unwrap();
    assert_eq!(
        verify_signature_with_root(root, &s.chain[..1], BUNDLE, &signature, now),
        Err(SignatureError::BadSigner(VerifyError::UnknownIssuer))
    );
    assert_eq!(
        bundle.verify_signature(&[], BUNDLE, &signature, now),
        Err(SignatureError::BadSigner(VerifyError::Malformed(
            "empty chain".into()
        )))
    );
    assert!(matches!(
        verify_signature_with_root(
            &CertificateDer::from(&b"not a certificate"[..]),
            &s.chain,
            BUNDLE,
            &signature,
            now
        ),
        Err(SignatureError::BadSigner(VerifyError::Malformed(_)))
    ));
}

#[test]
fn a_revoked_controller_fails_with_the_full_bundle() {
    let s = signer(KeyAlgorithm::EcdsaP256);
    let now = SystemTime::now();
    let signature = sign(&s.key, BUNDLE).unwrap();
    let revoked = Revocation {
        serial: s.serial.clone(),
        reason: Reason::KeyCompromise,
        revoked_at: now,
    };
    let bundle = s.pki.bundle(&[(AuthorityScope::Ministry, revoked)], 2);
    let refusal = bundle
        .verify_signature(&s.chain, BUNDLE, &signature, now)
        .unwrap_err();
    assert_eq!(refusal, SignatureError::BadSigner(VerifyError::Revoked));
    assert_eq!(
        refusal.to_string(),
        "the signer is not the controller: certificate revoked"
    );

    // The root alone knows no CRL: documented, and asserted so a change is noticed.
    let root = s.pki.root.certificate();
    assert!(verify_signature_with_root(root, &s.chain, BUNDLE, &signature, now).is_ok());
    // But it does check time: long after, the certificate has expired.
    let later = now + 2 * DAY;
    assert!(matches!(
        verify_signature_with_root(root, &s.chain, BUNDLE, &signature, later),
        Err(SignatureError::BadSigner(VerifyError::Expired { .. }))
    ));
}
