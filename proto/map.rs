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
//! - an IPv6 scope must be numeric (`%2`).

use crate::addr::{parse_i32, parse_path, AddrError, PathAddr};
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
            _ => EINVAL,
        }
    }
}

fn value<'a>(tok: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    tok.strip_prefix(key)?.strip_prefix(b"=")
}

/// Parses a map_device string; `nr_cpus` bounds `nr_poll_queues`.
pub fn parse_map(buf: &[u8], nr_cpus: u32) -> Result<MapOptions<'_>, MapError<'_>> {
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
    // Upstream strstrip()s the whole buffer and splits on single spaces,
    // skipping empty tokens; a tab or newline inside is part of a token.
    let trimmed = buf.trim_ascii();
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
            o.paths[o.npaths] = Some(parse_path(v).map_err(|e| MapError::BadPath(v, e))?);
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
            o.access_mode = AccessMode::from_str(v).ok_or(MapError::BadAccessMode(v))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;

    #[test]
    fn upstream_examples() {
        let o = parse_map(b"sessname=s1 path=ip:10.99.0.2 device_path=/dev/nullb0\n", 2).unwrap();
        assert_eq!(o.sessname, b"s1");
        assert_eq!(o.device_path, b"/dev/nullb0");
        assert_eq!(o.npaths, 1);
        assert_eq!(o.paths().next().unwrap().dst, Addr::V4([10, 99, 0, 2]));
        assert_eq!(o.access_mode, AccessMode::Rw);
        assert_eq!(o.dest_port, DEFAULT_PORT);
        assert_eq!(o.nr_poll_queues, 0);

        let o = parse_map(
            b"  dest_port=1235 sessname=s path=ip:10.0.0.1@ip:10.0.0.2  path=ip:10.0.1.2 device_path=d access_mode=ro nr_poll_queues=-1",
            4,
        )
        .unwrap();
        assert_eq!(o.npaths, 2);
        assert_eq!(o.dest_port, 1235);
        assert_eq!(o.access_mode, AccessMode::Ro);
        assert_eq!(o.nr_poll_queues, 4);
        // No path: the session must exist, which the caller checks.
        assert_eq!(parse_map(b"sessname=s device_path=d", 1).unwrap().npaths, 0);
    }

    #[test]
    fn refusals() {
        let long = [b'a'; 255];
        let mut s = std::vec::Vec::from(&b"sessname="[..]);
        s.extend_from_slice(&long);
        s.extend_from_slice(b" device_path=d");
        assert_eq!(parse_map(&s, 1), Err(MapError::SessnameTooLong));
        assert_eq!(parse_map(&s[1..], 1), Err(MapError::Unknown(&s[1..9 + 255])));
        let cases: &[(&[u8], MapError<'_>)] = &[
            (b"sessname=s", MapError::Missing),
            (b"device_path=d", MapError::Missing),
            (b"", MapError::Missing),
            (b"sessname=s device_path=d foo=1", MapError::Unknown(b"foo=1")),
            (b"sessname= device_path=d", MapError::Unknown(b"sessname=")),
            (b"sessname device_path=d", MapError::Unknown(b"sessname")),
            (b"sessname=s device_path=d access_mode=rx", MapError::BadAccessMode(b"rx")),
            (b"sessname=s device_path=d dest_port=65536", MapError::BadPort(b"65536")),
            (b"sessname=s device_path=d dest_port=-1", MapError::BadPort(b"-1")),
            (b"sessname=s device_path=d dest_port=12x", MapError::BadPort(b"12x")),
            (b"sessname=s device_path=d nr_poll_queues=3", MapError::BadPollQueues(b"3")),
            (b"sessname=s device_path=d nr_poll_queues=-2", MapError::BadPollQueues(b"-2")),
            (b"sessname=s device_path=d path=1.2.3.4", MapError::BadPath(b"1.2.3.4", AddrError::Prefix)),
            (b"sessname=s device_path=d path=ip:1.2.3", MapError::BadPath(b"ip:1.2.3", AddrError::Syntax)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_map(input, 2), Err(*want), "{:?}", core::str::from_utf8(input));
        }
        let seven = b"sessname=s device_path=d path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1 \
path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1 path=ip:1.1.1.1";
        assert_eq!(parse_map(seven, 2), Err(MapError::TooManyPaths));
        assert_eq!(MapError::TooManyPaths.errno(), 12);
        assert_eq!(MapError::Missing.errno(), 22);
    }
}
