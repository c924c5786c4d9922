// SPDX-License-Identifier: GPL-2.0

//! RTRS server: passive side of the RDMA transport, wire-compatible with
//! upstream 6.12 `rtrs-server.ko`.
//!
//! # Objects and lifetimes
//!
//! - [`Server`]: the listener and the [`Ctx`] shared by everything it
//!   accepted.  Dropping it stops listening and closes every session.
//! - [`Sess`]: one client session (all connections that carry the same
//!   `paths_uuid`), with its `sess_queue_depth` chunks of `max_chunk_size`
//!   bytes, allocated once when the session appears.
//! - `Path`: one path of a session (`sess_uuid`): a PD, one MR per chunk and
//!   `con_num` connections (cid 0 is the admin connection).
//! - `Con`: an rdma_cm id and its RC QP, with a CQ polled in a workqueue, so
//!   that every completion handler runs in process context and may submit
//!   block IO.
//! - [`Io`]: one request handed to the user (RNBD); it owns its chunk until
//!   it is answered with [`Io::respond`] (or dropped, which answers -EIO).
//!
//! References go down (session → path → connection → id).  The handler of a
//! connection's id refers back to its path, and a session to the context;
//! those cycles are broken by the close work, which is the only place that
//! drops connections.  Work request owners and [`Io`]s hold the path, never
//! a connection, so no completion handler can drop a QP (which would wait
//! for the very handler that drops it).
//!
//! # Locking
//!
//! `Ctx::sessions` → `Sess::inner` → `Path::setup` → the path's setup lock
//! ([`PathCore`]), in this order only.  Posting takes no lock (see
//! [`PathCore`]), so an answer may be given in any context but an interrupt
//! (see [`Io::respond`]); a request's resources go back to their chunk
//! without a lock, and what holds its path there holds a [`DeferredArc`],
//! so the path's last reference (its drop sleeps) is never dropped there.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};
use proto::rtrs::{self as wire, ConnReq, ConnRsp, Imm, InfoReq, IoReq, ReadReq, SgDesc};
use proto::wire::{Le16, Le32, Le64};
use rdma::cm::{Chain, CmId, ConnParam, Event, EventKind, Handler, IdRef, SendOp, SockAddr};
use rdma::cq::Poll;
use rdma::dma::{Direction, DmaBuf};
use rdma::mr::Access;
use rdma::pages::BlockMr;
use rdma::pd::Pd;
use rdma::wr::{Completion, Opcode, Posted, Reuse, Status, WorkCompletion};
use rtrs_core::path::{self as core_path, PathCore, PathOps, Plain, State};
use rtrs_core::{wait, Slots};
use support::code::{econnreset, enotconn};
use support::pages::PageBlock;
use support::sync::{AtomicBox, DeferredArc, LastRef, WaitQueue};
use support::timer::{Tick, Timer};
use support::wq::OwnedQueue;
use support::{peer_err, peer_info, peer_warn};

module! {
    type: RtrsServer,
    name: "rtrs_server",
    author: "rnbd-rs developers",
    description: "RDMA Transport server (rnbd-rs)",
    license: "GPL",
}

// Accessors of params_server.c, this module's C shim for its parameters
// (plain reads of module-owned variables, hence `safe`).
unsafe extern "C" {
    safe fn rtrs_srv_param_always_invalidate() -> bool;
    safe fn rtrs_srv_param_max_chunk_size() -> i32;
    safe fn rtrs_srv_param_sess_queue_depth() -> i32;
    safe fn rtrs_srv_param_max_sessions() -> i32;
    safe fn rtrs_srv_param_max_paths() -> i32;
    safe fn rtrs_srv_param_setup_timeout() -> i32;
}

/// Largest user header (upstream `MAX_HDR_SIZE`, one page).
const MAX_HDR_SIZE: u32 = kernel::page::PAGE_SIZE as u32;

/// The module parameters, checked.
#[derive(Clone, Copy, Debug)]
struct Params {
    always_invalidate: bool,
    chunk_size: u32,
    queue_depth: u32,
    /// Sessions at once (not upstream: each costs a whole chunk pool).
    max_sessions: u32,
    /// Paths per session (upstream's `MAX_PATHS_NUM` at most).
    max_paths: u32,
    /// Milliseconds from a path's first connect request to its info
    /// request (not upstream: a client that stops half way would hold the
    /// path, its chunk MRs and the session's pool forever).
    setup_timeout_ms: u32,
}

impl Params {
    fn get() -> Result<Self> {
        let qd = rtrs_srv_param_sess_queue_depth();
        let chunk = rtrs_srv_param_max_chunk_size();
        // Upstream accepts 1, but the immediate then has no buffer id bits.
        if qd < 2 || qd > wire::MAX_SESS_QUEUE_DEPTH as i32 {
            pr_err!(
                "Invalid sess_queue_depth value {}, has to be >= 2, <= {}.\n",
                qd,
                wire::MAX_SESS_QUEUE_DEPTH
            );
            return Err(EINVAL);
        }
        if chunk < wire::MIN_CHUNK_SIZE as i32 || !(chunk as u32).is_power_of_two() {
            pr_err!(
                "Invalid max_chunk_size value {}, has to be >= {} and should be power of two.\n",
                chunk,
                wire::MIN_CHUNK_SIZE
            );
            return Err(EINVAL);
        }
        let (qd, chunk) = (qd as u32, chunk as u32);
        let bits = |v: u32| 32 - (v - 1).leading_zeros();
        if bits(qd) + bits(chunk) > wire::IMM_PAYLOAD_BITS {
            pr_err!(
                "RDMA immediate size ({}b) not enough to encode {} buffers of size {}B. Reduce 'sess_queue_depth' or 'max_chunk_size' parameters.\n",
                wire::IMM_PAYLOAD_BITS,
                qd,
                chunk
            );
            return Err(EINVAL);
        }
        let max_sessions = rtrs_srv_param_max_sessions();
        if max_sessions < 1 {
            pr_err!(
                "Invalid max_sessions value {}, has to be >= 1.\n",
                max_sessions
            );
            return Err(EINVAL);
        }
        let max_paths = rtrs_srv_param_max_paths();
        if max_paths < 1 || max_paths > wire::MAX_PATHS_NUM as i32 {
            pr_err!(
                "Invalid max_paths value {}, has to be >= 1, <= {}.\n",
                max_paths,
                wire::MAX_PATHS_NUM
            );
            return Err(EINVAL);
        }
        let setup = rtrs_srv_param_setup_timeout();
        if !(1..=3600).contains(&setup) {
            pr_err!(
                "Invalid setup_timeout value {}, has to be >= 1, <= 3600.\n",
                setup
            );
            return Err(EINVAL);
        }
        Ok(Self {
            always_invalidate: rtrs_srv_param_always_invalidate(),
            chunk_size: chunk,
            queue_depth: qd,
            max_sessions: max_sessions as u32,
            max_paths: max_paths as u32,
            setup_timeout_ms: setup as u32 * 1000,
        })
    }

    fn max_io(&self) -> u32 {
        self.chunk_size - MAX_HDR_SIZE
    }
}

/// What the user of the server (RNBD) provides.
pub trait Ops: Send + Sync + 'static {
    /// The first path of `sess`, named `name` by the client, is up.  Returns
    /// the session's handler, which receives its requests until
    /// [`SessOps::disconnected`].  Runs with the session's lock held: it must
    /// not call back into `sess`.
    fn connected(&self, sess: &Arc<Sess>, name: &[u8]) -> Result<Arc<dyn SessOps>>;
}

/// Per-session callbacks of the user.
pub trait SessOps: Send + Sync + 'static {
    /// A request arrived.  Runs in process context; `io` must be answered
    /// (from any context) with [`Io::respond`].
    fn rdma_ev(&self, io: Io);
    /// The last path of the session is gone.  Requests handed out before may
    /// still be answered; their answers are dropped.
    fn disconnected(&self);
}

/// State shared by the listener and every session it accepted.
#[pin_data]
struct Ctx {
    ops: Arc<dyn Ops>,
    params: Params,
    /// Runs the close work; flushed before the module goes.
    wq: Arc<OwnedQueue>,
    /// Every `Path` alive: the server's drop waits for all to have gone,
    /// since a late answer can hold one after its session went.
    paths: Arc<Drained>,
    #[pin]
    sessions: Mutex<Slots<Arc<Sess>>>,
    /// Notified when a session goes away.
    #[pin]
    gone: CondVar,
}

/// A client session.
///
/// Shared: the context lists it while it has paths, and every path refers to
/// it.  `inner` holds the paths and the user's handler.
#[pin_data]
pub struct Sess {
    ctx: Arc<Ctx>,
    paths_uuid: [u8; 16],
    params: Params,
    chunks: KVec<Arc<PageBlock>>,
    #[pin]
    inner: Mutex<SessInner>,
}

struct SessInner {
    /// Set when the session leaves `Ctx::sessions` (under both locks): a
    /// connect request that found it before must not add a path to it.
    removed: bool,
    paths: Slots<Arc<Path>>,
    paths_up: u32,
    user: Option<Arc<dyn SessOps>>,
    /// Name of the first path that came up (upstream's session name).
    name: Name,
}

/// A path name as the client sent it (checked: no NUL, `/` or `.`).
#[derive(Clone, Copy)]
struct Name {
    b: [u8; wire::NAME_MAX],
    n: usize,
}

impl Name {
    const fn empty() -> Self {
        Self {
            b: [0; wire::NAME_MAX],
            n: 0,
        }
    }

    fn set(&mut self, s: &[u8]) {
        let n = s.len().min(wire::NAME_MAX);
        self.b[..n].copy_from_slice(&s[..n]);
        self.n = n;
    }

    fn get(&self) -> &[u8] {
        &self.b[..self.n]
    }
}

impl Sess {
    /// The session's name: the path name the client sent (upstream
    /// `rtrs_srv_get_path_name`).
    pub fn name(&self, out: &mut [u8; wire::NAME_MAX + 1]) -> usize {
        let g = self.inner.lock();
        let n = g.name.n;
        out[..n].copy_from_slice(g.name.get());
        out[n] = 0;
        n
    }

    /// Requests the client may have in flight.
    pub fn queue_depth(&self) -> u32 {
        self.params.queue_depth
    }

    /// Bytes of data one request may carry.
    pub fn max_io_size(&self) -> u32 {
        self.params.max_io()
    }

    /// Closes every path (the client sees its connections drop).
    pub fn close(&self) {
        let paths: KVec<Arc<Path>> = {
            let g = self.inner.lock();
            let mut v = KVec::new();
            for p in g.paths.iter() {
                if v.push(p.clone(), GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        for p in paths.iter() {
            p.close();
        }
    }

    fn user(&self) -> Option<Arc<dyn SessOps>> {
        self.inner.lock().user.clone()
    }
}

/// One path of a session.
#[pin_data]
struct Path {
    sess: Arc<Sess>,
    uuid: [u8; 16],
    con_num: u16,
    pd: Arc<Pd>,
    /// One MR per chunk, index = buffer id.
    mrs: KVec<BlockMr>,
    /// A request owns its chunk from its arrival to its answer's completion.
    busy: KVec<AtomicBool>,
    /// Per chunk: the work requests and buffers of a request on it,
    /// preallocated.  A request takes a set when it arrives and its guard
    /// gives it back when its answer completed, both without a lock.
    res: KVec<[AtomicBox<ChunkRes>; RES_PER_CHUNK]>,
    mem_bits: u32,
    /// Counted in the session's `paths_up`; changed under the session's lock.
    established: AtomicBool,
    /// Chunks owned by requests.
    inflight: Arc<Drained>,
    /// State, connections (cid 0 is the admin connection) and heartbeat.
    #[pin]
    core: PathCore<Path>,
    #[pin]
    setup: Mutex<PathSetup>,
    /// The close work, allocated with the path so that closing cannot fail.
    #[pin]
    close_w: Work<Path>,
    /// Drops the last reference in process context: see [`LastRef`].
    #[pin]
    release_w: Work<Path, RELEASE>,
    /// Counted in the server's `Ctx::paths`.
    _alive: Counted,
}

rtrs_core::close_work!(Path, close_w);

/// The id of [`Path::release_w`] among the path's work items.
const RELEASE: u64 = 1;

impl_has_work! {
    impl HasWork<Self, RELEASE> for Path { self.release_w }
}

impl WorkItem<RELEASE> for Path {
    type Pointer = Arc<Path>;

    /// The last reference goes here: the path's drop deregisters MRs and
    /// drops connections, which sleeps.
    fn run(this: Arc<Path>) {
        drop(this);
    }
}

impl LastRef for Path {
    /// A request's last reference (an answer given after the close work
    /// stopped waiting for it) goes to `release_w`, in process context.
    fn last_ref(this: Arc<Self>) {
        let wq = this.sess.ctx.wq.clone();
        // Not pending: a pending item would hold a reference.  The queue
        // outlives the item (`Server::drop` waits for every path).
        let _ = wq.queue().enqueue::<Arc<Path>, RELEASE>(this);
    }
}

/// Things in flight, counted apart from what they keep alive: a path's
/// requests (a [`ChunkGuard`] drops its path first and its count after,
/// so that the close work, which waits for the count, holds the path until
/// then), or the server's paths.
struct Drained {
    n: AtomicU32,
    /// Woken when `n` drops to zero (any context).
    wq: WaitQueue,
}

impl Drained {
    fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                n: AtomicU32::new(0),
                wq: WaitQueue::new()?,
            },
            GFP_KERNEL,
        )?)
    }
}

/// One thing counted in [`Drained`]; uncounted on drop.
struct Counted(Arc<Drained>);

impl Counted {
    fn new(d: &Arc<Drained>) -> Self {
        d.n.fetch_add(1, Ordering::SeqCst);
        Self(d.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // The wake-up touches only `self.0`, which this still holds.
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.wq.wake_all();
        }
    }
}

/// What a path keeps from its setup.
struct PathSetup {
    name: Name,
    /// Closes the path if it is still connecting when it fires.
    deadline: Option<Timer<SetupTick>>,
}

/// A path's setup deadline: a client that connected some connections and
/// never sent its info request holds the path, its MRs and (for the first
/// path) the session's chunk pool; this closes such a path.
struct SetupTick {
    path: Arc<Path>,
}

impl Tick for SetupTick {
    fn tick(&self) {
        if self.path.state() == State::Connecting {
            peer_err!(
                "path setup not finished within {} ms, closing it\n",
                self.path.params().setup_timeout_ms
            );
            self.path.close();
        }
    }
}

/// Handler of a connection's rdma_cm events.
struct ConEvents {
    path: Arc<Path>,
}

impl Handler for ConEvents {
    fn event(&self, _id: &IdRef<'_>, ev: &Event<'_>) {
        match ev.kind {
            EventKind::Established => {}
            EventKind::Rejected | EventKind::ConnectError | EventKind::Unreachable => {
                peer_err!("CM error (CM event: {:?}, err: {})\n", ev.kind, ev.status);
                self.path.close();
            }
            EventKind::Disconnected
            | EventKind::AddrChange
            | EventKind::TimewaitExit
            | EventKind::DeviceRemoval => {
                if self.path.state() < State::Closing {
                    peer_info!("CM event {:?}, closing the path\n", ev.kind);
                }
                self.path.close()
            }
            k => peer_err!("Ignoring unexpected CM event {:?}, err {}\n", k, ev.status),
        }
    }
}

impl PathOps for Path {
    type Events = ConEvents;

    fn core(&self) -> &PathCore<Self> {
        &self.core
    }

    /// Logs where the close came from, once.
    fn closing(self: &Arc<Self>, was: State, at: &'static core::panic::Location<'static>) {
        peer_info!(
            "closing path (state {}, {} requests in flight; {}:{})\n",
            was.name(),
            self.inflight.n.load(Ordering::Relaxed),
            at.file(),
            at.line()
        );
        // Queued once: only the transition to closing gets here.
        let _ = self
            .sess
            .ctx
            .wq
            .queue()
            .enqueue::<Arc<Path>, 0>(self.clone());
    }
}

impl Path {
    fn params(&self) -> &Params {
        &self.sess.params
    }

    fn state(&self) -> State {
        self.core.state()
    }

    /// Tears the path down: disconnect, wait for the requests in flight, drop
    /// the connections (which drains their QPs), tell the session.
    fn close_work(self: Arc<Self>) {
        // No more heartbeats or setup deadline (dropping a timer waits for
        // a running tick).
        let deadline = self.setup.lock().deadline.take();
        drop(deadline);
        let cons = self.core.stop();
        // Requests in the user's hands are answered (or dropped) soon.  One
        // that is not after a minute is logged and no longer waited for
        // (upstream waits forever): its guard then gives its reference
        // back through `release_w`, in process context.
        let d = &self.inflight;
        let none_left = || d.n.load(Ordering::SeqCst) == 0;
        let mut waited_s = 0;
        while !d.wq.wait_until(Some(30_000), none_left) {
            waited_s += 30;
            peer_err!(
                "path close: {} requests still in flight after {} s\n",
                d.n.load(Ordering::SeqCst),
                waited_s
            );
            if waited_s >= 60 {
                break;
            }
        }
        drop(cons);
        self.core.set_closed();
        let sess = self.sess.clone();
        let ctx = sess.ctx.clone();
        // Both locks, in their order: the session leaves the list in the
        // same critical section that sees it empty, so a connect request
        // cannot add a path in between (it checks `removed`).
        let (user, removed) = {
            let mut sessions = ctx.sessions.lock();
            let mut g = sess.inner.lock();
            g.paths.take_where(|p| Arc::ptr_eq(p, &self), drop);
            let mut user = None;
            if self.established.swap(false, Ordering::SeqCst) {
                g.paths_up = g.paths_up.saturating_sub(1);
                if g.paths_up == 0 {
                    user = g.user.take();
                }
            }
            let removed = g.paths.is_empty() && !g.removed;
            if removed {
                g.removed = true;
                drop(g);
                sessions.take_where(|s| Arc::ptr_eq(s, &sess), drop);
            }
            (user, removed)
        };
        if let Some(u) = user {
            u.disconnected();
        }
        if removed {
            ctx.gone.notify_all();
        }
    }

    /// Posts an empty receive for RDMA WRITE WITH IMM on connection `cid`
    /// (path setup; each is then posted again by its completion).
    fn post_recv_io(self: &Arc<Self>, cid: u16) -> Result {
        let owner = Posted::new_reused(
            IoRecv {
                path: self.clone(),
                cid,
            },
            GFP_KERNEL,
        )?;
        self.repost_recv_io(owner)
    }

    /// Posts the receive `owner` (again) on its connection.
    fn repost_recv_io(&self, owner: KBox<Posted<IoRecv>>) -> Result {
        let cid = owner.get().cid;
        self.core.post_recv(cid, owner, |_| Ok(None))
    }

    /// A request arrived in chunk `payload` names.
    fn io_req(self: &Arc<Self>, cid: u16, payload: u32) {
        let p = *self.params();
        let Some((id, off)) = wire::io_req_split(payload, self.mem_bits, p.queue_depth)
            .filter(|&(_, off)| off < p.chunk_size)
        else {
            peer_err!("Wrong msg_id/offset in immediate {:#x}\n", payload);
            return self.close();
        };
        if self.busy[id as usize].swap(true, Ordering::AcqRel) {
            peer_err!(
                "Client reused chunk {} while its request is in flight\n",
                id
            );
            return self.close();
        }
        let mut guard = ChunkGuard {
            path: DeferredArc::new(self.clone()),
            id,
            holds_chunk: true,
            res: None,
            _counted: Counted::new(&self.inflight),
        };
        // The chunk's resources, unless the answer of its previous request
        // has not completed yet (the client may reuse a chunk as soon as it
        // sees the answer): then, rarely, a new set.
        let res = self.res[id as usize].iter().find_map(|s| s.take());
        guard.res = match res {
            Some(mut r) => {
                r.usr_len = 0;
                Some(r)
            }
            None => match ChunkRes::new(&self.pd, p.always_invalidate) {
                Ok(r) => match KBox::new(r, GFP_KERNEL) {
                    Ok(r) => Some(r),
                    Err(_) => return self.close(),
                },
                Err(_) => return self.close(),
            },
        };
        if self.state() != State::Connected {
            return;
        }
        if p.always_invalidate {
            // The chunk's rkey is revoked before anything of the request is
            // read, so the client cannot change it under us any more.
            let rkey = self.mrs[id as usize].rkey();
            let Some(mut inv) = guard.res.as_mut().and_then(|r| r.inv.take()) else {
                return self.close();
            };
            let v = inv.get_mut();
            v.cid = cid;
            v.off = off;
            v.guard = Some(guard);
            let r = self.core.post_boxed(cid, inv, |_| {
                let mut c = Chain::new();
                c.push(SendOp::LocalInv { rkey })?;
                Ok(c)
            });
            if let Err(e) = r {
                peer_err!("Posting LOCAL_INV failed: {:?}\n", e);
                self.close();
            }
        } else {
            process_io_req(guard, cid, off);
        }
    }

    /// The admin connection received the info request: the path is complete.
    fn info_req(self: &Arc<Self>, name: &[u8]) -> Result {
        let p = *self.params();
        for cid in 0..self.con_num {
            let n = if cid == 0 {
                wire::SERVICE_CON_QUEUE_DEPTH
            } else {
                p.queue_depth
            };
            for _ in 0..n {
                self.post_recv_io(cid)?;
            }
        }
        if self.sess.ctx.name_taken(name, &self.sess.paths_uuid) {
            peer_err!("pathname is duplicated\n");
            return Err(EPERM);
        }
        self.setup.lock().name.set(name);
        // Path up, all under the session's lock so that the close work sees
        // either none or all of it: the first path of the session tells the
        // user.
        {
            let sess = &self.sess;
            let mut g = sess.inner.lock();
            if !self.core.set_connected() {
                return Err(EINVAL);
            }
            if g.paths_up == 0 {
                g.name.set(name);
                g.user = Some(sess.ctx.ops.connected(sess, name)?);
            }
            g.paths_up += 1;
            self.established.store(true, Ordering::SeqCst);
        }
        PathCore::start_heartbeat(self, &self.sess.ctx.wq)?;
        // Register every chunk, then send their descriptors: the send queue
        // executes in order, so the keys are valid when the client sees them.
        for i in 0..self.mrs.len() {
            self.core.post(
                0,
                Plain {
                    path: self.clone(),
                    buf: (),
                    what: "REG_MR",
                },
                |o| {
                    let mut c = Chain::new();
                    c.push(SendOp::RegBlock {
                        mr: &o.path.mrs[i],
                        access: Access::REMOTE_WRITE,
                    })?;
                    Ok(c)
                },
            )?;
        }
        let len = wire::InfoRspHdr::SIZE + self.mrs.len() * SgDesc::SIZE;
        let mut buf = DmaBuf::new(&self.pd, len, Direction::ToDevice, GFP_KERNEL)?;
        buf.with_cpu_mut(|b| {
            let h = wire::InfoRspHdr {
                ty: Le16::new(wire::MsgType::InfoRsp as u16),
                sg_cnt: Le16::new(self.mrs.len() as u16),
                reserved: [0; 4],
            };
            b[..wire::InfoRspHdr::SIZE].copy_from_slice(&h.to_bytes());
            for (i, mr) in self.mrs.iter().enumerate() {
                let d = SgDesc {
                    addr: Le64::new(mr.iova()),
                    key: Le32::new(mr.rkey()),
                    len: Le32::new(mr.len() as u32),
                };
                let o = wire::InfoRspHdr::SIZE + i * SgDesc::SIZE;
                b[o..o + SgDesc::SIZE].copy_from_slice(&d.to_bytes());
            }
        });
        self.core.post(
            0,
            Plain {
                path: self.clone(),
                buf,
                what: "Sess info response send",
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
}

/// A chunk owned by a request, and the request counted in flight.
///
/// The chunk is released just before the answer is posted ([`ChunkGuard::
/// release_chunk`]): the client may reuse it as soon as it sees the answer,
/// which can be before the answer's own send completion reaches us.  The
/// in-flight count drops with the guard, after that completion.
///
/// A guard may be dropped in an atomic context (an answer given from a
/// bio's completion, see [`Io::respond`]), where the path's last reference
/// must not go.  Fields drop in order, `path` before `_counted`, so the
/// close work, which waits for the count, still holds the path then; after
/// it stopped waiting, `path` (a [`DeferredArc`]) hands a last reference to
/// the path's `release_w`.
struct ChunkGuard {
    path: DeferredArc<Path>,
    id: u32,
    holds_chunk: bool,
    /// The request's resources, back to the chunk's slot on drop.
    res: Option<KBox<ChunkRes>>,
    /// Dropped after `path`.
    _counted: Counted,
}

/// The preallocated work requests and buffers of a request on one chunk.
struct ChunkRes {
    /// The chunk's local invalidation (always_invalidate); `None` while posted.
    inv: Option<KBox<Posted<Inval>>>,
    /// The answer; `None` while posted.
    resp: Option<KBox<Posted<Resp>>>,
    /// The user header's private copy: its first `usr_len` bytes.
    usr: KVec<u8>,
    usr_len: usize,
    /// The rkey message of the answer (always_invalidate).
    rkey_msg: Option<DmaBuf>,
}

/// Resource sets per chunk: a client may reuse a chunk as soon as it sees
/// the answer, on another connection whose completion can run before our
/// answer's send completion; with two sets that costs no allocation unless
/// a third request on the chunk comes in before then.
const RES_PER_CHUNK: usize = 2;

/// Room for user headers without an allocation (RNBD's are below 300 bytes;
/// a longer one, up to [`MAX_HDR_SIZE`], grows the buffer).
const USR_PREALLOC: usize = 512;

impl ChunkRes {
    fn new(pd: &Arc<Pd>, always_invalidate: bool) -> Result<Self> {
        let rkey_msg = if always_invalidate {
            Some(DmaBuf::new(
                pd,
                wire::RkeyRsp::SIZE,
                Direction::ToDevice,
                GFP_KERNEL,
            )?)
        } else {
            None
        };
        Ok(Self {
            inv: Some(Posted::new_reused(
                Inval {
                    guard: None,
                    cid: 0,
                    off: 0,
                },
                GFP_KERNEL,
            )?),
            resp: Some(Posted::new_reused(Resp { guard: None }, GFP_KERNEL)?),
            usr: KVec::from_elem(0u8, USR_PREALLOC, GFP_KERNEL)?,
            usr_len: 0,
            rkey_msg,
        })
    }
}

impl ChunkGuard {
    fn release_chunk(&mut self) {
        if core::mem::replace(&mut self.holds_chunk, false) {
            self.path.busy[self.id as usize].store(false, Ordering::Release);
        }
    }
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        self.release_chunk();
        if let Some(mut r) = self.res.take() {
            // A set allocated because both were taken is dropped if both
            // are back (a streaming DMA unmap and frees: any context).
            for slot in self.path.res[self.id as usize].iter() {
                match slot.put(r) {
                    Ok(()) => return,
                    Err(back) => r = back,
                }
            }
        }
    }
}

/// The receive of the info request on the admin connection.
struct InfoRecv {
    path: Arc<Path>,
    buf: DmaBuf,
}

impl Completion for InfoRecv {
    fn done(self, wc: &WorkCompletion) {
        let path = self.path.clone();
        if wc.status != Status::Success || wc.opcode != Opcode::Recv {
            if wc.status != Status::Flushed {
                peer_err!("Sess info request receive failed: {:?}\n", wc.status);
            }
            return path.close();
        }
        if (wc.byte_len as usize) < InfoReq::SIZE {
            peer_err!("Sess info request is malformed: size {}\n", wc.byte_len);
            return path.close();
        }
        let mut name = [0u8; wire::NAME_MAX];
        let r = self.buf.with_cpu(|b| match InfoReq::parse(b) {
            Ok((_, n)) => {
                name[..n.len()].copy_from_slice(n);
                Ok(n.len())
            }
            Err(e) => Err(e),
        });
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                peer_err!("Sess info request is malformed: {:?}\n", e);
                return path.close();
            }
        };
        if let Err(e) = path.info_req(&name[..n]) {
            peer_err!("processing the info request failed: {:?}\n", e);
            path.close();
        }
    }
}

/// An empty receive for RDMA WRITE WITH IMM (requests and heartbeats).
struct IoRecv {
    path: Arc<Path>,
    cid: u16,
}

impl Reuse for IoRecv {
    fn done(this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let (path, cid) = (this.get().path.clone(), this.get().cid);
        if wc.status != Status::Success {
            if wc.status != Status::Flushed {
                peer_err!("receive failed: {:?}\n", wc.status);
            }
            return path.close();
        }
        let (Opcode::RecvRdmaWithImm, Some(imm)) = (wc.opcode, wc.imm) else {
            peer_err!("Unexpected WC type: {:?}\n", wc.opcode);
            return path.close();
        };
        // Any message shows the client is alive.
        path.core.hb_seen();
        if let Err(e) = path.repost_recv_io(this) {
            peer_err!("rtrs_post_recv(), err: {:?}\n", e);
            return path.close();
        }
        match Imm::try_from(imm) {
            Ok(Imm::IoReq { payload }) => path.io_req(cid, payload),
            Ok(Imm::HbMsg) => {
                if let Err(e) = PathCore::send_imm(&path, Imm::HbAck, "HB ACK") {
                    peer_err!("send HB ACK failed, errno: {:?}\n", e);
                    path.close();
                }
            }
            Ok(Imm::HbAck) => {}
            _ => peer_warn!("Unknown IMM {:#x}\n", imm),
        }
    }
}

/// The local invalidation of a chunk before its request is read.
struct Inval {
    /// The request's chunk while posted; `None` otherwise.
    guard: Option<ChunkGuard>,
    cid: u16,
    off: u32,
}

impl Reuse for Inval {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let v = this.get_mut();
        let (cid, off) = (v.cid, v.off);
        let Some(mut guard) = v.guard.take() else {
            return pr_err!("chunk invalidation without its request\n");
        };
        if let Some(r) = guard.res.as_mut() {
            r.inv = Some(this);
        }
        if wc.status != Status::Success {
            peer_err!("Failed IB_WR_LOCAL_INV: {:?}\n", wc.status);
            return guard.path.close();
        }
        process_io_req(guard, cid, off);
    }
}

/// Reads and checks the request in the guarded chunk and hands it to the user.
fn process_io_req(guard: ChunkGuard, cid: u16, off: u32) {
    let path = guard.path.clone();
    let p = *path.params();
    let mr = &path.mrs[guard.id as usize];
    // The bytes the request uses: its data (a write's, which the block
    // layer may read by CPU) and its header, which ends the used part.
    let used = (off as usize)
        .saturating_add(wire::IO_MSG_MAX)
        .min(p.chunk_size as usize);
    mr.sync_range_for_cpu(0, used);
    // A private copy: the client may still write the chunk (always_invalidate
    // =N), and what was checked must be what is used.
    let mut hdr = [0u8; wire::IO_MSG_MAX];
    let n = (p.chunk_size - off).min(wire::IO_MSG_MAX as u32) as usize;
    if mr.block().read(off as usize, &mut hdr[..n]).is_err() {
        return path.close();
    }
    let req = match wire::parse_io_req(&hdr[..n], off as usize, p.max_io()) {
        Ok(r) => r,
        Err(proto::wire::WireError::BadValue {
            field: "rtrs msg type" | "io msg type",
            value,
        }) => {
            peer_err!(
                "Processing I/O request failed, unknown message type received: {:#x}\n",
                value
            );
            return path.close();
        }
        Err(e) => {
            peer_err!("Invalid I/O request in chunk {}: {:?}\n", guard.id, e);
            return Io::new(guard, cid, None, 0).respond(EINVAL.to_errno());
        }
    };
    let (usr_len, read) = match req {
        IoReq::Write { usr_len } => (usr_len, None),
        IoReq::Read(r) => (r.usr_len, Some(r)),
    };
    // We advertised MAX_HDR_SIZE; a longer header is the peer's error (and
    // would cost us an allocation of up to 64 KiB per request).
    if usr_len > MAX_HDR_SIZE {
        peer_err!(
            "User header of {} bytes, more than {}\n",
            usr_len,
            MAX_HDR_SIZE
        );
        return Io::new(guard, cid, read, 0).respond(EINVAL.to_errno());
    }
    let data_len = off - usr_len;
    if let Some(ReadReq { desc: Some(d), .. }) = read {
        // The data comes from the chunk's first `data_len` bytes; a longer
        // buffer would be filled with whatever the chunk held before.
        if d.len.get() > data_len {
            peer_err!(
                "Read of {} bytes into a request of {}\n",
                d.len.get(),
                data_len
            );
            return Io::new(guard, cid, read, 0).respond(EINVAL.to_errno());
        }
    }
    let mut guard = guard;
    let copied = match guard.res.as_mut() {
        // Within the preallocated buffer unless the header is longer.
        Some(r) => {
            let n = usr_len as usize;
            r.usr_len = 0;
            let room = if r.usr.len() < n {
                KVec::from_elem(0u8, n, GFP_KERNEL)
                    .map(|b| r.usr = b)
                    .map_err(|_| ENOMEM)
            } else {
                Ok(())
            };
            room.and_then(|()| mr.block().read(data_len as usize, &mut r.usr[..n]))
                .map(|()| r.usr_len = n)
        }
        None => Err(EINVAL),
    };
    if let Err(e) = copied {
        return Io::new(guard, cid, read, 0).respond(e.to_errno());
    }
    let io = Io::new(guard, cid, read, data_len);
    match path.sess.user() {
        Some(u) => u.rdma_ev(io),
        None => io.respond(enotconn().to_errno()),
    }
}

/// A request handed to the user.  Owns its chunk until answered.
pub struct Io {
    guard: Option<ChunkGuard>,
    cid: u16,
    read: Option<ReadReq>,
    data_len: u32,
}

impl Io {
    /// The user header is the guard's `usr` (empty until copied).
    fn new(guard: ChunkGuard, cid: u16, read: Option<ReadReq>, data_len: u32) -> Self {
        Self {
            guard: Some(guard),
            cid,
            read,
            data_len,
        }
    }

    fn chunk(&self) -> Option<&BlockMr> {
        let g = self.guard.as_ref()?;
        Some(&g.path.mrs[g.id as usize])
    }

    /// The user header (a private copy).
    pub fn usr(&self) -> &[u8] {
        match self.guard.as_ref().and_then(|g| g.res.as_ref()) {
            Some(r) => r.usr.get(..r.usr_len).unwrap_or(&[]),
            None => &[],
        }
    }

    /// True for a read (the server sends data), false for a write.
    pub fn is_read(&self) -> bool {
        self.read.is_some()
    }

    /// Bytes of data: written by the client, or to be sent back for a read.
    pub fn data_len(&self) -> usize {
        self.data_len as usize
    }

    /// The chunk whose first [`Io::data_len`] bytes hold the data.
    pub fn data(&self) -> Option<&Arc<PageBlock>> {
        self.chunk().map(|m| m.block())
    }

    /// Copies `src` into the data at `off` (within [`Io::data_len`]).
    pub fn write_data(&self, off: usize, src: &[u8]) -> Result {
        let end = off.checked_add(src.len()).ok_or(EINVAL)?;
        if end > self.data_len() {
            return Err(EINVAL);
        }
        self.chunk().ok_or(EINVAL)?.block().write(off, src)
    }

    /// Answers the request with `status` (0 or a negative errno), sending the
    /// data of a successful read.  Any context but an interrupt: it does not
    /// sleep (posting takes no lock), so a bio's completion answers
    /// directly; not from hard or soft interrupts, where a chunk's resource
    /// slot (a plain spinlock) could be taken by what it interrupted.
    pub fn respond(mut self, status: i32) {
        if let Some(guard) = self.guard.take() {
            respond_now(guard, self.cid, self.read, self.data_len, status);
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Never leave a request unanswered: the client would wait forever.
        if let Some(guard) = self.guard.take() {
            respond_now(guard, self.cid, self.read, self.data_len, EIO.to_errno());
        }
    }
}

/// The answer's work requests; the guard's resources hold the rkey
/// message they send.
struct Resp {
    /// The request's chunk while posted; `None` otherwise.
    guard: Option<ChunkGuard>,
}

impl Reuse for Resp {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let Some(mut guard) = this.get_mut().guard.take() else {
            return pr_err!("IO response without its request\n");
        };
        if wc.status != Status::Success {
            if let Status::Error(s) = wc.status {
                peer_err!("IO response failed: status {}\n", s);
            }
            guard.path.close();
        }
        if let Some(r) = guard.res.as_mut() {
            r.resp = Some(this);
        }
        // The guard's drop gives the resources back to the chunk.
    }
}

/// Posts the answer (any context but an interrupt, see [`Io::respond`]).
fn respond_now(mut guard: ChunkGuard, cid: u16, read: Option<ReadReq>, data_len: u32, status: i32) {
    // Still needed once the guard is posted, and may then be the last.
    let path = DeferredArc::new((*guard.path).clone());
    if path.state() != State::Connected {
        return;
    }
    let p = *path.params();
    let id = guard.id;
    let mr = &path.mrs[id as usize];
    let desc = read.and_then(|r| r.desc);
    let need_inval = read.map(|r| r.need_inval).unwrap_or(false);
    let send_data = status == 0 && desc.is_some();
    let imm = Imm::IoRsp {
        msg_id: id,
        errno: status,
        with_inval: need_inval,
    }
    .encode();
    let Some(res) = guard.res.as_mut() else {
        return path.close();
    };
    let with_rkey = p.always_invalidate;
    if with_rkey {
        // The chunk gets a key the client has not seen, registered before the
        // answer and announced with it.
        mr.bump_key();
        let m = wire::RkeyRsp {
            ty: Le16::new(wire::MsgType::RkeyRsp as u16),
            buf_id: Le16::new(id as u16),
            rkey: Le32::new(mr.rkey()),
        };
        match res.rkey_msg.as_mut() {
            Some(b) => b.with_cpu_mut(|s| s.copy_from_slice(&m.to_bytes())),
            None => return path.close(),
        }
    }
    let Some(mut resp) = res.resp.take() else {
        return path.close();
    };
    if read.is_some() {
        // What the block layer or the user (`Io::write_data`) may have
        // written: the data part, not the whole chunk; also on an error,
        // so that no dirty line is written back over the client's next
        // request.
        mr.sync_range_for_device(0, data_len as usize);
    }
    guard.release_chunk();
    resp.get_mut().guard = Some(guard);
    let r = path.core.post_boxed(cid, resp, |o| {
        let g = o.guard.as_ref().ok_or(EINVAL)?;
        let mr = &g.path.mrs[g.id as usize];
        let rkey_msg = match g.res.as_ref().and_then(|r| r.rkey_msg.as_ref()) {
            Some(b) if with_rkey => Some(b),
            _ => None,
        };
        let mut c = Chain::new();
        if send_data {
            if let Some(d) = desc {
                c.push(SendOp::Write {
                    sge: mr.sge(0, d.len.get() as usize)?,
                    remote_addr: d.addr.get(),
                    rkey: d.key.get(),
                })?;
            }
            if rkey_msg.is_some() {
                c.push(SendOp::RegBlock {
                    mr,
                    access: Access::REMOTE_WRITE,
                })?;
            }
            if need_inval {
                if let Some(d) = desc {
                    c.push(SendOp::SendInv { rkey: d.key.get() })?;
                }
            }
        } else {
            if need_inval {
                if let Some(d) = desc {
                    c.push(SendOp::SendInv { rkey: d.key.get() })?;
                }
            }
            if rkey_msg.is_some() {
                c.push(SendOp::RegBlock {
                    mr,
                    access: Access::REMOTE_WRITE,
                })?;
            }
        }
        match rkey_msg {
            Some(b) => c.push(SendOp::SendImm {
                sge: Some(b.sge(0, wire::RkeyRsp::SIZE)?),
                imm,
            })?,
            None => c.push(SendOp::WriteImm {
                sge: None,
                remote_addr: 0,
                rkey: 0,
                imm,
            })?,
        }
        Ok(c)
    });
    if let Err(e) = r {
        peer_err!("IO response failed: {:?}\n", e);
        path.close();
    }
}

/// The listener's handler: connect requests.
struct Listener {
    ctx: Arc<Ctx>,
}

impl Handler for Listener {
    fn event(&self, id: &IdRef<'_>, ev: &Event<'_>) {
        if ev.kind != EventKind::ConnectRequest {
            return;
        }
        if let Err(e) = self.ctx.connect(id, ev.private_data) {
            let _ = id.reject(&ConnRsp::reject(e.to_errno() as i16).to_bytes());
        }
    }
}

impl Ctx {
    /// True if a path of another session already has `name`.
    fn name_taken(&self, name: &[u8], paths_uuid: &[u8; 16]) -> bool {
        let sessions = self.sessions.lock();
        for s in sessions.iter() {
            if &s.paths_uuid == paths_uuid {
                continue;
            }
            let g = s.inner.lock();
            for p in g.paths.iter() {
                if p.setup.lock().name.get() == name {
                    return true;
                }
            }
        }
        false
    }

    fn get_or_create_sess(
        self: &Arc<Self>,
        paths_uuid: &[u8; 16],
        first_conn: bool,
    ) -> Result<Arc<Sess>> {
        let mut sessions = self.sessions.lock();
        if let Some(s) = sessions.iter().find(|s| &s.paths_uuid == paths_uuid) {
            return Ok(s.clone());
        }
        if !first_conn {
            peer_err!("Error: Not the first connection request for this session\n");
            return Err(ENXIO);
        }
        if sessions.len() >= self.params.max_sessions as usize {
            peer_err!(
                "Rejecting a new session: {} sessions already (max_sessions)\n",
                sessions.len()
            );
            return Err(support::code::econnrefused());
        }
        let p = self.params;
        let mut chunks = KVec::with_capacity(p.queue_depth as usize, GFP_KERNEL)?;
        for _ in 0..p.queue_depth {
            chunks.push(
                Arc::new(PageBlock::new(p.chunk_size as usize)?, GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let sess = Arc::pin_init(
            pin_init!(Sess {
                ctx: self.clone(),
                paths_uuid: *paths_uuid,
                params: p,
                chunks,
                inner <- new_mutex!(SessInner { removed: false, paths: Slots::new(), paths_up: 0, user: None, name: Name::empty() }),
            }),
            GFP_KERNEL,
        )?;
        sessions.insert(sess.clone())?;
        Ok(sess)
    }

    fn drop_sess_if_empty(&self, sess: &Arc<Sess>) {
        let mut sessions = self.sessions.lock();
        let mut g = sess.inner.lock();
        if g.paths.is_empty() && !g.removed {
            g.removed = true;
            drop(g);
            sessions.take_where(|s| Arc::ptr_eq(s, sess), drop);
            self.gone.notify_all();
        }
    }

    /// A connect request: find or create the session and path, add the
    /// connection and accept it.  An error rejects the request.
    fn connect(self: &Arc<Self>, id: &IdRef<'_>, private_data: &[u8]) -> Result {
        let req = ConnReq::parse(private_data).map_err(|e| {
            peer_err!("Invalid RTRS connection request: {:?}\n", e);
            econnreset()
        })?;
        let (cid, con_num) = (req.cid.get(), req.cid_num.get());
        // A session found here may be removed by a close work before we
        // lock it: then look once more (a new one is created for a first
        // connection), and give up if that races too (the client retries).
        let mut sess = self.get_or_create_sess(&req.paths_uuid, req.first_conn())?;
        if sess.inner.lock().removed {
            sess = self.get_or_create_sess(&req.paths_uuid, req.first_conn())?;
        }
        let mut sg = sess.inner.lock();
        if sg.removed {
            return Err(econnreset());
        }
        let found = sg.paths.iter().find(|p| p.uuid == req.sess_uuid).cloned();
        let path = match found {
            Some(p) => {
                if p.state() != State::Connecting {
                    peer_err!("Session in wrong state\n");
                    return Err(econnreset());
                }
                if p.con_num != con_num || p.core.has_con(cid) != Some(false) {
                    peer_err!("Incorrect request: {}, {}\n", cid, con_num);
                    return Err(econnreset());
                }
                p
            }
            None => {
                if sg.paths.len() >= self.params.max_paths as usize {
                    peer_err!(
                        "Rejecting path: the session has {} paths (max_paths)\n",
                        sg.paths.len()
                    );
                    return Err(econnreset());
                }
                let p = match Path::new(&sess, id, &req) {
                    Ok(p) => p,
                    Err(e) => {
                        drop(sg);
                        self.drop_sess_if_empty(&sess);
                        peer_err!("RTRS server session allocation failed: {:?}\n", e);
                        return Err(e);
                    }
                };
                if let Err(e) = sg.paths.insert(p.clone()) {
                    drop(sg);
                    self.drop_sess_if_empty(&sess);
                    return Err(e);
                }
                // From here the close work owns the teardown.
                if let Err(e) = p.arm_setup_deadline() {
                    drop(sg);
                    p.close();
                    return Err(e);
                }
                p
            }
        };
        drop(sg);
        path.add_con(id, cid).inspect_err(|_| path.close())
    }
}

impl Path {
    fn new(sess: &Arc<Sess>, id: &IdRef<'_>, req: &ConnReq) -> Result<Arc<Self>> {
        let dev = id.device().ok_or(ENODEV)?;
        let pd = Pd::new(dev)?;
        let p = sess.params;
        let mut mrs = KVec::with_capacity(sess.chunks.len(), GFP_KERNEL)?;
        let mut busy = KVec::with_capacity(sess.chunks.len(), GFP_KERNEL)?;
        let mut res = KVec::with_capacity(sess.chunks.len(), GFP_KERNEL)?;
        for c in sess.chunks.iter() {
            mrs.push(BlockMr::new(&pd, c.clone())?, GFP_KERNEL)?;
            busy.push(AtomicBool::new(false), GFP_KERNEL)?;
            let sets = [
                AtomicBox::new(KBox::new(
                    ChunkRes::new(&pd, p.always_invalidate)?,
                    GFP_KERNEL,
                )?),
                AtomicBox::new(KBox::new(
                    ChunkRes::new(&pd, p.always_invalidate)?,
                    GFP_KERNEL,
                )?),
            ];
            res.push(sets, GFP_KERNEL)?;
        }
        let mem_bits = wire::mem_bits(p.queue_depth).ok_or(EINVAL)?;
        let con_num = req.cid_num.get();
        let core = PathCore::new(con_num)?;
        let inflight = Drained::new()?;
        Arc::pin_init(
            pin_init!(Path {
                sess: sess.clone(),
                uuid: req.sess_uuid,
                con_num,
                pd,
                mrs,
                busy,
                res,
                mem_bits,
                inflight,
                established: AtomicBool::new(false),
                core <- core,
                setup <- new_mutex!(PathSetup { name: Name::empty(), deadline: None }),
                close_w <- new_work!("rtrs_server::Path::close"),
                release_w <- new_work!("rtrs_server::Path::release"),
                _alive: Counted::new(&sess.ctx.paths),
            }),
            GFP_KERNEL,
        )
    }

    /// Arms the setup deadline (see [`SetupTick`]).
    fn arm_setup_deadline(self: &Arc<Self>) -> Result {
        let t = Timer::new(
            Arc::new(SetupTick { path: self.clone() }, GFP_KERNEL)?,
            &self.sess.ctx.wq,
        )?;
        t.arm(self.params().setup_timeout_ms);
        // Only while connecting: the close work takes the timer under this
        // lock after the state left connecting, and would miss a later one.
        let late = {
            let mut g = self.setup.lock();
            if self.state() == State::Connecting {
                g.deadline = Some(t);
                None
            } else {
                Some(t)
            }
        };
        drop(late);
        Ok(())
    }

    /// Adds connection `cid` for the request `id` and accepts it.  Once the
    /// id is adopted it belongs to the path whatever happens (it cannot be
    /// destroyed from its own connect request), so failures from there on
    /// reject the request and close the path.
    fn add_con(self: &Arc<Self>, id: &IdRef<'_>, cid: u16) -> Result {
        let p = *self.params();
        let (send, recv) = if cid == 0 {
            (
                p.queue_depth + wire::SERVICE_CON_QUEUE_DEPTH + 2,
                wire::SERVICE_CON_QUEUE_DEPTH + 2,
            )
        } else {
            // Up to write, reg, inval and answer per request.
            let per = if p.always_invalidate { 5 } else { 3 };
            (p.queue_depth * per + 1, p.queue_depth + 1)
        };
        let handler = Arc::new(ConEvents { path: self.clone() }, GFP_KERNEL)?;
        // Under the connections' lock until the id is stored: the close
        // work takes the connections under it, and an adopted id must end
        // up in the path (it cannot be destroyed from its own connect
        // request).
        // The adopted id's box, allocated first: once adopted, the id must
        // not be dropped here.
        let slot = KBox::<CmId<ConEvents>>::new_uninit(GFP_KERNEL)?;
        let r = self.core.with_setup(|| -> Result<Result> {
            if self.state() != State::Connecting || self.core.has_con(cid) != Some(false) {
                return Err(econnreset());
            }
            let mut cm = KBox::write(slot, id.adopt(handler)?);
            let r = self.accept_con(&mut cm, id, cid, send, recv);
            if let Err(cm) = self.core.publish_con(cid, cm) {
                // Cannot happen (checked above, under the same lock).
                pr_err!("connection {} published twice\n", cid);
                let _ = KBox::into_raw(cm);
            }
            Ok(r)
        })?;
        if let Err(e) = r {
            peer_err!("accepting connection {} failed: {:?}\n", cid, e);
            let _ = id.reject(&ConnRsp::reject(e.to_errno() as i16).to_bytes());
            self.close();
        }
        Ok(())
    }

    /// Creates the QP of connection `cid` on its adopted id `cm` (`send`
    /// and `recv` work requests), posts the info request's receive on the
    /// admin connection, and accepts the connect request `id`.
    fn accept_con(
        self: &Arc<Self>,
        cm: &mut CmId<ConEvents>,
        id: &IdRef<'_>,
        cid: u16,
        send: u32,
        recv: u32,
    ) -> Result {
        let p = *self.params();
        {
            // Completions in process context, as upstream's server: they
            // submit block IO.
            let qp = core_path::create_qp(cm, &self.pd, cid, (send, recv, 1), Poll::Workqueue)?;
            if cid == 0 {
                let buf = DmaBuf::new(&self.pd, InfoReq::SIZE, Direction::FromDevice, GFP_KERNEL)?;
                qp.post_recv(
                    Posted::new(
                        InfoRecv {
                            path: self.clone(),
                            buf,
                        },
                        GFP_KERNEL,
                    )?,
                    |o| Ok(Some(o.buf.sge(0, InfoReq::SIZE)?)),
                )?;
            }
            let rsp = ConnRsp::accept(
                p.queue_depth as u16,
                p.max_io(),
                MAX_HDR_SIZE,
                p.always_invalidate,
            )
            .to_bytes();
            id.accept(&ConnParam {
                private_data: &rsp,
                responder_resources: 0,
                initiator_depth: 0,
                retry_count: 0,
                rnr_retry_count: 7,
            })
        }
    }
}

/// A listening RTRS server.
pub struct Server {
    listener: Option<CmId<Listener>>,
    ctx: Arc<Ctx>,
}

impl Server {
    /// Listens on `port` (all IPv4 addresses) and serves sessions with `ops`.
    pub fn open(ops: Arc<dyn Ops>, port: u16) -> Result<Self> {
        let params = Params::get()?;
        let wq = OwnedQueue::new(kernel::c_str!("rtrs_server_wq"))?;
        let paths = Drained::new()?;
        let ctx = Arc::pin_init(
            pin_init!(Ctx {
                ops,
                params,
                wq,
                paths,
                sessions <- new_mutex!(Slots::new()),
                gone <- new_condvar!(),
            }),
            GFP_KERNEL,
        )?;
        let listener = CmId::new(Arc::new(Listener { ctx: ctx.clone() }, GFP_KERNEL)?)?;
        listener.bind(SockAddr { ip: [0; 4], port })?;
        listener.listen(64)?;
        Ok(Self {
            listener: Some(listener),
            ctx,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // No new connections (this waits for a running connect request).
        drop(self.listener.take());
        loop {
            let sessions: KVec<Arc<Sess>> = {
                let g = self.ctx.sessions.lock();
                let mut v = KVec::new();
                for s in g.iter() {
                    let _ = v.push(s.clone(), GFP_KERNEL);
                }
                v
            };
            if sessions.is_empty() {
                break;
            }
            for s in sessions.iter() {
                s.close();
            }
            drop(sessions);
            let mut g = self.ctx.sessions.lock();
            // Closed again after a while: a session may have got a new
            // path meanwhile.
            let _ = wait::until(&self.ctx.gone, &mut g, Some(1000), |s| s.is_empty());
        }
        // Every path gone: a request answered after its path's close work
        // stopped waiting holds the path (and through it the user's
        // state, whose code may be unloaded next) until then.  As long as
        // it takes, as upstream waits for such a request.
        let d = &self.ctx.paths;
        let mut waited_s = 0u32;
        while !d
            .wq
            .wait_until(Some(30_000), || d.n.load(Ordering::SeqCst) == 0)
        {
            waited_s = waited_s.saturating_add(30);
            pr_warn!(
                "unload: {} paths still held by requests after {} s\n",
                d.n.load(Ordering::SeqCst),
                waited_s
            );
        }
        // The last close and release works may still be returning.
        self.ctx.wq.flush();
    }
}

/// The RTRS protocol version this server speaks.
pub fn protocol_version() -> (u8, u8) {
    rtrs_core::protocol_version()
}

struct RtrsServer;

impl kernel::Module for RtrsServer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = Params::get()
            .inspect_err(|_| pr_err!("Failed to load module, invalid module parameters\n"))?;
        let (maj, min) = protocol_version();
        pr_info!(
            "Loading module rtrs_server, proto {}.{}: (max_chunk_size: {} (pure IO {}, headers {}) , sess_queue_depth: {}, always_invalidate: {})\n",
            maj,
            min,
            p.chunk_size,
            p.max_io(),
            MAX_HDR_SIZE,
            p.queue_depth,
            p.always_invalidate as u8
        );
        Ok(Self)
    }
}
