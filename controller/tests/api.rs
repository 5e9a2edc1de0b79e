//! Every input the controller's API refuses, against a real `jinbao-controller serve`, called
//! with curl the way the README tells operators to call it.
//!
//! One controller serves the whole file: `init`, five operators (a national engineer, a
//! province-14 engineer, an auditor, a noc operator, and an auditor whose certificate a test
//! revokes), then `serve` on a free port of 127.0.0.1. Each test enrolls nodes no other test
//! touches, so they run in parallel. Every refusal is checked for its status code and for
//! the words that say what was wrong, so a regression to a generic error fails.
//!
//! The server runs under a small `sh` supervisor that holds a pipe from this process: when
//! the test binary exits (however it exits), the pipe closes and the supervisor stops the
//! server and removes the temporary directory.
//!
//! The last four tests pin server bugs found while writing these (now fixed).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use agent::control::{EnrollRequest, EnrollResponse, MAX_BODY, ModelSources};
use agent::control::{PlaneEnrollment, Status, Verifier};
use agent::identity::KeyDir;
use agent::model::Model;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use topology::Plane;
use topology::policy::EMBEDDED_POLICY;

use common::served::{As, Reply, Served};

/// The national engineer (no province scope).
const ENGINEER: As = As::Operator("liwei");
/// An engineer scoped to province 14 (山西).
const SHANXI: As = As::Operator("wangfang");
/// An auditor.
const AUDITOR: As = As::Operator("zhaoli");
/// A noc operator.
const NOC: As = As::Operator("sunqi");
/// An auditor whose certificate `a_revoked_operator_certificate_fails_the_handshake` revokes.
const REVOKED: As = As::Operator("chenjie");

/// Who runs the `jinbao-controller` commands (`local:<user>` in the change log).
const LOCAL_USER: &str = "apitest";
/// A well-formed token that was never issued.
const NEVER_ISSUED: &str = "0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const JSON: &str = "application/json";

/// What an auditor or an engineer reads, and a noc operator may not.
const READ: [&str; 8] = [
    "/v1/nodes",
    "/v1/tokens",
    "/v1/certificates",
    "/v1/policy",
    "/v1/changes",
    "/v1/changes/verify",
    "/v1/operators",
    "/v1/plan",
];
/// What every role reads: health, alerts and when certificates expire.
const HEALTH: [&str; 5] = [
    "/v1/links",
    "/v1/alerts",
    "/v1/census",
    "/v1/snmp/devices",
    "/v1/certificates/expiry",
];

static LAB: LazyLock<Lab> = LazyLock::new(Lab::start);

/// The served controller directory, its operators, and the model nodes are enrolled from.
struct Lab {
    served: Served,
    model: Arc<Model>,
}

impl std::ops::Deref for Lab {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl Lab {
    fn start() -> Lab {
        let operators = [
            (ENGINEER.login(), "engineer", None),
            (SHANXI.login(), "engineer", Some("14")),
            (AUDITOR.login(), "auditor", None),
            (NOC.login(), "noc", None),
            (REVOKED.login(), "auditor", None),
        ];
        let served = Served::init("api", LOCAL_USER, &operators);
        served.serve();
        Lab {
            served,
            model: Model::load(&ModelSources::default()).unwrap(),
        }
    }

    fn get(&self, who: As<'_>, path: &str) -> Reply {
        self.call(who, "GET", path, None)
    }

    fn post(&self, who: As<'_>, path: &str, body: Value) -> Reply {
        self.call(who, "POST", path, Some((JSON, body.to_string().as_bytes())))
    }

    fn put_policy(&self, who: As<'_>, text: &str) -> Reply {
        self.call(
            who,
            "PUT",
            "/v1/policy",
            Some(("text/plain", text.as_bytes())),
        )
    }

    /// `node token NODE --ttl TTL`: the token on the first line.
    fn token(&self, node: &str, ttl: &str) -> String {
        let (out, _) = self.ok(&["node", "token", node, "--ttl", ttl]);
        out.lines().next().unwrap().trim().to_owned()
    }

    /// A node's key directory, as its agent keeps it.
    fn keys(&self, node: &str) -> KeyDir {
        KeyDir::new(&self.work.join("keys").join(node.replace(':', "-")))
    }

    /// A node's certificate request for `plane` (its keys made on first use).
    fn csr(&self, node: &str, plane: Plane) -> String {
        let keys = self.keys(node);
        if !keys.wireguard_key_path(plane).exists() {
            keys.generate(plane, pki::KeyAlgorithm::EcdsaP256).unwrap();
        }
        let (network, allocation) = (&self.model.network, &self.model.allocation);
        keys.request(network, allocation, node.parse().unwrap(), plane, None)
            .unwrap()
    }

    /// `POST /v1/enroll` with a raw body.
    fn enroll_raw(&self, body: &[u8]) -> Reply {
        self.call(As::Nobody, "POST", "/v1/enroll", Some((JSON, body)))
    }

    /// `POST /v1/enroll` with a token and `(plane, csr)` per plane.
    fn enroll(&self, token: &str, planes: &[(Plane, String)]) -> Reply {
        let planes = planes.iter().map(|(plane, csr)| PlaneEnrollment {
            plane: *plane,
            csr: csr.clone(),
            listen: "127.0.0.1:51820".parse().unwrap(),
            backup_listen: None,
        });
        let request = EnrollRequest {
            token: token.to_owned(),
            planes: planes.collect(),
        };
        self.enroll_raw(&serde_json::to_vec(&request).unwrap())
    }

    /// Enrolls `node` on the business plane with its own request.
    fn enroll_business(&self, token: &str, node: &str) -> Reply {
        self.enroll(token, &[(Plane::Business, self.csr(node, Plane::Business))])
    }

    /// Checks a successful enrollment: the node, a chain per plane, a bundle for the node
    /// signed by the controller (checked against the root).
    #[track_caller]
    fn enrolled(&self, reply: &Reply, node: &str, planes: &[Plane]) -> EnrollResponse {
        assert_eq!(reply.status, 200, "{reply:?}");
        let answer: EnrollResponse = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(answer.node.to_string(), node);
        let got: Vec<Plane> = answer.certificates.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, planes);
        let root = CertificateDer::from_pem_file(self.dir.join("ca/root.pem")).unwrap();
        let verifier = Verifier::Root(&root);
        let bundle = answer
            .bundle
            .open(verifier, Some(answer.node), None, SystemTime::now());
        assert_eq!(bundle.unwrap().node, answer.node);
        answer
    }

    /// The token with this token's id, as an auditor lists it.
    fn token_record(&self, token: &str) -> Value {
        let id = token.split('.').next().unwrap();
        let tokens = self.get(AUDITOR, "/v1/tokens").ok(200);
        let found = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned();
        found.unwrap_or_else(|| panic!("no token {id} in {tokens}"))
    }

    fn nodes(&self) -> String {
        self.ok(&["node", "list"]).0
    }
}

#[test]
fn a_token_never_issued_is_refused_as_unknown_or_malformed() {
    let lab = &*LAB;
    let planes = [(Plane::Business, lab.csr("dc:1401", Plane::Business))];
    let words = ["enrollment token: unknown enrollment token"];
    lab.enroll(NEVER_ISSUED, &planes).refused(403, &words);
    // The right id with a wrong secret is just as unknown, and never quoted back.
    let issued = lab.token("dc:1401", "10m");
    let (id, secret) = issued.split_once('.').unwrap();
    let flipped = if secret.starts_with('A') { 'B' } else { 'A' };
    let error = lab
        .enroll(&format!("{id}.{flipped}{}", &secret[1..]), &planes)
        .refused(403, &words);
    assert!(
        !error.contains(&secret[1..]),
        "a refusal never quotes the token: {error}"
    );
    let words = [
        "malformed enrollment token",
        "`<id>.<secret>` exactly as issued",
    ];
    lab.enroll("not-a-token", &planes).refused(403, &words);
    assert!(lab.token_record(&issued)["used_at"].is_null());
}

#[test]
fn a_replayed_token_is_refused_as_used() {
    let lab = &*LAB;
    let token = lab.token("dc:1402", "10m");
    let planes = [(Plane::Business, lab.csr("dc:1402", Plane::Business))];
    lab.enrolled(&lab.enroll(&token, &planes), "dc:1402", &[Plane::Business]);
    assert!(!lab.token_record(&token)["used_at"].is_null());
    let words = ["enrollment token: enrollment token already used at 20"];
    lab.enroll(&token, &planes).refused(403, &words);
    let nodes = lab.nodes();
    assert_eq!(
        nodes.lines().filter(|l| l.starts_with("dc:1402\t")).count(),
        1,
        "{nodes}"
    );
}

#[test]
fn an_expired_token_is_refused_as_expired() {
    let lab = &*LAB;
    let token = lab.token("dc:1403", "1s");
    let planes = [(Plane::Business, lab.csr("dc:1403", Plane::Business))];
    std::thread::sleep(Duration::from_millis(1_500));
    let words = ["enrollment token: enrollment token expired at 20"];
    lab.enroll(&token, &planes).refused(403, &words);
    assert!(lab.token_record(&token)["used_at"].is_null());
}

#[test]
fn a_csr_for_another_node_is_refused_naming_both_and_the_token_stays_good() {
    let lab = &*LAB;
    let token = lab.token("dc:1404", "10m");
    lab.enroll_business(&token, "dc:1405").refused(
        400,
        &["the business plane's certificate request is for dc:1405, but the token is for dc:1404"],
    );
    assert!(
        lab.token_record(&token)["used_at"].is_null(),
        "a refusal spends no token"
    );
    let reply = lab.enroll_business(&token, "dc:1404");
    lab.enrolled(&reply, "dc:1404", &[Plane::Business]);
}

#[test]
fn a_csr_for_the_wrong_plane_or_not_a_node_csr_is_refused() {
    let lab = &*LAB;
    let token = lab.token("dc:1406", "10m");
    let business = lab.csr("dc:1406", Plane::Business);
    let office = lab.csr("dc:1406", Plane::Office);
    let words = ["the certificate request sent for the office plane is for the business plane"];
    lab.enroll(&token, &[(Plane::Office, business.clone())])
        .refused(400, &words);
    let words = ["business plane: not a PEM certificate request"];
    lab.enroll(&token, &[(Plane::Business, "hello".into())])
        .refused(400, &words);
    let mangled = business.replacen("MII", "MIJ", 1);
    let words = ["business plane: malformed certificate request"];
    lab.enroll(&token, &[(Plane::Business, mangled)])
        .refused(400, &words);
    let operator = std::fs::read_to_string(lab.path("zhaoli.csr")).unwrap();
    let words = ["business plane: an operator certificate request, not a node's"];
    lab.enroll(&token, &[(Plane::Business, operator)])
        .refused(400, &words);
    // A bad plane after a good one refuses the whole enrollment.
    let planes = [
        (Plane::Business, business.clone()),
        (Plane::Public, office.clone()),
    ];
    let words = ["the certificate request sent for the public plane is for the office plane"];
    lab.enroll(&token, &planes).refused(400, &words);
    assert!(!lab.nodes().contains("dc:1406\t"));
    assert!(lab.token_record(&token)["used_at"].is_null());
    let planes = [(Plane::Business, business), (Plane::Office, office)];
    lab.enrolled(
        &lab.enroll(&token, &planes),
        "dc:1406",
        &[Plane::Business, Plane::Office],
    );
}

#[test]
fn malformed_enrollment_json_is_refused_saying_what_is_wrong() {
    let lab = &*LAB;
    let csr = lab.csr("dc:1407", Plane::Business);
    let plane = |extra: Value| {
        let mut plane = json!({"plane": "business", "csr": csr, "listen": "127.0.0.1:51820"});
        plane
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"token": NEVER_ISSUED, "planes": [plane]}).to_string()
    };
    let good = plane(json!({}));
    let syntax = "Failed to parse the request body as JSON";
    let cases: [(String, &[&str]); 10] = [
        (
            good[..good.len() / 2].to_owned(),
            &[syntax, "EOF while parsing"],
        ),
        ("not json".into(), &[syntax, "expected ident"]),
        (
            json!({"token": 5, "planes": []}).to_string(),
            &["token: invalid type: integer `5`"],
        ),
        (
            json!({"token": "t", "planes": {}}).to_string(),
            &["invalid type: map, expected a sequence"],
        ),
        (
            json!({"token": "t", "planes": [], "admin": true}).to_string(),
            &["unknown field `admin`"],
        ),
        (
            json!({"planes": []}).to_string(),
            &["missing field `token`"],
        ),
        (plane(json!({"zones": []})), &["unknown field `zones`"]),
        (
            plane(json!({"listen": "localhost"})),
            &["invalid socket address"],
        ),
        (plane(json!({"plane": "satellite"})), &["satellite"]),
        (
            json!({"token": NEVER_ISSUED, "planes": []}).to_string(),
            &["no plane to enroll on"],
        ),
    ];
    for (body, words) in cases {
        let error = lab.enroll_raw(body.as_bytes()).refused(400, words);
        assert!(!error.contains("internal"), "{body}: {error}");
    }
    // The well-formed request gets as far as the token.
    lab.enroll_raw(good.as_bytes())
        .refused(403, &["unknown enrollment token"]);
    let reply = lab.call(
        As::Nobody,
        "POST",
        "/v1/enroll",
        Some(("text/plain", good.as_bytes())),
    );
    reply.refused(
        400,
        &["Expected request with `Content-Type: application/json`"],
    );
}

#[test]
fn a_body_over_one_mebibyte_is_refused_as_too_large() {
    let lab = &*LAB;
    let body = json!({"token": "x".repeat(MAX_BODY), "planes": []}).to_string();
    let words = ["Failed to buffer the request body: length limit exceeded"];
    lab.enroll_raw(body.as_bytes()).refused(413, &words);
    // Just under the limit is read, and refused for what it says.
    let fits = json!({"token": "x".repeat(MAX_BODY - 100), "planes": []}).to_string();
    assert!(fits.len() <= MAX_BODY);
    lab.enroll_raw(fits.as_bytes())
        .refused(400, &["no plane to enroll on"]);
    let report = format!(
        "{{\"version\": 1, \"planes\": [], \"x\": \"{}\"}}",
        "x".repeat(MAX_BODY)
    );
    let reply = lab.call(
        ENGINEER,
        "POST",
        "/v1/agent/health",
        Some((JSON, report.as_bytes())),
    );
    reply.refused(403, &["agent route"]); // the caller first, then the body
    // The policy route shares the limit (its refusal is not JSON: see
    // `every_refusal_is_a_json_error`).
    let reply = lab.put_policy(ENGINEER, &body);
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.body.contains("length limit exceeded"), "{reply:?}");
}

#[test]
fn agent_routes_need_a_node_certificate() {
    let lab = &*LAB;
    let report = serde_json::to_vec(&Status::default()).unwrap();
    let health = Some((JSON, report.as_slice()));
    let words = ["this is an agent route and needs a node certificate (mutual TLS)"];
    lab.get(As::Nobody, "/v1/agent/bundle?after=0")
        .refused(401, &words);
    lab.call(As::Nobody, "POST", "/v1/agent/health", health)
        .refused(401, &words);
    for who in [ENGINEER, NOC] {
        let words = [
            "this is an agent route and needs a node certificate;",
            &format!("{} presented an operator certificate", who.login()),
        ];
        lab.get(who, "/v1/agent/bundle?after=0")
            .refused(403, &words);
        lab.call(who, "POST", "/v1/agent/health", health)
            .refused(403, &words);
    }
}

#[test]
fn a_node_certificate_opens_its_agent_routes_only() {
    let lab = &*LAB;
    let token = lab.token("dc:1408", "10m");
    let answer = lab.enrolled(
        &lab.enroll_business(&token, "dc:1408"),
        "dc:1408",
        &[Plane::Business],
    );
    let chain = lab.work.join("dc-1408.pem");
    std::fs::write(&chain, &answer.certificates[0].1).unwrap();
    let key = lab.keys("dc:1408").tls_key_path();
    let node = As::Node(&chain, &key);

    let bundle = lab.get(node, "/v1/agent/bundle?after=0").ok(200);
    assert!(
        bundle["signature"].is_string() && bundle["bundle"].is_string(),
        "{bundle}"
    );
    let report = |node: &str| {
        let status = Status {
            node: Some(node.parse().unwrap()),
            ..Status::default()
        };
        serde_json::to_vec(&status).unwrap()
    };
    let own = report("dc:1408");
    lab.call(node, "POST", "/v1/agent/health", Some((JSON, &own)))
        .ok(204);
    let other = report("dc:1409");
    let reply = lab.call(node, "POST", "/v1/agent/health", Some((JSON, &other)));
    reply.refused(
        403,
        &["dc:1408 may only report for itself, not for dc:1409"],
    );
    let nonsense = br#"{"version": "new"}"#.as_slice();
    let reply = lab.call(node, "POST", "/v1/agent/health", Some((JSON, nonsense)));
    reply.refused(400, &["version: invalid type: string \"new\""]);

    let words = [
        "this is an operator route and needs an operator certificate;",
        "dc:1408 presented a node certificate",
    ];
    lab.get(node, "/v1/nodes").refused(403, &words);
    lab.post(node, "/v1/tokens", json!({"node": "dc:1408"}))
        .refused(403, &words);
}

#[test]
fn roles_decide_what_an_operator_may_read_and_change() {
    let lab = &*LAB;
    for path in READ {
        let words = ["this needs the role auditor or engineer; sunqi has the role noc"];
        lab.get(NOC, path).refused(403, &words);
        for who in [AUDITOR, ENGINEER, SHANXI] {
            assert_eq!(lab.get(who, path).status, 200, "{} {path}", who.login());
        }
    }
    for path in HEALTH {
        for who in [NOC, AUDITOR, ENGINEER, SHANXI] {
            assert_eq!(lab.get(who, path).status, 200, "{} {path}", who.login());
        }
    }
    let due = lab.get(NOC, "/v1/certificates/expiry").ok(200);
    let due = due.as_array().unwrap();
    assert!(!due.is_empty());
    assert!(
        due.iter().all(|c| c["pem"] == ""),
        "the NOC gets no certificate bodies"
    );
    let ends: Vec<&str> = due
        .iter()
        .map(|c| c["not_after"].as_str().unwrap())
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] <= w[1]),
        "soonest first: {ends:?}"
    );
    let words = ["unknown format `xml` (json, csv or text)"];
    lab.get(NOC, "/v1/census?format=xml").refused(400, &words);
    for (who, role) in [(AUDITOR, "auditor"), (NOC, "noc")] {
        let text = format!(
            "this needs the role engineer; {} has the role {role}",
            who.login()
        );
        let words = [text.as_str()];
        lab.post(who, "/v1/tokens", json!({"node": "dc:1401"}))
            .refused(403, &words);
        lab.put_policy(who, EMBEDDED_POLICY).refused(403, &words);
        lab.post(who, "/v1/alerts/1/ack", json!({}))
            .refused(403, &words);
    }
    let words = ["no open alert 999999"];
    lab.post(ENGINEER, "/v1/alerts/999999/ack", json!({}))
        .refused(404, &words);
}

#[test]
fn a_province_engineer_changes_only_its_province() {
    let lab = &*LAB;
    let words = [
        "dc:1301 is outside province 14: this change needs an engineer of province 13 or a \
         national engineer; wangfang is scoped to province 14",
    ];
    lab.post(SHANXI, "/v1/tokens", json!({"node": "dc:1301"}))
        .refused(403, &words);
    let words = [
        "dc:ministry is outside province 14",
        "an engineer of the ministry",
    ];
    lab.post(SHANXI, "/v1/tokens", json!({"node": "dc:ministry"}))
        .refused(403, &words);
    let issued = lab
        .post(
            SHANXI,
            "/v1/tokens",
            json!({"node": "dc:1409", "ttl_s": 600}),
        )
        .ok(200);
    assert_eq!(issued["node"], "dc:1409");
    let token = issued["token"].as_str().unwrap();
    assert_eq!(lab.token_record(token)["created_by"], "operator:wangfang");
    // The token the API made enrolls the node.
    lab.enrolled(
        &lab.enroll_business(token, "dc:1409"),
        "dc:1409",
        &[Plane::Business],
    );
    let words = [
        "this is a national change and needs an engineer without a province scope; wangfang \
         is scoped to province 14",
    ];
    lab.put_policy(SHANXI, EMBEDDED_POLICY).refused(403, &words);
}

#[test]
fn a_token_order_that_makes_no_sense_is_refused() {
    let lab = &*LAB;
    let order = |body: Value| lab.post(ENGINEER, "/v1/tokens", body);
    order(json!({"node": "dc:1499"})).refused(400, &["dc:1499 is not a node of the network"]);
    for ttl in [0, 7 * 86_400 + 1] {
        let words = ["ttl_s must be between 1 s and one week"];
        order(json!({"node": "dc:1410", "ttl_s": ttl})).refused(400, &words);
    }
    order(json!({"node": "dc:1410", "ttl": "1h"})).refused(400, &["unknown field `ttl`"]);
    order(json!({"node": "Taiyuan"})).refused(400, &["node: ", "Taiyuan"]);
    order(json!({"ttl_s": 60})).refused(400, &["missing field `node`"]);
    let reply = lab.call(ENGINEER, "POST", "/v1/tokens", Some((JSON, b"{\"node\": ")));
    reply.refused(400, &["Failed to parse the request body as JSON"]);
}

#[test]
fn a_policy_that_breaks_an_invariant_is_refused_with_the_checkers_words() {
    let lab = &*LAB;
    let with_rule = |name: &str, from: &str, to: &str| {
        format!(
            "{EMBEDDED_POLICY}\n[[rules]]\nname = \"{name}\"\nfrom = \"{from}\"\nto = \"{to}\"\n\
             scope = \"same-site\"\nproto = \"tcp\"\nports = [443]\n"
        )
    };
    let words = ["rule 'dmz-in' lets the public plane reach production, which it never may"];
    let breaking = with_rule("dmz-in", "public:dmz", "production");
    lab.put_policy(ENGINEER, &breaking).refused(422, &words);
    let crossing = with_rule("bridge", "office:decision", "business:production");
    let words = ["rule 'bridge' crosses planes: office:decision → business:production"];
    lab.put_policy(ENGINEER, &crossing).refused(422, &words);
    let words = ["policy version 2 is not supported"];
    lab.put_policy(ENGINEER, "version = 2\n")
        .refused(422, &words);
    let reply = lab.get(ENGINEER, "/v1/policy");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, EMBEDDED_POLICY, "a refused policy is not kept");
}

#[test]
fn admin_routes_need_an_operator_certificate() {
    let lab = &*LAB;
    let words = ["this is an operator route and needs an operator certificate (mutual TLS)"];
    for path in READ.into_iter().chain(HEALTH) {
        lab.get(As::Nobody, path).refused(401, &words);
    }
    lab.post(As::Nobody, "/v1/alerts/1/ack", json!({}))
        .refused(401, &words);
    lab.post(As::Nobody, "/v1/tokens", json!({"node": "dc:1401"}))
        .refused(401, &words);
    lab.put_policy(As::Nobody, EMBEDDED_POLICY)
        .refused(401, &words);
    let certificates = lab.get(AUDITOR, "/v1/certificates").ok(200);
    let controller = certificates
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "controller");
    let serial = controller.unwrap()["serial"].as_str().unwrap();
    let revoke = format!("/v1/certificates/{serial}/revoke");
    lab.post(As::Nobody, &revoke, json!({}))
        .refused(401, &words);
}

/// Server bug: the revoke route reads its body and looks the serial up before it asks who
/// is calling, so a caller without a certificate learns whether a serial exists (404) and
/// gets JSON errors (400) instead of 401.
#[test]
fn the_revoke_route_asks_who_is_calling_first() {
    let lab = &*LAB;
    let words = ["needs an operator certificate"];
    let revoke = "/v1/certificates/00112233445566778899aabbccddeeff/revoke";
    lab.post(As::Nobody, revoke, json!({})).refused(401, &words);
    lab.call(As::Nobody, "POST", revoke, None)
        .refused(401, &words);
}

/// Server bug: refusals made by axum's extractors and router (a query string that does not
/// parse, a policy body over the limit or not UTF-8, an unknown route, a wrong method) are
/// plain text or empty, not `{"error": "…"}`; the query ones also come before the caller is
/// checked.
#[test]
fn every_refusal_is_a_json_error() {
    let lab = &*LAB;
    let too_big = "#".repeat(MAX_BODY + 1);
    let not_utf8 = Some(("text/plain", b"\xff\xfe".as_slice()));
    let replies = [
        (lab.get(ENGINEER, "/v1/changes?limit=many"), 400, "limit"),
        (
            lab.get(As::Nobody, "/v1/changes?after=x"),
            401,
            "operator certificate",
        ),
        (
            lab.get(As::Nobody, "/v1/agent/bundle?after=x"),
            401,
            "node certificate",
        ),
        (lab.put_policy(ENGINEER, &too_big), 413, "limit"),
        (
            lab.call(ENGINEER, "PUT", "/v1/policy", not_utf8),
            400,
            "UTF-8",
        ),
        (
            lab.get(ENGINEER, "/v1/no-such-thing"),
            404,
            "/v1/no-such-thing",
        ),
        (
            lab.call(ENGINEER, "DELETE", "/v1/nodes", None),
            405,
            "DELETE",
        ),
    ];
    for (reply, status, word) in replies {
        reply.refused(status, &[word]);
    }
}

/// Server bug: enrollment issues each plane's certificate into the CA directory before the
/// store transaction commits; when a later plane is refused the transaction rolls back but
/// the CA directory keeps a certificate for a node that never enrolled (`cert list` shows
/// it valid, `GET /v1/certificates` does not know it).
#[test]
fn a_refused_enrollment_issues_nothing() {
    let lab = &*LAB;
    let token = lab.token("dc:1411", "10m");
    let planes = [
        (Plane::Business, lab.csr("dc:1411", Plane::Business)),
        (Plane::Office, "hello".into()),
    ];
    let words = ["office plane: not a PEM certificate request"];
    lab.enroll(&token, &planes).refused(400, &words);
    let (listed, _) = lab.ok(&["cert", "list", "--authority", "14"]);
    assert!(!listed.contains("dc:1411"), "{listed}");
}

/// Server bug: an operator's first call records them in the store with `serial: null`,
/// overwriting the serial `cert issue` recorded (and logs an `upsert operator` change for
/// what may be a read).
#[test]
fn an_operators_calls_keep_the_serial_cert_issue_recorded() {
    let lab = &*LAB;
    let serial = std::fs::read_to_string(lab.path("zhaoli.serial")).unwrap();
    let operators = lab.get(AUDITOR, "/v1/operators").ok(200);
    let zhaoli = operators
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["login"] == "zhaoli");
    assert_eq!(zhaoli.unwrap()["serial"], serial.as_str(), "{operators}");
}

#[test]
fn a_revoked_operator_certificate_fails_the_handshake() {
    let lab = &*LAB;
    lab.get(REVOKED, "/v1/nodes").ok(200);
    let serial = std::fs::read_to_string(lab.path("chenjie.serial")).unwrap();
    let (said, _) = lab.ok(&["cert", "revoke", "--reason", "key-compromise", &serial]);
    assert!(
        said.contains(&format!("revoked {serial} (key-compromise)")),
        "{said}"
    );
    // The server reloads the CRLs within a reconcile tick (250 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        match lab.curl(REVOKED, "GET", "/v1/nodes", None) {
            Err(refusal) => break refusal,
            Ok(reply) => {
                reply.ok(200);
                assert!(
                    Instant::now() < deadline,
                    "still served 10 s after the revocation"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(refusal.contains("certificate revoked"), "{refusal}");
    lab.get(AUDITOR, "/v1/nodes").ok(200); // the others' certificates still work
}

#[test]
fn the_change_log_says_who_changed_what_and_verifies() {
    let lab = &*LAB;
    let issued = lab
        .post(ENGINEER, "/v1/tokens", json!({"node": "dc:1410"}))
        .ok(200);
    let cli_token = lab.token("dc:1410", "10m");
    lab.put_policy(ENGINEER, EMBEDDED_POLICY).ok(204);

    let changes = lab.get(AUDITOR, "/v1/changes?limit=10000").ok(200);
    let changes = changes.as_array().unwrap();
    let logged = |who: &str, what: &str, token: Option<&str>| {
        changes.iter().any(|c| {
            c["who"] == who && c["what"] == what && token.is_none_or(|t| c["detail"]["token"] == t)
        })
    };
    let local = format!("local:{LOCAL_USER}");
    assert!(
        logged("operator:liwei", "create token", issued["id"].as_str()),
        "{changes:?}"
    );
    assert!(
        logged(&local, "create token", cli_token.split('.').next()),
        "{changes:?}"
    );
    let policy = logged("operator:liwei", "setting policy", None);
    assert!(policy, "{changes:?}");
    let issue = logged(&local, "record certificate", None);
    assert!(issue, "cert issue is logged: {changes:?}");
    for (i, entry) in changes.iter().enumerate() {
        assert_eq!(entry["seq"], i + 1);
        let previous = if i == 0 {
            &json!("0".repeat(64))
        } else {
            &changes[i - 1]["hash"]
        };
        assert_eq!(&entry["prev_hash"], previous, "{entry}");
    }
    let page = lab.get(ENGINEER, "/v1/changes?after=1&limit=1").ok(200);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["seq"], 2);

    let verify = lab.get(AUDITOR, "/v1/changes/verify").ok(200);
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["problem"].is_null(), "{verify}");
    assert!(
        verify["entries"].as_u64().unwrap() >= changes.len() as u64,
        "{verify}"
    );
}
