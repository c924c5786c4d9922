// SPDX-License-Identifier: GPL-2.0

//! What a path is on both sides of RTRS: its state, its connections and the
//! posting on them, its heartbeat, and the owner of a plain send.
//!
//! A side's path type embeds a [`PathCore`] and implements [`PathOps`]; the
//! client and the server differ in what their connections carry, not in how
//! a path comes up, beats and goes.
//!
//! # Locking and lifetime
//!
//! Posting takes no lock: the connections are published once (RCU,
//! [`RcuBox`]) and every post reads its connection inside an RCU read-side
//! section, so a request is posted from any context on its CPU's
//! connection without touching a cache line another CPU writes.  A mutex
//! serialises the rest (publishing connections during setup, the heartbeat
//! timer).  The heartbeat timer holds the path: the side's close work
//! breaks that cycle with [`PathCore::stop`], which also unpublishes the
//! connections, waits for the posters still using them and hands them over
//! to be dropped (which drains their QPs) in process context.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use proto::rtrs::{self as wire, Imm};
use rdma::cm::{Chain, CmId, Handler, Qp, QpCaps, SendOp, Unposted};
use rdma::cq::{Cq, Poll};
use rdma::dma::DmaBuf;
use rdma::pd::Pd;
use rdma::wr::{Completion, Posted, Status, WorkCompletion};
use support::code::enotconn;
use support::rcu::RcuBox;
use support::timer::{Tick, Timer};
use support::wq::OwnedQueue;

/// The state of a path.  It only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Its connections or the info exchange are being set up.
    Connecting = 0,
    /// It carries requests.
    Connected = 1,
    /// Its close work is queued or running.
    Closing = 2,
    /// Its connections are gone.
    Closed = 3,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Connected,
            2 => Self::Closing,
            _ => Self::Closed,
        }
    }

    /// Upstream's name of the state (`rtrs_clt_state_str`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "CONNECTING",
            Self::Connected => "CONNECTED",
            Self::Closing => "CLOSING",
            Self::Closed => "CLOSED",
        }
    }
}

/// What the shared code needs of a side's path.
pub trait PathOps: Send + Sync + Sized + 'static {
    /// The handler of its connections' rdma_cm events.
    type Events: Handler;

    /// Its shared part.
    fn core(&self) -> &PathCore<Self>;

    /// Starts closing the path (idempotent, any context): the call that
    /// moves it to [`State::Closing`] runs [`PathOps::closing`].
    #[track_caller]
    fn close(self: &Arc<Self>) {
        if let Some(was) = self.core().set_closing() {
            self.closing(was, core::panic::Location::caller());
        }
    }

    /// The path left state `was` for closing, by a call at `at`: queue
    /// the close work (and say why, if that helps the operator).
    fn closing(self: &Arc<Self>, was: State, at: &'static core::panic::Location<'static>);

    /// Runs on each heartbeat tick of a connected path, after the
    /// heartbeat was sent; returns false if it closed the path.
    fn on_heartbeat(self: &Arc<Self>) -> bool {
        true
    }
}

/// Makes `$path`'s field `$field` (a `Work<$path>`) its close work, which
/// runs `$path::close_work(self: Arc<Self>)`.
#[macro_export]
macro_rules! close_work {
    ($path:ty, $field:ident) => {
        kernel::workqueue::impl_has_work! {
            impl HasWork<Self> for $path { self.$field }
        }

        impl kernel::workqueue::WorkItem for $path {
            type Pointer = Arc<$path>;

            fn run(this: Arc<$path>) {
                this.close_work();
            }
        }
    };
}

/// The part of a path both sides share.
#[pin_data]
pub struct PathCore<P: PathOps> {
    state: AtomicU8,
    /// Heartbeats sent and not answered yet.
    hb_missed: AtomicU32,
    /// When the last heartbeat was sent (ns, `ktime_get`), 0 before.
    hb_sent_ns: AtomicU64,
    /// Round trip of the last answered heartbeat (ns), 0 before: the
    /// min-latency policy's key and `cur_latency`.
    hb_rtt_ns: AtomicU64,
    /// Indexed by cid: empty until the connection is published, and after
    /// the close work took it.
    cons: KVec<RcuBox<CmId<P::Events>>>,
    #[pin]
    inner: Mutex<Inner<P>>,
}

struct Inner<P: PathOps> {
    /// The heartbeat, from the path's coming up to its close.
    hb: Option<Timer<HbTick<P>>>,
}

impl<P: PathOps> PathCore<P> {
    /// A connecting path with room for `con_num` connections.
    pub fn new(con_num: u16) -> Result<impl PinInit<Self>> {
        let mut cons = KVec::with_capacity(con_num as usize, GFP_KERNEL)?;
        for _ in 0..con_num {
            cons.push(RcuBox::empty(), GFP_KERNEL)?;
        }
        Ok(pin_init!(Self {
            state: AtomicU8::new(State::Connecting as u8),
            hb_missed: AtomicU32::new(0),
            hb_sent_ns: AtomicU64::new(0),
            hb_rtt_ns: AtomicU64::new(0),
            cons,
            inner <- {
                let (name, key) = setup_lock_class();
                Mutex::new(Inner { hb: None }, name, key)
            },
        }))
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Connecting → connected; false if the path is closing already.
    pub fn set_connected(&self) -> bool {
        self.state
            .compare_exchange(
                State::Connecting as u8,
                State::Connected as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Moves the path to closing; returns the state it left if this call
    /// moved it (exactly one call does), `None` if it was closing already.
    pub fn set_closing(&self) -> Option<State> {
        let mut was = self.state.load(Ordering::SeqCst);
        loop {
            if was >= State::Closing as u8 {
                return None;
            }
            match self.state.compare_exchange(
                was,
                State::Closing as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(State::from_u8(was)),
                Err(now) => was = now,
            }
        }
    }

    /// The close work is done with the connections.
    pub fn set_closed(&self) {
        self.state.store(State::Closed as u8, Ordering::SeqCst);
    }

    /// The peer showed life: the heartbeat is answered.
    pub fn hb_seen(&self) {
        self.hb_missed.store(0, Ordering::Release);
    }

    /// The peer acknowledged our heartbeat: its round trip is measured.
    pub fn hb_acked(&self) {
        let sent = self.hb_sent_ns.load(Ordering::Acquire);
        if sent != 0 {
            let now = kernel::time::Ktime::ktime_get().to_ns() as u64;
            self.hb_rtt_ns
                .store(now.saturating_sub(sent), Ordering::Release);
        }
    }

    /// Round trip of the last answered heartbeat in ns (0: none yet).
    pub fn latency_ns(&self) -> u64 {
        self.hb_rtt_ns.load(Ordering::Acquire)
    }

    /// Starts the heartbeat of the connected `path` on `wq`.  A path that
    /// stopped being connected meanwhile gets none (its close work took
    /// the timer slot already).
    pub fn start_heartbeat(path: &Arc<P>, wq: &Arc<OwnedQueue>) -> Result {
        let hb = Timer::new(Arc::new(HbTick { path: path.clone() }, GFP_KERNEL)?, wq)?;
        hb.arm(wire::HB_INTERVAL_MS);
        let core = path.core();
        let late = {
            let mut g = core.inner.lock();
            if core.state() == State::Connected {
                g.hb = Some(hb);
                None
            } else {
                Some(hb)
            }
        };
        // Dropped outside the lock: dropping a timer waits for its tick,
        // which takes the lock.
        drop(late);
        Ok(())
    }

    /// Stops the heartbeat, unpublishes the connections (posts from now on
    /// fail with `ENOTCONN`), waits for the posts still using them, and
    /// disconnects them (their QPs go to the error state and flush what is
    /// posted).  Returns them, for the close work to drop (which drains
    /// and destroys their QPs) in process context.  Sleeps.
    pub fn stop(&self) -> KVec<KBox<CmId<P::Events>>> {
        let hb = self.inner.lock().hb.take();
        drop(hb);
        // Without room, a connection is dropped right here (still process
        // context): a teardown cannot fail.
        let mut out = KVec::with_capacity(self.cons.len(), GFP_KERNEL).unwrap_or_default();
        // Under the setup lock: a connection being added either is
        // published before, or sees the path closing and is not.
        let _g = self.inner.lock();
        RcuBox::take_all(&self.cons, |c| {
            let _ = c.disconnect();
            // On failure `push` drops it, here.
            let _ = out.push(c, GFP_KERNEL);
        });
        out
    }

    /// Runs `f` under the path's setup lock (which serialises publishing
    /// connections).
    pub fn with_setup<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.inner.lock();
        f()
    }

    /// Whether connection `cid` is published; `None` if the path has no
    /// such cid.
    pub fn has_con(&self, cid: u16) -> Option<bool> {
        Some(self.cons.get(cid as usize)?.is_set())
    }

    /// Publishes connection `cid` (call with its handler ready to serve the
    /// path); gives it back if the slot is taken or out of range.
    pub fn publish_con(
        &self,
        cid: u16,
        con: KBox<CmId<P::Events>>,
    ) -> core::result::Result<(), KBox<CmId<P::Events>>> {
        match self.cons.get(cid as usize) {
            Some(slot) => slot.publish(con),
            None => Err(con),
        }
    }

    /// Posts `owner`'s chain on connection `cid`; gives the owner back when
    /// nothing of it was posted.  Any context; `ops` runs in an RCU
    /// read-side section (it must not sleep).
    pub fn try_post<T: Send + 'static>(
        &self,
        cid: u16,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
    ) -> core::result::Result<(), (Error, Unposted<T>)> {
        let Some(slot) = self.cons.get(cid as usize) else {
            return Err((enotconn(), Unposted::Whole(owner)));
        };
        slot.read(|c| match c.and_then(|c| c.qp()) {
            Some(qp) => qp.try_post_chain(owner, ops),
            None => Err((enotconn(), Unposted::Whole(owner))),
        })
    }

    /// Posts a chain whose owner is boxed already; on failure the owner is
    /// dropped (outside the read-side section), or leaked if part of the
    /// chain was posted.
    pub fn post_boxed<T: Send + 'static>(
        &self,
        cid: u16,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
    ) -> Result {
        self.try_post(cid, owner, ops).map_err(|(e, u)| {
            drop(u.whole());
            e
        })
    }

    /// Posts a chain owned by `owner` (boxed here) on connection `cid`.
    pub fn post<T: Completion>(
        &self,
        cid: u16,
        owner: T,
        ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
    ) -> Result {
        self.post_boxed(cid, Posted::new(owner, GFP_KERNEL)?, ops)
    }

    /// Posts the receive `owner` on connection `cid`.  Any context; a
    /// receive that cannot be posted is dropped in the RCU read-side
    /// section (its owner must not sleep when dropped).
    pub fn post_recv<T: Send + 'static>(
        &self,
        cid: u16,
        owner: KBox<Posted<T>>,
        sge: impl for<'a> FnOnce(&'a T) -> Result<Option<rdma::wr::Sge<'a>>>,
    ) -> Result {
        let slot = self.cons.get(cid as usize).ok_or_else(enotconn)?;
        slot.read(|c| {
            c.and_then(|c| c.qp())
                .ok_or_else(enotconn)?
                .post_recv(owner, sge)
        })
    }

    /// Sends the first `len` bytes of `buf` as one SEND on the admin
    /// connection (the info exchange); the buffer lives until the send
    /// completes.  Process context.
    pub fn send_buf(path: &Arc<P>, buf: DmaBuf, len: usize, what: &'static str) -> Result {
        path.core().post(
            0,
            Plain {
                path: path.clone(),
                buf,
                what,
            },
            |o| {
                let mut c = Chain::new();
                c.push(SendOp::Send {
                    sge: Some(o.buf.sge(0, len)?),
                })?;
                Ok(c)
            },
        )
    }

    /// Sends the immediate `imm` on the admin connection (heartbeats).
    /// Any context: its owner is allocated with `GFP_ATOMIC` (a heartbeat
    /// acknowledgment is sent from the receive's completion).
    pub fn send_imm(path: &Arc<P>, imm: Imm, what: &'static str) -> Result {
        let imm = imm.encode();
        let owner = Posted::new(
            Plain {
                path: path.clone(),
                buf: (),
                what,
            },
            GFP_ATOMIC,
        )?;
        path.core().post_boxed(0, owner, |_| {
            let mut c = Chain::new();
            c.push(SendOp::WriteImm {
                sge: None,
                remote_addr: 0,
                rkey: 0,
                imm,
            })?;
            Ok(c)
        })
    }
}

/// The lock class of every path's setup lock, on both sides.  Not from
/// `new_mutex!` in the generic [`PathCore::new`]: each module instantiates
/// that with its own copy of the name but one key, which lockdep refuses.
#[inline(never)]
fn setup_lock_class() -> (
    &'static kernel::str::CStr,
    &'static kernel::sync::LockClassKey,
) {
    (
        kernel::c_str!("rtrs_core::PathCore::inner"),
        kernel::static_lock_class!(),
    )
}

/// Creates the QP of connection `cid` on `id`, with a CQ of its own on a
/// completion vector chosen by `cid` and polled in `poll`'s context, `send`
/// and `recv` work requests (at most what the device takes) and `send_sge`
/// SGEs per send.
pub fn create_qp<'a, H: Handler>(
    id: &'a mut CmId<H>,
    pd: &Arc<Pd>,
    cid: u16,
    (send, recv, send_sge): (u32, u32, u32),
    poll: Poll,
) -> Result<&'a Qp> {
    let dev = id.device().ok_or(ENODEV)?;
    let limit = dev.max_qp_wr();
    let (send, recv) = (send.min(limit), recv.min(limit));
    let vectors = dev.num_comp_vectors().max(1);
    let cq = Cq::new(dev, send + recv, cid as u32 % vectors, poll)?;
    id.create_qp(
        pd,
        &cq,
        QpCaps {
            max_send_wr: send,
            max_recv_wr: recv,
            max_send_sge: send_sge,
            max_recv_sge: 1,
        },
    )
}

/// The owner of a send that only needs `buf` kept until it completes; a
/// failed one closes the path.
pub struct Plain<P: PathOps, B: Send + 'static = ()> {
    /// The path it is posted on.
    pub path: Arc<P>,
    /// What the device reads from.
    pub buf: B,
    /// What it is, for the log.
    pub what: &'static str,
}

impl<P: PathOps, B: Send + 'static> Completion for Plain<P, B> {
    fn done(self, wc: &WorkCompletion) {
        if wc.status != Status::Success {
            if wc.status != Status::Flushed {
                support::peer_err!("{} failed: {:?}\n", self.what, wc.status);
            }
            self.path.close();
        }
    }
}

/// A path's heartbeat (upstream's rule): every 5 s send HB_MSG on the admin
/// connection unless the last one is unanswered; more than 5 missed close
/// the path.  Whatever the peer sends answers it ([`PathCore::hb_seen`]).
pub struct HbTick<P: PathOps> {
    path: Arc<P>,
}

impl<P: PathOps> Tick for HbTick<P> {
    fn tick(&self) {
        let p = &self.path;
        let core = p.core();
        if core.state() != State::Connected {
            return;
        }
        let missed = core.hb_missed.fetch_add(1, Ordering::AcqRel);
        if missed > wire::HB_MISSED_MAX {
            support::peer_err!("HB missed max reached.\n");
            return p.close();
        }
        if missed == 0 {
            core.hb_sent_ns.store(
                kernel::time::Ktime::ktime_get().to_ns() as u64,
                Ordering::Release,
            );
            if let Err(e) = PathCore::send_imm(p, Imm::HbMsg, "HB") {
                support::peer_err!("HB send failed, errno: {:?}\n", e);
                return p.close();
            }
        }
        if !p.on_heartbeat() {
            return;
        }
        if let Some(t) = core.inner.lock().hb.as_ref() {
            t.arm(wire::HB_INTERVAL_MS);
        }
    }
}
