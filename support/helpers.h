/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line versions of the generic kernel helpers that the headers provide
 * only as static inline functions or macros, which bindgen cannot bind, and
 * the sysfs glue (sysfs.c).  Each helper does nothing but call the inline it
 * is named after.
 */
#ifndef RNBD_RS_SUPPORT_HELPERS_H
#define RNBD_RS_SUPPORT_HELPERS_H

#include <linux/types.h>

struct page;
struct workqueue_struct;

struct page *rrs_alloc_pages(unsigned int order);
void rrs_free_pages(struct page *page, unsigned int order);
void *rrs_page_address(struct page *page);
struct workqueue_struct *rrs_alloc_workqueue(const char *name, unsigned int flags);
struct rrs_dwork;
struct rrs_dwork *rrs_dwork_new(void (*fn)(void *ctx), void *ctx);
bool rrs_dwork_schedule(struct rrs_dwork *d, struct workqueue_struct *wq,
			unsigned int ms);
void rrs_dwork_cancel_sync(struct rrs_dwork *d);
u32 rrs_raw_smp_processor_id(void);
u32 rrs_nr_cpu_ids(void);
void rrs_get_random_bytes(void *buf, size_t len);
int rrs_ifindex_by_name(const u8 *name, size_t len);
u64 rrs_now_ms(void);
void rrs_msleep(unsigned int ms);
void rrs_rcu_read_lock(void);
void rrs_rcu_read_unlock(void);
void rrs_synchronize_rcu(void);
struct rrs_waitq;
struct rrs_waitq *rrs_waitq_new(void);
void rrs_waitq_free(struct rrs_waitq *q);
void rrs_waitq_wake_all(struct rrs_waitq *q);
int rrs_waitq_wait(struct rrs_waitq *q, bool (*cond)(void *ctx), void *ctx,
		   unsigned int ms, bool intr);
void rrs_dwork_free(struct rrs_dwork *d);
/* support/sysfs.c */
struct rrs_kobj;
struct kobject;
struct class;
struct device;
struct rrs_kobj_vt {
	ssize_t (*show)(void *ctx, unsigned int idx, char *buf);
	ssize_t (*store)(void *ctx, unsigned int idx, const char *buf, size_t n);
	void (*release)(void *ctx);
};
/* Lock classes of attributes (see sysfs.c): one per kind of directory. */
#define RRS_ATTR_CLASSES 4
struct rrs_kobj *rrs_kobj_create(struct kobject *parent, const char *name,
				 const char *const *names, const u16 *modes,
				 unsigned int n, void *ctx,
				 const struct rrs_kobj_vt *vt, unsigned int cls);
void rrs_kobj_destroy(struct rrs_kobj *k);
struct rrs_dev_files;
struct rrs_dev_files *rrs_dev_files_create(struct device *dev,
					   const char *const *names,
					   const u16 *modes, unsigned int n,
					   void *ctx,
					   const struct rrs_kobj_vt *vt);
void rrs_dev_files_destroy(struct rrs_dev_files *o);
struct kobject *rrs_kobj_kobj(struct rrs_kobj *k);
void rrs_kobj_uevent(struct kobject *k, bool online);
bool rrs_kobj_remove_self(struct rrs_kobj *k, unsigned int idx);
struct kobject *rrs_dir_create(struct kobject *parent, const char *name);
void rrs_dir_destroy(struct kobject *kobj);
struct class *rrs_class_create(const char *name);
void rrs_class_destroy(struct class *cls);
struct device *rrs_class_device_create(struct class *cls, const char *name);
void rrs_class_device_destroy(struct device *dev);
struct kobject *rrs_device_kobj(struct device *dev);
int rrs_sysfs_link(struct kobject *from, struct kobject *to, const char *name);
void rrs_sysfs_unlink(struct kobject *from, const char *name);


#endif
