#!/bin/bash
# Benchmark guest part (client guest), run by tools/bench.sh.  Prints one line
# "<target> <job> <value>" per measurement: lat_us (4k randread QD1, mean
# completion latency), iops (4k randread QD32 x 2 jobs), bw_mibs (128k read).
set -eu
. "$(dirname "$0")/../../selftests/rnbd-rs/lib.sh" >/dev/null
RT=${BENCH_RUNTIME:-10}

# run_jobs <target> <runner> <device>: runner is "local" or "srv".
run_jobs() {
	local target=$1 runner=$2 dev=$3 job args out
	for job in lat iops bw; do
		case $job in
		lat) args="--rw=randread --bs=4k --iodepth=1 --numjobs=1" ;;
		iops) args="--rw=randread --bs=4k --iodepth=32 --numjobs=2" ;;
		bw) args="--rw=read --bs=128k --iodepth=16 --numjobs=1" ;;
		esac
		cmd="fio --name=$job --filename=$dev --direct=1 --ioengine=io_uring --time_based --runtime=$RT --ramp_time=2 --group_reporting --output-format=json $args"
		if [ "$runner" = srv ]; then out=$(srv "$cmd"); else out=$($cmd); fi
		echo "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["read"]
job = sys.argv[2]
v = {"lat": j["clat_ns"]["mean"] / 1000, "iops": j["iops"], "bw": j["bw_bytes"] / 2**20}[job]
print(sys.argv[1], job, "%.1f" % v)' "$target" "$job"
	done
}

srv modprobe null_blk nr_devices=1 gb=1 bs=512 irqmode=0
run_jobs null_blk-local srv /dev/nullb0

# rnbd_row <c|rust client> <c|rust server> <Y|N>.
rnbd_row() {
	local cltside=$1 srvside=$2 inval=$3
	if [ "$srvside" = rust ]; then
		srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rtrs_server always_invalidate=$inval && modprobe rnbd_server"
	else
		srv_fn c_rtrs_load server always_invalidate="$inval"
	fi
	if [ "$cltside" = rust ]; then
		modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null
		modprobe rnbd_client
	else
		c_rtrs_load client
	fi
	echo "sessname=bench path=ip:$SRV_IP0 device_path=/dev/nullb0 access_mode=ro" >/sys/class/rnbd-client/ctl/map_device
	wait_for 30 test -b /dev/rnbd0
	run_jobs "rnbd-clt=$cltside-srv=$srvside-inv=$inval" clt /dev/rnbd0
	udevadm settle
	echo normal >/sys/block/rnbd0/rnbd/unmap_device
	wait_for 30 bash -c '! test -e /sys/block/rnbd0'
	if [ "$cltside" = rust ]; then
		modprobe -r rnbd_client rtrs_client rtrs_core
	else
		c_rtrs_unload client
	fi
	if [ "$srvside" = rust ]; then
		srv modprobe -r rnbd_server rtrs_server rtrs_core
	else
		srv_fn c_rtrs_unload server
	fi
}
rnbd_row c c N
rnbd_row c c Y
rnbd_row c rust N
rnbd_row c rust Y
rnbd_row rust rust N
rnbd_row rust rust Y
rnbd_row rust c N

NQN=nqn.2026-11.io.rnbd-rs:bench
CFG=/sys/kernel/config/nvmet
srv "set -e; modprobe nvmet-rdma
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mkdir $CFG/subsystems/$NQN; echo 1 >$CFG/subsystems/$NQN/attr_allow_any_host
mkdir $CFG/subsystems/$NQN/namespaces/1; echo /dev/nullb0 >$CFG/subsystems/$NQN/namespaces/1/device_path
echo 1 >$CFG/subsystems/$NQN/namespaces/1/enable
mkdir $CFG/ports/1; echo rdma >$CFG/ports/1/addr_trtype; echo ipv4 >$CFG/ports/1/addr_adrfam
echo $SRV_IP0 >$CFG/ports/1/addr_traddr; echo 4420 >$CFG/ports/1/addr_trsvcid
ln -s $CFG/subsystems/$NQN $CFG/ports/1/subsystems/$NQN"
id=$(cat /proc/sys/kernel/random/uuid)
modprobe nvme-rdma
nvme connect -t rdma -a "$SRV_IP0" -s 4420 -n "$NQN" --hostnqn="nqn.2014-08.org.nvmexpress:uuid:$id" --hostid="$id" >/dev/null
wait_for 30 bash -c 'ls /sys/block | grep -q "^nvme.*n1$"'
run_jobs nvme-rdma clt "/dev/$(ls /sys/block | grep '^nvme.*n1$' | head -1)"
nvme disconnect -n "$NQN" >/dev/null
srv "rm -f $CFG/ports/1/subsystems/$NQN; rmdir $CFG/ports/1; echo 0 >$CFG/subsystems/$NQN/namespaces/1/enable
rmdir $CFG/subsystems/$NQN/namespaces/1 $CFG/subsystems/$NQN; modprobe -r nvmet-rdma nvmet null_blk"
