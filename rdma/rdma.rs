// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the kernel's RDMA verbs and the RDMA connection manager.
//!
//! This crate is the RDMA part of rnbd-rs's FFI layer: the only place with
//! calls into the RDMA core, all of them `unsafe` blocks behind safe types;
//! generic kernel helpers are in the `support` crate below it.  No bindgen type is public; RTRS and everything above it
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
//! | [`pages::BlockMr`] | a page block's DMA mapping and its MR     |
//! | [`sg::SgTable`]    | a `struct scatterlist` array and its DMA mapping |
//! | [`sg::SgMr`]       | a fast-registration MR over an `SgTable`  |
//! | [`wr::Posted`]     | a work request's `struct ib_cqe` + owner  |
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
pub mod sg;
pub mod wr;

use core::ptr::NonNull;
use kernel::prelude::*;

/// Converts a pointer returned by the RDMA core (`ERR_PTR` convention, or
/// NULL for an allocation failure) into a `Result`.
fn from_err_ptr<T>(ptr: *mut T) -> Result<NonNull<T>> {
    NonNull::new(kernel::error::from_err_ptr(ptr)?).ok_or(ENOMEM)
}

/// Converts a C return code (0 or a negative errno) into a `Result`.
use kernel::error::to_result;
