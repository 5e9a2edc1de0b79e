//! A node's identity: the keys it makes for itself and the certificate request it sends.
//!
//! Keys are generated on the node and never leave it; the CA sees only the request. A node
//! has one TLS key (`node.key`, ECDSA P-256 or Ed25519) and one WireGuard key per plane
//! (`wireguard-<plane>.key`, base64 as `wg genkey` writes it), so one plane's tunnel key says
//! nothing about another's. Both are created 0600 and never overwritten. The request asks for
//! exactly what the plan gives the node on that plane — the zones and their first addresses
//! — which is what the CA checks before it signs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use pki::files::{self, FileError, Secrecy};
use pki::{KeyAlgorithm, NodeBinding, PkiError, PrivateKey, WireGuardKey};
use topology::plan::Allocation;
use topology::{Network, NodeId, Plane, Zone};

/// What went wrong making or reading a node's identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A key file could not be written or read.
    #[error(transparent)]
    File(#[from] FileError),
    /// Keys are never overwritten.
    #[error("{} already exists: keys are never overwritten (move it away to make a new one)", .0.display())]
    KeyExists(PathBuf),
    /// A key that has not been generated.
    #[error("{} does not exist: run `jinbao-agent keys generate --plane {plane}` first", path.display())]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The plane asked for.
        plane: Plane,
    },
    /// A key file that does not hold a key (its content is never quoted).
    #[error("{} is not a {what} key", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Which kind of key.
        what: &'static str,
    },
    /// The node is not in the network.
    #[error("no node {0} in the network")]
    UnknownNode(NodeId),
    /// The plane does not reach the node.
    #[error("{node} is not on the {plane} plane")]
    NotOnPlane {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
    },
    /// A zone the node does not have on the plane.
    #[error("{node} has no {zone} zone on the {plane} plane (it has: {available})")]
    NoSuchZone {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
        /// The zone asked for.
        zone: Zone,
        /// The zones it has.
        available: String,
    },
    /// Building the request failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What `keys generate` made.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The TLS key file.
    pub tls_key: PathBuf,
    /// Whether the TLS key was made now (false: an existing one is kept).
    pub tls_key_created: bool,
    /// The plane's WireGuard key file.
    pub wireguard_key: PathBuf,
    /// Its public half, for `wg` and for the certificate.
    pub wireguard_public: WireGuardKey,
}

/// The directory holding a node's keys.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The keys in `dir`.
    pub fn new(dir: &Path) -> KeyDir {
        KeyDir {
            dir: dir.to_owned(),
        }
    }

    /// The TLS key file.
    pub fn tls_key_path(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// The WireGuard key file of a plane.
    pub fn wireguard_key_path(&self, plane: Plane) -> PathBuf {
        self.dir.join(format!("wireguard-{plane}.key"))
    }

    /// Makes the plane's WireGuard key, and the TLS key if there is none yet.
    pub fn generate(
        &self,
        plane: Plane,
        algorithm: KeyAlgorithm,
    ) -> Result<Generated, IdentityError> {
        let wireguard_key = self.wireguard_key_path(plane);
        if wireguard_key.exists() {
            return Err(IdentityError::KeyExists(wireguard_key));
        }
        files::create_dir(&self.dir, Secrecy::Secret)?;
        let tls_key = self.tls_key_path();
        let tls_key_created = !tls_key.exists();
        if tls_key_created {
            let key = PrivateKey::generate(algorithm)?;
            files::create_new(&tls_key, key.to_pem().as_bytes(), Secrecy::Secret)
                .map_err(|e| exists(e, &tls_key))?;
        }
        let secret = wireguard_secret();
        let text = format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        files::create_new(&wireguard_key, text.as_bytes(), Secrecy::Secret)
            .map_err(|e| exists(e, &wireguard_key))?;
        Ok(Generated {
            tls_key,
            tls_key_created,
            wireguard_public: wireguard_public(secret),
            wireguard_key,
        })
    }

    /// The TLS key.
    pub fn tls_key(&self, plane: Plane) -> Result<PrivateKey, IdentityError> {
        let path = self.tls_key_path();
        let pem = read_key(&path, plane)?;
        PrivateKey::from_pem(&pem).map_err(|_| IdentityError::BadKey {
            path,
            what: "TLS (PKCS#8 PEM)",
        })
    }

    /// The public half of the plane's WireGuard key.
    pub fn wireguard_public(&self, plane: Plane) -> Result<WireGuardKey, IdentityError> {
        let path = self.wireguard_key_path(plane);
        read_key(&path, plane)?;
        Ok(wireguard_public(read_wireguard_secret(&path)?))
    }

    /// The node's certificate request for `plane` (PEM), asking for the plan's zones (all of
    /// them, or `zones`) and their addresses.
    pub fn request(
        &self,
        network: &Network,
        allocation: &Allocation,
        node: NodeId,
        plane: Plane,
        zones: Option<&[Zone]>,
    ) -> Result<String, IdentityError> {
        let (zones, addresses) = planned(network, allocation, node, plane, zones)?;
        let binding = NodeBinding {
            node,
            plane,
            zones,
            wireguard_key: self.wireguard_public(plane)?,
        };
        Ok(pki::request::node_request(
            &self.tls_key(plane)?,
            &binding,
            &addresses,
        )?)
    }
}

/// The zones (all the node has on the plane, or those asked for) and their addresses.
pub fn planned(
    network: &Network,
    allocation: &Allocation,
    node: NodeId,
    plane: Plane,
    zones: Option<&[Zone]>,
) -> Result<(Vec<Zone>, Vec<IpAddr>), IdentityError> {
    let ix = network
        .lookup(&node)
        .ok_or(IdentityError::UnknownNode(node))?;
    let planned = allocation.overlay_addresses(plane, ix);
    if planned.is_empty() {
        return Err(IdentityError::NotOnPlane { node, plane });
    }
    let Some(zones) = zones else {
        return Ok(planned.into_iter().unzip());
    };
    for &zone in zones {
        if !planned.iter().any(|(z, _)| *z == zone) {
            let available: Vec<&str> = planned.iter().map(|(z, _)| z.as_str()).collect();
            return Err(IdentityError::NoSuchZone {
                node,
                plane,
                zone,
                available: available.join(", "),
            });
        }
    }
    Ok(planned
        .into_iter()
        .filter(|(zone, _)| zones.contains(zone))
        .unzip())
}

/// Reads a WireGuard private key file (base64, as `wg genkey` writes it). The error never
/// quotes the file.
pub fn read_wireguard_secret(path: &Path) -> Result<[u8; 32], IdentityError> {
    let text = std::fs::read_to_string(path).map_err(FileError::at(path))?;
    let bad = || IdentityError::BadKey {
        path: path.to_owned(),
        what: "WireGuard (32 bytes, base64)",
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// A fresh X25519 private key, clamped as `wg genkey` writes it.
fn wireguard_secret() -> [u8; 32] {
    let mut secret = x25519_dalek::StaticSecret::random().to_bytes();
    secret[0] &= 248;
    secret[31] = (secret[31] & 127) | 64;
    secret
}

fn wireguard_public(secret: [u8; 32]) -> WireGuardKey {
    let secret = x25519_dalek::StaticSecret::from(secret);
    WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

fn read_key(path: &Path, plane: Plane) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            IdentityError::MissingKey {
                path: path.to_owned(),
                plane,
            }
        } else {
            FileError::at(path)(err).into()
        }
    })
}

fn exists(err: FileError, path: &Path) -> IdentityError {
    if err.already_exists() {
        IdentityError::KeyExists(path.to_owned())
    } else {
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireguard_keys_are_clamped_like_wg_genkey() {
        for _ in 0..32 {
            let secret = wireguard_secret();
            assert_eq!(secret[0] & 7, 0);
            assert_eq!(secret[31] & 0xc0, 0x40);
        }
        // RFC 7748 §6.1 test vector: Alice's key pair.
        let alice: [u8; 32] =
            hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        assert_eq!(
            wireguard_public(alice).0,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    fn hex(s: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }
}
