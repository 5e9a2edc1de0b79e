//! Benchmark: deriving the full national allocation, every street included.
//!
//! Goal (issue 2): under 1 s on the 2-core reference machine. Prints a table of each
//! stage and its ratio to a reference measured in the same run: reading the division CSVs,
//! the input cost no derivation can avoid. Run: `cargo bench -p topology`.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock by definition

use std::hint::black_box;
use std::time::{Duration, Instant};

use topology::network::EMBEDDED_NETWORK_FILE;
use topology::{Divisions, Network, Plan, SourceText};

const ROUNDS: usize = 15;

/// Runs `f` `ROUNDS` times; returns the median and the fastest round.
fn measure<T>(mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[ROUNDS / 2], times[0])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let divisions = Divisions::embedded().expect("embedded divisions");
    let network = Network::national().expect("national network");
    let plan = Plan::embedded().expect("embedded plan");
    let allocation = plan.allocate(&network).expect("national allocation");
    let census = network.census();
    println!(
        "national network: {} nodes ({} street offices), {} planes\n",
        network.nodes().len(),
        census.street_offices,
        plan.layouts().len()
    );

    let (reference, reference_min) = measure(|| Divisions::embedded().map(|d| d.streets.len()));
    let stages: Vec<(&str, (Duration, Duration))> = vec![
        (
            "build the tree from divisions",
            measure(|| {
                Network::build(
                    &divisions,
                    &SourceText::new("n.toml", EMBEDDED_NETWORK_FILE),
                )
                .map(|n| n.nodes().len())
            }),
        ),
        (
            "parse the plan",
            measure(|| Plan::embedded().map(|p| p.layouts().len())),
        ),
        (
            "derive every block (3 planes)",
            measure(|| plan.allocate(&network).map(|a| a.planes().count())),
        ),
        (
            "index owners for registration",
            measure(|| {
                allocation
                    .locator()
                    .owner("10.32.64.130".parse().expect("address"))
            }),
        ),
        (
            "end to end: CSV → tree → blocks",
            measure(|| {
                let divisions = Divisions::embedded().expect("divisions");
                let network = Network::build(
                    &divisions,
                    &SourceText::new("n.toml", EMBEDDED_NETWORK_FILE),
                )
                .expect("network");
                plan.allocate(&network).map(|a| a.planes().count())
            }),
        ),
    ];

    println!(
        "{:<36} {:>10} {:>10} {:>14}",
        "stage", "median", "fastest", "× reference"
    );
    println!(
        "{:<36} {:>10} {:>10} {:>14}",
        "reference: read the division CSVs",
        ms(reference),
        ms(reference_min),
        "1.00"
    );
    for (name, (median, fastest)) in &stages {
        let ratio = median.as_secs_f64() / reference.as_secs_f64();
        println!(
            "{name:<36} {:>10} {:>10} {ratio:>14.2}",
            ms(*median),
            ms(*fastest)
        );
    }
    let (end_to_end, _) = stages.last().map(|(_, t)| *t).unwrap_or_default();
    let goal = Duration::from_secs(1);
    println!(
        "\ngoal: full national allocation under 1 s — end to end {} = {:.3} of the goal ({})",
        ms(end_to_end),
        end_to_end.as_secs_f64() / goal.as_secs_f64(),
        if end_to_end < goal { "met" } else { "NOT MET" }
    );
}
