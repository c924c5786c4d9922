// SPDX-License-Identifier: GPL-2.0

//! Permits: the lock-free table of a session's permits and of its
//! requests in flight (a request's state word, see `st`), and the permit a
//! request holds.

use crate::*;

/// A request's progress, in [`Slot::state`]: what happened to it so far.
/// Each completion sets its bits with one atomic operation and looks at
/// the result, so exactly one of two racing events sees both of theirs.
pub(crate) mod st {
    /// Submitted, not yet ended.
    pub(crate) const IN_FLIGHT: u32 = 1 << 0;
    /// Its send completed successfully.
    pub(crate) const SENT: u32 = 1 << 1;
    /// Its answer arrived; its status is in the state too.
    pub(crate) const ANSWERED: u32 = 1 << 2;
    /// Its registration's key is revoked (or it has none).
    pub(crate) const INVALIDATED: u32 = 1 << 3;
    /// The send's owner is back in the slot.
    pub(crate) const TX_BACK: u32 = 1 << 4;
    /// The invalidation's owner is in the slot (not posted).
    pub(crate) const INV_BACK: u32 = 1 << 5;
    /// A read (the server writes into its pages).
    pub(crate) const READ: u32 = 1 << 6;
    /// Its pages are registered in the permit's MR.
    pub(crate) const USE_MR: u32 = 1 << 7;
    /// Its end is claimed (by the event that completed it, or the path's
    /// failure).
    pub(crate) const DONE: u32 = 1 << 8;
    /// Counted in its path's in-flight count (min-inflight policy).
    pub(crate) const COUNTED: u32 = 1 << 18;
    /// The answer's errno magnitude (9 bits on the wire), from this bit.
    pub(crate) const STATUS_SHIFT: u32 = 9;
    pub(crate) const STATUS_MASK: u32 = 0x1ff;
    /// The connection it was sent on (below `MAX_CON_NUM`, 12 bits), from
    /// this bit.
    pub(crate) const CID_SHIFT: u32 = 20;
    /// Everything a request waits for before it ends.
    pub(crate) const COMPLETE: u32 = IN_FLIGHT | SENT | ANSWERED | INVALIDATED | TX_BACK | INV_BACK;

    pub(crate) fn cid(s: u32) -> u16 {
        (s >> CID_SHIFT) as u16
    }

    pub(crate) fn with_cid(cid: u16) -> u32 {
        (cid as u32 & 0xfff) << CID_SHIFT
    }

    /// The answer's status (0 or a negative errno).
    pub(crate) fn status(s: u32) -> i32 {
        -(((s >> STATUS_SHIFT) & STATUS_MASK) as i32)
    }

    /// `errno` (0 or a negative errno of at most 9 bits, as the wire
    /// carries it) in state bits.
    pub(crate) fn with_status(errno: i32) -> u32 {
        (errno.unsigned_abs() & STATUS_MASK) << STATUS_SHIFT
    }
}

/// One permit of a session: its preallocated resources while it is free
/// or in flight, and its request's progress.  No lock: the state is one
/// atomic word, the work request owners move in and out of [`AtomicBox`]es.
pub(crate) struct Slot {
    /// `st` bits; 0 while no request of this permit is in flight.
    pub(crate) state: AtomicU32,
    /// When the request was submitted ([`support::now_ms`]): the heartbeat
    /// closes the path when a request waits longer than [`IO_TIMEOUT_MS`].
    pub(crate) since_ms: AtomicU64,
    /// When its send was posted (ns): a SEND_WITH_INV received earlier
    /// cannot have revoked its registration.
    pub(crate) posted_ns: AtomicU64,
    /// Which path the request was sent on (the address of its `Path`, for
    /// comparing only), so that a failing path fails over its own
    /// requests and no other path's.
    pub(crate) path: AtomicUsize,
    /// The request's send chain (with the table of its pages), when
    /// neither the user nor the device has it.
    pub(crate) tx: AtomicBox<Posted<Tx>>,
    /// The request's local invalidation, likewise.
    pub(crate) inv: AtomicBox<Posted<Inval>>,
}

/// What the oldest request in flight waits for (logged when it times out).
pub(crate) struct Stuck {
    pub(crate) age_ms: u64,
    pub(crate) id: u32,
    pub(crate) state: u32,
}

/// The right to one request in flight: a server chunk, the table that
/// describes the request's data and the work requests that carry it.
pub struct Permit {
    pub(crate) sess: Arc<Sess>,
    pub(crate) id: u32,
    /// `None` while posted (the device owns it), and after `drop`.
    pub(crate) tx: Option<KBox<Posted<Tx>>>,
    /// `None` while posted, and after `drop`.
    pub(crate) inv: Option<KBox<Posted<Inval>>>,
}

impl Permit {
    /// The permit's number (the server chunk it uses).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The table the next request's data is described in.  Empty when the
    /// permit is taken; after a request, it keeps only a buffer of its own
    /// ([`SgTable::set_buf`]), for [`SgTable::take_buf`].
    pub fn sg_mut(&mut self) -> Result<&mut SgTable> {
        Ok(&mut self.tx.as_mut().ok_or(EINVAL)?.get_mut().sg)
    }
}

impl Drop for Permit {
    /// Any context (a request's end may run in a completion).
    fn drop(&mut self) {
        let Some(slot) = self.sess.slots.get(self.id as usize) else {
            return;
        };
        match (self.tx.take(), self.inv.take()) {
            (Some(mut tx), Some(inv)) => {
                let t = tx.get_mut();
                t.sg.finish();
                let _ = t.sg.clear();
                t.path = None;
                // Both slots are empty while the permit is out.
                if let Err(tx) = slot.tx.put(tx) {
                    let _ = KBox::into_raw(tx);
                }
                if let Err(inv) = slot.inv.put(inv) {
                    let _ = KBox::into_raw(inv);
                }
                let (w, b) = ((self.id / 64) as usize, self.id % 64);
                if let Some(word) = self.sess.free.get(w) {
                    word.fetch_or(1 << b, Ordering::AcqRel);
                }
                self.sess.permit_wait.wake_all();
            }
            // Lost with a partly posted send (logged there): the permit
            // stays taken and the session has one less.
            (tx, inv) => {
                if let Some(tx) = tx {
                    let _ = KBox::into_raw(tx);
                }
                drop(inv);
            }
        }
    }
}

/// Takes back a request that was not posted: unmaps its table and frees
/// its registration, which the device never saw.
pub(crate) fn undo(sg: &mut SgTable, mr: &SgMr, use_mr: bool) {
    sg.finish();
    if use_mr {
        mr.release();
    }
}
