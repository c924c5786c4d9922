// SPDX-License-Identifier: GPL-2.0

//! Paths: state, connections, close work, setup, and the receives of
//! requests and of the info request.

use crate::*;

/// One path of a session.
#[pin_data]
pub(crate) struct Path {
    pub(crate) sess: Arc<Sess>,
    pub(crate) uuid: [u8; 16],
    pub(crate) con_num: u16,
    pub(crate) pd: Arc<Pd>,
    /// One MR per chunk, index = buffer id.
    pub(crate) mrs: KVec<BlockMr>,
    /// A request owns its chunk from its arrival to its answer's completion.
    pub(crate) busy: KVec<AtomicBool>,
    /// Per chunk: the work requests and buffers of a request on it,
    /// preallocated.  A request takes a set when it arrives and its guard
    /// gives it back when its answer completed, both without a lock.
    pub(crate) res: KVec<[AtomicBox<ChunkRes>; RES_PER_CHUNK]>,
    pub(crate) mem_bits: u32,
    /// Counted in the session's `paths_up`; changed under the session's lock.
    pub(crate) established: AtomicBool,
    /// Chunks owned by requests.
    pub(crate) inflight: Arc<Drained>,
    /// State, connections (cid 0 is the admin connection) and heartbeat.
    #[pin]
    pub(crate) core: PathCore<Path>,
    #[pin]
    pub(crate) setup: Mutex<PathSetup>,
    /// The close work, allocated with the path so that closing cannot fail.
    #[pin]
    pub(crate) close_w: Work<Path>,
    /// Drops the last reference in process context: see [`LastRef`].
    #[pin]
    pub(crate) release_w: Work<Path, RELEASE>,
    /// Its ends and device, for sysfs.
    pub(crate) shown: PathShown,
    /// Requests and bytes (`stats/rdma`).
    pub(crate) io_stats: IoStats,
    /// Its sysfs directory, from its info request to its close.
    pub(crate) sysfs: AtomicBox<sysfs::PathFiles>,
    /// Counted in the server's `Ctx::paths`.
    pub(crate) _alive: Counted,
}

rtrs_core::close_work!(Path, close_w);

/// The id of [`Path::release_w`] among the path's work items.
pub(crate) const RELEASE: u64 = 1;

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

/// What a path keeps from its setup.
pub(crate) struct PathSetup {
    pub(crate) name: Name,
    /// Closes the path if it is still connecting when it fires.
    pub(crate) deadline: Option<Timer<SetupTick>>,
}

/// A path's setup deadline: a client that connected some connections and
/// never sent its info request holds the path, its MRs and (for the first
/// path) the session's chunk pool; this closes such a path.
pub(crate) struct SetupTick {
    pub(crate) path: Arc<Path>,
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
pub(crate) struct ConEvents {
    pub(crate) path: Arc<Path>,
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
            self.inflight.count(),
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
    pub(crate) fn params(&self) -> &Params {
        &self.sess.params
    }

    pub(crate) fn state(&self) -> State {
        self.core.state()
    }

    /// Tears the path down: disconnect, wait for the requests in flight, drop
    /// the connections (which drains their QPs), tell the session.
    pub(crate) fn close_work(self: Arc<Self>) {
        // No more heartbeats or setup deadline (dropping a timer waits for
        // a running tick).
        let deadline = self.setup.lock().deadline.take();
        drop(deadline);
        let cons = self.core.stop();
        // Requests in the user's hands are answered (or dropped) soon.  One
        // that is not after a minute is logged and no longer waited for
        // (upstream waits forever): its guard then gives its reference
        // back through `release_w`, in process context.
        let mut waited_s = 0;
        while !self.inflight.wait_idle(Some(30_000)) {
            waited_s += 30;
            peer_err!(
                "path close: {} requests still in flight after {} s\n",
                self.inflight.count(),
                waited_s
            );
            if waited_s >= 60 {
                break;
            }
        }
        drop(cons);
        self.core.set_closed();
        // Waits for running handlers: none waits for this work.
        drop(self.sysfs.take());
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
                // No handler on the session's device (it has `paths/`
                // only), so dropping it here waits for nothing.
                drop(g.sysfs.take());
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
    pub(crate) fn post_recv_io(self: &Arc<Self>, cid: u16) -> Result {
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
    pub(crate) fn repost_recv_io(&self, owner: KBox<Posted<IoRecv>>) -> Result {
        let cid = owner.get().cid;
        self.core.post_recv(cid, owner, |_| Ok(None))
    }

    /// A request arrived in chunk `payload` names.
    pub(crate) fn io_req(self: &Arc<Self>, cid: u16, payload: u32) {
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
    pub(crate) fn info_req(self: &Arc<Self>, name: &[u8]) -> Result {
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
            // Its directory, in the session's device (made with the first
            // path).  The close work removes both under this lock too.
            if g.sysfs.is_none() {
                g.sysfs = Some(sysfs::sess_files(name)?);
            }
            let files = match g.sysfs.as_ref() {
                Some(s) => sysfs::path_files(self, s)?,
                None => return Err(EINVAL),
            };
            if self.sysfs.put(files).is_err() {
                return Err(EBUSY);
            }
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
        PathCore::send_buf(self, buf, len, "Sess info response send")
    }
}

/// The receive of the info request on the admin connection.
pub(crate) struct InfoRecv {
    pub(crate) path: Arc<Path>,
    pub(crate) buf: DmaBuf,
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
pub(crate) struct IoRecv {
    pub(crate) path: Arc<Path>,
    pub(crate) cid: u16,
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

impl Path {
    pub(crate) fn new(sess: &Arc<Sess>, id: &IdRef<'_>, req: &ConnReq) -> Result<Arc<Self>> {
        let dev = id.device().ok_or(ENODEV)?;
        let shown = PathShown::new(
            id.addr(true).ok_or(EINVAL)?,
            id.addr(false).ok_or(EINVAL)?,
            dev,
            id.port_num(),
        )?;
        let io_stats = IoStats::new()?;
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
                shown,
                io_stats,
                sysfs: AtomicBox::empty(),
                _alive: Counted::new(&sess.ctx.paths),
            }),
            GFP_KERNEL,
        )
    }

    /// Arms the setup deadline (see [`SetupTick`]).
    pub(crate) fn arm_setup_deadline(self: &Arc<Self>) -> Result {
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
    pub(crate) fn add_con(self: &Arc<Self>, id: &IdRef<'_>, cid: u16) -> Result {
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
    pub(crate) fn accept_con(
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
