#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Interop cell clt=rust srv=c always_invalidate=Y (see interop.sh).
. "$(dirname "$0")/interop.sh"
interop_cell rust c Y
