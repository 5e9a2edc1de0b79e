//! `jinbao-controller policy …`: check a policy file, query reachability, print the matrix.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use topology::policy::reach::{Cell, sample_pairs};
use topology::policy::{Denial, Proto, Query, Verdict};
use topology::{NodeId, Tier, ZoneRef};

use super::model::{Files, Model};
use super::table;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check a policy file: syntax, the invariants, and the tests it carries. Exits 1 if
    /// the policy is refused.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Can node A, zone X reach node B, zone Y? Prints the rule that allows it or why not.
    /// Exits 0 when allowed, 1 when denied.
    Query {
        /// Source node (e.g. dc:1401, site:140105:window-01).
        from: NodeId,
        /// Source zone (e.g. exchange, or public:exchange to pin the plane).
        from_zone: ZoneRef,
        /// Destination node.
        to: NodeId,
        /// Destination zone.
        to_zone: ZoneRef,
        /// Protocol: tcp, udp or icmp.
        #[arg(long, default_value_t = Proto::Tcp)]
        proto: Proto,
        /// Destination port (tcp and udp).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Print the zone-to-zone matrix for every pair of tiers and how they relate
    /// (parent, sibling, …), from representative nodes.
    Matrix {
        /// Only matrices whose source is at this tier.
        #[arg(long, value_name = "TIER")]
        from: Option<Tier>,
        /// Only matrices whose destination is at this tier.
        #[arg(long, value_name = "TIER")]
        to: Option<Tier>,
    },
}

pub(crate) fn run(command: PolicyCommand, files: &Files, out: &mut dyn Write) -> Result<ExitCode> {
    let model = Model::load(files)?;
    match command {
        PolicyCommand::Check { file } => {
            let outcome = model.policy(Some(&file));
            Ok(match outcome {
                Ok(policy) => {
                    writeln!(
                        out,
                        "{}: accepted — {} rules, {} soft-exchange gateway(s), {} tests passed",
                        file.display(),
                        policy.rules().len(),
                        policy.soft_exchanges().len(),
                        policy.tests().len()
                    )?;
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    writeln!(out, "{problems}")?;
                    writeln!(out, "{}: refused", file.display())?;
                    ExitCode::FAILURE
                }
            })
        }
        PolicyCommand::Query {
            from,
            from_zone,
            to,
            to_zone,
            proto,
            port,
        } => {
            let policy = model
                .policy(files.policy.as_deref())
                .map_err(anyhow::Error::msg)
                .context("policy refused")?;
            let network = &model.network;
            let a = network
                .lookup(&from)
                .with_context(|| format!("no node {from} in the network"))?;
            let b = network
                .lookup(&to)
                .with_context(|| format!("no node {to} in the network"))?;
            let query = Query::new(a, from_zone, b, to_zone, proto, port);
            let (from_plane, to_plane) = query.planes();
            let service = port.map_or(proto.to_string(), |p| format!("{proto}/{p}"));
            let flow = format!(
                "{from} {from_plane}:{} → {to} {to_plane}:{} {service} ({}: {} → {})",
                from_zone.zone,
                to_zone.zone,
                network.relation(a, b),
                network.node(a).name,
                network.node(b).name
            );
            Ok(match policy.decide(network, &model.allocation, &query) {
                Verdict::Allow(rule) => {
                    writeln!(out, "allow  {flow}")?;
                    writeln!(
                        out,
                        "       by {rule}: {} → {}, {}, {}",
                        rule.from,
                        rule.to,
                        rule.scope,
                        rule.service()
                    )?;
                    ExitCode::SUCCESS
                }
                Verdict::Deny(Denial::NoRule {
                    from,
                    to,
                    relation,
                    near_misses,
                }) => {
                    let head = Denial::NoRule {
                        from,
                        to,
                        relation,
                        near_misses: Vec::new(),
                    };
                    writeln!(out, "deny   {flow}")?;
                    writeln!(out, "       {head}")?;
                    for miss in near_misses {
                        writeln!(out, "       {miss}")?;
                    }
                    ExitCode::FAILURE
                }
                Verdict::Deny(denial) => {
                    writeln!(out, "deny   {flow}")?;
                    writeln!(out, "       {denial}")?;
                    ExitCode::FAILURE
                }
            })
        }
        PolicyCommand::Matrix { from, to } => {
            let policy = model
                .policy(files.policy.as_deref())
                .map_err(anyhow::Error::msg)
                .context("policy refused")?;
            let network = &model.network;
            writeln!(
                out,
                "Zone matrix of {} (· denied, ╳ other plane, relay = soft exchange)\n",
                policy.origin
            )?;
            for (a, b) in sample_pairs(network) {
                let (node_a, node_b) = (network.node(a), network.node(b));
                if from.is_some_and(|t| t != node_a.tier) || to.is_some_and(|t| t != node_b.tier) {
                    continue;
                }
                let matrix = policy.matrix(network, &model.allocation, a, b);
                writeln!(
                    out,
                    "{} → {} ({}), e.g. {} {} → {} {}",
                    node_a.tier,
                    node_b.tier,
                    matrix.relation,
                    node_a.id,
                    node_a.name,
                    node_b.id,
                    node_b.name
                )?;
                let columns: Vec<String> = matrix
                    .columns
                    .iter()
                    .map(|(p, z)| format!("{p}:{z}"))
                    .collect();
                let mut header = vec!["from \\ to"];
                header.extend(columns.iter().map(String::as_str));
                let mut rows = table::new(&header, &[]);
                for ((plane, zone), cells) in matrix.rows.iter().zip(&matrix.cells) {
                    let mut row = vec![format!("{plane}:{zone}")];
                    row.extend(cells.iter().map(Cell::to_string));
                    rows.add_row(row);
                }
                writeln!(out, "{}\n", table::render(&rows))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
