// SPDX-License-Identifier: GPL-2.0

//! Completion queues.

use crate::bindings;
use crate::device::Device;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A completion queue polled by the RDMA core in softirq context.
///
/// Completions are dispatched to the `done` callback of each work request's
/// `ib_cqe` (see [`crate::wr`]); those callbacks must not sleep.
///
/// # Invariants
///
/// `ptr` is a CQ from `ib_alloc_cq` with `IB_POLL_SOFTIRQ`, not yet freed.
pub struct Cq {
    ptr: NonNull<bindings::ib_cq>,
}

// SAFETY: the CQ is polled by the RDMA core; we only hand its pointer to QPs.
unsafe impl Send for Cq {}
// SAFETY: as above.
unsafe impl Sync for Cq {}

impl Cq {
    /// Allocates a CQ with `entries` entries on completion vector `vector`.
    pub fn new(dev: Device<'_>, entries: u32, vector: u32) -> Result<Arc<Self>> {
        let entries = i32::try_from(entries).map_err(|_| EINVAL)?;
        let vector = i32::try_from(vector).map_err(|_| EINVAL)?;
        // SAFETY: `dev` is registered; no private data is attached.
        let ptr = crate::from_err_ptr(unsafe {
            bindings::rrs_ib_alloc_cq(
                dev.as_ptr(),
                core::ptr::null_mut(),
                entries,
                vector,
                bindings::ib_poll_context_IB_POLL_SOFTIRQ,
            )
        })?;
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
