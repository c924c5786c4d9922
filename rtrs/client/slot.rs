// SPDX-License-Identifier: GPL-2.0

//! Path slots: a path as the user configured it (its destination, sysfs
//! directory and statistics), from its add to its removal, across the
//! connections (`Path`s) that reconnecting gives it one after another.

use crate::*;

/// Delay before reconnecting a path that failed: upstream RNBD's
/// `RECONNECT_DELAY` (30 s) plus rtrs-clt's `RTRS_RECONNECT_BACKOFF`
/// (1 s, slept at the start of each attempt).
pub(crate) const RECONNECT_DELAY_MS: u32 = 31_000;
/// Random extra delay, so that paths failing together do not all reconnect
/// at once (upstream's `RTRS_RECONNECT_SEED`, in ms).
const RECONNECT_JITTER_MS: u32 = 8;

/// What a slot does when its connection fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reconnects on its own (after [`RECONNECT_DELAY_MS`]).
    Auto,
    /// Stays down until `reconnect` is written: disconnected by the user,
    /// or `max_reconnect_attempts` ran out.
    Manual,
    /// Being removed (`remove_path`, or the session closes).
    Removed,
}

/// A slot's mutable state, under [`PathSlot::st`].
pub(crate) struct SlotSt {
    /// The current connection, from its listing to its close work's end.
    pub(crate) cur: Option<Arc<Path>>,
    pub(crate) mode: Mode,
    /// Failed reconnects since the last success (or `reconnect`).
    pub(crate) attempts: u32,
    /// The reconnect timer, from the slot's listing to its retirement
    /// (dropped outside the lock: the drop waits for a running tick).
    pub(crate) timer: Option<Timer<ReconnectTick>>,
}

/// A path of a session as configured: its index in the session's tables
/// (fixed), destination, sysfs directory and statistics, and its current
/// connection.
///
/// # Locking
///
/// `attempt` (one connect at a time) → `st` → the session's `up`.  The
/// session's `paths` lock is taken with none of them held.
///
/// # Lifetime
///
/// Listed in the session's `paths` from its first connect to its
/// retirement (`remove_path` or the session's close), which drops its
/// timer and sysfs directory: both refer back to it.
#[pin_data]
pub(crate) struct PathSlot {
    pub(crate) sess: Arc<Sess>,
    pub(crate) idx: usize,
    pub(crate) ends: Endpoints,
    /// Its connections may create the server's session (upstream's
    /// `for_new_clt`: the session's first path), e.g. after a server
    /// restart.
    pub(crate) first: bool,
    /// Its ends and device at its first connect, for sysfs.
    pub(crate) shown: PathShown,
    pub(crate) stats: PathStats,
    /// Its sysfs directory, from its first connect to its retirement.
    pub(crate) sysfs: AtomicBox<PathFiles>,
    #[pin]
    pub(crate) st: Mutex<SlotSt>,
    /// Notified (under `st`) when a connection's close work ended.
    #[pin]
    pub(crate) gone: CondVar,
    #[pin]
    pub(crate) attempt: Mutex<()>,
}

/// The reconnect timer's handler.
pub(crate) struct ReconnectTick {
    slot: Arc<PathSlot>,
}

impl Tick for ReconnectTick {
    fn tick(&self) {
        self.slot.reconnect_tick();
    }
}

impl PathSlot {
    /// Lists a new slot for `ends` in `sess` and makes the connections
    /// `links` its first connection; the slot is retired if that does not
    /// start.  Sleeps.
    pub(crate) fn open(
        sess: &Arc<Sess>,
        ends: Endpoints,
        first: bool,
        pd: Arc<Pd>,
        links: KVec<Link>,
    ) -> Result<Arc<Self>> {
        let admin = links.first().ok_or(EINVAL)?;
        let (src, real_dst) = (
            admin.addr(false).ok_or(EINVAL)?,
            admin.addr(true).ok_or(EINVAL)?,
        );
        let shown = PathShown::new(src, real_dst, pd.device(), admin.port_num())?;
        let stats = PathStats::new()?;
        let slot = {
            let mut g = sess.paths.lock();
            // Under the lock `close` takes its list of paths in.
            if sess.closing.load(Ordering::Acquire) {
                return Err(enotconn());
            }
            let idx = g.next_free();
            if idx >= MAX_PATHS {
                return Err(EINVAL);
            }
            let slot = Arc::pin_init(
                pin_init!(PathSlot {
                    sess: sess.clone(),
                    idx,
                    ends,
                    first,
                    shown,
                    stats,
                    sysfs: AtomicBox::empty(),
                    st <- new_mutex!(SlotSt {
                        cur: None,
                        mode: Mode::Auto,
                        attempts: 0,
                        timer: None,
                    }),
                    gone <- new_condvar!(),
                    attempt <- new_mutex!(()),
                }),
                GFP_KERNEL,
            )?;
            let timer = Timer::new(
                Arc::new(ReconnectTick { slot: slot.clone() }, GFP_KERNEL)?,
                &sess.wq,
            )?;
            slot.st.lock().timer = Some(timer);
            if let Err(e) = g.insert(slot.clone()) {
                drop(g);
                let t = slot.st.lock().timer.take();
                drop(t);
                return Err(e);
            }
            sess.live_end.fetch_max(idx + 1, Ordering::Release);
            slot
        };
        let started = {
            let _a = slot.attempt.lock();
            slot.start(pd, links)
        };
        if let Err(e) = started {
            slot.retire();
            return Err(e);
        }
        let files = {
            let g = sess.sysfs.lock();
            match g.as_ref() {
                Some(s) => sysfs::path_files(&slot, s),
                None => Err(ENODEV),
            }
        };
        match files.and_then(|f| slot.sysfs.put(f).map_err(|_| EBUSY)) {
            Ok(()) => {
                // A retirement (the session's close) that ran meanwhile
                // did not see the directory: it goes here then.
                if slot.st.lock().mode == Mode::Removed {
                    drop(slot.sysfs.take());
                    return Err(enotconn());
                }
                Ok(slot)
            }
            Err(e) => {
                pr_err!("path sysfs directory not created: {:?}\n", e);
                slot.retire();
                Err(e)
            }
        }
    }

    /// Makes the connections `links` the slot's connection and starts it
    /// (info exchange, heartbeat); counts it up in its session.  Call with
    /// `attempt` held and no connection current.  Sleeps.
    fn start(self: &Arc<Self>, pd: Arc<Pd>, links: KVec<Link>) -> Result {
        let path = Path::new(self, pd, links)?;
        let listed = {
            let mut g = self.st.lock();
            // Not after a `disconnect` or a removal meanwhile, and not a
            // connection whose close work already ran (its connections can
            // fail it from their events before it is listed; `closed`
            // marks it done under this lock).
            let ok = g.mode == Mode::Auto
                && g.cur.is_none()
                && !path.done.load(Ordering::Acquire)
                && !self.sess.closing.load(Ordering::Acquire);
            if ok {
                match KBox::new(path.clone(), GFP_KERNEL) {
                    Ok(b) => match self.sess.live.get(self.idx).map(|l| l.publish(b)) {
                        Some(Ok(())) => {
                            g.cur = Some(path.clone());
                            Ok(())
                        }
                        _ => Err(EBUSY),
                    },
                    Err(e) => Err(e.into()),
                }
            } else {
                Err(enotconn())
            }
        };
        let r = listed.and_then(|()| path.start());
        if let Err(e) = r {
            // The connections refer back to the path: only its close work
            // breaks that cycle.
            path.close();
            self.wait_closed(&path);
            return Err(e);
        }
        if !self.sess.path_up(&path) {
            // It failed right after its start: its close work is running.
            self.wait_closed(&path);
            return Err(enotconn());
        }
        Ok(())
    }

    /// Connects and starts a new connection to the slot's destination.
    /// Call with `attempt` held.  Sleeps.
    fn connect_once(self: &Arc<Self>) -> Result {
        if self.sess.closing.load(Ordering::Acquire) {
            return Err(enotconn());
        }
        let (pd, links, _) = connect_path(
            self.ends,
            self.sess.paths_uuid,
            self.first,
            Some(&self.sess.geo),
        )?;
        self.start(pd, links)
    }

    /// The current connection if it is connected.
    pub(crate) fn connected(&self) -> Option<Arc<Path>> {
        self.st
            .lock()
            .cur
            .clone()
            .filter(|p| p.core.state() == State::Connected)
    }

    /// Whether its current connection is connected.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected().is_some()
    }

    /// Waits until the close work of `path` (one of the slot's
    /// connections) ended.  Sleeps.
    pub(crate) fn wait_closed(&self, path: &Path) {
        let mut g = self.st.lock();
        let _ = wait::until(&self.gone, &mut g, None, |_| {
            path.done.load(Ordering::Acquire)
        });
    }

    /// Closes the current connection, if any, and waits for its close
    /// work.  Sleeps.
    fn close_cur(&self) {
        let cur = self.st.lock().cur.clone();
        if let Some(p) = cur {
            p.close();
            self.wait_closed(&p);
        }
    }

    /// The close work of `path`, one of its connections, drained it and
    /// failed its requests over: it is no longer current; an established
    /// connection that failed on its own is reconnected later.  Sleeps.
    pub(crate) fn closed(&self, path: &Arc<Path>, was_up: bool) {
        let mut g = self.st.lock();
        if g.cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, path)) {
            g.cur = None;
            // Waits until no request can pick it any more (a grace period).
            if let Some(live) = self.sess.live.get(self.idx..=self.idx) {
                RcuBox::take_all(live, drop);
            }
        }
        if was_up && g.mode == Mode::Auto && !self.sess.closing.load(Ordering::Acquire) {
            g.attempts = 0;
            if let Some(t) = g.timer.as_ref() {
                t.arm(reconnect_delay());
            }
            pr_info!(
                "session {}: path {} down, reconnecting in {} s\n",
                kernel::str::BStr::from_bytes(&self.sess.name),
                kernel::str::BStr::from_bytes(&self.shown.name),
                RECONNECT_DELAY_MS / 1000
            );
        }
        path.done.store(true, Ordering::Release);
        drop(g);
        self.gone.notify_all();
    }

    /// The reconnect timer fired: one attempt, and the next one armed if it
    /// fails, until `max_reconnect_attempts` (-1: no limit) ran out.
    fn reconnect_tick(self: &Arc<Self>) {
        let _a = self.attempt.lock();
        {
            let mut g = self.st.lock();
            if g.mode != Mode::Auto || g.cur.is_some() || self.sess.closing.load(Ordering::Acquire)
            {
                return;
            }
            let max = self.sess.max_reconnect.load(Ordering::Relaxed);
            if max >= 0 && g.attempts >= max as u32 {
                g.mode = Mode::Manual;
                pr_info!(
                    "session {}: path {}: no reconnect after {} attempts; write 1 to its reconnect file to retry\n",
                    kernel::str::BStr::from_bytes(&self.sess.name),
                    kernel::str::BStr::from_bytes(&self.shown.name),
                    g.attempts
                );
                return;
            }
            g.attempts = g.attempts.saturating_add(1);
        }
        if let Err(e) = self.connect_once() {
            self.attempt_failed(e);
        }
    }

    /// Counts a failed reconnect and arms the next, if the slot still
    /// reconnects on its own.
    fn attempt_failed(&self, e: Error) {
        self.stats.reconnects_failed.fetch_add(1, Ordering::Relaxed);
        let g = self.st.lock();
        let again = g.mode == Mode::Auto && g.cur.is_none();
        if again {
            if let Some(t) = g.timer.as_ref() {
                t.arm(reconnect_delay());
            }
        }
        support::peer_warn!(
            "session {}: path {}: reconnect failed: {:?}{}\n",
            kernel::str::BStr::from_bytes(&self.sess.name),
            kernel::str::BStr::from_bytes(&self.shown.name),
            e,
            if again { "; trying again later" } else { "" }
        );
    }

    /// `reconnect` (sysfs): closes the current connection if any and
    /// connects again now, once (whatever `max_reconnect_attempts` says);
    /// the slot reconnects on its own again afterwards.  `ENOTCONN` if it
    /// is not connected then (as upstream).  Sleeps.
    pub(crate) fn reconnect_now(self: &Arc<Self>) -> Result {
        {
            let mut g = self.st.lock();
            if g.mode == Mode::Removed {
                return Err(enotconn());
            }
            g.mode = Mode::Auto;
            g.attempts = 0;
        }
        self.close_cur();
        let _a = self.attempt.lock();
        {
            let g = self.st.lock();
            if let Some(c) = g.cur.as_ref() {
                // Another attempt got there first.
                return if c.core.state() == State::Connected {
                    Ok(())
                } else {
                    Err(enotconn())
                };
            }
            if g.mode != Mode::Auto {
                return Err(enotconn());
            }
        }
        match self.connect_once() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.attempt_failed(e);
                Err(enotconn())
            }
        }
    }

    /// `disconnect` (sysfs): closes the current connection; the slot stays,
    /// disconnected, until `reconnect`.  Sleeps.
    pub(crate) fn disconnect(&self) {
        {
            let mut g = self.st.lock();
            if g.mode == Mode::Auto {
                g.mode = Mode::Manual;
            }
        }
        self.close_cur();
    }

    /// Removes the slot (`remove_path`, or the session's close): no more
    /// reconnects, the current connection closed, unlisted, its sysfs
    /// directory removed (from a store in it, call `remove_self` first).
    /// Sleeps.
    pub(crate) fn retire(self: &Arc<Self>) {
        let timer = {
            let mut g = self.st.lock();
            g.mode = Mode::Removed;
            g.timer.take()
        };
        // Waits for a running attempt; none starts after.
        drop(timer);
        // An attempt from sysfs may still be connecting: it sees `Removed`
        // before it lists its connection, so after it no connection comes.
        drop(self.attempt.lock());
        self.close_cur();
        self.sess.unlist(self);
        drop(self.sysfs.take());
    }
}

/// [`RECONNECT_DELAY_MS`] plus a random jitter.
fn reconnect_delay() -> u32 {
    let mut b = [0u8; 1];
    support::random_bytes(&mut b);
    RECONNECT_DELAY_MS + u32::from(b[0]) % RECONNECT_JITTER_MS
}
