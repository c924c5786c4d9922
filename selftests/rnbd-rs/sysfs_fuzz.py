#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Bad strings for the sysfs files of rnbd_client and rnbd_server, used by
sysfs_fuzz.sh.  Deterministic (fixed seeds): the same cases every run.

Each case is written with one write() on a fresh open of the file and must
fail with the errno upstream Linux 6.12 gives for it.  Every generated string
is run through two models before it is kept: one of upstream's parsers (C,
drivers/block/rnbd/rnbd-clt-sysfs.c and what it calls) and one of ours
(proto/map.rs, rnbd/*.rs).  A string either model would accept is dropped:
accepted would mean mapping, unmapping, resizing or closing for real.  For the
random and mutated classes a string the two models answer differently is
dropped too; the classes aimed at a known difference keep upstream's errno.

  sysfs_fuzz.py list <kind> [args]          print the cases, write nothing
  sysfs_fuzz.py map <file> <srv_ip> <sess> <dev> [--skip N] [--limit N]
  sysfs_fuzz.py map-conc <file> <srv_ip> <sess> <dev> <threads> <per thread>
  sysfs_fuzz.py unmap|resize|remap|force_close <file>
  sysfs_fuzz.py unmap-race <file>           two threads write "normal" at once

Output: "# ..." notes, one "class <writes> <unexpected> <errno> <class name>"
line per class of strings, "done <writes>" last; exit status 0 once every
write was made (the unexpected answers are in the class lines).
"""

import errno
import os
import random
import sys
import threading

EINVAL, ENOMEM, ERANGE = errno.EINVAL, errno.ENOMEM, errno.ERANGE
EPROTONOSUPPORT, ENXIO, ENOENT, EEXIST = errno.EPROTONOSUPPORT, errno.ENXIO, errno.ENOENT, errno.EEXIST
OK = "OK"        # the model accepts the string
ANY = "ANY"      # any errno will do (sysfs itself refuses or cuts)
NAME_MAX = 255
MAX_PATHS = 6

# The kernel log is searched for these by lib.sh's check_kernel_reports; our
# strings end up in pr_err lines, so none may contain them.
LOG_ALARMS = [w.lower().encode() for w in (
    "WARNING:", "BUG:", "KASAN:", "UBSAN:", "Oops", "general protection", "possible circular",
    "possible recursive", "inconsistent lock", "sleeping function", "suspicious RCU",
    "Call Trace:", "blocked for more than")]

K_SPACE = b" \t\n\v\f\r\xa0"    # kernel isspace() (lib/ctype.c: 0xa0 is _S)
R_SPACE = b" \t\n\f\r"          # Rust u8::is_ascii_whitespace (no \v)
HEX = b"0123456789abcdefABCDEF"


def ename(e):
    return e if isinstance(e, str) else errno.errorcode.get(e, str(e))


# ---------------------------------------------------------------- upstream

def cut_nul(b):
    """kstrdup() and the kernfs buffer: a C string ends at the first NUL."""
    return b.split(b"\0", 1)[0]


def kstrip(b):
    """strstrip()."""
    return b.strip(K_SPACE)


def sysfs_streq(a, b):
    if a == b:
        return True
    return a == b + b"\n" or a + b"\n" == b


def radix(s, base):
    """_parse_integer_fixup_radix(): (base, prefix bytes skipped)."""
    if base == 0:
        if s[:1] == b"0":
            base = 16 if len(s) >= 3 and s[1:2] in (b"x", b"X") and s[2] in HEX else 8
        else:
            base = 10
    if base == 16 and s[:1] == b"0" and s[1:2] in (b"x", b"X"):
        return base, 2
    return base, 0


def digits(s, base):
    """_parse_integer(): (number of digits, value, overflow)."""
    n, v = 0, 0
    for c in s:
        d = c - 48 if 48 <= c <= 57 else (c | 0x20) - 87 if 97 <= (c | 0x20) <= 102 else 99
        if d >= base:
            break
        v = v * base + d
        n += 1
    return n, v, v >= 1 << 64


def kstrtoull(s, base=0):
    """kstrtoull(): value, or -errno."""
    if s[:1] == b"+":
        s = s[1:]
    base, skip = radix(s, base)
    n, v, over = digits(s[skip:], base)
    if over:
        return -ERANGE
    if n == 0:
        return -EINVAL
    rest = s[skip + n:]
    if rest[:1] == b"\n":
        rest = rest[1:]
    return -EINVAL if rest else v


def strtoull_len(s):
    """simple_strtoull(s, &end, 0): (bytes consumed, value mod 2^64)."""
    base, skip = radix(s, 0)
    n, v, _ = digits(s[skip:], base)
    return skip + n, v % (1 << 64)


def strtol_len(s):
    """simple_strtol(s, &end, 0): (bytes consumed, value as a long)."""
    if s[:1] == b"-":
        n, v = strtoull_len(s[1:])
        v = -v
        n += 1
    else:
        n, v = strtoull_len(s)
    v %= 1 << 64
    return n, v - (1 << 64) if v >= 1 << 63 else v


def match_int(arg):
    """match_int(): int or None (EINVAL/ERANGE)."""
    if len(arg) >= 24:
        return None
    n, v = strtol_len(arg)
    if n == 0 or not -(1 << 31) <= v < 1 << 31:
        return None
    return v


UP_TOKENS = [("path", b"path=", "s"), ("dev", b"device_path=", "s"), ("port", b"dest_port=", "d"),
             ("mode", b"access_mode=", "s"), ("sess", b"sessname=", "s"), ("npq", b"nr_poll_queues=", "d")]


def up_match(t):
    """match_token() with rnbd_opt_tokens: (kind, argument) or (None, None)."""
    for kind, pre, typ in UP_TOKENS:
        if not t.startswith(pre):
            continue
        rest = t[len(pre):]
        if typ == "s":
            if rest:
                return kind, rest
        else:
            n, _ = strtol_len(rest)
            if n and n == len(rest):
                return kind, rest
    return None, None


def up_addr(a):
    """rtrs_str_to_sockaddr(): set of possible results (0 or errno)."""
    if a.startswith(b"gid:"):
        r = a[4:]
        if not r or any(c not in HEX + b":." for c in r):
            return {EINVAL}
        return {0, EINVAL}
    if a.startswith(b"ip:"):
        r = a[3:]
        if not r or len(r) > 48:        # INET_ADDRSTRLEN, INET6_ADDRSTRLEN
            return {EINVAL}
        if all(c in b"0123456789." for c in r):
            p = r.split(b".")
            ok = len(p) == 4 and all(x and int(x) <= 255 for x in p)
            return {0} if ok else {EINVAL}
        if any(c in b":\n%" for c in r):  # in4_pton stops there; IPv6
            return {0, EINVAL}
        return {EINVAL}
    return {EPROTONOSUPPORT}


def up_path(v):
    """rtrs_addr_to_sockaddr()."""
    i = v.find(b",")
    if i < 0:
        i = v.find(b"@")
    out = set()
    if i >= 0:
        src = up_addr(v[:i])
        if src != {0}:
            out.add(EINVAL)
        if 0 not in src:
            return out
        v = v[i + 1:]
    return out | up_addr(v)


def up_map(b):
    """rnbd_clt_parse_map_options(): set of outcomes (OK or errno)."""
    toks = kstrip(cut_nul(b)).split(b" ")
    out = set()

    def run(i, mask, pcnt):
        for j in range(i, len(toks)):
            t = toks[j]
            if not t:
                continue
            kind, arg = up_match(t)
            if kind is None:
                out.add(EINVAL)
                return
            mask |= {"path": 2, "dev": 4, "port": 1, "mode": 8, "sess": 64, "npq": 128}[kind]
            if kind in ("sess", "dev") and len(arg) > NAME_MAX:
                out.add(EINVAL)
                return
            if kind == "path":
                if pcnt >= MAX_PATHS:
                    out.add(ENOMEM)
                    return
                r = up_path(arg)
                out.update(r - {0})
                if 0 in r:
                    run(j + 1, mask, pcnt + 1)
                return
            if kind == "port":
                v = match_int(arg)
                if v is None or not 0 <= v <= 65535:
                    out.add(EINVAL)
                    return
            if kind == "mode" and arg not in (b"ro", b"rw", b"migration"):
                out.add(EINVAL)
                return
            if kind == "npq":
                v = match_int(arg)
                if v is None or v < -1 or v > 8192:   # NR_CPUS at most
                    out.add(EINVAL)
                    return
                if v > 1:                             # depends on nr_cpu_ids
                    out.update({EINVAL, OK})
                    return
        out.add(OK if mask & 4 and mask & 64 else EINVAL)

    run(0, 0, 0)
    return out


def up_unmap(b):
    s = kstrip(cut_nul(b))
    return OK if sysfs_streq(s, b"normal") or sysfs_streq(s, b"force") else EINVAL


def up_remap(b):
    return OK if sysfs_streq(kstrip(cut_nul(b)), b"1") else EINVAL


def up_resize(b):
    v = kstrtoull(cut_nul(b))
    return OK if v >= 0 else -v


def up_force_close(b):
    return OK if sysfs_streq(cut_nul(b), b"1") else EINVAL


# ---------------------------------------------------------------- ours

def rtrim(b):
    return b.strip(R_SPACE)


def o_u32(s):
    if not s or len(s) > 10 or not all(48 <= c <= 57 for c in s):
        return None
    v = int(s)
    return v if v < 1 << 32 else None


def o_i32(s):
    neg = s[:1] == b"-"
    if s[:1] in (b"-", b"+"):
        s = s[1:]
    v = o_u32(s)
    if v is None:
        return None
    v = -v if neg else v
    return v if -(1 << 31) <= v < 1 << 31 else None


def o_ipv4(s):
    p = s.split(b".")
    if len(p) != 4 or not all(x and len(x) <= 3 and x.isdigit() and int(x) <= 255 for x in p):
        return False
    return True


def o_addr(a):
    """parse_addr() of proto/addr.rs: True (valid) or False; IPv6 counts as
    valid (the map is refused later, EINVAL, but do not lean on it)."""
    if a.startswith(b"gid:") or not a.startswith(b"ip:"):
        return False
    r = a[3:]
    if o_ipv4(r):
        return True
    return any(c in b":" for c in r) and all(c in HEX + b":.%" for c in r)  # maybe IPv6


def o_path(v):
    i = v.find(b",")
    if i < 0:
        i = v.find(b"@")
    if i >= 0:
        return o_addr(v[:i]) and o_addr(v[i + 1:])
    return o_addr(v)


def o_map(b):
    """parse_map() of proto/map.rs: OK or errno."""
    have_s = have_d = False
    npaths = 0
    for t in rtrim(b).split(b" "):
        if not t:
            continue

        def val(key):
            if t.startswith(key + b"=") and len(t) > len(key) + 1:
                return t[len(key) + 1:]
            return None
        if val(b"sessname") is not None:
            if len(val(b"sessname")) > 254:
                return EINVAL
            have_s = True
        elif val(b"path") is not None:
            if npaths >= MAX_PATHS:
                return ENOMEM
            if not o_path(val(b"path")):
                return EINVAL
            npaths += 1
        elif val(b"device_path") is not None:
            if len(val(b"device_path")) > 254:
                return EINVAL
            have_d = True
        elif val(b"dest_port") is not None:
            p = o_i32(val(b"dest_port"))
            if p is None or not 0 <= p <= 65535:
                return EINVAL
        elif val(b"access_mode") is not None:
            if val(b"access_mode") not in (b"ro", b"rw", b"migration"):
                return EINVAL
        elif val(b"nr_poll_queues") is not None:
            p = o_i32(val(b"nr_poll_queues"))
            if p is None or p < -1 or p > 1:    # 2 vCPUs: 2 is fine, but leave it out
                return EINVAL if p is None or p < -1 or p > 8192 else OK
        else:
            return EINVAL
    return OK if have_s and have_d else EINVAL


def o_unmap(b):
    return OK if rtrim(b) in (b"normal", b"force") else EINVAL


def o_remap(b):
    return OK if rtrim(b) == b"1" else EINVAL


def o_resize(b):
    v = rtrim(b)
    if v[:1] == b"+":
        v = v[1:]
    return OK if v and all(48 <= c <= 57 for c in v) and int(v) < 1 << 64 else EINVAL


def o_force_close(b):
    return OK if (b[:-1] if b.endswith(b"\n") else b) == b"1" else EINVAL


# ---------------------------------------------------------------- cases

class Cases:
    """Collects (class, bytes, expected errno) after checking both models."""

    def __init__(self, up, ours):
        self.up, self.ours = up, ours
        self.list = []
        self.seen = set()
        self.dropped = 0

    def add(self, cls, b, want=None, agree=False):
        """want: the expected errno when the models cannot know it (the
        server's answer) or ANY; else upstream's model decides.  agree: keep
        the case only if both models give the same errno."""
        if not b or b in self.seen or any(w in b.lower() for w in LOG_ALARMS):
            self.dropped += 1
            return False
        if want is None:
            up = self.up(b)
            up = up if isinstance(up, set) else {up}
            o = self.ours(b)
            if OK in up or o == OK or len(up) != 1:
                self.dropped += 1
                return False
            want = up.pop()
            if agree and o != want:
                self.dropped += 1
                return False
        self.seen.add(b)
        self.list.append(("%s, %s" % (cls, ename(want)), b, want))
        return True


def rand_bytes(rng, n):
    pool = [0, 0, 10, 10, 32, 32, 32, 9, 13, 11, 12, 0xa0, 0xff, 0x80, 0xfe, 61, 61, 64, 44, 58, 46, 37]
    return bytes(rng.choice(pool) if rng.random() < 0.3 else
                 rng.randrange(256) if rng.random() < 0.3 else rng.randrange(33, 127) for _ in range(n))


def mutate(rng, s):
    b = bytearray(s)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(b) + 1)
        if op == 0:
            b[i:i] = rand_bytes(rng, rng.randint(1, 3))
        elif op == 1 and len(b) > 1:
            del b[i:i + rng.randint(1, 6)]
        elif op == 2 and i < len(b):
            b[i] = rng.randrange(256)
        elif op == 3:
            b[i:i] = rng.choice([b" ", b"=", b"\0", b"\n", b"@", b",", b"ip:", b"path=", b"sessname="])
        elif op == 4:
            toks = bytes(b).split(b" ")
            rng.shuffle(toks)
            b = bytearray(b" ".join(toks))
        else:
            toks = bytes(b).split(b" ")
            b = bytearray(b" ".join(toks + [rng.choice(toks)]))
    return bytes(b)


def map_cases(srv, sess, dev, seed=20241130, n_random=150, n_mut=150):
    rng = random.Random(seed)
    c = Cases(up_map, o_map)
    P = b"path=ip:" + srv
    S = b"sessname=fz-new"
    D = b"device_path=" + dev
    valid = b" ".join([S, P, D])
    # Missing mandatory tokens (rnbd-clt-sysfs.c:209-216).
    for parts in ([P, D], [S, P], [P], [], [b"access_mode=rw", P, D], [S, b"dest_port=1234", P],
                  [P, P, D], [S, S, P], [b"access_mode=ro"], [b"nr_poll_queues=0", D, P], [D], [S]):
        c.add("missing sessname/device_path", b" ".join(parts) or b" ")
    for b in (b"\n", b" \n", b"\t\t", b"\0", b"\0" + valid, b"\n\n\n", b"   "):
        c.add("missing sessname/device_path", b)
    # Unknown tokens, known ones without a value (:201-205).
    for t in (b"colour=blue", b"sessname", b"sessname=", b"path=", b"device_path=", b"dest_port=",
              b"access_mode=", b"nr_poll_queues=", b"SESSNAME=x", b"sess_name=x", b"foo", b"=",
              b"==", b"path", b"device_path", b"devicepath=/dev/x", b"Path=ip:" + srv, b"src_path=ip:1.2.3.4",
              b"dest_port", b"dest_port=\xff", b"nr_poll_queues=x", b"nr_poll_queues=1x", b"access=rw",
              b"sessname\t=x", b"\x01", b"\xff\xfe", b"dest_port=12x", b"dest_port=0x", b"dest_port=1.5",
              b"dest_port=abc", b"dest_port=+1", b"dest_port=1e3", b"dest_port=65535x"):
        c.add("unknown token", b" ".join([S, P, D, t]))
        c.add("unknown token", b" ".join([t, S, P, D]))
    # access_mode (:164-183).
    for m in (b"rx", b"RW", b"Ro", b"r", b"w", b"readwrite", b"rw,ro", b"migrate", b"0", b"1", b"ro\x01",
              b"rw\xa0x", b"\xff", b"rwx", b"ro=rw", b"migration2", b"mig"):
        c.add("bad access_mode", b" ".join([S, P, D, b"access_mode=" + m]))
    # dest_port (:153-162); 0 parses (upstream: "< 0"), sysfs_fuzz.sh tries it.
    for p in (b"65536", b"70000", b"-1", b"-65535", b"99999999999", b"2147483648", b"-2147483649",
              b"0x10000", b"0200000", b"4294967296", b"123456789012345678901234567", b"-0x1"):
        c.add("bad dest_port", b" ".join([b"dest_port=" + p, S, P, D]))
        c.add("bad dest_port", b" ".join([S, P, D, b"dest_port=" + p]))
    # nr_poll_queues (:188-199).
    for q in (b"-2", b"-100", b"100000", b"99999999999", b"2147483648", b"-2147483649"):
        c.add("bad nr_poll_queues", b" ".join([S, P, D, b"nr_poll_queues=" + q]))
    # path= values the address parsers refuse (rtrs.c rtrs_addr_to_sockaddr,
    # rtrs_str_to_sockaddr: inet_pton_with_scope() -> EINVAL).
    for a in (b"ip:", b"ip:1.2.3", b"ip:256.1.1.1", b"ip:10.99.0.x", b"ip:abc", b"ip:10.99.0.2.5",
              b"ip:1..2.3", b"ip:-1.2.3.4", b"ip:" + b"1" * 60, b"gid:zz", b"gid:", b"gid:fe80::zz",
              b"bogus@ip:" + srv, b"ip:1.2.3@ip:" + srv, b"10.99.0.1,ip:" + srv, b"ip:1.2.3.4@ip:1.2",
              b"ip:" + srv + b"@ip:300.1.1.1", b"@ip:" + srv, b",ip:" + srv, b"ip:10 99 0 2"):
        c.add("bad path= address", b" ".join([S, b"path=" + a, D]))
    # ... and those without "ip:"/"gid:" before the destination: upstream
    # rtrs_str_to_sockaddr() returns -EPROTONOSUPPORT (rtrs.c, last line).
    for a in (srv, b"IP:" + srv, b"ipv4:" + srv, b"tcp:" + srv, b"ip" + srv, b"ip;" + srv, b"x",
              b"ip:1.2.3.4@", b"ip:1.2.3.4,", b"ip:1.2.3.4@" + srv, b"gid", b"\xff"):
        c.add("path= without ip:/gid:", b" ".join([S, b"path=" + a, D]))
    # Too many paths: the seventh (:110-116) is -ENOMEM upstream.
    for n in (7, 8, 12, 30):
        c.add("more than 6 path=", b" ".join([S] + [P] * n + [D]))
    c.add("more than 6 path=", b" ".join([S] + [P] * 7 + [b"path=garbage", D]))
    # Lengths (:100-105, :143-148: more than NAME_MAX=255 bytes).
    for n in (256, 300, 1000, 4000):
        c.add("sessname/device_path > 255 bytes", b" ".join([b"sessname=" + b"s" * n, P, D]))
        c.add("sessname/device_path > 255 bytes", b" ".join([S, P, b"device_path=/" + b"d" * (n - 1)]))
    for n in (255, 256):     # 255 as well, with a token missing: EINVAL either way
        c.add("long sessname/device_path, a token missing", b" ".join([b"sessname=" + b"s" * n, P]))
        c.add("long sessname/device_path, a token missing", b" ".join([P, b"device_path=/" + b"d" * (n - 1)]))
    # Duplicated tokens with a bad one.
    for extra in ([S, S, P, P, D, D, b"access_mode=ro", b"access_mode=bad"],
                  [S, D, b"dest_port=1", b"dest_port=99999"], [S, D, S, b"sessname=" + b"x" * 256, P],
                  [S, P, D, b"device_path=" + b"y" * 300], [S, P, D, P, b"path=ip:1.2.3"]):
        c.add("duplicated tokens, one bad", b" ".join(extra))
    # Random bytes, and mutations of a valid string.
    i = 0
    while i < n_random:
        i += c.add("random bytes", rand_bytes(rng, rng.choice([1, 2, 5, 20, 60, 200, 400])), agree=True)
    i = 0
    while i < n_mut:
        i += c.add("mutated valid string", mutate(rng, valid), agree=True)
    return c


def map_semantic(srv, sess, dev):
    """Strings that parse: the answer comes from the session or the server."""
    c = Cases(None, None)
    P = b"path=ip:" + srv
    S = b"sessname=" + sess
    D = b"device_path=" + dev
    # rnbd-clt.c:1548-1549: a device mapped on that session already.
    for parts in ([S, P, D], [S, D], [S, D, D, P], [S, S, P, D, b"access_mode=ro"], [D, P, S, b"dest_port=1234"]):
        c.add("already mapped on the session", b" ".join(parts), EEXIST)
    # A device the server does not have (its open answers -ENOENT).
    for d in (b"/dev/nullb7", b"/dev/nonexistent", b"/dev/nullb0x"):
        c.add("no such device on the server", b" ".join([S, b"device_path=" + d]), ENOENT)
    # rnbd-clt.c:1254-1256: a new session without path=.
    for s in (b"fz-nopath", b"fz-" + b"n" * 100):
        c.add("new session without path=", b" ".join([b"sessname=" + s, D]), ENXIO)
    # Longer than a page: kernfs hands the store PAGE_SIZE bytes
    # (fs/kernfs/file.c kernfs_fop_write_iter); whatever the errno, it fails.
    c.add("5000 bytes", b"sessname=" + b"a" * 4991, ANY)
    c.add("5000 bytes", ((b"path=ip:" + srv + b" ") * 300)[:5000], ANY)
    # 255 bytes: upstream cuts the name to 254 and goes on (strscpy into
    # char[NAME_MAX], :106, :149); ours refuses it (proto/map.rs).
    c.add("255-byte sessname/device_path (ours refuses)", b" ".join([b"sessname=" + b"s" * 255, P, D]), EINVAL)
    c.add("255-byte sessname/device_path (ours refuses)",
          b" ".join([b"sessname=fz-new", P, b"device_path=/" + b"d" * 254]), EINVAL)
    return c


SEEDS = {"unmap": 11, "resize": 12, "remap": 13, "force_close": 14}


def simple_cases(kind, seed=None):
    seed = SEEDS[kind] if seed is None else seed
    rng = random.Random(seed)
    up, ours = {"unmap": (up_unmap, o_unmap), "remap": (up_remap, o_remap),
                "resize": (up_resize, o_resize), "force_close": (up_force_close, o_force_close)}[kind]
    c = Cases(up, ours)
    fixed = {
        "unmap": [b"Normal", b"NORMAL", b"norma", b"normall", b"force!", b"forced", b"Force", b"0", b"1",
                  b"normal force", b"normal\tforce", b"nor mal", b"\n", b" ", b"\0normal", b"yes",
                  b"normal\x01", b"\xffnormal", b"force\v", b"-normal", b"normal=1", b"f", b"n",
                  b"normalnormal", b"normal\0force"[::-1]],
        "remap": [b"0", b"2", b"11", b"01", b"-1", b"one", b"true", b"yes", b"1 1", b"1\t1", b"\n",
                  b" ", b"\0" + b"1", b"1.0", b"+1", b"0x1", b"I", b"l", b"1\x01", b"\xff1", b"remap"],
        "resize": [b"abc", b"\n", b" ", b"1.5", b"1e3", b"0x", b"0xZZ", b"one", b"12abc", b"- 1",
                   b"--1", b"-1", b"-0", b"-512", b"-99999999999999999999", b"1 2", b"+", b"+-1",
                   b"08", b"0b101", b"\0" + b"5", b"5\n\n", b" 5", b"5 ", b"\t7", b"0x1g",
                   b"18446744073709551616", b"99999999999999999999999", b"0x10000000000000000",
                   b"-18446744073709551616", b"340282366920938463463374607431768211456",
                   b"0" * 30 + b"x", b"1" * 100],
        "force_close": [b"0", b"2", b"11", b"01", b"-1", b"true", b"yes", b"", b"\n", b" ", b" 1",
                        b"1 ", b"1\n\n", b"1\t", b"\t1", b"one", b"+1", b"0x1", b"1\x01", b"\xff",
                        b"1\r", b"\n1", b"close", b"force_close"],
    }[kind]
    for b in fixed:
        c.add(kind + ": fixed", b)
    i = 0
    while i < 40:
        i += c.add(kind + ": random", rand_bytes(rng, rng.choice([1, 2, 3, 6, 12, 40])), agree=True)
    return c


# ---------------------------------------------------------------- writing

def write_one(path, b):
    """One open, one write(): None on success, else the errno."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return ("open", e.errno)
    try:
        n = os.write(fd, b)
        return ("short", n) if n != len(b) else None
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def run(path, cases, tally):
    """Writes the cases; tally: class -> [writes, unexpected, want]."""
    for cls, b, want in cases:
        got = write_one(path, b)
        t = tally.setdefault(cls, [0, 0, set()])
        t[0] += 1
        t[2].add(ename(want))
        good = isinstance(got, int) and (want == ANY or got == want)
        if not good:
            t[1] += 1
            if t[1] <= 3:
                print("# %s: %r (%d bytes): expected %s, got %s" % (
                    cls, b[:80], len(b), ename(want),
                    "success" if got is None else got if isinstance(got, tuple) else ename(got)))


def report(tally):
    total = 0
    for cls, (n, bad, want) in tally.items():
        print("class %d %d %s %s" % (n, bad, "/".join(sorted(want)), cls))
        total += n
    print("done %d" % total)


def sel(cases, argv):
    skip = int(argv[argv.index("--skip") + 1]) if "--skip" in argv else 0
    limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else None
    return cases[skip:] if limit is None else cases[skip:skip + limit]


def main(argv):
    mode = argv[1]
    if mode == "list":
        kind = argv[2]
        if kind == "map":
            c = map_cases(argv[3].encode(), argv[4].encode(), argv[5].encode())
            cases = c.list + map_semantic(argv[3].encode(), argv[4].encode(), argv[5].encode()).list
        else:
            c = simple_cases(kind)
            cases = c.list
        for cls, b, want in cases:
            print("%-40s %-16s %4d %r" % (cls, ename(want), len(b), b[:100]))
        print("# %d cases, %d generated strings dropped" % (len(cases), c.dropped))
        return 0
    path = argv[2]
    tally = {}
    if mode == "map":
        srv, sess, dev = (a.encode() for a in argv[3:6])
        c = map_cases(srv, sess, dev)
        cases = c.list + map_semantic(srv, sess, dev).list
        print("# map_device: %d cases (%d generated strings dropped by the models)" % (len(cases), c.dropped))
        run(path, sel(cases, argv), tally)
    elif mode == "map-conc":
        srv, sess, dev = (a.encode() for a in argv[3:6])
        nthr, per = int(argv[6]), int(argv[7])
        sets = [[x for x in map_cases(srv, sess, dev, seed=1000 + k, n_random=per // 2,
                                      n_mut=per - per // 2).list
                 if x[0].startswith(("random bytes", "mutated valid string"))] for k in range(nthr)]
        tallies = [{} for _ in range(nthr)]
        barrier = threading.Barrier(nthr)

        def worker(k):
            barrier.wait()
            run(path, [("concurrent " + cls, b, w) for cls, b, w in sets[k]], tallies[k])
        th = [threading.Thread(target=worker, args=(k,)) for k in range(nthr)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        for t in tallies:
            for cls, (n, bad, want) in t.items():
                x = tally.setdefault(cls, [0, 0, set()])
                x[0] += n
                x[1] += bad
                x[2] |= want
    elif mode == "unmap-race":
        fds = [os.open(path, os.O_WRONLY) for _ in range(2)]
        res = [None, None]
        barrier = threading.Barrier(2)

        def racer(k):
            barrier.wait()
            try:
                os.write(fds[k], b"normal")
                res[k] = "ok"
            except OSError as e:
                res[k] = ename(e.errno)
        th = [threading.Thread(target=racer, args=(k,)) for k in range(2)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        for fd in fds:
            os.close(fd)
        print("race %s %s" % tuple(res))
        return 0
    else:
        run(path, simple_cases(mode).list, tally)
    report(tally)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
