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

/// Resolves the interface name of an IPv6 scope (`fe80::1%eth0`) to its
/// index; `None` if there is no such interface.  The kernel passes a lookup
/// in the initial network namespace (as upstream), host tests a table.
pub type ScopeFn<'a> = &'a dyn Fn(&[u8]) -> Option<u32>;

/// No interface names (every name is unknown).
pub const NO_NAMES: ScopeFn<'static> = &|_| None;

/// Longest IPv6 text upstream reads (`INET6_ADDRSTRLEN`), scope included.
const INET6_ADDRSTRLEN: usize = 48;
/// Longest interface name (`IFNAMSIZ` less its NUL); upstream cuts a longer
/// scope to this length before looking it up.
const IFNAME_MAX: usize = 15;

/// Parses one `ip:<addr>` token (upstream `rtrs_str_to_sockaddr` with
/// `inet_pton_with_scope`).  As upstream, a `%scope` counts only on a
/// link-local IPv6 address (elsewhere it is ignored): an interface name
/// `scope` resolves, else a number as `kstrtouint(.., 0)` reads it.
pub fn parse_addr(s: &[u8], scope: ScopeFn<'_>) -> Result<Addr, AddrError> {
    if s.starts_with(b"gid:") {
        return Err(AddrError::Gid);
    }
    let a = s.strip_prefix(b"ip:").ok_or(AddrError::Prefix)?;
    if let Some(v4) = parse_ipv4(a) {
        return Ok(Addr::V4(v4));
    }
    if a.len() > INET6_ADDRSTRLEN {
        return Err(AddrError::Syntax);
    }
    let (a, sc) = match a.iter().position(|&c| c == b'%') {
        Some(i) => (&a[..i], Some(&a[i + 1..])),
        None => (a, None),
    };
    let v6 = parse_ipv6(a).ok_or(AddrError::Syntax)?;
    // fe80::/10
    let link_local = v6[0] == 0xfe && v6[1] & 0xc0 == 0x80;
    let id = match sc {
        Some(sc) if link_local => {
            let sc = &sc[..sc.len().min(IFNAME_MAX)];
            scope(sc)
                .or_else(|| parse_uint_base0(sc))
                .ok_or(AddrError::Syntax)?
        }
        _ => 0,
    };
    Ok(Addr::V6(v6, id))
}

/// A `u32` as the kernel's `kstrtouint(s, 0, ..)` reads it: an optional
/// `+`, then hex after `0x`, octal after `0`, else decimal; one trailing
/// newline allowed.
pub fn parse_uint_base0(s: &[u8]) -> Option<u32> {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (radix, digits) = if let Some(h) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        (16, h)
    } else if s.len() > 1 && s[0] == b'0' {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &c in digits {
        let d = char::from(c).to_digit(radix)?;
        v = v.checked_mul(radix)?.checked_add(d)?;
    }
    Some(v)
}

impl Addr {
    /// Writes the address as upstream's `sockaddr_to_str` does, without the
    /// `ip:` prefix: `%pI4` for IPv4, `%pI6c` for IPv6 (the kernel's
    /// compressed form, which differs from RFC 5952: ISATAP addresses end in
    /// a dotted quad too, and the first of equally long zero runs is the one
    /// compressed).  The scope is not shown, as upstream.
    pub fn write_to(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        let v6 = match self {
            Addr::V4([a, b, c, d]) => return write!(out, "{a}.{b}.{c}.{d}"),
            Addr::V6(v6, _) => v6,
        };
        let w = |i: usize| u16::from_be_bytes([v6[2 * i], v6[2 * i + 1]]);
        let mapped = v6[..10].iter().all(|&b| b == 0) && v6[10] == 0xff && v6[11] == 0xff;
        // ipv6_addr_is_isatap: the interface id is 0[02]00:5efe:a.b.c.d.
        let isatap = (v6[8] | 0x02) == 0x02 && v6[9] == 0 && v6[10] == 0x5e && v6[11] == 0xfe;
        let dotted = mapped || isatap;
        let range = if dotted { 6 } else { 8 };
        // The longest run of zero words (the first one of that length),
        // compressed only if it has two words or more.
        let (mut best, mut best_len) = (range, 1);
        let mut i = 0;
        while i < range {
            let n = (i..range).take_while(|&j| w(j) == 0).count();
            if n > best_len {
                (best, best_len) = (i, n);
            }
            i += n.max(1);
        }
        let mut colon = false;
        let mut i = 0;
        while i < range {
            if i == best {
                out.write_str(if i == 0 { "::" } else { ":" })?;
                if i != 0 {
                    out.write_str(":")?;
                }
                colon = false;
                i += best_len;
                continue;
            }
            if colon {
                out.write_str(":")?;
            }
            write!(out, "{:x}", w(i))?;
            colon = true;
            i += 1;
        }
        if dotted {
            if colon {
                out.write_str(":")?;
            }
            write!(out, "{}.{}.{}.{}", v6[12], v6[13], v6[14], v6[15])?;
        }
        Ok(())
    }
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
pub fn parse_path(s: &[u8], scope: ScopeFn<'_>) -> Result<PathAddr, AddrError> {
    let sep = s
        .iter()
        .position(|&c| c == b',')
        .or_else(|| s.iter().position(|&c| c == b'@'));
    match sep {
        Some(i) => Ok(PathAddr {
            src: Some(parse_addr(&s[..i], scope)?),
            dst: parse_addr(&s[i + 1..], scope)?,
        }),
        None => Ok(PathAddr {
            src: None,
            dst: parse_addr(s, scope)?,
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
            parse_path(b"ip:10.99.0.2", NO_NAMES),
            Ok(PathAddr {
                src: None,
                dst: Addr::V4([10, 99, 0, 2])
            })
        );
        assert_eq!(
            parse_path(b"ip:10.99.0.1@ip:10.99.0.2", NO_NAMES),
            Ok(PathAddr {
                src: Some(Addr::V4([10, 99, 0, 1])),
                dst: Addr::V4([10, 99, 0, 2])
            })
        );
        assert!(matches!(
            parse_path(b"ip:fe80::1%3", NO_NAMES),
            Ok(PathAddr {
                dst: Addr::V6(_, 3),
                ..
            })
        ));
        assert_eq!(parse_path(b"10.99.0.2", NO_NAMES), Err(AddrError::Prefix));
        assert_eq!(parse_path(b"gid:fe80::1", NO_NAMES), Err(AddrError::Gid));
        assert_eq!(
            parse_path(b"ip:10.99.0.2,", NO_NAMES),
            Err(AddrError::Prefix)
        );
        assert_eq!(
            parse_path(b"ip:1.2.3.256", NO_NAMES),
            Err(AddrError::Syntax)
        );
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"1x"), None);
    }

    fn show(a: Addr) -> std::string::String {
        let mut s = std::string::String::new();
        a.write_to(&mut s).unwrap();
        s
    }

    #[test]
    fn scopes() {
        let names: ScopeFn<'_> = &|n| (n == b"rnbd0").then_some(7);
        let p = |s: &str| parse_addr(s.as_bytes(), names);
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert_eq!(p("ip:fe80::1%rnbd0"), Ok(Addr::V6(ll, 7)));
        assert_eq!(p("ip:fe80::1%3"), Ok(Addr::V6(ll, 3)));
        assert_eq!(p("ip:fe80::1%0x10"), Ok(Addr::V6(ll, 16)));
        assert_eq!(p("ip:fe80::1%010"), Ok(Addr::V6(ll, 8)));
        assert_eq!(p("ip:fe80::1"), Ok(Addr::V6(ll, 0)));
        assert_eq!(p("ip:fe80::1%eth9"), Err(AddrError::Syntax));
        assert_eq!(p("ip:fe80::1%"), Err(AddrError::Syntax));
        assert_eq!(p("ip:fe80::1%4294967296"), Err(AddrError::Syntax));
        // Not link-local: the scope is ignored, as upstream.
        let mut ula = [0u8; 16];
        ula[0] = 0xfd;
        ula[1] = 0x99;
        ula[15] = 2;
        assert_eq!(p("ip:fd99::2%whatever"), Ok(Addr::V6(ula, 0)));
        // INET6_ADDRSTRLEN (48) characters, then one more.
        assert_eq!(
            p("ip:fe80:0000:0000:0000:0000:0000:0000:0001%00000007"),
            Ok(Addr::V6(ll, 7))
        );
        assert_eq!(
            p("ip:fe80:0000:0000:0000:0000:0000:0000:0001%000000007"),
            Err(AddrError::Syntax)
        );
        assert_eq!(parse_uint_base0(b"+12\n"), Some(12));
        assert_eq!(parse_uint_base0(b"08"), None);
        assert_eq!(parse_uint_base0(b"0"), Some(0));
        assert_eq!(parse_uint_base0(b"0x"), None);
    }

    #[test]
    fn shown_as_the_kernel_does() {
        // Expected strings worked out by hand from lib/vsprintf.c's
        // ip6_compressed_string (6.12).
        let v6 = |s: &str| Addr::V6(parse_ipv6(s.as_bytes()).unwrap(), 0);
        assert_eq!(show(Addr::V4([10, 99, 0, 2])), "10.99.0.2");
        for (a, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("fd99:1:0:0:0:0:0:2", "fd99:1::2"),
            ("fe80:0:0:0:0200:5efe:10.0.0.1", "fe80::200:5efe:10.0.0.1"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("1:0:0:2:0:0:0:4", "1:0:0:2::4"),
            ("2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"),
            (
                "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
                "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
            ),
            ("0:0:0:0:0:0:1.2.3.4", "::102:304"),
        ] {
            assert_eq!(show(v6(a)), want, "{a}");
        }
    }
}
