// SPDX-License-Identifier: GPL-2.0

//! RTRS protocol constants and the immediate-data codec.
//!
//! Every RDMA WRITE WITH IMM of RTRS carries a 32-bit immediate: a 4-bit type
//! and a 28-bit payload (`drivers/infiniband/ulp/rtrs/rtrs-pri.h`, 6.12).

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
            Imm::IoRsp { msg_id, errno, with_inval } => (
                if with_inval { 2 } else { 1 },
                (errno.unsigned_abs() & RSP_ERRNO_MASK) << RSP_MSG_ID_BITS | (msg_id & RSP_MSG_ID_MASK),
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
        let imm = Imm::IoRsp { msg_id: 5, errno: -5, with_inval: false }.encode();
        assert_eq!(imm, (1 << 28) | (5 << 19) | 5);
        assert_eq!(Imm::try_from(imm), Ok(Imm::IoRsp { msg_id: 5, errno: -5, with_inval: false }));
        let imm = Imm::IoRsp { msg_id: 0x7ffff, errno: 0, with_inval: true }.encode();
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
        let p = Imm::IoReq { payload: (3 << 17) | 4096 }.encode();
        let Ok(Imm::IoReq { payload }) = Imm::try_from(p) else { panic!() };
        assert_eq!(io_req_split(payload, 17, 512), Some((3, 4096)));
        assert_eq!(io_req_split(payload, 17, 3), None);
        assert_eq!(io_req_split(payload, 0, 512), None);
        assert_eq!(io_req_split(payload, 28, 512), None);
    }
}
