#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Shared helpers of the rnbd-rs kselftests.  Sourced by each test, which runs
# in the client guest (clt); `srv` runs a command in the server guest.
#
# A test calls `test_begin <name> <plan>` first, <plan> being the number of
# checks it must run (the KTAP plan, printed first), and ends with
# `test_end`, which adds one check: no WARN, BUG, KASAN, lockdep or similar
# report in either guest's kernel log since `test_begin`.  A test that ran
# fewer or more checks than planned fails (kselftest's ktap_finished).
# See Documentation/harness.rst, "Writing a check that can fail".

KSRC=${KSRC:-${XDG_CACHE_HOME:-$HOME/.cache}/rnbd-rs/linux-source-6.12}
. "$KSRC/tools/testing/selftests/kselftest/ktap_helpers.sh"

RNBD_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRV_IP0=10.99.0.2
SRV_IP1=10.99.1.2
CLT_IP0=10.99.0.1
CLT_IP1=10.99.1.1
# IPv6 addresses of the same links (tools/guest/agent.sh), as the kernel
# prints them (%pI6c).
SRV_IP6_0=fd99::2
SRV_IP6_1=fd99:1::2
CLT_IP6_0=fd99::1
CLT_IP6_1=fd99:1::1
TEST_NAME=
TEST_MARK=
TEST_FAILED=0

# Runs a command in the server guest (through the shared directory).
srv() {
	"$RNBD_TOP/tools/guest/run-on.sh" "$RNBD_SHARED/srv/cmd" "${SRV_TIMEOUT:-600}" "$@"
}

# Both guests' kernel logs, for the whole test or since a mark.
kmsg_both() { echo "$*" >/dev/kmsg; srv "echo '$*' >/dev/kmsg"; }

test_begin() { # <name> <plan: number of checks, test_end's included>
	TEST_NAME=$1
	# The tree's runner does not always pass a test's own lines through;
	# keep them for tools/test.sh, which prints them after the run.
	mkdir -p "$RNBD_SHARED/results"
	exec > >(tee "$RNBD_SHARED/results/$TEST_NAME.log") 2>&1
	TEST_MARK="rnbd-rs-selftest: begin $TEST_NAME $(date +%s%N)"
	kmsg_both "$TEST_MARK"
	ktap_print_header
	case ${2:-} in
	'' | *[!0-9]*) ktap_exit_fail_msg "test_begin $TEST_NAME: no plan (number of checks) given" ;;
	esac
	ktap_set_plan "$2"
}

# log_after <clt|srv> <mark>: the kernel log lines after a mark.  Fails,
# printing nothing, when the mark is not in the log (rotated out of the
# ring buffer, or never written): "nothing reported since the mark" must
# not pass when the log since the mark cannot be read.
log_after() {
	local log
	if [ "$1" = srv ]; then log=$(srv dmesg); else log=$(dmesg); fi
	if ! grep -qF -- "$2" <<<"$log"; then
		ktap_print_msg "mark '$2' is not in $1's kernel log" >&2
		return 1
	fi
	awk -v m="$2" 'f; index($0, m) {f=1}' <<<"$log"
}
# Prints the kernel log lines after this test's begin mark ($1: clt|srv).
log_since_mark() { log_after "$1" "$TEST_MARK"; }
# logged <clt|srv> <text>: this guest logged <text> since the test began.
logged_in() { local l; l=$(log_since_mark "$1") && grep -qF -- "$2" <<<"$l"; }
# count_logged <clt|srv> <text>: how many lines with <text> since the test
# began; fails (no output) when the log since the mark cannot be read.
count_logged() { local l; l=$(log_since_mark "$1") && { grep -cF -- "$2" <<<"$l" || true; }; }

# Fails the test on kernel reports in either guest.
check_kernel_reports() {
	local vm log bad rc=0
	for vm in clt srv; do
		log=$(log_since_mark "$vm") || { rc=1; continue; }
		bad=$(grep -E 'WARNING:|BUG:|KASAN:|UBSAN:|Oops|general protection|possible circular locking|possible recursive locking|inconsistent lock state|sleeping function called from invalid context|suspicious RCU usage|Call Trace:|blocked for more than' <<<"$log" || true)
		if [ -n "$bad" ]; then
			ktap_print_msg "kernel report in $vm:"
			echo "$bad" | head -20 | sed 's/^/# /'
			rc=1
		fi
	done
	return $rc
}

# check <description> <command...>: one KTAP subtest line per check.
check() {
	local desc=$1
	shift
	if "$@"; then
		ktap_test_pass "$desc"
	else
		ktap_test_fail "$desc"
		TEST_FAILED=1
	fi
}

# The soft-RoCE counters of both guests (retries, RNR, errors), printed when
# a test failed: they tell a transport problem from a protocol one.
nonzero_counters() { # one "link rxeN/1 name value ..." line per link on stdin
	awk '{ printf "%s", $2; for (i = 3; i < NF; i += 2) if ($(i + 1) != 0) printf " %s=%s", $i, $(i + 1); print "" }'
}
dump_rdma_counters() {
	ktap_print_msg "rdma counters (non-zero), clt: $(rdma statistic show 2>&1 | nonzero_counters | tr '\n' ';')"
	ktap_print_msg "rdma counters (non-zero), srv: $(srv "rdma statistic show" 2>&1 | nonzero_counters | tr '\n' ';')"
}

test_end() {
	[ "$TEST_FAILED" = 0 ] || dump_rdma_counters
	check "no kernel warnings in either guest" check_kernel_reports
	kmsg_both "rnbd-rs-selftest: end $TEST_NAME"
	local ran=$((KTAP_CNT_PASS + KTAP_CNT_FAIL + KTAP_CNT_SKIP))
	[ "$ran" = "$KSFT_NUM_TESTS" ] ||
		ktap_print_msg "planned $KSFT_NUM_TESTS checks, ran $ran: the test fails"
	ktap_finished
}

# skip_all <reason>: the whole test does not apply here; call it instead of
# test_begin (the plan is then "1..0 # SKIP").
skip_all() { ktap_print_header; ktap_skip_all "$*"; exit "$KSFT_SKIP"; }

# fails_with <error text> <command...>: the command fails and what it prints
# names exactly this error (strerror text such as "Invalid argument"): a
# negative check that a failure for another reason (a missing device, a
# typo in the command) does not satisfy.
fails_with() {
	local want=$1 out
	shift
	[ -n "$want" ] || { ktap_print_msg "fails_with: no error text given"; return 1; }
	if out=$("$@" 2>&1); then
		ktap_print_msg "expected '$want', but it succeeded"
		return 1
	fi
	case $out in *"$want"*) return 0 ;; esac
	ktap_print_msg "expected '$want', got: $(tr '\n' ' ' <<<"$out")"
	return 1
}
# same_number <a> <b>: two equal non-empty decimal numbers (two failed
# lookups print two empty strings, which compare equal).
same_number() {
	case $1 in '' | *[!0-9]*) ktap_print_msg "not a number: '$1'"; return 1 ;; esac
	[ "$1" = "$2" ] || { ktap_print_msg "$1 != $2"; return 1; }
}
# is_blockdev <path>: the precondition of a check on a device: a path that
# is a block device (an empty "$(dev_of ...)" is not).
is_blockdev() { [ -n "$1" ] && [ -b "$1" ] || { ktap_print_msg "no block device '$1'"; return 1; }; }

# The upstream C modules of the reference peers, by path: modprobe would pick
# ours from updates/.
c_mod_dir() { echo "/lib/modules/$(uname -r)/kernel"; }
c_rtrs_load() { # client|server [rtrs module parameters...]
	local d side=$1
	shift
	d=$(c_mod_dir)
	# Ours have the same names: make room for the C ones.
	modprobe -r rnbd_client rtrs_client rnbd_server rtrs_server rdma_selftest rtrs_core 2>/dev/null
	modprobe -a ib_core rdma_cm || return
	insmod "$d/drivers/infiniband/ulp/rtrs/rtrs-core.ko" &&
		insmod "$d/drivers/infiniband/ulp/rtrs/rtrs-$side.ko" "$@" &&
		insmod "$d/drivers/block/rnbd/rnbd-$side.ko"
}
c_rtrs_unload() { # client|server
	rmmod "rnbd_$1" "rtrs_$1" rtrs_core
}
# The same on the server guest.
srv_fn() { # <function> <args...>: run one of the functions above in srv
	srv "$(declare -f c_mod_dir c_rtrs_load c_rtrs_unload); $*"
}

# Whether a module is loaded here.
loaded() { [ -d "/sys/module/$1" ]; }

# Best-effort teardown of what a data test may leave behind when it fails
# half way, so that the next test starts clean: mounts, mapped devices,
# nvme controllers, modules, in both guests.  Run from an EXIT trap.
cleanup_data() {
	local m d
	for m in /tmp/rnbd-mnt.*; do
		[ -d "$m" ] && { umount "$m" 2>/dev/null; rmdir "$m" 2>/dev/null; }
	done
	for d in /sys/block/rnbd*/rnbd/unmap_device; do
		[ -e "$d" ] && echo force >"$d" 2>/dev/null
	done
	nvme disconnect-all >/dev/null 2>&1
	modprobe -r nvme-rdma 2>/dev/null
	rmmod rnbd_client rtrs_client rtrs_core 2>/dev/null
	srv "rmmod rnbd_server rtrs_server rtrs_core 2>/dev/null
	CFG=/sys/kernel/config/nvmet
	rm -f \$CFG/ports/*/subsystems/* 2>/dev/null; rmdir \$CFG/ports/* 2>/dev/null
	for n in \$CFG/subsystems/*/namespaces/*; do [ -d \$n ] && echo 0 >\$n/enable && rmdir \$n; done 2>/dev/null
	rmdir \$CFG/subsystems/* 2>/dev/null
	modprobe -r nvmet-rdma nvmet null_blk 2>/dev/null; true" >/dev/null 2>&1
	return 0
}

# Memory-backed null_blk in the server guest, the backing device of the
# data tests: /dev/nullb0, 1 GiB (pages are allocated on first write).
# irqmode=0 completes each bio in its submitter's task, under the block
# layer's RCU read lock: our server then answers inline, in an atomic task
# context, which the checked kernel's DEBUG_ATOMIC_SLEEP watches.  The
# hostile and loopback tests keep the default (softirq completions, answered
# from a work item).
srv_nullb() { srv modprobe null_blk nr_devices=1 memory_backed=1 discard=1 gb=1 bs=512 irqmode=0 && srv test -b /dev/nullb0; }

# link_up <n>: brings link n of this (client) guest up again after a test
# took it down: its permanent neighbour entry (tools/guest/agent.sh) went
# with it, and its soft-RoCE device is made anew: after the netdev went down
# while connection-manager messages were being sent, rxe's CM stopped
# answering on that device (every later connect over it timed out, for the
# upstream C client as for ours) until the device was re-created.
link_up() {
	local mac
	mac=$(printf '52:54:00:99:%02x:02' "$1")
	ip link set "rnbd$1" up &&
		ip neigh replace "10.99.$1.2" dev "rnbd$1" nud permanent lladdr "$mac" &&
		ip -6 neigh replace "fd99:$1::2" dev "rnbd$1" nud permanent lladdr "$mac" &&
		rdma link delete "rxe$1" && rdma link add "rxe$1" type rxe netdev "rnbd$1"
}

# verify_while_link_down <dev> <size> <n>: fio_verify (randrw) of <size>
# over <dev>, with link n taken down 5 s into it; fails if fio does (or
# ended before the link went down).
verify_while_link_down() {
	local pid rc
	fio_verify "$1" "$2" randrw &
	pid=$!
	sleep 5
	kill -0 "$pid" 2>/dev/null || { ktap_print_msg "fio ended before the link went down"; wait "$pid"; return 1; }
	ktap_print_msg "link $3 down at $(date +%T)"
	ip link set "rnbd$3" down
	wait "$pid"
	rc=$?
	ktap_print_msg "fio ended at $(date +%T), rc $rc"
	return $rc
}

# The rnbd devices of this guest: none, how many, exactly n.
no_dev() { ! ls /sys/block | grep -q "^rnbd"; }
ndevs() { ls /sys/block | grep -c "^rnbd"; }
ndevs_is() { [ "$(ndevs)" = "$1" ]; }
# unmap_all <n>: "normal" unmap of every rnbd device, exactly n of them
# (not "nothing there to unmap"), and all gone.
unmap_all() {
	local d n=0
	udevadm settle
	for d in /sys/block/rnbd*/rnbd/unmap_device; do
		[ -e "$d" ] && { echo normal >"$d" || return 1; n=$((n + 1)); }
	done
	[ "$n" = "$1" ] || { ktap_print_msg "unmapped $n devices, expected $1"; return 1; }
	wait_for 30 no_dev
}

# wait_for <secs> <command...>: poll until the command succeeds.
wait_for() {
	local t=$1
	shift
	for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
	return 1
}

# fio on a device node that is not there creates a regular file in /dev
# and passes, and that file then keeps the device's node from appearing in
# every later test of the run: any --filename under /dev must be a block
# device.
fio() {
	local a
	for a in "$@"; do
		case $a in
		--filename=/dev/*)
			[ -b "${a#--filename=}" ] ||
				{ ktap_print_msg "fio: ${a#--filename=} is not a block device"; return 1; }
			;;
		esac
	done
	command fio "$@"
}

# fio write+verify of $2 over device $1 with block sizes from 512 B to 128 KiB
# ($3: fio's rw, randwrite by default).
fio_verify() {
	fio --name=verify --filename="$1" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw="${3:-randwrite}" --bsrange=512-128k --bs_unaligned=0 --size="$2" \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --verify_state_save=0 \
		--output=/tmp/fio-verify.log >/dev/null 2>&1 ||
		{ sed 's/^/# /' /tmp/fio-verify.log | tail -20; return 1; }
}

# ext4 on device $1: mkfs, mount, write a file, remount, compare checksums.
ext4_roundtrip() {
	local dev=$1 mnt sum1 sum2
	mnt=$(mktemp -d /tmp/rnbd-mnt.XXXX)
	mkfs.ext4 -q -F "$dev" &&
		mount "$dev" "$mnt" &&
		dd if=/dev/urandom of="$mnt/file" bs=1M count=16 status=none &&
		sum1=$(sha256sum <"$mnt/file") &&
		umount "$mnt" &&
		echo 3 >/proc/sys/vm/drop_caches &&
		mount "$dev" "$mnt" &&
		sum2=$(sha256sum <"$mnt/file") &&
		umount "$mnt" &&
		rmdir "$mnt" &&
		ktap_print_msg "ext4 file sha256 ${sum1%% *}" &&
		[ "$sum1" = "$sum2" ]
}
