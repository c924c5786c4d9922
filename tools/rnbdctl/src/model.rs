// SPDX-License-Identifier: GPL-2.0

//! What the sysfs trees say, as plain data: the client's mapped devices,
//! its RTRS sessions and paths, the server's exported devices, sessions and
//! paths.  Layout and formats are those of the Linux 6.12 modules
//! (rnbd-clt-sysfs.c, rtrs-clt-sysfs.c, rtrs-clt-stats.c, rnbd-srv-sysfs.c,
//! rtrs-srv-sysfs.c), which rnbd-rs serves byte for byte.
//!
//! These structs are the `--json` schema: fields are only ever added, and
//! `SCHEMA_VERSION` counts incompatible changes.

use crate::sysfs::{Error, Sysfs};
use serde::{Deserialize, Serialize};

/// Version of the JSON output's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the client's mapped devices are.
pub const BLOCK: &str = "block";
/// The client's control directory.
pub const CLT_CTL: &str = "class/rnbd-client/ctl";
/// The client's RTRS sessions.
pub const CLT_SESS: &str = "class/rtrs-client";
/// The server's exported devices.
pub const SRV_DEVS: &str = "class/rnbd-server/ctl/devices";
/// The server's RTRS sessions.
pub const SRV_SESS: &str = "class/rtrs-server";

/// A mapped device on the client (`/sys/block/rnbdN/rnbd/`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// `rnbd0`
    pub name: String,
    /// RTRS session it is mapped over.
    pub session: String,
    /// The device's path on the server (`mapping_path`).
    pub mapping_path: String,
    /// `ro`, `rw` or `migration`.
    pub access_mode: String,
    /// `init`, `open`, `closed`, `unmapped`.
    pub state: String,
    /// Poll queues asked for at map time.
    pub nr_poll_queues: i64,
    /// Size in bytes (`/sys/block/rnbdN/size` x 512).
    pub size_bytes: u64,
}

/// An RTRS path's IO counters (`stats/rdma`, `stats/reconnects`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathStats {
    /// Reads and their bytes.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Writes.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Requests in flight now (client only).
    pub inflight: Option<u64>,
    /// Requests this path took over from a failed one (client only).
    pub failovers: Option<u64>,
    /// Successful reconnects (client only).
    pub reconnects: Option<u64>,
    /// Failed reconnect attempts (client only).
    pub reconnect_failures: Option<u64>,
}

/// An RTRS path of a client session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientPath {
    /// Directory name, `<src>@<dst>`.
    pub name: String,
    /// `connecting`, `connected`, `reconnecting`, `disconnected`, ...
    pub state: String,
    /// Local address (`ip:...`).
    pub src_addr: String,
    /// Server address (`ip:...`).
    pub dst_addr: String,
    /// RDMA device.
    pub hca_name: String,
    /// Its port.
    pub hca_port: u32,
    /// Round trip of the last heartbeat, ns.
    pub cur_latency_ns: i64,
    /// Counters.
    pub stats: PathStats,
}

/// An RTRS session of the client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientSession {
    /// Session name.
    pub name: String,
    /// `round-robin`, `min-inflight` or `min-latency`.
    pub mpath_policy: String,
    /// -1: forever.
    pub max_reconnect_attempts: i64,
    /// Its paths.
    pub paths: Vec<ClientPath>,
}

/// A session using an exported device, on the server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerDeviceSession {
    /// Session name.
    pub name: String,
    /// `ro`, `rw` or `migration`.
    pub access_mode: String,
    /// Opened read-only.
    pub read_only: bool,
    /// The path the client asked for.
    pub mapping_path: String,
}

/// A device the server exports (opened by at least one session).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerDevice {
    /// Directory name (the block device's name).
    pub name: String,
    /// The block device (`block_dev` link).
    pub block_dev: String,
    /// The sessions that opened it.
    pub sessions: Vec<ServerDeviceSession>,
}

/// An RTRS path of a server session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerPath {
    /// Directory name, `<client>@<server>`.
    pub name: String,
    /// The server's address (`src_addr`).
    pub src_addr: String,
    /// The client's address (`dst_addr`).
    pub dst_addr: String,
    /// RDMA device.
    pub hca_name: String,
    /// Its port.
    pub hca_port: u32,
    /// Counters.
    pub stats: PathStats,
}

/// An RTRS session of the server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerSession {
    /// Session name.
    pub name: String,
    /// Its paths.
    pub paths: Vec<ServerPath>,
}

/// A value that did not parse: the file and what it held.
fn bad(s: &Sysfs, rel: &str, v: &str) -> Error {
    Error {
        file: s.path(rel),
        op: crate::sysfs::Op::Read,
        value: None,
        err: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected content '{}'", v),
        ),
    }
}

fn num<T: std::str::FromStr>(s: &Sysfs, rel: &str) -> Result<T, Error> {
    let v = s.read(rel)?;
    v.trim().parse().map_err(|_| bad(s, rel, &v))
}

/// `mpath_policy`'s "round-robin (RR: 0)" -> "round-robin".
pub fn policy_name(shown: &str) -> &str {
    shown.split(" (").next().unwrap_or(shown)
}

/// `cur_latency`'s "12345 ns" -> 12345.
fn latency_ns(s: &Sysfs, rel: &str) -> Result<i64, Error> {
    let v = s.read(rel)?;
    v.strip_suffix(" ns")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(s, rel, &v))
}

/// `stats/rdma`: "reads read_bytes writes write_bytes" then, on the
/// client, "inflight failovers".
fn rdma_stats(s: &Sysfs, rel: &str, client: bool) -> Result<PathStats, Error> {
    let v = s.read(rel)?;
    let f: Vec<u64> = v
        .split_whitespace()
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(s, rel, &v))?;
    let want = if client { 6 } else { 4 };
    if f.len() < want {
        return Err(bad(s, rel, &v));
    }
    Ok(PathStats {
        reads: f[0],
        read_bytes: f[1],
        writes: f[2],
        write_bytes: f[3],
        inflight: client.then(|| f[4]),
        failovers: client.then(|| f[5]),
        reconnects: None,
        reconnect_failures: None,
    })
}

/// The client's mapped devices, by name.
pub fn devices(s: &Sysfs) -> Result<Vec<Device>, Error> {
    let mut out = Vec::new();
    for name in s.list(BLOCK)? {
        let d = format!("{}/{}/rnbd", BLOCK, name);
        if !name.starts_with("rnbd") || !s.exists(&d) {
            continue;
        }
        out.push(device(s, &name)?);
    }
    out.sort_by_key(|d| natural(&d.name));
    Ok(out)
}

/// Sort key: `rnbd10` after `rnbd9`.
fn natural(n: &str) -> (String, u64) {
    let i = n.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    (n[..i].to_string(), n[i..].parse().unwrap_or(0))
}

/// One mapped device, `name` as `rnbd0`.
pub fn device(s: &Sysfs, name: &str) -> Result<Device, Error> {
    let d = format!("{}/{}/rnbd", BLOCK, name);
    let sectors: u64 = num(s, &format!("{}/{}/size", BLOCK, name))?;
    Ok(Device {
        name: name.to_string(),
        session: s.read(&format!("{}/session", d))?,
        mapping_path: s.read(&format!("{}/mapping_path", d))?,
        access_mode: s.read(&format!("{}/access_mode", d))?,
        state: s.read(&format!("{}/state", d))?,
        nr_poll_queues: num(s, &format!("{}/nr_poll_queues", d))?,
        size_bytes: sectors.saturating_mul(512),
    })
}

/// The client's RTRS sessions with their paths.
pub fn client_sessions(s: &Sysfs) -> Result<Vec<ClientSession>, Error> {
    s.list(CLT_SESS)?
        .iter()
        .map(|n| client_session(s, n))
        .collect()
}

/// One client session.
pub fn client_session(s: &Sysfs, name: &str) -> Result<ClientSession, Error> {
    let d = format!("{}/{}", CLT_SESS, name);
    let mut paths = Vec::new();
    for p in s.list(&format!("{}/paths", d))? {
        let pd = format!("{}/paths/{}", d, p);
        let mut stats = rdma_stats(s, &format!("{}/stats/rdma", pd), true)?;
        let rec = s.read(&format!("{}/stats/reconnects", pd))?;
        let r: Vec<u64> = rec
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if r.len() != 2 {
            return Err(bad(s, &format!("{}/stats/reconnects", pd), &rec));
        }
        stats.reconnects = Some(r[0]);
        stats.reconnect_failures = Some(r[1]);
        paths.push(ClientPath {
            name: p.clone(),
            state: s.read(&format!("{}/state", pd))?,
            src_addr: s.read(&format!("{}/src_addr", pd))?,
            dst_addr: s.read(&format!("{}/dst_addr", pd))?,
            hca_name: s.read(&format!("{}/hca_name", pd))?,
            hca_port: num(s, &format!("{}/hca_port", pd))?,
            cur_latency_ns: latency_ns(s, &format!("{}/cur_latency", pd))?,
            stats,
        });
    }
    Ok(ClientSession {
        name: name.to_string(),
        mpath_policy: policy_name(&s.read(&format!("{}/mpath_policy", d))?).to_string(),
        max_reconnect_attempts: num(s, &format!("{}/max_reconnect_attempts", d))?,
        paths,
    })
}

/// The server's exported devices and the sessions using them.
pub fn server_devices(s: &Sysfs) -> Result<Vec<ServerDevice>, Error> {
    let mut out = Vec::new();
    for name in s.list(SRV_DEVS)? {
        let d = format!("{}/{}", SRV_DEVS, name);
        let mut sessions = Vec::new();
        for sn in s.list(&format!("{}/sessions", d))? {
            let sd = format!("{}/sessions/{}", d, sn);
            let ro: u32 = num(s, &format!("{}/read_only", sd))?;
            sessions.push(ServerDeviceSession {
                name: sn.clone(),
                access_mode: s.read(&format!("{}/access_mode", sd))?,
                read_only: ro != 0,
                mapping_path: s.read(&format!("{}/mapping_path", sd))?,
            });
        }
        out.push(ServerDevice {
            block_dev: s.link_name(&format!("{}/block_dev", d))?,
            name,
            sessions,
        });
    }
    Ok(out)
}

/// The server's RTRS sessions with their paths.
pub fn server_sessions(s: &Sysfs) -> Result<Vec<ServerSession>, Error> {
    let mut out = Vec::new();
    for name in s.list(SRV_SESS)? {
        let d = format!("{}/{}/paths", SRV_SESS, name);
        let mut paths = Vec::new();
        for p in s.list(&d)? {
            let pd = format!("{}/{}", d, p);
            paths.push(ServerPath {
                name: p.clone(),
                src_addr: s.read(&format!("{}/src_addr", pd))?,
                dst_addr: s.read(&format!("{}/dst_addr", pd))?,
                hca_name: s.read(&format!("{}/hca_name", pd))?,
                hca_port: num(s, &format!("{}/hca_port", pd))?,
                stats: rdma_stats(s, &format!("{}/stats/rdma", pd), false)?,
            });
        }
        out.push(ServerSession { name, paths });
    }
    Ok(out)
}
