//! The SNMP inventory: which underlay devices (routers, MCUs) the controller polls, where,
//! with which credentials, and which interfaces.
//!
//! The inventory is a hand-written TOML file, so every complaint names the file and the line
//! (`snmp.toml:12: …`). Credentials are secrets: they never appear in `Debug` output, logs or
//! anything serialised back out (see [`Secret`]).
//!
//! ```toml
//! [[device]]
//! name = "gd-core-1"
//! address = "10.20.0.1"          # port 161 unless given
//! link = "dc:44-dc:4401"         # the tree link this router carries, if any
//! interfaces = [1, 2]            # ifIndex values to poll
//! credentials = { version = "v2c", community = "…" }
//!
//! [[device]]
//! name = "mcu-ministry"
//! address = "10.0.0.9:161"
//! interfaces = [10]
//! [device.credentials]
//! version = "v3"
//! user = "jinbao"
//! auth = "sha256"
//! auth-password = "…"
//! privacy = "aes128"
//! privacy-password = "…"
//! ```

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use topology::{Located, Problems, SourceText};

/// The UDP port SNMP agents listen on when the inventory gives none.
pub const DEFAULT_SNMP_PORT: u16 = 161;

/// The shortest v3 password RFC 3414 (§11.2) allows, and the shortest net-snmp accepts.
pub const MIN_V3_PASSWORD_LEN: usize = 8;

/// What the text shows in place of a secret when an inventory is serialised.
pub const REDACTED: &str = "<redacted>";

/// All devices the controller polls.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Inventory {
    /// The devices, in the order of the file (`[[device]]` tables).
    #[serde(default, rename = "device")]
    pub devices: Vec<Device>,
}

/// One underlay device polled over SNMP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Device {
    /// Unique name, used as the key of the poller's state and in every log line.
    #[serde(deserialize_with = "non_empty_string")]
    pub name: String,
    /// The agent's UDP address; written without a port it means port 161.
    #[serde(deserialize_with = "address_with_default_port")]
    pub address: SocketAddr,
    /// The tree link this device carries (as the topology names it, e.g. `dc:14-dc:1401`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The `ifIndex` of each interface to poll; no duplicates.
    #[serde(default, deserialize_with = "distinct_if_indexes")]
    pub interfaces: Vec<u32>,
    /// How to authenticate to the agent.
    pub credentials: Credentials,
}

/// How the controller authenticates to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "version",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
pub enum Credentials {
    /// SNMPv2c: a community string, sent in clear. Only for agents on the management zone.
    V2c {
        /// The read community.
        community: Secret,
    },
    /// SNMPv3 with authentication and privacy (authPriv): the only v3 level offered, since
    /// anything less sends counters of the national network in clear.
    V3 {
        /// The USM user name.
        #[serde(deserialize_with = "non_empty_string")]
        user: String,
        /// The authentication (HMAC) protocol.
        auth: AuthProtocol,
        /// The authentication password (at least 8 characters).
        #[serde(deserialize_with = "v3_password")]
        auth_password: Secret,
        /// The privacy (encryption) protocol.
        privacy: PrivProtocol,
        /// The privacy password (at least 8 characters).
        #[serde(deserialize_with = "v3_password")]
        privacy_password: Secret,
    },
}

/// SNMPv3 authentication protocols (the ones `snmp2` implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (RFC 3414); legacy devices only.
    Md5,
    /// HMAC-SHA-96 (RFC 3414); `sha` is accepted as net-snmp spells it.
    #[serde(alias = "sha")]
    Sha1,
    /// HMAC-SHA-224 (RFC 7860).
    Sha224,
    /// HMAC-SHA-256 (RFC 7860).
    Sha256,
    /// HMAC-SHA-384 (RFC 7860).
    Sha384,
    /// HMAC-SHA-512 (RFC 7860).
    Sha512,
}

/// SNMPv3 privacy protocols (the ones `snmp2` implements).
///
/// AES-192/256 need a privacy key longer than what MD5 and SHA-1 produce; two incompatible
/// ways to extend it exist, so both are named: `aes192`/`aes256` extend it as net-snmp's
/// `AES-192`/`AES-256` do (draft-blumenthal), `aes192c`/`aes256c` as Cisco does
/// (draft-reeder, net-snmp's `AES-192-C`/`AES-256-C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivProtocol {
    /// CBC-DES (RFC 3414); legacy devices only.
    Des,
    /// CFB128-AES-128 (RFC 3826); `aes` is accepted as net-snmp spells it.
    #[serde(alias = "aes")]
    Aes128,
    /// CFB128-AES-192, key extended by the Blumenthal method.
    Aes192,
    /// CFB128-AES-256, key extended by the Blumenthal method.
    Aes256,
    /// CFB128-AES-192, key extended by the Reeder method.
    Aes192c,
    /// CFB128-AES-256, key extended by the Reeder method.
    Aes256c,
}

/// A community string or password: readable only through [`Secret::expose`].
///
/// `Debug` and `Display` print `<redacted>`, and so does `Serialize`: an inventory sent out
/// through the admin API never carries credentials, which also means a serialised inventory
/// cannot be read back as a working one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (building an SNMP session).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.is_empty() {
            return Err(serde::de::Error::custom("a secret cannot be empty"));
        }
        Ok(Secret(value))
    }
}

fn non_empty_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    if value.trim().is_empty() {
        return Err(serde::de::Error::custom("cannot be empty"));
    }
    Ok(value)
}

fn v3_password<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    let secret = Secret::deserialize(deserializer)?;
    if secret.0.len() < MIN_V3_PASSWORD_LEN {
        return Err(serde::de::Error::custom(format!(
            "an SNMPv3 password needs at least {MIN_V3_PASSWORD_LEN} characters"
        )));
    }
    Ok(secret)
}

fn address_with_default_port<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_address(&text).map_err(serde::de::Error::custom)
}

/// Parses `ip:port`, `[ipv6]:port`, or a bare IP address (port 161).
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, DEFAULT_SNMP_PORT)),
        Err(_) => Err(format!(
            "`{text}` is not an IP address, with or without a port (10.0.0.1, 10.0.0.1:161, [fd00::1]:161)"
        )),
    }
}

fn distinct_if_indexes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u32>, D::Error> {
    let indexes = Vec::<u32>::deserialize(deserializer)?;
    let mut seen = BTreeSet::new();
    for &index in &indexes {
        if index == 0 {
            return Err(serde::de::Error::custom("ifIndex starts at 1"));
        }
        if !seen.insert(index) {
            return Err(serde::de::Error::custom(format!(
                "ifIndex {index} is listed twice"
            )));
        }
    }
    Ok(indexes)
}

/// Why an inventory file was refused.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// Not TOML, or not the shape of an inventory (a wrong key, type or value).
    #[error("{0}")]
    Syntax(Located<String>),
    /// Well-formed, but inconsistent as a whole; every problem found is listed.
    #[error("{0}")]
    Problems(Problems<InventoryProblem>),
}

/// An inconsistency across devices of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InventoryProblem {
    /// Two devices share a name, so their state would overwrite each other.
    #[error("device `{name}` is already defined on line {first_line}")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// Where the first device of that name is.
        first_line: usize,
    },
}

/// Reads an inventory from the text of the file called `file_name`.
///
/// Syntax and shape errors (unknown keys, a bad address, a short v3 password, a repeated
/// ifIndex) name the line the TOML parser points at; duplicate device names are all
/// reported, each at the line of its `[[device]]` table.
pub fn parse_inventory(file_name: &str, text: &str) -> Result<Inventory, InventoryError> {
    let source = SourceText::new(file_name, text);
    let inventory: Inventory = source.parse_toml().map_err(InventoryError::Syntax)?;
    let lines = device_lines(text, &inventory);
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (device, &line) in inventory.devices.iter().zip(&lines) {
        if let Some(&first_line) = first_seen.get(device.name.as_str()) {
            problems.push(Located {
                location: source.at_line(line),
                value: InventoryProblem::DuplicateName {
                    name: device.name.clone(),
                    first_line,
                },
            });
        } else {
            first_seen.insert(&device.name, line);
        }
    }
    Problems(problems)
        .into_result(inventory)
        .map_err(InventoryError::Problems)
}

/// The line each device starts on: its `[[device]]` header when the file uses one table per
/// device (the documented form), else the line of its `name = "…"`, else line 1.
fn device_lines(text: &str, inventory: &Inventory) -> Vec<usize> {
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with("[[device]]"))
        .map(|(number, _)| number + 1)
        .collect();
    if headers.len() == inventory.devices.len() {
        return headers;
    }
    inventory
        .devices
        .iter()
        .map(|device| name_line(text, &device.name).unwrap_or(1))
        .collect()
}

fn name_line(text: &str, name: &str) -> Option<usize> {
    let double = format!("\"{name}\"");
    let single = format!("'{name}'");
    text.lines()
        .position(|line| {
            line.split_once('=').is_some_and(|(key, value)| {
                key.trim() == "name" && (value.trim() == double || value.trim() == single)
            })
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[device]]
name = "gd-core-1"
address = "10.20.0.1"
link = "dc:44-dc:4401"
interfaces = [1, 2]
credentials = { version = "v2c", community = "s3cret-community" }

[[device]]
name = "mcu-ministry"
address = "[fd00::9]:1161"
interfaces = [10]

[device.credentials]
version = "v3"
user = "jinbao"
auth = "sha"
auth-password = "auth-password-1"
privacy = "aes"
privacy-password = "priv-password-1"
"#;

    #[test]
    fn a_good_inventory_parses_with_defaults() {
        let inventory = parse_inventory("snmp.toml", GOOD).unwrap();
        assert_eq!(inventory.devices.len(), 2);
        let core = &inventory.devices[0];
        assert_eq!(core.address, "10.20.0.1:161".parse().unwrap());
        assert_eq!(core.link.as_deref(), Some("dc:44-dc:4401"));
        assert_eq!(core.interfaces, [1, 2]);
        assert_eq!(
            core.credentials,
            Credentials::V2c {
                community: Secret::new("s3cret-community")
            }
        );
        let mcu = &inventory.devices[1];
        assert_eq!(mcu.address, "[fd00::9]:1161".parse().unwrap());
        assert_eq!(mcu.link, None);
        let Credentials::V3 {
            user,
            auth,
            auth_password,
            privacy,
            privacy_password,
        } = &mcu.credentials
        else {
            panic!("v3 expected: {mcu:?}");
        };
        assert_eq!(user, "jinbao");
        assert_eq!(*auth, AuthProtocol::Sha1);
        assert_eq!(auth_password.expose(), "auth-password-1");
        assert_eq!(*privacy, PrivProtocol::Aes128);
        assert_eq!(privacy_password.expose(), "priv-password-1");
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialised_output() {
        let inventory = parse_inventory("snmp.toml", GOOD).unwrap();
        let debug = format!("{inventory:?}");
        let json = serde_json::to_string(&inventory).unwrap();
        for text in [&debug, &json] {
            assert!(!text.contains("s3cret-community"), "{text}");
            assert!(!text.contains("auth-password-1"), "{text}");
            assert!(!text.contains("priv-password-1"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }

    /// The error names the file and the line of the offending value.
    fn error_line(text: &str) -> (usize, String) {
        let err = parse_inventory("snmp.toml", text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("snmp.toml:"), "{message}");
        match err {
            InventoryError::Syntax(located) => (located.location.line, message),
            InventoryError::Problems(problems) => (problems.0[0].location.line, message),
        }
    }

    #[test]
    fn shape_errors_name_the_line() {
        let bad_address = "[[device]]\nname = \"r\"\n\naddress = \"10.0.0.300\"\ncredentials = { version = \"v2c\", community = \"c\" }\n";
        let (line, message) = error_line(bad_address);
        assert_eq!(line, 4, "{message}");
        assert!(message.contains("10.0.0.300"), "{message}");

        let unknown_key = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\ncolour = \"red\"\ncredentials = { version = \"v2c\", community = \"c\" }\n";
        let (line, message) = error_line(unknown_key);
        assert_eq!(line, 4, "{message}");
        assert!(message.contains("colour"), "{message}");

        let twice = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\ninterfaces = [1, 2, 1]\ncredentials = { version = \"v2c\", community = \"c\" }\n";
        let (line, message) = error_line(twice);
        assert_eq!(line, 4, "{message}");
        assert!(message.contains("ifIndex 1 is listed twice"), "{message}");

        let zero = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\ninterfaces = [0]\ncredentials = { version = \"v2c\", community = \"c\" }\n";
        let (line, message) = error_line(zero);
        assert_eq!(line, 4, "{message}");
    }

    #[test]
    fn credential_errors_point_into_the_credentials_table() {
        let short = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\n\n[device.credentials]\nversion = \"v3\"\nuser = \"u\"\nauth = \"sha256\"\nauth-password = \"short\"\nprivacy = \"aes128\"\nprivacy-password = \"long-enough\"\n";
        let (line, message) = error_line(short);
        assert!((5..=11).contains(&line), "{message}");
        assert!(message.contains("at least 8"), "{message}");

        let bad_version = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\ncredentials = { version = \"v1\", community = \"c\" }\n";
        let (line, message) = error_line(bad_version);
        assert_eq!(line, 4, "{message}");

        let empty_community = "[[device]]\nname = \"r\"\naddress = \"10.0.0.1\"\ncredentials = { version = \"v2c\", community = \"\" }\n";
        let (line, message) = error_line(empty_community);
        assert_eq!(line, 4, "{message}");
        assert!(message.contains("empty"), "{message}");
    }

    #[test]
    fn duplicate_names_are_all_reported_at_their_tables() {
        let text = "\
[[device]]
name = \"r\"
address = \"10.0.0.1\"
credentials = { version = \"v2c\", community = \"c\" }

[[device]]
name = \"r\"
address = \"10.0.0.2\"
credentials = { version = \"v2c\", community = \"c\" }

[[device]]
name = \"r\"
address = \"10.0.0.3\"
credentials = { version = \"v2c\", community = \"c\" }
";
        let err = parse_inventory("snmp.toml", text).unwrap_err();
        let InventoryError::Problems(problems) = &err else {
            panic!("{err}");
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.location.line).collect();
        assert_eq!(lines, [6, 11]);
        assert_eq!(
            err.to_string(),
            "snmp.toml:6: device `r` is already defined on line 1\n\
             snmp.toml:11: device `r` is already defined on line 1"
        );
    }

    #[test]
    fn all_protocol_spellings_parse() {
        for (word, expected) in [
            ("md5", AuthProtocol::Md5),
            ("sha", AuthProtocol::Sha1),
            ("sha1", AuthProtocol::Sha1),
            ("sha224", AuthProtocol::Sha224),
            ("sha256", AuthProtocol::Sha256),
            ("sha384", AuthProtocol::Sha384),
            ("sha512", AuthProtocol::Sha512),
        ] {
            let parsed: AuthProtocol = serde_json::from_str(&format!("\"{word}\"")).unwrap();
            assert_eq!(parsed, expected, "{word}");
        }
        for (word, expected) in [
            ("des", PrivProtocol::Des),
            ("aes", PrivProtocol::Aes128),
            ("aes128", PrivProtocol::Aes128),
            ("aes192", PrivProtocol::Aes192),
            ("aes256", PrivProtocol::Aes256),
            ("aes192c", PrivProtocol::Aes192c),
            ("aes256c", PrivProtocol::Aes256c),
        ] {
            let parsed: PrivProtocol = serde_json::from_str(&format!("\"{word}\"")).unwrap();
            assert_eq!(parsed, expected, "{word}");
        }
    }

    #[test]
    fn an_empty_file_is_an_empty_inventory() {
        assert_eq!(
            parse_inventory("snmp.toml", "").unwrap(),
            Inventory::default()
        );
    }
}
