// SPDX-License-Identifier: GPL-2.0

//! Connections: establishing one (rdma_cm steps) and its QP.

use crate::*;

/// One connection while it is being established, then for its life.
pub(crate) type Link = CmId<ConEvents>;

pub(crate) const C_IDLE: u8 = 0;
pub(crate) const C_ADDR: u8 = 1;
pub(crate) const C_ROUTE: u8 = 2;
pub(crate) const C_UP: u8 = 3;
pub(crate) const C_ERR: u8 = 4;

/// Handler of a connection's rdma_cm events: reports the connect steps to
/// the connecting thread, then errors to the path.
#[pin_data]
pub(crate) struct ConEvents {
    #[pin]
    pub(crate) st: Mutex<ConSt>,
    #[pin]
    pub(crate) cv: CondVar,
}

pub(crate) struct ConSt {
    pub(crate) phase: u8,
    pub(crate) err: i32,
    /// The server's geometry from its accept, checked.
    pub(crate) geo: Option<Geometry>,
    pub(crate) path: Option<Arc<Path>>,
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
    pub(crate) fn wait(&self, phase: u8) -> Result {
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

/// Connects a path to `ends`: its admin connection, which tells the server's
/// geometry (it must be `geo` if given: a session's paths share one), then
/// one connection per CPU.  `first`: the path creates the server's session
/// (`first_conn`), else it joins the session `paths_uuid` names.
pub(crate) fn connect_path(
    ends: Endpoints,
    paths_uuid: [u8; 16],
    first: bool,
    geo: Option<&Geometry>,
) -> Result<(Arc<Pd>, KVec<Link>, Geometry)> {
    let mut path_uuid = [0u8; 16];
    support::random_bytes(&mut path_uuid);
    let con_num = (support::nr_cpu_ids() + 1).min(wire::MAX_CON_NUM as u32) as u16;
    let req = |cid: u16| ConnReq::new(cid, con_num, 0, path_uuid, paths_uuid, first).to_bytes();
    // The geometry is checked when the answer arrives (`ConEvents`), by
    // `ConnRsp::geometry`: every size derived from it is bounded.
    let (admin, g, pd) = connect(ends, &req(0), None, None)?;
    let g = g.ok_or(EINVAL)?;
    if geo.is_some_and(|want| *want != g) {
        support::peer_err!("the server's geometry differs on this path: {:?}\n", g);
        return Err(EINVAL);
    }
    let mut links = KVec::with_capacity(con_num as usize, GFP_KERNEL)?;
    links.push(admin, GFP_KERNEL)?;
    for cid in 1..con_num {
        let (l, _, _) = connect(ends, &req(cid), Some(&g), Some(&pd))?;
        links.push(l, GFP_KERNEL)?;
    }
    Ok((pd, links, g))
}

/// Connects one connection; for cid 0 (`geo` is `None`) also returns the
/// server's geometry and the PD every other connection shares.
pub(crate) fn connect(
    ends: Endpoints,
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
        id.resolve_addr(ends.src, ends.dst, CONNECT_STEP_MS)?;
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
pub(crate) fn io_send_sge(dev: rdma::device::Device<'_>) -> u32 {
    dev.max_send_sge().min(MAX_SEND_SGE as u32)
}
