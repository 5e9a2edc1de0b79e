//! The zone filter on real packets (built with pnet) between real plan addresses: what it
//! allows and denies agrees with `Policy::decide` (what `jinbao-controller policy query`
//! answers), flows are tracked both ways and expire, counters and records are exact, and no
//! byte sequence makes it panic.
#![allow(clippy::disallowed_methods)] // tests may read the clock
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::control::{FilterSettings, ModelSources};
use agent::filter::{Denied, Verdict, ZoneFilter};
use agent::model::Model;
use pnet_packet::icmp::{IcmpTypes, MutableIcmpPacket};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{MutableTcpPacket, TcpFlags};
use pnet_packet::udp::MutableUdpPacket;
use proptest::prelude::*;
use topology::policy::Proto;
use topology::policy::reach::{Query, Verdict as PolicyVerdict, sample_pairs};
use topology::{Plane, Zone, ZoneRef};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

fn model() -> Arc<Model> {
    Model::national().expect("the national model loads")
}

/// A node's overlay address in a zone on a plane.
fn addr(model: &Model, plane: Plane, node: &str, zone: Zone) -> IpAddr {
    let ix = model.network.lookup(&node.parse().unwrap()).unwrap();
    model
        .allocation
        .overlay_addresses(plane, ix)
        .into_iter()
        .find_map(|(z, a)| (z == zone).then_some(a))
        .unwrap_or_else(|| panic!("{node} has no {zone} zone on {plane}"))
}

fn biz(node: &str, zone: Zone) -> IpAddr {
    addr(&model(), Plane::Business, node, zone)
}

/// The index of a policy rule by name.
fn rule(name: &str) -> usize {
    model()
        .policy
        .rules()
        .iter()
        .position(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

// ── packets ──────────────────────────────────────────────────────────────────────────────

/// An IP packet (v4 or v6 after the addresses) around a transport payload.
fn ip(src: IpAddr, dst: IpAddr, proto: IpNextHeaderProtocol, transport: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            ipv4_fragment(src, dst, proto, 1, 0, false, transport)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut buf = vec![0u8; 40 + transport.len()];
            let mut p = MutableIpv6Packet::new(&mut buf).unwrap();
            p.set_version(6);
            p.set_payload_length(transport.len() as u16);
            p.set_next_header(proto);
            p.set_hop_limit(64);
            p.set_source(src);
            p.set_destination(dst);
            p.set_payload(transport);
            buf
        }
        _ => panic!("mixed families"),
    }
}

/// An IPv4 packet or fragment (`offset` in 8-byte units).
fn ipv4_fragment(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpNextHeaderProtocol,
    id: u16,
    offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; 20 + payload.len()];
    let mut p = MutableIpv4Packet::new(&mut buf).unwrap();
    p.set_version(4);
    p.set_header_length(5);
    p.set_total_length((20 + payload.len()) as u16);
    p.set_identification(id);
    p.set_flags(if more {
        ipv4::Ipv4Flags::MoreFragments
    } else {
        0
    });
    p.set_fragment_offset(offset);
    p.set_ttl(64);
    p.set_next_level_protocol(proto);
    p.set_source(src);
    p.set_destination(dst);
    p.set_payload(payload);
    let checksum = ipv4::checksum(&p.to_immutable());
    p.set_checksum(checksum);
    buf
}

fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    let mut t = MutableTcpPacket::new(&mut seg).unwrap();
    t.set_source(sport);
    t.set_destination(dport);
    t.set_sequence(1000);
    t.set_acknowledgement(if flags & ACK != 0 { 2000 } else { 0 });
    t.set_data_offset(5);
    t.set_flags(flags);
    t.set_window(65535);
    ip(src, dst, IpNextHeaderProtocols::Tcp, &seg)
}

fn udp_segment(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + data.len()];
    let mut u = MutableUdpPacket::new(&mut seg).unwrap();
    u.set_source(sport);
    u.set_destination(dport);
    u.set_length((8 + data.len()) as u16);
    u.set_payload(data);
    seg
}

fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    ip(
        src,
        dst,
        IpNextHeaderProtocols::Udp,
        &udp_segment(sport, dport, b"probe"),
    )
}

/// An ICMP (or ICMPv6, by address family) echo request or reply.
fn echo(src: IpAddr, dst: IpAddr, request: bool, id: u16) -> Vec<u8> {
    let mut msg = vec![0u8; 16];
    let v6 = src.is_ipv6();
    let kind = match (v6, request) {
        (false, true) => IcmpTypes::EchoRequest.0,
        (false, false) => IcmpTypes::EchoReply.0,
        (true, true) => 128,
        (true, false) => 129,
    };
    let mut m = MutableIcmpPacket::new(&mut msg).unwrap();
    m.set_icmp_type(pnet_packet::icmp::IcmpType(kind));
    msg[4..6].copy_from_slice(&id.to_be_bytes());
    msg[6..8].copy_from_slice(&1u16.to_be_bytes());
    let proto = if v6 {
        IpNextHeaderProtocols::Icmpv6
    } else {
        IpNextHeaderProtocols::Icmp
    };
    ip(src, dst, proto, &msg)
}

/// An ICMPv4 "fragmentation needed" from `src` to `dst` quoting `quoted`.
fn too_big(src: IpAddr, dst: IpAddr, quoted: &[u8]) -> Vec<u8> {
    let quote = &quoted[..quoted.len().min(28)];
    let mut msg = vec![0u8; 8 + quote.len()];
    let mut m = MutableIcmpPacket::new(&mut msg).unwrap();
    m.set_icmp_type(IcmpTypes::DestinationUnreachable);
    m.set_icmp_code(pnet_packet::icmp::IcmpCode(4));
    msg[6..8].copy_from_slice(&1400u16.to_be_bytes());
    msg[8..].copy_from_slice(quote);
    ip(src, dst, IpNextHeaderProtocols::Icmp, &msg)
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("not v4"),
    }
}

fn allow_new(rule: usize) -> Verdict {
    Verdict::Allow { rule: Some(rule) }
}

const TRACKED: Verdict = Verdict::Allow { rule: None };
const POLICY: Verdict = Verdict::Deny(Denied::Policy);
const NO_FLOW: Verdict = Verdict::Deny(Denied::NoFlow);
const MALFORMED: Verdict = Verdict::Malformed;

/// A filter and its clock: `lab.tcp(…)` builds a packet and checks it at `lab.now`.
struct Lab {
    f: ZoneFilter,
    now: Instant,
}

impl Lab {
    fn new(plane: Plane) -> Lab {
        Lab::with(plane, FilterSettings::default())
    }

    fn with(plane: Plane, settings: FilterSettings) -> Lab {
        let f = ZoneFilter::new(model(), plane, &settings);
        Lab {
            f,
            now: Instant::now(),
        }
    }

    fn send(&mut self, packet: &[u8]) -> Verdict {
        self.f.check(self.now, packet)
    }

    fn tcp(&mut self, src: IpAddr, dst: IpAddr, ports: (u16, u16), flags: u8) -> Verdict {
        self.send(&tcp(src, dst, ports.0, ports.1, flags))
    }

    fn udp(&mut self, src: IpAddr, dst: IpAddr, ports: (u16, u16)) -> Verdict {
        self.send(&udp(src, dst, ports.0, ports.1))
    }

    fn echo(&mut self, src: IpAddr, dst: IpAddr, request: bool, id: u16) -> Verdict {
        self.send(&echo(src, dst, request, id))
    }

    fn reasons(&mut self) -> Vec<String> {
        self.f
            .drain_denied()
            .into_iter()
            .map(|r| r.reason)
            .collect()
    }

    fn counters(&self, rule: usize) -> (u64, u64) {
        let c = &self.f.rule_counters()[rule];
        (c.allowed_flows, c.allowed_packets)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ── flows ────────────────────────────────────────────────────────────────────────────────

#[test]
fn an_allowed_tcp_flow_and_its_return_traffic_pass() {
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Exchange);
    let ministry = biz("dc:ministry", Zone::Exchange);
    assert_eq!(city.to_string(), "10.32.64.65");
    let up = rule("exchange-up");
    let (out, back) = ((40000, 1414), (1414, 40000));
    let script = [
        (city, ministry, out, SYN, allow_new(up)),
        (ministry, city, back, SYN | ACK, TRACKED),
        (city, ministry, out, ACK, TRACKED),
        (city, ministry, out, ACK | PSH, TRACKED),
        (ministry, city, back, ACK | PSH, TRACKED),
        (city, ministry, out, FIN | ACK, TRACKED),
        (ministry, city, back, FIN | ACK, TRACKED),
        (city, ministry, out, ACK, TRACKED),
    ];
    for (i, (src, dst, ports, flags, want)) in script.into_iter().enumerate() {
        assert_eq!(lab.tcp(src, dst, ports, flags), want, "packet {i}");
    }
    assert_eq!((lab.f.flows(), lab.f.default_denied()), (1, 0));
    let name = &lab.f.rule_counters()[up].rule;
    assert_eq!(name, "exchange-up");
    assert_eq!(lab.counters(up), (1, 8));
    // A new connection on the same ports after the close is decided afresh.
    assert_eq!(lab.tcp(city, ministry, out, SYN), allow_new(up));
    assert_eq!(lab.counters(up), (2, 9));
}

#[test]
fn a_denied_zone_pair_is_denied_with_the_policy_reason_and_a_record() {
    let mut lab = Lab::new(Plane::Business);
    let province = biz("dc:14", Zone::Exchange);
    let production = biz("dc:1401", Zone::Production);
    assert_eq!(production.to_string(), "10.32.64.129");
    assert_eq!(lab.tcp(province, production, (40000, 1521), SYN), POLICY);
    assert_eq!((lab.f.default_denied(), lab.f.flows()), (1, 0));
    let records = lab.f.drain_denied();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    let got = (r.src, r.dst, r.proto, r.dst_port, r.at);
    assert_eq!(got, (province, production, 6, Some(1521), lab.now));
    let want = "dc:14 → dc:1401: default deny: no rule allows business:exchange → \
                business:production to a child; rule 'exchange-to-production' \
                (embedded/policy.toml:64) does not apply: its scope is same-site";
    assert_eq!(r.reason, want);
    assert!(lab.f.drain_denied().is_empty(), "drained");
    // The same site's exchange may write into production on 1521, and only there.
    let exchange = biz("dc:1401", Zone::Exchange);
    let sync = rule("exchange-to-production");
    assert_eq!(
        lab.tcp(exchange, production, (40001, 1521), SYN),
        allow_new(sync)
    );
    assert_eq!(lab.tcp(exchange, production, (40002, 22), SYN), POLICY);
    assert_eq!(lab.f.denied_counts()[0], (Denied::Policy, 2));
}

#[test]
fn tcp_without_a_flow_is_denied_mid_stream() {
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Exchange);
    let ministry = biz("dc:ministry", Zone::Exchange);
    for flags in [ACK, ACK | PSH, SYN | ACK, FIN | ACK, RST, 0, SYN | FIN] {
        assert_eq!(
            lab.tcp(city, ministry, (40000, 1414), flags),
            NO_FLOW,
            "{flags:#x}"
        );
    }
    assert_eq!(lab.f.flows(), 0);
    let reasons = lab.reasons();
    assert_eq!(
        reasons[0],
        "tcp ACK without a tracked flow (a flow opens with SYN)"
    );
    // While the SYN is unanswered, neither side may send data.
    let up = allow_new(rule("exchange-up"));
    assert_eq!(lab.tcp(city, ministry, (40000, 1414), SYN), up);
    let early = lab.tcp(ministry, city, (1414, 40000), ACK | PSH);
    assert_eq!(early, Verdict::Deny(Denied::TcpState));
    // A refused connection (RST+ACK) passes and closes the flow.
    assert_eq!(lab.tcp(ministry, city, (1414, 40000), RST | ACK), TRACKED);
}

#[test]
fn flows_time_out_with_now() {
    let settings = FilterSettings::default();
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Mgmt);
    let province = biz("dc:14", Zone::Mgmt);
    assert_eq!(city.to_string(), "10.32.64.1");
    let probe = rule("mgmt-probe-up");
    assert_eq!(lab.udp(city, province, (40000, 3784)), allow_new(probe));
    // Each packet refreshes the flow.
    for _ in 0..2 {
        lab.now += secs(settings.udp_s - 1);
        assert_eq!(lab.udp(province, city, (3784, 40000)), TRACKED);
    }
    // After the timeout the answer is a new flow: dc:14 → dc:1401 mgmt udp/40000 is denied.
    lab.now += secs(settings.udp_s);
    assert_eq!(lab.udp(province, city, (3784, 40000)), POLICY);
    assert_eq!(lab.f.flows(), 0, "swept");
    // TCP: established flows live long, closing ones short.
    let ministry = biz("dc:ministry", Zone::Mgmt);
    let control = allow_new(rule("mgmt-control"));
    let (out, back) = ((40001, 8443), (8443, 40001));
    assert_eq!(lab.tcp(city, ministry, out, SYN), control);
    assert_eq!(lab.tcp(ministry, city, back, SYN | ACK), TRACKED);
    assert_eq!(lab.tcp(city, ministry, out, ACK), TRACKED);
    let transitory = secs(settings.tcp_transitory_s);
    lab.now += transitory + secs(1);
    assert_eq!(
        lab.tcp(ministry, city, back, ACK),
        TRACKED,
        "established outlives transitory"
    );
    assert_eq!(lab.tcp(city, ministry, out, FIN | ACK), TRACKED);
    lab.now += transitory + secs(1);
    assert_eq!(
        lab.tcp(ministry, city, back, ACK),
        NO_FLOW,
        "closing expires"
    );
    // A SYN never answered expires after the transitory timeout too.
    assert_eq!(lab.tcp(city, ministry, (40002, 8443), SYN), control);
    lab.now += transitory;
    assert_eq!(lab.tcp(ministry, city, (8443, 40002), SYN | ACK), NO_FLOW);
}

#[test]
fn an_echo_reply_passes_only_after_its_request() {
    let mut lab = Lab::new(Plane::Business);
    let ministry = biz("dc:ministry", Zone::Mgmt);
    let city = biz("dc:1401", Zone::Mgmt);
    let ping = rule("mgmt-ping");
    assert_eq!(lab.echo(city, ministry, false, 7), NO_FLOW);
    assert_eq!(lab.reasons(), ["echo reply (id 7) without a request"]);
    assert_eq!(lab.echo(ministry, city, true, 7), allow_new(ping));
    assert_eq!(lab.echo(city, ministry, false, 7), TRACKED);
    assert_eq!(lab.echo(city, ministry, false, 8), NO_FLOW, "another id");
    assert_eq!(
        lab.echo(ministry, city, true, 7),
        TRACKED,
        "the next request"
    );
    // Pinging upwards is no rule's: a request in the other direction is a flow of its own.
    assert_eq!(lab.echo(city, ministry, true, 7), POLICY);
    // The echo flow expires after the icmp timeout.
    lab.now += secs(FilterSettings::default().icmp_s);
    assert_eq!(lab.echo(city, ministry, false, 7), NO_FLOW);
    assert_eq!(lab.counters(ping), (1, 3));
}

#[test]
fn icmp_errors_pass_only_for_tracked_flows_and_other_types_never() {
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Exchange);
    let ministry = biz("dc:ministry", Zone::Exchange);
    let router = biz("dc:14", Zone::Mgmt);
    let syn = tcp(city, ministry, 40000, 1414, SYN);
    // Before the flow exists, an error quoting its SYN is unrelated.
    assert_eq!(lab.send(&too_big(router, city, &syn)), NO_FLOW);
    assert_eq!(lab.send(&syn), allow_new(rule("exchange-up")));
    // A router on the way says the packet is too big: path MTU discovery works.
    assert_eq!(lab.send(&too_big(router, city, &syn)), TRACKED);
    // The same error sent to the wrong host is not related.
    assert_eq!(lab.send(&too_big(router, ministry, &syn)), NO_FLOW);
    // A redirect is never let through.
    let mut redirect = echo(ministry, city, true, 1);
    redirect[20] = IcmpTypes::RedirectMessage.0;
    assert_eq!(lab.send(&redirect), Verdict::Deny(Denied::IcmpType));
    assert_eq!(lab.counters(rule("exchange-up")), (1, 2));
}

#[test]
fn counters_are_exact() {
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Mgmt);
    let province = biz("dc:14", Zone::Mgmt);
    let ministry = biz("dc:ministry", Zone::Mgmt);
    let (probe, ping) = (rule("mgmt-probe-up"), rule("mgmt-ping"));
    for port in 41000..41005 {
        assert_eq!(lab.udp(city, province, (port, 3784)), allow_new(probe));
        for _ in 0..3 {
            assert_eq!(lab.udp(province, city, (3784, port)), TRACKED);
        }
    }
    for id in 0..2 {
        assert_eq!(lab.echo(ministry, city, true, id), allow_new(ping));
    }
    for _ in 0..4 {
        assert_eq!(lab.udp(city, province, (42000, 9999)), POLICY);
    }
    assert_eq!(lab.send(&[0x45, 0, 0]), MALFORMED);
    let counters: Vec<(String, u64, u64)> = lab
        .f
        .rule_counters()
        .into_iter()
        .filter(|c| c.allowed_packets > 0)
        .map(|c| (c.rule, c.allowed_flows, c.allowed_packets))
        .collect();
    let want = [
        ("mgmt-probe-up".to_owned(), 5, 20),
        ("mgmt-ping".to_owned(), 2, 2),
    ];
    assert_eq!(counters, want);
    assert_eq!(lab.f.rule_counters().len(), model().policy.rules().len());
    let f = &lab.f;
    assert_eq!((f.default_denied(), f.malformed(), f.flows()), (4, 1, 7));
}

#[test]
fn records_are_rate_limited_and_the_rest_counted() {
    let settings = FilterSettings {
        denied_records_per_s: 5,
        ..FilterSettings::default()
    };
    let mut lab = Lab::with(Plane::Business, settings);
    let start = lab.now;
    let city = biz("dc:1401", Zone::Exchange);
    let production = biz("dc:14", Zone::Production);
    let deny = |lab: &mut Lab, n: u16| {
        for port in 40000..40000 + n {
            assert_eq!(lab.tcp(city, production, (port, 1521), SYN), POLICY);
        }
    };
    deny(&mut lab, 20);
    assert_eq!(lab.f.drain_denied().len(), 5);
    assert_eq!(
        (lab.f.default_denied(), lab.f.records_suppressed()),
        (20, 15)
    );
    lab.now += Duration::from_millis(200);
    deny(&mut lab, 3);
    assert_eq!(lab.f.drain_denied().len(), 1, "one token in 200 ms");
    lab.now += secs(10);
    deny(&mut lab, 20);
    let records = lab.f.drain_denied();
    assert_eq!(records.len(), 5, "the bucket holds one second");
    assert!(
        records
            .iter()
            .all(|r| r.at == start + Duration::from_millis(10_200))
    );
    assert_eq!(
        (lab.f.default_denied(), lab.f.records_suppressed()),
        (43, 32)
    );
}

#[test]
fn malformed_packets_are_counted_and_never_recorded() {
    let mut lab = Lab::new(Plane::Business);
    let city = biz("dc:1401", Zone::Exchange);
    let ministry = biz("dc:ministry", Zone::Exchange);
    let good = tcp(city, ministry, 40000, 1414, SYN);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated IP header", good[..12].to_vec()),
        ("truncated packet", good[..30].to_vec()),
        (
            "random bytes",
            vec![0x4f, 0x13, 0x37, 0x00, 0xde, 0xad, 0xbe, 0xef],
        ),
        ("IPv6 header cut short", vec![0x60; 39]),
    ];
    let mut with = |name: &'static str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        edit(&mut p);
        cases.push((name, p));
    };
    let set_u16 =
        |p: &mut Vec<u8>, at: usize, v: u16| p[at..at + 2].copy_from_slice(&v.to_be_bytes());
    with("version 5", &|p| p[0] = 0x55);
    with("version 0", &|p| p[0] = 0x05);
    with("IHL 4", &|p| p[0] = 0x44);
    with("IHL past the packet", &|p| p[0] = 0x4f);
    with("total length past the buffer", &|p| set_u16(p, 2, 100));
    with("total length under the header", &|p| set_u16(p, 2, 19));
    with("TCP header cut short", &|p| {
        p.truncate(30);
        set_u16(p, 2, 30);
    });
    with("TCP data offset 4", &|p| p[32] = 0x40);
    with("TCP data offset past the segment", &|p| p[32] = 0xf0);
    with("TCP fragment at offset 8 bytes", &|p| set_u16(p, 6, 1));
    for len in [7u16, 200] {
        // A UDP length field shorter than its header, or longer than the datagram.
        let mut p = udp(city, ministry, 40000, 1414);
        set_u16(&mut p, 24, len);
        cases.push(("udp length", p));
    }
    // A first fragment too short for its TCP header (RFC 1858's tiny fragment).
    let tcp_proto = IpNextHeaderProtocols::Tcp;
    let tiny = ipv4_fragment(v4(city), v4(ministry), tcp_proto, 9, 0, true, &good[20..28]);
    cases.push(("tiny first fragment", tiny));
    for (i, (name, packet)) in cases.iter().enumerate() {
        assert_eq!(lab.send(packet), MALFORMED, "{name}");
        assert_eq!(lab.f.malformed(), i as u64 + 1);
    }
    assert_eq!((lab.f.default_denied(), lab.f.flows()), (0, 0));
    assert!(lab.f.drain_denied().is_empty());
    // Trailing bytes after the total length are padding, not an error.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(lab.send(&padded), allow_new(rule("exchange-up")));
}

#[test]
fn addresses_of_other_planes_and_no_zone_are_denied() {
    let mut lab = Lab::new(Plane::Business);
    let m = model();
    let exchange = biz("dc:1401", Zone::Exchange);
    let decision = addr(&m, Plane::Office, "dc:1401", Zone::Decision);
    assert_eq!(decision.to_string(), "172.18.4.129");
    let other_plane = Verdict::Deny(Denied::OtherPlane);
    let unknown = Verdict::Deny(Denied::UnknownAddress);
    // The soft-exchange service itself: relayed by a gateway, never routed.
    assert_eq!(lab.tcp(exchange, decision, (40000, 443), SYN), other_plane);
    let nowhere: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(lab.tcp(nowhere, exchange, (40000, 443), SYN), unknown);
    let between_zones: IpAddr = "10.32.64.40".parse().unwrap();
    assert_eq!(lab.tcp(between_zones, exchange, (40000, 443), SYN), unknown);
    let reasons = lab.reasons();
    let want = [
        "172.18.4.129 is dc:1401's on the office plane, and this is the business plane: \
         planes are never bridged",
        "192.0.2.1 is outside every plane of the plan",
        "10.32.64.40 is in dc:1401's block on the business plane but in none of its zones",
    ];
    assert_eq!(reasons, want);
    // The office plane's filter refuses business addresses the same way…
    let mut office = Lab::new(Plane::Office);
    let office_mgmt = addr(&m, Plane::Office, "dc:14", Zone::Mgmt);
    let business_mgmt = biz("dc:1401", Zone::Mgmt);
    assert_eq!(
        office.udp(office_mgmt, business_mgmt, (161, 161)),
        other_plane
    );
    // …and decides its own plane's flows.
    let province_decision = addr(&m, Plane::Office, "dc:14", Zone::Decision);
    let up = allow_new(rule("decision-up"));
    assert_eq!(
        office.tcp(decision, province_decision, (40000, 443), SYN),
        up
    );
}

#[test]
fn a_full_table_denies_new_flows_and_keeps_the_old() {
    let settings = FilterSettings {
        max_flows: 3,
        ..FilterSettings::default()
    };
    let mut lab = Lab::with(Plane::Business, settings.clone());
    let city = biz("dc:1401", Zone::Mgmt);
    let province = biz("dc:14", Zone::Mgmt);
    let probe = allow_new(rule("mgmt-probe-up"));
    let full = Verdict::Deny(Denied::TableFull);
    for port in 40000..40003 {
        assert_eq!(lab.udp(city, province, (port, 3784)), probe);
    }
    for port in 40003..40010 {
        assert_eq!(lab.udp(city, province, (port, 3784)), full);
    }
    assert_eq!(lab.f.flows(), 3);
    assert_eq!(
        lab.udp(province, city, (3784, 40001)),
        TRACKED,
        "old flows go on"
    );
    let counts = lab.f.denied_counts();
    assert!(counts.contains(&(Denied::TableFull, 7)), "{counts:?}");
    let reason = "the flow table is full (3 flows); no new flow until some expire";
    assert_eq!(lab.reasons()[0], reason);
    // Once flows expire there is room again.
    lab.now += secs(settings.udp_s);
    assert_eq!(lab.udp(city, province, (40100, 3784)), probe);
    assert_eq!(lab.f.flows(), 1);
    // A table of zero flows denies every new flow.
    let mut none = Lab::with(
        Plane::Business,
        FilterSettings {
            max_flows: 0,
            ..settings
        },
    );
    assert_eq!(none.udp(city, province, (40000, 3784)), full);
}

#[test]
fn later_fragments_follow_an_allowed_first_fragment() {
    let mut lab = Lab::new(Plane::Business);
    let ministry = v4(biz("dc:ministry", Zone::Mgmt));
    let city = v4(biz("dc:1401", Zone::Mgmt));
    let fragment = |id, offset, more, bytes: &[u8]| {
        ipv4_fragment(
            ministry,
            city,
            IpNextHeaderProtocols::Udp,
            id,
            offset,
            more,
            bytes,
        )
    };
    let datagram = udp_segment(40000, 161, &[7u8; 64]);
    let first = fragment(77, 0, true, &datagram[..32]);
    let second = fragment(77, 4, true, &datagram[32..48]);
    let last = fragment(77, 6, false, &datagram[48..]);
    // A later fragment before its first is denied (fragments are not reassembled here).
    assert_eq!(lab.send(&second), NO_FLOW);
    assert_eq!(lab.send(&first), allow_new(rule("mgmt-snmp")));
    assert_eq!(lab.send(&second), TRACKED);
    assert_eq!(lab.send(&last), TRACKED);
    assert_eq!(lab.send(&fragment(78, 4, false, &datagram[32..])), NO_FLOW);
    // The first fragment of a denied flow lets nothing follow.
    let denied = udp_segment(40000, 9999, &[7u8; 64]);
    assert_eq!(lab.send(&fragment(79, 0, true, &denied[..32])), POLICY);
    assert_eq!(lab.send(&fragment(79, 4, false, &denied[32..])), NO_FLOW);
    let reason = "a later fragment of a datagram whose first fragment did not pass";
    assert_eq!(lab.reasons()[0], reason);
}

#[test]
fn ipv6_flows_are_decided_like_ipv4() {
    // The business plane on an IPv6 supernet, the rest of the national plan unchanged.
    let plan = topology::plan::EMBEDDED_PLAN.replacen(
        "supernet = \"10.0.0.0/8\"",
        "supernet = \"fd00::/8\"",
        1,
    );
    assert_ne!(plan, topology::plan::EMBEDDED_PLAN, "the plan text changed");
    let sources = ModelSources {
        plan: Some(plan),
        ..ModelSources::default()
    };
    let m = Model::load(&sources).expect("an IPv6 business plane loads");
    let settings = FilterSettings::default();
    let mut lab = Lab {
        f: ZoneFilter::new(Arc::clone(&m), Plane::Business, &settings),
        now: Instant::now(),
    };
    let at = |node: &str, zone| addr(&m, Plane::Business, node, zone);
    let city = at("dc:1401", Zone::Exchange);
    let ministry = at("dc:ministry", Zone::Exchange);
    let production = at("dc:1401", Zone::Production);
    assert!(city.is_ipv6(), "{city}");
    let up = allow_new(rule("exchange-up"));
    assert_eq!(lab.tcp(city, ministry, (40000, 443), SYN), up);
    assert_eq!(lab.tcp(ministry, city, (443, 40000), SYN | ACK), TRACKED);
    assert_eq!(lab.tcp(ministry, production, (40000, 1521), SYN), POLICY);
    let (city_mgmt, ministry_mgmt) = (at("dc:1401", Zone::Mgmt), at("dc:ministry", Zone::Mgmt));
    assert_eq!(
        lab.echo(ministry_mgmt, city_mgmt, true, 3),
        allow_new(rule("mgmt-ping"))
    );
    assert_eq!(lab.echo(city_mgmt, ministry_mgmt, false, 3), TRACKED);
    // Extension headers are walked to the transport header: a destination-options header.
    let mut with_options = tcp(city, ministry, 40001, 443, SYN);
    let segment = with_options.split_off(40);
    with_options[6] = 60; // next header: destination options
    with_options[4..6].copy_from_slice(&((segment.len() + 8) as u16).to_be_bytes());
    with_options.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // → TCP, 8 bytes, PadN
    with_options.extend_from_slice(&segment);
    assert_eq!(lab.send(&with_options), up);
    // An address of no plane is unknown; the business plane's are another plane's to the
    // office filter.
    let nowhere: IpAddr = Ipv6Addr::LOCALHOST.into();
    let unknown = Verdict::Deny(Denied::UnknownAddress);
    assert_eq!(lab.tcp(nowhere, city, (40003, 443), SYN), unknown);
    lab.f = ZoneFilter::new(m, Plane::Office, &settings);
    assert_eq!(
        lab.tcp(city, ministry, (40002, 443), SYN),
        Verdict::Deny(Denied::OtherPlane)
    );
}

// ── agreement with the static policy ─────────────────────────────────────────────────────

/// A first packet of a service between two addresses, with a fresh source port or id.
fn first_packet(src: IpAddr, dst: IpAddr, service: (Proto, Option<u16>), fresh: u16) -> Vec<u8> {
    match service {
        (Proto::Tcp, Some(port)) => tcp(src, dst, fresh, port, SYN),
        (Proto::Udp, Some(port)) => udp(src, dst, fresh, port),
        _ => echo(src, dst, true, fresh),
    }
}

/// What the filter must answer to the first packet of a query's flow.
fn expected(m: &Model, query: &Query) -> Verdict {
    match m.policy.decide(&m.network, &m.allocation, query) {
        PolicyVerdict::Allow(r) => allow_new(m.policy.rules().iter().position(|x| x == r).unwrap()),
        PolicyVerdict::Deny(_) => POLICY,
    }
}

#[test]
fn the_filter_agrees_with_policy_decide_over_the_sample_pairs() {
    let m = model();
    let tcp_ports = [443, 1414, 1521, 7001, 8443, 22].map(|p| (Proto::Tcp, Some(p)));
    let udp_ports = [161, 3784].map(|p| (Proto::Udp, Some(p)));
    let services: Vec<_> = tcp_ports
        .into_iter()
        .chain(udp_ports)
        .chain([(Proto::Icmp, None)])
        .collect();
    let (mut allowed, mut denied) = (0, 0);
    for plane in m.allocation.planes().collect::<Vec<_>>() {
        let mut lab = Lab::new(plane);
        let mut fresh = 1024u16;
        let pin = |zone| ZoneRef {
            plane: Some(plane),
            zone,
        };
        for (a, b) in sample_pairs(&m.network) {
            let to = m.allocation.overlay_addresses(plane, b);
            let zone_pairs = m
                .allocation
                .overlay_addresses(plane, a)
                .into_iter()
                .flat_map(|from| to.iter().map(move |&to| (from, to)));
            for ((from_zone, src), (to_zone, dst)) in zone_pairs {
                for &service in &services {
                    fresh += 1;
                    let query =
                        Query::new(a, pin(from_zone), b, pin(to_zone), service.0, service.1);
                    let want = expected(&m, &query);
                    let got = lab.send(&first_packet(src, dst, service, fresh));
                    let (a, b) = (m.network.node(a).id, m.network.node(b).id);
                    assert_eq!(
                        got, want,
                        "{plane}: {a}/{from_zone} → {b}/{to_zone} {service:?}"
                    );
                    *if want == POLICY {
                        &mut denied
                    } else {
                        &mut allowed
                    } += 1;
                }
            }
        }
    }
    assert!(
        allowed >= 100 && denied >= 5000,
        "allowed {allowed}, denied {denied}"
    );
}

#[test]
fn the_policy_files_own_tests_hold_packet_by_packet() {
    let m = model();
    for (i, test) in m.policy.tests().iter().enumerate() {
        let (from, to) = (test.from, test.to);
        let (a, b) = (
            m.network.lookup(&from.node).unwrap(),
            m.network.lookup(&to.node).unwrap(),
        );
        let query = Query::new(a, from.zone, b, to.zone, test.proto, test.port);
        let (from_plane, to_plane) = query.planes();
        let src = addr(&m, from_plane, &from.node.to_string(), from.zone.zone);
        let dst = addr(&m, to_plane, &to.node.to_string(), to.zone.zone);
        let packet = first_packet(src, dst, (test.proto, test.port), 20000 + i as u16);
        let verdict = Lab::new(from_plane).send(&packet);
        let allowed = matches!(verdict, Verdict::Allow { rule: Some(_) });
        let expected = test.expect == topology::policy::Expect::Allow;
        assert_eq!(allowed, expected, "{}: {verdict:?}", test.name);
    }
}

// ── untrusted bytes ──────────────────────────────────────────────────────────────────────

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut lab = Lab::new(Plane::Business);
        let verdict = lab.send(&bytes);
        let allowed = u64::from(matches!(verdict, Verdict::Allow { .. }));
        prop_assert_eq!(lab.f.malformed() + lab.f.default_denied() + allowed, 1);
    }

    #[test]
    fn mangled_real_packets_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let city = biz("dc:1401", Zone::Mgmt);
        let ministry = biz("dc:ministry", Zone::Mgmt);
        let syn = tcp(city, ministry, 40000, 8443, SYN);
        let mut packet = match which {
            0 => syn.clone(),
            1 => udp(ministry, city, 40000, 161),
            2 => echo(ministry, city, true, 1),
            _ => too_big(ministry, city, &syn),
        };
        for (at, byte) in edits {
            let len = packet.len();
            packet[at % len] = byte;
        }
        packet.truncate(cut % (packet.len() + 1));
        let mut lab = Lab::new(Plane::Business);
        lab.send(&syn);
        lab.send(&packet);
        lab.now += secs(1);
        lab.send(&packet);
    }
}
