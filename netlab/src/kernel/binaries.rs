//! Where the real `jinbao-agent` and `jinbao-controller` executables are.
//!
//! An integration test of netlab cannot name another package's binaries
//! (`CARGO_BIN_EXE_*` covers only its own), so [`Binaries::for_tests`] looks in the profile
//! directory the test executable was built into (`target/debug/deps/kernel-…` →
//! `target/debug/`), where `cargo test --workspace` has just linked every workspace binary.
//! When they are missing (`cargo test -p netlab`) or older than the sources they are built
//! from, it builds them there with the cargo that runs the tests; if that build fails,
//! binaries already there are used, with a warning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use super::KernelError;

/// The agent's executable name.
pub const AGENT: &str = "jinbao-agent";
/// The controller's executable name.
pub const CONTROLLER: &str = "jinbao-controller";
/// Overrides [`Binaries::for_tests`]: the agent executable to use.
pub const AGENT_ENV: &str = "JINBAO_AGENT_BIN";
/// Overrides [`Binaries::for_tests`]: the controller executable to use.
pub const CONTROLLER_ENV: &str = "JINBAO_CONTROLLER_BIN";

/// The workspace crates the two binaries are built from.
const SOURCES: [&str; 4] = ["topology", "pki", "agent", "controller"];
/// Directories of those crates that do not go into the binaries.
const NOT_SOURCES: [&str; 5] = ["tests", "benches", "fuzz", "target", "snapshots"];

/// The two executables a kernel lab runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `jinbao-agent`.
    pub agent: PathBuf,
    /// `jinbao-controller`.
    pub controller: PathBuf,
}

impl Binaries {
    /// Both executables in `dir`; an error names the one missing.
    pub fn in_dir(dir: &Path) -> Result<Binaries, KernelError> {
        let binaries = Binaries {
            agent: dir.join(AGENT),
            controller: dir.join(CONTROLLER),
        };
        binaries.check()?;
        Ok(binaries)
    }

    /// For tests: [`AGENT_ENV`] and [`CONTROLLER_ENV`] when both are set; else the binaries
    /// in the running test executable's profile directory, built there first (with
    /// `$CARGO build --bins -p agent -p controller`) when missing or older than their
    /// sources. When that build fails and older binaries are there, those are used (with
    /// a warning on stderr).
    pub fn for_tests() -> Result<Binaries, KernelError> {
        if let (Some(agent), Some(controller)) = (
            std::env::var_os(AGENT_ENV),
            std::env::var_os(CONTROLLER_ENV),
        ) {
            let binaries = Binaries {
                agent: agent.into(),
                controller: controller.into(),
            };
            binaries.check()?;
            return Ok(binaries);
        }
        let exe = std::env::current_exe()
            .map_err(|e| KernelError::Binaries(format!("the test executable: {e}")))?;
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
            .and_then(Path::parent)
            .ok_or_else(|| {
                KernelError::Binaries(format!(
                    "{} is not in a cargo profile directory (…/deps/); set {AGENT_ENV} and \
                     {CONTROLLER_ENV}",
                    exe.display()
                ))
            })?;
        let binaries = Binaries {
            agent: profile_dir.join(AGENT),
            controller: profile_dir.join(CONTROLLER),
        };
        let workspace = workspace_root();
        if !binaries.fresh(&workspace)
            && let Err(err) = build(&workspace, profile_dir)
        {
            // A tree being edited may not build this minute: older binaries still test the
            // kernel path, and say so.
            if binaries.check().is_err() {
                return Err(err);
            }
            tracing::warn!(%err, "using the older binaries");
            eprintln!(
                "kernel lab: using the older {AGENT} and {CONTROLLER} in {}: {err}",
                profile_dir.display()
            );
        }
        binaries.check()?;
        Ok(binaries)
    }

    fn check(&self) -> Result<(), KernelError> {
        for path in [&self.agent, &self.controller] {
            if !path.is_file() {
                return Err(KernelError::Binaries(format!(
                    "{} does not exist (cargo build --bins -p agent -p controller)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Both exist and are newer than every source file they are built from.
    fn fresh(&self, workspace: &Path) -> bool {
        let built = [&self.agent, &self.controller]
            .iter()
            .map(|p| p.metadata().and_then(|m| m.modified()).ok())
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min());
        let Some(built) = built else { return false };
        let mut newest = SystemTime::UNIX_EPOCH;
        for file in ["Cargo.toml", "Cargo.lock"] {
            newest = newest.max(modified(&workspace.join(file)));
        }
        for krate in SOURCES {
            newest = newest.max(newest_under(&workspace.join(krate)));
        }
        built >= newest
    }
}

/// The workspace this crate was compiled in.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// Builds both binaries into `profile_dir` (`<target>/<profile>`).
fn build(workspace: &Path, profile_dir: &Path) -> Result<(), KernelError> {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let target_dir = profile_dir.parent().unwrap_or(profile_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    tracing::info!(profile, target = %target_dir.display(), "building jinbao-agent and jinbao-controller");
    eprintln!(
        "kernel lab: building {AGENT} and {CONTROLLER} ({profile} profile) into {}",
        profile_dir.display()
    );
    let output = Command::new(&cargo)
        .current_dir(workspace)
        .args(["build", "--bins", "-p", "agent", "-p", "controller"])
        .args(["--profile", &profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .map_err(|e| {
            KernelError::Binaries(format!("cannot run {}: {e}", Path::new(&cargo).display()))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(KernelError::Binaries(format!(
            "cargo build of the agent and the controller failed ({}):\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    Ok(())
}

fn modified(path: &Path) -> SystemTime {
    path.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The newest modification time of a file under `dir`, skipping [`NOT_SOURCES`], hidden
/// entries and Markdown (none of which is compiled).
fn newest_under(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || name.ends_with(".md")
                || NOT_SOURCES.contains(&name.as_ref())
            {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                newest = newest.max(modified(&entry.path()));
            }
        }
    }
    newest
}
