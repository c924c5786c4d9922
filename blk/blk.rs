// SPDX-License-Identifier: GPL-2.0

//! Block devices and bios for the RNBD server (FFI layer).
//!
//! The 6.12 `kernel` crate can open no block device and submit no bio, so
//! this crate wraps the few calls RNBD needs behind safe types, with the C
//! glue in `helpers.c` (the block layer's accessors are static inlines, and a
//! bio completes through a C callback).  Like `rdma`, it is the only place of
//! its area with `unsafe`.
//!
//! - [`Bdev`]: an opened block device (`struct file`), closed on drop.
//! - [`submit`]: one bio on a [`Bdev`], optionally over the first bytes of a
//!   [`PageBlock`]; its completion runs the caller's closure right there if
//!   the bio completes in task context (as a driver that completes in its
//!   submission path does), else from a work item on the caller's
//!   [`OwnedQueue`].  Task context may still be atomic (the block layer
//!   completes some requests under `rcu_read_lock()`), so the closure must
//!   not sleep.  The bio holds the device and the page block until then.
//! - [`wait_idle`]: what the submitting module calls before it unloads, then
//!   flushing its queue: no completion is still running its code after that.

use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};
use rdma::pages::PageBlock;
use rdma::wq::OwnedQueue;

/// The operations of [`submit`] and of [`mq`] requests: RNBD's own, numbered
/// as the C glue's `enum rrs_bio_op`.
pub use proto::rnbd::Op;

pub mod mq;

/// Prefix of this crate's `pr_*` messages.
const __LOG_PREFIX: &[u8] = b"blk\0";

/// `struct rrs_bdev_limits` of helpers.h (private to the C glue, so no
/// bindgen type: its size is asserted on both sides).
#[repr(C)]
#[derive(Default)]
struct RawLimits {
    nr_sectors: u64,
    max_hw_sectors: u32,
    max_write_zeroes_sectors: u32,
    max_discard_sectors: u32,
    discard_granularity: u32,
    discard_alignment: u32,
    max_secure_erase_sectors: u32,
    physical_block_size: u16,
    logical_block_size: u16,
    max_segments: u16,
    write_cache: u8,
    fua: u8,
}

// Kept equal to the `static_assert` in helpers.c.
const _: () = assert!(core::mem::size_of::<RawLimits>() == 40);

type DoneFn = unsafe extern "C" fn(ctx: *mut core::ffi::c_void, err: i32, task: bool);

// The C types only ever behind a pointer are declared opaque here rather
// than taken from `kernel::bindings`: without lockdep some of those contain
// zero-sized members, which `improper_ctypes` refuses even behind pointers.

/// `struct file`, only ever behind a pointer.
#[repr(C)]
struct RawFile {
    _opaque: [u8; 0],
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// `struct page`, only ever behind a pointer.
#[repr(C)]
struct RawPage {
    _opaque: [u8; 0],
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

extern "C" {
    fn rrs_bdev_open(path: *const kernel::ffi::c_char, write: bool) -> *mut RawFile;
    fn rrs_bdev_close(f: *mut RawFile);
    fn rrs_bdev_limits(f: *mut RawFile, l: *mut RawLimits);
    fn rrs_bdev_name(f: *mut RawFile, buf: *mut u8, len: usize) -> i32;
    fn rrs_bdev_disk_kobj(f: *mut RawFile) -> *mut core::ffi::c_void;
    fn rrs_bio_submit(
        f: *mut RawFile,
        op: u32,
        sync: bool,
        fua: bool,
        sector: u64,
        bi_size: u32,
        prio: u16,
        page: *mut RawPage,
        len: u32,
        ctx: *mut core::ffi::c_void,
    ) -> i32;
    fn rrs_bio_wait_idle();
}

/// Limits and size of a block device, as RNBD's open response reports them.
#[derive(Clone, Copy, Debug, Default)]
#[expect(missing_docs)] // Same names and units as the block layer's accessors.
pub struct Limits {
    pub nr_sectors: u64,
    pub max_hw_sectors: u32,
    pub max_write_zeroes_sectors: u32,
    pub max_discard_sectors: u32,
    pub discard_granularity: u32,
    pub discard_alignment: u32,
    pub max_secure_erase_sectors: u32,
    pub physical_block_size: u16,
    pub logical_block_size: u16,
    pub max_segments: u16,
    pub write_cache: bool,
    pub fua: bool,
}

/// An opened block device.
///
/// # Invariants
///
/// `file` is a block device file from `bdev_file_open_by_path`, put in `drop`.
pub struct Bdev {
    file: NonNull<RawFile>,
    write: bool,
}

// SAFETY: a block device file may be used and put from any thread.
unsafe impl Send for Bdev {}
// SAFETY: every `&self` operation is a read of the device or a bio submission.
unsafe impl Sync for Bdev {}

impl Bdev {
    /// Opens the block device at `path`, for writing too if `write`.
    pub fn open(path: &CStr, write: bool) -> Result<Self> {
        // SAFETY: `path` is NUL-terminated and valid for the call.
        let f = kernel::error::from_err_ptr(unsafe { rrs_bdev_open(path.as_char_ptr(), write) })?;
        // INVARIANT: opened just above; `drop` puts it.
        Ok(Self {
            file: NonNull::new(f).ok_or(ENODEV)?,
            write,
        })
    }

    /// True if opened for writing.
    pub fn writable(&self) -> bool {
        self.write
    }

    /// Current size and limits.
    pub fn limits(&self) -> Limits {
        let mut l = RawLimits::default();
        // SAFETY: live file (type invariant); `l` is valid for the call.
        unsafe { rrs_bdev_limits(self.file.as_ptr(), &mut l) };
        Limits {
            nr_sectors: l.nr_sectors,
            max_hw_sectors: l.max_hw_sectors,
            max_write_zeroes_sectors: l.max_write_zeroes_sectors,
            max_discard_sectors: l.max_discard_sectors,
            discard_granularity: l.discard_granularity,
            discard_alignment: l.discard_alignment,
            max_secure_erase_sectors: l.max_secure_erase_sectors,
            physical_block_size: l.physical_block_size,
            logical_block_size: l.logical_block_size,
            max_segments: l.max_segments,
            write_cache: l.write_cache != 0,
            fua: l.fua != 0,
        }
    }

    /// The whole disk's sysfs directory (for `block_dev` links).
    pub fn disk_kobj(&self) -> Option<rdma::sysfs::KobjRef<'_>> {
        // SAFETY: live file; the disk's device lives at least as long as the
        // opened block device.
        unsafe { rdma::sysfs::KobjRef::from_raw(rrs_bdev_disk_kobj(self.file.as_ptr())) }
    }

    /// The device's name (`%pg`, e.g. `nullb0`), into `buf`; returns its
    /// length (truncated to the buffer, which stays NUL-terminated).
    pub fn name(&self, buf: &mut [u8]) -> usize {
        if buf.is_empty() {
            return 0;
        }
        // SAFETY: live file; `buf` is writable for its length.
        let n = unsafe { rrs_bdev_name(self.file.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        (n.max(0) as usize).min(buf.len() - 1)
    }
}

impl Drop for Bdev {
    fn drop(&mut self) {
        // SAFETY: opened in `open`; bios hold an `Arc<Bdev>`, so none is in
        // flight any more.
        unsafe { rrs_bdev_close(self.file.as_ptr()) };
    }
}

/// One bio.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// `REQ_SYNC`.
    pub sync: bool,
    /// `REQ_FUA`.
    pub fua: bool,
    /// First sector (512 bytes).
    pub sector: u64,
    /// Bytes, for the operations without data.
    pub bi_size: u32,
    /// IO priority.
    pub prio: u16,
}

/// A bio's completion: runs `done` with the bio's status, inline or from a
/// work item.
///
/// `repr(C)` with `done_fn` first: the C glue's `bi_private` points here and
/// calls `done_fn` (`struct rrs_bio_ctx_head`), so the bio needs no context
/// of its own.
#[repr(C)]
#[pin_data]
struct BioCtx<F: FnOnce(i32) + Send + 'static> {
    done_fn: DoneFn,
    #[pin]
    work: Work<BioCtx<F>>,
    done: Option<F>,
    status: i32,
    wq: Arc<OwnedQueue>,
    _bdev: Arc<Bdev>,
    _data: Option<Arc<PageBlock>>,
}

impl_has_work! {
    impl{F: FnOnce(i32) + Send + 'static} HasWork<Self> for BioCtx<F> { self.work }
}

impl<F: FnOnce(i32) + Send + 'static> WorkItem for BioCtx<F> {
    type Pointer = Pin<KBox<Self>>;

    fn run(this: Pin<KBox<Self>>) {
        // SAFETY: `done` and `status` are not structurally pinned.
        let this = unsafe { Pin::into_inner_unchecked(this) };
        let status = this.status;
        let mut this = this;
        if let Some(f) = this.done.take() {
            f(status);
        }
    }
}

/// Bio completion, called by `blk/helpers.c` once per bio that `submit`
/// handed to the block layer, in any context; `task` is `in_task()`.
///
/// # Safety
///
/// `ctx` must be the pointer that `submit` leaked from a
/// `Pin<KBox<BioCtx<F>>>` (with this `F`), and this must be its only call.
unsafe extern "C" fn bio_done<F: FnOnce(i32) + Send + 'static>(
    ctx: *mut core::ffi::c_void,
    err: i32,
    task: bool,
) {
    // SAFETY: `ctx` is the `Pin<KBox<BioCtx<F>>>` leaked by `submit`, handed
    // back exactly once by the bio's completion.
    let mut b = unsafe { Pin::new_unchecked(KBox::from_raw(ctx.cast::<BioCtx<F>>())) };
    if task {
        // No queue hop: the caller's closure does not sleep.  The context
        // goes first, while the closure still holds what keeps the caller's
        // own references alive (its request), so none of the context's is
        // the last one here: the device (`fput` would be safe anyway), the
        // page block, the queue (its owner waits for `wait_idle` first).
        // SAFETY: `done` is not structurally pinned.
        let f = unsafe { b.as_mut().get_unchecked_mut() }.done.take();
        drop(b);
        if let Some(f) = f {
            f(err);
        }
        return;
    }
    // SAFETY: `status` is not structurally pinned.
    unsafe { b.as_mut().get_unchecked_mut().status = err };
    // Interrupt context: defer, without allocating.  The queue outlives the
    // item: the item holds it, and its owner flushes it before dropping its
    // own reference.
    let wq: *const OwnedQueue = &*b.wq;
    // SAFETY: `wq` points into the `Arc` held by `b`, which the queue keeps
    // alive (in `b`) until the item has run.
    unsafe { &*wq }.queue().enqueue(b);
}

/// Waits until every bio submitted by [`submit`] (by any module) has
/// completed and its completion has returned or been queued (process
/// context).  A module that submits calls this before it unloads, then
/// flushes the queues it gave [`submit`].
pub fn wait_idle() {
    // SAFETY: no precondition; the counter and wait queue are static.
    unsafe { rrs_bio_wait_idle() }
}

/// Submits one bio on `bdev` (process context).  For [`Op::Read`] and
/// [`Op::Write`], `data` is the page block and the byte count from its
/// start; the other operations take none and use `req.bi_size` (zero for
/// [`Op::Flush`]).  On success `done` runs once the bio completed, with 0
/// or a negative errno: in the completing task if the bio completes in task
/// context, else on `wq`; it must not sleep.  On error it is dropped
/// without running.
pub fn submit<F: FnOnce(i32) + Send + 'static>(
    wq: &Arc<OwnedQueue>,
    bdev: &Arc<Bdev>,
    req: Request,
    data: Option<(&Arc<PageBlock>, usize)>,
    done: F,
) -> Result {
    if req.op.modifies() && !bdev.write {
        return Err(EPERM);
    }
    if req.op == Op::Flush && req.bi_size != 0 {
        return Err(EINVAL);
    }
    let (page, len, block) = match (req.op.has_data(), data) {
        (true, Some((b, len))) => {
            if len == 0 || len > b.len() || len > u32::MAX as usize {
                return Err(EINVAL);
            }
            (
                b.first_page().cast::<RawPage>(),
                len as u32,
                Some(b.clone()),
            )
        }
        (false, None) => (core::ptr::null_mut(), 0, None),
        _ => return Err(EINVAL),
    };
    let ctx = KBox::pin_init(
        pin_init!(BioCtx::<F> {
            done_fn: bio_done::<F>,
            work <- new_work!("blk::BioCtx"),
            done: Some(done),
            status: 0,
            wq: wq.clone(),
            _bdev: bdev.clone(),
            _data: block,
        }),
        GFP_KERNEL,
    )?;
    // SAFETY: the pointer goes to the bio and comes back once in `bio_done`.
    let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(ctx) });
    // SAFETY: live file; `page..page+len` is inside the block, which the
    // context keeps alive until completion; `raw` starts with its
    // completion function (`BioCtx` is `repr(C)`).
    let r = unsafe {
        rrs_bio_submit(
            bdev.file.as_ptr(),
            req.op as u32,
            req.sync,
            req.fua,
            req.sector,
            req.bi_size,
            req.prio,
            page,
            len,
            raw.cast(),
        )
    };
    if r != 0 {
        // SAFETY: not submitted, so the bio will never hand it back.
        drop(unsafe { KBox::from_raw(raw) });
        return Err(Error::from_errno(r));
    }
    Ok(())
}
