//! The lab at scale: how long the `national` lab takes from a cold start to every tree tunnel
//! up, what an agent costs in memory, and how long `streets` (~45,000 nodes) takes to get
//! certificates, config bundles and running cores.
//!
//! Goals (on the 2-core machine the lab is developed on): `national` converged in < 3 s,
//! `streets` configs generated in < 2 s. The table prints each goal next to its measurement
//! and, for the national enrollment, a reference measured in the same run:
//!
//! - **The enrollment floor.** The same nodes, with the same parallelism on the same
//!   runtime, doing only the work no enrollment can avoid: a P-256 key and a CSR (the node),
//!   one TLS connection carrying one HTTP request to the same controller with the agent's
//!   own client (refused before anything is stored), the CSR checked and a certificate
//!   signed (the CA), and one bundle signed and checked. What enrollment costs beyond this
//!   floor is the durable store (fsync'd commits), computing bundles and the agents' own
//!   files; the ratio says how far the real path is from the cryptography and round trips it
//!   cannot skip. Near 1, only cheaper crypto, fewer round trips or more cores would help.
//!
//! A last section measures, in the same run, the costs the lab pays outside the controller
//! and the lab's driver (each agent's trust bundle, one request's round trip, one durable
//! file), so the table says where the rest of the time goes.
//!
//! Memory is the process's resident set (`VmRSS` in `/proc/self/status`) before and after,
//! divided by the agents; the national figure includes each agent's follower task and its
//! share of the controller and the underlay.
//!
//! `streets` does not enroll 45,000 nodes over TLS: each node makes its own keys and CSR
//! (the agent's code, in a directory on tmpfs), the province CAs issue from the CSRs
//! directly, the controller's [`Roster`] computes every bundle and its content hash (the
//! "configs" row: what a reconcile does for every node), then every bundle in full, signed
//! (what a fresh controller hands out), and cores are started from their bundles
//! ([`Node::new`]). Each step runs on every core of the machine (`std::thread::scope`:
//! independent nodes, no shared state to speak of).
//!
//! Run: `cargo bench -p netlab --bench scale` (one to two minutes). `-- --only national` or
//! `-- --only streets` runs one part (for `perf record`); `-- --streets-cores N` starts N
//! streets cores (a sample spread over the whole footprint; by default as many as fit in
//! [`CORE_BUDGET`], the rest extrapolated and marked so); `-- --quick` starts 200.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // a benchmark reads the clock

use std::cell::RefCell;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agent::client::{ClientError, ControllerClient};
use agent::control::{
    Bundle, EnrollRequest, ModelSources, PlaneEnrollment, ProbeSettings, SignedBundle, Trust,
    Verifier,
};
use agent::identity::{KeyDir, read_wireguard_secret};
use agent::model::Model;
use agent::node::Node;
use anyhow::{Context as _, Result, anyhow, bail};
use controller::bundles::{self, Roster};
use controller::store::{NodeRecord, Store};
use netlab::lab::{Lab, LabOptions, LabTopology, PLANE, Progress};
use netlab::scenario::Scenario;
use pki::request::{Request, node_request, read_request_pem};
use pki::store::CaDir;
use pki::{Authority, AuthorityScope, KeyAlgorithm, NodeBinding, PrivateKey, WireGuardKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use topology::NodeId;

/// Goal: `national` from nothing to every tree tunnel up.
const NATIONAL_GOAL: Duration = Duration::from_secs(3);
/// Goal: every `streets` node's config bundle computed.
const STREETS_CONFIGS_GOAL: Duration = Duration::from_secs(2);
/// How long the streets cores may take before the rest is extrapolated from a sample.
const CORE_BUDGET: Duration = Duration::from_secs(30);
/// Streets cores in `--quick` mode.
const QUICK_CORES: usize = 200;
/// Work items a thread takes at a time.
const CHUNK: usize = 32;
/// How often progress lines are redrawn.
const SHOW_EVERY: Duration = Duration::from_millis(500);
/// A token of the right shape that was never issued: refused after one store lookup.
const UNISSUED_TOKEN: &str = "0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The first argument of the process that starts the streets cores ([`cores_child`]).
const CORES_CHILD: &str = "--streets-cores-child";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CORES_CHILD) {
        return cores_child(&args[1..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::from_args()?;
    let work = work_dir().join(format!("netlab-scale-{}", std::process::id()));
    let scratch = scratch_dir()?;
    let result = run(&settings, &work, &scratch);
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

struct Settings {
    quick: bool,
    /// `national` or `streets` alone.
    only: Option<String>,
    streets_cores: Option<usize>,
}

impl Settings {
    fn from_args() -> Result<Settings> {
        let mut settings = Settings {
            quick: false,
            only: None,
            streets_cores: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => settings.quick = true,
                "--streets-cores" => {
                    let n = args.next().context("--streets-cores needs a number")?;
                    settings.streets_cores = Some(n.parse().context("--streets-cores")?);
                }
                "--only" => {
                    let part = args.next().context("--only needs national or streets")?;
                    if !["national", "streets"].contains(&part.as_str()) {
                        bail!("--only national or --only streets, not {part}");
                    }
                    settings.only = Some(part);
                }
                "--bench" => {} // what `cargo bench` passes
                other => bail!("unknown argument {other}"),
            }
        }
        Ok(settings)
    }

    fn wants(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

fn run(settings: &Settings, work: &Path, scratch: &Path) -> Result<()> {
    let model = Model::load(&ModelSources::default()).map_err(|e| anyhow!("model: {e}"))?;
    eprintln!(
        "scale bench: {} threads; work in {}",
        threads(),
        work.display()
    );
    let mut table = Table::default();
    let controller_dir = if settings.wants("national") {
        national(&model, work, &mut table)?
    } else {
        // The CAs alone, for streets.
        let dir = work.join("controller");
        std::fs::create_dir_all(&dir)?;
        let (network, allocation) = (&model.network, &model.allocation);
        controller::setup::init(
            &dir,
            network,
            allocation,
            &[],
            &[],
            "scale",
            SystemTime::now(),
        )?;
        dir
    };
    if settings.wants("streets") {
        streets(&model, &controller_dir, scratch, settings, &mut table)?;
    }
    if settings.wants("national") {
        context(&model, &controller_dir, work, &mut table)?;
    }
    eprintln!();
    table.print();
    Ok(())
}

// ── national ─────────────────────────────────────────────────────────────────────────

/// When each phase of the lab's start ended.
#[derive(Default)]
struct Marks {
    controller_up: Option<Instant>,
    enrolled: Option<Instant>,
    shown: Option<Instant>,
}

/// The national lab's measurements.
struct National {
    nodes: usize,
    links: usize,
    parallel: usize,
    start: Instant,
    controller_up: Instant,
    enrolled: Instant,
    started: Instant,
    converged: Instant,
    rss: u64,
    floor: Duration,
}

/// Starts the national lab from nothing, runs it until every tree tunnel is up, measures
/// the enrollment floor on the same controller; returns the controller directory (its CAs
/// issue for `streets`).
fn national(model: &Arc<Model>, work: &Path, table: &mut Table) -> Result<PathBuf> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let topology = LabTopology::national(model);
    let options = LabOptions::new(work);
    let parallel = options.parallel_enrollments;
    let rss_before = rss()?;
    let marks = RefCell::new(Marks::default());
    let start = Instant::now();
    let lab = runtime.block_on(Lab::start(&topology, options, |p| mark(&marks, p)));
    let mut lab = lab.map_err(|e| anyhow!("the national lab: {e}"))?;
    let started = Instant::now();
    show("national: cores started; waiting for the tunnels");
    let links = lab.links().len();
    let converged = runtime
        .block_on(lab.run_until_done(Duration::from_secs(60), |lab| lab.tunnels_up().0 == links));
    let converged_at = Instant::now();
    let rss_after = rss()?;
    if converged.is_none() {
        bail!("national: {:?} tunnels up after 60 s", lab.tunnels_up());
    }
    show("national: the enrollment floor");
    let floor = runtime.block_on(enrollment_floor(&lab, model, parallel))?;
    let controller_dir = lab.controller_dir().to_owned();
    runtime.block_on(lab.stop());
    let marks = marks.into_inner();
    National {
        nodes: topology.nodes.len(),
        links,
        parallel,
        start,
        controller_up: marks
            .controller_up
            .context("the controller never came up")?,
        enrolled: marks.enrolled.context("enrollment never finished")?,
        started,
        converged: converged_at,
        rss: rss_after.saturating_sub(rss_before),
        floor,
    }
    .rows(table);
    Ok(controller_dir)
}

fn mark(marks: &RefCell<Marks>, progress: Progress) {
    let mut marks = marks.borrow_mut();
    let now = Instant::now();
    match progress {
        Progress::ControllerUp => marks.controller_up = Some(now),
        Progress::Enrolled(done, all) => {
            if done == all {
                marks.enrolled = Some(now);
            }
            if done == all || marks.shown.is_none_or(|t| now - t > SHOW_EVERY) {
                marks.shown = Some(now);
                show(&format!("national: enrolled {done}/{all}"));
            }
        }
        Progress::TunnelsUp(..) => {}
    }
}

impl National {
    fn rows(&self, table: &mut Table) {
        let per = |d: Duration| Some(d / self.nodes as u32);
        table.section(format!(
            "national: {} agents, {} tree links, {} enrollments in flight",
            self.nodes, self.links, self.parallel
        ));
        let init = self.controller_up - self.start;
        table.row("controller init (CAs, store, API)", init, None, "", "");
        let enrollment = self.enrolled - self.controller_up;
        let ratio = format!("{:.2}× ref", ratio(enrollment, self.floor));
        table.row(
            "enrollment (token + CSR over TLS)",
            enrollment,
            per(enrollment),
            "",
            &ratio,
        );
        let floor = "  reference: enrollment floor (crypto + TLS)";
        table.row(floor, self.floor, per(self.floor), "", "1.00");
        let cores = self.started - self.enrolled;
        table.row("cores + followers started", cores, per(cores), "", "");
        let tunnels = self.converged - self.started;
        table.row("all tree tunnels up, after that", tunnels, None, "", "");
        let total = self.converged - self.start;
        let goal = format!("< {}", secs(NATIONAL_GOAL));
        let verdict = verdict(total, NATIONAL_GOAL);
        table.row("total: cold start → converged", total, None, &goal, verdict);
        table.memory(
            "memory per agent (RSS after − before)",
            self.rss,
            self.nodes,
        );
    }
}

/// The reference: per node, the work no enrollment can skip (see the module docs), with
/// the lab's parallelism.
async fn enrollment_floor(lab: &Lab, model: &Arc<Model>, parallel: usize) -> Result<Duration> {
    let dir = lab.controller_dir();
    let root = root_certificate(dir)?;
    let ca = Arc::new(Authorities::load(&CaDir::at(dir))?);
    let client = bootstrap_client(lab.controller_addr(), &root)?;
    let (key_path, chain_path) = controller::server::identity_paths(dir);
    let key = PrivateKey::from_pem(&std::fs::read_to_string(key_path)?)?;
    let signer = Arc::new((key, std::fs::read_to_string(chain_path)?, root));
    // The bundles the nodes were given (computed again from the store: same content).
    let store = Store::open(&dir.join("controller.db"))?;
    let records = store.read(|tx| tx.nodes())?;
    let roster = roster(model, dir, &records)?;
    let work: Vec<Bundle> = roster
        .nodes()
        .into_iter()
        .filter_map(|n| roster.bundle(n))
        .collect();
    let start = Instant::now();
    let mut pending = work.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < parallel {
            let Some(bundle) = pending.next() else { break };
            let (client, model) = (client.clone(), Arc::clone(model));
            let (ca, signer) = (Arc::clone(&ca), Arc::clone(&signer));
            running.spawn(async move { floor_one(&client, &model, &ca, &signer, bundle).await });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        done??;
    }
    Ok(start.elapsed())
}

/// One node's floor: key and CSR, one refused request over TLS, the certificate, the
/// signed bundle checked.
async fn floor_one(
    client: &ControllerClient,
    model: &Arc<Model>,
    ca: &Arc<Authorities>,
    signer: &Arc<(PrivateKey, String, CertificateDer<'static>)>,
    bundle: Bundle,
) -> Result<()> {
    let node = bundle.node;
    // Any X25519 public key will do here: the agent's own key pair costs ~50 µs more.
    let csr = csr(model, node, WireGuardKey([9; 32]))?;
    refused_enrollment(client, &csr).await?;
    let (model, ca, signer) = (Arc::clone(model), Arc::clone(ca), Arc::clone(signer));
    tokio::task::spawn_blocking(move || -> Result<()> {
        ca.issue(&model, &csr)?;
        let signed = SignedBundle::sign(&bundle, &signer.0, &signer.1)?;
        signed.open(
            Verifier::Root(&signer.2),
            Some(node),
            None,
            SystemTime::now(),
        )?;
        Ok(())
    })
    .await?
}

/// One enrollment request with a token never issued: a TLS connection and an HTTP round
/// trip to the controller, refused after one store lookup (nothing written).
async fn refused_enrollment(client: &ControllerClient, csr: &str) -> Result<()> {
    let request = EnrollRequest {
        token: UNISSUED_TOKEN.to_owned(),
        planes: vec![PlaneEnrollment {
            plane: PLANE,
            csr: csr.to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 51_820)),
            backup_listen: None,
        }],
    };
    match client.enroll(&request).await {
        Err(ClientError::Refused { status: 403, .. }) => Ok(()),
        other => bail!("a refused enrollment came back {other:?}"),
    }
}

// ── where the rest goes ──────────────────────────────────────────────────────────────

/// Costs outside the controller and the lab's driver, measured on the national lab's
/// controller directory: the agents' trust bundle (built once per trust section and shared:
/// a real agent process pays it once at start, the lab once for all its agents), one
/// request's round trip on its own, one durable file.
fn context(model: &Arc<Model>, dir: &Path, work: &Path, table: &mut Table) -> Result<()> {
    table.section("where the rest goes (same run)".into());
    let trust = bundles::trust_section(&CaDir::at(dir))?;
    let per_build = trust_bundle_build(&trust)?;
    table.row(
        &format!(
            "trust bundle built ({} CRLs checked), once per process",
            trust.crls.len(),
        ),
        per_build,
        Some(per_build),
        "",
        "CPU",
    );
    let round_trip = request_alone(model, dir)?;
    let what = "one agent request alone (TLS + HTTP)";
    table.row(what, round_trip, Some(round_trip), "", "median of 10");
    let file = durable_file(&work.join("file-probe"))?;
    let what = "one file created + fsync'd (agent's writer)";
    table.row(what, file, Some(file), "", "median of 50");
    Ok(())
}

/// The average time of building the agents' trust bundle (root, CAs, every CRL's signature
/// checked) from a bundle's trust section, as every core and every follower does.
fn trust_bundle_build(trust: &Trust) -> Result<Duration> {
    let root = CertificateDer::from_pem_slice(trust.root.as_bytes())?;
    let intermediates = trust
        .intermediates
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let crls = trust
        .crls
        .iter()
        .map(|pem| CertificateRevocationListDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(pki::verify::TrustBundle::new(
            root.clone(),
            intermediates.clone(),
            &crls,
        )?);
    }
    Ok(start.elapsed() / rounds)
}

/// The median of ten refused enrollments, one at a time, against a controller on `dir`.
fn request_alone(model: &Arc<Model>, dir: &Path) -> Result<Duration> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let controller = controller::server::Controller::open(dir)?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let client = bootstrap_client(listener.local_addr()?, &root_certificate(dir)?)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(controller.serve(listener, async move {
            let _ = stopped.await;
        }));
        let csr = csr(model, NodeId::MINISTRY, WireGuardKey([9; 32]))?;
        let mut times = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            refused_enrollment(&client, &csr).await?;
            times.push(start.elapsed());
        }
        let _ = stop.send(());
        serving.await??;
        Ok::<_, anyhow::Error>(median(times))
    })
}

/// The median time of creating and syncing a small file the way agents keep theirs.
fn durable_file(dir: &Path) -> Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let mut times = Vec::new();
    for i in 0..50 {
        let path = dir.join(format!("file-{i}.pem"));
        let start = Instant::now();
        pki::files::create_new(&path, &[b'x'; 800], pki::files::Secrecy::Public)?;
        times.push(start.elapsed());
    }
    std::fs::remove_dir_all(dir)?;
    Ok(median(times))
}

// ── streets ──────────────────────────────────────────────────────────────────────────

/// A streets node: who it is and where its keys are.
struct Member {
    node: NodeId,
    keys: PathBuf,
}

fn streets(
    model: &Arc<Model>,
    controller_dir: &Path,
    scratch: &Path,
    settings: &Settings,
    table: &mut Table,
) -> Result<()> {
    let streets = Streets::load(model, scratch)?;
    let members = &streets.members;
    let n = members.len();
    let per = |d: Duration| Some(d / n as u32);
    table.section(format!(
        "streets: {n} nodes, {} tree links, {} threads",
        n - 1,
        threads()
    ));
    // Each node's own work: keys on (tmpfs) disk, a CSR.
    let (csrs, took) = par_map("streets: keys + CSRs", members, |_, m| {
        let keys = KeyDir::new(&m.keys);
        keys.generate(PLANE, KeyAlgorithm::EcdsaP256)?;
        Ok(keys.request(&model.network, &model.allocation, m.node, PLANE, None)?)
    })?;
    table.row(
        "node keys + CSRs (each node's own)",
        took,
        per(took),
        "",
        "",
    );
    // The CAs issue from the CSRs.
    let ca = Authorities::load(&CaDir::at(controller_dir))?;
    let now = SystemTime::now();
    let (records, took) = par_map("streets: certificates", members, |i, m| {
        record(ca.issue(model, &csrs[i])?, m.node, i, now)
    })?;
    drop(csrs);
    let what = "certificates issued (CSR check + sign)";
    table.row(what, took, per(took), "", "");
    configs(
        &roster(model, controller_dir, &records)?,
        controller_dir,
        n,
        table,
    )?;
    drop(records);
    cores(controller_dir, scratch, settings, n, table)
}

/// Every node's bundle computed with the content hash the controller versions it by (a
/// reconcile's work for every node); then every bundle in full, signed, as a fresh
/// controller hands them out.
fn configs(roster: &Roster<'_>, controller_dir: &Path, n: usize, table: &mut Table) -> Result<()> {
    let per = |d: Duration| Some(d / n as u32);
    let start = Instant::now();
    let nodes = roster.nodes();
    let (hashes, _) = par_map("streets: configs", &nodes, |_, &node| {
        roster
            .content_hash(node)
            .with_context(|| format!("no bundle for {node}"))
    })?;
    let configs = start.elapsed();
    if hashes.len() != n {
        bail!("{} bundles for {n} nodes", hashes.len());
    }
    let goal = format!("< {}", secs(STREETS_CONFIGS_GOAL));
    let verdict = verdict(configs, STREETS_CONFIGS_GOAL);
    let what = "configs: every bundle computed + hashed";
    table.row(what, configs, per(configs), &goal, verdict);
    let (key_path, chain_path) = controller::server::identity_paths(controller_dir);
    let key = PrivateKey::from_pem(&std::fs::read_to_string(key_path)?)?;
    let chain = std::fs::read_to_string(chain_path)?;
    let (sizes, took) = par_map("streets: signed", &nodes, |_, &node| {
        let bundle = roster
            .bundle(node)
            .with_context(|| format!("no bundle for {node}"))?;
        Ok(SignedBundle::sign(&bundle, &key, &chain)?.bundle.len())
    })?;
    let mib = sizes.iter().sum::<usize>() >> 20;
    let what = format!("  then each in full, signed ({mib} MiB JSON)");
    table.row(&what, took, per(took), "", "");
    Ok(())
}

/// The streets cores, started from their bundles in a child process of their own (so its
/// resident set grows by the cores alone, not into memory the steps before freed) and kept
/// there for their memory. Time-boxed: past [`CORE_BUDGET`] (or the number asked for) the
/// rest is extrapolated from a sample spread over the whole footprint.
fn cores(
    controller_dir: &Path,
    scratch: &Path,
    settings: &Settings,
    n: usize,
    table: &mut Table,
) -> Result<()> {
    let cap = if settings.quick {
        QUICK_CORES.to_string()
    } else {
        settings
            .streets_cores
            .map_or_else(|| "auto".to_owned(), |n| n.to_string())
    };
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg(CORES_CHILD)
        .args([scratch, controller_dir])
        .arg(cap)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("cores "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [started, nanos, kib] = fields[..] else {
        bail!("the cores process said {text:?} ({})", output.status);
    };
    let (started, took) = (started as usize, Duration::from_nanos(nanos));
    let each = Some(took / started.max(1) as u32);
    if started == n {
        table.row("every core started (Node::new)", took, each, "", "");
    } else {
        let what = format!("cores started (Node::new): {started}");
        table.row(&what, took, each, "", "sample");
        let whole = took.mul_f64(n as f64 / started.max(1) as f64);
        let what = format!("  every core ({n}), extrapolated");
        table.row(&what, whole, each, "", "estimate");
    }
    table.memory("memory per core (RSS after − before)", kib, started);
    Ok(())
}

/// The child process of [`cores`]: `CORES_CHILD <keys> <controller dir> <cap | auto>`.
/// Issues certificates for the sampled nodes and their tree neighbours again (their keys
/// are on tmpfs from the parent), starts the sample's cores, and prints
/// `cores <started> <nanoseconds> <RSS growth in KiB>`.
fn cores_child(args: &[String]) -> Result<()> {
    let [scratch, controller_dir, cap] = args else {
        bail!("{CORES_CHILD} <keys> <controller dir> <cap | auto>");
    };
    let (scratch, controller_dir) = (Path::new(scratch), Path::new(controller_dir));
    let model = Model::load(&ModelSources::default()).map_err(|e| anyhow!("model: {e}"))?;
    let streets = Streets::load(&model, scratch)?;
    let ca = Authorities::load(&CaDir::at(controller_dir))?;
    let n = streets.members.len();
    // A few cores first, to size the sample; then the sample, in an order whose every
    // prefix spreads over the whole footprint, until the budget is spent.
    let order = spread(n);
    let probe = &order[..(4 * threads()).min(n)];
    let (_, took, _) = streets.start(&model, &ca, controller_dir, probe, None, "")?;
    let (count, deadline) = match cap.as_str() {
        "auto" => {
            let rate = probe.len() as f64 / took.as_secs_f64().max(1e-6);
            let count = (CORE_BUDGET.as_secs_f64() * rate * 1.5) as usize;
            (count, Some(Instant::now() + CORE_BUDGET))
        }
        number => (number.parse().context("the cap")?, None),
    };
    let sample = &order[..count.clamp(1, n)];
    let label = "streets: cores";
    let (started, took, kib) =
        streets.start(&model, &ca, controller_dir, sample, deadline, label)?;
    println!("cores {started} {} {kib}", took.as_nanos());
    Ok(())
}

/// `0..n` in an order whose every prefix is spread evenly over `0..n`: steps of about
/// n / φ, coprime with n, so the order visits each index once.
fn spread(n: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut step = ((n as f64) / 1.618_034) as usize | 1;
    while n > 1 && gcd(step, n) != 1 {
        step += 2;
    }
    (0..n).map(|k| k * step % n.max(1)).collect()
}

/// The streets footprint with each node's key directory and tree neighbours.
struct Streets {
    members: Vec<Member>,
    /// Each member's parent and children (indices into `members`).
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl Streets {
    fn load(model: &Model, scratch: &Path) -> Result<Streets> {
        let scenario = Scenario::load("streets").map_err(|e| anyhow!("streets: {e}"))?;
        let footprint = scenario
            .resolve(&model.network)
            .map_err(|e| anyhow!("streets: {e}"))?;
        let members: Vec<Member> = footprint
            .nodes
            .iter()
            .map(|&node| Member {
                node,
                keys: scratch.join(node.tag()),
            })
            .collect();
        let index: std::collections::HashMap<NodeId, usize> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.node, i))
            .collect();
        let mut parent = vec![None; members.len()];
        let mut children = vec![Vec::new(); members.len()];
        for link in &footprint.links {
            if let (Some(&p), Some(&c)) = (index.get(&link.parent), index.get(&link.child)) {
                parent[c] = Some(p);
                children[p].push(c);
            }
        }
        Ok(Streets {
            members,
            parent,
            children,
        })
    }

    /// Certificates for `which` and their neighbours (from the CSRs their keys give), then
    /// the cores of `which`, each from its bundle, until `deadline` if any: (started,
    /// wall-clock time, RSS growth in KiB over the cores alone). The cores are dropped after
    /// the measurement.
    fn start(
        &self,
        model: &Arc<Model>,
        ca: &Authorities,
        controller_dir: &Path,
        which: &[usize],
        deadline: Option<Instant>,
        label: &str,
    ) -> Result<(usize, Duration, u64)> {
        let mut needed: Vec<usize> = which
            .iter()
            .flat_map(|&i| {
                std::iter::once(i)
                    .chain(self.parent[i])
                    .chain(self.children[i].iter().copied())
            })
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let now = SystemTime::now();
        let (records, _) = par_map("", &needed, |_, &i| {
            let member = &self.members[i];
            let keys = KeyDir::new(&member.keys);
            let csr = keys.request(&model.network, &model.allocation, member.node, PLANE, None)?;
            record(ca.issue(model, &csr)?, member.node, i, now)
        })?;
        let roster = roster(model, controller_dir, &records)?;
        let rss_before = rss()?;
        let (cores, took) = par_map(label, which, |_, &i| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            let member = &self.members[i];
            let bundle = roster
                .bundle(member.node)
                .with_context(|| format!("no bundle for {}", member.node))?;
            let path = KeyDir::new(&member.keys).wireguard_key_path(PLANE);
            let key = read_wireguard_secret(&path)?;
            let (now, wall) = (Instant::now(), SystemTime::now());
            Node::new(&bundle, &[(PLANE, key)], Arc::clone(model), now, wall)
                .map(Some)
                .map_err(|e| anyhow!("{}: {e}", member.node))
        })?;
        let rss_after = rss()?;
        let started = cores.iter().flatten().count();
        Ok((started, took, rss_after.saturating_sub(rss_before)))
    }
}

/// A node's enrollment record as the controller would keep it, with the lab's synthetic
/// addresses for the `i`th node.
fn record(issued: Certificate, node: NodeId, i: usize, at: SystemTime) -> Result<NodeRecord> {
    let (listen, backup) = addresses(i);
    Ok(NodeRecord {
        node,
        plane: PLANE,
        wireguard_key: issued.wireguard_key,
        listen,
        backup_listen: Some(backup),
        certificate_pem: issued.chain,
        serial: issued.serial,
        enrolled_at: at,
    })
}

fn roster<'a>(
    model: &'a Arc<Model>,
    controller_dir: &Path,
    records: &'a [NodeRecord],
) -> Result<Roster<'a>> {
    Ok(Roster::new(
        model,
        ModelSources::default(),
        bundles::trust_section(&CaDir::at(controller_dir))?,
        ProbeSettings::default(),
        records,
    ))
}

// ── helpers ──────────────────────────────────────────────────────────────────────────

/// Every issuing CA, loaded once.
struct Authorities(Vec<(AuthorityScope, Authority)>);

/// A certificate issued from a CSR.
struct Certificate {
    /// The leaf and its CA (PEM).
    chain: String,
    serial: String,
    /// The CSR's WireGuard key.
    wireguard_key: WireGuardKey,
}

impl Authorities {
    fn load(ca: &CaDir) -> Result<Authorities> {
        Ok(Authorities(
            ca.authorities()?
                .into_iter()
                .map(|scope| Ok((scope, ca.authority(scope)?)))
                .collect::<Result<_>>()?,
        ))
    }

    /// Checks a CSR and issues its certificate.
    fn issue(&self, model: &Model, csr_pem: &str) -> Result<Certificate> {
        let Request::Node(csr) = read_request_pem(csr_pem.as_bytes())? else {
            bail!("not a node request");
        };
        let scope = AuthorityScope::of_node(&csr.binding.node);
        let authority = self
            .0
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, a)| a)
            .with_context(|| format!("no CA {scope}"))?;
        let issued = authority.issue_node(
            &csr,
            &model.network,
            &model.allocation,
            SystemTime::now(),
            pki::profile::NODE_LIFETIME,
        )?;
        Ok(Certificate {
            chain: format!("{}{}", issued.pem(), authority.certificate_pem()),
            serial: issued.serial.to_string(),
            wireguard_key: csr.binding.wireguard_key,
        })
    }
}

/// A node's CSR made in memory (no files).
fn csr(model: &Model, node: NodeId, wireguard_key: WireGuardKey) -> Result<String> {
    let (zones, addresses) =
        agent::identity::planned(&model.network, &model.allocation, node, PLANE, None)?;
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    let binding = NodeBinding {
        node,
        plane: PLANE,
        zones,
        wireguard_key,
    };
    Ok(node_request(&key, &binding, &addresses)?)
}

fn root_certificate(controller_dir: &Path) -> Result<CertificateDer<'static>> {
    let pem = std::fs::read_to_string(controller_dir.join("ca/root.pem"))?;
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?)
}

/// The agent's client as an enrolling agent has it: trusting the root alone.
fn bootstrap_client(addr: SocketAddr, root: &CertificateDer<'static>) -> Result<ControllerClient> {
    let trust = pki::tls::ControllerTrust::Bootstrap(root.clone());
    let tls = pki::tls::controller_client_config(trust, None)?;
    Ok(ControllerClient::new(addr, tls))
}

/// Synthetic underlay addresses, as the lab gives them.
fn addresses(i: usize) -> (SocketAddr, SocketAddr) {
    let [_, a, b, c] = (i as u32).to_be_bytes();
    (
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 1 + a, b, c)), 51_820),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 128 + a, b, c)), 51_820),
    )
}

/// Runs `f` over `items` on every thread, [`CHUNK`] items at a time; results in order, and
/// the wall-clock time it took. Shows progress under `label` (none if empty).
fn par_map<T: Sync, R: Send>(
    label: &str,
    items: &[T],
    f: impl Fn(usize, &T) -> Result<R> + Sync,
) -> Result<(Vec<R>, Duration)> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let shown = Mutex::new(Instant::now());
    let start = Instant::now();
    let worker = || -> Result<Vec<(usize, R)>> {
        let mut out = Vec::new();
        loop {
            let from = next.fetch_add(CHUNK, Ordering::Relaxed);
            if from >= items.len() {
                return Ok(out);
            }
            let to = (from + CHUNK).min(items.len());
            for (i, item) in items.iter().enumerate().take(to).skip(from) {
                out.push((i, f(i, item)?));
            }
            let finished = done.fetch_add(to - from, Ordering::Relaxed) + to - from;
            if !label.is_empty()
                && let Ok(mut last) = shown.try_lock()
                && last.elapsed() > SHOW_EVERY
            {
                *last = Instant::now();
                show(&format!("{label}: {finished}/{}", items.len()));
            }
        }
    };
    let parts: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads()).map(|_| scope.spawn(worker)).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow!("a worker panicked")))
            })
            .collect()
    });
    let took = start.elapsed();
    let mut all: Vec<(usize, R)> = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part?);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    if !label.is_empty() {
        show(&format!("{label}: {} in {took:.1?}", all.len()));
    }
    Ok((all.into_iter().map(|(_, r)| r).collect(), took))
}

/// One progress line on stderr, overwritten by the next.
fn show(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The process's resident set, in KiB.
fn rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// Where the national lab and its controller live: cargo's scratch directory for benches
/// (on the target directory's disk: real fsyncs), else the system's temporary directory.
/// Not `/tmp` first: on the machine this was tuned on, creating a file there costs ~10×
/// what it costs elsewhere on the same disk (an ext4 block group crowded with recently
/// deleted inodes), which would swamp what the lab itself does.
fn work_dir() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A directory on tmpfs for 45,000 nodes' keys (their fsyncs cost nothing there).
fn scratch_dir() -> Result<PathBuf> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("netlab-scale-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn secs(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

fn verdict(measured: Duration, goal: Duration) -> &'static str {
    if measured < goal { "met" } else { "missed" }
}

/// The printed table.
#[derive(Default)]
struct Table {
    lines: Vec<Line>,
}

enum Line {
    Section(String),
    Row([String; 5]),
}

impl Table {
    fn section(&mut self, title: String) {
        self.lines.push(Line::Section(title));
    }

    fn row(&mut self, what: &str, took: Duration, per: Option<Duration>, goal: &str, note: &str) {
        self.lines.push(Line::Row([
            what.to_owned(),
            format!("{took:.2?}"),
            per.map(|p| format!("{p:.1?}")).unwrap_or_default(),
            goal.to_owned(),
            note.to_owned(),
        ]));
    }

    fn memory(&mut self, what: &str, kib: u64, count: usize) {
        self.lines.push(Line::Row([
            what.to_owned(),
            format!("{:.1} MiB", kib as f64 / 1024.0),
            format!("{:.1} KiB", kib as f64 / count.max(1) as f64),
            String::new(),
            String::new(),
        ]));
    }

    fn print(&self) {
        let header = ["step", "time", "per item", "goal", "vs goal/ref"];
        let widths = [48, 11, 11, 7, 12];
        let line = |cells: &[String; 5]| {
            let mut text = format!("{:<w$}", cells[0], w = widths[0]);
            for (cell, w) in cells.iter().zip(widths).skip(1) {
                text.push_str(&format!(" {cell:>w$}"));
            }
            println!("{}", text.trim_end());
        };
        line(&header.map(str::to_owned));
        for entry in &self.lines {
            match entry {
                Line::Section(title) => println!("── {title}"),
                Line::Row(cells) => line(cells),
            }
        }
    }
}
