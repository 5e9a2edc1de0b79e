//! The isolation audit (信息安全等级保护): what a security officer shows to prove that the
//! planes are never bridged and that zones talk only as policy allows.
//!
//! The static audit answers from the topology, the plan and the policy alone. It draws the
//! zone-to-zone matrix for node pairs that cover every (source tier, destination tier,
//! relation) the network has — every pair on a small network — and checks each allow rule
//! that applies to a pair against the invariants of the 金保 security model:
//!
//! - **plane-bridged**: nothing crosses planes (a soft-exchange gateway relays data at the
//!   application level; it is not a route and not a rule);
//! - **production-exposed**: another site's zones reach a production zone only through the
//!   declared services: a city-area site's production to its city's business applications,
//!   and a data centre's production replicating to its own disaster-recovery site;
//! - **sites-connected**: city-area sites never reach each other;
//! - **public-beyond-exchange**: the public plane's front ends (DMZ) reach only the public
//!   exchange services.
//!
//! The policy loader already refuses rules that break the first, third and fourth
//! outright; the audit checks the policy as it is actually applied, so a rule that got
//! past the loader (or a policy built below it) is still caught, and every finding carries
//! its counterexample: the source and destination (node and zone), protocol and port, and
//! the rule that allows it with its file and line.
//!
//! A report is JSON signed by the controller's key ([`pki::signature`]), so anyone with the
//! national root certificate can check it later, offline ([`SignedReport::open`]); reports
//! are kept as files in the controller directory's `audits/`, never rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub mod live;

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use topology::policy::reach::sample_pairs;
use topology::policy::{Proto, Rule};
use topology::{Allocation, Network, NodeIx, NodeKind, Plane, Policy, Tier, Zone};

/// On a network of at most this many nodes, every ordered pair is audited.
pub const FULL_COVERAGE_NODES: usize = 40;

/// What the signed document says it is (so it can never pass for a config bundle).
pub const DOCUMENT: &str = "jinbao isolation audit report";

/// The report format's version.
pub const VERSION: u32 = 1;

/// Why an audit could not be made, kept or checked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The report file cannot be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The document is not a signed report.
    #[error("{0} is not a signed isolation audit report: {1}")]
    Malformed(String, String),
    /// The signature or the signer does not check out.
    #[error("the report's signature does not verify: {0}")]
    Signature(#[from] pki::signature::SignatureError),
    /// The key would not sign.
    #[error("signing the report: {0}")]
    Sign(pki::PkiError),
    /// No report has this number.
    #[error("no audit report {0}")]
    NoSuchReport(u64),
    /// A live audit is running already.
    #[error("a live audit is running; try again when it has finished")]
    Busy,
    /// The controller could not carry it out.
    #[error("the controller: {0}")]
    Controller(String),
}

/// One thing the audit found wrong, with its counterexample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which invariant: `plane-bridged`, `production-exposed`, `sites-connected`,
    /// `public-beyond-exchange`.
    pub kind: String,
    /// The counterexample's source: node and plane:zone (`dc:1401 business:exchange`).
    pub source: String,
    /// Its destination.
    pub destination: String,
    /// Protocol and port (`tcp/1521`).
    pub flow: String,
    /// The rule that allows it, with its file and line.
    pub rule: Option<String>,
    /// What shows it: for the static audit, the audited pairs the rule opens.
    pub evidence: Option<String>,
}

/// The zone-to-zone matrix of one audited pair of nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairMatrix {
    /// Source node.
    pub from: String,
    /// Destination node.
    pub to: String,
    /// `city → province (parent)`.
    pub relation: String,
    /// Source zones (`business:exchange`).
    pub rows: Vec<String>,
    /// Destination zones.
    pub columns: Vec<String>,
    /// What the policy allows, `cells[row][column]`: `·` deny, `╳` other plane, services.
    pub cells: Vec<Vec<String>>,
}

/// An audit's report: what was checked, against what, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`DOCUMENT`].
    pub document: String,
    /// [`VERSION`].
    pub version: u32,
    /// The report's number at this controller.
    pub id: u64,
    /// When it ran.
    #[serde(with = "crate::health::rfc3339")]
    pub at: SystemTime,
    /// Who ran it (`operator:zhaolei`, `local:root`).
    pub by: String,
    /// The policy's origin (`embedded/policy.toml`, `store: policy`).
    pub policy: String,
    /// SHA-256 of the policy text, hex.
    pub policy_hash: String,
    /// SHA-256 of the IP plan text, hex.
    pub plan_hash: String,
    /// SHA-256 of the network file's text, hex.
    pub network_hash: String,
    /// What was covered, in words.
    pub coverage: String,
    /// Node pairs audited.
    pub pairs: usize,
    /// Distinct (source tier, destination tier, relation) among them.
    pub relations: usize,
    /// Flows decided: every zone pair of every audited node pair.
    pub flows: u64,
    /// Whether flows were also probed through the agents.
    pub live: bool,
    /// What the live probes saw, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_summary: Option<live::LiveSummary>,
    /// Everything wrong; none means the audit passed.
    pub findings: Vec<Finding>,
    /// The reachability matrix, pair by pair.
    pub matrix: Vec<PairMatrix>,
}

/// What an audit is run on.
pub struct Inputs<'a> {
    /// The tree.
    pub network: &'a Network,
    /// Every node's blocks.
    pub allocation: &'a Allocation,
    /// The policy as applied.
    pub policy: &'a Policy,
    /// The texts the three came from, for the hashes: policy, plan, network.
    pub texts: [&'a str; 3],
}

/// The node pairs audited: every ordered pair on a small network; else one pair for every
/// tier relation the network has, plus `extra` more drawn evenly (the same on every run).
pub fn audited_pairs(network: &Network, extra: usize) -> Vec<(NodeIx, NodeIx)> {
    let nodes: Vec<NodeIx> = (0..network.nodes().len())
        .filter_map(|i| network.lookup(&network.nodes()[i].id))
        .collect();
    if nodes.len() <= FULL_COVERAGE_NODES {
        return nodes
            .iter()
            .flat_map(|&a| nodes.iter().map(move |&b| (a, b)))
            .collect();
    }
    let mut pairs = sample_pairs(network);
    let mut seen: BTreeSet<(usize, usize)> =
        pairs.iter().map(|(a, b)| (a.index(), b.index())).collect();
    // SplitMix64: a fixed, well-spread sequence, so two runs audit the same pairs.
    let mut state: u64 = 0x6a69_6e62_616f_2026;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let wanted = pairs.len() + extra;
    let mut tries = 0;
    while pairs.len() < wanted && tries < extra * 20 {
        tries += 1;
        let a = nodes[(next() % nodes.len() as u64) as usize];
        let b = nodes[(next() % nodes.len() as u64) as usize];
        if seen.insert((a.index(), b.index())) {
            pairs.push((a, b));
        }
    }
    pairs
}

/// Runs the static audit on `pairs`; the report is numbered `id` and stamped `at`, `by`.
pub fn run(
    inputs: &Inputs<'_>,
    pairs: &[(NodeIx, NodeIx)],
    id: u64,
    at: SystemTime,
    by: &str,
) -> Report {
    let Inputs {
        network,
        allocation,
        policy,
        texts,
    } = *inputs;
    let mut findings: BTreeMap<(String, String), (Finding, usize)> = BTreeMap::new();
    let mut matrix = Vec::with_capacity(pairs.len());
    let mut relations = BTreeSet::new();
    let mut flows = 0u64;
    for &(a, b) in pairs {
        let relation = network.relation(a, b);
        let (na, nb) = (network.node(a), network.node(b));
        relations.insert((na.tier, nb.tier, relation));
        let m = policy.matrix(network, allocation, a, b);
        flows += (m.rows.len() * m.columns.len()) as u64;
        matrix.push(PairMatrix {
            from: na.id.to_string(),
            to: nb.id.to_string(),
            relation: format!("{} → {} ({relation})", na.tier, nb.tier),
            rows: m.rows.iter().map(|(p, z)| format!("{p}:{z}")).collect(),
            columns: m.columns.iter().map(|(p, z)| format!("{p}:{z}")).collect(),
            cells: m
                .cells
                .iter()
                .map(|row| row.iter().map(ToString::to_string).collect())
                .collect(),
        });
        for rule in policy.rules() {
            if !rule.scope.admits(relation) || !rule.admits_tiers(na, nb) {
                continue;
            }
            for &plane in &rule.planes {
                let from = (rule.from.plane.unwrap_or(plane), rule.from.zone);
                let to = (rule.to.plane.unwrap_or(plane), rule.to.zone);
                if allocation.zone(from.0, a, from.1).is_none()
                    || allocation.zone(to.0, b, to.1).is_none()
                {
                    continue;
                }
                let Some(kind) = broken_invariant(network, (a, from), (b, to)) else {
                    continue;
                };
                let entry = findings
                    .entry((kind.to_owned(), rule.name.clone()))
                    .or_insert_with(|| {
                        let finding = Finding {
                            kind: kind.to_owned(),
                            source: format!("{} {}:{}", na.id, from.0, from.1),
                            destination: format!("{} {}:{}", nb.id, to.0, to.1),
                            flow: flow_text(rule),
                            rule: Some(format!("rule '{}' ({})", rule.name, rule.location)),
                            evidence: None,
                        };
                        (finding, 0)
                    });
                entry.1 += 1;
            }
        }
    }
    let findings = findings
        .into_values()
        .map(|(mut finding, count)| {
            finding.evidence = Some(format!(
                "static: the rule opens this on {count} of the {} audited pairs",
                pairs.len()
            ));
            finding
        })
        .collect();
    let full = network.nodes().len() <= FULL_COVERAGE_NODES;
    // To the millisecond, as the report writes it: the report read back is this one.
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let at =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(since_epoch.as_millis() as u64);
    Report {
        document: DOCUMENT.to_owned(),
        version: VERSION,
        id,
        at,
        by: by.to_owned(),
        policy: policy.origin.clone(),
        policy_hash: sha256(texts[0]),
        plan_hash: sha256(texts[1]),
        network_hash: sha256(texts[2]),
        coverage: format!(
            "{} node pairs, {} tier relations ({})",
            pairs.len(),
            relations.len(),
            if full {
                "every pair of the network"
            } else {
                "every tier relation the network has"
            }
        ),
        pairs: pairs.len(),
        relations: relations.len(),
        flows,
        live: false,
        live_summary: None,
        findings,
        matrix,
    }
}

/// Which invariant a flow from `a`'s zone to `b`'s zone breaks, if one.
fn broken_invariant(
    network: &Network,
    (a, from): (NodeIx, (Plane, Zone)),
    (b, to): (NodeIx, (Plane, Zone)),
) -> Option<&'static str> {
    if from.0 != to.0 {
        return Some("plane-bridged");
    }
    let (na, nb) = (network.node(a), network.node(b));
    if to.1 == Zone::Production && a != b && !declared_production_service(network, a, b, from.1) {
        return Some("production-exposed");
    }
    if na.tier == Tier::Site && nb.tier == Tier::Site && a != b {
        return Some("sites-connected");
    }
    if from.0 == Plane::Public && from.1 == Zone::Dmz && to.1 != Zone::Exchange {
        return Some("public-beyond-exchange");
    }
    None
}

/// The declared services through which another site reaches production: a city-area
/// site's production to its city's business applications, and a data centre's production
/// replicating to its own disaster-recovery site.
fn declared_production_service(network: &Network, a: NodeIx, b: NodeIx, from: Zone) -> bool {
    if from != Zone::Production {
        return false;
    }
    let (na, nb) = (network.node(a), network.node(b));
    let site_to_city = na.tier == Tier::Site && network.parent(a) == Some(b);
    let to_own_dr = nb.kind() == NodeKind::DisasterRecovery
        && na.kind() == NodeKind::DataCentre
        && na.id.code() == nb.id.code();
    site_to_city || to_own_dr
}

fn flow_text(rule: &Rule) -> String {
    match (rule.proto, rule.ports.first()) {
        (Proto::Tcp | Proto::Udp, Some(range)) => format!("{}/{}", rule.proto, range.first),
        (proto, _) => proto.to_string(),
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A report with the controller's signature: the report's JSON exactly as signed, the
/// signature (base64) and the controller's certificate chain (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReport {
    /// The report's JSON, the bytes signed.
    pub report: String,
    /// The controller's signature over `report` (base64).
    pub signature: String,
    /// The controller's certificate chain (PEM: leaf, then the ministry CA).
    pub signer: String,
}

impl SignedReport {
    /// Signs `report` with the controller's key; `chain` is its certificate chain (PEM).
    pub fn sign(
        report: &Report,
        key: &pki::PrivateKey,
        chain: &str,
    ) -> Result<SignedReport, AuditError> {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| AuditError::Malformed("the report".into(), e.to_string()))?;
        let signature = pki::signature::sign(key, text.as_bytes()).map_err(AuditError::Sign)?;
        Ok(SignedReport {
            report: text,
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
            signer: chain.to_owned(),
        })
    }

    /// Reads a signed report from its file text (named `name` in errors).
    pub fn parse(name: &str, text: &str) -> Result<SignedReport, AuditError> {
        serde_json::from_str(text)
            .map_err(|e| AuditError::Malformed(name.to_owned(), e.to_string()))
    }

    /// Checks the signature with the root certificate alone, and returns the report. The
    /// signer's chain is checked as it stood when the report says it was made (a report
    /// stays verifiable after the controller's certificate is renewed); a changed time
    /// breaks the signature like any other change.
    pub fn open(&self, root: &CertificateDer<'_>) -> Result<Report, AuditError> {
        let malformed =
            |why: &str| AuditError::Malformed("the signed report".into(), why.to_owned());
        let report: Report =
            serde_json::from_str(&self.report).map_err(|e| malformed(&e.to_string()))?;
        if report.document != DOCUMENT {
            return Err(malformed("it is not an isolation audit report"));
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.signer.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| malformed("the signer chain is not PEM"))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(self.signature.trim())
            .map_err(|_| malformed("the signature is not base64"))?;
        pki::signature::verify_signature_with_root(
            root,
            &chain,
            self.report.as_bytes(),
            &signature,
            report.at,
        )?;
        Ok(report)
    }
}

/// The texts a model was built from, for the report's hashes: policy, plan, network.
pub fn texts(model: &agent::model::Model) -> [&str; 3] {
    let sources = model.sources();
    [
        sources
            .policy
            .as_deref()
            .unwrap_or(topology::policy::EMBEDDED_POLICY),
        sources
            .plan
            .as_deref()
            .unwrap_or(topology::plan::EMBEDDED_PLAN),
        sources
            .network
            .as_deref()
            .unwrap_or(topology::network::EMBEDDED_NETWORK_FILE),
    ]
}

/// The next report's number at the controller in `dir`.
pub fn next_id(dir: &Path) -> Result<u64, AuditError> {
    Ok(report_ids(dir)?.last().map_or(1, |last| last + 1))
}

/// Signs `report` with the key of the controller in `dir` and keeps it; the file.
pub fn sign_and_keep(dir: &Path, report: &Report) -> Result<PathBuf, AuditError> {
    let (key_path, chain_path) = crate::server::identity_paths(dir);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| AuditError::File {
            path: path.display().to_string(),
            source,
        })
    };
    let key = pki::PrivateKey::from_pem(&read(&key_path)?).map_err(AuditError::Sign)?;
    let signed = SignedReport::sign(report, &key, &read(&chain_path)?)?;
    keep(dir, report.id, &signed)
}

/// Runs the static audit of the controller in `dir` on `model` (its current network, plan
/// and policy), numbers it after the last kept report, signs it with the controller's key
/// and keeps it: the report and its file.
pub fn run_and_keep(
    dir: &Path,
    model: &agent::model::Model,
    extra_pairs: usize,
    by: &str,
    now: SystemTime,
) -> Result<(Report, PathBuf), AuditError> {
    let inputs = Inputs {
        network: &model.network,
        allocation: &model.allocation,
        policy: &model.policy,
        texts: texts(model),
    };
    let pairs = audited_pairs(&model.network, extra_pairs);
    let report = run(&inputs, &pairs, next_id(dir)?, now, by);
    let path = sign_and_keep(dir, &report)?;
    Ok((report, path))
}

/// Where a controller keeps its reports: `<dir>/audits/<id>.json`.
pub fn reports_dir(dir: &Path) -> PathBuf {
    dir.join("audits")
}

/// The numbers of the reports kept, in order.
pub fn report_ids(dir: &Path) -> Result<Vec<u64>, AuditError> {
    let reports = reports_dir(dir);
    let entries = match std::fs::read_dir(&reports) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::File {
                path: reports.display().to_string(),
                source,
            });
        }
    };
    let mut ids: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Keeps a signed report as `<dir>/audits/<id>.json` (never overwriting one).
pub fn keep(dir: &Path, id: u64, signed: &SignedReport) -> Result<PathBuf, AuditError> {
    let reports = reports_dir(dir);
    let file_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| AuditError::File { path, source }
    };
    std::fs::create_dir_all(&reports).map_err(file_error(&reports))?;
    let path = reports.join(format!("{id}.json"));
    let text = serde_json::to_string_pretty(signed)
        .map_err(|e| AuditError::Malformed("the signed report".into(), e.to_string()))?;
    pki::files::create_new(&path, text.as_bytes(), pki::files::Secrecy::Public).map_err(|e| {
        AuditError::File {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    Ok(path)
}

/// Reads report `id` as kept.
pub fn read(dir: &Path, id: u64) -> Result<SignedReport, AuditError> {
    let path = reports_dir(dir).join(format!("{id}.json"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditError::NoSuchReport(id));
        }
        Err(source) => {
            return Err(AuditError::File {
                path: path.display().to_string(),
                source,
            });
        }
    };
    SignedReport::parse(&path.display().to_string(), &text)
}

/// The report as Markdown: the facts, the findings with their counterexamples, the matrix.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let verdict = if report.findings.is_empty() {
        "PASSED: no findings".to_owned()
    } else {
        format!("{} FINDINGS", report.findings.len())
    };
    let _ = writeln!(out, "# Isolation audit #{} — {verdict}\n", report.id);
    let _ = writeln!(out, "| | |\n|---|---|");
    for (what, value) in facts(report) {
        let _ = writeln!(out, "| {what} | {value} |");
    }
    let _ = writeln!(out, "\n## Findings\n");
    if report.findings.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for f in &report.findings {
        let _ = writeln!(
            out,
            "- **{}**: {} → {} {}, allowed by {}. {}",
            f.kind,
            f.source,
            f.destination,
            f.flow,
            f.rule.as_deref().unwrap_or("no rule"),
            f.evidence.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "\n## Reachability matrix\n");
    for pair in &report.matrix {
        let _ = writeln!(out, "### {} → {}: {}\n", pair.from, pair.to, pair.relation);
        let _ = writeln!(out, "| from \\ to | {} |", pair.columns.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(pair.columns.len()));
        for (row, cells) in pair.rows.iter().zip(&pair.cells) {
            let _ = writeln!(out, "| {row} | {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    out
}

/// The report as a standalone HTML page (every value escaped).
pub fn html(report: &Report) -> String {
    let e = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <title>Isolation audit</title></head><body>\n",
    );
    let verdict = if report.findings.is_empty() {
        "PASSED: no findings".to_owned()
    } else {
        format!("{} FINDINGS", report.findings.len())
    };
    let _ = writeln!(
        out,
        "<h1>Isolation audit #{} — {}</h1>\n<table>",
        report.id,
        e(&verdict)
    );
    for (what, value) in facts(report) {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", e(what), e(&value));
    }
    let _ = writeln!(out, "</table>\n<h2>Findings</h2>\n<ul>");
    for f in &report.findings {
        let _ = writeln!(
            out,
            "<li><b>{}</b>: {} → {} {}, allowed by {}. {}</li>",
            e(&f.kind),
            e(&f.source),
            e(&f.destination),
            e(&f.flow),
            e(f.rule.as_deref().unwrap_or("no rule")),
            e(f.evidence.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(out, "</ul>\n<h2>Reachability matrix</h2>");
    for pair in &report.matrix {
        let _ = writeln!(
            out,
            "<h3>{} → {}: {}</h3>\n<table border=\"1\"><tr><th></th>{}</tr>",
            e(&pair.from),
            e(&pair.to),
            e(&pair.relation),
            pair.columns
                .iter()
                .map(|c| format!("<th>{}</th>", e(c)))
                .collect::<String>()
        );
        for (row, cells) in pair.rows.iter().zip(&pair.cells) {
            let _ = writeln!(
                out,
                "<tr><th>{}</th>{}</tr>",
                e(row),
                cells
                    .iter()
                    .map(|c| format!("<td>{}</td>", e(c)))
                    .collect::<String>()
            );
        }
        let _ = writeln!(out, "</table>");
    }
    out.push_str("</body></html>\n");
    out
}

fn facts(report: &Report) -> Vec<(&'static str, String)> {
    vec![
        ("when", crate::health::rfc3339::format(report.at)),
        ("by", report.by.clone()),
        (
            "policy",
            format!("{} (sha256 {})", report.policy, report.policy_hash),
        ),
        ("plan", format!("sha256 {}", report.plan_hash)),
        ("network", format!("sha256 {}", report.network_hash)),
        ("coverage", report.coverage.clone()),
        ("flows decided", report.flows.to_string()),
        (
            "live probes",
            if report.live {
                "yes".into()
            } else {
                "no (static audit)".into()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::control::ModelSources;
    use agent::model::Model;
    use topology::policy::{PortRange, Scope};
    use topology::{Location, ZoneRef};

    const AT: u64 = 1_795_759_200;

    fn audit(model: &Model, policy: &Policy) -> Report {
        let inputs = Inputs {
            network: &model.network,
            allocation: &model.allocation,
            policy,
            texts: ["policy", "plan", "network"],
        };
        let pairs = audited_pairs(&model.network, 50);
        run(
            &inputs,
            &pairs,
            1,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(AT),
            "test",
        )
    }

    fn model(policy: Option<String>) -> std::sync::Arc<Model> {
        Model::load(&ModelSources {
            policy,
            ..ModelSources::default()
        })
        .expect("the model")
    }

    #[test]
    fn the_national_policy_passes_with_every_tier_relation_covered() {
        let model = model(None);
        let report = audit(&model, &model.policy);
        assert_eq!(report.findings, Vec::<Finding>::new());
        let representatives = sample_pairs(&model.network).len();
        assert_eq!(
            report.relations, representatives,
            "one pair per tier relation, at least"
        );
        assert!(
            report.pairs >= representatives + 50,
            "{} pairs",
            report.pairs
        );
        assert!(report.flows > 1_000, "{} flows", report.flows);
        // The matrix says what the policy says: a city's exchange reaches its province's
        // on the MQ port.
        let city_up = report
            .matrix
            .iter()
            .find(|m| m.relation.starts_with("city → province (parent"))
            .expect("a city-to-province pair");
        let row = city_up
            .rows
            .iter()
            .position(|r| r == "business:exchange")
            .expect("row");
        let column = city_up
            .columns
            .iter()
            .position(|c| c == "business:exchange")
            .expect("column");
        assert!(
            city_up.cells[row][column].contains("1414"),
            "{:?}",
            city_up.cells[row]
        );
    }

    #[test]
    fn a_rule_opening_production_to_a_sibling_city_is_shown_with_its_counterexample() {
        let leaky = format!(
            "{}\n[[rules]]\nname = \"sibling-db\"\nfrom = \"exchange\"\nto = \"production\"\nscope = \"sibling\"\nfrom-tiers = [\"city\"]\nto-tiers = [\"city\"]\nproto = \"tcp\"\nports = [1521]\n",
            topology::policy::EMBEDDED_POLICY
        );
        let line = leaky
            .lines()
            .position(|l| l.contains("sibling-db"))
            .expect("the rule");
        let model = model(Some(leaky.clone()));
        let report = audit(&model, &model.policy);
        assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
        let finding = &report.findings[0];
        assert_eq!(finding.kind, "production-exposed");
        assert!(finding.source.ends_with("business:exchange"), "{finding:?}");
        assert!(
            finding.destination.ends_with("business:production"),
            "{finding:?}"
        );
        assert_eq!(finding.flow, "tcp/1521");
        // The rule's entry starts at its [[rules]] header, the line before its name.
        let rule = finding.rule.as_deref().unwrap_or_default();
        assert!(
            rule.contains("sibling-db") && rule.contains(&format!(":{line}")),
            "{rule}"
        );
        let (source, destination) = (&finding.source, &finding.destination);
        let node = |text: &str| {
            text.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let (a, b) = (node(source), node(destination));
        assert_ne!(a, b);
        assert_eq!(a[..5], b[..5], "sibling cities of one province: {a} {b}");
    }

    #[test]
    fn a_rule_bridging_planes_injected_below_the_checker_is_caught() {
        let model = model(None);
        let bridge = Rule {
            name: "bridge".into(),
            location: Location {
                file: "injected.toml".into(),
                line: 7,
            },
            from: ZoneRef {
                plane: Some(Plane::Business),
                zone: Zone::Exchange,
            },
            to: ZoneRef {
                plane: Some(Plane::Office),
                zone: Zone::Decision,
            },
            planes: vec![Plane::Business, Plane::Office],
            scope: Scope::SameSite,
            from_tiers: Vec::new(),
            to_tiers: Vec::new(),
            proto: Proto::Tcp,
            ports: vec![PortRange {
                first: 443,
                last: 443,
            }],
        };
        let policy = model.policy.clone().with_unchecked_rule(bridge);
        let report = audit(&model, &policy);
        let bridged: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.kind == "plane-bridged")
            .collect();
        assert_eq!(bridged.len(), 1, "{:#?}", report.findings);
        let finding = bridged[0];
        assert!(finding.source.ends_with("business:exchange"), "{finding:?}");
        assert!(
            finding.destination.ends_with("office:decision"),
            "{finding:?}"
        );
        assert_eq!(
            finding.source.split(' ').next(),
            finding.destination.split(' ').next(),
            "same site"
        );
        assert_eq!(finding.flow, "tcp/443");
        assert_eq!(
            finding.rule.as_deref(),
            Some("rule 'bridge' (injected.toml:7)")
        );
    }

    #[test]
    fn sites_reaching_each_other_and_the_public_plane_beyond_exchange_are_caught() {
        let model = model(None);
        let injected =
            |name: &str, from: ZoneRef, to: ZoneRef, scope: Scope, planes: Vec<Plane>| Rule {
                name: name.into(),
                location: Location {
                    file: "injected.toml".into(),
                    line: 1,
                },
                from,
                to,
                planes,
                scope,
                from_tiers: vec![Tier::Site],
                to_tiers: Vec::new(),
                proto: Proto::Tcp,
                ports: vec![PortRange {
                    first: 8080,
                    last: 8080,
                }],
            };
        let mgmt = ZoneRef {
            plane: None,
            zone: Zone::Mgmt,
        };
        let policy = model
            .policy
            .clone()
            .with_unchecked_rule(injected(
                "site-mesh",
                mgmt,
                mgmt,
                Scope::Sibling,
                vec![Plane::Business],
            ))
            .with_unchecked_rule(Rule {
                from_tiers: Vec::new(),
                ..injected(
                    "dmz-to-mgmt",
                    ZoneRef {
                        plane: Some(Plane::Public),
                        zone: Zone::Dmz,
                    },
                    ZoneRef {
                        plane: Some(Plane::Public),
                        zone: Zone::Mgmt,
                    },
                    Scope::SameSite,
                    vec![Plane::Public],
                )
            });
        let report = audit(&model, &policy);
        let kinds: BTreeSet<&str> = report.findings.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["public-beyond-exchange", "sites-connected"]),
            "{:#?}",
            report.findings
        );
    }

    #[test]
    fn a_signed_report_verifies_and_any_change_to_it_does_not() {
        use pki::{Authority, AuthorityScope, KeyAlgorithm, PrivateKey};
        let model = model(None);
        let report = audit(&model, &model.policy);
        let at = report.at;
        let ec = KeyAlgorithm::EcdsaP256;
        let root = Authority::create_root(ec, at).expect("root");
        let ministry = root
            .create_issuing(
                AuthorityScope::Ministry,
                ec,
                &model.network,
                &model.allocation,
                at,
            )
            .expect("ministry CA");
        let key = PrivateKey::generate(ec).expect("key");
        let issued = ministry
            .issue_controller(
                &key,
                &["jinbao-controller".into()],
                &[],
                at,
                std::time::Duration::from_secs(86_400),
            )
            .expect("controller certificate");
        let chain = format!("{}{}", issued.pem(), ministry.certificate_pem());
        let signed = SignedReport::sign(&report, &key, &chain).expect("signed");
        let root_der = root.certificate().clone();
        assert_eq!(signed.open(&root_der).expect("verifies"), report);

        // One character of the report changed: the signature no longer verifies.
        let mut tampered = signed.clone();
        tampered.report = tampered
            .report
            .replacen("\"findings\": []", "\"findings\": [ ]", 1);
        assert_ne!(tampered.report, signed.report);
        assert!(matches!(
            tampered.open(&root_der),
            Err(AuditError::Signature(
                pki::signature::SignatureError::BadSignature
            ))
        ));
        // Signed by a key that is not the controller's.
        let other = PrivateKey::generate(ec).expect("key");
        let forged = SignedReport::sign(&report, &other, &chain).expect("signed");
        assert!(forged.open(&root_der).is_err());
        // Another root does not vouch for it.
        let stranger = Authority::create_root(ec, at).expect("root");
        assert!(signed.open(stranger.certificate()).is_err());
        // Garbage is refused with a reason, never a panic.
        for text in [
            "",
            "{}",
            "not json",
            "{\"report\":\"x\",\"signature\":\"!!\",\"signer\":\"\"}",
        ] {
            let parsed = SignedReport::parse("r.json", text);
            if let Ok(parsed) = parsed {
                assert!(parsed.open(&root_der).is_err(), "{text}");
            }
        }
        // The formats carry the facts.
        assert!(markdown(&report).contains("PASSED: no findings"));
        assert!(html(&report).contains(&report.policy_hash));
    }
}
