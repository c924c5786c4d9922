# SPDX-License-Identifier: GPL-2.0
# Convenience front end.  The real entry points are the scripts in tools/
# (see README.md); this file only builds the modules against a kernel tree.
#
#   make                 build the modules against $(KDIR)
#   make host-test       cargo test of the host-testable crates
#   make clean

RNBD_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rnbd-rs
# The kernel tree to build against, as tools/env.sh names it (perf by
# default there too; tools/test.sh uses checked).
FLAVOUR ?= perf
KDIR ?= $(RNBD_CACHE)/kbuild-$(FLAVOUR)
KVARS := RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
	BINDGEN=$(HOME)/.cargo/bin/bindgen RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library
ifeq ($(FLAVOUR),debug)
KVARS += LLVM=1
endif

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KVARS) modules

modules_install:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KVARS) INSTALL_MOD_DIR=updates modules_install

host-test:
	cargo test --manifest-path proto/Cargo.toml

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KVARS) clean
	rm -f rdma/bindings_generated.rs support/bindings_generated.rs rtrs/exports_*_generated.h
	# Kbuild's clean deletes every *.[aios] file below M=, also inside
	# cargo's target directories, which cargo does not notice (the hostile
	# tool then failed to link: "unable to find library -lhshim").
	cargo clean -q --manifest-path tools/hostile/Cargo.toml
	cargo clean -q --manifest-path proto/Cargo.toml

.PHONY: all modules modules_install host-test clean
