#!/bin/bash
# The whole test suite: host tests, then the kselftests in the two guests.
# Sets everything up first (idempotent).  Ends with "N passed, N failed".
#
# Environment: FLAVOUR (checked by default: lockdep, KFENCE, kmemleak and
# the other cheaper checkers; debug for KASAN; perf for none), RNBD_CACHE,
# RNBD_RUN; see tools/env.sh.  RNBD_TESTS: a space-separated subset of the
# kselftests to run (e.g. "hostile_client.sh hostile_server.sh" for a
# deeper pass under FLAVOUR=debug); all of them by default.  HOSTILE_KINDS:
# a space-separated subset of the hostile tool's kinds for the hostile tests.
set -uo pipefail
export FLAVOUR=${FLAVOUR:-checked}
. "$(dirname "$0")/env.sh"
T=$RNBD_TOP/tools

"$T/prepare.sh" || {
	echo "setup or build failed"
	echo "0 passed, 1 failed"
	exit 1
}

RUN=${RNBD_RUN:-/tmp/rnbd-rs-vms}
OUT=$RUN/results
# The tests' own logs of an earlier run must not be reported as this one's.
rm -rf "$OUT" "$RUN/shared/results"
mkdir -p "$OUT"
pass=0 fail=0 skip=0
# The reference peers' tests (upstream C RNBD on both sides, nvme-rdma):
# reported apart, not in our totals.
REF_RE='selftests: .*rnbd-rs: (c_rnbd|nvme_rdma)\.sh'
rpass=0 rfail=0

# hcheck <description> <command...>: a host-side test, one KTAP-style line.
hn=0
hcheck() {
	local desc=$1
	shift
	hn=$((hn + 1))
	local out=$OUT/harness.step
	if "$@" >"$out" 2>&1; then
		echo "ok $hn harness: $desc"
		pass=$((pass + 1))
	else
		echo "not ok $hn harness: $desc"
		# What the step printed, so that CI's log says why.
		tail -n 15 "$out" | sed 's/^/# /'
		fail=$((fail + 1))
	fi
	cat "$out" >>"$OUT/harness.log"
	rm -f "$out"
}
both_links() { "$T/vm.sh" exec clt -t 120 -- "ping -c1 -W10 10.99.0.2 && ping -c1 -W10 10.99.1.2"; }
# The server-restart test: tools/guest/restart-clt.sh in the client guest.
rs_clt() { "$T/vm.sh" exec clt -t 600 -- "bash $RNBD_TOP/tools/guest/restart-clt.sh $*"; }
rs_srv_load() { "$T/vm.sh" exec srv -t 300 -- "modprobe null_blk nr_devices=1 memory_backed=1 gb=1 bs=512 irqmode=0 && modprobe rnbd_server"; }
# restart_cycle <fast_io_fail_tmo>: the server exports null_blk to our
# client (a session over both links, mapped anew unless it is), fio runs,
# the server guest is killed hard and started again, its modules loaded:
# the client reconnects on its own and remaps (10 checks).
restart_cycle() {
	hcheck "reconnect: server exports null_blk (our modules)" rs_srv_load
	if [ "$1" = 300 ]; then
		hcheck "reconnect: client maps over both links, fast_io_fail_tmo=$1" rs_clt map "$1"
	else
		hcheck "reconnect: fast_io_fail_tmo=$1" "$T/vm.sh" exec clt -t 60 -- "echo $1 >/sys/module/rnbd_client/parameters/fast_io_fail_tmo"
	fi
	hcheck "reconnect: fio running on /dev/rnbd0" rs_clt fio-start
	hcheck "srv killed hard" "$T/vm.sh" kill srv
	hcheck "srv is gone" srv_gone
	hcheck "srv restarts" "$T/vm.sh" start srv
	hcheck "both links work again, clt untouched" both_links
	hcheck "reconnect (fast_io_fail_tmo=$1): the client saw the server go (missed heartbeats; device closed)" rs_clt closed 120
	hcheck "reconnect (fast_io_fail_tmo=$1): server exports again" rs_srv_load
	hcheck "reconnect (fast_io_fail_tmo=$1): the client reconnects and remaps on its own (device open)" rs_clt open 150
}
srv_gone() { [ "$("$T/vm.sh" status | grep -c 'srv running')" = 0 ]; }
no_vm_left() { ! pgrep -f -- '-name rnbdrs-' >/dev/null; }

# --- host: cargo test of the pure-Rust crates -------------------------------
log "host tests"
# The golden bytes are regenerated from the unpacked 6.12 headers, so the
# layout test checks against the C source itself, not only the committed copy.
if "$RNBD_TOP/proto/golden/gen.sh" "$KSRC" "$OUT/wire.golden" 2>"$OUT/golden.log"; then
	export RNBD_GOLDEN=$OUT/wire.golden
	cmp -s "$OUT/wire.golden" "$RNBD_TOP/proto/golden/wire.golden" ||
		log "note: proto/golden/wire.golden differs from the one generated from $KSRC"
else
	log "could not generate golden bytes from $KSRC (see $OUT/golden.log); using the committed copy"
fi
cargo test --manifest-path "$RNBD_TOP/proto/Cargo.toml" 2>&1 | tee "$OUT/host.log"
host_rc=${PIPESTATUS[0]}
# tools/rnbdctl against fake sysfs trees laid out as the 6.12 modules'.
cargo test --release --locked --manifest-path "$RNBD_TOP/tools/rnbdctl/Cargo.toml" 2>&1 | tee -a "$OUT/host.log"
[ "${PIPESTATUS[0]}" = 0 ] || host_rc=1
hp=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$OUT/host.log")
hf=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$OUT/host.log")
[ "$host_rc" != 0 ] && [ "$hf" = 0 ] && hf=1 # did not build
pass=$((pass + hp)) fail=$((fail + hf))

# --- host: Rust hygiene -------------------------------------------------------
# rustfmt (the kernel's settings), the CLIPPY=1 module build against this
# flavour's tree, the FFI rules (SAFETY comments, # Safety, # Invariants, no
# unwrap/expect); KTAP lines of their own.
log "rust hygiene"
echo "TAP version 13"
echo "1..3"
hn=0
hcheck "rustfmt --check, kernel settings (tools/lint.sh fmt)" "$T/lint.sh" fmt
hcheck "FFI discipline (tools/lint.sh ffi)" "$T/lint.sh" ffi
hcheck "clippy: CLIPPY=1 module build clean (tools/lint.sh clippy)" "$T/lint.sh" clippy

# --- guests: kselftests ------------------------------------------------------
trap '"$T/vm.sh" stop >/dev/null 2>&1' EXIT
if "$T/vm.sh" start; then
	log "kselftests in the client guest"
	# Per-test limit: selftests/rnbd-rs/settings (900 s) on the perf kernel;
	# lockdep and kmemleak (checked) make the longest tests slower, KASAN
	# (debug) makes the hostile tests about three times slower.
	# HOSTILE_BATCH: hostile_client.sh runs all its kinds in one tool call
	# (HOSTILE_BATCH=0 in the environment: one call per kind, each kind's
	# server log apart; 8 more minutes under the checked kernel).
	case $FLAVOUR in
	checked) ksft_timeout="kselftest_override_timeout=1800 HOSTILE_BATCH=${HOSTILE_BATCH:-1}" ;;
	debug) ksft_timeout="kselftest_override_timeout=2700 HOSTILE_BATCH=1" ;;
	*) ksft_timeout= ;;
	esac
	"$T/vm.sh" exec clt -t 5400 -- \
		"cd $RNBD_TOP/selftests/rnbd-rs && ${HOSTILE_KINDS:+HOSTILE_KINDS='$HOSTILE_KINDS'} make -s KSRC=$KSRC ${RNBD_TESTS:+TEST_PROGS='$RNBD_TESTS'} $ksft_timeout run_tests" | tee "$OUT/kselftest.tap"
	for vm in clt srv; do "$T/vm.sh" dmesg "$vm" >"$OUT/dmesg-$vm.log" 2>&1; done
	# Soft-RoCE's counters (retransmissions, RNR, sequence errors) tell a
	# lossy link from a stuck peer when a request timed out.
	for vm in clt srv; do "$T/vm.sh" exec "$vm" -t 60 -- "rdma statistic show" >"$OUT/rxe-counters-$vm.log" 2>&1; done
	# Each test's own KTAP lines (see selftests/rnbd-rs/lib.sh).
	for f in "$RUN"/shared/results/*.log; do
		[ -e "$f" ] || continue
		cp "$f" "$OUT/"
		echo "# ---- $(basename "$f" .log)"
		grep -E '^(not )?ok |^# ' "$f" | sed 's/^/# /'
	done
	# The harness itself: links, hard kill and restart of one guest, and
	# the VMs gone after the stop; with it, our client through server
	# restarts under IO (KTAP).
	echo "TAP version 13"
	# The server-restart test (25 checks) runs by default; RNBD_RESTART_TEST=0
	# leaves it out (the 6 harness checks only).
	hn=0
	if [ "${RNBD_RESTART_TEST:-1}" = 1 ]; then
		echo "1..25"
		hcheck "clt reaches srv over both links" both_links
		restart_cycle 300
		hcheck "reconnect (fast_io_fail_tmo=300): fio ran through the server's restart without an error" rs_clt fio-ok 10
		restart_cycle 0
		hcheck "reconnect (fast_io_fail_tmo=0): fio failed with an IO error while the server was down, as upstream" rs_clt fio-failed 5
		hcheck "reconnect: unmap and unload" rs_clt unmap
		# The guests' logs of the restart test (the kselftests' were taken above).
		for vm in clt srv; do "$T/vm.sh" dmesg "$vm" >"$OUT/dmesg-restart-$vm.log" 2>&1; done
	else
		echo "1..6"
		hcheck "clt reaches srv over both links" both_links
		hcheck "srv killed hard" "$T/vm.sh" kill srv
		hcheck "srv is gone" srv_gone
		hcheck "srv restarts" "$T/vm.sh" start srv
		hcheck "both links work again, clt untouched" both_links
	fi
	ours=$(grep -E '^(not )?ok [0-9]+ selftests: ' "$OUT/kselftest.tap" | grep -vE "$REF_RE")
	ref=$(grep -E '^(not )?ok [0-9]+ selftests: ' "$OUT/kselftest.tap" | grep -E "$REF_RE")
	kp=$(grep -cE '^ok ' <<<"$ours")
	ks=$(grep -cE '^ok .*# SKIP' <<<"$ours")
	kf=$(grep -cE '^not ok ' <<<"$ours")
	pass=$((pass + kp - ks)) skip=$((skip + ks)) fail=$((fail + kf))
	rpass=$(grep -cE '^ok ' <<<"$ref") rfail=$(grep -cE '^not ok ' <<<"$ref")
	[ $((kp + kf)) -gt 0 ] || { echo "no kselftest ran"; fail=$((fail + 1)); }
else
	echo "guests did not start"
	fail=$((fail + 1))
fi
"$T/vm.sh" stop
trap - EXIT
hcheck "no VM process left after stop" no_vm_left

log "results and guest logs in $OUT"
echo "reference peers (upstream C RNBD, nvme-rdma; not counted below): $rpass passed, $rfail failed"
[ "$skip" = 0 ] || echo "$skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
