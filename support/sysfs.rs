// SPDX-License-Identifier: GPL-2.0

//! sysfs directories, attributes, links and a class with its `ctl` device
//! (the 6.12 `kernel` crate has no kobject support).
//!
//! Shapes what upstream RNBD/RTRS expose: `/sys/class/<name>/ctl/...`,
//! directories of attributes served by a Rust [`Attrs`] handler, and
//! symlinks.  Every type removes what it created when dropped; an attribute
//! handler lives until the kernel releases its kobject (after the directory
//! is dropped and the last open file of it is closed).

use crate::bindings;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

/// A kobject to create things under, borrowed from its owner.
///
/// # Invariants
///
/// `ptr` is a live kobject for `'a`.
#[derive(Clone, Copy)]
pub struct KobjRef<'a> {
    ptr: NonNull<bindings::kobject>,
    _p: core::marker::PhantomData<&'a ()>,
}

impl KobjRef<'_> {
    /// The raw kobject, for the `blk` crate's block-device links.
    ///
    /// # Safety
    ///
    /// Only to pass to C that takes a kobject reference of its own.
    pub unsafe fn raw(&self) -> *mut core::ffi::c_void {
        self.ptr.as_ptr().cast()
    }

    /// Sends the `ONLINE` (`online`) or `OFFLINE` uevent of the object.
    /// Process context.
    pub fn uevent(&self, online: bool) {
        // SAFETY: live kobject (type invariant).
        unsafe { bindings::rrs_kobj_uevent(self.ptr.as_ptr(), online) };
    }

    /// # Safety
    ///
    /// `ptr` must be a live kobject for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut core::ffi::c_void) -> Option<KobjRef<'a>> {
        // INVARIANT: the caller guarantees that the kobject lives for `'a`.
        Some(KobjRef {
            ptr: NonNull::new(ptr.cast())?,
            _p: core::marker::PhantomData,
        })
    }
}

/// One attribute: its name and mode (0444 read-only, 0644 read-write, 0200
/// write-only).
pub struct Attr {
    /// File name.
    pub name: &'static CStr,
    /// Permission bits.
    pub mode: u16,
}

impl Attr {
    /// A read-only file (0444).
    pub const fn ro(name: &'static CStr) -> Self {
        Self { name, mode: 0o444 }
    }

    /// A file that is read and written (0644).
    pub const fn rw(name: &'static CStr) -> Self {
        Self { name, mode: 0o644 }
    }
}

/// Output of a `show`: at most one page, like `sysfs_emit`.
pub struct Emit<'a> {
    buf: &'a mut [u8],
    n: usize,
}

impl core::fmt::Write for Emit<'_> {
    /// Truncates at the page, as `sysfs_emit` does.
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let room = self.buf.len().saturating_sub(self.n + 1);
        let k = b.len().min(room);
        self.buf[self.n..self.n + k].copy_from_slice(&b[..k]);
        self.n += k;
        Ok(())
    }
}

impl Emit<'_> {
    /// Appends raw bytes (a name that need not be UTF-8).
    pub fn bytes(&mut self, b: &[u8]) {
        let room = self.buf.len().saturating_sub(self.n + 1);
        let k = b.len().min(room);
        self.buf[self.n..self.n + k].copy_from_slice(&b[..k]);
        self.n += k;
    }
}

/// Serves the attributes of a [`Dir`].  Runs in process context; the index
/// is the attribute's position in the table given to [`Dir::new`].
pub trait Attrs: Send + Sync + 'static {
    /// Writes attribute `idx`'s value.
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result;
    /// Handles a write of `input` to attribute `idx`.
    fn store(&self, _idx: usize, _input: &[u8]) -> Result {
        Err(EACCES)
    }
}

/// `show` of an attribute served by `T`, called by the C glue (`sysfs.c`)
/// in process context.
///
/// # Safety
///
/// `ctx` must be the `Arc<T>` context of the attribute's kobject, which that
/// kobject owns until its release, and `buf` a writable page for the call.
unsafe extern "C" fn show_tramp<T: Attrs>(
    ctx: *mut core::ffi::c_void,
    idx: u32,
    buf: *mut u8,
) -> isize {
    // SAFETY: `ctx` is the `Arc<T>` the kobject owns until its release.
    let t = unsafe { &*(ctx as *const T) };
    // SAFETY: sysfs passes a page-sized buffer for the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, kernel::page::PAGE_SIZE) };
    let mut e = Emit { buf, n: 0 };
    match t.show(idx as usize, &mut e) {
        Ok(()) => e.n as isize,
        Err(err) => err.to_errno() as isize,
    }
}

/// `store` of an attribute served by `T`, called by the C glue (`sysfs.c`)
/// in process context.
///
/// # Safety
///
/// `ctx` must be as for [`show_tramp`], and `buf` readable for `n` bytes
/// during the call.
unsafe extern "C" fn store_tramp<T: Attrs>(
    ctx: *mut core::ffi::c_void,
    idx: u32,
    buf: *const u8,
    n: usize,
) -> isize {
    // SAFETY: as in `show_tramp`.
    let t = unsafe { &*(ctx as *const T) };
    // SAFETY: sysfs passes `n` readable bytes for the call.
    let input = unsafe { core::slice::from_raw_parts(buf, n) };
    match t.store(idx as usize, input) {
        Ok(()) => n as isize,
        Err(err) => err.to_errno() as isize,
    }
}

/// Release of a kobject served by `T`, called by the C glue (`sysfs.c`) once
/// its last reference is gone.
///
/// # Safety
///
/// `ctx` must be the kobject's `Arc<T>` context (from `Arc::into_raw`), and
/// this the only call for it: the reference is given back here.
unsafe extern "C" fn release_tramp<T: Attrs>(ctx: *mut core::ffi::c_void) {
    // SAFETY: the kobject's reference, from `Arc::into_raw` in `Dir::new`,
    // released exactly once.
    drop(unsafe { Arc::from_raw(ctx as *const T) });
}

struct Vt<T: Attrs>(core::marker::PhantomData<T>);

impl<T: Attrs> Vt<T> {
    const VT: bindings::rrs_kobj_vt = bindings::rrs_kobj_vt {
        show: Some(show_tramp::<T>),
        store: Some(store_tramp::<T>),
        release: Some(release_tramp::<T>),
    };
}

/// The names and modes of `attrs` as the arrays the C side takes (it keeps
/// the name pointers, which are static, not the arrays).
fn attr_arrays(attrs: &'static [Attr]) -> Result<(KVec<*const kernel::ffi::c_char>, KVec<u16>)> {
    let mut names = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
    let mut modes = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
    for a in attrs {
        names.push(a.name.as_char_ptr(), GFP_KERNEL)?;
        modes.push(a.mode, GFP_KERNEL)?;
    }
    Ok((names, modes))
}

/// A directory with attributes served by a handler.
///
/// # Invariants
///
/// `k` is a live `rrs_kobj` until `drop`.
pub struct Dir {
    k: NonNull<bindings::rrs_kobj>,
}

// SAFETY: kobjects are used from any process context.
unsafe impl Send for Dir {}
// SAFETY: as above.
unsafe impl Sync for Dir {}

/// The lock class of a directory's attributes, for lockdep: directories
/// removed in different contexts (a store, a module's work item) get
/// different classes, so that lockdep does not tie one to the other.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum AttrClass {
    /// Everything else.
    Default = 0,
    /// Directories removed by a transport's work items (paths).
    TransportPath = 1,
    /// Their `stats/`.
    TransportStats = 2,
}

impl Dir {
    /// Creates `parent/name` with `attrs`, served by `handler`.
    pub fn new<T: Attrs>(
        parent: KobjRef<'_>,
        name: &CStr,
        attrs: &'static [Attr],
        handler: Arc<T>,
    ) -> Result<Self> {
        Self::new_in(parent, name, attrs, handler, AttrClass::Default)
    }

    /// [`Dir::new`] with the attributes in lock class `cls`.
    pub fn new_in<T: Attrs>(
        parent: KobjRef<'_>,
        name: &CStr,
        attrs: &'static [Attr],
        handler: Arc<T>,
        cls: AttrClass,
    ) -> Result<Self> {
        let (names, modes) = attr_arrays(attrs)?;
        let ctx = Arc::into_raw(handler);
        let vt: &'static bindings::rrs_kobj_vt = &Vt::<T>::VT;
        // SAFETY: `parent` is live; the arrays are valid for the call (C
        // keeps only the static name pointers); `vt` matches `ctx`'s type.
        let k = unsafe {
            bindings::rrs_kobj_create(
                parent.ptr.as_ptr(),
                name.as_char_ptr(),
                names.as_ptr(),
                modes.as_ptr(),
                attrs.len() as u32,
                ctx.cast_mut().cast(),
                vt,
                cls as u32,
            )
        };
        match crate::from_err_ptr(k) {
            // INVARIANT: created just above; `drop` destroys it.
            Ok(k) => Ok(Self { k }),
            Err(e) => {
                // SAFETY: C did not keep `ctx` (it releases without calling
                // back when creation fails).
                drop(unsafe { Arc::from_raw(ctx) });
                Err(e)
            }
        }
    }

    /// Removes attribute `idx` from within its own store, so that the
    /// directory can then be dropped there (removal otherwise waits for the
    /// running store).  Returns false if it was removed already.
    pub fn remove_self(&self, idx: usize) -> bool {
        let Ok(i) = u32::try_from(idx) else {
            return false;
        };
        // SAFETY: live kobject; the C side checks the index.
        unsafe { bindings::rrs_kobj_remove_self(self.k.as_ptr(), i) }
    }

    /// This directory, to create things under.
    pub fn kobj(&self) -> KobjRef<'_> {
        // SAFETY: live `rrs_kobj` (type invariant); the helper returns the
        // address of its embedded kobject, which is not null.
        let ptr = unsafe { NonNull::new_unchecked(bindings::rrs_kobj_kobj(self.k.as_ptr())) };
        // INVARIANT: the kobject lives as long as `self`, which is borrowed.
        KobjRef {
            ptr,
            _p: core::marker::PhantomData,
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: live; this removes the files (waiting for running show and
        // store calls) and drops our reference.
        unsafe { bindings::rrs_kobj_destroy(self.k.as_ptr()) };
    }
}

/// A plain directory.
///
/// # Invariants
///
/// `k` is from `kobject_create_and_add`, removed in `drop`.
pub struct PlainDir {
    k: NonNull<bindings::kobject>,
}

// SAFETY: as for `Dir`.
unsafe impl Send for PlainDir {}
// SAFETY: as for `Dir`.
unsafe impl Sync for PlainDir {}

impl PlainDir {
    /// Creates `parent/name`.
    pub fn new(parent: KobjRef<'_>, name: &CStr) -> Result<Self> {
        // SAFETY: live parent; `name` is copied.
        let k = unsafe { bindings::rrs_dir_create(parent.ptr.as_ptr(), name.as_char_ptr()) };
        // INVARIANT: created just above (NULL on failure); `drop` removes it.
        Ok(Self {
            k: NonNull::new(k).ok_or(ENOMEM)?,
        })
    }

    /// This directory.
    pub fn kobj(&self) -> KobjRef<'_> {
        // INVARIANT: the directory lives as long as the borrow of `self`.
        KobjRef {
            ptr: self.k,
            _p: core::marker::PhantomData,
        }
    }
}

impl Drop for PlainDir {
    fn drop(&mut self) {
        // SAFETY: created in `new`.
        unsafe { bindings::rrs_dir_destroy(self.k.as_ptr()) };
    }
}

/// A symlink `from/name` → `to`, removed on drop.
///
/// # Invariants
///
/// The link exists in `from`, of which it holds a reference (taken by the
/// C glue), so `from` outlives it.
pub struct Link {
    from: NonNull<bindings::kobject>,
    /// The name, NUL-terminated (sysfs copies it; we need it to unlink).
    name: KVec<u8>,
}

// SAFETY: as for `Dir`.
unsafe impl Send for Link {}
// SAFETY: as for `Dir`.
unsafe impl Sync for Link {}

impl Link {
    /// Creates the link.
    pub fn new(from: KobjRef<'_>, to: KobjRef<'_>, name: &CStr) -> Result<Self> {
        let mut n = KVec::with_capacity(name.len() + 1, GFP_KERNEL)?;
        n.extend_from_slice(name.as_bytes_with_nul(), GFP_KERNEL)?;
        // SAFETY: both live; sysfs takes its own reference to `to`.
        crate::to_result(unsafe {
            bindings::rrs_sysfs_link(from.ptr.as_ptr(), to.ptr.as_ptr(), n.as_ptr().cast())
        })?;
        // INVARIANT: the link was created in `from`, and the C glue took a
        // reference of `from`.
        Ok(Self {
            from: from.ptr,
            name: n,
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // SAFETY: created in `new`; `from` is alive through our reference,
        // which this drops; `name` is NUL-terminated.
        unsafe { bindings::rrs_sysfs_unlink(self.from.as_ptr(), self.name.as_ptr().cast()) };
    }
}

/// `/sys/class/<name>` with its `ctl` device.
///
/// # Invariants
///
/// `cls` from `class_create`, `dev` from `device_create` in it; both
/// destroyed in `drop`.
pub struct Class {
    cls: NonNull<bindings::class>,
    dev: NonNull<bindings::device>,
}

// SAFETY: as for `Dir`.
unsafe impl Send for Class {}
// SAFETY: as for `Dir`.
unsafe impl Sync for Class {}

impl Class {
    /// Registers class `name` and creates its device `ctl`.
    pub fn new(name: &'static CStr, ctl: &CStr) -> Result<Self> {
        // SAFETY: `name` is static (the class keeps the pointer).
        let cls = crate::from_err_ptr(unsafe { bindings::rrs_class_create(name.as_char_ptr()) })?;
        // SAFETY: live class; `ctl` is copied.
        let dev = unsafe { bindings::rrs_class_device_create(cls.as_ptr(), ctl.as_char_ptr()) };
        match crate::from_err_ptr(dev) {
            // INVARIANT: both created just above; `drop` destroys them.
            Ok(dev) => Ok(Self { cls, dev }),
            Err(e) => {
                // SAFETY: created above, no device in it.
                unsafe { bindings::rrs_class_destroy(cls.as_ptr()) };
                Err(e)
            }
        }
    }

    /// The `ctl` device's directory.
    pub fn ctl(&self) -> KobjRef<'_> {
        // SAFETY: live device (type invariant); the helper returns the
        // address of its embedded kobject, which is not null.
        let ptr = unsafe { NonNull::new_unchecked(bindings::rrs_device_kobj(self.dev.as_ptr())) };
        // INVARIANT: the device lives as long as `self`, which is borrowed.
        KobjRef {
            ptr,
            _p: core::marker::PhantomData,
        }
    }
}

impl Class {
    /// Adds attribute files to `ctl` itself, served by `handler`.  The files
    /// must be dropped before the class.
    pub fn ctl_files<T: Attrs>(
        &self,
        attrs: &'static [Attr],
        handler: Arc<T>,
    ) -> Result<DevFiles<T>> {
        dev_files(self.dev, attrs, handler)
    }
}

/// A device class whose devices its user creates ([`DevClass::device`]):
/// `/sys/class/<name>/<device>/`, e.g. one device per session.
///
/// # Invariants
///
/// `cls` is from `class_create`, destroyed in `drop`.
pub struct DevClass {
    cls: NonNull<bindings::class>,
}

// SAFETY: as for `Dir`.
unsafe impl Send for DevClass {}
// SAFETY: as for `Dir`.
unsafe impl Sync for DevClass {}

impl DevClass {
    /// Registers class `name`.
    pub fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is static (the class keeps the pointer).
        let cls = crate::from_err_ptr(unsafe { bindings::rrs_class_create(name.as_char_ptr()) })?;
        // INVARIANT: created just above.
        Ok(Self { cls })
    }

    /// Creates the device `name` of this class.  It must be dropped before
    /// the class.
    pub fn device(&self, name: &CStr) -> Result<ClassDev> {
        let (cls, name) = (self.cls.as_ptr(), name.as_char_ptr());
        // SAFETY: live class; `name` is copied.
        let dev = unsafe { bindings::rrs_class_device_create(cls, name) };
        // INVARIANT: created just above; `drop` unregisters it.
        Ok(ClassDev {
            dev: crate::from_err_ptr(dev)?,
        })
    }
}

impl Drop for DevClass {
    fn drop(&mut self) {
        // SAFETY: created in `new`; its devices are gone (owner's contract).
        unsafe { bindings::rrs_class_destroy(self.cls.as_ptr()) };
    }
}

/// One device of a [`DevClass`]: a directory for files and directories.
///
/// # Invariants
///
/// `dev` is from `device_create`, unregistered in `drop`.
pub struct ClassDev {
    dev: NonNull<bindings::device>,
}

// SAFETY: as for `Dir`.
unsafe impl Send for ClassDev {}
// SAFETY: as for `Dir`.
unsafe impl Sync for ClassDev {}

impl ClassDev {
    /// The device's directory.
    pub fn kobj(&self) -> KobjRef<'_> {
        // SAFETY: live device (type invariant); the helper returns the
        // address of its embedded kobject, which is not null.
        let ptr = unsafe { NonNull::new_unchecked(bindings::rrs_device_kobj(self.dev.as_ptr())) };
        // INVARIANT: the device lives as long as `self`, which is borrowed.
        KobjRef {
            ptr,
            _p: core::marker::PhantomData,
        }
    }

    /// Adds attribute files to the device, served by `handler`; they must
    /// be dropped before the device.
    pub fn files<T: Attrs>(&self, attrs: &'static [Attr], handler: Arc<T>) -> Result<DevFiles<T>> {
        dev_files(self.dev, attrs, handler)
    }
}

impl Drop for ClassDev {
    fn drop(&mut self) {
        // SAFETY: created by `DevClass::device`; what was created under it
        // is owned by values dropped before this one (owner's contract).
        unsafe { bindings::rrs_class_device_destroy(self.dev.as_ptr()) };
    }
}

/// Attribute files on the live device `dev`, served by `handler`.
fn dev_files<T: Attrs>(
    dev: NonNull<bindings::device>,
    attrs: &'static [Attr],
    handler: Arc<T>,
) -> Result<DevFiles<T>> {
    {
        let (names, modes) = attr_arrays(attrs)?;
        let ctx = Arc::into_raw(handler);
        let vt: &'static bindings::rrs_kobj_vt = &Vt::<T>::VT;
        // SAFETY: live device; the arrays are valid for the call (C keeps the
        // static name pointers); `vt` matches `ctx`'s type.
        let p = unsafe {
            bindings::rrs_dev_files_create(
                dev.as_ptr(),
                names.as_ptr(),
                modes.as_ptr(),
                attrs.len() as u32,
                ctx.cast_mut().cast(),
                vt,
            )
        };
        match crate::from_err_ptr(p) {
            // INVARIANT: created just above with `ctx`.
            Ok(p) => Ok(DevFiles { p, ctx }),
            Err(e) => {
                // SAFETY: C keeps nothing on failure.
                drop(unsafe { Arc::from_raw(ctx) });
                Err(e)
            }
        }
    }
}

/// Attribute files on a class's `ctl` device.
///
/// # Invariants
///
/// `p` is from `rrs_dev_files_create` with context `ctx` (from
/// `Arc::into_raw`), destroyed in drop before `ctx` is released.
pub struct DevFiles<T: Attrs> {
    p: NonNull<bindings::rrs_dev_files>,
    ctx: *const T,
}

// SAFETY: as for `Dir`; `T` is `Send + Sync`.
unsafe impl<T: Attrs> Send for DevFiles<T> {}
// SAFETY: as above.
unsafe impl<T: Attrs> Sync for DevFiles<T> {}

impl<T: Attrs> Drop for DevFiles<T> {
    fn drop(&mut self) {
        // SAFETY: live; removing the files waits for running calls.
        unsafe { bindings::rrs_dev_files_destroy(self.p.as_ptr()) };
        // SAFETY: from `into_raw`, no file refers to it any more.
        drop(unsafe { Arc::from_raw(self.ctx) });
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: created in `new`; whatever was created under `ctl` is
        // owned by values dropped before this one (owner's contract).
        unsafe {
            bindings::rrs_class_device_destroy(self.dev.as_ptr());
            bindings::rrs_class_destroy(self.cls.as_ptr());
        }
    }
}
