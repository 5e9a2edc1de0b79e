//! The model an agent decides by — network, IP plan, allocation, zone policy — loaded once
//! per process and shared.
//!
//! The zone filter must decide every flow exactly as `jinbao-controller policy query` does,
//! so an agent runs the controller's model, built from the texts its bundle carries
//! ([`ModelSources`]) or, where the bundle carries none, from the embedded national
//! defaults. Loading checks what the controller checks (the policy's invariants and its own
//! tests) and reports problems as `file:line: what`; texts from a bundle are named
//! `bundle/network.toml`, `bundle/plan.toml` and `bundle/policy.toml`, defaults
//! `embedded/…`.
//!
//! The national network is ~45k nodes, ~25 ms and ~28 MB to build, and netlab runs hundreds
//! of agents in one process. [`Model::load`] therefore keeps a process-wide cache keyed by a
//! hash of the three texts (and compared on the texts themselves): every agent loading the
//! same sources gets the same `Arc<Model>`. The cache holds models weakly while agents use
//! them, and the last [`KEEP_RECENT`] distinct models strongly, so a node restarted on the
//! same bundle does not rebuild while an old model no agent uses any more is freed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use topology::network::{EMBEDDED_NETWORK_FILE, NetworkProblem};
use topology::plan::{AddressIndex, Allocation, AllocationError, EMBEDDED_PLAN};
use topology::policy::EMBEDDED_POLICY;
use topology::{
    DivisionProblem, Divisions, Network, Plan, PlanProblem, Policy, PolicyProblem, Problems,
    SourceText,
};

use crate::control::ModelSources;

/// How many distinct models the cache keeps alive after their last user drops them.
pub const KEEP_RECENT: usize = 2;

/// Why a model could not be loaded. Every file problem names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The division dataset compiled into this build is broken.
    #[error("the embedded division dataset is not usable:\n{0}")]
    Divisions(Problems<DivisionProblem>),
    /// The network file is not usable.
    #[error("the network file is not usable:\n{0}")]
    Network(Problems<NetworkProblem>),
    /// The plan file is not usable.
    #[error("the plan is not usable:\n{0}")]
    Plan(Problems<PlanProblem>),
    /// The plan cannot hold the network.
    #[error("plan {origin}: {source}")]
    Allocation {
        /// The plan file.
        origin: String,
        /// Which nodes do not fit.
        source: AllocationError,
    },
    /// The policy breaks an invariant, or one of its tests fails, on this network.
    #[error("the policy is not usable:\n{0}")]
    Policy(Problems<PolicyProblem>),
}

/// The network, plan, allocation and policy one agent (or many) decides by. Immutable:
/// a new bundle with other sources loads another model.
pub struct Model {
    /// The tree of nodes and links.
    pub network: Network,
    /// The IP plan.
    pub plan: Plan,
    /// Every node's blocks on every plane.
    pub allocation: Allocation,
    /// The zone policy, checked against its invariants and its tests.
    pub policy: Policy,
    /// Addresses to (node, zone), owned and allocation-free: the filter's first question.
    pub index: AddressIndex,
    sources: ModelSources,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("nodes", &self.network.nodes().len())
            .field("plan", &self.plan.origin)
            .field("policy", &self.policy.origin)
            .field("rules", &self.policy.rules().len())
            .finish_non_exhaustive()
    }
}

/// Models by the hash of their sources; several per hash only on a collision.
struct Cache {
    live: HashMap<u64, Vec<Weak<Model>>>,
    recent: VecDeque<Arc<Model>>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        live: HashMap::new(),
        recent: VecDeque::new(),
    })
});

fn digest(sources: &ModelSources) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&sources.network, &sources.plan, &sources.policy).hash(&mut hasher);
    hasher.finish()
}

impl Model {
    /// The model of these sources: the one already loaded in this process if any, else
    /// built (and cached). Concurrent loads of the same sources build once.
    pub fn load(sources: &ModelSources) -> Result<Arc<Model>, ModelError> {
        let key = digest(sources);
        // Built under the lock: a second agent asking for the same sources waits for the
        // first instead of building a second copy. Loads happen at start and on new
        // bundles, never per packet.
        let mut cache = CACHE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(model) = cache.find(key, sources) {
            return Ok(model);
        }
        let model = Arc::new(Model::build(sources)?);
        cache.insert(key, &model);
        Ok(model)
    }

    /// The embedded national model (every source `None`).
    pub fn national() -> Result<Arc<Model>, ModelError> {
        Model::load(&ModelSources::default())
    }

    /// The texts this model was built from.
    pub fn sources(&self) -> &ModelSources {
        &self.sources
    }

    /// Builds a model without the cache.
    pub fn build(sources: &ModelSources) -> Result<Model, ModelError> {
        let divisions = Divisions::embedded().map_err(ModelError::Divisions)?;
        let (name, text) = named(&sources.network, "network.toml", EMBEDDED_NETWORK_FILE);
        let network = Network::build(&divisions, &SourceText::new(name, text))
            .map_err(ModelError::Network)?;
        let (name, text) = named(&sources.plan, "plan.toml", EMBEDDED_PLAN);
        let plan = Plan::parse(&SourceText::new(name, text)).map_err(ModelError::Plan)?;
        let allocation = plan
            .allocate(&network)
            .map_err(|source| ModelError::Allocation {
                origin: plan.origin.clone(),
                source,
            })?;
        let (name, text) = named(&sources.policy, "policy.toml", EMBEDDED_POLICY);
        let policy = Policy::load(&SourceText::new(name, text), &network, &allocation)
            .map_err(ModelError::Policy)?;
        let index = allocation.index();
        Ok(Model {
            network,
            plan,
            allocation,
            policy,
            index,
            sources: sources.clone(),
        })
    }
}

/// The bundle's text under `bundle/NAME`, or the embedded default under `embedded/NAME`.
fn named<'a>(given: &'a Option<String>, name: &str, embedded: &'a str) -> (String, &'a str) {
    match given {
        Some(text) => (format!("bundle/{name}"), text),
        None => (format!("embedded/{name}"), embedded),
    }
}

impl Cache {
    fn find(&mut self, key: u64, sources: &ModelSources) -> Option<Arc<Model>> {
        let entries = self.live.get_mut(&key)?;
        entries.retain(|weak| weak.strong_count() > 0);
        let found = entries
            .iter()
            .filter_map(Weak::upgrade)
            .find(|model| model.sources == *sources);
        if entries.is_empty() {
            self.live.remove(&key);
        }
        found
    }

    fn insert(&mut self, key: u64, model: &Arc<Model>) {
        // Forget models nobody holds any more, so the map stays as small as what is in use.
        self.live.retain(|_, entries| {
            entries.retain(|weak| weak.strong_count() > 0);
            !entries.is_empty()
        });
        self.live
            .entry(key)
            .or_default()
            .push(Arc::downgrade(model));
        self.recent.push_front(Arc::clone(model));
        self.recent.truncate(KEEP_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_filters_move_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Model>();
        shared::<ModelError>();
        shared::<crate::filter::ZoneFilter>();
    }

    #[test]
    fn the_national_model_is_loaded_once_and_shared() {
        let a = Model::national().unwrap();
        let b = Model::load(&ModelSources::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.network.nodes().len() > 40_000);
        assert_eq!(a.policy.origin, "embedded/policy.toml");
        let taiyuan = a.network.lookup(&"dc:1401".parse().unwrap()).unwrap();
        let owner = a.index.owner("10.32.64.65".parse().unwrap()).unwrap();
        assert_eq!(owner.node, taiyuan);
    }

    #[test]
    fn the_same_texts_share_a_model_and_other_texts_do_not() {
        let given = ModelSources {
            policy: Some(EMBEDDED_POLICY.to_owned()),
            ..ModelSources::default()
        };
        let a = Model::load(&given).unwrap();
        let b = Model::load(&given.clone()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.policy.origin, "bundle/policy.toml");
        let national = Model::national().unwrap();
        assert!(!Arc::ptr_eq(&a, &national));
        assert_eq!(a.sources(), &given);
    }

    #[test]
    fn a_broken_policy_names_the_bundle_file_and_line() {
        let policy = EMBEDDED_POLICY.replacen("proto = \"tcp\"", "proto = \"tcpx\"", 1);
        let err = Model::load(&ModelSources {
            policy: Some(policy),
            ..ModelSources::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModelError::Policy(_)), "{text}");
        assert!(text.contains("bundle/policy.toml:25:"), "{text}");
    }

    #[test]
    fn a_policy_whose_test_fails_is_refused_with_the_test_line() {
        // Let the WAN reach production: the policy's own test must catch it.
        let policy = EMBEDDED_POLICY.replacen(
            "to = \"production\"\nscope = \"same-site\"",
            "to = \"production\"\nscope = \"child\"",
            1,
        );
        assert_ne!(policy, EMBEDDED_POLICY);
        let err = Model::build(&ModelSources {
            policy: Some(policy),
            ..ModelSources::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("production is never reachable"), "{text}");
        assert!(text.contains("bundle/policy.toml:"), "{text}");
    }

    #[test]
    fn a_broken_plan_and_network_name_their_files() {
        let plan =
            EMBEDDED_PLAN.replacen("supernet = \"10.0.0.0/8\"", "supernet = \"10.0.0.0/33\"", 1);
        let err = Model::build(&ModelSources {
            plan: Some(plan),
            ..ModelSources::default()
        })
        .unwrap_err();
        assert!(matches!(err, ModelError::Plan(_)), "{err}");
        assert!(err.to_string().contains("bundle/plan.toml:"), "{err}");
        let err = Model::build(&ModelSources {
            network: Some("version = 2\n".to_owned()),
            ..ModelSources::default()
        })
        .unwrap_err();
        assert!(matches!(err, ModelError::Network(_)), "{err}");
        assert!(err.to_string().contains("bundle/network.toml:1"), "{err}");
    }
}
