#!/bin/bash
# Build the userspace test tools the guests run (they see the host's root):
# tools/hostile (the hostile RTRS/RNBD peer, over librdmacm/libibverbs).
set -euo pipefail
. "$(dirname "$0")/env.sh"
log "building tools/hostile"
cargo build --release --locked --manifest-path "$RNBD_TOP/tools/hostile/Cargo.toml"
