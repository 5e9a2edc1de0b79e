//! What a Jinbao certificate binds beyond standard X.509: the private-arc extensions.
//!
//! Three non-critical extensions (webpki rejects unknown critical ones), all under the
//! private arc [`PRIVATE_ARC`] = `1.3.6.1.4.1.4294960000.1`:
//!
//! | OID | name | on |
//! | --- | --- | --- |
//! | `…1.1` | `JinbaoNode` | node certificates and their CSRs |
//! | `…1.2` | `JinbaoOperator` | operator certificates |
//! | `…1.3` | `JinbaoAuthority` | CA certificates |
//!
//! ```text
//! JinbaoNode ::= SEQUENCE {
//!     version       INTEGER (1),
//!     node          UTF8String,             -- node id: "dc:1401", "site:140105:window-03"
//!     plane         UTF8String,             -- "business" | "office" | "public"
//!     zones         SEQUENCE OF UTF8String, -- zones served on that plane: "mgmt", "exchange", …
//!     wireguardKey  OCTET STRING (SIZE (32)) -- the node's X25519 public key for that plane
//! }
//! JinbaoOperator ::= SEQUENCE {
//!     version       INTEGER (1),
//!     login         UTF8String,             -- "zhangsan"
//!     role          UTF8String,             -- "engineer" | "auditor" | "noc"
//!     province      UTF8String OPTIONAL     -- a province code: "14"; absent: the whole network
//! }
//! JinbaoAuthority ::= SEQUENCE {
//!     version       INTEGER (1),
//!     scope         UTF8String              -- "root" | "ministry" | a province code: "14"
//! }
//! ```
//!
//! The operator's `province` (分级管理: an engineer of one province manages only it) was added
//! after the first certificates were issued, as an optional trailing element with the version
//! left at 1: an unscoped certificate is byte for byte what it was, and reads back as
//! unscoped. A reader that predates the element refuses a scoped certificate as malformed
//! (DER allows no unknown trailing element) instead of granting it the whole network: the
//! change fails closed.
//!
//! The controller's certificate carries no private extension: its identity is the URI
//! [`CONTROLLER_URI`] and its issuer, the ministry CA.
//!
//! Texts rather than enumerations so `openssl x509 -text -certopt ext_parse` shows them as
//! words. The enterprise number 4294960000 is a placeholder far above any IANA assignment;
//! replace [`PRIVATE_ENTERPRISE_NUMBER`] with the ministry's registered PEN before issuing
//! production certificates (one constant; nothing else depends on the number).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use topology::{DivisionCode, DivisionLevel, NodeId, Plane, Zone};

/// The identity URI of the controller: the only one, whatever names it is reached by.
pub const CONTROLLER_URI: &str = "spiffe://jinbao/controller";

/// The placeholder private enterprise number (see the module docs).
pub const PRIVATE_ENTERPRISE_NUMBER: u64 = 4_294_960_000;

/// `1.3.6.1.4.1.<PEN>.1`: Jinbao certificate extensions.
pub const PRIVATE_ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, PRIVATE_ENTERPRISE_NUMBER, 1];

/// OID of the `JinbaoNode` extension.
pub const NODE_OID: [u64; 9] = arc(1);
/// OID of the `JinbaoOperator` extension.
pub const OPERATOR_OID: [u64; 9] = arc(2);
/// OID of the `JinbaoAuthority` extension.
pub const AUTHORITY_OID: [u64; 9] = arc(3);

const fn arc(last: u64) -> [u64; 9] {
    let mut oid = [0; 9];
    let mut i = 0;
    while i < PRIVATE_ARC.len() {
        oid[i] = PRIVATE_ARC[i];
        i += 1;
    }
    oid[8] = last;
    oid
}

/// The identity URI of a node on a plane: `spiffe://jinbao/business/dc:1401`.
pub fn node_uri(plane: Plane, node: &NodeId) -> String {
    format!("spiffe://jinbao/{plane}/{node}")
}

/// The identity URI of an operator: `spiffe://jinbao/operator/zhangsan`.
pub fn operator_uri(login: &str) -> String {
    format!("spiffe://jinbao/operator/{login}")
}

/// A binding extension that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// Not the DER layout documented above.
    #[error("malformed {0} extension")]
    Der(&'static str),
    /// A version this build does not read.
    #[error("{what} extension version {version} is not supported")]
    Version {
        /// Which extension.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    /// A field holds a value outside its vocabulary.
    #[error("{0}")]
    Value(String),
}

/// A WireGuard (X25519) public key; written in base64 like `wg pubkey` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WireGuardKey(pub [u8; 32]);

impl fmt::Display for WireGuardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl fmt::Debug for WireGuardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireGuardKey({self})")
    }
}

impl FromStr for WireGuardKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| {
                "a WireGuard key is 32 bytes in base64 (as `wg pubkey` prints it)".to_owned()
            })?;
        WireGuardKey::from_slice(&bytes)
            .ok_or_else(|| format!("a WireGuard key is 32 bytes, not {}", bytes.len()))
    }
}

impl WireGuardKey {
    /// The key from 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<WireGuardKey> {
        bytes.try_into().ok().map(WireGuardKey)
    }
}

/// What a node certificate binds: node, plane, zones and WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBinding {
    /// The node.
    pub node: NodeId,
    /// The plane the certificate is for (each plane has its own keys).
    pub plane: Plane,
    /// The zones the node serves on that plane.
    pub zones: Vec<Zone>,
    /// The node's WireGuard public key on that plane.
    pub wireguard_key: WireGuardKey,
}

impl NodeBinding {
    /// DER of the `JinbaoNode` extension value.
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string(&self.node.to_string());
                w.next().write_utf8_string(self.plane.as_str());
                w.next().write_sequence_of(|w| {
                    for zone in &self.zones {
                        w.next().write_utf8_string(zone.as_str());
                    }
                });
                w.next().write_bytes(&self.wireguard_key.0);
            })
        })
    }

    /// Reads a `JinbaoNode` extension value.
    pub fn from_der(der: &[u8]) -> Result<NodeBinding, BindingError> {
        let (version, node, plane, zones, key) = yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                let version = r.next().read_u64()?;
                let node = r.next().read_utf8string()?;
                let plane = r.next().read_utf8string()?;
                let zones = r.next().collect_sequence_of(|r| r.read_utf8string())?;
                let key = r.next().read_bytes()?;
                Ok((version, node, plane, zones, key))
            })
        })
        .map_err(|_| BindingError::Der("JinbaoNode"))?;
        if version != 1 {
            return Err(BindingError::Version {
                what: "JinbaoNode",
                version,
            });
        }
        let value = |e: String| BindingError::Value(e);
        Ok(NodeBinding {
            node: node
                .parse()
                .map_err(|e: topology::BadNodeId| value(e.to_string()))?,
            plane: plane
                .parse()
                .map_err(|e: topology::UnknownWord| value(e.to_string()))?,
            zones: zones
                .iter()
                .map(|z| {
                    z.parse()
                        .map_err(|e: topology::UnknownWord| value(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            wireguard_key: WireGuardKey::from_slice(&key).ok_or_else(|| {
                value(format!("the WireGuard key is 32 bytes, not {}", key.len()))
            })?,
        })
    }
}

/// An operator's role: exactly one per certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Changes the network.
    Engineer,
    /// Reads everything, runs audits.
    Auditor,
    /// Reads health and alerts.
    Noc,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Engineer, Role::Auditor, Role::Noc];

    /// The role as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Engineer => "engineer",
            Role::Auditor => "auditor",
            Role::Noc => "noc",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (expected engineer, auditor or noc)"))
    }
}

/// What an operator certificate binds: a login, one role and, for a provincial operator, the
/// province.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorBinding {
    /// Login name: lower-case letters, digits, `.`, `-`, `_`.
    pub login: String,
    /// The one role.
    pub role: Role,
    /// The one province the operator works on, as its 2-digit code (`"14"`, as
    /// [`parse_province`] reads and `DivisionCode` writes it), or `None` for the whole
    /// network (the ministry's operators). [`OperatorBinding::from_der`] accepts nothing else.
    pub province: Option<String>,
}

/// Reads an operator's province: a province-level division code (`14`), nothing deeper.
pub fn parse_province(text: &str) -> Result<DivisionCode, String> {
    match text.parse::<DivisionCode>() {
        Ok(code) if code.level() == DivisionLevel::Province => Ok(code),
        _ => Err(format!(
            "bad province `{text}` (expected a 2-digit province code, e.g. 14)"
        )),
    }
}

/// Whether a login is well formed: 1–32 of `a-z 0-9 . - _`, starting with a letter.
pub fn valid_login(login: &str) -> bool {
    (1..=32).contains(&login.len())
        && login.starts_with(|c: char| c.is_ascii_lowercase())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

impl OperatorBinding {
    /// DER of the `JinbaoOperator` extension value.
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string(&self.login);
                w.next().write_utf8_string(self.role.as_str());
                if let Some(province) = &self.province {
                    w.next().write_utf8_string(province);
                }
            })
        })
    }

    /// Reads a `JinbaoOperator` extension value; without a province it is unscoped.
    pub fn from_der(der: &[u8]) -> Result<OperatorBinding, BindingError> {
        let (version, login, role, province) = yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                Ok((
                    r.next().read_u64()?,
                    r.next().read_utf8string()?,
                    r.next().read_utf8string()?,
                    r.read_optional(|r| r.read_utf8string())?,
                ))
            })
        })
        .map_err(|_| BindingError::Der("JinbaoOperator"))?;
        if version != 1 {
            return Err(BindingError::Version {
                what: "JinbaoOperator",
                version,
            });
        }
        if !valid_login(&login) {
            return Err(BindingError::Value(format!("bad operator login `{login}`")));
        }
        Ok(OperatorBinding {
            login,
            role: role.parse().map_err(BindingError::Value)?,
            province: province
                .map(|p| match parse_province(&p) {
                    Ok(code) if code.to_string() == p => Ok(p),
                    Ok(_) | Err(_) => Err(BindingError::Value(format!(
                        "bad province `{p}` (expected a 2-digit province code, e.g. 14)"
                    ))),
                })
                .transpose()?,
        })
    }
}

/// Which part of the hierarchy a CA signs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthorityScope {
    /// The national root (ministry), which signs only the intermediates below.
    Root,
    /// The ministry's issuing CA: the ministry's own data centre, its DR site, and operators.
    Ministry,
    /// A province's issuing CA: the province, its cities and their sites (分级管理).
    Province(DivisionCode),
}

impl AuthorityScope {
    /// The issuing scope responsible for a node: its province, or the ministry.
    pub fn of_node(node: &NodeId) -> AuthorityScope {
        match node.code().province() {
            Some(province) => AuthorityScope::Province(province),
            None => AuthorityScope::Ministry,
        }
    }

    /// DER of the `JinbaoAuthority` extension value.
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string(&self.to_string());
            })
        })
    }

    /// Reads a `JinbaoAuthority` extension value.
    pub fn from_der(der: &[u8]) -> Result<AuthorityScope, BindingError> {
        let (version, scope) = yasna::parse_der(der, |r| {
            r.read_sequence(|r| Ok((r.next().read_u64()?, r.next().read_utf8string()?)))
        })
        .map_err(|_| BindingError::Der("JinbaoAuthority"))?;
        if version != 1 {
            return Err(BindingError::Version {
                what: "JinbaoAuthority",
                version,
            });
        }
        scope.parse().map_err(BindingError::Value)
    }
}

impl fmt::Display for AuthorityScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorityScope::Root => f.pad("root"),
            AuthorityScope::Ministry => f.pad("ministry"),
            AuthorityScope::Province(code) => f.pad(&code.to_string()),
        }
    }
}

impl FromStr for AuthorityScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "root" => Ok(AuthorityScope::Root),
            "ministry" => Ok(AuthorityScope::Ministry),
            _ => match s.parse::<DivisionCode>() {
                Ok(code) if code.level() == DivisionLevel::Province => {
                    Ok(AuthorityScope::Province(code))
                }
                _ => Err(format!(
                    "unknown authority `{s}` (expected root, ministry or a 2-digit province code)"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> NodeBinding {
        NodeBinding {
            node: "site:140105:window-03".parse().unwrap(),
            plane: Plane::Business,
            zones: vec![Zone::Mgmt, Zone::Production],
            wireguard_key: WireGuardKey([7; 32]),
        }
    }

    #[test]
    fn bindings_round_trip_through_der() {
        let node = binding();
        assert_eq!(NodeBinding::from_der(&node.to_der()), Ok(node));
        let operator = OperatorBinding {
            login: "zhangsan".into(),
            role: Role::Auditor,
            province: None,
        };
        assert_eq!(OperatorBinding::from_der(&operator.to_der()), Ok(operator));
        let scoped = OperatorBinding {
            login: "lisi".into(),
            role: Role::Engineer,
            province: Some("14".into()),
        };
        assert_eq!(OperatorBinding::from_der(&scoped.to_der()), Ok(scoped));
        for scope in ["root", "ministry", "14"] {
            let scope: AuthorityScope = scope.parse().unwrap();
            assert_eq!(AuthorityScope::from_der(&scope.to_der()), Ok(scope));
        }
    }

    #[test]
    fn the_node_binding_has_the_documented_der_layout() {
        let der = NodeBinding {
            node: "dc:14".parse().unwrap(),
            plane: Plane::Office,
            zones: vec![Zone::Mgmt],
            wireguard_key: WireGuardKey([0xab; 32]),
        }
        .to_der();
        let mut expected = vec![0x30, 0x3c, 0x02, 0x01, 0x01, 0x0c, 0x05];
        expected.extend(b"dc:14");
        expected.extend([0x0c, 0x06]);
        expected.extend(b"office");
        expected.extend([0x30, 0x06, 0x0c, 0x04]);
        expected.extend(b"mgmt");
        expected.extend([0x04, 0x20]);
        expected.extend([0xab; 32]);
        assert_eq!(der, expected);
    }

    #[test]
    fn malformed_bindings_are_errors() {
        let good = binding().to_der();
        assert_eq!(
            NodeBinding::from_der(&good[..good.len() - 1]),
            Err(BindingError::Der("JinbaoNode"))
        );
        assert_eq!(
            NodeBinding::from_der(&[]),
            Err(BindingError::Der("JinbaoNode"))
        );
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        assert!(matches!(
            NodeBinding::from_der(&bad_version),
            Err(BindingError::Version { version: 2, .. })
        ));
        let short_key = NodeBinding::from_der(&yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string("dc:14");
                w.next().write_utf8_string("business");
                w.next().write_sequence_of(|_| {});
                w.next().write_bytes(&[1, 2, 3]);
            })
        }));
        assert_eq!(
            short_key,
            Err(BindingError::Value(
                "the WireGuard key is 32 bytes, not 3".into()
            ))
        );
    }

    #[test]
    fn wireguard_keys_read_like_wg_prints_them() {
        let key = WireGuardKey([1; 32]);
        assert_eq!(key.to_string().parse(), Ok(key));
        assert!("AQID".parse::<WireGuardKey>().is_err());
        assert!("not base64!".parse::<WireGuardKey>().is_err());
    }

    #[test]
    fn node_scope_follows_the_province() {
        assert_eq!(
            AuthorityScope::of_node(&"site:140105001".parse().unwrap()).to_string(),
            "14"
        );
        assert_eq!(
            AuthorityScope::of_node(&"dr:ministry".parse().unwrap()),
            AuthorityScope::Ministry
        );
        assert_eq!(
            AuthorityScope::of_node(&"dc:419001".parse().unwrap()).to_string(),
            "41"
        );
    }

    #[test]
    fn the_operator_binding_has_the_documented_der_layout_with_and_without_a_province() {
        let mut operator = OperatorBinding {
            login: "lisi".into(),
            role: Role::Noc,
            province: None,
        };
        // The layout of the certificates issued before provinces existed, unchanged.
        let mut unscoped = vec![0x30, 0x0e, 0x02, 0x01, 0x01, 0x0c, 0x04];
        unscoped.extend(b"lisi");
        unscoped.extend([0x0c, 0x03]);
        unscoped.extend(b"noc");
        assert_eq!(operator.to_der(), unscoped);
        operator.province = Some("14".into());
        let mut scoped = unscoped.clone();
        scoped[1] += 4;
        scoped.extend([0x0c, 0x02]);
        scoped.extend(b"14");
        assert_eq!(operator.to_der(), scoped);
        assert_eq!(
            OperatorBinding::from_der(&unscoped).map(|b| b.province),
            Ok(None)
        );
    }

    #[test]
    fn an_operator_province_is_a_province() {
        let with = |province: &str| {
            yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_utf8_string("lisi");
                    w.next().write_utf8_string("noc");
                    w.next().write_utf8_string(province);
                })
            })
        };
        for bad in ["1401", "ministry", "4", "xx", ""] {
            assert_eq!(
                OperatorBinding::from_der(&with(bad)),
                Err(BindingError::Value(format!(
                    "bad province `{bad}` (expected a 2-digit province code, e.g. 14)"
                ))),
                "{bad}"
            );
        }
        // Anything after the province is not the documented layout.
        let extra = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string("lisi");
                w.next().write_utf8_string("noc");
                w.next().write_utf8_string("14");
                w.next().write_utf8_string("44");
            })
        });
        assert_eq!(
            OperatorBinding::from_der(&extra),
            Err(BindingError::Der("JinbaoOperator"))
        );
        // A province that is not a UTF8String is not read as absent.
        let wrong_type = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string("lisi");
                w.next().write_utf8_string("noc");
                w.next().write_u8(14);
            })
        });
        assert_eq!(
            OperatorBinding::from_der(&wrong_type),
            Err(BindingError::Der("JinbaoOperator"))
        );
    }

    #[test]
    fn logins_are_plain() {
        assert!(valid_login("zhang.san-2"));
        for bad in ["", "Zhang", "9lives", "a b", "张三", &"a".repeat(33)] {
            assert!(!valid_login(bad), "{bad}");
        }
    }
}
