//! The CA directory keeps CAs, issued certificates, revocations and CRLs on disk: CAs are
//! never overwritten, keys are 0600, CRL numbers only go up, and what it stores verifies.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{NodeKeys, national};
use pki::profile::NODE_LIFETIME;
use pki::store::{CaDir, StoreError};
use pki::{AuthorityScope, KeyAlgorithm, NodeExpectation, Reason, Usage, VerifyError};
use topology::Plane;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("jinbao-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shanxi() -> AuthorityScope {
    "14".parse().unwrap()
}

#[test]
fn a_ca_directory_issues_revokes_and_verifies() {
    let scratch = Scratch::new("cycle");
    let (network, allocation) = national();
    let now = SystemTime::now();
    let store = CaDir::at(&scratch.0);
    assert!(matches!(store.root(), Err(StoreError::NotInitialised(_))));
    store.init(KeyAlgorithm::EcdsaP256, now).unwrap();
    assert!(matches!(
        store.authority(shanxi()),
        Err(StoreError::NoAuthority(scope)) if scope == shanxi()
    ));
    let ca = store
        .create_authority(shanxi(), KeyAlgorithm::EcdsaP256, network, allocation, now)
        .unwrap();
    assert_eq!(store.authorities().unwrap(), vec![shanxi()]);

    let keys = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
    let issued = keys.issue(&store.authority(shanxi()).unwrap(), now, NODE_LIFETIME);
    let path = store.keep_issued(shanxi(), &issued).unwrap();
    assert!(path.ends_with(format!("ca/issued/14/{}.pem", issued.serial)));
    let listing = store.issued().unwrap();
    assert_eq!(listing.certificates.len(), 1);
    assert_eq!(listing.certificates[0].summary.serial, issued.serial);

    let chain = [issued.certificate.clone(), ca.certificate().clone()];
    let expect = NodeExpectation {
        plane: Some(Plane::Business),
        node: None,
        wireguard_key: Some(keys.wireguard),
    };
    let bundle = store.trust_bundle().unwrap();
    bundle
        .verify_node(&chain, now, Usage::Client, &expect)
        .unwrap();

    assert_eq!(crl_number(&store, shanxi()), 1);
    let later = now + Duration::from_secs(10);
    let (scope, crl) = store
        .revoke(&issued.serial, Reason::KeyCompromise, later)
        .unwrap();
    assert_eq!(scope, shanxi());
    assert_eq!(crl.number, 2);
    assert_eq!(crl.listed.len(), 1);
    assert_eq!(crl.listed[0].reason, Some(Reason::KeyCompromise));
    assert!(matches!(
        store.revoke(&issued.serial, Reason::Superseded, later),
        Err(StoreError::AlreadyRevoked(_))
    ));
    assert!(matches!(
        store.revoke(&"41".parse().unwrap(), Reason::Superseded, later),
        Err(StoreError::UnknownSerial(_))
    ));
    let bundle = store.trust_bundle().unwrap();
    assert_eq!(
        bundle.verify_node(&chain, later, Usage::Client, &expect),
        Err(VerifyError::Revoked)
    );
}

fn crl_number(store: &CaDir, scope: AuthorityScope) -> u64 {
    pki::crl::CrlSummary::read(&store.crl(scope).unwrap())
        .unwrap()
        .number
}

#[test]
fn cas_are_never_overwritten_and_keys_are_private() {
    let scratch = Scratch::new("overwrite");
    let (network, allocation) = national();
    let now = SystemTime::now();
    let store = CaDir::at(&scratch.0);
    let root = store.init(KeyAlgorithm::Ed25519, now).unwrap();
    let err = store.init(KeyAlgorithm::Ed25519, now).unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    assert!(err.to_string().contains("never overwritten"), "{err}");
    assert_eq!(store.root().unwrap().certificate(), root.certificate());

    store
        .create_authority(shanxi(), KeyAlgorithm::Ed25519, network, allocation, now)
        .unwrap();
    let first = std::fs::read(store.certificate_path(shanxi())).unwrap();
    assert!(matches!(
        store.create_authority(shanxi(), KeyAlgorithm::Ed25519, network, allocation, now),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(
        std::fs::read(store.certificate_path(shanxi())).unwrap(),
        first
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path().join("root.key")), 0o600);
        assert_eq!(mode(store.path().join("authorities/14.key")), 0o600);
        assert_eq!(mode(store.path().to_owned()), 0o700);
    }
}

#[test]
fn damaged_files_are_reported_with_their_place_and_nothing_is_lost() {
    let scratch = Scratch::new("damaged");
    let (network, allocation) = national();
    let now = SystemTime::now();
    let store = CaDir::at(&scratch.0);
    store.init(KeyAlgorithm::EcdsaP256, now).unwrap();
    let ca = store
        .create_authority(shanxi(), KeyAlgorithm::EcdsaP256, network, allocation, now)
        .unwrap();
    let keys = NodeKeys::new("dc:1402", Plane::Office, KeyAlgorithm::EcdsaP256);
    let issued = keys.issue(&ca, now, NODE_LIFETIME);
    store.keep_issued(shanxi(), &issued).unwrap();
    std::fs::write(store.path().join("issued/14/4000.pem"), "garbage").unwrap();
    let listing = store.issued().unwrap();
    assert_eq!(
        listing.certificates.len(),
        1,
        "the good certificate is still listed"
    );
    assert_eq!(listing.unreadable.len(), 1);
    assert!(listing.unreadable[0].to_string().contains("4000.pem"));

    let revoked = store.path().join("revoked.txt");
    std::fs::write(&revoked, "# revocations\n41aa 14 superseded 1\nnonsense\n").unwrap();
    let err = store.revocations().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:3: expected", revoked.display())),
        "{err}"
    );
    // A refused revocation leaves the file as it was.
    assert!(
        store
            .revoke(&issued.serial, Reason::Superseded, now)
            .is_err()
    );
    assert!(
        std::fs::read_to_string(&revoked)
            .unwrap()
            .ends_with("nonsense\n")
    );

    std::fs::write(store.path().join("authorities/14.key"), "not a key").unwrap();
    let err = store.authority(shanxi()).unwrap_err().to_string();
    assert!(err.contains("authorities/14.key"), "{err}");
    assert!(
        !err.contains("not a key"),
        "errors never quote key files: {err}"
    );
}
