//! The reconciler: from the store to every node's signed bundle.
//!
//! [`Controller::reconcile`] runs every [`RECONCILE_EVERY`](super::RECONCILE_EVERY) and after
//! every enrollment. It recomputes bundles when the change log grew or the trust files (CA
//! certificates, CRLs) changed — whoever made the change: this server, or the command line on
//! the same directory — gives a node a new version only when its bundle's content changed,
//! signs it, and wakes the long-polls.
//!
//! # Cost
//!
//! One run at a time (a mutex), because versions are numbered in order. It is incremental:
//! unless the trust, the policy or the probe settings changed, only the nodes whose
//! enrollment changed and their tree neighbours, and the nodes whose conference reservations
//! changed, are computed again, so an enrollment costs a
//! few bundles, not the whole network's. The versions of one run are recorded in one grouped
//! store write ([`Store::write_grouped`](crate::store::Store::write_grouped)), which shares
//! its `fsync` with the enrollments committing at the same moment.
//!
//! An enrollment needs its node's first bundle before it answers, so hundreds of agents
//! enrolling at once each ask for a run. [`Controller::reconcile_through`] lets them share
//! runs: it returns at once when a run that read the change log after the enrollment's own
//! entries has already finished, so one run serves every enrollment that committed before
//! it began, and a burst costs a run per group of enrollments rather than one each.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::MutexGuard;
use std::time::SystemTime;

use agent::control::{ModelSources, ProbeSettings, SignedBundle};
use agent::model::Model;
use sha2::{Digest, Sha256};
use topology::{NodeId, Plane};

use super::{
    CRL_CHECK_EVERY, Controller, Current, Model_, RECONCILE_EVERY, ServeError, identity_paths,
    lock, read, wall_clock, write,
};
use crate::bundles::{self, Roster};
use crate::store::NodeRecord;

/// What the reconciler last computed from: the change log's length and the trust files.
#[derive(Debug, Clone, Default)]
pub(super) struct Fingerprint {
    /// The change log's head (its last sequence number) the last run read.
    changes: u64,
    trust: String,
    /// The policy and probe settings.
    globals: String,
    /// Each enrollment as it was: (plane, node) → what a bundle takes from it.
    records: HashMap<(Plane, NodeId), String>,
    /// Each sending node's conference reservations as they were (their digest).
    conferences: HashMap<NodeId, String>,
    /// The live audit's orders as they were: their generation and the nodes given one.
    audits: (u64, BTreeSet<NodeId>),
}

impl Controller {
    /// Recomputes every bundle if the change log or a CRL changed since the last time; new
    /// versions for bundles whose content changed. Returns how many nodes got one.
    pub fn reconcile(&self, now: SystemTime) -> Result<usize, ServeError> {
        let last = lock(&self.reconciling);
        self.reconcile_locked(last, now)
    }

    /// Makes sure the bundles reflect the change log at least through entry `seq` (say, an
    /// enrollment's last entry): returns `Ok(0)` at once if a run that read the log after it
    /// has finished, else runs [`reconcile`](Self::reconcile). Enrollments arriving together
    /// thus share runs: one run serves every enrollment committed before it began.
    pub fn reconcile_through(&self, seq: u64, now: SystemTime) -> Result<usize, ServeError> {
        let last = lock(&self.reconciling);
        if last.changes >= seq {
            return Ok(0);
        }
        self.reconcile_locked(last, now)
    }

    fn reconcile_locked(
        &self,
        mut last: MutexGuard<'_, Fingerprint>,
        now: SystemTime,
    ) -> Result<usize, ServeError> {
        let changes = self
            .store
            .read(|tx| tx.change_head())?
            .map_or(0, |(seq, _)| seq);
        let trust = bundles::trust_section(&self.ca)?;
        let trust_hash = trust_hash(&trust);
        let audits = lock(&self.audit_orders).clone();
        if last.changes == changes && last.trust == trust_hash && last.audits.0 == audits.0 {
            return Ok(0);
        }
        if last.trust != trust_hash {
            self.trust.replace(self.ca.trust_bundle()?);
        }
        self.reload_policy()?;
        let (model, sources) = {
            let state = read(&self.state);
            (std::sync::Arc::clone(&state.model), state.sources.clone())
        };
        let probes = self
            .store
            .read(|tx| tx.setting("probes"))?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(ProbeSettings::default);
        let globals = globals_hash(&sources, &probes);
        let enrolled = self.store.read(|tx| tx.nodes())?;
        let records = record_digests(&enrolled);
        // The held bookings' reservations, for the agents at the sending end of each link.
        let (reserved, capacities) = {
            let mut desk = lock(&self.conferences);
            let scheduler = desk.current(&self.store)?;
            crate::conference::enforce::reservations(scheduler, &model.allocation, now)
        };
        let conferences = conference_digests(&reserved, &capacities);
        let audited: BTreeSet<NodeId> = audits.1.keys().copied().collect();
        let roster = Roster::new(&model, sources, trust, probes, &enrolled)
            .with_conferences(reserved, capacities)
            .with_audits(audits.1);
        // Everything when the trust, the policy or the probe settings changed; otherwise
        // the nodes whose enrollment changed, their parents and their children (whose peer
        // lists name them), and the nodes whose conference reservations changed.
        let everything = last.trust != trust_hash || last.globals != globals;
        let all: HashSet<NodeId> = roster.nodes().into_iter().collect();
        let targets = if everything {
            roster.nodes()
        } else {
            let mut targets = affected(&roster, &last.records, &records, &all);
            let known: HashSet<NodeId> = targets.iter().copied().collect();
            let changed: BTreeSet<NodeId> = conferences
                .iter()
                .filter(|(node, digest)| last.conferences.get(*node) != Some(*digest))
                .map(|(node, _)| *node)
                .chain(
                    last.conferences
                        .keys()
                        .filter(|node| !conferences.contains_key(*node))
                        .copied(),
                )
                .filter(|node| all.contains(node) && !known.contains(node))
                .collect();
            targets.extend(changed);
            // The nodes given a live-audit order, or whose order ended.
            if last.audits.0 != audits.0 {
                let known: HashSet<NodeId> = targets.iter().copied().collect();
                targets.extend(
                    audited
                        .iter()
                        .chain(&last.audits.1)
                        .filter(|node| all.contains(node) && !known.contains(node))
                        .copied()
                        .collect::<BTreeSet<_>>(),
                );
            }
            targets
        };
        let updated = self.publish(&roster, &targets, &all, now)?;
        *last = Fingerprint {
            changes,
            trust: trust_hash,
            globals,
            records,
            conferences,
            audits: (audits.0, audited),
        };
        if updated > 0 {
            self.generation.send_modify(|g| *g += 1);
            tracing::info!(nodes = updated, "new config bundles");
        }
        Ok(updated)
    }

    /// Computes the bundles of `targets`, records a new version for each whose content
    /// changed (one grouped store write), signs those and makes them current; forgets the
    /// bundles of nodes no longer in `all`. Returns how many got a new version.
    fn publish(
        &self,
        roster: &Roster<'_>,
        targets: &[NodeId],
        all: &HashSet<NodeId>,
        now: SystemTime,
    ) -> Result<usize, ServeError> {
        // Each bundle's content hash first (without building its trust section); then one
        // store write that keeps the version of each unchanged bundle and numbers the
        // changed ones; then the whole bundle, signed, for each new version only.
        let hashes: Vec<(NodeId, String)> = targets
            .iter()
            .filter_map(|&node| roster.content_hash(node).map(|hash| (node, hash)))
            .collect();
        let nodes: Vec<NodeId> = hashes.iter().map(|(node, _)| *node).collect();
        let versions: Vec<u64> = self.store.write_grouped(move |tx| {
            hashes
                .iter()
                .map(|(node, hash)| match tx.last_bundle(node)? {
                    Some((version, last)) if last == *hash => Ok(version),
                    _ => {
                        let version = tx.next_config_version()?;
                        tx.record_bundle(node, version, hash, now)?;
                        Ok(version)
                    }
                })
                .collect()
        })?;
        let mut signed_now = Vec::new();
        {
            let known = read(&self.bundles);
            for (node, version) in nodes.into_iter().zip(versions) {
                if known.get(&node).is_some_and(|c| c.version == version) {
                    continue;
                }
                let Some(mut bundle) = roster.bundle(node) else {
                    continue;
                };
                bundle.version = version;
                let signed = SignedBundle::sign(&bundle, &self.key, &self.chain).map_err(|e| {
                    ServeError::Identity {
                        path: identity_paths(&self.dir).0,
                        reason: e.to_string(),
                    }
                })?;
                signed_now.push((node, Current { version, signed }));
            }
        }
        let updated = signed_now.len();
        let mut bundles = write(&self.bundles);
        bundles.retain(|node, _| all.contains(node));
        bundles.extend(signed_now);
        Ok(updated)
    }

    /// Loads the policy the store holds if it is not the one in use.
    fn reload_policy(&self) -> Result<(), ServeError> {
        let policy = self.store.read(|tx| tx.setting("policy"))?;
        if read(&self.state).sources.policy == policy {
            return Ok(());
        }
        let sources = ModelSources {
            policy,
            ..ModelSources::default()
        };
        let model = Model::load(&sources).map_err(|e| ServeError::Model(e.to_string()))?;
        *write(&self.state) = Model_ { model, sources };
        Ok(())
    }
}

/// The nodes whose bundles an enrollment change touches: the nodes whose record changed or
/// went away, and their tree neighbours, among those enrolled.
fn affected(
    roster: &Roster<'_>,
    before: &HashMap<(Plane, NodeId), String>,
    now: &HashMap<(Plane, NodeId), String>,
    all: &HashSet<NodeId>,
) -> Vec<NodeId> {
    let mut changed: BTreeSet<NodeId> = now
        .iter()
        .filter(|(key, digest)| before.get(*key) != Some(*digest))
        .map(|((_, node), _)| *node)
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|key| !now.contains_key(*key))
            .map(|(_, node)| *node),
    );
    let mut affected = changed.clone();
    for node in &changed {
        affected.extend(roster.neighbours(*node));
    }
    affected.into_iter().filter(|n| all.contains(n)).collect()
}

/// Each enrollment as a bundle sees it: what, changed, changes its own and its neighbours'.
fn record_digests(enrolled: &[NodeRecord]) -> HashMap<(Plane, NodeId), String> {
    enrolled
        .iter()
        .map(|r| {
            let digest = format!(
                "{}|{}|{:?}|{}|{}",
                r.wireguard_key,
                r.listen,
                r.backup_listen,
                r.serial,
                r.certificate_pem.len()
            );
            ((r.plane, r.node), digest)
        })
        .collect()
}

/// Each sending node's reservations and the capacities they shape to, as a digest.
fn conference_digests(
    reserved: &crate::conference::enforce::LinkReservations,
    capacities: &crate::conference::enforce::LinkCapacities,
) -> HashMap<NodeId, String> {
    let mut by_sender: HashMap<NodeId, Sha256> = HashMap::new();
    for ((sender, peer), list) in reserved {
        let hasher = by_sender.entry(*sender).or_default();
        hasher.update(peer.to_string().as_bytes());
        hasher.update(serde_json::to_string(list).unwrap_or_default().as_bytes());
        hasher.update(
            capacities
                .get(&(*sender, *peer))
                .copied()
                .unwrap_or_default()
                .to_le_bytes(),
        );
    }
    by_sender
        .into_iter()
        .map(|(node, hasher)| (node, hex::encode(hasher.finalize())))
        .collect()
}

fn trust_hash(trust: &agent::control::Trust) -> String {
    let mut hasher = Sha256::new();
    for text in std::iter::once(&trust.root)
        .chain(&trust.intermediates)
        .chain(&trust.crls)
    {
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn globals_hash(sources: &ModelSources, probes: &ProbeSettings) -> String {
    hex::encode(Sha256::digest(
        format!(
            "{}|{}",
            sources.policy.as_deref().unwrap_or_default(),
            serde_json::to_string(probes).unwrap_or_default()
        )
        .as_bytes(),
    ))
}

/// Reconciles every [`RECONCILE_EVERY`], and refreshes the CRLs every
/// [`CRL_CHECK_EVERY`].
pub(super) async fn reconcile_forever(controller: std::sync::Arc<Controller>) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    let mut next_crl_check = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let check_crls = tokio::time::Instant::now() >= next_crl_check;
        if check_crls {
            next_crl_check += CRL_CHECK_EVERY;
        }
        let controller = std::sync::Arc::clone(&controller);
        let done = tokio::task::spawn_blocking(move || {
            let now = wall_clock();
            if check_crls {
                controller.refresh_crls(now)?;
            }
            controller.reconcile(now)
        })
        .await;
        if let Ok(Err(err)) = done {
            tracing::warn!(%err, "reconcile");
        }
    }
}
