#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Two rdma_cm endpoints of the `rdma` crate, one per guest, connect and
# complete one RDMA WRITE WITH IMM into a fast-registered buffer; the server
# checks the immediate, the length and every byte.  Once per link (rxe0, rxe1).
. "$(dirname "$0")/lib.sh"
# 4 checks per link, 2 at the end, test_end's
test_begin rdma_write_imm 11

nothing_left() {
	! loaded rdma_selftest && ! loaded rtrs_core &&
		srv '! [ -d /sys/module/rdma_selftest ] && ! [ -d /sys/module/rtrs_core ]'
}
result() { srv cat /sys/module/rdma_selftest/parameters/result; }
passed() { result | grep -q '^PASS'; }

for link in 0 1; do
	ip=10.99.$link.2
	check "link $link: server listens on $ip" srv modprobe rdma_selftest role=server addr="$ip" len=65536
	check "link $link: client write completes" modprobe rdma_selftest role=client addr="$ip" len=65536
	ktap_print_msg "link $link: server says: $(result)"
	check "link $link: server verified imm, length and payload" passed
	modprobe -r rdma_selftest
	srv modprobe -r rdma_selftest
	check "link $link: selftest and rtrs_core unloaded, both guests" nothing_left
done

# A client must fail cleanly when nobody listens.
# Nobody listens: the selftest module turns any failed connection event
# (rxe answers a REJ) into EHOSTUNREACH.
check "client without server fails to load (EHOSTUNREACH)" fails_with "No route to host" modprobe rdma_selftest role=client addr=10.99.0.2
modprobe -r rtrs_core 2>/dev/null
check "and leaves nothing loaded" nothing_left
test_end
