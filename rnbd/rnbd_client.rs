// SPDX-License-Identifier: GPL-2.0

//! RNBD client (skeleton).
//!
//! Loads on top of `rtrs-client.ko`; the block device part arrives with the
//! data-path issue.

use kernel::prelude::*;

module! {
    type: RnbdClient,
    name: "rnbd_client",
    author: "rnbd-rs developers",
    description: "RDMA Network Block Device client (rnbd-rs)",
    license: "GPL",
}

struct RnbdClient;

impl kernel::Module for RnbdClient {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (maj, min) = rtrs_client::protocol_version();
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

impl Drop for RnbdClient {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
