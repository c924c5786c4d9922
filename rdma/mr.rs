// SPDX-License-Identifier: GPL-2.0

//! Fast-registration memory regions.

use crate::bindings;
use crate::dma::DmaBuf;
use core::ptr::NonNull;
use kernel::prelude::*;

/// Remote access rights granted by a registration.
#[derive(Clone, Copy, Debug)]
pub struct Access(u32);

impl Access {
    /// The peer may RDMA WRITE into the region.
    pub const REMOTE_WRITE: Access = Access(
        bindings::ib_access_flags_IB_ACCESS_LOCAL_WRITE
            | bindings::ib_access_flags_IB_ACCESS_REMOTE_WRITE,
    );
    /// Local access only (the device reads the region for a send).
    pub const LOCAL: Access = Access(bindings::ib_access_flags_IB_ACCESS_LOCAL_WRITE);
    /// The peer may RDMA READ from the region.
    pub const REMOTE_READ: Access = Access(
        bindings::ib_access_flags_IB_ACCESS_LOCAL_WRITE
            | bindings::ib_access_flags_IB_ACCESS_REMOTE_READ,
    );

    pub(crate) fn raw(self) -> i32 {
        self.0 as i32
    }
}

/// A fast-registration MR that owns the buffer it maps.
///
/// Owning the buffer is what makes advertising the rkey safe: the memory the
/// peer may access lives at least as long as the MR, and `Drop` deregisters the
/// MR (which invalidates the rkey) before the buffer is unmapped and freed.
///
/// # Invariants
///
/// `ptr` is an `IB_MR_TYPE_MEM_REG` MR of `buf.pd()`, not deregistered.  When
/// `mapped`, its page list covers `buf`.
pub struct FrMr {
    ptr: NonNull<bindings::ib_mr>,
    buf: DmaBuf,
    mapped: bool,
}

// SAFETY: the MR is a handle usable from any context.
unsafe impl Send for FrMr {}
// SAFETY: `&FrMr` only reads immutable fields of the MR.
unsafe impl Sync for FrMr {}

impl FrMr {
    /// Allocates an MR for `buf` and maps `buf` into its page list.
    pub fn new(buf: DmaBuf) -> Result<Self> {
        // The buffer need not start on a page boundary.
        let in_page = (buf.dma_addr() as usize) & (kernel::page::PAGE_SIZE - 1);
        let pages = (in_page + buf.len()).div_ceil(kernel::page::PAGE_SIZE) as u32;
        // SAFETY: the PD is live while `buf` holds it.
        let ptr = crate::from_err_ptr(unsafe {
            bindings::ib_alloc_mr(
                buf.pd().as_ptr(),
                bindings::ib_mr_type_IB_MR_TYPE_MEM_REG,
                pages,
            )
        })?;
        // INVARIANT: allocated just above on `buf`'s PD; `mapped` is set once
        // the page list covers `buf`.
        let mut mr = Self {
            ptr,
            buf,
            mapped: false,
        };
        let mut sg = bindings::scatterlist::default();
        // SAFETY: `sg` is a local one-entry list; `buf` is mapped (its invariant).
        unsafe { bindings::rrs_sg_set_dma(&mut sg, mr.buf.dma_addr(), mr.buf.len() as u32) };
        // SAFETY: `ptr` is our MR; `sg` is valid for the call, which copies it
        // into the MR's page list.
        let n = unsafe {
            bindings::ib_map_mr_sg(
                ptr.as_ptr(),
                &mut sg,
                1,
                core::ptr::null_mut(),
                kernel::page::PAGE_SIZE as u32,
            )
        };
        if n != 1 {
            return Err(if n < 0 { Error::from_errno(n) } else { EINVAL });
        }
        mr.mapped = true;
        Ok(mr)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_mr {
        self.ptr.as_ptr()
    }

    /// The rkey the next registration will grant.
    pub fn rkey(&self) -> u32 {
        // SAFETY: live MR (type invariant).
        unsafe { (*self.as_ptr()).rkey }
    }

    /// The address the peer uses for the first byte.
    pub fn iova(&self) -> u64 {
        // SAFETY: live MR (type invariant).
        unsafe { (*self.as_ptr()).iova }
    }

    /// Length of the registered buffer.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: buffers are never empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Copies bytes out of the registered buffer.  The peer may write it at
    /// any time while its rkey is valid, so only copies are handed out.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> Result {
        self.buf.read_shared(off, dst)
    }

    /// Changes the key part of the rkey, so that a new registration does not
    /// grant the previous, invalidated rkey again.
    pub fn bump_key(&mut self) {
        // SAFETY: live MR; no registration of it is in flight because that
        // would hold `&self` through the posted request's owner.
        unsafe {
            let next = bindings::rrs_ib_inc_rkey(self.rkey());
            bindings::rrs_ib_update_fast_reg_key(self.as_ptr(), (next & 0xff) as u8);
        }
    }
}

impl Drop for FrMr {
    fn drop(&mut self) {
        // SAFETY: live MR; deregistration also invalidates its rkey, before
        // `buf` is dropped (fields drop after this body).
        unsafe { bindings::rrs_ib_dereg_mr(self.as_ptr()) };
    }
}
