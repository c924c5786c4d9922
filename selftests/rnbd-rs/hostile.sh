#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Shared parts of the hostile-peer tests (hostile_client.sh, hostile_server.sh):
# the tool, a healthy session doing fio verify beside the hostile peer, and
# the victim's kernel log per kind.  Sourced.
. "$(dirname "$0")/interop.sh"

HOSTILE=$RNBD_TOP/tools/hostile/target/release/rnbd-hostile
# Log lines a victim may print for one kind: the rate limiter lets 10 per
# call site per 5 s through; a kind that makes the victim log more than this
# shows a line that is not rate-limited.
HOSTILE_MAX_LINES=${HOSTILE_MAX_LINES:-40}
HEALTHY_FAIL=/tmp/hostile.healthy-failed
HEALTHY_STOP=/tmp/hostile.healthy-stop
HEALTHY_PASSES=/tmp/hostile.healthy-passes
# The healthy session's rate (IOPS per direction): enough to have IO in
# flight whenever a hostile kind runs, low enough that its fio does not
# take the guests' CPUs from the kinds (under TCG an unthrottled verify
# loop made each kind's guest-to-guest commands about three times slower).
HEALTHY_RATE_IOPS=${HEALTHY_RATE_IOPS:-300}

# A healthy session's device does fio crc32c verify passes over 16 MiB in
# a loop until told to stop; a failed pass leaves $HEALTHY_FAIL.
healthy_start() { # <device>
	rm -f "$HEALTHY_FAIL" "$HEALTHY_STOP" "$HEALTHY_PASSES"
	# Every block of the region once first: the server's memory-backed
	# null_blk allocates a page on the first write of each, and random
	# passes would otherwise keep adding pages (up to 16 MiB) after the
	# memory baseline.
	dd if=/dev/urandom of="$1" bs=1M count=16 oflag=direct status=none
	(
		n=0
		while [ ! -e "$HEALTHY_STOP" ]; do
			fio --name=healthy --filename="$1" --direct=1 --ioengine=libaio --iodepth=8 \
				--rw=randrw --bs=4k --size=16M --verify=crc32c --verify_fatal=1 --do_verify=1 \
				--rate_iops="$HEALTHY_RATE_IOPS" \
				--randrepeat=0 --verify_state_save=0 --output=/tmp/hostile-fio.log >/dev/null 2>&1 ||
				{ { cat /tmp/hostile-fio.log; echo "fio failed"; } >"$HEALTHY_FAIL" 2>&1; break; }
			n=$((n + 1))
			echo $n >"$HEALTHY_PASSES"
		done
	) &
	HEALTHY_PID=$!
}
healthy_ok() { [ ! -e "$HEALTHY_FAIL" ] && kill -0 "$HEALTHY_PID" 2>/dev/null; }
healthy_passes() { cat "$HEALTHY_PASSES" 2>/dev/null || echo 0; }
healthy_stop() {
	touch "$HEALTHY_STOP"
	wait "$HEALTHY_PID"
	[ ! -e "$HEALTHY_FAIL" ] || { sed 's/^/# /' "$HEALTHY_FAIL" | tail -20; return 1; }
}

REPORT_RE='WARNING:|BUG:|KASAN:|UBSAN:|Oops|general protection|possible circular locking|possible recursive locking|inconsistent lock state|sleeping function called from invalid context|suspicious RCU usage|Call Trace:|blocked for more than|kmemleak'

# hostile_kinds <client|server>: the kinds to run: all the tool has, or
# the subset in HOSTILE_KINDS (space-separated; e.g. to run a few again
# under the debug kernel).
hostile_kinds() {
	if [ -n "${HOSTILE_KINDS:-}" ]; then echo "$HOSTILE_KINDS"; else "$HOSTILE" list "$1" 2>/dev/null; fi
}
# min_kinds <n>: how many kinds must have run: n for the whole set, all of
# them for a subset.
min_kinds() { if [ -n "${HOSTILE_KINDS:-}" ]; then wc -w <<<"$HOSTILE_KINDS"; else echo "$1"; fi; }

# victim_log <clt|srv> <mark>: the victim's kernel log after a mark; fails
# when the mark is not in the log.
victim_log() { log_after "$@"; }
# srv_log_then_mark <mark> <next mark>: the server's kernel log after a
# mark, then the next mark written to it: one command in the server guest
# per kind instead of two (each costs about 2 s under TCG, more beside the
# healthy session's fio).  Fails when the first mark is not in the log.
srv_log_then_mark() {
	srv "dmesg | awk -v m='$1' 'f; index(\$0, m) {f=1} END {exit !f}'; r=\$?; echo '$2' >/dev/kmsg; exit \$r"
}

# RDMA resources of a guest (pd, cq, qp, cm_id, mr counts summed over the
# rxe devices): they must come back to their value before a hostile peer.
rdma_res() { # <clt|srv>
	local cmd="rdma resource show | awk '{for (i = 3; i < NF; i += 2) s[\$i] += \$(i + 1)} END {printf \"pd %d cq %d qp %d cm_id %d mr %d\", s[\"pd\"], s[\"cq\"], s[\"qp\"], s[\"cm_id\"], s[\"mr\"]}'"
	if [ "$1" = srv ]; then srv "$cmd"; else bash -c "$cmd"; fi
}
# meminfo <clt|srv>: the memory not held by processes (MemAvailable +
# AnonPages + PageTables, KiB) and Slab, page cache dropped.  Processes
# are left out because the test's own shells and tools come and go: 5 MiB
# of AnonPages and 1 MiB of page tables between two points of one run.
meminfo() {
	local cmd="sync; echo 3 >/proc/sys/vm/drop_caches; awk '/^MemAvailable:/ {a += \$2} /^AnonPages:/ {a += \$2} /^PageTables:/ {a += \$2} /^Slab:/ {s = \$2} END {print a, s}' /proc/meminfo"
	if [ "$1" = srv ]; then srv "$cmd"; else bash -c "$cmd"; fi
}
# Memory back to the baseline: at most 8 MiB less available and Slab
# at most 4 MiB higher.  Why not exact: freed slab objects stay in per-CPU
# and partial slabs, and page cache (dmesg, awk, the tool over 9p) comes
# and goes.  One leaked chunk pool (queue depth x 128 KiB, 12.5 MiB in
# hostile_client) or one leaked session's MRs exceed it; RDMA objects are
# compared exactly (rdma_res).
# Under KASAN (the debug flavour) freed objects wait in its quarantine, up
# to 1/32 of the memory (mm/kasan/quarantine.c, QUARANTINE_FRACTION): that
# much is added to both tolerances there (seen: Slab +4.6 MiB after the
# hostile client); kmemleak.sh is the leak test of that flavour.
MEM_TOL_EXTRA=0
grep -qm1 -E ' (__kasan_kmalloc|kasan_save_stack)$' /proc/kallsyms &&
	MEM_TOL_EXTRA=$(awk '/^MemTotal:/ {print int($2 / 32)}' /proc/meminfo)
mem_back() { # <baseline "avail slab"> <now "avail slab">
	local a0 s0 a1 s1 v
	read -r a0 s0 <<<"$1"
	read -r a1 s1 <<<"$2"
	for v in "$a0" "$s0" "$a1" "$s1"; do
		case $v in '' | *[!0-9]*) ktap_print_msg "meminfo not read: '$1' '$2'"; return 1 ;; esac
	done
	ktap_print_msg "MemAvailable+AnonPages+PageTables $a0 -> $a1 KiB, Slab $s0 -> $s1 KiB"
	[ $((a0 - a1)) -le $((8192 + MEM_TOL_EXTRA)) ] && [ $((s1 - s0)) -le $((4096 + MEM_TOL_EXTRA)) ]
}

# kind_verdict <name> <victim clt|srv> <mark> <tool ok 0|1> <detail>: one KTAP
# line for one kind: the tool saw the expected answer, the victim's log has
# no kernel report and at most HOSTILE_MAX_LINES lines, the healthy session
# is still fine.
kind_verdict() {
	local log lrc
	log=$(victim_log "$2" "$3")
	lrc=$?
	kind_verdict_of_log "$1" "$2" "$lrc" "$log" "$4" "$5"
}
# kind_verdict_of_log <name> <victim> <log read 0|1> <log> <tool ok 0|1>
# <detail>: the same, with the victim's log after the kind's mark already
# read (<log read> 1: the mark was not found).
#
# Bash builtins on the passing path: it runs once per kind, and each fork
# costs a guest under TCG with the checked kernel a good part of a second.
kind_verdict_of_log() {
	local name=$1 victim=$2 log=$4 tool_ok=$5 detail=$6 n=0 why= l first= report=0
	local -a lines=()
	[ "$3" = 0 ] || why=" the kind's mark is not in $victim's log;"
	[ -z "$log" ] || mapfile -t lines <<<"$log"
	for l in "${lines[@]}"; do
		[ -n "$l" ] || continue
		n=$((n + 1))
		[ -n "$first" ] || first=$l
		[[ $l =~ $REPORT_RE ]] && report=1
	done
	[ "$tool_ok" = 0 ] || why="$why tool: $detail;"
	if [ "$report" = 1 ]; then
		why="$why kernel report in $victim;"
		printf '%s\n' "$log" | grep -E -A8 "$REPORT_RE" | head -20 | sed 's/^/# /'
	fi
	[ "$n" -le "$HOSTILE_MAX_LINES" ] || why="$why $n log lines in $victim;"
	healthy_ok || why="$why healthy session failed;"
	if [ -z "$why" ]; then
		ktap_test_pass "$name: $detail; $n lines in $victim's log: ${first:0:150}"
	else
		printf '%s\n' "$log" | head -10 | sed 's/^/# /'
		ktap_test_fail "$name:$why"
		TEST_FAILED=1
	fi
}
