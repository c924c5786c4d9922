#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Multipath interop cell clt=c srv=rust (see multipath_interop.sh).
. "$(dirname "$0")/multipath_interop.sh"
mp_interop_cell c rust
