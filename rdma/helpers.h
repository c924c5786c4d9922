/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line versions of RDMA verbs that the kernel headers provide only as
 * static inline functions or macros, which bindgen cannot bind.  Each helper
 * does nothing but call the inline it is named after.
 */
#ifndef RNBD_RS_RDMA_HELPERS_H
#define RNBD_RS_RDMA_HELPERS_H

#include <linux/scatterlist.h>
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
int rrs_cm_id_addr(struct rdma_cm_id *id, int dst, u8 *ip, u16 *port, u32 *scope);
u8 rrs_cm_id_port_num(struct rdma_cm_id *id);

u64 rrs_ib_dma_map_page(struct ib_device *dev, struct page *page, size_t size,
			enum dma_data_direction dir);
void rrs_ib_dma_unmap_page(struct ib_device *dev, u64 addr, size_t size,
			   enum dma_data_direction dir);
void rrs_qp_init_attr_set_event(struct ib_qp_init_attr *attr,
				struct rdma_cm_id *id);
u32 rrs_dev_max_qp_wr(struct ib_device *dev);
u32 rrs_dev_num_comp_vectors(struct ib_device *dev);

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
