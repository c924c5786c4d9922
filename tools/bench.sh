#!/bin/bash
# Benchmark (not pass/fail).  Rows: the server's local null_blk, RNBD with
# every client/server pairing of upstream C and ours, each with
# always_invalidate N and Y, and nvme-rdma, all on the same null_blk.  Jobs:
# 4k randread/randwrite at QD1 (latency), at QD32 x 2 jobs (IOPS), 4k
# randread with 16 jobs x QD8, 128k sequential read and write (bandwidth).
# Every cell runs BENCH_REPS times (3), interleaved across rows; the table
# gives the median, the spread ((max - min) / median) and the ratio to C/C
# with the same always_invalidate, and CPU time per IO on both guests (busy
# jiffies over the run / IOs), which TCG does not hide.
#
# Output: Documentation/bench/results.md (the table), results.txt (the raw
# lines) and bench.png (ratios to C/C), unless BENCH_OUT says elsewhere.
# BENCH_PROFILE=1 also samples every run with perf in both guests and puts
# the reports in $OUT/prof (tools/guest/bench-client.sh says what they hold).
# Uses the "perf" kernel flavour unless FLAVOUR is set.  Under TCG only
# ratios within one run mean anything.
set -euo pipefail
export FLAVOUR=${FLAVOUR:-perf}
. "$(dirname "$0")/env.sh"
T=$RNBD_TOP/tools
OUT=${BENCH_OUT:-$RNBD_TOP/Documentation/bench}
"$T/prepare.sh"
# The plot: matplotlib in the project's venv (PyPI), only for the benchmark.
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null ||
	"$VENV/bin/pip" install -q matplotlib
trap '"$T/vm.sh" stop >/dev/null 2>&1' EXIT
"$T/vm.sh" start
mkdir -p "$OUT"
raw=$OUT/results.txt
RUN=${RNBD_RUN:-/tmp/rnbd-rs-vms}
rm -rf "$RUN/shared/prof"
"$T/vm.sh" exec clt -t 14400 -- \
	"BENCH_RUNTIME=${BENCH_RUNTIME:-8} BENCH_REPS=${BENCH_REPS:-3} ${BENCH_ROWS:+BENCH_ROWS='$BENCH_ROWS'} ${BENCH_JOBS:+BENCH_JOBS='$BENCH_JOBS'} ${BENCH_PROFILE:+BENCH_PROFILE=1} $RNBD_TOP/tools/guest/bench-client.sh" |
	tee "$raw"
if [ -n "${BENCH_PROFILE:-}" ]; then
	rm -rf "$OUT/prof"
	cp -r "$RUN/shared/prof" "$OUT/prof"
	log "profiles: $OUT/prof"
fi
"$VENV/bin/python" - "$raw" "$OUT" "$FLAVOUR" <<'PY'
import statistics, sys
raw, out, flavour = sys.argv[1:4]
cells = {}
mem = {}
for line in open(raw):
    p = line.split()
    if len(p) in (4, 6) and p[0] == "mem":
        parts = [int(x) for x in p[3:]] + [0, 0]
        mem.setdefault(p[1], []).append(parts[:3])
        continue
    if len(p) != 7:
        continue
    try:
        v, ios, cb, sb = float(p[3]), int(p[4]), int(p[5]), int(p[6])
    except ValueError:
        continue
    c = cells.setdefault((p[0], p[1]), {"v": [], "c": [], "s": []})
    c["v"].append(v)
    # jiffies are 10 ms (USER_HZ 100): CPU us per IO
    c["c"].append(cb * 10000 / ios if ios else 0)
    c["s"].append(sb * 10000 / ios if ios else 0)
rows = list(dict.fromkeys(t for t, _ in cells))
jobs = list(dict.fromkeys(j for _, j in cells))
med = lambda xs: statistics.median(xs)
spread = lambda xs: 100 * (max(xs) - min(xs)) / med(xs) if med(xs) else 0
def ref(t):
    return "c-c-Y" if t.endswith("-Y") else "c-c-N"
def ratio(t, j, k):
    r = cells.get((ref(t), j))
    x = cells.get((t, j))
    if not r or not x or not med(r[k]):
        return None
    return med(x[k]) / med(r[k])
unit = {"lat": "us", "iops": "IOPS", "jobs16": "IOPS", "bw": "MiB/s"}
lines = ["# Benchmark results", "",
         "Kernel flavour `%s`, TCG guests over soft-RoCE (rxe), server null_blk; "
         "medians of %d interleaved repetitions, spread = (max - min) / median; "
         "ratio = this row / C-C with the same always_invalidate (lower is better for "
         "latency and CPU, higher for IOPS and bandwidth).  CPU = busy CPU time per IO "
         "in us (client guest / server guest).  Rows: client-server-always_invalidate; "
         "`rust` is ours, `c` upstream." % (flavour, max(len(c["v"]) for c in cells.values())), ""]
# Summary: each job's result and the CPU per IO as ratios to C/C (same
# always_invalidate), one line per row; the CPU columns are the median of
# the row's per-job ratios.
f2 = lambda r: "%.2f" % r if r is not None else "-"
lines += ["## Summary (ratios to C-C with the same always_invalidate)", "",
          "| row | " + " | ".join(jobs) + " | clt CPU/IO | srv CPU/IO |",
          "|-----|" + "---:|" * (len(jobs) + 2)]
for t in rows:
    if t == "local":
        continue
    cr = [ratio(t, j, "c") for j in jobs if ratio(t, j, "c") is not None]
    sr = [ratio(t, j, "s") for j in jobs if ratio(t, j, "s") is not None]
    lines.append("| %s | %s | %s | %s |" % (
        t, " | ".join(f2(ratio(t, j, "v")) for j in jobs),
        f2(med(cr)) if cr else "-", f2(med(sr)) if sr else "-"))
lines.append("")
for j in jobs:
    u = unit[j.split("_")[0]]
    lines += ["## %s" % j, "",
              "| row | %s | spread | ratio | clt CPU/IO | ratio | srv CPU/IO | ratio |" % u,
              "|-----|---:|---:|---:|---:|---:|---:|---:|"]
    for t in rows:
        x = cells.get((t, j))
        if not x:
            continue
        f = lambda r: "%.2f" % r if r is not None else "-"
        lines.append("| %s | %.1f | %.0f%% | %s | %.1f | %s | %.1f | %s |" % (
            t, med(x["v"]), spread(x["v"]), f(ratio(t, j, "v")),
            med(x["c"]), f(ratio(t, j, "c")), med(x["s"]), f(ratio(t, j, "s"))))
    lines.append("")
if mem:
    lines += ["## Client memory of a mapped device (its session)", "",
              "MemAvailable + AnonPages before and after map_device, page cache dropped; "
              "median over the repetitions, KiB; of which slab (`Slab:`) and vmalloc "
              "(`VmallocUsed:`, where rxe keeps its queues); the rest is pages allocated "
              "directly (chunk/MR tables, DMA buffers).", "",
              "| row | KiB | min | max | slab | vmalloc | rest |",
              "|-----|---:|---:|---:|---:|---:|---:|"]
    for t, v in mem.items():
        tot = [x[0] for x in v]
        sl = med([x[1] for x in v])
        vm = med([x[2] for x in v])
        lines.append("| %s | %d | %d | %d | %d | %d | %d |" % (
            t, med(tot), min(tot), max(tot), sl, vm, med(tot) - sl - vm))
    lines.append("")
open(out + "/results.md", "w").write("\n".join(lines))
print("\n".join(lines))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    show = [t for t in rows if t not in ("c-c-N", "c-c-Y", "local")]
    fig, axes = plt.subplots(3, 1, figsize=(12, 11), sharex=True)
    for ax, (k, name) in zip(axes, [("v", "result"), ("c", "client CPU/IO"), ("s", "server CPU/IO")]):
        w = 0.8 / max(len(show), 1)
        for i, t in enumerate(show):
            ys = [ratio(t, j, k) or 0 for j in jobs]
            ax.bar([n + i * w for n in range(len(jobs))], ys, w, label=t)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel(name + " / C-C")
    axes[0].legend(ncol=4, fontsize=8)
    axes[-1].set_xticks([n + 0.4 - 0.4 / max(len(show), 1) for n in range(len(jobs))])
    axes[-1].set_xticklabels(jobs)
    fig.suptitle("rnbd-rs vs upstream C RNBD (ratios to C-C, same always_invalidate; TCG + rxe, %s)" % flavour)
    fig.tight_layout()
    fig.savefig(out + "/bench.png", dpi=90)
    print("plot: %s/bench.png" % out)
except Exception as e:  # the table is the result; the plot is a view of it
    print("no plot: %s" % e)
PY
