// SPDX-License-Identifier: GPL-2.0
//! Safe wrappers over src/shim.c (librdmacm + libibverbs).  The only module
//! with `unsafe`.
//!
//! Ownership: a [`Channel`] outlives the connections created on it (the
//! caller keeps it); a [`Con`] owns its rdma_cm id, PD, CQ and QP; an [`Mr`]
//! borrows nothing at the type level but must be dropped before its `Con`
//! (the callers keep them in the same struct, MRs declared first).

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};

#[repr(C)]
struct RawCh {
    _p: [u8; 0],
}
#[repr(C)]
struct RawCon {
    _p: [u8; 0],
}
#[repr(C)]
struct RawMr {
    _p: [u8; 0],
}

#[repr(C)]
struct RawEv {
    ty: i32,
    status: i32,
    con: *mut RawCon,
    priv_: [u8; 256],
    priv_len: u32,
}

/// A work completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Wc {
    /// The work request's id.
    pub wr_id: u64,
    /// `enum ibv_wc_status` (0 success, 5 flushed).
    pub status: i32,
    /// `enum ibv_wc_opcode`.
    pub opcode: i32,
    /// Bytes received.
    pub byte_len: u32,
    /// Immediate data in host order, if `has_imm`.
    pub imm: u32,
    /// The completion carries an immediate.
    pub has_imm: i32,
    /// The sender invalidated `inv_rkey` (SEND_WITH_INV).
    pub has_inv: i32,
    /// The invalidated rkey.
    pub inv_rkey: u32,
}

/// `IBV_WC_RECV` and `IBV_WC_RECV_RDMA_WITH_IMM`.
pub const WC_RECV: i32 = 128;
/// See [`WC_RECV`].
pub const WC_RECV_RDMA_WITH_IMM: i32 = 129;

extern "C" {
    fn h_channel() -> *mut RawCh;
    fn h_channel_free(ch: *mut RawCh);
    fn h_event(ch: *mut RawCh, timeout_ms: c_int, ev: *mut RawEv) -> c_int;
    fn h_con_new(ch: *mut RawCh) -> *mut RawCon;
    fn h_resolve(c: *mut RawCon, dst: *const c_char, port: c_int, timeout_ms: c_int) -> c_int;
    fn h_listen(c: *mut RawCon, ip: *const c_char, port: c_int) -> c_int;
    fn h_alloc_pd(c: *mut RawCon) -> c_int;
    fn h_share_pd(c: *mut RawCon, from: *mut RawCon);
    fn h_setup_qp(c: *mut RawCon, send_wr: u32, recv_wr: u32) -> c_int;
    fn h_connect(c: *mut RawCon, priv_: *const c_void, len: u32) -> c_int;
    fn h_accept(c: *mut RawCon, priv_: *const c_void, len: u32) -> c_int;
    fn h_reject(c: *mut RawCon, priv_: *const c_void, len: u32) -> c_int;
    fn h_disconnect(c: *mut RawCon) -> c_int;
    fn h_con_free(c: *mut RawCon);
    fn h_mr_new(c: *mut RawCon, len: usize) -> *mut RawMr;
    fn h_mr_free(m: *mut RawMr);
    fn h_mr_buf(m: *mut RawMr) -> *mut u8;
    fn h_mr_addr(m: *mut RawMr) -> u64;
    fn h_mr_rkey(m: *mut RawMr) -> u32;
    fn h_post_send(c: *mut RawCon, op: c_int, m: *mut RawMr, off: u32, len: u32, raddr: u64, rkey: u32, imm: u32, wr_id: u64) -> c_int;
    fn h_post_recv(c: *mut RawCon, m: *mut RawMr, off: u32, len: u32, wr_id: u64) -> c_int;
    fn h_poll(c: *mut RawCon, timeout_ms: c_int, wc: *mut Wc) -> c_int;
}

/// rdma_cm event types used here (`enum rdma_cm_event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvType {
    /// Address resolved.
    AddrResolved,
    /// Route resolved.
    RouteResolved,
    /// A connect request arrived (listener).
    ConnectRequest,
    /// The peer accepted (active side; private data is its response).
    ConnectResponse,
    /// Connect failed.
    ConnectError,
    /// Unreachable.
    Unreachable,
    /// Rejected (private data is the peer's reject message).
    Rejected,
    /// Established.
    Established,
    /// Disconnected.
    Disconnected,
    /// Time-wait exit and the rest.
    Other(i32),
}

impl EvType {
    fn from(t: i32) -> Self {
        match t {
            0 => Self::AddrResolved,
            2 => Self::RouteResolved,
            4 => Self::ConnectRequest,
            5 => Self::ConnectResponse,
            6 => Self::ConnectError,
            7 => Self::Unreachable,
            8 => Self::Rejected,
            9 => Self::Established,
            10 => Self::Disconnected,
            t => Self::Other(t),
        }
    }
}

/// An event, with the connection it is about (a new one for a connect
/// request, owned by the receiver of the event).
pub struct Event {
    /// Its type.
    pub ty: EvType,
    /// rdma_cm status (e.g. the reject reason).
    pub status: i32,
    /// Private data.
    pub private: Vec<u8>,
    /// Opaque identity of the connection (compare with [`Con::key`]).
    pub key: usize,
    /// For a connect request: the new connection.
    pub new_con: Option<Con>,
}

/// An rdma_cm event channel.
pub struct Channel(*mut RawCh);

impl Channel {
    /// A new channel.
    pub fn new() -> Result<Self, String> {
        // SAFETY: no preconditions; NULL means failure.
        let p = unsafe { h_channel() };
        if p.is_null() {
            return Err("rdma_create_event_channel failed".into());
        }
        Ok(Self(p))
    }

    /// The next event, or `None` after `timeout_ms`.
    pub fn event(&self, timeout_ms: i32) -> Result<Option<Event>, String> {
        let mut ev = RawEv { ty: 0, status: 0, con: std::ptr::null_mut(), priv_: [0; 256], priv_len: 0 };
        // SAFETY: the channel is live; `ev` is valid for writes.
        let r = unsafe { h_event(self.0, timeout_ms, &mut ev) };
        if r < 0 {
            return Err(format!("rdma_get_cm_event: {}", r));
        }
        if r == 0 {
            return Ok(None);
        }
        let ty = EvType::from(ev.ty);
        let new_con = if ty == EvType::ConnectRequest && !ev.con.is_null() { Some(Con(ev.con)) } else { None };
        Ok(Some(Event {
            ty,
            status: ev.status,
            private: ev.priv_[..(ev.priv_len as usize).min(256)].to_vec(),
            key: ev.con as usize,
            new_con,
        }))
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: every id created on it was destroyed first (see module doc).
        unsafe { h_channel_free(self.0) }
    }
}

/// An rdma_cm id with its QP.
pub struct Con(*mut RawCon);

/// Send opcodes of [`Con::post_send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// SEND.
    Send,
    /// SEND WITH IMM.
    SendImm(u32),
    /// RDMA WRITE.
    Write,
    /// RDMA WRITE WITH IMM.
    WriteImm(u32),
    /// SEND WITH INV of an rkey.
    #[allow(dead_code)]
    SendInv(u32),
}

impl Con {
    /// A new id on `ch`.
    pub fn new(ch: &Channel) -> Result<Self, String> {
        // SAFETY: the channel is live.
        let p = unsafe { h_con_new(ch.0) };
        if p.is_null() {
            return Err("rdma_create_id failed".into());
        }
        Ok(Self(p))
    }

    /// Identity for matching events.
    pub fn key(&self) -> usize {
        self.0 as usize
    }

    fn cs(s: &str) -> Result<CString, String> {
        CString::new(s).map_err(|_| "bad address".to_string())
    }

    /// Resolves address and route (events read from the id's channel).
    pub fn resolve(&self, dst: &str, port: u16, timeout_ms: i32) -> Result<(), String> {
        let d = Self::cs(dst)?;
        // SAFETY: live id, NUL-terminated string.
        let r = unsafe { h_resolve(self.0, d.as_ptr(), port as c_int, timeout_ms) };
        if r != 0 {
            return Err(format!("resolve {}:{} failed: {}", dst, port, r));
        }
        Ok(())
    }

    /// Binds and listens.
    pub fn listen(&self, ip: &str, port: u16) -> Result<(), String> {
        let d = Self::cs(ip)?;
        // SAFETY: live id, NUL-terminated string.
        let r = unsafe { h_listen(self.0, d.as_ptr(), port as c_int) };
        if r != 0 {
            return Err(format!("listen {}:{} failed: {}", ip, port, r));
        }
        Ok(())
    }

    /// A PD of its own (a listener bound to an address).
    pub fn alloc_pd(&self) -> Result<(), String> {
        // SAFETY: live id.
        let r = unsafe { h_alloc_pd(self.0) };
        if r != 0 {
            return Err(format!("ibv_alloc_pd: {}", r));
        }
        Ok(())
    }

    /// Uses `from`'s PD, so that MRs registered on `from` work on this
    /// QP.  `from` must be dropped after `self`.
    pub fn share_pd(&self, from: &Con) {
        // SAFETY: both live; the caller keeps `from` alive longer.
        unsafe { h_share_pd(self.0, from.0) }
    }

    /// PD (unless shared), CQ and RC QP.
    pub fn setup_qp(&self, send_wr: u32, recv_wr: u32) -> Result<(), String> {
        // SAFETY: live id with a device (resolved or from a connect request).
        let r = unsafe { h_setup_qp(self.0, send_wr, recv_wr) };
        if r != 0 {
            return Err(format!("QP setup failed: {}", r));
        }
        Ok(())
    }

    /// rdma_connect with `private` data.
    pub fn connect(&self, private: &[u8]) -> Result<(), String> {
        // SAFETY: live id; the data is copied by rdma_cm.
        let r = unsafe { h_connect(self.0, private.as_ptr().cast(), private.len() as u32) };
        if r != 0 {
            return Err(format!("rdma_connect: {}", r));
        }
        Ok(())
    }

    /// rdma_accept with `private` data.
    pub fn accept(&self, private: &[u8]) -> Result<(), String> {
        // SAFETY: as connect.
        let r = unsafe { h_accept(self.0, private.as_ptr().cast(), private.len() as u32) };
        if r != 0 {
            return Err(format!("rdma_accept: {}", r));
        }
        Ok(())
    }

    /// rdma_reject with `private` data.
    pub fn reject(&self, private: &[u8]) -> Result<(), String> {
        // SAFETY: as connect.
        let r = unsafe { h_reject(self.0, private.as_ptr().cast(), private.len() as u32) };
        if r != 0 {
            return Err(format!("rdma_reject: {}", r));
        }
        Ok(())
    }

    /// rdma_disconnect.
    pub fn disconnect(&self) {
        // SAFETY: live id.
        unsafe { h_disconnect(self.0) };
    }

    /// Registers a zeroed buffer of `len` bytes (local and remote write,
    /// remote read).
    pub fn mr(&self, len: usize) -> Result<Mr, String> {
        // SAFETY: the QP (and PD) exist after setup_qp.
        let p = unsafe { h_mr_new(self.0, len) };
        if p.is_null() {
            return Err(format!("ibv_reg_mr of {} bytes failed", len));
        }
        Ok(Mr { p, len })
    }

    /// Posts one signaled send work request with `len` bytes of `mr` at `off`.
    pub fn post_send(&self, op: Op, mr: Option<&Mr>, off: u32, len: u32, raddr: u64, rkey: u32, wr_id: u64) -> Result<(), String> {
        let (code, imm) = match op {
            Op::Send => (0, 0),
            Op::SendImm(i) => (1, i),
            Op::Write => (2, 0),
            Op::WriteImm(i) => (3, i),
            Op::SendInv(k) => (4, k),
        };
        let m = mr.map_or(std::ptr::null_mut(), |m| m.p);
        // SAFETY: live QP; the shim bounds-checks off/len against the MR.
        let r = unsafe { h_post_send(self.0, code, m, off, len, raddr, rkey, imm, wr_id) };
        if r != 0 {
            return Err(format!("ibv_post_send: {}", r));
        }
        Ok(())
    }

    /// Posts one receive (`mr` None: for immediates only).
    pub fn post_recv(&self, mr: Option<&Mr>, off: u32, len: u32, wr_id: u64) -> Result<(), String> {
        let m = mr.map_or(std::ptr::null_mut(), |m| m.p);
        // SAFETY: as post_send.
        let r = unsafe { h_post_recv(self.0, m, off, len, wr_id) };
        if r != 0 {
            return Err(format!("ibv_post_recv: {}", r));
        }
        Ok(())
    }

    /// One completion, or `None` after `timeout_ms`.
    pub fn poll(&self, timeout_ms: i32) -> Result<Option<Wc>, String> {
        let mut wc = Wc::default();
        // SAFETY: live CQ; `wc` valid for writes.
        let r = unsafe { h_poll(self.0, timeout_ms, &mut wc) };
        match r {
            1 => Ok(Some(wc)),
            0 => Ok(None),
            e => Err(format!("ibv_poll_cq: {}", e)),
        }
    }
}

impl Drop for Con {
    fn drop(&mut self) {
        // SAFETY: owned; its MRs were dropped first (module doc).
        unsafe { h_con_free(self.0) }
    }
}

/// A registered buffer.
pub struct Mr {
    p: *mut RawMr,
    len: usize,
}

impl Mr {
    /// The buffer.
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the shim allocated `len` bytes, live until drop; `&mut
        // self` keeps Rust from aliasing it (the HCA may write it: read only
        // after the matching completion).
        unsafe { std::slice::from_raw_parts_mut(h_mr_buf(self.p), self.len) }
    }

    /// Its address for remote access.
    pub fn addr(&self) -> u64 {
        // SAFETY: live MR.
        unsafe { h_mr_addr(self.p) }
    }

    /// Its rkey.
    pub fn rkey(&self) -> u32 {
        // SAFETY: live MR.
        unsafe { h_mr_rkey(self.p) }
    }
}

impl Drop for Mr {
    fn drop(&mut self) {
        // SAFETY: owned.
        unsafe { h_mr_free(self.p) }
    }
}
