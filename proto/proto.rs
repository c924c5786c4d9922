// SPDX-License-Identifier: GPL-2.0

//! RTRS 2.0 and RNBD 2.0 wire formats and codecs.
//!
//! Pure data and arithmetic: no kernel dependencies, no `unsafe`, so the same
//! source is compiled into `rtrs-core.ko` and tested on the host with
//! `cargo test` (fixed inputs and the golden bytes of the C headers).  Everything that decodes bytes from the network returns
//! an error for values it does not know instead of trusting them.

// The kernel build passes `-Zcrate-attr=no_std` itself.
#![cfg_attr(not(CONFIG_RUST), no_std)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod map;
pub mod mpath;
pub mod ratelimit;
#[macro_use]
pub mod wire;
pub mod rnbd;
pub mod rnbd_io;
pub mod rtrs;

#[cfg(test)]
extern crate std;
#[cfg(test)]
mod golden;
