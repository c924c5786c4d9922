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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4(b"10.10.0.2"), Some([10, 10, 0, 2]));
        assert_eq!(parse_ipv4(b"255.255.255.255"), Some([255; 4]));
        for bad in [&b""[..], b"1.2.3", b"1.2.3.4.5", b"256.1.1.1", b"1..2.3", b"a.b.c.d", b"1.2.3.4 ", b"0001.2.3.4"] {
            assert_eq!(parse_ipv4(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }
}
