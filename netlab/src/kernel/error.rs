//! Why a kernel lab could not start or do something.

use std::process::{ExitStatus, Output};
use std::time::Duration;

use topology::NodeId;

use super::MAX_NODES;

/// Why a kernel lab could not start or do something.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// This host cannot run kernel mode (not root, no `ip`, no `/dev/net/tun`, or the
    /// kernel refused a namespace or a TUN device). Tests skip on it.
    #[error("kernel mode is not available here: {0}")]
    Unavailable(String),
    /// No nodes were given.
    #[error("a kernel lab needs at least one node")]
    NoNodes,
    /// More than [`MAX_NODES`] nodes.
    #[error("{0} nodes: a kernel lab has at most {MAX_NODES}")]
    TooManyNodes(usize),
    /// A node the network does not have.
    #[error("{0} is not a node of the network")]
    UnknownNode(NodeId),
    /// A node given twice.
    #[error("{0} is given twice")]
    Duplicate(NodeId),
    /// The nodes are not one tree: more than one of them has no parent among them.
    #[error(
        "the nodes are not one tree: {} have no parent among them (add the nodes between them)",
        list(tops)
    )]
    NotATree {
        /// The nodes without a parent in the lab.
        tops: Vec<NodeId>,
    },
    /// A node the lab does not have.
    #[error("{0} is not in this kernel lab")]
    NotInLab(NodeId),
    /// The model (plan, network, policy).
    #[error("model: {0}")]
    Model(String),
    /// The agent or controller executables.
    #[error("binaries: {0}")]
    Binaries(String),
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it said (stderr, else stdout), trimmed.
        output: String,
    },
    /// A process the lab runs stopped.
    #[error("{what} exited ({status}); its log:\n{log}")]
    Exited {
        /// The process.
        what: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {after:?}\n{diagnostics}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
        /// The lab's state and logs.
        diagnostics: String,
    },
    /// Files in the scratch directory.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A node's status could not be read.
    #[error("status of {node}: {reason}")]
    Status {
        /// The node.
        node: NodeId,
        /// Why.
        reason: String,
    },
}

impl KernelError {
    /// Whether this host cannot run kernel mode at all (a reason to skip, not a failure).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KernelError::Unavailable(_))
    }

    pub(super) fn command(command: &str, output: &Output) -> KernelError {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = if stderr.trim().is_empty() {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        } else {
            stderr.trim().to_owned()
        };
        KernelError::Command {
            command: command.to_owned(),
            status: output.status,
            output: text,
        }
    }

    pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KernelError {
        let what = what.into();
        move |source| KernelError::Io { what, source }
    }
}

fn list(nodes: &[NodeId]) -> String {
    let names: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    names.join(", ")
}
