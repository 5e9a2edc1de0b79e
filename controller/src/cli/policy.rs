//! `jinbao-controller policy …`: check a policy file, query reachability, print the matrix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use topology::policy::reach::{Cell, sample_pairs};
use topology::policy::{Denial, Proto, Query, Verdict};
use topology::{NodeId, Policy, Tier, ZoneRef};

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
        PolicyCommand::Check { file } => check(&model, &file, out),
        PolicyCommand::Query {
            from,
            from_zone,
            to,
            to_zone,
            proto,
            port,
        } => {
            let policy = checked_policy(&model, files)?;
            let network = &model.network;
            let a = network
                .lookup(&from)
                .with_context(|| format!("no node {from} in the network"))?;
            let b = network
                .lookup(&to)
                .with_context(|| format!("no node {to} in the network"))?;
            query(
                &model,
                &policy,
                &Query::new(a, from_zone, b, to_zone, proto, port),
                out,
            )
        }
        PolicyCommand::Matrix { from, to } => {
            matrix(&model, &checked_policy(&model, files)?, from, to, out)
        }
    }
}

/// The policy given with `--policy` (or the embedded one), refused if it breaks anything.
fn checked_policy(model: &Model, files: &Files) -> Result<Policy> {
    model
        .policy(files.policy.as_deref())
        .map_err(anyhow::Error::msg)
        .context("policy refused")
}

fn check(model: &Model, file: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    Ok(match model.policy(Some(file)) {
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

/// Prints the verdict on one flow: the rule that allows it, or the reason and the rules
/// that nearly did, one per line.
fn query(model: &Model, policy: &Policy, query: &Query, out: &mut dyn Write) -> Result<ExitCode> {
    let network = &model.network;
    let (a, b) = (network.node(query.from), network.node(query.to));
    let (from_plane, to_plane) = query.planes();
    let service = query
        .port
        .map_or(query.proto.to_string(), |p| format!("{}/{p}", query.proto));
    let flow = format!(
        "{} {from_plane}:{} → {} {to_plane}:{} {service} ({}: {} → {})",
        a.id,
        query.from_zone.zone,
        b.id,
        query.to_zone.zone,
        network.relation(query.from, query.to),
        a.name,
        b.name
    );
    match policy.decide(network, &model.allocation, query) {
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
            Ok(ExitCode::SUCCESS)
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
            writeln!(out, "deny   {flow}\n       {head}")?;
            for miss in near_misses {
                writeln!(out, "       {miss}")?;
            }
            Ok(ExitCode::FAILURE)
        }
        Verdict::Deny(denial) => {
            writeln!(out, "deny   {flow}\n       {denial}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

fn matrix(
    model: &Model,
    policy: &Policy,
    from: Option<Tier>,
    to: Option<Tier>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
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
