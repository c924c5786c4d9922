// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of rnbd-server.ko, same names, types, permissions and
 * defaults as upstream.  C because Rust modules get parameters only in 6.19;
 * rnbd_server.rs reads them once at load with rnbd_srv_params_get().
 */
#include <linux/limits.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/string.h>

#define RTRS_PORT 1234
#define DEFAULT_DEV_SEARCH_PATH "/"

/* Filled for rnbd_server.rs; the layout is declared there too. */
struct rnbd_srv_params {
	u16 port_nr;
	char dev_search_path[PATH_MAX];
};

/* Kept equal to the assertion on `RawParams` in rnbd_server.rs. */
static_assert(sizeof(struct rnbd_srv_params) == 4098);

void rnbd_srv_params_get(struct rnbd_srv_params *out);

static u16 port_nr = RTRS_PORT;
module_param_named(port_nr, port_nr, ushort, 0444);
MODULE_PARM_DESC(port_nr,
		 "The port number the server is listening on (default: "
		 __stringify(RTRS_PORT)")");

static char dev_search_path[PATH_MAX] = DEFAULT_DEV_SEARCH_PATH;

/* As upstream: a trailing newline (echo) is not part of the path. */
static int dev_search_path_set(const char *val, const struct kernel_param *kp)
{
	const char *p = strrchr(val, '\n') ? : val + strlen(val);

	if (strlen(val) >= sizeof(dev_search_path))
		return -EINVAL;

	snprintf(dev_search_path, sizeof(dev_search_path), "%.*s",
		 (int)(p - val), val);

	pr_info("dev_search_path changed to '%s'\n", dev_search_path);

	return 0;
}

static struct kparam_string dev_search_path_kparam_str = {
	.maxlen	= sizeof(dev_search_path),
	.string	= dev_search_path
};

static const struct kernel_param_ops dev_search_path_ops = {
	.set	= dev_search_path_set,
	.get	= param_get_string,
};

module_param_cb(dev_search_path, &dev_search_path_ops,
		&dev_search_path_kparam_str, 0444);
MODULE_PARM_DESC(dev_search_path,
		 "Sets the dev_search_path. When a device is mapped this path is prepended to the device path from the map device operation.  If %SESSNAME% is specified in a path, then device will be searched in a session namespace. (default: "
		 DEFAULT_DEV_SEARCH_PATH ")");

void rnbd_srv_params_get(struct rnbd_srv_params *out)
{
	out->port_nr = port_nr;
	strscpy(out->dev_search_path, dev_search_path,
		sizeof(out->dev_search_path));
}
