//! The zone filter: every decapsulated and every locally originated overlay packet passes it,
//! and it reproduces, packet by packet, what `jinbao-controller policy query` answers.
//!
//! Default deny, stateful. The first packet of a flow is located — source and destination
//! address to (node, zone) on the filter's plane, with the plan's [`AddressIndex`] — and
//! decided by [`Policy::decide`], the same function the controller's static audit runs. An
//! allowed flow is tracked (5-tuple, found from both directions with one hash lookup), and
//! its later packets and its return traffic pass without asking the policy again. That path
//! is a parse of the headers in place and one lookup: no allocation per packet.
//!
//! What opens a flow, and what only a flow may carry:
//! - TCP opens with a SYN without ACK; the SYN+ACK and the initiator's ACK establish it;
//!   any FIN or RST puts it on the short transitory timeout, and a new SYN on a closing
//!   flow is decided afresh. A TCP packet without a flow is denied.
//! - UDP opens with any datagram; portless protocols (allowed only by `any` rules) likewise.
//! - ICMP and ICMPv6 echo requests open an echo flow; a reply passes only with the same
//!   identifier in the other direction. ICMP errors (unreachable, packet too big, time
//!   exceeded, parameter problem) pass only when the packet they quote belongs to a tracked
//!   flow and they go back to its sender, so path MTU discovery works; other ICMP types are
//!   denied.
//! - Fragments are not reassembled. A first fragment is decided like a whole packet (and is
//!   malformed if its transport header does not fit); the later fragments of a datagram
//!   whose first fragment passed follow it for 30 s (Linux's reassembly time); other later
//!   fragments, including those that arrive before their first, are denied.
//! - IPv4 and IPv6 alike: IPv6 extension headers are walked to the transport header.
//!
//! Flows expire with the caller's `now` (per-state timeouts of [`FilterSettings`]); an
//! expired flow is gone, and its next packet is a new flow. The table holds `max_flows` at
//! the most: when it is full (even after sweeping the expired), new flows are denied
//! (`table-full`) and counted, and existing ones go on. A new policy re-decides every
//! tracked flow ([`ZoneFilter::set_model`]). Denied packets are counted by [`Denied`] reason; at most
//! `denied_records_per_s` of them a second become [`DeniedFlow`] records (token bucket on
//! `now`), the rest are only counted. Policy decisions are cached per (node, zone, node,
//! zone, protocol, port), so a repeated first packet or a flood of denied ones costs a
//! lookup rather than a walk over the rules.

mod explain;
mod packet;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use pnet_packet::tcp::TcpFlags;
use topology::plan::{AddressIndex, Owner};
use topology::policy::reach::{Query, Verdict as PolicyVerdict};
use topology::policy::{Policy, Proto};
use topology::{NodeIx, Plane, Zone, ZoneRef};

use crate::control::{FilterSettings, RuleCounters};
use crate::model::Model;
use packet::{Fragment, Header, L4, Packet};
use table::{Flow, FlowKey, FragmentKey, State, Step, Table, Timeouts};

/// Policy decisions cached at the most; the cache is emptied when it is full.
pub const MAX_DECISIONS: usize = 4096;

/// What the filter does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it.
    Allow {
        /// The policy rule (index into [`Policy::rules`]) that allowed a new flow; `None` for
        /// a packet of a tracked flow, in either direction.
        rule: Option<usize>,
    },
    /// Drop it, for this reason.
    Deny(Denied),
    /// Drop it: not a readable IP packet.
    Malformed,
}

/// Why a packet was denied; the labels are also metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Denied {
    /// No policy rule allows the flow (default deny).
    Policy,
    /// An address in no zone of any node on this plane, or in no plane at all.
    UnknownAddress,
    /// An address of another plane: planes are never bridged.
    OtherPlane,
    /// A packet only a tracked flow may carry (TCP without SYN, echo reply, ICMP error,
    /// later fragment), and no flow tracks it.
    NoFlow,
    /// A TCP packet that does not fit its flow's state (data before the SYN is answered).
    TcpState,
    /// An ICMP type that is neither echo nor an error about a tracked flow.
    IcmpType,
    /// The flow table is full.
    TableFull,
}

impl Denied {
    /// Every reason, in label order of [`Denied::label`].
    pub const ALL: [Denied; 7] = [
        Denied::Policy,
        Denied::UnknownAddress,
        Denied::OtherPlane,
        Denied::NoFlow,
        Denied::TcpState,
        Denied::IcmpType,
        Denied::TableFull,
    ];

    /// The reason as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Denied::Policy => "policy",
            Denied::UnknownAddress => "unknown-address",
            Denied::OtherPlane => "other-plane",
            Denied::NoFlow => "no-flow",
            Denied::TcpState => "tcp-state",
            Denied::IcmpType => "icmp-type",
            Denied::TableFull => "table-full",
        }
    }

    fn index(self) -> usize {
        Denied::ALL.iter().position(|&d| d == self).unwrap_or(0)
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// A denied packet, as recorded for the operator (rate-limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedFlow {
    /// When.
    pub at: Instant,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Destination port, for TCP and UDP.
    pub dst_port: Option<u16>,
    /// Why, as a sentence (for policy denials, what `policy query` says).
    pub reason: String,
}

/// Allowed flows and packets of one rule.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    flows: u64,
    packets: u64,
}

/// A located flow: source and destination (node, zone), protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DecisionKey {
    from: (NodeIx, Zone),
    to: (NodeIx, Zone),
    proto: Proto,
    port: Option<u16>,
}

/// The stateful zone filter of one plane instance.
#[derive(Debug)]
pub struct ZoneFilter {
    model: Arc<Model>,
    plane: Plane,
    timeouts: Timeouts,
    table: Table,
    decisions: HashMap<DecisionKey, Option<u32>>,
    counters: Vec<Counter>,
    denied: [u64; Denied::ALL.len()],
    default_denied: u64,
    malformed: u64,
    records: Records,
}

/// What happened to a packet at the flow table.
enum Tracked {
    /// It belongs to a flow allowed by this rule.
    Pass(u32),
    /// It cannot be allowed.
    Deny(Denied),
    /// It may open a flow: ask the policy.
    New,
}

impl ZoneFilter {
    /// A filter for `plane`'s instance, deciding by `model`'s policy.
    pub fn new(model: Arc<Model>, plane: Plane, settings: &FilterSettings) -> ZoneFilter {
        let rules = model.policy.rules().len();
        ZoneFilter {
            model,
            plane,
            timeouts: Timeouts::from(settings),
            table: Table::new(settings.max_flows),
            decisions: HashMap::new(),
            counters: vec![Counter::default(); rules],
            denied: [0; Denied::ALL.len()],
            default_denied: 0,
            malformed: 0,
            records: Records::new(settings.denied_records_per_s),
        }
    }

    /// Decides one IP packet (IPv4 or IPv6, starting at the IP header) at `now`.
    pub fn check(&mut self, now: Instant, packet: &[u8]) -> Verdict {
        self.table.tick(now);
        let Some(packet) = packet::parse(packet) else {
            self.malformed += 1;
            return Verdict::Malformed;
        };
        let (rule, new) = match self.tracked(now, &packet) {
            Tracked::Pass(rule) => (rule, false),
            Tracked::Deny(reason) => return self.deny(now, &packet, reason),
            Tracked::New => match self.open(now, &packet.header) {
                Ok(rule) => (rule, true),
                Err(reason) => return self.deny(now, &packet, reason),
            },
        };
        if let Fragment::First(id) = packet.fragment {
            let key = fragment_key(&packet.header, id);
            self.table.expect_fragments(now, key, rule);
        }
        if let Some(counter) = self.counters.get_mut(rule as usize) {
            counter.packets += 1;
            counter.flows += u64::from(new);
        }
        Verdict::Allow {
            rule: new.then_some(rule as usize),
        }
    }

    /// Per policy rule, in policy order: flows allowed and packets passed (return traffic
    /// included), named as the policy names the rule.
    pub fn rule_counters(&self) -> Vec<RuleCounters> {
        self.model
            .policy
            .rules()
            .iter()
            .zip(&self.counters)
            .map(|(rule, counter)| RuleCounters {
                rule: rule.name.clone(),
                allowed_flows: counter.flows,
                allowed_packets: counter.packets,
            })
            .collect()
    }

    /// Packets denied, for every reason.
    pub fn default_denied(&self) -> u64 {
        self.default_denied
    }

    /// Packets denied, per reason, in the order of [`Denied::ALL`].
    pub fn denied_counts(&self) -> Vec<(Denied, u64)> {
        Denied::ALL
            .iter()
            .map(|&d| (d, self.denied[d.index()]))
            .collect()
    }

    /// Packets that were not readable IP packets.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The denied-flow records kept since the last call (at most `denied_records_per_s` a
    /// second), oldest first; the filter forgets them.
    pub fn drain_denied(&mut self) -> Vec<DeniedFlow> {
        std::mem::take(&mut self.records.pending)
    }

    /// Denied packets not recorded because of the rate limit (they are counted).
    pub fn records_suppressed(&self) -> u64 {
        self.records.suppressed
    }

    /// Flows in the table, including expired ones not yet swept (they are swept at most
    /// a second after they expire, as packets pass).
    pub fn flows(&self) -> usize {
        self.table.flows.len()
    }

    /// The plane this filter guards.
    pub fn plane(&self) -> Plane {
        self.plane
    }

    /// The model it decides by.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Decides by a new model (a new policy): every tracked flow is decided again and those
    /// no rule allows any more are dropped; rule counters start again from zero, as the rules
    /// they count may have changed.
    pub fn set_model(&mut self, model: Arc<Model>) {
        if Arc::ptr_eq(&model, &self.model) {
            return;
        }
        self.counters = vec![Counter::default(); model.policy.rules().len()];
        self.model = model;
        self.decisions.clear();
        self.table.fragments.clear();
        let flows = std::mem::take(&mut self.table.flows);
        for (key, mut flow) in flows {
            if let Some(rule) = self.redecide(&key, &flow) {
                flow.rule = rule;
                self.table.flows.insert(key, flow);
            }
        }
    }

    /// The flow table's verdict on a packet: part of a tracked flow, denied, or new.
    fn tracked(&mut self, now: Instant, packet: &Packet) -> Tracked {
        let header = &packet.header;
        if let Fragment::Later(id) = packet.fragment {
            let key = fragment_key(header, id);
            return match self.table.fragment_rule(now, &key) {
                Some(rule) => Tracked::Pass(rule),
                None => Tracked::Deny(Denied::NoFlow),
            };
        }
        match (header.l4, packet.quoted) {
            (L4::IcmpError, Some(quoted)) => return self.related(now, header, &quoted),
            (L4::IcmpError, None) => return Tracked::Deny(Denied::NoFlow),
            (L4::IcmpOther(_), _) => return Tracked::Deny(Denied::IcmpType),
            _ => {}
        }
        let Some((key, from_a)) = FlowKey::of(header) else {
            return Tracked::Deny(Denied::NoFlow);
        };
        match self.table.flows.get_mut(&key) {
            None => return Tracked::New,
            Some(flow) if flow.expires > now => {
                match table::advance(flow.state, from_a == flow.initiator_a, &header.l4) {
                    Step::Pass(state) => {
                        flow.state = state;
                        flow.expires = now + state.timeout(&self.timeouts);
                        return Tracked::Pass(flow.rule);
                    }
                    Step::OutOfState => return Tracked::Deny(Denied::TcpState),
                    Step::Reopen => {}
                }
            }
            Some(_) => {} // expired: gone
        }
        self.table.flows.remove(&key);
        Tracked::New
    }

    /// An ICMP error passes when it goes back to the sender of the packet it quotes, and
    /// that packet belongs to a tracked flow.
    fn related(&self, now: Instant, header: &Header, quoted: &Header) -> Tracked {
        if quoted.src != header.dst {
            return Tracked::Deny(Denied::NoFlow);
        }
        FlowKey::of(quoted)
            .and_then(|(key, _)| self.table.live_rule(now, &key))
            .map_or(Tracked::Deny(Denied::NoFlow), Tracked::Pass)
    }

    /// The first packet of a flow: locate, decide, track.
    fn open(&mut self, now: Instant, header: &Header) -> Result<u32, Denied> {
        match header.l4 {
            L4::Tcp { flags, .. } => {
                let opening = TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN;
                if flags & opening != TcpFlags::SYN {
                    return Err(Denied::NoFlow);
                }
            }
            L4::Echo { request: false, .. } => return Err(Denied::NoFlow),
            _ => {}
        }
        let from = locate(&self.model.index, self.plane, header.src)?;
        let to = locate(&self.model.index, self.plane, header.dst)?;
        let (proto, port) = service(header.proto, &header.l4);
        let rule = self.decide(from, to, proto, port).ok_or(Denied::Policy)?;
        if !self.table.has_room(now) {
            return Err(Denied::TableFull);
        }
        let (key, from_a) = FlowKey::of(header).ok_or(Denied::NoFlow)?;
        let state = State::opening(&header.l4);
        let flow = Flow {
            rule,
            state,
            initiator_a: from_a,
            expires: now + state.timeout(&self.timeouts),
        };
        self.table.flows.insert(key, flow);
        Ok(rule)
    }

    /// The rule that allows a located flow, through the decision cache.
    fn decide(
        &mut self,
        from: (NodeIx, Zone),
        to: (NodeIx, Zone),
        proto: Proto,
        port: Option<u16>,
    ) -> Option<u32> {
        let key = DecisionKey {
            from,
            to,
            proto,
            port,
        };
        if let Some(&decision) = self.decisions.get(&key) {
            return decision;
        }
        let query = self.query(from, to, proto, port);
        let model = &self.model;
        let decision = match model
            .policy
            .decide(&model.network, &model.allocation, &query)
        {
            PolicyVerdict::Allow(rule) => rule_index(&model.policy, rule),
            PolicyVerdict::Deny(_) => None,
        };
        if self.decisions.len() >= MAX_DECISIONS {
            self.decisions.clear();
        }
        self.decisions.insert(key, decision);
        decision
    }

    /// The policy query of a located flow, with both zones pinned to this plane.
    fn query(
        &self,
        from: (NodeIx, Zone),
        to: (NodeIx, Zone),
        proto: Proto,
        port: Option<u16>,
    ) -> Query {
        let zone = |zone| ZoneRef {
            plane: Some(self.plane),
            zone,
        };
        Query::new(from.0, zone(from.1), to.0, zone(to.1), proto, port)
    }

    /// The rule that allows a tracked flow under the current model, if any.
    fn redecide(&mut self, key: &FlowKey, flow: &Flow) -> Option<u32> {
        let (initiator, responder) = if flow.initiator_a {
            ((key.a, key.a_port), (key.b, key.b_port))
        } else {
            ((key.b, key.b_port), (key.a, key.a_port))
        };
        let from = locate(&self.model.index, self.plane, initiator.0).ok()?;
        let to = locate(&self.model.index, self.plane, responder.0).ok()?;
        let l4 = match flow.state {
            State::Echo => L4::Echo {
                request: true,
                id: key.a_port,
            },
            State::Portless => L4::None,
            State::Udp => L4::Udp {
                src_port: initiator.1,
                dst_port: responder.1,
            },
            _ => L4::Tcp {
                src_port: initiator.1,
                dst_port: responder.1,
                flags: 0,
            },
        };
        let (proto, port) = service(key.proto, &l4);
        self.decide(from, to, proto, port)
    }

    /// Counts a denied packet and records it if the rate limit allows.
    fn deny(&mut self, now: Instant, packet: &Packet, reason: Denied) -> Verdict {
        self.default_denied += 1;
        self.denied[reason.index()] += 1;
        if self.records.take(now) {
            let header = &packet.header;
            let record = DeniedFlow {
                at: now,
                src: header.src,
                dst: header.dst,
                proto: header.proto,
                dst_port: header.dst_port(),
                reason: self.explain(packet, reason),
            };
            self.records.pending.push(record);
        }
        Verdict::Deny(reason)
    }
}

/// The (node, zone) of an address on a plane.
fn locate(index: &AddressIndex, plane: Plane, addr: IpAddr) -> Result<(NodeIx, Zone), Denied> {
    match index.owner_on(plane, addr) {
        Some(Owner {
            node,
            zone: Some(zone),
            ..
        }) => Ok((node, zone)),
        Some(_) => Err(Denied::UnknownAddress),
        None if index.plane_of(addr).is_some_and(|p| p != plane) => Err(Denied::OtherPlane),
        None => Err(Denied::UnknownAddress),
    }
}

/// The protocol and port a flow is decided on.
fn service(proto: u8, l4: &L4) -> (Proto, Option<u16>) {
    match *l4 {
        L4::Tcp { dst_port, .. } => (Proto::Tcp, Some(dst_port)),
        L4::Udp { dst_port, .. } => (Proto::Udp, Some(dst_port)),
        L4::Echo { .. } => (Proto::Icmp, None),
        // Only a rule for any protocol covers the others.
        _ if proto == packet::ICMP || proto == packet::ICMPV6 => (Proto::Icmp, None),
        _ => (Proto::Any, None),
    }
}

fn rule_index(policy: &Policy, rule: &topology::policy::Rule) -> Option<u32> {
    let position = policy.rules().iter().position(|r| std::ptr::eq(r, rule))?;
    u32::try_from(position).ok()
}

fn fragment_key(header: &Header, id: u32) -> FragmentKey {
    FragmentKey {
        src: header.src,
        dst: header.dst,
        proto: header.proto,
        id,
    }
}

/// Denied-flow records: a token bucket on `now`, and a bounded queue until drained.
#[derive(Debug)]
struct Records {
    per_s: u32,
    tokens: f64,
    last: Option<Instant>,
    pending: Vec<DeniedFlow>,
    suppressed: u64,
}

/// Records kept undrained at the most, in seconds of the rate.
const PENDING_SECONDS: usize = 60;

impl Records {
    fn new(per_s: u32) -> Records {
        Records {
            per_s,
            tokens: f64::from(per_s),
            last: None,
            pending: Vec::new(),
            suppressed: 0,
        }
    }

    /// Whether one more record may be kept at `now` (it takes a token).
    fn take(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.per_s);
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(rate);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        let room = self.pending.len() < (self.per_s as usize).saturating_mul(PENDING_SECONDS);
        if self.tokens >= 1.0 && room {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests;
