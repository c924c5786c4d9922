#!/bin/bash
# Golden bytes of the RTRS/RNBD wire structs, produced by the upstream C
# definitions: the struct bodies are cut verbatim out of the 6.12 headers
# (rtrs-pri.h, rnbd-proto.h), compiled on the host with a few type shims,
# filled with the values of golden.c and dumped as hex.  proto's host test
# `golden` encodes the same values with the Rust structs and compares, so a
# layout difference between the two fails a test.
#
# Usage: gen.sh <linux-source-6.12 dir> <output file>
set -euo pipefail
src=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# extract <header> <struct name...>: the "struct x { ... };" blocks.
extract() {
	local h=$1
	shift
	for s in "$@"; do
		awk -v s="struct $s {" '
			index($0, s) == 1 { on = 1 }
			on { print }
			on && /^};/ { on = 0; found = 1 }
			END { if (!found) exit 1 }' "$h" || { echo "gen.sh: struct $s not found in $h" >&2; exit 1; }
	done
}

{
	cat <<'H'
#include <stdint.h>
typedef uint8_t u8; typedef int8_t s8;
typedef uint16_t __le16; typedef uint32_t __le32; typedef uint64_t __le64;
typedef struct { u8 b[16]; } uuid_t;
#define NAME_MAX 255
H
	extract "$src/drivers/infiniband/ulp/rtrs/rtrs-pri.h" rtrs_sg_desc rtrs_msg_conn_req \
		rtrs_msg_conn_rsp rtrs_msg_info_req rtrs_msg_info_rsp rtrs_msg_rkey_rsp \
		rtrs_msg_rdma_read rtrs_msg_rdma_write
	extract "$src/drivers/block/rnbd/rnbd-proto.h" rnbd_msg_hdr rnbd_msg_sess_info \
		rnbd_msg_sess_info_rsp rnbd_msg_open rnbd_msg_close rnbd_msg_open_rsp rnbd_msg_io
} >"$tmp/structs.h"

gcc -std=gnu11 -Wall -Werror -I"$tmp" -o "$tmp/golden" "$here/golden.c"
"$tmp/golden" >"$out"
