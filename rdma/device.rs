// SPDX-License-Identifier: GPL-2.0

//! RDMA devices and `ib_client` registration.
//!
//! C header: [`include/rdma/ib_verbs.h`](srctree/include/rdma/ib_verbs.h)

use crate::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::Opaque;

/// A borrowed RDMA device.
///
/// # Invariants
///
/// `ptr` points to a registered `struct ib_device` that stays registered for
/// the lifetime `'a`: the RDMA core does not finish unregistering a device
/// before every client's `remove` callback and every rdma_cm user of it have
/// let go, and the borrows handed out here end before that.
#[derive(Clone, Copy)]
pub struct Device<'a> {
    ptr: NonNull<bindings::ib_device>,
    _p: PhantomData<&'a bindings::ib_device>,
}

impl<'a> Device<'a> {
    /// # Safety
    ///
    /// `ptr` must be a registered device that outlives `'a`.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::ib_device) -> Option<Self> {
        // SAFETY: the caller's guarantee, passed on.
        Some(unsafe { Self::from_non_null(NonNull::new(ptr)?) })
    }

    /// # Safety
    ///
    /// `ptr` must be a registered device that outlives `'a`.
    pub(crate) unsafe fn from_non_null(ptr: NonNull<bindings::ib_device>) -> Self {
        // INVARIANT: the caller guarantees that the device stays registered
        // for `'a`.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_device {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_non_null(&self) -> NonNull<bindings::ib_device> {
        self.ptr
    }

    /// The device name, e.g. `rxe0`.
    pub fn name(&self) -> &'a CStr {
        // SAFETY: the device is registered (type invariant), so its embedded
        // `struct device` has a name that lives as long as the device.
        unsafe { CStr::from_char_ptr(bindings::rrs_dev_name(self.as_ptr())) }
    }

    /// Number of physical ports.
    pub fn port_count(&self) -> u32 {
        // SAFETY: `phys_port_cnt` is set before registration and never changes.
        unsafe { (*self.as_ptr()).phys_port_cnt }
    }

    /// Largest work queue of a QP.
    pub fn max_qp_wr(&self) -> u32 {
        // SAFETY: registered device; attributes are read-only after registration.
        unsafe { bindings::rrs_dev_max_qp_wr(self.as_ptr()) }
    }

    /// Number of completion vectors.
    pub fn num_comp_vectors(&self) -> u32 {
        // SAFETY: as above.
        unsafe { bindings::rrs_dev_num_comp_vectors(self.as_ptr()) }
    }

    /// Most SGEs of one send work request.
    pub fn max_send_sge(&self) -> u32 {
        // SAFETY: registered device; attributes are read-only after registration.
        unsafe { bindings::rrs_dev_max_send_sge(self.as_ptr()) }
    }

    /// Largest fast-registration page list the device supports.
    pub fn max_fast_reg_pages(&self) -> u32 {
        // SAFETY: `attrs` is filled in before registration and read-only after.
        unsafe { (*self.as_ptr()).attrs.max_fast_reg_page_list_len }
    }
}

/// Callbacks of an `ib_client`: told about every RDMA device, present and future.
///
/// Both run in process context and may sleep.  The RDMA core serialises them
/// per device.
pub trait ClientOps: Send + Sync + 'static {
    /// A device appeared (or was present when the client registered).
    fn add(&self, dev: Device<'_>) -> Result;
    /// A device for which `add` succeeded is going away.
    fn remove(&self, dev: Device<'_>);
}

/// A registered `ib_client`.
///
/// Unregisters in `Drop`; `ib_unregister_client` calls `remove` for every
/// device first and waits for running callbacks, so `ops` outlives them.
///
/// # Invariants
///
/// `client` is registered with the RDMA core and recorded in slot `slot`.
#[pin_data(PinnedDrop)]
pub struct Registration<T: ClientOps> {
    #[pin]
    client: Opaque<bindings::ib_client>,
    ops: T,
    slot: usize,
}

// SAFETY: the registered `ib_client` is only touched by the RDMA core under its
// own locking; `ops` is `Sync`.
unsafe impl<T: ClientOps> Send for Registration<T> {}
// SAFETY: as above; `&Registration` exposes only `&T`.
unsafe impl<T: ClientOps> Sync for Registration<T> {}

impl<T: ClientOps> Registration<T> {
    /// Registers a client named `name`; `add` runs for every existing device
    /// before this returns.
    pub fn register(name: &'static CStr, ops: T) -> Result<Pin<KBox<Self>>> {
        let mut reg = KBox::pin_init(
            pin_init!(Self {
                client: Opaque::uninit(),
                ops,
                slot: usize::MAX,
            }),
            GFP_KERNEL,
        )?;
        let client = reg.client.get();
        // SAFETY: `client` is valid, pinned memory of the right type; zeroed
        // is the documented initial state of an `ib_client` besides the fields
        // set here.
        unsafe {
            core::ptr::write_bytes(client, 0, 1);
            (*client).name = name.as_char_ptr();
            (*client).add = Some(add_trampoline::<T>);
            (*client).remove = Some(remove_trampoline::<T>);
        }
        let slot = slot_claim::<T>(client)?;
        // SAFETY: `slot` is a plain field; moving it does not unpin anything.
        unsafe { reg.as_mut().get_unchecked_mut().slot = slot };
        // SAFETY: `client` is initialised above and pinned for as long as it
        // stays registered (until `drop`).
        if let Err(e) = crate::to_result(unsafe { bindings::ib_register_client(client) }) {
            slot_release(slot);
            // Nothing to unregister: skip `PinnedDrop`'s unregistration.
            // SAFETY: as above.
            unsafe { reg.as_mut().get_unchecked_mut().slot = usize::MAX };
            return Err(e);
        }
        // INVARIANT: `client` is registered and recorded in `slot`.
        Ok(reg)
    }

    /// The callbacks' state.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// Recovers the registration from its `ib_client`.
    ///
    /// # Safety
    ///
    /// `client` must be the `client` field of a live `Registration<T>`.
    unsafe fn from_client<'a>(client: *mut bindings::ib_client) -> &'a Self {
        let off = core::mem::offset_of!(Self, client);
        // SAFETY: per the contract, `client` is embedded in a `Self` at `off`.
        unsafe { &*(client.cast::<u8>().sub(off).cast::<Self>()) }
    }
}

#[pinned_drop]
impl<T: ClientOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        if self.slot == usize::MAX {
            return;
        }
        // SAFETY: registered in `register` (type invariant).  This calls
        // `remove` for every device and waits for running callbacks.
        unsafe { bindings::ib_unregister_client(self.client.get()) };
        slot_release(self.slot);
    }
}

// Marker stored as client data for devices whose `add` succeeded, so that
// `remove` is only forwarded for those.
static ADDED: u8 = 0;

/// Live registrations, for `add`, which the RDMA core calls without the client
/// pointer.  A slot pairs the address of the `add` trampoline monomorphised for
/// one `T` (its identity) with that registration's `ib_client`.
const SLOTS: usize = 4;
static SLOT_KEY: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static SLOT_CLIENT: [AtomicPtr<bindings::ib_client>; SLOTS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; SLOTS];

fn key_of<T: ClientOps>() -> usize {
    add_trampoline::<T> as *const () as usize
}

fn slot_claim<T: ClientOps>(client: *mut bindings::ib_client) -> Result<usize> {
    // `add` could not tell two registrations of one `T` apart.
    if SLOT_KEY
        .iter()
        .any(|k| k.load(Ordering::Acquire) == key_of::<T>())
    {
        return Err(EBUSY);
    }
    for i in 0..SLOTS {
        if SLOT_KEY[i]
            .compare_exchange(0, key_of::<T>(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            SLOT_CLIENT[i].store(client, Ordering::Release);
            return Ok(i);
        }
    }
    Err(EBUSY)
}

fn slot_release(i: usize) {
    SLOT_CLIENT[i].store(core::ptr::null_mut(), Ordering::Release);
    SLOT_KEY[i].store(0, Ordering::Release);
}

fn reg_of<'a, T: ClientOps>() -> Option<&'a Registration<T>> {
    let key = key_of::<T>();
    (0..SLOTS).find_map(|i| {
        if SLOT_KEY[i].load(Ordering::Acquire) != key {
            return None;
        }
        let p = SLOT_CLIENT[i].load(Ordering::Acquire);
        // SAFETY: a slot holds the client of a live `Registration<T>` from
        // before `ib_register_client` until after `ib_unregister_client`,
        // which waits for running callbacks.
        (!p.is_null()).then(|| unsafe { Registration::<T>::from_client(p) })
    })
}

/// The `add` callback of a [`Registration<T>`]'s `ib_client`, called by the
/// RDMA core in process context for every device.
///
/// # Safety
///
/// `dev` must be a registered device that stays registered during the call.
unsafe extern "C" fn add_trampoline<T: ClientOps>(dev: *mut bindings::ib_device) -> i32 {
    let Some(reg) = reg_of::<T>() else {
        return EINVAL.to_errno();
    };
    // SAFETY: the RDMA core passes a registered device; the borrow ends
    // before this callback returns.
    let Some(d) = (unsafe { Device::from_raw(dev) }) else {
        return EINVAL.to_errno();
    };
    match reg.ops.add(d) {
        Ok(()) => {
            // SAFETY: `dev` and `reg.client` are registered; the data is a
            // static marker that is never written through.
            unsafe {
                bindings::ib_set_client_data(
                    dev,
                    reg.client.get(),
                    (&ADDED as *const u8).cast_mut().cast(),
                )
            };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// The `remove` callback of a [`Registration<T>`]'s `ib_client`, called by
/// the RDMA core before a device finishes unregistering.
///
/// # Safety
///
/// `dev` must be a registered device that stays registered during the call,
/// and `data` the client data `add_trampoline` set for it (or null).
unsafe extern "C" fn remove_trampoline<T: ClientOps>(
    dev: *mut bindings::ib_device,
    data: *mut core::ffi::c_void,
) {
    // NULL client data: `add` failed or never ran for this device.
    if data.is_null() {
        return;
    }
    // SAFETY: as in `add_trampoline`.
    let Some(d) = (unsafe { Device::from_raw(dev) }) else {
        return;
    };
    if let Some(reg) = reg_of::<T>() {
        reg.ops.remove(d);
    }
}
