// SPDX-License-Identifier: GPL-2.0
//! Hostile client: malformed RTRS and RNBD input against a server.
//!
//! Each kind builds what it needs (a bare connect request, a path with its
//! info exchange, an open device), sends one malformed thing and reports
//! what the server did.  A kind passes when the server did one of the
//! things its `expect` allows: refuse, answer with an error, close the
//! offending path.  The test script checks the rest (the server's kernel
//! log, a healthy session beside us, memory afterwards).

use crate::sess::{connect_raw, uuid, Connected, Outcome, Req, Sess, Target};
use proto::rnbd::{self, AccessMode, OpFlags, F_FUA};
use proto::rtrs::{self as w, Imm, InfoReq};
use proto::wire::{Le16, Le32};

type Res = Result<Outcome, String>;

/// Outcome classes a kind accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Want {
    Rejected,
    Closed,
    /// Answered with a negative errno.
    Error,
    /// Answered with this exact negative errno.
    Errno(i32),
    /// Answered (success allowed: harmless input).
    Answered,
    /// Silently ignored, connection up.
    Ignored,
}

impl Want {
    fn accepts(self, o: &Outcome) -> bool {
        match (self, o) {
            (Want::Rejected, Outcome::Rejected(e)) => *e != 0,
            (Want::Rejected, Outcome::Refused(_)) => true,
            (Want::Closed, Outcome::Closed(_)) => true,
            (Want::Error, Outcome::Answer(e)) => *e < 0,
            (Want::Errno(x), Outcome::Answer(e)) => *e == x,
            (Want::Answered, Outcome::Answer(_)) => true,
            (Want::Ignored, Outcome::Ignored) => true,
            _ => false,
        }
    }
}

pub struct Kind {
    pub name: &'static str,
    pub want: &'static [Want],
    pub run: fn(&Target) -> Res,
}

const EINVAL: i32 = -22;
const EPERM: i32 = -1;

// ---- helpers ----

fn conn(t: &Target, bytes: &[u8]) -> Res {
    Ok(match connect_raw(t, bytes)? {
        Connected::Up(l, _) => {
            // Accepted: see whether the server drops it on its own.
            let o = match l.ch.event(3000)? {
                Some(ev) => Outcome::Closed(format!("{:?} after accept", ev.ty)),
                None => Outcome::Accepted,
            };
            l.con.disconnect();
            o
        }
        Connected::Down(o) => o,
    })
}

fn good_req() -> Req {
    Req { cid: 0, cid_num: 1, sess_uuid: uuid(), paths_uuid: uuid(), first: true }
}

/// A path of `cid_num` connections, connected but without info.
fn path(t: &Target, cid_num: u16) -> Result<Sess, String> {
    match Sess::connect(t, cid_num)? {
        Ok(s) => Ok(s),
        Err(o) => Err(format!("setup: connect failed: {:?}", o)),
    }
}

/// A complete path (cid 0 and 1), info exchanged.
fn ready(t: &Target) -> Result<Sess, String> {
    let mut s = path(t, 2)?;
    let name = format!("hostile-{:08x}", u32::from_le_bytes(uuid()[..4].try_into().unwrap_or([0; 4])));
    if let Some(o) = s.info(&name)? {
        return Err(format!("setup: info exchange failed: {:?}", o));
    }
    Ok(s)
}

/// A path with the RNBD session and the exported device open (`mode`).
fn opened(t: &Target, mode: AccessMode) -> Result<(Sess, u32), String> {
    let mut s = ready(t)?;
    match s.sess_info(1, rnbd::VERSION_MAJOR)? {
        Outcome::Answer(0) => {}
        o => return Err(format!("setup: sess_info: {:?}", o)),
    }
    let (o, id) = s.open(1, &t.dev, mode)?;
    if o != Outcome::Answer(0) {
        return Err(format!("setup: open {}: {:?}", t.dev, o));
    }
    Ok((s, id))
}

fn finish(s: Sess, o: Outcome) -> Res {
    s.close();
    Ok(o)
}

fn rnbd_io(t: &Target, mode: AccessMode, f: impl FnOnce(&mut Sess, u32) -> Res) -> Res {
    let (mut s, id) = opened(t, mode)?;
    let o = f(&mut s, id)?;
    finish(s, o)
}

fn rw(op: rnbd::Op, fua: bool) -> u32 {
    OpFlags { op, sync: false, fua }.encode()
}

fn info_raw(t: &Target, msg: &[u8]) -> Res {
    let mut s = path(t, 1)?;
    s.send_info_raw(msg)?;
    let o = s.wait_info()?.unwrap_or(Outcome::Accepted);
    finish(s, o)
}

fn info_name(t: &Target, name: &[u8]) -> Res {
    let mut m = InfoReq::zeroed();
    m.ty = Le16::new(w::MsgType::InfoReq as u16);
    let n = name.len().min(w::NAME_MAX);
    m.pathname[..n].copy_from_slice(&name[..n]);
    info_raw(t, &m.to_bytes())
}

/// A request in chunk 0 with a raw RTRS message and user header.
fn raw_io(t: &Target, data: &[u8], usr: &[u8], msg: &[u8]) -> Res {
    let mut s = ready(t)?;
    s.request(1, 0, data, usr, msg)?;
    let o = s.answer(1)?;
    finish(s, o)
}

fn sess_info_usr() -> Vec<u8> {
    rnbd::SessInfo::new(false).to_bytes().to_vec()
}

// ---- the kinds ----

macro_rules! kinds {
    ($($name:literal [$($want:expr),+] => $run:expr;)+) => {
        pub const KINDS: &[Kind] = &[$(Kind { name: $name, want: &[$($want),+], run: $run }),+];
    };
}

use Want::*;

kinds! {
    // conn_req
    "connreq-bad-magic" [Rejected] => |t| { let mut b = good_req().bytes(); b[2] ^= 0xff; conn(t, &b) };
    "connreq-bad-version" [Rejected] => |t| { let mut b = good_req().bytes(); b[5] = 3; conn(t, &b) };
    // rdma_cm pads private data to its full size: a short request arrives
    // as one with zeroes after what was sent.
    "connreq-truncated-to-8-bytes" [Rejected] => |t| conn(t, &good_req().bytes()[..8]);
    "connreq-empty" [Rejected] => |t| conn(t, &[]);
    "connreq-cid-num-0" [Rejected] => |t| conn(t, &Req { cid_num: 0, ..good_req() }.bytes());
    "connreq-cid-num-too-large" [Rejected] => |t| conn(t, &Req { cid_num: 4097, ..good_req() }.bytes());
    "connreq-cid-ge-cid-num" [Rejected] => |t| conn(t, &Req { cid: 3, cid_num: 3, ..good_req() }.bytes());
    "connreq-not-first-conn" [Rejected] => |t| conn(t, &Req { first: false, ..good_req() }.bytes());
    "connreq-same-cid-twice" [Rejected] => |t| {
        let r = Req { cid_num: 2, ..good_req() };
        let Connected::Up(l, _) = connect_raw(t, &r.bytes())? else { return Err("setup: first connect failed".into()) };
        let o = conn(t, &r.bytes())?;
        l.con.disconnect();
        Ok(o)
    };
    "connreq-cid-num-changes" [Rejected] => |t| {
        let r = Req { cid_num: 3, ..good_req() };
        let Connected::Up(l, _) = connect_raw(t, &r.bytes())? else { return Err("setup: first connect failed".into()) };
        let o = conn(t, &Req { cid: 1, cid_num: 4, ..r }.bytes())?;
        l.con.disconnect();
        Ok(o)
    };
    "connreq-first-conn-on-live-path" [Rejected, Closed] => |t| {
        // cid 0 again with first_conn for a path that already has it.
        let r = Req { cid_num: 2, ..good_req() };
        let Connected::Up(l, _) = connect_raw(t, &r.bytes())? else { return Err("setup: first connect failed".into()) };
        let o = conn(t, &Req { cid: 0, ..r }.bytes())?;
        l.con.disconnect();
        Ok(o)
    };
    "connreq-unknown-flags" [Rejected, Closed] => |t| {
        // Reserved bytes and flags set: upstream ignores them; the path
        // must still work or be refused, never confuse the server.  We
        // connect and never finish the path: the server's setup timeout
        // must close it.
        let mut b = good_req().bytes();
        b[44] = 0xff;
        for x in &mut b[45..56] { *x = 0xff; }
        let Connected::Up(l, _) = connect_raw(t, &b)? else { return Ok(Outcome::Rejected(-1)) };
        let o = match l.ch.event(crate::setup_timeout_ms())? {
            Some(ev) => Outcome::Closed(format!("{:?}", ev.ty)),
            None => Outcome::Ignored,
        };
        Ok(o)
    };
    "connreq-session-flood" [Rejected] => |t| {
        // Fresh sessions until the server refuses one; every accepted one
        // holds a whole chunk pool on the server.
        let mut held = Vec::new();
        let limit = crate::flood_limit();
        for _ in 0..limit {
            match connect_raw(t, &good_req().bytes())? {
                Connected::Up(l, _) => held.push(l),
                Connected::Down(o) => {
                    eprintln!("# flood: refused after {} sessions", held.len());
                    for l in &held { l.con.disconnect(); }
                    return Ok(o);
                }
            }
        }
        for l in &held { l.con.disconnect(); }
        Ok(Outcome::Accepted)
    };
    "connreq-129-paths" [Rejected] => |t| {
        // Complete paths (info exchanged), so that the server's setup
        // deadline does not close the first ones while we add the rest.
        let paths_uuid = uuid();
        let mut held: Vec<Sess> = Vec::new();
        let name = format!("hostile-paths-{:08x}", u32::from_le_bytes(paths_uuid[..4].try_into().unwrap_or([0; 4])));
        let mut alive = std::time::Instant::now();
        for i in 0..=w::MAX_PATHS_NUM {
            if alive.elapsed() > std::time::Duration::from_secs(2) {
                for s in held.iter_mut() {
                    s.keepalive()?;
                }
                alive = std::time::Instant::now();
            }
            match Sess::connect_to(t, 1, paths_uuid)? {
                Ok(mut s) => {
                    if let Some(o) = s.info(&name)? {
                        return Err(format!("path {}: info exchange failed: {:?}", i + 1, o));
                    }
                    held.push(s)
                }
                Err(o) => {
                    eprintln!("# paths: refused path {}", i + 1);
                    held.into_iter().for_each(Sess::close);
                    // A server refuses a second path between the same two
                    // addresses (EEXIST), as upstream's does: from one
                    // client address that comes before any path limit.
                    if i == 1 && matches!(o, Outcome::Rejected(e) if e == -17) {
                        eprintln!("# paths: path 2 refused with EEXIST (same addresses)");
                        return Ok(o);
                    }
                    if (i as u32) < w::MAX_PATHS_NUM.min(crate::paths_limit()) {
                        return Err(format!("path {} refused, before the limit: {:?}", i + 1, o));
                    }
                    return Ok(o);
                }
            }
        }
        held.into_iter().for_each(Sess::close);
        Ok(Outcome::Accepted)
    };
    // info_req
    "info-no-nul" [Closed] => |t| info_name(t, &[b'a'; 255]);
    "info-empty-name" [Closed] => |t| info_name(t, b"");
    "info-slash" [Closed] => |t| info_name(t, b"a/b");
    "info-dot" [Closed] => |t| info_name(t, b".");
    "info-newline" [Closed] => |t| info_name(t, b"a\nb");
    "info-wrong-type" [Closed] => |t| {
        let mut m = InfoReq::new(b"x").ok_or("name")?;
        m.ty = Le16::new(5);
        info_raw(t, &m.to_bytes())
    };
    "info-short" [Closed] => |t| info_raw(t, &InfoReq::new(b"short").ok_or("name")?.to_bytes()[..100]);
    "info-long" [Closed] => |t| {
        let mut b = InfoReq::new(b"long").ok_or("name")?.to_bytes().to_vec();
        b.resize(400, 0);
        info_raw(t, &b)
    };
    "info-twice" [Closed] => |t| {
        let mut s = path(t, 1)?;
        if let Some(o) = s.info("hostile-twice")? { return Err(format!("setup: {:?}", o)); }
        s.send_info_raw(&InfoReq::new(b"hostile-twice").ok_or("name")?.to_bytes())?;
        let o = s.answer(0)?;
        finish(s, o)
    };
    "info-name-of-other-session" [Closed] => |t| {
        let a = ready(t)?;
        let name = a.name.clone();
        let mut b = path(t, 1)?;
        let o = b.info(&name)?.unwrap_or(Outcome::Accepted);
        a.close();
        finish(b, o)
    };
    // immediates
    "imm-unknown-type" [Ignored, Closed] => |t| {
        let mut s = ready(t)?;
        s.imm_only(1, 5 << 28)?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "imm-buf-id-ge-queue-depth" [Closed] => |t| {
        let mut s = ready(t)?;
        let max_id = (1u32 << (w::IMM_PAYLOAD_BITS - s.geo.mem_bits)) - 1;
        if max_id < s.geo.queue_depth { return Err(format!("server queue depth {} leaves no invalid buffer id (load it with a non-power-of-two sess_queue_depth)", s.geo.queue_depth)); }
        s.imm_only(1, Imm::IoReq { payload: s.geo.queue_depth << s.geo.mem_bits }.encode())?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "imm-off-eq-chunk-size" [Closed, Error] => |t| {
        let mut s = ready(t)?;
        if s.geo.chunk >= 1 << s.geo.mem_bits { return Err("chunk size not encodable".into()); }
        s.imm_only(1, Imm::IoReq { payload: s.geo.chunk }.encode())?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "imm-off-in-last-bytes" [Closed, Error] => |t| {
        let mut s = ready(t)?;
        s.imm_only(1, Imm::IoReq { payload: s.geo.chunk - 2 }.encode())?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "imm-busy-chunk" [Closed, Answered] => |t| {
        // Two requests in one chunk back to back: the second arrives while
        // the first is in flight (or just after its answer).
        let (mut s, id) = opened(t, AccessMode::Rw)?;
        let usr = Sess::io_msg(id, 0, rw(rnbd::Op::Write, false), 4096, 0);
        let msg = Sess::write_msg(usr.len() as u16);
        s.request(1, 2, &[0x5a; 4096], &usr, &msg)?;
        s.request(1, 2, &[0x5a; 4096], &usr, &msg)?;
        let a = s.answer(1)?;
        let b = if matches!(a, Outcome::Answer(_)) { s.answer(1)? } else { a.clone() };
        finish(s, if matches!(b, Outcome::Closed(_)) { b } else { a })
    };
    "imm-before-info" [Closed] => |t| {
        let mut s = path(t, 1)?;
        s.imm_only(0, Imm::IoReq { payload: 100 }.encode())?;
        let o = s.wait_info()?.unwrap_or(Outcome::Accepted);
        finish(s, o)
    };
    "imm-io-response-type-from-client" [Ignored, Closed] => |t| {
        let mut s = ready(t)?;
        s.imm_only(1, Imm::IoRsp { msg_id: 3, errno: 0, with_inval: true }.encode())?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    // RTRS messages in a chunk
    "msg-unknown-type" [Closed, Error] => |t| raw_io(t, &[], &sess_info_usr(), &7u16.to_le_bytes());
    "msg-info-type-in-chunk" [Closed, Error] => |t| raw_io(t, &[], &sess_info_usr(), &[0, 0, 0, 0]);
    "msg-usr-len-gt-off" [Errno(EINVAL)] => |t| raw_io(t, &[], &sess_info_usr(), &Sess::write_msg(200));
    "msg-usr-len-gt-max-hdr" [Errno(EINVAL), Closed] => |t| {
        let usr = vec![0u8; 8192];
        raw_io(t, &[], &usr, &Sess::write_msg(8192))
    };
    "msg-read-sgcnt0-need-inval" [Errno(EINVAL)] => |t| {
        let mut s = ready(t)?;
        let usr = sess_info_usr();
        let msg = s.read_msg(1, usr.len() as u16, w::MSG_NEED_INVAL_F, 0, 36);
        s.request(1, 0, &[0; 36], &usr, &msg)?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "msg-read-sgcnt-2" [Errno(EINVAL)] => |t| read_variant(t, 0, 2, 36);
    "msg-read-sgcnt-ffff" [Errno(EINVAL)] => |t| read_variant(t, 0, 0xffff, 36);
    "msg-read-desc-len-0" [Errno(EINVAL)] => |t| read_variant(t, 0, 1, 0);
    "msg-read-desc-len-gt-max-io" [Errno(EINVAL)] => |t| read_variant(t, 0, 1, 0x7fff_ffff);
    "msg-read-desc-len-gt-data-len" [Errno(EINVAL)] => |t| {
        // 36 bytes of room, 4096 asked: upstream would send 4060 bytes of
        // whatever the chunk held before.
        let mut s = ready(t)?;
        let usr = sess_info_usr();
        let msg = s.read_msg(1, usr.len() as u16, 0, 1, 4096);
        s.request(1, 0, &[0; 36], &usr, &msg)?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    "msg-read-bogus-rkey" [Closed, Error] => |t| {
        let mut s = ready(t)?;
        if s.sess_info(1, 2)? != Outcome::Answer(0) { return Err("setup: sess_info".into()); }
        let usr = sess_info_usr();
        let mut msg = s.read_msg(1, usr.len() as u16, 0, 1, 36);
        msg[8 + 8..8 + 12].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        s.request(1, 0, &[0; 36], &usr, &msg)?;
        let o = s.answer(1)?;
        finish(s, o)
    };
    // RNBD messages
    "rnbd-short-message" [Errno(EINVAL)] => |t| raw_io(t, &[], &[4, 0], &Sess::write_msg(2));
    "rnbd-no-user-header" [Errno(EINVAL)] => |t| raw_io(t, &[], &[], &Sess::write_msg(0));
    "rnbd-unknown-type" [Errno(EINVAL)] => |t| raw_io(t, &[], &[9, 0, 0, 0, 0, 0, 0, 0], &Sess::write_msg(8));
    "rnbd-sess-info-ver-0" [Answered] => |t| { let mut s = ready(t)?; let o = s.sess_info(1, 0)?; finish(s, o) };
    "rnbd-sess-info-ver-255" [Answered] => |t| { let mut s = ready(t)?; let o = s.sess_info(1, 255)?; finish(s, o) };
    "rnbd-open-no-nul" [Errno(EINVAL)] => |t| {
        let mut s = ready(t)?;
        let mut m = rnbd::Open::new(AccessMode::Ro, b"x").ok_or("name")?;
        m.dev_name = [b'a'; 255];
        let (o, _) = s.open_raw(1, 1, &m.to_bytes())?;
        finish(s, o)
    };
    "rnbd-open-dotdot" [Errno(EINVAL)] => |t| {
        let mut s = ready(t)?;
        let (o, _) = s.open(1, &format!("../{}", t.dev), AccessMode::Ro)?;
        finish(s, o)
    };
    "rnbd-open-missing-device" [Error] => |t| {
        let mut s = ready(t)?;
        let (o, _) = s.open(1, "/dev/hostile-no-such-device", AccessMode::Ro)?;
        finish(s, o)
    };
    "rnbd-open-bad-access-mode" [Errno(EINVAL)] => |t| {
        let mut s = ready(t)?;
        let mut m = rnbd::Open::new(AccessMode::Ro, t.dev.as_bytes()).ok_or("name")?;
        m.access_mode = 7;
        let (o, _) = s.open_raw(1, 1, &m.to_bytes())?;
        finish(s, o)
    };
    "rnbd-open-alias-rw" [Error] => |t| {
        // The device under a second name in the same session: both rw.
        let (mut s, _) = opened(t, AccessMode::Rw)?;
        let alias = t.dev.replacen('/', "//", 1);
        let (o, _) = s.open(1, &alias, AccessMode::Rw)?;
        finish(s, o)
    };
    "rnbd-close-unknown-id" [Answered] => |t| {
        let mut s = ready(t)?;
        let m = rnbd::Close { hdr: rnbd::MsgHdr::new(rnbd::MsgType::Close), device_id: Le32::new(9999) };
        let o = s.rnbd_write(1, 0, &[], &m.to_bytes())?;
        finish(s, o)
    };
    "rnbd-close-twice" [Answered] => |t| rnbd_io(t, AccessMode::Ro, |s, id| {
        let m = rnbd::Close { hdr: rnbd::MsgHdr::new(rnbd::MsgType::Close), device_id: Le32::new(id) };
        let _ = s.rnbd_write(1, 0, &[], &m.to_bytes())?;
        s.rnbd_write(1, 0, &[], &m.to_bytes())
    });
    "rnbd-io-unknown-device" [Error] => |t| rnbd_io(t, AccessMode::Ro, |s, id| {
        s.rnbd_read(1, 0, 4096, &Sess::io_msg(id + 77, 0, rw(rnbd::Op::Read, false), 4096, 0))
    });
    "rnbd-io-after-close" [Error] => |t| rnbd_io(t, AccessMode::Ro, |s, id| {
        let m = rnbd::Close { hdr: rnbd::MsgHdr::new(rnbd::MsgType::Close), device_id: Le32::new(id) };
        let _ = s.rnbd_write(1, 0, &[], &m.to_bytes())?;
        s.rnbd_read(1, 0, 4096, &Sess::io_msg(id, 0, rw(rnbd::Op::Read, false), 4096, 0))
    });
    "rnbd-io-bad-op" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 512], &Sess::io_msg(id, 0, 9, 512, 0))
    });
    "rnbd-io-bad-flag-bits" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 512], &Sess::io_msg(id, 0, rw(rnbd::Op::Write, false) | 1 << 20, 512, 0))
    });
    "rnbd-io-read-fua" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_read(1, 0, 4096, &Sess::io_msg(id, 0, rnbd::Op::Read as u32 | F_FUA, 4096, 0))
    });
    "rnbd-io-discard-fua" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[], &Sess::io_msg(id, 0, rnbd::Op::Discard as u32 | F_FUA, 4096, 0))
    });
    "rnbd-io-write-zeroes-fua" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[], &Sess::io_msg(id, 0, rnbd::Op::WriteZeroes as u32 | F_FUA, 4096, 0))
    });
    "rnbd-io-write-to-ro" [Errno(EPERM)] => |t| rnbd_io(t, AccessMode::Ro, |s, id| {
        s.rnbd_write(1, 0, &[0; 4096], &Sess::io_msg(id, 0, rw(rnbd::Op::Write, false), 4096, 0))
    });
    "rnbd-io-flush-with-data" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 4096], &Sess::io_msg(id, 0, rw(rnbd::Op::Flush, false), 4096, 0))
    });
    "rnbd-io-discard-0-bytes" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[], &Sess::io_msg(id, 0, rw(rnbd::Op::Discard, false), 0, 0))
    });
    "rnbd-io-discard-4g" [Error] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[], &Sess::io_msg(id, 0, rw(rnbd::Op::Discard, false), 0xffff_fe00, 0))
    });
    "rnbd-io-sector-u64-max" [Error] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 4096], &Sess::io_msg(id, u64::MAX, rw(rnbd::Op::Write, false), 4096, 0))
    });
    "rnbd-io-beyond-end" [Error] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_read(1, 0, 4096, &Sess::io_msg(id, 1 << 40, rw(rnbd::Op::Read, false), 4096, 0))
    });
    "rnbd-io-bi-size-ne-data-len" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 4096], &Sess::io_msg(id, 0, rw(rnbd::Op::Write, false), 8192, 0))
    });
    "rnbd-io-unaligned-size" [Errno(EINVAL)] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_write(1, 0, &[0; 1000], &Sess::io_msg(id, 0, rw(rnbd::Op::Write, false), 1000, 0))
    });
    "rnbd-io-prio-class-7" [Answered] => |t| rnbd_io(t, AccessMode::Rw, |s, id| {
        s.rnbd_read(1, 0, 4096, &Sess::io_msg(id, 0, rw(rnbd::Op::Read, false), 4096, 7 << 13 | 5))
    });
}

fn read_variant(t: &Target, flags: u16, sg_cnt: u16, len: u32) -> Res {
    let mut s = ready(t)?;
    let usr = sess_info_usr();
    let msg = s.read_msg(1, usr.len() as u16, flags, sg_cnt, len);
    s.request(1, 0, &[0; 36], &usr, &msg)?;
    let o = s.answer(1)?;
    finish(s, o)
}

/// Runs one kind: `Ok(detail)` on pass, `Err(detail)` on fail.
pub fn run(k: &Kind, t: &Target) -> Result<String, String> {
    match (k.run)(t) {
        Ok(o) if k.want.iter().any(|w| w.accepts(&o)) => Ok(format!("{} ({:?})", o.class(), o)),
        Ok(o) => Err(format!("got {} ({:?}), want one of {:?}", o.class(), o, k.want)),
        Err(e) => Err(format!("tool error: {}", e)),
    }
}

