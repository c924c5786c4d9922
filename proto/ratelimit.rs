// SPDX-License-Identifier: GPL-2.0

//! A lock-free log rate limiter for lines a peer can trigger.
//!
//! A hostile peer can make a receiver log on every message it sends; with
//! one line per message the kernel log becomes the peer's amplifier.  Each
//! call site gets one [`RateLimit`] (a `static`), which lets `BURST` lines
//! through per `INTERVAL_MS` window and counts the rest; the first line of
//! the next window reports how many were suppressed.
//!
//! Locking: none; two atomics.  A race at a window boundary can let one
//! extra line through or lose a count, which is harmless for logging.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Window length (upstream's `DEFAULT_RATELIMIT_INTERVAL`, 5 s).
pub const INTERVAL_MS: u64 = 5000;
/// Lines per window (upstream's `DEFAULT_RATELIMIT_BURST`).
pub const BURST: u32 = 10;

/// One call site's state.
pub struct RateLimit {
    /// Start of the current window, in ms (+1, so that 0 means "never").
    start: AtomicU64,
    /// Calls in the current window.
    calls: AtomicU32,
}

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; `suppressed` lines of the previous window were dropped.
    Print {
        /// Lines dropped in the previous window.
        suppressed: u32,
    },
    /// Drop it.
    Drop,
}

impl RateLimit {
    /// A limiter that has never printed.
    pub const fn new() -> Self {
        Self {
            start: AtomicU64::new(0),
            calls: AtomicU32::new(0),
        }
    }

    /// Decides about one line at time `now_ms` (any monotonic clock).
    pub fn check(&self, now_ms: u64) -> Verdict {
        let stamp = now_ms.saturating_add(1);
        let start = self.start.load(Ordering::Acquire);
        if start == 0 || stamp.saturating_sub(start) >= INTERVAL_MS {
            if self
                .start
                .compare_exchange(start, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let prev = self.calls.swap(1, Ordering::AcqRel);
                return Verdict::Print {
                    suppressed: prev.saturating_sub(BURST),
                };
            }
        }
        // Saturating: a flood of calls must not wrap the counter.
        let n = self
            .calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(1))
            })
            .unwrap_or(u32::MAX);
        if n < BURST {
            Verdict::Print { suppressed: 0 }
        } else {
            Verdict::Drop
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_drop_then_report() {
        let rl = RateLimit::new();
        for i in 0..BURST {
            assert_eq!(rl.check(1000 + i as u64), Verdict::Print { suppressed: 0 });
        }
        for _ in 0..25 {
            assert_eq!(rl.check(2000), Verdict::Drop);
        }
        assert_eq!(
            rl.check(1000 + INTERVAL_MS + 1),
            Verdict::Print { suppressed: 25 }
        );
        assert_eq!(
            rl.check(1000 + INTERVAL_MS + 2),
            Verdict::Print { suppressed: 0 }
        );
    }

    #[test]
    fn time_zero_and_wrap() {
        let rl = RateLimit::new();
        assert_eq!(rl.check(0), Verdict::Print { suppressed: 0 });
        assert_eq!(rl.check(u64::MAX), Verdict::Print { suppressed: 0 });
        assert_eq!(rl.check(u64::MAX), Verdict::Print { suppressed: 0 });
    }
}
