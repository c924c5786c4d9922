// SPDX-License-Identifier: GPL-2.0

//! RDMA proof for the `rdma` crate: one RDMA WRITE WITH IMM between two hosts.
//!
//! `role=server`: listen on `addr:port`.  For a connection, register a
//! `len`-byte buffer with a fast-registration MR and send its address and
//! rkey (REG_MR chained before the SEND, as RTRS advertises its chunks).  On
//! the RDMA WRITE WITH IMM, check the immediate, the length and every byte,
//! and report `PASS ...` or `FAIL ...` in the `result` parameter.
//!
//! `role=client`: connect to `addr:port`, wait for the buffer's address, RDMA
//! WRITE WITH IMM a pattern into it; loading fails unless the write completes.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::time::msecs_to_jiffies;
use rdma::cm::{CmId, ConnParam, Event, EventKind, Handler, IdRef, QpCaps, SendOp, SockAddr};
use rdma::cq::Cq;
use rdma::dma::{Direction, DmaBuf};
use rdma::mr::{Access, FrMr};
use rdma::pd::Pd;
use rdma::wr::{Completion, Opcode, Posted, Status, WorkCompletion};
use support::code::{ehostunreach, enotconn, eproto, etimedout};

module! {
    type: RdmaSelftest,
    name: "rdma_selftest",
    author: "rnbd-rs developers",
    description: "RDMA WRITE WITH IMM proof of the rnbd-rs rdma crate",
    license: "GPL",
}

// Accessors of params_selftest.c, this module's own C shim.
extern "C" {
    fn rdma_selftest_role() -> *const kernel::ffi::c_char;
    fn rdma_selftest_addr() -> *const kernel::ffi::c_char;
    fn rdma_selftest_port() -> i32;
    fn rdma_selftest_len() -> i32;
    fn rdma_selftest_set_result(s: *const u8, n: usize);
}

struct Params {
    server: bool,
    addr: SockAddr,
    len: usize,
}

fn params() -> Result<Params> {
    // SAFETY: the accessors return module parameters, which are set before
    // `init` runs and never change (0444); charp values are NUL-terminated.
    let (role, addr, port, len) = unsafe {
        (
            CStr::from_char_ptr(rdma_selftest_role()),
            CStr::from_char_ptr(rdma_selftest_addr()),
            rdma_selftest_port(),
            rdma_selftest_len(),
        )
    };
    let server = match role.as_bytes() {
        b"server" => true,
        b"client" => false,
        _ => {
            pr_err!("role must be server or client\n");
            return Err(EINVAL);
        }
    };
    let Some(ip) = proto::addr::parse_ipv4(addr.as_bytes()) else {
        pr_err!("addr must be an IPv4 address\n");
        return Err(EINVAL);
    };
    let port = u16::try_from(port).map_err(|_| EINVAL)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (16..=1 << 20).contains(l))
        .ok_or(EINVAL)?;
    Ok(Params {
        server,
        addr: SockAddr {
            ip: rdma::cm::Addr::V4(ip),
            port,
        },
        len,
    })
}

fn set_result(args: core::fmt::Arguments<'_>) {
    let mut buf = [0u8; 127];
    let mut w = SliceWriter {
        buf: &mut buf,
        pos: 0,
    };
    // Overlong results are truncated by the writer; nothing else can fail.
    let _ = core::fmt::write(&mut w, args);
    let n = w.pos;
    // SAFETY: `buf[..n]` is initialised; the shim copies it under its lock.
    unsafe { rdma_selftest_set_result(buf.as_ptr(), n) };
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.pos);
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        Ok(())
    }
}

/// The byte at offset `i` of the written pattern.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8) ^ 0xa5) as u8
}

/// The immediate of the write: an RTRS IO request immediate, to exercise the
/// codec on a real wire.
fn expected_imm() -> u32 {
    proto::rtrs::Imm::IoReq {
        payload: 0x0bd_0001,
    }
    .encode()
}

const CAPS: QpCaps = QpCaps {
    max_send_wr: 8,
    max_recv_wr: 8,
    max_send_sge: 1,
    max_recv_sge: 1,
};
const INFO_LEN: usize = 16;

fn conn_param(pd: &[u8]) -> ConnParam<'_> {
    ConnParam {
        private_data: pd,
        responder_resources: 1,
        initiator_depth: 1,
        retry_count: 7,
        rnr_retry_count: 7,
    }
}

// ---------------------------------------------------------------- server --

struct ServerConn {
    id: CmId<ConnHandler>,
    mr: Arc<FrMr>,
    info: Option<DmaBuf>,
}

/// Server state shared by the listener, the connection and completions.
///
/// `conn` is only locked in process context (cm handlers, module exit).
#[pin_data]
struct Server {
    len: usize,
    #[pin]
    conn: Mutex<Option<ServerConn>>,
}

struct Listener(Arc<Server>);
struct ConnHandler(Arc<Server>);

impl Listener {
    fn accept(&self, id: &IdRef<'_>) -> Result {
        let s = &self.0;
        let mut slot = s.conn.lock();
        if slot.is_some() {
            return Err(EBUSY);
        }
        let dev = id.device().ok_or(ENODEV)?;
        let pd = Pd::new(dev)?;
        let cq = Cq::new(dev, 32, 0, rdma::cq::Poll::Softirq)?;
        let mr = Arc::new(
            FrMr::new(DmaBuf::new(&pd, s.len, Direction::FromDevice, GFP_KERNEL)?)?,
            GFP_KERNEL,
        )?;
        let mut info = DmaBuf::new(&pd, INFO_LEN, Direction::ToDevice, GFP_KERNEL)?;
        info.with_cpu_mut(|b| {
            b[0..8].copy_from_slice(&mr.iova().to_le_bytes());
            b[8..12].copy_from_slice(&mr.rkey().to_le_bytes());
            b[12..16].copy_from_slice(&(s.len as u32).to_le_bytes());
        });
        // From here on, a failure must not drop `conn` inside this handler
        // (see `rdma::cm::Handler`): it is parked in `slot` first.
        let conn = slot.insert(ServerConn {
            id: id.adopt(Arc::new(ConnHandler(s.clone()), GFP_KERNEL)?)?,
            mr,
            info: Some(info),
        });
        conn.id.create_qp(&pd, &cq, CAPS)?;
        id.accept(&conn_param(&[]))
    }
}

impl Handler for Listener {
    fn event(&self, id: &IdRef<'_>, ev: &Event<'_>) {
        if ev.kind != EventKind::ConnectRequest {
            return;
        }
        pr_info!(
            "connect request ({} bytes of private data)\n",
            ev.private_data.len()
        );
        if let Err(e) = self.accept(id) {
            pr_err!("accept failed: {:?}\n", e);
            set_result(format_args!("FAIL accept {:?}", e));
        }
    }
}

impl ConnHandler {
    fn advertise(&self) -> Result {
        let mut guard = self.0.conn.lock();
        let conn = guard.as_mut().ok_or_else(enotconn)?;
        let info = conn.info.take().ok_or(EINVAL)?;
        let qp = conn.id.qp().ok_or_else(enotconn)?;
        // The receive for the write's immediate holds the MR: the write lands
        // before that receive completes.
        qp.post_recv(
            Posted::new(
                ImmRecv {
                    mr: conn.mr.clone(),
                    len: self.0.len,
                },
                GFP_KERNEL,
            )?,
            |_| Ok(None),
        )?;
        // REG_MR before the SEND that advertises its rkey, on one send queue.
        let owner = Posted::new(
            Sent {
                info,
                mr: conn.mr.clone(),
            },
            GFP_KERNEL,
        )?;
        qp.post_send(owner, |o| {
            Ok([
                SendOp::Reg {
                    mr: &o.mr,
                    access: Access::REMOTE_WRITE,
                },
                SendOp::Send {
                    sge: Some(o.info.sge(0, INFO_LEN)?),
                },
            ])
        })
    }
}

impl Handler for ConnHandler {
    fn event(&self, _id: &IdRef<'_>, ev: &Event<'_>) {
        pr_info!(
            "server connection event {:?} status {}\n",
            ev.kind,
            ev.status
        );
        if ev.kind == EventKind::Established {
            if let Err(e) = self.advertise() {
                set_result(format_args!("FAIL advertise {:?}", e));
            }
        }
    }
}

/// Owner of the REG_MR + SEND chain that advertises the buffer.
struct Sent {
    info: DmaBuf,
    mr: Arc<FrMr>,
}
impl Completion for Sent {
    fn done(self, wc: &WorkCompletion) {
        if wc.status != Status::Success {
            set_result(format_args!("FAIL info send {:?}", wc.status));
        }
    }
}

/// Owner of the receive that the RDMA WRITE WITH IMM consumes.
struct ImmRecv {
    mr: Arc<FrMr>,
    len: usize,
}

impl Completion for ImmRecv {
    fn done(self, wc: &WorkCompletion) {
        if wc.status != Status::Success || wc.opcode != Opcode::RecvRdmaWithImm {
            set_result(format_args!(
                "FAIL completion {:?} {:?}",
                wc.status, wc.opcode
            ));
            return;
        }
        if wc.imm != Some(expected_imm()) {
            set_result(format_args!("FAIL imm {:?}", wc.imm));
            return;
        }
        if wc.byte_len as usize != self.len {
            set_result(format_args!(
                "FAIL byte_len {} != {}",
                wc.byte_len, self.len
            ));
            return;
        }
        let bad = first_mismatch(&self.mr, self.len);
        match bad {
            None => set_result(format_args!(
                "PASS len={} imm={:#x} rkey={:#x}",
                self.len,
                expected_imm(),
                self.mr.rkey()
            )),
            Some(i) => set_result(format_args!("FAIL payload differs at byte {}", i)),
        }
    }
}

/// Offset of the first byte of `mr` that differs from the pattern.
fn first_mismatch(mr: &FrMr, len: usize) -> Option<usize> {
    let mut chunk = [0u8; 256];
    let mut off = 0;
    while off < len {
        let n = chunk.len().min(len - off);
        if mr.read(off, &mut chunk[..n]).is_err() {
            return Some(off);
        }
        if let Some(i) = chunk[..n]
            .iter()
            .enumerate()
            .position(|(i, &v)| v != pattern(off + i))
        {
            return Some(off + i);
        }
        off += n;
    }
    None
}

// ---------------------------------------------------------------- client --

/// Client progress, set from cm handlers (process context) and completions
/// (softirq), so atomics; the init thread sleeps on `cv`.
#[pin_data]
struct Client {
    phase: AtomicU32,
    error: AtomicI32,
    remote_addr: AtomicU64,
    rkey: AtomicU32,
    remote_len: AtomicU32,
    #[pin]
    lock: Mutex<()>,
    #[pin]
    cv: CondVar,
}

const ADDR_RESOLVED: u32 = 1;
const ROUTE_RESOLVED: u32 = 2;
const ESTABLISHED: u32 = 3;
const INFO_RECEIVED: u32 = 4;
const WRITE_DONE: u32 = 5;

impl Client {
    fn advance(&self, phase: u32) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
        self.cv.notify_all();
    }

    fn fail(&self, errno: i32) {
        let _ = self
            .error
            .compare_exchange(0, errno, Ordering::AcqRel, Ordering::Acquire);
        self.cv.notify_all();
    }

    /// Waits for `phase` or an error, at most `ms` milliseconds.
    fn wait(&self, phase: u32, ms: u32) -> Result {
        let mut waited = 0;
        let mut g = self.lock.lock();
        loop {
            let e = self.error.load(Ordering::Acquire);
            if e != 0 {
                return Err(Error::from_errno(e));
            }
            if self.phase.load(Ordering::Acquire) >= phase {
                return Ok(());
            }
            if waited >= ms {
                return Err(etimedout());
            }
            // Short sleeps: completions notify without taking `lock`.
            let _ = self
                .cv
                .wait_interruptible_timeout(&mut g, msecs_to_jiffies(100));
            waited += 100;
        }
    }
}

struct ClientHandler(Arc<Client>);

impl Handler for ClientHandler {
    fn event(&self, _id: &IdRef<'_>, ev: &Event<'_>) {
        pr_info!("client event {:?} status {}\n", ev.kind, ev.status);
        match ev.kind {
            EventKind::AddrResolved => self.0.advance(ADDR_RESOLVED),
            EventKind::RouteResolved => self.0.advance(ROUTE_RESOLVED),
            EventKind::Established => self.0.advance(ESTABLISHED),
            EventKind::Disconnected | EventKind::TimewaitExit => {}
            _ => self.0.fail(ehostunreach().to_errno()),
        }
    }
}

/// Owner of the receive for the server's buffer description.
struct InfoRecv {
    buf: DmaBuf,
    client: Arc<Client>,
}

impl Completion for InfoRecv {
    fn done(self, wc: &WorkCompletion) {
        // Flushed: the connection went away (a refused connect flushes this
        // receive too); the connection event says why, this one must not
        // race it with a less precise errno.
        if wc.status == Status::Flushed {
            return;
        }
        if wc.status != Status::Success || wc.byte_len as usize != INFO_LEN {
            self.client.fail(eproto().to_errno());
            return;
        }
        let mut b = [0u8; INFO_LEN];
        // Element-wise (see rtrs_client's info request): no panic path.
        self.buf
            .with_cpu(|s| b.iter_mut().zip(s.iter()).for_each(|(d, x)| *d = *x));
        let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        self.client.remote_addr.store(
            u64::from(le32(0)) | u64::from(le32(4)) << 32,
            Ordering::Release,
        );
        self.client.rkey.store(le32(8), Ordering::Release);
        self.client.remote_len.store(le32(12), Ordering::Release);
        self.client.advance(INFO_RECEIVED);
    }
}

/// Owner of the RDMA WRITE WITH IMM.
struct Written {
    buf: DmaBuf,
    client: Arc<Client>,
}

impl Completion for Written {
    fn done(self, wc: &WorkCompletion) {
        match wc.status {
            Status::Success => self.client.advance(WRITE_DONE),
            _ => self.client.fail(EIO.to_errno()),
        }
    }
}

fn run_client(p: &Params) -> Result<CmId<ClientHandler>> {
    let client = Arc::pin_init(
        pin_init!(Client {
            phase: AtomicU32::new(0),
            error: AtomicI32::new(0),
            remote_addr: AtomicU64::new(0),
            rkey: AtomicU32::new(0),
            remote_len: AtomicU32::new(0),
            lock <- new_mutex!(()),
            cv <- new_condvar!(),
        }),
        GFP_KERNEL,
    )?;
    let mut id = CmId::new(Arc::new(ClientHandler(client.clone()), GFP_KERNEL)?)?;
    id.resolve_addr(None, p.addr, 5000)?;
    client.wait(ADDR_RESOLVED, 10_000)?;
    let dev = id.device().ok_or(ENODEV)?;
    pr_info!("server reachable through {}\n", dev.name());
    let pd = Pd::new(dev)?;
    let cq = Cq::new(dev, 32, 0, rdma::cq::Poll::Softirq)?;
    id.create_qp(&pd, &cq, CAPS)?;
    let info = DmaBuf::new(&pd, INFO_LEN, Direction::FromDevice, GFP_KERNEL)?;
    let owner = Posted::new(
        InfoRecv {
            buf: info,
            client: client.clone(),
        },
        GFP_KERNEL,
    )?;
    id.qp()
        .ok_or(EINVAL)?
        .post_recv(owner, |o| Ok(Some(o.buf.sge(0, INFO_LEN)?)))?;
    id.resolve_route(5000)?;
    client.wait(ROUTE_RESOLVED, 10_000)?;
    id.connect(&conn_param(b"rnbd-rs rdma selftest"))?;
    client.wait(ESTABLISHED, 20_000)?;
    client.wait(INFO_RECEIVED, 20_000)?;
    let remote_len = client.remote_len.load(Ordering::Acquire) as usize;
    if remote_len != p.len {
        pr_err!("server offers {} bytes, want {}\n", remote_len, p.len);
        return Err(eproto());
    }
    let mut data = DmaBuf::new(&pd, p.len, Direction::ToDevice, GFP_KERNEL)?;
    data.with_cpu_mut(|b| b.iter_mut().enumerate().for_each(|(i, v)| *v = pattern(i)));
    let (remote_addr, rkey) = (
        client.remote_addr.load(Ordering::Acquire),
        client.rkey.load(Ordering::Acquire),
    );
    let owner = Posted::new(
        Written {
            buf: data,
            client: client.clone(),
        },
        GFP_KERNEL,
    )?;
    id.qp().ok_or(EINVAL)?.post_send(owner, |o| {
        Ok([SendOp::WriteImm {
            sge: Some(o.buf.sge(0, o.buf.len())?),
            remote_addr,
            rkey,
            imm: expected_imm(),
        }])
    })?;
    client.wait(WRITE_DONE, 20_000)?;
    pr_info!("RDMA WRITE WITH IMM of {} bytes completed\n", p.len);
    Ok(id)
}

// ---------------------------------------------------------------- module --

enum RdmaSelftest {
    Server {
        server: Arc<Server>,
        listener: Option<CmId<Listener>>,
    },
    Client {
        id: Option<CmId<ClientHandler>>,
    },
}

impl kernel::Module for RdmaSelftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = params()?;
        if p.server {
            let server = Arc::pin_init(
                pin_init!(Server { len: p.len, conn <- new_mutex!(None) }),
                GFP_KERNEL,
            )?;
            let listener = CmId::new(Arc::new(Listener(server.clone()), GFP_KERNEL)?)?;
            listener.bind(p.addr)?;
            listener.listen(4)?;
            pr_info!("listening on port {}\n", p.addr.port);
            Ok(Self::Server {
                server,
                listener: Some(listener),
            })
        } else {
            match run_client(&p) {
                Ok(id) => Ok(Self::Client { id: Some(id) }),
                Err(e) => {
                    pr_err!("client failed: {:?}\n", e);
                    Err(e)
                }
            }
        }
    }
}

impl Drop for RdmaSelftest {
    fn drop(&mut self) {
        match self {
            Self::Server { server, listener } => {
                drop(listener.take());
                // Breaks the cycle server -> conn -> handler -> server.
                let conn = server.conn.lock().take();
                if let Some(c) = &conn {
                    let _ = c.id.disconnect();
                }
                drop(conn);
            }
            Self::Client { id } => {
                if let Some(id) = id.take() {
                    let _ = id.disconnect();
                }
            }
        }
        pr_info!("unloaded\n");
    }
}
