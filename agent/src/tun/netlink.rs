//! The two rtnetlink requests TUN mode needs — add an address, replace a route — each sent
//! with `NLM_F_ACK` and its acknowledgement read back, so the kernel's refusal becomes an
//! `io::Error` (`EEXIST`, `EPERM`, `ENETDOWN`, …) instead of a silent no-op.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Adds `address` (with its prefix length) to interface `index`; an address already there
/// is replaced, so a restart on a surviving device is not an error.
pub(super) fn add_address(index: u32, address: IpNet) -> io::Result<()> {
    let mut message = AddressMessage::default();
    message.header.family = family(address.addr());
    message.header.prefix_len = address.prefix_len();
    message.header.index = index;
    message
        .attributes
        .push(AddressAttribute::Address(address.addr()));
    if address.addr().is_ipv4() {
        message
            .attributes
            .push(AddressAttribute::Local(address.addr()));
    }
    request(
        RouteNetlinkMessage::NewAddress(message),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Routes `prefix` into interface `index` (main table, link scope, protocol static),
/// replacing a route to the same prefix.
pub(super) fn replace_route(index: u32, prefix: IpNet) -> io::Result<()> {
    let mut message = RouteMessage::default();
    message.header.address_family = family(prefix.addr());
    message.header.destination_prefix_length = prefix.prefix_len();
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Static;
    message.header.scope = RouteScope::Link;
    message.header.kind = RouteType::Unicast;
    let destination = match prefix.network() {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    };
    message
        .attributes
        .push(RouteAttribute::Destination(destination));
    message.attributes.push(RouteAttribute::Oif(index));
    request(
        RouteNetlinkMessage::NewRoute(message),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

fn family(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Sends one request and waits for its acknowledgement.
fn request(message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buffer = vec![0u8; packet.header.length as usize];
    packet.serialize(&mut buffer);
    socket.send(&buffer, 0)?;
    loop {
        let (reply, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < reply.len() {
            let answer = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[offset..])
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
            let length = answer.header.length as usize;
            if answer.header.sequence_number == 1 {
                match answer.payload {
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(()),
                            Some(_) => Err(error.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    _ => {}
                }
            }
            if length == 0 {
                break;
            }
            offset += (length + 3) & !3; // messages are 4-byte aligned
        }
    }
}
