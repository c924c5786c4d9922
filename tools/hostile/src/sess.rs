// SPDX-License-Identifier: GPL-2.0
//! The client side of RTRS and RNBD, done by hand so that any field can be
//! wrong: connections, the info exchange, requests written into the
//! server's chunks, and the answers.

use crate::ffi::{Channel, Con, EvType, Mr, Op, WC_RECV, WC_RECV_RDMA_WITH_IMM};
use proto::rnbd::{self, AccessMode, MsgHdr, MsgIo, MsgType as RMsg, OpenRsp, SessInfo};
use proto::rtrs::{self as w, ConnReq, ConnRsp, Imm, InfoReq, InfoRsp, RdmaReadHdr, RdmaWrite, SgDesc};
use proto::wire::{Le16, Le32, Le64};

/// How long we wait for the server to act before calling it "no answer".
pub const ANSWER_MS: i32 = 8000;

/// What the server did with our input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connect request was rejected (errno from its private data, or
    /// the rdma_cm status).
    Rejected(i32),
    /// The connection was refused or failed to connect.
    Refused(String),
    /// The path was closed (disconnect, flushed or failed work).
    Closed(String),
    /// The request was answered with this errno (0: success).
    Answer(i32),
    /// Nothing happened within [`ANSWER_MS`], connection still up.
    Ignored,
    /// The connection was accepted.
    Accepted,
}

impl Outcome {
    /// Short name for reports.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Refused(_) => "refused",
            Self::Closed(_) => "closed",
            Self::Answer(0) => "answered-ok",
            Self::Answer(_) => "answered-error",
            Self::Ignored => "ignored",
            Self::Accepted => "accepted",
        }
    }
}

/// Where the server is.
#[derive(Clone, Debug)]
pub struct Target {
    pub dst: String,
    pub port: u16,
    /// A device the server exports (relative to its dev_search_path).
    pub dev: String,
}

/// One connection of a path.
pub struct Link {
    /// Receive buffers: [`RECV_SLOTS`] slots of [`RECV_SLOT`] bytes.  Declared
    /// before `con`: dropped first.
    pub recv: Mr,
    pub con: Con,
    pub ch: Channel,
}

pub const RECV_SLOTS: u32 = 64;
// Large enough for an info response of 1023 chunks (8 + 16 * queue depth).
pub const RECV_SLOT: u32 = 16384;

/// Result of a connect attempt.
pub enum Connected {
    Up(Link, ConnRsp),
    Down(Outcome),
}

/// Connects one id with raw private data; waits for the outcome.
pub fn connect_raw(t: &Target, private: &[u8]) -> Result<Connected, String> {
    let ch = Channel::new()?;
    let con = Con::new(&ch)?;
    con.resolve(&t.dst, t.port, 5000)?;
    con.setup_qp(256, RECV_SLOTS + 8)?;
    let mut recv = con.mr((RECV_SLOTS * RECV_SLOT) as usize)?;
    let _ = recv.buf();
    for i in 0..RECV_SLOTS {
        con.post_recv(Some(&recv), i * RECV_SLOT, RECV_SLOT, i as u64)?;
    }
    con.connect(private)?;
    loop {
        let Some(ev) = ch.event(ANSWER_MS)? else {
            return Ok(Connected::Down(Outcome::Refused("no answer to the connect request".into())));
        };
        match ev.ty {
            EvType::Established => {
                let rsp = ConnRsp::from_bytes(&ev.private).unwrap_or_else(|_| ConnRsp::zeroed());
                return Ok(Connected::Up(Link { recv, con, ch }, rsp));
            }
            EvType::Rejected => {
                let errno = ConnRsp::from_bytes(&ev.private).map(|r| r.reject_errno() as i32).unwrap_or(ev.status);
                return Ok(Connected::Down(Outcome::Rejected(errno)));
            }
            EvType::ConnectError | EvType::Unreachable => {
                return Ok(Connected::Down(Outcome::Refused(format!("{:?} status {}", ev.ty, ev.status))));
            }
            _ => {}
        }
    }
}

/// The parameters of a connect request, each free to be wrong.
#[derive(Clone, Copy)]
pub struct Req {
    pub cid: u16,
    pub cid_num: u16,
    pub sess_uuid: [u8; 16],
    pub paths_uuid: [u8; 16],
    pub first: bool,
}

impl Req {
    pub fn bytes(&self) -> [u8; 56] {
        ConnReq::new(self.cid, self.cid_num, 0, self.sess_uuid, self.paths_uuid, self.first).to_bytes()
    }
}

pub fn uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        let hex: Vec<u8> = b.iter().copied().filter(|c| c.is_ascii_hexdigit()).collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            u[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
        }
    }
    u
}

/// The server's geometry from its accept.
#[derive(Clone, Copy, Debug)]
pub struct Geo {
    pub queue_depth: u32,
    pub max_io: u32,
    pub chunk: u32,
    pub mem_bits: u32,
}

impl Geo {
    fn from(r: &ConnRsp) -> Result<Self, String> {
        let qd = r.queue_depth.get() as u32;
        let mem_bits = w::mem_bits(qd).ok_or("bad queue depth")?;
        let chunk = r.max_io_size.get().checked_add(r.max_hdr_size.get()).ok_or("geometry overflow")?;
        Ok(Self {
            queue_depth: qd,
            max_io: r.max_io_size.get(),
            chunk,
            mem_bits,
        })
    }
}

/// A complete session with one path: cid 0 plus `cid_num - 1` IO
/// connections, info exchanged.
pub struct Sess {
    pub links: Vec<Link>,
    pub geo: Geo,
    /// Chunk addresses and keys from the info response.
    pub chunks: Vec<(u64, u32)>,
    /// Local buffer the requests are built in (one `chunk` per slot).
    pub out: Vec<Mr>,
    /// Read buffers (one per link, max_io bytes).
    pub rd: Vec<Mr>,
    pub name: String,
}

impl Sess {
    /// Connects cid 0..cid_num; `None` with the outcome if a connect failed.
    pub fn connect(t: &Target, cid_num: u16) -> Result<Result<Self, Outcome>, String> {
        Self::connect_to(t, cid_num, uuid())
    }

    /// As [`Sess::connect`], as a path of session `paths_uuid`.
    pub fn connect_to(t: &Target, cid_num: u16, paths_uuid: [u8; 16]) -> Result<Result<Self, Outcome>, String> {
        let sess_uuid = uuid();
        let mut links = Vec::new();
        let mut geo = None;
        for cid in 0..cid_num {
            let r = Req { cid, cid_num, sess_uuid, paths_uuid, first: true };
            match connect_raw(t, &r.bytes())? {
                Connected::Up(l, rsp) => {
                    if geo.is_none() {
                        geo = Some(Geo::from(&rsp)?);
                    }
                    links.push(l);
                }
                Connected::Down(o) => return Ok(Err(o)),
            }
        }
        let geo = geo.ok_or("no connection")?;
        let mut out = Vec::new();
        let mut rd = Vec::new();
        for l in &links {
            out.push(l.con.mr(geo.chunk as usize)?);
            rd.push(l.con.mr(geo.max_io.max(4096) as usize)?);
        }
        Ok(Ok(Self { links, geo, chunks: Vec::new(), out, rd, name: String::new() }))
    }

    /// Sends `msg` as the info request on cid 0 (a SEND).
    pub fn send_info_raw(&mut self, msg: &[u8]) -> Result<(), String> {
        let l = 0;
        let n = msg.len().min(self.out[l].buf().len());
        self.out[l].buf()[..n].copy_from_slice(&msg[..n]);
        self.links[l].con.post_send(Op::Send, Some(&self.out[l]), 0, n as u32, 0, 0, 1 << 40)?;
        Ok(())
    }

    /// The normal info exchange; returns the outcome if it failed.
    pub fn info(&mut self, name: &str) -> Result<Option<Outcome>, String> {
        self.name = name.to_string();
        let m = InfoReq::new(name.as_bytes()).ok_or("name too long")?.to_bytes();
        self.send_info_raw(&m)?;
        self.wait_info()
    }

    /// Waits for the info response after [`Sess::send_info_raw`].
    pub fn wait_info(&mut self) -> Result<Option<Outcome>, String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ANSWER_MS as u64);
        while std::time::Instant::now() < deadline {
            if let Some(o) = self.closed_event()? {
                return Ok(Some(o));
            }
            let Some(wc) = self.links[0].con.poll(100)? else { continue };
            if wc.status != 0 {
                return Ok(Some(Outcome::Closed(format!("completion status {}", wc.status))));
            }
            if wc.opcode == WC_RECV {
                let slot = wc.wr_id as u32;
                let len = wc.byte_len as usize;
                let b = self.links[0].recv.buf()[(slot * RECV_SLOT) as usize..][..len.min(RECV_SLOT as usize)].to_vec();
                // The info response may be longer than a slot: the slots are
                // consecutive, so read on from the MR.
                let full = if len > RECV_SLOT as usize {
                    self.links[0].recv.buf()[(slot * RECV_SLOT) as usize..][..len].to_vec()
                } else {
                    b
                };
                let rsp = InfoRsp::parse(&full).map_err(|e| format!("info response: {:?}", e))?;
                let mut chunks = vec![(0u64, 0u32); self.geo.queue_depth as usize];
                w::info_rsp_bufs(&rsp, self.geo.queue_depth, self.geo.chunk, |i, a, k| chunks[i as usize] = (a, k))
                    .map_err(|e| format!("info response: {:?}", e))?;
                self.chunks = chunks;
                return Ok(None);
            }
        }
        Ok(Some(Outcome::Ignored))
    }

    /// A disconnect event on any link, as an outcome.
    pub fn closed_event(&mut self) -> Result<Option<Outcome>, String> {
        for l in &self.links {
            if let Some(ev) = l.ch.event(0)? {
                if matches!(ev.ty, EvType::Disconnected | EvType::Other(_) | EvType::ConnectError) {
                    return Ok(Some(Outcome::Closed(format!("{:?}", ev.ty))));
                }
            }
        }
        Ok(None)
    }

    /// Writes `bytes` at offset 0 of chunk `buf_id` and the immediate
    /// `imm` on link `l` (one RDMA WRITE WITH IMM).
    pub fn write_imm(&mut self, l: usize, buf_id: u32, bytes: &[u8], imm: u32) -> Result<(), String> {
        let (addr, key) = self.chunks.get(buf_id as usize).copied().unwrap_or((0, 0));
        let n = bytes.len().min(self.out[l].buf().len());
        self.out[l].buf()[..n].copy_from_slice(&bytes[..n]);
        self.links[l].con.post_send(Op::WriteImm(imm), Some(&self.out[l]), 0, n as u32, addr, key, 2 << 40)
    }

    /// Keeps a path that is only being held: reaps the admin connection's
    /// completions (re-posting its receives) and sends an immediate, which
    /// the server counts as a sign of life.  Without it a path held for
    /// minutes (the 129-path kind under a debug kernel) is closed for
    /// missed heartbeats, which nobody answered.
    pub fn keepalive(&mut self) -> Result<(), String> {
        while let Some(wc) = self.links[0].con.poll(0)? {
            if wc.status == 0 && (wc.opcode == WC_RECV || wc.opcode == WC_RECV_RDMA_WITH_IMM) {
                let slot = (wc.wr_id as u32) % RECV_SLOTS;
                self.links[0].con.post_recv(Some(&self.links[0].recv), slot * RECV_SLOT, RECV_SLOT, slot as u64)?;
            }
        }
        self.imm_only(0, Imm::HbAck.encode())
    }

    /// Just an immediate (no data) on link `l`.
    pub fn imm_only(&mut self, l: usize, imm: u32) -> Result<(), String> {
        self.links[l].con.post_send(Op::WriteImm(imm), None, 0, 0, 0, 0, 3 << 40)
    }

    /// A request in chunk `buf_id`: `data`, then `usr`, then the RTRS
    /// message `msg`; the immediate points at `msg`.
    pub fn request(&mut self, l: usize, buf_id: u32, data: &[u8], usr: &[u8], msg: &[u8]) -> Result<(), String> {
        let mut b = Vec::with_capacity(data.len() + usr.len() + msg.len());
        b.extend_from_slice(data);
        b.extend_from_slice(usr);
        b.extend_from_slice(msg);
        let off = (data.len() + usr.len()) as u32;
        let payload = (buf_id << self.geo.mem_bits) | off;
        self.write_imm(l, buf_id, &b, Imm::IoReq { payload }.encode())
    }

    /// A write request's RTRS message.
    pub fn write_msg(usr_len: u16) -> Vec<u8> {
        RdmaWrite { ty: Le16::new(w::MsgType::Write as u16), usr_len: Le16::new(usr_len) }.to_bytes().to_vec()
    }

    /// A read request's RTRS message into link `l`'s read buffer.
    pub fn read_msg(&self, l: usize, usr_len: u16, flags: u16, sg_cnt: u16, len: u32) -> Vec<u8> {
        let mut v = RdmaReadHdr {
            ty: Le16::new(w::MsgType::Read as u16),
            usr_len: Le16::new(usr_len),
            flags: Le16::new(flags),
            sg_cnt: Le16::new(sg_cnt),
        }
        .to_bytes()
        .to_vec();
        let d = SgDesc { addr: Le64::new(self.rd[l].addr()), key: Le32::new(self.rd[l].rkey()), len: Le32::new(len) };
        v.extend_from_slice(&d.to_bytes());
        v
    }

    /// Waits for the answer to a request (any IO response immediate), or
    /// the path closing.
    pub fn answer(&mut self, l: usize) -> Result<Outcome, String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ANSWER_MS as u64);
        while std::time::Instant::now() < deadline {
            if let Some(o) = self.closed_event()? {
                return Ok(o);
            }
            let Some(wc) = self.links[l].con.poll(50)? else { continue };
            if wc.status != 0 {
                return Ok(Outcome::Closed(format!("completion status {} (op {})", wc.status, wc.opcode)));
            }
            if wc.opcode == WC_RECV || wc.opcode == WC_RECV_RDMA_WITH_IMM {
                let slot = (wc.wr_id as u32) % RECV_SLOTS;
                self.links[l].con.post_recv(Some(&self.links[l].recv), slot * RECV_SLOT, RECV_SLOT, slot as u64)?;
                if wc.has_imm == 0 {
                    continue; // SEND_WITH_INV without an immediate
                }
                // A SEND WITH IMM carries an rkey_rsp: the chunk's new key
                // (servers that invalidate after each request).
                if wc.opcode == WC_RECV && wc.byte_len as usize >= w::RkeyRsp::SIZE {
                    let off = (slot * RECV_SLOT) as usize;
                    let b = self.links[l].recv.buf()[off..off + w::RkeyRsp::SIZE].to_vec();
                    if let Ok(r) = w::RkeyRsp::from_bytes(&b) {
                        if r.ty.get() == w::MsgType::RkeyRsp as u16 {
                            if let Some(c) = self.chunks.get_mut(r.buf_id.get() as usize) {
                                c.1 = r.rkey.get();
                            }
                        }
                    }
                }
                match Imm::try_from(wc.imm) {
                    Ok(Imm::IoRsp { errno, .. }) => return Ok(Outcome::Answer(errno)),
                    Ok(Imm::HbMsg) => {
                        let _ = self.imm_only(0, Imm::HbAck.encode());
                    }
                    _ => {}
                }
            }
        }
        Ok(Outcome::Ignored)
    }

    /// The read buffer of link `l`.
    pub fn read_data(&mut self, l: usize, n: usize) -> Vec<u8> {
        self.rd[l].buf()[..n].to_vec()
    }

    /// Tears the session down.
    pub fn close(self) {
        for l in &self.links {
            l.con.disconnect();
        }
        drop(self);
    }

    // ---- RNBD ----

    /// SESS_INFO with version `ver` on link `l` (a read of 36 bytes).
    pub fn sess_info(&mut self, l: usize, ver: u8) -> Result<Outcome, String> {
        let mut m = SessInfo::new(false);
        m.ver = ver;
        let usr = m.to_bytes();
        let msg = self.read_msg(l, usr.len() as u16, 0, 1, SessInfo::SIZE as u32);
        self.request(l, 0, &[0u8; SessInfo::SIZE], &usr, &msg)?;
        self.answer(l)
    }

    /// OPEN of a raw open message; returns the outcome and the device id.
    pub fn open_raw(&mut self, l: usize, buf_id: u32, usr: &[u8]) -> Result<(Outcome, u32), String> {
        let msg = self.read_msg(l, usr.len() as u16, 0, 1, OpenRsp::SIZE as u32);
        self.request(l, buf_id, &[0u8; OpenRsp::SIZE], usr, &msg)?;
        let o = self.answer(l)?;
        let rsp = OpenRsp::from_bytes(&self.read_data(l, OpenRsp::SIZE)).map_err(|e| format!("{:?}", e))?;
        Ok((o, rsp.device_id.get()))
    }

    /// OPEN of `dev` with `mode`.
    pub fn open(&mut self, l: usize, dev: &str, mode: AccessMode) -> Result<(Outcome, u32), String> {
        let m = rnbd::Open::new(mode, dev.as_bytes()).ok_or("device name too long")?;
        self.open_raw(l, 1, &m.to_bytes())
    }

    /// An RNBD IO message.
    pub fn io_msg(dev: u32, sector: u64, rw: u32, bi_size: u32, prio: u16) -> Vec<u8> {
        MsgIo {
            hdr: MsgHdr::new(RMsg::Io),
            device_id: Le32::new(dev),
            sector: Le64::new(sector),
            rw: Le32::new(rw),
            bi_size: Le32::new(bi_size),
            prio: Le16::new(prio),
        }
        .to_bytes()
        .to_vec()
    }

    /// An RNBD write-type request (data carried) in chunk `buf_id`.
    pub fn rnbd_write(&mut self, l: usize, buf_id: u32, data: &[u8], usr: &[u8]) -> Result<Outcome, String> {
        let msg = Self::write_msg(usr.len() as u16);
        self.request(l, buf_id, data, usr, &msg)?;
        self.answer(l)
    }

    /// An RNBD read-type request of `len` bytes in chunk `buf_id`.
    pub fn rnbd_read(&mut self, l: usize, buf_id: u32, len: u32, usr: &[u8]) -> Result<Outcome, String> {
        let msg = self.read_msg(l, usr.len() as u16, 0, 1, len);
        let data = vec![0u8; len as usize];
        self.request(l, buf_id, &data, usr, &msg)?;
        self.answer(l)
    }
}
