// SPDX-License-Identifier: GPL-2.0

//! DMA-mapped buffers.

use crate::bindings;
use crate::pd::Pd;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Direction of DMA for a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// The device reads the buffer (sends, RDMA WRITE sources).
    ToDevice,
    /// The device writes the buffer (receives, RDMA WRITE targets).
    FromDevice,
    /// Both.
    Bidirectional,
}

impl Direction {
    pub(crate) fn raw(self) -> bindings::dma_data_direction {
        match self {
            Direction::ToDevice => bindings::dma_data_direction_DMA_TO_DEVICE,
            Direction::FromDevice => bindings::dma_data_direction_DMA_FROM_DEVICE,
            Direction::Bidirectional => bindings::dma_data_direction_DMA_BIDIRECTIONAL,
        }
    }
}

/// A kernel buffer mapped for DMA by the device of a PD.
///
/// The CPU view is only handed out through [`DmaBuf::with_cpu`] and
/// [`DmaBuf::with_cpu_mut`], which sync the mapping around the access.  While a
/// work request that uses the buffer is posted, the request owns the buffer
/// (see [`crate::wr::Posted`]), so the CPU cannot touch memory the device may be
/// using.
///
/// # Invariants
///
/// `addr` is the DMA mapping of `buf`'s `len` bytes on `pd`'s device, in
/// direction `dir`, until `drop`.  `buf` is never reallocated.
pub struct DmaBuf {
    pd: Arc<Pd>,
    buf: KVec<u8>,
    addr: u64,
    dir: Direction,
}

impl DmaBuf {
    /// Allocates `len` zeroed bytes and maps them.
    pub fn new(
        pd: &Arc<Pd>,
        len: usize,
        dir: Direction,
        flags: kernel::alloc::Flags,
    ) -> Result<Self> {
        if len == 0 || len > u32::MAX as usize {
            return Err(EINVAL);
        }
        let mut buf = KVec::from_elem(0u8, len, flags)?;
        let dev = pd.device().as_ptr();
        // SAFETY: `buf` is `len` bytes of kmalloc memory that stays allocated
        // (and unmoved) until `drop` unmaps it.
        let addr = unsafe {
            bindings::rrs_ib_dma_map_single(dev, buf.as_mut_ptr().cast(), len, dir.raw())
        };
        // SAFETY: `addr` was just returned by the mapping call on `dev`.
        if unsafe { bindings::rrs_ib_dma_mapping_error(dev, addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: `addr` maps `buf`, which is never resized.
        Ok(Self {
            pd: pd.clone(),
            buf,
            addr,
            dir,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: zero-length buffers are refused by `new`.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bus address of the first byte.
    pub fn dma_addr(&self) -> u64 {
        self.addr
    }

    /// The PD whose device mapped the buffer.
    pub fn pd(&self) -> &Arc<Pd> {
        &self.pd
    }

    /// Reads the buffer as the device left it.
    pub fn with_cpu<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let dev = self.pd.device().as_ptr();
        // SAFETY: `addr`/`len` is our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_cpu(dev, self.addr, self.len(), self.dir.raw())
        };
        f(&self.buf)
    }

    /// Writes the buffer and hands it back to the device.
    pub fn with_cpu_mut<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let dev = self.pd.device().as_ptr();
        // SAFETY: as in `with_cpu`.
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_cpu(dev, self.addr, self.len(), self.dir.raw())
        };
        let r = f(&mut self.buf);
        // SAFETY: as above.
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_device(dev, self.addr, self.len(), self.dir.raw())
        };
        r
    }

    /// A scatter/gather entry covering `len` bytes from `off`, with the PD's
    /// local DMA lkey.
    pub fn sge(&self, off: usize, len: usize) -> Result<crate::wr::Sge<'_>> {
        let end = off.checked_add(len).ok_or(EINVAL)?;
        if end > self.len() {
            return Err(EINVAL);
        }
        Ok(crate::wr::Sge {
            addr: self.addr + off as u64,
            length: len as u32,
            lkey: self.pd.local_dma_lkey(),
            _buf: core::marker::PhantomData,
        })
    }

    /// Copies `dst.len()` bytes from `off` out of a buffer the peer may still
    /// write into (one exposed through an rkey): no reference to the shared
    /// memory is created, only a copy.
    pub(crate) fn read_shared(&self, off: usize, dst: &mut [u8]) -> Result {
        let end = off.checked_add(dst.len()).ok_or(EINVAL)?;
        if end > self.len() {
            return Err(EINVAL);
        }
        let dev = self.pd.device().as_ptr();
        // SAFETY: `addr`/`len` is our live mapping (type invariant).
        unsafe {
            bindings::rrs_ib_dma_sync_single_for_cpu(dev, self.addr, self.len(), self.dir.raw())
        };
        // SAFETY: `off..end` is inside the allocation (checked above); `dst`
        // is a distinct, writable local slice.  The source is read through a
        // raw pointer because the device may write it concurrently.
        unsafe {
            core::ptr::copy_nonoverlapping(self.buf.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        let dev = self.pd.device().as_ptr();
        // SAFETY: mapped in `new`; no posted request uses the buffer any more,
        // because posted requests own their `DmaBuf`.
        unsafe { bindings::rrs_ib_dma_unmap_single(dev, self.addr, self.len(), self.dir.raw()) };
    }
}
