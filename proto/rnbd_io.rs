// SPDX-License-Identifier: GPL-2.0

//! Server-side checks of an RNBD IO request against what the block layer
//! accepts, before anything of it reaches a bio.
//!
//! Upstream 6.12 turns any `rw` into bio flags: `READ|FUA` becomes a
//! `REQ_OP_READ|REQ_FUA` bio, which `submit_bio_noacct` WARNs about, and
//! unaligned sizes or sectors go to the driver.  Here a request must be
//! what a block device could have sent.

use crate::rnbd::{Op, OpFlags};
use crate::wire::WireError;

/// Checks one request: `bi_size` bytes at 512-byte `sector`, with
/// `data_len` bytes of data carried, on a device of `lbs`-byte logical
/// blocks (a power of two, 512..=65536).
///
/// - FUA only on writes (and flushes, which the server submits as an empty
///   preflush write): the block layer accepts `REQ_FUA` only there.
/// - Reads and writes carry exactly `bi_size` bytes, at least one block;
///   flushes carry nothing and have no size; discard, secure erase and
///   write zeroes carry nothing and have a non-zero size.
/// - Sizes and sectors are multiples of the logical block size; the end
///   sector does not overflow.
pub fn check_io(
    f: OpFlags,
    sector: u64,
    bi_size: u32,
    data_len: usize,
    lbs: u32,
) -> Result<(), WireError> {
    let bad = |field, value: u64| Err(WireError::BadValue { field, value });
    if f.fua && !matches!(f.op, Op::Write | Op::Flush) {
        return bad("fua", f.op as u64);
    }
    if !lbs.is_power_of_two() || !(512..=65536).contains(&lbs) {
        return bad("logical block size", lbs as u64);
    }
    match f.op {
        Op::Read | Op::Write => {
            if bi_size == 0 || bi_size as usize != data_len {
                return bad("bi_size", bi_size as u64);
            }
        }
        Op::Flush => {
            if bi_size != 0 || data_len != 0 {
                return bad("bi_size", bi_size as u64);
            }
            return Ok(());
        }
        Op::Discard | Op::SecureErase | Op::WriteZeroes => {
            if bi_size == 0 || data_len != 0 {
                return bad("bi_size", bi_size as u64);
            }
        }
    }
    if bi_size % lbs != 0 {
        return bad("bi_size", bi_size as u64);
    }
    if sector % (lbs as u64 / 512) != 0 {
        return bad("sector", sector);
    }
    if sector.checked_add(bi_size as u64 / 512).is_none() {
        return bad("sector", sector);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: Op, fua: bool) -> OpFlags {
        OpFlags {
            op,
            sync: false,
            fua,
        }
    }

    #[test]
    fn fua_only_where_the_block_layer_takes_it() {
        assert!(check_io(f(Op::Write, true), 0, 4096, 4096, 512).is_ok());
        assert!(check_io(f(Op::Flush, true), 0, 0, 0, 512).is_ok());
        assert!(check_io(f(Op::Read, true), 0, 4096, 4096, 512).is_err());
        for op in [Op::Discard, Op::SecureErase, Op::WriteZeroes] {
            assert!(check_io(f(op, true), 0, 4096, 0, 512).is_err());
            assert!(check_io(f(op, false), 0, 4096, 0, 512).is_ok());
        }
    }

    #[test]
    fn sizes_and_alignment() {
        assert!(check_io(f(Op::Write, false), 0, 1000, 1000, 512).is_err());
        assert!(check_io(f(Op::Write, false), 0, 4096, 2048, 512).is_err());
        assert!(check_io(f(Op::Read, false), 0, 0, 0, 512).is_err());
        assert!(check_io(f(Op::Read, false), 1, 4096, 4096, 4096).is_err());
        assert!(check_io(f(Op::Read, false), 8, 4096, 4096, 4096).is_ok());
        assert!(check_io(f(Op::Read, false), 0, 512, 512, 4096).is_err());
        assert!(check_io(f(Op::Flush, false), 0, 0, 4096, 512).is_err());
        assert!(check_io(f(Op::Flush, false), 0, 512, 0, 512).is_err());
        assert!(check_io(f(Op::Discard, false), 0, 0, 0, 512).is_err());
        assert!(check_io(f(Op::Discard, false), 0, 0xffff_fe00, 0, 512).is_ok());
        assert!(check_io(f(Op::Write, false), u64::MAX, 4096, 4096, 512).is_err());
        assert!(check_io(f(Op::Write, false), u64::MAX - 8, 4096, 4096, 512).is_ok());
        assert!(check_io(f(Op::Write, false), 0, 4096, 4096, 3).is_err());
    }
}
