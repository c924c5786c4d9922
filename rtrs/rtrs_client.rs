// SPDX-License-Identifier: GPL-2.0

//! RTRS client (skeleton).
//!
//! Loads on top of `rtrs-core.ko` and links to it through Rust; the
//! transport itself arrives with the data-path issue.

use kernel::prelude::*;

module! {
    type: RtrsClient,
    name: "rtrs_client",
    author: "rnbd-rs developers",
    description: "RDMA Transport client (rnbd-rs)",
    license: "GPL",
}

/// The RTRS protocol version this client speaks.
///
/// Not inlined: until the transport API arrives, this call is what makes the
/// module above depend on this one (rustc inlines small functions across
/// crates, which would leave modprobe without a symbol dependency).
#[inline(never)]
pub fn protocol_version() -> (u8, u8) {
    rtrs_core::protocol_version()
}

struct RtrsClient;

impl kernel::Module for RtrsClient {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = protocol_version();
        pr_info!("loaded (skeleton), RTRS protocol {}.{}\n", maj, min);
        Ok(Self)
    }
}

impl Drop for RtrsClient {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
