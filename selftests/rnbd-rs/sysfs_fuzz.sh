#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Bad strings written to the sysfs files of our modules, against our server:
# map_device (random bytes, mutated valid strings, missing and unknown
# tokens, bad access_mode, dest_port, nr_poll_queues and path= values, too
# many paths, names over 255 bytes, duplicated tokens, a 5000-byte write, 4
# writers at once), and for one mapped device unmap_device, resize and
# remap_device; force_close on the server.  sysfs_fuzz.py makes the strings
# (fixed seeds) and checks each write's errno against upstream 6.12's.  Then:
# nothing got mapped, the device still reads, the server lists the one
# session, memory is back where it was in both guests, two concurrent
# unmaps of the device end with one unmap and no hang, the modules unload.
. "$(dirname "$0")/interop.sh"
# 24 checks, one per class of strings in each of sysfs_fuzz.py's batches
# (30 classes; fixed seeds: they do not change from run to run), one per
# batch for its count (7), test_end's.
test_begin sysfs_fuzz 62
trap cleanup_data EXIT

FUZZ=$(cd "$(dirname "$0")" && pwd)/sysfs_fuzz.py
CTL=/sys/class/rnbd-client/ctl/map_device
SESS=fuzz
SDEVS=/sys/class/rnbd-server/ctl/devices
SDIR=$SDEVS/nullb0/sessions
OUT=/tmp/sysfs-fuzz.out
WRITES=0
LEGIT=
STUCK=

# bounded <secs> <command...>: runs the command in the background, its output
# in $OUT, and waits for it at most secs.  A writer stuck in the kernel cannot
# be killed, so `timeout` alone could hang the test.  Returns the command's
# status, or 124 with its pid added to STUCK.
bounded() {
	local t=$1 pid
	shift
	"$@" >"$OUT" 2>&1 &
	pid=$!
	if ! wait_for "$t" eval "! kill -0 $pid 2>/dev/null"; then
		STUCK="$STUCK $pid"
		return 124
	fi
	wait "$pid"
}
# After a writer got stuck, unmapping or unloading would block the same way:
# report, leave the client as it is, end the test.
bail_if_stuck() {
	[ -z "$STUCK" ] && return 0
	local p
	for p in $STUCK; do
		ktap_print_msg "pid $p stuck in: $(cat /proc/"$p"/task/*/wchan 2>/dev/null)"
	done
	check "no writer stuck in the kernel" false
	trap - EXIT
	test_end
}

# batch <label> <command...>: runs a sysfs_fuzz.py batch; one check per class
# of strings (every write of the class failed with the expected errno), one
# that the batch made all its writes; adds the writes to WRITES.
batch() {
	local label=$1 rc line n bad want cls done=
	shift
	bounded 600 "$@"
	rc=$?
	while IFS= read -r line; do
		case $line in
		"class "*)
			read -r _ n bad want cls <<<"$line"
			WRITES=$((WRITES + n))
			check "$label: ${cls%, *}: $n writes, each failed with ${want/ANY/an errno}" test "$bad" = 0
			;;
		"done "*) done=${line#done } ;;
		"# "*) echo "$line" ;;
		*) echo "# $line" ;;
		esac
	done <"$OUT"
	check "$label: the batch made all its writes (${done:-no count})" test "$rc" = 0 -a -n "$done"
}

map_legit() { echo "sessname=$SESS path=ip:$SRV_IP0 device_path=/dev/nullb0" >"$CTL"; }
# The mapped rnbd devices, "rnbd0 rnbd3 " (builtins only).
rnbd_devs() {
	local d
	for d in /sys/block/rnbd*; do [ -e "$d" ] && printf '%s ' "${d##*/}"; done
}
# Sets LEGIT when exactly one device is mapped, with its rnbd files.
legit_found() {
	local d=(/sys/block/rnbd*)
	[ ${#d[@]} = 1 ] && [ -w "${d[0]}/rnbd/unmap_device" ] && LEGIT=${d[0]##*/}
}
legit_files() {
	[ -n "$LEGIT" ] && [ -w "$DEVF/unmap_device" ] && [ -w "$DEVF/resize" ] && [ -w "$DEVF/remap_device" ] &&
		[ "$(<"$DEVF/session")" = "$SESS" ]
}
reads_ok() { [ -n "$LEGIT" ] && dd if="/dev/$LEGIT" of=/dev/null bs=64k count=16 iflag=direct status=none; }
only_legit() {
	local links=(/sys/class/rnbd-client/ctl/devices/*)
	ktap_print_msg "mapped: $(rnbd_devs); devices/: ${links[*]##*/}"
	[ -n "$LEGIT" ] && [ "$(rnbd_devs)" = "$LEGIT " ] &&
		[ ${#links[@]} = 1 ] && [ "${links[0]##*/}" = "!dev!nullb0@$SESS" ]
}
srv_only_legit() {
	srv "[ \"\$(ls $SDEVS)\" = nullb0 ] && [ \"\$(ls $SDIR)\" = $SESS ] &&
		[ \"\$(cat $SDIR/$SESS/mapping_path)\" = /dev/nullb0 ]"
}

# Memory: "MemAvailable Slab slabinfo" in KiB, after dropping the caches
# (twice, with a pause for RCU-deferred frees); slabinfo is the sum of active
# objects x object size, -1 when unreadable.
mem_snap() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 3
	echo 3 >/proc/sys/vm/drop_caches
	awk '/^MemAvailable:/ {a = $2} /^Slab:/ {s = $2} END {printf "%d %d", a, s}' /proc/meminfo
	if [ -r /proc/slabinfo ]; then
		awk 'NR > 2 {t += $2 * $4} END {printf " %d\n", t / 1024}' /proc/slabinfo
	else
		echo " -1"
	fi
}
# Tolerances.  Slab (and the slabinfo sum) may grow by 2 MiB: per-CPU slabs
# and partial lists, kernfs nodes and the caches python3 touched vary by a
# few hundred KiB between two snapshots of an idle guest; a leak of one
# object per write (~1000 writes, most of them through a 4 KiB kernfs buffer
# or a kstrdup of the string) crosses it.  MemAvailable may drop by 32 MiB:
# it moves with page cache and per-CPU page lists that drop_caches does not
# empty.  Under KASAN (debug flavour) freed objects wait in the quarantine,
# which holds up to 1/32 of the memory (mm/kasan/quarantine.c,
# QUARANTINE_FRACTION): that much is added to both; kmemleak.sh is the leak
# test there.
SLAB_TOL=2048
AVAIL_TOL=32768
if grep -qm1 -E ' (__kasan_kmalloc|kasan_save_stack)$' /proc/kallsyms; then
	q=$(awk '/^MemTotal:/ {print int($2 / 32)}' /proc/meminfo)
	SLAB_TOL=$((SLAB_TOL + q))
	AVAIL_TOL=$((AVAIL_TOL + q))
	ktap_print_msg "KASAN kernel: tolerances raised by its quarantine, $q KiB"
fi
mem_ok() { # <where> <before> <after>
	local b a
	read -r -a b <<<"$2"
	read -r -a a <<<"$3"
	ktap_print_msg "$1: MemAvailable ${b[0]} -> ${a[0]} KiB, Slab ${b[1]} -> ${a[1]} KiB, slabinfo ${b[2]} -> ${a[2]} KiB"
	[ ${#b[@]} = 3 ] && [ ${#a[@]} = 3 ] &&
		[ $((b[0] - a[0])) -le $AVAIL_TOL ] && [ $((a[1] - b[1])) -le $SLAB_TOL ] &&
		{ [ "${b[2]}" = -1 ] || [ $((a[2] - b[2])) -le $SLAB_TOL ]; }
}

# map_device with dest_port=0: upstream's parser takes 0 (it refuses "< 0",
# rnbd-clt-sysfs.c:154), so the string gets as far as connecting, to a port
# nobody listens on.  It must fail with ECONNREFUSED (the CM's reject for
# a service id without listener), in bounded time.  dest_port
# comes first (upstream applies it to the paths after it only) and the mode
# is ro, so that a connection made anyway would map and show.
port0_refused() {
	local out rc
	# shellcheck disable=SC2016 # expanded by the inner bash
	bounded 120 bash -c 'printf "%s" "$1" >"$2"' _ \
		"dest_port=0 sessname=fz-port0 path=ip:$SRV_IP0 device_path=/dev/nullb0 access_mode=ro" "$CTL"
	rc=$?
	out=$(<"$OUT")
	WRITES=$((WRITES + 1))
	ktap_print_msg "dest_port=0: rc $rc, ${out##*: }"
	[ $rc != 0 ] && [ $rc != 124 ] && [[ $out == *": Connection refused" ]]
}

# resize 0 is not refused upstream either (kstrtoul takes it and
# rnbd_clt_resize_disk(), rnbd-clt.c:119-129, has no lower bound): it must
# work, and the old size must come back.
resize_round_trip() {
	local size now
	size=$(<"/sys/block/$LEGIT/size")
	[ "$size" -gt 0 ] && echo 0 >"$DEVF/resize" || return 1
	now=$(<"/sys/block/$LEGIT/size")
	echo "$size" >"$DEVF/resize" || return 1
	ktap_print_msg "resize: $size -> $now -> $(<"/sys/block/$LEGIT/size") sectors"
	[ "$now" = 0 ] && [ "$(<"/sys/block/$LEGIT/size")" = "$size" ]
}

# Two writers of "normal" to the device's unmap_device at once.
race_ok() {
	local line r1 r2
	line=$(<"$OUT")
	ktap_print_msg "concurrent unmap: ${line//$'\n'/; }"
	read -r _ r1 r2 <<<"$line"
	case "$r1 $r2" in
	"ok E"* | "E"*" ok") return 0 ;;
	# Both refused (EBUSY: udev had it open): cleanly, the device stays.
	"E"*" E"*) [ -e "/sys/block/$LEGIT" ] ;;
	*) return 1 ;;
	esac
}
unmap_plain() { udevadm settle; echo normal >"$DEVF/unmap_device"; }
legit_gone() { [ -n "$LEGIT" ] && ! [ -e "/sys/block/$LEGIT" ] && [ -z "$(rnbd_devs)" ]; }
server_clean() { srv "[ -d $SDEVS ] && ! ls $SDEVS/ | grep -q ."; }

check "server: memory-backed null_blk" srv_nullb
check "server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load N"
check "client: our rnbd_client loaded" rust_clt_load
check "nothing mapped before" test -z "$(rnbd_devs)"
check "map the device the fuzzing keeps (session $SESS)" map_legit
check "exactly one device mapped, with its rnbd files" wait_for 30 legit_found
DEVF=/sys/block/$LEGIT/rnbd
check "$LEGIT: unmap_device, resize, remap_device writable, session $SESS" legit_files
check "$LEGIT reads" reads_ok
check "server: session $SESS's force_close is there" srv test -w "$SDIR/$SESS/force_close"

# A first batch warms up what the writes allocate (kernfs buffers, printk,
# slab caches of the sizes used) before the memory snapshot.
batch "map_device (warm-up)" timeout 300 python3 "$FUZZ" map "$CTL" "$SRV_IP0" "$SESS" /dev/nullb0 --limit 40
udevadm settle
MEM_CLT0=$(mem_snap)
MEM_SRV0=$(srv "$(declare -f mem_snap); mem_snap")

batch "map_device" timeout 600 python3 "$FUZZ" map "$CTL" "$SRV_IP0" "$SESS" /dev/nullb0 --skip 40
batch "map_device, 4 writers at once" timeout 300 python3 "$FUZZ" map-conc "$CTL" "$SRV_IP0" "$SESS" /dev/nullb0 4 50
check "map_device dest_port=0 (a port without listener): refused in bounded time" port0_refused
batch "$LEGIT unmap_device" timeout 120 python3 "$FUZZ" unmap "$DEVF/unmap_device"
batch "$LEGIT resize" timeout 120 python3 "$FUZZ" resize "$DEVF/resize"
batch "$LEGIT remap_device" timeout 120 python3 "$FUZZ" remap "$DEVF/remap_device"
batch "server: force_close" srv "timeout 120 python3 '$FUZZ' force_close '$SDIR/$SESS/force_close'"
bail_if_stuck
ktap_print_msg "bad strings written: $WRITES"
check "at least 500 bad strings written ($WRITES)" test "$WRITES" -ge 500

check "nothing mapped by accident: only $LEGIT" only_legit
check "server: only nullb0, only session $SESS" srv_only_legit
check "$LEGIT still reads" reads_ok
udevadm settle
MEM_CLT1=$(mem_snap)
MEM_SRV1=$(srv "$(declare -f mem_snap); mem_snap")
check "client: no leak (Slab +$SLAB_TOL KiB, MemAvailable -$AVAIL_TOL KiB at most)" mem_ok client "$MEM_CLT0" "$MEM_CLT1"
check "server: no leak (Slab +$SLAB_TOL KiB, MemAvailable -$AVAIL_TOL KiB at most)" mem_ok server "$MEM_SRV0" "$MEM_SRV1"

check "$LEGIT: resize 0 accepted as upstream, old size restored" resize_round_trip
check "$LEGIT reads after the resizes" reads_ok

udevadm settle
bounded 60 python3 "$FUZZ" unmap-race "$DEVF/unmap_device"
check "two concurrent 'normal' writers of $LEGIT's unmap_device return within 60 s" test $? != 124
bail_if_stuck
check "... one unmapped, the other got an errno (or both refused, device kept)" race_ok
[ -n "$LEGIT" ] && [ -e "/sys/block/$LEGIT" ] && wait_for 30 unmap_plain
check "$LEGIT is gone" wait_for 30 legit_gone
check "the server closed the mapping" wait_for 30 server_clean
check "client: modules unload (no reference left)" rust_clt_unload
check "server: our modules unload (no reference left)" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
