// SPDX-License-Identifier: GPL-2.0

//! Protection domains.

use crate::bindings;
use crate::device::Device;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A protection domain (`struct ib_pd`).
///
/// Shared with [`Arc`]: QPs and MRs created in it hold a reference, so it is
/// deallocated after them.
///
/// # Invariants
///
/// `ptr` is a PD allocated by `ib_alloc_pd` on `dev` and not yet deallocated;
/// `dev` stays registered while the PD exists (the owner of the PD frees it on
/// device removal, before the device's unregistration completes).
pub struct Pd {
    ptr: NonNull<bindings::ib_pd>,
    dev: NonNull<bindings::ib_device>,
}

// SAFETY: a PD is a handle the RDMA core allows to use from any context.
unsafe impl Send for Pd {}
// SAFETY: all operations through `&Pd` are thread safe in the RDMA core.
unsafe impl Sync for Pd {}

impl Pd {
    /// Allocates a PD on `dev`.
    pub fn new(dev: Device<'_>) -> Result<Arc<Self>> {
        // SAFETY: `dev` is registered (its invariant).
        let ptr = crate::from_err_ptr(unsafe { bindings::rrs_ib_alloc_pd(dev.as_ptr(), 0) })?;
        // INVARIANT: allocated just above on `dev`, registered, whose owner
        // frees the PD before unregistering it.
        Ok(Arc::new(
            Self {
                ptr,
                dev: dev.as_non_null(),
            },
            GFP_KERNEL,
        )?)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_pd {
        self.ptr.as_ptr()
    }

    /// The device this PD belongs to.
    pub fn device(&self) -> Device<'_> {
        // SAFETY: the device outlives the PD (type invariant), and so the
        // borrow of `self`.
        unsafe { Device::from_non_null(self.dev) }
    }

    /// The lkey that covers all DMA-mapped memory, for local SGEs.
    pub fn local_dma_lkey(&self) -> u32 {
        // SAFETY: the PD is live (type invariant).
        unsafe { bindings::rrs_pd_local_dma_lkey(self.as_ptr()) }
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`; every QP and MR holding an `Arc` to this
        // PD is gone, so nothing uses it any more.
        unsafe { bindings::rrs_ib_dealloc_pd(self.as_ptr()) };
    }
}
