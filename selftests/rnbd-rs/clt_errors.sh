#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Our client's map_device answers as upstream's: ENOENT for a device the
# server does not have, EEXIST for a second map of one device, EINVAL for
# malformed strings (one dmesg line each), EPROTONOSUPPORT for a path=
# without ip:/gid:, ENXIO for a new session without path=; a read-only
# mapping refuses writes; a second read-write mapping is refused by the
# server.  Against our server.
. "$(dirname "$0")/interop.sh"
test_begin clt_errors 32
trap cleanup_data EXIT

CTL=/sys/class/rnbd-client/ctl/map_device
map() { echo "$1" >"$CTL"; }
# map_says <errno text> <map_device string>: the write fails with that error.
map_says() { fails_with "$1" map "$2"; }
dev_of() { for d in /sys/block/rnbd*; do [ "$(cat "$d"/rnbd/access_mode)" = "$1" ] && echo "/dev/$(basename "$d")"; done; }
# A read-only disk refuses the write itself (blkdev_write_iter: EPERM).
write_fails() { is_blockdev "$1" && fails_with "Operation not permitted" dd if=/dev/zero of="$1" bs=4k count=1 oflag=direct status=none; }
reads_ok() { is_blockdev "$1" && dd if="$1" of=/dev/null bs=64k count=16 iflag=direct status=none; }
logged() { logged_in clt "$1"; }
P="path=ip:$SRV_IP0"

check "server: memory-backed null_blk" srv_nullb
check "server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load N"
check "client: our rnbd_client loaded" rust_clt_load
check "map_device shows its usage" grep -q "^Usage: echo" "$CTL"
check "missing device: ENOENT" map_says "No such file or directory" "sessname=e1 $P device_path=/dev/nullb7"
check "nothing mapped after ENOENT" no_dev
check "unknown token: EINVAL" map_says "Invalid argument" "sessname=e1 $P device_path=/dev/nullb0 colour=blue"
check "... with one clear dmesg line" logged "map_device: Unknown parameter or missing value 'colour=blue'"
check "missing sessname: EINVAL" map_says "Invalid argument" "$P device_path=/dev/nullb0"
check "... logged" logged "map_device: Parameters missing"
check "bad access_mode: EINVAL" map_says "Invalid argument" "sessname=e1 $P device_path=/dev/nullb0 access_mode=rx"
check "bad path: EINVAL" map_says "Invalid argument" "sessname=e1 path=ip:10.99.0 device_path=/dev/nullb0"
check "path without ip:/gid:: EPROTONOSUPPORT" map_says "Protocol not supported" "sessname=e1 path=10.99.0.2 device_path=/dev/nullb0"
check "bad port: EINVAL" map_says "Invalid argument" "sessname=e1 $P device_path=/dev/nullb0 dest_port=70000"
check "empty value: EINVAL" map_says "Invalid argument" "sessname= $P device_path=/dev/nullb0"
check "new session without a path: ENXIO" map_says "No such device or address" "sessname=e9 device_path=/dev/nullb0"
check "... logged" logged "Session e9 not found, and path parameter not given"
check "nothing mapped after the refusals" no_dev
check "rw map" map "sessname=e2 $P device_path=/dev/nullb0 access_mode=rw"
check "the same map again: EEXIST" map_says "File exists" "sessname=e2 $P device_path=/dev/nullb0 access_mode=rw"
# The server refuses the open (EPERM), the client passes its errno on.
check "a second rw mapping from another session: EPERM" map_says "Operation not permitted" "sessname=e3 $P device_path=/dev/nullb0 access_mode=rw"
check "a ro mapping from another session" map "sessname=e4 $P device_path=/dev/nullb0 access_mode=ro"
check "two devices mapped" wait_for 30 ndevs_is 2
ro_dev=$(dev_of ro) rw_dev=$(dev_of rw)
check "one ro and one rw device" eval 'is_blockdev "$ro_dev" && is_blockdev "$rw_dev"'
check "writes through the ro mapping: EPERM" write_fails "$ro_dev"
check "reads through the ro mapping work" reads_ok "$ro_dev"
check "writes through the rw mapping work" dd if=/dev/urandom of="$rw_dev" bs=4k count=4 oflag=direct status=none
bad_unmap() { echo sometimes >"/sys/block/$(basename "$rw_dev")/rnbd/unmap_device"; }
check "unmap_device refuses other values: EINVAL" fails_with "Invalid argument" bad_unmap
check "unmap both" unmap_all 2
check "client: modules unload" rust_clt_unload
check "server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
