// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for the `rdma` crate.  It exists because bindgen cannot call static
 * inline functions and macros; see helpers.h.  No logic lives here.
 */
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/export.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include "helpers.h"

/*
 * Exported: generic Rust code that calls these is instantiated in the modules
 * using the rdma crate, not only in rtrs-core.ko.
 */

const char *rrs_dev_name(struct ib_device *dev)
{
	return dev_name(&dev->dev);
}
EXPORT_SYMBOL_GPL(rrs_dev_name);

struct ib_pd *rrs_ib_alloc_pd(struct ib_device *dev, unsigned int flags)
{
	return ib_alloc_pd(dev, flags);
}
EXPORT_SYMBOL_GPL(rrs_ib_alloc_pd);

void rrs_ib_dealloc_pd(struct ib_pd *pd)
{
	ib_dealloc_pd(pd);
}
EXPORT_SYMBOL_GPL(rrs_ib_dealloc_pd);

struct ib_cq *rrs_ib_alloc_cq(struct ib_device *dev, void *private, int nr_cqe,
			      int comp_vector, enum ib_poll_context poll_ctx)
{
	return ib_alloc_cq(dev, private, nr_cqe, comp_vector, poll_ctx);
}
EXPORT_SYMBOL_GPL(rrs_ib_alloc_cq);

int rrs_ib_post_send(struct ib_qp *qp, const struct ib_send_wr *wr,
		     const struct ib_send_wr **bad_wr)
{
	return ib_post_send(qp, wr, bad_wr);
}
EXPORT_SYMBOL_GPL(rrs_ib_post_send);

int rrs_ib_post_recv(struct ib_qp *qp, const struct ib_recv_wr *wr,
		     const struct ib_recv_wr **bad_wr)
{
	return ib_post_recv(qp, wr, bad_wr);
}
EXPORT_SYMBOL_GPL(rrs_ib_post_recv);

int rrs_ib_dereg_mr(struct ib_mr *mr)
{
	return ib_dereg_mr(mr);
}
EXPORT_SYMBOL_GPL(rrs_ib_dereg_mr);

u32 rrs_ib_inc_rkey(u32 rkey)
{
	return ib_inc_rkey(rkey);
}
EXPORT_SYMBOL_GPL(rrs_ib_inc_rkey);

void rrs_ib_update_fast_reg_key(struct ib_mr *mr, u8 newkey)
{
	ib_update_fast_reg_key(mr, newkey);
}
EXPORT_SYMBOL_GPL(rrs_ib_update_fast_reg_key);

struct rdma_cm_id *rrs_rdma_create_id(rdma_cm_event_handler handler,
				      void *context, enum rdma_ucm_port_space ps,
				      enum ib_qp_type qp_type)
{
	return rdma_create_id(&init_net, handler, context, ps, qp_type);
}
EXPORT_SYMBOL_GPL(rrs_rdma_create_id);

u64 rrs_ib_dma_map_single(struct ib_device *dev, void *cpu_addr, size_t size,
			  enum dma_data_direction dir)
{
	return ib_dma_map_single(dev, cpu_addr, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_map_single);

void rrs_ib_dma_unmap_single(struct ib_device *dev, u64 addr, size_t size,
			     enum dma_data_direction dir)
{
	ib_dma_unmap_single(dev, addr, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_unmap_single);

int rrs_ib_dma_mapping_error(struct ib_device *dev, u64 dma_addr)
{
	return ib_dma_mapping_error(dev, dma_addr);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_mapping_error);

void rrs_ib_dma_sync_single_for_cpu(struct ib_device *dev, u64 addr,
				    size_t size, enum dma_data_direction dir)
{
	ib_dma_sync_single_for_cpu(dev, addr, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_sync_single_for_cpu);

void rrs_ib_dma_sync_single_for_device(struct ib_device *dev, u64 addr,
				       size_t size, enum dma_data_direction dir)
{
	ib_dma_sync_single_for_device(dev, addr, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_sync_single_for_device);

/* An already DMA-mapped buffer as a one-entry scatterlist for ib_map_mr_sg(). */
void rrs_sg_set_dma(struct scatterlist *sg, u64 dma_addr, unsigned int len)
{
	sg_init_table(sg, 1);
	sg_dma_address(sg) = dma_addr;
	sg_dma_len(sg) = len;
}
EXPORT_SYMBOL_GPL(rrs_sg_set_dma);

u32 rrs_pd_local_dma_lkey(struct ib_pd *pd)
{
	return pd->local_dma_lkey;
}
EXPORT_SYMBOL_GPL(rrs_pd_local_dma_lkey);

struct ib_device *rrs_cm_id_device(struct rdma_cm_id *id)
{
	return id->device;
}
EXPORT_SYMBOL_GPL(rrs_cm_id_device);

struct ib_qp *rrs_cm_id_qp(struct rdma_cm_id *id)
{
	return id->qp;
}
EXPORT_SYMBOL_GPL(rrs_cm_id_qp);

/* A block of 2^order physically contiguous, zeroed pages. */
struct page *rrs_alloc_pages(unsigned int order)
{
	return alloc_pages(GFP_KERNEL | __GFP_ZERO, order);
}
EXPORT_SYMBOL_GPL(rrs_alloc_pages);

void rrs_free_pages(struct page *page, unsigned int order)
{
	__free_pages(page, order);
}
EXPORT_SYMBOL_GPL(rrs_free_pages);

void *rrs_page_address(struct page *page)
{
	return page_address(page);
}
EXPORT_SYMBOL_GPL(rrs_page_address);

u64 rrs_ib_dma_map_page(struct ib_device *dev, struct page *page, size_t size,
			enum dma_data_direction dir)
{
	return ib_dma_map_page(dev, page, 0, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_map_page);

void rrs_ib_dma_unmap_page(struct ib_device *dev, u64 addr, size_t size,
			   enum dma_data_direction dir)
{
	ib_dma_unmap_page(dev, addr, size, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_unmap_page);

/*
 * QP event handler of every QP we create: a receive that arrives before the
 * connection manager saw the peer's RTU must move the id to established,
 * which only rdma_notify() does (upstream RTRS does the same).
 */
static void rrs_qp_event(struct ib_event *ev, void *ctx)
{
	if (ev->event == IB_EVENT_COMM_EST)
		rdma_notify(ctx, IB_EVENT_COMM_EST);
	else
		pr_info("rdma: QP event %s (%d)\n", ib_event_msg(ev->event),
			ev->event);
}

void rrs_qp_init_attr_set_event(struct ib_qp_init_attr *attr,
				struct rdma_cm_id *id)
{
	attr->event_handler = rrs_qp_event;
	attr->qp_context = id;
}
EXPORT_SYMBOL_GPL(rrs_qp_init_attr_set_event);

u32 rrs_dev_max_qp_wr(struct ib_device *dev)
{
	return dev->attrs.max_qp_wr;
}
EXPORT_SYMBOL_GPL(rrs_dev_max_qp_wr);

u32 rrs_dev_num_comp_vectors(struct ib_device *dev)
{
	return dev->num_comp_vectors;
}
EXPORT_SYMBOL_GPL(rrs_dev_num_comp_vectors);

/* alloc_workqueue() is a variadic macro. */
struct workqueue_struct *rrs_alloc_workqueue(const char *name, unsigned int flags)
{
	return alloc_workqueue("%s", flags, 0, name);
}
EXPORT_SYMBOL_GPL(rrs_alloc_workqueue);

/*
 * Delayed work for Rust (the 6.12 kernel crate has none): a delayed_work that
 * calls fn(ctx).  The Rust owner (rdma::timer::Timer) frees it after
 * cancel_delayed_work_sync().
 */
struct rrs_dwork {
	struct delayed_work dw;
	void (*fn)(void *ctx);
	void *ctx;
};

static void rrs_dwork_run(struct work_struct *w)
{
	struct rrs_dwork *d = container_of(to_delayed_work(w), struct rrs_dwork, dw);

	d->fn(d->ctx);
}

struct rrs_dwork *rrs_dwork_new(void (*fn)(void *ctx), void *ctx)
{
	struct rrs_dwork *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return NULL;
	INIT_DELAYED_WORK(&d->dw, rrs_dwork_run);
	d->fn = fn;
	d->ctx = ctx;
	return d;
}
EXPORT_SYMBOL_GPL(rrs_dwork_new);

bool rrs_dwork_schedule(struct rrs_dwork *d, struct workqueue_struct *wq,
			unsigned int ms)
{
	return queue_delayed_work(wq, &d->dw, msecs_to_jiffies(ms));
}
EXPORT_SYMBOL_GPL(rrs_dwork_schedule);

void rrs_dwork_cancel_sync(struct rrs_dwork *d)
{
	cancel_delayed_work_sync(&d->dw);
}
EXPORT_SYMBOL_GPL(rrs_dwork_cancel_sync);

void rrs_dwork_free(struct rrs_dwork *d)
{
	kfree(d);
}
EXPORT_SYMBOL_GPL(rrs_dwork_free);

/* The CPU we run on (for picking a connection; may change right after). */
u32 rrs_raw_smp_processor_id(void)
{
	return raw_smp_processor_id();
}
EXPORT_SYMBOL_GPL(rrs_raw_smp_processor_id);

u32 rrs_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}
EXPORT_SYMBOL_GPL(rrs_nr_cpu_ids);

/* Monotonic milliseconds for the log rate limiter (jiffies are a macro). */
u64 rrs_now_ms(void)
{
	return jiffies64_to_msecs(get_jiffies_64());
}
EXPORT_SYMBOL_GPL(rrs_now_ms);

/* An uninterruptible sleep, for waits that a pending signal must not turn
 * into a busy loop. */
void rrs_msleep(unsigned int ms)
{
	msleep(ms);
}
EXPORT_SYMBOL_GPL(rrs_msleep);

/* RCU read-side sections (static inlines) and the grace period, for
 * rdma/rcu.rs. */
void rrs_rcu_read_lock(void)
{
	rcu_read_lock();
}
EXPORT_SYMBOL_GPL(rrs_rcu_read_lock);

void rrs_rcu_read_unlock(void)
{
	rcu_read_unlock();
}
EXPORT_SYMBOL_GPL(rrs_rcu_read_unlock);

void rrs_synchronize_rcu(void)
{
	synchronize_rcu();
}
EXPORT_SYMBOL_GPL(rrs_synchronize_rcu);

/* A wait queue for rdma/sync.rs: allocated here so that Rust needs neither
 * its layout nor its initialisation macros. */
struct rrs_waitq {
	wait_queue_head_t wq;
};

struct rrs_waitq *rrs_waitq_new(void)
{
	struct rrs_waitq *q = kmalloc(sizeof(*q), GFP_KERNEL);

	if (q)
		init_waitqueue_head(&q->wq);
	return q;
}
EXPORT_SYMBOL_GPL(rrs_waitq_new);

void rrs_waitq_free(struct rrs_waitq *q)
{
	kfree(q);
}
EXPORT_SYMBOL_GPL(rrs_waitq_free);

/* Any context.  wq_has_sleeper() orders the waker's earlier stores before
 * its look at the queue (the waiter's condition check is ordered by
 * prepare_to_wait), so a wake is not lost and costs nothing without
 * sleepers. */
void rrs_waitq_wake_all(struct rrs_waitq *q)
{
	if (wq_has_sleeper(&q->wq))
		wake_up_all(&q->wq);
}
EXPORT_SYMBOL_GPL(rrs_waitq_wake_all);

/* Waits until cond(ctx) or ms milliseconds (UINT_MAX: no limit): in
 * TASK_IDLE (uninterruptible, not counted as load, no hung-task report), or
 * interruptibly with intr.  Returns 1 if cond held, 0 on timeout, -EINTR on
 * a signal. */
int rrs_waitq_wait(struct rrs_waitq *q, bool (*cond)(void *ctx), void *ctx,
		   unsigned int ms, bool intr)
{
	long t = ms == UINT_MAX ? MAX_SCHEDULE_TIMEOUT : msecs_to_jiffies(ms);
	long r;

	if (intr)
		r = wait_event_interruptible_timeout(q->wq, cond(ctx), t);
	else
		r = wait_event_idle_timeout(q->wq, cond(ctx), t);
	if (r < 0)
		return -EINTR;
	return r > 0;
}
EXPORT_SYMBOL_GPL(rrs_waitq_wait);

/* get_random_bytes() is exported, but its header is not in bindings.h. */
void rrs_get_random_bytes(void *buf, size_t len)
{
	get_random_bytes(buf, len);
}
EXPORT_SYMBOL_GPL(rrs_get_random_bytes);

/*
 * A request's scatter/gather table: @cap entries, initialised once; the block
 * layer refills the front of it per request (blk_rq_map_sg() clears a stale
 * end mark itself), so no per-request sg_init_table().
 */
struct scatterlist *rrs_sg_alloc(unsigned int cap)
{
	struct scatterlist *sgl = kcalloc(cap, sizeof(*sgl), GFP_KERNEL);

	if (sgl)
		sg_init_table(sgl, cap);
	return sgl;
}
EXPORT_SYMBOL_GPL(rrs_sg_alloc);

void rrs_sg_free(struct scatterlist *sgl)
{
	kfree(sgl);
}
EXPORT_SYMBOL_GPL(rrs_sg_free);

/* One entry over a kmalloc buffer, marked as the last. */
void rrs_sg_set_buf(struct scatterlist *sgl, void *buf, unsigned int len)
{
	sg_set_buf(sgl, buf, len);
	sg_mark_end(sgl);
}
EXPORT_SYMBOL_GPL(rrs_sg_set_buf);

int rrs_ib_dma_map_sg(struct ib_device *dev, struct scatterlist *sgl, int nents,
		      enum dma_data_direction dir)
{
	return ib_dma_map_sg(dev, sgl, nents, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_map_sg);

void rrs_ib_dma_unmap_sg(struct ib_device *dev, struct scatterlist *sgl,
			 int nents, enum dma_data_direction dir)
{
	ib_dma_unmap_sg(dev, sgl, nents, dir);
}
EXPORT_SYMBOL_GPL(rrs_ib_dma_unmap_sg);

/*
 * The first @count DMA-mapped entries of @sgl as SGEs with @lkey, at most
 * @max of them; returns how many, or -EINVAL if they do not fit.
 */
int rrs_sg_to_sges(struct scatterlist *sgl, int count, u32 lkey,
		   struct ib_sge *out, int max)
{
	struct scatterlist *sg;
	int i;

	if (count < 0 || count > max)
		return -EINVAL;
	for_each_sg(sgl, sg, count, i) {
		out[i].addr = sg_dma_address(sg);
		out[i].length = sg_dma_len(sg);
		out[i].lkey = lkey;
	}
	return count;
}
EXPORT_SYMBOL_GPL(rrs_sg_to_sges);

u32 rrs_dev_max_send_sge(struct ib_device *dev)
{
	return dev->attrs.max_send_sge;
}
EXPORT_SYMBOL_GPL(rrs_dev_max_send_sge);

u32 rrs_ib_mr_lkey(struct ib_mr *mr)
{
	return mr->lkey;
}
EXPORT_SYMBOL_GPL(rrs_ib_mr_lkey);

u64 rrs_ib_mr_length(struct ib_mr *mr)
{
	return mr->length;
}
EXPORT_SYMBOL_GPL(rrs_ib_mr_length);
