// SPDX-License-Identifier: GPL-2.0

//! RNBD client: maps remote block devices as `/dev/rnbdN`, wire- and
//! sysfs-compatible with upstream 6.12 `rnbd-client.ko`.
//!
//! # Objects and lifetimes
//!
//! - `State`: the module's (major, `/sys/class/rnbd-client/ctl`, the
//!   sessions and devices).  Map and the end of unmap (disk, server close,
//!   session) are serialised by `State::ops`.
//! - `Session`: one RTRS session and the blk-mq tag set its devices share
//!   (so blk-mq shares the session's permits fairly between them), with
//!   `Events`, the table of requests in flight indexed by permit.  Closed
//!   when its last device is unmapped.
//! - `Dev`: one mapped device: its disk, `/sys/block/rnbdN/rnbd/` and the
//!   `ctl/devices/` link.
//!
//! Requests: `queue_rq` (blocking queue) takes a permit (sleeping if all
//! are in flight), describes the request's own pages in the permit's table
//! (no copy), records the request under the permit and sends it; RTRS
//! calls `Events::io_done` once, after the pages are unmapped, which ends
//! the request.
//!
//! # Locking
//!
//! `State::ops` → `State::inner`; the table of requests in flight
//! (`Events`) takes no lock, as RTRS may end requests in softirq.  No lock is held while
//! calling into RTRS (its completion may run in the caller).  No lock is held
//! while removing a device's sysfs files either (`State::unmap`): removal
//! waits for the stores running in them, and those may be waiting for a
//! lock (a second `unmap_device` writer, for `ops`).  Who unmaps a device
//! is decided by a compare-exchange on `Dev::state`, not by a lock.

use blk_mq::{Disk, DiskParams, Major, Queue, Rq, RqSlot, TagSet};

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::time::{ktime_ms_delta, Ktime};
use proto::map::{parse_map, MapError};
use proto::rnbd::{self as wire, AccessMode, MsgHdr, MsgType, Op, OpFlags};
use proto::wire::{Le16, Le32, Le64};
use rtrs_client::Endpoints;
use rtrs_client::{Dir as IoDir, Permit, Sess, SessEvents};
use rtrs_core::Slots;
use support::rcu::RcuBox;
use support::sync::{AtomicBox, WaitQueue};
use support::sysfs::{Attr, Attrs, Class, DevFiles, Dir, Emit, Link, PlainDir};
use support::wq::OwnedQueue;

module! {
    type: RnbdClient,
    name: "rnbd_client",
    author: "rnbd-rs developers",
    description: "RDMA Network Block Device client (rnbd-rs)",
    license: "GPL",
}

/// Minors per device (upstream `RNBD_PART_BITS`).
const PART_BITS: i32 = 6;
/// How long a control message (SESS_INFO, OPEN, CLOSE) may wait for a
/// permit and then for the server's answer.  Upstream's client waits
/// forever; a server that answers heartbeats but not the message would then
/// hang map_device, unmap_device and rmmod, which hold `State::ops`.  A
/// server silent for this long is treated as dead: its session is closed
/// (see [`Session::ctl`]).  The RTRS connect steps have the same bound.
const CTL_TIMEOUT_MS: u32 = 30_000;
/// Longest control response.
const CTL_RSP_MAX: usize = 64;

/// The table of requests in flight of a session (by permit), and its link
/// state.  No lock: RTRS reports a request's end from its completions, in
/// any context.
struct Events {
    /// The block request in flight on each permit: its pages are the
    /// permit's table, so it ends only after RTRS is done with them
    /// (`io_done`).
    rqs: KVec<RqSlot>,
    /// The control message in flight on each permit, whose sender waits.
    ctls: KVec<AtomicBox<Arc<CtlWait>>>,
    /// Bit 0: the session is usable (no `disconnected` since its open or
    /// its last remap); above it, the number of `disconnected` events, so
    /// that a remap that raced with a new one does not mark it usable.
    link: AtomicU32,
    /// Its session, for the remap after a reconnect: set once the session
    /// exists, taken when it is dropped (it refers back to this).
    sess: RcuBox<Arc<Session>>,
    /// When the last `disconnected` came (ms, `support::now_ms`): IO waits
    /// `fast_io_fail_tmo` from then.
    down_ms: AtomicU64,
    /// Where IO waiting for the session (or its device) to be usable
    /// again sleeps: woken by a remap and by an unmap.
    up_wq: WaitQueue,
    /// The session was closed for good (its server stopped answering a
    /// control message): nothing will reconnect it, IO fails at once.
    dead: AtomicBool,
}

impl Events {
    fn new() -> Result<Arc<Self>> {
        let n = rtrs_client::MAX_PERMITS as usize;
        let mut rqs = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut ctls = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            rqs.push(RqSlot::default(), GFP_KERNEL)?;
            ctls.push(AtomicBox::empty(), GFP_KERNEL)?;
        }
        Ok(Arc::new(
            Self {
                rqs,
                ctls,
                link: AtomicU32::new(LINK_UP),
                sess: RcuBox::empty(),
                down_ms: AtomicU64::new(0),
                up_wq: WaitQueue::new()?,
                dead: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?)
    }
}

impl SessEvents for Events {
    fn io_done(&self, permit: Permit, status: i32) {
        let id = permit.id() as usize;
        if let Some(rq) = self.rqs.get(id).and_then(|s| s.take()) {
            // The permit goes back before the request ends, so that the
            // next request queued from the completion finds it.
            drop(permit);
            // No path took it (the session lost its last one): it waits in
            // `queue_rq` for a path instead, as `fast_io_fail_tmo` says.
            if lost_path(status) && rnbd_clt_fast_io_fail_tmo() != 0 {
                return rq.requeue();
            }
            return rq.end(status);
        }
        match self.ctls.get(id).and_then(|s| s.take()) {
            Some(w) => w.finish(permit, status),
            None => pr_err!("completion for permit {} with nothing in flight\n", id),
        }
    }

    fn disconnected(&self) {
        self.down_ms.store(support::now_ms(), Ordering::Release);
        let was = self
            .link
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some((v | LINK_UP).wrapping_add(1))
            })
            .unwrap_or(0);
        pr_info!("session disconnected\n");
        // Upstream's KOBJ_OFFLINE for each device that was open.
        if was & LINK_UP != 0 {
            if let Some(s) = self.sess.read(|s| s.cloned()) {
                s.offline_uevents();
            }
        }
    }

    /// Remaps the devices (upstream's `remap_devs`) from a work item: the
    /// control messages wait for answers, which RTRS must stay free to
    /// deliver (or fail).
    fn reconnected(&self) {
        let Some(s) = self.sess.read(|s| s.cloned()) else {
            return;
        };
        pr_info!("session {}: reconnected\n", Show(&s.name));
        let state = s.state.clone();
        let r = state.wq.queue().try_spawn(GFP_KERNEL, move || {
            let _ = s.remap(&s.state.clone(), None);
        });
        if r.is_err() {
            pr_err!("remap after a reconnect not queued: out of memory\n");
        }
    }
}

/// [`Events::link`]'s usable bit.
const LINK_UP: u32 = 1;

unsafe extern "C" {
    /// `fast_io_fail_tmo` (params_client.c): seconds IO waits for a path,
    /// 0 (fail at once, as upstream) or -1 (forever).
    safe fn rnbd_clt_fast_io_fail_tmo() -> i32;
}

/// A request's status that says no path could take it (RTRS's
/// `ENOTCONN`, or `ECONNABORTED` after failovers ran out).
fn lost_path(status: i32) -> bool {
    status == support::code::enotconn().to_errno()
        || status == support::code::econnaborted().to_errno()
}

impl Events {
    /// The session is usable: no `disconnected` since its last remap.
    fn is_up(&self) -> bool {
        self.link.load(Ordering::Acquire) & LINK_UP != 0
    }

    /// Marks the session unusable (its server stopped answering).
    fn set_down(&self) {
        self.disconnected();
    }
}

/// A control message's completion (any context): its status and response
/// bytes, handed over without a lock.
struct CtlWait {
    /// The response, preallocated; the completion fills it in.
    rsp: AtomicBox<[u8; CTL_RSP_MAX]>,
    status: AtomicI32,
    /// Set (after `rsp` and `status`) when the message ended.
    done: AtomicBool,
    wq: WaitQueue,
    rsp_len: usize,
}

impl CtlWait {
    fn finish(&self, mut permit: Permit, status: i32) {
        let mut rsp = self.rsp.take();
        let status = if status == 0 && self.rsp_len > 0 {
            // The response buffer `ctl` gave the permit's table.
            let buf = permit.sg_mut().ok().and_then(|t| t.take_buf());
            match (buf, rsp.as_mut().and_then(|r| r.get_mut(..self.rsp_len))) {
                (Some(b), Some(r)) if b.len() >= r.len() => {
                    r.copy_from_slice(&b[..r.len()]);
                    0
                }
                _ => EINVAL.to_errno(),
            }
        } else {
            status
        };
        drop(permit);
        if let Some(r) = rsp {
            let _ = self.rsp.put(r);
        }
        self.status.store(status, Ordering::Relaxed);
        self.done.store(true, Ordering::Release);
        self.wq.wake_all();
    }
}

/// A session and its tag set.
struct Session {
    name: KVec<u8>,
    state: Arc<State>,
    rtrs: Arc<Sess>,
    events: Arc<Events>,
    ts: Arc<TagSet<DevQueue>>,
    /// Devices mapped on it.
    users: AtomicU32,
}

impl Session {
    /// Sends a control message `usr` and waits for its answer; a read when
    /// `rsp_len` bytes come back.  Returns the status and the response.
    ///
    /// Waits at most [`CTL_TIMEOUT_MS`] in all.  The request stays RTRS's
    /// (its permit is not reused) until the server answers or the path
    /// closes, so giving up the wait is safe; after a timeout the session
    /// is closed as well (`ETIMEDOUT`), which fails the request and
    /// everything else in flight instead of leaving them to a server that
    /// does not answer.  A signal ends the wait only (`EINTR`): the server is
    /// alive as far as we know, and its late answer just finds nobody
    /// waiting.
    fn ctl(&self, usr: &[u8], rsp_len: usize) -> Result<[u8; CTL_RSP_MAX]> {
        if rsp_len > CTL_RSP_MAX {
            return Err(EINVAL);
        }
        let start = Ktime::ktime_get();
        let w = Arc::new(
            CtlWait {
                rsp: AtomicBox::new(KBox::new([0u8; CTL_RSP_MAX], GFP_KERNEL)?),
                status: AtomicI32::new(0),
                done: AtomicBool::new(false),
                wq: WaitQueue::new()?,
                rsp_len,
            },
            GFP_KERNEL,
        )?;
        // The response's buffer: a control message is not on the IO path.
        let buf = KVec::from_elem(0u8, rsp_len.max(1), GFP_KERNEL)?;
        let mut permit = match self.rtrs.permit_timeout(CTL_TIMEOUT_MS) {
            Ok(p) => p,
            Err(e) => {
                if e == support::code::etimedout() {
                    support::peer_err!(
                        "session {}: no free permit for a control message in {} ms\n",
                        Show(&self.name),
                        CTL_TIMEOUT_MS
                    );
                }
                return Err(e);
            }
        };
        permit.sg_mut()?.set_buf(buf, rsp_len)?;
        let id = permit.id() as usize;
        let slot = self.events.ctls.get(id).ok_or(EINVAL)?;
        if slot.put(KBox::new(w.clone(), GFP_KERNEL)?).is_err() {
            pr_err!("permit {} busy\n", id);
            return Err(EINVAL);
        }
        let dir = if rsp_len > 0 {
            IoDir::Read
        } else {
            IoDir::Write
        };
        self.rtrs.request(permit, dir, usr);
        // RTRS ends every request (a path failure fails those in flight).
        let left = (CTL_TIMEOUT_MS as i64)
            .saturating_sub(ktime_ms_delta(Ktime::ktime_get(), start))
            .max(0) as u32;
        let done = match w
            .wq
            .wait_until_interruptible(Some(left), || w.done.load(Ordering::Acquire))
        {
            Ok(true) => match w.rsp.take() {
                Some(rsp) => Ok((w.status.load(Ordering::Relaxed), *rsp)),
                None => Err(EINVAL),
            },
            Ok(false) => Err(support::code::etimedout()),
            Err(e) => Err(e),
        };
        let (status, rsp) = match done {
            Ok(r) => r,
            Err(e) => {
                if e == support::code::etimedout() {
                    support::peer_err!(
                        "session {}: no answer from the server in {} ms, closing the session\n",
                        Show(&self.name),
                        CTL_TIMEOUT_MS
                    );
                    self.events.set_down();
                    self.events.dead.store(true, Ordering::Release);
                    self.events.up_wq.wake_all();
                    self.rtrs.close();
                }
                return Err(e);
            }
        };
        if status < 0 {
            return Err(Error::from_errno(status));
        }
        Ok(rsp)
    }

    /// Sends `OFFLINE` for each of its mapped devices (upstream's
    /// `set_dev_states_to_disconnected`).  Process context.
    fn offline_uevents(&self) {
        let devs = {
            let mut v = KVec::new();
            for d in self.state.inner.lock().devs.iter() {
                if core::ptr::eq(&*d.sess, self)
                    && d.state.load(Ordering::Acquire) == ST_MAPPED
                    && v.push(d.clone(), GFP_KERNEL).is_err()
                {
                    break;
                }
            }
            v
        };
        for d in devs.iter() {
            pr_err!("</dev/rnbd{}> Device disconnected.\n", d.idx);
            if let Some(k) = d.disk.lock().as_ref().and_then(|disk| disk.kobj()) {
                k.uevent(false);
            }
        }
    }

    /// Drops the session's events' reference to it (a cycle).  Sleeps.
    fn forget(&self) {
        RcuBox::take_all(core::slice::from_ref(&self.events.sess), drop);
    }

    /// Opens the session's devices on the server again after a reconnect
    /// (upstream's `remap_devs`), or only `only` (`remap_device`), and marks
    /// the session usable if no disconnect came meanwhile.  A device whose
    /// open fails stays closed (its IO fails) until a later remap.  Sleeps.
    fn remap(self: &Arc<Self>, state: &State, only: Option<&Arc<Dev>>) -> Result {
        let _ops = state.ops.lock();
        let link = self.events.link.load(Ordering::Acquire);
        let down = link & LINK_UP == 0;
        if !down && only.is_none() {
            return Ok(());
        }
        // After a disconnect every device must be opened again: a
        // `remap_device` of one remaps them all (the reconnect's own remap
        // then finds the session usable and has nothing to do).
        let only = if down { None } else { only };
        if down {
            self.sess_info().inspect_err(|e| {
                pr_err!(
                    "session {}: remap: sess_info failed: {:?}\n",
                    Show(&self.name),
                    e
                );
            })?;
        }
        let devs = {
            let mut v = KVec::new();
            for d in state.inner.lock().devs.iter() {
                if Arc::ptr_eq(&d.sess, self) && d.state.load(Ordering::Acquire) == ST_MAPPED {
                    v.push(d.clone(), GFP_KERNEL)?;
                }
            }
            v
        };
        // After a disconnect every device's id is stale (the server may
        // have restarted): none is usable until it is opened again.
        if down {
            for d in devs.iter() {
                d.remote.online.store(false, Ordering::Release);
            }
        }
        let mut res = Ok(());
        for d in devs.iter() {
            if only.is_some_and(|o| !Arc::ptr_eq(d, o)) {
                continue;
            }
            if only.is_none() {
                pr_info!(
                    "</dev/rnbd{}> session reconnected, remapping device\n",
                    d.idx
                );
            }
            match self.reopen(d) {
                Ok(()) => pr_info!(
                    "</dev/rnbd{}> Device online, device remapped successfully\n",
                    d.idx
                ),
                Err(e) => {
                    pr_err!("</dev/rnbd{}> remap_device: {:?}\n", d.idx, e);
                    res = Err(e);
                }
            }
        }
        if down {
            let _ = self.events.link.compare_exchange(
                link,
                link | LINK_UP,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        self.events.up_wq.wake_all();
        res
    }

    /// Opens `dev` on the server again; takes its new id and size.
    fn reopen(&self, dev: &Dev) -> Result {
        let msg = wire::Open::new(dev.access_mode, &dev.pathname).ok_or(EINVAL)?;
        let rsp = self.ctl(&msg.to_bytes(), wire::OpenRsp::SIZE)?;
        let r = wire::OpenRsp::parse(&rsp[..wire::OpenRsp::SIZE]).map_err(|e| {
            support::peer_err!("remap: unexpected open response: {:?}\n", e);
            EINVAL
        })?;
        let lim = r
            .limits(self.rtrs.max_io_size(), kernel::page::PAGE_SIZE as u32)
            .map_err(|e| {
                support::peer_err!("remap: the server's device limits are invalid: {:?}\n", e);
                EINVAL
            })?;
        dev.remote.id.store(r.device_id.get(), Ordering::Release);
        dev.remote.online.store(true, Ordering::Release);
        if let Some(disk) = dev.disk.lock().as_ref() {
            disk.set_capacity(lim.nsectors);
            // Upstream's KOBJ_ONLINE after a remap.
            if let Some(k) = disk.kobj() {
                k.uevent(true);
            }
        }
        Ok(())
    }

    fn sess_info(&self) -> Result {
        let rsp = self.ctl(&wire::SessInfo::new(false).to_bytes(), wire::SessInfo::SIZE)?;
        wire::SessInfo::parse_rsp(&rsp[..wire::SessInfo::SIZE]).map_err(|e| {
            support::peer_err!("sess_info: unexpected response: {:?}\n", e);
            EINVAL
        })?;
        Ok(())
    }
}

/// A device's identity on the server, which a remap changes.
struct Remote {
    /// The server's device id (from its open answer).
    id: AtomicU32,
    /// The server opened it since the session's last reconnect.
    online: AtomicBool,
    /// It is being unmapped: IO waiting for it to be usable fails.
    gone: AtomicBool,
    /// Its mapping finished (IO may wait for a path from then on).
    mapped: AtomicBool,
}

/// The blk-mq side of one device.
struct DevQueue {
    sess: Arc<Session>,
    remote: Arc<Remote>,
    read_only: bool,
}

impl DevQueue {
    /// The session has a path and the server opened the device since.
    fn usable(&self) -> bool {
        self.sess.events.is_up() && self.remote.online.load(Ordering::Acquire)
    }

    /// Waits until the device is usable again, for at most
    /// `fast_io_fail_tmo` seconds after the session lost its last path
    /// (0: not at all, -1: no limit), or until it is unmapped.  Returns
    /// whether it is usable.  Sleeps (the queue is blocking).
    fn wait_usable(&self) -> bool {
        let tmo = rnbd_clt_fast_io_fail_tmo();
        let ev = &self.sess.events;
        // Not while the device is being mapped: `map` holds `State::ops`,
        // which the remap that would end the wait needs.
        if tmo == 0
            || !self.remote.mapped.load(Ordering::Acquire)
            || self.remote.gone.load(Ordering::Acquire)
            || ev.dead.load(Ordering::Acquire)
        {
            return false;
        }
        let limit = match u64::try_from(tmo) {
            Ok(t) => {
                let deadline = ev
                    .down_ms
                    .load(Ordering::Acquire)
                    .saturating_add(t.saturating_mul(1000));
                let left = deadline.saturating_sub(support::now_ms());
                if left == 0 {
                    return false;
                }
                Some(left.min(u64::from(u32::MAX)) as u32)
            }
            Err(_) => None,
        };
        ev.up_wq.wait_until(limit, || {
            self.usable()
                || self.remote.gone.load(Ordering::Acquire)
                || ev.dead.load(Ordering::Acquire)
        });
        self.usable()
    }
}

impl Queue for DevQueue {
    fn queue_rq(&self, rq: Rq) {
        let i = rq.info();
        let Some(op) = i.op else {
            pr_err!("Unknown request type\n");
            return rq.end(EIO.to_errno());
        };
        if !self.usable() && !self.wait_usable() {
            return rq.end(EIO.to_errno());
        }
        if self.read_only && op.modifies() {
            return rq.end(EROFS.to_errno());
        }
        let Some(mut permit) = self.sess.rtrs.permit(true) else {
            return rq.end(EIO.to_errno());
        };
        if op.has_data() {
            let r = permit.sg_mut().and_then(|t| rq.map_sg(t));
            if let Err(e) = r {
                pr_err!(
                    "request of {} bytes: mapping its pages failed: {:?}\n",
                    i.bytes,
                    e
                );
                return rq.end(EIO.to_errno());
            }
        }
        let mut m = wire::MsgIo::zeroed();
        m.hdr = MsgHdr::new(MsgType::Io);
        m.device_id = Le32::new(self.remote.id.load(Ordering::Acquire));
        m.sector = Le64::new(i.sector);
        m.rw = Le32::new(
            OpFlags {
                op,
                sync: i.sync,
                fua: i.fua,
            }
            .encode(),
        );
        m.bi_size = Le32::new(i.bytes);
        m.prio = Le16::new(i.ioprio);
        let id = permit.id() as usize;
        let read = op == Op::Read;
        let Some(slot) = self.sess.events.rqs.get(id) else {
            return rq.end(EIO.to_errno());
        };
        if let Err(rq) = slot.put(rq) {
            pr_err!("permit {} busy\n", id);
            return rq.end(EIO.to_errno());
        }
        let dir = if read { IoDir::Read } else { IoDir::Write };
        self.sess.rtrs.request(permit, dir, &m.to_bytes());
    }
}

/// `EALREADY`, which the 6.12 kernel crate does not name: the answer to an
/// unmap of a device another caller is unmapping, as upstream's.
fn ealready() -> Error {
    Error::from_errno(-(kernel::bindings::EALREADY as i32))
}

const ST_MAPPED: u8 = 1;
const ST_DISCONNECTED: u8 = 2;
const ST_UNMAPPED: u8 = 3;

/// A mapped device.
#[pin_data]
struct Dev {
    idx: u32,
    sess: Arc<Session>,
    pathname: KVec<u8>,
    access_mode: AccessMode,
    nr_poll_queues: u32,
    remote: Arc<Remote>,
    state: AtomicU8,
    #[pin]
    disk: Mutex<Option<Disk<DevQueue>>>,
    #[pin]
    sysfs: Mutex<Option<(Dir, Option<Link>)>>,
}

impl Dev {
    /// Usable: its session is, and the server opened it since the last
    /// reconnect.
    fn is_online(&self) -> bool {
        self.sess.events.is_up() && self.remote.online.load(Ordering::Acquire)
    }

    fn state_str(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            ST_MAPPED if !self.is_online() => "closed",
            ST_MAPPED => "open",
            ST_DISCONNECTED => "closed",
            ST_UNMAPPED => "unmapped",
            _ => "init",
        }
    }
}

/// Per-device attributes, in upstream's order.
static DEV_ATTRS: [Attr; 8] = [
    Attr::rw(kernel::c_str!("unmap_device")),
    Attr::rw(kernel::c_str!("resize")),
    Attr::rw(kernel::c_str!("remap_device")),
    Attr::ro(kernel::c_str!("mapping_path")),
    Attr::ro(kernel::c_str!("state")),
    Attr::ro(kernel::c_str!("session")),
    Attr::ro(kernel::c_str!("access_mode")),
    Attr::ro(kernel::c_str!("nr_poll_queues")),
];
const A_UNMAP: usize = 0;

struct DevAttrs {
    dev: Arc<Dev>,
    state: Arc<State>,
}

fn trim(b: &[u8]) -> &[u8] {
    proto::map::trim_ascii(b)
}

impl Attrs for DevAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        use core::fmt::Write;
        let d = &self.dev;
        let _ = match idx {
            0 => writeln!(out, "Usage: echo <normal|force> > unmap_device"),
            1 => writeln!(out, "Usage: echo <new size in sectors> > resize"),
            2 => writeln!(out, "Usage: echo <1> > remap_device"),
            3 => {
                out.bytes(&d.pathname);
                writeln!(out)
            }
            4 => writeln!(out, "{}", d.state_str()),
            5 => {
                out.bytes(&d.sess.name);
                writeln!(out)
            }
            6 => writeln!(out, "{}", d.access_mode.as_str()),
            7 => writeln!(out, "{}", d.nr_poll_queues),
            _ => return Err(EINVAL),
        };
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        let d = &self.dev;
        let v = trim(input);
        match idx {
            0 => {
                let force = match v {
                    b"normal" => false,
                    b"force" => true,
                    _ => {
                        pr_err!("</dev/rnbd{}> unmap_device: Invalid value\n", d.idx);
                        return Err(EINVAL);
                    }
                };
                pr_info!(
                    "</dev/rnbd{}> Unmapping device, option: {}.\n",
                    d.idx,
                    if force { "force" } else { "normal" }
                );
                self.state.unmap(d, force, true)
            }
            1 => {
                // Upstream: kstrtoul(buf, 0, ...), untrimmed; ERANGE for a
                // number over unsigned long.
                let sectors = proto::map::parse_ulong(input).map_err(|e| Error::from_errno(-e))?;
                // As at map: the size in bytes must fit loff_t.
                if sectors > proto::rnbd::MAX_NSECTORS {
                    return Err(EINVAL);
                }
                if d.state.load(Ordering::Acquire) != ST_MAPPED {
                    return Err(ENOENT);
                }
                match d.disk.lock().as_ref() {
                    Some(disk) => {
                        disk.set_capacity(sectors);
                        Ok(())
                    }
                    None => Err(ENOENT),
                }
            }
            2 => {
                if v != b"1" {
                    pr_err!("</dev/rnbd{}> remap_device: Invalid value\n", d.idx);
                    return Err(EINVAL);
                }
                // Upstream's errnos: EALREADY while open, ENODEV once
                // unmapped, EBUSY while being mapped.
                match d.state.load(Ordering::Acquire) {
                    ST_MAPPED if d.is_online() => Err(ealready()),
                    ST_MAPPED => {
                        pr_info!("</dev/rnbd{}> Remapping device.\n", d.idx);
                        d.sess.remap(&self.state, Some(d))
                    }
                    ST_UNMAPPED => Err(ENODEV),
                    _ => Err(EBUSY),
                }
            }
            _ => Err(EACCES),
        }
    }
}

/// Module state.
#[pin_data]
struct State {
    owner: &'static ThisModule,
    major: Major,
    /// Remaps after reconnects; flushed at module unload.
    wq: Arc<OwnedQueue>,
    /// Serialises map and the second half of unmap (see [`State::unmap`]).
    #[pin]
    ops: Mutex<()>,
    /// Notified when an unmap has taken its device out of `Inner::devs`.
    #[pin]
    unmapped: CondVar,
    #[pin]
    inner: Mutex<Inner>,
}

struct Inner {
    sessions: KVec<Arc<Session>>,
    devs: Slots<Arc<Dev>>,
    class: Option<Class>,
    ctl: Option<DevFiles<CtlAttrs>>,
    devices: Option<PlainDir>,
}

/// `ctl` attributes.
static CTL_ATTRS: [Attr; 1] = [Attr::rw(kernel::c_str!("map_device"))];

struct CtlAttrs {
    state: Arc<State>,
}

impl Attrs for CtlAttrs {
    fn show(&self, _idx: usize, out: &mut Emit<'_>) -> Result {
        use core::fmt::Write;
        let _ = write!(
            out,
            "Usage: echo \"[dest_port=server port number] sessname=<name of the rtrs session> path=<[srcaddr@]dstaddr> [path=<[srcaddr@]dstaddr>] device_path=<full path on remote side> [access_mode=<ro|rw|migration>] [nr_poll_queues=<number of queues>]\" > map_device\n\naddr ::= [ ip:<ipv4> | ip:<ipv6> | gid:<gid> ]\n"
        );
        Ok(())
    }

    fn store(&self, _idx: usize, input: &[u8]) -> Result {
        self.state.map(input)
    }
}

/// Shows a byte string in a log line.
struct Show<'a>(&'a [u8]);

impl core::fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &c in self.0 {
            if (0x20..0x7f).contains(&c) {
                core::fmt::Write::write_char(f, c as char)?;
            } else {
                write!(f, "\\x{:02x}", c)?;
            }
        }
        Ok(())
    }
}

fn map_err_log(e: &MapError<'_>) {
    match e {
        MapError::SessnameTooLong => pr_err!("map_device: sessname too long\n"),
        MapError::DevPathTooLong => pr_err!("map_device: Device path too long\n"),
        MapError::TooManyPaths => pr_err!(
            "map_device: too many (> {}) paths provided\n",
            proto::map::MAX_PATHS
        ),
        MapError::BadPath(p, why) => pr_err!("Can't parse path {}: {:?}\n", Show(p), why),
        MapError::NoProtocol(p) => pr_err!("Can't parse path {}: -{}\n", Show(p), e.errno()),
        MapError::BadPort(p) => pr_err!("bad destination port number parameter '{}'\n", Show(p)),
        MapError::BadAccessMode(p) => pr_err!("map_device: Invalid access_mode: '{}'\n", Show(p)),
        MapError::BadPollQueues(p) => pr_err!("bad nr_poll_queues parameter '{}'\n", Show(p)),
        MapError::Unknown(p) => pr_err!(
            "map_device: Unknown parameter or missing value '{}'\n",
            Show(p)
        ),
        MapError::Missing => pr_err!("map_device: Parameters missing\n"),
    }
}

impl State {
    fn find_session(&self, name: &[u8]) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .sessions
            .iter()
            .find(|s| &s.name[..] == name)
            .cloned()
    }

    fn map(self: &Arc<Self>, input: &[u8]) -> Result {
        let o = parse_map(input, support::nr_cpu_ids(), &support::ifindex).map_err(|e| {
            map_err_log(&e);
            Error::from_errno(-e.errno())
        })?;
        pr_info!(
            "Mapping device {} on session {}, (access_mode: {}, nr_poll_queues: {})\n",
            Show(o.device_path),
            Show(o.sessname),
            o.access_mode.as_str(),
            o.nr_poll_queues
        );
        let _ops = self.ops.lock();
        {
            let g = self.inner.lock();
            if g.devs
                .iter()
                .any(|d| &d.pathname[..] == o.device_path && &d.sess.name[..] == o.sessname)
            {
                pr_err!(
                    "map_device: Device {} already mapped on session {}\n",
                    Show(o.device_path),
                    Show(o.sessname)
                );
                return Err(EEXIST);
            }
        }
        let (sess, new_sess) = match self.find_session(o.sessname) {
            Some(s) => (s, false),
            None => {
                // Every path= given (at most 6, `parse_map` checked).
                let mut dsts = KVec::new();
                for p in o.paths() {
                    dsts.push(Endpoints::new(p, o.dest_port), GFP_KERNEL)?;
                }
                if dsts.is_empty() {
                    // Upstream's words and errno (find_and_get_or_create_sess).
                    pr_err!(
                        "Session {} not found, and path parameter not given\n",
                        Show(o.sessname)
                    );
                    return Err(ENXIO);
                }
                (self.open_session(o.sessname, &dsts)?, true)
            }
        };
        let r = self.map_on(&sess, o.device_path, o.access_mode, o.nr_poll_queues);
        if r.is_err() && new_sess && sess.users.load(Ordering::Acquire) == 0 {
            self.drop_session(&sess);
        }
        r
    }

    fn open_session(self: &Arc<Self>, name: &[u8], dsts: &[Endpoints]) -> Result<Arc<Session>> {
        let events = Events::new()?;
        let rtrs = Sess::open(name, dsts, events.clone()).inspect_err(|e| {
            pr_err!(
                "map_device: failed to open session {}: {:?}\n",
                Show(name),
                e
            );
        })?;
        let qd = rtrs.queue_depth();
        let setup = (|| -> Result<Arc<Session>> {
            let ts = TagSet::new(support::nr_cpu_ids(), qd, self.owner)?;
            let mut nm = KVec::with_capacity(name.len(), GFP_KERNEL)?;
            nm.extend_from_slice(name, GFP_KERNEL)?;
            let s = Arc::new(
                Session {
                    name: nm,
                    state: self.clone(),
                    rtrs: rtrs.clone(),
                    events: events.clone(),
                    ts,
                    users: AtomicU32::new(0),
                },
                GFP_KERNEL,
            )?;
            s.sess_info()?;
            self.inner.lock().sessions.push(s.clone(), GFP_KERNEL)?;
            if let Ok(b) = KBox::new(s.clone(), GFP_KERNEL) {
                let _ = events.sess.publish(b);
            }
            Ok(s)
        })();
        if setup.is_err() {
            rtrs.close();
        }
        setup
    }

    fn drop_session(&self, sess: &Arc<Session>) {
        {
            let mut g = self.inner.lock();
            let mut kept = KVec::new();
            for s in core::mem::take(&mut g.sessions) {
                if !Arc::ptr_eq(&s, sess) {
                    let _ = kept.push(s, GFP_KERNEL);
                }
            }
            g.sessions = kept;
        }
        sess.forget();
        sess.rtrs.close();
    }

    fn map_on(
        self: &Arc<Self>,
        sess: &Arc<Session>,
        path: &[u8],
        mode: AccessMode,
        nr_poll_queues: u32,
    ) -> Result {
        let msg = wire::Open::new(mode, path).ok_or(EINVAL)?;
        let rsp = sess
            .ctl(&msg.to_bytes(), wire::OpenRsp::SIZE)
            .inspect_err(|e| {
                support::peer_err!("map_device: open of {} failed: {:?}\n", Show(path), e);
            })?;
        let r = wire::OpenRsp::parse(&rsp[..wire::OpenRsp::SIZE]).map_err(|e| {
            support::peer_err!(
                "map_device: unexpected open response for {}: {:?}\n",
                Show(path),
                e
            );
            EINVAL
        })?;
        let device_id = r.device_id.get();
        let remote = Arc::new(
            Remote {
                id: AtomicU32::new(device_id),
                online: AtomicBool::new(true),
                gone: AtomicBool::new(false),
                mapped: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let close_remote = |sess: &Arc<Session>| {
            let mut c = wire::Close::zeroed();
            c.hdr = MsgHdr::new(MsgType::Close);
            c.device_id = Le32::new(device_id);
            let _ = sess.ctl(&c.to_bytes(), 0);
        };
        // The server's limits go to the block layer only checked: it WARNs
        // on some values and misbehaves on others (see `OpenRsp::limits`).
        let lim = match r.limits(sess.rtrs.max_io_size(), kernel::page::PAGE_SIZE as u32) {
            Ok(l) => l,
            Err(e) => {
                support::peer_err!(
                    "map_device: {}: the server's device limits are invalid: {:?}\n",
                    Show(path),
                    e
                );
                close_remote(sess);
                return Err(EINVAL);
            }
        };
        let params = DiskParams {
            sectors: lim.nsectors,
            max_hw_sectors: lim.max_hw_sectors,
            // Ours, as upstream's client: the server's are its disk's.
            max_segments: sess.rtrs.max_segments(),
            max_discard_sectors: lim.max_discard_sectors,
            discard_granularity: lim.discard_granularity,
            discard_alignment: lim.discard_alignment,
            max_write_zeroes_sectors: lim.max_write_zeroes_sectors,
            max_secure_erase_sectors: lim.max_secure_erase_sectors,
            logical_block_size: lim.logical_block_size,
            physical_block_size: lim.physical_block_size,
            write_cache: lim.write_cache as u8,
            fua: lim.fua as u8,
            read_only: (mode == AccessMode::Ro) as u8,
            // RTRS registers a read's pages in 4 KiB pages (upstream's too).
            virt_boundary_mask: 4095,
        };
        let mut pn = KVec::with_capacity(path.len(), GFP_KERNEL)?;
        pn.extend_from_slice(path, GFP_KERNEL)?;
        let idx = {
            let g = self.inner.lock();
            g.devs.next_free()
        } as u32;
        let dev_remote = remote.clone();
        let dev = Arc::pin_init(
            pin_init!(Dev {
                idx,
                sess: sess.clone(),
                pathname: pn,
                access_mode: mode,
                nr_poll_queues,
                remote: dev_remote,
                state: AtomicU8::new(0),
                disk <- new_mutex!(None),
                sysfs <- new_mutex!(None),
            }),
            GFP_KERNEL,
        );
        let dev = match dev {
            Ok(d) => d,
            Err(e) => {
                close_remote(sess);
                return Err(e);
            }
        };
        let r = (|| -> Result {
            self.inner.lock().devs.insert(dev.clone())?;
            let mut name = [0u8; 32];
            let n = fmt_name(&mut name, b"rnbd", idx);
            let cname = CStr::from_bytes_with_nul(&name[..=n]).map_err(|_| EINVAL)?;
            let q = Arc::new(
                DevQueue {
                    sess: sess.clone(),
                    remote: remote.clone(),
                    read_only: mode == AccessMode::Ro,
                },
                GFP_KERNEL,
            )?;
            let mut disk = Disk::new(
                &sess.ts,
                &params,
                self.major.get(),
                (idx as i32) << PART_BITS,
                1 << PART_BITS,
                cname,
                q,
            )?;
            disk.add()?;
            let dir = Dir::new(
                disk.kobj().ok_or(EINVAL)?,
                kernel::c_str!("rnbd"),
                &DEV_ATTRS,
                Arc::new(
                    DevAttrs {
                        dev: dev.clone(),
                        state: self.clone(),
                    },
                    GFP_KERNEL,
                )?,
            )?;
            // Upstream's KOBJ_ONLINE once the device's files are there.
            if let Some(k) = disk.kobj() {
                k.uevent(true);
            }
            // ctl/devices/<path with '/' as '!'>@<session>
            let mut ln = KVec::with_capacity(path.len() + sess.name.len() + 2, GFP_KERNEL)?;
            for &c in path {
                ln.push(if c == b'/' { b'!' } else { c }, GFP_KERNEL)?;
            }
            ln.push(b'@', GFP_KERNEL)?;
            ln.extend_from_slice(&sess.name, GFP_KERNEL)?;
            ln.push(0, GFP_KERNEL)?;
            let link = {
                let g = self.inner.lock();
                match (g.devices.as_ref(), disk.kobj()) {
                    (Some(dd), Some(k)) => Some(Link::new(
                        dd.kobj(),
                        k,
                        CStr::from_bytes_with_nul(&ln).map_err(|_| EINVAL)?,
                    )?),
                    _ => None,
                }
            };
            *dev.sysfs.lock() = Some((dir, link));
            *dev.disk.lock() = Some(disk);
            dev.state.store(ST_MAPPED, Ordering::Release);
            dev.remote.mapped.store(true, Ordering::Release);
            sess.users.fetch_add(1, Ordering::AcqRel);
            pr_info!(
                "</dev/rnbd{}> map_device: Device mapped as rnbd{} (nsectors: {}, logical_block_size: {}, physical_block_size: {}, max_write_zeroes_sectors: {}, max_discard_sectors: {}, discard_granularity: {}, discard_alignment: {}, secure_discard: {}, max_segments: {}, max_hw_sectors: {}, wc: {}, fua: {})\n",
                idx,
                idx,
                params.sectors,
                params.logical_block_size,
                params.physical_block_size,
                params.max_write_zeroes_sectors,
                params.max_discard_sectors,
                params.discard_granularity,
                params.discard_alignment,
                r.secure_discard.get(),
                params.max_segments,
                params.max_hw_sectors,
                params.write_cache,
                params.fua
            );
            Ok(())
        })();
        if let Err(e) = r {
            let sysfs = dev.sysfs.lock().take();
            drop(sysfs);
            let disk = dev.disk.lock().take();
            drop(disk);
            self.inner
                .lock()
                .devs
                .take_where(|d| Arc::ptr_eq(d, &dev), drop);
            close_remote(sess);
            return Err(e);
        }
        Ok(())
    }

    /// Unmaps `dev`; `from_sysfs` when called from its own `unmap_device`.
    ///
    /// Three steps, as upstream's `rnbd_clt_unmap_device`:
    /// 1. claim: `dev.state` goes from mapped to unmapped by one
    ///    compare-exchange, so exactly one caller unmaps; the others get
    ///    `EALREADY` (upstream: "Device is already being unmapped").
    /// 2. remove the sysfs files with no lock held: removing a file waits for
    ///    the stores running in it, and a second writer of `unmap_device` (or
    ///    one of a device that `map_on` is tearing down under `ops`) must be
    ///    able to finish.  Holding `ops` here deadlocked against a second
    ///    writer waiting for `ops`.  Our own file goes first
    ///    (`remove_self`), since removing it waits for the running store,
    ///    which is ours.
    /// 3. under `ops` (which keeps `map` from picking the session while its
    ///    last device goes): the disk, the server's close, the session.
    fn unmap(&self, dev: &Arc<Dev>, force: bool, from_sysfs: bool) -> Result {
        if !force {
            if let Some(d) = dev.disk.lock().as_ref() {
                if d.openers() > 0 {
                    pr_err!("</dev/rnbd{}> Device is in use\n", dev.idx);
                    return Err(EBUSY);
                }
            }
        }
        if let Err(st) =
            dev.state
                .compare_exchange(ST_MAPPED, ST_UNMAPPED, Ordering::AcqRel, Ordering::Acquire)
        {
            if st == ST_UNMAPPED {
                pr_info!("</dev/rnbd{}> Device is already being unmapped\n", dev.idx);
                return Err(ealready());
            }
            // Still being set up by `map_on`, which holds `ops`: it either
            // finishes and the unmap can be retried, or removes it.
            return Err(EBUSY);
        }
        // IO waiting for a path fails now (the disk's deletion below waits
        // for it).
        dev.remote.gone.store(true, Ordering::Release);
        dev.sess.events.up_wq.wake_all();
        let sysfs = dev.sysfs.lock().take();
        if let Some((dir, link)) = sysfs {
            drop(link);
            if from_sysfs {
                dir.remove_self(A_UNMAP);
            }
            drop(dir);
        }
        let _ops = self.ops.lock();
        // Deleting the disk waits for its requests in flight.
        let disk = dev.disk.lock().take();
        drop(disk);
        let sess = dev.sess.clone();
        if dev.is_online() {
            let mut c = wire::Close::zeroed();
            c.hdr = MsgHdr::new(MsgType::Close);
            c.device_id = Le32::new(dev.remote.id.load(Ordering::Acquire));
            if let Err(e) = sess.ctl(&c.to_bytes(), 0) {
                support::peer_warn!(
                    "</dev/rnbd{}> close on the server failed: {:?}\n",
                    dev.idx,
                    e
                );
            }
        }
        self.inner
            .lock()
            .devs
            .take_where(|d| Arc::ptr_eq(d, dev), drop);
        if sess.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drop_session(&sess);
        }
        // Module unload waits for this (see `RnbdClient::drop`).  The
        // device left `devs` under `inner` above, so a waiter that saw it
        // there is asleep by now.
        self.unmapped.notify_all();
        pr_info!("</dev/rnbd{}> Device is unmapped\n", dev.idx);
        Ok(())
    }
}

/// Writes `prefix` and `n` in decimal, NUL-terminated; returns the length.
fn fmt_name(buf: &mut [u8; 32], prefix: &[u8], n: u32) -> usize {
    let mut i = prefix.len();
    buf[..i].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut k = 0;
    let mut v = n;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        buf[i] = digits[k];
        i += 1;
    }
    buf[i] = 0;
    i
}

struct RnbdClient {
    state: Arc<State>,
}

impl kernel::Module for RnbdClient {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = rtrs_client::protocol_version();
        pr_info!(
            "Loading module rnbd_client, proto {}.{} over RTRS {}.{}\n",
            wire::VERSION_MAJOR,
            wire::VERSION_MINOR,
            maj,
            min
        );
        let major = Major::register(kernel::c_str!("rnbd"))?;
        let wq = OwnedQueue::new(kernel::c_str!("rnbd_client_wq"))?;
        let state = Arc::pin_init(
            pin_init!(State {
                owner: module,
                major,
                wq,
                ops <- new_mutex!(()),
                unmapped <- new_condvar!(),
                inner <- new_mutex!(Inner { sessions: KVec::new(), devs: Slots::new(), class: None, ctl: None, devices: None }),
            }),
            GFP_KERNEL,
        )?;
        let class = Class::new(kernel::c_str!("rnbd-client"), kernel::c_str!("ctl"))?;
        let devices = PlainDir::new(class.ctl(), kernel::c_str!("devices"))?;
        let ctl = Arc::new(
            CtlAttrs {
                state: state.clone(),
            },
            GFP_KERNEL,
        )
        .map_err(Error::from)
        .and_then(|h| class.ctl_files(&CTL_ATTRS, h));
        let ctl = match ctl {
            Ok(c) => c,
            Err(e) => {
                drop(devices);
                drop(class);
                return Err(e);
            }
        };
        {
            let mut g = state.inner.lock();
            g.devices = Some(devices);
            g.ctl = Some(ctl);
            g.class = Some(class);
        }
        Ok(Self { state })
    }
}

impl Drop for RnbdClient {
    fn drop(&mut self) {
        let st = &self.state;
        // No new mappings.
        let ctl = st.inner.lock().ctl.take();
        drop(ctl);
        loop {
            let dev = st.inner.lock().devs.iter().next().cloned();
            let Some(d) = dev else { break };
            if st.unmap(&d, true, false) == Err(ealready()) {
                // A writer of its unmap_device is unmapping it: the disk,
                // the session and the sysfs files must be gone before the
                // module is.  Its last step takes the device out of `devs`
                // (bounded: the close message waits at most CTL_TIMEOUT_MS).
                let mut g = st.inner.lock();
                while g.devs.iter().any(|x| Arc::ptr_eq(x, &d)) {
                    st.unmapped.wait(&mut g);
                }
            }
            // A failed unmap must not loop forever.
            st.inner
                .lock()
                .devs
                .take_where(|x| Arc::ptr_eq(x, &d), drop);
        }
        let sessions = core::mem::take(&mut st.inner.lock().sessions);
        for s in sessions.iter() {
            s.forget();
            s.rtrs.close();
        }
        drop(sessions);
        // A remap queued by a reconnect before the sessions closed.
        st.wq.flush();
        let (devices, class) = {
            let mut g = st.inner.lock();
            (g.devices.take(), g.class.take())
        };
        drop(devices);
        drop(class);
        pr_info!("Unloaded\n");
    }
}
