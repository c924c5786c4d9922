// SPDX-License-Identifier: GPL-2.0

//! RTRS client: active side of the RDMA transport, wire-compatible with
//! upstream 6.12 `rtrs-client.ko`.
//!
//! # Objects and lifetimes
//!
//! - [`Sess`]: a session to one server, named by the user, with
//!   `queue_depth` permits (the server's chunk count).  Each permit owns an
//!   [`SgTable`]: the user describes the request's own pages in it (a block
//!   request's bio segments, or a buffer of its own), the transport maps it
//!   for the request and unmaps it before the completion.  No data is
//!   copied: a write is one RDMA WRITE WITH IMM whose SGEs are the pages
//!   and the header (or, past the device's SGE limit, one registration of
//!   the pages); a read registers the pages and the server writes into them.
//! - `Path`: one path (this version connects one): a PD, one MR per permit
//!   for the registrations, the server's chunk addresses and keys, and
//!   `con_num` connections (cid 0 is the admin connection, then one per
//!   CPU).
//! - `Con`: an rdma_cm id and its RC QP, with a CQ polled in softirq (as
//!   upstream's client): a request ends in the device's completion context,
//!   without a context switch, so no completion handler sleeps.
//! - [`Permit`]: the right to one request in flight; returned to the pool
//!   when dropped.
//!
//! A request is complete when its send completed, its answer arrived and,
//! for a read the server did not invalidate, our local invalidation of the
//! read buffer's key completed: only then is the user's callback called, so
//! no buffer is handed back while the device or the peer may still touch it.
//!
//! # Locking
//!
//! `Sess::paths` (a mutex) is the only lock a request takes, to pick a
//! connected path.  The permits and the requests in flight are one
//! lock-free table (`Sess::slots`, see `st` for a request's state); posting
//! takes no lock (see [`PathCore`]).  Completions run in softirq and take
//! no lock; requests are submitted from process context (RNBD's queue is
//! blocking).

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::time::Ktime;
use kernel::workqueue::{new_work, Work};
use proto::rtrs::{self as wire, ConnReq, ConnRsp, Geometry, Imm, InfoReq, InfoRsp, SgDesc};
use proto::wire::{Le16, Le32, Le64};
/// A path's address (IPv4 and port), as [`Sess::open`] takes it: RTRS's
/// own name for it, so that its users need no RDMA crate.
pub use rdma::cm::SockAddr;
use rdma::cm::{
    Chain, CmId, ConnParam, Data, Event, EventKind, Handler, IdRef, SendOp, Unposted, MAX_SEND_SGE,
};
use rdma::cq::Poll;
use rdma::dma::{Direction, DmaBuf};
use rdma::mr::Access;
use rdma::pd::Pd;
use rdma::sg::{SgMr, SgTable, HDR_MAX};
use rdma::wr::{Completion, Opcode, Posted, Reuse, Status, WorkCompletion};
use rtrs_core::path::{self as core_path, PathCore, PathOps, Plain, State};
use rtrs_core::{wait, Slots};
use support::code::{
    econnaborted, econnrefused, econnreset, ehostunreach, emsgsize, enotconn, etimedout,
};
use support::sync::{AtomicBox, WaitQueue};
use support::wq::OwnedQueue;

module! {
    type: RtrsClient,
    name: "rtrs_client",
    author: "rnbd-rs developers",
    description: "RDMA Transport client (rnbd-rs)",
    license: "GPL",
}

/// Time allowed for each step of a connection (address, route, connect).
const CONNECT_STEP_MS: u32 = 30_000;
/// Receives kept posted on the admin connection (heartbeats).
const ADMIN_RECVS: u32 = 32;
/// Largest permit count we allocate request resources for.
pub const MAX_PERMITS: u32 = 512;
/// Most data segments of one request (upstream's `RTRS_MAX_SEGMENTS`).
const MAX_SEGMENTS: u32 = 128;
/// Page size of a registration (upstream registers in 4 KiB pages; the
/// block queue's virtual boundary matches it).
const MR_PAGE: u32 = 4096;

/// The RTRS protocol version this client speaks.
#[inline(never)]
pub fn protocol_version() -> (u8, u8) {
    rtrs_core::protocol_version()
}

/// Session events for the user.
pub trait SessEvents: Send + Sync + 'static {
    /// The request of `permit` ended with `status` (0 or a negative errno).
    /// Called once per [`Sess::request`], in any context (usually the
    /// softirq of a completion, or within `request` itself): it must not
    /// sleep, and the caller of `request` must not hold a lock this takes.
    fn io_done(&self, permit: Permit, status: i32);
    /// The last path went down; requests in flight failed.
    fn disconnected(&self);
}

/// Direction of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The server writes data into the pages of the permit's table.
    Read,
    /// The pages of the permit's table go to the server.
    Write,
}

/// A request's progress, in [`Slot::state`]: what happened to it so far.
/// Each completion sets its bits with one atomic operation and looks at
/// the result, so exactly one of two racing events sees both of theirs.
mod st {
    /// Submitted, not yet ended.
    pub(super) const IN_FLIGHT: u32 = 1 << 0;
    /// Its send completed successfully.
    pub(super) const SENT: u32 = 1 << 1;
    /// Its answer arrived; its status is in the state too.
    pub(super) const ANSWERED: u32 = 1 << 2;
    /// Its registration's key is revoked (or it has none).
    pub(super) const INVALIDATED: u32 = 1 << 3;
    /// The send's owner is back in the slot.
    pub(super) const TX_BACK: u32 = 1 << 4;
    /// The invalidation's owner is in the slot (not posted).
    pub(super) const INV_BACK: u32 = 1 << 5;
    /// A read (the server writes into its pages).
    pub(super) const READ: u32 = 1 << 6;
    /// Its pages are registered in the permit's MR.
    pub(super) const USE_MR: u32 = 1 << 7;
    /// Its end is claimed (by the event that completed it, or the path's
    /// failure).
    pub(super) const DONE: u32 = 1 << 8;
    /// The answer's errno magnitude (9 bits on the wire), from this bit.
    const STATUS_SHIFT: u32 = 9;
    const STATUS_MASK: u32 = 0x1ff;
    /// The connection it was sent on (below `MAX_CON_NUM`, 12 bits), from
    /// this bit.
    const CID_SHIFT: u32 = 20;
    /// Everything a request waits for before it ends.
    pub(super) const COMPLETE: u32 = IN_FLIGHT | SENT | ANSWERED | INVALIDATED | TX_BACK | INV_BACK;

    pub(super) fn cid(s: u32) -> u16 {
        (s >> CID_SHIFT) as u16
    }

    pub(super) fn with_cid(cid: u16) -> u32 {
        (cid as u32 & 0xfff) << CID_SHIFT
    }

    /// The answer's status (0 or a negative errno).
    pub(super) fn status(s: u32) -> i32 {
        -(((s >> STATUS_SHIFT) & STATUS_MASK) as i32)
    }

    /// `errno` (0 or a negative errno of at most 9 bits, as the wire
    /// carries it) in state bits.
    pub(super) fn with_status(errno: i32) -> u32 {
        (errno.unsigned_abs() & STATUS_MASK) << STATUS_SHIFT
    }
}

/// One permit of a session: its preallocated resources while it is free
/// or in flight, and its request's progress.  No lock: the state is one
/// atomic word, the work request owners move in and out of [`AtomicBox`]es.
struct Slot {
    /// `st` bits; 0 while no request of this permit is in flight.
    state: AtomicU32,
    /// When the request was submitted ([`support::now_ms`]): the heartbeat
    /// closes the path when a request waits longer than [`IO_TIMEOUT_MS`].
    since_ms: AtomicU64,
    /// When its send was posted (ns): a SEND_WITH_INV received earlier
    /// cannot have revoked its registration.
    posted_ns: AtomicU64,
    /// The request's send chain (with the table of its pages), when
    /// neither the user nor the device has it.
    tx: AtomicBox<Posted<Tx>>,
    /// The request's local invalidation, likewise.
    inv: AtomicBox<Posted<Inval>>,
}

/// What the oldest request in flight waits for (logged when it times out).
struct Stuck {
    age_ms: u64,
    id: u32,
    state: u32,
}

/// Longest a request may wait for its answer before the path is closed
/// (which fails it and every other request in flight with an error).
/// Upstream has no limit: a server that answers heartbeats but never an
/// IO would leave the request, and an unmap or rmmod waiting for it,
/// hanging forever.  nvme's default I/O timeout is 30 s as well.
pub const IO_TIMEOUT_MS: u64 = 30_000;

/// A session.
#[pin_data]
pub struct Sess {
    geo: Geometry,
    paths_uuid: [u8; 16],
    name: KVec<u8>,
    events: Arc<dyn SessEvents>,
    /// Permits.
    depth: u32,
    /// Most data segments (table entries) of one request.
    max_segments: u32,
    /// Pages of a registration, for `max_io`.
    mr_pages: u32,
    /// Largest data of one request.
    max_io: u32,
    wq: Arc<OwnedQueue>,
    /// One per permit: the session's only table of requests in flight.
    slots: KVec<Slot>,
    /// Bit `i % 64` of word `i / 64` is set while permit `i` is free.
    free: KVec<AtomicU64>,
    /// Where permit waiters sleep; woken when a permit is freed.
    permit_wait: WaitQueue,
    #[pin]
    paths: Mutex<Slots<Arc<Path>>>,
    #[pin]
    path_gone: CondVar,
    closing: AtomicBool,
    /// Writes sent through a registration because their pages and header
    /// needed more SGEs than the QP takes (logged at close: the rare path).
    mr_writes: AtomicU64,
}

/// The right to one request in flight: a server chunk, the table that
/// describes the request's data and the work requests that carry it.
pub struct Permit {
    sess: Arc<Sess>,
    id: u32,
    /// `None` while posted (the device owns it), and after `drop`.
    tx: Option<KBox<Posted<Tx>>>,
    /// `None` while posted, and after `drop`.
    inv: Option<KBox<Posted<Inval>>>,
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

impl Sess {
    /// Connects a session named `name` to `dst` (one path) and returns it
    /// once the path is up.  Sleeps.
    pub fn open(name: &[u8], dst: SockAddr, events: Arc<dyn SessEvents>) -> Result<Arc<Self>> {
        if name.is_empty() || name.len() >= wire::NAME_MAX {
            return Err(EINVAL);
        }
        let mut paths_uuid = [0u8; 16];
        support::random_bytes(&mut paths_uuid);
        let mut path_uuid = [0u8; 16];
        support::random_bytes(&mut path_uuid);
        // cid 0 first: its answer carries the geometry every other
        // connection's queues are sized by.
        let con_num = (support::nr_cpu_ids() + 1).min(wire::MAX_CON_NUM as u32) as u16;
        let req = |cid: u16| ConnReq::new(cid, con_num, 0, path_uuid, paths_uuid, true).to_bytes();
        // The geometry is checked when the answer arrives (`ConEvents`), by
        // `ConnRsp::geometry`: every size below is bounded.
        let (admin, geo, pd) = connect(dst, &req(0), None, None)?;
        let geo = geo.ok_or(EINVAL)?;
        let mut links = KVec::with_capacity(con_num as usize, GFP_KERNEL)?;
        links.push(admin, GFP_KERNEL)?;
        for cid in 1..con_num {
            let (l, _, _) = connect(dst, &req(cid), Some(&geo), Some(&pd))?;
            links.push(l, GFP_KERNEL)?;
        }
        let permits_n = geo.queue_depth.min(MAX_PERMITS);
        // A registration covers the pages of `max_io` bytes at any offset
        // in its first page.
        let mr_pages = pd.device().max_fast_reg_pages().min(MAX_SEGMENTS + 1);
        if mr_pages < 2 {
            pr_err!("device registers {} pages at most\n", mr_pages);
            return Err(EINVAL);
        }
        // A write through a registration still sends two SGEs (the
        // registration and the header).
        if io_send_sge(pd.device()) < 2 {
            pr_err!("device sends {} SGEs at most\n", io_send_sge(pd.device()));
            return Err(EINVAL);
        }
        let max_segments = (mr_pages - 1).min(MAX_SEGMENTS);
        let max_io = geo.max_io_size.min((mr_pages - 1) * MR_PAGE);
        let mut slots = KVec::with_capacity(permits_n as usize, GFP_KERNEL)?;
        for id in 0..permits_n {
            let tx = Tx {
                path: None,
                id,
                sg: SgTable::new(max_segments)?,
            };
            let inv = Inval { path: None, id };
            slots.push(
                Slot {
                    state: AtomicU32::new(0),
                    since_ms: AtomicU64::new(0),
                    posted_ns: AtomicU64::new(0),
                    tx: AtomicBox::new(Posted::new_reused(tx, GFP_KERNEL)?),
                    inv: AtomicBox::new(Posted::new_reused(inv, GFP_KERNEL)?),
                },
                GFP_KERNEL,
            )?;
        }
        let mut free = KVec::with_capacity(permits_n.div_ceil(64) as usize, GFP_KERNEL)?;
        for w in 0..permits_n.div_ceil(64) {
            let n = (permits_n - w * 64).min(64);
            free.push(
                AtomicU64::new(if n == 64 { u64::MAX } else { (1 << n) - 1 }),
                GFP_KERNEL,
            )?;
        }
        let mut nm = KVec::with_capacity(name.len(), GFP_KERNEL)?;
        nm.extend_from_slice(name, GFP_KERNEL)?;
        let wq = OwnedQueue::new(kernel::c_str!("rtrs_client_wq"))?;
        let permit_wait = WaitQueue::new()?;
        let sess = Arc::pin_init(
            pin_init!(Sess {
                geo,
                paths_uuid,
                name: nm,
                events,
                depth: permits_n,
                max_segments,
                mr_pages,
                max_io,
                wq,
                slots,
                free,
                permit_wait,
                paths <- new_mutex!(Slots::new()),
                path_gone <- new_condvar!(),
                closing: AtomicBool::new(false),
                mr_writes: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        let path = Path::new(&sess, pd, links)?;
        if let Err(e) = sess.paths.lock().insert(path.clone()) {
            // The path's connections refer back to it: only its close
            // work breaks that cycle.
            path.close();
            return Err(e);
        }
        if let Err(e) = path.start() {
            pr_err!("path to the server did not come up: {:?}\n", e);
            sess.close();
            return Err(e);
        }
        Ok(sess)
    }

    /// The session name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Permits (requests in flight at most).
    pub fn queue_depth(&self) -> u32 {
        self.depth
    }

    /// Largest data of one request.
    pub fn max_io_size(&self) -> u32 {
        self.max_io
    }

    /// Most data segments of one request: a block queue's `max_segments`.
    /// Its virtual boundary must be 4 KiB (every segment but the first
    /// starts, and every one but the last ends, on a 4 KiB boundary), so
    /// that a read's segments fit one registration.
    pub fn max_segments(&self) -> u32 {
        self.max_segments
    }

    /// Largest user header.
    pub fn max_hdr_size(&self) -> u32 {
        self.geo.max_hdr_size
    }

    /// True while some path is connected.
    pub fn is_connected(&self) -> bool {
        self.paths
            .lock()
            .iter()
            .any(|p| p.core.state() == State::Connected)
    }

    /// A free permit, taken; `None` if none is free.  Any context, no lock:
    /// the lowest free bit of the free map is claimed with a compare and
    /// exchange.
    fn take_free(self: &Arc<Self>) -> Option<Permit> {
        for (w, word) in self.free.iter().enumerate() {
            let mut v = word.load(Ordering::Acquire);
            while v != 0 {
                let b = v.trailing_zeros();
                match word.compare_exchange_weak(
                    v,
                    v & !(1 << b),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let id = w as u32 * 64 + b;
                        let slot = self.slots.get(id as usize)?;
                        return Some(Permit {
                            sess: self.clone(),
                            id,
                            tx: slot.tx.take(),
                            inv: slot.inv.take(),
                        });
                    }
                    Err(now) => v = now,
                }
            }
        }
        None
    }

    /// Takes a free permit; with `wait`, sleeps until one is free (or the
    /// session closes).  A freed permit wakes every waiter; the first to
    /// claim it gets it, the others sleep again.
    pub fn permit(self: &Arc<Self>, wait: bool) -> Option<Permit> {
        self.permit_within(if wait { None } else { Some(0) }).ok()
    }

    /// Takes a free permit, waiting at most `timeout_ms` (`None`: until one
    /// is free); `ENOTCONN` once the session closes, `ETIMEDOUT` after the
    /// wait.
    fn permit_within(self: &Arc<Self>, timeout_ms: Option<u32>) -> Result<Permit> {
        let mut got = None;
        let done = self.permit_wait.wait_until(timeout_ms, || {
            got = self.take_free();
            got.is_some() || self.closing.load(Ordering::Acquire)
        });
        match got {
            Some(p) => Ok(p),
            None if done => Err(enotconn()),
            None => Err(etimedout()),
        }
    }

    /// Takes a free permit, waiting at most `timeout_ms`: for a control
    /// message, whose sender must not hang while the server keeps every
    /// permit busy.  `ENOTCONN` once the session closes, `ETIMEDOUT` after
    /// the wait.
    pub fn permit_timeout(self: &Arc<Self>, timeout_ms: u32) -> Result<Permit> {
        self.permit_within(Some(timeout_ms))
    }

    /// Sends a request: `usr` (the user header) and, for a write, the data
    /// the permit's table describes; for a read, the server writes the
    /// table's bytes.  [`SessEvents::io_done`] follows exactly once,
    /// possibly before this returns, after the table was unmapped.
    pub fn request(self: &Arc<Self>, mut permit: Permit, dir: Dir, usr: &[u8]) {
        let id = permit.id;
        let path = self
            .paths
            .lock()
            .iter()
            .find(|p| p.core.state() == State::Connected)
            .cloned();
        let Some(path) = path else {
            return self.events.io_done(permit, enotconn().to_errno());
        };
        let (Some(mr), Some(slot)) = (path.mrs.get(id as usize), self.slots.get(id as usize))
        else {
            return self.events.io_done(permit, EINVAL.to_errno());
        };
        let Ok(sg) = permit.sg_mut() else {
            return self.events.io_done(permit, EINVAL.to_errno());
        };
        let data_len = sg.bytes();
        let msg_len = match dir {
            Dir::Write => wire::RdmaWrite::SIZE,
            Dir::Read => wire::RdmaReadHdr::SIZE + SgDesc::SIZE,
        };
        let total = data_len as usize + usr.len() + msg_len;
        if usr.len() > self.geo.max_hdr_size as usize
            || usr.len() + msg_len > HDR_MAX
            || data_len > self.max_io
            || total > self.geo.chunk_size as usize
            || (dir == Dir::Read && data_len == 0)
        {
            return self.events.io_done(permit, emsgsize().to_errno());
        }
        let ddir = match dir {
            Dir::Write => Direction::ToDevice,
            Dir::Read => Direction::FromDevice,
        };
        if let Err(e) = sg.map(&path.pd, ddir) {
            return self.events.io_done(permit, e.to_errno());
        }
        // Reads are registered for the server to write into; writes name
        // their pages as SGEs unless, with the header, there are more than
        // the QP takes: then they go through a registration too.
        let use_mr = dir == Dir::Read || sg.count() + 1 > path.send_sge;
        if use_mr && dir == Dir::Write {
            self.mr_writes.fetch_add(1, Ordering::Relaxed);
        }
        if use_mr {
            if let Err(e) = mr.map(sg) {
                support::peer_err!(
                    "request {}: registration of {} segments failed: {:?}\n",
                    id,
                    sg.count(),
                    e
                );
                sg.finish();
                return self.events.io_done(permit, e.to_errno());
            }
        }
        // The header goes after the data, as it lands in the server's chunk.
        let mut hdr = [0u8; wire::RdmaReadHdr::SIZE + SgDesc::SIZE];
        match dir {
            Dir::Write => {
                let m = wire::RdmaWrite {
                    ty: Le16::new(wire::MsgType::Write as u16),
                    usr_len: Le16::new(usr.len() as u16),
                };
                hdr[..wire::RdmaWrite::SIZE].copy_from_slice(&m.to_bytes());
            }
            Dir::Read => {
                let m = wire::RdmaReadHdr {
                    ty: Le16::new(wire::MsgType::Read as u16),
                    usr_len: Le16::new(usr.len() as u16),
                    flags: Le16::new(wire::MSG_NEED_INVAL_F),
                    sg_cnt: Le16::new(1),
                };
                hdr[..wire::RdmaReadHdr::SIZE].copy_from_slice(&m.to_bytes());
                let d = SgDesc {
                    addr: Le64::new(mr.iova()),
                    key: Le32::new(mr.rkey()),
                    len: Le32::new(data_len),
                };
                hdr[wire::RdmaReadHdr::SIZE..].copy_from_slice(&d.to_bytes());
            }
        }
        if let Err(e) = sg.map_hdr(&[usr, &hdr[..msg_len]]) {
            undo(sg, mr, use_mr);
            return self.events.io_done(permit, e.to_errno());
        }
        let off = data_len + usr.len() as u32;
        let imm = wire::io_req_join(id, off, self.geo.queue_depth)
            .map(|payload| Imm::IoReq { payload }.encode());
        let (raddr, rkey) = path.rbuf(id);
        // The server's address plus an offset inside its chunk: cannot wrap
        // after `info_rsp_bufs`, checked anyway rather than trusted.
        let (Some(imm), Some(hdr_addr)) = (imm, raddr.checked_add(data_len as u64)) else {
            undo(sg, mr, use_mr);
            return self.events.io_done(permit, EINVAL.to_errno());
        };
        // The connection of the CPU we run on: no other CPU posts on it
        // (unless a request migrates between here and the post).
        let cid = 1 + (support::current_cpu() % (path.con_num as u32 - 1)) as u16;
        let (Some(mut tx), Some(inv)) = (permit.tx.take(), permit.inv.take()) else {
            return self.events.io_done(permit, EINVAL.to_errno());
        };
        tx.get_mut().path = Some(path.clone());
        slot.since_ms.store(support::now_ms(), Ordering::Relaxed);
        slot.posted_ns
            .store(Ktime::ktime_get().to_ns() as u64, Ordering::Relaxed);
        // The invalidation's owner waits in the slot; the send's goes to
        // the device.  `permit` is now empty, and rebuilt when it ends.
        let inv_parked = slot.inv.put(inv);
        let mut state = st::IN_FLIGHT | st::INV_BACK | st::with_cid(cid);
        if dir == Dir::Read {
            state |= st::READ;
        }
        if use_mr {
            state |= st::USE_MR;
        } else {
            state |= st::INVALIDATED;
        }
        if inv_parked.is_err()
            || slot
                .state
                .compare_exchange(0, state, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            pr_err!("permit {} already in flight\n", id);
            permit.inv = inv_parked.err().or_else(|| slot.inv.take());
            undo(&mut tx.get_mut().sg, mr, use_mr);
            tx.get_mut().path = None;
            permit.tx = Some(tx);
            return self.events.io_done(permit, EINVAL.to_errno());
        }
        drop(permit);
        let r = path.core.try_post(cid, tx, |o| {
            let mr = o
                .path
                .as_ref()
                .and_then(|p| p.mrs.get(id as usize))
                .ok_or(EINVAL)?;
            let hdr = o.sg.hdr_sge()?;
            let mut c = Chain::new();
            match dir {
                Dir::Read => {
                    c.push(SendOp::RegSg {
                        mr,
                        access: Access::REMOTE_WRITE,
                    })?;
                    c.push(SendOp::WriteImmData {
                        data: Data::None,
                        hdr,
                        remote_addr: hdr_addr,
                        rkey,
                        imm,
                    })?;
                }
                Dir::Write if use_mr => {
                    c.push(SendOp::RegSg {
                        mr,
                        access: Access::LOCAL,
                    })?;
                    c.push(SendOp::WriteImmData {
                        data: Data::Mr(mr),
                        hdr,
                        remote_addr: raddr,
                        rkey,
                        imm,
                    })?;
                }
                Dir::Write => {
                    c.push(SendOp::WriteImmData {
                        data: Data::Sg(&o.sg),
                        hdr,
                        remote_addr: raddr,
                        rkey,
                        imm,
                    })?;
                }
            }
            Ok(c)
        });
        match r {
            Ok(()) => {}
            // Never posted: nothing of it is in the device's hands.
            Err((e, Unposted::Whole(mut tx))) => {
                let t = tx.get_mut();
                t.path = None;
                undo(&mut t.sg, mr, use_mr);
                if let Err(tx) = slot.tx.put(tx) {
                    let _ = KBox::into_raw(tx);
                }
                // Ends it unless the path's failure did meanwhile.
                let s = slot
                    .state
                    .fetch_or(st::TX_BACK | st::DONE, Ordering::AcqRel);
                if s & st::DONE == 0 {
                    self.complete(id, Some(e.to_errno()));
                }
            }
            // Part of the chain is posted: the owner waits in the slot,
            // untouched (the device may still read what it names), for
            // the path's failure after the drain (`fail_pending`), which
            // unmaps and ends it.
            Err((_, Unposted::Partly(tx))) => {
                if let Err(tx) = slot.tx.put(tx) {
                    let _ = KBox::into_raw(tx);
                }
                slot.state.fetch_or(st::TX_BACK, Ordering::SeqCst);
                path.close();
                // A close work that already drained and failed the path's
                // requests may have passed this one (its owner was not back
                // yet): end it here then.  SeqCst here and there: one of the
                // two sees the other.
                if path.core.state() == State::Closed
                    && slot.state.fetch_or(st::DONE, Ordering::AcqRel) & st::DONE == 0
                {
                    self.complete(id, Some(econnaborted().to_errno()));
                }
            }
        }
    }

    /// Sets `bits` in request `id`'s state and returns the new state, or
    /// `None` if it is not in flight (or ended).
    fn mark(&self, id: u32, bits: u32) -> Option<u32> {
        let slot = self.slots.get(id as usize)?;
        slot.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & st::IN_FLIGHT != 0 && s & st::DONE == 0).then_some(s | bits)
            })
            .ok()
            .map(|old| old | bits)
    }

    /// Ends request `id` if `state` (its state after the caller's event)
    /// has everything it waits for, unless another event claimed its end.
    fn maybe_complete(self: &Arc<Self>, id: u32, state: u32) {
        if state & st::COMPLETE != st::COMPLETE || state & st::DONE != 0 {
            return;
        }
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        if slot.state.fetch_or(st::DONE, Ordering::AcqRel) & st::DONE == 0 {
            self.complete(id, None);
        }
    }

    /// Ends request `id`, whose end the caller claimed (`st::DONE`): unmaps
    /// its pages (the device is done with them), frees its slot for the
    /// permit's next request and tells the user, with `status` or the
    /// answer's.
    fn complete(self: &Arc<Self>, id: u32, status: Option<i32>) {
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        let status = status.unwrap_or_else(|| st::status(slot.state.load(Ordering::Acquire)));
        let tx = slot.tx.take();
        let inv = slot.inv.take();
        slot.state.store(0, Ordering::Release);
        let mut permit = Permit {
            sess: self.clone(),
            id,
            tx,
            inv,
        };
        match permit.sg_mut() {
            Ok(sg) => sg.finish(),
            Err(_) => pr_err!("request {} ends without its send's owner\n", id),
        }
        self.events.io_done(permit, status);
    }

    /// The oldest request in flight, for the heartbeat's timeout: its age
    /// in ms and what it still waits for.
    fn oldest_pending(&self) -> Option<Stuck> {
        let now = support::now_ms();
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                let state = s.state.load(Ordering::Acquire);
                (state & st::IN_FLIGHT != 0 && state & st::DONE == 0).then(|| Stuck {
                    age_ms: now.saturating_sub(s.since_ms.load(Ordering::Relaxed)),
                    id: id as u32,
                    state,
                })
            })
            .max_by_key(|s| s.age_ms)
    }

    /// Fails every request in flight (their QPs are drained, so every
    /// posted owner is back).  A request whose send's owner is not back is
    /// still being submitted: its submitter ends it.
    fn fail_pending(self: &Arc<Self>) {
        for (id, slot) in self.slots.iter().enumerate() {
            // SeqCst: pairs with a submitter's partly posted request (see
            // `request`), after the path's SeqCst `set_closed`.
            let s = slot.state.load(Ordering::SeqCst);
            if s & st::IN_FLIGHT == 0 || s & st::TX_BACK == 0 {
                continue;
            }
            if slot.state.fetch_or(st::DONE, Ordering::AcqRel) & st::DONE == 0 {
                self.complete(id as u32, Some(econnaborted().to_errno()));
            }
        }
    }

    /// Closes every path and waits until they are down.  Requests in flight
    /// fail.  Sleeps.
    pub fn close(&self) {
        let mr_writes = self.mr_writes.load(Ordering::Relaxed);
        if !self.closing.swap(true, Ordering::AcqRel) && mr_writes > 0 {
            pr_info!(
                "session {}: closing; {} writes went through a registration (more SGEs than the QP takes)\n",
                kernel::str::BStr::from_bytes(&self.name),
                mr_writes,
            );
        }
        self.closing.store(true, Ordering::Release);
        self.permit_wait.wake_all();
        let paths: KVec<Arc<Path>> = {
            let g = self.paths.lock();
            let mut v = KVec::new();
            for p in g.iter() {
                let _ = v.push(p.clone(), GFP_KERNEL);
            }
            v
        };
        for p in paths.iter() {
            p.close();
        }
        drop(paths);
        let mut g = self.paths.lock();
        let _ = wait::until(&self.path_gone, &mut g, None, |paths| paths.is_empty());
        drop(g);
        self.wq.flush();
    }
}

/// Takes back a request that was not posted: unmaps its table and frees
/// its registration, which the device never saw.
fn undo(sg: &mut SgTable, mr: &SgMr, use_mr: bool) {
    sg.finish();
    if use_mr {
        mr.release();
    }
}

/// One connection while it is being established, then for its life.
type Link = CmId<ConEvents>;

const C_IDLE: u8 = 0;
const C_ADDR: u8 = 1;
const C_ROUTE: u8 = 2;
const C_UP: u8 = 3;
const C_ERR: u8 = 4;

/// Handler of a connection's rdma_cm events: reports the connect steps to
/// the connecting thread, then errors to the path.
#[pin_data]
struct ConEvents {
    #[pin]
    st: Mutex<ConSt>,
    #[pin]
    cv: CondVar,
}

struct ConSt {
    phase: u8,
    err: i32,
    /// The server's geometry from its accept, checked.
    geo: Option<Geometry>,
    path: Option<Arc<Path>>,
}

impl Handler for ConEvents {
    fn event(&self, _id: &IdRef<'_>, ev: &Event<'_>) {
        let mut g = self.st.lock();
        let fail = |g: &mut ConSt, e: i32| {
            if g.phase != C_UP {
                g.phase = C_ERR;
                g.err = e;
            }
        };
        match ev.kind {
            EventKind::AddrResolved => g.phase = C_ADDR,
            EventKind::RouteResolved => g.phase = C_ROUTE,
            EventKind::Established => match ConnRsp::parse(ev.private_data) {
                Ok(r) if r.errno.get() == 0 => match r.geometry() {
                    Ok(geo) => {
                        g.geo = Some(geo);
                        g.phase = C_UP;
                    }
                    Err(e) => {
                        support::peer_err!("server geometry not supported: {:?}\n", e);
                        fail(&mut g, EINVAL.to_errno());
                    }
                },
                Ok(r) => {
                    support::peer_err!("Invalid RTRS message: errno {}\n", r.reject_errno());
                    fail(&mut g, econnreset().to_errno());
                }
                Err(e) => {
                    support::peer_err!("Invalid RTRS connection response: {:?}\n", e);
                    fail(&mut g, econnreset().to_errno());
                }
            },
            EventKind::Rejected => {
                let errno = ConnRsp::from_bytes(ev.private_data)
                    .ok()
                    .filter(|r| r.magic.get() == wire::MAGIC)
                    .map(|r| r.reject_errno() as i32)
                    // A plain errno only: nothing the kernel would warn
                    // about (`Error::from_errno`) or treat as a restart.
                    .filter(|&e| (-511..0).contains(&e))
                    .unwrap_or(econnrefused().to_errno());
                support::peer_err!("Connect rejected: status {}, errno {}\n", ev.status, errno);
                fail(&mut g, errno);
            }
            EventKind::AddrError | EventKind::RouteError => {
                support::peer_warn!("CM error (CM event: {:?}, err: {})\n", ev.kind, ev.status);
                fail(&mut g, ehostunreach().to_errno());
            }
            EventKind::ConnectError
            | EventKind::Unreachable
            | EventKind::AddrChange
            | EventKind::TimewaitExit => {
                support::peer_warn!("CM error (CM event: {:?}, err: {})\n", ev.kind, ev.status);
                fail(&mut g, econnreset().to_errno());
            }
            EventKind::Disconnected | EventKind::DeviceRemoval => {
                // Say why the path goes (the server closed it, or the
                // device left), unless we are closing it ourselves.
                if g.path
                    .as_ref()
                    .is_some_and(|p| p.core.state() == State::Connected)
                {
                    support::peer_warn!("path closed by a CM event: {:?}\n", ev.kind);
                }
                fail(&mut g, econnreset().to_errno())
            }
            k => support::peer_info!("Ignoring CM event {:?}\n", k),
        }
        let path = g.path.clone();
        drop(g);
        self.cv.notify_all();
        if let Some(p) = path {
            if !matches!(
                ev.kind,
                EventKind::AddrResolved | EventKind::RouteResolved | EventKind::Established
            ) {
                p.close();
            }
        }
    }
}

impl ConEvents {
    /// Waits until the connection reached `phase` (or failed).
    fn wait(&self, phase: u8) -> Result {
        let mut g = self.st.lock();
        wait::until(&self.cv, &mut g, Some(CONNECT_STEP_MS), |s| {
            s.phase >= phase
        })?;
        if g.phase == C_ERR {
            return Err(Error::from_errno(g.err));
        }
        Ok(())
    }
}

/// Connects one connection; for cid 0 (`geo` is `None`) also returns the
/// server's geometry and the PD every other connection shares.
fn connect(
    dst: SockAddr,
    req: &[u8; ConnReq::SIZE],
    geo: Option<&Geometry>,
    pd: Option<&Arc<Pd>>,
) -> Result<(Link, Option<Geometry>, Arc<Pd>)> {
    {
        let ctl = Arc::pin_init(
            pin_init!(ConEvents {
                st <- new_mutex!(ConSt { phase: C_IDLE, err: 0, geo: None, path: None }),
                cv <- new_condvar!(),
            }),
            GFP_KERNEL,
        )?;
        let mut id = CmId::new(ctl.clone())?;
        id.resolve_addr(dst, CONNECT_STEP_MS)?;
        ctl.wait(C_ADDR)?;
        let dev = id.device().ok_or(ENODEV)?;
        let pd = match pd {
            Some(p) => p.clone(),
            None => Pd::new(dev)?,
        };
        let (send, recv, sge) = match geo {
            // Info request, heartbeats and their answers.
            None => (64, ADMIN_RECVS + 2, 1),
            // Per request: registration + write, or a local invalidation;
            // two receives (answer and the server's invalidation).
            Some(g) => {
                let qd = g.queue_depth.min(MAX_PERMITS);
                (qd * 3 + 2, qd * 2 + 2, io_send_sge(dev))
            }
        };
        let cid = u16::from_le_bytes([req[6], req[7]]);
        // Completions in softirq, as upstream's client: no context switch
        // between the device and a request's end.  Every handler below
        // takes no sleeping lock and allocates nothing with GFP_KERNEL.
        core_path::create_qp(&mut id, &pd, cid, (send, recv, sge), Poll::Softirq)?;
        id.resolve_route(CONNECT_STEP_MS)?;
        ctl.wait(C_ROUTE)?;
        id.connect(&ConnParam {
            private_data: req,
            responder_resources: 0,
            initiator_depth: 0,
            retry_count: 7,
            rnr_retry_count: 7,
        })?;
        ctl.wait(C_UP)?;
        let g = ctl.st.lock().geo.ok_or(EINVAL)?;
        if let Some(want) = geo {
            if g.queue_depth != want.queue_depth {
                support::peer_err!("Error: queue depth changed\n");
                return Err(econnreset());
            }
        }
        Ok((id, Some(g), pd))
    }
}

/// SGEs of one send on an IO connection: a write's pages and its header.
fn io_send_sge(dev: rdma::device::Device<'_>) -> u32 {
    dev.max_send_sge().min(MAX_SEND_SGE as u32)
}

/// One path of a session.
#[pin_data]
struct Path {
    sess: Arc<Sess>,
    con_num: u16,
    pd: Arc<Pd>,
    /// MR of each permit, for its requests' registrations.
    mrs: KVec<SgMr>,
    /// SGEs of one send on the IO connections.
    send_sge: u32,
    /// The server's chunk of each permit: address and (changing) rkey.
    raddr: KVec<AtomicU64Pair>,
    /// Per connection: the rkey the server's last SEND_WITH_INV revoked
    /// (`INV_SEEN | rkey`), not yet matched with an answer, or 0.  Only the
    /// connection's CQ poller (one work item) touches its entry.
    inv_seen: KVec<AtomicU64>,
    /// Per connection: when `inv_seen` was recorded (ns).
    inv_at: KVec<AtomicU64>,
    /// State, connections (cid 0 is the admin connection) and heartbeat.
    #[pin]
    core: PathCore<Path>,
    #[pin]
    close_w: Work<Path>,
}

/// Marks a valid entry of `Path::inv_seen`.
const INV_SEEN: u64 = 1 << 32;

/// A remote chunk's address and key.
struct AtomicU64Pair {
    addr: AtomicU64,
    rkey: AtomicU32,
}

rtrs_core::close_work!(Path, close_w);

impl Path {
    fn new(sess: &Arc<Sess>, pd: Arc<Pd>, links: KVec<Link>) -> Result<Arc<Self>> {
        let n = sess.depth as usize;
        let mut mrs = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut raddr = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            mrs.push(SgMr::new(&pd, sess.mr_pages)?, GFP_KERNEL)?;
            raddr.push(
                AtomicU64Pair {
                    addr: AtomicU64::new(0),
                    rkey: AtomicU32::new(0),
                },
                GFP_KERNEL,
            )?;
        }
        let con_num = links.len() as u16;
        let mut cons = KVec::with_capacity(links.len(), GFP_KERNEL)?;
        for l in links {
            cons.push(KBox::new(l, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut inv_seen = KVec::with_capacity(con_num as usize, GFP_KERNEL)?;
        let mut inv_at = KVec::with_capacity(con_num as usize, GFP_KERNEL)?;
        for _ in 0..con_num {
            inv_seen.push(AtomicU64::new(0), GFP_KERNEL)?;
            inv_at.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let core = PathCore::new(con_num)?;
        let p = Arc::pin_init(
            pin_init!(Path {
                sess: sess.clone(),
                con_num,
                send_sge: io_send_sge(pd.device()),
                pd,
                mrs,
                raddr,
                inv_seen,
                inv_at,
                core <- core,
                close_w <- new_work!("rtrs_client::Path::close"),
            }),
            GFP_KERNEL,
        )?;
        // From now on connection errors close the path.
        for (cid, l) in cons.into_iter().enumerate() {
            l.handler().st.lock().path = Some(p.clone());
            if let Err(l) = p.core.publish_con(cid as u16, l) {
                // Cannot happen: every slot is empty, and there is one per
                // link.
                l.handler().st.lock().path = None;
                p.close();
                return Err(EINVAL);
            }
        }
        Ok(p)
    }

    fn rbuf(&self, id: u32) -> (u64, u32) {
        self.raddr.get(id as usize).map_or((0, 0), |r| {
            (
                r.addr.load(Ordering::Acquire),
                r.rkey.load(Ordering::Acquire),
            )
        })
    }

    /// Posts receives, exchanges the info messages, starts the heartbeat.
    fn start(self: &Arc<Self>) -> Result {
        let geo = self.sess.geo;
        let info_len = wire::InfoRspHdr::SIZE + geo.queue_depth as usize * SgDesc::SIZE;
        let info = Arc::new(
            InfoWait {
                res: AtomicI32::new(INFO_PENDING),
                wq: WaitQueue::new()?,
            },
            GFP_KERNEL,
        )?;
        {
            let buf = DmaBuf::new(&self.pd, info_len, Direction::FromDevice, GFP_KERNEL)?;
            let owner = Posted::new(
                InfoRecv {
                    path: self.clone(),
                    buf,
                    wait: info.clone(),
                },
                GFP_KERNEL,
            )?;
            self.core
                .post_recv(0, owner, |o| Ok(Some(o.buf.sge(0, info_len)?)))?;
        }
        for _ in 0..ADMIN_RECVS {
            self.post_recv(0)?;
        }
        for cid in 1..self.con_num {
            for _ in 0..(self.sess.queue_depth() * 2) {
                self.post_recv(cid)?;
            }
        }
        let req = InfoReq::new(&self.sess.name).ok_or(EINVAL)?.to_bytes();
        let mut buf = DmaBuf::new(&self.pd, InfoReq::SIZE, Direction::ToDevice, GFP_KERNEL)?;
        // Element-wise: a length-checked copy_from_slice here leaves a call
        // to a panic helper that 6.12's objtool does not know never returns.
        buf.with_cpu_mut(|b| b.iter_mut().zip(req.iter()).for_each(|(d, s)| *d = *s));
        self.core.post(
            0,
            Plain {
                path: self.clone(),
                buf,
                what: "info request",
            },
            |o| {
                let mut c = Chain::new();
                c.push(SendOp::Send {
                    sge: Some(o.buf.sge(0, InfoReq::SIZE)?),
                })?;
                Ok(c)
            },
        )?;
        // The answer, or a failure that closed the path.
        info.wq.wait_until(Some(CONNECT_STEP_MS), || {
            info.res.load(Ordering::Acquire) != INFO_PENDING || self.core.state() >= State::Closing
        });
        match info.res.load(Ordering::Acquire) {
            0 => {}
            INFO_PENDING => return Err(etimedout()),
            e => return Err(Error::from_errno(e)),
        }
        if !self.core.set_connected() {
            return Err(enotconn());
        }
        PathCore::start_heartbeat(self, &self.sess.wq)
    }

    /// Posts a receive on `cid`: with a buffer for the server's rkey
    /// messages if it sends them, empty otherwise.  At path setup only:
    /// each receive is then posted again by its completion.
    fn post_recv(self: &Arc<Self>, cid: u16) -> Result {
        let buf = if self.sess.geo.new_rkey {
            Some(DmaBuf::new(
                &self.pd,
                wire::RkeyRsp::SIZE,
                Direction::FromDevice,
                GFP_KERNEL,
            )?)
        } else {
            None
        };
        let owner = Posted::new_reused(
            Recv {
                path: self.clone(),
                cid,
                buf,
            },
            GFP_KERNEL,
        )?;
        self.repost_recv(owner)
    }

    /// Posts the receive `owner` (again) on its connection.
    fn repost_recv(&self, owner: KBox<Posted<Recv>>) -> Result {
        let cid = owner.get().cid;
        self.core.post_recv(cid, owner, |o| match &o.buf {
            Some(b) => Ok(Some(b.sge(0, wire::RkeyRsp::SIZE)?)),
            None => Ok(None),
        })
    }

    /// The server's SEND_WITH_INV on `cid` revoked our key `rkey`; the
    /// answer it precedes (same chain, same QP, so the next receive) says
    /// which request it was for.
    fn remote_inv(&self, cid: u16, rkey: u32) {
        if let (Some(e), Some(t)) = (
            self.inv_seen.get(cid as usize),
            self.inv_at.get(cid as usize),
        ) {
            e.store(INV_SEEN | rkey as u64, Ordering::Relaxed);
            t.store(Ktime::ktime_get().to_ns() as u64, Ordering::Relaxed);
        }
    }

    /// An answer to request `msg_id`, received on `cid`.
    ///
    /// Everything here comes from the server: an id we did not send, a
    /// second answer, or an answer whose claimed invalidation did not happen
    /// must neither complete a request twice nor hand back a read buffer
    /// whose key the server can still write with.
    fn io_rsp(self: &Arc<Self>, cid: u16, msg_id: u32, errno: i32, with_inval: bool) {
        let sess = &self.sess;
        // The key the server revoked just before this answer, if any.
        let inv = self
            .inv_seen
            .get(cid as usize)
            .map_or(0, |e| e.swap(0, Ordering::Relaxed));
        let inv_at = self
            .inv_at
            .get(cid as usize)
            .map_or(0, |t| t.load(Ordering::Relaxed));
        let (Some(mr), Some(slot)) = (
            self.mrs.get(msg_id as usize),
            sess.slots.get(msg_id as usize),
        ) else {
            support::peer_err!("answer for unknown request {}\n", msg_id);
            return self.close();
        };
        // Trust the invalidation flag only if the HCA reported revoking
        // exactly this request's current key, after the request was posted
        // (the same key comes back after 256 registrations: an old,
        // unanswered SEND_WITH_INV must not stand for this one).
        let confirmed = with_inval
            && inv == INV_SEEN | mr.rkey() as u64
            && inv_at >= slot.posted_ns.load(Ordering::Relaxed);
        let pre = slot.state.load(Ordering::Acquire);
        let waits_inv = pre & st::READ != 0 && pre & st::INVALIDATED == 0;
        let revoked = confirmed && waits_inv;
        if revoked {
            // The server's SEND_WITH_INV revoked the key: the MR is free,
            // before the request can end and its permit be reused (if the
            // answer is refused below, the path closes anyway).
            mr.release();
        }
        // The first answer of a request in flight takes it, with its status,
        // in one step.
        let bits =
            st::ANSWERED | st::with_status(errno) | if revoked { st::INVALIDATED } else { 0 };
        let Ok(old) = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & st::IN_FLIGHT != 0 && s & (st::DONE | st::ANSWERED) == 0).then_some(s | bits)
            })
        else {
            support::peer_err!("answer for request {} that is not in flight\n", msg_id);
            return self.close();
        };
        let new = old | bits;
        let unconfirmed = waits_inv && with_inval && !confirmed;
        if unconfirmed {
            support::peer_warn!(
                "answer for request {} claims an invalidation that did not happen\n",
                msg_id
            );
        }
        // The server left our read buffer's key valid: revoke it before the
        // data is handed back (`Inval` completes the request).  On the
        // request's own connection, behind its registration, and only once
        // its send is back (else `Tx` does it when it is): a server
        // answering early, or on another connection, must not get the
        // invalidation executed before the key is registered.
        if new & st::READ != 0 && new & st::INVALIDATED == 0 && new & st::TX_BACK != 0 {
            return self.local_inv(st::cid(new), msg_id);
        }
        sess.maybe_complete(msg_id, new);
    }

    /// Posts the local invalidation of request `id`'s registration on
    /// connection `cid`; `Inval` completes the request.
    fn local_inv(self: &Arc<Self>, cid: u16, id: u32) {
        let (Some(mr), Some(slot)) = (self.mrs.get(id as usize), self.sess.slots.get(id as usize))
        else {
            return self.close();
        };
        let rkey = mr.rkey();
        let Some(mut inv) = slot.inv.take() else {
            pr_err!("request {}: its invalidation is already posted\n", id);
            return self.close();
        };
        slot.state.fetch_and(!st::INV_BACK, Ordering::AcqRel);
        inv.get_mut().path = Some(self.clone());
        let r = self.core.try_post(cid, inv, |_| {
            let mut c = Chain::new();
            c.push(SendOp::LocalInv { rkey })?;
            Ok(c)
        });
        if let Err((e, inv)) = r {
            support::peer_err!("Posting LOCAL_INV failed: {:?}\n", e);
            if let Some(mut inv) = inv.whole() {
                inv.get_mut().path = None;
                if slot.inv.put(inv).is_ok() {
                    slot.state.fetch_or(st::INV_BACK, Ordering::AcqRel);
                }
            }
            self.close();
        }
    }

    /// Disconnects, drains the QPs (every posted request comes back), fails
    /// what is left in flight, tells the user if it was the last path.
    fn close_work(self: Arc<Self>) {
        let links = self.core.stop();
        for l in links.iter() {
            l.handler().st.lock().path = None;
        }
        drop(links);
        self.core.set_closed();
        let sess = self.sess.clone();
        let last = {
            let mut g = sess.paths.lock();
            g.take_where(|p| Arc::ptr_eq(p, &self), drop);
            let last = g.iter().all(|p| p.core.state() != State::Connected);
            last
        };
        sess.fail_pending();
        sess.path_gone.notify_all();
        if last && !sess.closing.load(Ordering::Acquire) {
            sess.events.disconnected();
        }
    }
}

impl PathOps for Path {
    type Events = ConEvents;

    fn core(&self) -> &PathCore<Self> {
        &self.core
    }

    /// A connected path that starts closing says which call closed it
    /// (unless its session is being closed on purpose): several causes log
    /// nothing of their own (a flushed completion after the QP failed, a
    /// partly posted chain), and an operator seeing only "session
    /// disconnected" could not tell them apart.
    fn closing(self: &Arc<Self>, was: State, at: &'static core::panic::Location<'static>) {
        if was == State::Connected && !self.sess.closing.load(Ordering::Acquire) {
            support::peer_warn!(
                "closing the connected path (closed at {}:{})\n",
                at.file(),
                at.line()
            );
        }
        let _ = self.sess.wq.queue().enqueue(self.clone());
    }

    /// Closes the path when a request waits longer than [`IO_TIMEOUT_MS`].
    fn on_heartbeat(self: &Arc<Self>) -> bool {
        let Some(s) = self
            .sess
            .oldest_pending()
            .filter(|s| s.age_ms > IO_TIMEOUT_MS)
        else {
            return true;
        };
        // What it waits for tells a silent server (not answered) from a
        // lost completion of ours (sent or invalidated missing).
        support::peer_err!(
            "request {} ({}, connection {}) not done after {} ms (sent {}, answered {}, invalidated {}, send owner back {}, invalidation owner back {}), closing the path\n",
            s.id,
            if s.state & st::READ != 0 { "read" } else { "write" },
            st::cid(s.state),
            s.age_ms,
            s.state & st::SENT != 0,
            s.state & st::ANSWERED != 0,
            s.state & st::INVALIDATED != 0,
            s.state & st::TX_BACK != 0,
            s.state & st::INV_BACK != 0
        );
        self.close();
        false
    }
}

/// Waits for the info response (set in a completion, any context).
struct InfoWait {
    /// [`INFO_PENDING`], then 0 or a negative errno.
    res: AtomicI32,
    wq: WaitQueue,
}

/// The info response has not been handled yet.
const INFO_PENDING: i32 = 1;

impl InfoWait {
    fn set(&self, r: Result) {
        let v = match r {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        self.res.store(v, Ordering::Release);
        self.wq.wake_all();
    }
}

struct InfoRecv {
    path: Arc<Path>,
    buf: DmaBuf,
    wait: Arc<InfoWait>,
}

impl Completion for InfoRecv {
    fn done(self, wc: &WorkCompletion) {
        let Self { path, buf, wait } = self;
        if wc.status != Status::Success || wc.opcode != Opcode::Recv {
            if wc.status != Status::Flushed {
                support::peer_err!("Path info response receive failed: {:?}\n", wc.status);
            }
            wait.set(Err(econnreset()));
            return path.close();
        }
        let geo = path.sess.geo;
        let n = (wc.byte_len as usize).min(buf.len());
        let r = buf.with_cpu(|b| -> Result {
            let rsp = InfoRsp::parse(&b[..n]).map_err(|e| {
                support::peer_err!("Path info response is malformed: {:?}\n", e);
                EINVAL
            })?;
            wire::info_rsp_bufs(&rsp, geo.queue_depth, geo.chunk_size, |i, addr, rkey| {
                if let Some(r) = path.raddr.get(i as usize) {
                    r.addr.store(addr, Ordering::Release);
                    r.rkey.store(rkey, Ordering::Release);
                }
            })
            .map_err(|e| {
                support::peer_err!("Incorrect chunk descriptors: {:?}\n", e);
                EINVAL
            })
        });
        wait.set(r);
        if r.is_err() {
            path.close();
        }
    }
}

/// A posted receive.
struct Recv {
    path: Arc<Path>,
    cid: u16,
    buf: Option<DmaBuf>,
}

impl Reuse for Recv {
    fn done(this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let (path, cid) = (this.get().path.clone(), this.get().cid);
        if wc.status != Status::Success {
            if wc.status != Status::Flushed {
                support::peer_err!("RDMA failed: {:?}\n", wc.status);
            }
            return path.close();
        }
        path.core.hb_seen();
        // An rkey message is copied out before its buffer is posted again.
        let rkey_msg = match (wc.opcode, wc.imm, this.get().buf.as_ref()) {
            (Opcode::Recv, Some(_), Some(b)) => Some(b.with_cpu(|s| {
                wire::RkeyRsp::from_bytes(&s[..(wc.byte_len as usize).min(s.len())])
            })),
            _ => None,
        };
        if let Err(e) = path.repost_recv(this) {
            support::peer_err!("post_recv failed: {:?}\n", e);
            return path.close();
        }
        let imm = match (wc.opcode, wc.imm) {
            (Opcode::RecvRdmaWithImm, Some(imm)) => imm,
            (Opcode::Recv, Some(imm)) => {
                // An answer with a new key for the server's chunk.
                let Some(msg) = rkey_msg else {
                    support::peer_err!("rkey response without a buffer\n");
                    return path.close();
                };
                let msg = match msg {
                    Ok(m) if m.ty.get() == wire::MsgType::RkeyRsp as u16 => m,
                    _ => {
                        support::peer_err!("rkey response is malformed: size {}\n", wc.byte_len);
                        return path.close();
                    }
                };
                let buf_id = msg.buf_id.get() as u32;
                let chunk = match Imm::try_from(imm) {
                    Ok(Imm::IoRsp { msg_id, .. }) if msg_id == buf_id => {
                        path.raddr.get(buf_id as usize)
                    }
                    _ => None,
                };
                match chunk {
                    // `io_rsp` then checks that the request is in flight.
                    Some(r) => r.rkey.store(msg.rkey.get(), Ordering::Release),
                    None => {
                        support::peer_err!(
                            "rkey response for buffer {} does not match its immediate {:#x}\n",
                            buf_id,
                            imm
                        );
                        return path.close();
                    }
                }
                imm
            }
            // The server's SEND_WITH_INV of a read buffer's key: the answer
            // that follows says so.
            (Opcode::Recv, None) => match wc.invalidated_rkey {
                Some(rkey) => return path.remote_inv(cid, rkey),
                None => {
                    support::peer_warn!("Unexpected WC type: {:?}\n", wc.opcode);
                    return path.close();
                }
            },
            (op, _) => {
                support::peer_warn!("Unexpected WC type: {:?}\n", op);
                return path.close();
            }
        };
        match Imm::try_from(imm) {
            Ok(Imm::IoRsp {
                msg_id,
                errno,
                with_inval,
            }) => path.io_rsp(cid, msg_id, errno, with_inval),
            Ok(Imm::HbMsg) => {
                if let Err(e) = PathCore::send_imm(&path, Imm::HbAck, "HB ACK") {
                    support::peer_err!("HB ACK send failed, errno: {:?}\n", e);
                    path.close();
                }
            }
            Ok(Imm::HbAck) => {}
            _ => support::peer_warn!("Unknown IMM type {:#x}\n", imm),
        }
    }
}

/// The send chain of a request, preallocated per permit.
///
/// It owns the table whose pages and header the chain's SGEs and
/// registration name, so the device's view stays valid until the chain
/// completes; the box then goes back to the request's permit.
struct Tx {
    /// The path it is posted on; `None` while not posted.
    path: Option<Arc<Path>>,
    id: u32,
    sg: SgTable,
}

impl Reuse for Tx {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let t = this.get_mut();
        let id = t.id;
        let Some(path) = t.path.take() else {
            return pr_err!("send completion of request {} without a path\n", id);
        };
        let ok = wc.status == Status::Success;
        if let Status::Error(s) = wc.status {
            support::peer_err!("IO request send failed: status {}\n", s);
        }
        let sess = &path.sess;
        let Some(slot) = sess.slots.get(id as usize) else {
            let _ = KBox::into_raw(this);
            return path.close();
        };
        let in_flight = slot.state.load(Ordering::Acquire) & st::IN_FLIGHT != 0;
        let unplaced = if in_flight {
            slot.tx.put(this).err()
        } else {
            Some(this)
        };
        if let Some(tx) = unplaced {
            // Cannot happen (a request ends only after its send's owner is
            // back); its pages may still be registered, so the table is
            // neither unmapped nor reused.
            let _ = KBox::into_raw(tx);
            pr_err!(
                "send completion of request {}, which is not in flight\n",
                id
            );
            return path.close();
        }
        let Some(new) = sess.mark(id, st::TX_BACK | if ok { st::SENT } else { 0 }) else {
            return;
        };
        if !ok {
            // The path's close fails the request once the QPs are drained.
            return path.close();
        }
        // A write through a registration revokes it once sent; so does a
        // read answered without a (confirmed) remote invalidation before
        // its send completed.
        if new & st::USE_MR != 0
            && new & st::INVALIDATED == 0
            && (new & st::READ == 0 || new & st::ANSWERED != 0)
        {
            return path.local_inv(st::cid(new), id);
        }
        sess.maybe_complete(id, new);
    }
}

/// Our local invalidation of a request's registration, preallocated per
/// permit.
struct Inval {
    /// The path it is posted on; `None` while not posted.
    path: Option<Arc<Path>>,
    id: u32,
}

impl Reuse for Inval {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let t = this.get_mut();
        let id = t.id;
        let Some(path) = t.path.take() else {
            return pr_err!("invalidation of request {} without a path\n", id);
        };
        let ok = wc.status == Status::Success;
        if !ok && wc.status != Status::Flushed {
            support::peer_err!("Failed IB_WR_LOCAL_INV: {:?}\n", wc.status);
        }
        if ok {
            // Only now can nobody access the request's pages through the
            // registration any more.
            if let Some(mr) = path.mrs.get(id as usize) {
                mr.release();
            }
        }
        let sess = &path.sess;
        let back = sess
            .slots
            .get(id as usize)
            .is_some_and(|s| s.inv.put(this).is_ok());
        if back {
            let bits = st::INV_BACK | if ok { st::INVALIDATED } else { 0 };
            if let Some(new) = sess.mark(id, bits) {
                sess.maybe_complete(id, new);
            }
        }
        if !ok {
            path.close();
        }
    }
}

struct RtrsClient;

impl kernel::Module for RtrsClient {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = protocol_version();
        pr_info!("Loading module rtrs_client, proto {}.{}\n", maj, min);
        Ok(Self)
    }
}

impl Drop for RtrsClient {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
