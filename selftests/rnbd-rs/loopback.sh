#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# One kernel, both sides: what a new user tries first.  Our rnbd_server and
# rnbd_client run in the client guest alone, over one rxe device on a dummy
# netdev (rxe loops a packet for its own address back inside the device).
# Maps a memory-backed null_blk and an unconfigured loop device (0 sectors:
# it must map, as upstream's does), fio verifies, unmaps, then 100
# map/unmap cycles, counting the maps from the kernel log, and unloads.
# The server guest only has its kernel log checked (test_begin/test_end).
. "$(dirname "$0")/lib.sh"

LO_IP=10.99.9.1
LO_NET=rnbdlo
LO_RXE=rxelo
CYCLES=${LOOPBACK_CYCLES:-100}
CTL=/sys/class/rnbd-client/ctl/map_device

test_begin loopback 25
loopback_cleanup() {
	local d
	for d in /sys/block/rnbd*/rnbd/unmap_device; do
		[ -e "$d" ] && echo force >"$d" 2>/dev/null
	done
	modprobe -r rnbd_client rtrs_client rnbd_server rtrs_server rtrs_core 2>/dev/null
	modprobe -r null_blk 2>/dev/null
	rdma link delete "$LO_RXE" 2>/dev/null
	ip link delete "$LO_NET" 2>/dev/null
	return 0
}
trap loopback_cleanup EXIT

link_up() {
	modprobe dummy numdummies=0 &&
		ip link add "$LO_NET" type dummy &&
		ip addr add "$LO_IP/32" dev "$LO_NET" &&
		ip link set "$LO_NET" up &&
		rdma link add "$LO_RXE" type rxe netdev "$LO_NET"
}
loop_dev() { # an unconfigured loop device: exists, 0 bytes
	local l
	l=$(losetup -f) && [ -b "$l" ] && [ "$(blockdev --getsize64 "$l")" = 0 ] && echo "$l"
}
both_loaded() {
	modprobe -r rnbd_client rtrs_client rnbd_server rtrs_server rtrs_core 2>/dev/null
	modprobe rnbd_server && modprobe rnbd_client && loaded rnbd_server && loaded rnbd_client
}
map() { echo "sessname=$1 path=ip:$LO_IP device_path=$2" >"$CTL"; }
# The rnbd device of a session ("" when there is none).
dev_of() { local d; for d in /sys/block/rnbd*; do [ "$(cat "$d/rnbd/session" 2>/dev/null)" = "$1" ] && echo "/dev/${d##*/}"; done; }
has_dev() { local d; d=$(dev_of "$1"); [ -n "$d" ] && [ -b "$d" ]; }
size_is() { same_number "$(blockdev --getsize64 "$(dev_of "$1")")" "$2"; }
no_srv_dev() { [ -d /sys/class/rnbd-server/ctl/devices ] && ! ls /sys/class/rnbd-server/ctl/devices | grep -q .; }
unmap() { # <session>
	local d
	d=$(dev_of "$1")
	[ -n "$d" ] || return 1
	udevadm settle
	echo normal >"/sys/block/${d#/dev/}/rnbd/unmap_device"
}
# Writes the mark, then the cycles; the maps are counted from the log
# after it.  Stops at the first failure.
cycles() {
	local i
	CYCLE_MARK="rnbd-rs-selftest: loopback cycles $(date +%s%N)"
	echo "$CYCLE_MARK" >/dev/kmsg
	for i in $(seq "$CYCLES"); do
		map cyc /dev/nullb0 || { ktap_print_msg "cycle $i: map failed"; return 1; }
		unmap cyc || { ktap_print_msg "cycle $i: unmap failed"; return 1; }
		wait_for 30 no_dev || { ktap_print_msg "cycle $i: the device stayed"; return 1; }
	done
}
maps_logged() {
	local n
	n=$(log_after clt "$CYCLE_MARK" | grep -c "map_device: Device mapped as") || return 1
	ktap_print_msg "successful maps in the kernel log: $n"
	[ "$n" = "$CYCLES" ]
}

loopback_cleanup # what a killed earlier run may have left
check "loopback: rxe on a dummy netdev ($LO_RXE on $LO_NET, $LO_IP)" link_up
check "loopback: memory-backed null_blk" modprobe null_blk nr_devices=1 memory_backed=1 discard=1 gb=1 bs=512
LOOP=$(loop_dev)
check "loopback: an unconfigured loop device (0 bytes)" is_blockdev "$LOOP"
check "loopback: our rnbd_server and rnbd_client loaded in one kernel" both_loaded
check "loopback: map nullb0" map data /dev/nullb0
check "loopback: its device appears" wait_for 30 has_dev data
check "loopback: with nullb0's size" size_is data "$(blockdev --getsize64 /dev/nullb0)"
check "loopback: fio randrw 512B-128KiB crc32c verify over 64 MiB" fio_verify "$(dev_of data)" 64M randrw
check "loopback: map the unconfigured loop device" map empty "$LOOP"
check "loopback: its device appears" wait_for 30 has_dev empty
check "loopback: with 0 sectors" size_is empty 0
check "loopback: unmap the loop device" unmap empty
check "loopback: unmap nullb0" unmap data
check "loopback: both devices gone" wait_for 30 no_dev
check "loopback: the server has no device left" wait_for 30 no_srv_dev
check "loopback: $CYCLES map/unmap cycles" cycles
check "loopback: $CYCLES successful maps in the kernel log" maps_logged
check "loopback: the server has no device left after the cycles" wait_for 30 no_srv_dev
check "loopback: rnbd_client, rtrs_client unload" modprobe -r rnbd_client rtrs_client
check "loopback: rnbd_server, rtrs_server, rtrs_core unload" modprobe -r rnbd_server rtrs_server rtrs_core
check "loopback: nothing of ours left loaded" eval '! loaded rtrs_core && ! loaded rnbd_server && ! loaded rnbd_client'
check "loopback: null_blk unloads (no reference left)" modprobe -r null_blk
check "loopback: rxe device removed" rdma link delete "$LO_RXE"
check "loopback: dummy netdev removed" ip link delete "$LO_NET"
test_end
