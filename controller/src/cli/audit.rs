//! `jinbao-controller audit …`: the isolation audit for security officers — run it on the
//! controller's current policy, plan and network; print a kept report as Markdown, JSON or
//! HTML; verify any report file with the national root certificate alone.
//!
//! Exit codes: `run` 0 when the audit passed, 1 when it found something; `verify` 0 when
//! the signature holds, 1 when it does not (tampered, forged, or signed under another
//! root); 2 for a command that cannot be carried out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use controller::audit::{self, SignedReport};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::serve::{local_user, open};

/// `audit …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Audit the policy in force: every tier relation covered (every pair on a small
    /// network); sign the report and keep it under DIR/audits.
    Run {
        /// Audit this many more node pairs, drawn evenly over the network.
        #[arg(long, value_name = "N", default_value_t = 0)]
        scenario_sample: usize,
        /// Also probe through the agents: asks the running controller at --controller
        /// (as the operator of --cert and --key: an auditor or an engineer).
        #[arg(long, requires_all = ["controller", "cert", "key"])]
        live: bool,
        /// The running controller's admin API, for --live.
        #[arg(long, value_name = "ADDR")]
        controller: Option<std::net::SocketAddr>,
        /// Your operator certificate (chain), for --live.
        #[arg(long, value_name = "PEM")]
        cert: Option<PathBuf>,
        /// Your operator key, for --live.
        #[arg(long, value_name = "PEM")]
        key: Option<PathBuf>,
    },
    /// Print a kept report.
    Report {
        /// The report's number (`audit run` prints it).
        id: u64,
        /// md, json or html.
        #[arg(long, default_value = "md")]
        format: String,
    },
    /// Check a report file's signature with the root certificate and say what it states.
    Verify {
        /// The report file (DIR/audits/N.json, or a copy).
        report: PathBuf,
        /// The national root certificate (default DIR/ca/root.pem).
        #[arg(long, value_name = "PEM")]
        root: Option<PathBuf>,
    },
}

/// Asks the running controller for a live audit (`POST /v1/audits`) as an operator.
fn live_run(
    dir: &Path,
    controller: std::net::SocketAddr,
    cert: &Path,
    key: &Path,
    scenario_sample: usize,
) -> Result<audit::Report> {
    let mut session =
        agent::client::operator_session(controller, &dir.join("ca/root.pem"), cert, key)?
            .with_limit(std::time::Duration::from_secs(120));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let order = serde_json::json!({ "scenario_sample": scenario_sample, "live": true });
    let report = runtime.block_on(session.post("/v1/audits", &order))?;
    Ok(report)
}

/// Runs an `audit` command.
pub(crate) fn run(
    command: AuditCommand,
    dir: &Path,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    match command {
        AuditCommand::Run {
            scenario_sample,
            live,
            controller,
            cert,
            key,
        } => {
            let report = match (live, controller, cert, key) {
                (true, Some(controller), Some(cert), Some(key)) => {
                    live_run(dir, controller, &cert, &key, scenario_sample)?
                }
                _ => {
                    let store = open(dir)?;
                    let sources = agent::control::ModelSources {
                        policy: store.read(|tx| tx.setting("policy"))?,
                        ..Default::default()
                    };
                    let model =
                        agent::model::Model::load(&sources).context("the model in force")?;
                    audit::run_and_keep(dir, &model, scenario_sample, &local_user(), now)?.0
                }
            };
            let path = audit::reports_dir(dir).join(format!("{}.json", report.id));
            writeln!(
                out,
                "audit #{}: {} — {}\npolicy sha256 {}\nplan sha256 {}\nsigned report: {}",
                report.id,
                report.coverage,
                if report.findings.is_empty() {
                    "passed, no findings".to_owned()
                } else {
                    format!("{} FINDINGS", report.findings.len())
                },
                report.policy_hash,
                report.plan_hash,
                path.display()
            )?;
            for f in &report.findings {
                writeln!(
                    out,
                    "  {}: {} → {} {}, allowed by {}",
                    f.kind,
                    f.source,
                    f.destination,
                    f.flow,
                    f.rule.as_deref().unwrap_or("no rule")
                )?;
                if let Some(evidence) = &f.evidence {
                    writeln!(out, "    {evidence}")?;
                }
            }
            Ok(if report.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Report { id, format } => {
            let signed = audit::read(dir, id)?;
            let report: audit::Report =
                serde_json::from_str(&signed.report).with_context(|| format!("report {id}"))?;
            let text = match format.as_str() {
                "md" => audit::markdown(&report),
                "json" => serde_json::to_string_pretty(&signed)?,
                "html" => audit::html(&report),
                other => bail!("unknown format `{other}` (md, json or html)"),
            };
            out.write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { report, root } => {
            let root = root.unwrap_or_else(|| dir.join("ca/root.pem"));
            let root_pem = std::fs::read(&root)
                .with_context(|| format!("cannot read the root certificate {}", root.display()))?;
            let root = CertificateDer::from_pem_slice(&root_pem)
                .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", root.display()))?;
            let name = report.display().to_string();
            let text =
                std::fs::read_to_string(&report).with_context(|| format!("cannot read {name}"))?;
            match SignedReport::parse(&name, &text).and_then(|signed| signed.open(&root)) {
                Ok(report) => {
                    writeln!(
                        out,
                        "{name}: signature valid (the controller, under this root)\n\
                         audit #{} at {} by {}: {}\npolicy {} sha256 {}\nplan sha256 {}\nnetwork sha256 {}\ncoverage: {}\nfindings: {}",
                        report.id,
                        controller::health::rfc3339::format(report.at),
                        report.by,
                        if report.findings.is_empty() {
                            "passed"
                        } else {
                            "FAILED"
                        },
                        report.policy,
                        report.policy_hash,
                        report.plan_hash,
                        report.network_hash,
                        report.coverage,
                        report.findings.len()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    writeln!(out, "{name}: NOT VALID: {err}")?;
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
