// SPDX-License-Identifier: GPL-2.0

//! Completion queues.

use crate::bindings;
use crate::device::Device;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Where a CQ's completions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// In softirq context: fast, but completion handlers must not sleep.
    Softirq,
    /// In a workqueue (process context): handlers may sleep and allocate
    /// with `GFP_KERNEL`, e.g. to submit block IO.
    Workqueue,
}

/// A completion queue polled by the RDMA core.
///
/// Completions are dispatched to the `done` callback of each work request's
/// `ib_cqe` (see [`crate::wr`]), in the context chosen with [`Poll`].
///
/// # Invariants
///
/// `ptr` is a CQ from `ib_alloc_cq`, not yet freed.
pub struct Cq {
    ptr: NonNull<bindings::ib_cq>,
}

// SAFETY: the CQ is polled by the RDMA core; we only hand its pointer to QPs.
unsafe impl Send for Cq {}
// SAFETY: as above.
unsafe impl Sync for Cq {}

impl Cq {
    /// Allocates a CQ with `entries` entries on completion vector `vector`.
    pub fn new(dev: Device<'_>, entries: u32, vector: u32, poll: Poll) -> Result<Arc<Self>> {
        let entries = i32::try_from(entries).map_err(|_| EINVAL)?;
        let vector = i32::try_from(vector).map_err(|_| EINVAL)?;
        // SAFETY: `dev` is registered; no private data is attached.
        let ptr = crate::from_err_ptr(unsafe {
            bindings::rrs_ib_alloc_cq(
                dev.as_ptr(),
                core::ptr::null_mut(),
                entries,
                vector,
                match poll {
                    Poll::Softirq => bindings::ib_poll_context_IB_POLL_SOFTIRQ,
                    Poll::Workqueue => bindings::ib_poll_context_IB_POLL_WORKQUEUE,
                },
            )
        })?;
        // INVARIANT: allocated just above; `drop` frees it.
        Ok(Arc::new(Self { ptr }, GFP_KERNEL)?)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_cq {
        self.ptr.as_ptr()
    }
}

impl Drop for Cq {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`; the QPs using it held `Arc`s and are gone.
        unsafe { bindings::ib_free_cq(self.as_ptr()) };
    }
}
