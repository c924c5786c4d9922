// SPDX-License-Identifier: GPL-2.0

//! Blocks of contiguous pages that a peer accesses (through an rkey, see
//! `rdma::pages::BlockMr`) and the block layer reads or writes.
//!
//! A server's chunks are such blocks: the client RDMA-writes requests into
//! them at any time its rkey is valid, the block layer reads or writes them by
//! DMA, and the CPU parses the request headers in them.  So the CPU never gets
//! a reference into a block, only copies ([`PageBlock::read`],
//! [`PageBlock::write`]): the bytes may change under it, and a private copy is
//! also what makes validation meaningful (no double fetch).

use crate::bindings;
use core::ptr::NonNull;
use kernel::prelude::*;

/// `2^order` physically contiguous, zeroed pages.
///
/// # Invariants
///
/// `page` is the first page of an `alloc_pages(order)` block, freed in `drop`;
/// lowmem (GFP_KERNEL), so `addr` is its kernel mapping.
pub struct PageBlock {
    page: NonNull<bindings::page>,
    addr: NonNull<u8>,
    order: u32,
}

// SAFETY: the block is plain memory; all CPU access goes through copies.
unsafe impl Send for PageBlock {}
// SAFETY: as above; `&self` methods only copy.
unsafe impl Sync for PageBlock {}

impl PageBlock {
    /// Allocates a block of `len` bytes, which must be a power of two of at
    /// least one page.
    pub fn new(len: usize) -> Result<Self> {
        if len < kernel::page::PAGE_SIZE || !len.is_power_of_two() {
            return Err(EINVAL);
        }
        let order = (len / kernel::page::PAGE_SIZE).trailing_zeros();
        // SAFETY: plain allocation.
        let page = NonNull::new(unsafe { bindings::rrs_alloc_pages(order) }).ok_or(ENOMEM)?;
        // SAFETY: `page` is a live lowmem page.
        let addr = unsafe { bindings::rrs_page_address(page.as_ptr()) };
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            // SAFETY: allocated just above with this order.
            unsafe { bindings::rrs_free_pages(page.as_ptr(), order) };
            return Err(ENOMEM);
        };
        // INVARIANT: `page` is a lowmem block of this order, `addr` its mapping.
        Ok(Self { page, addr, order })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        kernel::page::PAGE_SIZE << self.order
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first `struct page`, for building block-layer IO on the block.
    /// Using it is `unsafe` on the caller's side.
    pub fn first_page(&self) -> *mut kernel::bindings::page {
        self.page.as_ptr().cast()
    }

    fn check(&self, off: usize, n: usize) -> Result {
        match off.checked_add(n) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(EINVAL),
        }
    }

    /// Copies `dst.len()` bytes from `off`.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> Result {
        self.check(off, dst.len())?;
        // SAFETY: in bounds (checked); `dst` is a distinct local slice.  The
        // source is read through a raw pointer: the peer or a device may
        // write it concurrently, and no reference to it is ever created.
        unsafe {
            core::ptr::copy_nonoverlapping(self.addr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    /// Copies `src` to `off`.
    pub fn write(&self, off: usize, src: &[u8]) -> Result {
        self.check(off, src.len())?;
        // SAFETY: in bounds (checked); raw-pointer write, see `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.addr.as_ptr().add(off), src.len())
        };
        Ok(())
    }
}

impl Drop for PageBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this order; whoever mapped or
        // registered it holds an `Arc` to it, so nothing uses it any more.
        unsafe { bindings::rrs_free_pages(self.page.as_ptr(), self.order) };
    }
}
