#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A hostile server (tools/hostile, in the server guest on the second link)
# answers our client's map_device with one thing wrong per kind: geometry,
# rejects, info responses, IO responses, rkey messages, open responses, an
# OPEN never answered.  The map must fail with an errno within bounded
# time (or, where the client clamps a value, map and unmap cleanly); the
# client logs a bounded number of lines, shows no kernel report, keeps a
# healthy session to our real server doing fio verify, and returns to its
# RDMA resources afterwards.
. "$(dirname "$0")/hostile.sh"
# 14 checks, one per kind, test_end's.
KINDS=$(hostile_kinds server)
test_begin hostile_server $((15 + $(wc -w <<<"$KINDS")))
trap 'touch $HEALTHY_STOP; srv "pkill -f \"rnbd-hostile server\""; cleanup_data' EXIT

# The longest a map may take: the client's bounded wait for an answer
# (30 s) plus connection setup under TCG.
MAP_LIMIT=${MAP_LIMIT:-90}

map_healthy() { echo "sessname=healthy path=ip:$SRV_IP0 device_path=/dev/nullb0" >/sys/class/rnbd-client/ctl/map_device; }
passed_once() { [ "$(healthy_passes)" -ge 1 ]; }
first_pass() { wait_for 300 passed_once; }
ndev() { ls /sys/block | grep -c '^rnbd' || true; }

check "the hostile tool is built" test -x "$HOSTILE"
check "server: memory-backed null_blk" srv_nullb
check "server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load Y"
# IO of a session whose path a hostile answer closed fails at once, as
# upstream's (fast_io_fail_tmo=0): waiting for a path that does not come
# back would only slow each kind's unmap by the default 30 s.
clt_load_failfast() { rust_clt_load && echo 0 >/sys/module/rnbd_client/parameters/fast_io_fail_tmo; }
check "client: our rnbd_client loaded (fast_io_fail_tmo=0)" clt_load_failfast
check "healthy session maps nullb0" map_healthy
check "healthy device appears" wait_for 30 test -b /dev/rnbd0
# The client's memory without fio (a fio process and its shared memory
# come and go with each pass: +-20 MiB of MemAvailable seen).
mem0=$(meminfo clt)
healthy_start /dev/rnbd0
check "healthy session: first fio verify pass" first_pass
res0=$(rdma_res clt)
ktap_print_msg "client RDMA resources with the healthy session: $res0"

# The tool's ready file and output go to the directory both guests share,
# so that one command in the server guest per kind is enough (under the
# debug kernel each such command costs seconds): it ends the previous
# kind's tool, if still there, and starts this one.
HS_DIR=$RNBD_SHARED/hostile-server
rm -rf "$HS_DIR"
mkdir -p "$HS_DIR"
# Globs, not `test -e`: over 9p a failed lookup can stay cached.
hs_ready() { local f; for f in "$HS_DIR/$1".read[y]; do [ -e "$f" ] && return 0; done; return 1; }
# The tool's last line once the client has gone: "served <kind>: client
# gone after N connect requests ..." or "... rejected N connect requests".
tool_saw_client() { grep -Eq "^served $1: .*(after|rejected) [1-9][0-9]* connect request" "$HS_DIR/$1.log"; }
port=1300
nk=0
for k in $KINDS; do
	nk=$((nk + 1))
	port=$((port + 1))
	rm -f "$HS_DIR/$k.ready"
	srv "pkill -f 'rnbd-hostile server' && sleep 1; setsid $HOSTILE server --listen $SRV_IP1 --port $port --kind $k \
		--ready $HS_DIR/$k.ready --timeout $((MAP_LIMIT + 30)) >$HS_DIR/$k.log 2>&1 </dev/null &"
	if ! wait_for 60 hs_ready "$k"; then
		ktap_test_fail "hostile-server $k: the hostile server did not start"
		sed 's/^/# /' "$HS_DIR/$k.log"
		TEST_FAILED=1
		continue
	fi
	mark="rnbd-rs-selftest: hostile-server $k $(date +%s%N)"
	echo "$mark" >/dev/kmsg
	before=$(ndev)
	t0=$SECONDS
	err=$(timeout "$MAP_LIMIT" bash -c "echo 'sessname=hs$nk path=ip:$SRV_IP1 dest_port=$port device_path=/dev/nullb0' \
		>/sys/class/rnbd-client/ctl/map_device" 2>&1)
	rc=$?
	dt=$((SECONDS - t0))
	ok=1 detail=
	if [ "$rc" = 124 ]; then
		detail="map_device hung for more than $MAP_LIMIT s"
	elif [ "$rc" != 0 ]; then
		detail="map refused in $dt s: ${err##*: }"
		[ "$k" != good ] && ok=0
	else
		# Mapped: the client took (or clamped) what it got; the device
		# must unmap cleanly.
		dev=$(for d in /sys/block/rnbd*; do [ "$(cat "$d/rnbd/session" 2>/dev/null)" = "hs$nk" ] && basename "$d"; done)
		detail="mapped in $dt s as ${dev:-?}"
		if [ -n "$dev" ]; then
			udevadm settle
			if timeout 60 bash -c "echo normal >/sys/block/$dev/rnbd/unmap_device"; then
				detail="$detail, unmapped"
				ok=0
			else
				detail="$detail, unmap failed"
			fi
		fi
	fi
	[ "$(ndev)" = "$before" ] || { ok=1; detail="$detail; device count $before -> $(ndev)"; }
	# A refusal counts only if it came from this kind's answer: the tool
	# must have seen the client (its last line once the client has gone).
	wait_for 30 tool_saw_client "$k" || { ok=1; detail="$detail; the hostile server saw no connect request"; }
	sed 's/^/# /' "$HS_DIR/$k.log"
	kind_verdict "hostile-server $k" clt "$mark" "$ok" "$detail"
done
ktap_print_msg "$nk hostile-server kinds"
check "at least $(min_kinds 15) hostile-server kinds ran" test "$nk" -ge "$(min_kinds 15)"

res_back() { local r; r=$(rdma_res clt); ktap_print_msg "client RDMA resources now: $r"; [[ $res0 == *"qp "[1-9]* ]] && [ "$r" = "$res0" ]; }
check "client: RDMA resources back to the healthy session's" wait_for 60 res_back
check "healthy session: fio verify never failed ($(healthy_passes) passes)" healthy_stop
# Freed memory comes back with some delay (RCU, deferred work): look
# again for up to 30 s before calling it a leak.
mem_now_back() { mem_back "$mem0" "$(meminfo clt)"; }
check "client: memory back to its baseline" wait_for 30 mem_now_back
unmap() { udevadm settle; echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
check "healthy session unmaps" wait_for 30 unmap
check "client: modules unload" rust_clt_unload
check "server: our modules unload" srv "$(declare -f rust_srv_unload); rust_srv_unload"
srv modprobe -r null_blk
test_end
