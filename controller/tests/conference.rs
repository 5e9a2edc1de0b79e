//! Video-conference scheduling through its public API: forms, states, cascades, admission,
//! refusals, preemption, and a property test checked against brute force.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use controller::conference::{
    Bitrate, Booking, BookingForm, BookingId, Bottleneck, Direction, Directions, FormProblem,
    Placed, Preemption, Priority, Resource, Scheduler, SchedulerConfig, SchedulerError, Site,
    State, StreamKind,
};
use proptest::prelude::*;
use topology::network::EMBEDDED_NETWORK_FILE;
use topology::{Divisions, Kbps, LinkIx, Network, NodeId, NodeIx, Problems, SourceText};

/// 2027-01-10T00:00:00Z plus `minutes`.
fn at(minutes: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(1_799_539_200);
    if minutes >= 0 {
        base + Duration::from_secs(minutes as u64 * 60)
    } else {
        base - Duration::from_secs(minutes.unsigned_abs() * 60)
    }
}

/// The national network as shipped.
fn national() -> &'static Network {
    static NETWORK: OnceLock<Network> = OnceLock::new();
    NETWORK.get_or_init(|| Network::national().unwrap())
}

/// The national tree on thin links: backbone 10 Mbit/s (6 Mbit/s for video: two HD
/// streams, or one 1080p), provincial the same.
fn narrow() -> &'static Network {
    static NETWORK: OnceLock<Network> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let text = EMBEDDED_NETWORK_FILE
            .replacen("capacity = \"1 Gbit/s\"", "capacity = \"10 Mbit/s\"", 1)
            .replacen("capacity = \"200 Mbit/s\"", "capacity = \"10 Mbit/s\"", 1);
        let divisions = Divisions::embedded().unwrap();
        Network::build(&divisions, &SourceText::new("narrow.toml", &text)).unwrap()
    })
}

fn node(text: &str) -> NodeId {
    text.parse().unwrap()
}

fn ix(network: &Network, text: &str) -> NodeIx {
    network.lookup(&node(text)).unwrap()
}

fn uplink(network: &Network, text: &str) -> LinkIx {
    network.uplink(ix(network, text)).unwrap()
}

fn down(network: &Network, lower: &str) -> Resource {
    let link = uplink(network, lower);
    Resource::Link {
        link,
        direction: Direction::Down,
    }
}

/// An HD routine conference from `main` to `sites`, `minutes` long from `start`, with the
/// default 30-minute test window.
fn form(main: &str, sites: &[&str], start: SystemTime, minutes: u64) -> BookingForm {
    BookingForm {
        title: format!("{main} → {}", sites.join(", ")),
        organiser: "人力资源和社会保障部办公厅".into(),
        contact: "王芳".into(),
        phone: "010-84201234".into(),
        start,
        end: start + Duration::from_secs(minutes * 60),
        main_venue: node(main),
        sites: sites
            .iter()
            .map(|s| Site {
                node: node(s),
                receive_only: false,
            })
            .collect(),
        bitrate: Bitrate::HD,
        priority: Priority::Routine,
        test_window: Duration::from_secs(30 * 60),
    }
}

/// The day before the conferences, when they are booked.
fn eve() -> SystemTime {
    at(-1440)
}

/// Files, approves and schedules a form the day before.
fn book_with<N: Borrow<Network>>(
    scheduler: &mut Scheduler<N>,
    form: BookingForm,
    preemption: Preemption,
) -> (BookingId, Result<Placed, SchedulerError>) {
    let id = scheduler.submit(form, "wang.fang", eve()).unwrap();
    scheduler.approve(id, "li.ming", eve()).unwrap();
    let placed = scheduler.schedule(id, None, preemption, "li.ming", eve());
    (id, placed)
}

/// Books without preemption.
fn book<N: Borrow<Network>>(
    scheduler: &mut Scheduler<N>,
    form: BookingForm,
) -> (BookingId, Result<Placed, SchedulerError>) {
    book_with(scheduler, form, Preemption::Refuse)
}

/// Moves or re-places a booking the day before.
fn place<N: Borrow<Network>>(
    scheduler: &mut Scheduler<N>,
    id: BookingId,
    start: Option<SystemTime>,
    preemption: Preemption,
) -> Result<Placed, SchedulerError> {
    scheduler.schedule(id, start, preemption, "li.ming", eve())
}

/// The note of a booking's last change.
fn last_note<N: Borrow<Network>>(scheduler: &Scheduler<N>, id: BookingId) -> Option<String> {
    let booking = scheduler.booking(id).unwrap();
    booking.history(eve()).pop().unwrap().note
}

/// A booking's state the day before.
fn state<N: Borrow<Network>>(scheduler: &Scheduler<N>, id: BookingId) -> State {
    scheduler.booking(id).unwrap().state(eve())
}

fn refused(result: Result<Placed, SchedulerError>) -> Box<controller::conference::Refusal> {
    match result {
        Err(SchedulerError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const PROVINCES: [&str; 8] = [
    "dc:11", "dc:12", "dc:13", "dc:14", "dc:15", "dc:21", "dc:22", "dc:23",
];

// ---- the form -------------------------------------------------------------------------

const GOOD_FORM: &str = r#"title = "2027年全国人力资源社会保障工作视频会议"
organiser = "人力资源和社会保障部办公厅"
contact = "王芳"
phone = "010-84201234"
start = 2027-01-10T09:00:00+08:00
end = "2027-01-10 11:30"
main-venue = "dc:ministry"
sites = ["dc:14", "dc:44", "dc:1401"]
receive-only = ["dc:1402"]
bitrate = "hd"
"#;

fn parse(text: &str) -> Result<BookingForm, Problems<FormProblem>> {
    BookingForm::parse(&SourceText::new("form.toml", text))
}

#[test]
fn a_good_form_reads_with_defaults_and_beijing_time() {
    let form = parse(GOOD_FORM).unwrap();
    assert_eq!(form.start, at(60));
    assert_eq!(form.end, at(210));
    assert_eq!(form.main_venue, NodeId::MINISTRY);
    assert_eq!(form.sites.len(), 4);
    assert!(form.sites[3].receive_only && !form.sites[0].receive_only);
    assert_eq!(form.bitrate, Bitrate::HD);
    assert_eq!(form.priority, Priority::Routine);
    assert_eq!(form.test_window, Duration::from_secs(1800));
    // The record round-trips through JSON for the store.
    let json = serde_json::to_string(&form).unwrap();
    assert_eq!(serde_json::from_str::<BookingForm>(&json).unwrap(), form);
}

/// Checks that a form was refused with exactly `expected` (line, text) problems, in order.
fn assert_problems<T: std::fmt::Debug>(
    text: &str,
    result: Result<T, Problems<FormProblem>>,
    expected: &[(usize, &str)],
) {
    let problems: Vec<String> = result
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), expected.len(), "{problems:#?}\n{text}");
    for (problem, (line, what)) in problems.iter().zip(expected) {
        let want = format!("form.toml:{line}: ");
        assert!(
            problem.starts_with(&want) && problem.contains(what),
            "want {want}…{what}…, got {problems:#?}"
        );
    }
}

#[test]
fn a_bad_form_reports_every_problem_at_its_line() {
    let text = r#"title = "  "
organiser = "人社部办公厅"
phone = "call me"
start = "2027-01-10 25:00"
end = 2027-01-10T11:00:00+08:00
main-venue = "dc:ministry"
sites = [
  "dc:14",
  "dc:99x",
  "dc:14",
  "dc:ministry",
]
bitrate = "4k"
priority = "high"
test-window = "half an hour"
"#;
    assert_problems(
        text,
        parse(text),
        &[
            (1, "`title` is empty"),
            (1, "the form has no `contact`"),
            (3, "`call me` is not a phone number"),
            (4, "bad start `2027-01-10 25:00`"),
            (9, "bad node id `dc:99x`"),
            (10, "dc:14 is listed twice"),
            (11, "dc:ministry is the main venue"),
            (13, "bad bitrate `4k`"),
            (14, "unknown priority `high`"),
            (15, "bad test window `half an hour`"),
        ],
    );
}

#[test]
fn windows_that_make_no_sense_are_refused_at_the_end_line() {
    for (end, why) in [
        ("2027-01-10 08:00", "ends at or before its start"),
        ("2027-01-10 09:00", "ends at or before its start"),
        ("2027-01-12 09:00", "the conference lasts 2days"),
    ] {
        let text = GOOD_FORM.replace("\"2027-01-10 11:30\"", &format!("\"{end}\""));
        assert_problems(&text, parse(&text), &[(6, why)]);
    }
    let text = GOOD_FORM
        .replace("receive-only = [\"dc:1402\"]\n", "")
        .replace("sites = [\"dc:14\", \"dc:44\", \"dc:1401\"]", "sites = []")
        + "test-window = \"5h\"\n";
    assert_problems(
        &text,
        parse(&text),
        &[
            (8, "no participating sites"),
            (10, "a test window of 5h is longer than the 4h allowed"),
        ],
    );
}

#[test]
fn a_form_of_the_wrong_shape_names_the_line() {
    let text = GOOD_FORM.replace("bitrate = \"hd\"", "bitrate = \"hd\"\nrooms = 3");
    let problems = parse(&text).unwrap_err();
    assert_eq!(problems.0.len(), 1);
    assert_eq!(problems.0[0].location.line, 11, "{problems}");
    assert!(problems.to_string().contains("rooms"), "{problems}");
}

#[test]
fn nodes_the_network_cannot_serve_are_reported_at_their_lines() {
    let text = r#"title = "省市视频会议"
organiser = "山西省人力资源和社会保障厅"
contact = "李明"
phone = "0351-4952000"
start = "2027-01-10 09:00"
end = "2027-01-10 10:00"
main-venue = "dc:14"
sites = [
  "dc:1401",
  "dc:4401",
  "dc:1499",
]
bitrate = "sd"
"#;
    let config = SchedulerConfig::default();
    let source = SourceText::new("form.toml", text);
    assert_problems(
        text,
        BookingForm::parse_and_plan(&source, national(), &config),
        &[
            (10, "dc:4401 is not below the main venue dc:14"),
            (11, "no node dc:1499 in the network"),
        ],
    );
    let text = text.replace("main-venue = \"dc:14\"", "main-venue = \"dc:1401\"");
    let text = text.replace("  \"dc:4401\",\n  \"dc:1499\",\n", "");
    let text = text.replace("  \"dc:1401\",\n", "  \"site:140105\",\n");
    let source = SourceText::new("form.toml", &text);
    assert_problems(
        &text,
        BookingForm::parse_and_plan(&source, national(), &config),
        &[(7, "the main venue dc:1401 has no MCU")],
    );
    let (form, plan) = BookingForm::parse_and_plan(
        &SourceText::new("form.toml", GOOD_FORM),
        national(),
        &config,
    )
    .unwrap();
    assert_eq!(plan, form.plan(national(), &config).unwrap());
}

// ---- states ---------------------------------------------------------------------------

/// Checks that an operation was refused with a message containing `part`.
fn says<T: std::fmt::Debug>(result: Result<T, SchedulerError>, part: &str) {
    let err = result.unwrap_err().to_string();
    assert!(err.contains(part), "want {part:?} in {err:?}");
}

#[test]
fn a_booking_moves_through_its_states_and_refuses_what_they_do_not_allow() {
    let mut scheduler = Scheduler::new(national(), SchedulerConfig::default()).unwrap();
    let f = |site| form("dc:ministry", &[site], at(60), 60);
    let id = scheduler.submit(f("dc:14"), "wang.fang", at(0)).unwrap();
    assert_eq!(
        scheduler.booking(id).unwrap().state(at(0)),
        State::Requested
    );
    says(
        scheduler.schedule(id, None, Preemption::Refuse, "li.ming", at(1)),
        "booking #1 is requested: it cannot be scheduled (only a booking that is approved \
         or preempted or scheduled can)",
    );
    scheduler.approve(id, "li.ming", at(2)).unwrap();
    says(
        scheduler.approve(id, "li.ming", at(3)),
        "is approved: it cannot be approved",
    );
    scheduler
        .schedule(id, None, Preemption::Refuse, "li.ming", at(4))
        .unwrap();
    assert!(scheduler.is_held(id));

    // Testing, live and ended follow from the clock.
    let booking = scheduler.booking(id).unwrap();
    for (now, state) in [
        (at(29), State::Scheduled),
        (at(30), State::Testing),
        (at(59), State::Testing),
        (at(60), State::Live),
        (at(119), State::Live),
        (at(120), State::Ended),
    ] {
        assert_eq!(booking.state(now), state, "at {now:?}");
    }
    let history: Vec<String> = booking
        .history(at(200))
        .iter()
        .map(|c| format!("{} by {}", c.state, c.by))
        .collect();
    let want = [
        "requested by wang.fang",
        "approved by li.ming",
        "scheduled by li.ming",
        "testing by (clock)",
        "live by (clock)",
        "ended by (clock)",
    ];
    assert_eq!(history, want);
    assert_eq!(booking.history(at(45)).len(), 4);
    let json = serde_json::to_string(booking).unwrap();
    assert_eq!(&serde_json::from_str::<Booking>(&json).unwrap(), booking);

    // Time-driven states forbid what they should.
    says(
        scheduler.reject(id, "no room", "li.ming", at(40)),
        "is testing: it cannot be rejected",
    );
    says(
        scheduler.schedule(id, Some(at(300)), Preemption::Refuse, "li.ming", at(40)),
        "is testing: it cannot be scheduled",
    );
    says(
        scheduler.cancel(id, "li.ming", at(130)),
        "is ended: it cannot be cancelled",
    );
    scheduler.cancel(id, "li.ming", at(90)).unwrap();
    assert_eq!(
        scheduler.booking(id).unwrap().state(at(200)),
        State::Cancelled
    );
    assert!(!scheduler.is_held(id));

    // A rejection carries its reason; unknown numbers and past conferences are refused.
    let other = scheduler.submit(f("dc:44"), "wang.fang", at(0)).unwrap();
    scheduler
        .reject(other, "duplicate of #1", "li.ming", at(1))
        .unwrap();
    let last = scheduler
        .booking(other)
        .unwrap()
        .history(at(2))
        .pop()
        .unwrap();
    assert_eq!(
        (last.state, last.note.as_deref()),
        (State::Rejected, Some("duplicate of #1"))
    );
    says(
        scheduler.approve(other, "li.ming", at(3)),
        "is rejected: it cannot be approved",
    );
    says(
        scheduler.approve(BookingId(99), "li.ming", at(1)),
        "no booking #99",
    );
    says(
        scheduler.submit(f("dc:44"), "wang.fang", at(200)),
        "the conference would end at 2027-01-10T02:00:00Z, which is past",
    );
}

// ---- paths and cascades ---------------------------------------------------------------

#[test]
fn a_three_level_conference_puts_one_stream_pair_on_each_cascade_link() {
    let network = national();
    let config = SchedulerConfig::default();
    let f = form(
        "dc:ministry",
        &["dc:1401", "dc:1402", "dc:1403", "dc:44", "dc:4401"],
        at(60),
        60,
    );
    let plan = f.plan(network, &config).unwrap();
    let rate = plan.stream_rate;
    assert_eq!(rate, Kbps(2_531));

    let cascades: Vec<(NodeIx, NodeIx)> = plan
        .streams
        .iter()
        .filter(|s| s.kind == StreamKind::Cascade)
        .map(|s| (s.mcu, s.to))
        .collect();
    let ministry = network.ministry();
    assert_eq!(
        cascades,
        [
            (ministry, ix(network, "dc:14")),
            (ministry, ix(network, "dc:44"))
        ]
    );
    // Three Shanxi cities below one backbone link: still one stream pair on it.
    for lower in ["dc:14", "dc:44", "dc:1401", "dc:1402", "dc:1403", "dc:4401"] {
        let link = uplink(network, lower);
        let uses: Vec<_> = plan.links.iter().filter(|u| u.link == link).collect();
        assert_eq!(uses.len(), 1, "{lower}");
        assert_eq!(
            (uses[0].directions, uses[0].streams, uses[0].rate),
            (Directions::Both, 1, rate),
            "{lower}"
        );
    }
    assert_eq!(plan.links.len(), 6);
    // Ports: the ministry's room and two cascades; Shanxi's cascade and three cities;
    // Guangdong's cascade, its city and its own room, joined locally.
    assert_eq!(plan.ports_on(ministry), 3);
    assert_eq!(plan.ports_on(ix(network, "dc:14")), 4);
    assert_eq!(plan.ports_on(ix(network, "dc:44")), 3);
    assert_eq!(plan.mcus[0].node, ministry);
    assert_eq!(plan.mcus[0].cascaded_from, None);
    assert!(
        plan.mcus[1..]
            .iter()
            .all(|m| m.cascaded_from == Some(ministry))
    );

    // Without Shanxi's MCU the ministry's MCU serves the cities directly: three pairs.
    let mut config = SchedulerConfig::default();
    config.mcu_ports.insert(node("dc:14"), 0);
    let plan = f.plan(network, &config).unwrap();
    let backbone = uplink(network, "dc:14");
    assert_eq!(plan.rate_on(backbone, Direction::Down), Kbps(3 * 2_531));
    assert_eq!(plan.ports_on(ministry), 5);
}

#[test]
fn receive_only_sites_take_the_down_direction_only() {
    let network = national();
    let mut f = form("dc:14", &["dc:1401", "dc:1402", "site:140105"], at(60), 60);
    f.sites[1].receive_only = true;
    f.sites[2].receive_only = true;
    f.bitrate = Bitrate::SD;
    let plan = f.plan(network, &SchedulerConfig::default()).unwrap();
    let sd = plan.stream_rate;
    assert_eq!(sd, Kbps(972));
    let on = |lower: &str, direction| plan.rate_on(uplink(network, lower), direction);
    assert_eq!(on("dc:1401", Direction::Up), sd);
    assert_eq!(on("dc:1402", Direction::Down), sd);
    assert_eq!(on("dc:1402", Direction::Up), Kbps(0));
    // A district office below Taiyuan: its stream crosses Taiyuan's link as well, so that
    // link carries two streams down and one up.
    assert_eq!(on("site:140105", Direction::Down), sd);
    assert_eq!(on("site:140105", Direction::Up), Kbps(0));
    assert_eq!(on("dc:1401", Direction::Down), Kbps(2 * 972));
    assert_eq!(plan.ports_on(ix(network, "dc:14")), 4);
}

// ---- admission ------------------------------------------------------------------------

#[test]
fn a_refusal_names_the_link_the_interval_the_holders_and_the_earliest_start() {
    let network = narrow();
    let mut scheduler = Scheduler::new(network, SchedulerConfig::default()).unwrap();
    let f = |start| form("dc:ministry", &["dc:14"], at(start), 60);
    let (a, placed) = book(&mut scheduler, f(60));
    placed.unwrap();
    let (b, placed) = book(&mut scheduler, f(60));
    placed.unwrap();
    let backbone = down(network, "dc:14");
    assert_eq!(scheduler.reserved(backbone, at(30)), 5_062);
    assert_eq!(scheduler.limit(backbone), 6_000);

    let (c, result) = book(&mut scheduler, f(90));
    let refusal = refused(result);
    assert_eq!(refusal.booking, c);
    // Both directions of the backbone link are full; nothing else is.
    assert_eq!(refusal.conflicts.len(), 2, "{refusal}");
    let conflict = &refusal.conflicts[0];
    assert_eq!(conflict.resource, backbone);
    assert!(matches!(
        conflict.what,
        Bottleneck::Link { upper, lower, direction: Direction::Down, .. }
            if upper == NodeId::MINISTRY && lower == node("dc:14")
    ));
    assert_eq!((conflict.from, conflict.to), (at(60), at(120)));
    let amounts = (conflict.limit, conflict.held, conflict.wanted);
    assert_eq!(amounts, (6_000, 5_062, 2_531));
    let holders: Vec<BookingId> = conflict.holders.iter().map(|h| h.booking).collect();
    assert_eq!(holders, [a, b]);
    // Its window must open when the holders end (02:00), so it starts 30 minutes later.
    assert_eq!(refusal.earliest_start, Some(at(150)));
    let text = refusal.to_string();
    for part in [
        "booking #3 \"dc:ministry → dc:14\" (routine) does not fit in \
         [2027-01-10T01:00:00Z, 2027-01-10T02:30:00Z):",
        "- link dc:ministry → dc:14: 6 Mbit/s reservable, 5062 kbit/s held from \
         2027-01-10T01:00:00Z to 2027-01-10T02:00:00Z by #1 \"dc:ministry → dc:14\" \
         (routine, 2531 kbit/s), #2",
        "- link dc:14 → dc:ministry: 6 Mbit/s reservable",
        "this booking needs 2531 kbit/s",
        "the same booking fits from 2027-01-10T02:30:00Z",
    ] {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
    // And it does.
    let placed = place(
        &mut scheduler,
        c,
        refusal.earliest_start,
        Preemption::Refuse,
    )
    .unwrap();
    assert_eq!((placed.start, placed.end), (at(150), at(210)));
    let note = last_note(&scheduler, c).unwrap();
    assert!(
        note.starts_with("moved from 2027-01-10T01:30:00Z"),
        "{note}"
    );
}

#[test]
fn equal_bookings_at_one_instant_add_up_and_touching_ones_do_not() {
    let network = narrow();
    let mut scheduler = Scheduler::new(network, SchedulerConfig::default()).unwrap();
    let f = |start| form("dc:ministry", &["dc:14"], at(start), 60);
    for _ in 0..2 {
        book(&mut scheduler, f(60)).1.unwrap();
    }
    // A third of the same size at the same instant does not fit.
    refused(book(&mut scheduler, f(60)).1);
    // One whose test window opens a minute before the first two end does not either...
    let refusal = refused(book(&mut scheduler, f(149)).1);
    let conflict = &refusal.conflicts[0];
    assert_eq!((conflict.from, conflict.to), (at(119), at(120)));
    // ...but two whose windows open exactly when they end do.
    for _ in 0..2 {
        book(&mut scheduler, f(150)).1.unwrap();
    }
    let backbone = down(network, "dc:14");
    assert_eq!(scheduler.reserved(backbone, at(119)), 5_062);
    assert_eq!(scheduler.reserved(backbone, at(120)), 5_062);
    assert_eq!(scheduler.peak(backbone, at(0), at(300)), 5_062);
    let free = scheduler.free(uplink(network, "dc:14"), Direction::Up, at(0), at(300));
    assert_eq!(free, Kbps(938));
}

#[test]
fn an_mcu_too_small_for_a_conference_fits_at_no_time() {
    let mut config = SchedulerConfig::default();
    config.mcu_ports.insert(NodeId::MINISTRY, 4);
    let mut scheduler = Scheduler::new(national(), config).unwrap();
    let f = form("dc:ministry", &PROVINCES[..4], at(60), 60);
    let refusal = refused(book(&mut scheduler, f).1);
    assert_eq!(refusal.conflicts.len(), 1);
    let conflict = &refusal.conflicts[0];
    assert_eq!(conflict.resource, Resource::Mcu(national().ministry()));
    assert_eq!((conflict.limit, conflict.held, conflict.wanted), (4, 0, 5));
    assert!(conflict.holders.is_empty());
    assert_eq!(refusal.earliest_start, None);
    let text = refusal.to_string();
    assert!(
        text.contains("- MCU dc:ministry: 4 ports reservable, 0 ports held"),
        "{text}"
    );
    assert!(text.contains("fits at no time"), "{text}");
}

#[test]
fn cancelling_gives_the_bandwidth_back_and_a_refused_move_stays_put() {
    let network = narrow();
    let backbone = down(network, "dc:14");
    let mut scheduler = Scheduler::new(network, SchedulerConfig::default()).unwrap();
    let f = |start| form("dc:ministry", &["dc:14"], at(start), 60);
    let (a, _) = book(&mut scheduler, f(60));
    book(&mut scheduler, f(60)).1.unwrap();
    let (late, placed) = book(&mut scheduler, f(300));
    placed.unwrap();
    let (c, result) = book(&mut scheduler, f(60));
    refused(result);

    // Moving the late one into the full slot is refused, and it keeps its place.
    let before = scheduler.timeline(backbone).cloned();
    let err = place(&mut scheduler, late, Some(at(60)), Preemption::Refuse).unwrap_err();
    assert!(matches!(err, SchedulerError::Refused(_)), "{err}");
    assert_eq!(scheduler.booking(late).unwrap().start, at(300));
    assert!(scheduler.is_held(late));
    assert_eq!(scheduler.timeline(backbone).cloned(), before);

    // A check answers as scheduling would and changes nothing, held or not.
    let answer = scheduler.check(c, None, eve());
    assert!(
        matches!(answer, Err(SchedulerError::Refused(_))),
        "{answer:?}"
    );
    scheduler.check(late, Some(at(400)), eve()).unwrap();
    assert_eq!(scheduler.booking(late).unwrap().start, at(300));
    assert_eq!(scheduler.timeline(backbone).cloned(), before);

    scheduler.cancel(a, "wang.fang", eve()).unwrap();
    assert_eq!(scheduler.reserved(backbone, at(60)), 2_531);
    scheduler.check(c, None, eve()).unwrap();
    place(&mut scheduler, c, None, Preemption::Refuse).unwrap();

    // Once over, bookings can give their holds back; their records stay.
    assert_eq!(scheduler.release_ended(at(200)), 2);
    assert_eq!(scheduler.reserved(backbone, at(60)), 0);
    assert_eq!(scheduler.reserved(backbone, at(300)), 2_531);
    assert_eq!(scheduler.booking(c).unwrap().state(at(200)), State::Ended);
}

// ---- preemption -----------------------------------------------------------------------

#[test]
fn preemption_bumps_only_lower_priority_and_only_what_it_needs() {
    use Priority::{Important, Routine, Urgent};
    let mut config = SchedulerConfig::default();
    config.mcu_ports.insert(NodeId::MINISTRY, 10);
    let mut scheduler = Scheduler::new(national(), config).unwrap();
    let ministry = Resource::Mcu(national().ministry());
    // A ministry conference with `n` provinces takes n + 1 ports.
    let conference = |n: usize, priority| {
        let mut f = form("dc:ministry", &PROVINCES[..n], at(60), 60);
        f.priority = priority;
        f
    };
    let (a, placed) = book(&mut scheduler, conference(6, Routine));
    placed.unwrap();
    let (b, placed) = book(&mut scheduler, conference(1, Routine));
    placed.unwrap();

    // #3 urgent, 5 ports: refused unless asked, and the holders are marked preemptible.
    let (c, result) = book(&mut scheduler, conference(4, Urgent));
    let refusal = refused(result);
    assert!(refusal.conflicts[0].holders.iter().all(|h| h.preemptible));
    // Asked: the latest routine booking (#2) goes first but is not enough; #1 is needed
    // and then #2 fits again, so only #1 is bumped.
    let placed = place(&mut scheduler, c, None, Preemption::Allow).unwrap();
    assert_eq!(placed.preempted, [a]);
    assert_eq!(state(&scheduler, a), State::Preempted);
    assert_eq!(state(&scheduler, b), State::Scheduled);
    assert!(!scheduler.is_held(a));
    let note = last_note(&scheduler, a);
    let want = "preempted by #3 \"dc:ministry → dc:11, dc:12, dc:13, dc:14\" (urgent)";
    assert_eq!(note.as_deref(), Some(want));
    assert_eq!(scheduler.reserved(ministry, at(60)), 7);

    // #4 important, 4 ports: bumps the routine #2 (2 ports), never the urgent #3.
    let (d, result) = book_with(&mut scheduler, conference(3, Important), Preemption::Allow);
    assert_eq!(result.unwrap().preempted, [b]);
    assert_eq!(scheduler.reserved(ministry, at(60)), 9);

    // #5 important, 2 ports: only equal or higher priority holds the MCU, so nothing is
    // bumped and the refusal says preemption could not help.
    let (_, result) = book_with(&mut scheduler, conference(1, Important), Preemption::Allow);
    let refusal = refused(result);
    assert!(refusal.preemption_tried);
    assert!(refusal.conflicts[0].holders.iter().all(|h| !h.preemptible));
    assert!(
        refusal.to_string().contains("would not make room"),
        "{refusal}"
    );
    assert!(scheduler.is_held(c) && scheduler.is_held(d));
    assert_eq!(scheduler.reserved(ministry, at(60)), 9);

    // The bumped can be placed again, later.
    let placed = place(&mut scheduler, a, Some(at(240)), Preemption::Refuse).unwrap();
    assert!(placed.preempted.is_empty());
    assert_eq!(state(&scheduler, a), State::Scheduled);

    // A booking already in its test window is not bumped, whatever its priority.
    let now = at(40);
    let id = scheduler
        .submit(conference(5, Urgent), "wang.fang", now)
        .unwrap();
    scheduler.approve(id, "li.ming", now).unwrap();
    let err = scheduler
        .schedule(id, None, Preemption::Allow, "li.ming", now)
        .unwrap_err();
    assert!(matches!(err, SchedulerError::Refused(_)), "{err}");
}

// ---- the property ---------------------------------------------------------------------

/// Conference shapes that share links and MCUs: two-level, three-level, province–city,
/// with and without receive-only sites.
const SHAPES: [(&str, &[&str], &[&str]); 6] = [
    ("dc:ministry", &["dc:14"], &[]),
    ("dc:ministry", &["dc:14", "dc:44"], &[]),
    ("dc:ministry", &["dc:1401", "dc:1402"], &["dc:4401"]),
    ("dc:14", &["dc:1401"], &[]),
    ("dc:14", &["dc:1401"], &["dc:1402", "site:140105"]),
    ("dc:ministry", &["dc:44"], &["dc:4401"]),
];

#[derive(Debug, Clone)]
enum Op {
    /// File, approve and schedule a booking, with or without preemption.
    Book {
        shape: usize,
        start: i64,
        minutes: u64,
        test: u64,
        bitrate: Bitrate,
        priority: Priority,
        preemption: Preemption,
    },
    /// Cancel the n-th booking filed (modulo).
    Cancel(usize),
    /// Place the n-th booking again at another start, with or without preemption.
    Place(usize, i64, Preemption),
}

fn op() -> impl Strategy<Value = Op> {
    let preemption = prop_oneof![Just(Preemption::Refuse), Just(Preemption::Allow)];
    let bitrate = prop_oneof![Just(Bitrate::SD), Just(Bitrate::HD), Just(Bitrate::FULL_HD)];
    let priority = prop::sample::select(Priority::ALL.to_vec());
    // Starts and lengths on a 15-minute grid, so equal starts and touching windows are
    // the rule, not the exception.
    let book = (
        0..SHAPES.len(),
        0i64..16,
        1u64..5,
        0u64..3,
        bitrate,
        priority,
        preemption.clone(),
    )
        .prop_map(
            |(shape, start, length, test, bitrate, priority, preemption)| Op::Book {
                shape,
                start: start * 15,
                minutes: length * 15,
                test: test * 15,
                bitrate,
                priority,
                preemption,
            },
        );
    prop_oneof![
        6 => book,
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), 0i64..16, preemption).prop_map(|(n, s, p)| Op::Place(n, s * 15, p)),
    ]
}

/// The property's limits: thin links (above) and small MCUs, so refusals and
/// preemptions happen in most sequences.
fn tight() -> SchedulerConfig {
    SchedulerConfig {
        ministry_mcu_ports: 6,
        province_mcu_ports: 5,
        ..SchedulerConfig::default()
    }
}

fn apply(scheduler: &mut Scheduler<&Network>, ids: &mut Vec<BookingId>, op: Op) {
    let now = eve();
    let outcome = match op {
        Op::Book {
            shape,
            start,
            minutes,
            test,
            bitrate,
            priority,
            preemption,
        } => {
            let (main, sites, watching) = SHAPES[shape];
            let mut f = form(main, sites, at(start), minutes);
            f.sites.extend(watching.iter().map(|s| Site {
                node: node(s),
                receive_only: true,
            }));
            f.test_window = Duration::from_secs(test * 60);
            f.bitrate = bitrate;
            f.priority = priority;
            let (id, outcome) = book_with(scheduler, f, preemption);
            ids.push(id);
            (id, outcome)
        }
        Op::Cancel(n) if !ids.is_empty() => {
            let id = ids[n % ids.len()];
            let held = scheduler.is_held(id);
            match scheduler.cancel(id, "wang.fang", now) {
                Ok(()) => assert!(!scheduler.is_held(id)),
                Err(err) => assert!(!held, "{err}"),
            }
            return;
        }
        Op::Place(n, start, preemption) if !ids.is_empty() => {
            let id = ids[n % ids.len()];
            (
                id,
                scheduler.schedule(id, Some(at(start)), preemption, "li.ming", now),
            )
        }
        Op::Cancel(_) | Op::Place(..) => return,
    };
    match outcome {
        (id, Ok(placed)) => {
            let priority = scheduler.booking(id).unwrap().form.priority;
            assert!(scheduler.is_held(id));
            for bumped in placed.preempted {
                let victim = scheduler.booking(bumped).unwrap();
                assert!(
                    victim.form.priority < priority,
                    "bumped equal or higher priority"
                );
                assert_eq!(victim.state(now), State::Preempted);
                assert!(!scheduler.is_held(bumped));
            }
        }
        (id, Err(SchedulerError::Refused(refusal))) => {
            assert!(!refusal.conflicts.is_empty(), "{refusal}");
            // The earliest start it names must be one where the booking fits.
            if let Some(start) = refusal.earliest_start {
                let placed =
                    scheduler.schedule(id, Some(start), Preemption::Refuse, "li.ming", now);
                assert!(
                    placed.is_ok(),
                    "earliest start {start:?} refused: {placed:?}"
                );
            }
        }
        (_, Err(SchedulerError::Transition(_))) => {}
        (_, Err(other)) => panic!("{other}"),
    }
}

/// Recomputes every reservation from the bookings alone — plans from their forms, limits
/// from the network — and checks every resource at every change point.
fn check_by_brute_force(scheduler: &Scheduler<&Network>) {
    let network = scheduler.network();
    let config = scheduler.config();
    let mut holds: BTreeMap<Resource, Vec<(SystemTime, SystemTime, u64)>> = BTreeMap::new();
    for booking in scheduler.bookings() {
        let committed = booking.recorded() == State::Scheduled;
        assert_eq!(scheduler.is_held(booking.id), committed, "{}", booking.id);
        if !committed {
            continue;
        }
        let (from, to) = booking.window();
        let plan = booking.form.plan(network, config).unwrap();
        for (resource, amount) in plan.demands() {
            holds.entry(resource).or_default().push((from, to, amount));
        }
    }
    let limit = |resource: Resource| match resource {
        Resource::Link { link, .. } => network.link(link).capacity.0 * 60 / 100,
        Resource::Mcu(node) => u64::from(config.mcu_ports(network, node).unwrap()),
    };
    let total = |resource: &Resource, t: SystemTime| -> u64 {
        holds.get(resource).map_or(0, |h| {
            h.iter()
                .filter(|&&(f, e, _)| f <= t && t < e)
                .map(|&(_, _, a)| a)
                .sum()
        })
    };
    for (resource, list) in &holds {
        for t in list.iter().flat_map(|&(f, e, _)| [f, e]) {
            let committed = total(resource, t);
            assert!(
                committed <= limit(*resource),
                "{resource:?} over its limit at {t:?}"
            );
            assert_eq!(
                scheduler.reserved(*resource, t),
                committed,
                "{resource:?} at {t:?}"
            );
        }
    }
    // Nothing the structure holds is unknown to the brute force, at its own change points.
    for resource in scheduler.resources() {
        let timeline = scheduler.timeline(resource).unwrap();
        for (t, level) in timeline.steps() {
            assert_eq!(level, total(&resource, t), "{resource:?} at {t:?}");
        }
        let holders = scheduler.holds(resource).len();
        assert_eq!(
            holders,
            holds.get(&resource).map_or(0, Vec::len),
            "{resource:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn committed_reservations_never_exceed_a_limit(ops in prop::collection::vec(op(), 1..40)) {
        let mut scheduler = Scheduler::new(narrow(), tight()).unwrap();
        let mut ids = Vec::new();
        for op in ops {
            apply(&mut scheduler, &mut ids, op);
            check_by_brute_force(&scheduler);
        }
    }
}
