//! Certificate authorities: the national root, the ministry's issuing CA and one issuing CA
//! per province (分级管理).
//!
//! The root signs only the issuing CAs (path length 1). An issuing CA signs only leaves
//! (path length 0) and carries IP-address name constraints: its scope's blocks on every
//! plane, so webpki and OpenSSL both refuse a leaf whose overlay address lies outside them.
//! Before signing a node certificate the CA checks the request against the topology: the
//! node exists and is in its scope, the plane reaches it, the zones are the node's, the
//! addresses are exactly the plan's. A request that asks for anything else is refused with
//! the reason.
//!
//! The ministry CA also signs the operators' certificates (a person and a role, and for a
//! provincial operator the province) and the controller's. The controller holds the ministry
//! CA, so its certificate needs no request: [`Authority::issue_controller`] reads only the
//! public half of the controller's key.
//!
//! Cities get no CA of their own: a province CA already scopes issuing to the province, a
//! city level would double the CAs, keys and CRLs to guard (and every verifier's path
//! length) for no narrower blast radius than the name constraints already give.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CidrSubnet,
    CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use topology::plan::Allocation;
use topology::{DivisionCode, DivisionLevel, Network, NodeId, NodeKind, Plane, Zone};

use crate::PkiError;
use crate::binding::{
    self, AUTHORITY_OID, AuthorityScope, CONTROLLER_URI, NODE_OID, OPERATOR_OID, OperatorBinding,
    Role,
};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::profile::{self, AUTHORITY_LIFETIME, BACKDATE, ROOT_LIFETIME, datetime, random_serial};
use crate::request::{NodeRequest, OperatorRequest, RequestKey};

/// The common name of the controller's certificate.
pub const CONTROLLER_COMMON_NAME: &str = "jinbao-controller";

/// Why a CA refused to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueRefusal {
    /// The root signs only issuing CAs.
    #[error("the root CA signs only the ministry and province CAs, not leaf certificates")]
    RootSignsOnlyAuthorities,
    /// The node is not in the network.
    #[error("no node {0} in the network")]
    UnknownNode(NodeId),
    /// The node belongs to another CA.
    #[error("{node} is issued by the {responsible} CA, not the {authority} CA")]
    OutsideAuthority {
        /// The node.
        node: NodeId,
        /// The CA asked.
        authority: AuthorityScope,
        /// The CA responsible for the node.
        responsible: AuthorityScope,
    },
    /// The plane does not reach the node.
    #[error("{node} is not on the {plane} plane")]
    NotOnPlane {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
    },
    /// No zones asked for.
    #[error("the request names no zones")]
    NoZones,
    /// A zone the node does not have on that plane.
    #[error("{node} has no {zone} zone on the {plane} plane (it has: {available})")]
    ZoneNotAtNode {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
        /// The zone asked for.
        zone: Zone,
        /// The zones it has.
        available: String,
    },
    /// Addresses that are not the plan's for this node, plane and zones.
    #[error("{node} asks for addresses the plan does not give it on the {plane} plane: {detail}")]
    WrongAddresses {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
        /// Which addresses are extra or missing.
        detail: String,
    },
    /// A subject or URI that does not match the node.
    #[error("the request's {what} is `{found}`, but the node's is `{expected}`")]
    WrongName {
        /// `common name` or `identity URI`.
        what: &'static str,
        /// What the request says.
        found: String,
        /// What it must say.
        expected: String,
    },
    /// An all-zero WireGuard key, which cannot be a real X25519 public key.
    #[error("the WireGuard key is all zeros")]
    WeakWireGuardKey,
    /// Operators are issued by the ministry CA.
    #[error("operator certificates are issued by the ministry CA, not the {0} CA")]
    OperatorsAtMinistry(AuthorityScope),
    /// An operator scoped to something that is not a province.
    #[error("an operator's scope is a 2-digit province code, not {0}")]
    NotAProvince(DivisionCode),
    /// The controller's certificate is issued by the ministry CA.
    #[error("the controller's certificate is issued by the ministry CA, not the {0} CA")]
    ControllerAtMinistry(AuthorityScope),
    /// A controller name that is not a DNS name.
    #[error("`{0}` is not a DNS name")]
    BadDnsName(String),
    /// An address outside the issuing CA's name constraints: the certificate would never
    /// verify, so it is not issued.
    #[error(
        "{address} lies outside the {authority} CA's blocks ({permitted}): no verifier would accept it"
    )]
    OutsideNameConstraints {
        /// The address asked for.
        address: IpAddr,
        /// The CA asked.
        authority: AuthorityScope,
        /// The blocks it may sign addresses in.
        permitted: String,
    },
    /// rcgen could not sign (an internal fault, not the request's).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A certificate serial number, written in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(pub Vec<u8>);

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.pad(&hex)
    }
}

impl FromStr for Serial {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_start_matches("0x").replace(':', "");
        if s.is_empty()
            || !s.len().is_multiple_of(2)
            || s.len() > 40
            || !s.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!(
                "bad serial number `{s}` (expected hex, as `cert list` prints it)"
            ));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()
            .map(Serial)
    }
}

/// Why a certificate was revoked (RFC 5280 reason codes that apply here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No reason given.
    Unspecified,
    /// The private key is (or may be) known to someone else.
    KeyCompromise,
    /// The node or person moved or changed role.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The node or person is gone.
    CessationOfOperation,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 5] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
    ];

    /// The reason as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
        }
    }

    /// The reason for an RFC 5280 `CRLReason` code, if it is one of these.
    pub fn from_code(code: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.rcgen() as u8 == code)
    }

    fn rcgen(self) -> rcgen::RevocationReason {
        match self {
            Reason::Unspecified => rcgen::RevocationReason::Unspecified,
            Reason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Reason::Superseded => rcgen::RevocationReason::Superseded,
            Reason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown reason `{s}` (expected one of: {})", all.join(", "))
            })
    }
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Its serial number.
    pub serial: Serial,
    /// Why.
    pub reason: Reason,
    /// When.
    pub revoked_at: SystemTime,
}

/// A certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate.
    pub certificate: CertificateDer<'static>,
    /// Its serial number.
    pub serial: Serial,
    /// Its subject: node id or operator login.
    pub subject: String,
    /// When it expires.
    pub not_after: SystemTime,
}

impl Issued {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        pem_certificate(&self.certificate)
    }
}

/// A certificate as PEM.
pub fn pem_certificate(der: &CertificateDer<'_>) -> String {
    pem_block("CERTIFICATE", der.as_ref())
}

/// A CRL as PEM (`openssl crl -in` reads it).
pub fn pem_crl(der: &CertificateRevocationListDer<'_>) -> String {
    pem_block("X509 CRL", der.as_ref())
}

/// A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = base64_lines(der);
    format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n")
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A CA: its certificate, its scope and its signing key.
pub struct Authority {
    scope: AuthorityScope,
    certificate: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({})", self.scope)
    }
}

impl Authority {
    /// Creates the national root CA.
    pub fn create_root(algorithm: KeyAlgorithm, now: SystemTime) -> Result<Authority, PkiError> {
        let key = PrivateKey::generate(algorithm)?;
        let mut params = authority_params(
            AuthorityScope::Root,
            "Jinbao WAN Root CA",
            now,
            ROOT_LIFETIME,
        )?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let certificate = params.self_signed(key.pair()).map_err(crypto)?;
        Ok(Authority {
            scope: AuthorityScope::Root,
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key.into_pair()),
        })
    }

    /// Creates an issuing CA below this root: the ministry's or a province's, constrained to
    /// that scope's blocks on every plane.
    pub fn create_issuing(
        &self,
        scope: AuthorityScope,
        algorithm: KeyAlgorithm,
        network: &Network,
        allocation: &Allocation,
        now: SystemTime,
    ) -> Result<Authority, PkiError> {
        if self.scope != AuthorityScope::Root {
            return Err(PkiError::NotRoot(self.scope));
        }
        let blocks = scope_blocks(scope, network, allocation)?;
        let key = PrivateKey::generate(algorithm)?;
        let name = match scope {
            AuthorityScope::Province(code) => {
                let node = network
                    .lookup(&NodeId::DataCentre(code))
                    .map(|ix| network.node(ix).name.clone());
                format!("Jinbao WAN Province CA {code} {}", node.unwrap_or_default())
            }
            _ => "Jinbao WAN Ministry CA".to_owned(),
        };
        let mut params = authority_params(scope, name.trim(), now, AUTHORITY_LIFETIME)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: blocks
                .iter()
                .map(|net| {
                    GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                        net.network(),
                        net.prefix_len(),
                    ))
                })
                .collect(),
            excluded_subtrees: Vec::new(),
        });
        let certificate = params.signed_by(key.pair(), &self.issuer).map_err(crypto)?;
        Ok(Authority {
            scope,
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key.into_pair()),
        })
    }

    /// Loads a CA from its certificate and key (PEM).
    pub fn load(certificate_pem: &str, key_pem: &str) -> Result<Authority, PkiError> {
        let certificate = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|_| PkiError::BadCertificate("not a PEM certificate".into()))?
            .into_owned();
        let scope = crate::inspect::Summary::read(&certificate)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?
            .authority
            .ok_or_else(|| PkiError::BadCertificate("not a Jinbao CA certificate".into()))?;
        let key = PrivateKey::from_pem(key_pem)?;
        if key.public_key_der() != spki_of(&certificate)? {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&certificate, key.into_pair())
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        Ok(Authority {
            scope,
            certificate,
            issuer,
        })
    }

    /// What this CA signs for.
    pub fn scope(&self) -> AuthorityScope {
        self.scope
    }

    /// Its certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// Its certificate as PEM.
    pub fn certificate_pem(&self) -> String {
        pem_certificate(&self.certificate)
    }

    /// Its private key as PEM, for a 0600 file.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Its key algorithm.
    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        KeyAlgorithm::of(self.issuer.key().algorithm())
    }

    /// Signs a node certificate after checking the request against the topology.
    pub fn issue_node(
        &self,
        request: &NodeRequest,
        network: &Network,
        allocation: &Allocation,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Issued, IssueRefusal> {
        let binding = &request.binding;
        let node_id = binding.node;
        self.check_node_request(request, network, allocation)?;
        let ix = network
            .lookup(&node_id)
            .ok_or(IssueRefusal::UnknownNode(node_id))?;
        let mut params = leaf_params(now, lifetime).map_err(signing)?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_id.to_string());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, binding.plane.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, network.node(ix).name.as_str());
        params.subject_alt_names = std::iter::once(
            binding::node_uri(binding.plane, &node_id)
                .try_into()
                .map(SanType::URI)
                .map_err(|_| IssueRefusal::Signing("identity URI".into())),
        )
        .chain(request.addresses.iter().map(|&a| Ok(SanType::IpAddress(a))))
        .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &NODE_OID,
            binding.to_der(),
        )];
        self.sign(params, &request.public_key, node_id.to_string())
    }

    /// Signs an operator certificate with the role the engineer chose and, for a provincial
    /// operator, the province (分级管理); `None` is the whole network.
    pub fn issue_operator(
        &self,
        request: &OperatorRequest,
        role: Role,
        province: Option<DivisionCode>,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Issued, IssueRefusal> {
        if self.scope != AuthorityScope::Ministry {
            return Err(IssueRefusal::OperatorsAtMinistry(self.scope));
        }
        if let Some(code) = province.filter(|c| c.level() != DivisionLevel::Province) {
            return Err(IssueRefusal::NotAProvince(code));
        }
        let mut params = leaf_params(now, lifetime).map_err(signing)?;
        params
            .distinguished_name
            .push(DnType::CommonName, request.name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role.as_str());
        params.subject_alt_names = vec![SanType::URI(
            binding::operator_uri(&request.login)
                .try_into()
                .map_err(|_| IssueRefusal::Signing("operator URI".into()))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let binding = OperatorBinding {
            login: request.login.clone(),
            role,
            province: province.map(|code| code.to_string()),
        };
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &OPERATOR_OID,
            binding.to_der(),
        )];
        self.sign(params, &request.public_key, request.login.clone())
    }

    /// Signs the controller's certificate: CN `jinbao-controller`, the identity URI
    /// [`CONTROLLER_URI`], the DNS names and addresses it is reached by, server and client
    /// authentication. Only the ministry CA issues it.
    ///
    /// The controller holds the ministry CA, so there is no request: `key` is the
    /// controller's own key, and only its public half is read. The addresses must lie in the
    /// ministry CA's blocks (its IP name constraints), else the certificate would fail every
    /// verification and is refused here; the controller's clients need none of these names
    /// (they check the URI), they are for browsers and `curl`.
    pub fn issue_controller(
        &self,
        key: &PrivateKey,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Issued, IssueRefusal> {
        if self.scope != AuthorityScope::Ministry {
            return Err(IssueRefusal::ControllerAtMinistry(self.scope));
        }
        let permitted = permitted_blocks(&self.certificate).map_err(IssueRefusal::Signing)?;
        if let Some(blocks) = &permitted
            && let Some(&address) = ip_addresses
                .iter()
                .find(|a| !blocks.iter().any(|b| b.contains(*a)))
        {
            let permitted: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
            return Err(IssueRefusal::OutsideNameConstraints {
                address,
                authority: self.scope,
                permitted: permitted.join(", "),
            });
        }
        let dns = dns_names
            .iter()
            .map(|name| {
                rustls_pki_types::DnsName::try_from(name.as_str())
                    .ok()
                    .and_then(|_| rcgen::string::Ia5String::try_from(name.as_str()).ok())
                    .map(SanType::DnsName)
                    .ok_or_else(|| IssueRefusal::BadDnsName(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut params = leaf_params(now, lifetime).map_err(signing)?;
        params
            .distinguished_name
            .push(DnType::CommonName, CONTROLLER_COMMON_NAME);
        let uri = CONTROLLER_URI
            .try_into()
            .map_err(|_| IssueRefusal::Signing("controller URI".into()))?;
        params.subject_alt_names = std::iter::once(SanType::URI(uri))
            .chain(dns)
            .chain(ip_addresses.iter().map(|&a| SanType::IpAddress(a)))
            .collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let public = RequestKey::public_of(key);
        self.sign(params, &public, CONTROLLER_COMMON_NAME.to_owned())
    }

    /// This CA's CRL listing `revoked`, numbered `number`, valid from `now` for `lifetime`.
    pub fn revocation_list(
        &self,
        revoked: &[Revocation],
        number: u64,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let params = CertificateRevocationListParams {
            this_update: datetime(now - BACKDATE),
            next_update: datetime(now + lifetime),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial.0),
                    revocation_time: datetime(r.revoked_at),
                    reason_code: Some(r.reason.rcgen()),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(crypto)?;
        Ok(crl.der().clone())
    }

    fn check_node_request(
        &self,
        request: &NodeRequest,
        network: &Network,
        allocation: &Allocation,
    ) -> Result<(), IssueRefusal> {
        let binding = &request.binding;
        let (node, plane) = (binding.node, binding.plane);
        if self.scope == AuthorityScope::Root {
            return Err(IssueRefusal::RootSignsOnlyAuthorities);
        }
        let ix = network
            .lookup(&node)
            .ok_or(IssueRefusal::UnknownNode(node))?;
        let responsible = AuthorityScope::of_node(&node);
        if responsible != self.scope {
            return Err(IssueRefusal::OutsideAuthority {
                node,
                authority: self.scope,
                responsible,
            });
        }
        if request.common_name != node.to_string() {
            return Err(IssueRefusal::WrongName {
                what: "common name",
                found: request.common_name.clone(),
                expected: node.to_string(),
            });
        }
        let uri = binding::node_uri(plane, &node);
        if let Some(found) = request.uris.iter().find(|u| **u != uri) {
            return Err(IssueRefusal::WrongName {
                what: "identity URI",
                found: found.clone(),
                expected: uri,
            });
        }
        if allocation.node(plane, ix).is_none() {
            return Err(IssueRefusal::NotOnPlane { node, plane });
        }
        if binding.zones.is_empty() {
            return Err(IssueRefusal::NoZones);
        }
        let planned = allocation.overlay_addresses(plane, ix);
        for &zone in &binding.zones {
            if !planned.iter().any(|(z, _)| *z == zone) {
                let available: Vec<&str> = planned.iter().map(|(z, _)| z.as_str()).collect();
                return Err(IssueRefusal::ZoneNotAtNode {
                    node,
                    plane,
                    zone,
                    available: available.join(", "),
                });
            }
        }
        let expected: BTreeSet<IpAddr> = planned
            .iter()
            .filter(|(zone, _)| binding.zones.contains(zone))
            .map(|&(_, addr)| addr)
            .collect();
        let asked: BTreeSet<IpAddr> = request.addresses.iter().copied().collect();
        if asked != expected || asked.len() != request.addresses.len() {
            let extra: Vec<String> = asked.difference(&expected).map(|a| a.to_string()).collect();
            let missing: Vec<String> = expected.difference(&asked).map(|a| a.to_string()).collect();
            let mut detail = Vec::new();
            if !extra.is_empty() {
                detail.push(format!("not the plan's: {}", extra.join(", ")));
            }
            if !missing.is_empty() {
                detail.push(format!("missing: {}", missing.join(", ")));
            }
            if detail.is_empty() {
                detail.push("an address is listed twice".to_owned());
            }
            return Err(IssueRefusal::WrongAddresses {
                node,
                plane,
                detail: detail.join("; "),
            });
        }
        if binding.wireguard_key.0 == [0; 32] {
            return Err(IssueRefusal::WeakWireGuardKey);
        }
        Ok(())
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        key: &crate::request::RequestKey,
        subject: String,
    ) -> Result<Issued, IssueRefusal> {
        let serial = random_serial().map_err(signing)?;
        params.serial_number = Some(serial.clone());
        let not_after = profile::system_time(params.not_after);
        let certificate = params
            .signed_by(key, &self.issuer)
            .map_err(|e| IssueRefusal::Signing(e.to_string()))?;
        Ok(Issued {
            certificate: certificate.der().clone(),
            serial: Serial(serial.to_bytes()),
            subject,
            not_after,
        })
    }
}

/// The blocks an issuing CA may sign addresses in: a province's whole block, or the
/// ministry's own and DR blocks, on every plane.
fn scope_blocks(
    scope: AuthorityScope,
    network: &Network,
    allocation: &Allocation,
) -> Result<Vec<ipnet::IpNet>, PkiError> {
    let planes: Vec<Plane> = allocation.planes().collect();
    let blocks = match scope {
        AuthorityScope::Root => return Err(PkiError::NotIssuing(scope)),
        AuthorityScope::Province(code) => {
            let ix = network
                .lookup(&NodeId::DataCentre(code))
                .ok_or(PkiError::NoSuchProvince(code))?;
            planes
                .iter()
                .filter_map(|&p| allocation.node(p, ix).map(|b| b.block))
                .collect()
        }
        AuthorityScope::Ministry => {
            let ministry = network.ministry();
            let own = std::iter::once(ministry).chain(
                network
                    .children(ministry)
                    .iter()
                    .copied()
                    .filter(|&c| network.node(c).kind() == NodeKind::DisasterRecovery),
            );
            own.flat_map(|ix| {
                planes
                    .iter()
                    .filter_map(move |&p| allocation.node(p, ix).map(|b| b.own))
            })
            .collect()
        }
    };
    Ok(blocks)
}

fn authority_params(
    scope: AuthorityScope,
    name: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "CN");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "人力资源和社会保障部 金保工程");
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = datetime(now - BACKDATE);
    params.not_after = datetime(now + lifetime);
    params.serial_number = Some(random_serial()?);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &AUTHORITY_OID,
        scope.to_der(),
    )];
    Ok(params)
}

fn leaf_params(now: SystemTime, lifetime: Duration) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = datetime(now - BACKDATE);
    params.not_after = datetime(now + lifetime);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The IP blocks a CA certificate's name constraints permit, or `None` when it has none.
fn permitted_blocks(certificate: &CertificateDer<'_>) -> Result<Option<Vec<ipnet::IpNet>>, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(certificate.as_ref())
        .map_err(|e| format!("the CA certificate: {e}"))?;
    let Some(constraints) = cert
        .name_constraints()
        .map_err(|e| format!("the CA's name constraints: {e}"))?
    else {
        return Ok(None);
    };
    let Some(subtrees) = &constraints.value.permitted_subtrees else {
        return Ok(None);
    };
    let blocks: Vec<ipnet::IpNet> = subtrees
        .iter()
        .filter_map(|subtree| match subtree.base {
            GeneralName::IPAddress(bytes) => block(bytes),
            _ => None,
        })
        .collect();
    // Permitted subtrees of other name forms only: addresses are unconstrained.
    Ok((!blocks.is_empty()).then_some(blocks))
}

/// An IP name-constraint block: address then mask, 4 + 4 or 16 + 16 bytes.
fn block(bytes: &[u8]) -> Option<ipnet::IpNet> {
    let (address, mask) = bytes.split_at(bytes.len() / 2);
    let ip = |b: &[u8]| -> Option<IpAddr> {
        <[u8; 4]>::try_from(b)
            .map(IpAddr::from)
            .or_else(|_| <[u8; 16]>::try_from(b).map(IpAddr::from))
            .ok()
    };
    ipnet::IpNet::with_netmask(ip(address)?, ip(mask)?).ok()
}

fn spki_of(certificate: &CertificateDer<'_>) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(certificate.as_ref())
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

fn crypto(err: rcgen::Error) -> PkiError {
    PkiError::Crypto(err.to_string())
}

fn signing(err: PkiError) -> IssueRefusal {
    IssueRefusal::Signing(err.to_string())
}
