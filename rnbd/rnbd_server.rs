// SPDX-License-Identifier: GPL-2.0

//! RNBD server (skeleton).
//!
//! Loads on top of `rtrs-server.ko`; the block device part arrives with the
//! data-path issue.

use kernel::prelude::*;

module! {
    type: RnbdServer,
    name: "rnbd_server",
    author: "rnbd-rs developers",
    description: "RDMA Network Block Device server (rnbd-rs)",
    license: "GPL",
}

struct RnbdServer;

impl kernel::Module for RnbdServer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = rtrs_server::protocol_version();
        pr_info!(
            "loaded (skeleton), RNBD protocol {}.{} over RTRS {}.{}\n",
            proto::rnbd::VERSION_MAJOR,
            proto::rnbd::VERSION_MINOR,
            maj,
            min
        );
        Ok(Self)
    }
}

impl Drop for RnbdServer {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
