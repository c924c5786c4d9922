// SPDX-License-Identifier: GPL-2.0

//! Synchronisation that the 6.12 `kernel` crate lacks and that completion
//! handlers in softirq context need: an atomically owned box, a wait queue
//! that any context may wake, and an `Arc` whose last reference is not
//! dropped where it goes.

use crate::bindings;
use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU32;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// An optional `KBox<T>` handed between contexts without a lock: whoever
/// [`AtomicBox::take`]s it owns it; [`AtomicBox::put`] gives it back.
///
/// # Invariants
///
/// `ptr` is null or comes from `KBox::into_raw` and is owned by `self`.
pub struct AtomicBox<T: Send> {
    ptr: AtomicPtr<T>,
}

// SAFETY: the value only moves whole between threads (`T: Send`); nothing
// hands out a shared reference to it.
unsafe impl<T: Send> Send for AtomicBox<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for AtomicBox<T> {}

impl<T: Send> Default for AtomicBox<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Send> AtomicBox<T> {
    /// An empty box.
    pub const fn empty() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A box holding `v`.
    pub fn new(v: KBox<T>) -> Self {
        // INVARIANT: from `into_raw`, owned by the new box.
        Self {
            ptr: AtomicPtr::new(KBox::into_raw(v)),
        }
    }

    /// Takes the value out, if there is one.
    pub fn take(&self) -> Option<KBox<T>> {
        let p = self.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a non-null `p` is from `into_raw` and owned by `self`
        // (type invariant), which no longer has it after the swap.
        NonNull::new(p).map(|p| unsafe { KBox::from_raw(p.as_ptr()) })
    }

    /// Puts `v` in; gives it back if the box is not empty.
    pub fn put(&self, v: KBox<T>) -> core::result::Result<(), KBox<T>> {
        let p = KBox::into_raw(v);
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Relaxed)
        {
            // INVARIANT: `p` is from `into_raw`, now owned by `self`.
            Ok(_) => Ok(()),
            // SAFETY: `p` is from `into_raw` just above and was not stored.
            Err(_) => Err(unsafe { KBox::from_raw(p) }),
        }
    }
}

impl<T: Send> Drop for AtomicBox<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// What to do with the last reference of a [`DeferredArc`], e.g. hand it to
/// a work item when dropping `Self` sleeps.
pub trait LastRef {
    /// Called, in the context of the [`DeferredArc`]'s drop, with `this`
    /// when it is the only reference left.
    fn last_ref(this: Arc<Self>);
}

/// An `Arc<T>` for contexts that must not drop `T` (atomic ones, when `T`'s
/// drop sleeps): its drop gives the reference to [`LastRef::last_ref`] if it
/// is the last one, else just drops it.  Deref to the `Arc`.
pub struct DeferredArc<T: LastRef> {
    arc: ManuallyDrop<Arc<T>>,
}

impl<T: LastRef> DeferredArc<T> {
    /// Wraps `arc`.
    pub fn new(arc: Arc<T>) -> Self {
        Self {
            arc: ManuallyDrop::new(arc),
        }
    }
}

impl<T: LastRef> core::ops::Deref for DeferredArc<T> {
    type Target = Arc<T>;

    fn deref(&self) -> &Arc<T> {
        &self.arc
    }
}

impl<T: LastRef> Drop for DeferredArc<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here; `self.arc` is not used after.
        let arc = unsafe { ManuallyDrop::take(&mut self.arc) };
        if let Some(last) = arc.into_unique_or_drop() {
            T::last_ref(last.into());
        }
    }
}

/// A kernel wait queue (`wait_queue_head_t`): process context waits for a
/// condition, any context wakes it.
///
/// # Invariants
///
/// `wq` is from `rrs_waitq_new` and freed in `drop`.
pub struct WaitQueue {
    wq: NonNull<bindings::rrs_waitq>,
}

// SAFETY: wait queues are used from any context and CPU.
unsafe impl Send for WaitQueue {}
// SAFETY: as above.
unsafe impl Sync for WaitQueue {}

/// Calls the closure behind `ctx` (the condition of a wait).
///
/// # Safety
///
/// `ctx` must point to an `F` that is alive and not otherwise borrowed for
/// the call.
unsafe extern "C" fn cond_trampoline<F: FnMut() -> bool>(ctx: *mut core::ffi::c_void) -> bool {
    // SAFETY: `ctx` is the `F` of `WaitQueue::wait_until`, alive on its
    // stack for the whole wait, and only this call uses it.
    let f = unsafe { &mut *ctx.cast::<F>() };
    f()
}

impl WaitQueue {
    /// A new, empty wait queue.
    pub fn new() -> Result<Self> {
        // SAFETY: no preconditions.
        let wq = unsafe { bindings::rrs_waitq_new() };
        // INVARIANT: from `rrs_waitq_new`, freed in `drop`.
        Ok(Self {
            wq: NonNull::new(wq).ok_or(ENOMEM)?,
        })
    }

    /// Wakes every waiter (any context; nearly free without waiters).
    pub fn wake_all(&self) {
        // SAFETY: live queue (type invariant).
        unsafe { bindings::rrs_waitq_wake_all(self.wq.as_ptr()) }
    }

    /// Waits until `cond` is true, at most `timeout_ms` (`None`: no limit);
    /// returns whether it is.  Process context; neither interruptible nor
    /// counted as load (`TASK_IDLE`); `cond` is checked after the waiter is
    /// queued, so a wake between a check and the sleep is not lost.
    pub fn wait_until<F: FnMut() -> bool>(&self, timeout_ms: Option<u32>, cond: F) -> bool {
        self.wait(timeout_ms, false, cond) > 0
    }

    /// Like [`WaitQueue::wait_until`], but a signal ends the wait:
    /// `Err(EINTR)` then.
    pub fn wait_until_interruptible<F: FnMut() -> bool>(
        &self,
        timeout_ms: Option<u32>,
        cond: F,
    ) -> Result<bool> {
        match self.wait(timeout_ms, true, cond) {
            r if r < 0 => Err(EINTR),
            r => Ok(r > 0),
        }
    }

    fn wait<F: FnMut() -> bool>(&self, timeout_ms: Option<u32>, intr: bool, mut cond: F) -> i32 {
        let ms = timeout_ms.map_or(u32::MAX, |t| t.min(u32::MAX - 1));
        // SAFETY: live queue; `cond` outlives the call, and the trampoline
        // matches its type.
        unsafe {
            bindings::rrs_waitq_wait(
                self.wq.as_ptr(),
                Some(cond_trampoline::<F>),
                (&mut cond as *mut F).cast(),
                ms,
                intr,
            )
        }
    }
}

impl Drop for WaitQueue {
    fn drop(&mut self) {
        // SAFETY: live queue; `&mut self` means nobody waits on it.
        unsafe { bindings::rrs_waitq_free(self.wq.as_ptr()) }
    }
}

/// Things in flight, counted apart from what they keep alive, and a wait
/// for none to be left.  Each is a [`Counted`] token: taking one counts,
/// dropping it (any context) uncounts and wakes the waiter at zero.
pub struct Drained {
    n: AtomicU32,
    /// Woken when `n` drops to zero.
    wq: WaitQueue,
}

impl Drained {
    /// A count at zero.
    pub fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                n: AtomicU32::new(0),
                wq: WaitQueue::new()?,
            },
            GFP_KERNEL,
        )?)
    }

    /// How many are in flight now.
    pub fn count(&self) -> u32 {
        self.n.load(Ordering::SeqCst)
    }

    /// Waits until none is in flight, at most `timeout_ms` (`None`: no
    /// limit); returns whether none is (process context, see
    /// [`WaitQueue::wait_until`]).
    pub fn wait_idle(&self, timeout_ms: Option<u32>) -> bool {
        self.wq.wait_until(timeout_ms, || self.count() == 0)
    }
}

/// One thing counted in a [`Drained`]; uncounted on drop.
pub struct Counted(Arc<Drained>);

impl Counted {
    /// Counts one more in `d`.
    pub fn new(d: &Arc<Drained>) -> Self {
        d.n.fetch_add(1, Ordering::SeqCst);
        Self(d.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // The wake-up touches only `self.0`, which this still holds.
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.wq.wake_all();
        }
    }
}
