// SPDX-License-Identifier: GPL-2.0

//! blk-mq disks for the RNBD client (FFI layer; C glue in `mq_glue.c`).
//!
//! - [`TagSet`]: a tag set whose `queue_rq` hands every request to
//!   [`Queue::queue_rq`] of the disk it was queued on.  The queue is
//!   *blocking*: `queue_rq` may sleep (waiting for a transport permit,
//!   posting under a mutex).  Shared by the disks of one session, so blk-mq
//!   shares its tags fairly between them.
//! - [`Disk`]: a gendisk on a tag set with its queue limits; removing it
//!   (drop) waits for its requests to end.
//! - [`Rq`]: one started request, owned by the driver until it is ended,
//!   exactly once ([`Rq::end`], or -EIO on drop).

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use rdma::sg::SgTable;
use support::sysfs::KobjRef;

/// The operations of requests, RNBD's own.
pub use proto::rnbd::Op;

/// Prefix of this crate's `pr_*` messages.
const __LOG_PREFIX: &[u8] = b"blk_mq\0";

// C types only ever behind a pointer (see blk.rs on why not `kernel::bindings`).
#[repr(C)]
struct RawTagSet {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}
#[repr(C)]
struct RawDisk {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}
#[repr(C)]
struct RawModule {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}
#[repr(C)]
struct RawRequest {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// `struct rrs_disk_params` of mq_glue.h (private to the C glue, so no
/// bindgen type: its size is asserted on both sides).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[expect(missing_docs)] // The block layer's limits, same names and units.
pub struct DiskParams {
    pub sectors: u64,
    pub max_hw_sectors: u32,
    pub max_segments: u32,
    pub max_discard_sectors: u32,
    pub discard_granularity: u32,
    pub discard_alignment: u32,
    pub max_write_zeroes_sectors: u32,
    pub max_secure_erase_sectors: u32,
    pub logical_block_size: u16,
    pub physical_block_size: u16,
    pub write_cache: u8,
    pub fua: u8,
    pub read_only: u8,
    pub virt_boundary_mask: u32,
}

/// `struct rrs_rq_info` of mq_glue.h (as [`DiskParams`]).
#[repr(C)]
#[derive(Default)]
struct RawInfo {
    sector: u64,
    bytes: u32,
    op: u32,
    ioprio: u16,
    fua: u8,
    sync: u8,
}

// Kept equal to the `static_assert`s in mq_glue.c.
const _: () = assert!(core::mem::size_of::<DiskParams>() == 48);
const _: () = assert!(core::mem::size_of::<RawInfo>() == 24);

type QueueRqFn = unsafe extern "C" fn(ctx: *mut core::ffi::c_void, rq: *mut RawRequest) -> i32;

extern "C" {
    fn rrs_tagset_new(
        nr_hw_queues: u32,
        depth: u32,
        f: QueueRqFn,
        owner: *mut RawModule,
    ) -> *mut RawTagSet;
    fn rrs_tagset_free(ts: *mut RawTagSet);
    fn rrs_disk_new(
        ts: *mut RawTagSet,
        p: *const DiskParams,
        major: i32,
        first_minor: i32,
        minors: i32,
        name: *const kernel::ffi::c_char,
        ctx: *mut core::ffi::c_void,
    ) -> *mut RawDisk;
    fn rrs_disk_add(d: *mut RawDisk) -> i32;
    fn rrs_disk_del(d: *mut RawDisk, added: bool);
    fn rrs_disk_kobj(d: *mut RawDisk) -> *mut core::ffi::c_void;
    fn rrs_disk_openers(d: *mut RawDisk) -> i32;
    fn rrs_disk_set_capacity(d: *mut RawDisk, sectors: u64);
    fn rrs_rq_info(rq: *mut RawRequest, i: *mut RawInfo);
    fn rrs_rq_start(rq: *mut RawRequest);
    fn rrs_rq_end(rq: *mut RawRequest, err: i32);
    fn rrs_rq_requeue(rq: *mut RawRequest);
    fn rrs_rq_map_sg(
        rq: *mut RawRequest,
        sgl: *mut core::ffi::c_void,
        cap: u32,
        bytes: *mut u32,
    ) -> i32;
    fn rrs_register_blkdev(name: *const kernel::ffi::c_char) -> i32;
    fn rrs_unregister_blkdev(major: i32, name: *const kernel::ffi::c_char);
}

/// An `ERR_PTR`-or-NULL result of the C glue as a `Result`.
fn err_ptr<T>(p: *mut T) -> Result<NonNull<T>> {
    NonNull::new(kernel::error::from_err_ptr(p)?).ok_or(ENOMEM)
}

/// The driver side of a disk's queue.
pub trait Queue: Send + Sync + 'static {
    /// A request was queued; it is started.  May sleep.  The request must be
    /// ended (from any context) with [`Rq::end`].
    fn queue_rq(&self, rq: Rq);
}

/// blk-mq's `queue_rq`, called by `mq_glue.c` for every request of a disk
/// on a [`TagSet<T>`].
///
/// # Safety
///
/// `ctx` must be the `queuedata` of a live [`Disk<T>`] (an `Arc<T>` it
/// keeps), and `rq` null or a request of that disk that is not started yet.
unsafe extern "C" fn queue_rq_trampoline<T: Queue>(
    ctx: *mut core::ffi::c_void,
    rq: *mut RawRequest,
) -> i32 {
    // SAFETY: `ctx` is the `queuedata` of a `Disk<T>`, an `Arc<T>` that the
    // disk keeps until it is deleted, which waits for queue_rq calls.
    let q = unsafe { &*(ctx as *const T) };
    let Some(ptr) = NonNull::new(rq) else {
        return 0;
    };
    // SAFETY: blk-mq hands us a request that is not started yet.
    unsafe { rrs_rq_start(ptr.as_ptr()) };
    // INVARIANT: started just above, not ended.
    q.queue_rq(Rq { ptr, ended: false });
    0
}

/// A blk-mq tag set.
///
/// # Invariants
///
/// `ptr` is from `rrs_tagset_new` with `queue_rq_trampoline::<T>`, freed in
/// drop, after every disk on it (disks hold an `Arc` of their tag set).
pub struct TagSet<T: Queue> {
    ptr: NonNull<RawTagSet>,
    _t: PhantomData<T>,
}

// SAFETY: the tag set is only handed to the block layer, which locks it.
unsafe impl<T: Queue> Send for TagSet<T> {}
// SAFETY: as above.
unsafe impl<T: Queue> Sync for TagSet<T> {}

impl<T: Queue> TagSet<T> {
    /// A tag set of `nr_hw_queues` queues of `depth` tags, for disks of
    /// module `owner`.
    pub fn new(nr_hw_queues: u32, depth: u32, owner: &'static ThisModule) -> Result<Arc<Self>> {
        if nr_hw_queues == 0 || depth == 0 {
            return Err(EINVAL);
        }
        // SAFETY: the trampoline matches the disks' context type `T`.
        let ptr = err_ptr(unsafe {
            rrs_tagset_new(
                nr_hw_queues,
                depth,
                queue_rq_trampoline::<T>,
                owner.as_ptr().cast(),
            )
        })?;
        // INVARIANT: created just above with `queue_rq_trampoline::<T>`.
        Arc::new(
            Self {
                ptr,
                _t: PhantomData,
            },
            GFP_KERNEL,
        )
        .map_err(|_| {
            // SAFETY: just allocated, no disk on it.
            unsafe { rrs_tagset_free(ptr.as_ptr()) };
            ENOMEM
        })
    }
}

impl<T: Queue> Drop for TagSet<T> {
    fn drop(&mut self) {
        // SAFETY: no disk is left on it (type invariant).
        unsafe { rrs_tagset_free(self.ptr.as_ptr()) };
    }
}

/// A disk.
///
/// # Invariants
///
/// `disk` is from `rrs_disk_new` on `ts` with `queuedata` = `ctx`, an
/// `Arc<T>` turned into a raw pointer, recovered in drop after the disk is
/// deleted.
pub struct Disk<T: Queue> {
    disk: NonNull<RawDisk>,
    ctx: *const T,
    added: bool,
    ts: Arc<TagSet<T>>,
}

// SAFETY: the gendisk is usable from any thread; `ctx` is an `Arc<T>` and
// `T: Send + Sync`.
unsafe impl<T: Queue> Send for Disk<T> {}
// SAFETY: as above.
unsafe impl<T: Queue> Sync for Disk<T> {}

impl<T: Queue> Disk<T> {
    /// Allocates a disk `name` (not visible until [`Disk::add`]).
    pub fn new(
        ts: &Arc<TagSet<T>>,
        p: &DiskParams,
        major: i32,
        first_minor: i32,
        minors: i32,
        name: &CStr,
        ctx: Arc<T>,
    ) -> Result<Self> {
        // What `blk_validate_limits` refuses or WARNs on.  The caller checks
        // limits that come from a peer first; this keeps a WARN out of any
        // caller's reach.
        let page = kernel::page::PAGE_SIZE;
        let lbs = p.logical_block_size;
        if lbs < 512
            || !lbs.is_power_of_two()
            || lbs as usize > page
            || (p.max_hw_sectors as usize) < page / 512
            || p.max_hw_sectors < (lbs / 512) as u32
            || !(p.physical_block_size == 0 || p.physical_block_size.is_power_of_two())
        {
            return Err(EINVAL);
        }
        let raw = Arc::into_raw(ctx);
        // SAFETY: live tag set; `p` and `name` are valid for the call.
        let r = err_ptr(unsafe {
            rrs_disk_new(
                ts.ptr.as_ptr(),
                p,
                major,
                first_minor,
                minors,
                name.as_char_ptr(),
                raw.cast_mut().cast(),
            )
        });
        match r {
            // INVARIANT: created just above on `ts` with `raw` as queuedata.
            Ok(disk) => Ok(Self {
                disk,
                ctx: raw,
                added: false,
                ts: ts.clone(),
            }),
            Err(e) => {
                // SAFETY: from `into_raw` above; no disk refers to it.
                drop(unsafe { Arc::from_raw(raw) });
                Err(e)
            }
        }
    }

    /// Makes the disk visible (`add_disk`).
    pub fn add(&mut self) -> Result {
        if self.added {
            return Err(EEXIST);
        }
        // SAFETY: live, not yet added disk.
        kernel::error::to_result(unsafe { rrs_disk_add(self.disk.as_ptr()) })?;
        self.added = true;
        Ok(())
    }

    /// The disk's device kobject (`/sys/block/<name>`), once added.
    pub fn kobj(&self) -> Option<KobjRef<'_>> {
        if !self.added {
            return None;
        }
        // SAFETY: live disk; its device lives as long as we do.
        let k = unsafe { rrs_disk_kobj(self.disk.as_ptr()) };
        // SAFETY: a registered kobject, alive while `self` is.
        unsafe { KobjRef::from_raw(k) }
    }

    /// Number of openers of the whole disk.
    pub fn openers(&self) -> i32 {
        // SAFETY: live disk.
        unsafe { rrs_disk_openers(self.disk.as_ptr()) }
    }

    /// Changes the capacity and tells user space.
    pub fn set_capacity(&self, sectors: u64) {
        // SAFETY: live disk.
        unsafe { rrs_disk_set_capacity(self.disk.as_ptr(), sectors) };
    }

    /// The tag set.
    pub fn tag_set(&self) -> &Arc<TagSet<T>> {
        &self.ts
    }
}

impl<T: Queue> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: live disk; deleting it waits for its requests and queue_rq
        // calls, after which nothing uses `ctx`.
        unsafe { rrs_disk_del(self.disk.as_ptr(), self.added) };
        // SAFETY: from `into_raw` in `new`, no longer referenced.
        drop(unsafe { Arc::from_raw(self.ctx) });
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug)]
pub struct RqInfo {
    /// The operation, `None` for one the driver does not know.
    pub op: Option<Op>,
    /// First sector.
    pub sector: u64,
    /// Bytes.
    pub bytes: u32,
    /// IO priority.
    pub ioprio: u16,
    /// FUA or PREFLUSH.
    pub fua: bool,
    /// `op_is_sync()`.
    pub sync: bool,
}

/// A started request.
///
/// # Invariants
///
/// `ptr` is a started request handed to `queue_rq` and not ended unless
/// `ended`.
pub struct Rq {
    ptr: NonNull<RawRequest>,
    ended: bool,
}

// SAFETY: a started request may be ended from any context.
unsafe impl Send for Rq {}

impl Rq {
    /// The request's operation, position and size.
    pub fn info(&self) -> RqInfo {
        let mut i = RawInfo::default();
        // SAFETY: live request (type invariant).
        unsafe { rrs_rq_info(self.ptr.as_ptr(), &mut i) };
        RqInfo {
            op: Op::try_from(i.op).ok(),
            sector: i.sector,
            bytes: i.bytes,
            ioprio: i.ioprio,
            fua: i.fua != 0,
            sync: i.sync != 0,
        }
    }

    /// Describes the request's data pages in `sg` (nothing for a request
    /// without data).  The entries stay valid while the request is not
    /// ended: the caller keeps `self` until the transport is done with
    /// `sg` (it unmaps and forgets the entries before it reports the
    /// request's end).
    pub fn map_sg(&self, sg: &mut SgTable) -> Result {
        let cap = sg.cap();
        let raw = sg.as_raw()?;
        let mut bytes = 0u32;
        // SAFETY: live request; `raw` is a table of `cap` initialised
        // entries, not mapped (`as_raw` refuses otherwise).
        let n = unsafe { rrs_rq_map_sg(self.ptr.as_ptr(), raw, cap, &mut bytes) };
        let n = u32::try_from(n).map_err(|_| EINVAL)?;
        // SAFETY: the entries describe the request's pages, which stay
        // valid until the request ends; `self` is not ended here, and the
        // caller's contract (above) keeps it so while the table is used.
        unsafe { sg.set_filled(n, bytes) }
    }

    /// Ends the request with `err` (0 or a negative errno).
    pub fn end(mut self, err: i32) {
        self.ended = true;
        // SAFETY: live started request, ended once (we consume `self`).
        unsafe { rrs_rq_end(self.ptr.as_ptr(), err) };
    }

    /// Gives the request back to blk-mq, which hands it to `queue_rq`
    /// again 10 ms later (from its requeue work): for a request that could not
    /// be sent and should wait rather than fail.  Any context.  The caller
    /// is done with the pages it described ([`Rq::map_sg`]).
    pub fn requeue(mut self) {
        self.ended = true;
        // SAFETY: live started request, handed back once (we consume
        // `self`); blk-mq owns it again after the call.
        unsafe { rrs_rq_requeue(self.ptr.as_ptr()) };
    }
}

impl Drop for Rq {
    fn drop(&mut self) {
        if !self.ended {
            // SAFETY: live started request, not ended.
            unsafe { rrs_rq_end(self.ptr.as_ptr(), EIO.to_errno()) };
        }
    }
}

/// A parking place for one started request, used without a lock from any
/// context: [`RqSlot::put`] a request in, [`RqSlot::take`] it out (for the
/// transport's completion, in whatever context that runs).
///
/// # Invariants
///
/// `ptr` is null or a started request that `self` owns (not ended).
pub struct RqSlot {
    ptr: AtomicPtr<RawRequest>,
}

impl Default for RqSlot {
    fn default() -> Self {
        Self {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }
}

impl RqSlot {
    /// Parks `rq`; gives it back if the slot is taken.
    pub fn put(&self, rq: Rq) -> core::result::Result<(), Rq> {
        let p = rq.ptr.as_ptr();
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            p,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // INVARIANT: the slot owns the started request now.
                core::mem::forget(rq);
                Ok(())
            }
            Err(_) => Err(rq),
        }
    }

    /// Takes the parked request out, if there is one.
    pub fn take(&self) -> Option<Rq> {
        let p = self.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // INVARIANT: a started request the slot owned, not ended; the
        // caller owns it now.
        NonNull::new(p).map(|ptr| Rq { ptr, ended: false })
    }
}

impl Drop for RqSlot {
    fn drop(&mut self) {
        // Ended with an error, by `Rq`'s drop.
        drop(self.take());
    }
}

/// A dynamically allocated block major, released on drop.
pub struct Major {
    major: i32,
    name: &'static CStr,
}

impl Major {
    /// Registers `name` (e.g. `rnbd`) with a free major.
    pub fn register(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is a static C string.
        let r = unsafe { rrs_register_blkdev(name.as_char_ptr()) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(Self { major: r, name })
    }

    /// The major number.
    pub fn get(&self) -> i32 {
        self.major
    }
}

impl Drop for Major {
    fn drop(&mut self) {
        // SAFETY: registered in `register` with this name.
        unsafe { rrs_unregister_blkdev(self.major, self.name.as_char_ptr()) };
    }
}
