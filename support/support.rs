// SPDX-License-Identifier: GPL-2.0

//! Generic kernel helpers that the 6.12 `kernel` crate lacks, used by every
//! layer above (RDMA, RTRS, RNBD, the block-layer glue): each module is a
//! candidate for upstream `rust/kernel`.
//!
//! | Rust type              | C object                                   |
//! |------------------------|--------------------------------------------|
//! | [`sysfs::Class`], [`sysfs::Dir`], ... | sysfs classes, directories, attribute files |
//! | [`wq::OwnedQueue`]     | a module-owned `struct workqueue_struct`   |
//! | [`timer::Timer`]       | a `struct delayed_work` calling a tick     |
//! | [`sync::WaitQueue`]    | a `wait_queue_head_t` any context wakes    |
//! | [`sync::AtomicBox`]    | a lock-free owned pointer                  |
//! | [`sync::DeferredArc`]  | an `Arc` whose last drop is deferred       |
//! | [`rcu::RcuBox`]        | an RCU-protected pointer                   |
//! | [`pages::PageBlock`]   | `alloc_pages()` memory, copied only        |
//!
//! Also: errno values the kernel crate does not name ([`code`]), the CPU and
//! clock, and the rate-limited `peer_err!`/`peer_warn!`/`peer_info!` for
//! lines that a peer's input can trigger.  Like `rdma`, an FFI layer: its
//! own bindgen output (`bindings`), never public.

/// Prefix of this crate's `pr_*` messages.
const __LOG_PREFIX: &[u8] = b"rrs_support\0";

mod bindings;
pub mod pages;
pub mod rcu;
pub mod sync;
pub mod sysfs;
pub mod timer;
pub mod wq;

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

/// The index of the network interface `name` in the initial namespace
/// (an IPv6 scope given by name, as upstream resolves it); `None` if there is
/// none.  An RCU lookup: any context.
pub fn ifindex(name: &[u8]) -> Option<u32> {
    // SAFETY: `name` is valid for reads of its length; the helper copies it.
    let r = unsafe { bindings::rrs_ifindex_by_name(name.as_ptr(), name.len()) };
    u32::try_from(r).ok()
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

/// Converts a pointer returned by a kernel call (`ERR_PTR` convention, or
/// NULL for an allocation failure) into a `Result`.
fn from_err_ptr<T>(ptr: *mut T) -> Result<NonNull<T>> {
    NonNull::new(kernel::error::from_err_ptr(ptr)?).ok_or(ENOMEM)
}

/// Converts a C return code (0 or a negative errno) into a `Result`.
use kernel::error::to_result;

/// Formats into a `KVec<u8>` (`core::fmt::Write`), remembering whether an
/// allocation failed.
pub struct VecWriter<'a> {
    v: &'a mut KVec<u8>,
    failed: bool,
}

impl<'a> VecWriter<'a> {
    /// Appends to `v`.
    pub fn new(v: &'a mut KVec<u8>) -> Self {
        Self { v, failed: false }
    }

    /// `ENOMEM` if some of the text did not fit.
    pub fn ok(&self) -> Result {
        if self.failed {
            Err(ENOMEM)
        } else {
            Ok(())
        }
    }
}

impl core::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.v.extend_from_slice(s.as_bytes(), GFP_KERNEL).is_err() {
            self.failed = true;
        }
        Ok(())
    }
}
