//! `jinbao-controller`: the controller's command line.
//!
//! Today: the national model, IP plan and zone policy (`plan …`, `policy …`), answered from
//! the embedded defaults or the files given with `--plan`, `--network` and `--policy`; and
//! the CAs (`ca …`, `cert …`, `crl …`), kept in the controller directory `--dir`; and the
//! controller itself (`init`, `serve`, `node …`, `config …`, `conf …`, `audit …`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{audit, ca, cert, conf, crl, plan, policy, serve};

/// Jinbao WAN controller (金保工程 secure WAN).
#[derive(Debug, Parser)]
#[command(name = "jinbao-controller", version, about, long_about = None)]
struct Cli {
    /// IP plan file (default: the embedded national plan, topology/defaults/plan.toml).
    #[arg(long, global = true, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Network file with link profiles, DR and endpoint sites (default: embedded).
    #[arg(long, global = true, value_name = "FILE")]
    network: Option<PathBuf>,
    /// Zone policy file (default: the embedded national policy).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The controller directory (CAs under DIR/ca).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "JINBAO_DIR",
        default_value = "/var/lib/jinbao"
    )]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The IP plan: show it, export it, check device registrations against it.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// The zone policy: check a policy file, query reachability, print the zone matrix.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The certificate authorities: national root, ministry and province CAs.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Node and operator certificates: issue from a request, revoke, list.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// The CAs' revocation lists: show, publish the next ones.
    #[command(subcommand)]
    Crl(crl::CrlCommand),
    /// Make a controller directory: the CAs (root, ministry, every province), the
    /// controller's own certificate, the store.
    Init {
        /// IP addresses for its certificate (inside the ministry's blocks; agents identify the
        /// controller by its certificate's identity, not by the address they dial).
        #[arg(long = "address", value_name = "IP")]
        addresses: Vec<std::net::IpAddr>,
        /// More DNS names for its certificate.
        #[arg(long = "name", value_name = "DNS")]
        names: Vec<String>,
    },
    /// Run the controller: enrollment, config bundles, health, the admin API (HTTPS with
    /// mutual TLS), until SIGTERM or Ctrl-C.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: std::net::SocketAddr,
        /// Serve Prometheus metrics (plain HTTP, /metrics) here.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Nodes: enrollment tokens, the enrolled nodes.
    #[command(subcommand)]
    Node(serve::NodeCommand),
    /// Publish configuration to the agents.
    #[command(subcommand)]
    Config(serve::ConfigCommand),
    /// Video-conference bookings: file, approve, place (with preemption), cancel, list,
    /// and what is left to book on a link.
    #[command(subcommand)]
    Conf(conf::ConfCommand),
    /// The isolation audit: run it (signed report kept under DIR/audits), print a report,
    /// verify a report file with the root certificate.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
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
    let files = cli::model::Files {
        plan: cli.plan,
        network: cli.network,
        policy: cli.policy,
    };
    #[allow(clippy::disallowed_methods)] // the one clock read of a command
    let now = std::time::SystemTime::now();
    let dir = cli.dir.as_path();
    let mut out = std::io::stdout().lock();
    let outcome = match cli.command {
        Command::Plan(command) => plan::run(command, &files, &mut out),
        Command::Policy(command) => policy::run(command, &files, &mut out),
        Command::Ca(command) => ca::run(command, &files, dir, now, &mut out),
        Command::Cert(command) => cert::run(command, &files, dir, now, &mut out),
        Command::Crl(command) => crl::run(command, dir, now, &mut out),
        Command::Init { addresses, names } => {
            serve::init(dir, &files, &addresses, &names, now, &mut out)
        }
        Command::Serve { listen, metrics } => serve::serve(dir, listen, metrics),
        Command::Node(command) => serve::node(command, dir, &files, now, &mut out),
        Command::Config(command) => serve::config(command, dir, &mut out),
        Command::Conf(command) => conf::run(command, dir, &files, now, &mut out),
        Command::Audit(command) => audit::run(command, dir, now, &mut out),
    };
    match outcome {
        Ok(code) => code,
        // The reader went away (`… | head`): nothing more to say.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
