// SPDX-License-Identifier: GPL-2.0
//! Hostile server: plays an RTRS/RNBD server for a client that maps a
//! device from it, and gets one thing wrong (the kind).  The client must
//! fail the map (or the IO) with an error, within bounded time, without a
//! kernel report; the test script checks that side.

use crate::ffi::{Channel, Con, EvType, Mr, Op, WC_RECV, WC_RECV_RDMA_WITH_IMM};
use proto::rnbd::{self, MsgType as RMsg, OpenRsp, SessInfo};
use proto::rtrs::{self as w, ConnReq, ConnRsp, Imm, InfoRspHdr, SgDesc};
use proto::wire::{Le16, Le32, Le64};
use std::time::{Duration, Instant};

/// Geometry of the well-behaved parts: 8 chunks of 128 KiB.
const QD: u32 = 8;
const MAX_HDR: u32 = 4096;
const MAX_IO: u32 = 128 * 1024 - MAX_HDR;
const CHUNK: u32 = MAX_IO + MAX_HDR;
const SLOTS: u32 = 128;
const SLOT: u32 = 512;

pub struct Kind {
    pub name: &'static str,
    pub what: &'static str,
}

macro_rules! kinds {
    ($($name:literal : $what:literal,)+) => {
        pub const KINDS: &[Kind] = &[$(Kind { name: $name, what: $what }),+];
    };
}

kinds! {
    "rsp-geometry-overflow": "conn_rsp max_io_size 0xffffffff + max_hdr_size 1 overflows u32",
    "rsp-max-io-tiny": "conn_rsp max_io_size 512 (below a page)",
    "rsp-max-io-unaligned": "conn_rsp max_io_size 100000 (not a multiple of 512)",
    "rsp-max-hdr-0": "conn_rsp max_hdr_size 0",
    "rsp-queue-depth-1": "conn_rsp queue_depth 1",
    "rsp-queue-depth-65535": "conn_rsp queue_depth 65535 (then an info response for 8)",
    "rsp-bad-magic": "conn_rsp magic 0",
    "reject-positive-errno": "reject with errno +32767",
    "reject-errno-min": "reject with errno -32768",
    "info-sg-cnt-0": "info_rsp with no descriptors",
    "info-short-coverage": "info_rsp covering 7 of 8 chunks",
    "info-ragged": "info_rsp descriptors of 1.5 chunks",
    "info-addr-overflow": "info_rsp descriptor address 0xfffffffffffffff0",
    "info-wrong-type": "info_rsp with type READ",
    "iorsp-msg-id-out-of-range": "IO response for msg_id 0x7ffff",
    "iorsp-not-in-flight": "IO response for a permit not in flight",
    "iorsp-duplicated": "the sess_info answer twice",
    "iorsp-with-inval-no-send-inv": "with_inval set, no SEND_WITH_INV",
    "rkey-rsp-mismatch": "rkey_rsp for another buffer than the immediate's",
    "rkey-rsp-out-of-range": "rkey_rsp for buffer 0xffff",
    "sess-info-rsp-bad-type": "sess_info answered with an OPEN_RSP header",
    "open-rsp-lbs-3": "open_rsp logical_block_size 3",
    "open-rsp-lbs-0": "open_rsp logical_block_size 0",
    "open-rsp-pbs-lt-lbs": "open_rsp logical 4096, physical 512",
    "open-rsp-max-hw-sectors-1": "open_rsp max_hw_sectors 1",
    "open-rsp-max-segments-0": "open_rsp max_segments 0",
    "open-rsp-nsectors-max": "open_rsp nsectors u64::MAX",
    "open-never-answered": "OPEN never answered (heartbeats are)",
    "io-never-answered": "the device opens, its IO is never answered (heartbeats are)",
    "good": "a well-behaved server (control: the map must work)",
}

struct SCon {
    recv: Mr,
    send: Mr,
    con: Con,
    cid: u16,
    key: usize,
    up: bool,
}

struct Server {
    kind: &'static str,
    // Declared before the listener: dropped first.
    chunks: Option<Mr>,
    cons: Vec<SCon>,
    listener: Con,
    ch: Channel,
    answered_open: bool,
}

fn conn_rsp(kind: &str) -> ConnRsp {
    let mut r = ConnRsp::accept(QD as u16, MAX_IO, MAX_HDR, kind.starts_with("rkey-rsp"));
    match kind {
        "rsp-geometry-overflow" => {
            r.max_io_size = Le32::new(u32::MAX);
            r.max_hdr_size = Le32::new(1);
        }
        "rsp-max-io-tiny" => r.max_io_size = Le32::new(512),
        "rsp-max-io-unaligned" => r.max_io_size = Le32::new(100_000),
        "rsp-max-hdr-0" => r.max_hdr_size = Le32::new(0),
        "rsp-queue-depth-1" => r.queue_depth = Le16::new(1),
        "rsp-queue-depth-65535" => r.queue_depth = Le16::new(65535),
        "rsp-bad-magic" => r.magic = Le16::new(0),
        _ => {}
    }
    r
}

impl Server {
    fn on_connect(&mut self, c: Con, private: &[u8]) -> Result<(), String> {
        let req = ConnReq::parse(private).map_err(|e| format!("client sent a bad conn_req: {:?}", e))?;
        let cid = req.cid.get();
        match self.kind {
            "reject-positive-errno" => return c.reject(&ConnRsp::reject(0x7fff).to_bytes()).map(|_| drop(c)),
            "reject-errno-min" => return c.reject(&ConnRsp::reject(i16::MIN).to_bytes()).map(|_| drop(c)),
            _ => {}
        }
        c.share_pd(&self.listener);
        c.setup_qp(512, SLOTS + 8)?;
        if self.chunks.is_none() {
            self.chunks = Some(c.mr((QD * CHUNK) as usize)?);
        }
        let recv = c.mr((SLOTS * SLOT) as usize)?;
        let send = c.mr(CHUNK as usize)?;
        for i in 0..SLOTS {
            c.post_recv(Some(&recv), i * SLOT, SLOT, i as u64)?;
        }
        c.accept(&conn_rsp(self.kind).to_bytes())?;
        eprintln!("# accepted cid {} of {}", cid, req.cid_num.get());
        let key = c.key();
        self.cons.push(SCon { recv, send, con: c, cid, key, up: false });
        Ok(())
    }

    fn info_rsp(&mut self, i: usize) -> Result<(), String> {
        let (base, rkey) = {
            let m = self.chunks.as_ref().ok_or("no chunks")?;
            (m.addr(), m.rkey())
        };
        let mut descs: Vec<(u64, u32, u32)> = (0..QD).map(|k| (base + (k * CHUNK) as u64, rkey, CHUNK)).collect();
        let mut ty = w::MsgType::InfoRsp as u16;
        match self.kind {
            "info-sg-cnt-0" => descs.clear(),
            "info-short-coverage" => {
                descs.pop();
            }
            "info-ragged" => {
                descs = vec![(base, rkey, CHUNK + CHUNK / 2); 4];
                descs.push((base, rkey, CHUNK * 2));
            }
            "info-addr-overflow" => descs[3].0 = 0xffff_ffff_ffff_fff0,
            "info-wrong-type" => ty = w::MsgType::Read as u16,
            _ => {}
        }
        let mut b = InfoRspHdr { ty: Le16::new(ty), sg_cnt: Le16::new(descs.len() as u16), reserved: [0; 4] }.to_bytes().to_vec();
        for (a, k, l) in descs {
            b.extend_from_slice(&SgDesc { addr: Le64::new(a), key: Le32::new(k), len: Le32::new(l) }.to_bytes());
        }
        let c = &mut self.cons[i];
        c.send.buf()[..b.len()].copy_from_slice(&b);
        c.con.post_send(Op::Send, Some(&c.send), 0, b.len() as u32, 0, 0, 1)?;
        eprintln!("# info response sent ({} bytes)", b.len());
        Ok(())
    }

    /// Answers the request in chunk `id` whose message is at `off`.
    fn io(&mut self, i: usize, id: u32, off: u32) -> Result<(), String> {
        let chunk = {
            let m = self.chunks.as_mut().ok_or("no chunks")?;
            m.buf()[(id * CHUNK) as usize..][..CHUNK as usize].to_vec()
        };
        let off = off as usize;
        let ty = u16::from_le_bytes([chunk[off], chunk[off + 1]]);
        let usr_len = u16::from_le_bytes([chunk[off + 2], chunk[off + 3]]) as usize;
        let usr = &chunk[off.saturating_sub(usr_len)..off];
        let rtype = rnbd::msg_type(usr).ok();
        // A read's buffer.
        let desc = if ty == w::MsgType::Read as u16 { SgDesc::from_bytes(&chunk[off + 8..]).ok() } else { None };
        let mut reply: Vec<u8> = Vec::new();
        match rtype {
            Some(RMsg::SessInfo) => {
                let mut r = SessInfo::new(true);
                if self.kind == "sess-info-rsp-bad-type" {
                    r.hdr = rnbd::MsgHdr::new(RMsg::OpenRsp);
                }
                reply = r.to_bytes().to_vec();
            }
            Some(RMsg::Open) => {
                if self.kind == "open-never-answered" {
                    eprintln!("# OPEN received, not answering");
                    return Ok(());
                }
                let mut r = OpenRsp::zeroed();
                r.hdr = rnbd::MsgHdr::new(RMsg::OpenRsp);
                r.device_id = Le32::new(0);
                r.nsectors = Le64::new(2048);
                r.max_hw_sectors = Le32::new(256);
                r.logical_block_size = Le16::new(512);
                r.physical_block_size = Le16::new(512);
                r.max_segments = Le16::new(128);
                match self.kind {
                    "open-rsp-lbs-3" => r.logical_block_size = Le16::new(3),
                    "open-rsp-lbs-0" => r.logical_block_size = Le16::new(0),
                    "open-rsp-pbs-lt-lbs" => r.logical_block_size = Le16::new(4096),
                    "open-rsp-max-hw-sectors-1" => r.max_hw_sectors = Le32::new(1),
                    "open-rsp-max-segments-0" => r.max_segments = Le16::new(0),
                    "open-rsp-nsectors-max" => r.nsectors = Le64::new(u64::MAX),
                    _ => {}
                }
                self.answered_open = true;
                reply = r.to_bytes().to_vec();
            }
            Some(RMsg::Io) if self.kind == "io-never-answered" => {
                eprintln!("# IO received, not answering");
                return Ok(());
            }
            _ => {
                // IO or close: reads get zeroes.
                if let Some(d) = desc {
                    reply = vec![0u8; (d.len.get() as usize).min(MAX_IO as usize)];
                }
            }
        }
        let c = &mut self.cons[i];
        if let Some(d) = desc {
            let n = reply.len().min(d.len.get() as usize);
            c.send.buf()[..n].copy_from_slice(&reply[..n]);
            if n > 0 {
                c.con.post_send(Op::Write, Some(&c.send), 0, n as u32, d.addr.get(), d.key.get(), 2)?;
            }
        }
        let mut msg_id = id;
        let mut with_inval = false;
        let mut twice = false;
        let first_answer = rtype == Some(RMsg::SessInfo);
        if first_answer {
            match self.kind {
                "iorsp-msg-id-out-of-range" => msg_id = 0x7ffff,
                "iorsp-not-in-flight" => msg_id = (id + 1) % QD,
                "iorsp-duplicated" => twice = true,
                "iorsp-with-inval-no-send-inv" => with_inval = true,
                _ => {}
            }
        }
        let imm = Imm::IoRsp { msg_id, errno: 0, with_inval }.encode();
        if self.kind.starts_with("rkey-rsp") {
            let rkey = self.chunks.as_ref().map_or(0, |m| m.rkey());
            let buf_id = if self.kind == "rkey-rsp-out-of-range" { 0xffff } else { ((id + 1) % QD) as u16 };
            let m = w::RkeyRsp { ty: Le16::new(w::MsgType::RkeyRsp as u16), buf_id: Le16::new(buf_id), rkey: Le32::new(rkey) };
            let off = (CHUNK - 64) as usize;
            c.send.buf()[off..off + 8].copy_from_slice(&m.to_bytes());
            c.con.post_send(Op::SendImm(imm), Some(&c.send), off as u32, 8, 0, 0, 3)?;
        } else {
            c.con.post_send(Op::WriteImm(imm), None, 0, 0, 0, 0, 3)?;
            if twice {
                c.con.post_send(Op::WriteImm(imm), None, 0, 0, 0, 0, 3)?;
            }
        }
        Ok(())
    }

    fn poll_con(&mut self, i: usize) -> Result<(), String> {
        let Some(wc) = self.cons[i].con.poll(0)? else { return Ok(()) };
        if wc.status != 0 {
            if wc.status != 5 {
                eprintln!("# cid {}: completion status {} (op {})", self.cons[i].cid, wc.status, wc.opcode);
            }
            return Ok(());
        }
        if wc.opcode != WC_RECV && wc.opcode != WC_RECV_RDMA_WITH_IMM {
            return Ok(());
        }
        let slot = (wc.wr_id as u32) % SLOTS;
        {
            let c = &self.cons[i];
            c.con.post_recv(Some(&c.recv), slot * SLOT, SLOT, slot as u64)?;
        }
        if wc.opcode == WC_RECV && wc.has_imm == 0 {
            // The info request.
            return self.info_rsp(i);
        }
        match Imm::try_from(wc.imm) {
            Ok(Imm::IoReq { payload }) => {
                let bits = w::mem_bits(QD).ok_or("qd")?;
                match w::io_req_split(payload, bits, QD) {
                    Some((id, off)) if off + 24 <= CHUNK => self.io(i, id, off),
                    _ => {
                        eprintln!("# bad request immediate {:#x}", wc.imm);
                        Ok(())
                    }
                }
            }
            Ok(Imm::HbMsg) => self.cons[i].con.post_send(Op::WriteImm(Imm::HbAck.encode()), None, 0, 0, 0, 0, 4),
            _ => Ok(()),
        }
    }
}

/// Serves one client for `timeout`, getting `kind` wrong.  Returns when the
/// client has gone (all its connections closed) or the time is up.
pub fn serve(kind: &'static str, ip: &str, port: u16, ready: Option<&str>, timeout: Duration) -> Result<String, String> {
    let ch = Channel::new()?;
    let listener = Con::new(&ch)?;
    listener.listen(ip, port)?;
    listener.alloc_pd()?;
    let mut s = Server { kind, chunks: None, cons: Vec::new(), listener, ch, answered_open: false };
    if let Some(r) = ready {
        std::fs::write(r, b"ready\n").map_err(|e| format!("{}: {}", r, e))?;
    }
    let end = Instant::now() + timeout;
    let mut seen = 0;
    while Instant::now() < end {
        while let Some(ev) = s.ch.event(1)? {
            match ev.ty {
                EvType::ConnectRequest => {
                    if let Some(c) = ev.new_con {
                        seen += 1;
                        if let Err(e) = s.on_connect(c, &ev.private) {
                            eprintln!("# connect: {}", e);
                        }
                    }
                }
                EvType::Established => {
                    if let Some(c) = s.cons.iter_mut().find(|c| c.key == ev.key) {
                        c.up = true;
                    }
                }
                EvType::Disconnected | EvType::Other(_) => {
                    if let Some(p) = s.cons.iter().position(|c| c.key == ev.key) {
                        let c = s.cons.remove(p);
                        eprintln!("# cid {} gone ({:?})", c.cid, ev.ty);
                        c.con.disconnect();
                        drop(c);
                    }
                }
                _ => {}
            }
        }
        for i in 0..s.cons.len() {
            if let Err(e) = s.poll_con(i) {
                eprintln!("# cid {}: {}", s.cons[i].cid, e);
            }
        }
        if seen > 0 && s.cons.is_empty() && !matches!(kind, "reject-positive-errno" | "reject-errno-min") {
            return Ok(format!("client gone after {} connect requests (open answered: {})", seen, s.answered_open));
        }
        if seen > 0 && s.cons.is_empty() {
            return Ok(format!("rejected {} connect requests", seen));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for c in &s.cons {
        c.con.disconnect();
    }
    Ok(format!("time is up; {} connect requests (open answered: {})", seen, s.answered_open))
}
