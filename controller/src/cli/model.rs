//! Loading the national model — network, plan, allocation, policy — from the embedded
//! defaults or the user's files, with file:line errors for anything wrong in them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use topology::network::EMBEDDED_NETWORK_FILE;
use topology::plan::{Allocation, EMBEDDED_PLAN};
use topology::policy::EMBEDDED_POLICY;
use topology::{Divisions, Network, Plan, Policy, SourceText};

/// The files named on the command line; `None` means the embedded default.
#[derive(Debug, Clone, Default)]
pub(crate) struct Files {
    pub(crate) plan: Option<PathBuf>,
    pub(crate) network: Option<PathBuf>,
    pub(crate) policy: Option<PathBuf>,
}

/// A file's name (as given) and text.
pub(crate) fn read(path: &Path) -> Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// The named file, or the embedded default under the name `embedded/NAME`.
fn read_or_embedded(path: Option<&Path>, name: &str, embedded: &str) -> Result<(String, String)> {
    match path {
        Some(path) => read(path),
        None => Ok((format!("embedded/{name}"), embedded.to_owned())),
    }
}

/// The network, the plan and every node's blocks.
pub(crate) struct Model {
    pub(crate) network: Network,
    pub(crate) plan: Plan,
    pub(crate) allocation: Allocation,
}

impl Model {
    pub(crate) fn load(files: &Files) -> Result<Model> {
        let divisions = Divisions::embedded().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (name, text) = read_or_embedded(
            files.network.as_deref(),
            "network.toml",
            EMBEDDED_NETWORK_FILE,
        )?;
        let network = Network::build(&divisions, &SourceText::new(name.as_str(), &text))
            .map_err(|problems| anyhow::anyhow!("the network file is not usable:\n{problems}"))?;
        let (name, text) = read_or_embedded(files.plan.as_deref(), "plan.toml", EMBEDDED_PLAN)?;
        let plan = Plan::parse(&SourceText::new(name.as_str(), &text))
            .map_err(|problems| anyhow::anyhow!("the plan is not usable:\n{problems}"))?;
        let allocation = plan
            .allocate(&network)
            .with_context(|| format!("plan {}", plan.origin))?;
        tracing::debug!(nodes = network.nodes().len(), "model loaded");
        Ok(Model {
            network,
            plan,
            allocation,
        })
    }

    /// Loads and checks a policy (invariants and its own tests) against this model.
    pub(crate) fn policy(&self, path: Option<&Path>) -> Result<Policy, String> {
        let (name, text) =
            read_or_embedded(path, "policy.toml", EMBEDDED_POLICY).map_err(|e| format!("{e:#}"))?;
        Policy::load(
            &SourceText::new(name.as_str(), &text),
            &self.network,
            &self.allocation,
        )
        .map_err(|problems| problems.to_string())
    }
}
