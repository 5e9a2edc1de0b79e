//! `jinbao-controller ca|cert|crl`, run as an engineer runs them: a node's request goes in,
//! a chain that rustls-webpki and openssl accept comes out, a revocation reaches the CRL,
//! and every refusal says why.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use agent::identity::KeyDir;
use pki::store::CaDir;
use pki::{NodeExpectation, Role, Usage, VerifyError};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use topology::{Network, Plan, Plane};

/// A controller directory for one test, removed when dropped.
struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let dir =
            std::env::temp_dir().join(format!("jinbao-pki-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Lab { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_jinbao-controller"))
            .env("JINBAO_DIR", self.dir.join("controller"))
            .args(args)
            .output()
            .expect("the binary runs")
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    }

    /// A node's keys and request for `plane`, made the way `jinbao-agent csr` makes them.
    fn node_request(&self, node: &str, plane: Plane) -> (KeyDir, String) {
        let keys = KeyDir::new(&self.dir.join(node.replace(':', "-")));
        keys.generate(plane, pki::KeyAlgorithm::EcdsaP256).unwrap();
        let network = Network::national().unwrap();
        let allocation = Plan::embedded().unwrap().allocate(&network).unwrap();
        let pem = keys
            .request(&network, &allocation, node.parse().unwrap(), plane, None)
            .unwrap();
        (keys, self.file(&format!("{node}-{plane}.csr"), &pem))
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name.replace(':', "-"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn store(&self) -> CaDir {
        CaDir::at(&self.dir.join("controller"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn openssl() -> Option<()> {
    let works = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        eprintln!("skipping the openssl checks: no openssl binary");
    }
    works.then_some(())
}

fn openssl_out(args: &[&str]) -> String {
    let output = Command::new("openssl").args(args).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_node_request_becomes_a_chain_openssl_accepts_and_its_revocation_reaches_the_crl() {
    let lab = Lab::new("node");
    let init = lab.ok(&["ca", "init"]);
    let root_pem = lab.store().path().join("root.pem");
    if openssl().is_some() {
        let fingerprint = openssl_out(&[
            "x509",
            "-in",
            &root_pem.display().to_string(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let fingerprint = fingerprint.trim().rsplit('=').next().unwrap();
        assert!(init.contains(fingerprint), "{init} lacks {fingerprint}");
    }
    assert!(
        lab.ok(&["ca", "province", "14"])
            .contains("created the 14 CA")
    );

    let (keys, csr) = lab.node_request("dc:1401", Plane::Business);
    let issued = lab.ok(&["cert", "issue", "--csr", &csr]);
    let chain = chain(&issued);
    assert_eq!(chain.len(), 2, "leaf and the Shanxi CA");
    let chain_file = lab.file("chain.pem", &issued);
    let expect = NodeExpectation {
        plane: Some(Plane::Business),
        node: Some("dc:1401".parse().unwrap()),
        wireguard_key: Some(keys.wireguard_public(Plane::Business).unwrap()),
    };
    let now = SystemTime::now();
    let identity = lab
        .store()
        .trust_bundle()
        .unwrap()
        .verify_node(&chain, now, Usage::Client, &expect)
        .unwrap();
    assert_eq!(identity.issuer.to_string(), "14");
    let lifetime = identity.not_after.duration_since(now).unwrap();
    assert!(
        lifetime > Duration::from_secs(29 * 86_400) && lifetime <= Duration::from_secs(30 * 86_400)
    );
    if openssl().is_some() {
        let root = root_pem.display().to_string();
        let verdict = openssl_out(&[
            "verify",
            "-CAfile",
            &root,
            "-untrusted",
            &chain_file,
            &chain_file,
        ]);
        assert_eq!(verdict.trim(), format!("{chain_file}: OK"));
    }

    let serial = identity.serial.to_string();
    let listed = lab.ok(&["cert", "list"]);
    assert!(
        listed.contains(&serial) && listed.contains("valid (29d"),
        "{listed}"
    );
    assert!(
        !lab.ok(&["cert", "list", "--expiring", "7d"])
            .contains(&serial)
    );
    assert!(
        lab.ok(&["cert", "list", "--expiring", "31d"])
            .contains(&serial)
    );

    let revoked = lab.ok(&["cert", "revoke", &serial, "--reason", "key-compromise"]);
    assert!(revoked.contains("CRL 2 listing 1"), "{revoked}");
    assert!(
        lab.ok(&["cert", "list"])
            .contains("revoked (key-compromise)")
    );
    assert!(
        !lab.ok(&["cert", "list", "--expiring", "31d"])
            .contains(&serial)
    );
    assert!(
        lab.ok(&["crl", "show", "--authority", "14"])
            .contains(&serial)
    );
    assert_eq!(
        lab.store().trust_bundle().unwrap().verify_node(
            &chain,
            SystemTime::now(),
            Usage::Client,
            &expect
        ),
        Err(VerifyError::Revoked)
    );
    let crls = lab.ok(&["crl", "show", "--pem"]);
    assert_eq!(
        crls.matches("-----BEGIN X509 CRL-----").count(),
        3,
        "root, ministry, 14"
    );
    if openssl().is_some() {
        let crl_file = lab.file(
            "14.crl.pem",
            &lab.ok(&["crl", "show", "--authority", "14", "--pem"]),
        );
        let text = openssl_out(&["crl", "-in", &crl_file, "-noout", "-text"]);
        assert!(
            text.contains(&serial.to_uppercase()) && text.contains("Key Compromise"),
            "{text}"
        );
    }
}

#[test]
fn operators_are_issued_by_the_ministry_ca_with_one_role() {
    let lab = Lab::new("operator");
    lab.ok(&["ca", "init"]);
    let key = lab.dir.join("zhangsan.key");
    let csr = lab.ok(&[
        "cert",
        "request",
        "--login",
        "zhangsan",
        "--name",
        "张三",
        "--key",
        &key.display().to_string(),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let csr = lab.file("zhangsan.csr", &csr);
    let err = lab.fails(&["cert", "issue", "--csr", &csr], 2);
    assert!(err.contains("--role engineer|auditor|noc"), "{err}");
    let chain = chain(&lab.ok(&["cert", "issue", "--csr", &csr, "--role", "auditor"]));
    let identity = lab
        .store()
        .trust_bundle()
        .unwrap()
        .verify_operator(&chain, SystemTime::now())
        .unwrap();
    assert_eq!(
        (
            identity.login.as_str(),
            identity.name.as_str(),
            identity.role
        ),
        ("zhangsan", "张三", Role::Auditor)
    );
    let listed = lab.ok(&["cert", "list"]);
    assert!(
        listed.contains("operator") && listed.contains("zhangsan") && listed.contains("auditor"),
        "{listed}"
    );
}

#[test]
fn a_provincial_operator_is_scoped_to_a_real_province() {
    let lab = Lab::new("province");
    lab.ok(&["ca", "init"]);
    let key = lab.dir.join("wangwu.key").display().to_string();
    let csr = lab.ok(&[
        "cert", "request", "--login", "wangwu", "--name", "王五", "--key", &key,
    ]);
    let csr = lab.file("wangwu.csr", &csr);

    for (code, why) in [
        ("99", "--province 99: no province 99 in the network"),
        (
            "1401",
            "bad province `1401` (expected a 2-digit province code, e.g. 14)",
        ),
        ("ministry", "bad province `ministry`"),
    ] {
        let err = lab.fails(
            &[
                "cert",
                "issue",
                "--csr",
                &csr,
                "--role",
                "engineer",
                "--province",
                code,
            ],
            2,
        );
        assert!(err.contains(why), "{code}: {err}");
    }

    let output = lab.run(&[
        "cert",
        "issue",
        "--csr",
        &csr,
        "--role",
        "engineer",
        "--province",
        "14",
    ]);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("operator wangwu (王五) as engineer for province 14 (山西省)"),
        "{said}"
    );
    let chain = chain(&String::from_utf8(output.stdout).unwrap());
    let identity = lab
        .store()
        .trust_bundle()
        .unwrap()
        .verify_operator(&chain, SystemTime::now())
        .unwrap();
    assert_eq!(
        (identity.login.as_str(), identity.role),
        ("wangwu", Role::Engineer)
    );
    assert_eq!(identity.province.as_deref(), Some("14"));
    let listed = lab.ok(&["cert", "list"]);
    assert!(listed.contains("engineer (14)"), "{listed}");

    // Only for operators.
    lab.ok(&["ca", "province", "14"]);
    let (_, node_csr) = lab.node_request("dc:1401", Plane::Business);
    let err = lab.fails(
        &["cert", "issue", "--csr", &node_csr, "--province", "14"],
        2,
    );
    assert!(
        err.contains("--role and --province are for operator requests"),
        "{err}"
    );
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let lab = Lab::new("refusals");
    let (_, csr) = lab.node_request("dc:1401", Plane::Business);
    let err = lab.fails(&["cert", "issue", "--csr", &csr], 2);
    assert!(
        err.contains("run `jinbao-controller ca init` first"),
        "{err}"
    );
    lab.ok(&["ca", "init"]);
    let root = std::fs::read(lab.store().path().join("root.key")).unwrap();
    assert!(lab.fails(&["ca", "init"], 2).contains("never overwritten"));
    assert_eq!(
        std::fs::read(lab.store().path().join("root.key")).unwrap(),
        root
    );

    let err = lab.fails(&["cert", "issue", "--csr", &csr], 2);
    assert!(
        err.contains("no 14 CA yet: run `jinbao-controller ca province 14`"),
        "{err}"
    );
    assert!(
        lab.fails(&["ca", "province", "99"], 2)
            .contains("no province 99")
    );
    lab.ok(&["ca", "province", "14"]);
    let err = lab.fails(&["cert", "issue", "--csr", &csr, "--role", "noc"], 2);
    assert!(err.contains("is a node request"), "{err}");

    let garbage = lab.file(
        "garbage.csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    );
    let err = lab.fails(&["cert", "issue", "--csr", &garbage], 2);
    assert!(err.contains("garbage.csr"), "{err}");

    // A request for a Guangdong address, signed by the node itself: the CA says which.
    let keys = KeyDir::new(&lab.dir.join("dc-1401"));
    let binding = pki::NodeBinding {
        node: "dc:1401".parse().unwrap(),
        plane: Plane::Business,
        zones: vec![topology::Zone::Mgmt],
        wireguard_key: keys.wireguard_public(Plane::Business).unwrap(),
    };
    let pem = pki::request::node_request(
        &keys.tls_key(Plane::Business).unwrap(),
        &binding,
        &["10.44.0.1".parse().unwrap()],
    )
    .unwrap();
    let wrong = lab.file("wrong.csr", &pem);
    let err = lab.fails(&["cert", "issue", "--csr", &wrong], 2);
    assert!(
        err.contains("the 14 CA refused")
            && err.contains("not the plan's: 10.44.0.1")
            && err.contains("missing: 10.32.64.1"),
        "{err}"
    );
    let err = lab.fails(&["cert", "issue", "--csr", &csr, "--lifetime", "5y"], 2);
    assert!(
        err.contains("--lifetime must be between 1s and 366d"),
        "{err}"
    );
    let listed = lab.ok(&["cert", "list"]);
    assert!(
        listed.contains("0 of 0 certificates"),
        "refusals store nothing: {listed}"
    );
}

#[test]
fn crl_show_fails_when_a_crl_is_overdue() {
    let lab = Lab::new("overdue");
    lab.ok(&["ca", "init"]);
    assert!(lab.ok(&["crl", "show"]).contains("(in 6d 23h)"));
    let store = lab.store();
    let root = store.root().unwrap();
    let stale = root
        .revocation_list(
            &[],
            9,
            SystemTime::now() - Duration::from_secs(8 * 86_400),
            Duration::from_secs(7 * 86_400),
        )
        .unwrap();
    std::fs::write(
        store.crl_path(pki::AuthorityScope::Root),
        pki::authority::pem_crl(&stale),
    )
    .unwrap();
    let output = lab.run(&["crl", "show"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("OVERDUE by 1d"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("run `jinbao-controller crl update`"));
    let updated = lab.ok(&["crl", "update"]);
    assert!(
        updated.contains("published CRL 10 of the root CA"),
        "{updated}"
    );
    assert!(
        updated.contains("published CRL 2 of the ministry CA"),
        "{updated}"
    );
    lab.ok(&["crl", "show"]);
}
