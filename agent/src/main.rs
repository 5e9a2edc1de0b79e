//! `jinbao-agent`: the node agent's command line.
//!
//! The node's identity — `keys generate` makes its keys where they will be used, `csr`
//! writes the certificate request its province CA signs (`jinbao-controller cert issue`);
//! `run` brings the overlay up from a config bundle (with `--tun`, as kernel devices the
//! host's traffic goes through), `show` prints a running agent's state
//! the way `wg show` does. Requests follow the embedded national plan; the controller's
//! enrollment (issue 5) will hand nodes their plan and push their bundles.

mod run;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use agent::identity::KeyDir;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pki::KeyAlgorithm;
use topology::{Network, NodeId, Plan, Plane, Zone};

/// Jinbao WAN node agent (金保工程 secure WAN).
#[derive(Debug, Parser)]
#[command(name = "jinbao-agent", version, about, long_about = None)]
struct Cli {
    /// Where the node keeps its keys.
    #[arg(long, global = true, value_name = "DIR", default_value = "/etc/jinbao")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write the node's certificate request for a plane (PEM, for `jinbao-controller cert
    /// issue --csr` or `openssl req -text`).
    Csr {
        /// The node, e.g. `dc:1401` or `site:140105:window-03`.
        #[arg(long)]
        node: NodeId,
        /// The plane the certificate is for.
        #[arg(long, default_value_t = Plane::Business)]
        plane: Plane,
        /// Only these zones (default: every zone the node has on the plane).
        #[arg(long, value_delimiter = ',')]
        zones: Option<Vec<Zone>>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run the overlay from a config bundle until SIGTERM or Ctrl-C.
    Run {
        /// The config bundle (TOML, or JSON when it ends in .json).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Serve Prometheus metrics (/metrics) and the status (/status) here.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9586")]
        metrics: std::net::SocketAddr,
        /// Carry this host's traffic: a TUN device per plane (`jb-<plane>`) with the node's
        /// zone addresses and a route for the plane's supernet (Linux; needs root or
        /// CAP_NET_ADMIN). Without it, packets the overlay delivers to this node are dropped.
        #[arg(long)]
        tun: bool,
    },
    /// Show a running agent's planes, peers, handshakes, transfer and health.
    Show {
        /// The agent's metrics address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9586")]
        agent: std::net::SocketAddr,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make the plane's WireGuard key and, if there is none, the TLS key (both 0600; never
    /// overwritten). Prints the WireGuard public key.
    Generate {
        /// The plane the WireGuard key is for.
        #[arg(long, default_value_t = Plane::Business)]
        plane: Plane,
        /// TLS key algorithm: p256 (default) or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: KeyAlgorithm,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let keys = KeyDir::new(&cli.dir);
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Keys(KeysCommand::Generate { plane, algorithm }) => {
            let made = keys.generate(plane, algorithm)?;
            if made.tls_key_created {
                eprintln!("created {} ({algorithm})", made.tls_key.display());
            } else {
                eprintln!("kept {}", made.tls_key.display());
            }
            eprintln!("created {} ({plane} plane)", made.wireguard_key.display());
            writeln!(out, "{}", made.wireguard_public)?;
        }
        Command::Csr {
            node,
            plane,
            zones,
            output,
        } => {
            let network = Network::national().context("the embedded national network")?;
            let allocation = Plan::embedded()
                .map_err(|problems| anyhow::anyhow!("the embedded plan: {problems}"))?
                .allocate(&network)
                .context("the embedded plan")?;
            let pem = keys.request(&network, &allocation, node, plane, zones.as_deref())?;
            match output {
                Some(path) => {
                    pki::files::replace(&path, pem.as_bytes(), pki::files::Secrecy::Public)?
                }
                None => out.write_all(pem.as_bytes())?,
            }
        }
        Command::Run {
            config,
            metrics,
            tun,
        } => run::run(&config, metrics, tun)?,
        Command::Show { agent, json } => {
            let status = run::fetch_status(agent)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
            } else {
                write!(out, "{}", agent::show::render(&status, None))?;
            }
        }
    }
    Ok(())
}
