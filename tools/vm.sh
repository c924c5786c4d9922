#!/bin/bash
# Two-VM harness: a client guest (clt) and a server guest (srv) booting the
# cached kernel under TCG with virtme-ng, joined by two guest-only links.
#
#   vm.sh start [clt|srv|all]     boot (waits until the guest agent is ready)
#   vm.sh exec <vm> [-t secs] -- <command...>
#                                 run a command in a guest; prints its output,
#                                 exits with its status
#   vm.sh dmesg <vm>              the guest's kernel log
#   vm.sh kill <vm>               kill the VM hard (QEMU SIGKILL)
#   vm.sh restart <vm>            kill, then start again
#   vm.sh stop [clt|srv|all]      orderly shutdown, then kill what is left
#   vm.sh status
#
# RNBD_GUEST_APPEND: extra kernel command line for the guests (e.g.
# "kmemleak=off" to measure what one checker of the checked flavour costs).
#
# Links: QEMU "socket" netdevs in UDP mode on 127.0.0.1 (nothing reaches the
# host's network), link L between 10.99.L.1 (clt) and 10.99.L.2 (srv), with
# rxe0/rxe1 on top in each guest.  UDP keeps no connection state, so one VM
# can be killed and restarted while the other keeps running.
#
# The guests' root is the host's, read-only over 9p, mounted with cache=loose:
# without a page cache every exec re-reads its binary over 9p, which made a
# bare `bash -c true` take over a second under TCG.  The command directories
# are separate, uncached mounts.
set -euo pipefail
. "$(dirname "$0")/env.sh"

RUN=${RNBD_RUN:-/tmp/rnbd-rs-vms}
PORT_BASE=${RNBD_PORT_BASE:-42100}
MEM=${RNBD_VM_MEM:-2G}
CPUS=${RNBD_VM_CPUS:-2}
# The debug kernel's boot is mostly udev coldplug (virtme-ng-init always
# runs it when it finds udevd): 205-260 s here, over 300 s on a CI machine.
BOOT_TIMEOUT=${RNBD_BOOT_TIMEOUT:-900}
SHARED=$RUN/shared

host_no() { case $1 in clt) echo 1 ;; srv) echo 2 ;; *) die "unknown VM '$1' (clt or srv)" ;; esac; }
peer_no() { [ "$(host_no "$1")" = 1 ] && echo 2 || echo 1; }
vms() { if [ "${1:-all}" = all ]; then echo srv clt; else host_no "$1" >/dev/null; echo "$1"; fi; }
qemu_pids() { pgrep -f -- "-name rnbdrs-$1" || true; }
running() { [ -n "$(qemu_pids "$1")" ]; }

start_one() {
	local vm=$1 me peer opts l dir=$RUN/$1
	running "$vm" && { log "$vm already running"; return 0; }
	me=$(host_no "$vm"); peer=$(peer_no "$vm")
	[ -f "$KBUILD/arch/x86/boot/bzImage" ] || die "no kernel in $KBUILD: run tools/build-kernel.sh"
	rm -rf "$dir/ctl" "${SHARED:?}/$vm"
	mkdir -p "$dir/ctl" "$SHARED/$vm/cmd"
	# Single-threaded TCG: multi-threaded TCG raced with the kernel's text
	# patching at boot (an int3 Oops as sched_clock flipped a static key);
	# and with two guests on two host cores, one thread per guest is enough.
	# tsc=reliable (below): under TCG the clocksource watchdog reports long
	# stalls and sometimes declares the TSC unstable mid-run, switching to
	# HPET, whose every read is an emulated MMIO access.  (The silent
	# session losses once blamed on this were ARP failures after such
	# stalls: agent.sh now sets permanent neighbour entries.)
	opts="-accel tcg,thread=single"
	for l in 0 1; do
		opts+=" -netdev socket,id=l$l,udp=127.0.0.1:$((PORT_BASE + 10 * l + peer)),localaddr=127.0.0.1:$((PORT_BASE + 10 * l + me))"
		opts+=" -device virtio-net-pci,netdev=l$l,mac=$(printf '52:54:00:99:%02x:%02x' "$l" "$me")"
	done
	log "starting $vm (TCG, $CPUS CPUs, $MEM, kernel $FLAVOUR)"
	(cd "$RNBD_TOP" && exec setsid vng --run "$KBUILD" --disable-kvm --verbose \
		--cpus "$CPUS" --memory "$MEM" --name "rnbdrs-$vm" \
		--rwdir "$dir/ctl" --rwdir "$SHARED" --qemu-opts="$opts" \
		--append "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose" \
		--append "tsc=reliable" \
		--append "log_buf_len=8M" \
		${RNBD_GUEST_APPEND:+--append "$RNBD_GUEST_APPEND"} \
		--exec "$RNBD_TOP/tools/guest/agent.sh $vm $dir/ctl $SHARED" \
		>"$dir/console.log" 2>&1 </dev/null) &
	echo $! >"$dir/vng.pid"
}

wait_ready() {
	local vm=$1 t0=$SECONDS
	while [ ! -e "$RUN/$vm/ctl/ready" ]; do
		if ! running "$vm" && [ $((SECONDS - t0)) -gt 20 ]; then
			tail -30 "$RUN/$vm/console.log" >&2
			die "$vm died while booting (console: $RUN/$vm/console.log)"
		fi
		[ $((SECONDS - t0)) -lt "$BOOT_TIMEOUT" ] || { tail -30 "$RUN/$vm/console.log" >&2; die "$vm not ready after ${BOOT_TIMEOUT}s"; }
		sleep 0.5
	done
	log "$vm ready after $((SECONDS - t0)) s"
}

kill_one() {
	local vm=$1 p
	for p in $(qemu_pids "$vm"); do kill -9 "$p" 2>/dev/null || true; done
	[ -f "$RUN/$vm/vng.pid" ] && kill -9 -- -"$(cat "$RUN/$vm/vng.pid")" 2>/dev/null || true
	for _ in $(seq 50); do running "$vm" || break; sleep 0.1; done
	rm -f "$RUN/$vm/vng.pid"
}

stop_one() {
	local vm=$1
	if running "$vm"; then
		touch "$RUN/$vm/ctl/cmd/stop" 2>/dev/null || true
		for _ in $(seq 100); do running "$vm" || break; sleep 0.3; done
	fi
	kill_one "$vm"
}

# The UDP links drop datagrams when a busy guest's QEMU does not drain its
# socket in time (seen as host UdpRcvbufErrors, and as ~1 s rxe retransmit
# timeouts per IO until the QP gave up).  Sockets take the default receive
# buffer at creation, so raise it (never lower it) before QEMU starts.
raise_udp_buffers() {
	local k want=16777216
	for k in net.core.rmem_default net.core.rmem_max net.core.wmem_default; do
		[ "$(sysctl -n "$k")" -ge "$want" ] || sysctl -qw "$k=$want" ||
			log "warning: cannot raise $k; expect packet loss on the links"
	done
}

cmd=${1:-}
shift || true
case $cmd in
start)
	mkdir -p "$RUN" "$SHARED"
	raise_udp_buffers
	for vm in $(vms "${1:-all}"); do start_one "$vm"; done
	for vm in $(vms "${1:-all}"); do wait_ready "$vm"; done
	;;
exec)
	vm=$1; shift
	timeout=3600
	[ "${1:-}" = -t ] && { timeout=$2; shift 2; }
	[ "${1:-}" = -- ] && shift
	running "$vm" || die "$vm is not running"
	RUN_ON_STREAM=${RUN_ON_STREAM:-1} exec "$RNBD_TOP/tools/guest/run-on.sh" "$RUN/$vm/ctl/cmd" "$timeout" "$@"
	;;
dmesg) exec "$0" exec "$1" -t 60 -- dmesg ;;
kill) kill_one "$1" ;;
restart) raise_udp_buffers; kill_one "$1"; start_one "$1"; wait_ready "$1" ;;
stop) for vm in $(vms "${1:-all}"); do stop_one "$vm"; done ;;
status) for vm in clt srv; do running "$vm" && echo "$vm running" || echo "$vm stopped"; done ;;
*) sed -n '2,20p' "$0"; exit 2 ;;
esac
