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
use rtrs_core::stats::Shown;
use rtrs_core::sysfs::{ClassCell, PathDirs, SessDev};
use support::sysfs::{Attr, Attrs, Emit};

/// The class, from module load to unload.
static CLASS: ClassCell = ClassCell::new();

/// Registers the class (module load).
pub(crate) fn register() -> Result {
    CLASS.register(kernel::c_str!("rtrs-server"))
}

/// Unregisters the class (module unload: no server is left).
pub(crate) fn unregister() {
    CLASS.unregister();
}

/// A session's device (it has `paths/` only: no handler).
pub(crate) type SessFiles = SessDev;

/// `/sys/class/rtrs-server/<name>/paths/`.
pub(crate) fn sess_files(name: &[u8]) -> Result<KBox<SessFiles>> {
    Ok(KBox::new(SessDev::new(&CLASS, name)?, GFP_KERNEL)?)
}

/// A path's directory.
pub(crate) type PathFiles = PathDirs;

/// `paths/<client>@<server>/` of `path` in its session's device.
pub(crate) fn path_files(path: &Arc<Path>, sess: &SessFiles) -> Result<KBox<PathFiles>> {
    PathDirs::new(
        sess.paths(),
        &path.shown.name,
        (
            &PATH_ATTRS,
            Arc::new(PathAttrs { path: path.clone() }, GFP_KERNEL)?,
        ),
        (
            &STATS_ATTRS,
            Arc::new(StatsAttrs { path: path.clone() }, GFP_KERNEL)?,
        ),
    )
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
            P_HCA_NAME => p.shown.show(Shown::HcaName, out),
            P_HCA_PORT => p.shown.show(Shown::HcaPort, out),
            // The client's address is the path's source, as upstream shows.
            P_SRC => p.shown.show(Shown::Clt, out),
            P_DST => p.shown.show(Shown::Srv, out),
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
                kernel::str::BStr::from_bytes(&p.shown.name),
                kernel::str::BStr::from_bytes(input)
            );
            return Err(EINVAL);
        }
        pr_info!(
            "disconnect for path {} requested\n",
            kernel::str::BStr::from_bytes(&p.shown.name)
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
