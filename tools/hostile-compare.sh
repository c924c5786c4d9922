#!/bin/bash
# The hostile client (tools/hostile) against the upstream 6.12 C server,
# kind by kind, as a table beside our server's results (not pass/fail:
# upstream may WARN, oops or hang its guest; the guest is then restarted
# and the run goes on with the next kind).
#
#   tools/hostile-compare.sh [<hostile_client.sh output>]
#
# Our column comes from a hostile_client.sh run (its KTAP lines; by default
# the last suite's results).  Prints a reStructuredText table.
set -uo pipefail
export FLAVOUR=${FLAVOUR:-perf}
. "$(dirname "$0")/env.sh"
T=$RNBD_TOP/tools
RUN=${RNBD_RUN:-/tmp/rnbd-rs-vms}
ours_log=${1:-$RUN/results/hostile_client.log}
[ -r "$ours_log" ] || { echo "no hostile_client.sh output at $ours_log: run the suite first" >&2; exit 1; }
"$T/prepare.sh" >&2 || exit 1
trap '"$T/vm.sh" stop >/dev/null 2>&1' EXIT
"$T/vm.sh" start >&2 || exit 1
raw=$(mktemp)
first=1
while :; do
	"$T/vm.sh" exec clt -t 7200 -- "cd $RNBD_TOP/selftests/rnbd-rs && KSRC=$KSRC ./hostile_upstream.sh $first" | tee -a "$raw" >&2
	rc=${PIPESTATUS[0]}
	[ "$rc" = 3 ] || break
	last=$(grep '^row|' "$raw" | tail -1 | cut -d'|' -f2)
	first=$((last + 1))
	"$T/vm.sh" restart srv >&2 || exit 1
done
python3 - "$ours_log" "$raw" <<'PY'
import re, sys
ours = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(not )?ok \d+ hostile-client (\S+): (.*)", line.strip())
    if m:
        ours[m.group(2)] = ("pass: " if not m.group(1) else "FAIL: ") + re.sub(r"; \d+ lines in srv's log.*", "", m.group(3))
rows = []
for line in open(sys.argv[2], errors="replace"):
    if not line.startswith("row|"):
        continue
    _, n, kind, tool, log = line.rstrip("\n").split("|", 4)
    tool = re.sub(r"^(not )?ok \S+ ", lambda m: "FAIL: " if m.group(1) else "pass: ", tool)
    rows.append((kind, ours.get(kind, "-"), tool, log))
def cell(s, w):
    s = re.sub(r" \[[0-9.]+s\]", "", s)
    return (s[: w - 1] + "~") if len(s) > w else s
w = (32, 52, 52, 40)
sep = "+" + "+".join("-" * (x + 2) for x in w) + "+"
print(sep)
print("| " + " | ".join(h.ljust(x) for h, x in zip(("kind", "ours", "upstream 6.12", "upstream server log"), w)) + " |")
print(sep.replace("-", "="))
for r in rows:
    print("| " + " | ".join(cell(c, x).ljust(x) for c, x in zip(r, w)) + " |")
    print(sep)
PY
