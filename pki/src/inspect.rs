//! Reading a certificate's Jinbao content, for listings and for the checks after webpki.
//!
//! webpki proves a chain; this module says what the proven certificate *is*: a node on a
//! plane, an operator with a role, the controller, or a CA with a scope. Every input is untrusted: any bytes
//! give a value or an error, never a panic.

use std::net::IpAddr;
use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::authority::Serial;
use crate::binding::{
    AUTHORITY_OID, AuthorityScope, BindingError, CONTROLLER_URI, NODE_OID, NodeBinding,
    OPERATOR_OID, OperatorBinding,
};
use crate::profile::system_time;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Not DER X.509.
    #[error("malformed certificate: {0}")]
    BadDer(String),
    /// A Jinbao extension is malformed.
    #[error("{0}")]
    Binding(#[from] BindingError),
    /// A subject alternative name this profile never writes.
    #[error("unexpected subject alternative name: {0}")]
    UnexpectedName(String),
}

/// What a certificate is and says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Serial number.
    pub serial: Serial,
    /// Subject common name.
    pub common_name: String,
    /// Issuer common name.
    pub issuer: String,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
    /// The node binding, for node certificates.
    pub node: Option<NodeBinding>,
    /// The operator binding, for operator certificates.
    pub operator: Option<OperatorBinding>,
    /// The scope, for CA certificates.
    pub authority: Option<AuthorityScope>,
    /// IP subject alternative names.
    pub addresses: Vec<IpAddr>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// DNS subject alternative names (only the controller's certificate has them).
    pub dns_names: Vec<String>,
}

impl Summary {
    /// Reads a DER certificate.
    pub fn read(der: &[u8]) -> Result<Summary, InspectError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| InspectError::BadDer(e.to_string()))?;
        if !rest.is_empty() {
            return Err(InspectError::BadDer(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let tbs = &cert.tbs_certificate;
        let first_cn = |name: &x509_parser::x509::X509Name<'_>| {
            name.iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let mut summary = Summary {
            serial: Serial(tbs.raw_serial().to_vec()),
            common_name: first_cn(&tbs.subject),
            issuer: first_cn(&tbs.issuer),
            not_before: system_time(tbs.validity.not_before.to_datetime()),
            not_after: system_time(tbs.validity.not_after.to_datetime()),
            node: None,
            operator: None,
            authority: None,
            addresses: Vec::new(),
            uris: Vec::new(),
            dns_names: Vec::new(),
        };
        for extension in tbs.extensions() {
            let oid: Option<Vec<u64>> = extension.oid.iter().map(Iterator::collect);
            match oid.as_deref() {
                Some(oid) if oid == NODE_OID => {
                    summary.node = Some(NodeBinding::from_der(extension.value)?)
                }
                Some(oid) if oid == OPERATOR_OID => {
                    summary.operator = Some(OperatorBinding::from_der(extension.value)?)
                }
                Some(oid) if oid == AUTHORITY_OID => {
                    summary.authority = Some(AuthorityScope::from_der(extension.value)?)
                }
                _ => {
                    if let ParsedExtension::SubjectAlternativeName(names) =
                        extension.parsed_extension()
                    {
                        for name in &names.general_names {
                            match name {
                                GeneralName::URI(uri) => summary.uris.push((*uri).to_owned()),
                                GeneralName::IPAddress(bytes) => summary.addresses.push(ip(bytes)?),
                                GeneralName::DNSName(name) => {
                                    summary.dns_names.push((*name).to_owned())
                                }
                                other => {
                                    return Err(InspectError::UnexpectedName(other.to_string()));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(summary)
    }

    /// What kind of certificate this is, in a word.
    pub fn kind(&self) -> &'static str {
        match (&self.node, &self.operator, &self.authority) {
            (Some(_), _, _) => "node",
            (_, Some(_), _) => "operator",
            (_, _, Some(_)) => "authority",
            _ if self.is_controller() => "controller",
            _ => "other",
        }
    }

    /// Whether this is the controller's certificate by its content (no binding, the
    /// controller URI only); [`crate::TrustBundle::verify_controller`] proves it.
    pub fn is_controller(&self) -> bool {
        self.node.is_none()
            && self.operator.is_none()
            && self.authority.is_none()
            && self.uris == [CONTROLLER_URI]
    }
}

fn ip(bytes: &[u8]) -> Result<IpAddr, InspectError> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ok(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ok(IpAddr::from(v6))
    } else {
        Err(InspectError::UnexpectedName(format!(
            "an IP address of {} bytes",
            bytes.len()
        )))
    }
}
