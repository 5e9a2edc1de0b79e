//! The trust system (安全信任体系) of Jinbao WAN: CA hierarchy, node and operator
//! certificates, CRLs, and verification that says which check failed.
//!
//! Promises:
//! - **Hierarchy (分级管理).** A national root held by the ministry signs one issuing CA for
//!   the ministry and one per province ([`Authority`]); they sign leaves only (path length
//!   0) and carry IP name constraints: their blocks on every plane. Cities have no CA (see
//!   [`authority`] for why).
//! - **Keys stay where they are made.** Nodes and operators generate their keys and send a
//!   CSR ([`request`]); the CA checks it against the topology and refuses anything the plan
//!   does not give that node, saying exactly what.
//! - **Node certificates bind** node id, plane, zones, overlay addresses (IP SANs), identity
//!   URI and the WireGuard X25519 key ([`binding`] documents the private-arc extensions and
//!   their DER). 30 days by default, renewed at two thirds.
//! - **Operators** get a login, one role and, for a provincial operator, one province
//!   (分级管理), from the ministry CA.
//! - **The controller** has its own certificate from the ministry CA, known by the URI
//!   `spiffe://jinbao/controller` whatever name it is dialled by; it serves its API with
//!   [`tls::controller_server_config`] (client certificates optional, verified when
//!   presented) and signs documents that anyone holding the root can check ([`signature`]).
//! - **Revocation.** Every CA publishes a CRL with a next-update; [`TrustBundle`] checks the
//!   whole chain and refuses unknown status. webpki does not constrain URIs, so the node id's
//!   province is checked against the issuer's scope here.
//! - **One crypto provider.** ring, for rcgen, webpki and rustls (built without default
//!   features so aws-lc-rs never joins). ECDSA P-256 by default, Ed25519 optional.
//! - **Time is an argument** (`now: SystemTime`); nothing here reads the clock.
//! - **No panics on input.** CSRs, certificates and CRLs are untrusted bytes.
//!
//! SM2 (GM/T 0003) would plug in at one place: a [`KeyAlgorithm`] variant backed by a
//! provider that offers rcgen a `SigningKey`, webpki a `SignatureVerificationAlgorithm` and
//! rustls a `CryptoProvider`; no other module names an algorithm.

pub mod authority;
pub mod binding;
pub mod crl;
pub mod files;
pub mod inspect;
pub mod key;
pub mod profile;
pub mod request;
pub mod signature;
pub mod store;
pub mod tls;
pub mod verify;

pub use authority::{Authority, IssueRefusal, Issued, Reason, Revocation, Serial};
pub use binding::{AuthorityScope, NodeBinding, OperatorBinding, Role, WireGuardKey};
pub use key::{KeyAlgorithm, PrivateKey};
pub use signature::SignatureError;
pub use verify::{
    ControllerIdentity, NodeExpectation, NodeIdentity, OperatorIdentity, TrustBundle, Usage,
    VerifyError,
};

use topology::DivisionCode;

/// Errors of the PKI outside verification and issuing refusals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// The crypto library failed (no randomness, unsupported parameters).
    #[error("crypto failure: {0}")]
    Crypto(String),
    /// A private key that cannot be read. Never quotes the key.
    #[error("unreadable private key (expected PKCS#8 PEM, ECDSA P-256 or Ed25519)")]
    BadKey,
    /// A certificate that cannot be used as intended.
    #[error("unusable certificate: {0}")]
    BadCertificate(String),
    /// A CA key that does not belong to the CA certificate.
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    /// Only the root creates issuing CAs.
    #[error("only the root CA creates issuing CAs, not the {0} CA")]
    NotRoot(AuthorityScope),
    /// The root is not an issuing scope.
    #[error("the {0} scope cannot be an issuing CA")]
    NotIssuing(AuthorityScope),
    /// No such province in the network.
    #[error("no province {0} in the network")]
    NoSuchProvince(DivisionCode),
    /// A malformed operator login.
    #[error("bad operator login `{0}` (1–32 of a-z 0-9 . - _, starting with a letter)")]
    BadLogin(String),
}
