#!/bin/bash
# sparse (make C=2: check every file) against each test kernel's headers;
# for sid's kernel, the chroot's sparse (tests/sid-chroot.sh installs it),
# like its compiler. Any sparse output line other than kbuild's own
# progress is a failure, and so is a kernel whose Makefile refused to run
# sparse ("C=2 specified, but sparse is not available or not up to date").
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/kernels.sh"
command -v sparse >/dev/null || { echo "sparse: not installed" >&2; exit 1; }
# sparse itself for kernels built in the chroot (casfs_kernel_root).
has_sparse() {
	local root
	root=$(casfs_kernel_root "$1")
	[ -z "$root" ] || [ -x "$root/usr/bin/sparse" ]
}
rc=0
for rel in $(casfs_test_kernels); do
	out=$top/build/kbuild/$rel
	[ -d "$out/kmod" ] || { echo "sparse: run tests/build-modules.sh first" >&2; exit 1; }
	has_sparse "$rel" || { echo "sparse: not installed for $rel (tests/sid-chroot.sh)" >&2; exit 1; }
	log=$(casfs_kbuild "$rel" "$out" C=2 modules 2>&1 |
		grep -vE '^make|^  (CHECK|CC|LD|MODPOST|BTF|CONFTEST)|^Skipping BTF' || true)
	if [ -n "$log" ]; then
		echo "sparse findings for $rel:"
		echo "$log"
		rc=1
	else
		echo "sparse: clean for $rel"
	fi
done
exit $rc
