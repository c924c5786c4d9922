// SPDX-License-Identifier: GPL-2.0

//! A box that readers use without a lock, under RCU (the 6.12 `kernel`
//! crate has no RCU).
//!
//! For objects published once and torn down once while other CPUs use them
//! on a hot path: a path's connections, which every request posts on.  A
//! reader costs `rcu_read_lock()` and one load, and writes no shared cache
//! line; the teardown waits one grace period.

use crate::bindings;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// An optional `KBox<T>` that readers borrow inside an RCU read-side
/// critical section ([`RcuBox::read`]), published with [`RcuBox::publish`]
/// and taken back with [`RcuBox::take_all`], which waits for the readers.
///
/// # Invariants
///
/// `ptr` is null or, with its low bit ([`TAG`]) cleared, comes from
/// `KBox::into_raw` and is owned by `self`; a tagged pointer is being
/// unpublished (readers see none).  It is freed only a grace period after
/// it was tagged (or when `self` is dropped, which no reader can outlive).
pub struct RcuBox<T: Send + Sync> {
    ptr: AtomicPtr<T>,
}

// SAFETY: the box is shared between CPUs only as `&T` (`T: Sync`) and moved
// in and out whole (`T: Send`).
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T: Send + Sync> Default for RcuBox<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Send + Sync> RcuBox<T> {
    /// An empty box.
    pub const fn empty() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Publishes `v`; gives it back if the box is not empty.
    pub fn publish(&self, v: KBox<T>) -> core::result::Result<(), KBox<T>> {
        // The tag needs a free low bit (constant-folded).
        if core::mem::align_of::<T>() <= TAG {
            return Err(v);
        }
        let p = KBox::into_raw(v);
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
        {
            // INVARIANT: `p` is from `into_raw` and now owned by `self`.
            Ok(_) => Ok(()),
            // SAFETY: `p` is from `into_raw` just above and was not published.
            Err(_) => Err(unsafe { KBox::from_raw(p) }),
        }
    }

    /// True if a value is published.
    pub fn is_set(&self) -> bool {
        let p = self.ptr.load(Ordering::Relaxed);
        !p.is_null() && !is_tagged(p)
    }

    /// Runs `f` on the published value (`None` if there is none) inside an
    /// RCU read-side critical section: `f` must not sleep, and should not
    /// drop what might free sleeping resources (give it back instead).
    pub fn read<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        // SAFETY: no preconditions; paired below.
        unsafe { bindings::rrs_rcu_read_lock() };
        let p = self.ptr.load(Ordering::Acquire);
        let p = if is_tagged(p) { ptr::null_mut() } else { p };
        // SAFETY: a non-null untagged `p` is a live `T` owned by `self`
        // (type invariant); it is freed only a grace period after it was
        // tagged, and this read-side section holds that off.  The borrow
        // cannot escape `f` (its lifetime is `f`'s argument's).
        let r = f(unsafe { p.as_ref() });
        // SAFETY: paired with the lock above, same context.
        unsafe { bindings::rrs_rcu_read_unlock() };
        r
    }

    /// Unpublishes every box of `slots`, waits until no reader can see
    /// them (one grace period for all) and hands their values to `f`.
    /// Sleeps.  Allocates nothing, so that a teardown cannot fail.
    pub fn take_all(slots: &[Self], mut f: impl FnMut(KBox<T>)) {
        // A value leaves its slot in two steps: tagged (readers see none,
        // the slot still owns it), then, after the grace period, taken.
        let mut any = false;
        for s in slots {
            let p = s.ptr.load(Ordering::Acquire);
            if !p.is_null() && !is_tagged(p) {
                s.ptr.store(tagged(p), Ordering::Release);
                any = true;
            }
        }
        if !any {
            return;
        }
        // SAFETY: process context (callers: teardown work), no lock held
        // that a reader waits for.
        unsafe { bindings::rrs_synchronize_rcu() };
        for s in slots {
            // Only what was tagged before the grace period (a value
            // published since stays: the caller serialises publishing
            // against this, see `PathCore::stop`).
            let p = s.ptr.load(Ordering::Acquire);
            if !is_tagged(p)
                || s.ptr
                    .compare_exchange(p, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // SAFETY: untagged, `p` is the slot's `into_raw` pointer, which
            // it no longer has; no reader has it after the grace period.
            f(unsafe { KBox::from_raw(untagged(p)) });
        }
    }
}

/// Marks a value that is being unpublished (the boxes' alignment leaves the
/// low bit free: see [`RcuBox::publish`]).
const TAG: usize = 1;

fn is_tagged<T>(p: *mut T) -> bool {
    p as usize & TAG != 0
}

fn tagged<T>(p: *mut T) -> *mut T {
    (p as usize | TAG) as *mut T
}

fn untagged<T>(p: *mut T) -> *mut T {
    (p as usize & !TAG) as *mut T
}

impl<T: Send + Sync> Drop for RcuBox<T> {
    fn drop(&mut self) {
        let p = untagged(*self.ptr.get_mut());
        if !p.is_null() {
            // SAFETY: owned by `self` (type invariant), tagged or not;
            // `&mut self` means no reader holds a borrow of the box.
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}
