#!/bin/bash
# Build the rnbd-rs modules against the $FLAVOUR kernel and install them into
# that kernel's virtme-ng module tree under updates/, where modprobe prefers
# them over the in-tree C modules of the same names.
set -euo pipefail
. "$(dirname "$0")/env.sh"

[ -f "$KBUILD/.rnbd-rs-built" ] || die "kernel $FLAVOUR not built: run tools/build-kernel.sh"
log "building modules against $KBUILD"
# The objects are built in the source tree: built against another flavour's
# kernel they would be reused as they are (make does not see the change of
# tree) and fail to link or load ("__init_work" undefined when the checked
# flavour's objects met the perf kernel).
stamp=$RNBD_TOP/.rnbd-rs-kdir
if [ "$(cat "$stamp" 2>/dev/null)" != "$KBUILD" ]; then
	make -s -C "$RNBD_TOP" FLAVOUR="$FLAVOUR" KDIR="$KBUILD" clean
	echo "$KBUILD" >"$stamp"
fi
make -s -C "$RNBD_TOP" FLAVOUR="$FLAVOUR" KDIR="$KBUILD" modules

mods=$KBUILD/.virtme_mods/lib/modules/0.0.0
if [ ! -f "$mods/modules.dep" ] || [ "$KBUILD/modules.order" -nt "$mods/modules.dep" ]; then
	(cd "$KBUILD" && virtme-prep-kdir-mods)
fi
rm -rf "$mods/updates"
mkdir -p "$mods/updates"
cp "$RNBD_TOP"/*.ko "$mods/updates/"
depmod -a -b "$KBUILD/.virtme_mods" -F "$KBUILD/System.map" 0.0.0
log "installed $(ls "$mods/updates" | tr '\n' ' ')"
