#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Multipath, ours on both sides: a session over both links (two path=
# tokens) carries IO on both; when link 1 goes down under a verifying fio,
# the requests in flight on its path go to the other path (failover) and
# fio sees neither an error nor a mismatch.  A failed path stays listed,
# disconnected, and reconnects on its own (31 s later, as upstream's RNBD)
# or when told to; with no path left the device is closed, and the first
# path back remaps it.
. "$(dirname "$0")/lib.sh"

# Bytes fio writes and verifies while link 1 goes down.
MP_FIO_SIZE=${MP_FIO_SIZE:-192M}

test_begin multipath 43
link1_up() { link_up 1; }
trap 'link1_up 2>/dev/null; cleanup_data' EXIT

clt_load() { modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null; modprobe rnbd_client; }
check "multipath: server: null_blk" srv_nullb
check "multipath: server: our rnbd_server loaded" srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rnbd_server"
check "multipath: client: our rnbd_client loaded" clt_load
# Link 0's path from a given source address (`src@dst`), link 1's without.
map() { echo "sessname=mp path=ip:$CLT_IP0@ip:$SRV_IP0 path=ip:$SRV_IP1 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device; }
check "multipath: map_device with two paths" map
check "multipath: /dev/rnbd0 appears" wait_for 30 test -b /dev/rnbd0

C=/sys/class/rtrs-client/mp
P0=$C/paths/ip:$CLT_IP0@ip:$SRV_IP0
P1=$C/paths/ip:$CLT_IP1@ip:$SRV_IP1
is() { # <file> <expected content>
	local got
	got=$(cat "$1") || return 1
	[ "$got" = "$2" ] || { ktap_print_msg "$1: '$got', expected '$2'"; return 1; }
}
sess_files() {
	is $C/mpath_policy "min-inflight (MI: 1)" && is $C/max_reconnect_attempts -1 &&
		is $C/add_path "$(printf 'Usage: echo [<source addr>@]<destination addr> > add_path\n\n*addr ::= [ ip:<ipv4|ipv6> | gid:<gid> ]')" &&
		[ "$(ls $C/paths | tr '\n' ' ')" = "ip:$CLT_IP0@ip:$SRV_IP0 ip:$CLT_IP1@ip:$SRV_IP1 " ]
}
check "rtrs-sysfs: session files and one directory per path" sess_files
path_files() { # <dir> <link>
	is "$1/state" connected && is "$1/hca_name" "rxe$2" && is "$1/hca_port" 1 &&
		is "$1/src_addr" "ip:10.99.$2.1" && is "$1/dst_addr" "ip:10.99.$2.2" &&
		is "$1/reconnect" "Usage: echo 1 > reconnect" && is "$1/disconnect" "Usage: echo 1 > disconnect" &&
		is "$1/remove_path" "Usage: echo 1 > remove_path" && grep -qE '^[0-9]+ ns$' "$1/cur_latency" &&
		is "$1/stats/reconnects" "0 0" && is "$1/stats/reset_all" "echo 1 to reset all statistics" &&
		grep -qE '^([0-9]+ )+$' "$1/stats/cpu_migration_from" &&
		grep -qE '^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ 0$' "$1/stats/rdma"
}
check "rtrs-sysfs: files of the path on link 0" path_files $P0 0
check "rtrs-sysfs: files of the path on link 1" path_files $P1 1
S=/sys/class/rtrs-server/mp/paths
srv_files() { # <link>
	local d=$S/ip:10.99.$1.1@ip:10.99.$1.2
	srv "[ \"\$(cat $d/hca_name)\" = rxe$1 ] && [ \"\$(cat $d/hca_port)\" = 1 ] &&
		[ \"\$(cat $d/src_addr)\" = ip:10.99.$1.1 ] && [ \"\$(cat $d/dst_addr)\" = ip:10.99.$1.2 ] &&
		[ \"\$(cat $d/disconnect)\" = 'Usage: echo 1 > disconnect' ] &&
		grep -qE '^[0-9]+ [0-9]+ [0-9]+ [0-9]+\$' $d/stats/rdma &&
		[ \"\$(ls $S | wc -l)\" = 2 ]" || { ktap_print_msg "server: $(srv "ls -R /sys/class/rtrs-server/; cat $d/*" 2>&1 | tr '\n' ' ')"; return 1; }
}
check "rtrs-sysfs: server files of the path on link 0" srv_files 0
check "rtrs-sysfs: server files of the path on link 1" srv_files 1
policy_files() {
	echo rr >$C/mpath_policy && is $C/mpath_policy "round-robin (RR: 0)" &&
		echo 2 >$C/mpath_policy && is $C/mpath_policy "min-latency (ML: 2)" &&
		echo MIN-INFLIGHT >$C/mpath_policy && is $C/mpath_policy "min-inflight (MI: 1)" &&
		fails_with "Invalid argument" bash -c "echo 3 >$C/mpath_policy" &&
		fails_with "Invalid argument" bash -c "echo rrr >$C/mpath_policy" &&
		fails_with "Invalid argument" bash -c "echo 10000 >$C/max_reconnect_attempts" &&
		fails_with "Numerical result out of range" bash -c "echo 99999999999 >$C/max_reconnect_attempts" &&
		echo 5 >$C/max_reconnect_attempts && is $C/max_reconnect_attempts 5 &&
		fails_with "Invalid argument" bash -c "echo 0 >$P0/stats/reset_all" &&
		fails_with "Invalid argument" bash -c "echo 2 >$P0/disconnect"
}
check "policy: mpath_policy and max_reconnect_attempts take upstream's spellings and refuse others" policy_files

# Reads each path carried (stats/rdma, first field).
reads_of() { cut -d' ' -f1 "$1/stats/rdma"; }
qd1_reads() { fio --name=mp --cpus_allowed=0 --filename=/dev/rnbd0 --direct=1 --ioengine=psync --rw=randread --bs=4k \
	--number_ios=400 --size=64M >/dev/null; }
# policy_spread <policy> <check on the two counts>
policy_spread() {
	local a b
	echo "$1" >$C/mpath_policy && echo 1 >$P0/stats/reset_all && echo 1 >$P1/stats/reset_all || return 1
	qd1_reads || return 1
	a=$(reads_of $P0) b=$(reads_of $P1)
	ktap_print_msg "$1 at QD1: $a reads on link 0, $b on link 1"
	eval "$2"
}
# Round-robin alternates (fio on one CPU: each CPU has its own turn);
# min-inflight at QD1 always finds both idle and
# takes the first.
check "policy: round-robin alternates the paths" policy_spread round-robin '[ $((a - b)) -le 40 ] && [ $((b - a)) -le 40 ] && [ $((a + b)) -ge 400 ]'
check "policy: min-inflight at QD1 keeps to the first path" policy_spread min-inflight '[ "$a" -ge 400 ] && [ "$b" -le 2 ]'
both_links_carry_io() {
	local a b
	echo 1 >$P0/stats/reset_all && echo 1 >$P1/stats/reset_all || return 1
	fio --name=mp --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --rw=randread --bs=4k \
		--iodepth=32 --numjobs=2 --time_based --runtime=5 --group_reporting >/dev/null || return 1
	a=$(reads_of $P0) b=$(reads_of $P1)
	ktap_print_msg "min-inflight at QD64: $a reads on link 0, $b on link 1"
	# Both busy: each path gets a share (not necessarily half).
	[ "$a" -gt 100 ] && [ "$b" -gt 100 ]
}
check "multipath: min-inflight spreads IO over both paths under load" both_links_carry_io

# Runs "$@" while a 10 s fio randread is running; fails if either fails.
under_io() {
	local pid rc
	fio --name=mpio --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --rw=randread --bs=4k \
		--iodepth=16 --time_based --runtime=10 --output=/tmp/mpio.log >/dev/null 2>&1 &
	pid=$!
	sleep 3
	"$@"
	rc=$?
	wait "$pid" || { ktap_print_msg "fio failed: $(tail -5 /tmp/mpio.log | tr '\n' ' ')"; return 1; }
	return $rc
}
npaths_is() { [ "$(ls $C/paths | wc -l)" = "$1" ]; }
state_is() { [ "$(cat "$1/state")" = "$2" ]; }
disc_p1() { echo 1 >$P1/disconnect && is $P1/state disconnected && npaths_is 2; }
check "reconnect: disconnect of a path under IO leaves it listed, disconnected" under_io disc_p1
reconn_p1() { echo 1 >$P1/reconnect && is $P1/state connected && is $P1/stats/reconnects "1 0"; }
check "reconnect: reconnect of the disconnected path under IO" under_io reconn_p1
remove_p1() { echo 1 >$P1/remove_path && wait_for 10 test ! -e $P1 && npaths_is 1; }
check "multipath: remove_path under IO" under_io remove_p1
# The server may still hold the old path a moment (EEXIST): retry.
add_p1() { wait_for 20 sh -c "echo ip:$SRV_IP1 >$C/add_path" && npaths_is 2 && is $P1/state connected; }
check "multipath: add_path under IO" under_io add_p1
# A third path, over IPv6, in this IPv4 session: our server takes it
# (upstream's refuses a path of another family with EEXIST), IO uses it,
# and it goes again.
P6=$C/paths/ip:$CLT_IP6_1@ip:$SRV_IP6_1
add_v6() {
	echo "ip:$SRV_IP6_1" >$C/add_path && npaths_is 3 && is $P6/state connected &&
		is $P6/dst_addr "ip:$SRV_IP6_1" && srv test -d "$S/ip:$CLT_IP6_1@ip:$SRV_IP6_1" &&
		fio --name=v6 --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --rw=randread --bs=4k \
			--iodepth=32 --time_based --runtime=3 --output=/tmp/mpio6.log >/dev/null 2>&1 &&
		[ "$(cut -d' ' -f1 $P6/stats/rdma)" -gt 0 ] &&
		echo 1 >$P6/remove_path && wait_for 10 test ! -e $P6 && npaths_is 2
}
check "multipath: add_path of an IPv6 path under IO, IO on it, remove_path" under_io add_v6
srv_disconnect_p1() {
	srv "echo 1 >$S/ip:$CLT_IP1@ip:$SRV_IP1/disconnect" && wait_for 30 state_is $P1 disconnected && npaths_is 2
}
check "multipath: server-side disconnect of a path under IO" under_io srv_disconnect_p1
# auto_reconnect <what>: the path on link 1 connected again within 120 s.
auto_reconnect() {
	local t0
	t0=$(date +%s)
	wait_for 120 state_is $P1 connected || return 1
	ktap_print_msg "the path on link 1 reconnected on its own $(($(date +%s) - t0)) s after $1"
}
check "reconnect: the path the server disconnected reconnects on its own" auto_reconnect "the server's disconnect"

failover_under_fio() { echo 1 >$P0/stats/reset_all && verify_while_link_down /dev/rnbd0 "$MP_FIO_SIZE" 1; }
check "failover: fio randrw crc32c verify over $MP_FIO_SIZE while link 1 goes down" failover_under_fio
check "failover: the path on link 1 failed over its requests" logged_in clt "failed over"
failovers_counted() {
	local n t
	n=$(cut -d' ' -f6 $P0/stats/rdma)
	# How long from the link's going down to the failover (kernel log times).
	t=$(log_since_mark clt | grep -E "rxe1: set down|failed over" | tail -2 | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' | tr '\n' ' ')
	ktap_print_msg "failovers onto link 0: $n; link down at / requests failed over at (s): $t"
	[ "$n" -gt 0 ]
}
check "failover: counted in the surviving path's stats/rdma" failovers_counted
check "failover: the failed path stays listed, disconnected" state_is $P1 disconnected
state_open() { [ "$(cat /sys/block/rnbd0/rnbd/state)" = open ]; }
check "failover: device state stays open" state_open
reads() { dd if=/dev/rnbd0 of=/dev/null bs=1M count=16 iflag=direct status=none; }
check "failover: reads still work over link 0" reads
check "multipath: link 1 up again" link1_up
check "reconnect: the path on link 1 reconnects on its own after the link came back" auto_reconnect "the link came up"
# The link flaps under IO: small verifying fio runs follow each other while
# link 1 goes down, comes back and its path reconnects on its own, twice;
# every run must pass, and the path counts both reconnects.
flap_under_fio() {
	local flapper r0 r1 rc=0 runs=0
	r0=$(cut -d' ' -f1 $P1/stats/reconnects)
	(
		for i in 1 2; do
			sleep 3
			ktap_print_msg "flap $i: link 1 down at $(date +%T)"
			ip link set rnbd1 down
			sleep 5
			link_up 1 && wait_for 120 state_is $P1 connected || exit 1
			ktap_print_msg "flap $i: path on link 1 connected again at $(date +%T)"
		done
	) &
	flapper=$!
	while kill -0 $flapper 2>/dev/null; do
		fio_verify /dev/rnbd0 32M randrw || { rc=1; break; }
		runs=$((runs + 1))
	done
	wait $flapper || rc=1
	r1=$(cut -d' ' -f1 $P1/stats/reconnects)
	ktap_print_msg "$runs fio verify runs passed; reconnects of the path on link 1: $r0 -> $r1"
	[ $rc = 0 ] && [ "$r1" = $((r0 + 2)) ]
}
check "failover: fio verify runs pass while link 1 goes down and up twice, two reconnects counted" flap_under_fio
all_down() {
	echo 1 >$P0/disconnect && echo 1 >$P1/disconnect && is /sys/block/rnbd0/rnbd/state closed
}
udevadm monitor --kernel --subsystem-match=block >/tmp/mp-uevents.log 2>&1 &
UEV_PID=$!
sleep 1
check "reconnect: with both paths disconnected the device is closed" all_down
# A read while no path is connected waits (fast_io_fail_tmo, 90 s by
# default) and completes once a path is back and the device remapped.
queued_read() {
	local pid t0
	dd if=/dev/rnbd0 of=/dev/null bs=4k count=1 iflag=direct status=none &
	pid=$!
	sleep 3
	kill -0 $pid 2>/dev/null || { ktap_print_msg "the read did not wait"; wait $pid; return 1; }
	t0=$(date +%s)
	echo 1 >$P0/reconnect && wait $pid || return 1
	ktap_print_msg "the queued read completed $(($(date +%s) - t0)) s after the reconnect was written"
}
check "queue: a read without a path waits, and completes after the reconnect" queued_read
# udevadm monitor: "KERNEL[t] offline /devices/virtual/block/rnbd0 (block)".
uevents() {
	sleep 1
	kill $UEV_PID
	grep -qE '^KERNEL.* offline +/devices/virtual/block/rnbd0 ' /tmp/mp-uevents.log &&
		grep -qE '^KERNEL.* online +/devices/virtual/block/rnbd0 ' /tmp/mp-uevents.log ||
		{ ktap_print_msg "uevents seen: $(grep -c KERNEL /tmp/mp-uevents.log): $(grep rnbd0 /tmp/mp-uevents.log | tr '\n' ';')"; return 1; }
}
check "uevents: OFFLINE when the session lost its last path, ONLINE after the remap (as upstream)" uevents
check "reconnect: both paths disconnected again" all_down
eio_after_tmo() {
	local t0 t tmo
	tmo=$(cat /sys/module/rnbd_client/parameters/fast_io_fail_tmo)
	echo 2 >/sys/module/rnbd_client/parameters/fast_io_fail_tmo || return 1
	sleep 3
	t0=$(date +%s%N)
	fails_with "Input/output error" dd if=/dev/rnbd0 of=/dev/null bs=4k count=1 iflag=direct || return 1
	t=$((($(date +%s%N) - t0) / 1000000))
	ktap_print_msg "EIO after $t ms (fast_io_fail_tmo=2, 3 s after the disconnect)"
	echo "$tmo" >/sys/module/rnbd_client/parameters/fast_io_fail_tmo && [ "$t" -lt 1000 ]
}
check "queue: past fast_io_fail_tmo, IO fails at once with EIO" eio_after_tmo
check "queue: fast_io_fail_tmo refuses -2 and 86401" \
	eval 'fails_with "Invalid argument" bash -c "echo -2 >/sys/module/rnbd_client/parameters/fast_io_fail_tmo" &&
		fails_with "Invalid argument" bash -c "echo 86401 >/sys/module/rnbd_client/parameters/fast_io_fail_tmo"'
back_up() {
	local t0
	t0=$(date +%s)
	echo 1 >$P0/reconnect && wait_for 30 state_open || return 1
	ktap_print_msg "device open again $(($(date +%s) - t0)) s after the reconnect was written"
}
check "reconnect: the first path back remaps the device (state open)" back_up
check "reconnect: reads work after the remap" reads
check "reconnect: remap_device of an open device fails with EALREADY" \
	fails_with "Operation already in progress" bash -c "echo 1 >/sys/block/rnbd0/rnbd/remap_device"
unmap() { udevadm settle; echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
check "multipath: unmap_device normal" wait_for 30 unmap
check "multipath: client modules unload" modprobe -r rnbd_client rtrs_client rtrs_core
check "multipath: server modules unload" srv "modprobe -r rnbd_server rtrs_server rtrs_core && modprobe -r null_blk"
test_end
