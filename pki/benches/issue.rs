//! Benchmark: node certificates issued per second from CSRs, on one thread.
//!
//! Goal: at least 5,000 ECDSA P-256 node certificates per second end to end (read and verify
//! the CSR, check it against the topology, sign). The workload is Shanxi (dc:14) and every
//! node below it on the business plane: cities, district and street offices, endpoint sites.
//! Requests are built beforehand (each node's own key and CSR, as the node would send it)
//! and are not timed. Each phase is timed on its own, then end to end:
//!
//! - (a) `read_request_der`: parse the PKCS#10 DER and verify its signature;
//! - (b) `issue_node`: topology checks, build the certificate, sign it;
//! - end to end: (a) then (b) for each request.
//!
//! The reference, measured in the same run and interleaved with the phases: raw ring
//! signatures per second with the CA's algorithm over a 600-byte message (about a node
//! certificate's TBS), a rate no issuing can beat. Raw verifications per second are printed
//! too, the ceiling of phase (a), and with them the crypto floor of one certificate (one
//! verify plus one sign) and what each phase costs beyond it.
//!
//! Run: `cargo bench -p pki --bench issue`. `PKI_BENCH_NODES=N` (or `-- --nodes N`) caps
//! the nodes (default 2,000, `0` = no cap); `-- --alg p256|ed25519` runs one algorithm (for
//! `perf record`); `-- --quick` (or `PKI_BENCH_QUICK=1`) runs 50 nodes once, a smoke test.
//! Run without `--bench` (`cargo test --benches`) it is always quick.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock by definition
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use pki::profile::NODE_LIFETIME;
use pki::request::{NodeRequest, Request, node_request, read_request_der};
use pki::{Authority, KeyAlgorithm, NodeBinding, PrivateKey, WireGuardKey};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use topology::plan::Allocation;
use topology::{Network, NodeId, NodeIx, NodeKind, Plan, Plane};

/// Default number of nodes: enough for a stable rate, small enough for a quick run.
const DEFAULT_NODES: usize = 2_000;
/// Nodes in quick mode.
const QUICK_NODES: usize = 50;
/// Timed rounds per measurement (the fastest is reported).
const ROUNDS: usize = 5;
/// Goal for ECDSA P-256, certificates per second end to end.
const GOAL_P256: f64 = 5_000.0;
/// Size of the message the raw reference signs: about a node certificate's TBS.
const MESSAGE_LEN: usize = 600;

struct Settings {
    nodes: usize,
    rounds: usize,
    quick: bool,
    algorithms: Vec<KeyAlgorithm>,
}

impl Settings {
    fn from_env() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flag = |name: &str| args.iter().any(|a| a == name);
        let env_set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        // cargo bench passes --bench; cargo test --benches does not: run quick there.
        let quick = flag("--quick") || env_set("PKI_BENCH_QUICK") || !flag("--bench");
        let value = |name: &str| {
            let i = args.iter().position(|a| a == name)?;
            args.get(i + 1).cloned()
        };
        let algorithms = match value("--alg") {
            Some(alg) => vec![alg.parse().expect("--alg: p256 or ed25519")],
            None => vec![KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519],
        };
        let nodes = value("--nodes")
            .or_else(|| std::env::var("PKI_BENCH_NODES").ok())
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .expect("--nodes / PKI_BENCH_NODES: a number")
            });
        match (quick, nodes) {
            (true, n) => Settings {
                nodes: n.unwrap_or(QUICK_NODES).clamp(1, QUICK_NODES),
                rounds: 1,
                quick,
                algorithms,
            },
            (false, n) => Settings {
                nodes: match n.unwrap_or(DEFAULT_NODES) {
                    0 => usize::MAX,
                    n => n,
                },
                rounds: ROUNDS,
                quick,
                algorithms,
            },
        }
    }
}

/// Shanxi and every node below it that the business plane reaches, in tree order.
fn shanxi_business(network: &Network, allocation: &Allocation) -> Vec<NodeIx> {
    let shanxi = network
        .lookup(&"dc:14".parse::<NodeId>().unwrap())
        .expect("dc:14 in the national network");
    let mut nodes = Vec::new();
    let mut stack = vec![shanxi];
    while let Some(ix) = stack.pop() {
        if allocation.node(Plane::Business, ix).is_some() {
            nodes.push(ix);
        }
        stack.extend(network.children(ix).iter().rev());
    }
    nodes
}

/// `count` nodes spread evenly over `all`, so every kind of node is represented.
fn sample(all: &[NodeIx], count: usize) -> Vec<NodeIx> {
    if count >= all.len() {
        return all.to_vec();
    }
    (0..count).map(|i| all[i * all.len() / count]).collect()
}

/// Each node's CSR (DER) for the business plane with all its planned zones, signed with
/// the node's own fresh key.
fn requests(
    network: &Network,
    allocation: &Allocation,
    nodes: &[NodeIx],
    algorithm: KeyAlgorithm,
) -> Vec<Vec<u8>> {
    nodes
        .iter()
        .map(|&ix| {
            let planned = allocation.overlay_addresses(Plane::Business, ix);
            let secret = x25519_dalek::StaticSecret::random();
            let binding = NodeBinding {
                node: network.node(ix).id,
                plane: Plane::Business,
                zones: planned.iter().map(|(z, _)| *z).collect(),
                wireguard_key: WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes()),
            };
            let addresses: Vec<IpAddr> = planned.iter().map(|(_, a)| *a).collect();
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = node_request(&key, &binding, &addresses).unwrap();
            CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        })
        .collect()
}

fn read(der: &[u8]) -> NodeRequest {
    match read_request_der(der) {
        Ok(Request::Node(request)) => request,
        Ok(Request::Operator(_)) => panic!("not a node request"),
        Err(e) => panic!("request refused: {e}"),
    }
}

/// Times one run of `f`.
fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The raw reference: a ring key of the CA's algorithm, a 600-byte message, its signature.
enum Raw {
    Ecdsa(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
}

impl Raw {
    fn new(algorithm: KeyAlgorithm) -> Raw {
        let rng = SystemRandom::new();
        match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
                Raw::Ecdsa(
                    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap(),
                    rng,
                )
            }
            KeyAlgorithm::Ed25519 => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                Raw::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Raw::Ecdsa(pair, rng) => pair.sign(rng, message).unwrap().as_ref().to_vec(),
            Raw::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    fn verifier(&self) -> signature::UnparsedPublicKey<Vec<u8>> {
        match self {
            Raw::Ecdsa(pair, _) => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_ASN1,
                pair.public_key().as_ref().to_vec(),
            ),
            Raw::Ed25519(pair) => signature::UnparsedPublicKey::new(
                &signature::ED25519,
                pair.public_key().as_ref().to_vec(),
            ),
        }
    }
}

fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// One row of the table.
struct Row {
    algorithm: KeyAlgorithm,
    what: &'static str,
    certs: usize,
    took: Duration,
    reference: f64,
    goal: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        rate(self.certs, self.took)
    }
}

/// Timings of one algorithm, each the fastest of its rounds: (a), (b), end to end, and
/// the raw reference rates.
struct Measured {
    algorithm: KeyAlgorithm,
    certs: usize,
    read: Duration,
    issue: Duration,
    end_to_end: Duration,
    raw_sign: f64,
    raw_verify: f64,
}

/// Every phase and the raw reference are timed in each round, interleaved, so a burst of
/// load on a shared machine hits them alike; each reports its fastest round.
fn measure(
    algorithm: KeyAlgorithm,
    network: &Network,
    allocation: &Allocation,
    nodes: &[NodeIx],
    rounds: usize,
) -> Measured {
    let now = SystemTime::now();
    let root = Authority::create_root(algorithm, now).unwrap();
    let shanxi = root
        .create_issuing("14".parse().unwrap(), algorithm, network, allocation, now)
        .unwrap();
    let prepared = requests(network, allocation, nodes, algorithm);
    let parsed: Vec<NodeRequest> = prepared.iter().map(|der| read(der)).collect();
    let issue = |request: &NodeRequest| {
        shanxi
            .issue_node(request, network, allocation, now, NODE_LIFETIME)
            .unwrap_or_else(|e| panic!("{} refused: {e}", request.binding.node))
    };
    let raw = Raw::new(algorithm);
    let message: Vec<u8> = (0..MESSAGE_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let signed = raw.sign(&message);
    let verifier = raw.verifier();

    let mut best = [Duration::MAX; 5];
    for _ in 0..rounds {
        let round = [
            time(|| {
                for _ in &prepared {
                    black_box(raw.sign(black_box(&message)));
                }
            }),
            time(|| {
                for _ in &prepared {
                    verifier
                        .verify(black_box(&message), black_box(&signed))
                        .unwrap();
                }
            }),
            time(|| {
                for der in &prepared {
                    black_box(read(black_box(der)));
                }
            }),
            time(|| {
                for request in &parsed {
                    black_box(issue(black_box(request)));
                }
            }),
            time(|| {
                for der in &prepared {
                    black_box(issue(&read(black_box(der))));
                }
            }),
        ];
        for (b, t) in best.iter_mut().zip(round) {
            *b = (*b).min(t);
        }
    }
    let [sign, verify, read, issue, end_to_end] = best;
    Measured {
        algorithm,
        certs: prepared.len(),
        read,
        issue,
        end_to_end,
        raw_sign: rate(prepared.len(), sign),
        raw_verify: rate(prepared.len(), verify),
    }
}

fn print_table(measured: &[Measured]) {
    let mut rows = Vec::new();
    for m in measured {
        let goal = (m.algorithm == KeyAlgorithm::EcdsaP256).then_some(GOAL_P256);
        let row = |what, took, reference, goal| Row {
            algorithm: m.algorithm,
            what,
            certs: m.certs,
            took,
            reference,
            goal,
        };
        rows.push(row("(a) read + verify CSR", m.read, m.raw_sign, None));
        rows.push(row("(b) issue_node", m.issue, m.raw_sign, None));
        rows.push(row("end to end (a)+(b)", m.end_to_end, m.raw_sign, goal));
    }
    println!(
        "{:<12} {:<22} {:>6} {:>9} {:>9} {:>12} {:>8} {:>6}",
        "algorithm", "phase", "certs", "seconds", "certs/s", "÷ raw sign", "goal", "met?"
    );
    for r in &rows {
        let goal = r.goal.map_or("—".to_owned(), |g| format!("≥{g:.0}/s"));
        let met = match r.goal {
            Some(g) if r.rate() >= g => "yes",
            Some(_) => "NO",
            None => "—",
        };
        println!(
            "{:<12} {:<22} {:>6} {:>9.3} {:>9.0} {:>12.3} {:>8} {:>6}",
            r.algorithm.to_string(),
            r.what,
            r.certs,
            r.took.as_secs_f64(),
            r.rate(),
            r.rate() / r.reference,
            goal,
            met
        );
    }
    // The crypto floor of one certificate: one verify (the CSR) and one sign (the
    // certificate). The per-certificate columns are what each phase costs beyond its one
    // unavoidable crypto operation: parsing, topology checks, DER building, allocation.
    println!();
    println!(
        "{:<12} {:>9} {:>11} {:>15} {:>14} {:>13} {:>13}",
        "raw ring",
        "signs/s",
        "verifies/s",
        "floor certs/s",
        "e2e ÷ floor",
        "(a)−verify",
        "(b)−sign"
    );
    for m in measured {
        let per = |took: Duration| took.as_secs_f64() * 1e6 / m.certs as f64;
        let floor = 1.0 / (1.0 / m.raw_sign + 1.0 / m.raw_verify);
        println!(
            "{:<12} {:>9.0} {:>11.0} {:>15.0} {:>14.3} {:>10.1} µs {:>10.1} µs",
            m.algorithm.to_string(),
            m.raw_sign,
            m.raw_verify,
            floor,
            rate(m.certs, m.end_to_end) / floor,
            per(m.read) - 1e6 / m.raw_verify,
            per(m.issue) - 1e6 / m.raw_sign,
        );
    }
}

fn main() {
    let settings = Settings::from_env();
    let network = Network::national().expect("national network");
    let allocation = Plan::embedded()
        .expect("embedded plan")
        .allocate(&network)
        .expect("national allocation");
    let all = shanxi_business(&network, &allocation);
    let nodes = sample(&all, settings.nodes);
    let kinds = |ix: &&NodeIx| network.node(**ix).kind();
    let cities = nodes
        .iter()
        .filter(|ix| kinds(ix) == NodeKind::DataCentre)
        .count();
    println!(
        "Shanxi (dc:14) on the business plane: {} nodes; issuing {} ({} data centres, {} sites), \
         one thread, fastest of {} interleaved rounds{}\n",
        all.len(),
        nodes.len(),
        cities,
        nodes.len() - cities,
        settings.rounds,
        if settings.quick {
            " — QUICK mode: a smoke test, not a measurement"
        } else {
            ""
        },
    );

    let measured: Vec<Measured> = settings
        .algorithms
        .iter()
        .map(|&alg| measure(alg, &network, &allocation, &nodes, settings.rounds))
        .collect();
    print_table(&measured);

    // Re-keying the national backbone: the ministry, every province and every city data
    // centre, one certificate each per plane.
    let census = network.census();
    let backbone = 1 + census.provinces + census.cities;
    let planes = allocation.planes().count();
    println!(
        "\nre-keying the national backbone (ministry + {} provinces + {} cities = {backbone} \
         certificates; ×{planes} planes = {}), one thread:",
        census.provinces,
        census.cities,
        backbone * planes
    );
    for m in &measured {
        let per_second = rate(m.certs, m.end_to_end);
        println!(
            "  {:<12} at {per_second:>6.0} certs/s: {:>7.3} s  ({:.3} s for all planes)",
            m.algorithm.to_string(),
            backbone as f64 / per_second,
            (backbone * planes) as f64 / per_second,
        );
    }
    if let Some(p256) = measured
        .iter()
        .find(|m| m.algorithm == KeyAlgorithm::EcdsaP256 && !settings.quick)
    {
        let per_second = rate(p256.certs, p256.end_to_end);
        println!(
            "\ngoal: ≥{GOAL_P256:.0} ECDSA P-256 node certificates/s end to end — {per_second:.0}/s = \
             {:.2} of the goal ({})",
            per_second / GOAL_P256,
            if per_second >= GOAL_P256 {
                "met"
            } else {
                "NOT MET"
            }
        );
    }
}
