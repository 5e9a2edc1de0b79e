//! Key algorithms and private keys.
//!
//! ECDSA P-256 is the default: rustls, webpki and OpenSSL all verify it everywhere. Ed25519
//! is the option. Private keys are PKCS#8 PEM on disk; their `Debug` never shows the key.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, SignatureAlgorithm};

use crate::PkiError;

/// A signature key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (default).
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// The rcgen signature algorithm of this key algorithm.
    pub fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// The algorithm of an rcgen signature algorithm, if it is one we use.
    pub fn of(algorithm: &SignatureAlgorithm) -> Option<KeyAlgorithm> {
        [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519]
            .into_iter()
            .find(|a| a.signature_algorithm() == algorithm)
    }

    /// The name as written on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "p256" | "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            _ => Err(format!(
                "unknown key algorithm `{s}` (expected p256 or ed25519)"
            )),
        }
    }
}

/// A private signing key. It is generated where it is used and written only to a 0600 file.
pub struct PrivateKey {
    pair: KeyPair,
    algorithm: KeyAlgorithm,
}

impl PrivateKey {
    /// A fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, PkiError> {
        let pair = KeyPair::generate_for(algorithm.signature_algorithm())
            .map_err(|e| PkiError::Crypto(e.to_string()))?;
        Ok(PrivateKey { pair, algorithm })
    }

    /// Reads a PKCS#8 PEM key of a supported algorithm.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, PkiError> {
        // The error never quotes the input: it may be a key.
        let pair = KeyPair::from_pem(pem).map_err(|_| PkiError::BadKey)?;
        let algorithm = KeyAlgorithm::of(pair.algorithm()).ok_or(PkiError::BadKey)?;
        Ok(PrivateKey { pair, algorithm })
    }

    /// The key as PKCS#8 PEM, for a 0600 file.
    pub fn to_pem(&self) -> String {
        self.pair.serialize_pem()
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.pair)
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }

    pub(crate) fn into_pair(self) -> KeyPair {
        self.pair
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, …)", self.algorithm.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_never_show_in_debug() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = key.to_pem();
            let again = PrivateKey::from_pem(&pem).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            assert_eq!(again.public_key_der(), key.public_key_der());
            let debug = format!("{key:?}");
            assert!(!debug.contains(&pem[30..60]), "{debug}");
        }
        let err = PrivateKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
