//! `jinbao-controller plan …`: show, export and check the IP plan.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use topology::plan::inventory;
use topology::{
    DivisionCode, DivisionLevel, LinkLevel, Network, NodeId, NodeIx, Plane, SourceText, Tier,
};

use super::model::{self, Files, Model};
use super::table;

#[derive(Debug, Subcommand)]
pub(crate) enum PlanCommand {
    /// Show the plan: planes, node counts, and the blocks of provinces, cities or sites.
    Show {
        /// Only this province (2-digit code, e.g. 14 for 山西).
        #[arg(long, value_name = "CODE")]
        province: Option<DivisionCode>,
        /// Which nodes to list.
        #[arg(long, value_enum, default_value_t = Level::Province)]
        level: Level,
        /// Only this plane's blocks.
        #[arg(long)]
        plane: Option<Plane>,
    },
    /// Check hand-assigned devices (CSV `name,address` or TOML `[[devices]]`) against the
    /// plan: the IP registration check (IP地址备案). Exits 1 if anything is found.
    Check {
        /// The device inventory.
        #[arg(long, value_name = "FILE")]
        inventory: PathBuf,
    },
    /// Export every node's blocks and zone blocks on every plane.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Which nodes `plan show` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Level {
    /// The ministry and the provinces (or one province and its cities).
    Province,
    /// Cities.
    City,
    /// City-area sites.
    Site,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One row per node and plane.
    Csv,
    /// One object per node, with its blocks per plane.
    Json,
}

pub(crate) fn run(command: PlanCommand, files: &Files, out: &mut dyn Write) -> Result<ExitCode> {
    let model = Model::load(files)?;
    match command {
        PlanCommand::Show {
            province,
            level,
            plane,
        } => show(&model, province, level, plane, out),
        PlanCommand::Check { inventory } => check(&model, &inventory, out),
        PlanCommand::Export { format, output } => export(&model, format, output, out),
    }
}

fn show(
    model: &Model,
    province: Option<DivisionCode>,
    level: Level,
    plane: Option<Plane>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let network = &model.network;
    let scope = match province {
        Some(code) if code.level() == DivisionLevel::Province => Some(
            network
                .lookup(&NodeId::DataCentre(code))
                .with_context(|| format!("no province {code}"))?,
        ),
        Some(code) => bail!("--province takes a 2-digit province code, not {code}"),
        None => None,
    };
    let mut planes: Vec<Plane> = model
        .allocation
        .planes()
        .filter(|p| plane.is_none_or(|only| only == *p))
        .collect();
    if planes.is_empty() {
        bail!(
            "the plan has no {} plane",
            plane.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    writeln!(out, "{}", summary(model))?;
    writeln!(out, "{}\n", table::render(&planes_table(model, &planes)))?;
    if level == Level::Site {
        planes.retain(|&p| {
            model
                .plan
                .layout(p)
                .is_some_and(|layout| layout.site.is_some())
        });
    }

    let listed = listed_nodes(network, level, scope);
    let rows = node_table(model, &listed, &planes, level != Level::Site);
    writeln!(out, "{}", table::render(&rows))?;
    writeln!(out, "{} nodes listed", table::count(listed.len()))?;
    Ok(ExitCode::SUCCESS)
}

/// The nodes `plan show` lists, in tree order.
fn listed_nodes(network: &Network, level: Level, scope: Option<NodeIx>) -> Vec<NodeIx> {
    let in_scope =
        |ix: NodeIx| scope.is_none_or(|p| ix == p || network.ancestors(ix).any(|a| a == p));
    let nodes = network.preorder().into_iter();
    match (level, scope) {
        (Level::Province, None) => nodes
            .filter(|&ix| matches!(network.node(ix).tier, Tier::Ministry | Tier::Province))
            .collect(),
        (Level::Province, Some(p)) => std::iter::once(p)
            .chain(
                network
                    .children(p)
                    .iter()
                    .copied()
                    .filter(|&c| network.node(c).tier != Tier::Site),
            )
            .collect(),
        (Level::City, _) => nodes
            .filter(|&ix| network.node(ix).stands_at(Tier::City) && in_scope(ix))
            .collect(),
        (Level::Site, _) => nodes
            .filter(|&ix| network.node(ix).tier == Tier::Site && in_scope(ix))
            .collect(),
    }
}

/// One row per node: id, name, (kind), its block on each plane, (cities and sites below).
fn node_table(
    model: &Model,
    listed: &[NodeIx],
    planes: &[Plane],
    counted: bool,
) -> comfy_table::Table {
    let network = &model.network;
    let mut header = vec!["node", "name"];
    if !counted {
        header.push("kind");
    }
    header.extend(planes.iter().map(|p| p.as_str()));
    if counted {
        header.extend(["cities", "sites"]);
    }
    let right: Vec<usize> = if counted {
        vec![header.len() - 2, header.len() - 1]
    } else {
        vec![]
    };
    let mut rows = table::new(&header, &right);
    let below = counted.then(|| Below::count(network));
    for &ix in listed {
        let node = network.node(ix);
        let mut name = node.name.clone();
        if node.municipality {
            name.push_str(" (直辖市)");
        }
        let mut row = vec![node.id.to_string(), name];
        if !counted {
            row.push(node.kind().to_string());
        }
        for &plane in planes {
            row.push(
                model
                    .allocation
                    .node(plane, ix)
                    .map_or("—".to_owned(), |b| b.block.to_string()),
            );
        }
        if let Some(below) = &below {
            row.push(table::count(below.cities[ix.index()]));
            row.push(table::count(below.sites[ix.index()]));
        }
        rows.add_row(row);
    }
    rows
}

/// Cities and sites below each node.
struct Below {
    cities: Vec<usize>,
    sites: Vec<usize>,
}

impl Below {
    fn count(network: &Network) -> Below {
        let n = network.nodes().len();
        let mut below = Below {
            cities: vec![0; n],
            sites: vec![0; n],
        };
        for ix in network.preorder().into_iter().rev() {
            let node = network.node(ix);
            let Some(parent) = node.parent else { continue };
            let (cities, sites) = (below.cities[ix.index()], below.sites[ix.index()]);
            let is_city = node.tier == Tier::City;
            let is_site = node.tier == Tier::Site;
            below.cities[parent.index()] += cities + usize::from(is_city);
            below.sites[parent.index()] += sites + usize::from(is_site);
        }
        below
    }
}

fn summary(model: &Model) -> String {
    let census = model.network.census();
    let links: Vec<String> = census
        .links
        .iter()
        .filter(|(level, n)| *n > 0 || *level != LinkLevel::Lateral)
        .map(|(level, n)| format!("{} {level} {}", table::count(*n), level.chinese()))
        .collect();
    let endpoints: Vec<String> = census
        .endpoints
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    format!(
        "Jinbao WAN IP plan '{}' ({})\n\
         \x20 data centres  1 ministry · {} provinces ({} municipalities) · {} cities · {} disaster-recovery sites\n\
         \x20 city-area     {} sites: {} district offices · {} street offices · {} endpoints ({})\n\
         \x20 links         {}\n",
        model.plan.name,
        model.plan.origin,
        census.provinces,
        census.municipalities,
        census.cities,
        census.dr_sites,
        table::count(census.sites()),
        table::count(census.district_offices),
        table::count(census.street_offices),
        table::count(census.endpoint_total()),
        endpoints.join(", "),
        links.join(" · "),
    )
}

fn planes_table(model: &Model, planes: &[Plane]) -> comfy_table::Table {
    let mut rows = table::new(
        &[
            "plane",
            "supernet",
            "province",
            "city",
            "site",
            "data centre",
            "data-centre zones",
            "site zones",
        ],
        &[],
    );
    for &plane in planes {
        let Some(layout) = model.plan.layout(plane) else {
            continue;
        };
        let zones = |zones: &[topology::plan::ZoneBlock]| -> String {
            if zones.is_empty() {
                return "—".to_owned();
            }
            let bits = layout.family_bits();
            zones
                .iter()
                .map(|z| format!("{} +{}/{}", z.zone, z.offset(bits), z.prefix))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        rows.add_row(vec![
            format!("{plane} {}", plane.chinese()),
            layout.supernet.to_string(),
            format!("/{}", layout.province),
            format!("/{}", layout.city),
            layout.site.map_or("—".to_owned(), |s| format!("/{s}")),
            format!("/{}", layout.data_centre),
            zones(&layout.data_centre_zones),
            zones(&layout.site_zones),
        ]);
    }
    rows
}

fn check(model: &Model, path: &std::path::Path, out: &mut dyn Write) -> Result<ExitCode> {
    let (name, text) = model::read(path)?;
    let report = inventory::check_file(
        &SourceText::new(name.as_str(), &text),
        &model.plan,
        &model.network,
        &model.allocation,
    );
    writeln!(out, "{report}")?;
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One node in the JSON export.
#[derive(Serialize)]
struct NodeExport {
    node: String,
    name: String,
    tier: Tier,
    kind: String,
    parent: Option<String>,
    planes: BTreeMap<Plane, PlaneExport>,
}

#[derive(Serialize)]
struct PlaneExport {
    block: ipnet::IpNet,
    own: ipnet::IpNet,
    zones: BTreeMap<topology::Zone, ipnet::IpNet>,
}

fn export(
    model: &Model,
    format: Format,
    output: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let sink: Box<dyn Write + '_> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => Box::new(out),
    };
    let mut sink = std::io::BufWriter::new(sink);
    let nodes = model
        .network
        .preorder()
        .into_iter()
        .map(|ix| node_export(model, ix));
    match format {
        Format::Json => {
            let nodes: Vec<NodeExport> = nodes.collect();
            serde_json::to_writer_pretty(&mut sink, &nodes).map_err(std::io::Error::from)?;
            writeln!(sink)?;
        }
        Format::Csv => write_csv(&mut sink, nodes)?,
    }
    sink.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn node_export(model: &Model, ix: NodeIx) -> NodeExport {
    let (network, allocation) = (&model.network, &model.allocation);
    let node = network.node(ix);
    let planes = allocation
        .planes()
        .filter_map(|plane| {
            let blocks = allocation.node(plane, ix)?;
            let zones = allocation.zones(plane, ix).into_iter().collect();
            Some((
                plane,
                PlaneExport {
                    block: blocks.block,
                    own: blocks.own,
                    zones,
                },
            ))
        })
        .collect();
    NodeExport {
        node: node.id.to_string(),
        name: node.name.clone(),
        tier: node.tier,
        kind: node.kind().to_string(),
        parent: node.parent.map(|p| network.node(p).id.to_string()),
        planes,
    }
}

/// One row per node and plane, a column per zone.
fn write_csv(sink: &mut dyn Write, nodes: impl Iterator<Item = NodeExport>) -> Result<()> {
    let mut writer = csv::Writer::from_writer(sink);
    let zones = topology::Zone::ALL;
    let mut header = vec![
        "node", "name", "tier", "kind", "parent", "plane", "block", "own",
    ];
    header.extend(zones.iter().map(|z| z.as_str()));
    writer.write_record(&header).map_err(csv_error)?;
    for node in nodes {
        for (plane, blocks) in &node.planes {
            let mut record = vec![
                node.node.clone(),
                node.name.clone(),
                node.tier.to_string(),
                node.kind.clone(),
                node.parent.clone().unwrap_or_default(),
                plane.to_string(),
                blocks.block.to_string(),
                blocks.own.to_string(),
            ];
            record.extend(zones.iter().map(|z| {
                blocks
                    .zones
                    .get(z)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            }));
            writer.write_record(&record).map_err(csv_error)?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// A CSV error, keeping an I/O cause (a closed pipe) recognisable.
fn csv_error(err: csv::Error) -> anyhow::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(io) => io.into(),
        other => anyhow::anyhow!("CSV output failed: {other:?}"),
    }
}
