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
#include <linux/wait_bit.h>
#include <linux/workqueue.h>
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
 * A pool of bios, each with room in front for its submitter's completion
 * context (a bio_set with front padding), and the work queue of the
 * completions that come in an interrupt.  `live` counts the bios submitted
 * whose completion has not returned yet; the pool's free waits for it.
 */
struct rrs_bio_pool {
	struct bio_set bs;
	struct workqueue_struct *wq;
	atomic_t live;
};

struct rrs_bio {
	struct rrs_bio_pool *pool;
	rrs_bio_done_t done;
	int err;
	struct work_struct work;
	u64 ctx[RRS_BIO_CTX_SIZE / sizeof(u64)];
	/* Last: the bio_set's front padding is everything above. */
	struct bio bio;
};

size_t rrs_bio_ctx_size(void)
{
	return sizeof_field(struct rrs_bio, ctx);
}
EXPORT_SYMBOL_GPL(rrs_bio_ctx_size);

struct rrs_bio_pool *rrs_bio_pool_new(const char *name)
{
	struct rrs_bio_pool *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	if (bioset_init(&p->bs, BIO_POOL_SIZE, offsetof(struct rrs_bio, bio),
			BIOSET_NEED_BVECS))
		goto free;
	p->wq = alloc_workqueue("%s", WQ_UNBOUND | WQ_MEM_RECLAIM, 0, name);
	if (!p->wq)
		goto exit;
	atomic_set(&p->live, 0);
	return p;
exit:
	bioset_exit(&p->bs);
free:
	kfree(p);
	return NULL;
}
EXPORT_SYMBOL_GPL(rrs_bio_pool_new);

void rrs_bio_pool_free(struct rrs_bio_pool *p)
{
	/*
	 * Completions that ran in the completing task, then those queued
	 * (destroy_workqueue drains).  The last completion's wake-up touches
	 * no memory of the pool (the key is only an address), so the pool
	 * may go as soon as this sees zero.
	 */
	wait_var_event(&p->live, atomic_read(&p->live) == 0);
	destroy_workqueue(p->wq);
	bioset_exit(&p->bs);
	kfree(p);
}
EXPORT_SYMBOL_GPL(rrs_bio_pool_free);

static void rrs_bio_finish(struct rrs_bio *b)
{
	struct rrs_bio_pool *p = b->pool;

	/* The submitter's completion takes its context out of the bio. */
	b->done(b->ctx, b->err);
	bio_put(&b->bio);
	if (atomic_dec_and_test(&p->live))
		wake_up_var(&p->live);
}

static void rrs_bio_work(struct work_struct *w)
{
	rrs_bio_finish(container_of(w, struct rrs_bio, work));
}

static void rrs_bio_end_io(struct bio *bio)
{
	struct rrs_bio *b = container_of(bio, struct rrs_bio, bio);

	b->err = blk_status_to_errno(bio->bi_status);
	/*
	 * Outside interrupt context the completion runs right here (it must
	 * not sleep: the task may hold the block layer's RCU read lock).
	 */
	if (in_task()) {
		rrs_bio_finish(b);
		return;
	}
	INIT_WORK(&b->work, rrs_bio_work);
	queue_work(b->pool->wq, &b->work);
}

struct bio *rrs_bio_alloc(struct rrs_bio_pool *p, struct file *f,
			  unsigned int op, bool sync, bool fua, u64 sector,
			  u32 bi_size, u16 prio, struct page *page, u32 len,
			  void **ctx)
{
	struct rrs_bio *b;
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
		return ERR_PTR(-EINVAL);
	}
	if (sync)
		opf |= REQ_SYNC;
	if (fua)
		opf |= REQ_FUA;

	/* From the pool's mempool: with GFP_KERNEL it waits, never fails. */
	bio = bio_alloc_bioset(file_bdev(f), len ? 1 : 0, opf, GFP_KERNEL, &p->bs);
	if (!bio)
		return ERR_PTR(-ENOMEM);
	if (len)
		__bio_add_page(bio, page, len, 0);
	else if (op != RRS_BIO_FLUSH)
		bio->bi_iter.bi_size = bi_size;
	bio->bi_iter.bi_sector = sector;
	bio->bi_end_io = rrs_bio_end_io;
	bio_set_prio(bio, prio);
	b = container_of(bio, struct rrs_bio, bio);
	b->pool = p;
	b->done = NULL;
	*ctx = b->ctx;
	return bio;
}
EXPORT_SYMBOL_GPL(rrs_bio_alloc);

void rrs_bio_submit(struct bio *bio, rrs_bio_done_t done)
{
	struct rrs_bio *b = container_of(bio, struct rrs_bio, bio);

	b->done = done;
	atomic_inc(&b->pool->live);
	submit_bio(bio);
}
EXPORT_SYMBOL_GPL(rrs_bio_submit);

/* The whole disk's kobject, target of upstream's block_dev links. */
struct kobject *rrs_bdev_disk_kobj(struct file *f)
{
	return &disk_to_dev(file_bdev(f)->bd_disk)->kobj;
}
EXPORT_SYMBOL_GPL(rrs_bdev_disk_kobj);
