// SPDX-License-Identifier: GPL-2.0

//! RDMA connection manager ids and their RC queue pairs.
//!
//! C header: [`include/rdma/rdma_cm.h`](srctree/include/rdma/rdma_cm.h)

use crate::bindings;
use crate::cq::Cq;
use crate::device::Device;
use crate::mr::{Access, FrMr};
use crate::pages::BlockMr;
use crate::pd::Pd;
use crate::sg::{SgMr, SgTable};
use crate::wr::{Posted, Sge, CHAIN_CQE};
use core::cell::Cell;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

pub use proto::addr::Addr;

/// An IPv4 or IPv6 address (with its scope) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAddr {
    /// The address.
    pub ip: Addr,
    /// Port, host order.
    pub port: u16,
}

/// A `struct sockaddr` of either family, as rdma_cm takes it (it reads the
/// family, then the size that family has).
#[repr(C)]
union RawAddr {
    v4: bindings::sockaddr_in,
    v6: bindings::sockaddr_in6,
}

impl SockAddr {
    /// The wildcard address of IPv6 with `port`: bound by a listener, it
    /// takes IPv4 connections too (rdma_cm's default, `bindv6only` 0), as
    /// upstream's server listens.
    pub fn any6(port: u16) -> Self {
        SockAddr {
            ip: Addr::V6([0; 16], 0),
            port,
        }
    }

    fn raw(&self) -> RawAddr {
        match self.ip {
            Addr::V4(ip) => RawAddr {
                v4: bindings::sockaddr_in {
                    sin_family: bindings::AF_INET as _,
                    sin_port: self.port.to_be(),
                    sin_addr: bindings::in_addr {
                        s_addr: u32::from_ne_bytes(ip),
                    },
                    ..Default::default()
                },
            },
            Addr::V6(ip, scope) => {
                let mut v6 = bindings::sockaddr_in6 {
                    sin6_family: bindings::AF_INET6 as _,
                    sin6_port: self.port.to_be(),
                    sin6_scope_id: scope,
                    ..Default::default()
                };
                v6.sin6_addr.in6_u.u6_addr8 = ip;
                RawAddr { v6 }
            }
        }
    }
}

/// A path's two ends as the user gave them: the destination, and the local
/// address to bind, if any (else the routing table picks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Local address; its port is not used.
    pub src: Option<SockAddr>,
    /// Destination.
    pub dst: SockAddr,
}

impl Endpoints {
    /// A parsed `[src@]dst` path with the destination `port`.
    pub fn new(p: &proto::addr::PathAddr, port: u16) -> Self {
        Endpoints {
            src: p.src.map(|ip| SockAddr { ip, port: 0 }),
            dst: SockAddr { ip: p.dst, port },
        }
    }
}

/// Kind of a connection manager event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(missing_docs)] // One variant per `RDMA_CM_EVENT_*`, same meaning.
pub enum EventKind {
    AddrResolved,
    AddrError,
    RouteResolved,
    RouteError,
    ConnectRequest,
    ConnectResponse,
    ConnectError,
    Unreachable,
    Rejected,
    Established,
    Disconnected,
    DeviceRemoval,
    AddrChange,
    TimewaitExit,
    /// Any other `rdma_cm_event_type` value.
    Other(u32),
}

impl EventKind {
    fn from_raw(v: bindings::rdma_cm_event_type) -> Self {
        use EventKind::*;
        match v {
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ADDR_RESOLVED => AddrResolved,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ADDR_ERROR => AddrError,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ROUTE_RESOLVED => RouteResolved,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ROUTE_ERROR => RouteError,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_CONNECT_REQUEST => ConnectRequest,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_CONNECT_RESPONSE => ConnectResponse,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_CONNECT_ERROR => ConnectError,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_UNREACHABLE => Unreachable,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_REJECTED => Rejected,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ESTABLISHED => Established,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_DISCONNECTED => Disconnected,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_DEVICE_REMOVAL => DeviceRemoval,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_ADDR_CHANGE => AddrChange,
            bindings::rdma_cm_event_type_RDMA_CM_EVENT_TIMEWAIT_EXIT => TimewaitExit,
            o => Other(o),
        }
    }
}

/// One connection manager event.
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The event's status (0 or a negative errno; for `Rejected`, the reason).
    pub status: i32,
    /// Private data of a connect request, response or reject; empty otherwise.
    /// Its length is what the RDMA core reports, which for IB/RoCE is the
    /// transport's fixed size, not the peer's: parse it as untrusted input.
    pub private_data: &'a [u8],
}

/// Receiver of connection manager events for the ids created with it.
///
/// Runs in process context (it may sleep), serialised per id, with the id's
/// handler lock held (for a connect request, the listener's too).  Hence:
/// it must not drop a [`CmId`] or call [`CmId::connect`] for the id it runs
/// for, and nobody may drop a `CmId` while holding a lock its handler takes.
/// On [`EventKind::DeviceRemoval`] the owner must drop the id soon, from
/// another context: the device's removal waits for it.
pub trait Handler: Send + Sync + 'static {
    /// Handles `ev` on `id`.  For [`EventKind::ConnectRequest`] on a listener,
    /// `id` is the new connection's id: adopt it with [`IdRef::adopt`], or it
    /// is rejected and destroyed when this returns.
    fn event(&self, id: &IdRef<'_>, ev: &Event<'_>);
}

/// Queue sizes for [`CmId::create_qp`].
#[derive(Clone, Copy, Debug)]
pub struct QpCaps {
    /// Send queue depth.
    pub max_send_wr: u32,
    /// Receive queue depth.
    pub max_recv_wr: u32,
    /// SGEs per send work request.
    pub max_send_sge: u32,
    /// SGEs per receive work request.
    pub max_recv_sge: u32,
}

/// Connection parameters for connect and accept.
pub struct ConnParam<'a> {
    /// Private data sent to the peer (at most 56 bytes for connect on RoCE).
    pub private_data: &'a [u8],
    /// Outstanding RDMA READs the peer may issue to us.
    pub responder_resources: u8,
    /// Outstanding RDMA READs we may issue.
    pub initiator_depth: u8,
    /// Transport retries (0-7).
    pub retry_count: u8,
    /// Receiver-not-ready retries (7: forever).
    pub rnr_retry_count: u8,
}

impl ConnParam<'_> {
    fn raw(&self) -> Result<bindings::rdma_conn_param> {
        let len = u8::try_from(self.private_data.len()).map_err(|_| EINVAL)?;
        Ok(bindings::rdma_conn_param {
            private_data: self.private_data.as_ptr().cast(),
            private_data_len: len,
            responder_resources: self.responder_resources,
            initiator_depth: self.initiator_depth,
            retry_count: self.retry_count,
            rnr_retry_count: self.rnr_retry_count,
            ..Default::default()
        })
    }
}

/// One operation of a send-queue chain.
///
/// Its SGEs and MR are borrowed from the request's owner (see
/// [`Qp::post_send`]), which keeps them alive until the chain completes.
#[expect(missing_docs)] // The fields are documented on their variants.
#[derive(Clone, Copy)]
pub enum SendOp<'a> {
    /// SEND of `sge` (or of nothing).
    Send { sge: Option<Sge<'a>> },
    /// RDMA WRITE of `sge` to the peer's `remote_addr`/`rkey`, with immediate
    /// data `imm` (host order).
    WriteImm {
        sge: Option<Sge<'a>>,
        remote_addr: u64,
        rkey: u32,
        imm: u32,
    },
    /// RDMA WRITE of `sge` to the peer's `remote_addr`/`rkey`.
    Write {
        sge: Sge<'a>,
        remote_addr: u64,
        rkey: u32,
    },
    /// SEND of `sge` (or of nothing) with immediate data `imm` (host order).
    SendImm { sge: Option<Sge<'a>>, imm: u32 },
    /// Empty SEND that invalidates the peer's `rkey` on arrival.
    SendInv { rkey: u32 },
    /// Fast registration of `mr` with `access`.
    Reg { mr: &'a FrMr, access: Access },
    /// Fast registration of a page block's MR with its current key.
    RegBlock { mr: &'a BlockMr, access: Access },
    /// Fast registration of a request's pages loaded by [`SgMr::map`].
    RegSg { mr: &'a SgMr, access: Access },
    /// RDMA WRITE WITH IMM of a request's data followed by `hdr` (the
    /// request's header, which lands after the data), to the peer's
    /// `remote_addr`/`rkey`, with immediate data `imm` (host order).
    WriteImmData {
        data: Data<'a>,
        hdr: Sge<'a>,
        remote_addr: u64,
        rkey: u32,
        imm: u32,
    },
    /// Local invalidation of `rkey`.
    LocalInv { rkey: u32 },
}

/// Where the data of [`SendOp::WriteImmData`] comes from.
#[derive(Clone, Copy)]
pub enum Data<'a> {
    /// No data.
    None,
    /// The mapped entries of a table, one SGE each (with the header, at
    /// most the QP's `max_send_sge` and [`MAX_SEND_SGE`]).
    Sg(&'a SgTable),
    /// One SGE over a registration made earlier in the chain.
    Mr(&'a SgMr),
}

/// Longest send chain.
pub const MAX_CHAIN: usize = 4;

/// Most SGEs of one work request we post.
pub const MAX_SEND_SGE: usize = 32;

/// SGEs of a whole chain.
const CHAIN_SGES: usize = MAX_SEND_SGE + MAX_CHAIN;

/// A send chain of up to [`MAX_CHAIN`] operations whose length is only known
/// at run time (see [`Qp::post_chain`]).
#[derive(Clone, Copy)]
pub struct Chain<'a> {
    ops: [Option<SendOp<'a>>; MAX_CHAIN],
    n: usize,
}

impl<'a> Chain<'a> {
    /// An empty chain.
    pub fn new() -> Self {
        Self {
            ops: [None; MAX_CHAIN],
            n: 0,
        }
    }

    /// Appends `op`; fails when the chain is full.
    pub fn push(&mut self, op: SendOp<'a>) -> Result {
        let slot = self.ops.get_mut(self.n).ok_or(EINVAL)?;
        *slot = Some(op);
        self.n += 1;
        Ok(())
    }

    fn from_array<const N: usize>(a: [SendOp<'a>; N]) -> Result<Self> {
        let mut c = Self::new();
        for op in a {
            c.push(op)?;
        }
        Ok(c)
    }
}

impl Default for Chain<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Posts a send chain on the raw QP `qp`.
///
/// On failure, the owner comes back if the device saw none of the chain.
///
/// # Safety
///
/// `qp` must be a live QP.
unsafe fn post_send_raw<T: Send + 'static>(
    qp: *mut bindings::ib_qp,
    owner: KBox<Posted<T>>,
    ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
) -> core::result::Result<(), (Error, Unposted<T>)> {
    let raw = KBox::into_raw(owner);
    // SAFETY: forwarded contract; `raw` is a live box, ours until posted.
    match unsafe { build_and_post(qp, raw, ops) } {
        // The device has the owner now; its completion frees the box.
        Ok(Posting::Done) => Ok(()),
        Ok(Posting::Partial(e)) => {
            pr_err!("partial post of a send chain ({:?})\n", e);
            // SAFETY: from `into_raw` above; no completion will take it
            // back (the signaled last request was not posted).
            Err((e, Unposted::Partly(unsafe { KBox::from_raw(raw) })))
        }
        // SAFETY: the device never saw `raw`, from `into_raw` above.
        Err(e) => Err((e, Unposted::Whole(unsafe { KBox::from_raw(raw) }))),
    }
}

/// The owner of a chain that was not (entirely) posted.
pub enum Unposted<T: Send + 'static> {
    /// The device saw none of the chain: the owner is the caller's again.
    Whole(KBox<Posted<T>>),
    /// Part of the chain is on the device, which may use the owner's
    /// buffers until the QP is drained (no completion returns the owner):
    /// keep it untouched until then, or leak it.
    Partly(KBox<Posted<T>>),
}

impl<T: Send + 'static> Unposted<T> {
    /// The owner if the device saw none of the chain; a partly posted
    /// chain's owner is leaked, as the only safe choice without a drain.
    pub fn whole(self) -> Option<KBox<Posted<T>>> {
        match self {
            Unposted::Whole(b) => Some(b),
            Unposted::Partly(b) => {
                let _ = KBox::into_raw(b);
                None
            }
        }
    }
}

/// Fills an RDMA WRITE WITH IMM to `remote_addr`/`rkey` (`imm` in host order).
fn set_write_imm(r: &mut bindings::ib_rdma_wr, remote_addr: u64, rkey: u32, imm: u32) {
    r.remote_addr = remote_addr;
    r.rkey = rkey;
    r.wr.opcode = bindings::ib_wr_opcode_IB_WR_RDMA_WRITE_WITH_IMM;
    r.wr.ex.imm_data = imm.to_be();
}

/// Fills a fast registration of `mr` under `key`.
fn set_reg(r: &mut bindings::ib_reg_wr, mr: *mut bindings::ib_mr, key: u32, access: Access) {
    r.mr = mr;
    r.key = key;
    r.access = access.raw();
    r.wr.opcode = bindings::ib_wr_opcode_IB_WR_REG_MR;
}

/// How a post ended when it did not fail entirely.
enum Posting {
    /// All posted.
    Done,
    /// Some posted, not the signaled last one.
    Partial(Error),
}

/// Builds the chain from `owner` and posts it.  `Err` means the device saw
/// nothing and the owner stays the caller's.
///
/// # Safety
///
/// `qp` must be a live QP and `owner` a box from `KBox::into_raw`, which
/// the device owns after `Ok` (its completion takes it back).
unsafe fn build_and_post<T: Send + 'static>(
    qp: *mut bindings::ib_qp,
    owner: *mut Posted<T>,
    ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
) -> Result<Posting> {
    // The SGEs of all operations, op `i` using `sge_at[i]..sge_at[i] + sge_n[i]`.
    let mut sges = [bindings::ib_sge::default(); CHAIN_SGES];
    let mut sge_at = [0usize; MAX_CHAIN];
    let mut sge_n = [0usize; MAX_CHAIN];
    let mut next_sge = 0usize;
    let mut rdma = [bindings::ib_rdma_wr::default(); MAX_CHAIN];
    let mut reg = [bindings::ib_reg_wr::default(); MAX_CHAIN];
    let mut is_reg = [false; MAX_CHAIN];
    // First the values, while the owner is borrowed; no pointers yet.
    // SAFETY: `owner` is a live box (contract), not freed before the post.
    let chain = ops(unsafe { (*owner).get() })?;
    let n = chain.n;
    if n == 0 {
        return Err(EINVAL);
    }
    for (i, op) in chain.ops.iter().take(n).enumerate() {
        let Some(op) = op else { return Err(EINVAL) };
        let sge = match op {
            SendOp::Send { sge } => {
                rdma[i].wr.opcode = bindings::ib_wr_opcode_IB_WR_SEND;
                *sge
            }
            SendOp::WriteImm {
                sge,
                remote_addr,
                rkey,
                imm,
            } => {
                set_write_imm(&mut rdma[i], *remote_addr, *rkey, *imm);
                *sge
            }
            SendOp::Write {
                sge,
                remote_addr,
                rkey,
            } => {
                rdma[i].remote_addr = *remote_addr;
                rdma[i].rkey = *rkey;
                rdma[i].wr.opcode = bindings::ib_wr_opcode_IB_WR_RDMA_WRITE;
                Some(*sge)
            }
            SendOp::WriteImmData {
                data,
                hdr,
                remote_addr,
                rkey,
                imm,
            } => {
                set_write_imm(&mut rdma[i], *remote_addr, *rkey, *imm);
                let room = sges.get_mut(next_sge..).ok_or(EINVAL)?;
                let room_n = room.len().min(MAX_SEND_SGE);
                let n = match data {
                    Data::None => 0,
                    Data::Sg(t) => t.sges(&mut room[..room_n.saturating_sub(1)])?,
                    Data::Mr(mr) => {
                        let s = room.first_mut().ok_or(EINVAL)?;
                        s.addr = mr.iova();
                        s.length = u32::try_from(mr.length()).map_err(|_| EINVAL)?;
                        s.lkey = mr.lkey();
                        1
                    }
                };
                *room.get_mut(n).ok_or(EINVAL)? = hdr.raw();
                sge_at[i] = next_sge;
                sge_n[i] = n + 1;
                next_sge += n + 1;
                None
            }
            SendOp::SendImm { sge, imm } => {
                rdma[i].wr.opcode = bindings::ib_wr_opcode_IB_WR_SEND_WITH_IMM;
                rdma[i].wr.ex.imm_data = imm.to_be();
                *sge
            }
            SendOp::SendInv { rkey } => {
                rdma[i].wr.opcode = bindings::ib_wr_opcode_IB_WR_SEND_WITH_INV;
                rdma[i].wr.ex.invalidate_rkey = *rkey;
                None
            }
            SendOp::RegBlock { mr, access } => {
                set_reg(&mut reg[i], mr.as_ptr(), mr.rkey(), *access);
                is_reg[i] = true;
                None
            }
            SendOp::RegSg { mr, access } => {
                set_reg(&mut reg[i], mr.as_ptr(), mr.rkey(), *access);
                is_reg[i] = true;
                None
            }
            SendOp::Reg { mr, access } => {
                set_reg(&mut reg[i], mr.as_ptr(), mr.rkey(), *access);
                is_reg[i] = true;
                None
            }
            SendOp::LocalInv { rkey } => {
                rdma[i].wr.opcode = bindings::ib_wr_opcode_IB_WR_LOCAL_INV;
                rdma[i].wr.ex.invalidate_rkey = *rkey;
                None
            }
        };
        if let Some(s) = sge {
            *sges.get_mut(next_sge).ok_or(EINVAL)? = s.raw();
            sge_at[i] = next_sge;
            sge_n[i] = 1;
            next_sge += 1;
        }
    }
    // Then the links, through raw pointers only.
    let cqe = Posted::raw_cqe(owner);
    let (sp, rp, gp) = (sges.as_mut_ptr(), rdma.as_mut_ptr(), reg.as_mut_ptr());
    let mut wrs: [*mut bindings::ib_send_wr; MAX_CHAIN] = [core::ptr::null_mut(); MAX_CHAIN];
    for i in 0..n {
        // SAFETY: `i < n <= MAX_CHAIN`, and `sge_at[i] + sge_n[i] <=
        // next_sge <= CHAIN_SGES` (every index was bounds-checked above), so
        // every pointer is inside its local array, which outlives the post.
        unsafe {
            let wr = if is_reg[i] {
                core::ptr::addr_of_mut!((*gp.add(i)).wr)
            } else {
                core::ptr::addr_of_mut!((*rp.add(i)).wr)
            };
            if sge_n[i] > 0 {
                (*wr).sg_list = sp.add(sge_at[i]);
                (*wr).num_sge = sge_n[i] as i32;
            }
            if i == n - 1 {
                (*wr).__bindgen_anon_1.wr_cqe = cqe;
                (*wr).send_flags = bindings::ib_send_flags_IB_SEND_SIGNALED;
            } else {
                (*wr).__bindgen_anon_1.wr_cqe = CHAIN_CQE.as_ptr();
            }
            if i > 0 {
                (*wrs[i - 1]).next = wr;
            }
            wrs[i] = wr;
        }
    }
    let mut bad: *const bindings::ib_send_wr = core::ptr::null();
    // SAFETY: `qp` is live (contract); the chain and its SGEs are valid for
    // the call, which copies them; the buffers and MRs they name belong to
    // the owner behind `cqe`, which the completion returns.
    let ret = unsafe { bindings::rrs_ib_post_send(qp, wrs[0], &mut bad) };
    if ret == 0 {
        return Ok(Posting::Done);
    }
    if bad == wrs[0].cast_const() {
        // Nothing was posted.
        return Err(Error::from_errno(ret));
    }
    Ok(Posting::Partial(Error::from_errno(ret)))
}

/// Posts one receive.
///
/// # Safety
///
/// `qp` must be a live QP.
unsafe fn post_recv_raw<T: Send + 'static>(
    qp: *mut bindings::ib_qp,
    owner: KBox<Posted<T>>,
    sge: impl for<'a> FnOnce(&'a T) -> Result<Option<Sge<'a>>>,
) -> Result {
    let sge = sge(owner.get())?.map(|s| s.raw());
    let mut s = sge.unwrap_or_default();
    let mut wr = bindings::ib_recv_wr::default();
    wr.__bindgen_anon_1.wr_cqe = Posted::into_cqe(owner);
    if sge.is_some() {
        wr.sg_list = &mut s;
        wr.num_sge = 1;
    }
    let mut bad: *const bindings::ib_recv_wr = core::ptr::null();
    // SAFETY: `qp` is live; `wr` and `s` are valid for the call; the buffer
    // belongs to the owner, which the completion returns.
    let ret = unsafe { bindings::rrs_ib_post_recv(qp, &wr, &mut bad) };
    if ret != 0 {
        // SAFETY: a single WR that failed to post was never seen by the device.
        drop(unsafe { Posted::<T>::from_cqe(wr.__bindgen_anon_1.wr_cqe) });
        return Err(Error::from_errno(ret));
    }
    Ok(())
}

/// An RC queue pair created on a [`CmId`].
///
/// # Invariants
///
/// `ptr` was created by `rdma_create_qp` with `pd` and `cq` and is destroyed by
/// [`CmId`]'s `drop`, after it was drained.
pub struct Qp {
    ptr: NonNull<bindings::ib_qp>,
    _pd: Arc<Pd>,
    _cq: Arc<Cq>,
}

// SAFETY: posting to a QP is thread safe in the RDMA core.
unsafe impl Send for Qp {}
// SAFETY: as above.
unsafe impl Sync for Qp {}

impl Qp {
    /// Posts a chain of send-queue operations owned by `owner`.
    ///
    /// `ops` builds the chain from a borrow of the owner, so every buffer and
    /// MR it names is the owner's and lives until the owner comes back.  Only
    /// the last operation is signaled; its completion (or the flush of the
    /// chain) returns `owner` through [`Completion::done`].
    pub fn post_send<T: Send + 'static, const N: usize>(
        &self,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<[SendOp<'a>; N]>,
    ) -> Result {
        // SAFETY: live QP (type invariant).
        unsafe { post_send_raw(self.ptr.as_ptr(), owner, |o| Chain::from_array(ops(o)?)) }.map_err(
            |(e, u)| {
                drop(u.whole());
                e
            },
        )
    }

    /// Like [`Qp::post_send`], for a chain built at run time.
    pub fn post_chain<T: Send + 'static>(
        &self,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
    ) -> Result {
        self.try_post_chain(owner, ops).map_err(|(e, u)| {
            drop(u.whole());
            e
        })
    }

    /// Like [`Qp::post_chain`], but a chain the device saw none of gives
    /// its owner back, so that the caller can end what it carries.
    pub fn try_post_chain<T: Send + 'static>(
        &self,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<Chain<'a>>,
    ) -> core::result::Result<(), (Error, Unposted<T>)> {
        // SAFETY: live QP (type invariant).
        unsafe { post_send_raw(self.ptr.as_ptr(), owner, ops) }
    }

    /// Posts a receive into the owner's buffer named by `sge` (`None`: a
    /// receive for an RDMA WRITE WITH IMM's immediate only).
    pub fn post_recv<T: Send + 'static>(
        &self,
        owner: KBox<Posted<T>>,
        sge: impl for<'a> FnOnce(&'a T) -> Result<Option<Sge<'a>>>,
    ) -> Result {
        // SAFETY: live QP (type invariant).
        unsafe { post_recv_raw(self.ptr.as_ptr(), owner, sge) }
    }
}

/// A borrowed id, as seen by an event handler.
///
/// # Invariants
///
/// `id` is the live id of the event being handled, for `'a`: rdma_cm does
/// not destroy an id while its handler runs.  `adopted` is that event's flag,
/// set once the id has a [`CmId`] owner; `connect_request` is true only for
/// the new id of a connect request.
pub struct IdRef<'a> {
    id: NonNull<bindings::rdma_cm_id>,
    adopted: &'a Cell<bool>,
    connect_request: bool,
}

/// The local or peer address of `id`.
///
/// # Safety
///
/// `id` must be a live rdma_cm id.
unsafe fn id_addr(id: *mut bindings::rdma_cm_id, peer: bool) -> Option<SockAddr> {
    let mut ip = [0u8; 16];
    let mut port = 0u16;
    let mut scope = 0u32;
    // SAFETY: `id` is live (caller); `ip` has the 16 bytes, `port` and
    // `scope` the room the helper writes.
    let r = unsafe {
        bindings::rrs_cm_id_addr(id, peer.into(), ip.as_mut_ptr(), &mut port, &mut scope)
    };
    let ip = match r {
        4 => Addr::V4([ip[0], ip[1], ip[2], ip[3]]),
        6 => Addr::V6(ip, scope),
        _ => return None,
    };
    Some(SockAddr { ip, port })
}

impl IdRef<'_> {
    /// The local (`peer` false) or the peer's address; `None` if it is
    /// neither IPv4 nor IPv6.
    pub fn addr(&self, peer: bool) -> Option<SockAddr> {
        // SAFETY: the id is live during the event.
        unsafe { id_addr(self.id.as_ptr(), peer) }
    }

    /// The port of the device the id is bound to.
    pub fn port_num(&self) -> u8 {
        // SAFETY: the id is live during the event; reads one field.
        unsafe { bindings::rrs_cm_id_port_num(self.id.as_ptr()) }
    }

    /// The RDMA device the id is bound to, once its address is resolved.
    pub fn device(&self) -> Option<Device<'_>> {
        // SAFETY: the id is live during the event; a bound device stays
        // registered until the id is destroyed.
        unsafe { Device::from_raw(bindings::rrs_cm_id_device(self.id.as_ptr())) }
    }

    /// Takes ownership of a new connection's id, to be served by `handler`.
    /// Only valid in a [`EventKind::ConnectRequest`] event.
    pub fn adopt<U: Handler>(&self, handler: Arc<U>) -> Result<CmId<U>> {
        if !self.connect_request || self.adopted.get() {
            return Err(EINVAL);
        }
        let ctx = Arc::into_raw(handler);
        // SAFETY: the new id is ours to configure during its connect request;
        // events after this one are dispatched through the new context.
        unsafe {
            (*self.id.as_ptr()).event_handler = Some(event_trampoline::<U>);
            (*self.id.as_ptr()).context = ctx.cast_mut().cast();
        }
        self.adopted.set(true);
        // INVARIANT: the id is live (ours now, until `drop`), with `ctx` as
        // its context and `event_trampoline::<U>` as its handler, set above.
        Ok(CmId {
            id: self.id,
            handler: ctx,
            qp: None,
        })
    }

    /// Accepts the connect request this event is for.
    ///
    /// Only here: rdma_cm requires the id's handler lock, which is held
    /// exactly while its event handler runs.  Create the QP first.
    pub fn accept(&self, param: &ConnParam<'_>) -> Result {
        // Accepting an id nobody adopted would hand an accepted connection
        // back to rdma_cm for destruction.
        if !self.connect_request || !self.adopted.get() {
            return Err(EINVAL);
        }
        let mut p = param.raw()?;
        // SAFETY: live id, inside its connect request event (handler lock
        // held); `p` and its private data are valid for the call.
        crate::to_result(unsafe { bindings::rdma_accept(self.id.as_ptr(), &mut p) })
    }

    /// Rejects the connect request this event is for, with `private_data`
    /// for the peer (consumer-defined reason).  An id nobody adopted is then
    /// destroyed by rdma_cm when the handler returns; an adopted one stays
    /// its owner's to drop (later, from another context).
    pub fn reject(&self, private_data: &[u8]) -> Result {
        if !self.connect_request {
            return Err(EINVAL);
        }
        let len = u8::try_from(private_data.len()).map_err(|_| EINVAL)?;
        // SAFETY: live id inside its connect request event; the data is
        // valid for the call, which copies it.
        crate::to_result(unsafe {
            bindings::rdma_reject(
                self.id.as_ptr(),
                private_data.as_ptr().cast(),
                len,
                bindings::ib_cm_rej_reason_IB_CM_REJ_CONSUMER_DEFINED as u8,
            )
        })
    }

    /// Posts on the id's QP, if it has one (see [`Qp::post_send`]).
    pub fn post_send<T: Send + 'static, const N: usize>(
        &self,
        owner: KBox<Posted<T>>,
        ops: impl for<'a> FnOnce(&'a T) -> Result<[SendOp<'a>; N]>,
    ) -> Result {
        // SAFETY: the id is live during the event, and its QP is destroyed
        // only under the id's handler lock, which is held while this runs.
        let qp = unsafe { bindings::rrs_cm_id_qp(self.id.as_ptr()) };
        if qp.is_null() {
            return Err(support::code::enotconn());
        }
        // SAFETY: as above.
        unsafe { post_send_raw(qp, owner, |o| Chain::from_array(ops(o)?)) }.map_err(|(e, u)| {
            drop(u.whole());
            e
        })
    }
}

/// An owned `rdma_cm_id` with its handler and, once created, its RC QP.
///
/// # Invariants
///
/// `id` is live until `drop`; its `context` is `handler` (from
/// `Arc::into_raw`) and its event handler is `event_trampoline::<T>`.
pub struct CmId<T: Handler> {
    id: NonNull<bindings::rdma_cm_id>,
    handler: *const T,
    qp: Option<Qp>,
}

// SAFETY: rdma_cm calls on one id may come from any thread; `T: Send + Sync`.
unsafe impl<T: Handler> Send for CmId<T> {}
// SAFETY: the `&self` methods are thread safe in rdma_cm.
unsafe impl<T: Handler> Sync for CmId<T> {}

impl<T: Handler> CmId<T> {
    /// Creates an RC id on the TCP port space, in the initial network namespace.
    pub fn new(handler: Arc<T>) -> Result<Self> {
        let ctx = Arc::into_raw(handler);
        // SAFETY: the trampoline matches `ctx`'s type.
        let r = crate::from_err_ptr(unsafe {
            bindings::rrs_rdma_create_id(
                Some(event_trampoline::<T>),
                ctx.cast_mut().cast(),
                bindings::rdma_ucm_port_space_RDMA_PS_TCP,
                bindings::ib_qp_type_IB_QPT_RC,
            )
        });
        match r {
            // INVARIANT: the id was created with `ctx` and the trampoline.
            Ok(id) => Ok(Self {
                id,
                handler: ctx,
                qp: None,
            }),
            Err(e) => {
                // SAFETY: from `into_raw` above; the id was not created.
                drop(unsafe { Arc::from_raw(ctx) });
                Err(e)
            }
        }
    }

    fn raw(&self) -> *mut bindings::rdma_cm_id {
        self.id.as_ptr()
    }

    /// The handler.
    pub fn handler(&self) -> &T {
        // SAFETY: owned by the id until `drop` (type invariant).
        unsafe { &*self.handler }
    }

    /// Starts resolving `dst`, from `src` if given; ends with
    /// `AddrResolved` or `AddrError`.
    pub fn resolve_addr(&self, src: Option<SockAddr>, dst: SockAddr, timeout_ms: u32) -> Result {
        let mut s = src.map(|a| a.raw());
        let mut d = dst.raw();
        let sp = s
            .as_mut()
            .map_or(core::ptr::null_mut(), |s| (s as *mut RawAddr).cast());
        // SAFETY: live id; both addresses are copied by the call (a null
        // source lets the routing table pick one).
        crate::to_result(unsafe {
            bindings::rdma_resolve_addr(
                self.raw(),
                sp,
                (&mut d as *mut RawAddr).cast(),
                timeout_ms as _,
            )
        })
    }

    /// Starts resolving the route; ends with `RouteResolved` or `RouteError`.
    pub fn resolve_route(&self, timeout_ms: u32) -> Result {
        // SAFETY: live id.
        crate::to_result(unsafe { bindings::rdma_resolve_route(self.raw(), timeout_ms as _) })
    }

    /// Binds to a local address ([`SockAddr::any6`] for all of both
    /// families).
    pub fn bind(&self, addr: SockAddr) -> Result {
        let mut sa = addr.raw();
        // SAFETY: live id; `sa` is copied by the call.
        crate::to_result(unsafe {
            bindings::rdma_bind_addr(self.raw(), (&mut sa as *mut RawAddr).cast())
        })
    }

    /// Listens for connect requests.
    pub fn listen(&self, backlog: i32) -> Result {
        // SAFETY: live id.
        crate::to_result(unsafe { bindings::rdma_listen(self.raw(), backlog) })
    }

    /// The bound device, once the address is resolved or a request arrived.
    pub fn device(&self) -> Option<Device<'_>> {
        // SAFETY: live id; a bound device stays registered while the id lives.
        unsafe { Device::from_raw(bindings::rrs_cm_id_device(self.raw())) }
    }

    /// The local (`peer` false) or the peer's address, once the route is
    /// resolved or a request arrived; `None` if it is neither IPv4 nor
    /// IPv6.
    pub fn addr(&self, peer: bool) -> Option<SockAddr> {
        // SAFETY: live id.
        unsafe { id_addr(self.raw(), peer) }
    }

    /// The port of the device the id is bound to (0 before).
    pub fn port_num(&self) -> u8 {
        // SAFETY: live id; reads one field.
        unsafe { bindings::rrs_cm_id_port_num(self.raw()) }
    }

    /// Creates the id's RC QP in `pd`, with `cq` for both queues.
    pub fn create_qp(&mut self, pd: &Arc<Pd>, cq: &Arc<Cq>, caps: QpCaps) -> Result<&Qp> {
        if self.qp.is_some() {
            return Err(EEXIST);
        }
        let mut attr = bindings::ib_qp_init_attr {
            send_cq: cq.as_ptr(),
            recv_cq: cq.as_ptr(),
            qp_type: bindings::ib_qp_type_IB_QPT_RC,
            sq_sig_type: bindings::ib_sig_type_IB_SIGNAL_REQ_WR,
            cap: bindings::ib_qp_cap {
                max_send_wr: caps.max_send_wr,
                max_recv_wr: caps.max_recv_wr,
                max_send_sge: caps.max_send_sge,
                max_recv_sge: caps.max_recv_sge,
                ..Default::default()
            },
            ..Default::default()
        };
        // SAFETY: `attr` is ours; the handler's context is this id, which
        // outlives its QP.
        unsafe { bindings::rrs_qp_init_attr_set_event(&mut attr, self.raw()) };
        // SAFETY: live id bound to `pd`'s device; `attr` is valid for the call.
        crate::to_result(unsafe { bindings::rdma_create_qp(self.raw(), pd.as_ptr(), &mut attr) })?;
        // SAFETY: set by the successful call above.
        let ptr = NonNull::new(unsafe { bindings::rrs_cm_id_qp(self.raw()) }).ok_or(EINVAL)?;
        // INVARIANT: created just above with `pd` and `cq`; `drop` destroys it.
        let qp: &Qp = self.qp.insert(Qp {
            ptr,
            _pd: pd.clone(),
            _cq: cq.clone(),
        });
        Ok(qp)
    }

    /// The QP, if created.
    pub fn qp(&self) -> Option<&Qp> {
        self.qp.as_ref()
    }

    /// Connects (active side, after `RouteResolved`).
    ///
    /// Takes the id's handler lock, so it must not be called from this id's
    /// own event handler.
    pub fn connect(&self, param: &ConnParam<'_>) -> Result {
        let mut p = param.raw()?;
        // SAFETY: live id; `p` and its private data are valid for the call.
        crate::to_result(unsafe { bindings::rdma_connect(self.raw(), &mut p) })
    }

    /// Starts a disconnect; `Disconnected` follows.
    pub fn disconnect(&self) -> Result {
        // SAFETY: live id.
        crate::to_result(unsafe { bindings::rdma_disconnect(self.raw()) })
    }
}

impl<T: Handler> Drop for CmId<T> {
    fn drop(&mut self) {
        if let Some(qp) = self.qp.take() {
            // Under the handler lock no event handler can post while the QP
            // is drained (every posted request flushed back to its owner),
            // and `rdma_destroy_qp` clears `id->qp`, so none can post after.
            // SAFETY: live id and QP; the QP's CQ is not polled directly;
            // we are not inside this id's handler (see `Handler`).
            unsafe {
                bindings::rdma_lock_handler(self.raw());
                bindings::ib_drain_qp(qp.ptr.as_ptr());
                bindings::rdma_destroy_qp(self.raw());
                bindings::rdma_unlock_handler(self.raw());
            }
            // The PD and CQ references go with `qp`.
        }
        // SAFETY: live id; this waits for running handlers and stops new ones.
        unsafe { bindings::rdma_destroy_id(self.raw()) };
        // SAFETY: from `Arc::into_raw` at creation; no handler runs any more.
        drop(unsafe { Arc::from_raw(self.handler) });
    }
}

/// The `event_handler` of every id, called by rdma_cm in process context,
/// serialised per id, with the id's handler lock held.
///
/// # Safety
///
/// `id` and `ev` must be a live id and its event for the duration of the
/// call, and `id`'s `context` the `Arc<T>` of the id's [`CmId<T>`] (for a
/// connect request: of the listener's), alive until that id is destroyed,
/// which waits for running handlers.
unsafe extern "C" fn event_trampoline<T: Handler>(
    id: *mut bindings::rdma_cm_id,
    ev: *mut bindings::rdma_cm_event,
) -> i32 {
    // SAFETY: rdma_cm passes a live id and event for the duration of the call.
    let (id_nn, ev) = unsafe { (NonNull::new_unchecked(id), &*ev) };
    let kind = EventKind::from_raw(ev.event);
    let pd = if matches!(
        kind,
        EventKind::ConnectRequest
            | EventKind::ConnectResponse
            | EventKind::Established
            | EventKind::Rejected
    ) {
        // SAFETY: for these events the `conn` member is the valid one.
        let c = unsafe { &ev.param.conn };
        if c.private_data.is_null() {
            &[][..]
        } else {
            // SAFETY: rdma_cm guarantees `private_data_len` bytes.
            unsafe {
                core::slice::from_raw_parts(
                    c.private_data.cast::<u8>(),
                    c.private_data_len as usize,
                )
            }
        }
    } else {
        &[][..]
    };
    let adopted = Cell::new(false);
    // INVARIANT: `id` is live while its handler runs, and `idref` does not
    // outlive this call.
    let idref = IdRef {
        id: id_nn,
        adopted: &adopted,
        connect_request: kind == EventKind::ConnectRequest,
    };
    // SAFETY: `context` is the `Arc<T>` of the id's (or, for a connect
    // request, its listener's) owner, alive until that id is destroyed, which
    // waits for this handler.
    let handler = unsafe { &*((*id).context as *const T) };
    handler.event(
        &idref,
        &Event {
            kind,
            status: ev.status,
            private_data: pd,
        },
    );
    // A connect request nobody adopted: non-zero makes rdma_cm destroy it.
    if kind == EventKind::ConnectRequest && !adopted.get() {
        return support::code::econnrefused().to_errno();
    }
    0
}
