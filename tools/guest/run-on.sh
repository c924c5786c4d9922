#!/bin/bash
# Run a command in a guest through its agent's command directory.
#
#   run-on.sh <cmd dir> <timeout s> <command...>
#
# Used by the host (tools/vm.sh) and by one guest to reach the other.  Prints
# the command's output and exits with its status (124 on timeout).  With
# RUN_ON_STREAM=1 (the host's default) the output is streamed while the
# command runs.
#
# Polling uses bash builtins only (globs, `read -t`): forks are slow in a
# guest under TCG.  Globs also matter for correctness: over 9p a failed
# lookup of a not-yet-existing name can stay cached, a directory read cannot.
set -u
dir=$1 timeout=$2
shift 2
# EPOCHREALTIME, not date(1): a fork costs a guest under TCG.
id=${EPOCHREALTIME/[.,]/}-$$-$RANDOM
# The first line tells the agent how long it may let the command run (it
# kills it 30 s after our own deadline, so that a hung command does not hold
# up the agent's queue for ever and is not cut before we report it).
printf '#rnbd-timeout %s\n%s\n' "$timeout" "$*" >"$dir/$id.tmp"
mv "$dir/$id.tmp" "$dir/$id.sh"
deadline=$((SECONDS + timeout))
exec {tick}<> <(:)
done=0
flush() {
	[ "${RUN_ON_STREAM:-0}" = 1 ] || return 0
	local n f
	for f in "$dir/$id".ou[t]; do
		[ -e "$f" ] || continue
		n=$(stat -c %s "$f")
		if [ "$n" -gt "$done" ]; then
			tail -c +$((done + 1)) "$f" | head -c $((n - done))
			done=$n
		fi
	done
}
finished() {
	local f
	for f in "$dir/$id".r[c]; do [ -e "$f" ] && return 0; done
	return 1
}
while ! finished; do
	flush
	if [ $SECONDS -ge $deadline ]; then
		echo "run-on: timeout after ${timeout}s: $*" >&2
		exit 124
	fi
	read -r -t 0.1 -u "$tick" || true
done
if [ "${RUN_ON_STREAM:-0}" = 1 ]; then flush; else cat "$dir/$id.out"; fi
read -r rc <"$dir/$id.rc"
rm -f "$dir/$id.run" "$dir/$id.out" "$dir/$id.rc"
exit "$rc"
