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

/*
 * The id's local (dst = 0) or peer address: the address in network order
 * into ip[16] (IPv4 in its first 4 bytes), the port in host order, the IPv6
 * scope id; returns 4 or 6, or -EAFNOSUPPORT for another family (AF_IB).
 */
int rrs_cm_id_addr(struct rdma_cm_id *id, int dst, u8 *ip, u16 *port, u32 *scope)
{
	struct sockaddr *sa = dst ? (struct sockaddr *)&id->route.addr.dst_addr :
				    (struct sockaddr *)&id->route.addr.src_addr;

	switch (sa->sa_family) {
	case AF_INET: {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		memcpy(ip, &in->sin_addr.s_addr, 4);
		*port = ntohs(in->sin_port);
		*scope = 0;
		return 4;
	}
	case AF_INET6: {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		memcpy(ip, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
		*scope = in6->sin6_scope_id;
		return 6;
	}
	}
	return -EAFNOSUPPORT;
}
EXPORT_SYMBOL_GPL(rrs_cm_id_addr);

u8 rrs_cm_id_port_num(struct rdma_cm_id *id)
{
	return id->port_num;
}
EXPORT_SYMBOL_GPL(rrs_cm_id_port_num);

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
