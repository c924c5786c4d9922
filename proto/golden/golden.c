// SPDX-License-Identifier: GPL-2.0
/*
 * Fills the upstream wire structs (cut out of the 6.12 headers by gen.sh into
 * structs.h) with fixed values and prints "name size hex".  The same values
 * are encoded by proto's `golden` test; keep the two in step.
 */
#include <stdio.h>
#include <string.h>
#include "structs.h"

static void dump(const char *name, const void *p, size_t n)
{
	const unsigned char *b = p;

	printf("%s %zu ", name, n);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

#define DUMP(v) dump(#v, &v, sizeof(v))

int main(void)
{
	struct rtrs_sg_desc sg_desc;
	struct rtrs_msg_conn_req conn_req;
	struct rtrs_msg_conn_rsp conn_rsp;
	struct rtrs_msg_info_req info_req;
	struct rtrs_msg_info_rsp info_rsp;
	struct rtrs_msg_rkey_rsp rkey_rsp;
	struct rtrs_msg_rdma_read rdma_read;
	struct rtrs_msg_rdma_write rdma_write;
	struct rnbd_msg_sess_info sess_info;
	struct rnbd_msg_open open;
	struct rnbd_msg_close close;
	struct rnbd_msg_open_rsp open_rsp;
	struct rnbd_msg_io io;

	memset(&sg_desc, 0, sizeof(sg_desc));
	sg_desc.addr = 0x1122334455667788ull;
	sg_desc.key = 0xa1b2c3d4;
	sg_desc.len = 0x20000;
	DUMP(sg_desc);

	memset(&conn_req, 0, sizeof(conn_req));
	conn_req.magic = 0x1bbd;
	conn_req.version = 0x0200;
	conn_req.cid = 3;
	conn_req.cid_num = 5;
	conn_req.recon_cnt = 7;
	for (int i = 0; i < 16; i++) {
		conn_req.sess_uuid.b[i] = i;
		conn_req.paths_uuid.b[i] = 0xf0 | i;
	}
	conn_req.first_conn = 1;
	DUMP(conn_req);

	memset(&conn_rsp, 0, sizeof(conn_rsp));
	conn_rsp.magic = 0x1bbd;
	conn_rsp.version = 0x0200;
	conn_rsp.errno = 0;
	conn_rsp.queue_depth = 512;
	conn_rsp.max_io_size = 126976;
	conn_rsp.max_hdr_size = 4096;
	conn_rsp.flags = 2;
	DUMP(conn_rsp);

	memset(&info_req, 0, sizeof(info_req));
	info_req.type = 0;
	strcpy((char *)info_req.pathname, "clt-path");
	DUMP(info_req);

	memset(&info_rsp, 0, sizeof(info_rsp));
	info_rsp.type = 1;
	info_rsp.sg_cnt = 512;
	DUMP(info_rsp);

	memset(&rkey_rsp, 0, sizeof(rkey_rsp));
	rkey_rsp.type = 4;
	rkey_rsp.buf_id = 511;
	rkey_rsp.rkey = 0x12345678;
	DUMP(rkey_rsp);

	memset(&rdma_read, 0, sizeof(rdma_read));
	rdma_read.type = 3;
	rdma_read.usr_len = 32;
	rdma_read.flags = 1;
	rdma_read.sg_cnt = 1;
	DUMP(rdma_read);

	memset(&rdma_write, 0, sizeof(rdma_write));
	rdma_write.type = 2;
	rdma_write.usr_len = 32;
	DUMP(rdma_write);

	memset(&sess_info, 0, sizeof(sess_info));
	sess_info.hdr.type = 0;
	sess_info.ver = 2;
	DUMP(sess_info);

	memset(&open, 0, sizeof(open));
	open.hdr.type = 2;
	open.access_mode = 1;
	strcpy((char *)open.dev_name, "nullb0");
	DUMP(open);

	memset(&close, 0, sizeof(close));
	close.hdr.type = 5;
	close.device_id = 42;
	DUMP(close);

	memset(&open_rsp, 0, sizeof(open_rsp));
	open_rsp.hdr.type = 3;
	open_rsp.device_id = 42;
	open_rsp.nsectors = 2097152;
	open_rsp.max_hw_sectors = 248;
	open_rsp.max_write_zeroes_sectors = 0xffff;
	open_rsp.max_discard_sectors = 0x7fffff;
	open_rsp.discard_granularity = 512;
	open_rsp.discard_alignment = 0;
	open_rsp.physical_block_size = 4096;
	open_rsp.logical_block_size = 512;
	open_rsp.max_segments = 128;
	open_rsp.secure_discard = 1;
	open_rsp.obsolete_rotational = 0;
	open_rsp.cache_policy = 3;
	DUMP(open_rsp);

	memset(&io, 0, sizeof(io));
	io.hdr.type = 4;
	io.device_id = 42;
	io.sector = 0x123456789ull;
	io.rw = 1 | 1 << 8 | 1 << 9;
	io.bi_size = 131072;
	io.prio = 0x4004;
	DUMP(io);

	return 0;
}
