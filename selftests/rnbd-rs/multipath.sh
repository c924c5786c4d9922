#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Multipath, ours on both sides: a session over both links (two path=
# tokens) carries IO on both; when link 1 goes down under a verifying fio,
# the requests in flight on its path go to the other path (failover) and
# fio sees neither an error nor a mismatch.
. "$(dirname "$0")/lib.sh"

# Bytes fio writes and verifies while link 1 goes down.
MP_FIO_SIZE=${MP_FIO_SIZE:-192M}

test_begin multipath 14
trap 'ip link set rnbd1 up 2>/dev/null; cleanup_data' EXIT

clt_load() { modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null; modprobe rnbd_client; }
check "multipath: server: null_blk" srv_nullb
check "multipath: server: our rnbd_server loaded" srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rnbd_server"
check "multipath: client: our rnbd_client loaded" clt_load
map() { echo "sessname=mp path=ip:$SRV_IP0 path=ip:$SRV_IP1 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device; }
check "multipath: map_device with two paths" map
check "multipath: /dev/rnbd0 appears" wait_for 30 test -b /dev/rnbd0

# Packets a soft-RoCE device of this guest sent.
sent() { rdma statistic show link "$1/1" | awk '{for (i = 3; i < NF; i++) if ($i == "sent_pkts") print $(i + 1)}'; }
both_links_carry_io() {
	local a0 a1 b0 b1
	a0=$(sent rxe0) a1=$(sent rxe1)
	fio --name=mp --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --rw=randread --bs=4k \
		--iodepth=32 --numjobs=2 --time_based --runtime=5 --group_reporting >/dev/null || return 1
	b0=$(sent rxe0) b1=$(sent rxe1)
	ktap_print_msg "packets sent during fio: rxe0 $((b0 - a0)), rxe1 $((b1 - a1))"
	# 5 s of 4 KiB reads at QD 64: thousands each if min-inflight spreads
	# them; an idle path sends only heartbeats (one per 5 s).
	[ $((b0 - a0)) -gt 500 ] && [ $((b1 - a1)) -gt 500 ]
}
check "multipath: min-inflight spreads IO over both links" both_links_carry_io

# The permanent neighbour entry (tools/guest/agent.sh) goes with the link.
link1_up() {
	ip link set rnbd1 up &&
		ip neigh replace "$SRV_IP1" dev rnbd1 nud permanent lladdr 52:54:00:99:01:02
}
failover_under_fio() {
	local pid rc
	fio_verify /dev/rnbd0 "$MP_FIO_SIZE" randrw &
	pid=$!
	sleep 8
	kill -0 "$pid" 2>/dev/null || { ktap_print_msg "fio ended before the link went down"; wait "$pid"; return 1; }
	ktap_print_msg "link 1 down at $(date +%T)"
	ip link set rnbd1 down
	wait "$pid"
	rc=$?
	ktap_print_msg "fio ended at $(date +%T), rc $rc"
	return $rc
}
check "failover: fio randrw crc32c verify over $MP_FIO_SIZE while link 1 goes down" failover_under_fio
check "failover: the path on link 1 failed over its requests" logged_in clt "failed over"
state_open() { [ "$(cat /sys/block/rnbd0/rnbd/state)" = open ]; }
check "failover: device state stays open" state_open
reads() { dd if=/dev/rnbd0 of=/dev/null bs=1M count=16 iflag=direct status=none; }
check "failover: reads still work over link 0" reads
check "multipath: link 1 up again" link1_up
unmap() { udevadm settle; echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
check "multipath: unmap_device normal" wait_for 30 unmap
check "multipath: client modules unload" modprobe -r rnbd_client rtrs_client rtrs_core
check "multipath: server modules unload" srv "modprobe -r rnbd_server rtrs_server rtrs_core && modprobe -r null_blk"
test_end
