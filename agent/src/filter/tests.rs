//! Unit tests of the filter's internals: the IPv6 header walk, ICMP quotes, the decision
//! cache and re-deciding tracked flows under a new policy. The behaviour on real packets
//! between plan addresses is in `agent/tests/filter.rs`.
#![allow(clippy::disallowed_methods)] // tests may read the clock

use std::net::Ipv6Addr;

use super::packet::{Fragment, L4, parse};
use super::*;
use crate::control::ModelSources;

const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// An IPv6 packet: fixed header with `next`, then `rest` (extension headers and payload).
fn v6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&A.octets());
    p.extend_from_slice(&B.octets());
    p.extend_from_slice(rest);
    p
}

/// A UDP header from port 1000 to 53 with `data` bytes after it.
fn udp(data: usize) -> Vec<u8> {
    let mut u = vec![0x03, 0xe8, 0x00, 0x35];
    u.extend_from_slice(&((8 + data) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend(std::iter::repeat_n(0u8, data));
    u
}

/// A fragment header: next header, offset in 8-byte units, more-fragments, id.
fn fragment(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut f = vec![next, 0];
    f.extend_from_slice(&field.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f
}

#[test]
fn ipv6_extension_headers_are_walked_to_the_transport() {
    let udp_l4 = L4::Udp {
        src_port: 1000,
        dst_port: 53,
    };
    let plain = parse(&v6(17, &udp(4))).unwrap();
    assert_eq!((plain.header.proto, plain.header.l4), (17, udp_l4));
    // Hop-by-hop (8 bytes), routing (16 bytes), then UDP.
    let mut rest = vec![43, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&udp(0));
    let walked = parse(&v6(0, &rest)).unwrap();
    assert_eq!((walked.header.proto, walked.header.l4), (17, udp_l4));
    // Authentication header: length in 4-byte units, minus 2.
    let mut rest = vec![17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(&udp(0));
    assert_eq!(parse(&v6(51, &rest)).unwrap().header.l4, udp_l4);
    // A first fragment, a later fragment, an atomic fragment.
    let mut first = fragment(17, 0, true, 9);
    first.extend_from_slice(&udp(32));
    let first = parse(&v6(44, &first)).unwrap();
    assert_eq!(
        (first.fragment, first.header.l4),
        (Fragment::First(9), udp_l4)
    );
    let mut later = fragment(17, 5, false, 9);
    later.extend_from_slice(&[0; 16]);
    let later = parse(&v6(44, &later)).unwrap();
    assert_eq!(
        (later.fragment, later.header.proto, later.header.l4),
        (Fragment::Later(9), 17, L4::None)
    );
    let mut atomic = fragment(17, 0, false, 9);
    atomic.extend_from_slice(&udp(0));
    assert_eq!(parse(&v6(44, &atomic)).unwrap().fragment, Fragment::Whole);
    // No next header: a portless packet.
    assert_eq!(parse(&v6(59, &[])).unwrap().header.l4, L4::None);
}

#[test]
fn broken_ipv6_headers_are_malformed() {
    // Payload length past the buffer.
    let mut p = v6(17, &udp(4));
    p[5] += 1;
    assert_eq!(parse(&p), None, "payload length past the buffer");
    // A jumbogram.
    assert_eq!(parse(&v6(0, &[])), None, "jumbogram");
    // A truncated extension header.
    assert_eq!(parse(&v6(60, &[17, 3, 0, 0])), None, "truncated");
    // Too many extension headers.
    let mut rest = Vec::new();
    for _ in 0..=packet::MAX_EXTENSIONS {
        rest.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    rest.extend_from_slice(&udp(0));
    assert_eq!(parse(&v6(60, &rest)), None, "too many extension headers");
    // Two fragment headers, even if the first is atomic.
    let mut rest = fragment(44, 0, false, 1);
    rest.extend_from_slice(&fragment(17, 0, true, 1));
    rest.extend_from_slice(&udp(0));
    assert_eq!(parse(&v6(44, &rest)), None, "two fragment headers");
    // A first fragment without its whole transport header.
    let mut rest = fragment(6, 0, true, 1);
    rest.extend_from_slice(&[0; 12]);
    assert_eq!(parse(&v6(44, &rest)), None, "tiny first fragment");
    // Neither version 4 nor 6.
    let mut p = v6(17, &udp(0));
    p[0] = 0x70;
    assert_eq!(parse(&p), None, "version 7");
}

#[test]
fn an_icmpv6_error_carries_the_quoted_flow() {
    let quoted = v6(17, &udp(0));
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00]; // packet too big, MTU 1280
    msg.extend_from_slice(&quoted);
    let packet = parse(&v6(58, &msg)).unwrap();
    assert_eq!(packet.header.l4, L4::IcmpError);
    let quoted = packet.quoted.unwrap();
    assert_eq!(
        (quoted.src, quoted.dst, quoted.l4),
        (
            IpAddr::from(A),
            IpAddr::from(B),
            L4::Udp {
                src_port: 1000,
                dst_port: 53
            }
        )
    );
    // An error whose quote is cut before the ports is malformed.
    let mut cut = vec![1, 0, 0, 0, 0, 0, 0, 0];
    cut.extend_from_slice(&v6(17, &udp(0))[..42]);
    assert_eq!(parse(&v6(58, &cut)), None);
    // Neighbour discovery is another ICMPv6 type.
    let ns = parse(&v6(58, &[135, 0, 0, 0, 0, 0, 0, 0])).unwrap();
    assert_eq!(ns.header.l4, L4::IcmpOther(135));
}

fn national() -> Arc<Model> {
    Model::national().unwrap()
}

fn address(model: &Model, node: &str, zone: Zone) -> IpAddr {
    let ix = model.network.lookup(&node.parse().unwrap()).unwrap();
    model
        .allocation
        .overlay_addresses(Plane::Business, ix)
        .into_iter()
        .find_map(|(z, a)| (z == zone).then_some(a))
        .unwrap()
}

/// An IPv4 TCP SYN (or other flags) between two addresses.
fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        panic!("v4 only");
    };
    let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p
}

#[test]
fn repeated_first_packets_are_decided_once() {
    let model = national();
    let mut f = ZoneFilter::new(
        Arc::clone(&model),
        Plane::Business,
        &FilterSettings::default(),
    );
    let now = Instant::now();
    let province = address(&model, "dc:14", Zone::Exchange);
    let production = address(&model, "dc:1401", Zone::Production);
    for port in 0..100 {
        let verdict = f.check(
            now,
            &tcp(province, production, 30000 + port, 1521, TcpFlags::SYN),
        );
        assert_eq!(verdict, Verdict::Deny(Denied::Policy));
    }
    assert_eq!(f.decisions.len(), 1, "one decision for every source port");
    let exchange = address(&model, "dc:1401", Zone::Exchange);
    for port in 0..100 {
        let verdict = f.check(
            now,
            &tcp(exchange, production, 30000 + port, 1521, TcpFlags::SYN),
        );
        assert!(matches!(verdict, Verdict::Allow { rule: Some(_) }));
    }
    assert_eq!((f.decisions.len(), f.flows()), (2, 100));
}

#[test]
fn a_new_policy_redecides_tracked_flows() {
    let model = national();
    let mut f = ZoneFilter::new(
        Arc::clone(&model),
        Plane::Business,
        &FilterSettings::default(),
    );
    let now = Instant::now();
    let exchange = address(&model, "dc:1401", Zone::Exchange);
    let production = address(&model, "dc:1401", Zone::Production);
    let ministry = address(&model, "dc:ministry", Zone::Exchange);
    let syn = TcpFlags::SYN;
    assert!(matches!(
        f.check(now, &tcp(exchange, production, 40000, 1521, syn)),
        Verdict::Allow { rule: Some(_) }
    ));
    assert!(matches!(
        f.check(now, &tcp(exchange, ministry, 40000, 443, syn)),
        Verdict::Allow { rule: Some(_) }
    ));
    // The same policy under another name keeps every flow.
    let same = Model::load(&ModelSources {
        policy: Some(topology::policy::EMBEDDED_POLICY.to_owned()),
        ..ModelSources::default()
    })
    .unwrap();
    f.set_model(same);
    assert_eq!(f.flows(), 2);
    // A policy that moves database synchronisation to another port drops that flow only.
    let moved = topology::policy::EMBEDDED_POLICY.replacen(
        "ports = [1521]              # database synchronisation",
        "ports = [1522]              # database synchronisation",
        1,
    );
    assert_ne!(moved, topology::policy::EMBEDDED_POLICY);
    let moved = Model::load(&ModelSources {
        policy: Some(moved),
        ..ModelSources::default()
    })
    .unwrap();
    f.set_model(moved);
    assert_eq!(f.flows(), 1);
    let answer = tcp(
        production,
        exchange,
        1521,
        40000,
        TcpFlags::SYN | TcpFlags::ACK,
    );
    assert_eq!(f.check(now, &answer), Verdict::Deny(Denied::NoFlow));
    let answer = tcp(
        ministry,
        exchange,
        443,
        40000,
        TcpFlags::SYN | TcpFlags::ACK,
    );
    assert_eq!(f.check(now, &answer), Verdict::Allow { rule: None });
    let names: Vec<String> = f.rule_counters().into_iter().map(|c| c.rule).collect();
    let new_policy: Vec<String> = f
        .model()
        .policy
        .rules()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(
        names, new_policy,
        "the counters follow the new policy's rules"
    );
    assert_eq!(
        f.model().policy.rules()[0].location.file.as_ref(),
        "bundle/policy.toml"
    );
}
