// SPDX-License-Identifier: GPL-2.0

//! A request's own pages as the device sees them: scatter/gather tables and
//! the fast-registration MRs that expose them to the peer.
//!
//! These are what make the data path zero-copy: the block layer describes a
//! request's pages in an [`SgTable`] (see `blk_mq::Rq::map_sg`), the
//! transport DMA-maps the table and either names its entries as the SGEs of
//! an RDMA WRITE or registers them in an [`SgMr`] for the peer to write into.
//! Both are allocated once per permit at session setup and reused by every
//! request of that permit.

use crate::bindings;
use crate::dma::Direction;
use crate::pd::Pd;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The DMA mapping of an [`SgTable`]'s entries and header.
struct Mapping {
    pd: Arc<Pd>,
    dir: Direction,
    /// Entries the device sees (the IOMMU may merge); 0 without data.
    count: u32,
    /// The header's bus address and length, once mapped.
    hdr: Option<(u64, u32)>,
}

/// Largest request header an [`SgTable`] carries (the user's message and the
/// transport's, which land after the data in the peer's buffer).
pub const HDR_MAX: usize = 512;

/// A preallocated scatterlist of up to `cap` entries, describing the data of
/// one request, a header buffer of [`HDR_MAX`] bytes, and their DMA mapping
/// while the request is in flight.
///
/// Owned by one permit: the permit's holder fills it, the transport maps it
/// for the request and unmaps it when the request is complete, before the
/// holder sees the request's end.  So the entries always describe memory
/// the holder keeps alive (the request's pages, or [`SgTable::set_buf`]'s
/// buffer) for as long as the device may access it.
///
/// # Invariants
///
/// `sgl` is an `rrs_sg_alloc(cap)` array, freed in `drop`.  The first
/// `nents` entries describe `bytes` bytes of memory that stays valid while
/// the table is filled.  While `mapping` is set, those entries are mapped on
/// its PD's device and `count` mapped entries are valid, and its `hdr`, if
/// set, is the mapping of `hdr`'s first bytes (to the device).
pub struct SgTable {
    sgl: NonNull<bindings::scatterlist>,
    cap: u32,
    nents: u32,
    bytes: u32,
    mapping: Option<Mapping>,
    /// The buffer the table describes when filled by [`SgTable::set_buf`].
    buf: Option<KVec<u8>>,
    /// The request's header, [`HDR_MAX`] bytes, never resized.
    hdr: KVec<u8>,
}

// SAFETY: the table is plain memory owned by this value.
unsafe impl Send for SgTable {}
// SAFETY: `&self` methods only read.
unsafe impl Sync for SgTable {}

impl SgTable {
    /// Allocates a table of `cap` entries.  Sleeps.
    pub fn new(cap: u32) -> Result<Self> {
        if cap == 0 || cap > 4096 {
            return Err(EINVAL);
        }
        let hdr = KVec::from_elem(0u8, HDR_MAX, GFP_KERNEL)?;
        // SAFETY: plain allocation.
        let sgl = NonNull::new(unsafe { bindings::rrs_sg_alloc(cap) }).ok_or(ENOMEM)?;
        // INVARIANT: allocated with `cap` entries; empty.
        Ok(Self {
            sgl,
            cap,
            nents: 0,
            bytes: 0,
            mapping: None,
            buf: None,
            hdr,
        })
    }

    /// Entries the table holds at most.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Filled entries.
    pub fn nents(&self) -> u32 {
        self.nents
    }

    /// Bytes the filled entries describe.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }

    /// Mapped entries (0 when not mapped).
    pub fn count(&self) -> u32 {
        self.mapping.as_ref().map_or(0, |m| m.count)
    }

    /// The raw array, for a filler in another FFI crate (the block layer's
    /// `blk_rq_map_sg`).  Refused while mapped.
    pub fn as_raw(&mut self) -> Result<*mut core::ffi::c_void> {
        if self.mapping.is_some() {
            return Err(EBUSY);
        }
        Ok(self.sgl.as_ptr().cast())
    }

    /// Records what a filler wrote through [`SgTable::as_raw`].
    ///
    /// # Safety
    ///
    /// The first `nents` entries must describe `bytes` bytes of memory that
    /// stays valid, and is not otherwise accessed in ways the DMA could
    /// break, until the table is emptied or refilled.
    pub unsafe fn set_filled(&mut self, nents: u32, bytes: u32) -> Result {
        if self.mapping.is_some() || nents > self.cap || (nents == 0) != (bytes == 0) {
            return Err(EINVAL);
        }
        self.buf = None;
        // INVARIANT: per the caller's contract.
        self.nents = nents;
        self.bytes = bytes;
        Ok(())
    }

    /// Describes `len` bytes of `buf` (kmalloc memory, which the table keeps
    /// until [`SgTable::take_buf`]): for messages that are not block IO.
    pub fn set_buf(&mut self, mut buf: KVec<u8>, len: usize) -> Result {
        if self.mapping.is_some() || len > buf.len() || len > u32::MAX as usize {
            return Err(EINVAL);
        }
        if len == 0 {
            self.clear()?;
            self.buf = Some(buf);
            return Ok(());
        }
        // SAFETY: `sgl` has at least one entry; `buf` is `len` bytes or more of
        // kmalloc (lowmem, so `virt_to_page` works) memory, owned by `self`
        // from here on and never resized while described.
        unsafe { bindings::rrs_sg_set_buf(self.sgl.as_ptr(), buf.as_mut_ptr().cast(), len as u32) };
        // INVARIANT: one entry over `buf`, which the table now owns.
        self.buf = Some(buf);
        self.nents = 1;
        self.bytes = len as u32;
        Ok(())
    }

    /// Takes back the buffer of [`SgTable::set_buf`] (once unmapped) and
    /// empties the table.
    pub fn take_buf(&mut self) -> Option<KVec<u8>> {
        if self.mapping.is_some() {
            return None;
        }
        self.nents = 0;
        self.bytes = 0;
        self.buf.take()
    }

    /// Empties the table (refused while mapped).
    pub fn clear(&mut self) -> Result {
        if self.mapping.is_some() {
            return Err(EBUSY);
        }
        self.nents = 0;
        self.bytes = 0;
        self.buf = None;
        Ok(())
    }

    /// Maps the filled entries on `pd`'s device for `dir` (an empty table
    /// maps no data, but can then carry a header).  Doing so also syncs the
    /// pages for the device.
    pub fn map(&mut self, pd: &Arc<Pd>, dir: Direction) -> Result {
        if self.mapping.is_some() {
            return Err(EBUSY);
        }
        if self.nents == 0 {
            // INVARIANT: no entries, no header yet.
            self.mapping = Some(Mapping {
                pd: pd.clone(),
                dir,
                count: 0,
                hdr: None,
            });
            return Ok(());
        }
        // SAFETY: the first `nents` entries describe live memory (type
        // invariant); the device is live while `pd` is.
        let n = unsafe {
            bindings::rrs_ib_dma_map_sg(
                pd.device().as_ptr(),
                self.sgl.as_ptr(),
                self.nents as i32,
                dir.raw(),
            )
        };
        if n <= 0 || n as u32 > self.nents {
            return Err(ENOMEM);
        }
        // INVARIANT: just mapped, `n` entries.
        self.mapping = Some(Mapping {
            pd: pd.clone(),
            dir,
            count: n as u32,
            hdr: None,
        });
        Ok(())
    }

    /// Writes the concatenation of `parts` as the request's header and
    /// maps it for the device; the table must be mapped (`map`).  Copies
    /// a few dozen bytes: the header, never the data.
    pub fn map_hdr(&mut self, parts: &[&[u8]]) -> Result<u32> {
        let m = self.mapping.as_mut().ok_or(EINVAL)?;
        if m.hdr.is_some() {
            return Err(EBUSY);
        }
        let mut len = 0usize;
        for p in parts {
            let end = len.checked_add(p.len()).ok_or(EINVAL)?;
            self.hdr.get_mut(len..end).ok_or(EINVAL)?.copy_from_slice(p);
            len = end;
        }
        if len == 0 {
            return Err(EINVAL);
        }
        let dev = m.pd.device().as_ptr();
        // SAFETY: `hdr` is `HDR_MAX >= len` bytes of kmalloc memory owned by
        // `self`, never resized, unmapped in `unmap`.
        let addr = unsafe {
            bindings::rrs_ib_dma_map_single(
                dev,
                self.hdr.as_mut_ptr().cast(),
                len,
                Direction::ToDevice.raw(),
            )
        };
        // SAFETY: `addr` was just returned by the mapping call on `dev`.
        if unsafe { bindings::rrs_ib_dma_mapping_error(dev, addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: the mapping of `hdr`'s first `len` bytes.
        m.hdr = Some((addr, len as u32));
        Ok(len as u32)
    }

    /// The first `len` bytes of the header [`SgTable::map_hdr`] wrote last
    /// (a request's user header, to send it again on another path).
    pub fn hdr(&self, len: usize) -> Option<&[u8]> {
        self.hdr.get(..len)
    }

    /// The mapped header as one SGE.
    pub fn hdr_sge(&self) -> Result<crate::wr::Sge<'_>> {
        let m = self.mapping.as_ref().ok_or(EINVAL)?;
        let (addr, length) = m.hdr.ok_or(EINVAL)?;
        Ok(crate::wr::Sge {
            addr,
            length,
            lkey: m.pd.local_dma_lkey(),
            _buf: core::marker::PhantomData,
        })
    }

    /// True if [`SgTable::set_buf`] gave the table a buffer.
    pub fn has_buf(&self) -> bool {
        self.buf.is_some()
    }

    /// The request is over: unmaps, and forgets entries that describe
    /// memory the table does not own (a block request's pages), so a stale
    /// description can never be mapped again.  [`SgTable::set_buf`]'s
    /// buffer stays for [`SgTable::take_buf`].
    pub fn finish(&mut self) {
        self.unmap();
        if self.buf.is_none() {
            self.nents = 0;
            self.bytes = 0;
        }
    }

    /// Unmaps the entries (and syncs them for the CPU).  The caller makes
    /// sure the device no longer accesses them: the requests that named
    /// them completed and any registration of them was invalidated.
    pub fn unmap(&mut self) {
        if let Some(m) = self.mapping.take() {
            let dev = m.pd.device().as_ptr();
            if let Some((addr, len)) = m.hdr {
                // SAFETY: mapped by `map_hdr` with these values.
                unsafe {
                    bindings::rrs_ib_dma_unmap_single(
                        dev,
                        addr,
                        len as usize,
                        Direction::ToDevice.raw(),
                    )
                };
            }
            if m.count > 0 {
                // SAFETY: mapped by `map` with these values (type invariant).
                unsafe {
                    bindings::rrs_ib_dma_unmap_sg(
                        dev,
                        self.sgl.as_ptr(),
                        self.nents as i32,
                        m.dir.raw(),
                    )
                };
            }
        }
    }

    /// Writes the mapped entries as SGEs with the PD's local DMA lkey into
    /// `out`; returns how many.
    pub(crate) fn sges(&self, out: &mut [bindings::ib_sge]) -> Result<usize> {
        let Some(m) = self.mapping.as_ref() else {
            return Ok(0);
        };
        // SAFETY: `count` mapped entries (type invariant); `out` is valid
        // for `out.len()` entries.
        let n = unsafe {
            bindings::rrs_sg_to_sges(
                self.sgl.as_ptr(),
                m.count as i32,
                m.pd.local_dma_lkey(),
                out.as_mut_ptr(),
                out.len().min(i32::MAX as usize) as i32,
            )
        };
        usize::try_from(n).map_err(|_| EINVAL)
    }
}

impl Drop for SgTable {
    fn drop(&mut self) {
        // A table dropped while mapped (its request failed to post, or its
        // path is gone after its QPs were drained): nothing uses it.
        self.unmap();
        // SAFETY: allocated in `new`, no longer mapped.
        unsafe { bindings::rrs_sg_free(self.sgl.as_ptr()) };
    }
}

/// A fast-registration MR for the mapped entries of one [`SgTable`] at a
/// time: how a peer gets to write into a request's pages (reads), or how
/// more pages than the device's SGE limit leave in one RDMA WRITE.
///
/// Preallocated per permit and path.  [`SgMr::map`] claims the MR until
/// [`SgMr::release`], so two requests cannot share it; the holder releases
/// it once its registration is invalidated (or its QPs are gone).
///
/// # Invariants
///
/// `mr` is an `IB_MR_TYPE_MEM_REG` MR of `pd` with room for `max_pages`
/// pages, deregistered in `drop`.  Its page list, key and iova change only
/// in `map`, by the caller that set `busy`.
pub struct SgMr {
    mr: NonNull<bindings::ib_mr>,
    busy: AtomicBool,
    max_pages: u32,
    pd: Arc<Pd>,
}

// SAFETY: the MR is a handle usable from any context; `busy` serialises
// the only writer.
unsafe impl Send for SgMr {}
// SAFETY: as above.
unsafe impl Sync for SgMr {}

impl SgMr {
    /// Allocates an MR for up to `max_pages` pages on `pd`.  Sleeps.
    pub fn new(pd: &Arc<Pd>, max_pages: u32) -> Result<Self> {
        // SAFETY: live PD.
        let mr = crate::from_err_ptr(unsafe {
            bindings::ib_alloc_mr(
                pd.as_ptr(),
                bindings::ib_mr_type_IB_MR_TYPE_MEM_REG,
                max_pages,
            )
        })?;
        // INVARIANT: allocated just above.
        Ok(Self {
            mr,
            busy: AtomicBool::new(false),
            max_pages,
            pd: pd.clone(),
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_mr {
        self.mr.as_ptr()
    }

    /// Pages it can register.
    pub fn max_pages(&self) -> u32 {
        self.max_pages
    }

    /// Claims the MR and loads `sg`'s mapped entries into its page list
    /// (4 KiB pages, as upstream), under a key not granted before.  Post
    /// [`crate::cm::SendOp::RegSg`] to register it.  `EBUSY` if claimed,
    /// `EINVAL` if the entries do not fit one registration.
    pub fn map(&self, sg: &SgTable) -> Result {
        let Some(m) = sg.mapping.as_ref() else {
            return Err(EINVAL);
        };
        if m.count == 0 || m.count > self.max_pages || !Arc::ptr_eq(&m.pd, &self.pd) {
            return Err(EINVAL);
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(EBUSY);
        }
        // SAFETY: live MR, claimed above: no other `map` runs, and the
        // previous registration was invalidated before `release`.
        unsafe {
            let next = bindings::rrs_ib_inc_rkey((*self.as_ptr()).rkey);
            bindings::rrs_ib_update_fast_reg_key(self.as_ptr(), (next & 0xff) as u8);
        }
        // SAFETY: as above; `count` mapped entries of `sg` (its invariant).
        let n = unsafe {
            bindings::ib_map_mr_sg(
                self.as_ptr(),
                sg.sgl.as_ptr(),
                m.count as i32,
                core::ptr::null_mut(),
                4096,
            )
        };
        if n != m.count as i32 {
            self.release();
            return Err(if n < 0 { Error::from_errno(n) } else { EINVAL });
        }
        Ok(())
    }

    /// Gives the MR up for the next [`SgMr::map`]: its registration is
    /// invalidated, or was never posted.
    pub fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// The key the registration grants (remote access).
    pub fn rkey(&self) -> u32 {
        // SAFETY: live MR (type invariant).
        unsafe { (*self.as_ptr()).rkey }
    }

    /// The key for local access (an SGE over the registration).
    pub fn lkey(&self) -> u32 {
        // SAFETY: live MR (type invariant).
        unsafe { bindings::rrs_ib_mr_lkey(self.as_ptr()) }
    }

    /// The address of the registration's first byte.
    pub fn iova(&self) -> u64 {
        // SAFETY: live MR (type invariant).
        unsafe { (*self.as_ptr()).iova }
    }

    /// The registration's length.
    pub fn length(&self) -> u64 {
        // SAFETY: live MR (type invariant).
        unsafe { bindings::rrs_ib_mr_length(self.as_ptr()) }
    }
}

impl Drop for SgMr {
    fn drop(&mut self) {
        // SAFETY: live MR; deregistration revokes its keys.  The owner keeps
        // the MR alive until no request that names it is posted.
        unsafe { bindings::rrs_ib_dereg_mr(self.as_ptr()) };
    }
}
