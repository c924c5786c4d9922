#!/bin/bash
# Everything before a guest boots: packages and tools, the $FLAVOUR kernel,
# our modules installed for the guests.  Idempotent; fast when nothing changed.
set -euo pipefail
T=$(dirname "$0")
"$T/setup.sh"
"$T/build-kernel.sh"
"$T/build-modules.sh"
"$T/build-tools.sh"
