//! Signed documents: config bundles now, audit reports later. The controller signs with its
//! own key; a verifier accepts a signature only from the controller's certificate.
//!
//! Why signatures on top of mTLS: a config bundle is stored and replayed by agents and
//! relays, and an audit report is read months later by a security officer; neither is
//! protected by the connection it came over. The signer's chain travels with the document.
//!
//! Format: the signature is over the message bytes exactly as given, with the algorithm of
//! the controller's key: ECDSA P-256 with SHA-256, encoded ASN.1 DER (what
//! `openssl dgst -sha256 -verify controller.pub -signature sig doc` checks), or Ed25519
//! (64 bytes). There is no implicit context prefix, so the message itself must say what it
//! is (its kind, version and time) and a bundle can never pass for a report.
//!
//! Two verifiers:
//! - [`TrustBundle::verify_signature`]: the full bundle, so the signer's chain is checked
//!   against every CA's CRL, as a node checks a peer. Agents use this.
//! - [`verify_signature_with_root`]: the root certificate alone, for a document checked long
//!   after by someone who holds nothing else. The chain and the controller profile are
//!   checked at `now`, revocation is not: CRLs from the time of signing are not kept with
//!   the document, and a later CRL says nothing about when the key was lost. Whoever needs
//!   revocation keeps the CRLs and uses the full bundle.

use std::time::SystemTime;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    UnparsedPublicKey, VerificationAlgorithm,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::request::{RequestError, request_key};
use crate::verify::{ControllerIdentity, TrustBundle, VerifyError};

/// Why a signed document is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signer's chain is not the controller's, or does not verify: the check that failed.
    #[error("the signer is not the controller: {0}")]
    BadSigner(#[from] VerifyError),
    /// The signature does not verify with the signer's key: the message or the signature was
    /// altered, or another key signed.
    #[error("the signature does not verify with the controller's key (altered or forged)")]
    BadSignature,
    /// The signer's key is neither ECDSA P-256 nor Ed25519.
    #[error("the signer's key is not ECDSA P-256 or Ed25519: {0}")]
    UnsupportedKey(String),
}

/// Signs `message` with `key`: ECDSA P-256/SHA-256 (ASN.1 DER) or Ed25519, per the key.
pub fn sign(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, PkiError> {
    let pkcs8 = key.pair().serialized_der();
    let unusable = |_| PkiError::Crypto("the key cannot sign".into());
    match key.algorithm() {
        KeyAlgorithm::EcdsaP256 => {
            let rng = SystemRandom::new();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
                .map_err(unusable)?;
            let signature = pair
                .sign(&rng, message)
                .map_err(|_| PkiError::Crypto("no randomness for a signature".into()))?;
            Ok(signature.as_ref().to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(unusable)?;
            Ok(pair.sign(message).as_ref().to_vec())
        }
    }
}

impl TrustBundle {
    /// Verifies a document signed by the controller: `signer_chain` (leaf first, then the
    /// ministry CA) must be the controller's ([`TrustBundle::verify_controller`]: chain,
    /// CRLs, identity), then `signature` must verify over `message` with its key.
    pub fn verify_signature(
        &self,
        signer_chain: &[CertificateDer<'_>],
        message: &[u8],
        signature: &[u8],
        now: SystemTime,
    ) -> Result<ControllerIdentity, SignatureError> {
        let identity = self.verify_controller(signer_chain, now)?;
        check(signer_chain, message, signature)?;
        Ok(identity)
    }
}

/// Verifies a document signed by the controller with only the root certificate: the chain
/// to `root` and the controller profile at `now`, then the signature. Revocation is not
/// checked (see the module docs for why and when that is enough).
pub fn verify_signature_with_root(
    root: &CertificateDer<'_>,
    signer_chain: &[CertificateDer<'_>],
    message: &[u8],
    signature: &[u8],
    now: SystemTime,
) -> Result<ControllerIdentity, SignatureError> {
    TrustBundle::root_only(root)?.verify_signature(signer_chain, message, signature, now)
}

/// The signature check with the leaf's SubjectPublicKeyInfo, once the chain is proven.
fn check(
    signer_chain: &[CertificateDer<'_>],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let leaf = signer_chain
        .first()
        .ok_or_else(|| VerifyError::Malformed("empty chain".into()))?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let key = request_key(cert.public_key()).map_err(|e| match e {
        RequestError::UnsupportedKey(oid) => SignatureError::UnsupportedKey(oid),
        other => SignatureError::UnsupportedKey(other.to_string()),
    })?;
    let algorithm: &'static dyn VerificationAlgorithm = match key.key_algorithm() {
        Some(KeyAlgorithm::EcdsaP256) => &ECDSA_P256_SHA256_ASN1,
        Some(KeyAlgorithm::Ed25519) => &ED25519,
        None => return Err(SignatureError::UnsupportedKey("unknown".into())),
    };
    UnparsedPublicKey::new(algorithm, key.raw())
        .verify(message, signature)
        .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_in_their_documented_format() {
        let message = b"jinbao config bundle v1";
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let signature = sign(&key, message).unwrap();
        // ASN.1 DER: SEQUENCE { INTEGER r, INTEGER s }, at most 72 bytes.
        assert_eq!(signature[0], 0x30);
        assert_eq!(usize::from(signature[1]), signature.len() - 2);
        assert!(signature.len() <= 72);
        let public = crate::request::RequestKey::public_of(&key);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public.raw())
            .verify(message, &signature)
            .unwrap();

        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let signature = sign(&key, message).unwrap();
        assert_eq!(signature.len(), 64);
        let public = crate::request::RequestKey::public_of(&key);
        UnparsedPublicKey::new(&ED25519, public.raw())
            .verify(message, &signature)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&ED25519, public.raw())
                .verify(b"another message", &signature)
                .is_err()
        );
    }
}
