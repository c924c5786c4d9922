#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rtrs_core's ib_client sees every rxe device when loaded and notices one
# being removed and added again.
. "$(dirname "$0")/lib.sh"
test_begin rdma_devices 11

# seen_times <dev> <added|removed> <n>: logged exactly n times during this
# test (count_logged fails when the log since the mark cannot be read).
seen_times() {
	local n
	n=$(count_logged clt "rtrs_core: RDMA device $1 $2") || return 1
	[ "$n" -eq "$3" ] || { ktap_print_msg "$1 $2: seen $n times, expected $3"; return 1; }
}
rxe_exist() { rdma link show rxe0/1 >/dev/null && rdma link show rxe1/1 >/dev/null; }

check "rxe0 and rxe1 exist" rxe_exist
check "rtrs_core loads" modprobe rtrs_core
check "rxe0 listed at load" seen_times rxe0 added 1
check "rxe1 listed at load" seen_times rxe1 added 1
check "rxe1 deleted" rdma link delete rxe1
check "removal of rxe1 noticed" seen_times rxe1 removed 1
check "rxe0 not reported removed" seen_times rxe0 removed 0
check "rxe1 added again" rdma link add rxe1 type rxe netdev rnbd1
check "new rxe1 noticed" seen_times rxe1 added 2
check "rtrs_core unloads" modprobe -r rtrs_core
test_end
