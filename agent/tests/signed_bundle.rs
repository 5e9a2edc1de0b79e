//! A bundle is taken only when the controller signed it, for this node, newer than the one
//! running: anything else is refused with the reason, and the agent keeps what it has.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, SystemTime};

use agent::control::{ProbeSettings, SignedBundle, SignedBundleError, Verifier};
use base64::Engine as _;
use common::{CITY, Lab, PROVINCE};
use pki::{KeyAlgorithm, PrivateKey, TrustBundle};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The controller's key and chain (leaf, ministry CA), issued by the lab's ministry CA.
fn controller(lab: &Lab) -> (PrivateKey, String) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issued = lab
        .ministry_ca
        .issue_controller(
            &key,
            &["jinbao-controller".to_owned()],
            &[],
            SystemTime::now(),
            Duration::from_secs(86_400),
        )
        .unwrap();
    let chain = format!("{}{}", issued.pem(), lab.ministry_ca.certificate_pem());
    (key, chain)
}

fn trust(lab: &Lab) -> TrustBundle {
    let bundle = lab.bundle(CITY, ProbeSettings::default(), false);
    let root = CertificateDer::from_pem_slice(bundle.trust.root.as_bytes()).unwrap();
    let intermediates = bundle
        .trust
        .intermediates
        .iter()
        .map(|p| CertificateDer::from_pem_slice(p.as_bytes()).unwrap())
        .collect();
    let crls: Vec<_> = bundle
        .trust
        .crls
        .iter()
        .map(|p| {
            rustls_pki_types::CertificateRevocationListDer::from_pem_slice(p.as_bytes()).unwrap()
        })
        .collect();
    TrustBundle::new(root, intermediates, &crls).unwrap()
}

fn signed(lab: &Lab, node: &str, version: u64) -> SignedBundle {
    let (key, chain) = controller(lab);
    let mut bundle = lab.bundle(node, ProbeSettings::default(), false);
    bundle.version = version;
    SignedBundle::sign(&bundle, &key, &chain).unwrap()
}

#[test]
fn a_signed_newer_bundle_for_this_node_opens_with_full_trust_and_with_the_root_alone() {
    let lab = Lab::new(48_100);
    let trust = trust(&lab);
    let city = lab.member(CITY).node;
    let offer = signed(&lab, CITY, 7);
    let now = SystemTime::now();
    let bundle = offer
        .open(Verifier::Trust(&trust), Some(city), Some(6), now)
        .unwrap();
    assert_eq!((bundle.node, bundle.version), (city, 7));
    let root = lab.root.certificate().clone();
    let first = offer
        .open(Verifier::Root(&root), Some(city), None, now)
        .unwrap();
    assert_eq!(first, bundle);
}

#[test]
fn older_foreign_tampered_unsigned_and_misattributed_bundles_are_refused() {
    let lab = Lab::new(48_200);
    let trust = trust(&lab);
    let city = lab.member(CITY).node;
    let now = SystemTime::now();
    let open = |offer: &SignedBundle| offer.open(Verifier::Trust(&trust), Some(city), Some(7), now);

    // Not newer than the running version (the same, and older).
    for version in [7, 3] {
        assert!(matches!(
            open(&signed(&lab, CITY, version)),
            Err(SignedBundleError::NotNewer { running: 7, found }) if found == version
        ));
    }
    // For another node.
    assert!(matches!(
        open(&signed(&lab, PROVINCE, 9)),
        Err(SignedBundleError::OtherNode { .. })
    ));
    // One byte of the bundle changed after signing.
    let mut tampered = signed(&lab, CITY, 9);
    tampered.bundle = tampered
        .bundle
        .replacen("\"version\":9", "\"version\":10", 1);
    assert!(matches!(
        open(&tampered),
        Err(SignedBundleError::Signature(
            pki::SignatureError::BadSignature
        ))
    ));
    // No signature, or not base64.
    let mut unsigned = signed(&lab, CITY, 9);
    unsigned.signature = String::new();
    assert!(matches!(
        open(&unsigned),
        Err(SignedBundleError::Signature(_))
    ));
    unsigned.signature = "not base64!".into();
    assert!(matches!(
        open(&unsigned),
        Err(SignedBundleError::Malformed(_))
    ));
    // Signed by a node's key with the node's certificate as the signer: not the controller.
    let mut by_node = signed(&lab, CITY, 9);
    let node_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    by_node.signature = base64::engine::general_purpose::STANDARD
        .encode(pki::signature::sign(&node_key, by_node.bundle.as_bytes()).unwrap());
    by_node.signer = lab.member(PROVINCE).chain.clone();
    assert!(matches!(
        open(&by_node),
        Err(SignedBundleError::Signature(
            pki::SignatureError::BadSigner(_)
        ))
    ));
    // The controller's chain, but a signature by another key.
    let mut other_key = signed(&lab, CITY, 9);
    other_key.signature = base64::engine::general_purpose::STANDARD
        .encode(pki::signature::sign(&node_key, other_key.bundle.as_bytes()).unwrap());
    assert!(matches!(
        open(&other_key),
        Err(SignedBundleError::Signature(
            pki::SignatureError::BadSignature
        ))
    ));
    // A signer chain that is not PEM.
    let mut garbage = signed(&lab, CITY, 9);
    garbage.signer = "-----BEGIN NOTHING-----".into();
    assert!(open(&garbage).is_err());
    // And the genuine one still opens.
    assert_eq!(open(&signed(&lab, CITY, 9)).unwrap().version, 9);
}
