//! What a stream really takes on a link: the nominal bitrate plus packet overhead.
//!
//! A terminal set to 2 Mbit/s sends 2 Mbit/s of *media*. On the wire each RTP packet also
//! carries its own IP, UDP and RTP headers, the encoder bursts above its average on key
//! frames, and the overlay wraps every packet once more in WireGuard. Reserving the nominal
//! rate would leave a full link dropping video on every key frame, so the scheduler
//! reserves:
//!
//! ```text
//! reserved = nominal × 1.2 × (1 + tunnel bytes / average packet)
//! ```
//!
//! - **× 1.2** covers the inner IP/UDP/RTP headers (40 bytes, under 4 % of an 1,100-byte
//!   packet) and bursts (key frames, FEC, audio beside video) above the encoder's average.
//! - **tunnel bytes** are what WireGuard adds to every packet: the outer IP header, the
//!   outer UDP header, and the 32 bytes of a WireGuard data message (message type and
//!   reserved 4, receiver index 4, counter 8, Poly1305 tag 16):
//!
//!   | underlay | outer IP | outer UDP | WireGuard | tunnel bytes |
//!   | --- | ---: | ---: | ---: | ---: |
//!   | IPv4 | 20 | 8 | 32 | **60** |
//!   | IPv6 | 40 | 8 | 32 | **80** |
//!
//!   WireGuard also pads the plaintext to a multiple of 16 bytes (7.5 bytes on average);
//!   that is inside the 1.2 margin.
//! - **average packet** is the inner packet size. H.264/H.265 video over RTP averages
//!   about 1,100 bytes (packets are filled up to the path MTU, key frames split into many
//!   full ones); audio packets are small, which is why audio pays much more per bit.
//!
//! The whole factor by average packet size:
//!
//! | average packet | IPv4 underlay | IPv6 underlay |
//! | ---: | ---: | ---: |
//! | 200 B (audio) | × 1.560 | × 1.680 |
//! | 400 B | × 1.380 | × 1.440 |
//! | 700 B | × 1.303 | × 1.337 |
//! | 1,100 B (video) | × 1.265 | × 1.287 |
//! | 1,400 B | × 1.251 | × 1.269 |
//!
//! So a 2 Mbit/s HD conference reserves 2,531 kbit/s per stream over an IPv4 underlay:
//! about × 1.26, as the issue puts it. The arithmetic is done in integers and rounded up,
//! so a reservation is never a kilobit short.

use serde::{Deserialize, Serialize};
use topology::Kbps;

/// The margin for inner IP/UDP/RTP headers and bursts, as a fraction: 6/5 = 1.2.
const MARGIN: (u128, u128) = (6, 5);

/// Bytes of a WireGuard data message besides the payload: type 4, receiver 4, counter 8,
/// Poly1305 tag 16.
pub const WIREGUARD_DATA_BYTES: u32 = 32;

/// The default average inner packet size of conference video, in bytes.
pub const VIDEO_AVERAGE_PACKET: u32 = 1_100;

/// Which IP version the underlay (the outer packets) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Underlay {
    /// IPv4 outer header: 20 bytes.
    #[default]
    Ipv4,
    /// IPv6 outer header: 40 bytes.
    Ipv6,
}

impl Underlay {
    /// Bytes the tunnel adds to each packet: outer IP + outer UDP + WireGuard.
    pub const fn tunnel_bytes(self) -> u32 {
        let ip = match self {
            Underlay::Ipv4 => 20,
            Underlay::Ipv6 => 40,
        };
        ip + 8 + WIREGUARD_DATA_BYTES
    }
}

/// How the reserved rate of a stream is derived from its nominal bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Overhead {
    /// The average inner packet size in bytes (at least 1).
    pub average_packet: u32,
    /// The underlay's IP version.
    pub underlay: Underlay,
}

impl Default for Overhead {
    fn default() -> Self {
        Overhead {
            average_packet: VIDEO_AVERAGE_PACKET,
            underlay: Underlay::Ipv4,
        }
    }
}

impl Overhead {
    /// The rate to reserve for one stream of `nominal` bitrate, rounded up; `None` only
    /// when the result does not fit in 64 bits or the average packet is zero.
    pub fn reserve(&self, nominal: Kbps) -> Option<Kbps> {
        let packet = u128::from(self.average_packet);
        if packet == 0 {
            return None;
        }
        let wire = packet + u128::from(self.underlay.tunnel_bytes());
        let numerator = u128::from(nominal.0) * MARGIN.0 * wire;
        let denominator = MARGIN.1 * packet;
        u64::try_from(numerator.div_ceil(denominator))
            .ok()
            .map(Kbps)
    }

    /// The whole factor, for display: `1.2 × (1 + tunnel / packet)`.
    pub fn factor(&self) -> f64 {
        let packet = f64::from(self.average_packet.max(1));
        1.2 * (1.0 + f64::from(self.underlay.tunnel_bytes()) / packet)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tunnel_bytes_are_those_of_a_wireguard_data_message() {
        assert_eq!(Underlay::Ipv4.tunnel_bytes(), 60);
        assert_eq!(Underlay::Ipv6.tunnel_bytes(), 80);
    }

    #[test]
    fn the_documented_table_is_what_the_formula_gives() {
        let rows = [
            (200, 1.560, 1.680),
            (400, 1.380, 1.440),
            (700, 1.303, 1.337),
            (1_100, 1.265, 1.287),
            (1_400, 1.251, 1.269),
        ];
        for (packet, v4, v6) in rows {
            for (underlay, want) in [(Underlay::Ipv4, v4), (Underlay::Ipv6, v6)] {
                let overhead = Overhead {
                    average_packet: packet,
                    underlay,
                };
                let got = overhead.factor();
                assert!((got - want).abs() < 0.0005, "{packet} {underlay:?}: {got}");
            }
        }
    }

    #[test]
    fn video_reserves_about_one_and_a_quarter_times_nominal_rounded_up() {
        let video = Overhead::default();
        assert_eq!(video.reserve(Kbps(2_000)), Some(Kbps(2_531)));
        assert_eq!(video.reserve(Kbps(768)), Some(Kbps(972)));
        assert_eq!(video.reserve(Kbps(4_000)), Some(Kbps(5_062)));
        assert_eq!(video.reserve(Kbps(0)), Some(Kbps(0)));
        assert_eq!(video.reserve(Kbps(u64::MAX)), None);
        let broken = Overhead {
            average_packet: 0,
            ..video
        };
        assert_eq!(broken.reserve(Kbps(1)), None);
    }
}
