/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the `support` crate's bindgen run (see Kbuild). */
#include <linux/kobject.h>
#include <linux/workqueue.h>
#include "helpers.h"
