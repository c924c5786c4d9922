#!/bin/bash
# Build the userspace tools (the guests see the host's root, so they run
# them from the tree): tools/hostile (the hostile RTRS/RNBD peer, over
# librdmacm/libibverbs) and tools/rnbdctl (the operators' command-line
# tool; its man page and bash/zsh completions land in
# tools/rnbdctl/target/gen).
set -euo pipefail
. "$(dirname "$0")/env.sh"
log "building tools/hostile"
cargo build --release --locked --manifest-path "$RNBD_TOP/tools/hostile/Cargo.toml"
log "building tools/rnbdctl"
RNBDCTL_GEN_DIR=$RNBD_TOP/tools/rnbdctl/target/gen \
	cargo build --release --locked --manifest-path "$RNBD_TOP/tools/rnbdctl/Cargo.toml"
