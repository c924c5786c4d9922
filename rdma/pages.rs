// SPDX-License-Identifier: GPL-2.0

//! The registrations of page blocks ([`PageBlock`]) that a peer accesses
//! through an rkey.

use crate::bindings;
use crate::dma::Direction;
use crate::pd::Pd;
use crate::wr::Sge;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;
use support::pages::PageBlock;

/// A [`PageBlock`] mapped for DMA (both directions) on a PD's device and
/// registered in a fast-registration MR that covers exactly the block.
///
/// The rkey lives here, in an atomic: registrations (`IB_WR_REG_MR`) carry the
/// key they grant, and local invalidations the key they revoke, so changing it
/// with [`BlockMr::bump_key`] between an invalidation and the next
/// registration is all the key handling there is.  Drop deregisters the MR
/// (revoking any key) before the mapping goes and the block's `Arc` is
/// released.
///
/// # Invariants
///
/// `mr` is an `IB_MR_TYPE_MEM_REG` MR of `pd` whose page list is the single
/// block `dma..dma + block.len()`, the DMA mapping of `block` on `pd`'s device.
pub struct BlockMr {
    mr: NonNull<bindings::ib_mr>,
    rkey: AtomicU32,
    dma: u64,
    block: Arc<PageBlock>,
    pd: Arc<Pd>,
}

// SAFETY: the MR is a handle usable from any context; the key is atomic.
unsafe impl Send for BlockMr {}
// SAFETY: as above.
unsafe impl Sync for BlockMr {}

impl BlockMr {
    /// Maps `block` on `pd`'s device and prepares an MR over it.  The MR is
    /// not registered yet: post [`crate::cm::SendOp::RegBlock`] for that.
    pub fn new(pd: &Arc<Pd>, block: Arc<PageBlock>) -> Result<Self> {
        let dev = pd.device().as_ptr();
        let len = block.len();
        // SAFETY: the block is live while we hold its `Arc`.
        let dma = unsafe {
            bindings::rrs_ib_dma_map_page(
                dev,
                block.first_page().cast(),
                len,
                Direction::Bidirectional.raw(),
            )
        };
        // SAFETY: `dma` was returned by the mapping call on `dev`.
        if unsafe { bindings::rrs_ib_dma_mapping_error(dev, dma) } != 0 {
            return Err(ENOMEM);
        }
        let unmap = || {
            // SAFETY: mapped above, not used by any request.
            unsafe {
                bindings::rrs_ib_dma_unmap_page(dev, dma, len, Direction::Bidirectional.raw())
            }
        };
        // SAFETY: live PD.
        let mr = match crate::from_err_ptr(unsafe {
            bindings::ib_alloc_mr(pd.as_ptr(), bindings::ib_mr_type_IB_MR_TYPE_MEM_REG, 1)
        }) {
            Ok(mr) => mr,
            Err(e) => {
                unmap();
                return Err(e);
            }
        };
        let mut sg = bindings::scatterlist::default();
        // SAFETY: `sg` is a local one-entry list describing our mapping.
        unsafe { bindings::rrs_sg_set_dma(&mut sg, dma, len as u32) };
        // The block is one "page" of the MR, as upstream registers chunks.
        // SAFETY: `mr` is ours; the call copies `sg` into the page list.
        let n = unsafe {
            bindings::ib_map_mr_sg(mr.as_ptr(), &mut sg, 1, core::ptr::null_mut(), len as u32)
        };
        if n != 1 {
            // SAFETY: allocated above, never posted.
            unsafe { bindings::rrs_ib_dereg_mr(mr.as_ptr()) };
            unmap();
            return Err(if n < 0 { Error::from_errno(n) } else { EINVAL });
        }
        // SAFETY: live MR.
        let rkey = unsafe { (*mr.as_ptr()).rkey };
        // INVARIANT: `mr`'s page list is the single mapping `dma` of `block`.
        let this = Self {
            mr,
            rkey: AtomicU32::new(rkey),
            dma,
            block,
            pd: pd.clone(),
        };
        // Start from a key other than the allocation's, as upstream does.
        this.bump_key();
        Ok(this)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_mr {
        self.mr.as_ptr()
    }

    /// The rkey the next registration grants (and the current one, once
    /// registered).
    pub fn rkey(&self) -> u32 {
        self.rkey.load(Ordering::Acquire)
    }

    /// Moves to the next key (the low byte of the rkey), so that the next
    /// registration does not grant a key that was revoked.
    pub fn bump_key(&self) {
        let _ = self
            .rkey
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| {
                // SAFETY: pure arithmetic helper.
                Some(unsafe { bindings::rrs_ib_inc_rkey(k) })
            });
    }

    /// The address the peer uses for the block's first byte.
    pub fn iova(&self) -> u64 {
        // SAFETY: live MR; `iova` is set by `ib_map_mr_sg` in `new`.
        unsafe { (*self.as_ptr()).iova }
    }

    /// Registered length.
    pub fn len(&self) -> usize {
        self.block.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The block.
    pub fn block(&self) -> &Arc<PageBlock> {
        &self.block
    }

    /// Makes what the peer or a device wrote visible to the CPU.
    pub fn sync_for_cpu(&self) {
        // SAFETY: our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_cpu(
                self.pd.device().as_ptr(),
                self.dma,
                self.len(),
                Direction::Bidirectional.raw(),
            )
        };
    }

    /// Makes what the CPU wrote visible to devices.
    pub fn sync_for_device(&self) {
        // SAFETY: our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_device(
                self.pd.device().as_ptr(),
                self.dma,
                self.len(),
                Direction::Bidirectional.raw(),
            )
        };
    }

    /// Like [`BlockMr::sync_for_cpu`], for `len` bytes from `off` only
    /// (clamped to the block).
    pub fn sync_range_for_cpu(&self, off: usize, len: usize) {
        let off = off.min(self.len());
        let len = len.min(self.len() - off);
        if len == 0 {
            return;
        }
        // SAFETY: a range inside our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_cpu(
                self.pd.device().as_ptr(),
                self.dma + off as u64,
                len,
                Direction::Bidirectional.raw(),
            )
        };
    }

    /// Like [`BlockMr::sync_for_device`], for `len` bytes from `off` only
    /// (clamped to the block).
    pub fn sync_range_for_device(&self, off: usize, len: usize) {
        let off = off.min(self.len());
        let len = len.min(self.len() - off);
        if len == 0 {
            return;
        }
        // SAFETY: a range inside our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_device(
                self.pd.device().as_ptr(),
                self.dma + off as u64,
                len,
                Direction::Bidirectional.raw(),
            )
        };
    }

    /// A local scatter/gather entry for `len` bytes from `off` (the PD's
    /// local DMA lkey, so it is usable while the MR itself is invalidated).
    pub fn sge(&self, off: usize, len: usize) -> Result<Sge<'_>> {
        match off.checked_add(len) {
            Some(end) if end <= self.len() && len > 0 => {}
            _ => return Err(EINVAL),
        }
        Ok(Sge {
            addr: self.dma + off as u64,
            length: len as u32,
            lkey: self.pd.local_dma_lkey(),
            _buf: core::marker::PhantomData,
        })
    }
}

impl Drop for BlockMr {
    fn drop(&mut self) {
        // SAFETY: live MR; deregistration revokes its keys.  The owner keeps
        // the MR alive until no request that names it is posted.
        unsafe { bindings::rrs_ib_dereg_mr(self.as_ptr()) };
        // SAFETY: mapped in `new`; the MR that exposed it is gone.
        unsafe {
            bindings::rrs_ib_dma_unmap_page(
                self.pd.device().as_ptr(),
                self.dma,
                self.len(),
                Direction::Bidirectional.raw(),
            )
        };
    }
}
