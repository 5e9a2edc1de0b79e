//! The sans-IO node core: one agent's overlay on every plane it serves, as a state machine.
//!
//! Like boringtun's `noise::Tunn` and quinn-proto, a [`Node`] owns no socket, clock or task:
//! the runtime hands it underlay datagrams, local packets and timer ticks with the time they
//! happened, and it writes [`Output`]s — datagrams to send, packets to deliver, events — into
//! an [`Outputs`] buffer the runtime owns (no allocation or copy per packet; see `output`). The
//! same core runs over real UDP, over netlab's emulated underlay, and in tests that step time
//! by hand.
//!
//! Each plane is an independent instance ([`plane::PlaneNode`]) with its own WireGuard key,
//! port, routes, peers and zone filter: nothing in one instance can name another's peers or
//! routes, so a packet can never leave through another plane (a test shows it).
//!
//! Time: everything of ours takes `now`. boringtun's `Tunn` reads the monotonic clock itself
//! for its handshake timers (rekey after 120 s, retry after 5 s, keepalives); we let it, and
//! only drive `update_timers` from our tick. Tests therefore control every timer of ours
//! exactly, and WireGuard's in real time — which none of them waits for: handshakes are
//! started by the first packet, not by a timer. (boringtun's `mock-instant` feature would
//! make its clock a process-wide mock shared by parallel tests, which is worse.)

pub mod audit;
mod output;
mod peer;
mod plane;
pub mod qos;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use pki::TrustBundle;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use topology::{NodeId, Plane};

use crate::control::{AuditOrder, AuditSeen, Bundle, Status};
use crate::model::Model;

pub use output::{Output, Outputs, Run};
pub use plane::PlaneNode;

/// What happened, for logs and the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer's probes changed its health.
    PeerHealth {
        /// The plane.
        plane: Plane,
        /// The peer.
        peer: NodeId,
        /// Now up (or down).
        up: bool,
    },
    /// Uplink traffic moved to another path.
    PathSwitch {
        /// The plane.
        plane: Plane,
        /// The uplink peer.
        peer: NodeId,
        /// Now on the backup (or back on the primary).
        backup: bool,
    },
}

/// Why a node could not be built from a bundle.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The bundle's trust section does not load.
    #[error("trust: {0}")]
    Trust(String),
    /// This node's own certificate for a plane is unusable.
    #[error("{plane}: own certificate: {reason}")]
    OwnCertificate {
        /// The plane.
        plane: Plane,
        /// Why.
        reason: String,
    },
    /// No private key given for a plane of the bundle.
    #[error("{0}: no WireGuard private key")]
    MissingKey(Plane),
    /// A bundle for another node.
    #[error("the bundle is for {0}, not this node")]
    OtherNode(NodeId),
    /// A bundle that moves an underlay address: restart the agent on it.
    #[error("the bundle changes the underlay addresses; restart the agent to apply it")]
    ListenChanged,
    /// The node is not on a plane the bundle configures.
    #[error("{node} is not on the {plane} plane of the plan")]
    NotOnPlane {
        /// The node.
        node: NodeId,
        /// The plane.
        plane: Plane,
    },
}

/// One agent: an instance per plane.
pub struct Node {
    node: NodeId,
    version: u64,
    planes: Vec<PlaneNode>,
    /// The bundle it runs, without its version and trust section: what decides whether a
    /// new bundle can be applied in place (see [`Node::reconfigure`]).
    shape: Bundle,
    model: Arc<Model>,
    /// The live audit's probes to send at the next timeout, and since when.
    audit_pending: Option<(AuditOrder, Instant)>,
    /// The audit whose probes were sent last.
    audit_sent: Option<u64>,
}

/// What applying a newer bundle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconfigured {
    /// Only the trust changed (new CRLs): tunnels stay up, peers that no longer verify were
    /// torn down (plane, peer, why).
    Trust(Vec<(Plane, NodeId, String)>),
    /// Peers, settings or policy changed: the instances were built again (new handshakes).
    Rebuilt,
}

impl Node {
    /// Builds the node from its bundle, its WireGuard private keys (per plane) and the model
    /// the bundle names. Peers whose certificate fails verification at `wall` are refused
    /// and listed in the status with the reason; the rest come up.
    pub fn new(
        bundle: &Bundle,
        keys: &[(Plane, [u8; 32])],
        model: Arc<Model>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Node, NodeError> {
        let trust = trust_bundle(bundle)?;
        let planes = bundle
            .planes
            .iter()
            .map(|config| {
                let key = keys
                    .iter()
                    .find(|(p, _)| *p == config.plane)
                    .map(|(_, k)| *k)
                    .ok_or(NodeError::MissingKey(config.plane))?;
                PlaneNode::new(bundle, config, key, &trust, Arc::clone(&model), now, wall)
            })
            .collect::<Result<_, _>>()?;
        Ok(Node {
            node: bundle.node,
            version: bundle.version,
            planes,
            shape: shape(bundle),
            model,
            audit_pending: bundle.audit.clone().map(|order| (order, now)),
            audit_sent: None,
        })
    }

    /// Applies a newer bundle for the same node. A bundle that differs from the running one
    /// only in its trust section (a CRL update: the way a revocation arrives) or its
    /// conference reservations is applied in place, so every other tunnel keeps its session;
    /// anything else rebuilds the instances.
    /// The underlay addresses cannot move while running (the sockets are bound): such a
    /// bundle is refused, and the agent must be restarted on it.
    pub fn reconfigure(
        &mut self,
        bundle: &Bundle,
        keys: &[(Plane, [u8; 32])],
        model: Arc<Model>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Reconfigured, NodeError> {
        if bundle.node != self.node {
            return Err(NodeError::OtherNode(bundle.node));
        }
        let listening = |b: &Bundle| -> Vec<_> {
            b.planes
                .iter()
                .map(|p| (p.plane, p.listen, p.backup_listen))
                .collect()
        };
        if listening(bundle) != listening(&self.shape) {
            return Err(NodeError::ListenChanged);
        }
        if shape(bundle) == self.shape && Arc::ptr_eq(&model, &self.model) {
            let dropped = self.update_trust(bundle, wall)?;
            for instance in &mut self.planes {
                if let Some(config) = bundle.planes.iter().find(|p| p.plane == instance.plane()) {
                    instance.update_conferences(config, &bundle.conference, now, wall);
                }
            }
            self.version = bundle.version;
            self.take_audit(bundle, now);
            return Ok(Reconfigured::Trust(dropped));
        }
        let sent = self.audit_sent;
        *self = Node::new(bundle, keys, model, now, wall)?;
        self.audit_sent = sent;
        self.audit_pending = None;
        self.take_audit(bundle, now);
        Ok(Reconfigured::Rebuilt)
    }

    /// Queues the bundle's audit probes, unless they were sent or queued already.
    fn take_audit(&mut self, bundle: &Bundle, now: Instant) {
        let Some(order) = &bundle.audit else {
            return;
        };
        let queued = self.audit_pending.as_ref().map(|(o, _)| o.id);
        if self.audit_sent != Some(order.id) && queued != Some(order.id) {
            self.audit_pending = Some((order.clone(), now));
        }
    }

    /// The config version running.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The node.
    pub fn id(&self) -> NodeId {
        self.node
    }

    /// The plane instances.
    pub fn planes(&self) -> &[PlaneNode] {
        &self.planes
    }

    /// An underlay datagram arrived at `local` from `from` on `plane`'s instance.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        plane: Plane,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Outputs,
    ) {
        if let Some(instance) = self.plane_mut(plane) {
            instance.handle_datagram(now, local, from, datagram, out);
        }
    }

    /// A packet from this node's own interface on `plane`, to send into the overlay.
    pub fn handle_local(&mut self, now: Instant, plane: Plane, packet: &[u8], out: &mut Outputs) {
        if let Some(instance) = self.plane_mut(plane) {
            instance.handle_local(now, packet, out);
        }
    }

    /// Timers: probes, path probes, WireGuard's own timers, failover. Call at
    /// [`Node::next_timeout`] (or earlier; it is idempotent).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) {
        if let Some((order, _)) = self.audit_pending.take() {
            for probe in &order.probes {
                if let Some(packet) = audit::probe_packet(probe, order.id) {
                    self.handle_local(now, probe.plane, &packet, out);
                }
            }
            self.audit_sent = Some(order.id);
        }
        for instance in &mut self.planes {
            instance.handle_timeout(now, out);
        }
    }

    /// When [`Node::handle_timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        let audit = self.audit_pending.as_ref().map(|(_, since)| *since);
        self.planes
            .iter()
            .filter_map(PlaneNode::next_timeout)
            .chain(audit)
            .min()
    }

    /// The state of every plane, peer and filter rule.
    pub fn status(&self, now: Instant) -> Status {
        let arrivals = self.planes.iter().filter_map(PlaneNode::arrivals);
        let newest = arrivals.clone().map(|(audit, _)| *audit).max();
        let arrived: Vec<u32> = arrivals
            .filter(|(audit, _)| Some(*audit) == newest)
            .flat_map(|(_, flows)| flows.iter().copied())
            .collect();
        let audit = (self.audit_sent.is_some() || newest.is_some()).then_some(AuditSeen {
            sent: self.audit_sent,
            arrived_for: newest,
            arrived,
        });
        Status {
            node: Some(self.node),
            version: self.version,
            planes: self.planes.iter().map(|p| p.status(now)).collect(),
            audit,
        }
    }

    /// Replaces the trust bundle (a new CRL): peers whose certificate no longer verifies
    /// are torn down and listed as refused.
    pub fn update_trust(
        &mut self,
        bundle: &Bundle,
        wall: SystemTime,
    ) -> Result<Vec<(Plane, NodeId, String)>, NodeError> {
        let trust = trust_bundle(bundle)?;
        let mut dropped = Vec::new();
        for instance in &mut self.planes {
            for (peer, reason) in instance.recheck_peers(&trust, wall) {
                dropped.push((instance.plane(), peer, reason));
            }
        }
        Ok(dropped)
    }

    fn plane_mut(&mut self, plane: Plane) -> Option<&mut PlaneNode> {
        self.planes.iter_mut().find(|p| p.plane() == plane)
    }
}

/// A bundle without what can change in place: its version, its trust section, and its
/// conference reservations (a booking must not cost every tunnel of the node its session).
fn shape(bundle: &Bundle) -> Bundle {
    let mut shape = bundle.clone();
    shape.version = 0;
    shape.trust = crate::control::Trust {
        root: String::new(),
        intermediates: Vec::new(),
        crls: Vec::new(),
    };
    shape.conference = Default::default();
    shape.audit = None;
    for plane in &mut shape.planes {
        for peer in &mut plane.peers {
            peer.qos = Default::default();
        }
    }
    shape
}

/// The bundle's root, issuing CAs and CRLs as a verifier.
///
/// Building one checks every CRL's signature (a national bundle carries ~30 CAs and as many
/// CRLs: a few milliseconds), and an agent needs the same verifier for its core, for its
/// controller connection and for every bundle it opens, while netlab runs hundreds of agents
/// with one trust section in one process. So verifiers are kept by their trust section's
/// exact text — compared whole, not by a hash — and a changed CRL list builds a new one.
pub(crate) fn trust_bundle(bundle: &Bundle) -> Result<Arc<TrustBundle>, NodeError> {
    /// Trust sections seen most recently, newest last; a few, since a CRL update briefly
    /// has agents on both the old and the new section.
    const KEPT: usize = 4;
    static BUILT: std::sync::Mutex<Vec<(crate::control::Trust, Arc<TrustBundle>)>> =
        std::sync::Mutex::new(Vec::new());
    let lookup = |built: &Vec<(crate::control::Trust, Arc<TrustBundle>)>| {
        built
            .iter()
            .find(|(trust, _)| *trust == bundle.trust)
            .map(|(_, verifier)| Arc::clone(verifier))
    };
    if let Some(verifier) = lookup(&BUILT.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(verifier);
    }
    let verifier = Arc::new(build_trust_bundle(bundle)?);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(raced) = lookup(&built) {
        return Ok(raced);
    }
    if built.len() == KEPT {
        built.remove(0);
    }
    built.push((bundle.trust.clone(), Arc::clone(&verifier)));
    Ok(verifier)
}

fn build_trust_bundle(bundle: &Bundle) -> Result<TrustBundle, NodeError> {
    let bad = |what: &str| NodeError::Trust(format!("{what} is not PEM"));
    let root = CertificateDer::from_pem_slice(bundle.trust.root.as_bytes())
        .map_err(|_| bad("the root"))?;
    let intermediates = bundle
        .trust
        .intermediates
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| bad("an issuing CA")))
        .collect::<Result<Vec<_>, _>>()?;
    let crls = bundle
        .trust
        .crls
        .iter()
        .map(|pem| {
            CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).map_err(|_| bad("a CRL"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    TrustBundle::new(root, intermediates, &crls).map_err(|e| NodeError::Trust(e.to_string()))
}

/// A certificate chain from PEM (leaf first).
pub(crate) fn chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| "the certificate is not PEM".to_owned())?;
    if chain.is_empty() {
        return Err("no certificate".into());
    }
    Ok(chain)
}
