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

use std::collections::HashMap;
use std::path::Path;

use agent::control::{
    BUNDLE_FORMAT, Bundle, FilterSettings, ModelSources, PeerConfig, PeerRole, PlaneConfig,
    ProbeSettings, Trust,
};
use agent::model::Model;
use pki::AuthorityScope;
use pki::store::CaDir;
use sha2::{Digest, Sha256};
use topology::{NodeId, Plane};

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
    probes: ProbeSettings,
    filter: FilterSettings,
    enrolled: HashMap<(Plane, NodeId), &'a NodeRecord>,
    children: HashMap<(Plane, NodeId), Vec<NodeId>>,
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
            trust,
            probes,
            filter: FilterSettings::default(),
            enrolled: by_node,
            children,
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
            trust: self.trust.clone(),
            probes: self.probes.clone(),
            filter: self.filter.clone(),
            model: self.sources.clone(),
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

/// The content hash of a bundle, version aside: what decides whether a node gets a new one.
pub fn content_hash(bundle: &Bundle) -> String {
    let mut unversioned = bundle.clone();
    unversioned.version = 0;
    let text = serde_json::to_string(&unversioned).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
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
