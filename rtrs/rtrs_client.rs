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
//! - `PathSlot`: one path as configured (destination, sysfs directory,
//!   statistics), from its add to its removal; reconnects with a new
//!   `Path` after its current one failed (30 s later, as upstream RNBD's
//!   delay; `max_reconnect_attempts`), or when `reconnect` is written.
//! - `Path`: one connection of a path slot: a PD, one MR per permit
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
//! # Files
//!
//! This file holds the public API ([`Sess`], [`Permit`], [`SessEvents`],
//! [`Dir`], [`Endpoints`], the limits); one file per object under `client/`:
//! `sess.rs` (a session and a request from submission to end), `slot.rs`
//! (a configured path and its reconnects), `permit.rs`
//! (the lock-free permit and request table), `path.rs` (a path: connect,
//! info exchange, heartbeat, close), `con.rs` (establishing a connection),
//! `io.rs` (the completions of a request's work requests).
//!
//! # Locking
//!
//! A request takes no lock: it picks a connected path under RCU
//! (`Sess::live`; `Sess::paths`, a mutex, serialises adding and removing
//! paths).  The permits and the requests in flight are one
//! lock-free table (`Sess::slots`, see `st` for a request's state); posting
//! takes no lock (see [`PathCore`]).  Completions run in softirq and take
//! no lock; requests are submitted from process context (RNBD's queue is
//! blocking).

// `pin_init!` of `Sess` (many fields) needs more than the default 128.
#![recursion_limit = "256"]

use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::time::Ktime;
use kernel::workqueue::{new_work, Work};
use proto::mpath::{self, Policy, Tried};
use proto::rtrs::{self as wire, ConnReq, ConnRsp, Geometry, Imm, InfoReq, InfoRsp, SgDesc};
use proto::wire::{Le16, Le32, Le64};
/// A path's addresses (IPv4 or IPv6, port; source and destination), as
/// [`Sess::open`] takes them: RTRS's own names for them, so that its users
/// need no RDMA crate.
pub use rdma::cm::{Addr, Endpoints, SockAddr};
use rdma::cm::{
    Chain, CmId, ConnParam, Data, Event, EventKind, Handler, IdRef, SendOp, Unposted, MAX_SEND_SGE,
};
use rdma::cq::Poll;
use rdma::dma::{Direction, DmaBuf};
use rdma::mr::Access;
use rdma::pd::Pd;
use rdma::sg::{SgMr, SgTable, HDR_MAX};
use rdma::wr::{Completion, Opcode, Posted, Reuse, Status, WorkCompletion};
use rtrs_core::path::{self as core_path, PathCore, PathOps, State};
use rtrs_core::{wait, Slots};
use support::code::{
    econnaborted, econnrefused, econnreset, ehostunreach, emsgsize, enotconn, etimedout,
};
use support::rcu::RcuBox;
use support::sync::{AtomicBox, WaitQueue};
use support::timer::{Tick, Timer};
use support::wq::OwnedQueue;

#[path = "client/con.rs"]
mod con;
#[path = "client/io.rs"]
mod io;
#[path = "client/path.rs"]
mod path;
#[path = "client/permit.rs"]
mod permit;
#[path = "client/sess.rs"]
mod sess;
#[path = "client/slot.rs"]
mod slot;
#[path = "client/sysfs.rs"]
mod sysfs;

use con::*;
use io::*;
use path::*;
pub use permit::Permit;
use permit::*;
use rtrs_core::stats::PathShown;
use sess::path_key;
pub use sess::Sess;
use slot::*;
use sysfs::{PathFiles, PathStats, SessFiles};

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
/// Most paths of a session (upstream's `MAX_PATHS_NUM`).
pub const MAX_PATHS: usize = mpath::MAX_PATHS;
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
    /// The last path went down; requests in flight failed.  Called with a
    /// session lock held: it must not call into the session.
    fn disconnected(&self);
    /// A path came up while none was (after `disconnected`): the server
    /// may have lost what the user set up on it (e.g. after a restart).
    /// Process context, with a session lock held: it must not call into the
    /// session (hand the work to a work item).
    fn reconnected(&self);
}

/// Direction of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The server writes data into the pages of the permit's table.
    Read,
    /// The pages of the permit's table go to the server.
    Write,
}

/// Longest a request may wait for its answer before the path is closed
/// (which fails it and every other request in flight with an error).
/// Upstream has no limit: a server that answers heartbeats but never an
/// IO would leave the request, and an unmap or rmmod waiting for it,
/// hanging forever.  nvme's default I/O timeout is 30 s as well.
pub const IO_TIMEOUT_MS: u64 = 30_000;

struct RtrsClient;

impl kernel::Module for RtrsClient {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = protocol_version();
        pr_info!("Loading module rtrs_client, proto {}.{}\n", maj, min);
        sysfs::register()?;
        Ok(Self)
    }
}

impl Drop for RtrsClient {
    fn drop(&mut self) {
        sysfs::unregister();
        pr_info!("unloaded\n");
    }
}
