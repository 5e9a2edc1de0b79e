//! Verifying node, operator and controller certificates: the chain to the root, every CA's
//! CRL, and then what webpki cannot know — the node's province against its issuer's, the
//! plane, the WireGuard key; the controller's identity URI and that the ministry CA issued it.
//!
//! Revocation: every CA publishes a CRL (the root's lists revoked issuing CAs, an issuing
//! CA's lists revoked leaves) and the whole chain is checked; a certificate whose status no
//! CRL covers, or a CRL past its next-update, is refused rather than trusted. Time is an
//! argument, never read here.
//!
//! One exception, never reachable from [`TrustBundle::new`]: a bundle of the root alone
//! (`TrustBundle::root_only`, crate-private) checks chains without revocation, for the two
//! verifiers that have nothing else — an enrolling agent that has only the root so far, and
//! someone checking an old signed document (see [`crate::signature`] and [`crate::tls`]).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm, TrustAnchor,
    UnixTime,
};
use topology::{NodeId, Plane, Zone};
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::authority::Serial;
use crate::binding::{self, AuthorityScope, CONTROLLER_URI, Role, WireGuardKey};
use crate::inspect::Summary;
use crate::profile::renew_at;

/// Why a certificate is not accepted. Each variant is one check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Past its not-after time.
    #[error("certificate expired at {not_after} (now {now}, Unix seconds)")]
    Expired {
        /// When it expired.
        not_after: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// Before its not-before time.
    #[error("certificate not valid until {not_before} (now {now}, Unix seconds)")]
    NotYetValid {
        /// When it becomes valid.
        not_before: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// No chain to the national root.
    #[error("issued by no CA that chains to the Jinbao root")]
    UnknownIssuer,
    /// The certificate or one of its CAs is on a CRL.
    #[error("certificate revoked")]
    Revoked,
    /// No CRL covers the certificate or one of its CAs, or a CRL is past its next update.
    #[error("revocation status unknown: {0}")]
    RevocationUnknown(String),
    /// An address outside the issuing CA's blocks, or a node outside its province.
    #[error("outside the issuing CA's name constraints: {0}")]
    OutsideNameConstraints(String),
    /// A signature does not verify: tampered or forged.
    #[error("bad signature (tampered or forged certificate)")]
    BadSignature,
    /// A node certificate for another plane.
    #[error("certificate is for the {found} plane, not the {expected} plane")]
    WrongPlane {
        /// The plane expected.
        expected: Plane,
        /// The plane in the certificate.
        found: Plane,
    },
    /// A node certificate for another node than the one expected.
    #[error("certificate is for {found}, not {expected}")]
    WrongNode {
        /// The node expected.
        expected: NodeId,
        /// The node in the certificate.
        found: NodeId,
    },
    /// The WireGuard key in the certificate is not the peer's.
    #[error("the certificate's WireGuard key {found} is not the peer's key {expected}")]
    WireGuardKeyMismatch {
        /// The key expected (from the peer table).
        expected: WireGuardKey,
        /// The key in the certificate.
        found: WireGuardKey,
    },
    /// Not the kind of certificate asked for (e.g. an operator certificate presented by a node).
    #[error("not a {expected} certificate")]
    WrongKind {
        /// `node`, `operator`, `controller`, or `node or operator`.
        expected: &'static str,
    },
    /// A certificate without a Jinbao binding whose identity is not the controller's.
    #[error("the certificate's identity is `{found}`, not the controller's {CONTROLLER_URI}")]
    NotController {
        /// Its URIs, comma-separated (empty when it has none).
        found: String,
    },
    /// A certificate issued by a CA that does not issue that kind.
    #[error("{what} certificates are issued by the {expected} CA, but the {found} CA issued it")]
    WrongIssuer {
        /// `controller`.
        what: &'static str,
        /// The CA that issues them.
        expected: AuthorityScope,
        /// The CA that issued this one.
        found: AuthorityScope,
    },
    /// No certificate where one is needed (a TLS client that presented none).
    #[error("no certificate presented")]
    NoCertificate,
    /// A certificate without the extended key usage the connection side needs (an operator
    /// certificate, client-only, presented by a server).
    #[error("the certificate is not for {required} authentication")]
    WrongUsage {
        /// `server` or `client`.
        required: &'static str,
    },
    /// A CRL that is not signed by a CA of the bundle: tampered, or from elsewhere.
    #[error("CRL refused: {0}")]
    BadRevocationList(String),
    /// Bytes that are not a well-formed certificate, CRL or chain.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Any other refusal by the path builder.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl VerifyError {
    fn from_webpki(err: webpki::Error, now: u64) -> VerifyError {
        use webpki::Error as E;
        match err {
            E::CertExpired { not_after, .. } => VerifyError::Expired {
                not_after: not_after.as_secs(),
                now,
            },
            E::CertNotValidYet { not_before, .. } => VerifyError::NotYetValid {
                not_before: not_before.as_secs(),
                now,
            },
            E::UnknownIssuer => VerifyError::UnknownIssuer,
            E::CertRevoked => VerifyError::Revoked,
            E::UnknownRevocationStatus => {
                VerifyError::RevocationUnknown("no CRL from the issuer".into())
            }
            E::CrlExpired { next_update, .. } => VerifyError::RevocationUnknown(format!(
                "CRL expired at {} (Unix seconds)",
                next_update.as_secs()
            )),
            E::NameConstraintViolation => VerifyError::OutsideNameConstraints(
                "an address lies outside the issuing CA's blocks".into(),
            ),
            E::InvalidSignatureForPublicKey => VerifyError::BadSignature,
            E::InvalidCrlSignatureForPublicKey => {
                VerifyError::BadRevocationList("its signature does not verify".into())
            }
            E::BadDer
            | E::BadDerTime
            | E::TrailingData(_)
            | E::MalformedExtensions
            | E::ExtensionValueInvalid => VerifyError::Malformed(format!("{err:?}")),
            other => VerifyError::Rejected(format!("{other:?}")),
        }
    }
}

/// Refuses a CRL whose signature does not verify under the bundle's CA that issued it, when
/// the bundle is built rather than at the first handshake, so a tampered CRL is reported as
/// the CRL's fault. A CRL from a CA the bundle does not hold (its certificate comes with a
/// peer's chain) is checked by webpki when it is used. `authorities` are the bundle's CAs,
/// parsed once for all its CRLs (a national bundle has ~30 CAs and as many CRLs).
fn check_crl_signature(
    der: &CertificateRevocationListDer<'_>,
    authorities: &[x509_parser::certificate::X509Certificate<'_>],
) -> Result<(), VerifyError> {
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;
    let (_, crl) = CertificateRevocationList::from_der(der.as_ref())
        .map_err(|e| VerifyError::Malformed(format!("CRL: {e}")))?;
    let issuer = authorities
        .iter()
        .find(|cert| cert.subject().as_raw() == crl.issuer().as_raw());
    match issuer {
        Some(issuer) => crl.verify_signature(issuer.public_key()).map_err(|_| {
            VerifyError::BadRevocationList(format!(
                "the signature of the CRL of `{}` does not verify",
                issuer.subject()
            ))
        }),
        None => Ok(()),
    }
}

/// Which side of a TLS connection a certificate authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// The connecting side (TLS client authentication).
    Client,
    /// The listening side (TLS server authentication).
    Server,
}

/// What a verified node certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node.
    pub node: NodeId,
    /// The plane.
    pub plane: Plane,
    /// Its zones on that plane.
    pub zones: Vec<Zone>,
    /// Its overlay addresses.
    pub addresses: Vec<IpAddr>,
    /// Its WireGuard key on that plane.
    pub wireguard_key: WireGuardKey,
    /// The certificate's serial.
    pub serial: Serial,
    /// The CA that issued it.
    pub issuer: AuthorityScope,
    /// Valid until.
    pub not_after: SystemTime,
    /// When to renew it.
    pub renew_at: SystemTime,
}

/// What a verified operator certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The person's name.
    pub name: String,
    /// Login.
    pub login: String,
    /// The one role.
    pub role: Role,
    /// The one province the operator works on, its 2-digit code (`"14"`, always a valid
    /// province code: the binding reader checks it), or `None` for the whole network (分级管理).
    pub province: Option<String>,
    /// Valid until.
    pub not_after: SystemTime,
}

/// What a verified controller certificate proves: this is the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerIdentity {
    /// The certificate's serial.
    pub serial: Serial,
    /// Valid until.
    pub not_after: SystemTime,
    /// When to renew it.
    pub renew_at: SystemTime,
    /// The names it is reached by: its DNS names, then its addresses, as written.
    pub names: Vec<String>,
}

/// What a node certificate must also match, beyond a valid chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeExpectation {
    /// The plane the connection is on.
    pub plane: Option<Plane>,
    /// The peer the connection is meant to reach.
    pub node: Option<NodeId>,
    /// The peer's WireGuard key as the peer table has it.
    pub wireguard_key: Option<WireGuardKey>,
}

/// The root, the issuing CAs and every CA's CRL: all a verifier needs.
#[derive(Debug)]
pub struct TrustBundle {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    scopes: Vec<(CertificateDer<'static>, AuthorityScope)>,
    /// `None` only in a root-only bundle: revocation is not checked.
    crls: Option<Vec<CertRevocationList<'static>>>,
}

/// The signature algorithms accepted: ring's ECDSA P-256/P-384 and Ed25519.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
];

impl TrustBundle {
    /// A bundle from the root certificate, the issuing CA certificates and the CRLs.
    pub fn new(
        root: CertificateDer<'static>,
        intermediates: Vec<CertificateDer<'static>>,
        crls: &[CertificateRevocationListDer<'_>],
    ) -> Result<TrustBundle, VerifyError> {
        let anchor = webpki::anchor_from_trusted_cert(&root)
            .map_err(|e| VerifyError::Malformed(format!("root certificate: {e:?}")))?
            .to_owned();
        let scopes = intermediates
            .iter()
            .map(|der| {
                let summary =
                    Summary::read(der).map_err(|e| VerifyError::Malformed(e.to_string()))?;
                let scope = summary.authority.ok_or_else(|| {
                    VerifyError::Malformed(format!("{} is not a Jinbao CA", summary.common_name))
                })?;
                Ok((der.clone(), scope))
            })
            .collect::<Result<_, VerifyError>>()?;
        let authorities: Vec<_> = std::iter::once(&root)
            .chain(&intermediates)
            .filter_map(|ca| {
                use x509_parser::prelude::FromDer;
                x509_parser::certificate::X509Certificate::from_der(ca.as_ref())
                    .ok()
                    .map(|(_, cert)| cert)
            })
            .collect();
        let crls = crls
            .iter()
            .map(|der| {
                check_crl_signature(der, &authorities)?;
                BorrowedCertRevocationList::from_der(der.as_ref())
                    .and_then(|crl| crl.to_owned())
                    .map(CertRevocationList::from)
                    .map_err(|e| VerifyError::Malformed(format!("CRL: {e:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustBundle {
            anchors: vec![anchor],
            intermediates,
            scopes,
            crls: Some(crls),
        })
    }

    /// A bundle of the root alone, which checks chains (the issuing CA comes with the
    /// chain) but not revocation. Only for verifiers that have nothing more, each of which
    /// documents why that is acceptable; never for node links.
    pub(crate) fn root_only(root: &CertificateDer<'_>) -> Result<TrustBundle, VerifyError> {
        let anchor = webpki::anchor_from_trusted_cert(root)
            .map_err(|e| VerifyError::Malformed(format!("root certificate: {e:?}")))?
            .to_owned();
        Ok(TrustBundle {
            anchors: vec![anchor],
            intermediates: Vec::new(),
            scopes: Vec::new(),
            crls: None,
        })
    }

    /// Verifies a node certificate chain (leaf first, then any intermediates the peer sent).
    pub fn verify_node(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
        usage: Usage,
        expect: &NodeExpectation,
    ) -> Result<NodeIdentity, VerifyError> {
        let (summary, issuer) = self.verify_chain(chain, now, usage)?;
        let binding = summary
            .node
            .clone()
            .ok_or(VerifyError::WrongKind { expected: "node" })?;
        let node = binding.node;
        if summary.common_name != node.to_string()
            || summary.uris != [binding::node_uri(binding.plane, &node)]
            || !summary.dns_names.is_empty()
        {
            return Err(VerifyError::Malformed(
                "subject and identity URI do not name the bound node".into(),
            ));
        }
        // webpki does not apply name constraints to URIs: the node id must lie in the issuer's scope.
        let responsible = AuthorityScope::of_node(&node);
        if issuer != responsible {
            return Err(VerifyError::OutsideNameConstraints(format!(
                "{node} belongs to the {responsible} CA, but the {issuer} CA issued it"
            )));
        }
        if let Some(expected) = expect.plane.filter(|p| *p != binding.plane) {
            return Err(VerifyError::WrongPlane {
                expected,
                found: binding.plane,
            });
        }
        if let Some(expected) = expect.node.filter(|n| *n != node) {
            return Err(VerifyError::WrongNode {
                expected,
                found: node,
            });
        }
        if let Some(expected) = expect.wireguard_key.filter(|k| *k != binding.wireguard_key) {
            return Err(VerifyError::WireGuardKeyMismatch {
                expected,
                found: binding.wireguard_key,
            });
        }
        Ok(NodeIdentity {
            node,
            plane: binding.plane,
            zones: binding.zones,
            addresses: summary.addresses,
            wireguard_key: binding.wireguard_key,
            serial: summary.serial,
            issuer,
            not_after: summary.not_after,
            renew_at: renew_at(summary.not_before, summary.not_after),
        })
    }

    /// Verifies an operator certificate chain.
    pub fn verify_operator(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
    ) -> Result<OperatorIdentity, VerifyError> {
        let (summary, issuer) = self.verify_chain(chain, now, Usage::Client)?;
        let binding = summary.operator.clone().ok_or(VerifyError::WrongKind {
            expected: "operator",
        })?;
        if issuer != AuthorityScope::Ministry {
            return Err(VerifyError::OutsideNameConstraints(format!(
                "operators are issued by the ministry CA, not the {issuer} CA"
            )));
        }
        if summary.uris != [binding::operator_uri(&binding.login)] {
            return Err(VerifyError::Malformed(
                "identity URI does not name the bound login".into(),
            ));
        }
        if !summary.addresses.is_empty() || !summary.dns_names.is_empty() {
            return Err(VerifyError::Malformed(
                "an operator certificate names no addresses or hosts".into(),
            ));
        }
        Ok(OperatorIdentity {
            name: summary.common_name,
            login: binding.login,
            role: binding.role,
            province: binding.province,
            not_after: summary.not_after,
        })
    }

    /// Verifies the controller's certificate chain: to the root through the ministry CA,
    /// CRLs as for nodes, server authentication, and the identity URI [`CONTROLLER_URI`]
    /// with no node or operator binding.
    pub fn verify_controller(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
    ) -> Result<ControllerIdentity, VerifyError> {
        // The kind first, so a node's or operator's certificate is named as such whatever
        // else is wrong with it; nothing is accepted before the chain check below.
        let leaf = chain
            .first()
            .ok_or_else(|| VerifyError::Malformed("empty chain".into()))?;
        let claimed = Summary::read(leaf).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        if claimed.node.is_some() || claimed.operator.is_some() || claimed.authority.is_some() {
            return Err(VerifyError::WrongKind {
                expected: "controller",
            });
        }
        let (summary, issuer) = self.verify_chain(chain, now, Usage::Server)?;
        if summary.uris != [CONTROLLER_URI] {
            return Err(VerifyError::NotController {
                found: summary.uris.join(", "),
            });
        }
        if issuer != AuthorityScope::Ministry {
            return Err(VerifyError::WrongIssuer {
                what: "controller",
                expected: AuthorityScope::Ministry,
                found: issuer,
            });
        }
        let names = summary
            .dns_names
            .iter()
            .cloned()
            .chain(summary.addresses.iter().map(|a| a.to_string()))
            .collect();
        Ok(ControllerIdentity {
            serial: summary.serial,
            not_after: summary.not_after,
            renew_at: renew_at(summary.not_before, summary.not_after),
            names,
        })
    }

    /// The chain check by webpki (signatures, validity, constraints, CRLs), then the leaf's
    /// content and the scope of the CA that issued it.
    fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
        usage: Usage,
    ) -> Result<(Summary, AuthorityScope), VerifyError> {
        let (leaf, presented) = chain
            .split_first()
            .ok_or_else(|| VerifyError::Malformed("empty chain".into()))?;
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        let end_entity =
            EndEntityCert::try_from(leaf).map_err(|e| VerifyError::from_webpki(e, seconds))?;
        let intermediates: Vec<CertificateDer<'_>> = presented
            .iter()
            .chain(&self.intermediates)
            .cloned()
            .collect();
        let crls: Option<Vec<&CertRevocationList<'_>>> =
            self.crls.as_ref().map(|crls| crls.iter().collect());
        let revocation = match &crls {
            None => None, // a root-only bundle: see `root_only`
            Some(crls) => Some(
                RevocationOptionsBuilder::new(crls)
                    .ok()
                    .map(|builder| {
                        builder
                            .with_depth(RevocationCheckDepth::Chain)
                            .with_status_policy(UnknownStatusPolicy::Deny)
                            .with_expiration_policy(ExpirationPolicy::Enforce)
                            .build()
                    })
                    .ok_or_else(|| {
                        VerifyError::RevocationUnknown("the trust bundle has no CRLs".into())
                    })?,
            ),
        };
        let (usage, side) = match usage {
            Usage::Client => (KeyUsage::client_auth(), "client"),
            Usage::Server => (KeyUsage::server_auth(), "server"),
        };
        let path = end_entity
            .verify_for_usage(
                ALGORITHMS,
                &self.anchors,
                &intermediates,
                time,
                usage,
                revocation,
                None,
            )
            .map_err(|e| match e {
                webpki::Error::RequiredEkuNotFoundContext(_) => {
                    VerifyError::WrongUsage { required: side }
                }
                other => VerifyError::from_webpki(other, seconds),
            })?;
        let issuer_der = path
            .intermediate_certificates()
            .next()
            .map(|cert| cert.der())
            .ok_or_else(|| {
                VerifyError::OutsideNameConstraints(
                    "leaf certificates are issued by an issuing CA, not the root".into(),
                )
            })?;
        let issuer = self
            .scopes
            .iter()
            .find(|(der, _)| der.as_ref() == issuer_der.as_ref())
            .map(|(_, scope)| *scope)
            .or_else(|| Summary::read(&issuer_der).ok().and_then(|s| s.authority))
            .ok_or_else(|| VerifyError::Malformed("the issuing CA has no Jinbao scope".into()))?;
        let summary = Summary::read(leaf).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        Ok((summary, issuer))
    }
}
