// SPDX-License-Identifier: GPL-2.0

//! The option string written to `/sys/class/rnbd-client/ctl/map_device`.
//!
//! Same tokens as upstream (`rnbd_clt_parse_map_options`): space-separated
//! `sessname=`, `path=` (repeatable), `device_path=`, `access_mode=`,
//! `nr_poll_queues=`, `dest_port=`.  Differences, each one a refusal or a fix
//! where upstream silently did something else:
//! - a name of 255 bytes is refused (upstream cut it to 254 without a word);
//! - `dest_port` applies to every path, wherever it stands in the string
//!   (upstream applied it only to the paths written after it);
//!
//! Also here: [`parse_ulong`], the number written to a mapped device's
//! `resize` file (upstream `kstrtoul(buf, 0, ...)`).

use crate::addr::{parse_addr, parse_i32, parse_path, AddrError, PathAddr, ScopeFn};
use crate::rnbd::AccessMode;

/// Longest session name and device path kept (upstream copies them into
/// `char[NAME_MAX]` buffers, so 254 bytes and the NUL).
pub const NAME_LEN_MAX: usize = 254;
/// Paths accepted in one map_device string (upstream `paths[6]`).
pub const MAX_PATHS: usize = 6;
/// Destination port when none is given (upstream `RTRS_PORT`).
pub const DEFAULT_PORT: u16 = 1234;

const EINVAL: i32 = 22;
const ENOMEM: i32 = 12;
const ERANGE: i32 = 34;
const EPROTONOSUPPORT: i32 = 93;

/// A parsed map_device request.  Strings borrow from the written buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct MapOptions<'a> {
    /// `sessname=`: the RTRS session (new or existing).
    pub sessname: &'a [u8],
    /// `path=` entries, `npaths` of them.
    pub paths: [Option<PathAddr>; MAX_PATHS],
    /// How many `path=` were given (0: the session must already exist).
    pub npaths: usize,
    /// `device_path=`: the device name sent to the server.
    pub device_path: &'a [u8],
    /// `access_mode=`, `rw` by default.
    pub access_mode: AccessMode,
    /// `nr_poll_queues=`, 0 by default; `-1` means one per CPU.
    pub nr_poll_queues: u32,
    /// `dest_port=`, [`DEFAULT_PORT`] by default.
    pub dest_port: u16,
}

impl MapOptions<'_> {
    /// The given paths.
    pub fn paths(&self) -> impl Iterator<Item = &PathAddr> {
        self.paths.iter().take(self.npaths).flatten()
    }
}

/// Why a map_device string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError<'a> {
    /// `sessname` longer than [`NAME_LEN_MAX`].
    SessnameTooLong,
    /// `device_path` longer than [`NAME_LEN_MAX`].
    DevPathTooLong,
    /// More than [`MAX_PATHS`] paths.
    TooManyPaths,
    /// A `path=` value that is not an address pair.
    BadPath(&'a [u8], AddrError),
    /// A `path=` whose destination (after a valid source, if any) starts
    /// with neither `ip:` nor `gid:`.
    NoProtocol(&'a [u8]),
    /// `dest_port` not in 0..=65535.
    BadPort(&'a [u8]),
    /// `access_mode` not ro, rw or migration.
    BadAccessMode(&'a [u8]),
    /// `nr_poll_queues` not in -1..=number of CPUs.
    BadPollQueues(&'a [u8]),
    /// An unknown token, or a known one without a value.
    Unknown(&'a [u8]),
    /// `sessname` or `device_path` missing.
    Missing,
}

impl MapError<'_> {
    /// The errno upstream returns for it (positive).
    pub fn errno(&self) -> i32 {
        match self {
            Self::TooManyPaths => ENOMEM,
            // rtrs_str_to_sockaddr()'s answer to an unknown address family,
            // passed on by rtrs_addr_to_sockaddr() for the destination only.
            Self::NoProtocol(_) => EPROTONOSUPPORT,
            _ => EINVAL,
        }
    }
}

/// Parses one `path=` value.  Upstream's errno depends on which half
/// failed: `rtrs_addr_to_sockaddr()` turns any error of the source into
/// `EINVAL` but returns the destination's own, which is `EPROTONOSUPPORT`
/// when it starts with neither `ip:` nor `gid:`.
fn path<'a>(v: &'a [u8], scope: ScopeFn<'_>) -> Result<PathAddr, MapError<'a>> {
    parse_path(v, scope).map_err(|e| {
        // The same separator `parse_path` (and upstream) picks.
        let sep = v
            .iter()
            .position(|&c| c == b',')
            .or_else(|| v.iter().position(|&c| c == b'@'));
        let src_ok = match sep {
            Some(i) => v.get(..i).is_some_and(|s| parse_addr(s, scope).is_ok()),
            None => true,
        };
        if src_ok && e == AddrError::Prefix {
            MapError::NoProtocol(v)
        } else {
            MapError::BadPath(v, e)
        }
    })
}

/// `buf` without leading and trailing ASCII whitespace (`<[u8]>::trim_ascii`
/// is newer than the kernel's minimum Rust version).
pub fn trim_ascii(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(buf.len());
    let end = buf
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &buf[start..end]
}

fn value<'a>(tok: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    tok.strip_prefix(key)?.strip_prefix(b"=")
}

/// Parses a map_device string; `nr_cpus` bounds `nr_poll_queues`, `scope`
/// resolves the interface names of IPv6 scopes.
pub fn parse_map<'a>(
    buf: &'a [u8],
    nr_cpus: u32,
    scope: ScopeFn<'_>,
) -> Result<MapOptions<'a>, MapError<'a>> {
    let mut o = MapOptions {
        sessname: b"",
        paths: [None; MAX_PATHS],
        npaths: 0,
        device_path: b"",
        access_mode: AccessMode::Rw,
        nr_poll_queues: 0,
        dest_port: DEFAULT_PORT,
    };
    let (mut have_sess, mut have_dev) = (false, false);
    // Upstream kstrdup()s the buffer, so the string ends at the first NUL;
    // then it strstrip()s it and splits on single spaces, skipping empty
    // tokens; a tab or newline inside is part of a token.
    let buf = buf.split(|&c| c == 0).next().unwrap_or(b"");
    let trimmed = trim_ascii(buf);
    for tok in trimmed.split(|&c| c == b' ').filter(|t| !t.is_empty()) {
        if let Some(v) = value(tok, b"sessname").filter(|v| !v.is_empty()) {
            if v.len() > NAME_LEN_MAX {
                return Err(MapError::SessnameTooLong);
            }
            o.sessname = v;
            have_sess = true;
        } else if let Some(v) = value(tok, b"path").filter(|v| !v.is_empty()) {
            if o.npaths >= MAX_PATHS {
                return Err(MapError::TooManyPaths);
            }
            o.paths[o.npaths] = Some(path(v, scope)?);
            o.npaths += 1;
        } else if let Some(v) = value(tok, b"device_path").filter(|v| !v.is_empty()) {
            if v.len() > NAME_LEN_MAX {
                return Err(MapError::DevPathTooLong);
            }
            o.device_path = v;
            have_dev = true;
        } else if let Some(v) = value(tok, b"dest_port").filter(|v| !v.is_empty()) {
            o.dest_port = parse_i32(v)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(MapError::BadPort(v))?;
        } else if let Some(v) = value(tok, b"access_mode").filter(|v| !v.is_empty()) {
            o.access_mode = AccessMode::from_sysfs(v).ok_or(MapError::BadAccessMode(v))?;
        } else if let Some(v) = value(tok, b"nr_poll_queues").filter(|v| !v.is_empty()) {
            o.nr_poll_queues = match parse_i32(v) {
                Some(-1) => nr_cpus,
                Some(n) => u32::try_from(n)
                    .ok()
                    .filter(|&n| n <= nr_cpus)
                    .ok_or(MapError::BadPollQueues(v))?,
                None => return Err(MapError::BadPollQueues(v)),
            };
        } else {
            return Err(MapError::Unknown(tok));
        }
    }
    if !have_sess || !have_dev {
        return Err(MapError::Missing);
    }
    Ok(o)
}

/// Parses a number as upstream's `kstrtoul(buf, 0, &n)` on a 64-bit
/// kernel: the C string ends at the first NUL; one `+` may lead; `0x` (with
/// a hex digit after it) means hex, another leading `0` octal; one `\n` may
/// follow; no other blank anywhere.  Errors are upstream's, positive: a
/// value over `u64::MAX` is `ERANGE` (even with garbage after the digits,
/// as `_parse_integer` counts on past an overflow), anything else `EINVAL`.
pub fn parse_ulong(buf: &[u8]) -> Result<u64, i32> {
    let s = buf.split(|&c| c == 0).next().unwrap_or(b"");
    let s = s.strip_prefix(b"+").unwrap_or(s);
    // _parse_integer_fixup_radix() with base 0.
    let (base, digits) = match s {
        [b'0', x, h, ..] if (*x | 0x20) == b'x' && h.is_ascii_hexdigit() => (16u32, &s[2..]),
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    let mut v: u64 = 0;
    let mut overflow = false;
    let mut n = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(16).filter(|&d| d < base) else {
            break;
        };
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        n += 1;
    }
    if overflow {
        return Err(ERANGE);
    }
    if n == 0 {
        return Err(EINVAL);
    }
    let rest = &digits[n..];
    let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(EINVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Addr, NO_NAMES};

    #[test]
    fn upstream_examples() {
        let o = parse_map(
            b"sessname=s1 path=ip:10.99.0.2 device_path=/dev/nullb0\n",
            2,
            NO_NAMES,
        )
        .unwrap();
        assert_eq!(o.sessname, b"s1");
        assert_eq!(o.device_path, b"/dev/nullb0");
        assert_eq!(o.npaths, 1);
        assert_eq!(o.paths().next().unwrap().dst, Addr::V4([10, 99, 0, 2]));
        assert_eq!(o.access_mode, AccessMode::Rw);
        assert_eq!(o.dest_port, DEFAULT_PORT);
        assert_eq!(o.nr_poll_queues, 0);

        let o = parse_map(
            b"  dest_port=1235 sessname=s path=ip:10.0.0.1@ip:10.0.0.2  path=ip:10.0.1.2 device_path=d access_mode=ro nr_poll_queues=-1",
            4, NO_NAMES,
        )
        .unwrap();
        assert_eq!(o.npaths, 2);
        assert_eq!(o.dest_port, 1235);
        assert_eq!(o.access_mode, AccessMode::Ro);
        assert_eq!(o.nr_poll_queues, 4);
        // No path: the session must exist, which the caller checks.
        assert_eq!(
            parse_map(b"sessname=s device_path=d", 1, NO_NAMES)
                .unwrap()
                .npaths,
            0
        );
        // A C string: what follows a NUL is not seen.
        let o = parse_map(
            b"sessname=s device_path=d\0 colour=blue path=x",
            1,
            NO_NAMES,
        )
        .unwrap();
        assert_eq!(
            (o.sessname, o.device_path, o.npaths),
            (&b"s"[..], &b"d"[..], 0)
        );
    }

    #[test]
    fn refusals() {
        let long = [b'a'; 255];
        let mut s = std::vec::Vec::from(&b"sessname="[..]);
        s.extend_from_slice(&long);
        s.extend_from_slice(b" device_path=d");
        assert_eq!(parse_map(&s, 1, NO_NAMES), Err(MapError::SessnameTooLong));
        assert_eq!(
            parse_map(&s[1..], 1, NO_NAMES),
            Err(MapError::Unknown(&s[1..9 + 255]))
        );
        let cases: &[(&[u8], MapError<'_>)] = &[
            (b"sessname=s", MapError::Missing),
            (b"device_path=d", MapError::Missing),
            (b"", MapError::Missing),
            (b"\0sessname=s device_path=d", MapError::Missing),
            (
                b"sessname=s path=\0ip:1.2.3.4 device_path=d",
                MapError::Unknown(b"path="),
            ),
            (
                b"sessname=s device_path=d foo=1",
                MapError::Unknown(b"foo=1"),
            ),
            (b"sessname= device_path=d", MapError::Unknown(b"sessname=")),
            (b"sessname device_path=d", MapError::Unknown(b"sessname")),
            (
                b"sessname=s device_path=d access_mode=rx",
                MapError::BadAccessMode(b"rx"),
            ),
            (
                b"sessname=s device_path=d dest_port=65536",
                MapError::BadPort(b"65536"),
            ),
            (
                b"sessname=s device_path=d dest_port=-1",
                MapError::BadPort(b"-1"),
            ),
            (
                b"sessname=s device_path=d dest_port=12x",
                MapError::BadPort(b"12x"),
            ),
            (
                b"sessname=s device_path=d nr_poll_queues=3",
                MapError::BadPollQueues(b"3"),
            ),
            (
                b"sessname=s device_path=d nr_poll_queues=-2",
                MapError::BadPollQueues(b"-2"),
            ),
            (
                b"sessname=s device_path=d path=1.2.3.4",
                MapError::NoProtocol(b"1.2.3.4"),
            ),
            (
                b"sessname=s device_path=d path=ip:1.2.3",
                MapError::BadPath(b"ip:1.2.3", AddrError::Syntax),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_map(input, 2, NO_NAMES),
                Err(*want),
                "{:?}",
                core::str::from_utf8(input)
            );
        }
        let seven = b"sessname=s device_path=d path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1 \
path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1";
        assert_eq!(parse_map(seven, 2, NO_NAMES), Err(MapError::TooManyPaths));
        assert_eq!(MapError::TooManyPaths.errno(), 12);
        assert_eq!(MapError::Missing.errno(), 22);
    }

    /// A path= without `ip:`/`gid:` is upstream's EPROTONOSUPPORT when the
    /// destination lacks it, EINVAL when the source does.
    #[test]
    fn path_errnos() {
        let errno = |p: &[u8]| {
            let mut s = std::vec::Vec::from(&b"sessname=s path="[..]);
            s.extend_from_slice(p);
            s.extend_from_slice(b" device_path=d");
            parse_map(&s, 2, NO_NAMES)
                .map(|_| ())
                .map_err(|e| e.errno())
        };
        for p in [
            &b"10.99.0.2"[..],
            b"IP:10.99.0.2",
            b"tcp:1.2.3.4",
            b"x",
            b"gid",
            b"\xff",
            b"ip:1.2.3.4@",
            b"ip:1.2.3.4,",
            b"ip:1.2.3.4@10.99.0.2",
            b"ip:1.2.3.4,ip1.2.3.4",
        ] {
            assert_eq!(errno(p), Err(EPROTONOSUPPORT), "{:?}", p);
        }
        for p in [
            &b"ip:"[..],
            b"ip:1.2.3",
            b"bogus@ip:10.99.0.2",
            b"10.99.0.1,ip:10.99.0.2",
            b"@ip:10.99.0.2",
            b",ip:1.2.3.4",
            b"ip:1.2.3@ip:10.99.0.2",
            b"ip:1.2.3.4@ip:1.2",
            b"gid:fe80::1",
            b"x@y",
        ] {
            assert_eq!(errno(p), Err(EINVAL), "{:?}", p);
        }
        assert_eq!(errno(b"ip:1.2.3.4@ip:10.99.0.2"), Ok(()));
        assert_eq!(MapError::NoProtocol(b"x").errno(), 93);
    }

    #[test]
    fn ulong() {
        let ok: &[(&[u8], u64)] = &[
            (b"0", 0),
            (b"512", 512),
            (b"512\n", 512),
            (b"+7", 7),
            (b"0x10", 16),
            (b"0X1f\n", 31),
            (b"010", 8),
            (b"18446744073709551615", u64::MAX),
            (b"0xffffffffffffffff", u64::MAX),
            (b"5\0garbage", 5),
            (b"00000000000000000000000000007", 7),
        ];
        for (s, v) in ok {
            assert_eq!(parse_ulong(s), Ok(*v), "{:?}", s);
        }
        let bad: &[(&[u8], i32)] = &[
            (b"18446744073709551616", ERANGE),
            (b"99999999999999999999999", ERANGE),
            (b"0x10000000000000000", ERANGE),
            (b"340282366920938463463374607431768211456", ERANGE),
            (b"1111111111111111111111111111111111111111", ERANGE),
            (b"99999999999999999999x", ERANGE),
            (b"-18446744073709551616", EINVAL),
            (b"", EINVAL),
            (b"\n", EINVAL),
            (b" 5", EINVAL),
            (b"5 ", EINVAL),
            (b"5\n\n", EINVAL),
            (b"\t7", EINVAL),
            (b"-1", EINVAL),
            (b"-0", EINVAL),
            (b"+", EINVAL),
            (b"+-1", EINVAL),
            (b"++1", EINVAL),
            (b"08", EINVAL),
            (b"0x", EINVAL),
            (b"0xZZ", EINVAL),
            (b"0x1g", EINVAL),
            (b"1.5", EINVAL),
            (b"1e3", EINVAL),
            (b"abc", EINVAL),
            (b"\x005", EINVAL),
        ];
        for (s, e) in bad {
            assert_eq!(parse_ulong(s), Err(*e), "{:?}", s);
        }
    }
}
