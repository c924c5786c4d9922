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
//! # Files
//!
//! This file holds the public API ([`Server`], [`Ops`], [`SessOps`], [`Sess`]
//! and [`Io`] re-exported) and the module parameters; one file per object
//! under `server/`: `sess.rs` (the context, sessions, the listener's connect
//! requests), `path.rs` (paths, their connections, close and setup, the
//! receives), `chunk.rs` (a request's chunk and its preallocated resources),
//! `io.rs` (a request from its chunk to its answer).
//!
//! # Locking
//!
//! `Ctx::sessions` → `Sess::inner` → `Path::setup` → the path's setup lock
//! ([`PathCore`]), in this order only.  Posting takes no lock (see
//! [`PathCore`]), so an answer may be given in any context but an interrupt
//! (see [`Io::respond`]); a request's resources go back to their chunk
//! without a lock, and what holds its path there holds a [`DeferredArc`],
//! so the path's last reference (its drop sleeps) is never dropped there.

// `pin_init!` of `Path` (many fields) needs more than the default 128.
#![recursion_limit = "256"]

use core::sync::atomic::{AtomicBool, Ordering};
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
use rtrs_core::stats::{IoStats, PathShown};
use rtrs_core::{wait, Slots};
use support::code::{econnreset, enotconn};
use support::pages::PageBlock;
use support::sync::{AtomicBox, Counted, DeferredArc, Drained, LastRef};
use support::timer::{Tick, Timer};
use support::wq::OwnedQueue;
use support::{peer_err, peer_info, peer_warn};

#[path = "server/chunk.rs"]
mod chunk;
#[path = "server/io.rs"]
mod io;
#[path = "server/path.rs"]
mod path;
#[path = "server/sess.rs"]
mod sess;
#[path = "server/sysfs.rs"]
mod sysfs;

use chunk::{ChunkGuard, ChunkRes, RES_PER_CHUNK};
pub use io::Io;
use io::{process_io_req, Resp};
use path::Path;
pub use sess::Sess;
use sess::{Ctx, Listener, Name};

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
        listener.bind(SockAddr::any6(port))?;
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
        let mut waited_s = 0u32;
        while !self.ctx.paths.wait_idle(Some(30_000)) {
            waited_s = waited_s.saturating_add(30);
            pr_warn!(
                "unload: {} paths still held by requests after {} s\n",
                self.ctx.paths.count(),
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
        sysfs::register()?;
        Ok(Self)
    }
}

impl Drop for RtrsServer {
    fn drop(&mut self) {
        sysfs::unregister();
    }
}
