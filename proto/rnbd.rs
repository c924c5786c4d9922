// SPDX-License-Identifier: GPL-2.0

//! RNBD 2.0 messages (`drivers/block/rnbd/rnbd-proto.h`, 6.12).
//!
//! RNBD messages travel as the "user header" of RTRS requests; replies to
//! `SESS_INFO` and `OPEN` come back in the data buffer of an RTRS read.

use crate::wire::{c_str, put_c_str, Le16, Le32, Le64, WireError};

/// Protocol major version.
pub const VERSION_MAJOR: u8 = 2;
/// Protocol minor version.
pub const VERSION_MINOR: u8 = 0;
/// Default port of the server's listener (`port_nr`).
pub const DEFAULT_PORT: u16 = 1234;
/// Longest device path or name in an open message, without the NUL.
pub const NAME_MAX: usize = 255;

/// `enum rnbd_msg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    /// Client's version, first message of a session.
    SessInfo = 0,
    /// Server's version.
    SessInfoRsp = 1,
    /// Open (map) a device.
    Open = 2,
    /// Its response.
    OpenRsp = 3,
    /// Block IO.
    Io = 4,
    /// Close (unmap) a device.
    Close = 5,
}

impl TryFrom<u16> for MsgType {
    type Error = WireError;
    fn try_from(v: u16) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::SessInfo,
            1 => Self::SessInfoRsp,
            2 => Self::Open,
            3 => Self::OpenRsp,
            4 => Self::Io,
            5 => Self::Close,
            _ => {
                return Err(WireError::BadValue {
                    field: "rnbd msg type",
                    value: v as u64,
                })
            }
        })
    }
}

/// `enum rnbd_access_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessMode {
    /// Read only; any number of mappings.
    Ro = 0,
    /// Read-write; one mapping.
    Rw = 1,
    /// A second read-write mapping (VM migration).
    Migration = 2,
}

impl AccessMode {
    /// The sysfs string (`rnbd_access_modes[]`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ro => "ro",
            Self::Rw => "rw",
            Self::Migration => "migration",
        }
    }

    /// From the sysfs string.
    pub fn from_sysfs(s: &[u8]) -> Option<Self> {
        match s {
            b"ro" => Some(Self::Ro),
            b"rw" => Some(Self::Rw),
            b"migration" => Some(Self::Migration),
            _ => None,
        }
    }
}

impl TryFrom<u8> for AccessMode {
    type Error = WireError;
    fn try_from(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::Ro,
            1 => Self::Rw,
            2 => Self::Migration,
            _ => {
                return Err(WireError::BadValue {
                    field: "access_mode",
                    value: v as u64,
                })
            }
        })
    }
}

/// `RNBD_FUA` of [`OpenRsp::cache_policy`].
pub const CACHE_FUA: u8 = 1 << 0;
/// `RNBD_WRITEBACK` of [`OpenRsp::cache_policy`].
pub const CACHE_WRITEBACK: u8 = 1 << 1;

/// Bits of [`MsgIo::rw`] that hold the operation (`RNBD_OP_BITS`).
pub const OP_BITS: u32 = 8;
/// `RNBD_F_SYNC`.
pub const F_SYNC: u32 = 1 << OP_BITS;
/// `RNBD_F_FUA`.
pub const F_FUA: u32 = 1 << (OP_BITS + 1);

/// `enum rnbd_io_flags`, operations: the one operation type of rnbd-rs, on
/// the wire (RNBD), in the block layer glue (`blk`, whose C side numbers
/// them the same, see `enum rrs_bio_op`) and in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Op {
    /// Read sectors.
    Read = 0,
    /// Write sectors.
    Write = 1,
    /// Flush the volatile cache.
    Flush = 2,
    /// Discard sectors.
    Discard = 3,
    /// Securely erase sectors.
    SecureErase = 4,
    /// Write zeroes.
    WriteZeroes = 5,
}

impl Op {
    /// True for the operations that carry data.
    pub fn has_data(self) -> bool {
        matches!(self, Op::Read | Op::Write)
    }

    /// True for the operations that change the device's data (a flush
    /// only makes earlier writes durable).
    pub fn modifies(self) -> bool {
        !matches!(self, Op::Read | Op::Flush)
    }
}

impl TryFrom<u32> for Op {
    type Error = WireError;
    /// Rejects unknown operations.
    fn try_from(v: u32) -> Result<Self, WireError> {
        Ok(match v {
            0 => Op::Read,
            1 => Op::Write,
            2 => Op::Flush,
            3 => Op::Discard,
            4 => Op::SecureErase,
            5 => Op::WriteZeroes,
            o => {
                return Err(WireError::BadValue {
                    field: "rw op",
                    value: o as u64,
                })
            }
        })
    }
}

/// A checked `rw` field: operation and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpFlags {
    /// The operation.
    pub op: Op,
    /// [`F_SYNC`].
    pub sync: bool,
    /// [`F_FUA`].
    pub fua: bool,
}

impl OpFlags {
    /// Encodes for the wire.
    pub fn encode(self) -> u32 {
        self.op as u32 | if self.sync { F_SYNC } else { 0 } | if self.fua { F_FUA } else { 0 }
    }
}

impl TryFrom<u32> for OpFlags {
    type Error = WireError;
    /// Rejects unknown operations and unknown flag bits (upstream WARNs).
    fn try_from(rw: u32) -> Result<Self, WireError> {
        if rw & !(((1 << OP_BITS) - 1) | F_SYNC | F_FUA) != 0 {
            return Err(WireError::BadValue {
                field: "rw flags",
                value: rw as u64,
            });
        }
        let op = Op::try_from(rw & ((1 << OP_BITS) - 1))?;
        Ok(Self {
            op,
            sync: rw & F_SYNC != 0,
            fua: rw & F_FUA != 0,
        })
    }
}

wire_struct! {
    /// `struct rnbd_msg_hdr`.
    pub struct MsgHdr (4) {
        /// [`MsgType`].
        pub ty: Le16 = 0,
        /// Zero.
        pub padding: Le16 = 2,
    }
}

impl MsgHdr {
    /// A header of type `ty`.
    pub fn new(ty: MsgType) -> Self {
        Self {
            ty: Le16::new(ty as u16),
            padding: Le16::new(0),
        }
    }
}

/// The type of the RNBD message at the start of `b`.
pub fn msg_type(b: &[u8]) -> Result<MsgType, WireError> {
    MsgType::try_from(MsgHdr::from_bytes(b)?.ty.get())
}

wire_struct! {
    /// `struct rnbd_msg_sess_info`, also `struct rnbd_msg_sess_info_rsp`.
    pub struct SessInfo (36) {
        /// [`MsgType::SessInfo`] or [`MsgType::SessInfoRsp`].
        pub hdr: MsgHdr = 0,
        /// Protocol major version of the sender.
        pub ver: u8 = 4,
        /// Zero.
        pub reserved: [u8; 31] = 5,
    }
}

impl SessInfo {
    /// A session info (`rsp` false) or its response.
    pub fn new(rsp: bool) -> Self {
        let mut m = Self::zeroed();
        m.hdr = MsgHdr::new(if rsp {
            MsgType::SessInfoRsp
        } else {
            MsgType::SessInfo
        });
        m.ver = VERSION_MAJOR;
        m
    }

    /// Decodes a server's answer to our session info: its type must be
    /// [`MsgType::SessInfoRsp`].  The version is not checked: upstream's
    /// client takes `min(ver, ours)` and every 2.x speaks the same messages.
    pub fn parse_rsp(b: &[u8]) -> Result<Self, WireError> {
        let m = Self::from_bytes(b)?;
        if m.hdr.ty.get() != MsgType::SessInfoRsp as u16 {
            return Err(WireError::BadValue {
                field: "type",
                value: m.hdr.ty.get() as u64,
            });
        }
        Ok(m)
    }
}

wire_struct! {
    /// `struct rnbd_msg_open`.
    pub struct Open (264) {
        /// [`MsgType::Open`].
        pub hdr: MsgHdr = 0,
        /// [`AccessMode`].
        pub access_mode: u8 = 4,
        /// Zero.
        pub resv1: u8 = 5,
        /// Device path relative to the server's search path, NUL-terminated.
        pub dev_name: [u8; NAME_MAX] = 6,
        /// Zero.
        pub reserved: [u8; 3] = 261,
    }
}

impl Open {
    /// An open request; `None` if the name does not fit.
    pub fn new(mode: AccessMode, dev_name: &[u8]) -> Option<Self> {
        let mut m = Self::zeroed();
        m.hdr = MsgHdr::new(MsgType::Open);
        m.access_mode = mode as u8;
        m.dev_name = put_c_str(dev_name)?;
        Some(m)
    }

    /// Decodes an open request: type, access mode, and a non-empty device
    /// name terminated within its 255 bytes.
    pub fn parse(b: &[u8]) -> Result<(AccessMode, &[u8]), WireError> {
        let m = Self::from_bytes(b)?;
        if m.hdr.ty.get() != MsgType::Open as u16 {
            return Err(WireError::BadValue {
                field: "type",
                value: m.hdr.ty.get() as u64,
            });
        }
        let mode = AccessMode::try_from(m.access_mode)?;
        let name = c_str(&b[6..6 + NAME_MAX]).ok_or(WireError::BadValue {
            field: "dev_name",
            value: 0,
        })?;
        if name.is_empty() {
            return Err(WireError::BadValue {
                field: "dev_name",
                value: 1,
            });
        }
        Ok((mode, name))
    }
}

wire_struct! {
    /// `struct rnbd_msg_close`.
    pub struct Close (8) {
        /// [`MsgType::Close`].
        pub hdr: MsgHdr = 0,
        /// The server's id of the device.
        pub device_id: Le32 = 4,
    }
}

wire_struct! {
    /// `struct rnbd_msg_open_rsp`.
    pub struct OpenRsp (56) {
        /// [`MsgType::OpenRsp`].
        pub hdr: MsgHdr = 0,
        /// The server's id of the device.
        pub device_id: Le32 = 4,
        /// Size in 512-byte sectors.
        pub nsectors: Le64 = 8,
        /// Largest IO, sectors.
        pub max_hw_sectors: Le32 = 16,
        /// Largest WRITE ZEROES, sectors.
        pub max_write_zeroes_sectors: Le32 = 20,
        /// Largest discard, sectors.
        pub max_discard_sectors: Le32 = 24,
        /// Discard granularity, bytes.
        pub discard_granularity: Le32 = 28,
        /// Discard alignment, bytes.
        pub discard_alignment: Le32 = 32,
        /// Physical block size, bytes.
        pub physical_block_size: Le16 = 36,
        /// Logical block size, bytes.
        pub logical_block_size: Le16 = 38,
        /// Largest number of segments.
        pub max_segments: Le16 = 40,
        /// Non-zero if secure erase is supported.
        pub secure_discard: Le16 = 42,
        /// Unused.
        pub obsolete_rotational: u8 = 44,
        /// [`CACHE_FUA`], [`CACHE_WRITEBACK`].
        pub cache_policy: u8 = 45,
        /// Zero.
        pub reserved: [u8; 10] = 46,
    }
}

/// Largest device a client maps, in sectors: its size in bytes must fit the
/// block layer's `loff_t` (upstream's `MAX_LFS_FILESIZE` on 64-bit).
pub const MAX_NSECTORS: u64 = (i64::MAX as u64) >> 9;

/// Queue limits of a mapped device, from [`OpenRsp::limits`]: every value
/// is one `blk_validate_limits` accepts without a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevLimits {
    /// The server's id of the device.
    pub device_id: u32,
    /// Size in 512-byte sectors, at most [`MAX_NSECTORS`].
    pub nsectors: u64,
    /// Largest IO in sectors: at least a page, at most the transport's
    /// `max_io_size`, a multiple of the logical block size.
    pub max_hw_sectors: u32,
    /// Largest discard in sectors, 0 without discard.
    pub max_discard_sectors: u32,
    /// Discard granularity in bytes (0 without discard).
    pub discard_granularity: u32,
    /// Discard alignment in bytes, below the granularity.
    pub discard_alignment: u32,
    /// Largest WRITE ZEROES in sectors.
    pub max_write_zeroes_sectors: u32,
    /// Largest secure erase in sectors.
    pub max_secure_erase_sectors: u32,
    /// Power of two in `512..=page_size`.
    pub logical_block_size: u16,
    /// Power of two, at least the logical block size.
    pub physical_block_size: u16,
    /// The server caches writes.
    pub write_cache: bool,
    /// The server honours FUA (only with `write_cache`).
    pub fua: bool,
}

impl OpenRsp {
    /// Decodes an open response: its type must be [`MsgType::OpenRsp`].
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let m = Self::from_bytes(b)?;
        if m.hdr.ty.get() != MsgType::OpenRsp as u16 {
            return Err(WireError::BadValue {
                field: "type",
                value: m.hdr.ty.get() as u64,
            });
        }
        Ok(m)
    }

    /// The queue limits of the device this response describes, for a
    /// session whose transport carries at most `max_io_size` bytes per IO,
    /// on a kernel with `page_size`-byte pages.
    ///
    /// The values come from the server and go to the block layer, which
    /// WARNs on some (an IO smaller than a page, a logical block larger than
    /// the largest IO) and misbehaves on others.  Refused: a logical block
    /// size that is not a power of two in `512..=page_size` (upstream's
    /// client refuses 0), a physical block size that is not a power of two,
    /// a largest IO (the server's, capped by ours) under a page, a size
    /// beyond [`MAX_NSECTORS`], a discard granularity that is not whole
    /// sectors.  Adjusted as the block layer would: a physical block size
    /// under the logical one, `max_hw_sectors` 0 (ours) or above ours, a
    /// granularity under the physical block size; the alignment is reduced
    /// modulo the granularity; without discard both are 0.  Not used at all,
    /// as upstream's client: the server's `max_segments` (ours are the
    /// transport's).
    pub fn limits(&self, max_io_size: u32, page_size: u32) -> Result<DevLimits, WireError> {
        let bad = |field, value: u64| Err(WireError::BadValue { field, value });
        let lbs = self.logical_block_size.get();
        if lbs < 512 || !lbs.is_power_of_two() || lbs as u32 > page_size {
            return bad("logical_block_size", lbs as u64);
        }
        let pbs = match self.physical_block_size.get() {
            p if p < lbs => lbs,
            p if p.is_power_of_two() => p,
            p => return bad("physical_block_size", p as u64),
        };
        let page_sectors = page_size / 512;
        let ours = max_io_size / 512;
        let max_hw_sectors = match self.max_hw_sectors.get() {
            0 => ours,
            n => n.min(ours),
        };
        // Whole logical blocks, as the block layer rounds it.
        let max_hw_sectors = max_hw_sectors - max_hw_sectors % (lbs as u32 / 512);
        if max_hw_sectors < page_sectors.max(1) {
            return bad("max_hw_sectors", self.max_hw_sectors.get() as u64);
        }
        let nsectors = self.nsectors.get();
        if nsectors > MAX_NSECTORS {
            return bad("nsectors", nsectors);
        }
        let max_discard_sectors = self.max_discard_sectors.get();
        let (discard_granularity, discard_alignment) = if max_discard_sectors == 0 {
            (0, 0)
        } else {
            let g = self.discard_granularity.get();
            if g % 512 != 0 {
                return bad("discard_granularity", g as u64);
            }
            let g = g.max(pbs as u32);
            (g, self.discard_alignment.get() % g)
        };
        let write_cache = self.cache_policy & CACHE_WRITEBACK != 0;
        Ok(DevLimits {
            device_id: self.device_id.get(),
            nsectors,
            max_hw_sectors,
            max_discard_sectors,
            discard_granularity,
            discard_alignment,
            max_write_zeroes_sectors: self.max_write_zeroes_sectors.get(),
            max_secure_erase_sectors: if self.secure_discard.get() != 0 {
                max_discard_sectors
            } else {
                0
            },
            logical_block_size: lbs,
            physical_block_size: pbs,
            write_cache,
            fua: write_cache && self.cache_policy & CACHE_FUA != 0,
        })
    }
}

wire_struct! {
    /// `struct rnbd_msg_io` (26 bytes of fields, 32 with the C padding).
    pub struct MsgIo (32) {
        /// [`MsgType::Io`].
        pub hdr: MsgHdr = 0,
        /// The server's id of the device.
        pub device_id: Le32 = 4,
        /// First sector (512 bytes).
        pub sector: Le64 = 8,
        /// [`OpFlags`].
        pub rw: Le32 = 16,
        /// Bytes.
        pub bi_size: Le32 = 20,
        /// IO priority (`req_get_ioprio`).
        pub prio: Le16 = 24,
    }
}

/// Longest path the server builds, with its NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Builds the path of the block device a client asks for, as upstream's
/// `rnbd_srv_get_full_path`: `search` + `/` + `dev_name`, or, if `search`
/// contains `%SESSNAME%`, its part before that + `/` + `sessname` + `/` +
/// `dev_name`; runs of `/` collapse to one.  Writes it NUL-terminated into
/// `out` and returns its length.  Refuses (`None`) a `dev_name` containing
/// `..`, an empty one, and a result that does not fit `PATH_MAX` or `out`.
pub fn full_path(search: &[u8], sessname: &[u8], dev_name: &[u8], out: &mut [u8]) -> Option<usize> {
    if dev_name.is_empty() || dev_name.windows(2).any(|w| w == b"..") || dev_name.contains(&0) {
        return None;
    }
    const KEY: &[u8] = b"%SESSNAME%";
    let parts: [&[u8]; 5] = match search.windows(KEY.len()).position(|w| w == KEY) {
        Some(i) => [&search[..i], b"/", sessname, b"/", dev_name],
        None => [search, b"/", dev_name, b"", b""],
    };
    let mut n = 0;
    let cap = out.len().min(PATH_MAX);
    for &c in parts.iter().flat_map(|p| p.iter()) {
        if c == b'/' && n > 0 && out[n - 1] == b'/' {
            continue;
        }
        if n + 1 >= cap {
            return None;
        }
        out[n] = c;
        n += 1;
    }
    if n >= cap {
        return None;
    }
    out[n] = 0;
    Some(n)
}

#[cfg(test)]
mod hostile {
    use super::*;
    extern crate std;

    #[test]
    fn open() {
        let ok = Open::new(AccessMode::Ro, b"nullb0").unwrap().to_bytes();
        assert_eq!(Open::parse(&ok), Ok((AccessMode::Ro, &b"nullb0"[..])));
        let mut b = ok;
        b[4] = 3;
        assert!(Open::parse(&b).is_err());
        let mut b = ok;
        b[6..261].fill(b'x');
        assert!(Open::parse(&b).is_err());
        let mut b = ok;
        b[6] = 0;
        assert!(Open::parse(&b).is_err());
        assert!(Open::parse(&ok[..263]).is_err());
        let mut b = ok;
        b[0] = 4;
        assert!(Open::parse(&b).is_err());
    }

    #[test]
    fn paths() {
        let mut b = [0u8; 64];
        let mut p = |s: &[u8], d: &[u8]| {
            full_path(s, b"sess1", d, &mut b)
                .map(|n| std::string::String::from_utf8(b[..n].to_vec()).unwrap())
        };
        assert_eq!(p(b"/", b"dev/nullb0").as_deref(), Some("/dev/nullb0"));
        assert_eq!(p(b"/dev/", b"/nullb0").as_deref(), Some("/dev/nullb0"));
        assert_eq!(
            p(b"/srv/%SESSNAME%/x", b"d").as_deref(),
            Some("/srv/sess1/d")
        );
        assert_eq!(p(b"/", b"../etc/x"), None);
        assert_eq!(p(b"/", b"a..b"), None);
        assert_eq!(p(b"/", b""), None);
        assert_eq!(p(b"/dev", &[b'x'; 80]), None);
        let mut big = [0u8; 8192];
        assert_eq!(full_path(b"/", b"s", &[b'y'; 4095], &mut big), None);
        assert_eq!(full_path(b"/", b"s", &[b'y'; 4094], &mut big), Some(4095));
    }

    /// What upstream 6.12's server answers for a 512-byte null_blk.
    fn open_rsp() -> OpenRsp {
        let mut r = OpenRsp::zeroed();
        r.hdr = MsgHdr::new(MsgType::OpenRsp);
        r.device_id = Le32::new(3);
        r.nsectors = Le64::new(2 << 21);
        r.max_hw_sectors = Le32::new(255);
        r.max_write_zeroes_sectors = Le32::new(0);
        r.max_discard_sectors = Le32::new(0xffff_ffff >> 9);
        r.discard_granularity = Le32::new(512);
        r.discard_alignment = Le32::new(0);
        r.physical_block_size = Le16::new(512);
        r.logical_block_size = Le16::new(512);
        r.max_segments = Le16::new(128);
        r.cache_policy = CACHE_WRITEBACK | CACHE_FUA;
        r
    }

    const MAX_IO: u32 = (128 << 10) - 4096;

    #[test]
    fn open_rsp_upstream() {
        let b = open_rsp().to_bytes();
        let l = OpenRsp::parse(&b).unwrap().limits(MAX_IO, 4096).unwrap();
        assert_eq!(
            l,
            DevLimits {
                device_id: 3,
                nsectors: 2 << 21,
                max_hw_sectors: 248,
                max_discard_sectors: 0xffff_ffff >> 9,
                discard_granularity: 512,
                discard_alignment: 0,
                max_write_zeroes_sectors: 0,
                max_secure_erase_sectors: 0,
                logical_block_size: 512,
                physical_block_size: 512,
                write_cache: true,
                fua: true,
            }
        );
        // 4 KiB blocks: IO in whole blocks.
        let mut r = open_rsp();
        r.logical_block_size = Le16::new(4096);
        r.physical_block_size = Le16::new(4096);
        let l = r.limits(MAX_IO, 4096).unwrap();
        assert_eq!((l.max_hw_sectors, l.discard_granularity), (248, 4096));
        // max_hw_sectors 0: ours; above ours: ours.
        r.max_hw_sectors = Le32::new(0);
        assert_eq!(r.limits(MAX_IO, 4096).unwrap().max_hw_sectors, 248);
        r.max_hw_sectors = Le32::new(u32::MAX);
        assert_eq!(r.limits(MAX_IO, 4096).unwrap().max_hw_sectors, 248);
        // A server whose bdev has a larger limit than the transport's.
        r.max_hw_sectors = Le32::new(2560);
        assert_eq!(r.limits(MAX_IO, 4096).unwrap().max_hw_sectors, 248);
        // FUA without a write cache means nothing.
        r.cache_policy = CACHE_FUA;
        let l = r.limits(MAX_IO, 4096).unwrap();
        assert!(!l.write_cache && !l.fua);
        // Secure erase follows the discard limit.
        r.secure_discard = Le16::new(1);
        assert_eq!(
            r.limits(MAX_IO, 4096).unwrap().max_secure_erase_sectors,
            0xffff_ffff >> 9
        );
        // Type.
        let mut b = open_rsp().to_bytes();
        b[0] = 1;
        assert!(OpenRsp::parse(&b).is_err());
        assert!(OpenRsp::parse(&b[..55]).is_err());
    }

    #[test]
    fn open_rsp_hostile() {
        let with = |f: &dyn Fn(&mut OpenRsp)| {
            let mut r = open_rsp();
            f(&mut r);
            r.limits(MAX_IO, 4096)
        };
        // Logical block size: 0, not a power of two, beyond a page.
        for lbs in [0u16, 3, 256, 511, 513, 1000, 8192, 32768, 65535] {
            assert!(
                with(&|r| r.logical_block_size = Le16::new(lbs)).is_err(),
                "lbs {}",
                lbs
            );
        }
        for lbs in [512u16, 1024, 2048, 4096] {
            let l = with(&|r| r.logical_block_size = Le16::new(lbs)).unwrap();
            assert_eq!((l.logical_block_size, l.physical_block_size), (lbs, lbs));
        }
        // 64 KiB pages take larger blocks.
        let mut r = open_rsp();
        r.logical_block_size = Le16::new(16384);
        assert!(r.limits(MAX_IO, 65536).is_ok());
        // Physical block size: smaller than logical (and 0) is raised, not
        // a power of two refused.
        let l = with(&|r| {
            r.logical_block_size = Le16::new(4096);
            r.physical_block_size = Le16::new(0);
        })
        .unwrap();
        assert_eq!(l.physical_block_size, 4096);
        assert_eq!(
            with(&|r| r.physical_block_size = Le16::new(256))
                .unwrap()
                .physical_block_size,
            512
        );
        assert_eq!(
            with(&|r| r.physical_block_size = Le16::new(32768))
                .unwrap()
                .physical_block_size,
            32768
        );
        for pbs in [513u16, 1536, 4097, 65535] {
            assert!(
                with(&|r| r.physical_block_size = Le16::new(pbs)).is_err(),
                "pbs {}",
                pbs
            );
        }
        // Largest IO under a page (blk_validate_limits WARNs).
        for n in 1..8u32 {
            assert!(
                with(&|r| r.max_hw_sectors = Le32::new(n)).is_err(),
                "max_hw_sectors {}",
                n
            );
        }
        assert_eq!(
            with(&|r| r.max_hw_sectors = Le32::new(8))
                .unwrap()
                .max_hw_sectors,
            8
        );
        // ... also once rounded to whole logical blocks.
        assert_eq!(
            with(&|r| r.max_hw_sectors = Le32::new(13))
                .unwrap()
                .max_hw_sectors,
            13
        );
        assert!(with(&|r| {
            r.logical_block_size = Le16::new(4096);
            r.max_hw_sectors = Le32::new(15);
        })
        .is_ok());
        // A transport whose IO is under a page (its geometry check refuses
        // it first; checked here too).
        assert!(open_rsp().limits(2048, 4096).is_err());
        assert!(open_rsp().limits(0, 4096).is_err());
        // Size beyond loff_t.
        assert!(with(&|r| r.nsectors = Le64::new(u64::MAX)).is_err());
        assert!(with(&|r| r.nsectors = Le64::new(MAX_NSECTORS + 1)).is_err());
        assert_eq!(
            with(&|r| r.nsectors = Le64::new(MAX_NSECTORS))
                .unwrap()
                .nsectors,
            MAX_NSECTORS
        );
        assert_eq!(with(&|r| r.nsectors = Le64::new(0)).unwrap().nsectors, 0);
        // Discard: granularity not in sectors refused; 0 or under the
        // physical block raised; alignment reduced; no discard, no
        // granularity.
        for g in [1u32, 511, 513, 0xffff_ffff] {
            assert!(
                with(&|r| r.discard_granularity = Le32::new(g)).is_err(),
                "granularity {}",
                g
            );
        }
        let l = with(&|r| {
            r.physical_block_size = Le16::new(4096);
            r.discard_granularity = Le32::new(0);
            r.discard_alignment = Le32::new(0xffff_ffff);
        })
        .unwrap();
        assert_eq!((l.discard_granularity, l.discard_alignment), (4096, 4095));
        let l = with(&|r| r.discard_granularity = Le32::new(3 * 512)).unwrap();
        assert_eq!(l.discard_granularity, 1536);
        let l = with(&|r| {
            r.max_discard_sectors = Le32::new(0);
            r.discard_granularity = Le32::new(3);
            r.discard_alignment = Le32::new(7);
            r.secure_discard = Le16::new(1);
        })
        .unwrap();
        assert_eq!(
            (
                l.max_discard_sectors,
                l.discard_granularity,
                l.discard_alignment,
                l.max_secure_erase_sectors
            ),
            (0, 0, 0, 0)
        );
        // max_segments is not used, whatever it is.
        assert!(with(&|r| r.max_segments = Le16::new(0)).is_ok());
    }

    #[test]
    fn sess_info_rsp() {
        assert!(SessInfo::parse_rsp(&SessInfo::new(true).to_bytes()).is_ok());
        assert!(SessInfo::parse_rsp(&SessInfo::new(false).to_bytes()).is_err());
        assert!(SessInfo::parse_rsp(&SessInfo::new(true).to_bytes()[..35]).is_err());
    }

    #[test]
    fn ops() {
        for op in 0..6u32 {
            let f = OpFlags::try_from(op | F_SYNC).unwrap();
            assert_eq!(f.encode(), op | F_SYNC);
        }
        assert!(OpFlags::try_from(6).is_err());
        assert!(OpFlags::try_from(0xff).is_err());
        let data: std::vec::Vec<Op> = (0..6u32)
            .map(|v| Op::try_from(v).unwrap())
            .filter(|op| op.has_data())
            .collect();
        assert_eq!(data, [Op::Read, Op::Write]);
        let ro: std::vec::Vec<Op> = (0..6u32)
            .map(|v| Op::try_from(v).unwrap())
            .filter(|op| !op.modifies())
            .collect();
        assert_eq!(ro, [Op::Read, Op::Flush]);
        assert!(OpFlags::try_from(1 << 10).is_err());
        assert_eq!(
            msg_type(&[6, 0, 0, 0]),
            Err(WireError::BadValue {
                field: "rnbd msg type",
                value: 6
            })
        );
        assert!(msg_type(&[4, 0, 0]).is_err());
        assert_eq!(
            AccessMode::from_sysfs(b"migration"),
            Some(AccessMode::Migration)
        );
        assert_eq!(AccessMode::from_sysfs(b"RW"), None);
    }
}
