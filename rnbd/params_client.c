// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameter of rnbd-client.ko beyond upstream's (which has none):
 * fast_io_fail_tmo, named and meant as nvme's.  C because Rust modules get
 * parameters only in 6.19; rnbd_client.rs reads it at each use with
 * rnbd_clt_fast_io_fail_tmo().
 */
#include <linux/compiler.h>
#include <linux/errno.h>
#include <linux/kstrtox.h>
#include <linux/moduleparam.h>

#define FAST_IO_FAIL_TMO_MAX 86400

int rnbd_clt_fast_io_fail_tmo(void);

/*
 * 90 s: a lost path is first retried 31 s after the loss (upstream's
 * reconnect delay, kept for compatibility), and connecting and remapping
 * take seconds more; 30 s, nvme-like, failed every single-path session's IO
 * before its first reconnect.  90 s covers two attempts and stays under the
 * hung-task timeout's 120 s.
 */
static int fast_io_fail_tmo = 90;

static int fast_io_fail_tmo_set(const char *val, const struct kernel_param *kp)
{
	int v, err;

	err = kstrtoint(val, 0, &v);
	if (err)
		return err;
	if (v < -1 || v > FAST_IO_FAIL_TMO_MAX)
		return -EINVAL;
	WRITE_ONCE(fast_io_fail_tmo, v);
	return 0;
}

static const struct kernel_param_ops fast_io_fail_tmo_ops = {
	.set	= fast_io_fail_tmo_set,
	.get	= param_get_int,
};

module_param_cb(fast_io_fail_tmo, &fast_io_fail_tmo_ops, &fast_io_fail_tmo, 0644);
MODULE_PARM_DESC(fast_io_fail_tmo,
		 "Seconds IO waits for a path after a session lost its last one, before it fails (as nvme's fast_io_fail_tmo); 0: fail at once (upstream rnbd), -1: wait forever (default: 90, max: "
		 __stringify(FAST_IO_FAIL_TMO_MAX) ")");

int rnbd_clt_fast_io_fail_tmo(void)
{
	return READ_ONCE(fast_io_fail_tmo);
}
