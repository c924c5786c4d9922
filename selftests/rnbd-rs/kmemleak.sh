#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# After the other tests: kmemleak finds no leaked object allocated by the
# RDMA, RTRS or RNBD code in either guest.  Runs last.
. "$(dirname "$0")/lib.sh"

KML=/sys/kernel/debug/kmemleak
ours_leaked() { # prints leaked objects whose backtrace names our code; fails when the scan could not run
	local out
	out=$("$@" "set -e; mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
	echo scan >$KML; sleep 6; echo scan >$KML; cat $KML") || { ktap_print_msg "kmemleak scan failed"; return 1; }
	awk 'BEGIN {RS="unreferenced object"} /rtrs|rnbd|rdma|rxe|ib_core|ib_uverbs|rdma_cm/ {print "unreferenced object" $0}' <<<"$out"
}
on_clt() { bash -c "$1"; }
none_leaked() {
	local l
	l=$(ours_leaked "$1") || return 1
	[ -z "$l" ] || { echo "$l" | head -30 | sed 's/^/# /'; return 1; }
}

[ -e "$KML" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
[ -e "$KML" ] || skip_all "kernel without kmemleak"
# Built in but off (the checked flavour's default; boot the guests with
# kmemleak=on): the file refuses commands with EPERM.
out=$( (echo scan >"$KML") 2>&1) ||
	case $out in *"Operation not permitted"*) skip_all "kmemleak is off in this kernel (boot with kmemleak=on)" ;; esac
test_begin kmemleak 3
check "client: no leaked RDMA/RTRS/RNBD objects" none_leaked on_clt
check "server: no leaked RDMA/RTRS/RNBD objects" none_leaked srv
test_end
