// SPDX-License-Identifier: GPL-2.0

//! Parsing of the addresses given to RTRS through sysfs and module
//! parameters (`ip:<addr>` path tokens, `x.x.x.x` strings).

/// Parses a dotted-quad IPv4 address, strictly: four decimal octets of at most
/// three digits each, nothing else.
pub fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&c| c == b'.');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = p.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses an IPv6 address in the textual forms of RFC 4291 section 2.2
/// (hex groups, one `::`, an embedded dotted quad at the end), strictly.
pub fn parse_ipv6(s: &[u8]) -> Option<[u8; 16]> {
    // Groups before and after the `::`, if there is one.
    let (head, tail) = match find2(s, b"::") {
        Some(i) => (&s[..i], Some(&s[i + 2..])),
        None => (s, None),
    };
    let mut words = [0u16; 8];
    let mut hw = [0u16; 8];
    let n_head = groups(head, &mut hw, tail.is_none())?;
    match tail {
        None => {
            if n_head != 8 {
                return None;
            }
            words = hw;
        }
        Some(t) => {
            if find2(t, b"::").is_some() {
                return None;
            }
            let mut tw = [0u16; 8];
            let n_tail = groups(t, &mut tw, true)?;
            // `::` stands for at least one zero group.
            if n_head + n_tail > 7 {
                return None;
            }
            words[..n_head].copy_from_slice(&hw[..n_head]);
            words[8 - n_tail..].copy_from_slice(&tw[..n_tail]);
        }
    }
    let mut out = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    Some(out)
}

fn find2(s: &[u8], pat: &[u8; 2]) -> Option<usize> {
    s.windows(2).position(|w| w == pat)
}

/// Colon-separated hex groups into `out`; the last one may be a dotted quad
/// (two groups) when `last` says this part ends the address.  An empty part
/// has no groups.  Returns the number of groups.
fn groups(s: &[u8], out: &mut [u16; 8], last: bool) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = s.split(|&c| c == b':').peekable();
    while let Some(p) = parts.next() {
        let is_last = parts.peek().is_none();
        if is_last && last && p.contains(&b'.') {
            let q = parse_ipv4(p)?;
            if n + 2 > 8 {
                return None;
            }
            out[n] = u16::from_be_bytes([q[0], q[1]]);
            out[n + 1] = u16::from_be_bytes([q[2], q[3]]);
            n += 2;
            continue;
        }
        if p.is_empty() || p.len() > 4 || n >= 8 {
            return None;
        }
        let mut v = 0u16;
        for &c in p {
            v = (v << 4) | u16::from((c as char).to_digit(16)? as u8);
        }
        out[n] = v;
        n += 1;
    }
    Some(n)
}

/// An address of one end of an RTRS path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// `ip:a.b.c.d`
    V4([u8; 4]),
    /// `ip:<IPv6>`, with the scope id of `%<n>` (0 if none).
    V6([u8; 16], u32),
}

/// Why an address token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// Neither `ip:` nor `gid:`.
    Prefix,
    /// `gid:` (AF_IB) addresses: not supported by this implementation.
    Gid,
    /// Not an IPv4 or IPv6 address.
    Syntax,
}

/// Parses one `ip:<addr>` token (upstream `rtrs_str_to_sockaddr`).  A scope
/// is accepted on IPv6 as a number (`%2`); interface names are not resolved
/// here.
pub fn parse_addr(s: &[u8]) -> Result<Addr, AddrError> {
    if s.starts_with(b"gid:") {
        return Err(AddrError::Gid);
    }
    let a = s.strip_prefix(b"ip:").ok_or(AddrError::Prefix)?;
    if let Some(v4) = parse_ipv4(a) {
        return Ok(Addr::V4(v4));
    }
    let (a, scope) = match a.iter().position(|&c| c == b'%') {
        Some(i) => (&a[..i], parse_u32(&a[i + 1..]).ok_or(AddrError::Syntax)?),
        None => (a, 0),
    };
    parse_ipv6(a)
        .map(|v6| Addr::V6(v6, scope))
        .ok_or(AddrError::Syntax)
}

/// A path: optional source, destination (`src,dst`, `src@dst` or `dst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathAddr {
    /// Source address to bind, if given.
    pub src: Option<Addr>,
    /// Destination address.
    pub dst: Addr,
}

/// Parses a path string (upstream `rtrs_addr_to_sockaddr`).
pub fn parse_path(s: &[u8]) -> Result<PathAddr, AddrError> {
    let sep = s
        .iter()
        .position(|&c| c == b',')
        .or_else(|| s.iter().position(|&c| c == b'@'));
    match sep {
        Some(i) => Ok(PathAddr {
            src: Some(parse_addr(&s[..i])?),
            dst: parse_addr(&s[i + 1..])?,
        }),
        None => Ok(PathAddr {
            src: None,
            dst: parse_addr(s)?,
        }),
    }
}

/// A decimal `u32`, digits only.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
    u32::try_from(v).ok()
}

/// A decimal `i32` with an optional sign, as the kernel's `match_int`.
pub fn parse_i32(s: &[u8]) -> Option<i32> {
    let (neg, d) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let v = i64::from(parse_u32(d)?);
    i32::try_from(if neg { -v } else { v }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4(b"10.10.0.2"), Some([10, 10, 0, 2]));
        assert_eq!(parse_ipv4(b"255.255.255.255"), Some([255; 4]));
        for bad in [
            &b""[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"256.1.1.1",
            b"1..2.3",
            b"a.b.c.d",
            b"1.2.3.4 ",
            b"0001.2.3.4",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn ipv6() {
        let v = |s: &str| parse_ipv6(s.as_bytes());
        let mut lo = [0u8; 16];
        lo[15] = 1;
        assert_eq!(v("::1"), Some(lo));
        assert_eq!(v("::"), Some([0; 16]));
        assert_eq!(v("0:0:0:0:0:0:0:1"), Some(lo));
        let mut a = [0u8; 16];
        a[0] = 0xfe;
        a[1] = 0x80;
        a[14] = 0x12;
        a[15] = 0x34;
        assert_eq!(v("fe80::1234"), Some(a));
        let mut m = [0u8; 16];
        m[10] = 0xff;
        m[11] = 0xff;
        m[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(v("::ffff:10.0.0.1"), Some(m));
        for bad in [
            "",
            ":",
            ":::",
            "1::2::3",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "12345::",
            "g::",
            "1:2:3:4:5:6:7::8",
            "::1.2.3",
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(b"ip:10.99.0.2"),
            Ok(PathAddr {
                src: None,
                dst: Addr::V4([10, 99, 0, 2])
            })
        );
        assert_eq!(
            parse_path(b"ip:10.99.0.1@ip:10.99.0.2"),
            Ok(PathAddr {
                src: Some(Addr::V4([10, 99, 0, 1])),
                dst: Addr::V4([10, 99, 0, 2])
            })
        );
        assert!(matches!(
            parse_path(b"ip:fe80::1%3"),
            Ok(PathAddr {
                dst: Addr::V6(_, 3),
                ..
            })
        ));
        assert_eq!(parse_path(b"10.99.0.2"), Err(AddrError::Prefix));
        assert_eq!(parse_path(b"gid:fe80::1"), Err(AddrError::Gid));
        assert_eq!(parse_path(b"ip:10.99.0.2,"), Err(AddrError::Prefix));
        assert_eq!(parse_path(b"ip:1.2.3.256"), Err(AddrError::Syntax));
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"1x"), None);
    }
}
