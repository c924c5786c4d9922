// SPDX-License-Identifier: GPL-2.0

//! Paths: connecting, the info exchange, heartbeats and the close work.

use crate::*;

/// One path of a session.
#[pin_data]
pub(crate) struct Path {
    pub(crate) sess: Arc<Sess>,
    /// The configured path this is the current connection of.
    pub(crate) slot: Arc<PathSlot>,
    pub(crate) con_num: u16,
    pub(crate) pd: Arc<Pd>,
    /// MR of each permit, for its requests' registrations.
    pub(crate) mrs: KVec<SgMr>,
    /// SGEs of one send on the IO connections.
    pub(crate) send_sge: u32,
    /// The server's chunk of each permit: address and (changing) rkey.
    pub(crate) raddr: KVec<AtomicU64Pair>,
    /// Per connection: the rkey the server's last SEND_WITH_INV revoked
    /// (`INV_SEEN | rkey`), not yet matched with an answer, or 0.  Only the
    /// connection's CQ poller (one work item) touches its entry.
    pub(crate) inv_seen: KVec<AtomicU64>,
    /// Per connection: when `inv_seen` was recorded (ns).
    pub(crate) inv_at: KVec<AtomicU64>,
    /// Requests in flight on it that the min-inflight policy counted.
    pub(crate) inflight: AtomicU32,
    /// Counted in its session's connected paths (`Sess::up`, under its
    /// lock).
    pub(crate) counted: AtomicBool,
    /// Its close work counted it down (under `Sess::up`): it is not
    /// counted up any more.
    pub(crate) downed: AtomicBool,
    /// Its close work ended (`PathSlot::gone` is notified).
    pub(crate) done: AtomicBool,
    /// State, connections (cid 0 is the admin connection) and heartbeat.
    #[pin]
    pub(crate) core: PathCore<Path>,
    #[pin]
    pub(crate) close_w: Work<Path>,
}

/// Marks a valid entry of `Path::inv_seen`.
pub(crate) const INV_SEEN: u64 = 1 << 32;

/// A remote chunk's address and key.
pub(crate) struct AtomicU64Pair {
    pub(crate) addr: AtomicU64,
    pub(crate) rkey: AtomicU32,
}

rtrs_core::close_work!(Path, close_w);

impl Path {
    pub(crate) fn new(slot: &Arc<PathSlot>, pd: Arc<Pd>, links: KVec<Link>) -> Result<Arc<Self>> {
        let sess = &slot.sess;
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
        if con_num < 2 {
            return Err(EINVAL);
        }
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
                slot: slot.clone(),
                con_num,
                send_sge: io_send_sge(pd.device()),
                pd,
                mrs,
                raddr,
                inv_seen,
                inv_at,
                inflight: AtomicU32::new(0),
                counted: AtomicBool::new(false),
                downed: AtomicBool::new(false),
                done: AtomicBool::new(false),
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

    pub(crate) fn rbuf(&self, id: u32) -> (u64, u32) {
        self.raddr.get(id as usize).map_or((0, 0), |r| {
            (
                r.addr.load(Ordering::Acquire),
                r.rkey.load(Ordering::Acquire),
            )
        })
    }

    /// Posts receives, exchanges the info messages, starts the heartbeat.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
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
        PathCore::send_buf(self, buf, InfoReq::SIZE, "info request")?;
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
        self.slot
            .stats
            .reconnects_ok
            .fetch_add(1, Ordering::Relaxed);
        PathCore::start_heartbeat(self, &self.sess.wq)
    }

    /// Posts a receive on `cid`: with a buffer for the server's rkey
    /// messages if it sends them, empty otherwise.  At path setup only:
    /// each receive is then posted again by its completion.
    pub(crate) fn post_recv(self: &Arc<Self>, cid: u16) -> Result {
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
    pub(crate) fn repost_recv(&self, owner: KBox<Posted<Recv>>) -> Result {
        let cid = owner.get().cid;
        self.core.post_recv(cid, owner, |o| match &o.buf {
            Some(b) => Ok(Some(b.sge(0, wire::RkeyRsp::SIZE)?)),
            None => Ok(None),
        })
    }

    /// The server's SEND_WITH_INV on `cid` revoked our key `rkey`; the
    /// answer it precedes (same chain, same QP, so the next receive) says
    /// which request it was for.
    pub(crate) fn remote_inv(&self, cid: u16, rkey: u32) {
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
    pub(crate) fn io_rsp(self: &Arc<Self>, cid: u16, msg_id: u32, errno: i32, with_inval: bool) {
        let sess = &self.sess;
        self.slot.stats.count_migration(cid, self.con_num);
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
        // Only the path the request went out on may answer it: another
        // path's key checks and invalidation would leave the request's own
        // registration valid while its pages go back to the user.
        if pre & st::IN_FLIGHT != 0 && slot.path.load(Ordering::Relaxed) != path_key(self) {
            support::peer_err!("answer for request {} on another path\n", msg_id);
            return self.close();
        }
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
    pub(crate) fn local_inv(self: &Arc<Self>, cid: u16, id: u32) {
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
    pub(crate) fn close_work(self: Arc<Self>) {
        let links = self.core.stop();
        for l in links.iter() {
            l.handler().st.lock().path = None;
        }
        drop(links);
        self.core.set_closed();
        let sess = self.sess.clone();
        // The last connected path tells the user (`disconnected`) before
        // its requests fail, as upstream: a user that queues requests
        // without a path then knows why they come back.
        let was_up = sess.path_down(&self);
        // Its requests go to another path (or fail) while it is still
        // listed: none of them ends after its slot is free for a new path.
        sess.fail_pending(&self);
        // An established path that failed reconnects later.
        self.slot.closed(&self, was_up);
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
            .oldest_pending(self)
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
pub(crate) struct InfoWait {
    /// [`INFO_PENDING`], then 0 or a negative errno.
    pub(crate) res: AtomicI32,
    pub(crate) wq: WaitQueue,
}

/// The info response has not been handled yet.
pub(crate) const INFO_PENDING: i32 = 1;

impl InfoWait {
    pub(crate) fn set(&self, r: Result) {
        let v = match r {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        self.res.store(v, Ordering::Release);
        self.wq.wake_all();
    }
}

pub(crate) struct InfoRecv {
    pub(crate) path: Arc<Path>,
    pub(crate) buf: DmaBuf,
    pub(crate) wait: Arc<InfoWait>,
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
