//! The live isolation audit at a node: the probe packets it sends when the controller asks
//! ([`crate::control::AuditOrder`]), and how a probe is recognised where it arrives.
//!
//! A probe is an ordinary first packet of a flow — a TCP SYN, a UDP datagram, an ICMP echo
//! request — from an address of the sending node's zone to one of the other node's, so
//! every filter on its way decides it exactly as it would the real flow. Its payload starts
//! with [`MARKER`], then the audit's number and the flow's (big-endian), which is how the
//! node where it arrives (or the filter that denies it) tells which flow it is. IPv4 only:
//! the overlay's zone blocks are IPv4.

use std::net::{IpAddr, Ipv4Addr};

use topology::policy::Proto;

use crate::control::AuditProbe;

/// What a probe's payload starts with.
pub const MARKER: &[u8; 8] = b"JBAUDIT\0";

/// The payload after the transport header: marker, audit, flow.
const PAYLOAD: usize = MARKER.len() + 8 + 4;

/// The packet of `probe` for audit `audit`; `None` for an IPv6 probe.
pub fn probe_packet(probe: &AuditProbe, audit: u64) -> Option<Vec<u8>> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (probe.src, probe.dst) else {
        return None;
    };
    let mut payload = Vec::with_capacity(PAYLOAD);
    payload.extend_from_slice(MARKER);
    payload.extend_from_slice(&audit.to_be_bytes());
    payload.extend_from_slice(&probe.flow.to_be_bytes());
    let source_port = 40_000 + (probe.flow % 20_000) as u16;
    let port = probe.port.unwrap_or(0);
    let (number, mut transport) = match probe.proto {
        Proto::Udp => {
            let mut udp = Vec::with_capacity(8 + PAYLOAD);
            udp.extend_from_slice(&source_port.to_be_bytes());
            udp.extend_from_slice(&port.to_be_bytes());
            udp.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            (17u8, udp)
        }
        Proto::Icmp => {
            let mut icmp = vec![8, 0, 0, 0];
            icmp.extend_from_slice(&((probe.flow & 0xffff) as u16).to_be_bytes());
            icmp.extend_from_slice(&[0, 1]);
            (1u8, icmp)
        }
        // TCP, and `any` probed as TCP.
        _ => {
            let mut tcp = Vec::with_capacity(20 + PAYLOAD);
            tcp.extend_from_slice(&source_port.to_be_bytes());
            tcp.extend_from_slice(&port.to_be_bytes());
            tcp.extend_from_slice(&probe.flow.to_be_bytes()); // sequence number
            tcp.extend_from_slice(&[0; 4]); // acknowledgement
            tcp.extend_from_slice(&[0x50, 0x02, 0xff, 0xff]); // 20-byte header, SYN, window
            tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
            (6u8, tcp)
        }
    };
    transport.extend_from_slice(&payload);
    let checksum_at = match number {
        17 => 6,
        1 => 2,
        _ => 16,
    };
    let sum = if number == 1 {
        checksum(&[&transport])
    } else {
        let length = (transport.len() as u16).to_be_bytes();
        let pseudo = [
            &src.octets()[..],
            &dst.octets()[..],
            &[0, number],
            &length[..],
        ];
        checksum(&[pseudo[0], pseudo[1], pseudo[2], pseudo[3], &transport])
    };
    transport[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
    Some(ipv4(src, dst, number, &transport))
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, transport: &[u8]) -> Vec<u8> {
    let total = (20 + transport.len()) as u16;
    let mut packet = Vec::with_capacity(usize::from(total));
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let sum = checksum(&[&packet[..20]]);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(transport);
    packet
}

/// The Internet checksum of the concatenated parts.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The (audit, flow) of a probe packet; `None` for any other packet. Cheap enough for every
/// delivered packet: a few length checks and one 8-byte comparison.
pub fn probe_of(packet: &[u8]) -> Option<(u64, u32)> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let transport = match packet.get(9)? {
        6 => usize::from(packet.get(header + 12)? >> 4) * 4,
        17 => 8,
        1 => 8,
        _ => return None,
    };
    let payload = packet.get(header + transport..)?;
    if payload.len() < PAYLOAD || &payload[..MARKER.len()] != MARKER {
        return None;
    }
    let audit = u64::from_be_bytes(payload[8..16].try_into().ok()?);
    let flow = u32::from_be_bytes(payload[16..20].try_into().ok()?);
    Some((audit, flow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use topology::Plane;

    fn probe(proto: Proto, port: Option<u16>) -> AuditProbe {
        AuditProbe {
            flow: 77,
            plane: Plane::Business,
            src: "10.14.1.10".parse().unwrap(),
            dst: "10.14.2.20".parse().unwrap(),
            proto,
            port,
        }
    }

    #[test]
    fn probes_carry_their_audit_and_flow_and_valid_checksums() {
        for (proto, port, number) in [
            (Proto::Tcp, Some(1521), 6),
            (Proto::Udp, Some(161), 17),
            (Proto::Icmp, None, 1),
        ] {
            let packet = probe_packet(&probe(proto, port), 9).unwrap();
            assert_eq!(packet[9], number);
            assert_eq!(probe_of(&packet), Some((9, 77)), "{proto}");
            assert_eq!(checksum(&[&packet[..20]]), 0, "IPv4 header checksum");
            if let Some(port) = port {
                assert_eq!(u16::from_be_bytes([packet[22], packet[23]]), port);
            }
            let tcp = pnet_packet::ipv4::Ipv4Packet::new(&packet).unwrap();
            assert_eq!(usize::from(tcp.get_total_length()), packet.len());
        }
        let mut other = probe_packet(&probe(Proto::Tcp, Some(443)), 1).unwrap();
        let marker_at = other.len() - PAYLOAD;
        other[marker_at] ^= 1;
        assert_eq!(probe_of(&other), None, "a changed marker is not a probe");
        assert_eq!(probe_of(&[]), None);
        assert_eq!(probe_of(&[0x45; 30]), None);
        let v6 = AuditProbe {
            src: "fd00::1".parse().unwrap(),
            ..probe(Proto::Tcp, Some(1))
        };
        assert_eq!(probe_packet(&v6, 1), None);
    }
}
