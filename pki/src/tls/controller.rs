//! rustls configurations for the controller's HTTPS API: who may call it, and how a caller
//! knows it reached the controller.
//!
//! The server asks every client for a certificate but does not require one: an enrolling
//! agent has none yet and authenticates with its one-time token instead. A certificate that
//! *is* presented must verify completely (chain, CRLs, client authentication) as a node's or
//! an operator's, or the handshake fails with the precise refusal; after the handshake
//! [`caller`] says which of the two called. What an anonymous caller may do is the API's
//! decision, not this module's.
//!
//! The client accepts only the controller's certificate ([`TrustBundle::verify_controller`]):
//! the identity is the URI `spiffe://jinbao/controller`, so the name dialled does not matter
//! (an address, a DNS name, anything). Two trust modes ([`ControllerTrust`]):
//!
//! - **Full**: the shared bundle, every CA's CRL checked, as between nodes.
//! - **Bootstrap**: the root certificate only, for an agent enrolling. It checks the chain to
//!   that root and the controller profile but not revocation: the agent has no CRL yet.
//!   That is acceptable because what the agent risks is small and brief: it sends a CSR
//!   (public) and a one-time, short-lived enrollment token, which a server with a stolen,
//!   revoked controller key could use at most once before it expires; and the agent
//!   switches to Full trust from the first bundle it receives, which carries the CRLs.
//!
//! As for node links, resumption is off on both sides: every connection runs the full check.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;

use super::{
    ClientCheck, Credentials, ServerCheck, SharedTrust, client_config, server_config, to_rustls,
};
use crate::inspect::Summary;
use crate::verify::{
    NodeExpectation, NodeIdentity, OperatorIdentity, TrustBundle, Usage, VerifyError,
};

/// Who called the controller, proven by a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An enrolled node (its agent).
    Node(NodeIdentity),
    /// A person: a login, a role and maybe a province.
    Operator(OperatorIdentity),
}

/// Verifies the certificates a client presented (`peer_certificates`, leaf first) and says
/// who it is: a node or an operator, decided by the leaf's binding extension. For the server
/// after the handshake, with the bundle in force; a client that presented none gets
/// [`VerifyError::NoCertificate`].
pub fn caller(
    trust: &TrustBundle,
    peer_certificates: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<Caller, VerifyError> {
    let leaf = peer_certificates
        .first()
        .ok_or(VerifyError::NoCertificate)?;
    let summary = Summary::read(leaf).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    match (&summary.node, &summary.operator) {
        (Some(_), None) => trust
            .verify_node(
                peer_certificates,
                now,
                Usage::Client,
                &NodeExpectation::default(),
            )
            .map(Caller::Node),
        (None, Some(_)) => trust
            .verify_operator(peer_certificates, now)
            .map(Caller::Operator),
        (Some(_), Some(_)) => Err(VerifyError::Malformed(
            "both a node and an operator binding".into(),
        )),
        (None, None) => Err(VerifyError::WrongKind {
            expected: "node or operator",
        }),
    }
}

/// The controller's listening side: TLS 1.3, no resumption, client certificates optional
/// but verified as a node's or an operator's when presented (see the module docs).
pub fn controller_server_config(
    trust: Arc<SharedTrust>,
    credentials: Credentials,
) -> Result<ServerConfig, rustls::Error> {
    server_config(Callers(trust), credentials)
}

/// What a client of the controller trusts it with.
#[derive(Debug, Clone)]
pub enum ControllerTrust {
    /// The root certificate only: an agent enrolling, which has no bundle yet. No
    /// revocation check (see the module docs for why that is acceptable).
    Bootstrap(CertificateDer<'static>),
    /// The full, shared trust bundle with every CA's CRL.
    Full(Arc<SharedTrust>),
}

/// The connecting side of the controller's API: accepts only the controller's certificate,
/// presents `client` when given (an enrolled node or an operator), TLS 1.3, no resumption.
/// Fails at once when a Bootstrap root is not a usable certificate.
pub fn controller_client_config(
    trust: ControllerTrust,
    client: Option<Credentials>,
) -> Result<ClientConfig, rustls::Error> {
    let anchor = match trust {
        ControllerTrust::Bootstrap(root) => {
            Anchor::Bootstrap(Arc::new(TrustBundle::root_only(&root).map_err(to_rustls)?))
        }
        ControllerTrust::Full(shared) => Anchor::Full(shared),
    };
    client_config(anchor, client)
}

/// Checks the controller's callers: nodes and operators, or no certificate at all.
#[derive(Debug)]
struct Callers(Arc<SharedTrust>);

impl ClientCheck for Callers {
    const MANDATORY: bool = false; // an enrolling agent has no certificate yet

    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError> {
        caller(&self.0.current(), chain, now).map(|_| ())
    }
}

/// The bundle a client checks the controller against: that the server is the controller.
#[derive(Debug)]
enum Anchor {
    /// The root alone, fixed.
    Bootstrap(Arc<TrustBundle>),
    /// The bundle in force.
    Full(Arc<SharedTrust>),
}

impl ServerCheck for Anchor {
    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError> {
        let bundle = match self {
            Anchor::Bootstrap(root) => root.clone(),
            Anchor::Full(shared) => shared.current(),
        };
        bundle.verify_controller(chain, now).map(|_| ())
    }
}
