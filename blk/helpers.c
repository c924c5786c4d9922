// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for the `blk` crate (see helpers.h): it exists because the block
 * layer's accessors are static inlines and bios complete through a C
 * function pointer.  No policy lives here; checks are in Rust.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/export.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include "helpers.h"

/* Kept equal to the assertion on `RawLimits` in blk.rs. */
static_assert(sizeof(struct rrs_bdev_limits) == 40);

struct file *rrs_bdev_open(const char *path, bool write)
{
	blk_mode_t mode = BLK_OPEN_READ | (write ? BLK_OPEN_WRITE : 0);

	return bdev_file_open_by_path(path, mode, NULL, NULL);
}
EXPORT_SYMBOL_GPL(rrs_bdev_open);

void rrs_bdev_close(struct file *f)
{
	fput(f);
}
EXPORT_SYMBOL_GPL(rrs_bdev_close);

void rrs_bdev_limits(struct file *f, struct rrs_bdev_limits *l)
{
	struct block_device *bdev = file_bdev(f);

	l->nr_sectors = bdev_nr_sectors(bdev);
	l->max_hw_sectors = queue_max_hw_sectors(bdev_get_queue(bdev));
	l->max_write_zeroes_sectors = bdev_write_zeroes_sectors(bdev);
	l->max_discard_sectors = bdev_max_discard_sectors(bdev);
	l->discard_granularity = bdev_discard_granularity(bdev);
	l->discard_alignment = bdev_discard_alignment(bdev);
	l->max_secure_erase_sectors = bdev_max_secure_erase_sectors(bdev);
	l->physical_block_size = bdev_physical_block_size(bdev);
	l->logical_block_size = bdev_logical_block_size(bdev);
	l->max_segments = bdev_max_segments(bdev);
	l->write_cache = bdev_write_cache(bdev);
	l->fua = bdev_fua(bdev);
}
EXPORT_SYMBOL_GPL(rrs_bdev_limits);

int rrs_bdev_name(struct file *f, char *buf, size_t len)
{
	return snprintf(buf, len, "%pg", file_bdev(f));
}
EXPORT_SYMBOL_GPL(rrs_bdev_name);

/*
 * Bios submitted whose completion has not returned yet.  The Rust completion
 * may run right in the completing task (see blk.rs), in the code of the
 * module that submitted; that module waits for this to drop to zero
 * (rrs_bio_wait_idle) before it unloads.  Static, so the decrement and the
 * wake-up never touch memory the waiter could free: this module outlives
 * its users.
 */
static atomic_t rrs_bios_live = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(rrs_bios_idle);

/*
 * bi_private points at the Rust context, whose first member is its
 * completion function (`BioCtx` in blk.rs is repr(C) for this).
 */
struct rrs_bio_ctx_head {
	rrs_bio_done_t done;
};

static void rrs_bio_end_io_priv(struct bio *bio)
{
	struct rrs_bio_ctx_head *h = bio->bi_private;
	int err = blk_status_to_errno(bio->bi_status);

	bio_put(bio);
	/* Outside interrupt context the completion runs right here. */
	h->done(h, err, in_task());
	if (atomic_dec_and_test(&rrs_bios_live))
		wake_up_all(&rrs_bios_idle);
}

void rrs_bio_wait_idle(void)
{
	wait_event_idle(rrs_bios_idle, atomic_read(&rrs_bios_live) == 0);
}
EXPORT_SYMBOL_GPL(rrs_bio_wait_idle);

int rrs_bio_submit(struct file *f, unsigned int op, bool sync, bool fua,
		   u64 sector, u32 bi_size, u16 prio, struct page *page,
		   u32 len, void *ctx)
{
	blk_opf_t opf;
	struct bio *bio;

	switch (op) {
	case RRS_BIO_READ:
		opf = REQ_OP_READ;
		break;
	case RRS_BIO_WRITE:
		opf = REQ_OP_WRITE;
		break;
	case RRS_BIO_FLUSH:
		opf = REQ_OP_WRITE | REQ_PREFLUSH;
		break;
	case RRS_BIO_DISCARD:
		opf = REQ_OP_DISCARD;
		break;
	case RRS_BIO_SECURE_ERASE:
		opf = REQ_OP_SECURE_ERASE;
		break;
	case RRS_BIO_WRITE_ZEROES:
		opf = REQ_OP_WRITE_ZEROES;
		break;
	default:
		return -EINVAL;
	}
	if (sync)
		opf |= REQ_SYNC;
	if (fua)
		opf |= REQ_FUA;

	bio = bio_alloc(file_bdev(f), len ? 1 : 0, opf, GFP_KERNEL);
	if (!bio)
		return -ENOMEM;
	if (len)
		__bio_add_page(bio, page, len, 0);
	else if (op != RRS_BIO_FLUSH)
		bio->bi_iter.bi_size = bi_size;
	bio->bi_iter.bi_sector = sector;
	bio->bi_private = ctx;
	bio->bi_end_io = rrs_bio_end_io_priv;
	bio_set_prio(bio, prio);
	atomic_inc(&rrs_bios_live);
	submit_bio(bio);
	return 0;
}
EXPORT_SYMBOL_GPL(rrs_bio_submit);

/* The whole disk's kobject, target of upstream's block_dev links. */
struct kobject *rrs_bdev_disk_kobj(struct file *f)
{
	return &disk_to_dev(file_bdev(f)->bd_disk)->kobj;
}
EXPORT_SYMBOL_GPL(rrs_bdev_disk_kobj);
