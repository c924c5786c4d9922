// SPDX-License-Identifier: GPL-2.0

//! Work requests and their completions.
//!
//! A posted work request *owns* what it needs until the device is done with
//! it: [`Posted<T>`] boxes the request's `struct ib_cqe` together with an owner
//! value `T` (the buffers, the MR, the caller's bookkeeping).  Posting leaks the
//! box to the device; the completion (successful, failed or flushed) turns the
//! pointer back into the box and hands `T` to [`Completion::done`].  So a
//! buffer cannot be freed, reused or read by the CPU while the device may still
//! access it, and every posted request is accounted for exactly once.

use crate::bindings;
use core::marker::PhantomData;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A scatter/gather entry: local DMA memory with its lkey, borrowed from the
/// [`crate::dma::DmaBuf`] it covers for `'a`.
///
/// Only built from memory this crate mapped ([`crate::dma::DmaBuf::sge`],
/// [`crate::pages::BlockMr::sge`]),
/// so safe code cannot point the device at arbitrary memory; and because it
/// borrows its buffer, a request can only name buffers of its owner (see
/// [`crate::cm::Qp::post_send`]).
#[derive(Clone, Copy, Debug)]
pub struct Sge<'a> {
    pub(crate) addr: u64,
    pub(crate) length: u32,
    pub(crate) lkey: u32,
    pub(crate) _buf: PhantomData<&'a ()>,
}

impl Sge<'_> {
    pub(crate) fn raw(&self) -> bindings::ib_sge {
        bindings::ib_sge {
            addr: self.addr,
            length: self.length,
            lkey: self.lkey,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u32 {
        self.length
    }

    /// True for an empty entry.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

/// Status of a completion.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    /// The request completed.
    Success,
    /// Flushed because the QP went into the error state (teardown or error).
    Flushed,
    /// Any other failure, with the `ib_wc_status` value.
    Error(u32),
}

/// Opcode of a completion.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opcode {
    /// SEND or SEND_WITH_INV finished.
    Send,
    /// RDMA WRITE (with or without IMM) finished.
    RdmaWrite,
    /// RDMA READ finished.
    RdmaRead,
    /// Fast registration finished.
    RegMr,
    /// Local invalidation finished.
    LocalInv,
    /// A SEND arrived.
    Recv,
    /// An RDMA WRITE WITH IMM arrived.
    RecvRdmaWithImm,
    /// Anything else (value of `ib_wc_opcode`).
    Other(u32),
}

/// What the device reported for one work request.
#[derive(Clone, Copy, Debug)]
pub struct WorkCompletion {
    /// How the request ended.
    pub status: Status,
    /// Which operation ended; only meaningful on success.
    pub opcode: Opcode,
    /// Bytes received (receive completions).
    pub byte_len: u32,
    /// Immediate data, host order, if the message carried one.
    pub imm: Option<u32>,
    /// The rkey the peer invalidated with SEND_WITH_INV, if any.
    pub invalidated_rkey: Option<u32>,
}

impl WorkCompletion {
    fn from_raw(wc: &bindings::ib_wc) -> Self {
        let status = match wc.status {
            bindings::ib_wc_status_IB_WC_SUCCESS => Status::Success,
            bindings::ib_wc_status_IB_WC_WR_FLUSH_ERR => Status::Flushed,
            s => Status::Error(s),
        };
        let opcode = match wc.opcode {
            bindings::ib_wc_opcode_IB_WC_SEND => Opcode::Send,
            bindings::ib_wc_opcode_IB_WC_RDMA_WRITE => Opcode::RdmaWrite,
            bindings::ib_wc_opcode_IB_WC_RDMA_READ => Opcode::RdmaRead,
            bindings::ib_wc_opcode_IB_WC_REG_MR => Opcode::RegMr,
            bindings::ib_wc_opcode_IB_WC_LOCAL_INV => Opcode::LocalInv,
            bindings::ib_wc_opcode_IB_WC_RECV => Opcode::Recv,
            bindings::ib_wc_opcode_IB_WC_RECV_RDMA_WITH_IMM => Opcode::RecvRdmaWithImm,
            o => Opcode::Other(o),
        };
        let flags = wc.wc_flags as u32;
        // SAFETY: both members of the `ex` union are plain 32-bit integers,
        // so reading either is defined whatever the device wrote.
        let (imm_data, inv_rkey) = unsafe { (wc.ex.imm_data, wc.ex.invalidate_rkey) };
        let imm =
            (flags & bindings::ib_wc_flags_IB_WC_WITH_IMM != 0).then(|| u32::from_be(imm_data));
        let invalidated_rkey =
            (flags & bindings::ib_wc_flags_IB_WC_WITH_INVALIDATE != 0).then_some(inv_rkey);
        Self {
            status,
            opcode,
            byte_len: wc.byte_len,
            imm,
            invalidated_rkey,
        }
    }
}

/// The owner of a posted work request, told when the device is done with it.
pub trait Completion: Send + Sized + 'static {
    /// Runs in softirq context once per posted request, whatever its status.
    /// `self` is back in the CPU's hands.
    ///
    /// It must not sleep, so it must not drop the last reference to a PD,
    /// an MR or a connection manager id (their teardown sleeps): the QP keeps
    /// its PD until it is drained, and MRs belong to longer-lived owners.
    fn done(self, wc: &WorkCompletion);
}

/// The owner of a posted work request that is reused: its completion gets
/// the box back, so that it can be posted again without an allocation (the
/// IO path's receives and requests are preallocated at session setup).
pub trait Reuse: Send + Sized + 'static {
    /// Like [`Completion::done`], with the box.
    fn done(this: KBox<Posted<Self>>, wc: &WorkCompletion);
}

/// A work request's completion entry and its owner, boxed while posted.
///
/// # Invariants
///
/// `cqe.done` is `done_trampoline::<T>` (from [`Posted::new`] and
/// [`Posted::try_new`], `T: Completion`) or `reuse_trampoline::<T>` (from
/// [`Posted::new_reused`], `T: Reuse`); `cqe` is the first field, so a
/// pointer to it is a pointer to the `Posted<T>`.
#[repr(C)]
pub struct Posted<T: Send + 'static> {
    cqe: Opaque<bindings::ib_cqe>,
    value: T,
}

/// `ib_cqe.done` of a [`Posted<T>`].
type DoneFn = unsafe extern "C" fn(*mut bindings::ib_cq, *mut bindings::ib_wc);

impl<T: Reuse> Posted<T> {
    /// Boxes `value` for posting, again and again.
    pub fn new_reused(value: T, flags: kernel::alloc::Flags) -> Result<KBox<Self>> {
        Self::boxed(value, reuse_trampoline::<T>, flags).map_err(|(e, _)| e)
    }
}

impl<T: Completion> Posted<T> {
    /// Boxes `value` for posting.
    pub fn new(value: T, flags: kernel::alloc::Flags) -> Result<KBox<Self>> {
        Self::try_new(value, flags).map_err(|(e, _)| e)
    }

    /// Like [`Posted::new`], but gives `value` back if the box cannot be
    /// allocated.
    pub fn try_new(
        value: T,
        flags: kernel::alloc::Flags,
    ) -> core::result::Result<KBox<Self>, (Error, T)> {
        Self::boxed(value, done_trampoline::<T>, flags)
    }
}

impl<T: Send + 'static> Posted<T> {
    /// Boxes `value` with `done` as its completion entry's callback, which
    /// must be the trampoline of `T`'s trait (the type invariant).
    fn boxed(
        value: T,
        done: DoneFn,
        flags: kernel::alloc::Flags,
    ) -> core::result::Result<KBox<Self>, (Error, T)> {
        match KBox::<Self>::new_uninit(flags) {
            Ok(b) => {
                let b = KBox::write(
                    b,
                    Self {
                        cqe: Opaque::uninit(),
                        value,
                    },
                );
                // INVARIANT: `cqe` (the first field of a `repr(C)` struct)
                // gets its only field, `done`, set to the trampoline of
                // `T`'s trait (both callers pass their own).
                // SAFETY: `cqe` is ours, valid to write; `ib_cqe` has the
                // single `done` field.
                unsafe { (*b.cqe.get()).done = Some(done) };
                Ok(b)
            }
            Err(_) => Err((ENOMEM, value)),
        }
    }

    /// The owner value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The owner value, mutably (before posting).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The owner value, out of its box (a request that was not posted).
    pub fn into_inner(b: KBox<Self>) -> T {
        KBox::into_inner(b).value
    }

    /// The `ib_cqe` pointer of a box turned into a raw pointer, for a WR.
    pub(crate) fn raw_cqe(p: *mut Self) -> *mut bindings::ib_cqe {
        // `cqe` is the first field of this `repr(C)` struct (invariant).
        p.cast()
    }

    /// Hands the box to the device; returns the `ib_cqe` pointer for the WR.
    pub(crate) fn into_cqe(b: KBox<Self>) -> *mut bindings::ib_cqe {
        KBox::into_raw(b).cast()
    }

    /// Takes back a box whose request was not posted.
    ///
    /// # Safety
    ///
    /// `cqe` comes from `into_cqe` and the device never saw it.
    pub(crate) unsafe fn from_cqe(cqe: *mut bindings::ib_cqe) -> KBox<Self> {
        // SAFETY: per the contract and the type invariant.
        unsafe { KBox::from_raw(cqe.cast()) }
    }
}

/// The box of a completed work request, and what the device reported.
///
/// # Safety
///
/// `wc` must be a valid completion for the duration of the call whose
/// `wr_cqe` comes from posting a [`Posted<T>`] (with this `T`): the device
/// reports it exactly once, and this call takes its box back.
unsafe fn take_back<T: Send + 'static>(
    wc: *mut bindings::ib_wc,
) -> (KBox<Posted<T>>, WorkCompletion) {
    // SAFETY: the RDMA core passes a valid completion for the duration of the call.
    let wc = unsafe { &*wc };
    // SAFETY: `wr_cqe` is the union member we set when posting.
    let cqe = unsafe { wc.__bindgen_anon_1.wr_cqe };
    // SAFETY: the device reports each posted request exactly once, and the
    // trampolines are only installed on `Posted<T>` boxes given away by posting.
    let posted = unsafe { Posted::<T>::from_cqe(cqe) };
    (posted, WorkCompletion::from_raw(wc))
}

/// The `ib_cqe.done` of a reused [`Posted<T>`], called by the RDMA core in
/// the CQ's context once per posted request.
///
/// # Safety
///
/// As for `take_back`, for a box of [`Posted::new_reused`].
unsafe extern "C" fn reuse_trampoline<T: Reuse>(
    _cq: *mut bindings::ib_cq,
    wc: *mut bindings::ib_wc,
) {
    // SAFETY: forwarded contract.
    let (posted, wc) = unsafe { take_back::<T>(wc) };
    T::done(posted, &wc);
}

/// The `ib_cqe.done` of a [`Posted<T>`], called by the RDMA core in the CQ's
/// context (softirq or workqueue) once per posted request.
///
/// # Safety
///
/// As for `take_back`, for a box of [`Posted::new`] or [`Posted::try_new`].
unsafe extern "C" fn done_trampoline<T: Completion>(
    _cq: *mut bindings::ib_cq,
    wc: *mut bindings::ib_wc,
) {
    // SAFETY: forwarded contract.
    let (posted, wc) = unsafe { take_back::<T>(wc) };
    KBox::into_inner(posted).value.done(&wc);
}

/// Completion entry for the unsignaled requests at the front of a chain.
///
/// They produce a completion only if they fail or are flushed, which also
/// fails or flushes the chain's last request, whose owner keeps every buffer of
/// the chain; so there is nothing to release here beyond noting the error.
pub(crate) struct ChainCqe(Opaque<bindings::ib_cqe>);
// SAFETY: the entry is written once at compile time and only read afterwards.
unsafe impl Sync for ChainCqe {}

pub(crate) static CHAIN_CQE: ChainCqe = ChainCqe(Opaque::new(bindings::ib_cqe {
    done: Some(chain_done),
}));

impl ChainCqe {
    pub(crate) fn as_ptr(&self) -> *mut bindings::ib_cqe {
        self.0.get()
    }
}

/// The `ib_cqe.done` of [`CHAIN_CQE`], called by the RDMA core for a failed
/// or flushed unsignaled request of a chain.
///
/// # Safety
///
/// `wc` must be a valid completion for the duration of the call.
unsafe extern "C" fn chain_done(_cq: *mut bindings::ib_cq, wc: *mut bindings::ib_wc) {
    // SAFETY: valid for the duration of the call.
    let wc = WorkCompletion::from_raw(unsafe { &*wc });
    if let Status::Error(s) = wc.status {
        pr_err!("rdma: chained work request failed, status {}\n", s);
    }
}
