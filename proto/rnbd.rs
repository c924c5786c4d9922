// SPDX-License-Identifier: GPL-2.0

//! RNBD protocol constants (`drivers/block/rnbd/rnbd-proto.h`, 6.12).

/// Protocol major version.
pub const VERSION_MAJOR: u8 = 2;
/// Protocol minor version.
pub const VERSION_MINOR: u8 = 0;
/// Default port of the server's listener (`port_nr`).
pub const DEFAULT_PORT: u16 = 1234;
/// Longest device path or name in an open message, without the NUL.
pub const NAME_MAX: usize = 255;
