#!/bin/bash
# Rust hygiene of the kernel-side crates (rdma rtrs rnbd blk proto
# selftests/modules), with the kernel's own settings:
#
#   fmt     rustfmt --check with the kernel's .rustfmt.toml
#   clippy  the module build with the kernel's CLIPPY=1 lint set, in a
#           temporary copy of the sources, against the $FLAVOUR kernel tree
#           (tools/env.sh; perf by default); -Dwarnings makes any finding fail
#
# Usage: tools/lint.sh [--fix] [fmt] [clippy]    (no names: all checks)
#   --fix  rustfmt the files in place first
# Prints what it found; exits 1 if any check found something (or could not
# run), 0 if all are clean.  Needs Debian's rustfmt-web and rust-web-clippy,
# which match rustc-web (tools/setup.sh installs them), not rustup's.
set -uo pipefail
. "$(dirname "$0")/env.sh"

RUSTFMT=/usr/bin/rustfmt
CLIPPY_DRIVER=/usr/bin/clippy-driver
CRATES=(rdma rtrs rnbd blk proto selftests/modules)

fix=0 checks=()
for a in "$@"; do
	case $a in
	--fix) fix=1 ;;
	fmt | clippy) checks+=("$a") ;;
	*) echo "usage: $0 [--fix] [fmt] [clippy]" >&2; exit 2 ;;
	esac
done
[ ${#checks[@]} -gt 0 ] || checks=(fmt clippy)

# The crates' Rust sources, without the generated ones (bindgen's output).
rs_files() {
	(cd "$RNBD_TOP" && find "${CRATES[@]}" -name target -prune -o \
		-type f -name '*.rs' ! -name '*_generated.rs' -print | sort)
}

failed=0
result() { # result <check> <status> <message>
	if [ "$2" = 0 ]; then
		echo "lint: $1: ok${3:+ ($3)}"
	else
		echo "lint: $1: FAILED: $3"
		failed=$((failed + 1))
	fi
}

check_fmt() {
	local files out rc
	[ -x "$RUSTFMT" ] || { result fmt 1 "$RUSTFMT missing: apt-get install rustfmt-web (tools/setup.sh)"; return; }
	mapfile -t files < <(rs_files)
	local fmt=("$RUSTFMT" --edition 2021 --config-path "$KSRC/.rustfmt.toml" --color never)
	if [ $fix = 1 ]; then
		(cd "$RNBD_TOP" && "${fmt[@]}" "${files[@]}") || { result fmt 1 "rustfmt failed"; return; }
	fi
	out=$(cd "$RNBD_TOP" && "${fmt[@]}" --check "${files[@]}" 2>&1)
	rc=$?
	if [ $rc = 0 ]; then
		result fmt 0 "${#files[@]} files"
	else
		printf '%s\n' "$out"
		result fmt 1 "$(printf '%s\n' "$out" | grep -c '^Diff in') place(s) not formatted (tools/lint.sh --fix fmt formats them)"
	fi
}

check_clippy() {
	local tmp out rc n
	[ -x "$CLIPPY_DRIVER" ] || { result clippy 1 "$CLIPPY_DRIVER missing: apt-get install rust-web-clippy (tools/setup.sh)"; return; }
	[ -f "$KBUILD/.rnbd-rs-built" ] || { result clippy 1 "kernel $FLAVOUR not built ($KBUILD): run tools/build-kernel.sh"; return; }
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnbd-lint.XXXXXX")
	# Only the build's sources, never objects or generated files of an
	# earlier in-tree build: make would take those as up to date and skip
	# the crates' compilation, and with it clippy.
	(cd "$RNBD_TOP" && find Kbuild Makefile "${CRATES[@]}" -name target -prune -o -type f \
		\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild -o -name Makefile \) \
		! -name '*_generated.*' -print0 | tar --null -T - -cf -) | tar -C "$tmp" -xf -
	out=$(make -s -C "$tmp" FLAVOUR="$FLAVOUR" KDIR="$KBUILD" CLIPPY=1 \
		CLIPPY_DRIVER="$CLIPPY_DRIVER" modules 2>&1)
	rc=$?
	rm -rf "$tmp"
	[ -z "$out" ] || printf '%s\n' "$out" | sed "s|$tmp/||g"
	n=$(printf '%s\n' "$out" | grep -E '^(warning|error)(\[[^]]*\])?: ' | grep -vc 'aborting due to')
	if [ $rc != 0 ]; then
		# rustc stops at the first crate with an error: the crates after
		# it (see Kbuild) were not checked.
		result clippy 1 "$n finding(s) against $KBUILD (the first failing crate stops the build)"
	elif [ "$n" != 0 ]; then
		result clippy 1 "$n finding(s) against $KBUILD"
	else
		result clippy 0 "$KBUILD"
	fi
}

for c in "${checks[@]}"; do
	"check_$c"
done
if [ $failed != 0 ]; then
	echo "lint: $failed check(s) failed"
	exit 1
fi
echo "lint: clean"
