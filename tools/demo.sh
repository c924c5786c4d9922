#!/bin/bash
# The main job: set everything up (packages, kernel, modules), boot the two
# guests, map a remote block device over soft-RoCE, mount it and use it.
set -euo pipefail
. "$(dirname "$0")/env.sh"
T=$RNBD_TOP/tools
"$T/prepare.sh"
trap '"$T/vm.sh" stop >/dev/null 2>&1' EXIT
"$T/vm.sh" start
"$T/vm.sh" exec clt -t 1800 -- "$RNBD_TOP/tools/guest/demo-client.sh"
