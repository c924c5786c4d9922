// SPDX-License-Identifier: GPL-2.0

//! Sessions: the context shared by the listener and its sessions, the
//! sessions, and the listener's connect requests.

use crate::*;

/// State shared by the listener and every session it accepted.
#[pin_data]
pub(crate) struct Ctx {
    pub(crate) ops: Arc<dyn Ops>,
    pub(crate) params: Params,
    /// Runs the close work; flushed before the module goes.
    pub(crate) wq: Arc<OwnedQueue>,
    /// Every `Path` alive: the server's drop waits for all to have gone,
    /// since a late answer can hold one after its session went.
    pub(crate) paths: Arc<Drained>,
    #[pin]
    pub(crate) sessions: Mutex<Slots<Arc<Sess>>>,
    /// Notified when a session goes away.
    #[pin]
    pub(crate) gone: CondVar,
}

/// A client session.
///
/// Shared: the context lists it while it has paths, and every path refers to
/// it.  `inner` holds the paths and the user's handler.
#[pin_data]
pub struct Sess {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) paths_uuid: [u8; 16],
    pub(crate) params: Params,
    pub(crate) chunks: KVec<Arc<PageBlock>>,
    #[pin]
    pub(crate) inner: Mutex<SessInner>,
}

pub(crate) struct SessInner {
    /// Set when the session leaves `Ctx::sessions` (under both locks): a
    /// connect request that found it before must not add a path to it.
    pub(crate) removed: bool,
    pub(crate) paths: Slots<Arc<Path>>,
    pub(crate) paths_up: u32,
    pub(crate) user: Option<Arc<dyn SessOps>>,
    /// Name of the first path that came up (upstream's session name).
    pub(crate) name: Name,
    /// The session's sysfs device, from its first path's info request to
    /// its last path's close.
    pub(crate) sysfs: Option<KBox<sysfs::SessFiles>>,
}

/// A path name as the client sent it (checked: no NUL, `/` or `.`).
#[derive(Clone, Copy)]
pub(crate) struct Name {
    pub(crate) b: [u8; wire::NAME_MAX],
    pub(crate) n: usize,
}

impl Name {
    pub(crate) const fn empty() -> Self {
        Self {
            b: [0; wire::NAME_MAX],
            n: 0,
        }
    }

    pub(crate) fn set(&mut self, s: &[u8]) {
        let n = s.len().min(wire::NAME_MAX);
        self.b[..n].copy_from_slice(&s[..n]);
        self.n = n;
    }

    pub(crate) fn get(&self) -> &[u8] {
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

    pub(crate) fn user(&self) -> Option<Arc<dyn SessOps>> {
        self.inner.lock().user.clone()
    }
}

/// The listener's handler: connect requests.
pub(crate) struct Listener {
    pub(crate) ctx: Arc<Ctx>,
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
    pub(crate) fn name_taken(&self, name: &[u8], paths_uuid: &[u8; 16]) -> bool {
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

    pub(crate) fn get_or_create_sess(
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
                inner <- new_mutex!(SessInner { removed: false, paths: Slots::new(), paths_up: 0, user: None, name: Name::empty(), sysfs: None }),
            }),
            GFP_KERNEL,
        )?;
        sessions.insert(sess.clone())?;
        Ok(sess)
    }

    pub(crate) fn drop_sess_if_empty(&self, sess: &Arc<Sess>) {
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
    pub(crate) fn connect(self: &Arc<Self>, id: &IdRef<'_>, private_data: &[u8]) -> Result {
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
        let path =
            match found {
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
                    // One path per pair of addresses (upstream's "Path with same
                    // addr exists"): its sysfs directory is named by them.
                    if sg.paths.iter().any(|q| {
                        q.shown.clt.ip == p.shown.clt.ip && q.shown.srv.ip == p.shown.srv.ip
                    }) {
                        drop(sg);
                        self.drop_sess_if_empty(&sess);
                        peer_err!("Path with same addr exists\n");
                        return Err(EEXIST);
                    }
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
