// SPDX-License-Identifier: GPL-2.0

//! RTRS protocol constants and the immediate-data codec.
//!
//! Every RDMA WRITE WITH IMM of RTRS carries a 32-bit immediate: a 4-bit type
//! and a 28-bit payload (`drivers/infiniband/ulp/rtrs/rtrs-pri.h`, 6.12).
//! The messages are the `wire_struct!`s below, with upstream sizes asserted.

use crate::wire::{c_str, put_c_str, Field, Le16, Le32, Le64, WireError};

/// Protocol major version.
pub const VERSION_MAJOR: u8 = 2;
/// Protocol minor version.
pub const VERSION_MINOR: u8 = 0;
/// `RTRS_MAGIC`, first field of the connection request and response.
pub const MAGIC: u16 = 0x1BBD;
/// `RTRS_PROTO_VER` as carried on the wire.
pub const VERSION: u16 = ((VERSION_MAJOR as u16) << 8) | VERSION_MINOR as u16;
/// Heartbeat interval.
pub const HB_INTERVAL_MS: u32 = 5000;
/// Missed heartbeats before a path is declared failed.
pub const HB_MISSED_MAX: u32 = 5;

const TYPE_BITS: u32 = 4;
const PAYLOAD_BITS: u32 = 28;
const PAYLOAD_MASK: u32 = (1 << PAYLOAD_BITS) - 1;
const RSP_MSG_ID_BITS: u32 = 19;
const RSP_MSG_ID_MASK: u32 = (1 << RSP_MSG_ID_BITS) - 1;
const RSP_ERRNO_MASK: u32 = 0x1ff;

/// Decoded immediate data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imm {
    /// Client to server: an IO request in buffer `buf_id` ending at `off`
    /// (payload `buf_id << mem_bits | off`; decoding needs `mem_bits`, so the
    /// raw payload is kept here).
    IoReq {
        /// `buf_id << mem_bits | off`.
        payload: u32,
    },
    /// Server to client: IO `msg_id` finished with `errno` (0 or negative);
    /// `with_inval` says the server also invalidated the client's rkey.
    IoRsp {
        /// The request's id (19 bits).
        msg_id: u32,
        /// 0 or a negative errno (9 bits of magnitude).
        errno: i32,
        /// The server invalidated the client's rkey (SEND_WITH_INV).
        with_inval: bool,
    },
    /// Heartbeat.
    HbMsg,
    /// Heartbeat acknowledgement.
    HbAck,
}

/// An immediate whose type RTRS does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownImm(pub u32);

impl Imm {
    /// Encodes to the 32-bit immediate (host order).
    ///
    /// Out-of-range fields are truncated to their width exactly as the C
    /// implementation does; callers check ranges before building requests.
    pub fn encode(self) -> u32 {
        let (ty, payload) = match self {
            Imm::IoReq { payload } => (0, payload),
            Imm::IoRsp {
                msg_id,
                errno,
                with_inval,
            } => (
                if with_inval { 2 } else { 1 },
                (errno.unsigned_abs() & RSP_ERRNO_MASK) << RSP_MSG_ID_BITS
                    | (msg_id & RSP_MSG_ID_MASK),
            ),
            Imm::HbMsg => (8, 0),
            Imm::HbAck => (9, 0),
        };
        (ty << PAYLOAD_BITS) | (payload & PAYLOAD_MASK)
    }
}

impl TryFrom<u32> for Imm {
    type Error = UnknownImm;

    fn try_from(imm: u32) -> Result<Self, UnknownImm> {
        let payload = imm & PAYLOAD_MASK;
        Ok(match imm >> PAYLOAD_BITS {
            0 => Imm::IoReq { payload },
            t @ (1 | 2) => Imm::IoRsp {
                msg_id: payload & RSP_MSG_ID_MASK,
                errno: -(((payload >> RSP_MSG_ID_BITS) & RSP_ERRNO_MASK) as i32),
                with_inval: t == 2,
            },
            8 => Imm::HbMsg,
            9 => Imm::HbAck,
            _ => return Err(UnknownImm(imm)),
        })
    }
}

/// Splits an IO request payload into `(buf_id, off)` for a server whose
/// chunks are `1 << mem_bits` bytes, rejecting ids beyond `queue_depth`.
pub fn io_req_split(payload: u32, mem_bits: u32, queue_depth: u32) -> Option<(u32, u32)> {
    if mem_bits == 0 || mem_bits >= PAYLOAD_BITS {
        return None;
    }
    let buf_id = payload >> mem_bits;
    let off = payload & ((1 << mem_bits) - 1);
    (buf_id < queue_depth).then_some((buf_id, off))
}

const _: () = assert!(TYPE_BITS + PAYLOAD_BITS == 32);

/// Bits of the immediate payload (`MAX_IMM_PAYL_BITS`).
pub const IMM_PAYLOAD_BITS: u32 = PAYLOAD_BITS;
/// Receives and sends of the admin connection (`SERVICE_CON_QUEUE_DEPTH`).
pub const SERVICE_CON_QUEUE_DEPTH: u32 = 512;
/// Paths per session (`MAX_PATHS_NUM`).
pub const MAX_PATHS_NUM: u32 = 128;
/// Smallest chunk (`MIN_CHUNK_SIZE`).
pub const MIN_CHUNK_SIZE: u32 = 8192;
/// Largest queue depth: it travels as a `__le16`.
pub const MAX_SESS_QUEUE_DEPTH: u32 = 65535;
/// Most connections per path a server accepts (upstream's sanity limit).
pub const MAX_CON_NUM: u16 = 4096;
/// Longest path name, without its NUL (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Largest chunk (`max_io_size + max_hdr_size`) a client accepts: a sanity
/// bound on the server's geometry (upstream's default is 128 KiB; a
/// client request is at most `max_segments` pages anyway).
pub const CLT_MAX_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest user-header room a client accepts from a server.
pub const CLT_MIN_HDR_SIZE: u32 = 64;
/// Largest user-header room a client accepts: upstream's server offers one
/// page, and 64 KiB is the largest page size Linux has.
pub const CLT_MAX_HDR_SIZE: u32 = 64 << 10;
/// Smallest IO a client accepts: the block layer needs every device to take
/// at least a page (4 KiB on every architecture the protocol runs on) per IO.
pub const CLT_MIN_IO_SIZE: u32 = 4096;

/// `mem_bits` of a server with `queue_depth` chunks: the immediate's low
/// bits that carry the offset inside a chunk (upstream: `MAX_IMM_PAYL_BITS -
/// (ilog2(queue_depth - 1) + 1)`).
pub fn mem_bits(queue_depth: u32) -> Option<u32> {
    if !(2..=MAX_SESS_QUEUE_DEPTH).contains(&queue_depth) {
        return None;
    }
    let chunk_bits = 32 - (queue_depth - 1).leading_zeros();
    Some(PAYLOAD_BITS - chunk_bits)
}

/// RTRS message types (`enum rtrs_msg_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    /// Client asks for the chunk descriptors.
    InfoReq = 0,
    /// Server sends them.
    InfoRsp = 1,
    /// IO request: data written into a chunk.
    Write = 2,
    /// IO request: server writes data into the client's buffer.
    Read = 3,
    /// Server sends a chunk's new rkey.
    RkeyRsp = 4,
}

impl TryFrom<u16> for MsgType {
    type Error = WireError;
    fn try_from(v: u16) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::InfoReq,
            1 => Self::InfoRsp,
            2 => Self::Write,
            3 => Self::Read,
            4 => Self::RkeyRsp,
            _ => {
                return Err(WireError::BadValue {
                    field: "rtrs msg type",
                    value: v as u64,
                })
            }
        })
    }
}

/// `RTRS_MSG_NEED_INVAL_F`: the server must invalidate the read buffer's rkey.
pub const MSG_NEED_INVAL_F: u16 = 1 << 0;
/// `RTRS_MSG_NEW_RKEY_F` (conn_rsp flags): the server sends new rkeys.
pub const MSG_NEW_RKEY_F: u32 = 1 << 1;
/// Bit 0 of [`ConnReq::flags`]: the path's first connection.
pub const CONN_REQ_FIRST_CONN: u8 = 1 << 0;

wire_struct! {
    /// `struct rtrs_sg_desc`: one RDMA buffer.
    pub struct SgDesc (16) {
        /// Remote address.
        pub addr: Le64 = 0,
        /// Remote key.
        pub key: Le32 = 8,
        /// Length in bytes.
        pub len: Le32 = 12,
    }
}

wire_struct! {
    /// `struct rtrs_msg_conn_req`: private data of `rdma_connect`.
    pub struct ConnReq (56) {
        /// Written by rdma_cm for AF_IB; zero from us.
        pub cma_version: u8 = 0,
        /// Must be zero from the sender (rdma_cm parses it).
        pub ip_version: u8 = 1,
        /// [`MAGIC`].
        pub magic: Le16 = 2,
        /// [`VERSION`].
        pub version: Le16 = 4,
        /// This connection's id (0: admin connection).
        pub cid: Le16 = 6,
        /// Connections in the path.
        pub cid_num: Le16 = 8,
        /// Reconnect counter of the path.
        pub recon_cnt: Le16 = 10,
        /// UUID of the path.
        pub sess_uuid: [u8; 16] = 12,
        /// UUID of the session (all its paths).
        pub paths_uuid: [u8; 16] = 28,
        /// Bit 0: [`CONN_REQ_FIRST_CONN`] (a C bitfield, LSB first).
        pub flags: u8 = 44,
        /// Zero.
        pub reserved: [u8; 11] = 45,
    }
}

wire_struct! {
    /// `struct rtrs_msg_conn_rsp`: private data of accept and reject.
    pub struct ConnRsp (56) {
        /// [`MAGIC`].
        pub magic: Le16 = 0,
        /// [`VERSION`].
        pub version: Le16 = 2,
        /// Negative errno of a reject (as a 16-bit value), 0 on accept.
        pub errno: Le16 = 4,
        /// Chunks in the session.
        pub queue_depth: Le16 = 6,
        /// Largest IO (`max_chunk_size - max_hdr_size`).
        pub max_io_size: Le32 = 8,
        /// Largest user header.
        pub max_hdr_size: Le32 = 12,
        /// [`MSG_NEW_RKEY_F`].
        pub flags: Le32 = 16,
        /// Zero.
        pub reserved: [u8; 36] = 20,
    }
}

wire_struct! {
    /// `struct rtrs_msg_info_req`.
    pub struct InfoReq (272) {
        /// [`MsgType::InfoReq`].
        pub ty: Le16 = 0,
        /// The client's path name, NUL-terminated.
        pub pathname: [u8; NAME_MAX] = 2,
        /// Zero.
        pub reserved: [u8; 15] = 257,
    }
}

wire_struct! {
    /// `struct rtrs_msg_info_rsp` without its `desc[]` tail.
    pub struct InfoRspHdr (8) {
        /// [`MsgType::InfoRsp`].
        pub ty: Le16 = 0,
        /// Number of [`SgDesc`] that follow.
        pub sg_cnt: Le16 = 2,
        /// Zero.
        pub reserved: [u8; 4] = 4,
    }
}

wire_struct! {
    /// `struct rtrs_msg_rkey_rsp`.
    pub struct RkeyRsp (8) {
        /// [`MsgType::RkeyRsp`].
        pub ty: Le16 = 0,
        /// Chunk whose key changed.
        pub buf_id: Le16 = 2,
        /// Its new rkey.
        pub rkey: Le32 = 4,
    }
}

wire_struct! {
    /// `struct rtrs_msg_rdma_read` without its `desc[]` tail.
    pub struct RdmaReadHdr (8) {
        /// [`MsgType::Read`].
        pub ty: Le16 = 0,
        /// Bytes of user header before this message.
        pub usr_len: Le16 = 2,
        /// [`MSG_NEED_INVAL_F`].
        pub flags: Le16 = 4,
        /// Number of [`SgDesc`] that follow (0 or 1).
        pub sg_cnt: Le16 = 6,
    }
}

wire_struct! {
    /// `struct rtrs_msg_rdma_write`.
    pub struct RdmaWrite (4) {
        /// [`MsgType::Write`].
        pub ty: Le16 = 0,
        /// Bytes of user header before this message.
        pub usr_len: Le16 = 2,
    }
}

impl ConnReq {
    /// The request a client sends for connection `cid` of `cid_num`.
    pub fn new(
        cid: u16,
        cid_num: u16,
        recon_cnt: u16,
        sess_uuid: [u8; 16],
        paths_uuid: [u8; 16],
        first_conn: bool,
    ) -> Self {
        let mut r = Self::zeroed();
        r.magic = Le16::new(MAGIC);
        r.version = Le16::new(VERSION);
        r.cid = Le16::new(cid);
        r.cid_num = Le16::new(cid_num);
        r.recon_cnt = Le16::new(recon_cnt);
        r.sess_uuid = sess_uuid;
        r.paths_uuid = paths_uuid;
        r.flags = if first_conn { CONN_REQ_FIRST_CONN } else { 0 };
        r
    }

    /// Decodes and checks a connect request's private data: magic, major
    /// version, `cid < cid_num <= MAX_CON_NUM`.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let r = Self::from_bytes(b)?;
        check_magic_version(r.magic, r.version)?;
        let n = r.cid_num.get();
        if n == 0 || n > MAX_CON_NUM {
            return Err(WireError::BadValue {
                field: "cid_num",
                value: n as u64,
            });
        }
        if r.cid.get() >= n {
            return Err(WireError::BadValue {
                field: "cid",
                value: r.cid.get() as u64,
            });
        }
        Ok(r)
    }

    /// Bit 0 of the flags.
    pub fn first_conn(&self) -> bool {
        self.flags & CONN_REQ_FIRST_CONN != 0
    }
}

fn check_magic_version(magic: Le16, version: Le16) -> Result<(), WireError> {
    if magic.get() != MAGIC {
        return Err(WireError::BadValue {
            field: "magic",
            value: magic.get() as u64,
        });
    }
    if version.get() >> 8 != VERSION_MAJOR as u16 {
        return Err(WireError::BadValue {
            field: "version",
            value: version.get() as u64,
        });
    }
    Ok(())
}

impl ConnRsp {
    /// An accept's response.
    pub fn accept(queue_depth: u16, max_io_size: u32, max_hdr_size: u32, new_rkey: bool) -> Self {
        let mut r = Self::zeroed();
        r.magic = Le16::new(MAGIC);
        r.version = Le16::new(VERSION);
        r.queue_depth = Le16::new(queue_depth);
        r.max_io_size = Le32::new(max_io_size);
        r.max_hdr_size = Le32::new(max_hdr_size);
        r.flags = Le32::new(if new_rkey { MSG_NEW_RKEY_F } else { 0 });
        r
    }

    /// A reject's response carrying `errno`, negative as upstream sends it
    /// (the C client fails the connect only for a negative value).
    pub fn reject(errno: i16) -> Self {
        let mut r = Self::zeroed();
        r.magic = Le16::new(MAGIC);
        r.version = Le16::new(VERSION);
        r.errno = Le16::new(errno as u16);
        r
    }

    /// The errno of a reject, as the signed value upstream sends.
    pub fn reject_errno(&self) -> i16 {
        self.errno.get() as i16
    }

    /// Decodes an accept's response: magic, major version, a queue depth
    /// of at least 1 and an IO size that leaves room for a header.  A client
    /// then takes the server's geometry from [`ConnRsp::geometry`].
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let r = Self::from_bytes(b)?;
        check_magic_version(r.magic, r.version)?;
        if r.queue_depth.get() == 0 {
            return Err(WireError::BadValue {
                field: "queue_depth",
                value: 0,
            });
        }
        if r.max_io_size.get() == 0 {
            return Err(WireError::BadValue {
                field: "max_io_size",
                value: 0,
            });
        }
        Ok(r)
    }

    /// The server's geometry, checked for everything a client computes from
    /// it (see [`Geometry`]): the response comes from the network, and a
    /// client must neither overflow on it nor size its buffers by it
    /// unchecked.
    pub fn geometry(&self) -> Result<Geometry, WireError> {
        let bad = |field, value: u64| Err(WireError::BadValue { field, value });
        let queue_depth = self.queue_depth.get() as u32;
        let max_io_size = self.max_io_size.get();
        let max_hdr_size = self.max_hdr_size.get();
        // 2..=65535: `mem_bits` needs at least two chunks (upstream's
        // `ilog2(queue_depth - 1)`), and the field is 16 bits.
        let Some(mem_bits) = mem_bits(queue_depth) else {
            return bad("queue_depth", queue_depth as u64);
        };
        if !(CLT_MIN_HDR_SIZE..=CLT_MAX_HDR_SIZE).contains(&max_hdr_size) {
            return bad("max_hdr_size", max_hdr_size as u64);
        }
        // Whole sectors, at least a page: the block layer's minimum.
        if max_io_size < CLT_MIN_IO_SIZE || max_io_size % 512 != 0 {
            return bad("max_io_size", max_io_size as u64);
        }
        let chunk_size = match max_io_size.checked_add(max_hdr_size) {
            Some(c) if c <= CLT_MAX_CHUNK_SIZE => c,
            _ => return bad("max_io_size", max_io_size as u64),
        };
        // Every offset inside a chunk must fit the immediate's low
        // `mem_bits` bits (upstream's server checks the same at load time).
        if chunk_size > 1 << mem_bits {
            return bad("queue_depth", queue_depth as u64);
        }
        Ok(Geometry {
            queue_depth,
            max_io_size,
            max_hdr_size,
            chunk_size,
            mem_bits,
            new_rkey: self.flags.get() & MSG_NEW_RKEY_F != 0,
        })
    }
}

/// A server's geometry as a client uses it, from [`ConnRsp::geometry`].
///
/// Invariants: `2 <= queue_depth <= 65535`; `max_io_size` is a multiple of
/// 512 and at least [`CLT_MIN_IO_SIZE`]; `max_hdr_size` is within
/// [`CLT_MIN_HDR_SIZE`]`..=`[`CLT_MAX_HDR_SIZE`]; `chunk_size =
/// max_io_size + max_hdr_size <= `[`CLT_MAX_CHUNK_SIZE`] and `<= 1 <<
/// mem_bits`, `mem_bits = mem_bits(queue_depth)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Chunks of the server (the client may use fewer).
    pub queue_depth: u32,
    /// Largest data of one IO.
    pub max_io_size: u32,
    /// Largest user header plus RTRS message.
    pub max_hdr_size: u32,
    /// Bytes of each chunk.
    pub chunk_size: u32,
    /// Low bits of an IO request's immediate that carry the offset.
    pub mem_bits: u32,
    /// The server sends a new rkey with each answer ([`MSG_NEW_RKEY_F`]).
    pub new_rkey: bool,
}

impl InfoReq {
    /// An info request for `pathname` (no NUL, shorter than `NAME_MAX`).
    pub fn new(pathname: &[u8]) -> Option<Self> {
        let mut r = Self::zeroed();
        r.ty = Le16::new(MsgType::InfoReq as u16);
        r.pathname = put_c_str(pathname)?;
        Some(r)
    }

    /// Decodes an info request and returns it with its path name, which must
    /// be NUL-terminated, non-empty and free of `/` and `.` (upstream's rule).
    pub fn parse(b: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let r = Self::from_bytes(b)?;
        if r.ty.get() != MsgType::InfoReq as u16 {
            return Err(WireError::BadValue {
                field: "type",
                value: r.ty.get() as u64,
            });
        }
        let name = c_str(&b[2..2 + NAME_MAX]).ok_or(WireError::BadValue {
            field: "pathname",
            value: 0,
        })?;
        // Upstream refuses `/` and `.`; control characters are refused too:
        // the name becomes a sysfs directory and appears in log lines.
        if name.is_empty()
            || name
                .iter()
                .any(|&c| c == b'/' || c == b'.' || c < 0x20 || c == 0x7f)
        {
            return Err(WireError::BadValue {
                field: "pathname",
                value: 1,
            });
        }
        Ok((r, name))
    }
}

/// An info response: its descriptors, checked.
pub struct InfoRsp<'a> {
    descs: &'a [u8],
}

impl<'a> InfoRsp<'a> {
    /// Decodes an info response of `len` received bytes.  Every descriptor
    /// must be inside the message, and there must be at least one.
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        let h = InfoRspHdr::from_bytes(b)?;
        if h.ty.get() != MsgType::InfoRsp as u16 {
            return Err(WireError::BadValue {
                field: "type",
                value: h.ty.get() as u64,
            });
        }
        let n = h.sg_cnt.get() as usize;
        let need = InfoRspHdr::SIZE + n * SgDesc::SIZE;
        if n == 0 {
            return Err(WireError::BadValue {
                field: "sg_cnt",
                value: 0,
            });
        }
        if b.len() < need {
            return Err(WireError::Short { need, got: b.len() });
        }
        Ok(Self {
            descs: &b[InfoRspHdr::SIZE..need],
        })
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.descs.len() / SgDesc::SIZE
    }

    /// True if there are none (never, after `parse`).
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// Descriptor `i`.
    pub fn desc(&self, i: usize) -> Option<SgDesc> {
        SgDesc::from_bytes(self.descs.get(i * SgDesc::SIZE..)?).ok()
    }
}

/// Where an IO request sits in its chunk, from the immediate and the
/// server's geometry, with every bound checked: the chunk exists, the
/// message header (`hdr_len` bytes at `off`) lies inside the chunk.
pub fn io_req_locate(
    payload: u32,
    mem_bits: u32,
    queue_depth: u32,
    chunk_size: u32,
    hdr_len: u32,
) -> Option<(u32, u32)> {
    let (buf_id, off) = io_req_split(payload, mem_bits, queue_depth)?;
    (off.checked_add(hdr_len)? <= chunk_size).then_some((buf_id, off))
}

/// The immediate payload of an IO request in buffer `buf_id` whose message
/// starts at `off` (upstream `permit->mem_off + off`), or `None` if either
/// does not fit the server's geometry.
pub fn io_req_join(buf_id: u32, off: u32, queue_depth: u32) -> Option<u32> {
    let bits = mem_bits(queue_depth)?;
    (buf_id < queue_depth && off < (1 << bits)).then_some(buf_id << bits | off)
}

/// The remote buffers of an info response: calls `set(i, addr, rkey)` for
/// each of the `queue_depth` chunks of `chunk_size` bytes.  A descriptor may
/// cover several consecutive chunks (upstream's server merges them when it
/// does not invalidate); the descriptors must cover all chunks exactly, the
/// immediate must have room for the buffer id and the offset, and no
/// descriptor may wrap the 64-bit address space, so that `addr + off` for
/// any `off <= chunk_size` of a chunk does not overflow.
///
/// On error some chunks may have been `set` already; the caller drops the
/// path.
pub fn info_rsp_bufs(
    rsp: &InfoRsp<'_>,
    queue_depth: u32,
    chunk_size: u32,
    mut set: impl FnMut(u32, u64, u32),
) -> Result<(), WireError> {
    let n = rsp.len() as u32;
    let bad = |field, value: u64| WireError::BadValue { field, value };
    if n == 0 || queue_depth == 0 || queue_depth % n != 0 {
        return Err(bad("sg_cnt", n as u64));
    }
    let bits = |v: u32| {
        if v <= 1 {
            0
        } else {
            32 - (v - 1).leading_zeros()
        }
    };
    if chunk_size == 0 || bits(n) + bits(chunk_size) > PAYLOAD_BITS {
        return Err(bad("chunk_size", chunk_size as u64));
    }
    let mut i = 0u32;
    for k in 0..rsp.len() {
        let d = rsp.desc(k).ok_or(bad("sg_cnt", n as u64))?;
        let (mut addr, rkey, len) = (d.addr.get(), d.key.get(), d.len.get());
        if len == 0 || len % chunk_size != 0 {
            return Err(bad("desc len", len as u64));
        }
        if addr.checked_add(len as u64).is_none() {
            return Err(bad("desc addr", addr));
        }
        for _ in 0..len / chunk_size {
            if i >= queue_depth {
                return Err(bad("desc len", len as u64));
            }
            set(i, addr, rkey);
            i += 1;
            // Cannot wrap: `addr + len` was checked above.
            addr = addr.wrapping_add(chunk_size as u64);
        }
    }
    if i != queue_depth {
        return Err(bad("sg_cnt", n as u64));
    }
    Ok(())
}

/// Longest IO message: a read with its one descriptor.
pub const IO_MSG_MAX: usize = RdmaReadHdr::SIZE + SgDesc::SIZE;

/// A checked read request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReq {
    /// Bytes of user header, at `off - usr_len`.
    pub usr_len: u32,
    /// Invalidate `desc.key` with the response.
    pub need_inval: bool,
    /// Where to write the data; `None` for a read without data.
    pub desc: Option<SgDesc>,
}

/// What a client's message in a chunk asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoReq {
    /// Data of `off - usr_len` bytes at the chunk's start, then the user header.
    Write {
        /// User header length.
        usr_len: u32,
    },
    /// See [`ReadReq`].
    Read(ReadReq),
}

/// Decodes the RTRS message found at offset `off` of a chunk; `msg` is a copy
/// of the chunk's bytes from `off` on (as many as the chunk has, up to the
/// longest message, [`IO_MSG_MAX`]).  Checks the type, that the user header
/// fits before the message (`usr_len <= off`), and that a read has at most
/// one descriptor, inside the chunk, whose length is non-zero and at most
/// `max_io`.
pub fn parse_io_req(msg: &[u8], off: usize, max_io: u32) -> Result<IoReq, WireError> {
    let ty = Le16::read(msg.get(..2).ok_or(WireError::Short {
        need: 2,
        got: msg.len(),
    })?)
    .get();
    match MsgType::try_from(ty)? {
        MsgType::Write => {
            let w = RdmaWrite::from_bytes(msg)?;
            let usr_len = w.usr_len.get() as u32;
            if usr_len as usize > off {
                return Err(WireError::BadValue {
                    field: "usr_len",
                    value: usr_len as u64,
                });
            }
            Ok(IoReq::Write { usr_len })
        }
        MsgType::Read => {
            let r = RdmaReadHdr::from_bytes(msg)?;
            let usr_len = r.usr_len.get() as u32;
            if usr_len as usize > off {
                return Err(WireError::BadValue {
                    field: "usr_len",
                    value: usr_len as u64,
                });
            }
            let desc = match r.sg_cnt.get() {
                0 => None,
                1 => {
                    let d = SgDesc::from_bytes(&msg[RdmaReadHdr::SIZE..])?;
                    if d.len.get() == 0 || d.len.get() > max_io {
                        return Err(WireError::BadValue {
                            field: "desc len",
                            value: d.len.get() as u64,
                        });
                    }
                    Some(d)
                }
                n => {
                    return Err(WireError::BadValue {
                        field: "sg_cnt",
                        value: n as u64,
                    })
                }
            };
            let need_inval = r.flags.get() & MSG_NEED_INVAL_F != 0;
            if need_inval && desc.is_none() {
                return Err(WireError::BadValue {
                    field: "flags",
                    value: r.flags.get() as u64,
                });
            }
            Ok(IoReq::Read(ReadReq {
                usr_len,
                need_inval,
                desc,
            }))
        }
        _ => Err(WireError::BadValue {
            field: "io msg type",
            value: ty as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_2_0() {
        assert_eq!(VERSION, 0x0200);
        assert_eq!(MAGIC, 0x1BBD);
    }

    #[test]
    fn io_rsp_layout_matches_c() {
        // rtrs_to_io_rsp_imm(5, -EIO, false) = 1 << 28 | 5 << 19 | 5
        let imm = Imm::IoRsp {
            msg_id: 5,
            errno: -5,
            with_inval: false,
        }
        .encode();
        assert_eq!(imm, (1 << 28) | (5 << 19) | 5);
        assert_eq!(
            Imm::try_from(imm),
            Ok(Imm::IoRsp {
                msg_id: 5,
                errno: -5,
                with_inval: false
            })
        );
        let imm = Imm::IoRsp {
            msg_id: 0x7ffff,
            errno: 0,
            with_inval: true,
        }
        .encode();
        assert_eq!(imm, (2 << 28) | 0x7ffff);
    }

    #[test]
    fn heartbeat_and_unknown() {
        assert_eq!(Imm::HbMsg.encode(), 8 << 28);
        assert_eq!(Imm::try_from(9 << 28), Ok(Imm::HbAck));
        for t in [3u32, 4, 7, 10, 15] {
            assert_eq!(Imm::try_from(t << 28), Err(UnknownImm(t << 28)));
        }
    }

    #[test]
    fn io_req_bounds() {
        // 128 KiB chunks: mem_bits 17.
        let p = Imm::IoReq {
            payload: (3 << 17) | 4096,
        }
        .encode();
        let Ok(Imm::IoReq { payload }) = Imm::try_from(p) else {
            panic!()
        };
        assert_eq!(io_req_split(payload, 17, 512), Some((3, 4096)));
        assert_eq!(io_req_split(payload, 17, 3), None);
        assert_eq!(io_req_split(payload, 0, 512), None);
        assert_eq!(io_req_split(payload, 28, 512), None);
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    fn at(c: &[u8], off: usize) -> &[u8] {
        &c[off.min(c.len())..]
    }

    fn chunk_with(off: usize, msg: &[u8]) -> [u8; 8192] {
        let mut c = [0u8; 8192];
        c[off..off + msg.len()].copy_from_slice(msg);
        c
    }

    fn read_msg(usr_len: u16, flags: u16, sg_cnt: u16, len: u32) -> [u8; 24] {
        let mut m = [0u8; 24];
        m[..8].copy_from_slice(
            &RdmaReadHdr {
                ty: Le16::new(3),
                usr_len: Le16::new(usr_len),
                flags: Le16::new(flags),
                sg_cnt: Le16::new(sg_cnt),
            }
            .to_bytes(),
        );
        m[8..].copy_from_slice(
            &SgDesc {
                addr: Le64::new(0x1000),
                key: Le32::new(7),
                len: Le32::new(len),
            }
            .to_bytes(),
        );
        m
    }

    #[test]
    fn io_requests() {
        let c = chunk_with(100, &read_msg(32, 1, 1, 4096));
        assert_eq!(
            parse_io_req(at(&c, 100), 100, 4096),
            Ok(IoReq::Read(ReadReq {
                usr_len: 32,
                need_inval: true,
                desc: SgDesc::from_bytes(&read_msg(0, 0, 0, 4096)[8..]).ok()
            }))
        );
        // usr_len beyond the start of the chunk (upstream's underflow).
        assert!(
            parse_io_req(at(&chunk_with(16, &read_msg(32, 0, 1, 4096)), 16), 16, 4096).is_err()
        );
        // Unbounded or empty read length, too many descriptors.
        assert!(parse_io_req(at(&c, 100), 100, 4095).is_err());
        assert!(parse_io_req(at(&chunk_with(100, &read_msg(0, 0, 1, 0)), 100), 100, 4096).is_err());
        assert!(parse_io_req(
            at(&chunk_with(100, &read_msg(0, 0, 2, 4096)), 100),
            100,
            4096
        )
        .is_err());
        // Invalidation asked without a buffer (upstream WARNs).
        assert!(parse_io_req(
            at(&chunk_with(100, &read_msg(0, 1, 0, 4096)), 100),
            100,
            4096
        )
        .is_err());
        // Header crossing the end of the chunk.
        assert!(parse_io_req(at(&c, 8192 - 10), 8192 - 10, 4096).is_err());
        assert!(parse_io_req(at(&c, 8192), 8192, 4096).is_err());
        // Unknown and misplaced types.
        for ty in [0u16, 1, 4, 5, 0xffff] {
            assert!(parse_io_req(at(&chunk_with(8, &ty.to_le_bytes()), 8), 8, 4096).is_err());
        }
        let w = chunk_with(
            64,
            &RdmaWrite {
                ty: Le16::new(2),
                usr_len: Le16::new(64),
            }
            .to_bytes(),
        );
        assert_eq!(
            parse_io_req(at(&w, 64), 64, 4096),
            Ok(IoReq::Write { usr_len: 64 })
        );
        assert!(parse_io_req(at(&w, 63), 63, 4096).is_err());
    }

    #[test]
    fn connection_messages() {
        let ok = ConnReq::new(1, 3, 0, [1; 16], [2; 16], false).to_bytes();
        assert!(ConnReq::parse(&ok).is_ok());
        assert!(ConnReq::parse(&ok[..55]).is_err());
        let mut bad = ok;
        bad[2] = 0;
        assert!(ConnReq::parse(&bad).is_err());
        let mut bad = ok;
        bad[5] = 3; // major 3
        assert!(ConnReq::parse(&bad).is_err());
        assert!(
            ConnReq::parse(&ConnReq::new(3, 3, 0, [1; 16], [2; 16], false).to_bytes()).is_err()
        );
        assert!(
            ConnReq::parse(&ConnReq::new(0, 0, 0, [1; 16], [2; 16], false).to_bytes()).is_err()
        );
        assert!(
            ConnReq::parse(&ConnReq::new(0, 4097, 0, [1; 16], [2; 16], false).to_bytes()).is_err()
        );
        assert!(ConnRsp::parse(&ConnRsp::reject(-5).to_bytes()).is_err());
        let r = ConnRsp::from_bytes(&ConnRsp::reject(-104).to_bytes()).unwrap();
        assert_eq!(r.reject_errno(), -104);
    }

    #[test]
    fn info_messages() {
        let mut b = InfoReq::new(b"host-a").unwrap().to_bytes();
        assert!(InfoReq::parse(&b).is_ok());
        for c in b"./" {
            let mut d = b;
            d[3] = *c;
            assert!(InfoReq::parse(&d).is_err());
        }
        for c in [b'\n', b'\t', 0x7f, 0x01] {
            let mut d = b;
            d[3] = c;
            assert!(InfoReq::parse(&d).is_err());
        }
        b[2..257].fill(b'a'); // no terminator
        assert!(InfoReq::parse(&b).is_err());
        assert!(InfoReq::new(&[b'a'; 255]).is_none());
        let mut r = [0u8; 8 + 32];
        r[..8].copy_from_slice(
            &InfoRspHdr {
                ty: Le16::new(1),
                sg_cnt: Le16::new(2),
                reserved: [0; 4],
            }
            .to_bytes(),
        );
        let rsp = InfoRsp::parse(&r).unwrap();
        assert_eq!(rsp.len(), 2);
        assert!(rsp.desc(2).is_none());
        assert!(InfoRsp::parse(&r[..39]).is_err());
        r[2] = 0;
        assert!(InfoRsp::parse(&r).is_err());
    }

    /// An info response with these `(addr, key, len)` descriptors.
    fn info_rsp_bytes(descs: &[(u64, u32, u32)]) -> std::vec::Vec<u8> {
        let mut r = std::vec::Vec::new();
        r.extend_from_slice(
            &InfoRspHdr {
                ty: Le16::new(1),
                sg_cnt: Le16::new(descs.len() as u16),
                reserved: [0; 4],
            }
            .to_bytes(),
        );
        for &(a, k, l) in descs {
            r.extend_from_slice(
                &SgDesc {
                    addr: Le64::new(a),
                    key: Le32::new(k),
                    len: Le32::new(l),
                }
                .to_bytes(),
            );
        }
        r
    }

    #[test]
    fn info_bufs() {
        let mk = info_rsp_bytes;
        let collect = |r: &[u8], qd, cs| {
            let rsp = InfoRsp::parse(r).unwrap();
            let mut v = std::vec::Vec::new();
            info_rsp_bufs(&rsp, qd, cs, |i, a, k| v.push((i, a, k))).map(|_| v)
        };
        // One descriptor per chunk (our server, C with always_invalidate=Y).
        let r = mk(&[(0x1000, 7, 64), (0x9000, 8, 64)]);
        assert_eq!(
            collect(&r, 2, 64),
            Ok(std::vec![(0, 0x1000, 7), (1, 0x9000, 8)])
        );
        // Merged chunks (C with always_invalidate=N).
        let r = mk(&[(0x1000, 7, 128), (0x9000, 8, 128)]);
        assert_eq!(collect(&r, 4, 64).unwrap()[1], (1, 0x1040, 7));
        // Too few, too many, ragged, not a divisor.
        assert!(collect(&mk(&[(0, 1, 64)]), 2, 64).is_err());
        assert!(collect(&mk(&[(0, 1, 128), (0, 1, 64)]), 2, 64).is_err());
        assert!(collect(&mk(&[(0, 1, 96), (0, 1, 32)]), 2, 64).is_err());
        assert!(collect(&mk(&[(0, 1, 0), (0, 1, 128)]), 2, 64).is_err());
        assert!(collect(&mk(&[(0, 1, 64), (0, 1, 64), (0, 1, 64)]), 4, 64).is_err());
        assert_eq!(io_req_join(3, 100, 512), Some(3 << 19 | 100));
        assert_eq!(io_req_join(512, 0, 512), None);
        assert_eq!(io_req_join(0, 1 << 19, 512), None);
        assert_eq!(
            io_req_split(io_req_join(5, 77, 512).unwrap(), 19, 512),
            Some((5, 77))
        );
    }

    fn conn_rsp(
        queue_depth: u16,
        max_io_size: u32,
        max_hdr_size: u32,
    ) -> Result<Geometry, WireError> {
        let b = ConnRsp::accept(queue_depth, max_io_size, max_hdr_size, false).to_bytes();
        ConnRsp::parse(&b)?.geometry()
    }

    #[test]
    fn conn_rsp_geometry_upstream() {
        // Upstream 6.12 server defaults: sess_queue_depth 512, max_chunk_size
        // 128 KiB, MAX_HDR_SIZE one page.
        let b = ConnRsp::accept(512, (128 << 10) - 4096, 4096, true).to_bytes();
        let g = ConnRsp::parse(&b).unwrap().geometry().unwrap();
        assert_eq!(
            g,
            Geometry {
                queue_depth: 512,
                max_io_size: 126976,
                max_hdr_size: 4096,
                chunk_size: 131072,
                mem_bits: 19,
                new_rkey: true
            }
        );
        // The largest chunk we take, with as many chunks as its offsets allow.
        assert_eq!(
            conn_rsp(256, (1 << 20) - 4096, 4096).map(|g| g.chunk_size),
            Ok(1 << 20)
        );
        // The smallest: two chunks, one page of IO, 64 bytes of header.
        assert_eq!(
            conn_rsp(2, 4096, 64).map(|g| (g.chunk_size, g.mem_bits)),
            Ok((4160, 27))
        );
        // A 64 KiB-page server.
        assert!(conn_rsp(128, (512 << 10) - (64 << 10), 64 << 10).is_ok());
    }

    #[test]
    fn conn_rsp_geometry_hostile() {
        // max_io_size + max_hdr_size overflowing u32 (was a panic).
        assert!(conn_rsp(512, 0xFFFF_FFFF, 1).is_err());
        assert!(conn_rsp(512, 0xFFFF_FE00, 4096).is_err());
        assert!(conn_rsp(512, u32::MAX - 511, 64 << 10).is_err());
        // Queue depth 0 and 1 (no mem_bits), 65535 (offsets do not fit).
        assert!(conn_rsp(0, 126976, 4096).is_err());
        assert!(conn_rsp(1, 126976, 4096).is_err());
        assert!(conn_rsp(65535, 4096, 4096).is_err());
        // 513 chunks: mem_bits 18, 256 KiB offsets at most.
        assert!(conn_rsp(513, (256 << 10) - 4096, 4096).is_ok());
        assert!(conn_rsp(513, 256 << 10, 4096).is_err());
        // Header room.
        assert!(conn_rsp(512, 126976, 0).is_err());
        assert!(conn_rsp(512, 126976, 63).is_err());
        assert!(conn_rsp(512, 126976, (64 << 10) + 1).is_err());
        assert!(conn_rsp(512, 126976, u32::MAX).is_err());
        // IO size: less than a page, not whole sectors, too big a chunk.
        assert!(conn_rsp(512, 0, 4096).is_err());
        assert!(conn_rsp(512, 512, 4096).is_err());
        assert!(conn_rsp(512, 4095, 4096).is_err());
        assert!(conn_rsp(512, 4097, 4096).is_err());
        assert!(conn_rsp(256, 1 << 20, 4096).is_err());
        assert!(conn_rsp(256, (1 << 20) - 4096, 4160).is_err());
    }

    #[test]
    fn info_bufs_hostile() {
        let mk = info_rsp_bytes;
        let collect = |r: &[u8], qd, cs| {
            let rsp = InfoRsp::parse(r)?;
            let mut v = std::vec::Vec::new();
            info_rsp_bufs(&rsp, qd, cs, |i, a, k| v.push((i, a, k))).map(|_| v)
        };
        // sg_cnt 0, and an sg_cnt the message does not hold.
        assert!(collect(&mk(&[]), 2, 64).is_err());
        let mut r = mk(&[(0x1000, 1, 64)]);
        r[2] = 2;
        assert!(collect(&r, 2, 64).is_err());
        // Short coverage: fewer chunks than the queue depth.
        assert!(collect(&mk(&[(0x1000, 1, 64), (0x2000, 1, 64)]), 4, 64).is_err());
        assert!(collect(&mk(&[(0x1000, 1, 128), (0x2000, 1, 64)]), 4, 64).is_err());
        // Over-coverage, ragged lengths, a zero length in the middle.
        assert!(collect(&mk(&[(0x1000, 1, 192), (0x2000, 1, 128)]), 4, 64).is_err());
        assert!(collect(&mk(&[(0x1000, 1, 100), (0x2000, 1, 156)]), 4, 64).is_err());
        assert!(collect(&mk(&[(0x1000, 1, 256), (0x2000, 1, 0)]), 4, 64).is_err());
        // sg_cnt that does not divide the queue depth (upstream's rule).
        assert!(collect(
            &mk(&[(0x1000, 1, 64), (0x2000, 1, 64), (0x3000, 1, 128)]),
            4,
            64
        )
        .is_err());
        // Addresses wrapping the 64-bit space.
        assert!(collect(
            &mk(&[(0xFFFF_FFFF_FFFF_FFF0, 1, 64), (0x1000, 1, 64)]),
            2,
            64
        )
        .is_err());
        assert!(collect(&mk(&[(u64::MAX - 127, 1, 128)]), 2, 64).is_err());
        assert!(collect(&mk(&[(0x1000, 1, 64), (u64::MAX, 1, 64)]), 2, 64).is_err());
        // Ending on the last byte of the space is fine.
        assert_eq!(
            collect(&mk(&[(u64::MAX - 128, 1, 128)]), 2, 64).unwrap()[1],
            (1, u64::MAX - 64, 1)
        );
        // Chunk size and descriptor count whose offsets overflow the immediate.
        let cs = (1 << 27) + 64;
        assert!(collect(&mk(&[(0x1000, 1, cs), (0x2000_0000, 1, cs)]), 2, cs).is_err());
        assert!(collect(
            &mk(&[(0x1000, 1, 1 << 27), (0x2000_0000, 1, 1 << 27)]),
            2,
            1 << 27
        )
        .is_ok());
    }

    #[test]
    fn geometry() {
        // Upstream: queue_depth 512 -> chunk_bits 9 -> mem_bits 19.
        assert_eq!(mem_bits(512), Some(19));
        assert_eq!(mem_bits(513), Some(18));
        assert_eq!(mem_bits(2), Some(27));
        assert_eq!(mem_bits(1), None);
        assert_eq!(
            io_req_locate((5 << 19) | 100, 19, 512, 131072, 24),
            Some((5, 100))
        );
        assert_eq!(
            io_req_locate((5 << 19) | (131072 - 8), 19, 512, 131072, 24),
            None
        );
    }
}
