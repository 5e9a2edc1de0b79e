//! rustls configurations for node-to-node mutual TLS, and for the controller's API
//! ([`controller_server_config`], [`controller_client_config`]; see [`controller`]).
//!
//! Between nodes, both sides present node certificates and verify the other's with [`TrustBundle`]: chain,
//! CRLs, plane, and on the connecting side the node it meant to reach. The bundle is shared
//! and replaceable ([`SharedTrust::replace`]) so a new CRL takes effect on the next
//! handshake without rebuilding configurations. TLS 1.3 only, ring provider only.
//!
//! Session resumption is off on both sides: a resumed TLS 1.3 session skips certificate
//! verification, so a node revoked (or expired) after its first handshake could keep
//! reconnecting on its ticket. Every connection runs the full check against the bundle in
//! force; node links are few and long-lived, so the extra handshake costs nothing.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::NoServerSessionStorage;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use topology::{NodeId, Plane};

use crate::PkiError;
use crate::verify::{NodeExpectation, TrustBundle, Usage, VerifyError};

pub mod controller;

pub use controller::{
    Caller, ControllerTrust, caller, controller_client_config, controller_server_config,
};

/// A trust bundle that can be swapped while connections use it (a new CRL, a new CA).
#[derive(Debug)]
pub struct SharedTrust(RwLock<Arc<TrustBundle>>);

impl SharedTrust {
    /// Shares `bundle` (owned, or already shared with other verifiers).
    pub fn new(bundle: impl Into<Arc<TrustBundle>>) -> Arc<SharedTrust> {
        Arc::new(SharedTrust(RwLock::new(bundle.into())))
    }

    /// The bundle in force.
    pub fn current(&self) -> Arc<TrustBundle> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `bundle` in force for every handshake from now on.
    pub fn replace(&self, bundle: impl Into<Arc<TrustBundle>>) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = bundle.into();
    }
}

/// A certificate chain and its private key: a node's, an operator's or the controller's.
#[derive(Debug)]
pub struct Credentials {
    /// Leaf first, then the issuing CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Credentials {
    /// From a PEM chain (leaf first) and a PEM private key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Credentials, PkiError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| PkiError::BadCertificate("unreadable PEM chain".into()))?;
        if chain.is_empty() {
            return Err(PkiError::BadCertificate(
                "no certificate in the chain".into(),
            ));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| PkiError::BadKey)?;
        Ok(Credentials { chain, key })
    }
}

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listening side: requires a node certificate for `plane` from every client.
pub fn node_server_config(
    trust: Arc<SharedTrust>,
    plane: Plane,
    credentials: Credentials,
) -> Result<ServerConfig, rustls::Error> {
    server_config(NodeCheck { trust, plane }, credentials)
}

/// The connecting side: presents its node certificate and accepts only `peer` on `plane`.
pub fn node_client_config(
    trust: Arc<SharedTrust>,
    plane: Plane,
    peer: NodeId,
    credentials: Credentials,
) -> Result<ClientConfig, rustls::Error> {
    let check = NodePeer {
        node: NodeCheck { trust, plane },
        peer,
    };
    client_config(check, Some(credentials))
}

/// The server name to dial a node by. Identity is checked on the node id, not this name.
pub fn server_name(node: &NodeId) -> ServerName<'static> {
    ServerName::try_from(node.tag())
        .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// Turns a refusal into the rustls error that sends the matching TLS alert; the precise
/// reason rides along in `CertificateError::Other` where TLS has no word for it, and in the
/// `*Context` variants for validity times.
pub fn to_rustls(err: VerifyError) -> rustls::Error {
    let at = |seconds: u64| UnixTime::since_unix_epoch(Duration::from_secs(seconds));
    let certificate = match err {
        VerifyError::Expired { not_after, now } => CertificateError::ExpiredContext {
            time: at(now),
            not_after: at(not_after),
        },
        VerifyError::NotYetValid { not_before, now } => CertificateError::NotValidYetContext {
            time: at(now),
            not_before: at(not_before),
        },
        VerifyError::UnknownIssuer => CertificateError::UnknownIssuer,
        VerifyError::Revoked => CertificateError::Revoked,
        VerifyError::BadSignature => CertificateError::BadSignature,
        VerifyError::RevocationUnknown(_) => CertificateError::UnknownRevocationStatus,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(certificate)
}

/// The refusal behind a rustls error made by [`to_rustls`]: the inverse mapping, so the side
/// that refused a certificate can say which check failed whichever TLS alert it sent.
/// `RevocationUnknown` comes back without its detail (TLS has no room for it).
pub fn verify_error(err: &rustls::Error) -> Option<VerifyError> {
    let rustls::Error::InvalidCertificate(certificate) = err else {
        return None;
    };
    Some(match certificate {
        CertificateError::Other(OtherError(inner)) => inner.downcast_ref::<VerifyError>()?.clone(),
        CertificateError::ExpiredContext { time, not_after } => VerifyError::Expired {
            not_after: not_after.as_secs(),
            now: time.as_secs(),
        },
        CertificateError::NotValidYetContext { time, not_before } => VerifyError::NotYetValid {
            not_before: not_before.as_secs(),
            now: time.as_secs(),
        },
        CertificateError::UnknownIssuer => VerifyError::UnknownIssuer,
        CertificateError::Revoked => VerifyError::Revoked,
        CertificateError::BadSignature => VerifyError::BadSignature,
        CertificateError::UnknownRevocationStatus => {
            VerifyError::RevocationUnknown("reported by TLS".into())
        }
        _ => return None,
    })
}

/// A listening side's configuration: TLS 1.3, `check` on the clients' certificates,
/// `credentials` presented, no resumption (see the module docs).
fn server_config<C: ClientCheck + 'static>(
    check: C,
    credentials: Credentials,
) -> Result<ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = Verifier::new(check, &provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(credentials.chain, credentials.key)?;
    // No resumption (see the module docs): no session cache, no tickets.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A connecting side's configuration: TLS 1.3, `check` on the server's certificate,
/// `credentials` presented when given, no resumption (see the module docs).
fn client_config<C: ServerCheck + 'static>(
    check: C,
    credentials: Option<Credentials>,
) -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = Verifier::new(check, &provider);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // a stricter verifier than webpki's server-name check, not a looser one
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match credentials {
        Some(credentials) => builder.with_client_auth_cert(credentials.chain, credentials.key)?,
        None => builder.with_no_client_auth(),
    };
    // No resumption (see the module docs): the server's certificate is checked every time.
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// What a listening side accepts as a client's certificate chain (leaf first) at `now`.
trait ClientCheck: Debug + Send + Sync {
    /// Whether a client must present a certificate at all.
    const MANDATORY: bool = true;

    /// `Ok` when the chain is accepted, else the refusal.
    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError>;
}

/// What a connecting side accepts as the server's certificate chain (leaf first) at `now`.
trait ServerCheck: Debug + Send + Sync {
    /// `Ok` when the chain is accepted, else the refusal.
    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError>;
}

/// Every verifier of this crate: `check` decides on the certificate chain, refusals go out
/// through [`to_rustls`], and the handshake signatures are checked with the provider's
/// algorithms.
#[derive(Debug)]
struct Verifier<C> {
    check: C,
    algorithms: WebPkiSupportedAlgorithms,
}

impl<C> Verifier<C> {
    fn new(check: C, provider: &CryptoProvider) -> Verifier<C> {
        Verifier {
            check,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

/// The handshake-signature methods that `ClientCertVerifier` and `ServerCertVerifier` both
/// require, for [`Verifier`]: each `verify_tls1*_signature` method calls the `rustls::crypto`
/// function of the same name with the provider's algorithms.
macro_rules! handshake_signatures {
    () => {
        handshake_signatures!(@each verify_tls12_signature verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
    (@each $($verify:ident)*) => {
        $(
            fn $verify(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, rustls::Error> {
                rustls::crypto::$verify(message, cert, dss, &self.algorithms)
            }
        )*
    };
}

impl<C: ClientCheck> ClientCertVerifier for Verifier<C> {
    fn client_auth_mandatory(&self) -> bool {
        C::MANDATORY
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check
            .accept(&chain(end_entity, intermediates), system_time(now))
            .map(|()| ClientCertVerified::assertion())
            .map_err(to_rustls)
    }

    handshake_signatures!();
}

impl<C: ServerCheck> ServerCertVerifier for Verifier<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check
            .accept(&chain(end_entity, intermediates), system_time(now))
            .map(|()| ServerCertVerified::assertion())
            .map_err(to_rustls)
    }

    handshake_signatures!();
}

/// The chain as [`TrustBundle`] takes it: leaf first.
fn chain<'a>(
    end_entity: &CertificateDer<'a>,
    intermediates: &[CertificateDer<'a>],
) -> Vec<CertificateDer<'a>> {
    std::iter::once(end_entity.clone())
        .chain(intermediates.iter().cloned())
        .collect()
}

fn system_time(now: UnixTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

/// What both node checks verify: a node chain against the current trust bundle, on one plane.
/// On its own, the check of connecting nodes.
#[derive(Debug)]
struct NodeCheck {
    trust: Arc<SharedTrust>,
    plane: Plane,
}

impl NodeCheck {
    fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
        usage: Usage,
        node: Option<NodeId>,
    ) -> Result<(), VerifyError> {
        let expect = NodeExpectation {
            plane: Some(self.plane),
            node,
            wireguard_key: None,
        };
        self.trust
            .current()
            .verify_node(chain, now, usage, &expect)
            .map(|_| ())
    }
}

impl ClientCheck for NodeCheck {
    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError> {
        self.verify(chain, now, Usage::Client, None)
    }
}

/// The check of the node a connection was meant to reach.
#[derive(Debug)]
struct NodePeer {
    node: NodeCheck,
    peer: NodeId,
}

impl ServerCheck for NodePeer {
    fn accept(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> Result<(), VerifyError> {
        self.node.verify(chain, now, Usage::Server, Some(self.peer))
    }
}
