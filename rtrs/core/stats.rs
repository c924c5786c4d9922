// SPDX-License-Identifier: GPL-2.0

//! What both sides show of a path in sysfs: its name and addresses as
//! upstream formats them, and its IO counters (`stats/rdma`).

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;
use rdma::cm::SockAddr;

/// Writes `ip:<address>` as upstream's `sockaddr_to_str` (`%pI4`,
/// `%pI6c`).
pub fn write_addr(out: &mut impl Write, a: &SockAddr) {
    let _ = out.write_str("ip:");
    let _ = a.ip.write_to(out);
}

/// `<src>@<dst>`, a path's directory name (upstream's `rtrs_addr_to_str`).
pub fn path_name(src: &SockAddr, dst: &SockAddr) -> Result<KVec<u8>> {
    let mut v = KVec::new();
    let mut w = support::VecWriter::new(&mut v);
    write_addr(&mut w, src);
    let _ = w.write_str("@");
    write_addr(&mut w, dst);
    w.ok()?;
    Ok(v)
}

/// One CPU's IO counters: only that CPU adds to them (its own cache
/// line), readers sum them.
#[repr(align(64))]
#[derive(Default)]
pub struct CpuIo {
    read_cnt: AtomicU64,
    read_bytes: AtomicU64,
    write_cnt: AtomicU64,
    write_bytes: AtomicU64,
}

/// A path's requests and bytes read and written, per CPU (upstream's
/// `stats/rdma`).  No lock; a reset races with counting as upstream's does.
pub struct IoStats {
    cpus: KVec<CpuIo>,
}

impl IoStats {
    /// Counters for every possible CPU.
    pub fn new() -> Result<Self> {
        let n = support::nr_cpu_ids() as usize;
        let mut cpus = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            cpus.push(CpuIo::default(), GFP_KERNEL)?;
        }
        Ok(Self { cpus })
    }

    /// Counts one request of `bytes` on this CPU.  Any context.
    pub fn count(&self, read: bool, bytes: u64) {
        if let Some(c) = self.cpus.get(support::current_cpu() as usize) {
            let (n, b) = if read {
                (&c.read_cnt, &c.read_bytes)
            } else {
                (&c.write_cnt, &c.write_bytes)
            };
            n.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Reads, bytes read, writes, bytes written, over all CPUs.
    pub fn totals(&self) -> [u64; 4] {
        let mut t = [0u64; 4];
        for c in self.cpus.iter() {
            for (x, v) in
                t.iter_mut()
                    .zip([&c.read_cnt, &c.read_bytes, &c.write_cnt, &c.write_bytes])
            {
                *x = x.wrapping_add(v.load(Ordering::Relaxed));
            }
        }
        t
    }

    /// Sets every counter to 0.
    pub fn reset(&self) {
        for c in self.cpus.iter() {
            for v in [&c.read_cnt, &c.read_bytes, &c.write_cnt, &c.write_bytes] {
                v.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// What sysfs shows of a path's ends and device, read at its setup.
pub struct PathShown {
    /// The directory name: `<client>@<server>` on both sides.
    pub name: KVec<u8>,
    /// The client's address.
    pub clt: SockAddr,
    /// The server's address.
    pub srv: SockAddr,
    /// The RDMA device's name.
    pub hca_name: KVec<u8>,
    /// Its port.
    pub hca_port: u8,
}

impl PathShown {
    /// A path between `clt` and `srv` through port `port` of `dev`.
    pub fn new(
        clt: SockAddr,
        srv: SockAddr,
        dev: rdma::device::Device<'_>,
        port: u8,
    ) -> Result<Self> {
        let mut hca_name = KVec::new();
        hca_name.extend_from_slice(dev.name().as_bytes(), GFP_KERNEL)?;
        Ok(Self {
            name: path_name(&clt, &srv)?,
            clt,
            srv,
            hca_name,
            hca_port: port,
        })
    }

    /// Shows file `which` of a path directory: `hca_name`, `hca_port`,
    /// `clt_addr` or `srv_addr`, each with its newline.
    pub fn show(&self, which: Shown, out: &mut impl Write) {
        let _ = match which {
            Shown::HcaName => {
                for &b in self.hca_name.iter() {
                    let _ = out.write_char(char::from(b));
                }
                out.write_str("\n")
            }
            Shown::HcaPort => writeln!(out, "{}", self.hca_port),
            Shown::Clt | Shown::Srv => {
                write_addr(
                    out,
                    if which == Shown::Clt {
                        &self.clt
                    } else {
                        &self.srv
                    },
                );
                out.write_str("\n")
            }
        };
    }
}

/// A file [`PathShown::show`] serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// `hca_name`.
    HcaName,
    /// `hca_port`.
    HcaPort,
    /// The client's address.
    Clt,
    /// The server's address.
    Srv,
}
