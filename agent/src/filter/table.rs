//! The filter's memory: tracked flows with their state and deadline, and the first
//! fragments whose later fragments may follow.
//!
//! A flow is found from either direction with one hash lookup: TCP, UDP and portless
//! protocols key on their two (address, port) ends in a fixed order, and remember which end
//! opened the flow; an ICMP echo keys on (requester, responder, identifier), so a reply
//! finds its request but a request in the other direction is a flow of its own. Deadlines
//! are instants computed from the caller's `now`: an entry past its deadline is treated as
//! gone when it is looked up, and swept from memory every [`SWEEP_EVERY`] (or sooner, at
//! most every [`FULL_SWEEP_EVERY`], when the table is full). Both maps are bounded.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use pnet_packet::tcp::TcpFlags;

use super::packet::{Header, L4};
use crate::control::FilterSettings;

/// How often expired flows are swept from memory.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often at the most a full table is swept to make room for a new flow.
pub(super) const FULL_SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long the later fragments of an allowed first fragment may follow it (Linux's
/// `ipfrag_time`).
pub(super) const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Datagrams whose later fragments are awaited, at the most.
pub(super) const MAX_FRAGMENTED: usize = 4096;

/// A flow as found from either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FlowKey {
    /// One end: the lower (address, port) for TCP/UDP/portless, the requester for echo.
    pub a: IpAddr,
    /// The other end.
    pub b: IpAddr,
    /// `a`'s port (the echo identifier for echo).
    pub a_port: u16,
    /// `b`'s port (0 for echo and portless protocols).
    pub b_port: u16,
    /// The transport protocol.
    pub proto: u8,
}

/// Hashed in two or three fixed-size writes rather than field by field: this hash is most of the
/// cost of a tracked packet. The table's hasher is foldhash with a per-process random seed:
/// senders choose the ports, so the hash must stay keyed (no HashDoS), but it need not be
/// SipHash, which cost several times as much per packet.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match (self.a, self.b) {
            // Both ends IPv4 (the plan's overlay): one 64-bit write for the pair.
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                state.write_u64(u64::from(u32::from(a)) << 32 | u64::from(u32::from(b)));
            }
            (a, b) => {
                state.write_u128(bits(a));
                state.write_u128(bits(b));
            }
        }
        let rest = u64::from(self.a_port) << 32 | u64::from(self.b_port) << 16;
        state.write_u64(rest | u64::from(self.proto) << 8 | u64::from(self.a.is_ipv6()));
    }
}

/// An address as 128 bits (the family is hashed separately).
fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl FlowKey {
    /// The key of a packet's flow and whether the packet comes from end `a`; `None` for
    /// packets that belong to no flow of their own (ICMP errors and other ICMP messages).
    pub fn of(header: &Header) -> Option<(FlowKey, bool)> {
        let (src, dst, proto) = (header.src, header.dst, header.proto);
        let (src_port, dst_port) = match header.l4 {
            L4::Tcp {
                src_port, dst_port, ..
            }
            | L4::Udp { src_port, dst_port } => (src_port, dst_port),
            L4::None => (0, 0),
            L4::Echo { request, id } => {
                let (a, b) = if request { (src, dst) } else { (dst, src) };
                let key = FlowKey {
                    a,
                    b,
                    a_port: id,
                    b_port: 0,
                    proto,
                };
                return Some((key, request));
            }
            L4::IcmpError | L4::IcmpOther(_) => return None,
        };
        // Any fixed order of the two ends will do; integers compare fastest.
        let from_a = (bits(src), src_port) <= (bits(dst), dst_port);
        let ((a, a_port), (b, b_port)) = if from_a {
            ((src, src_port), (dst, dst_port))
        } else {
            ((dst, dst_port), (src, src_port))
        };
        let key = FlowKey {
            a,
            b,
            a_port,
            b_port,
            proto,
        };
        Some((key, from_a))
    }
}

/// Where a tracked flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// TCP: the initiator's SYN went out.
    SynSent,
    /// TCP: the responder answered SYN+ACK.
    SynAcked,
    /// TCP: the handshake completed.
    Established,
    /// TCP: a FIN or RST was seen.
    Closing,
    /// UDP.
    Udp,
    /// ICMP echo.
    Echo,
    /// A protocol without ports.
    Portless,
}

impl State {
    /// The state a flow opened by this packet starts in.
    pub fn opening(l4: &L4) -> State {
        match l4 {
            L4::Tcp { .. } => State::SynSent,
            L4::Udp { .. } => State::Udp,
            L4::Echo { .. } => State::Echo,
            _ => State::Portless,
        }
    }

    /// How long a flow in this state lives without packets.
    pub fn timeout(self, settings: &Timeouts) -> Duration {
        match self {
            State::SynSent | State::SynAcked | State::Closing => settings.tcp_transitory,
            State::Established => settings.tcp_established,
            State::Udp | State::Portless => settings.udp,
            State::Echo => settings.icmp,
        }
    }
}

/// What a packet of a tracked flow does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// It belongs: the flow moves to this state.
    Pass(State),
    /// It does not fit the flow's state.
    OutOfState,
    /// A new connection on the ports of a closing one: decide it afresh.
    Reopen,
}

/// Moves a flow on by one packet. TCP follows the handshake (a flow is opened by a SYN
/// without ACK; the responder's SYN+ACK and the initiator's ACK establish it), and any FIN
/// or RST puts it on the short transitory timeout. While the SYN is unanswered only SYNs and
/// RSTs fit: a stray ACK or data cannot ride on a half-open flow. Other protocols only
/// refresh.
pub(super) fn advance(state: State, from_initiator: bool, l4: &L4) -> Step {
    let L4::Tcp { flags, .. } = *l4 else {
        return Step::Pass(state);
    };
    let has = |flag: u8| flags & flag != 0;
    let (syn, ack) = (has(TcpFlags::SYN), has(TcpFlags::ACK));
    if has(TcpFlags::RST) {
        return Step::Pass(State::Closing);
    }
    match state {
        State::SynSent if syn && ack && !from_initiator => Step::Pass(State::SynAcked),
        // A retransmitted SYN, or the responder's own SYN in a simultaneous open.
        State::SynSent if syn && !ack => Step::Pass(State::SynSent),
        State::SynSent => Step::OutOfState,
        _ if has(TcpFlags::FIN) => Step::Pass(State::Closing),
        State::SynAcked if from_initiator && ack && !syn => Step::Pass(State::Established),
        State::Closing if syn && !ack => Step::Reopen,
        other => Step::Pass(other),
    }
}

/// The timeouts of [`FilterSettings`] as durations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub tcp_established: Duration,
    pub tcp_transitory: Duration,
    pub udp: Duration,
    pub icmp: Duration,
}

impl From<&FilterSettings> for Timeouts {
    fn from(s: &FilterSettings) -> Self {
        Timeouts {
            tcp_established: Duration::from_secs(s.tcp_established_s),
            tcp_transitory: Duration::from_secs(s.tcp_transitory_s),
            udp: Duration::from_secs(s.udp_s),
            icmp: Duration::from_secs(s.icmp_s),
        }
    }
}

/// A tracked flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flow {
    /// The rule that allowed it (index into the policy's rules).
    pub rule: u32,
    /// Its state.
    pub state: State,
    /// Whether end `a` of its key opened it.
    pub initiator_a: bool,
    /// When it is forgotten unless another packet comes.
    pub expires: Instant,
}

/// A fragmented datagram, by sender, receiver, protocol and identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
}

/// Tracked flows and awaited fragments, bounded, with deadlines.
#[derive(Debug)]
pub(super) struct Table {
    /// Tracked flows; the hot path is one lookup here.
    pub flows: HashMap<FlowKey, Flow, RandomState>,
    /// Allowed first fragments: the rule, and until when later fragments may follow.
    pub fragments: HashMap<FragmentKey, (u32, Instant), RandomState>,
    /// Flows at the most.
    pub max_flows: usize,
    next_sweep: Option<Instant>,
    last_full_sweep: Option<Instant>,
}

impl Table {
    pub fn new(max_flows: usize) -> Table {
        Table {
            flows: HashMap::with_hasher(RandomState::default()),
            fragments: HashMap::with_hasher(RandomState::default()),
            max_flows,
            next_sweep: None,
            last_full_sweep: None,
        }
    }

    /// Sweeps expired entries if the time has come.
    pub fn tick(&mut self, now: Instant) {
        if self.next_sweep.is_none_or(|at| now >= at) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.flows.retain(|_, flow| flow.expires > now);
        self.fragments.retain(|_, (_, expires)| *expires > now);
        self.next_sweep = Some(now + SWEEP_EVERY);
    }

    /// Whether a new flow fits, sweeping a full table first if it was not swept lately.
    pub fn has_room(&mut self, now: Instant) -> bool {
        if self.flows.len() < self.max_flows {
            return true;
        }
        let recently = self
            .last_full_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < FULL_SWEEP_EVERY);
        if !recently {
            self.last_full_sweep = Some(now);
            self.sweep(now);
        }
        self.flows.len() < self.max_flows
    }

    /// Remembers an allowed first fragment, so its later fragments pass; when the map is
    /// full even after dropping the expired, the later fragments will be denied.
    pub fn expect_fragments(&mut self, now: Instant, key: FragmentKey, rule: u32) {
        if self.fragments.len() >= MAX_FRAGMENTED && !self.fragments.contains_key(&key) {
            self.fragments.retain(|_, (_, expires)| *expires > now);
            if self.fragments.len() >= MAX_FRAGMENTED {
                return;
            }
        }
        self.fragments.insert(key, (rule, now + FRAGMENT_TIMEOUT));
    }

    /// The rule of the datagram a later fragment belongs to, if its first fragment passed.
    pub fn fragment_rule(&self, now: Instant, key: &FragmentKey) -> Option<u32> {
        self.fragments
            .get(key)
            .and_then(|&(rule, expires)| (expires > now).then_some(rule))
    }

    /// The rule of a live flow, without touching it (for ICMP errors about it).
    pub fn live_rule(&self, now: Instant, key: &FlowKey) -> Option<u32> {
        self.flows
            .get(key)
            .and_then(|flow| (flow.expires > now).then_some(flow.rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: u8) -> L4 {
        L4::Tcp {
            src_port: 1,
            dst_port: 2,
            flags,
        }
    }

    #[test]
    fn the_handshake_establishes_and_fin_or_rst_close() {
        use TcpFlags::{ACK, FIN, PSH, RST, SYN};
        let mut state = State::SynSent;
        for (from_initiator, flags, want) in [
            (true, SYN, Step::Pass(State::SynSent)),
            (true, ACK, Step::OutOfState),
            (false, ACK | PSH, Step::OutOfState),
            (false, SYN | ACK, Step::Pass(State::SynAcked)),
            (false, SYN | ACK, Step::Pass(State::SynAcked)),
            (true, ACK, Step::Pass(State::Established)),
            (false, ACK | PSH, Step::Pass(State::Established)),
            (true, SYN, Step::Pass(State::Established)),
            (true, FIN | ACK, Step::Pass(State::Closing)),
            (false, ACK, Step::Pass(State::Closing)),
            (false, SYN, Step::Reopen),
            (true, RST, Step::Pass(State::Closing)),
        ] {
            let step = advance(state, from_initiator, &tcp(flags));
            assert_eq!(step, want, "{state:?} {from_initiator} {flags:#x}");
            if let Step::Pass(next) = step {
                state = next;
            }
        }
        assert_eq!(
            advance(State::SynSent, false, &tcp(RST | ACK)),
            Step::Pass(State::Closing),
            "a refused connection closes"
        );
    }

    #[test]
    fn both_directions_find_one_key() {
        let a: IpAddr = "10.32.64.65".parse().unwrap();
        let b: IpAddr = "10.0.0.65".parse().unwrap();
        let there = Header {
            src: a,
            dst: b,
            proto: 6,
            l4: L4::Tcp {
                src_port: 40000,
                dst_port: 443,
                flags: 0,
            },
        };
        let back = Header {
            src: b,
            dst: a,
            proto: 6,
            l4: L4::Tcp {
                src_port: 443,
                dst_port: 40000,
                flags: 0,
            },
        };
        let (k1, from_a1) = FlowKey::of(&there).unwrap();
        let (k2, from_a2) = FlowKey::of(&back).unwrap();
        assert_eq!(k1, k2);
        assert_ne!(from_a1, from_a2);
        let echo = |src, dst, request| Header {
            src,
            dst,
            proto: 1,
            l4: L4::Echo { request, id: 7 },
        };
        let request = FlowKey::of(&echo(a, b, true)).unwrap().0;
        assert_eq!(FlowKey::of(&echo(b, a, false)).unwrap().0, request);
        assert_ne!(FlowKey::of(&echo(b, a, true)).unwrap().0, request);
        assert_ne!(FlowKey::of(&echo(a, b, false)).unwrap().0, request);
    }
}
