/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the `rdma` crate's bindgen run (see Kbuild). */
#include <linux/dma-direction.h>
#include <linux/in.h>
#include <linux/scatterlist.h>
#include <rdma/ib_cm.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>
#include "helpers.h"

