//! Each agent's config bundle, computed from the enrolled nodes, the model and the CAs.
//!
//! A node's bundle holds, per plane it is enrolled on: its own listen addresses and
//! certificate, its uplink (the tree parent, if enrolled: the plane's whole supernet routes
//! to it, with the parent's backup address as the backup path) and its enrolled children
//! (each child's subtree block routes to it); the trust section (root, every CA, every CA's
//! current CRL, as published in the CA directory); the probe and filter settings; and the
//! policy text when it is not the embedded default. Only the tree: lateral and unmanaged
//! peers are not computed here.
//!
//! Bundles are computed without a version ([`Roster::bundle`]); the server compares a
//! bundle's content hash with what the node was last given and assigns a new version only
//! when something changed, so versions mean "something changed" and never go backwards.
//!
//! # The content hash, and its cost at scale
//!
//! The trust section is the same in every bundle and is most of it (the root, 32 CAs and
//! their CRLs: ~47 KB of a typical city-area site's ~52 KB), so the content hash takes it in
//! by its own digest: SHA-256 over a tag, the SHA-256 of the trust section's JSON, and the
//! JSON of the rest of the bundle (version 0, trust section empty). A change anywhere —
//! trust included — changes the hash, but the roster digests the trust section once for all
//! nodes ([`Roster::content_hash`]), and hashing a node's bundle costs its own few kilobytes,
//! not the 47 KB every node shares: at 45,000 nodes that is the difference between ~0.5 s
//! and ~2 s. The whole bundle ([`Roster::bundle`]) is built only for the nodes that get a new
//! version, to sign. (Bundles hashed by an earlier controller, which hashed the whole JSON,
//! get one new version each — same content — on the first reconcile after an upgrade.)

use std::collections::HashMap;
use std::path::Path;

use agent::control::{
    AuditOrder, BUNDLE_FORMAT, Bundle, FilterSettings, LinkQos, ModelSources, PeerConfig, PeerRole,
    PlaneConfig, ProbeSettings, Trust,
};
use agent::model::Model;
use pki::AuthorityScope;
use pki::store::CaDir;
use sha2::{Digest, Sha256};
use topology::{NodeId, Plane};

use crate::conference::enforce::{CONFERENCE_PLANE, LinkCapacities, LinkReservations};
use crate::store::NodeRecord;

/// Why the trust section could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A CA file is missing or unreadable.
    #[error("CA directory: {0}")]
    Ca(#[from] pki::store::StoreError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything a bundle is computed from, but the node.
pub struct Roster<'a> {
    model: &'a Model,
    sources: ModelSources,
    trust: Trust,
    /// The SHA-256 of the trust section's JSON.
    trust_digest: [u8; 32],
    probes: ProbeSettings,
    filter: FilterSettings,
    enrolled: HashMap<(Plane, NodeId), &'a NodeRecord>,
    children: HashMap<(Plane, NodeId), Vec<NodeId>>,
    /// Conference reservations by sending node and peer, and those links' capacities.
    conferences: (LinkReservations, LinkCapacities),
    /// The live audit's probes, by sending node, while one runs.
    audits: HashMap<NodeId, AuditOrder>,
}

impl<'a> Roster<'a> {
    /// The roster of `enrolled` nodes on `model`.
    pub fn new(
        model: &'a Model,
        sources: ModelSources,
        trust: Trust,
        probes: ProbeSettings,
        enrolled: &'a [NodeRecord],
    ) -> Roster<'a> {
        let mut by_node = HashMap::new();
        let mut children: HashMap<(Plane, NodeId), Vec<NodeId>> = HashMap::new();
        for record in enrolled {
            by_node.insert((record.plane, record.node), record);
            if let Some(parent) = parent(model, record.node) {
                children
                    .entry((record.plane, parent))
                    .or_default()
                    .push(record.node);
            }
        }
        for list in children.values_mut() {
            list.sort();
        }
        Roster {
            model,
            sources,
            trust_digest: trust_digest(&trust),
            trust,
            probes,
            filter: FilterSettings::default(),
            enrolled: by_node,
            children,
            conferences: Default::default(),
            audits: HashMap::new(),
        }
    }

    /// The roster with conference reservations ([`crate::conference::enforce::reservations`]):
    /// each goes to the peer it is sent toward, on the conference plane, with the link's
    /// capacity for shaping.
    pub fn with_conferences(
        mut self,
        reserved: LinkReservations,
        capacities: LinkCapacities,
    ) -> Roster<'a> {
        self.conferences = (reserved, capacities);
        self
    }

    /// The roster with the live audit's probe orders, by sending node.
    pub fn with_audits(mut self, audits: HashMap<NodeId, AuditOrder>) -> Roster<'a> {
        self.audits = audits;
        self
    }

    /// What `node` reserves toward `peer` on `plane`: nothing off the conference plane.
    fn qos(&self, plane: Plane, node: NodeId, peer: NodeId) -> LinkQos {
        let (reserved, capacities) = &self.conferences;
        match reserved.get(&(node, peer)) {
            Some(reservations) if plane == CONFERENCE_PLANE => LinkQos {
                capacity_kbps: capacities.get(&(node, peer)).copied(),
                reservations: reservations.clone(),
            },
            _ => LinkQos::default(),
        }
    }

    /// Every enrolled node, once.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.enrolled.keys().map(|(_, n)| *n).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The enrolled nodes whose bundles name `node`: its parent and its children, on any
    /// plane.
    pub fn neighbours(&self, node: NodeId) -> Vec<NodeId> {
        let mut neighbours: Vec<NodeId> = parent(self.model, node).into_iter().collect();
        for plane in Plane::ALL {
            if let Some(children) = self.children.get(&(*plane, node)) {
                neighbours.extend(children.iter().copied());
            }
        }
        neighbours
    }

    /// The bundle of `node` (version 0), or `None` if it is enrolled on no plane.
    pub fn bundle(&self, node: NodeId) -> Option<Bundle> {
        self.assemble(node, self.trust.clone())
    }

    /// [`content_hash`] of [`bundle(node)`](Self::bundle), computed without building the
    /// bundle's trust section (the roster digests it once); `None` if `node` is enrolled on
    /// no plane.
    pub fn content_hash(&self, node: NodeId) -> Option<String> {
        let shell = self.assemble(node, empty_trust())?;
        Some(content_digest(&self.trust_digest, &shell))
    }

    /// The bundle of `node` (version 0) with `trust` as its trust section.
    fn assemble(&self, node: NodeId, trust: Trust) -> Option<Bundle> {
        let mut planes: Vec<PlaneConfig> = Plane::ALL
            .iter()
            .filter_map(|&plane| self.plane(plane, node))
            .collect();
        planes.sort_by_key(|p| p.plane);
        if planes.is_empty() {
            return None;
        }
        Some(Bundle {
            format: BUNDLE_FORMAT,
            version: 0,
            node,
            trust,
            probes: self.probes.clone(),
            filter: self.filter.clone(),
            model: self.sources.clone(),
            conference: Default::default(),
            audit: self.audits.get(&node).cloned(),
            planes,
        })
    }

    fn plane(&self, plane: Plane, node: NodeId) -> Option<PlaneConfig> {
        let own = self.enrolled.get(&(plane, node))?;
        let mut peers = Vec::new();
        if let Some(parent) = parent(self.model, node)
            && let Some(uplink) = self.enrolled.get(&(plane, parent))
            && let Some(everything) = self.model.allocation.supernet(plane)
        {
            peers.push(PeerConfig {
                node: parent,
                role: PeerRole::Uplink,
                public_key: uplink.wireguard_key,
                certificate: Some(uplink.certificate_pem.clone()),
                endpoint: Some(uplink.listen),
                backup: uplink.backup_listen,
                allowed: vec![everything],
                keepalive_s: None,
                qos: self.qos(plane, node, parent),
            });
        }
        for child in self.children.get(&(plane, node)).into_iter().flatten() {
            let (Some(record), Some(block)) = (
                self.enrolled.get(&(plane, *child)),
                subtree(self.model, *child, plane),
            ) else {
                continue;
            };
            peers.push(PeerConfig {
                node: *child,
                role: PeerRole::Child,
                public_key: record.wireguard_key,
                certificate: Some(record.certificate_pem.clone()),
                endpoint: Some(record.listen),
                backup: None,
                allowed: vec![block],
                keepalive_s: None,
                qos: self.qos(plane, node, *child),
            });
        }
        Some(PlaneConfig {
            plane,
            listen: own.listen,
            backup_listen: own.backup_listen,
            private_key: format!("wireguard-{plane}.key").into(),
            certificate: own.certificate_pem.clone(),
            peers,
        })
    }
}

/// What the content hash starts with: which layout of the hashed bytes this is.
const CONTENT_HASH_TAG: &[u8] = b"jinbao bundle content v2\n";

/// The content hash of a bundle, version aside: what decides whether a node gets a new one.
/// SHA-256 (hex) over a tag naming this layout, the SHA-256 of the trust section's JSON, and
/// the JSON of the bundle with version 0 and an empty trust section (see the module docs).
pub fn content_hash(bundle: &Bundle) -> String {
    // Every field by name: a field added to `Bundle` must be added here to compile.
    let shell = Bundle {
        format: bundle.format,
        version: 0,
        node: bundle.node,
        trust: empty_trust(),
        probes: bundle.probes.clone(),
        filter: bundle.filter.clone(),
        model: bundle.model.clone(),
        conference: bundle.conference.clone(),
        audit: bundle.audit.clone(),
        planes: bundle.planes.clone(),
    };
    content_digest(&trust_digest(&bundle.trust), &shell)
}

/// The content hash of `shell` (version 0, empty trust section) with a trust section whose
/// digest is `trust`.
fn content_digest(trust: &[u8; 32], shell: &Bundle) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CONTENT_HASH_TAG);
    hasher.update(trust);
    // These types always serialize; were one not to, the hash would cover what was written.
    let _ = serde_json::to_writer(Hashing(&mut hasher), shell);
    hex::encode(hasher.finalize())
}

fn trust_digest(trust: &Trust) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let _ = serde_json::to_writer(Hashing(&mut hasher), trust);
    hasher.finalize().into()
}

/// Feeds JSON straight into a hash, without building the text.
struct Hashing<'a>(&'a mut Sha256);

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn empty_trust() -> Trust {
    Trust {
        root: String::new(),
        intermediates: Vec::new(),
        crls: Vec::new(),
    }
}

/// The trust section: the root, every issuing CA and every CA's current CRL, as published
/// in the CA directory.
pub fn trust_section(ca: &CaDir) -> Result<Trust, BundleError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| BundleError::File {
            path: path.display().to_string(),
            source,
        })
    };
    let root = read(&ca.certificate_path(AuthorityScope::Root))?;
    let mut intermediates = Vec::new();
    let mut crls = vec![read(&ca.crl_path(AuthorityScope::Root))?];
    for scope in ca.authorities()? {
        intermediates.push(read(&ca.certificate_path(scope))?);
        crls.push(read(&ca.crl_path(scope))?);
    }
    Ok(Trust {
        root,
        intermediates,
        crls,
    })
}

fn parent(model: &Model, node: NodeId) -> Option<NodeId> {
    let network = &model.network;
    let ix = network.lookup(&node)?;
    network.parent(ix).map(|p| network.node(p).id)
}

fn subtree(model: &Model, node: NodeId, plane: Plane) -> Option<ipnet::IpNet> {
    let ix = model.network.lookup(&node)?;
    model.allocation.node(plane, ix).map(|blocks| blocks.block)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use pki::WireGuardKey;

    use super::*;

    fn record(node: &str, plane: Plane, port: u16) -> NodeRecord {
        NodeRecord {
            node: node.parse().unwrap_or(NodeId::MINISTRY),
            plane,
            wireguard_key: WireGuardKey([port as u8; 32]),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            backup_listen: Some(SocketAddr::from(([127, 0, 0, 2], port))),
            certificate_pem: format!("-----BEGIN CERTIFICATE-----\n{node}\n\"quoted\"\n"),
            serial: format!("{port:04x}"),
            enrolled_at: SystemTime::UNIX_EPOCH,
        }
    }

    /// The roster's hash (trust section digested once) is the hash of the whole bundle,
    /// whatever the texts hold.
    #[test]
    fn the_roster_hashes_exactly_as_the_whole_bundle_hashes() {
        let Ok(model) = Model::load(&ModelSources::default()) else {
            panic!("the embedded model loads");
        };
        let enrolled = vec![
            record("dc:ministry", Plane::Business, 1000),
            record("dc:14", Plane::Business, 1014),
            record("dc:1401", Plane::Business, 1401),
            record("dc:1401", Plane::Office, 2401),
            record("dc:1402", Plane::Business, 1402),
        ];
        let sources = ModelSources {
            policy: Some(r#"# "trust":{"root":"","intermediates":[],"crls":[]} "trust":"#.into()),
            ..ModelSources::default()
        };
        for trust in [
            empty_trust(),
            Trust {
                root: "-----BEGIN CERTIFICATE-----\nroot \"\\ \u{1}\n".into(),
                intermediates: vec!["ministry\n".into(), "\"trust\":{}".into()],
                crls: vec!["crl 1\n".into(), "crl 2\n".into()],
            },
        ] {
            let roster = Roster::new(
                &model,
                sources.clone(),
                trust,
                ProbeSettings::default(),
                &enrolled,
            );
            for node in roster.nodes() {
                let Some(bundle) = roster.bundle(node) else {
                    panic!("{node} has a bundle");
                };
                assert_eq!(
                    roster.content_hash(node),
                    Some(content_hash(&bundle)),
                    "{node}"
                );
            }
            assert_eq!(
                roster.content_hash("dc:15".parse().unwrap_or(NodeId::MINISTRY)),
                None
            );
        }
    }

    #[test]
    fn the_trust_section_is_part_of_the_content_hash() {
        let Ok(model) = Model::load(&ModelSources::default()) else {
            panic!("the embedded model loads");
        };
        let enrolled = vec![record("dc:14", Plane::Business, 1014)];
        let node = "dc:14".parse().unwrap_or(NodeId::MINISTRY);
        let hash = |crls: Vec<String>| {
            let trust = Trust {
                root: "root\n".into(),
                intermediates: vec!["ca\n".into()],
                crls,
            };
            let roster = Roster::new(
                &model,
                ModelSources::default(),
                trust,
                ProbeSettings::default(),
                &enrolled,
            );
            roster.content_hash(node)
        };
        assert_ne!(hash(vec!["crl 1\n".into()]), hash(vec!["crl 2\n".into()]));
        assert_eq!(hash(vec!["crl 1\n".into()]), hash(vec!["crl 1\n".into()]));
    }

    #[test]
    fn the_version_is_not_part_of_the_content_hash() {
        let Ok(model) = Model::load(&ModelSources::default()) else {
            panic!("the embedded model loads");
        };
        let enrolled = vec![record("dc:14", Plane::Business, 1014)];
        let roster = Roster::new(
            &model,
            ModelSources::default(),
            empty_trust(),
            ProbeSettings::default(),
            &enrolled,
        );
        let Some(mut bundle) = roster.bundle("dc:14".parse().unwrap_or(NodeId::MINISTRY)) else {
            panic!("dc:14 has a bundle");
        };
        let unversioned = content_hash(&bundle);
        bundle.version = 42;
        assert_eq!(content_hash(&bundle), unversioned);
    }
}
