// SPDX-License-Identifier: GPL-2.0
// The verbs entry points are static inline in <infiniband/verbs.h>: a small
// C file wraps them (src/shim.c).
fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    cc::Build::new().file("src/shim.c").warnings(true).compile("hshim");
    println!("cargo:rustc-link-lib=rdmacm");
    println!("cargo:rustc-link-lib=ibverbs");
}
