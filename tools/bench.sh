#!/bin/bash
# Benchmark (not pass/fail): fio 4k randread QD1 (latency), 4k randread QD32 x 2
# jobs (IOPS) and 128k sequential read (bandwidth) on the server's local
# null_blk, upstream C RNBD and nvme-rdma, all in one run, as a table with
# ratios to C RNBD.  Uses the "perf" kernel flavour (no debugging) unless
# FLAVOUR is set.  Under TCG only ratios within one run mean anything.
set -euo pipefail
export FLAVOUR=${FLAVOUR:-perf}
. "$(dirname "$0")/env.sh"
T=$RNBD_TOP/tools
"$T/prepare.sh"
trap '"$T/vm.sh" stop >/dev/null 2>&1' EXIT
"$T/vm.sh" start
raw=$(mktemp)
"$T/vm.sh" exec clt -t 3600 -- "$RNBD_TOP/tools/guest/bench-client.sh" | tee "$raw"
python3 - "$raw" "$FLAVOUR" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3 and p[1] in ("lat", "iops", "bw"):
        rows.setdefault(p[0], {})[p[1]] = float(p[2])
ref = rows.get("rnbd-clt=c-srv=c-inv=N", {})
def ratio(t, k):
    return "%.2f" % (rows[t][k] / ref[k]) if ref.get(k) and k in rows[t] else "-"
print("\nkernel flavour: %s, TCG guests over soft-RoCE; ratios are to rnbd-clt=c-srv=c-inv=N, same run" % sys.argv[2])
print("%-28s %14s %7s %12s %7s %12s %7s" % ("target", "QD1 lat (us)", "ratio", "QD32x2 IOPS", "ratio", "128k MiB/s", "ratio"))
for t, v in rows.items():
    print("%-28s %14.1f %7s %12.0f %7s %12.1f %7s" % (
        t, v.get("lat", 0), ratio(t, "lat"), v.get("iops", 0), ratio(t, "iops"), v.get("bw", 0), ratio(t, "bw")))
PY
