#!/bin/bash
# Rust hygiene of the kernel-side crates (support rdma rtrs rnbd blk proto
# selftests/modules), with the kernel's own settings:
#
#   fmt     rustfmt --check with the kernel's .rustfmt.toml
#   clippy  the module build with the kernel's CLIPPY=1 lint set, in a
#           temporary copy of the sources, against the $FLAVOUR kernel tree
#           (tools/env.sh; perf by default); -Dwarnings makes any finding fail
#   ffi     FFI discipline: a `// SAFETY:` comment right above every `unsafe`
#           block and `unsafe impl`, a `# Safety` section in the doc comment
#           of every `unsafe fn` and `extern "C" fn`, an `# Invariants`
#           section on every type that holds a raw pointer; and no
#           `.unwrap()` / `.expect(` outside host-only test code
#
# Usage: tools/lint.sh [--fix] [fmt] [clippy] [ffi]    (no names: all checks)
#   --fix  rustfmt the files in place first
# Prints what it found; exits 1 if any check found something (or could not
# run), 0 if all are clean.  Needs Debian's rustfmt-web and rust-web-clippy,
# which match rustc-web (tools/setup.sh installs them), not rustup's.
set -uo pipefail
. "$(dirname "$0")/env.sh"

RUSTFMT=/usr/bin/rustfmt
CLIPPY_DRIVER=/usr/bin/clippy-driver
CRATES=(support rdma rtrs rnbd blk proto selftests/modules)

fix=0 checks=()
for a in "$@"; do
	case $a in
	--fix) fix=1 ;;
	fmt | clippy | ffi) checks+=("$a") ;;
	*) echo "usage: $0 [--fix] [fmt] [clippy] [ffi]" >&2; exit 2 ;;
	esac
done
[ ${#checks[@]} -gt 0 ] || checks=(fmt ffi clippy)

# The crates' Rust sources, without the generated ones (bindgen's output).
rs_files() {
	(cd "$RNBD_TOP" && find "${CRATES[@]}" -name target -prune -o \
		-type f -name '*.rs' ! -name '*_generated.rs' -print | sort)
}

failed=0
result() { # result <check> <status> <message>
	if [ "$2" = 0 ]; then
		echo "lint: $1: ok${3:+ ($3)}"
	else
		echo "lint: $1: FAILED: $3"
		failed=$((failed + 1))
	fi
}

check_fmt() {
	local files out rc
	[ -x "$RUSTFMT" ] || { result fmt 1 "$RUSTFMT missing: apt-get install rustfmt-web (tools/setup.sh)"; return; }
	mapfile -t files < <(rs_files)
	local fmt=("$RUSTFMT" --edition 2021 --config-path "$KSRC/.rustfmt.toml" --color never)
	if [ $fix = 1 ]; then
		(cd "$RNBD_TOP" && "${fmt[@]}" "${files[@]}") || { result fmt 1 "rustfmt failed"; return; }
	fi
	out=$(cd "$RNBD_TOP" && "${fmt[@]}" --check "${files[@]}" 2>&1)
	rc=$?
	if [ $rc = 0 ]; then
		result fmt 0 "${#files[@]} files"
	else
		printf '%s\n' "$out"
		result fmt 1 "$(printf '%s\n' "$out" | grep -c '^Diff in') place(s) not formatted (tools/lint.sh --fix fmt formats them)"
	fi
}

check_clippy() {
	local tmp out rc n
	[ -x "$CLIPPY_DRIVER" ] || { result clippy 1 "$CLIPPY_DRIVER missing: apt-get install rust-web-clippy (tools/setup.sh)"; return; }
	[ -f "$KBUILD/.rnbd-rs-built" ] || { result clippy 1 "kernel $FLAVOUR not built ($KBUILD): run tools/build-kernel.sh"; return; }
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnbd-lint.XXXXXX")
	# Only the build's sources, never objects or generated files of an
	# earlier in-tree build: make would take those as up to date and skip
	# the crates' compilation, and with it clippy.
	(cd "$RNBD_TOP" && find Kbuild Makefile "${CRATES[@]}" -name target -prune -o -type f \
		\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild -o -name Makefile \) \
		! -name '*_generated.*' -print0 | tar --null -T - -cf -) | tar -C "$tmp" -xf -
	out=$(make -s -C "$tmp" FLAVOUR="$FLAVOUR" KDIR="$KBUILD" CLIPPY=1 \
		CLIPPY_DRIVER="$CLIPPY_DRIVER" modules 2>&1)
	rc=$?
	rm -rf "$tmp"
	[ -z "$out" ] || printf '%s\n' "$out" | sed "s|$tmp/||g"
	n=$(printf '%s\n' "$out" | grep -E '^(warning|error)(\[[^]]*\])?: ' | grep -vc 'aborting due to')
	if [ $rc != 0 ]; then
		# rustc stops at the first crate with an error: the crates after
		# it (see Kbuild) were not checked.
		result clippy 1 "$n finding(s) against $KBUILD (the first failing crate stops the build)"
	elif [ "$n" != 0 ]; then
		result clippy 1 "$n finding(s) against $KBUILD"
	else
		result clippy 0 "$KBUILD"
	fi
}

# The `ffi` check, on the files named as arguments.  Line-based: an
# `unsafe` block or impl needs `// SAFETY:` in the comment lines directly
# above its line (attributes in between are skipped), which is stricter than
# clippy's undocumented_unsafe_blocks (that accepts the comment above the
# statement the block is part of).
ffi_check_py() {
	cat <<'PY'
import os, re, sys

STR = re.compile(r'"(?:[^"\\]|\\.)*"')
CHR = re.compile(r"b?'(?:[^'\\]|\\.)'")
UNSAFE_BLOCK = re.compile(r'\bunsafe\s*\{')
UNSAFE_IMPL = re.compile(r'^\s*unsafe\s+impl\b')
FFI_FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(?P<u>unsafe\s+)?'
                    r'(?P<e>extern\s+"C"\s+)?fn\s+\w+')
TYPE = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(struct|enum|union)\s+\w+')
RAW_PTR = re.compile(r'\*(mut|const)\s|NonNull\s*<')
PANIC = re.compile(r'\.(unwrap|expect)\(')
CFG_TEST = re.compile(r'^\s*#\[cfg\(test\)\]')


def code_of(line):
    """The line without string and char literals and without a // comment."""
    s = CHR.sub("' '", STR.sub('""', line))
    i = s.find('//')
    return s if i < 0 else s[:i]


def block_above(lines, i, prefix):
    """The contiguous lines starting with `prefix` right above line i
    (attribute lines between them and line i skipped)."""
    j = i - 1
    while j >= 0 and re.match(r'\s*#!?\[', lines[j]):
        j -= 1
    out = []
    while j >= 0 and lines[j].lstrip().startswith(prefix):
        out.append(lines[j])
        j -= 1
    return out


def item_body(lines, i):
    """The code of the item that starts on line i, to its last `}` or `;`."""
    depth = 0
    for j in range(i, len(lines)):
        c = code_of(lines[j])
        yield c
        depth += c.count('{') + c.count('(') - c.count('}') - c.count(')')
        if depth <= 0 and c.rstrip().endswith(('}', ';')):
            return


files = {p: open(p, encoding='utf-8').read().split('\n') for p in sys.argv[1:]}
# Host-only files: modules declared `#[cfg(test)] mod x;`.
test_only = set()
for path, lines in files.items():
    for i, line in enumerate(lines[:-1]):
        m = re.match(r'\s*(pub\s+)?mod\s+(\w+)\s*;', lines[i + 1])
        if CFG_TEST.match(line) and m:
            test_only.add(os.path.join(os.path.dirname(path), m[2] + '.rs'))

findings = []
n = dict(blocks=0, impls=0, unsafe_fns=0, extern_fns=0, ptr_types=0)
for path, lines in files.items():
    in_test = path in test_only
    test_end = -1
    for i, line in enumerate(lines):
        code = code_of(line)
        # Host-only test code (`#[cfg(test)]` items) may panic.
        if CFG_TEST.match(line) and i > test_end:
            test_end = i + len(list(item_body(lines, i + 1)))
        if not in_test and i > test_end and PANIC.search(code):
            findings.append(f'{path}:{i + 1}: `.unwrap()`/`.expect()` in kernel code')
        at = f'{path}:{i + 1}: '
        blocks = len(UNSAFE_BLOCK.findall(code))
        impl = UNSAFE_IMPL.search(code) is not None
        if blocks or impl:
            n['blocks'] += blocks
            n['impls'] += impl
            if not any('SAFETY:' in c for c in block_above(lines, i, '//')):
                what = '`unsafe impl`' if impl else '`unsafe` block'
                findings.append(at + what + ' without a `// SAFETY:` comment right above')
        m = FFI_FN.match(line)
        if m and (m['u'] or m['e']):
            n['extern_fns' if m['e'] else 'unsafe_fns'] += 1
            if not any('# Safety' in c for c in block_above(lines, i, '///')):
                what = '`extern "C" fn`' if m['e'] else '`unsafe fn`'
                findings.append(at + what + ' without a `# Safety` section in its doc comment')
        # `PhantomData<*mut ..>`, the marker of an opaque C type, holds no pointer.
        if TYPE.match(code) and any(RAW_PTR.search(c) and 'PhantomData' not in c
                                    for c in item_body(lines, i)):
            n['ptr_types'] += 1
            if not any('# Invariants' in c for c in block_above(lines, i, '///')):
                findings.append(at + 'type holding a raw pointer without an `# Invariants` section')

for f in findings:
    print(f)
print('{blocks} unsafe blocks, {impls} unsafe impls, {unsafe_fns} unsafe fns, '
      '{extern_fns} extern "C" fns, {ptr_types} types holding raw pointers; '.format(**n)
      + f'{len(findings)} finding(s)')
sys.exit(1 if findings else 0)
PY
}

check_ffi() {
	local files out rc
	mapfile -t files < <(rs_files)
	out=$(cd "$RNBD_TOP" && python3 -c "$(ffi_check_py)" "${files[@]}" 2>&1)
	rc=$?
	if [ $rc = 0 ]; then
		result ffi 0 "$(printf '%s\n' "$out" | tail -n1)"
	else
		printf '%s\n' "$out" | sed '$d'
		result ffi 1 "$(printf '%s\n' "$out" | tail -n1)"
	fi
}

for c in "${checks[@]}"; do
	"check_$c"
done
if [ $failed != 0 ]; then
	echo "lint: $failed check(s) failed"
	exit 1
fi
echo "lint: clean"
