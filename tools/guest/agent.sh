#!/bin/bash
# Guest side of the harness (runs as the guest's init command under vng).
#
#   agent.sh <name> <ctl dir> <shared dir>
#
# Configures the two test links and their rxe devices, then executes command
# files dropped into <ctl dir>/cmd (by the host) and <shared dir>/<name>/cmd
# (by the other guest), writing <id>.out and <id>.rc next to them.  A file
# named "stop" ends the agent, and with it the VM.
set -u
name=$1 ctl=$2 shared=$3
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export RNBD_VM=$name RNBD_SHARED=$shared
mkdir -p "$ctl/cmd" "$shared/$name/cmd"
log() { echo "agent[$name]: $*" >/dev/kmsg; }

# Host number on the links: client .1, server .2.
case $name in
clt) me=1 ;;
srv) me=2 ;;
*) me=9 ;;
esac
hostname "$name"
ip link set lo up
# Our NICs have MACs 52:54:00:99:<link>:<host>; find them by MAC, not name.
for link in 0 1; do
	mac=$(printf '52:54:00:99:%02x:%02x' "$link" "$me")
	dev=$(ip -o link | awk -v m="$mac" 'index($0, m) {sub(":", "", $2); print $2}')
	if [ -z "$dev" ]; then
		log "no NIC with MAC $mac"
		continue
	fi
	ip link set "$dev" name "rnbd$link" 2>/dev/null && dev=rnbd$link
	ip addr add "10.99.$link.$me/24" dev "$dev"
	# IPv6 too (RTRS paths of either family): a ULA per link, no duplicate
	# address detection (the link is ours alone; DAD would delay the
	# address, and rxe's GID for it, by a second or more); kept while the
	# link is down (the tests take links down and up).
	sysctl -qw "net.ipv6.conf.$dev.keep_addr_on_down=1"
	ip -6 addr add "fd99:$link::$me/64" dev "$dev" nodad
	ip link set "$dev" up
	# The peer's address is fixed, so is its MAC: a permanent neighbour
	# entry.  With a dynamic one, a TCG stall of a few seconds made the
	# ARP probes time out, the entry went FAILED, and rdma_cm tore down
	# every RDMA connection to that address within a second, with no
	# error completion and no log line (reproduced on demand by turning
	# the client's ARP probes off: the C client and C server lost their
	# session at the FAILED transition).  That was the "silent session
	# loss" of the interop runs.
	peer=$((3 - me))
	if [ "$me" -le 2 ]; then
		pmac=$(printf '52:54:00:99:%02x:%02x' "$link" "$peer")
		ip neigh replace "10.99.$link.$peer" dev "$dev" nud permanent lladdr "$pmac"
		ip -6 neigh replace "fd99:$link::$peer" dev "$dev" nud permanent lladdr "$pmac"
	fi
done
modprobe rdma_rxe 2>/dev/null && for link in 0 1; do
	rdma link add "rxe$link" type rxe netdev "rnbd$link" || log "rxe$link not created"
done
log "ready: $(ip -br addr | tr '\n' ' ')"
echo ready >"$ctl/ready"

run_one() { # <cmd file>
	local f=$1 base=${1%.sh} tag tmo
	mv "$f" "$base.run" || return
	# The caller's limit (run-on.sh's first line) plus 30 s; 3600 s for a
	# command file without one.  A fixed limit here once cut the 60-minute
	# kselftest run that the host had given 90 minutes, and what the killed
	# test left running then broke the next host step.
	read -r tag tmo <"$base.run"
	[ "$tag" = "#rnbd-timeout" ] && [[ $tmo =~ ^[0-9]{1,6}$ ]] && tmo=$((10#$tmo + 30)) || tmo=${RNBD_CMD_TIMEOUT:-3600}
	# Output through a pipe, not straight into the file: kselftest's runner
	# re-opens /dev/stdout, which for a file starts over at offset 0.
	(cd / && timeout --signal=KILL "$tmo" bash "$base.run") 2>&1 </dev/null | cat >"$base.out"
	echo "${PIPESTATUS[0]}" >"$base.rc.tmp"
	mv "$base.rc.tmp" "$base.rc"
}

# Builtins only in the idle loop (forks are slow under TCG); globs read the
# directory afresh, where a lookup by name could hit a stale 9p entry.
exec {tick}<> <(:)
while :; do
	for d in "$ctl/cmd" "$shared/$name/cmd"; do
		for f in "$d"/*.sh; do
			[ -e "$f" ] && run_one "$f"
		done
		for f in "$d"/sto[p]; do
			[ -e "$f" ] && { log "stop"; rm -f "$f"; exit 0; }
		done
	done
	read -r -t 0.3 -u "$tick" || true
done
