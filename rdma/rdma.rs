// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the kernel's RDMA verbs and the RDMA connection manager.
//!
//! This crate is the FFI layer of rnbd-rs: the only place with bindgen output
//! (`bindings`) and with calls into the RDMA core, all of them `unsafe` blocks
//! behind safe types.  No bindgen type is public; RTRS and everything above it
//! see only the types below.
//!
//! | Rust type          | C object                                  |
//! |--------------------|-------------------------------------------|
//! | [`device::Device`] | `struct ib_device`, borrowed              |
//! | [`device::Registration`] | a registered `struct ib_client`     |
//! | [`pd::Pd`]         | `struct ib_pd`                            |
//! | [`cq::Cq`]         | `struct ib_cq` (softirq or workqueue)     |
//! | [`cm::CmId`]       | `struct rdma_cm_id` and its RC `ib_qp`    |
//! | [`mr::FrMr`]       | a fast-registration `struct ib_mr`        |
//! | [`dma::DmaBuf`]    | a kmalloc buffer with its DMA mapping     |
//! | [`pages::PageBlock`] | `alloc_pages()` memory, copied only     |
//! | [`pages::BlockMr`] | a page block's DMA mapping and its MR     |
//! | [`sg::SgTable`]    | a `struct scatterlist` array and its DMA mapping |
//! | [`sg::SgMr`]       | a fast-registration MR over an `SgTable`  |
//! | [`wr::Posted`]     | a work request's `struct ib_cqe` + owner  |
//! | [`rcu::RcuBox`]    | an RCU-protected pointer                  |
//!
//! Ownership follows the `ibverbs` crate: an object holds an [`Arc`] to what it
//! was created from (a QP to its PD and CQ, an MR to its PD), so drop order is
//! teardown order.  A posted work request owns its buffers until its completion
//! hands them back (see [`wr`]).
//!
//! [`Arc`]: kernel::sync::Arc

/// Prefix of this crate's `pr_*` messages.
const __LOG_PREFIX: &[u8] = b"rdma\0";

mod bindings;
pub mod cm;
pub mod cq;
pub mod device;
pub mod dma;
pub mod mr;
pub mod pages;
pub mod pd;
pub mod rcu;
pub mod sg;
pub mod sync;
pub mod sysfs;
pub mod timer;
pub mod wq;
pub mod wr;

use core::ptr::NonNull;
use kernel::prelude::*;

/// Error codes that the 6.12 kernel crate does not name.
pub mod code {
    use kernel::error::Error;

    fn errno(e: u32) -> Error {
        Error::from_errno(-(e as i32))
    }

    /// `ENOTCONN`.
    pub fn enotconn() -> Error {
        errno(kernel::bindings::ENOTCONN)
    }
    /// `ECONNREFUSED`.
    pub fn econnrefused() -> Error {
        errno(kernel::bindings::ECONNREFUSED)
    }
    /// `ETIMEDOUT`.
    pub fn etimedout() -> Error {
        errno(kernel::bindings::ETIMEDOUT)
    }
    /// `EHOSTUNREACH`.
    pub fn ehostunreach() -> Error {
        errno(kernel::bindings::EHOSTUNREACH)
    }
    /// `EPROTO`.
    pub fn eproto() -> Error {
        errno(kernel::bindings::EPROTO)
    }
    /// `ECONNRESET`.
    pub fn econnreset() -> Error {
        errno(kernel::bindings::ECONNRESET)
    }
    /// `EMSGSIZE`.
    pub fn emsgsize() -> Error {
        errno(kernel::bindings::EMSGSIZE)
    }
    /// `ENOTSUPP`-like `EOPNOTSUPP`.
    pub fn eopnotsupp() -> Error {
        errno(kernel::bindings::EOPNOTSUPP)
    }
    /// `ECONNABORTED`.
    pub fn econnaborted() -> Error {
        errno(kernel::bindings::ECONNABORTED)
    }
}

/// The CPU the caller runs on (it may migrate right after; good for
/// spreading work, not for per-CPU data).
pub fn current_cpu() -> u32 {
    // SAFETY: reads the current CPU number, no preconditions.
    unsafe { bindings::rrs_raw_smp_processor_id() }
}

/// Number of possible CPU ids (`nr_cpu_ids`).
pub fn nr_cpu_ids() -> u32 {
    // SAFETY: reads a boot-time constant.
    unsafe { bindings::rrs_nr_cpu_ids() }
}

/// Fills `buf` with random bytes (UUIDs of sessions and paths).
pub fn random_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::rrs_get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) }
}

/// Monotonic milliseconds since boot (jiffies resolution).
pub fn now_ms() -> u64 {
    // SAFETY: reads the jiffies counter, no preconditions.
    unsafe { bindings::rrs_now_ms() }
}

/// Sleeps `ms` milliseconds, uninterruptibly (process context).
pub fn msleep(ms: u32) {
    // SAFETY: no preconditions beyond process context, which the callers
    // (waits of setup and teardown) are in.
    unsafe { bindings::rrs_msleep(ms) }
}

pub use proto::ratelimit::{RateLimit, Verdict};

/// The body of [`peer_err!`], [`peer_warn!`] and [`peer_info!`]: one
/// [`RateLimit`] per call site, and a line saying how many were dropped.
#[doc(hidden)]
#[macro_export]
macro_rules! __peer_log {
    ($pr:ident, $($arg:tt)*) => {{
        static RL: $crate::RateLimit = $crate::RateLimit::new();
        if let $crate::Verdict::Print { suppressed } = RL.check($crate::now_ms()) {
            if suppressed != 0 {
                ::kernel::$pr!("{} similar messages suppressed\n", suppressed);
            }
            ::kernel::$pr!($($arg)*);
        }
    }};
}

/// Rate-limited `pr_err!` for lines a peer's input can trigger (see
/// [`proto::ratelimit`]): a hostile peer must not be able to flood the log.
/// Each call site has its own limit.
#[macro_export]
macro_rules! peer_err {
    ($($arg:tt)*) => { $crate::__peer_log!(pr_err, $($arg)*) };
}

/// Rate-limited `pr_warn!`, see [`peer_err!`].
#[macro_export]
macro_rules! peer_warn {
    ($($arg:tt)*) => { $crate::__peer_log!(pr_warn, $($arg)*) };
}

/// Rate-limited `pr_info!`, see [`peer_err!`].
#[macro_export]
macro_rules! peer_info {
    ($($arg:tt)*) => { $crate::__peer_log!(pr_info, $($arg)*) };
}

/// Converts a pointer returned by the RDMA core (`ERR_PTR` convention, or
/// NULL for an allocation failure) into a `Result`.
fn from_err_ptr<T>(ptr: *mut T) -> Result<NonNull<T>> {
    NonNull::new(kernel::error::from_err_ptr(ptr)?).ok_or(ENOMEM)
}

/// Converts a C return code (0 or a negative errno) into a `Result`.
use kernel::error::to_result;
