//! Certificate signing requests: built on the node (the private key never leaves it) and
//! read at the CA, where every byte is untrusted.
//!
//! A node request carries the node's public key, CN = node id, the identity URI, the
//! overlay addresses it asks for as IP SANs, and the `JinbaoNode` extension (plane, zones,
//! WireGuard key). An operator request carries CN = the person's name and an operator URI;
//! the role is the CA's decision, never the requester's. Reading checks the request's own
//! signature and refuses any extension or name it does not expect.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, SanType, SignatureAlgorithm,
};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::PkiError;
use crate::binding::{self, BindingError, NODE_OID, NodeBinding};
use crate::key::{KeyAlgorithm, PrivateKey};

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No PEM `CERTIFICATE REQUEST` block.
    #[error("not a PEM certificate request")]
    NotPem,
    /// The DER does not parse as a PKCS#10 request.
    #[error("malformed certificate request: {0}")]
    BadDer(String),
    /// The request is not signed by the key it carries.
    #[error("the request's signature does not verify with its own public key")]
    BadSignature,
    /// A public key algorithm we do not issue for.
    #[error("unsupported key algorithm {0} (use ECDSA P-256 or Ed25519)")]
    UnsupportedKey(String),
    /// An extension the profile does not allow.
    #[error("unexpected extension {0} in the request")]
    UnexpectedExtension(String),
    /// A subject alternative name the profile does not allow.
    #[error("unexpected name in the request: {0}")]
    UnexpectedName(String),
    /// An unsupported request attribute.
    #[error("unexpected attribute {0} in the request")]
    UnexpectedAttribute(String),
    /// The `JinbaoNode` extension is malformed.
    #[error("{0}")]
    Binding(#[from] BindingError),
    /// No common name.
    #[error("the request has no common name")]
    NoCommonName,
    /// Neither a node nor an operator request.
    #[error(
        "neither a node request (JinbaoNode extension) nor an operator request (spiffe://jinbao/operator/LOGIN)"
    )]
    NotJinbao,
}

/// A node's request, read and signature-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequest {
    /// What the node asks to have bound.
    pub binding: NodeBinding,
    /// The overlay addresses asked for (IP SANs), in request order.
    pub addresses: Vec<IpAddr>,
    /// The identity URIs asked for.
    pub uris: Vec<String>,
    /// The subject common name.
    pub common_name: String,
    pub(crate) public_key: RequestKey,
}

/// An operator's request, read and signature-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    /// The person's name (subject CN).
    pub name: String,
    /// The login, from `spiffe://jinbao/operator/LOGIN`.
    pub login: String,
    pub(crate) public_key: RequestKey,
}

/// A request of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// For a node certificate.
    Node(NodeRequest),
    /// For an operator certificate.
    Operator(OperatorRequest),
}

/// The public key of a request, in the form rcgen signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestKey {
    algorithm: &'static SignatureAlgorithm,
    raw: Vec<u8>,
}

impl rcgen::PublicKeyData for RequestKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl RequestKey {
    /// The public half of a key held here (the controller's): what a CA signs for, without
    /// the private half.
    pub(crate) fn public_of(key: &PrivateKey) -> RequestKey {
        RequestKey {
            algorithm: key.algorithm().signature_algorithm(),
            raw: key.pair().public_key_raw().to_vec(),
        }
    }

    pub(crate) fn key_algorithm(&self) -> Option<KeyAlgorithm> {
        KeyAlgorithm::of(self.algorithm)
    }

    /// The raw public key: the EC point, or the 32 Ed25519 bytes.
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl NodeRequest {
    /// The algorithm of the node's key.
    pub fn key_algorithm(&self) -> Option<KeyAlgorithm> {
        self.public_key.key_algorithm()
    }
}

impl OperatorRequest {
    /// The algorithm of the operator's key.
    pub fn key_algorithm(&self) -> Option<KeyAlgorithm> {
        self.public_key.key_algorithm()
    }
}

/// Builds a node's request (PEM), signed with the node's own key.
pub fn node_request(
    key: &PrivateKey,
    binding: &NodeBinding,
    addresses: &[IpAddr],
) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, binding.node.to_string());
    let uri = binding::node_uri(binding.plane, &binding.node);
    params.subject_alt_names = std::iter::once(uri_san(&uri)?)
        .chain(addresses.iter().map(|&a| SanType::IpAddress(a)))
        .collect();
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &NODE_OID,
        binding.to_der(),
    )];
    let request = params
        .serialize_request(key.pair())
        .map_err(|e| PkiError::Crypto(e.to_string()))?;
    request.pem().map_err(|e| PkiError::Crypto(e.to_string()))
}

/// Builds an operator's request (PEM), signed with the operator's own key.
pub fn operator_request(key: &PrivateKey, name: &str, login: &str) -> Result<String, PkiError> {
    if !binding::valid_login(login) {
        return Err(PkiError::BadLogin(login.to_owned()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![uri_san(&binding::operator_uri(login))?];
    let request = params
        .serialize_request(key.pair())
        .map_err(|e| PkiError::Crypto(e.to_string()))?;
    request.pem().map_err(|e| PkiError::Crypto(e.to_string()))
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    Ok(SanType::URI(
        uri.try_into()
            .map_err(|_| PkiError::Crypto(format!("bad URI {uri}")))?,
    ))
}

/// Reads a PEM request.
pub fn read_request_pem(pem: &[u8]) -> Result<Request, RequestError> {
    let der =
        CertificateSigningRequestDer::from_pem_slice(pem).map_err(|_| RequestError::NotPem)?;
    read_request_der(der.as_ref())
}

/// Reads a DER request: parses it, checks its signature, and takes what the profile allows.
pub fn read_request_der(der: &[u8]) -> Result<Request, RequestError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| RequestError::BadDer(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RequestError::BadDer(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    strict_envelope(der)?;
    csr.verify_signature()
        .map_err(|_| RequestError::BadSignature)?;
    let info = &csr.certification_request_info;
    let public_key = request_key(&info.subject_pki)?;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .ok_or(RequestError::NoCommonName)?;

    let mut binding = None;
    let mut addresses = Vec::new();
    let mut uris = Vec::new();
    for attribute in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() else {
            return Err(RequestError::UnexpectedAttribute(
                attribute.oid.to_id_string(),
            ));
        };
        for extension in &request.extensions {
            let oid: Option<Vec<u64>> = extension.oid.iter().map(Iterator::collect);
            if oid.as_deref() == Some(&NODE_OID[..]) {
                binding = Some(NodeBinding::from_der(extension.value)?);
                continue;
            }
            let ParsedExtension::SubjectAlternativeName(names) = extension.parsed_extension()
            else {
                return Err(RequestError::UnexpectedExtension(
                    extension.oid.to_id_string(),
                ));
            };
            for name in &names.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                    GeneralName::IPAddress(bytes) => addresses.push(ip_from_bytes(bytes)?),
                    other => return Err(RequestError::UnexpectedName(format!("{other}"))),
                }
            }
        }
    }

    match binding {
        Some(binding) => Ok(Request::Node(NodeRequest {
            binding,
            addresses,
            uris,
            common_name,
            public_key,
        })),
        None => {
            let login = match uris.as_slice() {
                [uri] if addresses.is_empty() => uri.strip_prefix("spiffe://jinbao/operator/"),
                _ => None,
            };
            match login {
                Some(login) if binding::valid_login(login) => {
                    Ok(Request::Operator(OperatorRequest {
                        name: common_name,
                        login: login.to_owned(),
                        public_key,
                    }))
                }
                _ => Err(RequestError::NotJinbao),
            }
        }
    }
}

/// The signature does not cover the envelope around the signed part, and x509-parser reads
/// that envelope leniently (tag classes, a primitive SEQUENCE, unused bits in the signature
/// are let through): it must be strict DER `SEQUENCE { info, SEQUENCE { OID, parameters? },
/// BIT STRING }` with the signature in whole bytes, so one request has one encoding.
fn strict_envelope(der: &[u8]) -> Result<(), RequestError> {
    let whole_bytes = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_der()?;
            r.next().read_sequence(|r| {
                r.next().read_oid()?;
                r.read_optional(|r| r.read_der())?;
                Ok(())
            })?;
            let (_, bits) = r.next().read_bitvec_bytes()?;
            Ok(bits % 8 == 0)
        })
    });
    match whole_bytes {
        Ok(true) => Ok(()),
        _ => Err(RequestError::BadDer(
            "the envelope around the signed request is not strict DER".into(),
        )),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Result<IpAddr, RequestError> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ok(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ok(IpAddr::from(v6))
    } else {
        Err(RequestError::UnexpectedName(format!(
            "an IP address of {} bytes",
            bytes.len()
        )))
    }
}

/// The key of a request or certificate, if it is ECDSA P-256 or Ed25519.
pub(crate) fn request_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<RequestKey, RequestError> {
    const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
    const PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
    const ED25519: &[u64] = &[1, 3, 101, 112];
    let algorithm: Option<Vec<u64>> = spki.algorithm.algorithm.iter().map(Iterator::collect);
    let curve: Option<Vec<u64>> = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .and_then(|oid| oid.iter().map(Iterator::collect));
    let algorithm = match (algorithm.as_deref(), curve.as_deref()) {
        (Some(EC_PUBLIC_KEY), Some(PRIME256V1)) => KeyAlgorithm::EcdsaP256,
        (Some(ED25519), None) => KeyAlgorithm::Ed25519,
        _ => {
            return Err(RequestError::UnsupportedKey(
                spki.algorithm.algorithm.to_id_string(),
            ));
        }
    };
    Ok(RequestKey {
        algorithm: algorithm.signature_algorithm(),
        raw: spki.subject_public_key.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::WireGuardKey;
    use topology::{Plane, Zone};

    fn binding() -> NodeBinding {
        NodeBinding {
            node: "dc:1401".parse().unwrap(),
            plane: Plane::Business,
            zones: vec![Zone::Mgmt, Zone::Exchange],
            wireguard_key: WireGuardKey([9; 32]),
        }
    }

    #[test]
    fn node_requests_read_back_what_was_asked() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let addresses: Vec<IpAddr> = vec![
                "10.32.64.1".parse().unwrap(),
                "10.32.64.65".parse().unwrap(),
            ];
            let pem = node_request(&key, &binding(), &addresses).unwrap();
            let Request::Node(request) = read_request_pem(pem.as_bytes()).unwrap() else {
                panic!("not a node request")
            };
            assert_eq!(request.binding, binding());
            assert_eq!(request.addresses, addresses);
            assert_eq!(request.uris, ["spiffe://jinbao/business/dc:1401"]);
            assert_eq!(request.common_name, "dc:1401");
            assert_eq!(request.public_key.key_algorithm(), Some(algorithm));
        }
    }

    #[test]
    fn operator_requests_carry_name_and_login_only() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = operator_request(&key, "张三", "zhangsan").unwrap();
        let Request::Operator(request) = read_request_pem(pem.as_bytes()).unwrap() else {
            panic!("not an operator request")
        };
        assert_eq!(
            (request.name.as_str(), request.login.as_str()),
            ("张三", "zhangsan")
        );
        assert!(operator_request(&key, "x", "Bad Login").is_err());
    }

    #[test]
    fn a_tampered_request_fails_its_signature() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = node_request(&key, &binding(), &["10.32.64.1".parse().unwrap()]).unwrap();
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        let at = der.windows(7).position(|w| w == b"dc:1401").unwrap();
        let mut tampered = der.clone();
        tampered[at + 6] = b'2';
        assert_eq!(read_request_der(&tampered), Err(RequestError::BadSignature));
        assert!(matches!(
            read_request_der(&der[..der.len() - 3]),
            Err(RequestError::BadDer(_))
        ));
        assert_eq!(read_request_pem(b"hello"), Err(RequestError::NotPem));
    }

    #[test]
    fn a_loose_envelope_around_a_good_signature_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = node_request(&key, &binding(), &["10.32.64.1".parse().unwrap()]).unwrap();
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        assert!(read_request_der(&der).is_ok());
        // Unsigned bytes x509-parser lets through: a primitive outer SEQUENCE, and the
        // signature algorithm's OID tagged context-specific.
        let mut primitive = der.clone();
        primitive[0] = 0x10;
        let ecdsa_sha256 = [
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ];
        let at = der.windows(12).rposition(|w| w == ecdsa_sha256).unwrap();
        let mut context = der.clone();
        context[at + 2] = 0x86;
        for loose in [primitive, context] {
            assert!(
                matches!(read_request_der(&loose), Err(RequestError::BadDer(_))),
                "{:?}",
                read_request_der(&loose)
            );
        }
    }
}
