#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""O_DIRECT writes and reads through iovecs that do not start on a page.

Each request's buffers start 512 bytes into a page, and a request of two
iovecs leaves a gap the block layer must split at the queue's virtual
boundary (4 KiB for RNBD): the client registers a read's pages in 4 KiB
pages, so a request whose segments do not fit that must never reach it.
Also one request of 32 scattered segments (more SGEs than rxe sends with
a header).  Every pattern is written, read back through differently shaped
iovecs and compared; the exit status says whether all matched.

Usage: iovec_rw.py <block device>
"""
import mmap
import os
import sys

PAGE = 4096


def bufs(shape, pool):
    """memoryviews into pool for shape: a list of (page index, offset, len)."""
    mv = memoryview(pool)
    return [mv[p * PAGE + o:p * PAGE + o + n] for p, o, n in shape]


def main():
    dev = sys.argv[1]
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    pool = mmap.mmap(-1, 80 * PAGE)
    check = mmap.mmap(-1, 80 * PAGE)
    # Fault every page in, in order, before any case: the pages case 3
    # uses (every other one) are then not physically adjacent, so the
    # block layer cannot merge them into fewer segments.
    pool[:] = b"\1" * len(pool)
    check[:] = b"\1" * len(check)
    # (device offset, write shape, read shape)
    cases = [
        # one iovec, starting 512 B into a page
        (0, [(0, 512, 7 * 512)], [(2, 1024, 7 * 512)]),
        # two iovecs, each starting 512 B into its page: a gap between them
        (1 << 20, [(0, 512, 3584), (2, 512, 3584)], [(4, 0, 7168)]),
        (2 << 20, [(0, 0, 8192)], [(1, 512, 3584), (5, 512, 4608)]),
        # 124 KiB (upstream's largest IO) over 32 scattered pages, the
        # first from 512 B in: 32 segments, past rxe's 32 SGEs with the
        # header, so the write goes through a registration
        (3 << 20, [(0, 512, 3584)] + [(2 * i, 0, PAGE) for i in range(1, 31)]
         + [(62, 0, 512)],
         [(1, 512, 3584)] + [(2 * i + 1, 0, PAGE) for i in range(1, 31)]
         + [(63, 0, 512)]),
    ]
    ok = True
    for n, (off, wshape, rshape) in enumerate(cases):
        data = os.urandom(sum(s[2] for s in wshape))
        pos = 0
        for b in bufs(wshape, pool):
            b[:] = data[pos:pos + len(b)]
            pos += len(b)
        if os.pwritev(fd, bufs(wshape, pool), off) != len(data):
            print(f"case {n}: short write")
            ok = False
            continue
        check[:] = b"\0" * len(check)
        got = os.preadv(fd, bufs(rshape, check), off)
        back = b"".join(bytes(b) for b in bufs(rshape, check))
        if got != len(data) or back != data:
            print(f"case {n}: read back {got} bytes, mismatch")
            ok = False
        else:
            print(f"case {n}: {len(data)} bytes at {off} in {len(wshape)} "
                  f"and {len(rshape)} iovecs: ok")
    os.close(fd)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
