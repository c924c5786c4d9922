// SPDX-License-Identifier: GPL-2.0

//! Bindgen output over our generic helpers (`helpers.h`) and the kernel
//! headers they need.
//!
//! Private to the crate: these types are distinct from `kernel::bindings`
//! (they come from a separate bindgen run) and never leave this crate.

#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unknown_lints,
    unnecessary_transmutes,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    rustdoc::all
)]

// `rust/bindgen_parameters` blocks these so that they map to Rust's own
// pointer-sized integers, as in the kernel crate.
type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!("bindings_generated.rs");
