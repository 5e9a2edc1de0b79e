//! `jinbao-agent`: the node agent's command line.
//!
//! The node's identity — `keys generate` makes its keys where they will be used, `csr`
//! writes the certificate request its province CA signs (`jinbao-controller cert issue`);
//! `run` brings the overlay up from a config bundle (with `--tun`, as kernel devices the
//! host's traffic goes through), `show` prints a running agent's state
//! the way `wg show` does. `enroll` joins a node to the controller with a one-time token
//! (the keys stay here; only CSRs travel), after which `run --controller` starts from the
//! last good bundle and follows the controller for newer ones.

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
    /// Enroll with the controller: make the keys, send a certificate request per plane with
    /// the one-time token, keep the certificates' bundle (DIR/bundle.json) and the root.
    Enroll {
        /// The controller's address.
        #[arg(long, value_name = "ADDR")]
        controller: std::net::SocketAddr,
        /// The one-time token (`jinbao-controller node token`).
        #[arg(long, env = "JINBAO_TOKEN", hide_env_values = true)]
        token: String,
        /// This node, e.g. `dc:1401` (the token is for one node).
        #[arg(long)]
        node: NodeId,
        /// The national root certificate (PEM), given with the token; compare its
        /// fingerprint out of band.
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
        /// A plane and the underlay address its instance listens on: `business=ADDR`;
        /// repeat per plane.
        #[arg(long, value_name = "PLANE=ADDR", required = true)]
        listen: Vec<PlaneAddress>,
        /// A plane's second underlay address (a second carrier): `business=ADDR`.
        #[arg(long, value_name = "PLANE=ADDR")]
        backup_listen: Vec<PlaneAddress>,
    },
    /// Run the overlay until SIGTERM or Ctrl-C: from a config bundle file (`--config`), or
    /// from the enrolled node's last good bundle in DIR, following the controller
    /// (`--controller`) for newer ones and reporting health to it.
    Run {
        /// The config bundle (TOML, or JSON when it ends in .json); default: DIR/bundle.json
        /// from enrollment.
        #[arg(long, value_name = "FILE", conflicts_with = "controller")]
        config: Option<PathBuf>,
        /// Follow this controller (an enrolled node; keeps forwarding when it is away).
        #[arg(long, value_name = "ADDR")]
        controller: Option<std::net::SocketAddr>,
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

/// `PLANE=ADDR`.
#[derive(Debug, Clone, Copy)]
struct PlaneAddress {
    plane: Plane,
    addr: std::net::SocketAddr,
}

impl std::str::FromStr for PlaneAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (plane, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected PLANE=ADDR, e.g. business=0.0.0.0:51820"))?;
        Ok(PlaneAddress {
            plane: plane.parse().map_err(|e| format!("`{plane}`: {e}"))?,
            addr: addr.parse().map_err(|e| format!("`{addr}`: {e}"))?,
        })
    }
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
        Command::Enroll {
            controller,
            token,
            node,
            root,
            listen,
            backup_listen,
        } => {
            let planes = listen
                .iter()
                .map(|l| agent::follow::Listen {
                    plane: l.plane,
                    listen: l.addr,
                    backup: backup_listen
                        .iter()
                        .find(|b| b.plane == l.plane)
                        .map(|b| b.addr),
                })
                .collect::<Vec<_>>();
            let bundle = run::enroll(&cli.dir, controller, &token, node, &root, &planes)?;
            for plane in &bundle.planes {
                writeln!(
                    out,
                    "enrolled {node} on the {} plane: {} peer(s), config version {}",
                    plane.plane,
                    plane.peers.len(),
                    bundle.version
                )?;
            }
            writeln!(
                out,
                "next: jinbao-agent --dir {} run --controller {controller}",
                cli.dir.display()
            )?;
        }
        Command::Run {
            config,
            controller,
            metrics,
            tun,
        } => run::run(&cli.dir, config.as_deref(), controller, metrics, tun)?,
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
