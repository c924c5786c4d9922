#!/bin/bash
# The main job's guest part, run in the client guest by tools/demo.sh: map a
# device of the server guest over RDMA, put ext4 on it, mount and use it.
set -eu
. "$(dirname "$0")/../../selftests/rnbd-rs/lib.sh" >/dev/null
say() { printf '\n== %s\n' "$*"; }

say "client guest: $(uname -r), RDMA links"
rdma link show
say "rnbd-rs rtrs_core (Rust) sees the RDMA devices"
modprobe rtrs_core
dmesg | grep 'rtrs_core:' | tail -3
modprobe -r rtrs_core

say "server guest: 1 GiB null_blk served by our rnbd_server (Rust)"
srv_nullb
srv "modprobe rnbd_server && grep . /sys/module/rtrs_server/parameters/* /sys/module/rnbd_server/parameters/* 2>/dev/null; dmesg | grep -E 'rtrs_server|rnbd_server' | tail -2"
say "client guest: our rnbd_client (Rust)"
modprobe rnbd_client
dmesg | grep -E 'rtrs_client|rnbd_client' | tail -2
say "map_device: sessname=demo path=ip:$SRV_IP0 device_path=/dev/nullb0"
echo "sessname=demo path=ip:$SRV_IP0 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device
wait_for 30 test -b /dev/rnbd0
lsblk /dev/rnbd0
grep . /sys/block/rnbd0/rnbd/{state,session,mapping_path,access_mode,nr_poll_queues}
ls -l /sys/class/rnbd-client/ctl/devices/
say "server guest: /sys/class/rnbd-server"
srv "ls -l /sys/class/rnbd-server/ctl/devices/nullb0/; grep . /sys/class/rnbd-server/ctl/devices/nullb0/sessions/demo/{read_only,access_mode,mapping_path}"


say "mkfs.ext4 /dev/rnbd0, mount, use"
mnt=$(mktemp -d /tmp/rnbd0.XXXX)
mkfs.ext4 -q -F /dev/rnbd0
mount /dev/rnbd0 "$mnt"
dd if=/dev/urandom of="$mnt/data.bin" bs=1M count=32 status=none
cp -r /etc/apt "$mnt/"
sync
ls -l "$mnt"
df -h "$mnt"
sum1=$(sha256sum <"$mnt/data.bin")
umount "$mnt"
echo 3 >/proc/sys/vm/drop_caches
mount /dev/rnbd0 "$mnt"
sum2=$(sha256sum <"$mnt/data.bin")
echo "sha256 before remount: ${sum1%% *}"
echo "sha256 after remount:  ${sum2%% *}"
[ "$sum1" = "$sum2" ]
umount "$mnt"

say "unmap and unload"
udevadm settle
echo normal >/sys/block/rnbd0/rnbd/unmap_device
wait_for 30 bash -c '! test -e /sys/block/rnbd0'
modprobe -r rnbd_client rtrs_client rtrs_core
srv modprobe -r rnbd_server rtrs_server rtrs_core
srv modprobe -r null_blk
echo "demo OK"
