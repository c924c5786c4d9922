#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Not a pass/fail test (not in TEST_PROGS): the hostile client's kinds
# against the upstream 6.12 C server, for tools/hostile-compare.sh.
#
#   hostile_upstream.sh <first kind number>
#
# Prints "row|<n>|<kind>|<tool line>|<server log>" per kind.  Stops with
# exit code 3 when the server guest no longer answers (the caller restarts
# it and goes on with the next kind).
. "$(dirname "$0")/hostile.sh"
first=${1:-1}
# A fresh server guest (first call or after a restart): load the C server.
srv test -d /sys/module/rnbd_server || {
	srv "modprobe null_blk nr_devices=1 memory_backed=1 gb=1 bs=512" >/dev/null 2>&1
	srv_fn c_rtrs_load server sess_queue_depth=100 >/dev/null 2>&1
}
export HOSTILE_SETUP_TIMEOUT_MS=25000 HOSTILE_FLOOD_LIMIT=12
n=0
for k in $("$HOSTILE" list client); do
	n=$((n + 1))
	[ "$n" -ge "$first" ] || continue
	mark="rnbd-rs-selftest: hostile-upstream $k $(date +%s%N)"
	SRV_TIMEOUT=30 srv "echo '$mark' >/dev/kmsg" >/dev/null 2>&1
	out=$(timeout 120 "$HOSTILE" client --dst "$SRV_IP1" --dev /dev/nullb0 --kind "$k" 2>/dev/null | head -1)
	[ -n "$out" ] || out="not ok $k tool timed out"
	if ! SRV_TIMEOUT=60 srv true >/dev/null 2>&1; then
		echo "row|$n|$k|$out|server guest unresponsive"
		exit 3
	fi
	rep=$(SRV_TIMEOUT=60 victim_log srv "$mark" | grep -E "$REPORT_RE" | head -1 | cut -c1-90)
	echo "row|$n|$k|$out|${rep:-clean}"
	# After an oops the server may still answer its shell but not RDMA:
	# a fresh guest for the next kind.
	case $rep in *BUG:* | *Oops* | *"general protection"*) exit 3 ;; esac
done
exit 0
