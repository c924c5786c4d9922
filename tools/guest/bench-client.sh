#!/bin/bash
# Benchmark guest part (client guest), run by tools/bench.sh.  Prints one line
#   <target> <job> <rep> <value> <ios> <clt busy jiffies> <srv busy jiffies>
# per fio run: value is the mean completion latency in us (lat_* jobs), IOPS
# (iops_*, jobs16) or MiB/s (bw_*); ios the IOs fio completed; the busy
# jiffies are each guest's non-idle CPU time over the run (/proc/stat), so
# that tools/bench.sh can give CPU time per IO, which TCG does not hide.
#
# BENCH_PROFILE=1: each fio run is also sampled by perf (cpu-clock, 999 Hz,
# all CPUs, no call graphs, which are costly to record and report under TCG)
# in both guests; each guest reports its own samples (it alone has its
# kallsyms) as text: self time by module, by symbol (>= 0.5%), and every
# symbol of the RTRS/RNBD modules (>= 0.01%, ours or upstream's, same module
# names), into prof/<target>.<job>.<rep>.{clt,srv}.txt under the shared directory,
# which tools/bench.sh copies next to the results.  The sampling costs CPU,
# so the numbers of a profiled run are not comparable with an unprofiled one.
#
# Rows (targets) are interleaved: each repetition runs every row once, so a
# slow phase of the host spreads over all rows instead of biasing one.
set -eu
. "$(dirname "$0")/../../selftests/rnbd-rs/lib.sh" >/dev/null
RT=${BENCH_RUNTIME:-8}
PROF=${BENCH_PROFILE:+$RNBD_SHARED/prof}
[ -z "$PROF" ] || mkdir -p "$PROF"
REPS=${BENCH_REPS:-3}
JOBS=${BENCH_JOBS:-lat_rr lat_rw iops_rr iops_rw jobs16 bw_r bw_w}
ROWS=${BENCH_ROWS:-local c-c-N c-c-Y rust-rust-N rust-rust-Y rust-c-N rust-c-Y c-rust-N c-rust-Y nvme}

# Busy jiffies: user nice system irq softirq steal (not idle, not iowait).
BUSY="awk '/^cpu /{print \$2 + \$3 + \$4 + \$7 + \$8 + \$9}' /proc/stat"

# Profiling (BENCH_PROFILE): perf record in the background for the fio run's
# duration, in this guest and in the server guest (setsid, output to a file,
# so that the agent's command returns at once); perf_wait waits for both.
PERF_REC="perf record -N -q -a -F 999 -e cpu-clock -o /tmp/bench.perf -- sleep"
# The client's soft-RoCE packet counters (link 0), before and after a
# profiled run: packets per IO, beside the profile.
HWC=/sys/class/infiniband/rxe0/ports/1/hw_counters
pkts() { echo "sent_pkts $(cat $HWC/sent_pkts) rcvd_pkts $(cat $HWC/rcvd_pkts)"; }
perf_start() {
	[ -n "$PROF" ] || return 0
	PKTS0=$(pkts)
	rm -f /tmp/bench.perf /tmp/bench.perf.log; srv rm -f /tmp/bench.perf /tmp/bench.perf.log
	setsid $PERF_REC "$RT" >/tmp/bench.perf.log 2>&1 </dev/null &
	srv "setsid $PERF_REC $RT >/tmp/bench.perf.log 2>&1 </dev/null &"
}
# perf_report <file>: self time by module, by symbol (>= 0.5%), and the
# RTRS/RNBD modules' symbols (>= 0.01%).
PERF_REP="perf report -i /tmp/bench.perf --stdio --no-children"
# A failed record or report leaves its messages in the file instead of
# ending the benchmark.
perf_report() {
	local f=$1
	{
		cat /tmp/bench.perf.log 2>/dev/null
		$PERF_REP --percent-limit 0.01 --sort dso 2>&1 | grep -v '^#' | grep -v '^$' || true
		echo
		$PERF_REP --percent-limit 0.5 --sort sym,dso 2>&1 | grep -v '^#' | grep -v '^$' || true
		echo
		$PERF_REP --percent-limit 0.01 --sort sym,dso 2>&1 | grep -E '\[(rtrs|rnbd)_' || true
	} >"$f"
}
perf_finish() { # <target> <job> <rep>
	[ -n "$PROF" ] || return 0
	wait_for 120 bash -c '! pgrep -x perf >/dev/null'
	perf_report "$PROF/$1.$2.$3.clt.txt"
	echo "rxe0 counters before: $PKTS0 after: $(pkts)" >>"$PROF/$1.$2.$3.clt.txt"
	srv "while pgrep -x perf >/dev/null; do sleep 0.5; done; $(declare -f perf_report); PERF_REP='$PERF_REP'; perf_report $PROF/$1.$2.$3.srv.txt"
}

# run_jobs <target> <rep> <runner local|srv> <device>
run_jobs() {
	local target=$1 rep=$2 runner=$3 dev=$4 job args out c0 c1 s0 s1
	for job in $JOBS; do
		case $job in
		lat_rr) args="--rw=randread --bs=4k --iodepth=1 --numjobs=1" ;;
		lat_rw) args="--rw=randwrite --bs=4k --iodepth=1 --numjobs=1" ;;
		iops_rr) args="--rw=randread --bs=4k --iodepth=32 --numjobs=2" ;;
		iops_rw) args="--rw=randwrite --bs=4k --iodepth=32 --numjobs=2" ;;
		jobs16) args="--rw=randread --bs=4k --iodepth=8 --numjobs=16" ;;
		bw_r) args="--rw=read --bs=128k --iodepth=16 --numjobs=1" ;;
		bw_w) args="--rw=write --bs=128k --iodepth=16 --numjobs=1" ;;
		*) echo "unknown job $job" >&2; return 1 ;;
		esac
		cmd="fio --name=$job --filename=$dev --direct=1 --ioengine=io_uring --time_based --runtime=$RT --group_reporting --output-format=json $args"
		c0=$(bash -c "$BUSY"); s0=$(srv "$BUSY")
		perf_start
		if [ "$runner" = srv ]; then out=$(srv "$cmd"); else out=$($cmd); fi
		c1=$(bash -c "$BUSY"); s1=$(srv "$BUSY")
		perf_finish "$target" "$job" "$rep"
		echo "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["write"] if sys.argv[2] in ("lat_rw", "iops_rw", "bw_w") else j["read"]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
v = d["clat_ns"]["mean"] / 1000 if sys.argv[2].startswith("lat") else \
    d["bw_bytes"] / 2**20 if sys.argv[2].startswith("bw") else d["iops"]
print(sys.argv[1], sys.argv[2], sys.argv[3], "%.2f" % v, ios, *sys.argv[4:])' \
			"$target" "$job" "$rep" $((c1 - c0)) $((s1 - s0))
	done
}

# Memory not held by processes (KiB): MemAvailable + AnonPages; then the
# slab and vmalloc parts (KiB; rxe's queues are vmalloc'ed), for the split.
mem_free() { awk '/^MemAvailable:|^AnonPages:/ {s += $2} END {print s}' /proc/meminfo; }
mem_parts() { awk '/^Slab:/ {s = $2} /^VmallocUsed:/ {v = $2} END {print s, v}' /proc/meminfo; }

# rnbd_row <c|rust client> <c|rust server> <Y|N> <rep>
rnbd_row() {
	local cltside=$1 srvside=$2 inval=$3 rep=$4 m0 m1 s0 v0 s1 v1
	if [ "$srvside" = rust ]; then
		srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rtrs_server always_invalidate=$inval && modprobe rnbd_server"
	else
		srv_fn c_rtrs_load server always_invalidate="$inval"
	fi
	if [ "$cltside" = rust ]; then
		modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null || true
		modprobe rnbd_client
	else
		c_rtrs_load client
	fi
	sync; echo 3 >/proc/sys/vm/drop_caches; m0=$(mem_free); read -r s0 v0 <<<"$(mem_parts)"
	echo "sessname=bench path=ip:$SRV_IP0 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device
	wait_for 30 test -b /dev/rnbd0
	udevadm settle; sync; echo 3 >/proc/sys/vm/drop_caches; m1=$(mem_free); read -r s1 v1 <<<"$(mem_parts)"
	# What mapping one device (its session) costs the client, in KiB: in
	# all, of which slab, of which vmalloc.
	echo "mem $cltside-$srvside-$inval $rep $((m0 - m1)) $((s1 - s0)) $((v1 - v0))"
	run_jobs "$cltside-$srvside-$inval" "$rep" clt /dev/rnbd0
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

NQN=nqn.2026-11.io.rnbd-rs:bench
CFG=/sys/kernel/config/nvmet
nvme_row() {
	local rep=$1 id
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
	run_jobs nvme "$rep" clt "/dev/$(ls /sys/block | grep '^nvme.*n1$' | head -1)"
	nvme disconnect -n "$NQN" >/dev/null
	wait_for 30 bash -c '! ls /sys/block | grep -q "^nvme.*n1$"'
	srv "rm -f $CFG/ports/1/subsystems/$NQN; rmdir $CFG/ports/1; echo 0 >$CFG/subsystems/$NQN/namespaces/1/enable
rmdir $CFG/subsystems/$NQN/namespaces/1 $CFG/subsystems/$NQN; modprobe -r nvmet-rdma nvmet"
}

srv modprobe null_blk nr_devices=1 gb=1 bs=512 irqmode=0
for rep in $(seq "$REPS"); do
	for row in $ROWS; do
		case $row in
		local) run_jobs local "$rep" srv /dev/nullb0 ;;
		nvme) nvme_row "$rep" ;;
		*-*-*) IFS=- read -r c s i <<<"$row"; rnbd_row "$c" "$s" "$i" "$rep" ;;
		esac
	done
done
srv modprobe -r null_blk
