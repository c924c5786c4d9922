/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C side of `blk_mq`: a blk-mq tag set and disks whose queue_rq calls one
 * Rust function, request accessors (static inlines in the headers) and the
 * copy between a request's segments and a contiguous page block.  Declared
 * again by hand in mq.rs; keep the two in step.
 */
#ifndef RNBD_RS_BLK_MQ_GLUE_H
#define RNBD_RS_BLK_MQ_GLUE_H

#include <linux/types.h>

struct scatterlist;

struct request;
struct gendisk;
struct kobject;
struct module;
struct page;
struct rrs_tagset;

typedef int (*rrs_queue_rq_t)(void *disk_ctx, struct request *rq);

struct rrs_disk_params {
	u64 sectors;
	u32 max_hw_sectors;
	u32 max_segments;
	u32 max_discard_sectors;
	u32 discard_granularity;
	u32 discard_alignment;
	u32 max_write_zeroes_sectors;
	u32 max_secure_erase_sectors;
	u16 logical_block_size;
	u16 physical_block_size;
	u8 write_cache;
	u8 fua;
	u8 read_only;
	u32 virt_boundary_mask;
};

/* Request operations, numbered as the Rust `blk::Op`. */
struct rrs_rq_info {
	u64 sector;
	u32 bytes;
	u32 op;		/* enum rrs_bio_op, or 255 for anything else */
	u16 ioprio;
	u8 fua;		/* REQ_FUA or REQ_PREFLUSH */
	u8 sync;
};

struct rrs_tagset *rrs_tagset_new(unsigned int nr_hw_queues,
				  unsigned int depth, rrs_queue_rq_t fn,
				  struct module *owner);
void rrs_tagset_free(struct rrs_tagset *ts);
struct gendisk *rrs_disk_new(struct rrs_tagset *ts,
			     const struct rrs_disk_params *p, int major,
			     int first_minor, int minors, const char *name,
			     void *ctx);
int rrs_disk_add(struct gendisk *d);
void rrs_disk_del(struct gendisk *d, bool added);
struct kobject *rrs_disk_kobj(struct gendisk *d);
int rrs_disk_openers(struct gendisk *d);
void rrs_disk_set_capacity(struct gendisk *d, u64 sectors);
void rrs_rq_info(struct request *rq, struct rrs_rq_info *i);
void rrs_rq_start(struct request *rq);
void rrs_rq_end(struct request *rq, int err);
void rrs_rq_requeue(struct request *rq);
int rrs_rq_map_sg(struct request *rq, struct scatterlist *sgl,
		  unsigned int cap, u32 *bytes);
int rrs_register_blkdev(const char *name);
void rrs_unregister_blkdev(int major, const char *name);

#endif
