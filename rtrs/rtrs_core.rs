// SPDX-License-Identifier: GPL-2.0

//! RTRS core: what the RTRS client and server modules share.
//!
//! This module (`rtrs-core.ko`, as upstream) carries three crates: `proto`
//! (wire formats), `rdma` (the FFI layer) and this one.  It registers an
//! `ib_client` so that RDMA devices are tracked through the RDMA core's own
//! device lifecycle instead of a private device cache.

use kernel::prelude::*;
use rdma::device::{ClientOps, Device, Registration};

module! {
    type: RtrsCore,
    name: "rtrs_core",
    author: "rnbd-rs developers",
    description: "RDMA Transport Library core (rnbd-rs)",
    license: "GPL",
}

/// The RTRS protocol version this implementation speaks, as (major, minor).
///
/// Not inlined: until the transport API arrives, this call is what makes the
/// module above depend on this one (rustc inlines small functions across
/// crates, which would leave modprobe without a symbol dependency).
#[inline(never)]
pub fn protocol_version() -> (u8, u8) {
    (proto::rtrs::VERSION_MAJOR, proto::rtrs::VERSION_MINOR)
}

/// Device callbacks: log each RDMA device as it comes and goes.
struct Devices;

impl ClientOps for Devices {
    fn add(&self, dev: Device<'_>) -> Result {
        pr_info!("RDMA device {} added ({} port(s))\n", dev.name(), dev.port_count());
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
        Ok(Self { _client: Registration::register(kernel::c_str!("rtrs_core"), Devices)? })
    }
}

impl Drop for RtrsCore {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
