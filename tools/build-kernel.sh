#!/bin/bash
# Configure and build the $FLAVOUR kernel (bzImage + modules) in $RNBD_CACHE.
#
# The build directory is kept per flavour and rebuilt incrementally; a stamp
# holds the hash of the config inputs, so an unchanged fragment costs nothing
# and a changed one reconfigures and rebuilds only what changed.
set -euo pipefail
. "$(dirname "$0")/env.sh"

frags=("$RNBD_TOP/config/base.config" "$RNBD_TOP/config/$FLAVOUR.config")
# Fixes to the test fabric (soft-RoCE), never to the RTRS/RNBD reference
# modules: config/patches/README.md says why each one is there.  Applied
# once to the shared source; the stamp's key covers them, so adding one
# rebuilds (incrementally) every flavour.
patches=("$RNBD_TOP"/config/patches/*.patch)
for p in "${patches[@]}"; do
	[ -e "$p" ] || continue
	patch -d "$KSRC" -p1 -R -s -f --dry-run <"$p" >/dev/null 2>&1 && continue
	log "patching the kernel source: $(basename "$p")"
	patch -d "$KSRC" -p1 -N -s <"$p" || die "$p does not apply to $KSRC"
done
key=$( (cat "${frags[@]}" "${patches[@]}" 2>/dev/null; echo "${KMAKE_VARS[*]}"; head -5 "$KSRC/Makefile") | sha256sum | cut -c1-16)
stamp=$KBUILD/.rnbd-rs-built

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$KBUILD/arch/x86/boot/bzImage" ]; then
	log "kernel $FLAVOUR up to date ($KBUILD)"
	exit 0
fi

mkdir -p "$KBUILD"
rm -f "$stamp"
log "configuring $FLAVOUR kernel in $KBUILD"
kmake -s x86_64_defconfig
cp "$KBUILD/.config" "$KBUILD/.config.defconfig"
"$KSRC/scripts/kconfig/merge_config.sh" -m -O "$KBUILD" "$KBUILD/.config" \
	"$KSRC/kernel/configs/kvm_guest.config" "${frags[@]}" >/dev/null
kmake -s olddefconfig
kmake -s rustavailable >/dev/null || die "Rust toolchain not usable for the kernel (make rustavailable)"

# Every line of our fragments must have stuck.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) want=$line ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	opt=${want#\# }; opt=${opt%%[= ]*}
	if [[ $want == "#"* ]]; then
		grep -q "^$opt=" "$KBUILD/.config" && { log "config: $opt is set, wanted unset"; bad=1; }
	else
		grep -qx "$want" "$KBUILD/.config" || { log "config: wanted $want, got: $(grep "^$opt=\|# $opt " "$KBUILD/.config" || echo unset)"; bad=1; }
	fi
done < <(cat "${frags[@]}")
[ $bad = 0 ] || die "kconfig fragment did not stick"

log "building $FLAVOUR kernel (cold: ~15-25 min on 2 cores; warm ccache: minutes)"
start=$SECONDS
kmake -j"$(nproc)" bzImage modules >"$KBUILD/build.log" 2>&1 || { tail -40 "$KBUILD/build.log"; die "kernel build failed, see $KBUILD/build.log"; }
log "kernel $FLAVOUR built in $((SECONDS - start)) s"
echo "$key" >"$stamp"
