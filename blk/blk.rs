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
//! - [`BioPool`]: the bios of one submitter, each with room in front for
//!   its completion context (a `bio_set` with front padding: no allocation
//!   per bio but the bio's own, from the pool's mempool), and the work queue
//!   of completions that come in an interrupt.  Dropping it waits for every
//!   completion, so its owner drops it before unloading.
//! - [`submit`]: one bio on a [`Bdev`], optionally over the first bytes of a
//!   [`PageBlock`]; its completion runs the caller's closure right there if
//!   the bio completes in task context (as a driver that completes in its
//!   submission path does), else from the pool's work queue.  Task context
//!   may still be atomic (the block layer completes some requests under
//!   `rcu_read_lock()`), so the closure must not sleep.  The bio holds the
//!   device and the page block until it completed (its context drops them
//!   just before the closure runs).

use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use support::pages::PageBlock;

/// The operations of [`submit`]: RNBD's own, numbered as the C glue's
/// `enum rrs_bio_op`.
pub use proto::rnbd::Op;

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

type DoneFn = unsafe extern "C" fn(ctx: *mut core::ffi::c_void, err: i32);

/// Bytes of completion context in front of each bio; kept equal to
/// `RRS_BIO_CTX_SIZE` in helpers.h.  [`submit`] refuses (at build time) a
/// closure whose context does not fit.
const CTX_SIZE: usize = 512;
/// Alignment of that room (an array of `u64` in C).
const CTX_ALIGN: usize = 8;

// The C types only ever behind a pointer are declared opaque here rather
// than taken from `kernel::bindings`: without lockdep some of those contain
// zero-sized members, which `improper_ctypes` refuses even behind pointers.

/// `struct file`, only ever behind a pointer.
#[repr(C)]
struct RawFile {
    _opaque: [u8; 0],
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// `struct bio`, only ever behind a pointer.
#[repr(C)]
struct RawBio {
    _opaque: [u8; 0],
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// `struct rrs_bio_pool` (helpers.c), only ever behind a pointer.
#[repr(C)]
struct RawPool {
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
    fn rrs_bio_ctx_size() -> usize;
    fn rrs_bio_pool_new(name: *const kernel::ffi::c_char) -> *mut RawPool;
    fn rrs_bio_pool_free(p: *mut RawPool);
    fn rrs_bio_alloc(
        p: *mut RawPool,
        f: *mut RawFile,
        op: u32,
        sync: bool,
        fua: bool,
        sector: u64,
        bi_size: u32,
        prio: u16,
        page: *mut RawPage,
        len: u32,
        ctx: *mut *mut core::ffi::c_void,
    ) -> *mut RawBio;
    fn rrs_bio_submit(bio: *mut RawBio, done: DoneFn);
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
    pub fn disk_kobj(&self) -> Option<support::sysfs::KobjRef<'_>> {
        // SAFETY: live file; the disk's device lives at least as long as the
        // opened block device.
        unsafe { support::sysfs::KobjRef::from_raw(rrs_bdev_disk_kobj(self.file.as_ptr())) }
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

/// The bios of one submitter and the work queue of their completions that
/// come in an interrupt (see the crate's documentation).
///
/// # Invariants
///
/// `raw` is from `rrs_bio_pool_new`, freed in `drop`.
pub struct BioPool {
    raw: NonNull<RawPool>,
}

// SAFETY: the pool is a bio_set and a workqueue, both used from any context.
unsafe impl Send for BioPool {}
// SAFETY: as above.
unsafe impl Sync for BioPool {}

impl BioPool {
    /// A pool whose work queue is called `name` (process context).
    pub fn new(name: &'static CStr) -> Result<Self> {
        // The C room must be what `Fits` checks against.
        // SAFETY: no precondition.
        if unsafe { rrs_bio_ctx_size() } != CTX_SIZE {
            pr_err!("blk: bio context room differs between C and Rust\n");
            return Err(EINVAL);
        }
        // SAFETY: `name` is a static NUL-terminated string.
        let raw = unsafe { rrs_bio_pool_new(name.as_char_ptr()) };
        // INVARIANT: allocated just above (NULL on failure); `drop` frees it.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for BioPool {
    /// Waits for every completion of the pool's bios to return (process
    /// context; never from one of those completions).
    fn drop(&mut self) {
        // SAFETY: live pool (type invariant), freed once here.
        unsafe { rrs_bio_pool_free(self.raw.as_ptr()) }
    }
}

/// What a bio carries in front of it until its completion: the caller's
/// closure and the references that keep the bio's device and pages alive.
struct BioCtx<F: FnOnce(i32) + Send + 'static> {
    done: F,
    _bdev: Arc<Bdev>,
    _data: Option<Arc<PageBlock>>,
}

/// Refuses, when `submit` is instantiated, a context that does not fit the
/// room in front of the bio.
struct Fits<F: FnOnce(i32) + Send + 'static>(core::marker::PhantomData<F>);

impl<F: FnOnce(i32) + Send + 'static> Fits<F> {
    const OK: () = assert!(
        core::mem::size_of::<BioCtx<F>>() <= CTX_SIZE
            && core::mem::align_of::<BioCtx<F>>() <= CTX_ALIGN
    );
}

/// Bio completion, called by `blk/helpers.c` once per bio that `submit`
/// handed to the block layer: in the completing task or from the pool's
/// work queue, never in an interrupt.
///
/// # Safety
///
/// `ctx` must be the room in front of a bio that `submit` filled with a
/// `BioCtx<F>` (with this `F`), and this must be its only call.
unsafe extern "C" fn bio_done<F: FnOnce(i32) + Send + 'static>(
    ctx: *mut core::ffi::c_void,
    err: i32,
) {
    // SAFETY: `submit` wrote a `BioCtx<F>` there; it is moved out once (the
    // bio and its room are freed after this returns, without dropping it).
    let c = unsafe { core::ptr::read(ctx.cast::<BioCtx<F>>()) };
    let BioCtx { done, _bdev, _data } = c;
    // The references go first, while the closure still holds what keeps the
    // caller's own alive (its request), so none is the last one here (for
    // the device, `fput` would be safe in any context anyway).
    drop(_bdev);
    drop(_data);
    done(err);
}

/// Submits one bio of `pool` on `bdev` (process context).  For [`Op::Read`]
/// and [`Op::Write`], `data` is the page block and the byte count from its
/// start; the other operations take none and use `req.bi_size` (zero for
/// [`Op::Flush`]).  On success `done` runs once the bio completed, with 0
/// or a negative errno: in the completing task if the bio completes in task
/// context, else from the pool's work queue; it must not sleep.  On error
/// it is dropped without running.  Allocates nothing but the bio, from the
/// pool's mempool (which waits rather than fails).
pub fn submit<F: FnOnce(i32) + Send + 'static>(
    pool: &BioPool,
    bdev: &Arc<Bdev>,
    req: Request,
    data: Option<(&Arc<PageBlock>, usize)>,
    done: F,
) -> Result {
    // Evaluated at build time, for this `F`.
    #[allow(clippy::let_unit_value)]
    let () = Fits::<F>::OK;
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
    let mut room: *mut core::ffi::c_void = core::ptr::null_mut();
    // SAFETY: live pool and file; `page..page+len` is inside the block,
    // which the context written below keeps alive until completion.
    let bio = unsafe {
        rrs_bio_alloc(
            pool.raw.as_ptr(),
            bdev.file.as_ptr(),
            req.op as u32,
            req.sync,
            req.fua,
            req.sector,
            req.bi_size,
            req.prio,
            page,
            len,
            &mut room,
        )
    };
    let bio = kernel::error::from_err_ptr(bio)?;
    let ctx = BioCtx {
        done,
        _bdev: bdev.clone(),
        _data: block,
    };
    // SAFETY: `room` is the bio's `CTX_SIZE` bytes, `CTX_ALIGN`-aligned and
    // unused until now; `Fits` checked that the context fits.  The bio is
    // then submitted, and `bio_done::<F>` moves the context out once.
    unsafe {
        core::ptr::write(room.cast::<BioCtx<F>>(), ctx);
        rrs_bio_submit(bio, bio_done::<F>);
    }
    Ok(())
}
