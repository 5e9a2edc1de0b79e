//! The underlay's random draws: SplitMix64, one stream per link direction.
//!
//! One stream per direction, seeded from the underlay's seed and the direction, so the losses
//! and jitter one link sees do not change when traffic on another link does. SplitMix64 is
//! small, fast and statistically good enough for loss and jitter; it is not for secrets.

/// A SplitMix64 generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// The stream for stream number `stream` of the underlay seeded with `seed`.
    pub(crate) fn stream(seed: u64, stream: u64) -> SplitMix64 {
        let mut mixer = SplitMix64(seed ^ stream.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA));
        SplitMix64(mixer.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) by multiply-shift (bias below 2⁻⁶⁴·n).
    pub(crate) fn below(&mut self, n: u128) -> u128 {
        // n ≤ 2·MAX_DELAY in ns ≈ 7.2e12, so the product fits in 128 bits.
        (u128::from(self.next_u64()) * n) >> 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::stream(1, 0);
                move |_| r.next_u64()
            })
            .collect();
        let mut again = SplitMix64::stream(1, 0);
        let mut other = SplitMix64::stream(1, 1);
        assert!(a.iter().all(|&x| x == again.next_u64()));
        assert!(a.iter().all(|&x| x != other.next_u64()));
    }

    #[test]
    fn draws_stay_in_range() {
        let mut r = SplitMix64::stream(7, 3);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
    }
}
