// SPDX-License-Identifier: GPL-2.0

//! A re-armable delayed work item (the 6.12 `kernel` crate has none).
//!
//! RTRS heartbeats need "run this in 5 s, then again": a [`Timer`] calls its
//! handler's [`Tick::tick`] on an [`OwnedQueue`] each time it is armed with
//! [`Timer::arm`], in process context.

use crate::bindings;
use crate::wq::OwnedQueue;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// What a [`Timer`] runs.
pub trait Tick: Send + Sync + 'static {
    /// Runs in process context on the timer's queue.  It may re-arm the
    /// timer; it must not drop it (dropping waits for this call).
    fn tick(&self);
}

/// A delayed work item calling `T::tick`.
///
/// Holds `T` (an `Arc`) for as long as it exists, so a handler that refers
/// back to the timer's owner makes a cycle that the owner breaks by dropping
/// the timer (from any other context than the tick).
///
/// # Invariants
///
/// `d` is an `rrs_dwork` whose context is `ctx` (from `Arc::into_raw`) and
/// whose function is `trampoline::<T>`; freed in `drop` after it was
/// cancelled synchronously.
pub struct Timer<T: Tick> {
    d: NonNull<bindings::rrs_dwork>,
    ctx: *const T,
    wq: Arc<OwnedQueue>,
}

// SAFETY: the work item may be armed and cancelled from any thread; `T` is
// `Send + Sync`.
unsafe impl<T: Tick> Send for Timer<T> {}
// SAFETY: as above.
unsafe impl<T: Tick> Sync for Timer<T> {}

/// The work function of a [`Timer<T>`]'s `rrs_dwork`, in process context.
///
/// # Safety
///
/// `ctx` must be the `Arc<T>` context of a [`Timer<T>`], which keeps it until
/// after it cancelled this work synchronously.
unsafe extern "C" fn trampoline<T: Tick>(ctx: *mut core::ffi::c_void) {
    // SAFETY: `ctx` is the `Arc<T>` the timer holds until after it cancelled
    // this work synchronously, so it is alive while this runs.
    let t = unsafe { &*(ctx as *const T) };
    t.tick();
}

impl<T: Tick> Timer<T> {
    /// A timer running `handler` on `wq`, not armed.
    pub fn new(handler: Arc<T>, wq: &Arc<OwnedQueue>) -> Result<Self> {
        let ctx = Arc::into_raw(handler);
        // SAFETY: the trampoline matches `ctx`'s type.
        let d = unsafe { bindings::rrs_dwork_new(Some(trampoline::<T>), ctx.cast_mut().cast()) };
        match NonNull::new(d) {
            // INVARIANT: `d` was created with `ctx` and `trampoline::<T>`.
            Some(d) => Ok(Self {
                d,
                ctx,
                wq: wq.clone(),
            }),
            None => {
                // SAFETY: from `into_raw` above, not handed out.
                drop(unsafe { Arc::from_raw(ctx) });
                Err(ENOMEM)
            }
        }
    }

    /// Runs the handler once, `ms` milliseconds from now (no effect if it
    /// is already armed).
    pub fn arm(&self, ms: u32) {
        // SAFETY: live work item and queue (the timer holds the queue).
        unsafe { bindings::rrs_dwork_schedule(self.d.as_ptr(), self.wq_ptr(), ms) };
    }

    fn wq_ptr(&self) -> *mut bindings::workqueue_struct {
        self.wq.raw()
    }
}

impl<T: Tick> Drop for Timer<T> {
    fn drop(&mut self) {
        // SAFETY: live work item; after the synchronous cancel nothing runs
        // it or re-arms it (re-arming needs `&self`, i.e. a tick, which the
        // cancel waited for: a tick re-arming during the cancel is handled by
        // cancel_delayed_work_sync).
        unsafe {
            bindings::rrs_dwork_cancel_sync(self.d.as_ptr());
            bindings::rrs_dwork_free(self.d.as_ptr());
        }
        // SAFETY: from `into_raw` in `new`; no tick can run any more.
        drop(unsafe { Arc::from_raw(self.ctx) });
    }
}
