/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C side of the `blk` crate: block-device calls that are static inline in
 * the headers (bdev_nr_sectors(), bio_alloc(), ...) or that need a C
 * callback (bi_end_io), behind a few plain functions.  Declared again by
 * hand in blk.rs; keep the two in step.
 */
#ifndef RNBD_RS_BLK_HELPERS_H
#define RNBD_RS_BLK_HELPERS_H

#include <linux/types.h>

struct file;
struct page;

/* Operations, as numbered by the Rust `blk::Op`. */
enum rrs_bio_op {
	RRS_BIO_READ = 0,
	RRS_BIO_WRITE = 1,
	RRS_BIO_FLUSH = 2,
	RRS_BIO_DISCARD = 3,
	RRS_BIO_SECURE_ERASE = 4,
	RRS_BIO_WRITE_ZEROES = 5,
};

struct rrs_bdev_limits {
	u64 nr_sectors;
	u32 max_hw_sectors;
	u32 max_write_zeroes_sectors;
	u32 max_discard_sectors;
	u32 discard_granularity;
	u32 discard_alignment;
	u32 max_secure_erase_sectors;
	u16 physical_block_size;
	u16 logical_block_size;
	u16 max_segments;
	u8 write_cache;
	u8 fua;
};

/*
 * A bio's completion: `ctx` is the context area of RRS_BIO_CTX_SIZE bytes
 * (8-byte aligned) in front of the bio, which the submitter filled.
 */
typedef void (*rrs_bio_done_t)(void *ctx, int err);

/* Kept equal to `CTX_SIZE` in blk.rs. */
#define RRS_BIO_CTX_SIZE 512

struct bio;
struct rrs_bio_pool;

struct file *rrs_bdev_open(const char *path, bool write);
void rrs_bdev_close(struct file *f);
void rrs_bdev_limits(struct file *f, struct rrs_bdev_limits *l);
int rrs_bdev_name(struct file *f, char *buf, size_t len);
struct kobject *rrs_bdev_disk_kobj(struct file *f);
size_t rrs_bio_ctx_size(void);
struct rrs_bio_pool *rrs_bio_pool_new(const char *name);
void rrs_bio_pool_free(struct rrs_bio_pool *p);
struct bio *rrs_bio_alloc(struct rrs_bio_pool *p, struct file *f,
			  unsigned int op, bool sync, bool fua, u64 sector,
			  u32 bi_size, u16 prio, struct page *page, u32 len,
			  void **ctx);
void rrs_bio_submit(struct bio *bio, rrs_bio_done_t done);

#endif
