//! The isolation audit through `jinbao-controller audit …` and the admin API, on a real
//! controller directory: a national audit passes and its signed report verifies with the
//! root certificate alone; a tampered copy does not; a policy that opens production to a
//! sibling city makes the audit fail with the counterexample at the rule's line; auditors
//! run and read audits but cannot change the policy, the NOC reads them.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use common::served::{As, Served};
use serde_json::{Value, json};

const AUDITOR: As = As::Operator("zhaolei");
const NOC: As = As::Operator("sunqi");

#[test]
fn audits_run_sign_verify_and_catch_a_leak() {
    let lab = Served::init(
        "audit",
        "secofficer",
        &[("zhaolei", "auditor", None), ("sunqi", "noc", None)],
    );

    // The national policy: passes, every tier relation covered, a signed report kept.
    let (said, _) = lab.ok(&["audit", "run", "--scenario-sample", "20"]);
    assert!(
        said.contains("audit #1:") && said.contains("passed, no findings"),
        "{said}"
    );
    let report_file = lab.dir.join("audits/1.json");
    assert!(report_file.exists(), "{said}");
    let file = report_file.display().to_string();
    let (verified, _) = lab.ok(&["audit", "verify", &file]);
    assert!(verified.contains("signature valid"), "{verified}");
    assert!(
        verified.contains("by local:secofficer: passed"),
        "{verified}"
    );
    assert!(
        verified.contains("policy embedded/policy.toml sha256 "),
        "{verified}"
    );

    // Every format states the hashes, the coverage and the verdict.
    let (json_text, _) = lab.ok(&["audit", "report", "1", "--format", "json"]);
    let signed: Value = serde_json::from_str(&json_text).unwrap();
    let report: Value = serde_json::from_str(signed["report"].as_str().unwrap()).unwrap();
    assert_eq!(report["findings"], json!([]));
    let policy_hash = report["policy_hash"].as_str().unwrap().to_owned();
    assert_eq!(policy_hash.len(), 64);
    for format in ["md", "html"] {
        let (text, _) = lab.ok(&["audit", "report", "1", "--format", format]);
        assert!(
            text.contains(&policy_hash) && text.contains("PASSED"),
            "{format}: {text}"
        );
        assert!(text.contains("tier relations"), "{format}");
    }
    let bad = lab.run(&["audit", "report", "1", "--format", "pdf"]);
    assert_eq!(bad.status.code(), Some(2));

    // A tampered copy: one finding-free verdict turned into another policy hash.
    let tampered = lab.file(
        "tampered.json",
        &std::fs::read_to_string(&report_file)
            .unwrap()
            .replacen(&policy_hash[..8], "00000000", 1),
    );
    let refused = lab.run(&["audit", "verify", &tampered]);
    let text = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("NOT VALID") && text.contains("altered or forged"),
        "{text}"
    );
    // Not a report at all.
    let junk = lab.file("junk.json", "{\"bundle\": 1}");
    assert_eq!(lab.run(&["audit", "verify", &junk]).status.code(), Some(1));

    // A policy opening production to a sibling city: the audit fails with the
    // counterexample and the rule's file line.
    let leaky = format!(
        "{}\n[[rules]]\nname = \"sibling-db\"\nfrom = \"exchange\"\nto = \"production\"\nscope = \"sibling\"\nfrom-tiers = [\"city\"]\nto-tiers = [\"city\"]\nproto = \"tcp\"\nports = [1521]\n",
        topology::policy::EMBEDDED_POLICY
    );
    let leaky_file = lab.file("leaky.toml", &leaky);
    lab.ok(&["config", "policy", &leaky_file]);
    let failed = lab.run(&["audit", "run"]);
    let said = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("audit #2:") && said.contains("1 FINDINGS"),
        "{said}"
    );
    let finding = said
        .lines()
        .find(|l| l.contains("production-exposed"))
        .unwrap_or_default();
    assert!(
        finding.contains("business:exchange → dc:")
            && finding.contains("business:production tcp/1521"),
        "{said}"
    );
    assert!(finding.contains("rule 'sibling-db'"), "{said}");

    // The API: the auditor runs one, the NOC reads it but may not run one, and the auditor
    // cannot change the policy.
    lab.serve();
    let ran = lab
        .call(
            AUDITOR,
            "POST",
            "/v1/audits",
            Some(("application/json", b"{}")),
        )
        .ok(200);
    assert_eq!(ran["id"], 3);
    assert_eq!(ran["by"], "operator:zhaolei");
    assert_eq!(ran["findings"][0]["kind"], "production-exposed");
    lab.call(NOC, "POST", "/v1/audits", None).refused(
        403,
        &["this needs the role auditor or engineer; sunqi has the role noc"],
    );
    let latest = lab.call(NOC, "GET", "/v1/audits/latest", None).ok(200);
    assert_eq!(latest["id"], 3);
    let listed = lab.call(NOC, "GET", "/v1/audits", None).ok(200);
    let findings: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["findings"].as_u64().unwrap())
        .collect();
    assert_eq!(findings, [0, 1, 1]);
    let kept = lab.call(NOC, "GET", "/v1/audits/3", None).ok(200);
    let copy = lab.file("copy.json", &kept.to_string());
    let (verified, _) = lab.ok(&["audit", "verify", &copy]);
    assert!(
        verified.contains("audit #3") && verified.contains("FAILED"),
        "{verified}"
    );
    lab.call(NOC, "GET", "/v1/audits/99", None)
        .refused(404, &["no audit report 99"]);
    lab.call(
        AUDITOR,
        "PUT",
        "/v1/policy",
        Some(("text/plain", leaky.as_bytes())),
    )
    .refused(
        403,
        &["this needs the role engineer; zhaolei has the role auditor"],
    );
}
