//! The CA checks every request against the topology and refuses with the exact reason.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::{Hierarchy, NodeKeys, national};
use pki::profile::NODE_LIFETIME;
use pki::request::{Request, node_request, operator_request, read_request_pem};
use pki::{
    IssueRefusal, KeyAlgorithm, NodeExpectation, Role, TrustBundle, Usage, VerifyError,
    WireGuardKey,
};
use topology::{Plane, Zone};

fn refusal(hierarchy: &Hierarchy, keys: &NodeKeys, ca: &str) -> String {
    let (network, allocation) = national();
    let Request::Node(request) = read_request_pem(
        node_request(&keys.key, &keys.binding, &keys.addresses)
            .unwrap()
            .as_bytes(),
    )
    .unwrap() else {
        panic!()
    };
    hierarchy
        .authority(ca.parse().unwrap())
        .issue_node(
            &request,
            network,
            allocation,
            SystemTime::now(),
            NODE_LIFETIME,
        )
        .unwrap_err()
        .to_string()
}

#[test]
fn a_good_request_is_issued_and_verifies() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let keys = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);
    let issued = keys.issue(&hierarchy.shanxi, SystemTime::now(), NODE_LIFETIME);
    let chain = [
        issued.certificate.clone(),
        hierarchy.shanxi.certificate().clone(),
    ];
    let identity = hierarchy
        .bundle(&[], 1)
        .verify_node(
            &chain,
            SystemTime::now(),
            Usage::Client,
            &NodeExpectation {
                plane: Some(Plane::Business),
                node: None,
                wireguard_key: Some(keys.wireguard),
            },
        )
        .unwrap();
    assert_eq!(identity.node.to_string(), "dc:1401");
    assert_eq!(
        identity.zones,
        [Zone::Mgmt, Zone::Exchange, Zone::Production]
    );
    let addresses: Vec<String> = identity.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addresses, ["10.32.64.1", "10.32.64.65", "10.32.64.129"]);
    assert_eq!(identity.issuer.to_string(), "14");
    let lifetime = identity
        .not_after
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        lifetime > Duration::from_secs(29 * 86_400) && lifetime <= NODE_LIFETIME,
        "{lifetime:?}"
    );
}

#[test]
fn requests_outside_the_plan_are_refused_with_the_reason() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let base = || NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::EcdsaP256);

    let keys = base();
    assert_eq!(
        refusal(&hierarchy, &keys, "44"),
        "dc:1401 is issued by the 14 CA, not the 44 CA"
    );

    let mut keys = base();
    keys.binding.node = "dc:9901".parse().unwrap();
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "no node dc:9901 in the network"
    );

    let mut keys = base();
    keys.addresses[0] = "10.32.64.5".parse::<IpAddr>().unwrap();
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "dc:1401 asks for addresses the plan does not give it on the business plane: not the plan's: 10.32.64.5; missing: 10.32.64.1"
    );

    let mut keys = base();
    keys.binding.zones.push(Zone::Dmz);
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "dc:1401 has no dmz zone on the business plane (it has: mgmt, exchange, production)"
    );

    let mut keys = NodeKeys::new("site:140105", Plane::Business, KeyAlgorithm::EcdsaP256);
    keys.binding.plane = Plane::Office;
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "site:140105 is not on the office plane"
    );

    let mut keys = base();
    keys.binding.wireguard_key = WireGuardKey([0; 32]);
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "the WireGuard key is all zeros"
    );

    let mut keys = base();
    keys.binding.zones.clear();
    assert_eq!(
        refusal(&hierarchy, &keys, "14"),
        "the request names no zones"
    );
}

#[test]
fn the_root_signs_no_leaves_and_only_the_ministry_signs_operators() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::Ed25519);
    let (network, allocation) = national();
    let keys = NodeKeys::new("dc:1401", Plane::Business, KeyAlgorithm::Ed25519);
    let refused = hierarchy.root.issue_node(
        &keys.request(),
        network,
        allocation,
        SystemTime::now(),
        NODE_LIFETIME,
    );
    assert_eq!(refused.unwrap_err(), IssueRefusal::RootSignsOnlyAuthorities);

    let key = pki::PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let Request::Operator(request) =
        read_request_pem(operator_request(&key, "李四", "lisi").unwrap().as_bytes()).unwrap()
    else {
        panic!()
    };
    let refused = hierarchy.shanxi.issue_operator(
        &request,
        Role::Noc,
        None,
        SystemTime::now(),
        NODE_LIFETIME,
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "operator certificates are issued by the ministry CA, not the 14 CA"
    );
    let issued = hierarchy
        .ministry
        .issue_operator(&request, Role::Noc, None, SystemTime::now(), NODE_LIFETIME)
        .unwrap();
    let operator = hierarchy
        .bundle(&[], 1)
        .verify_operator(
            &[
                issued.certificate.clone(),
                hierarchy.ministry.certificate().clone(),
            ],
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        (
            operator.name.as_str(),
            operator.login.as_str(),
            operator.role
        ),
        ("李四", "lisi", Role::Noc)
    );
}

#[test]
fn ministry_nodes_are_issued_by_the_ministry_ca() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    for node in ["dc:ministry", "dr:ministry"] {
        let keys = NodeKeys::new(node, Plane::Office, KeyAlgorithm::EcdsaP256);
        let issued = keys.issue(&hierarchy.ministry, SystemTime::now(), NODE_LIFETIME);
        let identity = hierarchy
            .bundle(&[], 1)
            .verify_node(
                &[issued.certificate],
                SystemTime::now(),
                Usage::Server,
                &NodeExpectation::default(),
            )
            .unwrap();
        assert_eq!(identity.issuer.to_string(), "ministry");
    }
}

#[test]
fn authorities_reload_from_pem() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let loaded = pki::Authority::load(
        &hierarchy.shanxi.certificate_pem(),
        &hierarchy.shanxi.key_pem(),
    )
    .unwrap();
    assert_eq!(loaded.scope(), hierarchy.shanxi.scope());
    let keys = NodeKeys::new("site:140105001", Plane::Business, KeyAlgorithm::EcdsaP256);
    let issued = keys.issue(&loaded, SystemTime::now(), NODE_LIFETIME);
    hierarchy
        .bundle(&[], 1)
        .verify_node(
            &[issued.certificate],
            SystemTime::now(),
            Usage::Client,
            &NodeExpectation::default(),
        )
        .unwrap();
    let mismatch = pki::Authority::load(
        &hierarchy.shanxi.certificate_pem(),
        &hierarchy.guangdong.key_pem(),
    );
    assert_eq!(mismatch.unwrap_err(), pki::PkiError::KeyMismatch);
}

#[test]
fn a_tampered_crl_is_refused_when_the_bundle_is_built() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let mut crls = hierarchy.crls(&[], 1);
    let shanxi = crls[2].as_ref().to_vec();
    let last = shanxi.len() - 1;
    let mut tampered = shanxi.clone();
    tampered[last] ^= 0x01; // inside the signature's last INTEGER: still well-formed DER
    crls[2] = rustls_pki_types::CertificateRevocationListDer::from(tampered);
    let err = TrustBundle::new(
        hierarchy.root.certificate().clone(),
        vec![
            hierarchy.ministry.certificate().clone(),
            hierarchy.shanxi.certificate().clone(),
            hierarchy.guangdong.certificate().clone(),
        ],
        &crls,
    )
    .unwrap_err();
    assert!(
        matches!(&err, VerifyError::BadRevocationList(why) if why.contains("Province CA 14")),
        "{err}"
    );
}

#[test]
fn provincial_operators_carry_their_province_and_only_a_province() {
    let hierarchy = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let key = pki::PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let Request::Operator(request) =
        read_request_pem(operator_request(&key, "王五", "wangwu").unwrap().as_bytes()).unwrap()
    else {
        panic!()
    };
    let issue = |province: &str| {
        hierarchy.ministry.issue_operator(
            &request,
            Role::Engineer,
            Some(province.parse().unwrap()),
            SystemTime::now(),
            NODE_LIFETIME,
        )
    };
    let issued = issue("14").unwrap();
    let chain = [
        issued.certificate.clone(),
        hierarchy.ministry.certificate().clone(),
    ];
    let bundle = hierarchy.bundle(&[], 1);
    let operator = bundle.verify_operator(&chain, SystemTime::now()).unwrap();
    assert_eq!(
        (operator.login.as_str(), operator.role),
        ("wangwu", Role::Engineer)
    );
    assert_eq!(operator.province.as_deref(), Some("14"));
    let summary = pki::inspect::Summary::read(&issued.certificate).unwrap();
    assert_eq!(summary.operator.and_then(|o| o.province), Some("14".into()));

    for deeper in ["1401", "140105"] {
        assert_eq!(
            issue(deeper).unwrap_err(),
            IssueRefusal::NotAProvince(deeper.parse().unwrap())
        );
    }
    assert_eq!(
        issue("1401").unwrap_err().to_string(),
        "an operator's scope is a 2-digit province code, not 1401"
    );

    // Unscoped: the whole network.
    let issued = hierarchy
        .ministry
        .issue_operator(
            &request,
            Role::Auditor,
            None,
            SystemTime::now(),
            NODE_LIFETIME,
        )
        .unwrap();
    let operator = bundle
        .verify_operator(&[issued.certificate], SystemTime::now())
        .unwrap();
    assert_eq!(operator.province, None);
}
