#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Multipath interop, sourced by multipath_<clt>_<srv>.sh: a client (ours or
# upstream C) maps over both links from a server (ours or upstream C), over
# IPv6, link 0 with its source address given (`src@dst`); both sides name
# the paths as upstream does.  (Not IPv4 and IPv6 in one session: the C
# server refuses the second path with EEXIST, as its sockaddr_cmp() takes
# addresses of different families for equal.)  Link 1 goes down under a
# verifying fio: the requests on that path fail over to link 0 without an
# error, and the device stays usable.
#
# mp_interop_cell <rust|c> <rust|c>
. "$(dirname "$0")/lib.sh"

MP_FIO_SIZE=${MP_FIO_SIZE:-192M}

link1_up() { link_up 1; }

mp_interop_cell() {
	local clt=$1 srvside=$2 cell name
	cell="clt=$clt srv=$srvside"
	name=multipath_${clt}_${srvside}
	test_begin "$name" 14
	trap 'link1_up 2>/dev/null; cleanup_data' EXIT
	check "multipath $cell: server: null_blk" srv_nullb
	if [ "$srvside" = rust ]; then
		check "multipath $cell: server: our rnbd_server loaded" srv "modprobe -r rnbd_server rtrs_server rtrs_core 2>/dev/null; modprobe rnbd_server"
	else
		check "multipath $cell: server: C rnbd_server loaded" srv_fn c_rtrs_load server
	fi
	if [ "$clt" = rust ]; then
		check "multipath $cell: client: our rnbd_client loaded" sh -c "modprobe -r rnbd_client rtrs_client rtrs_core 2>/dev/null; modprobe rnbd_client"
	else
		check "multipath $cell: client: C rnbd_client loaded" c_rtrs_load client
	fi
	map() { echo "sessname=mpi path=ip:$CLT_IP6_0@ip:$SRV_IP6_0 path=ip:$SRV_IP6_1 device_path=/dev/nullb0 access_mode=rw" >/sys/class/rnbd-client/ctl/map_device; }
	check "multipath $cell: map_device with two IPv6 paths, one from a source address" map
	check "multipath $cell: /dev/rnbd0 appears" wait_for 30 test -b /dev/rnbd0
	# Upstream's names: <src>@<dst> on the client, <client>@<server> on
	# the server, IPv6 as %pI6c.
	names() { # <side: clt|srv> <want>
		local got
		if [ "$1" = clt ]; then
			got=$(ls /sys/class/rtrs-client/mpi/paths | sort | tr '\n' ' ')
		else
			got=$(srv "ls /sys/class/rtrs-server/mpi/paths | sort | tr '\n' ' '")
		fi
		ktap_print_msg "$1 paths: $got"
		[ "$got" = "$2" ]
	}
	local want
	want=$(printf '%s\n' "ip:$CLT_IP6_0@ip:$SRV_IP6_0" "ip:$CLT_IP6_1@ip:$SRV_IP6_1" | sort | tr '\n' ' ')
	check "multipath $cell: rtrs-sysfs: the client's session has both paths, named as upstream" names clt "$want"
	check "multipath $cell: rtrs-sysfs: the server's session has both paths, named as upstream" names srv "$want"
	addrs() {
		local d="/sys/class/rtrs-client/mpi/paths/ip:$CLT_IP6_1@ip:$SRV_IP6_1"
		[ "$(cat "$d/src_addr")" = "ip:$CLT_IP6_1" ] && [ "$(cat "$d/dst_addr")" = "ip:$SRV_IP6_1" ]
	}
	check "multipath $cell: rtrs-sysfs: the IPv6 path's src_addr and dst_addr" addrs
	check "failover $cell: fio randrw crc32c verify over $MP_FIO_SIZE while link 1 goes down" verify_while_link_down /dev/rnbd0 "$MP_FIO_SIZE" 1
	# Field 6 of stats/rdma: requests the path took over (both clients).
	failovers() {
		local n
		n=$(cut -d' ' -f6 "/sys/class/rtrs-client/mpi/paths/ip:$CLT_IP6_0@ip:$SRV_IP6_0/stats/rdma") || return 1
		ktap_print_msg "failovers onto link 0: $n"
		[ "$n" -gt 0 ]
	}
	check "failover $cell: counted on the path of link 0" failovers
	reads() { dd if=/dev/rnbd0 of=/dev/null bs=1M count=16 iflag=direct status=none; }
	check "failover $cell: reads still work over link 0" reads
	check "multipath $cell: link 1 up again" link1_up
	unmap() { udevadm settle; echo normal >/sys/block/rnbd0/rnbd/unmap_device; }
	check "multipath $cell: unmap_device normal" wait_for 30 unmap
	test_end
}
