// SPDX-License-Identifier: GPL-2.0

//! `/sys/class/rtrs-client`: a device per session, a directory per path,
//! with upstream 6.12's files, contents, usage strings and errnos
//! (`rtrs-clt-sysfs.c`; see `Documentation/upstream-multipath.rst`).
//!
//! ```text
//! <sessname>/{add_path,max_reconnect_attempts,mpath_policy}
//! <sessname>/paths/<src>@<dst>/{state,reconnect,disconnect,remove_path,
//!     hca_name,hca_port,src_addr,dst_addr,cur_latency}
//! <sessname>/paths/<src>@<dst>/stats/{cpu_migration_from,cpu_migration_to,
//!     reconnects,rdma,reset_all}
//! ```
//!
//! Every handler runs in process context and holds its session or path
//! slot; the session's files go at its close, a path's at its retirement
//! (`remove_path` or the session's close: that drop waits for running
//! handlers, and `remove_path` removes its own file first).  A path's
//! directory stays while it is disconnected or reconnecting.

use crate::*;
use core::fmt::Write;
use rtrs_core::stats::IoStats;
use rtrs_core::stats::Shown;
use rtrs_core::sysfs::{ClassCell, PathDirs, SessDev};
use support::sysfs::{Attr, Attrs, DevFiles, Emit};

/// The class, from module load to unload.
pub(crate) static CLASS: ClassCell = ClassCell::new();

/// Registers the class (module load).
pub(crate) fn register() -> Result {
    CLASS.register(kernel::c_str!("rtrs-client"))
}

/// Unregisters the class (module unload, after every session closed).
pub(crate) fn unregister() {
    CLASS.unregister();
}

/// A session's sysfs: dropped in field order (its files before the
/// device).
pub(crate) struct SessFiles {
    _files: DevFiles<SessAttrs>,
    dev: SessDev,
}

impl SessFiles {
    /// Creates `/sys/class/rtrs-client/<name>/` for `sess`.
    pub(crate) fn new(sess: &Arc<Sess>) -> Result<KBox<Self>> {
        let dev = SessDev::new(&CLASS, &sess.name)?;
        let files = dev.dev().files(
            &SESS_ATTRS,
            Arc::new(SessAttrs { sess: sess.clone() }, GFP_KERNEL)?,
        )?;
        Ok(KBox::new(Self { _files: files, dev }, GFP_KERNEL)?)
    }
}

const S_ADD_PATH: usize = 0;
const S_MAX_RECONNECT: usize = 1;
const S_POLICY: usize = 2;

static SESS_ATTRS: [Attr; 3] = [
    Attr::rw(kernel::c_str!("add_path")),
    Attr::rw(kernel::c_str!("max_reconnect_attempts")),
    Attr::rw(kernel::c_str!("mpath_policy")),
];

struct SessAttrs {
    sess: Arc<Sess>,
}

impl Attrs for SessAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        let s = &self.sess;
        match idx {
            S_ADD_PATH => out.bytes(
                b"Usage: echo [<source addr>@]<destination addr> > add_path\n\n*addr ::= [ ip:<ipv4|ipv6> | gid:<gid> ]\n",
            ),
            S_MAX_RECONNECT => {
                let _ = writeln!(out, "{}", s.max_reconnect.load(Ordering::Relaxed));
            }
            S_POLICY => out.bytes(s.policy().show().as_bytes()),
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        let s = &self.sess;
        match idx {
            S_ADD_PATH => {
                let line = input.split(|&c| c == b'\n').next().unwrap_or(input);
                let p = proto::addr::parse_path(line, &support::ifindex).map_err(|_| EINVAL)?;
                s.add_path_to(Endpoints::new(&p, s.port))
            }
            S_MAX_RECONNECT => {
                let v = mpath::parse_max_reconnect_attempts(input).map_err(|e| {
                    if e == mpath::EINVAL {
                        pr_err!(
                            "{}: invalid range (provided: '{}', accepted: min: {}, max: {})\n",
                            kernel::str::BStr::from_bytes(&s.name),
                            kernel::str::BStr::from_bytes(input),
                            mpath::MIN_RECONNECT_ATTEMPTS,
                            mpath::MAX_RECONNECT_ATTEMPTS
                        );
                    }
                    Error::from_errno(-e)
                })?;
                s.max_reconnect.store(v, Ordering::Relaxed);
                Ok(())
            }
            S_POLICY => {
                s.set_policy(Policy::parse(input).map_err(|e| Error::from_errno(-e))?);
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }
}

/// A path's sysfs directory.
pub(crate) type PathFiles = PathDirs;

/// Creates `paths/<src>@<dst>/` of `slot` under its session's device.
pub(crate) fn path_files(slot: &Arc<PathSlot>, sess: &SessFiles) -> Result<KBox<PathFiles>> {
    PathDirs::new(
        sess.dev.paths(),
        &slot.shown.name,
        (
            &PATH_ATTRS,
            Arc::new(PathAttrs { slot: slot.clone() }, GFP_KERNEL)?,
        ),
        (
            &STATS_ATTRS,
            Arc::new(StatsAttrs { slot: slot.clone() }, GFP_KERNEL)?,
        ),
    )
}

const P_STATE: usize = 0;
const P_RECONNECT: usize = 1;
const P_DISCONNECT: usize = 2;
const P_REMOVE: usize = 3;
const P_HCA_NAME: usize = 4;
const P_HCA_PORT: usize = 5;
const P_SRC: usize = 6;
const P_DST: usize = 7;
const P_LATENCY: usize = 8;

static PATH_ATTRS: [Attr; 9] = [
    Attr::ro(kernel::c_str!("state")),
    Attr::rw(kernel::c_str!("reconnect")),
    Attr::rw(kernel::c_str!("disconnect")),
    Attr::rw(kernel::c_str!("remove_path")),
    Attr::ro(kernel::c_str!("hca_name")),
    Attr::ro(kernel::c_str!("hca_port")),
    Attr::ro(kernel::c_str!("src_addr")),
    Attr::ro(kernel::c_str!("dst_addr")),
    Attr::ro(kernel::c_str!("cur_latency")),
];

struct PathAttrs {
    slot: Arc<PathSlot>,
}

impl Attrs for PathAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        let p = &self.slot;
        match idx {
            P_STATE => out.bytes(if p.is_connected() {
                b"connected\n"
            } else {
                b"disconnected\n"
            }),
            P_RECONNECT => out.bytes(b"Usage: echo 1 > reconnect\n"),
            P_DISCONNECT => out.bytes(b"Usage: echo 1 > disconnect\n"),
            P_REMOVE => out.bytes(b"Usage: echo 1 > remove_path\n"),
            P_HCA_NAME => p.shown.show(Shown::HcaName, out),
            P_HCA_PORT => p.shown.show(Shown::HcaPort, out),
            P_SRC => p.shown.show(Shown::Clt, out),
            P_DST => p.shown.show(Shown::Srv, out),
            P_LATENCY => {
                let ns = p.connected().map_or(0, |c| c.core.latency_ns());
                let _ = writeln!(out, "{} ns", ns);
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        let p = &self.slot;
        if !matches!(idx, P_RECONNECT | P_DISCONNECT | P_REMOVE) {
            return Err(EINVAL);
        }
        if !mpath::is_one(input) {
            pr_err!(
                "{}: unknown value: '{}'\n",
                kernel::str::BStr::from_bytes(&p.shown.name),
                kernel::str::BStr::from_bytes(input)
            );
            return Err(EINVAL);
        }
        match idx {
            P_RECONNECT => p.reconnect_now(),
            P_DISCONNECT => {
                p.disconnect();
                Ok(())
            }
            _ => {
                // Its own directory goes: this file first, since removing
                // it waits for the running store, which is this one.
                if let Some(f) = p.sysfs.take() {
                    f.remove_self(P_REMOVE);
                    if let Err(f) = p.sysfs.put(f) {
                        drop(f);
                    }
                }
                p.retire();
                Ok(())
            }
        }
    }
}

const T_MIGR_FROM: usize = 0;
const T_MIGR_TO: usize = 1;
const T_RECONNECTS: usize = 2;
const T_RDMA: usize = 3;
const T_RESET_ALL: usize = 4;

static STATS_ATTRS: [Attr; 5] = [
    Attr::rw(kernel::c_str!("cpu_migration_from")),
    Attr::rw(kernel::c_str!("cpu_migration_to")),
    Attr::rw(kernel::c_str!("reconnects")),
    Attr::rw(kernel::c_str!("rdma")),
    Attr::rw(kernel::c_str!("reset_all")),
];

struct StatsAttrs {
    slot: Arc<PathSlot>,
}

impl Attrs for StatsAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        let st = &self.slot.stats;
        match idx {
            T_MIGR_FROM | T_MIGR_TO => {
                for c in st.cpus.iter() {
                    let v = if idx == T_MIGR_FROM {
                        &c.migr_from
                    } else {
                        &c.migr_to
                    };
                    let _ = write!(out, "{} ", v.load(Ordering::Relaxed) as i32);
                }
                out.bytes(b"\n");
            }
            T_RECONNECTS => {
                let _ = writeln!(
                    out,
                    "{} {}",
                    st.reconnects_ok.load(Ordering::Relaxed),
                    st.reconnects_failed.load(Ordering::Relaxed)
                );
            }
            T_RDMA => {
                let [rc, rb, wc, wb] = st.io.totals();
                let failovers = st.cpus.iter().fold(0u64, |a, c| {
                    a.wrapping_add(c.failovers.load(Ordering::Relaxed))
                });
                let _ = writeln!(
                    out,
                    "{} {} {} {} {} {}",
                    rc,
                    rb,
                    wc,
                    wb,
                    self.slot
                        .connected()
                        .map_or(0, |c| c.inflight.load(Ordering::Relaxed)),
                    failovers
                );
            }
            T_RESET_ALL => out.bytes(b"echo 1 to reset all statistics\n"),
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        // Upstream's STAT_STORE_FUNC: "1" resets, anything else (even "0")
        // is EINVAL.
        if !mpath::is_one(input) {
            return Err(EINVAL);
        }
        let st = &self.slot.stats;
        match idx {
            T_MIGR_FROM | T_MIGR_TO => st.reset_migration(),
            T_RECONNECTS => st.reset_reconnects(),
            T_RDMA => st.reset_rdma(),
            T_RESET_ALL => {
                st.reset_migration();
                st.reset_reconnects();
                st.reset_rdma();
                if let Some(c) = self.slot.connected() {
                    c.inflight.store(0, Ordering::Relaxed);
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }
}

/// One CPU's counters of a path beyond its IO (`IoStats`): only that CPU
/// adds to them (its own cache line), sysfs sums them.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct CpuStats {
    pub(crate) failovers: AtomicU64,
    /// Answers handled on another CPU than their connection's (upstream's
    /// `cpu_migration`): counted on the connection's CPU ...
    pub(crate) migr_from: AtomicU64,
    /// ... and on the CPU that handled it.
    pub(crate) migr_to: AtomicU64,
}

/// A path's statistics (`stats/`).
pub(crate) struct PathStats {
    /// Requests and bytes, per CPU.
    pub(crate) io: IoStats,
    /// Indexed by CPU id.
    pub(crate) cpus: KVec<CpuStats>,
    /// Successful reconnects: -1 until the first connect (as upstream).
    pub(crate) reconnects_ok: AtomicI32,
    pub(crate) reconnects_failed: AtomicI32,
}

impl PathStats {
    pub(crate) fn new() -> Result<Self> {
        let n = support::nr_cpu_ids() as usize;
        let mut cpus = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            cpus.push(CpuStats::default(), GFP_KERNEL)?;
        }
        Ok(Self {
            io: IoStats::new()?,
            cpus,
            reconnects_ok: AtomicI32::new(-1),
            reconnects_failed: AtomicI32::new(0),
        })
    }

    /// Counts a request of `bytes` (user header and data) sent.  Any
    /// context.
    pub(crate) fn count_io(&self, dir: Dir, bytes: u64, failover: bool) {
        self.io.count(dir == Dir::Read, bytes);
        if failover {
            if let Some(c) = self.cpus.get(support::current_cpu() as usize) {
                c.failovers.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts an answer for connection `cid` handled on this CPU, if its
    /// connection belongs to another CPU (`con_num - 1` IO connections).
    pub(crate) fn count_migration(&self, cid: u16, con_num: u16) {
        let cpu = support::current_cpu() as usize;
        let Some(own) = (cid as usize).checked_sub(1) else {
            return;
        };
        let n = (con_num as usize).saturating_sub(1);
        // The connection of CPU `c` is `c % n + 1`: CPUs past `n` share.
        if n == 0 || cpu % n == own {
            return;
        }
        if let (Some(from), Some(to)) = (self.cpus.get(own), self.cpus.get(cpu)) {
            from.migr_from.fetch_add(1, Ordering::Relaxed);
            to.migr_to.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset_rdma(&self) {
        self.io.reset();
        for c in self.cpus.iter() {
            c.failovers.store(0, Ordering::Relaxed);
        }
    }

    fn reset_migration(&self) {
        for c in self.cpus.iter() {
            c.migr_from.store(0, Ordering::Relaxed);
            c.migr_to.store(0, Ordering::Relaxed);
        }
    }

    fn reset_reconnects(&self) {
        self.reconnects_ok.store(0, Ordering::Relaxed);
        self.reconnects_failed.store(0, Ordering::Relaxed);
    }
}
