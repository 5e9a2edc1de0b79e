//! Conference bandwidth on one tunnel: what the controller reserved, enforced by the agent
//! that sends into the link.
//!
//! A video conference breaks up for everyone when its link's queue grows behind a burst of
//! file transfers, so during a reservation's window (test window to end, on the agent's own
//! clock: enforcement does not need the controller) the sending agent:
//!
//! - marks the conference's media (UDP between the reserved site pairs' exchange prefixes,
//!   on the media ports) per RFC 4594 — audio EF, video AF41 — so the underlay can honour
//!   the marking too;
//! - gives that media strict priority up to the reserved rate (a token bucket at the sum of
//!   the windows in force; media beyond it waits with everything else);
//! - shapes everything it sends to the peer to the link's capacity, so the queue forms here,
//!   where video can jump it, and never in the underlay, where it cannot. A datagram counts
//!   with its IP and UDP headers, so the shaper is never faster than the wire.
//!
//! The agent's own link probes go first of all (like BFD's control packets): they are tiny,
//! and a probe lost behind bulk traffic would declare a healthy link down.
//!
//! Outside every window nothing is shaped or queued. Queues are bounded: bulk traffic
//! beyond [`QUEUE_TIME`] at the link's capacity is dropped at the tail and counted.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::control::{ConferenceCounters, ConferenceMedia, LinkQos};

/// RFC 4594 telephony (audio): Expedited Forwarding.
pub const DSCP_EF: u8 = 46;
/// RFC 4594 interactive video: Assured Forwarding 41.
pub const DSCP_AF41: u8 = 34;
/// How far ahead of the link the shaper may run: a short burst at the capacity.
const BURST: Duration = Duration::from_millis(2);
/// Queued traffic per lane at the most, in time at the lane's rate.
const QUEUE_TIME: Duration = Duration::from_millis(50);
/// Queues hold at least this many full-size datagrams, however slow the link.
const MIN_QUEUE_BYTES: u64 = 16 * 1_500;
/// The priority bucket's depth, in time at the reserved rate (at least two datagrams).
const PRIORITY_DEPTH: Duration = Duration::from_millis(10);

/// Which queue a datagram waits in; lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lane {
    /// The agent's own link probes.
    Control = 0,
    /// Conference media within the reserved rate.
    Reserved = 1,
    /// Everything else, and media beyond the reserved rate.
    Bulk = 2,
}

/// One reservation's window in the agent's monotonic time.
#[derive(Debug, Clone)]
struct Window {
    from: Instant,
    until: Instant,
    rate_bps: u64,
    flows: Vec<[IpNet; 2]>,
}

#[derive(Debug)]
struct Queued {
    lane: Lane,
    wire_bytes: u64,
    local: SocketAddr,
    remote: SocketAddr,
    datagram: Vec<u8>,
}

/// The shaper and classifier of one tunnel with reservations.
#[derive(Debug)]
pub(crate) struct LinkShaper {
    capacity_bps: u64,
    windows: Vec<Window>,
    media: ConferenceMedia,
    /// When the link (as this shaper models it) has sent everything given to it so far.
    link_free_at: Instant,
    /// Reserved-rate tokens, in bytes, as of `tokens_at`.
    tokens: f64,
    tokens_at: Instant,
    queues: [VecDeque<Queued>; 3],
    queued_bytes: [u64; 3],
    counters: ConferenceCounters,
}

/// A reservation's Unix-seconds instant on the monotonic clock, given that `now` is `wall`.
fn monotonic(unix_s: u64, now: Instant, wall: SystemTime) -> Instant {
    let at = UNIX_EPOCH + Duration::from_secs(unix_s);
    match at.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(past) => now.checked_sub(past.duration()).unwrap_or(now),
    }
}

/// Time on the wire for `bytes` at `rate_bps`.
fn wire_time(bytes: u64, rate_bps: u64) -> Duration {
    let nanos = (u128::from(bytes) * 8 * 1_000_000_000).div_ceil(u128::from(rate_bps.max(1)));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl LinkShaper {
    /// The shaper for a tunnel's reservations; `None` when nothing is reserved, or the
    /// link's capacity is unknown (then there is nothing to shape to).
    pub(crate) fn new(
        qos: &LinkQos,
        media: &ConferenceMedia,
        now: Instant,
        wall: SystemTime,
    ) -> Option<LinkShaper> {
        let capacity_bps = qos.capacity_kbps?.checked_mul(1_000)?;
        if qos.reservations.is_empty() || capacity_bps == 0 {
            return None;
        }
        let windows = qos
            .reservations
            .iter()
            .map(|r| Window {
                from: monotonic(r.from_unix_s, now, wall),
                until: monotonic(r.until_unix_s, now, wall),
                rate_bps: r.rate_kbps.saturating_mul(1_000),
                flows: r.flows.clone(),
            })
            .collect();
        Some(LinkShaper {
            capacity_bps,
            windows,
            media: media.clone(),
            link_free_at: now,
            // A full bucket: capped at its depth on first use.
            tokens: f64::INFINITY,
            tokens_at: now,
            queues: Default::default(),
            queued_bytes: [0; 3],
            counters: ConferenceCounters::default(),
        })
    }

    /// Takes over what `old` still holds (queued datagrams, the link's state), for a new
    /// bundle's reservations on the same tunnel.
    pub(crate) fn inherit(&mut self, old: LinkShaper) {
        self.link_free_at = old.link_free_at;
        self.queues = old.queues;
        self.queued_bytes = old.queued_bytes;
        self.counters = old.counters;
    }

    /// This shaper without reservations: it only sends what it still queues.
    pub(crate) fn draining(mut self) -> LinkShaper {
        self.windows.clear();
        self
    }

    /// Whether anything is shaped at `now`: a window is in force, or datagrams still wait.
    pub(crate) fn active(&self, now: Instant) -> bool {
        self.reserved_rate(now) > 0 || self.queued_bytes.iter().any(|&b| b > 0)
    }

    /// The reserved rate in force at `now`, bit/s.
    pub(crate) fn reserved_rate(&self, now: Instant) -> u64 {
        self.windows
            .iter()
            .filter(|w| w.from <= now && now < w.until)
            .map(|w| w.rate_bps)
            .sum()
    }

    /// What enforcement did so far, and the rate reserved at `now`.
    pub(crate) fn counters(&self, now: Instant) -> ConferenceCounters {
        ConferenceCounters {
            reserved_kbps: self.reserved_rate(now) / 1_000,
            ..self.counters
        }
    }

    /// The lane of a cleartext packet at `now` and, for conference media, the DSCP to mark
    /// it with. Media within the reserved rate takes the reserved lane (and its tokens).
    pub(crate) fn classify(&mut self, now: Instant, packet: &[u8]) -> (Lane, Option<u8>) {
        let Some(dscp) = self.media_dscp(now, packet) else {
            return (Lane::Bulk, None);
        };
        self.counters.media_packets += 1;
        let rate = self.reserved_rate(now);
        let depth = (rate as f64 / 8.0 * PRIORITY_DEPTH.as_secs_f64()).max(3_000.0);
        let elapsed = now.saturating_duration_since(self.tokens_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64 / 8.0).min(depth);
        self.tokens_at = now;
        let need = packet.len() as f64;
        if self.tokens >= need {
            self.tokens -= need;
            self.counters.reserved_packets += 1;
            (Lane::Reserved, Some(dscp))
        } else {
            (Lane::Bulk, Some(dscp))
        }
    }

    /// EF for audio, AF41 for video, when `packet` is media of a reservation in force.
    fn media_dscp(&self, now: Instant, packet: &[u8]) -> Option<u8> {
        let (src, dst, sport, dport) = udp_endpoints(packet)?;
        let in_range = |port: u16, [low, high]: [u16; 2]| (low..=high).contains(&port);
        let dscp = if in_range(sport, self.media.audio_ports)
            || in_range(dport, self.media.audio_ports)
        {
            DSCP_EF
        } else if in_range(sport, self.media.video_ports) || in_range(dport, self.media.video_ports)
        {
            DSCP_AF41
        } else {
            return None;
        };
        let covered = |[a, b]: &[IpNet; 2]| {
            (a.contains(&src) && b.contains(&dst)) || (b.contains(&src) && a.contains(&dst))
        };
        self.windows
            .iter()
            .filter(|w| w.from <= now && now < w.until)
            .any(|w| w.flows.iter().any(covered))
            .then_some(dscp)
    }

    /// Whether a datagram of `len` bytes in `lane` may go to `remote` now (nothing ahead of
    /// it waits and the link has room); if so, it is counted as sent.
    pub(crate) fn send_now(
        &mut self,
        now: Instant,
        lane: Lane,
        len: usize,
        remote: SocketAddr,
    ) -> bool {
        let waiting_ahead = self.queues[..=lane as usize].iter().any(|q| !q.is_empty());
        if waiting_ahead || self.link_free_at > now + BURST {
            return false;
        }
        self.link_free_at =
            self.link_free_at.max(now) + wire_time(wire_bytes(len, remote), self.capacity_bps);
        true
    }

    /// Queues a datagram that may not go now; `false` (and counted) when its lane is full.
    pub(crate) fn enqueue(
        &mut self,
        now: Instant,
        lane: Lane,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let wire_bytes = wire_bytes(datagram.len(), remote);
        let rate = match lane {
            Lane::Reserved => self.reserved_rate(now).max(1),
            Lane::Control | Lane::Bulk => self.capacity_bps,
        };
        let limit = (rate / 8).saturating_mul(QUEUE_TIME.as_millis() as u64) / 1_000;
        let i = lane as usize;
        if self.queued_bytes[i] + wire_bytes > limit.max(MIN_QUEUE_BYTES) {
            self.counters.dropped += 1;
            return false;
        }
        self.queued_bytes[i] += wire_bytes;
        self.counters.queued += 1;
        self.queues[i].push_back(Queued {
            lane,
            wire_bytes,
            local,
            remote,
            datagram: datagram.to_vec(),
        });
        true
    }

    /// Sends (through `send`) every queued datagram whose turn has come by `now`, highest
    /// lane first.
    pub(crate) fn release(
        &mut self,
        now: Instant,
        mut send: impl FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        while self.link_free_at <= now + BURST {
            let Some(queue) = self.queues.iter_mut().find(|q| !q.is_empty()) else {
                break;
            };
            let Some(next) = queue.pop_front() else {
                break;
            };
            self.queued_bytes[next.lane as usize] -= next.wire_bytes;
            self.link_free_at =
                self.link_free_at.max(now) + wire_time(next.wire_bytes, self.capacity_bps);
            send(next.local, next.remote, &next.datagram);
        }
    }

    /// When [`release`](Self::release) next has something to send.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.queues.iter().any(|q| !q.is_empty()).then(|| {
            self.link_free_at
                .checked_sub(BURST)
                .unwrap_or(self.link_free_at)
        })
    }
}

/// A datagram's size on the wire: with its IP and UDP headers.
fn wire_bytes(len: usize, remote: SocketAddr) -> u64 {
    let headers = if remote.is_ipv4() { 20 + 8 } else { 40 + 8 };
    len as u64 + headers
}

/// Source, destination and ports of a UDP packet (IPv4 without fragments, or IPv6 with UDP
/// as the first header).
fn udp_endpoints(packet: &[u8]) -> Option<(IpAddr, IpAddr, u16, u16)> {
    let version = packet.first()? >> 4;
    let (src, dst, udp) = match version {
        4 => {
            let header = usize::from(packet.first()? & 0x0f) * 4;
            let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            if *packet.get(9)? != 17 || header < 20 || fragment != 0 {
                return None;
            }
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), packet.get(header..)?)
        }
        6 => {
            if *packet.get(6)? != 17 {
                return None;
            }
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), packet.get(40..)?)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    Some((src, dst, sport, dport))
}

/// Sets a packet's DSCP (IPv4: and fixes the header checksum); ECN bits are kept.
pub(crate) fn mark(packet: &mut [u8], dscp: u8) {
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let header = usize::from(packet[0] & 0x0f) * 4;
            if header < 20 || packet.len() < header {
                return;
            }
            packet[1] = (dscp << 2) | (packet[1] & 0x03);
            packet[10] = 0;
            packet[11] = 0;
            let sum = checksum(&packet[..header]);
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        Some(6) if packet.len() >= 40 => {
            let class = (dscp << 2) | ((packet[1] >> 4) & 0x03);
            packet[0] = 0x60 | (class >> 4);
            packet[1] = (class << 4) | (packet[1] & 0x0f);
        }
        _ => {}
    }
}

/// A marked copy of a packet that is not ours to change in place.
pub(crate) fn marked(packet: &[u8], dscp: u8) -> Vec<u8> {
    let mut copy = packet.to_vec();
    mark(&mut copy, dscp);
    copy
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The DSCP of a packet (for tests and the lab): IPv4's TOS or IPv6's traffic class, upper
/// six bits.
pub fn dscp_of(packet: &[u8]) -> Option<u8> {
    match packet.first()? >> 4 {
        4 => Some(packet.get(1)? >> 2),
        6 => Some(((packet.first()? & 0x0f) << 2) | (packet.get(1)? >> 6)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant; nothing waits on it
mod tests {
    use super::*;
    use crate::control::Reservation;

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(28)];
        p[0] = 0x45;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    const MCU: [u8; 4] = [10, 0, 1, 10];
    const TERMINAL: [u8; 4] = [10, 14, 1, 10];

    fn shaper(now: Instant, wall: SystemTime, rate_kbps: u64, capacity_kbps: u64) -> LinkShaper {
        let unix = wall.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let qos = LinkQos {
            capacity_kbps: Some(capacity_kbps),
            reservations: vec![Reservation {
                booking: 7,
                from_unix_s: unix - 10,
                until_unix_s: unix + 60,
                rate_kbps,
                flows: vec![[
                    "10.0.1.0/24".parse().unwrap(),
                    "10.14.1.0/24".parse().unwrap(),
                ]],
            }],
        };
        LinkShaper::new(&qos, &ConferenceMedia::default(), now, wall).unwrap()
    }

    fn remote() -> SocketAddr {
        "127.0.0.2:51820".parse().unwrap()
    }

    #[test]
    fn media_of_the_reserved_sites_is_marked_by_kind_and_the_rest_is_not() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut s = shaper(now, wall, 2_000, 10_000);
        assert_eq!(
            s.classify(now, &udp(TERMINAL, MCU, 17_002, 17_002, 1_200)),
            (Lane::Reserved, Some(DSCP_AF41))
        );
        assert_eq!(
            s.classify(now, &udp(MCU, TERMINAL, 16_400, 16_400, 200)),
            (Lane::Reserved, Some(DSCP_EF))
        );
        // Another site, another port, or TCP: not the conference's.
        assert_eq!(
            s.classify(now, &udp([10, 15, 1, 10], MCU, 17_002, 17_002, 1_200))
                .1,
            None
        );
        assert_eq!(
            s.classify(now, &udp(TERMINAL, MCU, 40_000, 5_060, 1_200)).1,
            None
        );
        let mut tcp = udp(TERMINAL, MCU, 17_002, 17_002, 1_200);
        tcp[9] = 6;
        assert_eq!(s.classify(now, &tcp).1, None);
        // After the window, nothing is the conference's and nothing is shaped.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            s.classify(later, &udp(TERMINAL, MCU, 17_002, 17_002, 1_200))
                .1,
            None
        );
        assert!(!s.active(later));
    }

    #[test]
    fn media_beyond_the_reserved_rate_waits_with_the_bulk() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // 2 Mbit/s: a 10 ms bucket holds 2,500 bytes, so 3,000 (the floor) — two 1,200s.
        let mut s = shaper(now, wall, 2_000, 10_000);
        let packet = udp(TERMINAL, MCU, 17_002, 17_002, 1_200);
        s.tokens = 3_000.0;
        assert_eq!(s.classify(now, &packet).0, Lane::Reserved);
        assert_eq!(s.classify(now, &packet).0, Lane::Reserved);
        assert_eq!(s.classify(now, &packet).0, Lane::Bulk);
        // 4.8 ms at 2 Mbit/s refills 1,200 bytes.
        assert_eq!(
            s.classify(now + Duration::from_micros(4_800), &packet).0,
            Lane::Reserved
        );
        assert_eq!(s.counters(now).media_packets, 4);
        assert_eq!(s.counters(now).reserved_packets, 3);
    }

    #[test]
    fn the_shaper_holds_the_link_to_its_capacity_and_reserved_media_goes_first() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut s = shaper(now, wall, 2_000, 10_000);
        let local: SocketAddr = "127.0.0.1:51820".parse().unwrap();
        // Bulk fills the 2 ms burst at 10 Mbit/s (2,500 bytes: two 1,472-byte datagrams on
        // the wire), then queues.
        let bulk = vec![0u8; 1_444];
        let mut sent_now = 0;
        for _ in 0..10 {
            if s.send_now(now, Lane::Bulk, bulk.len(), remote()) {
                sent_now += 1;
            } else {
                assert!(s.enqueue(now, Lane::Bulk, local, remote(), &bulk));
            }
        }
        assert_eq!(
            sent_now, 2,
            "the first datagram goes at once, the second within the burst"
        );
        // Reserved media may not overtake what is on the wire, but goes before queued bulk.
        assert!(!s.send_now(now, Lane::Reserved, 200, remote()));
        assert!(s.enqueue(now, Lane::Reserved, local, remote(), &[1u8; 200]));
        let mut order = Vec::new();
        let mut at = now;
        while let Some(next) = s.next_release() {
            at = at.max(next);
            s.release(at, |_, _, d| order.push(d.len()));
        }
        assert_eq!(order.first(), Some(&200));
        assert_eq!(order.len(), 9);
        // Ten 1,472-byte datagrams and one 228-byte one on the wire at 10 Mbit/s: never
        // faster than the link.
        let wire = wire_time(10 * 1_472 + 228, 10_000_000);
        assert!(
            s.link_free_at - now >= wire,
            "{:?} < {wire:?}",
            s.link_free_at - now
        );
        assert!(s.link_free_at - now <= wire + Duration::from_micros(1));
        // The last one left when the wire ahead of it was within the burst.
        let last_left = now + wire - wire_time(1_472, 10_000_000) - BURST;
        assert!(
            at >= last_left && at <= last_left + Duration::from_micros(1),
            "{:?}",
            at - now
        );
        assert!(!s.active(at) || s.reserved_rate(at) > 0);
    }

    #[test]
    fn a_full_bulk_queue_drops_at_the_tail_and_counts() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // 1 Mbit/s: 50 ms is 6,250 bytes, under the 24,000-byte floor.
        let mut s = shaper(now, wall, 500, 1_000);
        let local: SocketAddr = "127.0.0.1:51820".parse().unwrap();
        let mut accepted = 0;
        for _ in 0..40 {
            if !s.send_now(now, Lane::Bulk, 1_000, remote())
                && s.enqueue(now, Lane::Bulk, local, remote(), &[0u8; 1_000])
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 23, "24,000 bytes of 1,028-byte datagrams");
        assert_eq!(s.counters(now).dropped, 40 - 1 - 23);
    }

    #[test]
    fn marking_keeps_a_valid_ipv4_header() {
        let mut packet = udp(TERMINAL, MCU, 17_002, 17_002, 300);
        packet[1] = 0x01; // ECN ECT(1)
        mark(&mut packet, DSCP_AF41);
        assert_eq!(dscp_of(&packet), Some(DSCP_AF41));
        assert_eq!(packet[1] & 0x03, 0x01, "ECN kept");
        assert_eq!(checksum(&packet[..20]), 0, "a valid header sums to zero");
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[1] = 0x12; // ECN 1 in the traffic class, flow label bits kept
        mark(&mut v6, DSCP_EF);
        assert_eq!(dscp_of(&v6), Some(DSCP_EF));
        assert_eq!(v6[0] >> 4, 6);
        assert_eq!(v6[1] & 0x0f, 0x02);
    }

    #[test]
    fn truncated_and_odd_packets_are_never_media_and_never_panic() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut s = shaper(now, wall, 2_000, 10_000);
        let full = udp(TERMINAL, MCU, 17_002, 17_002, 40);
        for len in 0..full.len() {
            let (lane, _) = s.classify(now, &full[..len]);
            if len < 24 {
                assert_eq!(lane, Lane::Bulk);
            }
            let mut copy = full[..len].to_vec();
            mark(&mut copy, DSCP_EF);
        }
    }
}
