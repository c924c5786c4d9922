// SPDX-License-Identifier: GPL-2.0

//! Turning what a user types into what the kernel takes: path addresses
//! (host names resolved here, since the kernel only takes addresses) and
//! sizes with units.

use std::net::{IpAddr, ToSocketAddrs};

/// Why an argument was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// Resolves a host name to its addresses (the system resolver, as
/// `getaddrinfo`: /etc/hosts, DNS).
pub type Resolver<'a> = &'a dyn Fn(&str) -> Vec<IpAddr>;

/// The system resolver.
pub fn system_resolver(host: &str) -> Vec<IpAddr> {
    (host, 0)
        .to_socket_addrs()
        .map(|it| it.map(|sa| sa.ip()).collect())
        .unwrap_or_default()
}

/// One address as the kernel takes it: `ip:...` and `gid:...` as given; a
/// bare IPv4 or IPv6 address (with `%scope`) gets `ip:`; anything else is a
/// host name, resolved to its first address (IPv4 first, as the resolver
/// orders them).
pub fn addr(a: &str, resolve: Resolver<'_>) -> Result<String, ArgError> {
    if a.starts_with("ip:") || a.starts_with("gid:") {
        return Ok(a.to_string());
    }
    let bare = a.split('%').next().unwrap_or(a);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(format!("ip:{}", a));
    }
    // [v6] brackets, as some tools write them.
    if let Some(v6) = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return addr(v6, resolve);
    }
    match resolve(a).first() {
        Some(ip) => Ok(format!("ip:{}", ip)),
        None => Err(ArgError(format!("cannot resolve host name '{}'", a))),
    }
}

/// A path `[src@]dst` (or `src,dst`) as the kernel takes it.
pub fn path(p: &str, resolve: Resolver<'_>) -> Result<String, ArgError> {
    // IPv6 addresses have no '@' or ',', so the first of them separates.
    let sep = p.find(',').or_else(|| p.find('@'));
    match sep {
        Some(i) => Ok(format!(
            "{}@{}",
            addr(&p[..i], resolve)?,
            addr(&p[i + 1..], resolve)?
        )),
        None => addr(p, resolve),
    }
}

/// A size with an optional binary unit (k, M, G, T, P; optional "iB" or
/// "B"; case-insensitive), or a plain number of bytes.  Returns 512-byte
/// sectors; the size must be a whole number of sectors.
pub fn sectors(s: &str) -> Result<u64, ArgError> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        "s" => return num.parse::<u64>().map_err(|_| bad_size(s)),
        _ => return Err(bad_size(s)),
    };
    let bytes: u64 = if num.contains('.') {
        let f: f64 = num.parse().map_err(|_| bad_size(s))?;
        let b = f * (1u64 << shift) as f64;
        if !(0.0..1.8e19).contains(&b) {
            return Err(bad_size(s));
        }
        b as u64
    } else {
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1u64 << shift))
            .ok_or_else(|| bad_size(s))?
    };
    if bytes & 511 != 0 {
        return Err(ArgError(format!(
            "size '{}' is not a multiple of 512 bytes",
            s
        )));
    }
    Ok(bytes / 512)
}

fn bad_size(s: &str) -> ArgError {
    ArgError(format!(
        "'{}' is not a size (e.g. 4096, 512k, 10G, 2048s for sectors)",
        s
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(h: &str) -> Vec<IpAddr> {
        match h {
            "srv" => vec!["10.99.0.2".parse().unwrap()],
            "srv6" => vec!["fd99::2".parse().unwrap()],
            _ => vec![],
        }
    }

    #[test]
    fn paths() {
        let r: Resolver<'_> = &hosts;
        assert_eq!(path("10.99.0.2", r).unwrap(), "ip:10.99.0.2");
        assert_eq!(path("ip:10.99.0.2", r).unwrap(), "ip:10.99.0.2");
        assert_eq!(path("srv", r).unwrap(), "ip:10.99.0.2");
        assert_eq!(path("srv6", r).unwrap(), "ip:fd99::2");
        assert_eq!(path("fe80::1%eth0", r).unwrap(), "ip:fe80::1%eth0");
        assert_eq!(
            path("10.99.0.1@srv", r).unwrap(),
            "ip:10.99.0.1@ip:10.99.0.2"
        );
        assert_eq!(
            path("10.99.0.1,10.99.0.2", r).unwrap(),
            "ip:10.99.0.1@ip:10.99.0.2"
        );
        assert_eq!(path("[fd99::2]", r).unwrap(), "ip:fd99::2");
        assert_eq!(path("gid:fe80::1", r).unwrap(), "gid:fe80::1");
        assert!(path("nowhere", r).unwrap_err().0.contains("nowhere"));
    }

    #[test]
    fn sizes() {
        assert_eq!(sectors("4096"), Ok(8));
        assert_eq!(sectors("512k"), Ok(1024));
        assert_eq!(sectors("10G"), Ok(10 << 21));
        assert_eq!(sectors("10GiB"), Ok(10 << 21));
        assert_eq!(sectors("1.5M"), Ok(3072));
        assert_eq!(sectors("2048s"), Ok(2048));
        assert!(sectors("100").is_err());
        assert!(sectors("10X").is_err());
        assert!(sectors("").is_err());
        assert!(sectors("99999999999P").is_err());
    }
}
