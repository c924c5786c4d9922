// SPDX-License-Identifier: GPL-2.0

//! Multipath rules of an RTRS client session, as upstream 6.12 applies
//! them (`rtrs-clt.c`, `rtrs-clt-sysfs.c`): the policy and its sysfs
//! spellings, the choice of a path for a request, `max_reconnect_attempts`
//! and the reconnect delay.  Pure logic, tested on the host.

/// Errnos (positive), as the rest of this crate gives them.
pub const EINVAL: i32 = 22;
/// Result too large.
pub const ERANGE: i32 = 34;

/// How a request picks its path (`enum rtrs_mp_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    /// Each CPU takes the paths in turn.
    RoundRobin = 0,
    /// The connected path with the fewest requests in flight (the default).
    MinInflight = 1,
    /// The connected path with the shortest heartbeat round trip.
    MinLatency = 2,
}

impl TryFrom<u8> for Policy {
    type Error = i32;
    fn try_from(v: u8) -> Result<Self, i32> {
        match v {
            0 => Ok(Self::RoundRobin),
            1 => Ok(Self::MinInflight),
            2 => Ok(Self::MinLatency),
            _ => Err(EINVAL),
        }
    }
}

impl Policy {
    /// What `mpath_policy` shows (`mpath_policy_show`).
    pub fn show(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin (RR: 0)\n",
            Self::MinInflight => "min-inflight (MI: 1)\n",
            Self::MinLatency => "min-latency (ML: 2)\n",
        }
    }

    /// Parses a write to `mpath_policy` (`mpath_policy_store`): the numbers
    /// 0 to 2; the names, matched as prefixes whatever the case
    /// (`round-robinX` is round-robin); `rr`, `mi` and `ml` exactly (one
    /// trailing newline allowed).  Anything else: `EINVAL`.
    pub fn parse(buf: &[u8]) -> Result<Self, i32> {
        if let Ok(v) = parse_int(buf) {
            if let Ok(v) = u8::try_from(v) {
                if let Ok(p) = Self::try_from(v) {
                    return Ok(p);
                }
            }
        }
        let len = match buf {
            [b @ .., b'\n'] => b.len(),
            b => b.len(),
        };
        let prefix =
            |name: &[u8]| buf.len() >= name.len() && buf[..name.len()].eq_ignore_ascii_case(name);
        let short = |name: &[u8]| len == 2 && buf[..2].eq_ignore_ascii_case(name);
        if prefix(b"round-robin") || short(b"rr") {
            Ok(Self::RoundRobin)
        } else if prefix(b"min-inflight") || short(b"mi") {
            Ok(Self::MinInflight)
        } else if prefix(b"min-latency") || short(b"ml") {
            Ok(Self::MinLatency)
        } else {
            Err(EINVAL)
        }
    }
}

/// The kernel's `kstrtoint(buf, 10)`: an optional `+` or `-` (a `-` may be
/// followed by a `+`), decimal digits, at most one trailing newline.
/// `EINVAL` if malformed, `ERANGE` if it does not fit an `i32`.
pub fn parse_int(buf: &[u8]) -> Result<i32, i32> {
    let s = match buf {
        [b @ .., b'\n'] => b,
        b => b,
    };
    let (neg, s) = match s {
        [b'-', r @ ..] => (true, r),
        r => (false, r),
    };
    let s = match s {
        [b'+', r @ ..] => r,
        r => r,
    };
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(EINVAL);
    }
    let mut v: i64 = 0;
    for &d in s {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or(ERANGE)?;
    }
    i32::try_from(if neg { -v } else { v }).map_err(|_| ERANGE)
}

/// The kernel's `sysfs_streq(buf, "1")`: "1", with at most one trailing
/// newline.
pub fn is_one(buf: &[u8]) -> bool {
    matches!(buf, b"1" | b"1\n")
}

/// Least `max_reconnect_attempts` (retry forever).
pub const MIN_RECONNECT_ATTEMPTS: i32 = -1;
/// Most `max_reconnect_attempts`.
pub const MAX_RECONNECT_ATTEMPTS: i32 = 9999;

/// Parses a write to `max_reconnect_attempts`: an integer from -1 (retry
/// forever) to 9999; `kstrtoint`'s errno if malformed, `EINVAL` out of range.
pub fn parse_max_reconnect_attempts(buf: &[u8]) -> Result<i32, i32> {
    let v = parse_int(buf)?;
    if !(MIN_RECONNECT_ATTEMPTS..=MAX_RECONNECT_ATTEMPTS).contains(&v) {
        return Err(EINVAL);
    }
    Ok(v)
}

/// Whether another automatic attempt is allowed after `done` attempts,
/// with `max` as stored (-1 retries forever: upstream keeps it unsigned).
pub fn may_reconnect(done: u32, max: i32) -> bool {
    max < 0 || done < max as u32
}

/// Jitter added to the reconnect delay, in ms (`RTRS_RECONNECT_SEED`).
pub const RECONNECT_JITTER_MS: u32 = 8;
/// Pause before each attempt, in ms (`RTRS_RECONNECT_BACKOFF`).
pub const RECONNECT_BACKOFF_MS: u32 = 1000;

/// Delay before the next automatic reconnect of a failed path, in ms:
/// `delay_s` seconds plus `rand % 8` ms (upstream's "jitter").
pub fn reconnect_delay_ms(delay_s: u32, rand: u32) -> u64 {
    u64::from(delay_s) * 1000 + u64::from(rand % RECONNECT_JITTER_MS)
}

/// Most paths one session has (`MAX_PATHS_NUM`).
pub const MAX_PATHS: usize = 128;

/// The paths a request has tried, for one choice (at most [`MAX_PATHS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tried(u128);

impl Tried {
    /// Marks path `i` tried.
    pub fn add(&mut self, i: usize) {
        if i < MAX_PATHS {
            self.0 |= 1 << i;
        }
    }

    /// How many paths were tried.
    pub fn count(&self) -> u32 {
        self.0.count_ones()
    }

    /// True if no path was tried.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// True if path `i` was tried (or is out of range).
    pub fn has(&self, i: usize) -> bool {
        i >= MAX_PATHS || self.0 & (1 << i) != 0
    }
}

/// Picks the path for a request's next attempt among `n` path slots.
/// `key(i)` is `None` if slot `i` is empty or not connected, else its
/// in-flight count (min-inflight) or heartbeat round trip (min-latency;
/// 0 if none measured yet, which wins, as upstream).  Paths in `tried`
/// are not taken again.  Round-robin starts after `cursor` (the CPU's last
/// pick) and moves it to the pick; the other policies take the least key,
/// the first slot on a tie.  `None` if no untried path is connected.
pub fn choose(
    policy: Policy,
    n: usize,
    tried: Tried,
    cursor: &mut usize,
    mut key: impl FnMut(usize) -> Option<u64>,
) -> Option<usize> {
    let n = n.min(MAX_PATHS);
    if n == 0 {
        return None;
    }
    match policy {
        Policy::RoundRobin => {
            let start = if *cursor < n { *cursor + 1 } else { 0 };
            for k in 0..n {
                let i = (start + k) % n;
                if !tried.has(i) && key(i).is_some() {
                    *cursor = i;
                    return Some(i);
                }
            }
            None
        }
        Policy::MinInflight | Policy::MinLatency => {
            let mut best: Option<(usize, u64)> = None;
            for i in 0..n {
                if tried.has(i) {
                    continue;
                }
                if let Some(k) = key(i) {
                    if best.map_or(true, |(_, b)| k < b) {
                        best = Some((i, k));
                    }
                }
            }
            best.map(|(i, _)| i)
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn policy_spellings() {
        use Policy::*;
        for (s, p) in [
            (&b"0"[..], RoundRobin),
            (b"1\n", MinInflight),
            (b"+2", MinLatency),
            (b"round-robin", RoundRobin),
            (b"Round-Robin\n", RoundRobin),
            (b"round-robinX", RoundRobin),
            (b"min-inflight", MinInflight),
            (b"MIN-INFLIGHT\n", MinInflight),
            (b"min-latency", MinLatency),
            (b"rr", RoundRobin),
            (b"RR\n", RoundRobin),
            (b"mi", MinInflight),
            (b"ml\n", MinLatency),
        ] {
            assert_eq!(Policy::parse(s), Ok(p), "{:?}", core::str::from_utf8(s));
        }
        for s in [
            &b""[..],
            b"3",
            b"-1",
            b"rrr",
            b"r",
            b"mi\n\n",
            b"round-robi",
            b"min_inflight",
            b"\n",
            b"ml ",
        ] {
            assert_eq!(
                Policy::parse(s),
                Err(EINVAL),
                "{:?}",
                core::str::from_utf8(s)
            );
        }
        assert_eq!(Policy::MinInflight.show(), "min-inflight (MI: 1)\n");
        assert_eq!(Policy::try_from(3), Err(EINVAL));
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int(b"-1\n"), Ok(-1));
        assert_eq!(parse_int(b"-+7"), Ok(-7));
        assert_eq!(parse_int(b"2147483647"), Ok(i32::MAX));
        assert_eq!(parse_int(b"-2147483648"), Ok(i32::MIN));
        assert_eq!(parse_int(b"2147483648"), Err(ERANGE));
        assert_eq!(parse_int(b"99999999999999999999999"), Err(ERANGE));
        for bad in [
            &b""[..],
            b"\n",
            b"-",
            b"+-1",
            b"1 ",
            b" 1",
            b"0x10",
            b"1\n\n",
        ] {
            assert_eq!(parse_int(bad), Err(EINVAL), "{:?}", bad);
        }
        assert_eq!(parse_max_reconnect_attempts(b"9999\n"), Ok(9999));
        assert_eq!(parse_max_reconnect_attempts(b"-1"), Ok(-1));
        assert_eq!(parse_max_reconnect_attempts(b"10000"), Err(EINVAL));
        assert_eq!(parse_max_reconnect_attempts(b"-2"), Err(EINVAL));
        assert_eq!(parse_max_reconnect_attempts(b"5000000000"), Err(ERANGE));
        assert!(is_one(b"1") && is_one(b"1\n"));
        assert!(!is_one(b"1\n\n") && !is_one(b"0") && !is_one(b"11") && !is_one(b""));
    }

    #[test]
    fn reconnect() {
        assert!(may_reconnect(u32::MAX - 1, -1));
        assert!(!may_reconnect(0, 0));
        assert!(may_reconnect(2, 3) && !may_reconnect(3, 3));
        assert_eq!(reconnect_delay_ms(30, 13), 30_005);
        assert_eq!(reconnect_delay_ms(0, u32::MAX), 7);
    }

    #[test]
    fn round_robin() {
        let up = [true, false, true, true];
        let key = |i: usize| up[i].then_some(0);
        let mut c = usize::MAX;
        let picks: Vec<_> = (0..6)
            .map(|_| choose(Policy::RoundRobin, 4, Tried::default(), &mut c, key).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
        // A request that failed on 2 and 3 gets 0, then nothing.
        let mut t = Tried::default();
        t.add(2);
        t.add(3);
        let mut c = 2;
        assert_eq!(choose(Policy::RoundRobin, 4, t, &mut c, key), Some(0));
        t.add(0);
        assert_eq!(choose(Policy::RoundRobin, 4, t, &mut c, key), None);
        // A cursor past a shrunk table starts over.
        let mut c = 9;
        assert_eq!(
            choose(Policy::RoundRobin, 4, Tried::default(), &mut c, key),
            Some(0)
        );
        assert_eq!(
            choose(Policy::RoundRobin, 0, Tried::default(), &mut c, key),
            None
        );
    }

    #[test]
    fn least_key() {
        let k = [Some(5), None, Some(3), Some(3), Some(9)];
        let key = |i: usize| k[i];
        let mut c = 0;
        let mut t = Tried::default();
        let mut order = Vec::new();
        while let Some(i) = choose(Policy::MinInflight, 5, t, &mut c, key) {
            order.push(i);
            t.add(i);
        }
        assert_eq!(order, [2, 3, 0, 4]);
        // A path never measured (0) wins min-latency.
        let k = [Some(100), Some(0)];
        assert_eq!(
            choose(Policy::MinLatency, 2, Tried::default(), &mut c, |i| k[i]),
            Some(1)
        );
        let mut t = Tried::default();
        t.add(MAX_PATHS + 3);
        assert!(t.has(MAX_PATHS) && !t.has(0));
    }
}
