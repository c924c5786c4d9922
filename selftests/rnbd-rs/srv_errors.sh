#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Our server refuses what it must, seen from the upstream C client: a device
# that does not exist, a path with "..", a second read-write mapping of one
# device; a read-only mapping cannot write; the refused maps leave nothing
# behind and the session keeps serving.
. "$(dirname "$0")/interop.sh"
test_begin srv_errors 25
trap cleanup_data EXIT

map() { # <sessname> <device_path> <access_mode>
	echo "sessname=$1 path=ip:$SRV_IP0 device_path=$2 access_mode=$3" >/sys/class/rnbd-client/ctl/map_device
}
# A read-only disk refuses the write itself (blkdev_write_iter: EPERM).
ro_write_fails() { is_blockdev "$1" && fails_with "Operation not permitted" dd if=/dev/zero of="$1" bs=4k count=1 oflag=direct status=none; }
reads_ok() { is_blockdev "$1" && dd if="$1" of=/dev/null bs=64k count=16 iflag=direct status=none; }
# The C client passes the server's errno of a refused open to map_device.

check "server: memory-backed null_blk" srv_nullb
check "server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load N"
check "client: C rnbd_client loaded" c_rtrs_load client
check "map of a missing device: ENOENT" fails_with "No such file or directory" map e1 /dev/nullb7 rw
check "map of a path with ..: EINVAL" fails_with "Invalid argument" map e2 /dev/../dev/nullb0 rw
check "nothing was mapped" no_dev
check "first rw mapping succeeds" map e3 /dev/nullb0 rw
check "a second rw mapping from another session: EPERM" fails_with "Operation not permitted" map e4 /dev/nullb0 rw
check "a ro mapping beside it succeeds" map e5 /dev/nullb0 ro
check "two devices mapped" wait_for 30 ndevs_is 2
dev_of() { for d in /sys/block/rnbd*; do [ "$(cat "$d"/rnbd/access_mode)" = "$1" ] && echo "/dev/$(basename "$d")"; done; }
ro_dev=$(dev_of ro) rw_dev=$(dev_of rw)
check "one ro and one rw device" eval 'is_blockdev "$ro_dev" && is_blockdev "$rw_dev"'
check "writes through the ro mapping: EPERM" ro_write_fails "$ro_dev"
check "reads through the ro mapping work" reads_ok "$ro_dev"
check "server logged the refused rw mapping" logged_in srv "with RW permissions failed"
sdir=/sys/class/rnbd-server/ctl/devices/nullb0/sessions
check "server sysfs lists both sessions" srv "test -d $sdir/e3 && test -d $sdir/e5"
force_close() { srv "echo $1 >$sdir/e5/force_close"; }
check "force_close rejects other values: EINVAL" fails_with "Invalid argument" force_close 2
check "... and the mapping is still there" srv test -d "$sdir/e5"
check "force_close of the ro mapping" srv "echo 1 >$sdir/e5/force_close"
check "its sysfs directory goes" srv "for i in \$(seq 50); do test -d $sdir/e5 || exit 0; sleep 0.2; done; exit 1"
check "reads through the force-closed mapping: EIO" fails_with "Input/output error" reads_ok "$ro_dev"
check "the rw mapping still works" reads_ok "$rw_dev"
check "unmap all" unmap_all 2
check "client: C modules unload" c_rtrs_unload client
check "server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
