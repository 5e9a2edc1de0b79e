//! `jinbao-controller init`, `serve`, `node …` and `config …`: the controller directory, the
//! running service, and the changes an engineer makes from the controller's own host.
//!
//! Commands here work on the store directly (SQLite allows a running `serve` and a command
//! on the same directory at once); the running service notices every change through the
//! change log and carries it to the agents. They sign the change log as `local:<user>`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use controller::server::{self, Controller};
use controller::store::Store;
use pki::AuthorityScope;
use pki::store::CaDir;
use topology::NodeId;

use super::model::{Files, Model};

/// `node …`.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Make a one-time enrollment token for a node (printed once; only its hash is kept).
    Token {
        /// The node, e.g. `dc:1401`.
        node: NodeId,
        /// How long it is valid (e.g. 1h, 30m, 2d).
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
    },
    /// The enrolled nodes.
    List,
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Publish a zone policy to every agent (checked first, like `policy check`).
    Policy {
        /// The policy file.
        file: PathBuf,
    },
    /// Set the SNMP inventory (underlay routers and MCUs to poll; TOML, `[[device]]`
    /// tables); the running controller polls it from its next start.
    Snmp {
        /// The inventory file.
        file: PathBuf,
    },
}

/// `init`: the CAs, the controller's certificate and the store.
pub(crate) fn init(
    dir: &Path,
    files: &Files,
    addresses: &[IpAddr],
    names: &[String],
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let model = Model::load(files)?;
    let controller::setup::Initialised { root, created } = controller::setup::init(
        dir,
        &model.network,
        &model.allocation,
        names,
        addresses,
        &local_user(),
        now,
    )?;
    let ca = CaDir::at(dir);
    writeln!(
        out,
        "controller directory {}: national root, ministry CA and {created} more CAs, the controller certificate, the store",
        dir.display()
    )?;
    writeln!(
        out,
        "root SHA-256 fingerprint (give agents {} and compare this out of band):\n  {}",
        ca.certificate_path(AuthorityScope::Root).display(),
        pki::authority::fingerprint(root.certificate())
    )?;
    writeln!(out, "next: jinbao-controller serve --dir {}", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

/// `serve`: the HTTPS service until SIGTERM or Ctrl-C.
pub(crate) fn serve(
    dir: &Path,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let controller = Controller::open(dir)
            .with_context(|| format!("controller directory {}", dir.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        let local = listener.local_addr()?;
        eprintln!("jinbao-controller serving on https://{local} (mutual TLS)");
        if let Some(metrics) = metrics {
            let listener = tokio::net::TcpListener::bind(metrics)
                .await
                .with_context(|| format!("metrics on {metrics}"))?;
            eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
            let router = server::monitor::metrics_router(std::sync::Arc::clone(&controller));
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::warn!(%err, "metrics listener");
                }
            });
        }
        controller
            .serve(listener, agent::runtime::shutdown_signal())
            .await?;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `node …`.
pub(crate) fn node(
    command: NodeCommand,
    dir: &Path,
    files: &Files,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = open(dir)?;
    match command {
        NodeCommand::Token { node, ttl } => {
            let model = Model::load(files)?;
            if model.network.lookup(&node).is_none() {
                bail!("{node} is not a node of the network");
            }
            let who = local_user();
            let token = store.write(|tx| tx.create_token(&node, ttl.into(), now, &who))?;
            writeln!(out, "{}", token.token)?;
            writeln!(
                out,
                "one-time token for {node}, valid for {ttl}; on the node:\n  jinbao-agent enroll --controller ADDR --node {node} --root root.pem --listen business=ADDR --token {}",
                token.token
            )?;
        }
        NodeCommand::List => {
            for record in store.read(|tx| tx.nodes())? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    record.node, record.plane, record.listen, record.serial
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `config …`.
pub(crate) fn config(command: ConfigCommand, dir: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    let store = open(dir)?;
    match command {
        ConfigCommand::Policy { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let sources = agent::control::ModelSources {
                policy: Some(text.clone()),
                ..Default::default()
            };
            agent::model::Model::load(&sources)
                .with_context(|| format!("{} is not usable", file.display()))?;
            let who = local_user();
            store.write(|tx| tx.set_setting("policy", &text, &who))?;
            writeln!(
                out,
                "published {}; every agent gets it with its next bundle",
                file.display()
            )?;
        }
        ConfigCommand::Snmp { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let inventory = controller::snmp::parse_inventory(&file.display().to_string(), &text)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let who = local_user();
            store.write(|tx| tx.set_setting("snmp-inventory", &text, &who))?;
            writeln!(
                out,
                "SNMP inventory of {} device(s) kept; restart serve to poll it",
                inventory.devices.len()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn open(dir: &Path) -> Result<Store> {
    let database = dir.join("controller.db");
    if !database.exists() {
        bail!(
            "{} is not a controller directory (run jinbao-controller init --dir {} first)",
            dir.display(),
            dir.display()
        );
    }
    Ok(Store::open(&database)?)
}

/// The controller store of `dir`, if `dir` is a controller directory (the CA commands also
/// work on a CA directory alone).
pub(crate) fn controller_store(dir: &Path) -> Result<Option<Store>> {
    let database = dir.join("controller.db");
    if !database.exists() {
        return Ok(None);
    }
    Ok(Some(Store::open(&database)?))
}

/// Who a command on this host acts as, in the change log.
pub(crate) fn local_user() -> String {
    format!(
        "local:{}",
        std::env::var("USER").unwrap_or_else(|_| "root".into())
    )
}
