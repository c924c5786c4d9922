#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Our modules are the ones modprobe picks (updates/), pull in their
# dependencies through their Rust crates, load and unload cleanly.
. "$(dirname "$0")/lib.sh"
test_begin modules_load 12

from_updates() { modinfo -n "$1" | grep -q "/updates/"; }
all_loaded() { for m in "$@"; do loaded "$m" || return 1; done; }
none_loaded() { for m in "$@"; do ! loaded "$m" || return 1; done; }
is_rust_client() { logged_in clt "rnbd_client: Loading module rnbd_client, proto 2.0 over RTRS 2.0"; }

check "modprobe resolves rnbd_client to updates/" from_updates rnbd_client
check "modprobe resolves rtrs_core to updates/" from_updates rtrs_core
check "rnbd_client loads" modprobe rnbd_client
check "rnbd_client pulled in rtrs_client and rtrs_core" all_loaded rnbd_client rtrs_client rtrs_core
check "the loaded rnbd_client is ours" is_rust_client
# Longer than upstream's 31 s reconnect delay, or a single-path session's IO
# fails before its first reconnect.
check "rnbd_client's fast_io_fail_tmo defaults to 90 s" same_number "$(cat /sys/module/rnbd_client/parameters/fast_io_fail_tmo)" 90
check "rnbd_client, rtrs_client, rtrs_core unload" modprobe -r rnbd_client rtrs_client rtrs_core
check "nothing left loaded" none_loaded rnbd_client rtrs_client rtrs_core
check "rnbd_server loads in the server guest" srv modprobe rnbd_server
check "rnbd_server pulled in rtrs_server" srv test -d /sys/module/rtrs_server
check "rnbd_server unloads" srv modprobe -r rnbd_server rtrs_server rtrs_core
test_end
