// SPDX-License-Identifier: GPL-2.0

//! One way to wait for a condition under a lock, for setup and teardown.
//!
//! The 6.12 [`CondVar`] has no uninterruptible wait with a timeout, and its
//! interruptible one returns at once while a signal is pending: a loop around
//! it then spins (and a loop that counts its rounds as elapsed time times out
//! early).  [`until`] measures real time and, while a signal is pending,
//! sleeps in short uninterruptible steps instead.

use kernel::prelude::*;
use kernel::sync::lock::{Backend, Guard};
use kernel::sync::{CondVar, CondVarTimeoutResult};
use kernel::time::{ktime_ms_delta, msecs_to_jiffies, Ktime};
use support::code::etimedout;

/// Longest single sleep: a notification missed by a waiter that had just
/// checked (there is none with the lock held, but a waker that does not take
/// the lock can race) costs at most this.
const STEP_MS: i64 = 1000;
/// Sleep while a signal is pending (with the lock held: our waits are in
/// setup and teardown, whose wakers wait this long at most for the lock).
const SIGNAL_STEP_MS: u32 = 10;

/// Waits on `cv` (with `guard` held, released while asleep) until `done`
/// says so, or `timeout_ms` passed (`None`: no limit): `ETIMEDOUT` then.
/// Process context.  Signals neither end the wait nor make it spin.
pub fn until<T: ?Sized, B: Backend>(
    cv: &CondVar,
    guard: &mut Guard<'_, T, B>,
    timeout_ms: Option<u32>,
    mut done: impl FnMut(&mut T) -> bool,
) -> Result {
    let start = Ktime::ktime_get();
    loop {
        if done(&mut **guard) {
            return Ok(());
        }
        let left = match timeout_ms {
            Some(t) => {
                let left = (t as i64).saturating_sub(ktime_ms_delta(Ktime::ktime_get(), start));
                if left <= 0 {
                    return Err(etimedout());
                }
                left.min(STEP_MS)
            }
            None => STEP_MS,
        };
        if let CondVarTimeoutResult::Signal { .. } =
            cv.wait_interruptible_timeout(guard, msecs_to_jiffies(left as u32))
        {
            support::msleep(SIGNAL_STEP_MS);
        }
    }
}
