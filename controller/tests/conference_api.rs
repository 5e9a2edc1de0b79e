//! Video-conference bookings against a real `jinbao-controller serve`, called with curl and
//! real operator certificates (mutual TLS), and through `jinbao-controller conf …` on the
//! same directory: filing, approval, placing, refusals that explain themselves, roles,
//! preemption, the census, the reservations in the agents' bundles, and bookings surviving
//! `kill -9`.
//!
//! One controller serves most tests; each uses a province no other test uses, so they run
//! in parallel. The restart test has a controller of its own, which it kills with SIGKILL.
//! Servers run under a small `sh` supervisor holding a pipe from this process: when the test
//! binary exits, the supervisor stops its server and removes the work directory.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use agent::control::{EnrollRequest, EnrollResponse, ModelSources, PlaneEnrollment, Verifier};
use agent::identity::KeyDir;
use agent::model::Model;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use topology::Plane;

use common::served::{As, Reply, Served};

const ENGINEER: &str = "liwei";
const SHANXI: &str = "wangfang";
const AUDITOR: &str = "zhaoli";
const NOC: &str = "sunqi";
const LOCAL_USER: &str = "conftest";
const TOML: &str = "text/plain";
const JSON: &str = "application/json";

static LAB: LazyLock<Lab> = LazyLock::new(|| Lab::start("shared"));

/// A served controller directory with its operators, and the model nodes are enrolled from.
struct Lab {
    served: Served,
    model: std::sync::Arc<Model>,
}

impl std::ops::Deref for Lab {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl Lab {
    fn start(name: &str) -> Lab {
        let operators = [
            (ENGINEER, "engineer", None),
            (SHANXI, "engineer", Some("14")),
            (AUDITOR, "auditor", None),
            (NOC, "noc", None),
        ];
        let served = Served::init(&format!("conf-{name}"), LOCAL_USER, &operators);
        served.serve();
        Lab {
            served,
            model: Model::load(&ModelSources::default()).unwrap(),
        }
    }

    #[track_caller]
    fn get(&self, who: &str, path: &str) -> Reply {
        self.call(As::Operator(who), "GET", path, None)
    }

    /// `POST /v1/conferences` with a form.
    #[track_caller]
    fn book(&self, who: &str, form: &str) -> Reply {
        self.call(
            As::Operator(who),
            "POST",
            "/v1/conferences",
            Some((TOML, form.as_bytes())),
        )
    }

    /// `POST /v1/conferences/{id}/{action}`, with a JSON body if given.
    #[track_caller]
    fn act(&self, who: &str, id: u64, action: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.call(
            As::Operator(who),
            "POST",
            &format!("/v1/conferences/{id}/{action}"),
            body.as_deref().map(|b| (JSON, b.as_bytes())),
        )
    }

    /// Files, approves and schedules a form as the national engineer; its number.
    #[track_caller]
    fn booked(&self, form: &str) -> u64 {
        let id = self.book(ENGINEER, form).ok(201)["booking"]["id"]
            .as_u64()
            .unwrap();
        self.act(ENGINEER, id, "approve", None).ok(200);
        let placed = self.act(ENGINEER, id, "schedule", None).ok(200);
        assert_eq!(placed["booking"]["recorded"], "scheduled", "{placed}");
        id
    }

    /// What may be reserved on the link down toward `lower`, kbit/s.
    fn limit(&self, upper: &str, lower: &str) -> u64 {
        let (from, to) = (utc(hours(20)), utc(hours(21)));
        let free = self
            .get(
                AUDITOR,
                &format!("/v1/links/{upper}-{lower}/free?from={from}&to={to}"),
            )
            .ok(200);
        free["directions"][0]["limit_kbps"].as_u64().unwrap()
    }

    /// Enrolls `node` on the business plane; its chain file and TLS key.
    fn enroll(&self, node: &str) -> (PathBuf, PathBuf) {
        let (out, _) = self.ok(&["node", "token", node, "--ttl", "10m"]);
        let token = out.lines().next().unwrap().trim().to_owned();
        let keys = KeyDir::new(&self.work.join("keys").join(node.replace(':', "-")));
        keys.generate(Plane::Business, pki::KeyAlgorithm::EcdsaP256)
            .unwrap();
        let csr = keys
            .request(
                &self.model.network,
                &self.model.allocation,
                node.parse().unwrap(),
                Plane::Business,
                None,
            )
            .unwrap();
        let request = EnrollRequest {
            token,
            planes: vec![PlaneEnrollment {
                plane: Plane::Business,
                csr,
                listen: "127.0.0.1:51820".parse().unwrap(),
                backup_listen: None,
            }],
        };
        let body = serde_json::to_vec(&request).unwrap();
        let reply = self.call(As::Nobody, "POST", "/v1/enroll", Some((JSON, &body)));
        let answer: EnrollResponse =
            serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
        let root = CertificateDer::from_pem_file(self.dir.join("ca/root.pem")).unwrap();
        answer
            .bundle
            .open(
                Verifier::Root(&root),
                Some(answer.node),
                None,
                SystemTime::now(),
            )
            .unwrap();
        let chain = self.work.join(format!("{}.pem", node.replace(':', "-")));
        std::fs::write(&chain, &answer.certificates[0].1).unwrap();
        (chain, keys.tls_key_path())
    }
}

/// Now plus `h` hours (negative: before).
fn hours(h: i64) -> SystemTime {
    let now = SystemTime::now();
    let d = Duration::from_secs(h.unsigned_abs() * 3600);
    if h >= 0 { now + d } else { now - d }
}

fn utc(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A province–city form: `main` runs it, `sites` take part, from `start` for `minutes`.
fn form(
    title: &str,
    main: &str,
    sites: &[&str],
    start: SystemTime,
    minutes: u64,
    bitrate_kbps: u64,
    priority: &str,
) -> String {
    let end = start + Duration::from_secs(minutes * 60);
    let sites: Vec<String> = sites.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"title = "{title}"
organiser = "人力资源和社会保障厅办公室"
contact = "王芳"
phone = "010-84201234"
start = {}
end = {}
main-venue = "{main}"
sites = [{}]
bitrate = "{bitrate_kbps} kbit/s"
priority = "{priority}"
"#,
        utc(start),
        utc(end),
        sites.join(", ")
    )
}

/// A bitrate of which one conference fits on a link with `limit` reservable, and two do not.
fn most_of(limit: u64) -> u64 {
    limit * 55 / 100
}

fn change_log(lab: &Lab) -> Vec<Value> {
    lab.get(AUDITOR, "/v1/changes?after=0&limit=10000")
        .ok(200)
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_booking_is_filed_approved_and_scheduled_over_the_api() {
    let lab = &*LAB;
    let text = form(
        "河南省人社工作视频会",
        "dc:41",
        &["dc:4101", "dc:4102"],
        hours(24),
        90,
        2000,
        "routine",
    );
    let filed = lab.book(ENGINEER, &text).ok(201);
    let id = filed["booking"]["id"].as_u64().unwrap();
    assert_eq!(filed["booking"]["state"], "requested", "{filed}");
    assert_eq!(filed["booking"]["held"], false);
    let approved = lab.act(ENGINEER, id, "approve", None).ok(200);
    assert_eq!(approved["booking"]["state"], "approved");
    let placed = lab.act(ENGINEER, id, "schedule", None).ok(200);
    assert_eq!(placed["booking"]["state"], "scheduled", "{placed}");
    assert_eq!(placed["booking"]["held"], true);

    let shown = lab.get(NOC, &format!("/v1/conferences/{id}")).ok(200);
    assert_eq!(shown["state"], "scheduled");
    let links: Vec<&str> = shown["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["link"].as_str().unwrap())
        .collect();
    assert_eq!(links, ["dc:41-dc:4101", "dc:41-dc:4102"], "{shown}");
    let history: Vec<(&str, &str)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap(),
                c["by"]["operator"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("requested", ENGINEER),
            ("approved", ENGINEER),
            ("scheduled", ENGINEER)
        ]
    );
    // Listed on its link, and at an instant inside its window; not at one outside.
    let on_link = lab
        .get(AUDITOR, "/v1/conferences?link=dc:41-dc:4102")
        .ok(200);
    assert!(on_link.as_array().unwrap().iter().any(|b| b["id"] == id));
    let inside = lab
        .get(AUDITOR, &format!("/v1/conferences?at={}", utc(hours(25))))
        .ok(200);
    let row = inside.as_array().unwrap().iter().find(|b| b["id"] == id);
    assert_eq!(row.unwrap()["state"], "live");
    let outside = lab
        .get(
            AUDITOR,
            &format!("/v1/conferences?at={}&link=dc:4101", utc(hours(30))),
        )
        .ok(200);
    assert!(!outside.as_array().unwrap().iter().any(|b| b["id"] == id));
    // The change log says who did what.
    let entries: Vec<(String, String)> = change_log(lab)
        .iter()
        .filter(|e| e["detail"]["booking"] == id)
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_owned(),
                e["what"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let who = format!("operator:{ENGINEER}");
    assert_eq!(
        entries,
        [
            (who.clone(), "file booking".to_owned()),
            (who.clone(), "approve booking".to_owned()),
            (who, "schedule booking".to_owned())
        ]
    );
    assert_eq!(lab.get(AUDITOR, "/v1/changes/verify").ok(200)["ok"], true);
}

#[test]
fn a_booking_that_does_not_fit_is_refused_naming_the_link_holders_and_earliest_start() {
    let lab = &*LAB;
    let rate = most_of(lab.limit("dc:42", "dc:4201"));
    let first = lab.booked(&form(
        "第一场",
        "dc:42",
        &["dc:4201"],
        hours(24),
        60,
        rate,
        "routine",
    ));
    let second_form = form(
        "第二场",
        "dc:42",
        &["dc:4201"],
        hours(24),
        60,
        rate,
        "routine",
    );
    let second = lab.book(ENGINEER, &second_form).ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    lab.act(ENGINEER, second, "approve", None).ok(200);
    let error = lab.act(ENGINEER, second, "schedule", None).refused(
        409,
        &[
            &format!("booking #{second} \"第二场\""),
            "does not fit",
            "link dc:42 → dc:4201",
            &format!("#{first} \"第一场\""),
            "the same booking fits from",
        ],
    );
    // The earliest start is where its test window (30 minutes) opens at the first one's end.
    let first_end = lab
        .get(AUDITOR, &format!("/v1/conferences/{first}"))
        .ok(200)["end"]
        .as_str()
        .unwrap()
        .to_owned();
    let earliest = humantime::parse_rfc3339(&first_end).unwrap() + Duration::from_secs(1800);
    assert!(
        error.contains(&format!("fits from {}", utc(earliest))),
        "{error}"
    );
    // It stays approved, holding nothing; it fits where the refusal said.
    let shown = lab
        .get(AUDITOR, &format!("/v1/conferences/{second}"))
        .ok(200);
    assert_eq!(
        (shown["state"].as_str(), shown["held"].as_bool()),
        (Some("approved"), Some(false))
    );
    let moved = lab
        .act(
            ENGINEER,
            second,
            "schedule",
            Some(json!({"start": utc(earliest)})),
        )
        .ok(200);
    assert_eq!(moved["booking"]["state"], "scheduled", "{moved}");
}

#[test]
fn noc_and_auditors_read_bookings_but_only_engineers_change_them() {
    let lab = &*LAB;
    let text = form(
        "内蒙古会",
        "dc:15",
        &["dc:1501"],
        hours(30),
        60,
        2000,
        "routine",
    );
    lab.book(NOC, &text).refused(
        403,
        &["this needs the role engineer; sunqi has the role noc"],
    );
    lab.book(AUDITOR, &text).refused(
        403,
        &["this needs the role engineer; zhaoli has the role auditor"],
    );
    // A Shanxi engineer books Shanxi's conferences only.
    lab.book(SHANXI, &text).refused(
        403,
        &[
            "dc:15 is outside province 14",
            "wangfang is scoped to province 14",
        ],
    );
    let shanxi = form(
        "山西会",
        "dc:14",
        &["dc:1405"],
        hours(30),
        60,
        2000,
        "routine",
    );
    let own = lab.book(SHANXI, &shanxi).ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    lab.act(SHANXI, own, "approve", None).ok(200);
    let id = lab.book(ENGINEER, &text).ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    lab.act(NOC, id, "approve", None).refused(
        403,
        &["this needs the role engineer; sunqi has the role noc"],
    );
    let listed = lab.get(NOC, "/v1/conferences").ok(200);
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == id));
    lab.get(NOC, &format!("/v1/conferences/{id}")).ok(200);
    lab.get(NOC, "/v1/conferences/999999")
        .refused(404, &["no booking #999999"]);
    // Actions a state does not allow say so.
    lab.act(ENGINEER, id, "schedule", None)
        .refused(409, &["is requested: it cannot be scheduled"]);
}

#[test]
fn a_bad_form_is_refused_with_every_problem_at_its_line() {
    let lab = &*LAB;
    let text = "title = \"坏表\"\norganiser = \"办公室\"\nphone = \"call me\"\nstart = \"2027-01-10 25:00\"\nend = 2027-01-10T11:00:00+08:00\nmain-venue = \"dc:ministry\"\nsites = [\"dc:99x\"]\nbitrate = \"hd\"\n";
    lab.book(ENGINEER, text).refused(
        400,
        &[
            "form.toml:1: the form has no `contact`",
            "form.toml:3: `call me` is not a phone number",
            "form.toml:4: bad start `2027-01-10 25:00`",
            "form.toml:7: bad node id `dc:99x`",
        ],
    );
    // A form that reads but does not lay out on the network: at the line naming the node.
    let text = form(
        "不在树下",
        "dc:14",
        &["dc:4101"],
        hours(30),
        60,
        2000,
        "routine",
    );
    lab.book(ENGINEER, &text).refused(
        400,
        &["form.toml:8:", "dc:4101 is not below the main venue dc:14"],
    );
}

#[test]
fn preemption_bumps_a_lower_priority_booking_and_says_whom_to_tell() {
    let lab = &*LAB;
    let rate = most_of(lab.limit("dc:44", "dc:4401"));
    let routine = lab.booked(&form(
        "例会",
        "dc:44",
        &["dc:4401"],
        hours(26),
        60,
        rate,
        "routine",
    ));
    let urgent_form = form(
        "紧急会议",
        "dc:44",
        &["dc:4401"],
        hours(26),
        60,
        rate,
        "urgent",
    );
    let urgent = lab.book(ENGINEER, &urgent_form).ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    lab.act(ENGINEER, urgent, "approve", None).ok(200);
    lab.act(ENGINEER, urgent, "schedule", None)
        .refused(409, &["link dc:44 → dc:4401", &format!("#{routine}")]);
    let placed = lab.act(ENGINEER, urgent, "preempt", None).ok(200);
    assert_eq!(placed["booking"]["state"], "scheduled", "{placed}");
    let bumped = placed["preempted"].as_array().unwrap();
    assert_eq!(bumped.len(), 1, "{placed}");
    assert_eq!(bumped[0]["id"], routine);
    assert_eq!(bumped[0]["state"], "preempted");
    let notice = placed["notified"][0].as_str().unwrap();
    assert!(
        notice.contains("王芳")
            && notice.contains(&format!("#{routine}"))
            && notice.contains("紧急会议"),
        "{notice}"
    );
    let shown = lab
        .get(AUDITOR, &format!("/v1/conferences/{routine}"))
        .ok(200);
    assert_eq!(
        (shown["state"].as_str(), shown["held"].as_bool()),
        (Some("preempted"), Some(false))
    );
    let preempt_entries = change_log(lab)
        .iter()
        .filter(|e| e["what"] == "preempt booking" && e["detail"]["booking"] == routine)
        .count();
    assert_eq!(preempt_entries, 1);
}

#[test]
fn the_census_counts_a_city_with_a_live_conference() {
    let lab = &*LAB;
    let video = |province: &str| {
        let census = lab.get(NOC, "/v1/census?format=json").ok(200);
        let row = census["provinces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["province"] == province)
            .cloned();
        row.unwrap()["video_linked"].as_u64().unwrap()
    };
    assert_eq!(video("dc:45"), 0);
    // Booked for later: not live, not counted.
    lab.booked(&form(
        "稍后",
        "dc:45",
        &["dc:4502"],
        hours(30),
        60,
        2000,
        "routine",
    ));
    assert_eq!(video("dc:45"), 0);
    // Started ten minutes ago: live now.
    let started = hours(0) - Duration::from_secs(600);
    lab.booked(&form(
        "进行中",
        "dc:45",
        &["dc:4501"],
        started,
        120,
        2000,
        "routine",
    ));
    assert_eq!(video("dc:45"), 1);
}

#[test]
fn the_bundles_of_the_nodes_on_a_booked_link_carry_the_reservation() {
    let lab = &*LAB;
    let (province_chain, province_key) = lab.enroll("dc:46");
    let (city_chain, city_key) = lab.enroll("dc:4601");
    let id = lab.booked(&form(
        "广西会",
        "dc:46",
        &["dc:4601"],
        hours(24),
        60,
        2000,
        "routine",
    ));
    let reservations = |chain: &Path, key: &Path, peer: &str| -> Vec<Value> {
        let signed = lab
            .call(
                As::Node(chain, key),
                "GET",
                "/v1/agent/bundle?after=0",
                None,
            )
            .ok(200);
        let bundle: Value = serde_json::from_str(signed["bundle"].as_str().unwrap()).unwrap();
        let peers = bundle["planes"][0]["peers"].as_array().unwrap().clone();
        let found = peers.iter().find(|p| p["node"] == peer).cloned();
        let found = found.unwrap_or_else(|| panic!("no peer {peer} in {peers:?}"));
        found["qos"]["reservations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // Down at the province toward the city, up at the city toward the province.
    for (chain, key, peer) in [
        (&province_chain, &province_key, "dc:4601"),
        (&city_chain, &city_key, "dc:46"),
    ] {
        let held = reservations(chain, key, peer);
        assert!(
            held.iter()
                .any(|r| r["booking"] == id && r["rate_kbps"].as_u64() > Some(2000)),
            "no reservation of #{id} toward {peer}: {held:?}"
        );
    }
    // Cancelled: the reservation goes.
    lab.act(ENGINEER, id, "cancel", None).ok(200);
    let held = reservations(&province_chain, &province_key, "dc:4601");
    assert!(!held.iter().any(|r| r["booking"] == id), "{held:?}");
}

#[test]
fn bookings_and_their_holds_survive_kill_9() {
    let lab = Lab::start("restart");
    let rate = most_of(lab.limit("dc:14", "dc:1401"));
    let held = lab.booked(&form(
        "重启前",
        "dc:14",
        &["dc:1401"],
        hours(24),
        60,
        rate,
        "routine",
    ));
    let requested = lab
        .book(
            SHANXI,
            &form(
                "待批",
                "dc:14",
                &["dc:1402"],
                hours(28),
                60,
                2000,
                "important",
            ),
        )
        .ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    let rejected = lab
        .book(
            ENGINEER,
            &form(
                "不批",
                "dc:14",
                &["dc:1403"],
                hours(28),
                60,
                2000,
                "routine",
            ),
        )
        .ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    lab.act(
        ENGINEER,
        rejected,
        "reject",
        Some(json!({"reason": "重复申请"})),
    )
    .ok(200);
    let before = lab.get(AUDITOR, "/v1/conferences").ok(200);

    lab.kill_9();
    lab.serve();

    let after = lab.get(AUDITOR, "/v1/conferences").ok(200);
    let essentials = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                json!([
                    b["id"],
                    b["recorded"],
                    b["held"],
                    b["start"],
                    b["end"],
                    b["form"],
                    b["history"]
                ])
            })
            .collect()
    };
    assert_eq!(essentials(&before), essentials(&after));
    assert_eq!(after.as_array().unwrap().len(), 3);
    let note = lab
        .get(AUDITOR, &format!("/v1/conferences/{rejected}"))
        .ok(200)["history"][1]["note"]
        .clone();
    assert_eq!(note, "重复申请");
    // The hold is back: an overlapping booking is refused, naming the one from before.
    let late = lab
        .book(
            ENGINEER,
            &form(
                "重启后",
                "dc:14",
                &["dc:1401"],
                hours(24),
                60,
                rate,
                "routine",
            ),
        )
        .ok(201)["booking"]["id"]
        .as_u64()
        .unwrap();
    assert!(late > rejected, "numbers go on after a restart");
    lab.act(ENGINEER, late, "approve", None).ok(200);
    lab.act(ENGINEER, late, "schedule", None).refused(
        409,
        &["link dc:14 → dc:1401", &format!("#{held} \"重启前\"")],
    );
    // The request filed before is still there to approve.
    lab.act(ENGINEER, requested, "approve", None).ok(200);
    let free = lab
        .get(
            NOC,
            &format!(
                "/v1/links/dc:1401/free?from={}&to={}",
                utc(hours(24)),
                utc(hours(25))
            ),
        )
        .ok(200);
    assert_eq!(free["directions"][0]["held_by"], json!([held]), "{free}");
    assert_eq!(lab.get(AUDITOR, "/v1/changes/verify").ok(200)["ok"], true);
}

#[test]
fn conf_book_reports_a_bad_form_at_its_lines_and_conf_free_shows_what_is_left() {
    let lab = &*LAB;
    let bad = lab.file(
        "bad-form.toml",
        "title = \"坏表\"\ncontact = \"王芳\"\nphone = \"010-84201234\"\nstart = \"tomorrow\"\n",
    );
    let output = lab.run(&["conf", "book", &bad]);
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{bad}:1: the form has no `organiser`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{bad}:4: bad start `tomorrow`")),
        "{err}"
    );

    let limit = lab.limit("dc:51", "dc:5101");
    let rate = most_of(limit);
    let good = lab.file(
        "good-form.toml",
        &form(
            "四川会",
            "dc:51",
            &["dc:5101"],
            hours(24),
            60,
            rate,
            "routine",
        ),
    );
    let (out, _) = lab.ok(&["conf", "book", &good]);
    let id: u64 = out
        .strip_prefix("booking #")
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    lab.ok(&["conf", "approve", &id.to_string()]);
    lab.ok(&["conf", "schedule", &format!("#{id}")]);
    let (from, to) = (utc(hours(24)), utc(hours(25)));
    let (out, _) = lab.ok(&[
        "conf",
        "free",
        "--link",
        "dc:51-dc:5101",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    let down = out
        .lines()
        .find(|l| l.trim_start().starts_with("down"))
        .unwrap();
    let reserved =
        lab.get(AUDITOR, &format!("/v1/conferences/{id}")).ok(200)["links"][0]["rate_kbps"]
            .as_u64()
            .unwrap();
    assert!(
        down.contains(&format!("{} kbit/s", limit - reserved)),
        "{out}"
    );
    assert!(down.contains(&format!("#{id}")), "{out}");
    // The server sees what the command line did, as `local:<user>`.
    let shown = lab.get(AUDITOR, &format!("/v1/conferences/{id}")).ok(200);
    assert_eq!(shown["state"], "scheduled");
    assert_eq!(
        shown["history"][0]["by"]["operator"],
        format!("local:{LOCAL_USER}")
    );
    let (out, _) = lab.ok(&["conf", "list", "--link", "dc:5101"]);
    assert!(
        out.lines()
            .any(|l| l.contains("四川会") && l.contains("scheduled")),
        "{out}"
    );
}
