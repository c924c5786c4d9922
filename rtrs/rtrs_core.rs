// SPDX-License-Identifier: GPL-2.0

//! RTRS core: what the RTRS client and server modules share.
//!
//! This module (`rtrs-core.ko`, as upstream) carries four crates: `proto`
//! (wire formats), `support` (generic kernel helpers), `rdma` (the RDMA FFI
//! layer) and this one.  It registers an
//! `ib_client` so that RDMA devices are tracked through the RDMA core's own
//! device lifecycle instead of a private device cache.

use kernel::prelude::*;
use rdma::device::{ClientOps, Device, Registration};

#[path = "core/path.rs"]
pub mod path;
#[path = "core/stats.rs"]
pub mod stats;
#[path = "core/sysfs.rs"]
pub mod sysfs;
#[path = "core/wait.rs"]
pub mod wait;

module! {
    type: RtrsCore,
    name: "rtrs_core",
    author: "rnbd-rs developers",
    description: "RDMA Transport Library core (rnbd-rs)",
    license: "GPL",
}

/// The RTRS protocol version this implementation speaks, as (major, minor).
///
/// Not inlined: rustc inlines small functions across crates, and a module
/// that only called inlined code of this one would leave modprobe without a
/// symbol dependency on it.
#[inline(never)]
pub fn protocol_version() -> (u8, u8) {
    (proto::rtrs::VERSION_MAJOR, proto::rtrs::VERSION_MINOR)
}

/// An unordered set of values in a `KVec` of slots: removal frees a slot
/// instead of shifting (the 6.12 `KVec` has no `remove` or `truncate`), and
/// insertion reuses free slots before it grows the vector.
pub struct Slots<T> {
    v: KVec<Option<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self { v: KVec::new() }
    }
}

impl<T> Slots<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `x` in the lowest free slot and returns the slot's index.
    pub fn insert(&mut self, x: T) -> Result<usize> {
        if let Some((i, s)) = self.v.iter_mut().enumerate().find(|(_, s)| s.is_none()) {
            *s = Some(x);
            return Ok(i);
        }
        self.v.push(Some(x), GFP_KERNEL)?;
        Ok(self.v.len() - 1)
    }

    /// The index the next [`Slots::insert`] will use.
    pub fn next_free(&self) -> usize {
        self.v
            .iter()
            .position(|s| s.is_none())
            .unwrap_or(self.v.len())
    }

    /// The value in slot `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.v.get(i)?.as_ref()
    }

    /// The value in slot `i`, mutably.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.v.get_mut(i)?.as_mut()
    }

    /// Takes the value out of slot `i`.
    pub fn remove(&mut self, i: usize) -> Option<T> {
        self.v.get_mut(i)?.take()
    }

    /// The values with their slot indexes.
    pub fn iter_indexed(&self) -> impl Iterator<Item = (usize, &T)> {
        self.v
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|x| (i, x)))
    }

    /// Removes and returns every value for which `f` is true.
    pub fn take_where(&mut self, mut f: impl FnMut(&T) -> bool, mut out: impl FnMut(T)) {
        for s in self.v.iter_mut() {
            if s.as_ref().is_some_and(&mut f) {
                if let Some(x) = s.take() {
                    out(x);
                }
            }
        }
    }

    /// The values.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.v.iter().flatten()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Device callbacks: log each RDMA device as it comes and goes.
struct Devices;

impl ClientOps for Devices {
    fn add(&self, dev: Device<'_>) -> Result {
        pr_info!(
            "RDMA device {} added ({} port(s))\n",
            dev.name(),
            dev.port_count()
        );
        Ok(())
    }

    fn remove(&self, dev: Device<'_>) {
        pr_info!("RDMA device {} removed\n", dev.name());
    }
}

struct RtrsCore {
    _client: Pin<KBox<Registration<Devices>>>,
}

impl kernel::Module for RtrsCore {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = protocol_version();
        pr_info!("loaded, RTRS protocol {}.{}\n", maj, min);
        Ok(Self {
            _client: Registration::register(kernel::c_str!("rtrs_core"), Devices)?,
        })
    }
}

impl Drop for RtrsCore {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
