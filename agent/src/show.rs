//! `jinbao-agent show`: an agent's [`Status`] as text, in the habits of `wg show`.
//!
//! Node engineers know `wg show`; the agent runs several WireGuard instances (one per plane)
//! with more to tell per peer (role, which underlay path, probe health) and a zone filter
//! beside them. This module prints all of that in the layout they already read: an
//! `interface:` block per plane, then a `peer:` block per peer, indented `key: value` lines,
//! sizes in B/KiB/MiB/GiB/TiB and ages as "1 minute, 5 seconds ago", as `wg` prints them.
//!
//! The output is a pure function of the status: no clock is read (the status carries ages,
//! not instants), so the same status always prints the same text. The caller may pass the
//! time the snapshot was taken, already formatted, for a header line.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::control::{PathChoice, PeerHealth, PeerStatus, PlaneStatus, Status};

/// The status as text. `now_text`, when given, is printed as the first line (`as of: …`);
/// it is whatever the caller formatted, so this function stays clock-free.
pub fn render(status: &Status, now_text: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(now) = now_text {
        line(&mut out, 0, "as of", now);
    }
    if status.planes.is_empty() {
        if let Some(node) = status.node {
            line(&mut out, 0, "node", node);
        }
        line(&mut out, 0, "config version", status.version);
        line(&mut out, 0, "interfaces", "none");
    }
    for (i, plane) in status.planes.iter().enumerate() {
        if i > 0 || now_text.is_some() {
            out.push('\n');
        }
        render_plane(&mut out, status, plane);
    }
    out
}

fn render_plane(out: &mut String, status: &Status, plane: &PlaneStatus) {
    line(out, 0, "interface", plane.plane);
    if let Some(node) = status.node {
        line(out, 1, "node", node);
    }
    line(out, 1, "public key", plane.public_key);
    line(out, 1, "listening port", listening(plane.listen));
    line(out, 1, "config version", status.version);
    for peer in &plane.peers {
        out.push('\n');
        render_peer(out, peer);
    }
    for (node, reason) in &plane.refused {
        out.push('\n');
        line(out, 0, "refused peer", node);
        line(out, 1, "reason", reason);
    }
    out.push('\n');
    line(out, 0, "filter", plane.plane);
    for rule in &plane.rules {
        let counts = format!(
            "{} allowed, {} passed",
            count(rule.allowed_flows, "flow"),
            count(rule.allowed_packets, "packet")
        );
        line(out, 1, &format!("rule {}", rule.rule), counts);
    }
    let reasons: Vec<String> = plane
        .denied
        .iter()
        .filter(|(_, packets)| *packets > 0)
        .map(|(reason, packets)| format!("{reason} {packets}"))
        .collect();
    let denied = count(plane.default_denied, "packet");
    let denied = if reasons.is_empty() {
        denied
    } else {
        format!("{denied} ({})", reasons.join(", "))
    };
    line(out, 1, "default deny", denied);
    line(out, 1, "malformed", count(plane.malformed, "packet"));
    line(out, 1, "unroutable", count(plane.unroutable, "packet"));
}

fn render_peer(out: &mut String, peer: &PeerStatus) {
    line(
        out,
        0,
        "peer",
        format_args!("{} ({})", peer.node, peer.role),
    );
    line(out, 1, "public key", peer.public_key);
    if let Some(endpoint) = peer.endpoint {
        let path = match peer.path {
            PathChoice::Primary => "primary path",
            PathChoice::Backup => "backup path",
        };
        line(out, 1, "endpoint", format_args!("{endpoint} ({path})"));
    }
    let allowed: Vec<String> = peer.allowed.iter().map(ToString::to_string).collect();
    let allowed = if allowed.is_empty() {
        "(none)".to_owned()
    } else {
        allowed.join(", ")
    };
    line(out, 1, "allowed ips", allowed);
    if let Some(age) = peer.handshake_age {
        line(out, 1, "latest handshake", ago(age));
    }
    if peer.rx_bytes > 0 || peer.tx_bytes > 0 {
        let transfer = format!(
            "{} received, {} sent",
            bytes(peer.rx_bytes),
            bytes(peer.tx_bytes)
        );
        line(out, 1, "transfer", transfer);
    }
    line(out, 1, "health", health(peer));
    if let Some(c) = &peer.conference {
        let conference = format!(
            "{} kbit/s reserved now; {} media packets, {} ahead of other traffic; shaper queued {}, dropped {}",
            c.reserved_kbps, c.media_packets, c.reserved_packets, c.queued, c.dropped
        );
        line(out, 1, "conference", conference);
    }
}

/// `  key: value\n` at `indent` levels of two spaces.
fn line(out: &mut String, indent: usize, key: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{:width$}{key}: {value}", "", width = indent * 2);
}

/// The port, and the address when the instance is bound to one.
fn listening(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        listen.port().to_string()
    } else {
        format!("{} (on {})", listen.port(), listen.ip())
    }
}

/// `up, rtt 12.5 ms, loss 0.0%, jitter 800 µs`; no rtt before the first answer.
fn health(peer: &PeerStatus) -> String {
    let state = match peer.health {
        PeerHealth::Unknown => "unknown",
        PeerHealth::Up => "up",
        PeerHealth::Down => "down",
    };
    let mut text = state.to_owned();
    if let Some(rtt) = peer.rtt {
        let _ = write!(text, ", rtt {}", duration(rtt));
    }
    let _ = write!(
        text,
        ", loss {:.1}%, jitter {}",
        peer.loss * 100.0,
        duration(peer.jitter)
    );
    text
}

/// A short duration for rtt and jitter: µs under a millisecond, ms under a second, else s.
fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `n things`, singular for one.
fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A size as `wg` prints it: bytes below a KiB, else two decimals in the largest unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.2} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

/// An age as `wg` prints it: `1 hour, 2 minutes, 3 seconds ago`, or `Now`.
pub fn ago(age: Duration) -> String {
    const PARTS: [(u64, &str); 5] = [
        (365 * 24 * 3600, "year"),
        (24 * 3600, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut left = age.as_secs();
    if left == 0 {
        return "Now".to_owned();
    }
    let mut parts = Vec::new();
    for (size, unit) in PARTS {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(count(n, unit));
        }
    }
    format!("{} ago", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_wg() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 << 20), "5.00 MiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(bytes(2 << 40), "2.00 TiB");
        assert_eq!(bytes(u64::MAX), "16777216.00 TiB");
    }

    #[test]
    fn ages_read_like_wg() {
        assert_eq!(ago(Duration::ZERO), "Now");
        assert_eq!(ago(Duration::from_millis(999)), "Now");
        assert_eq!(ago(Duration::from_secs(1)), "1 second ago");
        assert_eq!(ago(Duration::from_secs(65)), "1 minute, 5 seconds ago");
        assert_eq!(ago(Duration::from_secs(7_200)), "2 hours ago");
        assert_eq!(
            ago(Duration::from_secs(366 * 86_400 + 61)),
            "1 year, 1 day, 1 minute, 1 second ago"
        );
        assert!(ago(Duration::MAX).starts_with("584942417355 years, "));
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration(Duration::from_micros(150)), "150 µs");
        assert_eq!(duration(Duration::from_micros(12_500)), "12.5 ms");
        assert_eq!(duration(Duration::from_millis(1_500)), "1.50 s");
    }

    #[test]
    fn an_empty_status_says_so() {
        let text = render(&Status::default(), None);
        assert_eq!(text, "config version: 0\ninterfaces: none\n");
    }
}
