//! The controller's durable store, through its public API and, where a test plays the
//! attacker or an older controller, through SQLite directly.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use controller::store::{
    AlertRecord, BreakKind, CertificateKind, CertificateRecord, ChainBreak, MIGRATIONS, NodeRecord,
    OperatorRecord, SCHEMA_VERSION, Store, StoreError, TokenRefusal,
};
use pki::{Role, WireGuardKey};
use serde_json::json;
use topology::{NodeId, Plane};

/// 2026-01-01T00:00:00Z plus `secs`.
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
}

/// A fresh directory for one test, and the store path inside it.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("store-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("controller.db")
}

fn node(text: &str) -> NodeId {
    text.parse().unwrap()
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn user_version(conn: &rusqlite::Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

// --- schema and migrations -------------------------------------------------------------

#[test]
fn open_creates_the_current_schema_in_wal_mode() {
    let path = scratch("open");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    let conn = raw(&path);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // Reopening changes nothing.
    assert_eq!(
        Store::open(&path).unwrap().schema_version().unwrap(),
        SCHEMA_VERSION
    );
}

#[test]
fn a_store_at_schema_version_1_migrates_up_and_keeps_its_data() {
    let path = scratch("migrate");
    {
        let conn = raw(&path);
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO settings (key, value, updated_at_ms, updated_by)
             VALUES ('policy', 'old policy', 1767225600000, 'alice')",
            [],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.read(|tx| tx.setting("policy")).unwrap().as_deref(),
        Some("old policy")
    );
    let indexes: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'alerts_by_time'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1, "migration 2 ran");
}

#[test]
fn a_store_from_a_newer_controller_is_refused_and_left_alone() {
    let path = scratch("newer");
    drop(Store::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match Store::open(&path) {
        Err(StoreError::NewerSchema { found, known }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(user_version(&raw(&path)), i64::from(SCHEMA_VERSION + 1));
    let message = Store::open(&path).unwrap_err().to_string();
    assert!(message.contains("newer controller"), "{message}");
}

#[test]
fn a_missing_directory_is_an_error_that_names_the_path() {
    let path = scratch("missing")
        .with_file_name("no-such-dir")
        .join("controller.db");
    let message = Store::open(&path).unwrap_err().to_string();
    assert!(message.contains("no-such-dir"), "{message}");
}

// --- enrollment tokens ------------------------------------------------------------------

#[test]
fn a_token_enrolls_its_node_once() {
    let store = Store::open(&scratch("token-once")).unwrap();
    let dc = node("dc:1401");
    let new = store
        .write(|tx| tx.create_token(&dc, Duration::from_secs(3600), at(0), "alice"))
        .unwrap();
    assert_eq!(new.node, dc);
    assert_eq!(new.expires_at, at(3600));
    assert!(new.token.starts_with(&format!("{}.", new.id)));

    assert_eq!(
        store
            .write(|tx| tx.redeem_token(&new.token, at(60)))
            .unwrap(),
        dc
    );
    match store.write(|tx| tx.redeem_token(&new.token, at(120))) {
        Err(StoreError::Token(TokenRefusal::Used { at: used })) => assert_eq!(used, at(60)),
        other => panic!("a replayed token must be refused as used, got {other:?}"),
    }

    let tokens = store.read(|tx| tx.tokens()).unwrap();
    assert_eq!(tokens.len(), 1);
    let record = &tokens[0];
    assert_eq!(record.id, new.id);
    assert_eq!(
        (record.node, record.created_at, record.created_by.as_str()),
        (dc, at(0), "alice")
    );
    assert_eq!(
        (record.expires_at, record.used_at),
        (at(3600), Some(at(60)))
    );
    let json = serde_json::to_string(record).unwrap();
    assert!(
        json.contains(r#""used_at":"2026-01-01T00:01:00.000Z""#),
        "{json}"
    );
    assert!(!json.contains(new.token.split_once('.').unwrap().1));

    let what: Vec<String> = store
        .read(|tx| tx.changes(0, 10))
        .unwrap()
        .into_iter()
        .map(|c| format!("{} {}", c.who, c.what))
        .collect();
    assert_eq!(what, ["alice create token", "dc:1401 redeem token"]);
}

#[test]
fn an_expired_token_is_refused_with_its_expiry() {
    let store = Store::open(&scratch("token-expired")).unwrap();
    let new = store
        .write(|tx| tx.create_token(&node("dc:14"), Duration::from_secs(600), at(0), "alice"))
        .unwrap();
    for when in [at(600), at(601), at(86_400)] {
        match store.write(|tx| tx.redeem_token(&new.token, when)) {
            Err(StoreError::Token(TokenRefusal::Expired { at: expired })) => {
                assert_eq!(expired, at(600));
            }
            other => panic!("expected Expired, got {other:?}"),
        }
    }
    // A refusal consumes nothing and logs nothing.
    assert_eq!(store.read(|tx| tx.tokens()).unwrap()[0].used_at, None);
    assert_eq!(store.read(|tx| tx.changes(0, 10)).unwrap().len(), 1);
}

#[test]
fn unknown_and_malformed_tokens_are_refused() {
    let store = Store::open(&scratch("token-unknown")).unwrap();
    let new = store
        .write(|tx| tx.create_token(&node("dc:14"), Duration::from_secs(600), at(0), "alice"))
        .unwrap();
    let other = store
        .write(|tx| tx.create_token(&node("dc:15"), Duration::from_secs(600), at(0), "alice"))
        .unwrap();
    let secret = |t: &str| t.split_once('.').unwrap().1.to_owned();
    let refusal = |token: &str| match store.write(|tx| tx.redeem_token(token, at(1))) {
        Err(StoreError::Token(refusal)) => refusal,
        result => panic!("{token:?} must be refused, got {result:?}"),
    };

    // The right id with another token's secret; an id never issued.
    let crossed = format!("{}.{}", new.id, secret(&other.token));
    assert_eq!(refusal(&crossed), TokenRefusal::Unknown);
    let unissued = format!("0000000000000000.{}", secret(&new.token));
    assert_eq!(refusal(&unissued), TokenRefusal::Unknown);

    for malformed in [
        "",
        "hello",
        &new.id,
        &format!("{}.", new.id),
        &format!("{}x", new.token),
    ] {
        assert_eq!(refusal(malformed), TokenRefusal::Malformed, "{malformed:?}");
    }
    assert!(!TokenRefusal::Unknown.to_string().contains(&new.id));

    // None of that used the real tokens up.
    assert_eq!(
        store
            .write(|tx| tx.redeem_token(&new.token, at(2)))
            .unwrap(),
        node("dc:14")
    );
    assert_eq!(
        store
            .write(|tx| tx.redeem_token(&other.token, at(2)))
            .unwrap(),
        node("dc:15")
    );
}

#[test]
fn a_token_redeemed_in_a_write_that_fails_stays_good() {
    let store = Store::open(&scratch("token-rollback")).unwrap();
    let new = store
        .write(|tx| tx.create_token(&node("dc:14"), Duration::from_secs(600), at(0), "alice"))
        .unwrap();
    let failed = store.write(|tx| {
        tx.redeem_token(&new.token, at(1))?;
        Err::<(), _>(StoreError::Invalid {
            what: "the CSR did not match".into(),
        })
    });
    assert!(matches!(failed, Err(StoreError::Invalid { .. })));
    assert_eq!(
        store
            .write(|tx| tx.redeem_token(&new.token, at(2)))
            .unwrap(),
        node("dc:14")
    );
}

#[test]
fn the_token_secret_is_nowhere_in_the_database_files() {
    let path = scratch("token-secret");
    let store = Store::open(&path).unwrap();
    let new = store
        .write(|tx| tx.create_token(&node("dc:14"), Duration::from_secs(600), at(0), "alice"))
        .unwrap();
    let secret = new.token.split_once('.').unwrap().1.to_owned();
    assert!(secret.len() >= 22, "at least 128 bits of base64");

    let files_contain = |needle: &str| {
        let dir = path.parent().unwrap();
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    };
    // The id is stored (the check can see), the secret is not: with the store open (the
    // write-ahead log holds the commit) and after it is closed (checkpointed).
    assert!(files_contain(&new.id));
    assert!(!files_contain(&secret));
    drop(store);
    assert!(files_contain(&new.id));
    assert!(!files_contain(&secret));
}

// --- records ----------------------------------------------------------------------------

fn node_record(id: &str, plane: Plane, serial: &str, enrolled: SystemTime) -> NodeRecord {
    NodeRecord {
        node: node(id),
        plane,
        wireguard_key: WireGuardKey([7; 32]),
        listen: "192.0.2.1:51820".parse().unwrap(),
        backup_listen: Some("198.51.100.1:51820".parse().unwrap()),
        certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        serial: serial.into(),
        enrolled_at: enrolled,
    }
}

fn certificate(serial: &str, subject: &str, not_after: SystemTime) -> CertificateRecord {
    CertificateRecord {
        serial: serial.into(),
        subject: subject.into(),
        kind: CertificateKind::Node,
        plane: Some(Plane::Business),
        issuer: "14".into(),
        not_after,
        pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        revoked: None,
    }
}

#[test]
fn nodes_round_trip_and_re_enrollment_replaces_the_plane_row() {
    let path = scratch("nodes");
    let store = Store::open(&path).unwrap();
    let first = node_record("dc:14", Plane::Business, "0a01", at(0));
    let office = NodeRecord {
        backup_listen: None,
        ..node_record("dc:14", Plane::Office, "0a02", at(1))
    };
    store
        .write(|tx| {
            tx.enroll_node(&first, "alice")?;
            tx.enroll_node(&office, "alice")
        })
        .unwrap();
    let renewed = NodeRecord {
        wireguard_key: WireGuardKey([9; 32]),
        serial: "0A03".into(),
        ..node_record("dc:14", Plane::Business, "0a03", at(100))
    };
    store.write(|tx| tx.enroll_node(&renewed, "dc:14")).unwrap();
    drop(store);

    let nodes = Store::open(&path).unwrap().read(|tx| tx.nodes()).unwrap();
    let expected_renewed = NodeRecord {
        serial: "0a03".into(),
        ..renewed.clone()
    };
    assert_eq!(nodes, [expected_renewed.clone(), office]);
    let json = serde_json::to_value(&nodes[0]).unwrap();
    assert_eq!(json["wireguard_key"], WireGuardKey([9; 32]).to_string());
    assert_eq!(json["enrolled_at"], "2026-01-01T00:01:40.000Z");
    let back: NodeRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, expected_renewed);
}

#[test]
fn certificates_revoke_once_and_stay_revoked() {
    let store = Store::open(&scratch("certificates")).unwrap();
    let cert = certificate("01ab", "dc:14", at(30 * 86_400));
    let operator = CertificateRecord {
        kind: CertificateKind::Operator,
        plane: None,
        issuer: "ministry".into(),
        ..certificate("02", "alice", at(86_400))
    };
    store
        .write(|tx| {
            tx.record_certificate(&cert, "alice")?;
            tx.record_certificate(&operator, "alice")
        })
        .unwrap();
    assert!(
        store
            .write(|tx| tx.revoke_certificate("01:AB", "keyCompromise", at(5), "bob"))
            .unwrap()
    );
    for serial in ["01ab", "ffff", "not hex"] {
        assert!(
            !store
                .write(|tx| tx.revoke_certificate(serial, "again", at(6), "bob"))
                .unwrap()
        );
    }
    // Re-recording does not un-revoke.
    store
        .write(|tx| tx.record_certificate(&cert, "alice"))
        .unwrap();

    let certs = store.read(|tx| tx.certificates()).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0], operator, "soonest expiry first");
    assert_eq!(certs[1].revoked, Some((at(5), "keyCompromise".to_owned())));
    let json = serde_json::to_value(&certs[1]).unwrap();
    assert_eq!(
        json["revoked"],
        json!({"at": "2026-01-01T00:00:05.000Z", "reason": "keyCompromise"})
    );
    assert_eq!(json["kind"], "node");
    let back: CertificateRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, certs[1]);

    let log: Vec<String> = store
        .read(|tx| tx.changes(0, 100))
        .unwrap()
        .into_iter()
        .map(|c| c.what)
        .collect();
    assert_eq!(
        log,
        [
            "record certificate",
            "record certificate",
            "revoke certificate",
            "record certificate"
        ]
    );
}

#[test]
fn operators_settings_and_alerts_round_trip() {
    let store = Store::open(&scratch("records")).unwrap();
    let alice = OperatorRecord {
        login: "alice".into(),
        name: "Alice Zhang".into(),
        role: Role::Engineer,
        province: Some("14".into()),
        serial: Some("0B".into()),
    };
    store
        .write(|tx| tx.upsert_operator(&alice, "root"))
        .unwrap();
    let promoted = OperatorRecord {
        role: Role::Auditor,
        ..alice.clone()
    };
    store
        .write(|tx| tx.upsert_operator(&promoted, "root"))
        .unwrap();
    let bad = OperatorRecord {
        login: "Not A Login".into(),
        ..alice.clone()
    };
    assert!(matches!(
        store.write(|tx| tx.upsert_operator(&bad, "root")),
        Err(StoreError::Invalid { .. })
    ));
    let operators = store.read(|tx| tx.operators()).unwrap();
    assert_eq!(
        operators,
        [OperatorRecord {
            serial: Some("0b".into()),
            ..promoted
        }]
    );
    assert_eq!(
        serde_json::to_value(&operators[0]).unwrap()["role"],
        "auditor"
    );

    store
        .write(|tx| tx.set_setting("policy", "v1", "alice"))
        .unwrap();
    store
        .write(|tx| tx.set_setting("policy", "v2", "alice"))
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.setting("policy")).unwrap().as_deref(),
        Some("v2")
    );
    assert_eq!(store.read(|tx| tx.setting("probes")).unwrap(), None);

    let alert = |state: &str, secs, by: Option<&str>| AlertRecord {
        key: "link-down:dc:14-dc:ministry".into(),
        rule: "link-down".into(),
        subject: "dc:14 — dc:ministry".into(),
        state: state.into(),
        at: at(secs),
        detail: "no handshake for 3 min".into(),
        by: by.map(str::to_owned),
    };
    store
        .write(|tx| tx.record_alert(&alert("firing", 10, None)))
        .unwrap();
    store
        .write(|tx| tx.record_alert(&alert("acknowledged", 20, Some("noc1"))))
        .unwrap();
    store
        .write(|tx| tx.record_alert(&alert("resolved", 30, None)))
        .unwrap();
    for refused in [alert("acknowledged", 40, None), alert("exploded", 40, None)] {
        assert!(matches!(
            store.write(|tx| tx.record_alert(&refused)),
            Err(StoreError::Invalid { .. })
        ));
    }
    let history = store.read(|tx| tx.alerts(2)).unwrap();
    assert_eq!(
        history,
        [
            alert("resolved", 30, None),
            alert("acknowledged", 20, Some("noc1"))
        ]
    );
    assert_eq!(store.read(|tx| tx.alerts(100)).unwrap().len(), 3);

    let log: Vec<(String, String, serde_json::Value)> = store
        .read(|tx| tx.changes(0, 100))
        .unwrap()
        .into_iter()
        .map(|c| (c.who, c.what, c.detail))
        .collect();
    assert_eq!(
        log.len(),
        5,
        "two operators, two settings, one acknowledgement: {log:?}"
    );
    assert_eq!(
        (log[2].0.as_str(), log[2].1.as_str()),
        ("alice", "setting policy")
    );
    assert_eq!(
        log[2].2["sha256"], "3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d42388fe",
        "the SHA-256 of `v1`"
    );
    assert_eq!(
        (log[4].0.as_str(), log[4].1.as_str()),
        ("noc1", "acknowledge alert")
    );
}

#[test]
fn config_versions_only_go_up_even_across_restarts() {
    let path = scratch("config-versions");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        for _ in 0..3 {
            seen.push(store.write(|tx| tx.next_config_version()).unwrap());
        }
        let dc = node("dc:14");
        let version = *seen.last().unwrap();
        store
            .write(|tx| tx.record_bundle(&dc, version, &"ab".repeat(32), at(version)))
            .unwrap();
        assert_eq!(
            store.read(|tx| tx.last_bundle(&dc)).unwrap(),
            Some((version, "ab".repeat(32)))
        );
    }
    assert_eq!(seen, (1..=9).collect::<Vec<u64>>());
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.read(|tx| tx.last_bundle(&node("dc:15"))).unwrap(),
        None
    );
    assert!(matches!(
        store.write(|tx| tx.record_bundle(&node("dc:14"), 10, "not-a-digest", at(0))),
        Err(StoreError::Invalid { .. })
    ));
}

#[test]
fn a_row_that_does_not_decode_is_corrupt_not_a_panic() {
    let path = scratch("corrupt");
    let store = Store::open(&path).unwrap();
    store
        .write(|tx| tx.enroll_node(&node_record("dc:14", Plane::Business, "01", at(0)), "alice"))
        .unwrap();
    raw(&path)
        .execute("UPDATE nodes SET node = 'dc:nowhere'", [])
        .unwrap();
    match store.read(|tx| tx.nodes()) {
        Err(StoreError::Corrupt { what }) => assert!(what.contains("dc:nowhere"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    raw(&path)
        .execute("UPDATE nodes SET node = 'dc:14', enrolled_at_ms = -5", [])
        .unwrap();
    assert!(matches!(
        store.read(|tx| tx.nodes()),
        Err(StoreError::Corrupt { .. })
    ));
}

// --- the change log ---------------------------------------------------------------------

/// A store with ten change entries of assorted shapes.
fn store_with_changes(name: &str) -> PathBuf {
    let path = scratch(name);
    let store = Store::open(&path).unwrap();
    for i in 0..10u64 {
        let entry = store
            .write(|tx| {
                tx.append_change(
                    if i % 2 == 0 { "alice" } else { "张伟" },
                    "book conference",
                    &json!({"booking": i, "sites": ["dc:14", "dc:ministry"], "note": "a \"b\"\n"}),
                    at(i),
                )
            })
            .unwrap();
        assert_eq!(entry.seq, i + 1);
    }
    assert_eq!(store.verify_changes().unwrap(), 10);
    path
}

fn chain_break(path: &Path) -> ChainBreak {
    match Store::open(path).unwrap().verify_changes() {
        Err(StoreError::Chain(chain_break)) => chain_break,
        other => panic!("the chain must not verify, got {other:?}"),
    }
}

#[test]
fn the_change_log_links_each_entry_to_the_one_before() {
    let path = store_with_changes("chain");
    let store = Store::open(&path).unwrap();
    let entries = store.read(|tx| tx.changes(0, 100)).unwrap();
    assert_eq!(entries[0].prev_hash, "0".repeat(64));
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(entries[1].who, "张伟");
    assert_eq!(entries[3].detail["booking"], 3);
    let page = store.read(|tx| tx.changes(4, 3)).unwrap();
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [5, 6, 7]);
    let head = store.read(|tx| tx.change_head()).unwrap();
    assert_eq!(head, Some((10, entries[9].hash.clone())));
    let json = serde_json::to_value(&entries[0]).unwrap();
    assert_eq!(json["at"], "2026-01-01T00:00:00.000Z");
}

#[test]
fn changing_who_is_caught_at_that_entry() {
    let path = store_with_changes("tamper-who");
    raw(&path)
        .execute("UPDATE changes SET who = 'mallory' WHERE seq = 4", [])
        .unwrap();
    let found = chain_break(&path);
    assert_eq!((found.seq, found.kind), (4, BreakKind::Altered));
    assert!(found.to_string().contains("entry 4"), "{found}");
}

#[test]
fn changing_detail_even_to_equivalent_json_is_caught_at_that_entry() {
    let path = store_with_changes("tamper-detail");
    raw(&path)
        .execute(
            "UPDATE changes SET detail = json_set(detail, '$.booking', 99) WHERE seq = 7",
            [],
        )
        .unwrap();
    assert_eq!(chain_break(&path).seq, 7);

    let path = store_with_changes("tamper-detail-spacing");
    raw(&path)
        .execute(
            "UPDATE changes SET detail = replace(detail, ',', ', ') WHERE seq = 2",
            [],
        )
        .unwrap();
    assert_eq!(
        (chain_break(&path).seq, chain_break(&path).kind),
        (2, BreakKind::Altered)
    );
}

#[test]
fn deleting_a_middle_entry_is_caught_at_its_seq() {
    let path = store_with_changes("tamper-delete");
    raw(&path)
        .execute("DELETE FROM changes WHERE seq = 5", [])
        .unwrap();
    let found = chain_break(&path);
    assert_eq!((found.seq, found.kind), (5, BreakKind::Missing));
    assert_eq!((found.expected.as_str(), found.found.as_str()), ("5", "6"));
}

#[test]
fn renumbering_after_a_deletion_is_caught_as_a_broken_link() {
    let path = store_with_changes("tamper-renumber");
    let conn = raw(&path);
    conn.execute("DELETE FROM changes WHERE seq = 5", [])
        .unwrap();
    conn.execute("UPDATE changes SET seq = seq - 1 WHERE seq > 5", [])
        .unwrap();
    let found = chain_break(&path);
    assert_eq!(found.seq, 5);
    assert!(matches!(
        found.kind,
        BreakKind::Unlinked | BreakKind::Altered
    ));
}

#[test]
fn a_failed_write_leaves_no_change_entry() {
    let path = store_with_changes("rollback");
    let store = Store::open(&path).unwrap();
    let failed = store.write(|tx| {
        tx.append_change("alice", "book conference", &json!({}), at(100))?;
        tx.set_setting("policy", "half-done", "alice")?;
        Err::<(), _>(StoreError::Invalid {
            what: "admission control refused the booking".into(),
        })
    });
    assert!(failed.is_err());
    assert_eq!(store.verify_changes().unwrap(), 10);
    assert_eq!(store.read(|tx| tx.setting("policy")).unwrap(), None);
}

/// The module docs promise auditors can recompute the chain with other tools: run the Python
/// recipe from the docs over a real store.
#[test]
fn the_documented_python_recipe_verifies_the_chain() {
    let path = store_with_changes("python");
    let script = r#"
import hashlib, json, sqlite3, sys
s = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
prev = "0" * 64
n = 0
for seq, at, who, what, detail, prev_hash, h in sqlite3.connect(sys.argv[1]).execute(
        "SELECT seq, at_ms, who, what, detail, prev_hash, hash FROM changes ORDER BY seq"):
    line = "[%d,%d,%s,%s,%s,%s]" % (seq, at, s(who), s(what), detail, s(prev_hash))
    assert prev_hash == prev and hashlib.sha256(line.encode()).hexdigest() == h, seq
    prev = h
    n += 1
print(n)
"#;
    let output = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("skipped: python3 is not available here ({e})");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "10");
}

// --- durability under kill -9 -----------------------------------------------------------

/// Set in the child process: the store the writer appends to.
const WRITER_ENV: &str = "JINBAO_STORE_TEST_WRITER";
/// Acknowledgements the parent waits for before each kill.
const ACKS_PER_KILL: usize = 200;
/// Kills per test run.
const KILLS: usize = 3;

/// Not a test on its own: the child process of
/// [`nothing_acknowledged_is_lost_when_the_controller_is_killed`]. Appends forever,
/// printing each sequence number once `write` has returned it.
#[test]
fn durability_writer() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    let mut stdout = std::io::stdout().lock();
    for n in 0u64.. {
        let entry = store
            .write(|tx| tx.append_change("writer", "tick", &json!({ "n": n }), at(n)))
            .unwrap();
        writeln!(stdout, "ack {}", entry.seq).unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // real processes, real time: reports how long it took
fn nothing_acknowledged_is_lost_when_the_controller_is_killed() {
    let path = scratch("kill-9");
    let started = Instant::now();
    let acknowledged = common::kill_9::nothing_acknowledged_is_lost(
        "durability_writer",
        WRITER_ENV,
        &path,
        KILLS,
        ACKS_PER_KILL,
    );
    eprintln!(
        "{} acknowledged appends over {KILLS} kills in {:?}",
        acknowledged.len(),
        started.elapsed()
    );
}
