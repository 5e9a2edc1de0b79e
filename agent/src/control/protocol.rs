//! What agents and the controller say to each other over HTTPS: enrollment, signed bundles,
//! health reports.
//!
//! The wire is JSON over HTTP/1.1 over TLS 1.3 (mutual TLS with the node certificate after
//! enrollment). Config reaches agents by long-poll: `GET /v1/agent/bundle?after=V` answers
//! at once with a newer bundle, or holds the request until there is one (at most
//! [`LONG_POLL`]; then `204 No Content` and the agent asks again). A long-poll needs nothing
//! but plain HTTP through any proxy, survives a controller restart with no state on either
//! side (the agent just asks again, with the version it runs), and an agent that was away
//! gets the newest bundle, not a backlog.
//!
//! A bundle travels signed: [`SignedBundle`] carries the bundle's JSON text exactly as
//! signed, the controller's signature over those bytes and the controller's certificate
//! chain. The agent checks the signer is the controller (chain to the national root, CRLs)
//! and the signature before it parses a byte of the bundle, then refuses a bundle for
//! another node or one not newer than what it runs.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use pki::TrustBundle;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Plane};

use super::{Bundle, Status};

/// How long the controller holds a bundle request with nothing new.
pub const LONG_POLL: Duration = Duration::from_secs(25);

/// The largest request body the controller reads (a bundle request has none; enrollment
/// carries a CSR per plane, a health report one status).
pub const MAX_BODY: usize = 1 << 20;

/// `POST /v1/enroll`: a one-time token and a certificate request per plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The token an engineer made for this node (`jinbao-controller node token`).
    pub token: String,
    /// One per plane the node joins.
    pub planes: Vec<PlaneEnrollment>,
}

/// A plane the node joins: its CSR and where it listens on the underlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneEnrollment {
    /// The plane.
    pub plane: Plane,
    /// The certificate request (PEM, as `jinbao-agent csr` writes it).
    pub csr: String,
    /// The underlay address the plane's instance listens on.
    pub listen: SocketAddr,
    /// A second underlay address (a second carrier), if the node has one.
    #[serde(default)]
    pub backup_listen: Option<SocketAddr>,
}

/// What enrollment returns: the certificates and the first bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The node the token was for.
    pub node: NodeId,
    /// Per plane, the certificate chain (PEM: leaf, then its CA).
    pub certificates: Vec<(Plane, String)>,
    /// The first config bundle.
    pub bundle: SignedBundle,
}

/// An error answer: what was refused and why, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why.
    pub error: String,
}

/// `POST /v1/agent/health`: the agent's status.
pub type HealthReport = Status;

/// A bundle as the controller signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBundle {
    /// The bundle's JSON, exactly the bytes signed.
    pub bundle: String,
    /// The controller's signature over `bundle` (base64).
    pub signature: String,
    /// The controller's certificate chain (PEM: leaf, then the ministry CA).
    pub signer: String,
}

/// Why a signed bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignedBundleError {
    /// The signer's chain is not PEM, or the signature not base64.
    #[error("the signed bundle is malformed: {0}")]
    Malformed(&'static str),
    /// Not signed by the controller, or the signature does not match.
    #[error("signature: {0}")]
    Signature(#[from] pki::signature::SignatureError),
    /// Signed, but not a bundle this agent reads.
    #[error(transparent)]
    Bundle(#[from] super::BundleError),
    /// Signed for another node.
    #[error("the bundle is for {found}, this agent is {expected}")]
    OtherNode {
        /// This agent.
        expected: NodeId,
        /// The bundle's node.
        found: NodeId,
    },
    /// Not newer than the bundle running.
    #[error("bundle version {found} is not newer than the running version {running}")]
    NotNewer {
        /// The version running.
        running: u64,
        /// The version offered.
        found: u64,
    },
}

/// Why a bundle could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The bundle did not encode.
    #[error("encoding the bundle: {0}")]
    Encode(serde_json::Error),
    /// The key did not sign.
    #[error("signing the bundle: {0}")]
    Sign(pki::PkiError),
}

/// Who checks a bundle's signature: the agent's current trust bundle, or — for the first
/// bundle, at enrollment — the national root alone.
pub enum Verifier<'a> {
    /// Full trust: the root, the CAs and their CRLs.
    Trust(&'a TrustBundle),
    /// The root certificate only (chain checked, no revocation known yet).
    Root(&'a CertificateDer<'a>),
}

impl SignedBundle {
    /// Signs a bundle with the controller's key; `signer` is its chain (PEM).
    pub fn sign(
        bundle: &Bundle,
        key: &pki::PrivateKey,
        signer: &str,
    ) -> Result<SignedBundle, SignError> {
        let text = serde_json::to_string(bundle).map_err(SignError::Encode)?;
        let signature = pki::signature::sign(key, text.as_bytes()).map_err(SignError::Sign)?;
        Ok(SignedBundle {
            bundle: text,
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
            signer: signer.to_owned(),
        })
    }

    /// Checks the signature, then the bundle: for `node`, newer than `running` (if any).
    pub fn open(
        &self,
        verifier: Verifier<'_>,
        node: Option<NodeId>,
        running: Option<u64>,
        now: SystemTime,
    ) -> Result<Bundle, SignedBundleError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.signer.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| SignedBundleError::Malformed("the signer chain is not PEM"))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(self.signature.trim())
            .map_err(|_| SignedBundleError::Malformed("the signature is not base64"))?;
        let message = self.bundle.as_bytes();
        match verifier {
            Verifier::Trust(trust) => {
                trust.verify_signature(&chain, message, &signature, now)?;
            }
            Verifier::Root(root) => {
                pki::signature::verify_signature_with_root(root, &chain, message, &signature, now)?;
            }
        }
        let bundle = Bundle::parse("signed bundle.json", &self.bundle)?;
        if let Some(expected) = node
            && bundle.node != expected
        {
            return Err(SignedBundleError::OtherNode {
                expected,
                found: bundle.node,
            });
        }
        if let Some(running) = running
            && bundle.version <= running
        {
            return Err(SignedBundleError::NotNewer {
                running,
                found: bundle.version,
            });
        }
        Ok(bundle)
    }
}
