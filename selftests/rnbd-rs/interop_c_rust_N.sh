#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Interop cell clt=c srv=rust always_invalidate=N (see interop.sh).
. "$(dirname "$0")/interop.sh"
interop_cell c rust N
