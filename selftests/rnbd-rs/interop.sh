#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# One cell of the interop matrix, sourced by the interop_<clt>_<srv>_<Y|N>.sh
# tests: a client (ours or upstream C) maps /dev/nullb0 of a server (ours or
# upstream C) whose RTRS runs with always_invalidate=Y or N, then fio
# verifies, ext4 round-trips a file, discard and write-zeroes read back as
# zeroes, and the device unmaps.
#
# interop_cell <rust|c> <rust|c> <Y|N>
. "$(dirname "$0")/lib.sh"

# Bytes fio writes and verifies (the issue asks for at least 256 MiB).
INTEROP_FIO_SIZE=${INTEROP_FIO_SIZE:-256M}

rust_srv_load() { # <Y|N>
	modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null
	modprobe rtrs_server always_invalidate="$1" && modprobe rnbd_server
}
rust_srv_unload() { modprobe -r rnbd_server rtrs_server rtrs_core; }
rust_clt_load() { modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null; modprobe rnbd_client; }
rust_clt_unload() { modprobe -r rnbd_client rtrs_client rtrs_core; }

# Zeroes read back from $1 over $2 bytes at $3.
reads_zero() { cmp -s -n "$2" <(dd if="$1" bs=64k iflag=skip_bytes,count_bytes skip="$3" count="$2" status=none) /dev/zero; }
fill() { dd if=/dev/urandom of="$1" bs=64k seek="$3" count="$2" oflag=direct,seek_bytes iflag=count_bytes status=none; }
discard_zeroes() { fill "$1" 1048576 4194304 && blkdiscard -f -o 4194304 -l 1048576 "$1" && reads_zero "$1" 1048576 4194304; }
wzero_zeroes() { fill "$1" 1048576 8388608 && blkdiscard -f -z -o 8388608 -l 1048576 "$1" && reads_zero "$1" 1048576 8388608; }
# The server's sysfs shows the mapping as upstream's does.
srv_sysfs_ok() {
	local d=/sys/class/rnbd-server/ctl/devices/nullb0
	srv "test -L $d/block_dev && test -d $d/block_dev/ &&
		[ \"\$(cat $d/sessions/interop/access_mode)\" = rw ] &&
		[ \"\$(cat $d/sessions/interop/mapping_path)\" = /dev/nullb0 ] &&
		[ \"\$(cat $d/sessions/interop/read_only)\" = 0 ]"
}
has_discard() { local v; v=$(cat /sys/block/"$(basename "$1")"/queue/discard_max_bytes) && [ "$v" -gt 0 ]; }

interop_cell() {
	local clt=$1 srvside=$2 inval=$3 cell name
	cell="clt=$clt srv=$srvside always_invalidate=$inval"
	name=interop_${clt}_${srvside}_$inval
	test_begin "$name" 18
	trap cleanup_data EXIT
	ktap_print_msg "cell: $cell"

	check "$cell: server: memory-backed null_blk with discard" srv_nullb
	if [ "$srvside" = rust ]; then
		check "$cell: server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load $inval"
	else
		check "$cell: server: C rnbd_server loaded" srv_fn c_rtrs_load server always_invalidate="$inval"
	fi
	if [ "$clt" = rust ]; then
		check "$cell: client: our rnbd_client loaded" rust_clt_load
	else
		check "$cell: client: C rnbd_client loaded" c_rtrs_load client
	fi
	map() { echo "sessname=interop path=ip:$SRV_IP0 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device; }
	same_size() { same_number "$(blockdev --getsize64 /dev/rnbd0)" "$(srv blockdev --getsize64 /dev/nullb0)"; }
	gone() { ! [ -e /sys/block/rnbd0 ]; }
	check "$cell: map_device" map
	check "$cell: /dev/rnbd0 appears" wait_for 30 test -b /dev/rnbd0
	check "$cell: /dev/rnbd0 has the server device's size" same_size
	check "$cell: server sysfs shows the mapping" srv_sysfs_ok
	check "$cell: fio randrw 512B-128KiB crc32c verify over $INTEROP_FIO_SIZE" fio_verify /dev/rnbd0 "$INTEROP_FIO_SIZE" randrw
	iovecs() { python3 "$(dirname "$0")/iovec_rw.py" /dev/rnbd0 | sed 's/^/# /'; return "${PIPESTATUS[0]}"; }
	check "$cell: O_DIRECT through iovecs off page boundaries and 32 segments" iovecs
	check "$cell: ext4 mkfs, mount, file checksum after remount" ext4_roundtrip /dev/rnbd0
	# Every cell has one of our modules, and the server's null_blk has
	# discard: a device without discard is our failure, not a skip.
	check "$cell: discard supported (discard_max_bytes > 0)" has_discard /dev/rnbd0
	check "$cell: discarded range reads back as zeroes" discard_zeroes /dev/rnbd0
	check "$cell: write-zeroes range reads back as zeroes" wzero_zeroes /dev/rnbd0
	# udev may still hold the device open after the writes above (EBUSY).
	unmap() { udevadm settle; echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
	check "$cell: unmap_device normal" wait_for 30 unmap
	check "$cell: /dev/rnbd0 is gone" wait_for 30 gone
	if [ "$clt" = rust ]; then
		check "$cell: client: modules unload" rust_clt_unload
	else
		check "$cell: client: C modules unload" c_rtrs_unload client
	fi
	if [ "$srvside" = rust ]; then
		check "$cell: server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
	else
		check "$cell: server: C modules unload" srv_fn c_rtrs_unload server
	fi
	srv modprobe -r null_blk
	test_end
}
