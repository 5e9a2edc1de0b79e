//! OpenSSL — the tool every auditor and engineer has at hand — agrees with the pki crate.
//!
//! These tests run the real `openssl` binary (OpenSSL 3) on what the crate writes and
//! assert on its output:
//! - `openssl verify` accepts a node's chain (root ← Shanxi CA ← dc:1401) for ECDSA P-256
//!   and Ed25519, also under `-x509_strict` and the TLS client and server purposes, and with
//!   every CRL checked (`-crl_check_all`); it refuses a revoked node, a revoked province CA,
//!   a missing CRL and an expired CRL — the same refusals as [`pki::TrustBundle`].
//! - `openssl x509 -text` shows the binding in plain words: IP SANs, the identity URI, the
//!   private-arc OIDs and their UTF8Strings (node, plane, zones; the CA's scope); its SHA-256
//!   fingerprint is the one the crate prints.
//! - `openssl req -verify` accepts the CSRs nodes send, and rejects a tampered one.
//! - `openssl verify` accepts the controller's chain for both TLS purposes, and `openssl
//!   dgst` / `pkeyutl` verify the documents it signs with the key from its certificate (so
//!   an auditor needs nothing but OpenSSL), and refuse a tampered document.
//! - `openssl crl -text` reads the CRL the crate writes as PEM: next update, number, revoked serial and reason, and
//!   the CRL's signature verifies against the CA.
//!
//! Without a runnable `openssl` the tests say so on stderr and pass (skip).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::{Hierarchy, NodeKeys};
use pki::authority::Revocation;
use pki::inspect::Summary;
use pki::profile::NODE_LIFETIME;
use pki::{Issued, KeyAlgorithm, NodeExpectation, Reason, Usage, VerifyError};
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use topology::Plane;

/// Whether `openssl version` runs; if not, says why on stderr.
fn openssl_available() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipping: `openssl version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(err) => {
            eprintln!("skipping: cannot run `openssl version`: {err}");
            false
        }
    }
}

/// A scratch directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "jinbao-pki-openssl-{}-{label}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.0.join(name), contents).unwrap();
    }

    /// Runs `openssl args…` in this directory, so it names files as given.
    fn openssl(&self, args: &[&str]) -> Run {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .unwrap();
        Run {
            args: args.join(" "),
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `openssl` run.
struct Run {
    args: String,
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn succeeded(&self) -> &Self {
        assert!(
            self.success,
            "`openssl {}` failed:\n{}{}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    /// Fails, saying `reason` on stdout or stderr.
    fn failed_with(&self, reason: &str) -> &Self {
        assert!(
            !self.success,
            "`openssl {}` succeeded:\n{}{}",
            self.args, self.stdout, self.stderr
        );
        assert!(
            self.stdout.contains(reason) || self.stderr.contains(reason),
            "`openssl {}` did not say `{reason}`:\n{}{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// DER as PEM with `label`, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// CRLs as one PEM file, as `-CRLfile` reads them.
fn crl_file(crls: &[CertificateRevocationListDer<'_>]) -> String {
    crls.iter().map(pki::authority::pem_crl).collect()
}

/// A hierarchy, dc:1401's business-plane keys and its certificate from the Shanxi CA.
struct Fixture {
    hierarchy: Hierarchy,
    keys: NodeKeys,
    issued: Issued,
}

impl Fixture {
    fn new(algorithm: KeyAlgorithm) -> Fixture {
        let hierarchy = Hierarchy::new(algorithm);
        let keys = NodeKeys::new("dc:1401", Plane::Business, algorithm);
        let issued = keys.issue(&hierarchy.shanxi, SystemTime::now(), NODE_LIFETIME);
        Fixture {
            hierarchy,
            keys,
            issued,
        }
    }

    /// root.pem, province.pem (Shanxi CA), node.pem and guangdong.pem in a scratch dir.
    fn scratch(&self, label: &str) -> Scratch {
        let dir = Scratch::new(label);
        dir.write("root.pem", self.hierarchy.root.certificate_pem());
        dir.write("province.pem", self.hierarchy.shanxi.certificate_pem());
        dir.write("guangdong.pem", self.hierarchy.guangdong.certificate_pem());
        dir.write("node.pem", self.issued.pem());
        dir
    }

    fn pki_verdict(
        &self,
        revoked: &[(pki::AuthorityScope, Revocation)],
    ) -> Result<(), VerifyError> {
        self.hierarchy
            .bundle(revoked, 2)
            .verify_node(
                &[
                    self.issued.certificate.clone(),
                    self.hierarchy.shanxi.certificate().clone(),
                ],
                SystemTime::now(),
                Usage::Client,
                &NodeExpectation::default(),
            )
            .map(drop)
    }
}

const VERIFY: &[&str] = &[
    "verify",
    "-CAfile",
    "root.pem",
    "-untrusted",
    "province.pem",
];

fn verify_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = VERIFY.to_vec();
    args.extend_from_slice(extra);
    args.push("node.pem");
    args
}

fn revocation(serial: pki::Serial) -> Revocation {
    Revocation {
        serial,
        reason: Reason::KeyCompromise,
        revoked_at: SystemTime::now(),
    }
}

fn chains_and_crls_agree_with_openssl(algorithm: KeyAlgorithm) {
    if !openssl_available() {
        return;
    }
    let fixture = Fixture::new(algorithm);
    let hierarchy = &fixture.hierarchy;
    let dir = fixture.scratch(algorithm.as_str());

    let plain = dir.openssl(&verify_args(&[]));
    plain.succeeded();
    assert_eq!(plain.stdout.trim(), "node.pem: OK");
    for purpose in ["sslclient", "sslserver"] {
        let strict = dir.openssl(&verify_args(&["-x509_strict", "-purpose", purpose]));
        assert_eq!(strict.succeeded().stdout.trim(), "node.pem: OK");
    }
    // Another province's CA does not vouch for dc:1401.
    dir.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "guangdong.pem",
        "node.pem",
    ])
    .failed_with("unable to get local issuer certificate");

    // Every CA's CRL, nothing revoked: good.
    dir.write("crls.pem", crl_file(&hierarchy.crls(&[], 1)));
    let checked = dir.openssl(&verify_args(&["-crl_check_all", "-CRLfile", "crls.pem"]));
    assert_eq!(checked.succeeded().stdout.trim(), "node.pem: OK");
    assert_eq!(fixture.pki_verdict(&[]), Ok(()));

    // The node revoked on the Shanxi CA's CRL: OpenSSL and TrustBundle both refuse it.
    let node_revoked = [(
        hierarchy.shanxi.scope(),
        revocation(fixture.issued.serial.clone()),
    )];
    dir.write("revoked.pem", crl_file(&hierarchy.crls(&node_revoked, 2)));
    dir.openssl(&verify_args(&["-crl_check_all", "-CRLfile", "revoked.pem"]))
        .failed_with("error 23 at 0 depth lookup: certificate revoked")
        .failed_with("verification failed");
    assert_eq!(
        fixture.pki_verdict(&node_revoked),
        Err(VerifyError::Revoked)
    );

    // The Shanxi CA revoked on the root's CRL: depth 1 for OpenSSL, refused by TrustBundle.
    let province_serial = Summary::read(hierarchy.shanxi.certificate())
        .unwrap()
        .serial;
    let ca_revoked = [(pki::AuthorityScope::Root, revocation(province_serial))];
    dir.write("ca-revoked.pem", crl_file(&hierarchy.crls(&ca_revoked, 2)));
    dir.openssl(&verify_args(&[
        "-crl_check_all",
        "-CRLfile",
        "ca-revoked.pem",
    ]))
    .failed_with("error 23 at 1 depth lookup: certificate revoked");
    assert_eq!(fixture.pki_verdict(&ca_revoked), Err(VerifyError::Revoked));

    // Without the root's CRL the Shanxi CA's status is unknown: both refuse.
    let crls = hierarchy.crls(&[], 1);
    let shanxi_only: Vec<_> = crls[2..3].to_vec();
    dir.write("shanxi-only.pem", crl_file(&shanxi_only));
    dir.openssl(&verify_args(&[
        "-crl_check_all",
        "-CRLfile",
        "shanxi-only.pem",
    ]))
    .failed_with("error 3 at 1 depth lookup: unable to get certificate CRL");
    let partial = pki::TrustBundle::new(
        hierarchy.root.certificate().clone(),
        vec![hierarchy.shanxi.certificate().clone()],
        &shanxi_only,
    )
    .unwrap();
    assert!(matches!(
        partial.verify_node(
            std::slice::from_ref(&fixture.issued.certificate),
            SystemTime::now(),
            Usage::Client,
            &NodeExpectation::default(),
        ),
        Err(VerifyError::RevocationUnknown(_))
    ));

    // Two hours on, the one-hour CRLs are past their next update.
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let at = later
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    dir.openssl(&verify_args(&[
        "-crl_check_all",
        "-CRLfile",
        "crls.pem",
        "-attime",
        &at,
    ]))
    .failed_with("error 12 at 0 depth lookup: CRL has expired");
    assert!(matches!(
        hierarchy.bundle(&[], 1).verify_node(
            std::slice::from_ref(&fixture.issued.certificate),
            later,
            Usage::Client,
            &NodeExpectation::default(),
        ),
        Err(VerifyError::RevocationUnknown(_))
    ));
    let dir_path = dir.path().to_owned();
    drop(dir);
    assert!(!dir_path.exists());
}

#[test]
fn openssl_verifies_p256_chains_and_checks_every_crl() {
    chains_and_crls_agree_with_openssl(KeyAlgorithm::EcdsaP256);
}

#[test]
fn openssl_verifies_ed25519_chains_and_checks_every_crl() {
    chains_and_crls_agree_with_openssl(KeyAlgorithm::Ed25519);
}

/// The lines of `text` that contain `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn openssl_shows_the_node_binding_in_words() {
    if !openssl_available() {
        return;
    }
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let fixture = Fixture::new(algorithm);
        let dir = fixture.scratch("text");
        let run = dir.openssl(&[
            "x509",
            "-in",
            "node.pem",
            "-noout",
            "-text",
            "-certopt",
            "ext_parse",
        ]);
        let text = &run.succeeded().stdout;

        // Subject alternative names: the identity URI and the overlay addresses.
        let sans = lines_with(text, "URI:");
        assert_eq!(sans.len(), 1, "{text}");
        let mut expected = "URI:spiffe://jinbao/business/dc:1401".to_owned();
        for address in &fixture.keys.addresses {
            assert!(address.to_string().starts_with("10.32.64."), "{address}");
            expected.push_str(&format!(", IP Address:{address}"));
        }
        assert_eq!(sans[0].trim(), expected);
        assert_eq!(fixture.keys.addresses.len(), 3);

        // The JinbaoNode extension under its documented OID, parsed into readable strings.
        let oid: Vec<String> = pki::binding::NODE_OID.iter().map(u64::to_string).collect();
        assert_eq!(oid.join("."), "1.3.6.1.4.1.4294960000.1.1");
        assert_eq!(
            lines_with(text, "1.3.6.1.4.1.4294960000.1.1:").len(),
            1,
            "{text}"
        );
        let strings: Vec<&str> = lines_with(text, "UTF8STRING")
            .iter()
            .filter_map(|l| l.split_once("UTF8STRING"))
            .map(|(_, value)| value.trim().trim_start_matches(':'))
            .collect();
        assert_eq!(
            strings,
            ["dc:1401", "business", "mgmt", "exchange", "production"],
            "{text}"
        );
        assert!(
            text.contains("Subject: CN = dc:1401, OU = business"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(
            text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{text}"
        );
        let key = match algorithm {
            KeyAlgorithm::EcdsaP256 => "Public Key Algorithm: id-ecPublicKey",
            KeyAlgorithm::Ed25519 => "Public Key Algorithm: ED25519",
        };
        assert!(text.contains(key), "{text}");

        // The fingerprint the crate shows is the one OpenSSL shows.
        let run = dir.openssl(&[
            "x509",
            "-in",
            "node.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let shown = run.succeeded().stdout.trim();
        assert_eq!(
            shown.split_once('=').map(|(_, hex)| hex),
            Some(pki::authority::fingerprint(&fixture.issued.certificate).as_str()),
            "{shown}"
        );

        // The province CA: JinbaoAuthority scope "14", name constraints on its blocks.
        let run = dir.openssl(&[
            "x509",
            "-in",
            "province.pem",
            "-noout",
            "-text",
            "-certopt",
            "ext_parse",
        ]);
        let text = &run.succeeded().stdout;
        assert_eq!(
            lines_with(text, "1.3.6.1.4.1.4294960000.1.3:").len(),
            1,
            "{text}"
        );
        assert_eq!(
            lines_with(text, "UTF8STRING")
                .iter()
                .map(|l| l.trim_end())
                .filter(|l| l.ends_with(":14"))
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
        assert!(text.contains("IP:10.32.0.0/255.248.0.0"), "{text}");
    }
}

#[test]
fn openssl_accepts_node_requests_and_rejects_tampered_ones() {
    if !openssl_available() {
        return;
    }
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let keys = NodeKeys::new("dc:1401", Plane::Business, algorithm);
        let request = keys.request_pem();
        let dir = Scratch::new("req");
        dir.write("req.pem", &request);
        let run = dir.openssl(&["req", "-in", "req.pem", "-noout", "-verify"]);
        run.succeeded();
        // OpenSSL 3 says "Certificate request self-signature verify OK", 1.1 "verify OK".
        assert!(
            run.stderr.contains("verify OK") || run.stdout.contains("verify OK"),
            "{}{}",
            run.stdout,
            run.stderr
        );
        let run = dir.openssl(&["req", "-in", "req.pem", "-noout", "-text"]);
        let text = &run.succeeded().stdout;
        assert!(text.contains("Requested Extensions:"), "{text}");
        assert!(text.contains("1.3.6.1.4.1.4294960000.1.1:"), "{text}");
        assert!(
            text.contains("URI:spiffe://jinbao/business/dc:1401"),
            "{text}"
        );

        // dc:1401 → dc:1402 inside the signed part: OpenSSL and the CA both refuse it.
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(request.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec();
        let at = der.windows(7).position(|w| w == b"dc:1401").unwrap();
        let mut tampered = der.clone();
        tampered[at + 6] = b'2';
        dir.write("tampered.pem", pem("CERTIFICATE REQUEST", &tampered));
        // OpenSSL 3.0 reports a bad self-signature but still exits 0 (later versions exit
        // 1), so the words are the verdict here.
        let run = dir.openssl(&["req", "-in", "tampered.pem", "-noout", "-verify"]);
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(said.contains("verify failure"), "{said}");
        assert!(!said.contains("verify OK"), "{said}");
        assert_eq!(
            pki::request::read_request_der(&tampered),
            Err(pki::request::RequestError::BadSignature)
        );
    }
}

/// `Mon DD HH:MM:SS YYYY GMT` as OpenSSL prints times (day padded with a space).
fn openssl_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let t = time::OffsetDateTime::from_unix_timestamp(seconds as i64).unwrap();
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

#[test]
fn openssl_reads_the_crl_and_its_next_update() {
    if !openssl_available() {
        return;
    }
    let fixture = Fixture::new(KeyAlgorithm::EcdsaP256);
    let now = SystemTime::now();
    let whole_seconds = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let crl = fixture
        .hierarchy
        .shanxi
        .revocation_list(
            &[revocation(fixture.issued.serial.clone())],
            7,
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
    let dir = fixture.scratch("crl");
    dir.write("crl.pem", pki::authority::pem_crl(&crl));
    let run = dir.openssl(&["crl", "-in", "crl.pem", "-noout", "-text"]);
    let text = &run.succeeded().stdout;
    let next = lines_with(text, "Next Update:");
    assert_eq!(next.len(), 1, "{text}");
    assert_eq!(
        next[0].trim(),
        format!(
            "Next Update: {}",
            openssl_time(whole_seconds + Duration::from_secs(3600))
        )
    );
    let last = lines_with(text, "Last Update:");
    assert_eq!(
        last[0].trim(),
        format!(
            "Last Update: {}",
            openssl_time(whole_seconds - pki::profile::BACKDATE)
        )
    );
    assert!(text.contains("Province CA 14"), "{text}");
    assert!(text.contains("X509v3 CRL Number:"), "{text}");
    let serial = fixture.issued.serial.to_string().to_uppercase();
    assert!(
        text.contains(&format!("Serial Number: {serial}")),
        "{serial} not in\n{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    let number = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number:"))
        .nth(1)
        .unwrap();
    assert_eq!(number.trim(), "7");

    // The CRL's signature verifies against the Shanxi CA, not against Guangdong's.
    let run = dir.openssl(&["crl", "-in", "crl.pem", "-noout", "-CAfile", "province.pem"]);
    assert!(run.succeeded().stderr.contains("verify OK") || run.stdout.contains("verify OK"));
    dir.openssl(&[
        "crl",
        "-in",
        "crl.pem",
        "-noout",
        "-CAfile",
        "guangdong.pem",
    ])
    .failed_with("Error getting CRL issuer certificate");
}

fn controller_signatures_agree_with_openssl(algorithm: KeyAlgorithm) {
    if !openssl_available() {
        return;
    }
    let hierarchy = Hierarchy::new(algorithm);
    let (key, issued) =
        hierarchy.controller(algorithm, SystemTime::now(), Duration::from_secs(86_400));
    let dir = Scratch::new("controller");
    dir.write("root.pem", hierarchy.root.certificate_pem());
    dir.write("ministry.pem", hierarchy.ministry.certificate_pem());
    dir.write("controller.pem", issued.pem());
    for purpose in ["sslserver", "sslclient"] {
        let run = dir.openssl(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ministry.pem",
            "-x509_strict",
            "-purpose",
            purpose,
            "controller.pem",
        ]);
        assert_eq!(run.succeeded().stdout.trim(), "controller.pem: OK");
    }
    let run = dir.openssl(&[
        "x509",
        "-in",
        "controller.pem",
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    let names = &run.succeeded().stdout;
    for name in [
        "URI:spiffe://jinbao/controller".to_owned(),
        "DNS:controller.jinbao.example".to_owned(),
        format!("IP Address:{}", common::ministry_address()),
    ] {
        assert!(names.contains(&name), "{name} not in {names}");
    }
    let public = dir.openssl(&["x509", "-in", "controller.pem", "-noout", "-pubkey"]);
    dir.write("controller.pub", &public.succeeded().stdout);

    let document = b"{\"kind\":\"isolation-audit\",\"at\":\"2026-11-02\"}\n";
    dir.write("report.json", document);
    dir.write("report.sig", pki::signature::sign(&key, document).unwrap());
    let mut tampered = document.to_vec();
    tampered[3] ^= 0x20;
    dir.write("tampered.json", tampered);
    let check = |file: &str| match algorithm {
        KeyAlgorithm::EcdsaP256 => dir.openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            "controller.pub",
            "-signature",
            "report.sig",
            file,
        ]),
        KeyAlgorithm::Ed25519 => dir.openssl(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "controller.pub",
            "-rawin",
            "-in",
            file,
            "-sigfile",
            "report.sig",
        ]),
    };
    let (good, bad) = match algorithm {
        KeyAlgorithm::EcdsaP256 => ("Verified OK", "Verification failure"),
        KeyAlgorithm::Ed25519 => (
            "Signature Verified Successfully",
            "Signature Verification Failure",
        ),
    };
    assert_eq!(check("report.json").succeeded().stdout.trim(), good);
    check("tampered.json").failed_with(bad);
}

#[test]
fn openssl_verifies_the_p256_controller_and_its_signatures() {
    controller_signatures_agree_with_openssl(KeyAlgorithm::EcdsaP256);
}

#[test]
fn openssl_verifies_the_ed25519_controller_and_its_signatures() {
    controller_signatures_agree_with_openssl(KeyAlgorithm::Ed25519);
}
