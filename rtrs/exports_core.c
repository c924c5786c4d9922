// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the Rust symbols of this module's crates (listed by Kbuild from the
 * objects with nm) so that modules built on top of them can link, the way
 * rust/exports.c does for the kernel crate.
 */
#include <linux/export.h>

#define EXPORT_SYMBOL_RUST_GPL(sym) extern int sym; EXPORT_SYMBOL_GPL(sym)

#include "exports_core_generated.h"
