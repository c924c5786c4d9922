#!/bin/bash
# Install everything rnbd-rs needs on Debian 12 and unpack the 6.12 source.
# Idempotent: every step checks whether it is already done.
set -euo pipefail
. "$(dirname "$0")/env.sh"

[ "$(id -u)" = 0 ] || die "run as root (apt, modules, QEMU)"

PKGS=(linux-source-6.12 rustc-web rust-web-src rustfmt-web rust-web-clippy libclang-dev clang llvm lld
	flex bison bc libelf-dev libssl-dev cpio kmod dwarves xz-utils make gcc
	qemu-system-x86 busybox-static rdma-core ibverbs-utils ibverbs-providers
	rdmacm-utils fio nvme-cli e2fsprogs iproute2 ccache python3-venv procps
	util-linux iputils-ping libibverbs-dev librdmacm-dev patch linux-perf)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "apt: installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! "$HOME/.cargo/bin/bindgen" --version 2>/dev/null | grep -q '0\.69\.5'; then
	log "cargo: installing bindgen-cli 0.69.5"
	cargo install bindgen-cli --version 0.69.5 --locked
fi

mkdir -p "$RNBD_CACHE" "$CCACHE_DIR"
if ! "$VENV/bin/vng" --version >/dev/null 2>&1; then
	log "pip: installing virtme-ng 1.42 into $VENV"
	/usr/bin/python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q virtme-ng==1.42
fi

if [ ! -f "$KSRC/Makefile" ]; then
	log "unpacking /usr/src/linux-source-$KVER.tar.xz"
	tar -C "$RNBD_CACHE" -xf /usr/src/linux-source-$KVER.tar.xz
fi
log "setup done"
