//! Why a packet was denied, as a sentence for the operator's denied-flow records.
//!
//! Only recorded packets (at most `denied_records_per_s` a second) are explained, so the
//! words — and for policy denials the full `policy query` explanation, near misses
//! included — cost nothing on the packets that are only counted.

use std::net::IpAddr;

use pnet_packet::tcp::TcpFlags;
use topology::plan::Owner;
use topology::policy::reach::Verdict as PolicyVerdict;

use super::packet::{Fragment, Header, L4, Packet};
use super::{Denied, ZoneFilter, locate, service};

impl ZoneFilter {
    /// Why a packet was denied, as a sentence.
    pub(super) fn explain(&self, packet: &Packet, reason: Denied) -> String {
        let header = &packet.header;
        let plane = self.plane;
        match reason {
            Denied::Policy => self.explain_policy(header),
            Denied::UnknownAddress | Denied::OtherPlane => {
                let index = &self.model.index;
                [header.src, header.dst]
                    .into_iter()
                    .find(|&addr| locate(index, plane, addr).is_err())
                    .map(|addr| self.explain_address(addr))
                    .unwrap_or_else(|| format!("an address is not on the {plane} plane"))
            }
            Denied::NoFlow => explain_no_flow(packet),
            Denied::TcpState => format!(
                "tcp {} before the flow's SYN was answered",
                flags_text(&header.l4)
            ),
            Denied::IcmpType => {
                let kind = match header.l4 {
                    L4::IcmpOther(kind) => kind,
                    _ => 0,
                };
                format!(
                    "icmp type {kind} is not let through: only echo, and errors about tracked \
                     flows, pass"
                )
            }
            Denied::TableFull => format!(
                "the flow table is full ({} flows); no new flow until some expire",
                self.table.max_flows
            ),
        }
    }

    fn explain_policy(&self, header: &Header) -> String {
        let index = &self.model.index;
        let (Ok(from), Ok(to)) = (
            locate(index, self.plane, header.src),
            locate(index, self.plane, header.dst),
        ) else {
            return "no rule allows it".to_owned();
        };
        let (proto, port) = service(header.proto, &header.l4);
        let model = &self.model;
        let query = self.query(from, to, proto, port);
        let verdict = model
            .policy
            .decide(&model.network, &model.allocation, &query);
        let (a, b) = (model.network.node(from.0).id, model.network.node(to.0).id);
        match verdict {
            PolicyVerdict::Deny(denial) => format!("{a} → {b}: {denial}"),
            PolicyVerdict::Allow(rule) => format!("{a} → {b}: allowed by {rule} now"),
        }
    }

    fn explain_address(&self, addr: IpAddr) -> String {
        let (plane, index) = (self.plane, &self.model.index);
        match index.owner(addr) {
            Some(Owner {
                plane: other, node, ..
            }) if other != plane => {
                let node = self.model.network.node(node).id;
                format!(
                    "{addr} is {node}'s on the {other} plane, and this is the {plane} plane: \
                     planes are never bridged"
                )
            }
            Some(Owner { node, .. }) => {
                let node = self.model.network.node(node).id;
                format!("{addr} is in {node}'s block on the {plane} plane but in none of its zones")
            }
            None => match index.plane_of(addr) {
                Some(other) => format!("{addr} is in no node's block on the {other} plane"),
                None => format!("{addr} is outside every plane of the plan"),
            },
        }
    }
}

fn explain_no_flow(packet: &Packet) -> String {
    if let Fragment::Later(_) = packet.fragment {
        return "a later fragment of a datagram whose first fragment did not pass".to_owned();
    }
    match packet.header.l4 {
        L4::Tcp { .. } => format!(
            "tcp {} without a tracked flow (a flow opens with SYN)",
            flags_text(&packet.header.l4)
        ),
        L4::Echo { id, .. } => format!("echo reply (id {id}) without a request"),
        L4::IcmpError => "icmp error about no tracked flow of its receiver".to_owned(),
        _ => "no tracked flow".to_owned(),
    }
}

/// TCP flags as `SYN|ACK`.
fn flags_text(l4: &L4) -> String {
    let L4::Tcp { flags, .. } = *l4 else {
        return String::new();
    };
    let names = [
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::URG, "URG"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if set.is_empty() {
        "without flags".to_owned()
    } else {
        set.join("|")
    }
}
