//! The bytes of an in-tunnel probe: a fixed 20-byte payload and the IPv4/IPv6 + UDP packet
//! that carries it to port 3784.
//!
//! Probes travel inside a WireGuard tunnel, which authenticates them; this module only has
//! to make them recognisable (magic, version, exact length) and refuse anything else
//! without panicking, since every byte here arrives from the network.
//!
//! Payload layout, all integers big-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `JBLP` (Jinbao link probe) |
//! | 4 | 1 | version, [`PROBE_VERSION`] |
//! | 5 | 1 | kind: 1 request, 2 reply |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | sequence number |
//! | 12 | 8 | echo token: the requester's timestamp, copied unchanged into the reply |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::Packet;
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::udp::{self, MutableUdpPacket, UdpPacket};

/// The UDP port of probes, source and destination: BFD's single-hop control port (RFC 5881).
pub const PROBE_PORT: u16 = 3784;

/// The first four bytes of every probe payload.
pub const PROBE_MAGIC: [u8; 4] = *b"JBLP";

/// The payload version this code speaks.
pub const PROBE_VERSION: u8 = 1;

/// The length of an encoded probe payload.
pub const PROBE_LEN: usize = 20;

/// TTL / hop limit of probe packets, and the only one accepted: the GTSM rule of RFC 5881
/// §5, so a probe can only come from the tunnel peer itself, never from behind it.
pub const PROBE_TTL: u8 = 255;

/// DSCP of probe packets: CS6, network control, as routers send BFD.
const PROBE_DSCP: u8 = 48;

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;

/// Whether a probe asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Sent every interval; the peer answers with a [`ProbeKind::Reply`].
    Request,
    /// The answer to a request: same sequence number, same echo token.
    Reply,
}

impl ProbeKind {
    fn to_byte(self) -> u8 {
        match self {
            ProbeKind::Request => 1,
            ProbeKind::Reply => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(ProbeKind::Request),
            2 => Some(ProbeKind::Reply),
            _ => None,
        }
    }
}

/// One probe message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeMessage {
    /// Request or reply.
    pub kind: ProbeKind,
    /// The requester's sequence number, echoed in the reply; wraps at `u32::MAX`.
    pub seq: u32,
    /// The requester's timestamp token (nanoseconds since its own epoch), echoed in the reply.
    pub echo: u64,
}

/// Why bytes are not a probe payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The payload is not exactly [`PROBE_LEN`] bytes.
    #[error("probe payload is {got} bytes, expected {PROBE_LEN}")]
    Length {
        /// Bytes received.
        got: usize,
    },
    /// The first four bytes are not [`PROBE_MAGIC`].
    #[error("probe payload has magic {0:02x?}, expected \"JBLP\"")]
    Magic([u8; 4]),
    /// A version this code does not speak.
    #[error("probe version {0} is not supported (this agent speaks {PROBE_VERSION})")]
    Version(u8),
    /// The kind byte is neither request (1) nor reply (2).
    #[error("probe kind {0} is neither request (1) nor reply (2)")]
    Kind(u8),
    /// The reserved field is not zero.
    #[error("probe reserved field is {0:#06x}, expected zero")]
    Reserved(u16),
}

impl ProbeMessage {
    /// A request with this sequence number and echo token.
    pub fn request(seq: u32, echo: u64) -> Self {
        ProbeMessage {
            kind: ProbeKind::Request,
            seq,
            echo,
        }
    }

    /// The reply to this message: same sequence number and echo token.
    pub fn reply(&self) -> Self {
        ProbeMessage {
            kind: ProbeKind::Reply,
            ..*self
        }
    }

    /// The payload bytes.
    pub fn encode(&self) -> [u8; PROBE_LEN] {
        let mut out = [0u8; PROBE_LEN];
        out[0..4].copy_from_slice(&PROBE_MAGIC);
        out[4] = PROBE_VERSION;
        out[5] = self.kind.to_byte();
        out[8..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..20].copy_from_slice(&self.echo.to_be_bytes());
        out
    }

    /// Parses a payload; refuses anything that is not exactly one probe.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProbeError> {
        let bytes: &[u8; PROBE_LEN] = bytes
            .try_into()
            .map_err(|_| ProbeError::Length { got: bytes.len() })?;
        let [m0, m1, m2, m3, version, kind, r0, r1, s @ ..] = *bytes;
        let magic = [m0, m1, m2, m3];
        if magic != PROBE_MAGIC {
            return Err(ProbeError::Magic(magic));
        }
        if version != PROBE_VERSION {
            return Err(ProbeError::Version(version));
        }
        let kind = ProbeKind::from_byte(kind).ok_or(ProbeError::Kind(kind))?;
        let reserved = u16::from_be_bytes([r0, r1]);
        if reserved != 0 {
            return Err(ProbeError::Reserved(reserved));
        }
        let [q0, q1, q2, q3, e @ ..] = s;
        Ok(ProbeMessage {
            kind,
            seq: u32::from_be_bytes([q0, q1, q2, q3]),
            echo: u64::from_be_bytes(e),
        })
    }
}

/// A complete IP + UDP packet carrying `msg` from `src` to `dst`, port [`PROBE_PORT`] both
/// ways, TTL/hop limit [`PROBE_TTL`], DSCP CS6, with correct checksums.
///
/// Both addresses IPv4 give an IPv4 packet (DF set); otherwise the packet is IPv6, an IPv4
/// address in a mixed pair being written IPv4-mapped (`::ffff:a.b.c.d`).
pub fn probe_packet(src: IpAddr, dst: IpAddr, msg: &ProbeMessage) -> Vec<u8> {
    let payload = msg.encode();
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4_packet(src, dst, &payload),
        _ => ipv6_packet(v6(src), v6(dst), &payload),
    }
}

fn v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Writes the UDP header and payload into `buf` (exactly UDP header + payload long); the
/// checksum is left for the caller, who knows the pseudo-header.
fn write_udp(buf: &mut [u8], payload: &[u8]) -> Option<()> {
    let mut udp = MutableUdpPacket::new(buf)?;
    udp.set_source(PROBE_PORT);
    udp.set_destination(PROBE_PORT);
    udp.set_length(u16::try_from(UDP_HEADER + payload.len()).ok()?);
    udp.set_payload(payload);
    Some(())
}

fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8; PROBE_LEN]) -> Vec<u8> {
    const TOTAL: usize = IPV4_HEADER + UDP_HEADER + PROBE_LEN;
    let mut buf = vec![0u8; TOTAL];
    let (head, rest) = buf.split_at_mut(IPV4_HEADER);
    // The buffers are sized by constants above, so the constructors cannot refuse them.
    if write_udp(rest, payload).is_some()
        && let Some(mut udp) = MutableUdpPacket::new(rest)
    {
        udp.set_checksum(on_wire(udp::ipv4_checksum(&udp.to_immutable(), &src, &dst)));
    }
    if let Some(mut ip) = MutableIpv4Packet::new(head) {
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_dscp(PROBE_DSCP);
        ip.set_total_length(TOTAL as u16);
        ip.set_flags(Ipv4Flags::DontFragment);
        ip.set_ttl(PROBE_TTL);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Udp);
        ip.set_source(src);
        ip.set_destination(dst);
    }
    if let Some(mut ip) = MutableIpv4Packet::new(&mut buf) {
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
    }
    buf
}

fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8; PROBE_LEN]) -> Vec<u8> {
    const UDP_LEN: usize = UDP_HEADER + PROBE_LEN;
    let mut buf = vec![0u8; IPV6_HEADER + UDP_LEN];
    let (head, rest) = buf.split_at_mut(IPV6_HEADER);
    if write_udp(rest, payload).is_some()
        && let Some(mut udp) = MutableUdpPacket::new(rest)
    {
        udp.set_checksum(on_wire(udp::ipv6_checksum(&udp.to_immutable(), &src, &dst)));
    }
    if let Some(mut ip) = MutableIpv6Packet::new(head) {
        ip.set_version(6);
        ip.set_traffic_class(PROBE_DSCP << 2);
        ip.set_payload_length(UDP_LEN as u16);
        ip.set_next_header(IpNextHeaderProtocols::Udp);
        ip.set_hop_limit(PROBE_TTL);
        ip.set_source(src);
        ip.set_destination(dst);
    }
    buf
}

/// Recognises a probe packet: IPv4 (no options needed, not fragmented, header checksum
/// right) or IPv6 (UDP directly after the fixed header), TTL/hop limit [`PROBE_TTL`], UDP to
/// [`PROBE_PORT`] with a right checksum, and a payload that [`ProbeMessage::decode`]s.
/// Returns the source and destination addresses and the message; `None` for anything else,
/// which the caller then treats as ordinary traffic.
pub fn parse_probe_packet(packet: &[u8]) -> Option<(IpAddr, IpAddr, ProbeMessage)> {
    if !might_be_probe(packet) {
        return None;
    }
    match packet.first()? >> 4 {
        4 => parse_ipv4(packet),
        6 => parse_ipv6(packet),
        _ => None,
    }
}

/// A cheap look at the bytes every tunnel packet is checked with: UDP to the probe port
/// (IPv4 with any header length, IPv6 without extension headers, as probes are sent).
/// Anything that passes is then parsed strictly.
fn might_be_probe(packet: &[u8]) -> bool {
    let port = PROBE_PORT.to_be_bytes();
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let header = usize::from(packet[0] & 0x0f) * 4;
            packet.get(9) == Some(&17) && packet.get(header + 2..header + 4) == Some(&port[..])
        }
        Some(6) => packet.get(6) == Some(&17) && packet.get(42..44) == Some(&port[..]),
        _ => false,
    }
}

fn parse_ipv4(packet: &[u8]) -> Option<(IpAddr, IpAddr, ProbeMessage)> {
    let ip = Ipv4Packet::new(packet)?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    let total = usize::from(ip.get_total_length());
    if header_len < IPV4_HEADER || total < header_len || total > packet.len() {
        return None;
    }
    let more_fragments = ip.get_flags() & Ipv4Flags::MoreFragments != 0;
    if more_fragments || ip.get_fragment_offset() != 0 {
        return None;
    }
    if ip.get_ttl() != PROBE_TTL
        || ip.get_next_level_protocol() != IpNextHeaderProtocols::Udp
        || ipv4::checksum(&ip) != ip.get_checksum()
    {
        return None;
    }
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let udp = udp_segment(packet.get(header_len..total)?)?;
    let sum = udp.get_checksum();
    // Zero means "no checksum" over IPv4 (RFC 768).
    if sum != 0 && on_wire(udp::ipv4_checksum(&udp, &src, &dst)) != sum {
        return None;
    }
    let msg = ProbeMessage::decode(udp.payload()).ok()?;
    Some((IpAddr::V4(src), IpAddr::V4(dst), msg))
}

fn parse_ipv6(packet: &[u8]) -> Option<(IpAddr, IpAddr, ProbeMessage)> {
    let ip = Ipv6Packet::new(packet)?;
    let end = IPV6_HEADER + usize::from(ip.get_payload_length());
    if end > packet.len()
        || ip.get_hop_limit() != PROBE_TTL
        || ip.get_next_header() != IpNextHeaderProtocols::Udp
    {
        return None;
    }
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let udp = udp_segment(packet.get(IPV6_HEADER..end)?)?;
    // A UDP checksum is mandatory over IPv6 (RFC 8200 §8.1).
    if on_wire(udp::ipv6_checksum(&udp, &src, &dst)) != udp.get_checksum() {
        return None;
    }
    let msg = ProbeMessage::decode(udp.payload()).ok()?;
    Some((IpAddr::V6(src), IpAddr::V6(dst), msg))
}

/// A computed UDP checksum as sent: zero means "none" on the wire, so a sum that comes
/// out zero is sent as all ones (RFC 768), its equal in ones' complement.
fn on_wire(sum: u16) -> u16 {
    if sum == 0 { 0xffff } else { sum }
}

/// The UDP datagram in `segment` if it goes to [`PROBE_PORT`] and its length field matches
/// the bytes the IP header gave it.
fn udp_segment(segment: &[u8]) -> Option<UdpPacket<'_>> {
    let udp = UdpPacket::new(segment)?;
    let len = usize::from(udp.get_length());
    if len != segment.len() || len < UDP_HEADER || udp.get_destination() != PROBE_PORT {
        return None;
    }
    Some(udp)
}

/// An IPv4 TCP SYN from `src` to `dst` on `port`, port 40000 to `port`: how the lab and
/// the end-to-end tests open a flow through the overlay (the filters decide on the first
/// packet). Empty for IPv6 addresses.
pub fn tcp_syn(src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        return Vec::new();
    };
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = p[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40_000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x02;
    p
}

#[cfg(test)]
mod syn_tests {
    use super::*;

    #[test]
    fn a_tcp_syn_is_a_well_formed_ipv4_syn() {
        let (src, dst) = ("10.1.2.3".parse().unwrap(), "10.4.5.6".parse().unwrap());
        let packet = tcp_syn(src, dst, 1414);
        let ip = Ipv4Packet::new(&packet).unwrap();
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        assert_eq!(
            (ip.get_source(), ip.get_destination()),
            ("10.1.2.3".parse().unwrap(), "10.4.5.6".parse().unwrap())
        );
        let tcp = pnet_packet::tcp::TcpPacket::new(ip.payload()).unwrap();
        assert_eq!(tcp.get_destination(), 1414);
        assert_eq!(tcp.get_flags(), pnet_packet::tcp::TcpFlags::SYN);
        assert!(tcp_syn("::1".parse().unwrap(), dst, 1).is_empty());
    }
}
