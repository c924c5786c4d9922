// SPDX-License-Identifier: GPL-2.0

//! Sessions: opening one, its permits, and a request from its submission
//! to its end.

use crate::*;

/// A session.
#[pin_data]
pub struct Sess {
    pub(crate) geo: Geometry,
    pub(crate) paths_uuid: [u8; 16],
    pub(crate) name: KVec<u8>,
    pub(crate) events: Arc<dyn SessEvents>,
    /// Permits.
    pub(crate) depth: u32,
    /// Most data segments (table entries) of one request.
    pub(crate) max_segments: u32,
    /// Pages of a registration, for `max_io`.
    pub(crate) mr_pages: u32,
    /// Largest data of one request.
    pub(crate) max_io: u32,
    pub(crate) wq: Arc<OwnedQueue>,
    /// One per permit: the session's only table of requests in flight.
    pub(crate) slots: KVec<Slot>,
    /// Bit `i % 64` of word `i / 64` is set while permit `i` is free.
    pub(crate) free: KVec<AtomicU64>,
    /// Where permit waiters sleep; woken when a permit is freed.
    pub(crate) permit_wait: WaitQueue,
    /// The paths as configured, for opening, closing, adding and removing
    /// them; a request does not take this lock (see `live`).
    #[pin]
    pub(crate) paths: Mutex<Slots<Arc<PathSlot>>>,
    /// The current connection of each path, slot for slot as in `paths`,
    /// for requests to pick one under RCU: no lock and no shared cache line
    /// written (but the chosen path's reference count).  Published and
    /// unpublished under the path slot's lock.
    pub(crate) live: KVec<RcuBox<Arc<Path>>>,
    /// One past the highest slot of `live` ever used: where readers stop.
    pub(crate) live_end: AtomicUsize,
    /// Connected paths (upstream's `paths_up`); its lock serialises the
    /// user's `disconnected` and `reconnected` events.
    #[pin]
    pub(crate) up: Mutex<u32>,
    /// `open` returned: a path coming up when none was is a reconnect.
    pub(crate) opened: AtomicBool,
    pub(crate) closing: AtomicBool,
    /// The server port of the session's paths (`add_path` uses it).
    pub(crate) port: u16,
    /// `max_reconnect_attempts` (-1: forever).
    pub(crate) max_reconnect: AtomicI32,
    /// Its sysfs device, from its open to its close.  Taken out to be
    /// dropped outside the lock (the drop waits for running handlers,
    /// which may take the lock).
    #[pin]
    pub(crate) sysfs: Mutex<Option<KBox<SessFiles>>>,
    /// How a request picks its path ([`Policy`] as `u8`).
    pub(crate) policy: AtomicU8,
    /// Per CPU: the round-robin policy's last pick (each CPU writes only
    /// its own).
    pub(crate) rr: KVec<AtomicUsize>,
    /// Writes sent through a registration because their pages and header
    /// needed more SGEs than the QP takes (logged at close: the rare path).
    pub(crate) mr_writes: AtomicU64,
}

impl Sess {
    /// Connects a session named `name` to the server over every path of
    /// `dsts` (one to [`MAX_PATHS`] destinations, tried in turn) and
    /// returns it once all are up; if any fails, none stays (as upstream's
    /// `rtrs_clt_open`).  Sleeps.
    pub fn open(name: &[u8], dsts: &[Endpoints], events: Arc<dyn SessEvents>) -> Result<Arc<Self>> {
        if name.is_empty()
            || name.len() >= wire::NAME_MAX
            || dsts.is_empty()
            || dsts.len() > MAX_PATHS
        {
            return Err(EINVAL);
        }
        let mut paths_uuid = [0u8; 16];
        support::random_bytes(&mut paths_uuid);
        // The first path tells the geometry the session is sized by.
        let (pd, links, geo) = connect_path(dsts[0], paths_uuid, true, None)?;
        let permits_n = geo.queue_depth.min(MAX_PERMITS);
        // A registration covers the pages of `max_io` bytes at any offset
        // in its first page; no more than the server's largest IO needs
        // (32 pages for upstream's 124 KiB), which sizes every permit's
        // table and registration (memory per session).
        let io_pages = geo.max_io_size.div_ceil(MR_PAGE).saturating_add(1).max(2);
        let mr_pages = pd
            .device()
            .max_fast_reg_pages()
            .min(MAX_SEGMENTS + 1)
            .min(io_pages);
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
                tried: Tried::default(),
                usr_len: 0,
            };
            let inv = Inval { path: None, id };
            slots.push(
                Slot {
                    state: AtomicU32::new(0),
                    since_ms: AtomicU64::new(0),
                    posted_ns: AtomicU64::new(0),
                    path: AtomicUsize::new(0),
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
        let mut live = KVec::with_capacity(MAX_PATHS, GFP_KERNEL)?;
        for _ in 0..MAX_PATHS {
            live.push(RcuBox::empty(), GFP_KERNEL)?;
        }
        let mut rr = KVec::with_capacity(support::nr_cpu_ids() as usize, GFP_KERNEL)?;
        for _ in 0..support::nr_cpu_ids() {
            rr.push(AtomicUsize::new(usize::MAX), GFP_KERNEL)?;
        }
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
                live,
                live_end: AtomicUsize::new(0),
                up <- new_mutex!(0),
                opened: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                port: dsts[0].dst.port,
                max_reconnect: AtomicI32::new(-1),
                sysfs <- new_mutex!(None),
                policy: AtomicU8::new(Policy::MinInflight as u8),
                rr,
                mr_writes: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        match SessFiles::new(&sess) {
            Ok(f) => *sess.sysfs.lock() = Some(f),
            Err(e) => {
                pr_err!(
                    "session {}: sysfs device not created: {:?}\n",
                    kernel::str::BStr::from_bytes(&sess.name),
                    e
                );
                return Err(e);
            }
        }
        let mut first = Some((pd, links));
        for (n, dst) in dsts.iter().enumerate() {
            let r = match first.take() {
                Some((pd, links)) => PathSlot::open(&sess, *dst, true, pd, links),
                None => connect_path(*dst, paths_uuid, false, Some(&geo))
                    .and_then(|(pd, links, _)| PathSlot::open(&sess, *dst, false, pd, links)),
            };
            if let Err(e) = r {
                pr_err!("path {} to the server did not come up: {:?}\n", n, e);
                sess.close();
                return Err(e);
            }
        }
        sess.opened.store(true, Ordering::Release);
        Ok(sess)
    }

    /// Connects and starts one more path, to `ends` (`add_path`).  Sleeps.
    pub(crate) fn add_path_to(self: &Arc<Self>, ends: Endpoints) -> Result {
        if self.closing.load(Ordering::Acquire) {
            return Err(enotconn());
        }
        let (pd, links, _) = connect_path(ends, self.paths_uuid, false, Some(&self.geo))?;
        PathSlot::open(self, ends, false, pd, links).map(|_| ())
    }

    /// Unlists the retired `slot`.
    pub(crate) fn unlist(&self, slot: &Arc<PathSlot>) {
        let mut g = self.paths.lock();
        g.take_where(|s| Arc::ptr_eq(s, slot), drop);
    }

    /// Counts the started `path` as connected; the first path connected
    /// after none was (once `open` returned) tells the user (upstream's
    /// `RTRS_CLT_LINK_EV_RECONNECTED`).  False if its close work counted it
    /// down already: it did not come up.
    pub(crate) fn path_up(&self, path: &Path) -> bool {
        let mut g = self.up.lock();
        if path.downed.load(Ordering::Relaxed) {
            return false;
        }
        path.counted.store(true, Ordering::Relaxed);
        *g = g.saturating_add(1);
        if *g == 1 && self.opened.load(Ordering::Acquire) && !self.closing.load(Ordering::Acquire) {
            self.events.reconnected();
        }
        true
    }

    /// Counts the closed `path` down if it was counted up; the last one
    /// tells the user (`disconnected`).  Returns whether it was up.
    pub(crate) fn path_down(&self, path: &Path) -> bool {
        let mut g = self.up.lock();
        path.downed.store(true, Ordering::Relaxed);
        if !path.counted.swap(false, Ordering::Relaxed) {
            return false;
        }
        *g = g.saturating_sub(1);
        // Not while `open` runs, as upstream (nor `reconnected`): its user
        // has no session yet, and one that went down and up again there
        // would be left unusable.
        if *g == 0 && self.opened.load(Ordering::Acquire) && !self.closing.load(Ordering::Acquire) {
            self.events.disconnected();
        }
        true
    }

    /// The path for a request's next attempt, by the session's policy,
    /// among the connected paths not in `tried`; with its slot.  No lock.
    fn pick_path(&self, policy: Policy, mut tried: Tried) -> Option<(usize, Arc<Path>)> {
        let end = self.live_end.load(Ordering::Acquire).min(self.live.len());
        let live = self.live.get(..end)?;
        let rr = self.rr.get(support::current_cpu() as usize);
        let mut cursor = rr.map_or(usize::MAX, |c| c.load(Ordering::Relaxed));
        let key = |i: usize| {
            live.get(i)?.read(|p| {
                let p = p.filter(|p| p.core.state() == State::Connected)?;
                Some(match policy {
                    Policy::RoundRobin => 0,
                    Policy::MinInflight => u64::from(p.inflight.load(Ordering::Relaxed)),
                    Policy::MinLatency => p.core.latency_ns(),
                })
            })
        };
        // A path chosen can leave before it is taken: then the next.
        for _ in 0..end {
            let i = mpath::choose(policy, end, tried, &mut cursor, key)?;
            let p = live
                .get(i)?
                .read(|p| p.filter(|p| p.core.state() == State::Connected).cloned());
            if let Some(p) = p {
                if let Some(c) = rr {
                    c.store(cursor, Ordering::Relaxed);
                }
                return Some((i, p));
            }
            tried.add(i);
        }
        None
    }

    /// The multipath policy.
    pub fn policy(&self) -> Policy {
        Policy::try_from(self.policy.load(Ordering::Relaxed)).unwrap_or(Policy::MinInflight)
    }

    /// Sets the multipath policy; requests submitted from now on follow it.
    pub fn set_policy(&self, p: Policy) {
        self.policy.store(p as u8, Ordering::Relaxed);
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
        *self.up.lock() > 0
    }

    /// A free permit, taken; `None` if none is free.  Any context, no lock:
    /// the lowest free bit of the free map is claimed with a compare and
    /// exchange.
    pub(crate) fn take_free(self: &Arc<Self>) -> Option<Permit> {
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
    pub(crate) fn permit_within(self: &Arc<Self>, timeout_ms: Option<u32>) -> Result<Permit> {
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
    pub fn request(self: &Arc<Self>, permit: Permit, dir: Dir, usr: &[u8]) {
        self.submit(permit, dir, usr, Tried::default())
    }

    /// Sends a request on a path not in `tried` (the paths it failed on).
    fn submit(self: &Arc<Self>, mut permit: Permit, dir: Dir, usr: &[u8], tried: Tried) {
        let id = permit.id;
        let policy = self.policy();
        let Some((path_idx, path)) = self.pick_path(policy, tried) else {
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
        {
            let t = tx.get_mut();
            t.path = Some(path.clone());
            t.tried = tried;
            t.tried.add(path_idx);
            t.usr_len = usr.len() as u16;
        }
        slot.path.store(path_key(&path), Ordering::Relaxed);
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
        let counted = policy == Policy::MinInflight;
        if counted {
            state |= st::COUNTED;
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
        if counted {
            path.inflight.fetch_add(1, Ordering::Relaxed);
        }
        path.slot.stats.count_io(
            dir,
            u64::from(data_len) + usr.len() as u64,
            !tried.is_empty(),
        );
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
            // Never posted because the path is closing (its connections
            // are gone): like a request in flight on it, it goes to another
            // path, from here or from the path's close work.
            Err((e, Unposted::Whole(tx))) if e == enotconn() => {
                self.park_on_closing(id, &path, tx, tried.count());
            }
            // Never posted: nothing of it is in the device's hands.
            // (Its path stays in the owner: `complete` uncounts it.)
            Err((e, Unposted::Whole(mut tx))) => {
                let t = tx.get_mut();
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
                self.park_on_closing(id, &path, tx, tried.count());
            }
        }
    }

    /// Leaves request `id`, whose send `tx` did not go (wholly) out on
    /// `path`, to `path`'s close work, which drains the path and fails the
    /// request over (`fail_pending`).  If that work already passed it, the
    /// request is failed over here, unless it was tried on `depth` paths
    /// already (each inline failover is a nested call: the stack stays
    /// bounded), then it fails.
    fn park_on_closing(
        self: &Arc<Self>,
        id: u32,
        path: &Arc<Path>,
        tx: KBox<Posted<Tx>>,
        depth: u32,
    ) {
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        if let Err(tx) = slot.tx.put(tx) {
            let _ = KBox::into_raw(tx);
        }
        slot.state.fetch_or(st::TX_BACK, Ordering::SeqCst);
        path.close();
        // A close work that already drained and failed the path's requests
        // may have passed this one (its owner was not back yet): end it
        // here then.  SeqCst here and there: one of the two sees the other.
        if path.core.state() == State::Closed
            && slot.state.fetch_or(st::DONE, Ordering::AcqRel) & st::DONE == 0
        {
            if depth < 2 {
                self.failover(id, path);
            } else {
                self.complete(id, Some(econnaborted().to_errno()));
            }
        }
    }

    /// Sets `bits` in request `id`'s state and returns the new state, or
    /// `None` if it is not in flight (or ended).
    pub(crate) fn mark(&self, id: u32, bits: u32) -> Option<u32> {
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
    pub(crate) fn maybe_complete(self: &Arc<Self>, id: u32, state: u32) {
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
    pub(crate) fn complete(self: &Arc<Self>, id: u32, status: Option<i32>) {
        let Some((mut permit, state, _)) = self.end(id) else {
            return;
        };
        let status = status.unwrap_or_else(|| st::status(state));
        match permit.sg_mut() {
            Ok(sg) => sg.finish(),
            Err(_) => pr_err!("request {} ends without its send's owner\n", id),
        }
        self.events.io_done(permit, status);
    }

    /// Takes request `id`, whose end the caller claimed, out of its slot:
    /// its permit (with its table, still mapped), its last state, and the
    /// path it was on; frees the slot.
    fn end(self: &Arc<Self>, id: u32) -> Option<(Permit, u32, Option<Arc<Path>>)> {
        let slot = self.slots.get(id as usize)?;
        let state = slot.state.load(Ordering::Acquire);
        let mut tx = slot.tx.take();
        let inv = slot.inv.take();
        let path = tx.as_mut().and_then(|t| t.get_mut().path.take());
        if state & st::COUNTED != 0 {
            if let Some(p) = &path {
                // Saturating: `reset_all` may have zeroed it meanwhile.
                let _ = p
                    .inflight
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                        Some(v.saturating_sub(1))
                    });
            }
        }
        slot.state.store(0, Ordering::Release);
        let permit = Permit {
            sess: self.clone(),
            id,
            tx,
            inv,
        };
        Some((permit, state, path))
    }

    /// Sends request `id`, whose end the caller claimed after `failed`
    /// failed and drained (nothing of the request is in the device's hands
    /// any more), again on another path; fails it if there is none.  The
    /// user sees one request.  Process context.
    fn failover(self: &Arc<Self>, id: u32, failed: &Path) {
        let Some((mut permit, state, _)) = self.end(id) else {
            return;
        };
        let dir = if state & st::READ != 0 {
            Dir::Read
        } else {
            Dir::Write
        };
        let mut usr = [0u8; HDR_MAX];
        let (len, tried) = match permit.tx.as_mut() {
            Some(tx) => {
                let t = tx.get_mut();
                let len = t.usr_len as usize;
                match t.sg.hdr(len) {
                    Some(h) => {
                        usr[..len].copy_from_slice(h);
                        (Some(len), t.tried)
                    }
                    None => (None, t.tried),
                }
            }
            None => (None, Tried::default()),
        };
        // The pages stay described; their mapping and registration on the
        // failed path go.
        if let Ok(sg) = permit.sg_mut() {
            sg.unmap();
        }
        if state & st::USE_MR != 0 {
            if let Some(mr) = failed.mrs.get(id as usize) {
                mr.release();
            }
        }
        match len {
            Some(len) if !self.closing.load(Ordering::Acquire) => {
                self.submit(permit, dir, &usr[..len], tried)
            }
            _ => {
                if let Ok(sg) = permit.sg_mut() {
                    sg.finish();
                }
                self.events.io_done(permit, econnaborted().to_errno());
            }
        }
    }

    /// The oldest request in flight on `path`, for the heartbeat's
    /// timeout: its age in ms and what it still waits for.
    pub(crate) fn oldest_pending(&self, path: &Path) -> Option<Stuck> {
        let now = support::now_ms();
        let me = path_key(path);
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                let state = s.state.load(Ordering::Acquire);
                (state & st::IN_FLIGHT != 0
                    && state & st::DONE == 0
                    && s.path.load(Ordering::Relaxed) == me)
                    .then(|| Stuck {
                        age_ms: now.saturating_sub(s.since_ms.load(Ordering::Relaxed)),
                        id: id as u32,
                        state,
                    })
            })
            .max_by_key(|s| s.age_ms)
    }

    /// Sends every request in flight on the closed `path` again on
    /// another path, or fails it (its QPs are drained, so every owner it
    /// posted is back).  A request whose send's owner is not back is still
    /// being submitted: its submitter ends it.
    pub(crate) fn fail_pending(self: &Arc<Self>, path: &Arc<Path>) {
        let me = path_key(path);
        let mut moved = 0u32;
        for (id, slot) in self.slots.iter().enumerate() {
            // SeqCst: pairs with a submitter's partly posted request (see
            // `request`), after the path's SeqCst `set_closed`.
            let s = slot.state.load(Ordering::SeqCst);
            if s & st::IN_FLIGHT == 0
                || s & st::TX_BACK == 0
                || slot.path.load(Ordering::Relaxed) != me
            {
                continue;
            }
            // Claimed only in the state read above: if the request ended
            // meanwhile and its permit carries another request (which gets
            // `TX_BACK` only with `DONE`), this fails and leaves it alone.
            if s & st::DONE == 0
                && slot
                    .state
                    .compare_exchange(s, s | st::DONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.failover(id as u32, path);
                moved += 1;
            }
        }
        if moved > 0 {
            pr_info!(
                "session {}: a path closed with {} requests in flight; they failed over to the other paths (or failed without one)\n",
                kernel::str::BStr::from_bytes(&self.name),
                moved
            );
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
        // Each retirement waits for its path's close work and unlists it.
        loop {
            let next = self.paths.lock().iter().next().cloned();
            match next {
                Some(slot) => slot.retire(),
                None => break,
            }
        }
        let files = self.sysfs.lock().take();
        drop(files);
        self.wq.flush();
    }
}

/// A path's identity for [`Slot::path`] (its address; never dereferenced).
pub(crate) fn path_key(path: &Path) -> usize {
    path as *const Path as usize
}
