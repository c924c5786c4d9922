#!/bin/bash
# Run a command in a guest through its agent's command directory.
#
#   run-on.sh <cmd dir> <timeout s> <command...>
#
# Used by the host (tools/vm.sh) and by one guest to reach the other.  Prints
# the command's output and exits with its status (124 on timeout).
set -u
dir=$1 timeout=$2
shift 2
id=$(date +%s%N)-$$-$RANDOM
printf '%s\n' "$*" >"$dir/$id.tmp"
mv "$dir/$id.tmp" "$dir/$id.sh"
deadline=$((SECONDS + timeout))
done=0
# Streams the output while the command runs.
flush() {
	local n
	[ -e "$dir/$id.out" ] || return 0
	n=$(stat -c %s "$dir/$id.out")
	if [ "$n" -gt "$done" ]; then
		tail -c +$((done + 1)) "$dir/$id.out" | head -c $((n - done))
		done=$n
	fi
}
while [ ! -e "$dir/$id.rc" ]; do
	flush
	if [ $SECONDS -ge $deadline ]; then
		echo "run-on: timeout after ${timeout}s: $*" >&2
		exit 124
	fi
	sleep 0.2
done
flush
rc=$(cat "$dir/$id.rc")
rm -f "$dir/$id.run" "$dir/$id.out" "$dir/$id.rc"
exit "$rc"
