// SPDX-License-Identifier: GPL-2.0

//! `/sys/class/rtrs-server`: a device per session (from its first path's
//! info request to its last path's close), a directory per path, with
//! upstream 6.12's files, contents and errnos (`rtrs-srv-sysfs.c`; see
//! `Documentation/upstream-multipath.rst`, section 6).
//!
//! ```text
//! <sessname>/paths/<client>@<server>/{disconnect,hca_name,hca_port,
//!     src_addr,dst_addr}
//! <sessname>/paths/<client>@<server>/stats/rdma
//! ```
//!
//! Handlers run in process context, hold their path and never wait for its
//! close work (which drops the directory, waiting for them).

use crate::*;
use core::fmt::Write;
use support::rcu::RcuBox;
use support::sysfs::{self, Attr, Attrs, ClassDev, DevClass, Emit, PlainDir};

/// The class, from module load to unload.
static CLASS: RcuBox<Arc<DevClass>> = RcuBox::empty();

/// Registers the class (module load).
pub(crate) fn register() -> Result {
    let c = Arc::new(DevClass::new(kernel::c_str!("rtrs-server"))?, GFP_KERNEL)?;
    CLASS.publish(KBox::new(c, GFP_KERNEL)?).map_err(|_| EBUSY)
}

/// Unregisters the class (module unload: no server is left).
pub(crate) fn unregister() {
    RcuBox::take_all(core::slice::from_ref(&CLASS), drop);
}

/// A session's device, dropped in field order.
pub(crate) struct SessFiles {
    paths: PlainDir,
    _dev: ClassDev,
    _class: Arc<DevClass>,
}

/// `name` with a NUL.
fn c_name(name: &[u8]) -> Result<KVec<u8>> {
    if name.contains(&0) {
        return Err(EINVAL);
    }
    let mut v = KVec::with_capacity(name.len() + 1, GFP_KERNEL)?;
    v.extend_from_slice(name, GFP_KERNEL)?;
    v.push(0, GFP_KERNEL)?;
    Ok(v)
}

fn cstr(v: &[u8]) -> Result<&kernel::str::CStr> {
    kernel::str::CStr::from_bytes_with_nul(v).map_err(|_| EINVAL)
}

impl SessFiles {
    /// `/sys/class/rtrs-server/<name>/paths/`.
    pub(crate) fn new(name: &[u8]) -> Result<KBox<Self>> {
        let class = CLASS.read(|c| c.cloned()).ok_or(ENODEV)?;
        let n = c_name(name)?;
        let dev = class.device(cstr(&n)?)?;
        let paths = PlainDir::new(dev.kobj(), kernel::c_str!("paths"))?;
        Ok(KBox::new(
            Self {
                paths,
                _dev: dev,
                _class: class,
            },
            GFP_KERNEL,
        )?)
    }
}

/// A path's directory, dropped in field order (`stats/` first).
pub(crate) struct PathFiles {
    _stats: sysfs::Dir,
    _dir: sysfs::Dir,
}

impl PathFiles {
    /// `paths/<client>@<server>/` of `path` in its session's device.
    pub(crate) fn new(path: &Arc<Path>, sess: &SessFiles) -> Result<KBox<Self>> {
        let n = c_name(&path.name)?;
        let dir = sysfs::Dir::new(
            sess.paths.kobj(),
            cstr(&n)?,
            &PATH_ATTRS,
            Arc::new(PathAttrs { path: path.clone() }, GFP_KERNEL)?,
        )?;
        let stats = sysfs::Dir::new(
            dir.kobj(),
            kernel::c_str!("stats"),
            &STATS_ATTRS,
            Arc::new(StatsAttrs { path: path.clone() }, GFP_KERNEL)?,
        )?;
        Ok(KBox::new(
            Self {
                _stats: stats,
                _dir: dir,
            },
            GFP_KERNEL,
        )?)
    }
}

const P_DISCONNECT: usize = 0;
const P_HCA_NAME: usize = 1;
const P_HCA_PORT: usize = 2;
const P_SRC: usize = 3;
const P_DST: usize = 4;

static PATH_ATTRS: [Attr; 5] = [
    Attr::rw(kernel::c_str!("disconnect")),
    Attr::ro(kernel::c_str!("hca_name")),
    Attr::ro(kernel::c_str!("hca_port")),
    Attr::ro(kernel::c_str!("src_addr")),
    Attr::ro(kernel::c_str!("dst_addr")),
];

static STATS_ATTRS: [Attr; 1] = [Attr::rw(kernel::c_str!("rdma"))];

/// Serves a path's directory.
struct PathAttrs {
    path: Arc<Path>,
}

/// Serves a path's `stats/`.
struct StatsAttrs {
    path: Arc<Path>,
}

impl Attrs for PathAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        let p = &self.path;
        match idx {
            P_DISCONNECT => out.bytes(b"Usage: echo 1 > disconnect\n"),
            P_HCA_NAME => {
                out.bytes(&p.hca_name);
                out.bytes(b"\n");
            }
            P_HCA_PORT => {
                let _ = writeln!(out, "{}", p.hca_port);
            }
            // The client's address is the path's source, as upstream shows.
            P_SRC | P_DST => {
                rtrs_core::stats::write_addr(
                    out,
                    if idx == P_SRC {
                        &p.clt_addr
                    } else {
                        &p.srv_addr
                    },
                );
                out.bytes(b"\n");
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        if idx != P_DISCONNECT {
            return Err(EINVAL);
        }
        let p = &self.path;
        if !proto::mpath::is_one(input) {
            pr_err!(
                "{}: invalid value: '{}'\n",
                kernel::str::BStr::from_bytes(&p.name),
                kernel::str::BStr::from_bytes(input)
            );
            return Err(EINVAL);
        }
        pr_info!(
            "disconnect for path {} requested\n",
            kernel::str::BStr::from_bytes(&p.name)
        );
        // Queues the close work and returns: that work drops this
        // directory, which waits for this call.
        p.close();
        Ok(())
    }
}

impl Attrs for StatsAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        if idx != 0 {
            return Err(EINVAL);
        }
        let [rc, rb, wc, wb] = self.path.io_stats.totals();
        let _ = writeln!(out, "{} {} {} {}", rc, rb, wc, wb);
        Ok(())
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        if idx != 0 || !proto::mpath::is_one(input) {
            return Err(EINVAL);
        }
        self.path.io_stats.reset();
        Ok(())
    }
}
