#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# rtrs_core's ib_client sees every rxe device when loaded and notices one
# being removed and added again.
. "$(dirname "$0")/lib.sh"
test_begin rdma_devices

# count <pattern>: how often this guest logged <pattern> during this test.
count() { log_since_mark clt | grep -c "$1"; }
seen_times() { [ "$(count "rtrs_core: RDMA device $1 $2")" -eq "$3" ]; }
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
