// SPDX-License-Identifier: GPL-2.0
/*
 * rnbd-hostile: thin C layer over librdmacm and libibverbs.
 *
 * Why C: ibv_post_send(), ibv_post_recv() and ibv_poll_cq() are static
 * inline functions of <infiniband/verbs.h> (calls through the context's ops
 * table), which Rust cannot call directly.  Everything here is a plain
 * wrapper with opaque handles; the protocol logic is in Rust.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <rdma/rdma_cma.h>
#include <infiniband/verbs.h>

struct hcon {
	struct rdma_cm_id *id;
	int pd_shared;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
};

struct hmr {
	struct ibv_mr *mr;
	void *buf;
	size_t len;
};

struct hev {
	int32_t type;
	int32_t status;
	struct hcon *con;
	uint8_t priv[256];
	uint32_t priv_len;
};

struct hwc {
	uint64_t wr_id;
	int32_t status;
	int32_t opcode;
	uint32_t byte_len;
	uint32_t imm;
	int32_t has_imm;
	int32_t has_inv;
	uint32_t inv_rkey;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct rdma_event_channel *h_channel(void)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();

	return ch;
}

void h_channel_free(struct rdma_event_channel *ch)
{
	rdma_destroy_event_channel(ch);
}

/* Next event on the channel: 1 got one, 0 timeout, <0 error. */
int h_event(struct rdma_event_channel *ch, int timeout_ms, struct hev *ev)
{
	struct rdma_cm_event *e;
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	struct hcon *c;
	int r;

	r = poll(&p, 1, timeout_ms);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	if (rdma_get_cm_event(ch, &e))
		return -errno;
	memset(ev, 0, sizeof(*ev));
	ev->type = e->event;
	ev->status = e->status;
	if (e->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		c = calloc(1, sizeof(*c));
		if (c) {
			c->id = e->id;
			e->id->context = c;
		}
		ev->con = c;
	} else {
		ev->con = e->id ? e->id->context : NULL;
	}
	if (e->param.conn.private_data && e->param.conn.private_data_len) {
		ev->priv_len = e->param.conn.private_data_len;
		if (ev->priv_len > sizeof(ev->priv))
			ev->priv_len = sizeof(ev->priv);
		memcpy(ev->priv, e->param.conn.private_data, ev->priv_len);
	}
	rdma_ack_cm_event(e);
	return 1;
}

struct hcon *h_con_new(struct rdma_event_channel *ch)
{
	struct hcon *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (rdma_create_id(ch, &c->id, c, RDMA_PS_TCP)) {
		free(c);
		return NULL;
	}
	return c;
}

static int sa_of(const char *ip, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return 0;
	}
	return -EINVAL;
}

/* Waits for one event of a given type on the connection's own channel. */
static int wait_type(struct hcon *c, int type, int timeout_ms)
{
	struct hev ev;
	int r = h_event(c->id->channel, timeout_ms, &ev);

	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return r;
	if (ev.type != type)
		return -EPROTO;
	return 0;
}

int h_resolve(struct hcon *c, const char *dst, int port, int timeout_ms)
{
	struct sockaddr_storage ss;
	int r;

	r = sa_of(dst, port, &ss);
	if (r)
		return r;
	if (rdma_resolve_addr(c->id, NULL, (struct sockaddr *)&ss, timeout_ms))
		return -errno;
	r = wait_type(c, RDMA_CM_EVENT_ADDR_RESOLVED, timeout_ms + 1000);
	if (r)
		return r;
	if (rdma_resolve_route(c->id, timeout_ms))
		return -errno;
	return wait_type(c, RDMA_CM_EVENT_ROUTE_RESOLVED, timeout_ms + 1000);
}

int h_listen(struct hcon *c, const char *ip, int port)
{
	struct sockaddr_storage ss;
	int r = sa_of(ip, port, &ss);

	if (r)
		return r;
	if (rdma_bind_addr(c->id, (struct sockaddr *)&ss))
		return -errno;
	if (rdma_listen(c->id, 64))
		return -errno;
	return 0;
}

/* A PD of the connection's own (a listener bound to an address has a device). */
int h_alloc_pd(struct hcon *c)
{
	if (!c->id->verbs)
		return -ENODEV;
	c->pd = ibv_alloc_pd(c->id->verbs);
	return c->pd ? 0 : -ENOMEM;
}

/* Use `from`'s PD (freed with `from`, which must outlive `c`). */
void h_share_pd(struct hcon *c, struct hcon *from)
{
	c->pd = from->pd;
	c->pd_shared = 1;
}

int h_setup_qp(struct hcon *c, uint32_t send_wr, uint32_t recv_wr)
{
	struct ibv_qp_init_attr a;

	if (!c->pd)
		c->pd = ibv_alloc_pd(c->id->verbs);
	if (!c->pd)
		return -ENOMEM;
	c->cq = ibv_create_cq(c->id->verbs, send_wr + recv_wr, NULL, NULL, 0);
	if (!c->cq)
		return -ENOMEM;
	memset(&a, 0, sizeof(a));
	a.send_cq = c->cq;
	a.recv_cq = c->cq;
	a.qp_type = IBV_QPT_RC;
	a.cap.max_send_wr = send_wr;
	a.cap.max_recv_wr = recv_wr;
	a.cap.max_send_sge = 2;
	a.cap.max_recv_sge = 1;
	a.sq_sig_all = 1;
	if (rdma_create_qp(c->id, c->pd, &a))
		return -errno;
	c->qp = c->id->qp;
	return 0;
}

static void conn_param(struct rdma_conn_param *p, const void *priv, uint32_t len)
{
	memset(p, 0, sizeof(*p));
	p->private_data = priv;
	p->private_data_len = len;
	p->retry_count = 7;
	p->rnr_retry_count = 7;
}

int h_connect(struct hcon *c, const void *priv, uint32_t len)
{
	struct rdma_conn_param p;

	conn_param(&p, priv, len);
	return rdma_connect(c->id, &p) ? -errno : 0;
}

int h_accept(struct hcon *c, const void *priv, uint32_t len)
{
	struct rdma_conn_param p;

	conn_param(&p, priv, len);
	return rdma_accept(c->id, &p) ? -errno : 0;
}

int h_reject(struct hcon *c, const void *priv, uint32_t len)
{
	return rdma_reject(c->id, priv, len) ? -errno : 0;
}

int h_disconnect(struct hcon *c)
{
	return rdma_disconnect(c->id) ? -errno : 0;
}

void h_con_free(struct hcon *c)
{
	if (c->qp)
		rdma_destroy_qp(c->id);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->pd && !c->pd_shared)
		ibv_dealloc_pd(c->pd);
	rdma_destroy_id(c->id);
	free(c);
}

struct hmr *h_mr_new(struct hcon *c, size_t len)
{
	struct hmr *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (posix_memalign(&m->buf, 4096, len ? len : 1)) {
		free(m);
		return NULL;
	}
	memset(m->buf, 0, len);
	m->len = len;
	m->mr = ibv_reg_mr(c->pd, m->buf, len ? len : 1,
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!m->mr) {
		free(m->buf);
		free(m);
		return NULL;
	}
	return m;
}

void h_mr_free(struct hmr *m)
{
	ibv_dereg_mr(m->mr);
	free(m->buf);
	free(m);
}

void *h_mr_buf(struct hmr *m) { return m->buf; }
uint64_t h_mr_addr(struct hmr *m) { return (uintptr_t)m->buf; }
uint32_t h_mr_rkey(struct hmr *m) { return m->mr->rkey; }

enum { H_SEND, H_SEND_IMM, H_WRITE, H_WRITE_IMM, H_SEND_INV };

int h_post_send(struct hcon *c, int op, struct hmr *m, uint32_t off, uint32_t len, uint64_t raddr,
		uint32_t rkey, uint32_t imm, uint64_t wr_id)
{
	struct ibv_send_wr wr, *bad;
	struct ibv_sge sge;

	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id;
	if (m && len) {
		if ((size_t)off + len > m->len)
			return -EINVAL;
		sge.addr = (uintptr_t)m->buf + off;
		sge.length = len;
		sge.lkey = m->mr->lkey;
		wr.sg_list = &sge;
		wr.num_sge = 1;
	}
	wr.send_flags = IBV_SEND_SIGNALED;
	switch (op) {
	case H_SEND:
		wr.opcode = IBV_WR_SEND;
		break;
	case H_SEND_IMM:
		wr.opcode = IBV_WR_SEND_WITH_IMM;
		wr.imm_data = htonl(imm);
		break;
	case H_WRITE:
		wr.opcode = IBV_WR_RDMA_WRITE;
		break;
	case H_WRITE_IMM:
		wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
		wr.imm_data = htonl(imm);
		break;
	case H_SEND_INV:
		wr.opcode = IBV_WR_SEND_WITH_INV;
		wr.invalidate_rkey = imm;
		break;
	default:
		return -EINVAL;
	}
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return -ibv_post_send(c->qp, &wr, &bad);
}

int h_post_recv(struct hcon *c, struct hmr *m, uint32_t off, uint32_t len, uint64_t wr_id)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id;
	if (m && len) {
		if ((size_t)off + len > m->len)
			return -EINVAL;
		sge.addr = (uintptr_t)m->buf + off;
		sge.length = len;
		sge.lkey = m->mr->lkey;
		wr.sg_list = &sge;
		wr.num_sge = 1;
	}
	return -ibv_post_recv(c->qp, &wr, &bad);
}

/* One completion: 1 got one, 0 timeout, <0 error. */
int h_poll(struct hcon *c, int timeout_ms, struct hwc *out)
{
	long end = now_ms() + timeout_ms;
	struct ibv_wc wc;
	int n;

	for (;;) {
		n = ibv_poll_cq(c->cq, 1, &wc);
		if (n < 0)
			return -EIO;
		if (n == 1)
			break;
		if (now_ms() >= end)
			return 0;
		usleep(500);
	}
	memset(out, 0, sizeof(*out));
	out->wr_id = wc.wr_id;
	out->status = wc.status;
	out->opcode = wc.opcode;
	out->byte_len = wc.byte_len;
	if (wc.wc_flags & IBV_WC_WITH_IMM) {
		out->has_imm = 1;
		out->imm = ntohl(wc.imm_data);
	}
	if (wc.wc_flags & IBV_WC_WITH_INV) {
		out->has_inv = 1;
		out->inv_rkey = wc.invalidated_rkey;
	}
	return 1;
}
