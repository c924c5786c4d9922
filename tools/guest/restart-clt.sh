#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The client guest's half of the harness's server-restart test
# (tools/test.sh): a session over both links, fio running on /dev/rnbd0
# while the host kills the server guest hard and starts it again.
#
#   restart-clt.sh map <fast_io_fail_tmo>   load our client, map, wait for rnbd0
#   restart-clt.sh fio-start                fio randrw in the background
#   restart-clt.sh closed <s>               wait until rnbd0 is closed (no path)
#   restart-clt.sh open <s>                 wait until rnbd0 is open again
#   restart-clt.sh fio-ok <s>               let fio run <s> more, stop it: no error
#   restart-clt.sh fio-failed <s>           fio ended by itself with an IO error
#   restart-clt.sh unmap                    unmap, unload
#
# Prints one line of what it saw; exits 0 when it is what the step expects.
set -u
C=/sys/class/rtrs-client/rs
LOG=/tmp/rs-fio.log
PID=/tmp/rs-fio.pid

state() { cat /sys/block/rnbd0/rnbd/state 2>/dev/null; }
fio_running() { [ -s $PID ] && kill -0 "$(cat $PID)" 2>/dev/null; }
# wait_state <state> <s>: until rnbd0's state is <state>; sets $waited.
wait_state() {
	local t0=$SECONDS
	while [ "$(state)" != "$1" ]; do
		[ $((SECONDS - t0)) -lt "$2" ] || { echo "state '$(state)' after $2 s"; return 1; }
		sleep 1
	done
	waited=$((SECONDS - t0))
}
# "err= N" of fio's job line (N is the first error's errno).
fio_err() { sed -n 's/.*: err= *\([0-9]*\).*/\1/p' $LOG | head -1; }

case $1 in
map)
	modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null
	# Whatever an earlier step left loaded (the C modules have the same
	# names) would make modprobe a no-op below.
	for m in rnbd_client rtrs_client rtrs_core; do
		[ -d /sys/module/$m ] && { echo "$m still loaded: $(lsmod | grep -E '^(rnbd|rtrs)')"; exit 1; }
	done
	modprobe rnbd_client || exit 1
	echo "$2" >/sys/module/rnbd_client/parameters/fast_io_fail_tmo || exit 1
	echo "sessname=rs path=ip:10.99.0.2 path=ip:10.99.1.2 device_path=/dev/nullb0 access_mode=rw" \
		>/sys/class/rnbd-client/ctl/map_device || exit 1
	for _ in $(seq 60); do [ -b /dev/rnbd0 ] && break; sleep 0.5; done
	[ "$(state)" = open ] || { echo "rnbd0 state '$(state)'; $(dmesg | tail -5 | tr '\n' ' ')"; exit 1; }
	echo "mapped; fast_io_fail_tmo $(cat /sys/module/rnbd_client/parameters/fast_io_fail_tmo)"
	;;
fio-start)
	rm -f $LOG $PID
	# fio would create a regular file in /dev and pass.
	[ -b /dev/rnbd0 ] || { echo "/dev/rnbd0 is not a block device"; exit 1; }
	# No verify: the server's null_blk loses its data with the guest.
	setsid fio --name=rs --filename=/dev/rnbd0 --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=randrw --bs=4k --size=256M --time_based --runtime=3600 --output=$LOG \
		</dev/null >/dev/null 2>&1 &
	echo $! >$PID
	sleep 5
	fio_running && echo "fio running (pid $(cat $PID))"
	;;
closed)
	wait_state closed "$2" || exit 1
	echo "closed $waited s after the server was back: $(dmesg | grep -E 'HB missed|session disconnected' | tail -2 | tr '\n' ' ')"
	;;
open)
	wait_state open "$2" || exit 1
	echo "open $waited s after the server's modules were loaded; paths: $(for p in $C/paths/*; do
		echo -n "$(basename "$p") $(cat "$p/state") reconnects $(cat "$p/stats/reconnects"); "
	done)"
	;;
fio-ok)
	sleep "$2"
	fio_running || { echo "fio ended by itself: $(tail -3 $LOG 2>/dev/null | tr '\n' ' ')"; exit 1; }
	kill -INT "$(cat $PID)"
	for _ in $(seq 60); do fio_running || break; sleep 1; done
	fio_running && { echo "fio did not stop"; exit 1; }
	echo "fio: err=$(fio_err); $(grep -E '^ *(read|write):' $LOG | tr -s ' ' | tr '\n' ';')"
	[ "$(fio_err)" = 0 ]
	;;
fio-failed)
	t0=$SECONDS
	while fio_running; do
		[ $((SECONDS - t0)) -lt "$2" ] || { echo "fio still running after $2 s"; exit 1; }
		sleep 1
	done
	echo "fio ended: err=$(fio_err)"
	[ -n "$(fio_err)" ] && [ "$(fio_err)" != 0 ]
	;;
unmap)
	fio_running && kill -9 "$(cat $PID)"
	udevadm settle
	echo normal >/sys/block/rnbd0/rnbd/unmap_device && modprobe -r rnbd_client rtrs_client rtrs_core
	;;
*)
	echo "usage: $0 map|fio-start|closed|open|fio-ok|fio-failed|unmap" >&2
	exit 2
	;;
esac
