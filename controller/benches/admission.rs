//! Benchmark: conference admission on the national tree with 10,000 bookings held.
//!
//! Goal (issue 7): at least 10,000 admissions per second with 10,000 bookings already held.
//! The scheduler is filled with random conferences over a year — ministry–province,
//! province–city and three-level cascades, SD to 1080p, all priorities — until 10,000
//! are held. Then random conferences are admitted one by one: filed, laid out, approved
//! and scheduled (admitted, or refused with its explanation and earliest start); each one
//! admitted is cancelled again, so every attempt meets the same 10,000.
//!
//! The reference, measured in the same run on the same attempts: deciding admission by a
//! linear scan of every held booking (what a scheduler without a time index does), which
//! must also agree with the scheduler on every decision. The round is repeated with four
//! times as many bookings held, to show how each side grows. Run: `cargo bench -p
//! controller --bench admission`.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock by definition

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use controller::conference::{
    Bitrate, BookingForm, BookingId, Preemption, Priority, Resource, Scheduler, SchedulerConfig,
    SchedulerError, Site, State,
};
use topology::{Network, NodeId, NodeIx, NodeKind, Tier};

/// Bookings held while admission is measured.
const HELD: usize = 10_000;
/// Attempts measured on the scheduler.
const ATTEMPTS: usize = 20_000;
/// Attempts measured on the reference (it is much slower).
const REFERENCE_ATTEMPTS: usize = 1_000;
/// Admissions per second the issue asks for.
const GOAL: f64 = 10_000.0;

/// 2027-01-01T00:00:00Z: the horizon's start.
const HORIZON_START: u64 = 1_798_761_600;
/// The horizon: a year of 15-minute slots.
const SLOTS: u64 = 365 * 24 * 4;

/// A small, fast, deterministic generator (SplitMix64): the same bookings every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `k` distinct items of `items`.
    fn pick<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut pool = items.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

/// Provinces and their cities, for drawing conferences.
struct Tree {
    provinces: Vec<NodeId>,
    /// Provinces with cities, and their cities.
    cities: Vec<(NodeId, Vec<NodeId>)>,
}

impl Tree {
    fn new(network: &Network) -> Tree {
        let data_centres = |ix: NodeIx, tier: Tier| -> Vec<NodeIx> {
            network
                .children(ix)
                .iter()
                .copied()
                .filter(|&c| network.node(c).kind() == NodeKind::DataCentre)
                .filter(|&c| network.node(c).tier == tier)
                .collect()
        };
        let provinces = data_centres(network.ministry(), Tier::Province);
        let cities = provinces
            .iter()
            .map(|&p| {
                let cities = data_centres(p, Tier::City);
                (
                    network.node(p).id,
                    cities.iter().map(|&c| network.node(c).id).collect(),
                )
            })
            .filter(|(_, cities): &(NodeId, Vec<NodeId>)| !cities.is_empty())
            .collect();
        Tree {
            provinces: provinces.iter().map(|&p| network.node(p).id).collect(),
            cities,
        }
    }

    /// A random conference: ministry–province, province–city or three-level.
    fn conference(&self, rng: &mut Rng) -> BookingForm {
        let (main, sites) = match rng.below(10) {
            0..=2 => {
                let n = 5 + rng.below(27);
                (NodeId::MINISTRY, rng.pick(&self.provinces, n))
            }
            3..=7 => {
                let (province, cities) = &self.cities[rng.below(self.cities.len())];
                let n = 2 + rng.below(9);
                (*province, rng.pick(cities, n))
            }
            _ => {
                let n = 2 + rng.below(5);
                let indices: Vec<usize> = (0..self.cities.len()).collect();
                let mut sites = Vec::new();
                for i in rng.pick(&indices, n) {
                    let (province, cities) = &self.cities[i];
                    sites.push(*province);
                    let k = 1 + rng.below(4);
                    sites.extend(rng.pick(cities, k));
                }
                (NodeId::MINISTRY, sites)
            }
        };
        let start = UNIX_EPOCH + Duration::from_secs(HORIZON_START + rng.next() % SLOTS * 15 * 60);
        let minutes = 60 + 30 * rng.below(5) as u64;
        BookingForm {
            title: format!("conference from {main}"),
            organiser: "人力资源和社会保障部办公厅".into(),
            contact: "王芳".into(),
            phone: "010-84201234".into(),
            start,
            end: start + Duration::from_secs(minutes * 60),
            main_venue: main,
            sites: sites
                .into_iter()
                .map(|node| Site {
                    node,
                    receive_only: false,
                })
                .collect(),
            bitrate: [
                Bitrate::SD,
                Bitrate::HD,
                Bitrate::HD,
                Bitrate::HD,
                Bitrate::FULL_HD,
            ][rng.below(5)],
            priority: [Priority::Routine, Priority::Important, Priority::Urgent]
                [[0, 0, 0, 0, 0, 0, 0, 1, 1, 2][rng.below(10)]],
            test_window: Duration::from_secs(30 * 60),
        }
    }
}

/// Files, approves and schedules a form: the booking and whether it was admitted, or
/// `None` when the form could not be filed.
fn admit(
    scheduler: &mut Scheduler<&Network>,
    form: BookingForm,
    now: SystemTime,
) -> Option<(BookingId, bool)> {
    let id = scheduler.submit(form, "bench", now).ok()?;
    scheduler.approve(id, "bench", now).ok()?;
    let placed = scheduler.schedule(id, None, Preemption::Refuse, "bench", now);
    Some((id, placed.is_ok()))
}

/// Time spent in each step of an admission.
#[derive(Default)]
struct Steps {
    submit: Duration,
    check: Duration,
    approve: Duration,
    schedule: Duration,
    cancel: Duration,
    cancelled: usize,
}

/// Times `f`, adding to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    *total += started.elapsed();
    value
}

/// A held booking as the reference sees it: a window and what it takes.
struct Held {
    from: SystemTime,
    to: SystemTime,
    demands: Vec<(Resource, u64)>,
}

/// Admission by linear scan: every held booking is looked at, the overlapping ones swept.
fn reference_fits(
    held: &[Held],
    needs: &[(Resource, u64, u64)],
    from: SystemTime,
    to: SystemTime,
) -> bool {
    let overlapping: Vec<&Held> = held.iter().filter(|h| h.from < to && from < h.to).collect();
    needs.iter().all(|&(resource, amount, limit)| {
        let Some(room) = limit.checked_sub(amount) else {
            return false;
        };
        let mut events: Vec<(SystemTime, i128)> = Vec::new();
        for h in &overlapping {
            for &(_, a) in h.demands.iter().filter(|(r, _)| *r == resource) {
                events.push((h.from.max(from), i128::from(a)));
                events.push((h.to.min(to), -i128::from(a)));
            }
        }
        // At equal instants ends (negative) sort first: windows are half-open.
        events.sort();
        let mut level = 0i128;
        events.iter().all(|&(_, change)| {
            level += change;
            level <= i128::from(room)
        })
    })
}

fn rate(count: usize, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64().max(1e-9)
}

/// Admits random conferences until `target` are held; returns the attempts made.
fn fill(scheduler: &mut Scheduler<&Network>, tree: &Tree, rng: &mut Rng, target: usize) -> usize {
    let now = eve();
    let mut attempts = 0;
    let mut held = scheduler
        .bookings()
        .filter(|b| scheduler.is_held(b.id))
        .count();
    while held < target && attempts < 20 * target {
        attempts += 1;
        if let Some((_, true)) = admit(scheduler, tree.conference(rng), now) {
            held += 1;
        }
    }
    attempts
}

/// The day before the horizon, when everything is booked.
fn eve() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(HORIZON_START - 86_400)
}

/// One measured round: the scheduler step by step on `ATTEMPTS` random conferences (each
/// admitted one given back), and the reference on the first `REFERENCE_ATTEMPTS`.
struct Round {
    steps: Steps,
    reference: Duration,
    agree: usize,
}

fn measure(scheduler: &mut Scheduler<&Network>, tree: &Tree, rng: &mut Rng) -> Round {
    let now = eve();
    let candidates: Vec<BookingForm> = (0..ATTEMPTS).map(|_| tree.conference(rng)).collect();
    let mut admitted = Vec::with_capacity(ATTEMPTS);
    let mut steps = Steps::default();
    for form in &candidates {
        let form = form.clone();
        let id = timed(&mut steps.submit, || scheduler.submit(form, "bench", now)).expect("file");
        timed(&mut steps.approve, || scheduler.approve(id, "bench", now)).expect("approve");
        let checked = timed(&mut steps.check, || scheduler.check(id, None, now));
        let _ = black_box(checked);
        let placed = timed(&mut steps.schedule, || {
            scheduler.schedule(id, None, Preemption::Refuse, "bench", now)
        });
        match placed {
            Ok(_) => {
                timed(&mut steps.cancel, || scheduler.cancel(id, "bench", now)).expect("cancel");
                steps.cancelled += 1;
            }
            Err(SchedulerError::Refused(refusal)) => {
                black_box(refusal);
            }
            Err(other) => panic!("{other}"),
        }
        admitted.push(
            scheduler
                .booking(id)
                .is_some_and(|b| b.recorded() == State::Cancelled),
        );
    }

    // The reference decides against the same held set; plans and limits are worked out
    // beforehand, as the scheduler's are when a form is filed.
    let held: Vec<Held> = scheduler
        .bookings()
        .filter(|b| scheduler.is_held(b.id))
        .filter_map(|b| {
            let (from, to) = b.window();
            let demands = scheduler.plan(b.id)?.demands().collect();
            Some(Held { from, to, demands })
        })
        .collect();
    let asked: Vec<Asked> = candidates
        .iter()
        .take(REFERENCE_ATTEMPTS)
        .map(|form| {
            let plan = form
                .plan(scheduler.network(), scheduler.config())
                .expect("plan");
            let needs = plan
                .demands()
                .map(|(r, a)| (r, a, scheduler.limit(r)))
                .collect();
            let from = form
                .start
                .checked_sub(form.test_window)
                .unwrap_or(UNIX_EPOCH);
            (needs, from, form.end)
        })
        .collect();
    let mut reference = Duration::ZERO;
    let agree = asked
        .iter()
        .zip(&admitted)
        .filter(|((needs, from, to), admitted)| {
            let fits = timed(&mut reference, || reference_fits(&held, needs, *from, *to));
            fits == **admitted
        })
        .count();
    Round {
        steps,
        reference,
        agree,
    }
}

/// What the reference is asked: needs (resource, amount, limit) and the window.
type Asked = (Vec<(Resource, u64, u64)>, SystemTime, SystemTime);

fn main() {
    let network = Network::national().expect("national network");
    let tree = Tree::new(&network);
    let mut scheduler =
        Scheduler::new(&network, SchedulerConfig::default()).expect("default configuration");
    let mut rng = Rng(7);
    println!(
        "national network: {} nodes, {} links; random conferences over a year, each attempt \
         filed, approved, checked and scheduled, each admitted one given back\n",
        network.nodes().len(),
        network.links().len(),
    );
    println!(
        "{:>7} {:<54} {:>7} {:>9} {:>11} {:>11}",
        "held", "step", "calls", "µs/call", "per second", "× reference"
    );
    let mut summary = Vec::new();
    for target in [HELD, 4 * HELD] {
        let fill_attempts = fill(&mut scheduler, &tree, &mut rng, target);
        let held = scheduler
            .bookings()
            .filter(|b| scheduler.is_held(b.id))
            .count();
        let round = measure(&mut scheduler, &tree, &mut rng);
        let Steps {
            submit,
            check,
            approve,
            schedule,
            cancel,
            cancelled,
        } = round.steps;
        let reference = rate(REFERENCE_ATTEMPTS, round.reference);
        let end_to_end = submit + approve + schedule + cancel;
        let rows = [
            (
                "reference: decide by a linear scan of every held booking",
                REFERENCE_ATTEMPTS,
                round.reference,
            ),
            ("decide, explain a refusal (check)", ATTEMPTS, check),
            (
                "decide, then hold or explain (schedule)",
                ATTEMPTS,
                schedule,
            ),
            ("file and lay out on the tree (submit)", ATTEMPTS, submit),
            ("approve", ATTEMPTS, approve),
            ("give back an admitted booking (cancel)", cancelled, cancel),
            (
                "end to end: submit, approve, schedule, cancel",
                ATTEMPTS,
                end_to_end,
            ),
        ];
        for (name, calls, time) in rows {
            let per_second = rate(calls, time);
            println!(
                "{held:>7} {name:<54} {calls:>7} {:>9.2} {per_second:>11.0} {:>11.2}",
                time.as_secs_f64() * 1e6 / calls.max(1) as f64,
                per_second / reference
            );
        }
        println!();
        summary.push((
            held,
            fill_attempts,
            cancelled,
            round.agree,
            rate(ATTEMPTS, end_to_end),
        ));
    }
    for (held, fill_attempts, admitted, agree, _) in &summary {
        println!(
            "{held} held after {fill_attempts} filling attempts; {admitted} of {ATTEMPTS} admitted, \
             the rest refused with an explanation and an earliest start; the reference agreed \
             on {agree} of {REFERENCE_ATTEMPTS} decisions"
        );
    }
    let admissions = summary.first().map_or(0.0, |s| s.4);
    println!(
        "goal: ≥ {GOAL:.0} admissions/s with {HELD} held — end to end {admissions:.0}/s = {:.2} \
         of the goal ({})",
        admissions / GOAL,
        if admissions >= GOAL { "met" } else { "NOT MET" }
    );
}
