#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Our client's device lifecycle against our server: 50 map/unmap cycles
# (session set up and torn down each time) with a read each time; "normal"
# unmap refused while the device is open, "force" unmap under running IO;
# the modules unload after the unmaps.
. "$(dirname "$0")/interop.sh"
test_begin clt_lifecycle 17
trap cleanup_data EXIT

CTL=/sys/class/rnbd-client/ctl/map_device
CYCLES=${CLT_CYCLES:-50}
map() { echo "sessname=life path=ip:$SRV_IP0 device_path=/dev/nullb0" >"$CTL"; }
gone() { ! [ -e /sys/block/rnbd0 ]; }
cycles() {
	local i
	for i in $(seq "$CYCLES"); do
		map || { ktap_print_msg "cycle $i: map failed"; return 1; }
		wait_for 30 test -b /dev/rnbd0 || { ktap_print_msg "cycle $i: no /dev/rnbd0"; return 1; }
		dd if=/dev/rnbd0 of=/dev/null bs=64k count=4 iflag=direct status=none ||
			{ ktap_print_msg "cycle $i: read failed"; return 1; }
		echo normal >/sys/block/rnbd0/rnbd/unmap_device || { ktap_print_msg "cycle $i: unmap failed"; return 1; }
		wait_for 30 gone || { ktap_print_msg "cycle $i: rnbd0 stayed"; return 1; }
	done
}
# (The directory exists while rnbd_server is loaded: a missing one is no proof.)
server_clean() { srv "[ -d /sys/class/rnbd-server/ctl/devices ] && ! ls /sys/class/rnbd-server/ctl/devices/ | grep -q ."; }
busy_unmap() { echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
force_unmap() { echo force >/sys/block/rnbd0/rnbd/unmap_device; }
fio_bg() {
	fio --name=bg --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --iodepth=16 --rw=randrw \
		--bs=4k --time_based --runtime=120 --output=/tmp/fio-bg.log >/dev/null 2>/tmp/fio-bg.err &
	FIO_PID=$!
	# Started is not open: under a debug kernel fio takes seconds to get
	# there.  Requests completing on the device show it is.
	wait_for 120 io_running
}
io_running() { [ "$(awk '{print $1 + $5}' /sys/block/rnbd0/stat)" -gt 200 ] && kill -0 "$FIO_PID"; }
fio_ended() { wait_for 60 eval "! kill -0 $FIO_PID 2>/dev/null"; }
# fio stopped on an IO error and on no other error: EIO (requests our
# client failed) or ENOSPC (a write after del_gendisk set the capacity to
# 0: blkdev_write_iter refuses it before it reaches a driver; seen here).
# Its status is collected here.
fio_saw_io_error() {
	local rc=0
	wait "$FIO_PID" || rc=$?
	ktap_print_msg "fio exit status $rc: $(grep -h -m2 -E 'error|err=' /tmp/fio-bg.err /tmp/fio-bg.log | tr '\n' ' ')"
	[ "$rc" != 0 ] || return 1
	grep -qhE 'io_u error.*(Input/output error|No space left on device)' /tmp/fio-bg.err /tmp/fio-bg.log || return 1
	! grep -h 'io_u error' /tmp/fio-bg.err /tmp/fio-bg.log |
		grep -vE 'Input/output error|No space left on device' | grep -q .
}

check "server: memory-backed null_blk" srv_nullb
check "server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load N"
check "client: our rnbd_client loaded" rust_clt_load
check "$CYCLES map/read/unmap cycles" cycles
check "the server has no mapping left" wait_for 30 server_clean
check "map for the IO test" map
check "/dev/rnbd0 appears" wait_for 30 test -b /dev/rnbd0
check "fio running on /dev/rnbd0" fio_bg
check "normal unmap refused while open: EBUSY" fails_with "Device or resource busy" busy_unmap
check "force unmap under IO" force_unmap
check "/dev/rnbd0 is gone" wait_for 30 gone
check "fio ended" fio_ended
check "fio stopped on IO errors (EIO, or ENOSPC once the disk is gone)" fio_saw_io_error
check "the server closed the mapping" wait_for 30 server_clean
check "client: modules unload after the unmaps" rust_clt_unload
check "server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
