# shellcheck shell=bash
# Common paths and tool variables for every rnbd-rs script.  Sourced, not run.
#
# Everything that is big or slow to rebuild (kernel source, kernel builds, ccache,
# the virtme-ng venv, bindgen) lives in $RNBD_CACHE, outside the git tree, so a
# fresh clone reuses it and `git clean` never throws it away.

RNBD_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RNBD_CACHE=${RNBD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rnbd-rs}
KVER=6.12
KSRC=$RNBD_CACHE/linux-source-$KVER
VENV=$RNBD_CACHE/venv
export CCACHE_DIR=${CCACHE_DIR:-$RNBD_CACHE/ccache}
export PATH=$VENV/bin:$HOME/.cargo/bin:$PATH

# Kernel flavour (config/<flavour>.config on top of config/base.config):
# "perf" (gcc, no debugging; the default here: the demo and the benchmark),
# "checked" (gcc, lockdep, atomic-sleep, DEBUG_LIST, debug objects, KFENCE,
# kmemleak, Rust debug assertions; tools/test.sh's default, so every CI run
# of the suite is a checked run) or "debug" (clang, KASAN on top of most of
# those; FLAVOUR=debug, the deeper pass, for a named subset: the whole
# suite takes about four times CI's budget there).  See
# Documentation/harness.rst, "Kernel flavours".
FLAVOUR=${FLAVOUR:-perf}
case $FLAVOUR in
debug|checked|perf) ;;
*) echo "FLAVOUR must be perf, checked or debug, not '$FLAVOUR'" >&2; exit 2 ;;
esac
KBUILD=$RNBD_CACHE/kbuild-$FLAVOUR

# Rust tools: the rustup rustc first on PATH has no rust-src, so name Debian's
# rustc-web explicitly (see Documentation/harness.rst).  ccache wraps CC only:
# HOSTCC doubles as the linker of Rust host programs, which takes one word.
KMAKE_VARS=(
	RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	BINDGEN="$HOME/.cargo/bin/bindgen"
	RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library
)
if [ "$FLAVOUR" = debug ]; then
	# KASAN together with Rust needs a clang-built kernel in 6.12.
	KMAKE_VARS+=(LLVM=1 CC="ccache clang")
else
	KMAKE_VARS+=(CC="ccache gcc")
fi

kmake() {
	make -C "$KSRC" O="$KBUILD" "${KMAKE_VARS[@]}" "$@"
}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
