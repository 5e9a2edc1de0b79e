//! How bundles are computed and versioned, without sockets: the roster's tree (uplink,
//! children, allowed prefixes), versions that change only with content and survive a
//! restart, and CRLs refreshed before they run out.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use agent::control::{ModelSources, PeerRole, ProbeSettings, Trust};
use agent::model::Model;
use controller::bundles::Roster;
use controller::server::Controller;
use controller::store::NodeRecord;
use pki::WireGuardKey;
use topology::{NodeId, Plane};

fn record(node: &str, plane: Plane, port: u16) -> NodeRecord {
    NodeRecord {
        node: node.parse().unwrap(),
        plane,
        wireguard_key: WireGuardKey([port as u8; 32]),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        backup_listen: (node == "dc:14").then(|| SocketAddr::from(([127, 0, 0, 2], port))),
        certificate_pem: format!("certificate of {node}"),
        serial: format!("{port:04x}"),
        enrolled_at: SystemTime::UNIX_EPOCH,
    }
}

fn empty_trust() -> Trust {
    Trust {
        root: String::new(),
        intermediates: Vec::new(),
        crls: Vec::new(),
    }
}

fn block(model: &Model, node: &str, plane: Plane) -> ipnet::IpNet {
    let ix = model.network.lookup(&node.parse().unwrap()).unwrap();
    model.allocation.node(plane, ix).unwrap().block
}

#[test]
fn the_roster_builds_the_tree_from_what_is_enrolled() {
    let model = Model::load(&ModelSources::default()).unwrap();
    let enrolled = vec![
        record("dc:ministry", Plane::Business, 1000),
        record("dc:14", Plane::Business, 1014),
        record("dc:1401", Plane::Business, 1401),
        record("dc:1402", Plane::Business, 1402),
        record("dc:1401", Plane::Office, 2401),
        // Hebei's province is not enrolled: its city has no uplink yet.
        record("dc:1301", Plane::Business, 1301),
    ];
    let roster = Roster::new(
        &model,
        ModelSources::default(),
        empty_trust(),
        ProbeSettings::default(),
        &enrolled,
    );
    let province = roster.bundle("dc:14".parse().unwrap()).unwrap();
    assert_eq!(province.planes.len(), 1);
    let peers = &province.planes[0].peers;
    let roles: Vec<(String, PeerRole)> =
        peers.iter().map(|p| (p.node.to_string(), p.role)).collect();
    assert_eq!(
        roles,
        [
            ("dc:ministry".to_owned(), PeerRole::Uplink),
            ("dc:1401".to_owned(), PeerRole::Child),
            ("dc:1402".to_owned(), PeerRole::Child),
        ]
    );
    let supernet = model.allocation.supernet(Plane::Business).unwrap();
    assert_eq!(
        peers[0].allowed,
        [supernet],
        "the uplink carries the whole plane"
    );
    assert_eq!(
        peers[1].allowed,
        [block(&model, "dc:1401", Plane::Business)]
    );
    assert_eq!(peers[0].endpoint, Some(enrolled[0].listen));

    let city = roster.bundle("dc:1401".parse().unwrap()).unwrap();
    assert_eq!(city.planes.len(), 2, "enrolled on two planes");
    let business = &city.planes[0];
    assert_eq!(business.peers.len(), 1);
    assert_eq!(business.peers[0].backup, enrolled[1].backup_listen);
    assert_eq!(
        business.private_key,
        PathBuf::from("wireguard-business.key")
    );
    let office = &city.planes[1];
    assert_eq!(office.plane, Plane::Office);
    assert!(office.peers.is_empty(), "no office-plane province enrolled");

    let orphan = roster.bundle("dc:1301".parse().unwrap()).unwrap();
    assert!(orphan.planes[0].peers.is_empty());
    assert!(roster.bundle("dc:44".parse().unwrap()).is_none());
    assert_eq!(roster.nodes().len(), 5);
}

fn controller_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jinbao-reconcile-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_jinbao-controller"))
        .arg("--dir")
        .arg(&dir)
        .arg("init")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    dir
}

fn version(controller: &Controller, node: &str) -> u64 {
    controller
        .current(&node.parse::<NodeId>().unwrap())
        .unwrap()
        .version
}

fn enroll(dir: &Path, records: &[NodeRecord]) {
    let controller = Controller::open(dir).unwrap();
    controller
        .store
        .write(|tx| {
            for record in records {
                tx.enroll_node(record, "test")?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn versions_change_only_with_content_and_survive_a_restart() {
    let dir = controller_dir();
    let now = SystemTime::now();
    enroll(
        &dir,
        &[
            record("dc:14", Plane::Business, 1014),
            record("dc:1401", Plane::Business, 1401),
        ],
    );
    let controller = Controller::open(&dir).unwrap();
    let (province, city) = (
        version(&controller, "dc:14"),
        version(&controller, "dc:1401"),
    );
    assert!(province > 0 && city > 0);
    assert_eq!(controller.reconcile(now).unwrap(), 0, "nothing changed");

    // A change every bundle carries: new versions for both, larger than before.
    let probes = ProbeSettings {
        interval_ms: 200,
        ..ProbeSettings::default()
    };
    controller
        .store
        .write(|tx| tx.set_setting("probes", &serde_json::to_string(&probes).unwrap(), "test"))
        .unwrap();
    assert_eq!(controller.reconcile(now).unwrap(), 2);
    let after = (
        version(&controller, "dc:14"),
        version(&controller, "dc:1401"),
    );
    assert!(after.0 > province && after.1 > city, "{after:?}");
    let signed = controller.current(&"dc:1401".parse().unwrap()).unwrap();
    assert!(signed.signed.bundle.contains("\"interval_ms\":200"));

    // A restart gives the same versions: agents see nothing new.
    drop(controller);
    let restarted = Controller::open(&dir).unwrap();
    assert_eq!(
        (version(&restarted, "dc:14"), version(&restarted, "dc:1401")),
        after
    );
    // A new child changes its province's bundle only.
    restarted
        .store
        .write(|tx| tx.enroll_node(&record("dc:1402", Plane::Business, 1402), "test"))
        .unwrap();
    assert_eq!(
        restarted.reconcile(now).unwrap(),
        2,
        "the province and the new city"
    );
    assert!(version(&restarted, "dc:14") > after.0);
    assert_eq!(version(&restarted, "dc:1401"), after.1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crls_are_published_again_two_thirds_through_their_life_and_reach_the_bundles() {
    let dir = controller_dir();
    enroll(&dir, &[record("dc:14", Plane::Business, 1014)]);
    let controller = Controller::open(&dir).unwrap();
    let now = SystemTime::now();
    let before = version(&controller, "dc:14");
    assert_eq!(
        controller.refresh_crls(now).unwrap(),
        0,
        "fresh CRLs are kept"
    );
    let cas = 1 + pki::store::CaDir::at(&dir).authorities().unwrap().len();
    let later = now + Duration::from_secs(5 * 86_400);
    assert_eq!(controller.refresh_crls(later).unwrap(), cas);
    assert_eq!(controller.refresh_crls(later).unwrap(), 0, "once is enough");
    assert_eq!(controller.reconcile(later).unwrap(), 1);
    assert!(
        version(&controller, "dc:14") > before,
        "new CRLs reach the agents"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
