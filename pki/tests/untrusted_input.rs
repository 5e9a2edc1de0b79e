//! CSRs, certificates and CRLs arrive from the network: whatever the bytes, the pki crate
//! returns a value or an error — it never panics — and it never accepts a changed signed
//! object.
//!
//! Inputs are random bytes (also shaped as a DER SEQUENCE so parsers get past the first
//! header) and real objects with a few bytes flipped, inserted, removed or cut off, with
//! extra weight on the outer headers and the trailing signature.
//!
//! What is proved, for every reader of untrusted bytes:
//! - `read_request_der` / `read_request_pem`: a changed CSR (node P-256, node Ed25519,
//!   operator) is always an error — the self-signature covers everything but the signature
//!   algorithm and value, and changing those breaks the signature. A changed PEM text is
//!   accepted only when it still decodes to the very same DER (line breaks, text outside
//!   the armour), and then reads as the same request.
//! - `TrustBundle::verify_node`: a changed leaf never verifies; a changed issuing CA sent in
//!   the chain never verifies when the bundle lacks the genuine CA, and is ignored (the
//!   genuine one wins, same identity) when the bundle has it.
//! - `TrustBundle::new`: a changed CRL on the chain (root's or Shanxi's) either fails to
//!   parse or makes verification fail — it is never used as if genuine. A changed issuing CA
//!   in the bundle never vouches for a leaf. A changed root *can* still verify: a trust
//!   anchor is trusted, not checked, and only its subject, key and name constraints count —
//!   so it verifies exactly when those are unchanged.
//! - `TrustBundle::verify_controller`, `tls::caller` and the signature verifiers
//!   (`TrustBundle::verify_signature`, `signature::verify_signature_with_root`): random bytes
//!   as a certificate, a root or a signature are refused; a changed controller certificate
//!   or signature never verifies.
//! - `Summary::read` (no signature check: listings) never panics.
//! - `NodeBinding` / `OperatorBinding` / `AuthorityScope::from_der` are strict DER readers:
//!   anything they accept is exactly the DER of what they return (so a changed binding
//!   never reads as the original), and random bytes are errors.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::OnceLock;
use std::time::SystemTime;

use common::{Hierarchy, NodeKeys};
use pki::authority::{Revocation, Serial};
use pki::inspect::Summary;
use pki::profile::NODE_LIFETIME;
use pki::request::{Request, operator_request, read_request_der, read_request_pem};
use pki::signature::{sign, verify_signature_with_root};
use pki::tls::caller;
use pki::{
    AuthorityScope, KeyAlgorithm, NodeBinding, NodeExpectation, NodeIdentity, OperatorBinding,
    PrivateKey, Reason, Role, TrustBundle, Usage, VerifyError,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, CertificateSigningRequestDer,
};
use topology::Plane;

/// Real objects to mutate, built once.
struct Fixture {
    now: SystemTime,
    root: CertificateDer<'static>,
    shanxi: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Root, ministry, Shanxi, Guangdong; the root's and Shanxi's list one serial each.
    crls: Vec<CertificateRevocationListDer<'static>>,
    /// Root, every issuing CA, every CRL.
    bundle: TrustBundle,
    /// Root and CRLs only: the issuing CA must come in the chain.
    bare: TrustBundle,
    /// dc:1401's business-plane certificate from the Shanxi CA.
    leaf: CertificateDer<'static>,
    identity: NodeIdentity,
    /// (DER, PEM, what it reads as): node P-256, node Ed25519, operator.
    requests: Vec<(Vec<u8>, String, Request)>,
    /// The controller's chain (leaf, ministry CA) and its signature over [`DOCUMENT`].
    controller: Vec<CertificateDer<'static>>,
    signature: Vec<u8>,
    /// DER of a JinbaoNode, a JinbaoOperator and a JinbaoAuthority value.
    node_binding: Vec<u8>,
    operator_binding: Vec<u8>,
    authority_binding: Vec<u8>,
}

/// What the controller signed.
const DOCUMENT: &[u8] = b"{\"kind\":\"config-bundle\",\"version\":7}";

const ROOT_CRL: usize = 0;
const SHANXI_CRL: usize = 2;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
        let keys = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
        let leaf = keys
            .issue(&hierarchy.shanxi, SystemTime::now(), NODE_LIFETIME)
            .certificate;
        let someone = |byte| Revocation {
            serial: Serial(vec![byte; 16]),
            reason: Reason::Superseded,
            revoked_at: SystemTime::now(),
        };
        let revoked = [
            (AuthorityScope::Root, someone(0x41)),
            (hierarchy.shanxi.scope(), someone(0x42)),
        ];
        let crls = hierarchy.crls(&revoked, 3);
        let intermediates = vec![
            hierarchy.ministry.certificate().clone(),
            hierarchy.shanxi.certificate().clone(),
            hierarchy.guangdong.certificate().clone(),
        ];
        let root = hierarchy.root.certificate().clone();
        let bundle = TrustBundle::new(root.clone(), intermediates.clone(), &crls).unwrap();
        let bare = TrustBundle::new(root.clone(), Vec::new(), &crls).unwrap();
        let now = SystemTime::now();
        let identity = bundle
            .verify_node(
                std::slice::from_ref(&leaf),
                now,
                Usage::Client,
                &NodeExpectation::default(),
            )
            .unwrap();

        let ed25519 = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::Ed25519);
        let operator = operator_request(
            &PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
            "张三",
            "zhangsan",
        )
        .unwrap();
        let requests = [keys.request_pem(), ed25519.request_pem(), operator]
            .into_iter()
            .map(|pem| {
                let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec();
                let request = read_request_der(&der).unwrap();
                (der, pem, request)
            })
            .collect();

        let (controller_key, controller) =
            hierarchy.controller(KeyAlgorithm::EcdsaP256, now, NODE_LIFETIME);
        let controller = vec![
            controller.certificate,
            hierarchy.ministry.certificate().clone(),
        ];
        let signature = sign(&controller_key, DOCUMENT).unwrap();
        bundle
            .verify_signature(&controller, DOCUMENT, &signature, now)
            .unwrap();

        Fixture {
            now,
            controller,
            signature,
            shanxi: hierarchy.shanxi.certificate().clone(),
            root,
            intermediates,
            crls,
            bundle,
            bare,
            leaf,
            identity,
            requests,
            node_binding: keys.binding.to_der(),
            operator_binding: OperatorBinding {
                login: "zhangsan".into(),
                role: Role::Engineer,
                province: Some("14".into()),
            }
            .to_der(),
            authority_binding: hierarchy.shanxi.scope().to_der(),
        }
    })
}

fn verify(bundle: &TrustBundle, chain: &[&[u8]]) -> Result<NodeIdentity, VerifyError> {
    let chain: Vec<CertificateDer<'_>> = chain.iter().map(|c| CertificateDer::from(*c)).collect();
    bundle.verify_node(
        &chain,
        fixture().now,
        Usage::Client,
        &NodeExpectation::default(),
    )
}

/// Where an edit lands: anywhere, near the start (outer headers) or near the end (the
/// signature algorithm and value).
#[derive(Debug, Clone)]
enum Spot {
    Anywhere(Index),
    Head(u8),
    Tail(u8),
}

impl Spot {
    /// A position in `0..len` (`len` > 0).
    fn at(&self, len: usize) -> usize {
        match self {
            Spot::Anywhere(index) => index.index(len),
            Spot::Head(n) => usize::from(*n) % len,
            Spot::Tail(n) => len - 1 - usize::from(*n) % len,
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    /// XOR a byte with a non-zero mask.
    Flip(Spot, u8),
    /// Keep only what comes before the spot.
    Truncate(Spot),
    /// Insert a byte before the spot (or at the very end).
    Insert(Spot, u8, bool),
    /// Remove the byte at the spot.
    Remove(Spot),
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        2 => any::<Index>().prop_map(Spot::Anywhere),
        1 => (0u8..24).prop_map(Spot::Head),
        1 => (0u8..96).prop_map(Spot::Tail),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        3 => (spot(), 1u8..=255).prop_map(|(s, mask)| Edit::Flip(s, mask)),
        1 => spot().prop_map(Edit::Truncate),
        1 => (spot(), any::<u8>(), any::<bool>()).prop_map(|(s, b, end)| Edit::Insert(s, b, end)),
        1 => spot().prop_map(Edit::Remove),
    ];
    proptest::collection::vec(edit, 1..=3)
}

fn apply(original: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match edit {
            Edit::Flip(spot, mask) => bytes[spot.at(len)] ^= mask,
            Edit::Truncate(spot) => bytes.truncate(spot.at(len)),
            Edit::Insert(_, byte, true) => bytes.push(*byte),
            Edit::Insert(spot, byte, false) => bytes.insert(spot.at(len), *byte),
            Edit::Remove(spot) => {
                bytes.remove(spot.at(len));
            }
        }
    }
    bytes
}

/// `body` inside a DER SEQUENCE header.
fn sequence(body: &[u8]) -> Vec<u8> {
    let mut der = vec![0x30];
    match body.len() {
        n if n < 0x80 => der.push(n as u8),
        n if n < 0x100 => der.extend([0x81, n as u8]),
        n => der.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend_from_slice(body);
    der
}

fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(|body| sequence(&body)),
    ]
}

/// DER as PEM with `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_refused_by_every_reader(bytes in junk()) {
        let f = fixture();
        prop_assert!(read_request_der(&bytes).is_err());
        prop_assert!(read_request_pem(&bytes).is_err());
        prop_assert!(read_request_pem(pem("CERTIFICATE REQUEST", &bytes).as_bytes()).is_err());
        prop_assert!(Summary::read(&bytes).is_err());
        prop_assert!(NodeBinding::from_der(&bytes).is_err());
        prop_assert!(OperatorBinding::from_der(&bytes).is_err());
        prop_assert!(AuthorityScope::from_der(&bytes).is_err());

        // As the leaf, as the issuing CA of a chain, and in place of the bundle's parts.
        prop_assert!(verify(&f.bundle, &[&bytes]).is_err());
        prop_assert!(verify(&f.bare, &[&f.leaf, &bytes]).is_err());
        prop_assert_eq!(verify(&f.bundle, &[&f.leaf, &bytes]), Ok(f.identity.clone()));
        prop_assert!(f.bundle.verify_operator(&[CertificateDer::from(&bytes[..])], f.now).is_err());
        prop_assert!(
            TrustBundle::new(CertificateDer::from(bytes.clone()), f.intermediates.clone(), &f.crls)
                .is_err()
        );
        prop_assert!(
            TrustBundle::new(f.root.clone(), vec![CertificateDer::from(bytes.clone())], &f.crls)
                .is_err()
        );
        let mut crls = f.crls.clone();
        crls.push(CertificateRevocationListDer::from(bytes.clone()));
        prop_assert!(TrustBundle::new(f.root.clone(), f.intermediates.clone(), &crls).is_err());

        // As the controller, a caller, a signer, a signature and a root.
        let junk = CertificateDer::from(&bytes[..]);
        prop_assert!(f.bundle.verify_controller(std::slice::from_ref(&junk), f.now).is_err());
        prop_assert!(caller(&f.bundle, std::slice::from_ref(&junk), f.now).is_err());
        let signer = [junk.clone(), f.controller[1].clone()];
        prop_assert!(f.bundle.verify_signature(&signer, DOCUMENT, &f.signature, f.now).is_err());
        prop_assert!(f.bundle.verify_signature(&f.controller, DOCUMENT, &bytes, f.now).is_err());
        prop_assert!(
            verify_signature_with_root(&junk, &f.controller, DOCUMENT, &f.signature, f.now)
                .is_err()
        );
        prop_assert!(
            verify_signature_with_root(&f.root, &f.controller, DOCUMENT, &bytes, f.now).is_err()
        );
    }

    #[test]
    fn changed_controller_certificates_and_signatures_never_verify(
        which in 0usize..3,
        edits in edits(),
    ) {
        let f = fixture();
        let (chain, document, signature) = match which {
            0 => {
                let mut chain = f.controller.clone();
                chain[0] = CertificateDer::from(apply(&f.controller[0], &edits));
                (chain, DOCUMENT.to_vec(), f.signature.clone())
            }
            1 => (f.controller.clone(), apply(DOCUMENT, &edits), f.signature.clone()),
            _ => (f.controller.clone(), DOCUMENT.to_vec(), apply(&f.signature, &edits)),
        };
        prop_assume!(
            chain[0] != f.controller[0] || document != DOCUMENT || signature != f.signature
        );
        let full = f.bundle.verify_signature(&chain, &document, &signature, f.now);
        prop_assert!(full.is_err(), "a changed signed document verified: {:?}", full);
        let rooted = verify_signature_with_root(&f.root, &chain, &document, &signature, f.now);
        prop_assert!(rooted.is_err(), "a changed signed document verified: {:?}", rooted);
        if which == 0 {
            prop_assert!(f.bundle.verify_controller(&chain, f.now).is_err());
        }
    }

    #[test]
    fn changed_requests_are_refused(which in 0usize..3, edits in edits()) {
        let (der, _, request) = &fixture().requests[which];
        let changed = apply(der, &edits);
        let read = read_request_der(&changed);
        if changed == *der {
            prop_assert_eq!(read, Ok(request.clone()));
        } else {
            prop_assert!(read.is_err(), "accepted a changed request: {:?}", read);
        }
        // The PEM reader agrees with the DER reader.
        let via_pem = read_request_pem(pem("CERTIFICATE REQUEST", &changed).as_bytes());
        prop_assert_eq!(via_pem, read_request_der(&changed));
    }

    #[test]
    fn changed_request_pem_is_refused_unless_the_der_is_unchanged(
        which in 0usize..3,
        edits in edits(),
    ) {
        let (der, text, request) = &fixture().requests[which];
        let changed = apply(text.as_bytes(), &edits);
        let read = read_request_pem(&changed);
        match CertificateSigningRequestDer::from_pem_slice(&changed) {
            Ok(decoded) if decoded.as_ref() == der.as_slice() => {
                prop_assert_eq!(read, Ok(request.clone()));
            }
            _ => prop_assert!(read.is_err(), "accepted a changed PEM request: {:?}", read),
        }
    }

    #[test]
    fn changed_leaf_certificates_never_verify(edits in edits()) {
        let f = fixture();
        let changed = apply(&f.leaf, &edits);
        let _ = Summary::read(&changed);
        if changed != f.leaf.as_ref() {
            let full = verify(&f.bundle, &[&changed]);
            prop_assert!(full.is_err(), "a changed leaf verified: {:?}", full);
            let chained = verify(&f.bare, &[&changed, &f.shanxi]);
            prop_assert!(chained.is_err(), "a changed leaf verified: {:?}", chained);
            prop_assert!(f.bundle.verify_operator(&[CertificateDer::from(changed)], f.now).is_err());
        }
    }

    #[test]
    fn changed_issuing_cas_never_vouch_for_a_leaf(edits in edits()) {
        let f = fixture();
        let changed = apply(&f.shanxi, &edits);
        let _ = Summary::read(&changed);
        if changed != f.shanxi.as_ref() {
            // The chain is the only source of the Shanxi CA: refused.
            let bare = verify(&f.bare, &[&f.leaf, &changed]);
            prop_assert!(bare.is_err(), "a changed CA vouched: {:?}", bare);
            // The bundle holds the genuine CA: the changed copy is passed over.
            prop_assert_eq!(verify(&f.bundle, &[&f.leaf, &changed]), Ok(f.identity.clone()));
            // The changed CA inside a bundle never vouches either.
            if let Ok(bundle) =
                TrustBundle::new(f.root.clone(), vec![CertificateDer::from(changed)], &f.crls)
            {
                let result = verify(&bundle, &[&f.leaf]);
                prop_assert!(result.is_err(), "a changed CA vouched: {:?}", result);
            }
        }
    }

    #[test]
    fn changed_crls_are_never_trusted(
        which in prop_oneof![Just(ROOT_CRL), Just(SHANXI_CRL)],
        edits in edits(),
    ) {
        let f = fixture();
        let mut crls = f.crls.clone();
        let changed = apply(&crls[which], &edits);
        if changed != crls[which].as_ref() {
            crls[which] = CertificateRevocationListDer::from(changed);
            if let Ok(bundle) = TrustBundle::new(f.root.clone(), f.intermediates.clone(), &crls) {
                let result = verify(&bundle, &[&f.leaf]);
                prop_assert!(result.is_err(), "verified with a changed CRL: {:?}", result);
            }
        }
    }

    #[test]
    fn a_changed_root_verifies_only_if_subject_key_and_constraints_are_intact(
        edits in edits(),
    ) {
        let f = fixture();
        let changed = CertificateDer::from(apply(&f.root, &edits));
        let Ok(bundle) = TrustBundle::new(changed.clone(), f.intermediates.clone(), &f.crls) else {
            return Ok(());
        };
        if verify(&bundle, &[&f.leaf]).is_ok() {
            let genuine = webpki::anchor_from_trusted_cert(&f.root).unwrap();
            let anchor = webpki::anchor_from_trusted_cert(&changed).unwrap();
            prop_assert_eq!(anchor.subject, genuine.subject);
            prop_assert_eq!(anchor.subject_public_key_info, genuine.subject_public_key_info);
            prop_assert_eq!(anchor.name_constraints, genuine.name_constraints);
        }
    }

    #[test]
    fn bindings_accept_only_their_own_der(which in 0usize..3, edits in edits()) {
        let f = fixture();
        match which {
            0 => {
                let changed = apply(&f.node_binding, &edits);
                if let Ok(binding) = NodeBinding::from_der(&changed) {
                    prop_assert_eq!(binding.to_der(), changed);
                }
            }
            1 => {
                let changed = apply(&f.operator_binding, &edits);
                if let Ok(binding) = OperatorBinding::from_der(&changed) {
                    prop_assert_eq!(binding.to_der(), changed);
                }
            }
            _ => {
                let changed = apply(&f.authority_binding, &edits);
                if let Ok(scope) = AuthorityScope::from_der(&changed) {
                    prop_assert_eq!(scope.to_der(), changed);
                }
            }
        }
    }
}
