#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Reference peer users pick instead: nvme-rdma host (client guest) to an
# nvmet-rdma target (server guest) on null_blk; fio verify and ext4.
. "$(dirname "$0")/lib.sh"
test_begin nvme_rdma 10
trap cleanup_data EXIT

NQN=nqn.2026-11.io.rnbd-rs:selftest
CFG=/sys/kernel/config/nvmet
target_up() {
	srv "set -e
	modprobe nvmet-rdma
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mkdir $CFG/subsystems/$NQN
	echo 1 >$CFG/subsystems/$NQN/attr_allow_any_host
	mkdir $CFG/subsystems/$NQN/namespaces/1
	echo /dev/nullb0 >$CFG/subsystems/$NQN/namespaces/1/device_path
	echo 1 >$CFG/subsystems/$NQN/namespaces/1/enable
	mkdir $CFG/ports/1
	echo rdma >$CFG/ports/1/addr_trtype
	echo ipv4 >$CFG/ports/1/addr_adrfam
	echo $SRV_IP0 >$CFG/ports/1/addr_traddr
	echo 4420 >$CFG/ports/1/addr_trsvcid
	ln -s $CFG/subsystems/$NQN $CFG/ports/1/subsystems/$NQN"
}
target_down() {
	srv "rm -f $CFG/ports/1/subsystems/$NQN; rmdir $CFG/ports/1
	echo 0 >$CFG/subsystems/$NQN/namespaces/1/enable
	rmdir $CFG/subsystems/$NQN/namespaces/1 $CFG/subsystems/$NQN
	modprobe -r nvmet-rdma nvmet"
}
connect() {
	local id
	id=$(cat /proc/sys/kernel/random/uuid)
	modprobe nvme-rdma &&
		nvme connect -t rdma -a "$SRV_IP0" -s 4420 -n "$NQN" \
			--hostnqn="nqn.2014-08.org.nvmexpress:uuid:$id" --hostid="$id" \
			--keep-alive-tmo=60 --ctrl-loss-tmo=600 --reconnect-delay=2 >/dev/null
}
# The namespace of our subsystem (the guest has no other NVMe device).
ns_dev() {
	local b
	for b in /sys/block/nvme*n1; do [ -e "$b" ] && { echo "/dev/${b##*/}"; return 0; }; done
	return 1
}

check "server: 1 GiB memory-backed null_blk" srv_nullb
check "server: nvmet-rdma port on $SRV_IP0:4420" target_up
check "client: nvme connect -t rdma" connect
ns_exists() { ns_dev >/dev/null; }
check "namespace appears" wait_for 30 ns_exists
dev=$(ns_dev)
check "namespace is a block device" is_blockdev "$dev"
ktap_print_msg "namespace is $dev"
check "fio crc32c verify over 64 MiB" fio_verify "$dev" 64M
check "ext4 mkfs, mount, file checksum after remount" ext4_roundtrip "$dev"
ns_gone() { ! ns_exists; }
disconnect() { nvme disconnect -n "$NQN" >/dev/null && wait_for 30 ns_gone; }
check "nvme disconnect, namespace gone" disconnect
modprobe -r nvme-rdma 2>/dev/null
check "server: target torn down" target_down
srv modprobe -r null_blk
test_end
