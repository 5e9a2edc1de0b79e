//! What a kernel lab makes on the host — network namespaces, and processes inside them — and
//! its removal: [`Made`] removes everything it recorded when dropped (panics included), and
//! [`sweep_stale`] removes what a run killed before its Drop could run left behind.
//!
//! Names carry the process id of the run that made them (`jbk-<pid>-<n>-…`), so concurrent
//! test binaries never collide, and a leftover is recognised by a process id that no longer
//! exists.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::KernelError;

/// The prefix of every namespace a kernel lab makes.
pub const PREFIX: &str = "jbk-";
/// The prefix of every scratch directory (in the temporary directory) a kernel lab makes.
pub const SCRATCH_PREFIX: &str = "jinbao-kernel-";

/// `jbk-<pid>-<n>`: the stem of this lab's names, unique per process and lab.
pub(super) fn stem() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}", std::process::id())
}

/// `ip ARGS`, its output whatever the exit status.
pub(super) fn ip_output(args: &[&str]) -> Result<Output, KernelError> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KernelError::Spawn {
            command: format!("ip {}", args.join(" ")),
            source,
        })
}

/// `ip ARGS`, which must succeed.
pub(super) fn ip(args: &[&str]) -> Result<(), KernelError> {
    let output = ip_output(args)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(KernelError::command(
            &format!("ip {}", args.join(" ")),
            &output,
        ))
    }
}

/// A command that runs `program` inside the namespace `ns`.
pub(super) fn exec_in(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

/// The namespaces on the host.
fn namespaces() -> Vec<String> {
    let Ok(output) = ip_output(&["netns", "list"]) else {
        return Vec::new();
    };
    // "name (id: 3)" or "name"
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The process id in a name made by [`stem`] (`jbk-<pid>-…`, `jinbao-kernel-<pid>-…`).
fn owner(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Kills (SIGKILL) every process inside `ns`: a namespace lives on, unnamed, while a
/// process is in it.
fn kill_inside(ns: &str) {
    let Ok(output) = ip_output(&["netns", "pids", ns]) else {
        return;
    };
    let pids = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if pids.is_empty() {
        return;
    }
    tracing::debug!(ns, ?pids, "killing processes left in the namespace");
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn delete(ns: &str) {
    kill_inside(ns);
    match ip_output(&["netns", "del", ns]) {
        Ok(output) if output.status.success() => tracing::debug!(ns, "namespace removed"),
        Ok(output) => tracing::warn!(
            ns,
            reason = %String::from_utf8_lossy(&output.stderr).trim(),
            "could not remove the namespace"
        ),
        Err(err) => tracing::warn!(ns, %err, "could not remove the namespace"),
    }
}

/// Removes the namespaces (with the processes in them) and scratch directories of kernel
/// labs whose process is gone. Returns the namespaces removed.
pub fn sweep_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for ns in namespaces() {
        if let Some(pid) = owner(&ns, PREFIX).filter(|&pid| !alive(pid)) {
            tracing::info!(ns, pid, "removing a namespace a killed kernel lab left");
            delete(&ns);
            removed.push(ns);
        }
    }
    let temp = std::env::temp_dir();
    for entry in std::fs::read_dir(&temp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if owner(&name, SCRATCH_PREFIX).is_some_and(|pid| !alive(pid)) {
            tracing::info!(dir = %entry.path().display(), "removing a killed kernel lab's files");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    removed
}

/// A process the lab started.
pub(super) struct Process {
    pub label: String,
    pub child: Child,
}

/// Everything a lab made, removed on Drop in reverse: its processes (killed and reaped),
/// whatever else runs in its namespaces, the namespaces (and with them every device and
/// address in them), its scratch directory.
#[derive(Default)]
pub(super) struct Made {
    pub namespaces: Vec<String>,
    pub processes: Vec<Process>,
    pub scratch: Option<PathBuf>,
}

impl Made {
    /// `ip netns add NAME`, recorded for removal.
    pub fn add_namespace(&mut self, name: &str) -> Result<(), KernelError> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// Spawns `command` and keeps it for removal.
    pub fn spawn(&mut self, label: &str, mut command: Command) -> Result<&mut Child, KernelError> {
        let child = command.spawn().map_err(|source| KernelError::Spawn {
            command: format!("{command:?}"),
            source,
        })?;
        tracing::debug!(label, pid = child.id(), "started");
        self.processes.push(Process {
            label: label.to_owned(),
            child,
        });
        let last = self.processes.len() - 1;
        Ok(&mut self.processes[last].child)
    }

    /// The process with this label.
    pub fn process(&mut self, label: &str) -> Option<&mut Child> {
        self.processes
            .iter_mut()
            .find(|p| p.label == label)
            .map(|p| &mut p.child)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            delete(ns);
        }
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner("jbk-4242-0-ul", PREFIX), Some(4242));
        assert_eq!(owner("jbk-4242-3-dc-1401", PREFIX), Some(4242));
        assert_eq!(owner("jinbao-kernel-17-0", SCRATCH_PREFIX), Some(17));
        assert_eq!(owner("jbtest-agent-17", PREFIX), None);
        assert_eq!(owner("jbk-x-0-ul", PREFIX), None);
    }

    #[test]
    fn stems_are_unique_within_a_process() {
        assert_ne!(stem(), stem());
        assert!(stem().starts_with(&format!("{PREFIX}{}-", std::process::id())));
    }
}
