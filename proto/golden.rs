// SPDX-License-Identifier: GPL-2.0

//! Layout test against the upstream C structs: `golden/wire.golden` is what
//! `golden/gen.sh` printed for the values of `golden/golden.c`, compiled from
//! the struct definitions in the 6.12 headers.  The Rust structs must encode
//! the same values to the same bytes (and decode them back).
//!
//! `RNBD_GOLDEN` names another golden file (the test suite regenerates it
//! from the unpacked kernel source before running this).

use crate::rnbd::{self, AccessMode, MsgHdr, MsgType, OpFlags};
use crate::rtrs::{
    self, ConnReq, ConnRsp, InfoReq, InfoRspHdr, RdmaReadHdr, RdmaWrite, RkeyRsp, SgDesc,
};
use crate::wire::{Le16, Le32, Le64};
use std::string::String;
use std::vec::Vec;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| std::format!("{:02x}", x)).collect()
}

fn golden() -> Vec<(String, usize, String)> {
    let path = std::env::var("RNBD_GOLDEN")
        .unwrap_or_else(|_| std::format!("{}/golden/wire.golden", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}", path, e));
    text.lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            let name = p.next().unwrap().into();
            let size = p.next().unwrap().parse().unwrap();
            let bytes = p.next().unwrap_or("").into();
            (name, size, bytes)
        })
        .collect()
}

fn rust_side() -> Vec<(&'static str, Vec<u8>)> {
    let mut uuid = [0u8; 16];
    let mut puuid = [0u8; 16];
    for i in 0..16 {
        uuid[i] = i as u8;
        puuid[i] = 0xf0 | i as u8;
    }
    let mut info_rsp = InfoRspHdr::zeroed();
    info_rsp.ty = Le16::new(rtrs::MsgType::InfoRsp as u16);
    info_rsp.sg_cnt = Le16::new(512);
    let rd = RdmaReadHdr {
        ty: Le16::new(rtrs::MsgType::Read as u16),
        usr_len: Le16::new(32),
        flags: Le16::new(rtrs::MSG_NEED_INVAL_F),
        sg_cnt: Le16::new(1),
    };
    let mut close = rnbd::Close::zeroed();
    close.hdr = MsgHdr::new(MsgType::Close);
    close.device_id = Le32::new(42);
    let mut orsp = rnbd::OpenRsp::zeroed();
    orsp.hdr = MsgHdr::new(MsgType::OpenRsp);
    orsp.device_id = Le32::new(42);
    orsp.nsectors = Le64::new(2097152);
    orsp.max_hw_sectors = Le32::new(248);
    orsp.max_write_zeroes_sectors = Le32::new(0xffff);
    orsp.max_discard_sectors = Le32::new(0x7fffff);
    orsp.discard_granularity = Le32::new(512);
    orsp.physical_block_size = Le16::new(4096);
    orsp.logical_block_size = Le16::new(512);
    orsp.max_segments = Le16::new(128);
    orsp.secure_discard = Le16::new(1);
    orsp.cache_policy = rnbd::CACHE_FUA | rnbd::CACHE_WRITEBACK;
    let mut io = rnbd::MsgIo::zeroed();
    io.hdr = MsgHdr::new(MsgType::Io);
    io.device_id = Le32::new(42);
    io.sector = Le64::new(0x123456789);
    io.rw = Le32::new(
        OpFlags {
            op: rnbd::Op::Write,
            sync: true,
            fua: true,
        }
        .encode(),
    );
    io.bi_size = Le32::new(131072);
    io.prio = Le16::new(0x4004);
    std::vec![
        (
            "sg_desc",
            SgDesc {
                addr: Le64::new(0x1122334455667788),
                key: Le32::new(0xa1b2c3d4),
                len: Le32::new(0x20000)
            }
            .to_bytes()
            .to_vec()
        ),
        (
            "conn_req",
            ConnReq::new(3, 5, 7, uuid, puuid, true).to_bytes().to_vec()
        ),
        (
            "conn_rsp",
            ConnRsp::accept(512, 126976, 4096, true).to_bytes().to_vec()
        ),
        (
            "info_req",
            InfoReq::new(b"clt-path").unwrap().to_bytes().to_vec()
        ),
        ("info_rsp", info_rsp.to_bytes().to_vec()),
        (
            "rkey_rsp",
            RkeyRsp {
                ty: Le16::new(rtrs::MsgType::RkeyRsp as u16),
                buf_id: Le16::new(511),
                rkey: Le32::new(0x12345678)
            }
            .to_bytes()
            .to_vec()
        ),
        ("rdma_read", rd.to_bytes().to_vec()),
        (
            "rdma_write",
            RdmaWrite {
                ty: Le16::new(rtrs::MsgType::Write as u16),
                usr_len: Le16::new(32)
            }
            .to_bytes()
            .to_vec()
        ),
        ("sess_info", rnbd::SessInfo::new(false).to_bytes().to_vec()),
        (
            "open",
            rnbd::Open::new(AccessMode::Rw, b"nullb0")
                .unwrap()
                .to_bytes()
                .to_vec()
        ),
        ("close", close.to_bytes().to_vec()),
        ("open_rsp", orsp.to_bytes().to_vec()),
        ("io", io.to_bytes().to_vec()),
    ]
}

#[test]
fn matches_c_layout() {
    let g = golden();
    let r = rust_side();
    assert_eq!(
        g.len(),
        r.len(),
        "golden file and test disagree on the struct list"
    );
    for ((gname, gsize, gbytes), (rname, rbytes)) in g.iter().zip(r.iter()) {
        assert_eq!(gname, rname);
        assert_eq!(*gsize, rbytes.len(), "sizeof({}) differs", gname);
        assert_eq!(gbytes, &hex(rbytes), "bytes of {} differ", gname);
    }
}

#[test]
fn decode_golden_back() {
    let g = golden();
    let bytes = |n: &str| -> Vec<u8> {
        let h = &g.iter().find(|e| e.0 == n).unwrap().2;
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let req = ConnReq::parse(&bytes("conn_req")).unwrap();
    assert_eq!(
        (
            req.cid.get(),
            req.cid_num.get(),
            req.recon_cnt.get(),
            req.first_conn()
        ),
        (3, 5, 7, true)
    );
    let rsp = ConnRsp::parse(&bytes("conn_rsp")).unwrap();
    assert_eq!(
        (rsp.queue_depth.get(), rsp.flags.get()),
        (512, rtrs::MSG_NEW_RKEY_F)
    );
    let b = bytes("info_req");
    let (_, name) = InfoReq::parse(&b).unwrap();
    assert_eq!(name, b"clt-path");
    let b = bytes("open");
    assert_eq!(
        rnbd::Open::parse(&b).unwrap(),
        (AccessMode::Rw, &b"nullb0"[..])
    );
    let io = rnbd::MsgIo::from_bytes(&bytes("io")).unwrap();
    assert_eq!(
        OpFlags::try_from(io.rw.get()).unwrap(),
        OpFlags {
            op: rnbd::Op::Write,
            sync: true,
            fua: true
        }
    );
    assert_eq!(io.sector.get(), 0x123456789);
}
