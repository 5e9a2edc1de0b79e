//! Reading an overlay packet into what the zone filter decides on: addresses, transport
//! protocol, ports or ICMP echo identity, TCP flags, and where the packet stands in a
//! fragmented datagram.
//!
//! Every byte here comes from the network, so nothing is trusted and nothing panics: the
//! headers are read with `pnet_packet` views over the caller's buffer (no copy, no
//! allocation) after every length they depend on has been checked. A packet that cannot be
//! read whole is `None`, which the filter counts as malformed:
//!
//! - IPv4: version not 4, header length under 20 bytes or past the packet, total length
//!   shorter than the header or longer than the buffer (trailing bytes after the total
//!   length are ignored, as a link layer's padding would be);
//! - IPv6: version not 6, payload length past the buffer, a jumbogram, more than
//!   [`MAX_EXTENSIONS`] extension headers, a truncated extension header, two fragment
//!   headers;
//! - a transport header that does not fit (TCP data offset under 5 or past the segment,
//!   UDP length under 8, or past the datagram when it is not fragmented, ICMP under 8
//!   bytes), an ICMP error whose quoted packet cannot be read;
//! - a first fragment too short to hold its transport header, and a TCP fragment at offset
//!   8 bytes, both of which only serve to slip flags past a filter (RFC 1858, RFC 3128).
//!
//! Checksums are not verified: the endpoints do that, and a packet with a bad checksum is
//! dropped there whatever the filter says.

use std::net::{IpAddr, Ipv6Addr};

use pnet_packet::ipv4::{Ipv4Flags, Ipv4Packet};
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

/// IP protocol numbers the filter knows.
pub(super) const TCP: u8 = 6;
/// UDP.
pub(super) const UDP: u8 = 17;
/// ICMP for IPv4.
pub(super) const ICMP: u8 = 1;
/// ICMP for IPv6.
pub(super) const ICMPV6: u8 = 58;

/// IPv6 extension headers walked past at the most before the packet is refused.
pub(super) const MAX_EXTENSIONS: usize = 8;

/// A packet as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Packet {
    /// Addresses, protocol and transport of the packet itself.
    pub header: Header,
    /// Where it stands in a fragmented datagram.
    pub fragment: Fragment,
    /// For an ICMP error, the packet it quotes (the one that caused the error).
    pub quoted: Option<Header>,
}

/// Addresses, transport protocol and what the transport header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (after any IPv6 extension headers).
    pub proto: u8,
    /// The transport header.
    pub l4: L4,
}

/// What the transport header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L4 {
    /// TCP: ports and flags.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// The flags byte (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
        flags: u8,
    },
    /// UDP: ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP or ICMPv6 echo.
    Echo {
        /// A request (else a reply).
        request: bool,
        /// The identifier that pairs replies with requests.
        id: u16,
    },
    /// An ICMP or ICMPv6 error (unreachable, too big, time exceeded, parameter problem).
    IcmpError,
    /// Any other ICMP or ICMPv6 message, by type.
    IcmpOther(u8),
    /// A protocol without ports, or a later fragment (which has no transport header).
    None,
}

/// Where a packet stands in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fragment {
    /// A whole datagram.
    Whole,
    /// The first fragment, with the datagram's identification.
    First(u32),
    /// A later fragment: no transport header, only the identification.
    Later(u32),
}

impl Header {
    /// The destination port of TCP and UDP.
    pub fn dst_port(&self) -> Option<u16> {
        match self.l4 {
            L4::Tcp { dst_port, .. } | L4::Udp { dst_port, .. } => Some(dst_port),
            _ => None,
        }
    }
}

/// Reads an IP packet; `None` if it is malformed.
pub(super) fn parse(bytes: &[u8]) -> Option<Packet> {
    match bytes.first()? >> 4 {
        4 => parse_v4(bytes),
        6 => parse_v6(bytes),
        _ => None,
    }
}

fn parse_v4(bytes: &[u8]) -> Option<Packet> {
    let ip = Ipv4Packet::new(bytes)?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    let total = usize::from(ip.get_total_length());
    if header_len < 20 || total < header_len || total > bytes.len() {
        return None;
    }
    let payload = bytes.get(header_len..total)?;
    let proto = ip.get_next_level_protocol().0;
    let offset = ip.get_fragment_offset();
    let id = u32::from(ip.get_identification());
    let fragment = if offset > 0 {
        Fragment::Later(id)
    } else if ip.get_flags() & Ipv4Flags::MoreFragments != 0 {
        Fragment::First(id)
    } else {
        Fragment::Whole
    };
    finish(
        ip.get_source().into(),
        ip.get_destination().into(),
        proto,
        offset,
        fragment,
        payload,
        false,
    )
}

fn parse_v6(bytes: &[u8]) -> Option<Packet> {
    let ip = Ipv6Packet::new(bytes)?;
    if ip.get_version() != 6 {
        return None;
    }
    let payload_len = usize::from(ip.get_payload_length());
    let next = ip.get_next_header().0;
    if payload_len == 0 && next == HOP_BY_HOP {
        return None; // a jumbogram: never on an overlay
    }
    let payload = bytes.get(40..40 + payload_len)?;
    let (proto, payload, fragment, offset) = walk_extensions(next, payload)?;
    finish(
        ip.get_source().into(),
        ip.get_destination().into(),
        proto,
        offset,
        fragment,
        payload,
        true,
    )
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;
const MOBILITY: u8 = 135;

/// Walks IPv6 extension headers to the transport protocol: the protocol, its bytes, the
/// fragment position and offset (in 8-byte units).
fn walk_extensions(mut next: u8, mut rest: &[u8]) -> Option<(u8, &[u8], Fragment, u16)> {
    let mut fragment = Fragment::Whole;
    let mut offset = 0;
    let mut fragment_header = false;
    for _ in 0..=MAX_EXTENSIONS {
        let len = match next {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | MOBILITY => {
                (usize::from(*rest.get(1)?) + 1) * 8
            }
            AUTHENTICATION => (usize::from(*rest.get(1)?) + 2) * 4,
            FRAGMENT => {
                if fragment_header {
                    return None; // one fragment header per packet
                }
                fragment_header = true;
                let header = rest.get(..8)?;
                let field = u16::from_be_bytes([header[2], header[3]]);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                offset = field >> 3;
                if offset > 0 {
                    fragment = Fragment::Later(id);
                } else if field & 1 != 0 {
                    fragment = Fragment::First(id);
                } // else an atomic fragment: a whole datagram
                8
            }
            proto => return Some((proto, rest, fragment, offset)),
        };
        next = *rest.first()?;
        rest = rest.get(len..)?;
        if offset > 0 {
            // The rest is the middle of the datagram: no more headers to read.
            return Some((next, rest, fragment, offset));
        }
    }
    None
}

/// Reads the transport header of a packet whose IP layer has been read.
fn finish(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    offset: u16,
    fragment: Fragment,
    payload: &[u8],
    v6: bool,
) -> Option<Packet> {
    let (l4, quoted) = match fragment {
        Fragment::Later(_) => {
            // RFC 1858: a TCP fragment at offset 1 (8 bytes) can rewrite the flags.
            if proto == TCP && offset == 1 {
                return None;
            }
            (L4::None, None)
        }
        Fragment::Whole | Fragment::First(_) => {
            transport(proto, payload, v6, fragment == Fragment::Whole)?
        }
    };
    Some(Packet {
        header: Header {
            src,
            dst,
            proto,
            l4,
        },
        fragment,
        quoted,
    })
}

/// The transport header, strictly: it must be whole.
fn transport(proto: u8, payload: &[u8], v6: bool, whole: bool) -> Option<(L4, Option<Header>)> {
    let l4 = match proto {
        TCP => {
            let tcp = TcpPacket::new(payload)?;
            let header_len = usize::from(tcp.get_data_offset()) * 4;
            if header_len < 20 || header_len > payload.len() {
                return None;
            }
            L4::Tcp {
                src_port: tcp.get_source(),
                dst_port: tcp.get_destination(),
                flags: tcp.get_flags(),
            }
        }
        UDP => {
            let udp = UdpPacket::new(payload)?;
            let len = usize::from(udp.get_length());
            if len < 8 || (whole && len > payload.len()) {
                return None;
            }
            L4::Udp {
                src_port: udp.get_source(),
                dst_port: udp.get_destination(),
            }
        }
        ICMP if !v6 => return icmp(payload, false),
        ICMPV6 if v6 => return icmp(payload, true),
        _ => L4::None,
    };
    Some((l4, None))
}

/// ICMP and ICMPv6 types the filter tells apart.
struct IcmpTypes {
    request: u8,
    reply: u8,
    errors: &'static [u8],
}

const ICMP_TYPES: IcmpTypes = IcmpTypes {
    request: 8,
    reply: 0,
    // Unreachable, source quench, time exceeded, parameter problem.
    errors: &[3, 4, 11, 12],
};

const ICMPV6_TYPES: IcmpTypes = IcmpTypes {
    request: 128,
    reply: 129,
    // Unreachable, packet too big, time exceeded, parameter problem.
    errors: &[1, 2, 3, 4],
};

/// An ICMP message: echo identity, or the packet an error quotes.
fn icmp(payload: &[u8], v6: bool) -> Option<(L4, Option<Header>)> {
    let header = payload.get(..8)?;
    let types = if v6 { &ICMPV6_TYPES } else { &ICMP_TYPES };
    let kind = header[0];
    let id = u16::from_be_bytes([header[4], header[5]]);
    if kind == types.request || kind == types.reply {
        let l4 = L4::Echo {
            request: kind == types.request,
            id,
        };
        return Some((l4, None));
    }
    if types.errors.contains(&kind) {
        let quote = payload.get(8..)?;
        let quoted = if v6 {
            quoted_v6(quote)
        } else {
            quoted_v4(quote)
        }?;
        return Some((L4::IcmpError, Some(quoted)));
    }
    Some((L4::IcmpOther(kind), None))
}

/// The packet an ICMP error quotes: an IP header and at least the first 8 bytes of its
/// transport header. Its lengths describe the original, so only what is read is checked.
fn quoted_v4(quote: &[u8]) -> Option<Header> {
    let ip = Ipv4Packet::new(quote)?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    if ip.get_version() != 4 || header_len < 20 {
        return None;
    }
    let rest = quote.get(header_len..)?;
    let proto = ip.get_next_level_protocol().0;
    let later = ip.get_fragment_offset() > 0;
    quoted_transport(
        ip.get_source().into(),
        ip.get_destination().into(),
        proto,
        rest,
        later,
        false,
    )
}

fn quoted_v6(quote: &[u8]) -> Option<Header> {
    let ip = Ipv6Packet::new(quote)?;
    if ip.get_version() != 6 {
        return None;
    }
    let (proto, rest, fragment, _) = walk_extensions(ip.get_next_header().0, quote.get(40..)?)?;
    let later = matches!(fragment, Fragment::Later(_));
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (ip.get_source(), ip.get_destination());
    quoted_transport(src.into(), dst.into(), proto, rest, later, true)
}

fn quoted_transport(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    rest: &[u8],
    later: bool,
    v6: bool,
) -> Option<Header> {
    let l4 = if later {
        L4::None
    } else {
        let ports = |rest: &[u8]| -> Option<(u16, u16)> {
            let b = rest.get(..4)?;
            Some((
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ))
        };
        match proto {
            TCP => {
                let (src_port, dst_port) = ports(rest)?;
                L4::Tcp {
                    src_port,
                    dst_port,
                    flags: 0,
                }
            }
            UDP => {
                let (src_port, dst_port) = ports(rest)?;
                L4::Udp { src_port, dst_port }
            }
            ICMP | ICMPV6 if (proto == ICMPV6) == v6 => {
                let b = rest.get(..8)?;
                let types = if v6 { &ICMPV6_TYPES } else { &ICMP_TYPES };
                let id = u16::from_be_bytes([b[4], b[5]]);
                match b[0] {
                    t if t == types.request => L4::Echo { request: true, id },
                    t if t == types.reply => L4::Echo { request: false, id },
                    _ => L4::None, // an error about an error: matches no flow
                }
            }
            _ => L4::None,
        }
    };
    Some(Header {
        src,
        dst,
        proto,
        l4,
    })
}
