//! The responder's anti-replay window over probe nonces, so a recorded probe never draws a
//! second reply (and the reply nonce, which equals the probe nonce, is never reused).
//!
//! The shape of WireGuard's and IPsec's sliding window (RFC 6479 without the ring buffer):
//! the highest nonce accepted so far plus a bitmap of the [`WINDOW`] nonces below it, so
//! probes reordered by the underlay are still answered.

/// How many nonces below the highest one are still accepted if not seen before.
pub(super) const WINDOW: u64 = 64;

/// Which probe nonces a session has already answered.
#[derive(Debug, Default)]
pub(super) struct ReplayWindow {
    /// One more than the highest nonce accepted; 0 while none was.
    top: u64,
    /// Bit `i` set: nonce `top - 1 - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `nonce` is new: above the window, or inside it and not yet seen.
    pub(super) fn is_fresh(&self, nonce: u64) -> bool {
        if nonce == u64::MAX {
            return false; // reserved by Noise; `top` could not go above it
        }
        if nonce >= self.top {
            return true;
        }
        let age = self.top - 1 - nonce;
        age < WINDOW && self.seen & (1 << age) == 0
    }

    /// Records `nonce` as accepted; call only after it authenticated and [`Self::is_fresh`].
    pub(super) fn accept(&mut self, nonce: u64) {
        if nonce >= self.top {
            let shift = nonce - self.top + 1;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = nonce.saturating_add(1);
        } else {
            let age = self.top - 1 - nonce;
            if age < WINDOW {
                self.seen |= 1 << age;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nonce_is_accepted_once_in_any_order_inside_the_window() {
        let mut window = ReplayWindow::default();
        for nonce in [0, 2, 1, 5, 3, 70, 10, 69] {
            assert!(window.is_fresh(nonce), "{nonce}");
            window.accept(nonce);
            assert!(!window.is_fresh(nonce), "{nonce} twice");
        }
        assert!(window.is_fresh(8), "inside the window, never seen");
        assert!(!window.is_fresh(6), "below the window");
        assert!(window.is_fresh(71));
        window.accept(1000);
        assert!(!window.is_fresh(70));
        assert!(window.is_fresh(999));
    }

    #[test]
    fn the_largest_nonces_do_not_overflow() {
        let mut window = ReplayWindow::default();
        window.accept(u64::MAX - 1);
        assert!(!window.is_fresh(u64::MAX - 1));
        assert!(!window.is_fresh(u64::MAX));
        assert!(window.is_fresh(u64::MAX - 2));
    }
}
