#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# tools/rnbdctl in the guests, against our modules and against the upstream
# C modules (both sides of one kind per cell): map over two paths, one
# given by address and one by a host name from /etc/hosts; list and show
# in the three formats; policy; stats and their reset; path disconnect,
# reconnect, remove and add; resize; remap's refusal; a second device on
# the existing session; server list, close and disconnect; unmap by
# device and by mapping path.  The checks compare the tool's output (and
# the sysfs file it wrote), not only its exit code.
. "$(dirname "$0")/interop.sh"

CTL=$RNBD_TOP/tools/rnbdctl/target/release/rnbdctl
# Link 1's server address by name, through the guest's /etc/hosts (an
# overlay in the guest: the host's file is not touched).
SRV_HOST=rnbd-srv-link1
P0="ip:$CLT_IP0@ip:$SRV_IP0"
P1="ip:$CLT_IP1@ip:$SRV_IP1"

CELL_CHECKS=31
test_begin rnbdctl $((2 * CELL_CHECKS + 3))
trap cleanup_data EXIT

# out_is <want> <command...>: the command succeeds and prints exactly <want>.
out_is() {
	local want=$1 out
	shift
	out=$("$@" 2>&1) || { ktap_print_msg "failed: $*: $out"; return 1; }
	[ "$out" = "$want" ] || { ktap_print_msg "$*: got '$(tr '\n' '|' <<<"$out")', want '$(tr '\n' '|' <<<"$want")'"; return 1; }
}
# out_has <command...> -- <text...>: the command succeeds and its output
# has every <text>.
out_has() {
	local -a cmd=()
	local out t
	while [ "$1" != -- ]; do cmd+=("$1"); shift; done
	shift
	out=$("${cmd[@]}" 2>&1) || { ktap_print_msg "failed: ${cmd[*]}: $out"; return 1; }
	for t in "$@"; do
		grep -qF -- "$t" <<<"$out" || { ktap_print_msg "'$t' not in: $(tr '\n' '|' <<<"$out")"; return 1; }
	done
}
# exits_with <code> <text> <command...>: the command exits with <code> and
# its error message has <text>.
exits_with() {
	local code=$1 want=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" = "$code" ] && grep -qF -- "$want" <<<"$out" ||
		{ ktap_print_msg "$*: exit $rc (want $code): $out"; return 1; }
}
# json <command...> -- <python expression over v>: the command's JSON
# output satisfies the expression.
json() {
	local -a cmd=()
	local out
	while [ "$1" != -- ]; do cmd+=("$1"); shift; done
	shift
	out=$("${cmd[@]}" 2>&1) || { ktap_print_msg "failed: ${cmd[*]}: $out"; return 1; }
	python3 -c 'import json, sys; v = json.loads(sys.stdin.read()); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" <<<"$out" ||
		{ ktap_print_msg "not ($1): $(tr '\n' ' ' <<<"$out" | cut -c1-400)"; return 1; }
}
# The state of one path of session ctl, as the tool lists it (CSV field 3).
path_state() { "$CTL" client list paths --csv | awk -F, -v p="$1" '$1 == "ctl" && $2 == p {print $3}'; }
path_is() { [ "$(path_state "$1")" = "$2" ]; }
both_connected() { path_is "$P0" connected && path_is "$P1" connected; }
# Field 8 of `stats --csv` (writes), summed over session ctl's paths.
writes() { "$CTL" client stats ctl --csv | awk -F, 'NR > 1 {s += $8} END {print s + 0}'; }

hosts_entry() {
	grep -q " $SRV_HOST\$" /etc/hosts || echo "$SRV_IP1 $SRV_HOST" >>/etc/hosts
	[ "$(getent hosts "$SRV_HOST" | awk '{print $1}')" = "$SRV_IP1" ]
}
check "rnbdctl: the tool is built" test -x "$CTL"
check "rnbdctl: /etc/hosts names link 1's server address $SRV_HOST" hosts_entry

# ctl_cell <rust|c>: both sides of one kind.
ctl_cell() {
	local m=$1 c
	c="rnbdctl ($m modules)"
	check "$c: server: two null_blk devices" \
		srv "modprobe -r null_blk 2>/dev/null; modprobe null_blk nr_devices=2 memory_backed=1 gb=1 bs=512 && test -b /dev/nullb1"
	if [ "$m" = rust ]; then
		check "$c: server: our rnbd_server loaded" srv "$(declare -f rust_srv_load); rust_srv_load Y"
		check "$c: client: our rnbd_client loaded" rust_clt_load
	else
		check "$c: server: C rnbd_server loaded" srv_fn c_rtrs_load server
		check "$c: client: C rnbd_client loaded" c_rtrs_load client
	fi
	check "$c: map nullb0 over two paths, by address and by host name" \
		out_is "device,session,mapping_path,access_mode,state,size
rnbd0,ctl,/dev/nullb0,rw,open,1073741824" \
		"$CTL" client map /dev/nullb0 from ctl "$SRV_IP0" "$SRV_HOST" --csv
	check "$c: both paths connected, the host name's to $SRV_IP1" wait_for 20 both_connected
	# What an operator sees (and the README shows).
	"$CTL" client list | sed 's/^/# /'
	"$CTL" client list paths | sed 's/^/# /'
	check "$c: list (table): the device with its size" \
		out_has "$CTL" client list -- rnbd0 ctl /dev/nullb0 open "1.0 GiB"
	check "$c: list sessions --csv" out_is "session,policy,paths,connected,devices,max_reconnect_attempts
ctl,min-inflight,2,2,1,$(cat /sys/class/rtrs-client/ctl/max_reconnect_attempts)" \
		"$CTL" client list sessions --csv
	check "$c: list paths --json: both paths with their addresses" \
		json "$CTL" client list paths --json -- \
		"v['schema_version'] == 1 and sorted(p['name'] for p in v['paths']) == sorted(['$P0', '$P1']) and all(p['session'] == 'ctl' and p['state'] == 'connected' for p in v['paths']) and sorted(p['dst_addr'] for p in v['paths']) == ['ip:$SRV_IP0', 'ip:$SRV_IP1']"
	check "$c: show ctl (table): its device and both paths" \
		out_has "$CTL" client show ctl -- rnbd0 "$P0" "$P1" connected
	check "$c: show ctl --csv: the device's row, then the paths'" \
		out_has "$CTL" client show ctl --csv -- "rnbd0,ctl,/dev/nullb0,rw,open,1073741824" "ctl,$P0,connected," "ctl,$P1,connected,"
	check "$c: show rnbd0 --json" json "$CTL" --json client show rnbd0 -- \
		"v['devices'][0]['name'] == 'rnbd0' and v['devices'][0]['size_bytes'] == 1073741824 and v['sessions'][0]['name'] == 'ctl'"
	policy() { # <arg> <upstream name>
		"$CTL" client policy ctl "$1" || return 1
		grep -q "^$2" /sys/class/rtrs-client/ctl/mpath_policy &&
			[ "$("$CTL" client list sessions --csv | awk -F, 'NR == 2 {print $2}')" = "$2" ] ||
			{ ktap_print_msg "mpath_policy: $(cat /sys/class/rtrs-client/ctl/mpath_policy)"; return 1; }
	}
	policies() { policy rr round-robin && policy ml min-latency && policy mi min-inflight; }
	check "$c: policy rr, ml, mi (the sysfs file and the tool's list)" policies
	io_counted() {
		dd if=/dev/urandom of=/dev/rnbd0 bs=64k count=64 oflag=direct status=none || return 1
		local n
		n=$(writes)
		ktap_print_msg "writes counted: $n"
		[ "$n" -ge 64 ]
	}
	check "$c: stats count the writes" io_counted
	stats_reset() { "$CTL" client stats --reset && same_number "$(writes)" 0; }
	check "$c: stats --reset: the counters are 0" stats_reset
	disconnect() { "$CTL" client path disconnect ctl "$SRV_HOST" && wait_for 20 path_is "$P1" disconnected && path_is "$P0" connected; }
	check "$c: path disconnect (by host name): that path disconnected" disconnect
	reconnect() { "$CTL" client path reconnect ctl "$SRV_IP1" && wait_for 30 path_is "$P1" connected; }
	check "$c: path reconnect (by address): connected again" reconnect
	one_path() { [ "$("$CTL" client list paths --csv | grep -c '^ctl,')" = 1 ] && path_is "$P0" connected; }
	remove() { "$CTL" client path remove ctl "ip:$SRV_IP1" && wait_for 20 one_path; }
	check "$c: path remove: one path left" remove
	add() { "$CTL" client path add ctl "$SRV_HOST" && wait_for 30 both_connected; }
	check "$c: path add (by host name): two connected paths" add
	sectors_are() { same_number "$(cat /sys/block/rnbd0/size)" "$1"; }
	resize() { "$CTL" client resize rnbd0 512M && sectors_are 1048576; }
	check "$c: resize rnbd0 512M: 1048576 sectors" resize
	bad_resize() { exits_with 2 "12q" "$CTL" client resize rnbd0 12q && sectors_are 1048576; }
	check "$c: resize with a bad size: usage error (2), sysfs untouched" bad_resize
	check "$c: remap of an open device: EALREADY, said so (exit 1)" \
		exits_with 1 "remap_device: Operation already in progress (EALREADY): the device is open already" \
		"$CTL" client remap rnbd0
	check "$c: map nullb1 ro on the existing session, without paths" \
		out_is "device,session,mapping_path,access_mode,state,size
rnbd1,ctl,/dev/nullb1,ro,open,1073741824" \
		"$CTL" client map /dev/nullb1 from ctl ro --csv
	srv "$CTL server list" | sed 's/^/# /'
	srv_list() {
		local out
		out=$(srv "$CTL server list --csv") &&
			grep -qE "^nullb0,.*,ctl,rw,.*,/dev/nullb0\$" <<<"$out" && grep -qE "^nullb1,.*,ctl,ro,.*,/dev/nullb1\$" <<<"$out" ||
			{ ktap_print_msg "server list --csv: $(tr '\n' '|' <<<"$out")"; return 1; }
	}
	check "$c: server list --csv: both devices for session ctl" srv_list
	check "$c: server list paths --json: session ctl with both paths" \
		json srv "$CTL server list paths --json" -- \
		"[s['name'] for s in v['sessions']] == ['ctl'] and sorted(p['name'] for p in v['sessions'][0]['paths']) == sorted(['$P0', '$P1'])"
	nullb1_gone() { ! srv "$CTL server list --csv" | grep -q "^nullb1,"; }
	srv_close() { srv "$CTL server close nullb1 --session ctl" && wait_for 20 nullb1_gone; }
	check "$c: server show ctl --csv: its devices and both paths" \
		out_has srv "$CTL server show ctl --csv" -- "nullb0,nullb0,ctl,rw,false,/dev/nullb0" "nullb1,nullb1,ctl,ro,true,/dev/nullb1" "ctl,$P0," "ctl,$P1,"
	check "$c: server close nullb1 --session ctl: no longer exported to ctl" srv_close
	rnbd1_gone() { [ ! -e /sys/block/rnbd1 ]; }
	unmap1() { udevadm settle; "$CTL" client unmap /dev/nullb1 && wait_for 20 rnbd1_gone; }
	check "$c: client unmap by mapping path /dev/nullb1" unmap1
	p1_down() { ! path_is "$P1" connected; }
	srv_disconnect() {
		srv "$CTL server disconnect ctl/$P1" && wait_for 30 p1_down &&
			dd if=/dev/rnbd0 of=/dev/null bs=64k count=16 iflag=direct status=none
	}
	check "$c: server disconnect ctl/<link 1 path>: the client loses that path, IO goes on" srv_disconnect
	unknown() { exits_with 3 "no session 'nosuch'" "$CTL" client show nosuch && exits_with 3 "no server session" srv "$CTL server disconnect nosuch"; }
	check "$c: unknown names: exit 3, said so" unknown
	no_device() { out_is "device,session,mapping_path,access_mode,state,size" "$CTL" client list --csv; }
	unmap0() { udevadm settle; "$CTL" client unmap rnbd0 && wait_for 20 no_device; }
	check "$c: unmap rnbd0: no device left (list --csv: the header alone)" unmap0
	if [ "$m" = rust ]; then
		unload() { rust_clt_unload && srv "$(declare -f rust_srv_unload); rust_srv_unload"; }
	else
		unload() { c_rtrs_unload client && srv_fn c_rtrs_unload server; }
	fi
	check "$c: modules unload" unload
}

ctl_cell rust
ctl_cell c
srv modprobe -r null_blk
test_end
