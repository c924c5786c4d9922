// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of `blk_mq` (see mq_glue.h).  It exists because the 6.12 Rust block
 * API cannot end a request with an error, read a request's operation or
 * data, set queue limits, or sleep in queue_rq; none of that is policy, so
 * the checks stay in Rust.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/export.h>
#include <linux/highmem.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "helpers.h"
#include "mq_glue.h"

/* Kept equal to the assertions on `DiskParams` and `RawInfo` in mq.rs. */
static_assert(sizeof(struct rrs_disk_params) == 48);
static_assert(sizeof(struct rrs_rq_info) == 24);

struct rrs_tagset {
	struct blk_mq_tag_set set;
	struct block_device_operations fops;
	rrs_queue_rq_t fn;
};

static blk_status_t rrs_queue_rq(struct blk_mq_hw_ctx *hctx,
				 const struct blk_mq_queue_data *bd)
{
	struct rrs_tagset *ts = container_of(hctx->queue->tag_set,
					     struct rrs_tagset, set);

	/* Rust owns the request from here and always ends it. */
	ts->fn(hctx->queue->queuedata, bd->rq);
	return BLK_STS_OK;
}

static const struct blk_mq_ops rrs_mq_ops = {
	.queue_rq = rrs_queue_rq,
};

struct rrs_tagset *rrs_tagset_new(unsigned int nr_hw_queues,
				  unsigned int depth, rrs_queue_rq_t fn,
				  struct module *owner)
{
	struct rrs_tagset *ts = kzalloc(sizeof(*ts), GFP_KERNEL);
	int err;

	if (!ts)
		return ERR_PTR(-ENOMEM);
	ts->fn = fn;
	ts->fops.owner = owner;
	ts->set.ops = &rrs_mq_ops;
	ts->set.nr_hw_queues = nr_hw_queues;
	ts->set.nr_maps = 1;
	ts->set.queue_depth = depth;
	ts->set.numa_node = NUMA_NO_NODE;
	/* queue_rq sleeps: for a permit, and to post under a mutex. */
	ts->set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_BLOCKING;
	err = blk_mq_alloc_tag_set(&ts->set);
	if (err) {
		kfree(ts);
		return ERR_PTR(err);
	}
	return ts;
}
EXPORT_SYMBOL_GPL(rrs_tagset_new);

void rrs_tagset_free(struct rrs_tagset *ts)
{
	blk_mq_free_tag_set(&ts->set);
	kfree(ts);
}
EXPORT_SYMBOL_GPL(rrs_tagset_free);

struct gendisk *rrs_disk_new(struct rrs_tagset *ts,
			     const struct rrs_disk_params *p, int major,
			     int first_minor, int minors, const char *name,
			     void *ctx)
{
	struct queue_limits lim = {
		.logical_block_size = p->logical_block_size,
		.physical_block_size = p->physical_block_size,
		.max_hw_sectors = p->max_hw_sectors,
		.max_segments = p->max_segments,
		.max_hw_discard_sectors = p->max_discard_sectors,
		.discard_granularity = p->discard_granularity,
		.discard_alignment = p->discard_alignment,
		.max_write_zeroes_sectors = p->max_write_zeroes_sectors,
		.max_secure_erase_sectors = p->max_secure_erase_sectors,
		.virt_boundary_mask = p->virt_boundary_mask,
	};
	struct gendisk *d;

	if (p->write_cache) {
		lim.features |= BLK_FEAT_WRITE_CACHE;
		if (p->fua)
			lim.features |= BLK_FEAT_FUA;
	}
	d = blk_mq_alloc_disk(&ts->set, &lim, ctx);
	if (IS_ERR(d))
		return d;
	d->major = major;
	d->first_minor = first_minor;
	d->minors = minors;
	d->fops = &ts->fops;
	strscpy(d->disk_name, name, sizeof(d->disk_name));
	set_capacity(d, p->sectors);
	if (p->read_only)
		set_disk_ro(d, true);
	return d;
}
EXPORT_SYMBOL_GPL(rrs_disk_new);

int rrs_disk_add(struct gendisk *d)
{
	return add_disk(d);
}
EXPORT_SYMBOL_GPL(rrs_disk_add);

void rrs_disk_del(struct gendisk *d, bool added)
{
	if (added)
		del_gendisk(d);
	put_disk(d);
}
EXPORT_SYMBOL_GPL(rrs_disk_del);

struct kobject *rrs_disk_kobj(struct gendisk *d)
{
	return &disk_to_dev(d)->kobj;
}
EXPORT_SYMBOL_GPL(rrs_disk_kobj);

int rrs_disk_openers(struct gendisk *d)
{
	return atomic_read(&d->part0->bd_openers);
}
EXPORT_SYMBOL_GPL(rrs_disk_openers);

void rrs_disk_set_capacity(struct gendisk *d, u64 sectors)
{
	set_capacity_and_notify(d, sectors);
}
EXPORT_SYMBOL_GPL(rrs_disk_set_capacity);

void rrs_rq_info(struct request *rq, struct rrs_rq_info *i)
{
	i->sector = blk_rq_pos(rq);
	i->bytes = blk_rq_bytes(rq);
	switch (req_op(rq)) {
	case REQ_OP_READ:
		i->op = RRS_BIO_READ;
		break;
	case REQ_OP_WRITE:
		i->op = RRS_BIO_WRITE;
		break;
	case REQ_OP_FLUSH:
		i->op = RRS_BIO_FLUSH;
		break;
	case REQ_OP_DISCARD:
		i->op = RRS_BIO_DISCARD;
		break;
	case REQ_OP_SECURE_ERASE:
		i->op = RRS_BIO_SECURE_ERASE;
		break;
	case REQ_OP_WRITE_ZEROES:
		i->op = RRS_BIO_WRITE_ZEROES;
		break;
	default:
		i->op = 255;
	}
	i->ioprio = req_get_ioprio(rq);
	i->fua = op_is_flush(rq->cmd_flags);
	i->sync = op_is_sync(rq->cmd_flags);
}
EXPORT_SYMBOL_GPL(rrs_rq_info);

void rrs_rq_start(struct request *rq)
{
	blk_mq_start_request(rq);
}
EXPORT_SYMBOL_GPL(rrs_rq_start);

void rrs_rq_end(struct request *rq, int err)
{
	blk_mq_end_request(rq, errno_to_blk_status(err));
}
EXPORT_SYMBOL_GPL(rrs_rq_end);

/*
 * Any context: blk-mq queues it again 10 ms later (its requeue work), as
 * upstream rnbd's BLK_STS_RESOURCE delay: no busy loop while the cause
 * lasts.
 */
void rrs_rq_requeue(struct request *rq)
{
	blk_mq_requeue_request(rq, false);
	blk_mq_delay_kick_requeue_list(rq->q, 10);
}
EXPORT_SYMBOL_GPL(rrs_rq_requeue);

/* Rust checked len <= the block and == blk_rq_bytes(). */
/*
 * Fills @sgl (@cap entries) with @rq's data segments; returns their number
 * and their total length in @bytes, or -EINVAL if they do not fit (the
 * queue's max_segments is at most @cap, so only a bug gets there).
 */
int rrs_rq_map_sg(struct request *rq, struct scatterlist *sgl,
		  unsigned int cap, u32 *bytes)
{
	int n;

	*bytes = 0;
	if (!blk_rq_nr_phys_segments(rq) || !blk_rq_bytes(rq))
		return 0;
	if (blk_rq_nr_phys_segments(rq) > cap)
		return -EINVAL;
	n = blk_rq_map_sg(rq->q, rq, sgl);
	if (n < 0 || n > cap)
		return -EINVAL;
	*bytes = blk_rq_bytes(rq);
	return n;
}
EXPORT_SYMBOL_GPL(rrs_rq_map_sg);

int rrs_register_blkdev(const char *name)
{
	return register_blkdev(0, name);
}
EXPORT_SYMBOL_GPL(rrs_register_blkdev);

void rrs_unregister_blkdev(int major, const char *name)
{
	unregister_blkdev(major, name);
}
EXPORT_SYMBOL_GPL(rrs_unregister_blkdev);
