#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Permits shared by the devices of a session, fewer than devices x CPUs x
# queue depth: the server allows 4 requests in flight per session
# (sess_queue_depth=4), two devices of one session each get 16-deep fio
# verify jobs at once.  Both finish and verify (upstream documents a hang
# when permits run out like this).
. "$(dirname "$0")/interop.sh"
test_begin clt_permits 12
trap cleanup_data EXIT

two_nullb() { srv modprobe null_blk nr_devices=2 memory_backed=1 gb=1 bs=512 && srv test -b /dev/nullb1; }
srv_small() { srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rtrs_server sess_queue_depth=4 && modprobe rnbd_server"; }
map() { echo "sessname=perm path=ip:$SRV_IP0 device_path=$1" >/sys/class/rnbd-client/ctl/map_device; }
both_verify() {
	local rc=0
	fio --name=a --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 \
		--rw=randwrite --bs=4k --size=2M --offset_increment=4M --verify=crc32c --verify_fatal=1 --randrepeat=0 \
		--verify_state_save=0 --output=/tmp/fio-a.log >/dev/null 2>&1 &
	local a=$!
	fio --name=b --filename=/dev/rnbd1 --direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 \
		--rw=randwrite --bs=4k --size=2M --offset_increment=4M --verify=crc32c --verify_fatal=1 --randrepeat=0 \
		--verify_state_save=0 --output=/tmp/fio-b.log >/dev/null 2>&1 &
	local b=$!
	wait $a || { rc=1; sed 's/^/# /' /tmp/fio-a.log | tail -5; }
	wait $b || { rc=1; sed 's/^/# /' /tmp/fio-b.log | tail -5; }
	return $rc
}
unmap_both() {
	udevadm settle
	echo normal >/sys/block/rnbd1/rnbd/unmap_device && echo normal >/sys/block/rnbd0/rnbd/unmap_device
}
gone() { ! ls /sys/block | grep -q "^rnbd"; }

check "server: two memory-backed null_blk devices" two_nullb
check "server: our rnbd_server, sess_queue_depth=4" srv_small
check "client: our rnbd_client loaded" rust_clt_load
check "map nullb0" map /dev/nullb0
check "map nullb1 on the same session" map /dev/nullb1
check "both devices appear" wait_for 30 test -b /dev/rnbd1
check "4 permits, two devices x 2 jobs (own ranges) x iodepth 16: both fio verify" timeout 600 bash -c "$(declare -f both_verify); both_verify"
check "unmap both" unmap_both
check "devices gone" wait_for 30 gone
check "client: modules unload" rust_clt_unload
check "server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
