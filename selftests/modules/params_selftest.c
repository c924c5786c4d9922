// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of rdma-selftest.ko.  C because Rust modules get
 * parameters only in 6.19; the Rust side reads them through the accessors.
 */
#include <linux/moduleparam.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/sysfs.h>

/* Called from rdma_selftest.rs. */
const char *rdma_selftest_role(void);
const char *rdma_selftest_addr(void);
int rdma_selftest_port(void);
int rdma_selftest_len(void);
void rdma_selftest_set_result(const char *s, size_t n);

static char *role = "server";
module_param(role, charp, 0444);
MODULE_PARM_DESC(role, "server (listen, check the write) or client (write)");

static char *addr = "0.0.0.0";
module_param(addr, charp, 0444);
MODULE_PARM_DESC(addr, "IPv4 address: to listen on, or of the server");

static int port = 19999;
module_param(port, int, 0444);
MODULE_PARM_DESC(port, "TCP port space port");

static int len = 4096;
module_param(len, int, 0444);
MODULE_PARM_DESC(len, "bytes to write");

/* Written from a completion handler (softirq), read through sysfs. */
static char result[128] = "waiting";
static DEFINE_SPINLOCK(result_lock);

static int result_get(char *buf, const struct kernel_param *kp)
{
	unsigned long flags;
	int n;

	spin_lock_irqsave(&result_lock, flags);
	n = sysfs_emit(buf, "%s\n", result);
	spin_unlock_irqrestore(&result_lock, flags);
	return n;
}

static const struct kernel_param_ops result_ops = { .get = result_get };
module_param_cb(result, &result_ops, NULL, 0444);
MODULE_PARM_DESC(result, "server: outcome of the check (read-only)");

const char *rdma_selftest_role(void) { return role; }
const char *rdma_selftest_addr(void) { return addr; }
int rdma_selftest_port(void) { return port; }
int rdma_selftest_len(void) { return len; }

void rdma_selftest_set_result(const char *s, size_t n)
{
	unsigned long flags;

	n = min(n, sizeof(result) - 1);
	spin_lock_irqsave(&result_lock, flags);
	memcpy(result, s, n);
	result[n] = '\0';
	spin_unlock_irqrestore(&result_lock, flags);
}
