// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of rtrs-server.ko, same names, types, permissions and
 * defaults as upstream.  C because Rust modules get parameters only in 6.19;
 * rtrs_server.rs reads them once at load through the accessors below.
 */
#include <linux/moduleparam.h>

#define DEFAULT_MAX_CHUNK_SIZE (128 << 10)
#define DEFAULT_SESS_QUEUE_DEPTH 512
#define MAX_SESS_QUEUE_DEPTH 65535

/* Called from rtrs_server.rs. */
bool rtrs_srv_param_always_invalidate(void);
int rtrs_srv_param_max_chunk_size(void);
int rtrs_srv_param_sess_queue_depth(void);
int rtrs_srv_param_max_sessions(void);
int rtrs_srv_param_max_paths(void);
int rtrs_srv_param_setup_timeout(void);

static bool always_invalidate = true;
module_param(always_invalidate, bool, 0444);
MODULE_PARM_DESC(always_invalidate,
		 "Invalidate memory registration for contiguous memory regions before accessing.");

static int max_chunk_size = DEFAULT_MAX_CHUNK_SIZE;
module_param_named(max_chunk_size, max_chunk_size, int, 0444);
MODULE_PARM_DESC(max_chunk_size,
		 "Max size for each IO request, when change the unit is in byte (default: "
		 __stringify(DEFAULT_MAX_CHUNK_SIZE) "KB)");

static int sess_queue_depth = DEFAULT_SESS_QUEUE_DEPTH;
module_param_named(sess_queue_depth, sess_queue_depth, int, 0444);
MODULE_PARM_DESC(sess_queue_depth,
		 "Number of buffers for pending I/O requests to allocate per session. Maximum: "
		 __stringify(MAX_SESS_QUEUE_DEPTH) " (default: "
		 __stringify(DEFAULT_SESS_QUEUE_DEPTH) ")");

/*
 * Not upstream: limits against clients that never finish what they start.
 * Every session costs sess_queue_depth * max_chunk_size bytes (64 MiB by
 * default) from its first connect request on.
 */
static int max_sessions = 64;
module_param(max_sessions, int, 0444);
MODULE_PARM_DESC(max_sessions,
		 "Most client sessions at once; a connect request for a new session beyond it is rejected (default: 64)");

static int max_paths = 128;
module_param(max_paths, int, 0444);
MODULE_PARM_DESC(max_paths,
		 "Most paths per session, at most 128 (default: 128)");

static int setup_timeout = 30;
module_param(setup_timeout, int, 0444);
MODULE_PARM_DESC(setup_timeout,
		 "Seconds a path may take from its first connect request to its info request before it is closed (default: 30)");

bool rtrs_srv_param_always_invalidate(void) { return always_invalidate; }
int rtrs_srv_param_max_sessions(void) { return max_sessions; }
int rtrs_srv_param_max_paths(void) { return max_paths; }
int rtrs_srv_param_setup_timeout(void) { return setup_timeout; }
int rtrs_srv_param_max_chunk_size(void) { return max_chunk_size; }
int rtrs_srv_param_sess_queue_depth(void) { return sess_queue_depth; }
