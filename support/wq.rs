// SPDX-License-Identifier: GPL-2.0

//! A workqueue owned by a module.
//!
//! Work that runs a module's code must be finished before the module's text
//! goes away; the system workqueues give no way to wait for one module's
//! items.  An [`OwnedQueue`] is destroyed (after running everything queued on
//! it) when its last reference is dropped, which the owning module does at
//! unload, after [`OwnedQueue::flush`].

use crate::bindings;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use kernel::workqueue::Queue;

/// An allocated `struct workqueue_struct`.
///
/// Work items that hold an `Arc<OwnedQueue>` must not be the last holders:
/// destroying a queue from one of its own items would wait for itself.  The
/// owner keeps its reference until after [`OwnedQueue::flush`].
///
/// # Invariants
///
/// `ptr` is a workqueue from `alloc_workqueue`, destroyed in `drop`.
pub struct OwnedQueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: workqueues are used from any context.
unsafe impl Send for OwnedQueue {}
// SAFETY: as above.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates an unbound workqueue named `name`.
    pub fn new(name: &'static CStr) -> Result<Arc<Self>> {
        // SAFETY: `name` is a static NUL-terminated string.
        let p = unsafe {
            bindings::rrs_alloc_workqueue(name.as_char_ptr(), bindings::wq_flags_WQ_UNBOUND)
        };
        // INVARIANT: allocated just above (NULL on failure); `drop` destroys it.
        Ok(Arc::new(
            Self {
                ptr: NonNull::new(p).ok_or(ENOMEM)?,
            },
            GFP_KERNEL,
        )?)
    }

    /// The queue, for `enqueue` and `try_spawn`.
    pub fn queue(&self) -> &Queue {
        // SAFETY: live queue until `drop` (type invariant), which needs `self`.
        unsafe { Queue::from_raw(self.ptr.as_ptr().cast()) }
    }

    pub(crate) fn raw(&self) -> *mut bindings::workqueue_struct {
        self.ptr.as_ptr()
    }

    /// Waits until everything queued so far has run.
    pub fn flush(&self) {
        // SAFETY: live queue.
        unsafe { bindings::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: live queue; this drains it first.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
