// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for the `support` crate.  It exists because bindgen cannot call
 * static inline functions and macros; see helpers.h.  No logic lives here.
 */
#include <linux/delay.h>
#include <linux/export.h>
#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include "helpers.h"

/*
 * Exported: generic Rust code that calls these is instantiated in the modules
 * using the support crate, not only in rtrs-core.ko.
 */

/*
 * Delayed work for Rust (the 6.12 kernel crate has none): a delayed_work that
 * calls fn(ctx).  The Rust owner (support::timer::Timer) frees it after
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

/* A wait queue for support/sync.rs: allocated here so that Rust needs neither
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

/* alloc_workqueue() is a variadic macro. */
struct workqueue_struct *rrs_alloc_workqueue(const char *name, unsigned int flags)
{
	return alloc_workqueue("%s", flags, 0, name);
}
EXPORT_SYMBOL_GPL(rrs_alloc_workqueue);

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
 * support/rcu.rs. */
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

/*
 * The index of the network interface named name[0..len) in the initial
 * namespace (where RTRS resolves its addresses, as upstream), or -ENODEV.
 */
int rrs_ifindex_by_name(const u8 *name, size_t len)
{
	char buf[IFNAMSIZ];
	struct net_device *dev;
	int idx;

	if (len >= IFNAMSIZ)
		return -ENODEV;
	memcpy(buf, name, len);
	buf[len] = '\0';
	dev = dev_get_by_name(&init_net, buf);
	if (!dev)
		return -ENODEV;
	idx = dev->ifindex;
	dev_put(dev);
	return idx;
}
EXPORT_SYMBOL_GPL(rrs_ifindex_by_name);

/* get_random_bytes() is exported, but its header is not in bindings.h. */
void rrs_get_random_bytes(void *buf, size_t len)
{
	get_random_bytes(buf, len);
}
EXPORT_SYMBOL_GPL(rrs_get_random_bytes);
