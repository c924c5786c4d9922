/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line versions of RDMA verbs that the kernel headers provide only as
 * static inline functions or macros, which bindgen cannot bind.  Each helper
 * does nothing but call the inline it is named after.
 */
#ifndef RNBD_RS_RDMA_HELPERS_H
#define RNBD_RS_RDMA_HELPERS_H

#include <linux/scatterlist.h>
#include <linux/workqueue.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>

const char *rrs_dev_name(struct ib_device *dev);
struct ib_pd *rrs_ib_alloc_pd(struct ib_device *dev, unsigned int flags);
void rrs_ib_dealloc_pd(struct ib_pd *pd);
struct ib_cq *rrs_ib_alloc_cq(struct ib_device *dev, void *private, int nr_cqe,
			      int comp_vector, enum ib_poll_context poll_ctx);
int rrs_ib_post_send(struct ib_qp *qp, const struct ib_send_wr *wr,
		     const struct ib_send_wr **bad_wr);
int rrs_ib_post_recv(struct ib_qp *qp, const struct ib_recv_wr *wr,
		     const struct ib_recv_wr **bad_wr);
int rrs_ib_dereg_mr(struct ib_mr *mr);
u32 rrs_ib_inc_rkey(u32 rkey);
void rrs_ib_update_fast_reg_key(struct ib_mr *mr, u8 newkey);
struct rdma_cm_id *rrs_rdma_create_id(rdma_cm_event_handler handler,
				      void *context, enum rdma_ucm_port_space ps,
				      enum ib_qp_type qp_type);
u64 rrs_ib_dma_map_single(struct ib_device *dev, void *cpu_addr, size_t size,
			  enum dma_data_direction dir);
void rrs_ib_dma_unmap_single(struct ib_device *dev, u64 addr, size_t size,
			     enum dma_data_direction dir);
int rrs_ib_dma_mapping_error(struct ib_device *dev, u64 dma_addr);
void rrs_ib_dma_sync_single_for_cpu(struct ib_device *dev, u64 addr,
				    size_t size, enum dma_data_direction dir);
void rrs_ib_dma_sync_single_for_device(struct ib_device *dev, u64 addr,
				       size_t size, enum dma_data_direction dir);
void rrs_sg_set_dma(struct scatterlist *sg, u64 dma_addr, unsigned int len);
u32 rrs_pd_local_dma_lkey(struct ib_pd *pd);
struct ib_device *rrs_cm_id_device(struct rdma_cm_id *id);
struct ib_qp *rrs_cm_id_qp(struct rdma_cm_id *id);

struct page *rrs_alloc_pages(unsigned int order);
void rrs_free_pages(struct page *page, unsigned int order);
void *rrs_page_address(struct page *page);
u64 rrs_ib_dma_map_page(struct ib_device *dev, struct page *page, size_t size,
			enum dma_data_direction dir);
void rrs_ib_dma_unmap_page(struct ib_device *dev, u64 addr, size_t size,
			   enum dma_data_direction dir);
void rrs_qp_init_attr_set_event(struct ib_qp_init_attr *attr,
				struct rdma_cm_id *id);
u32 rrs_dev_max_qp_wr(struct ib_device *dev);
u32 rrs_dev_num_comp_vectors(struct ib_device *dev);
struct workqueue_struct *rrs_alloc_workqueue(const char *name, unsigned int flags);
struct rrs_dwork;
struct rrs_dwork *rrs_dwork_new(void (*fn)(void *ctx), void *ctx);
bool rrs_dwork_schedule(struct rrs_dwork *d, struct workqueue_struct *wq,
			unsigned int ms);
void rrs_dwork_cancel_sync(struct rrs_dwork *d);
u32 rrs_raw_smp_processor_id(void);
u32 rrs_nr_cpu_ids(void);
void rrs_get_random_bytes(void *buf, size_t len);
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

/* rdma/sysfs.c */
struct rrs_kobj;
struct kobject;
struct class;
struct device;
struct rrs_kobj_vt {
	ssize_t (*show)(void *ctx, unsigned int idx, char *buf);
	ssize_t (*store)(void *ctx, unsigned int idx, const char *buf, size_t n);
	void (*release)(void *ctx);
};
struct rrs_kobj *rrs_kobj_create(struct kobject *parent, const char *name,
				 const char *const *names, const u16 *modes,
				 unsigned int n, void *ctx,
				 const struct rrs_kobj_vt *vt);
void rrs_kobj_destroy(struct rrs_kobj *k);
struct rrs_dev_files;
struct rrs_dev_files *rrs_dev_files_create(struct device *dev,
					   const char *const *names,
					   const u16 *modes, unsigned int n,
					   void *ctx,
					   const struct rrs_kobj_vt *vt);
void rrs_dev_files_destroy(struct rrs_dev_files *o);
struct kobject *rrs_kobj_kobj(struct rrs_kobj *k);
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

/* Scatter/gather tables of a request's pages (see sg.rs). */
struct scatterlist *rrs_sg_alloc(unsigned int cap);
void rrs_sg_free(struct scatterlist *sgl);
void rrs_sg_set_buf(struct scatterlist *sgl, void *buf, unsigned int len);
int rrs_ib_dma_map_sg(struct ib_device *dev, struct scatterlist *sgl, int nents,
		      enum dma_data_direction dir);
void rrs_ib_dma_unmap_sg(struct ib_device *dev, struct scatterlist *sgl,
			 int nents, enum dma_data_direction dir);
int rrs_sg_to_sges(struct scatterlist *sgl, int count, u32 lkey,
		   struct ib_sge *out, int max);
u32 rrs_dev_max_send_sge(struct ib_device *dev);
u32 rrs_ib_mr_lkey(struct ib_mr *mr);
u64 rrs_ib_mr_length(struct ib_mr *mr);

#endif
