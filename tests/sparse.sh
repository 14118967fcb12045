#!/bin/bash
# sparse (make C=2: check every file) against each test kernel's headers.
# Any sparse output line other than kbuild's own progress is a failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/kernels.sh"
command -v sparse >/dev/null || { echo "sparse: not installed" >&2; exit 1; }
rc=0
for rel in $(casfs_test_kernels); do
	out=$top/build/kbuild/$rel
	[ -d "$out/kmod" ] || { echo "sparse: run tests/build-modules.sh first" >&2; exit 1; }
	log=$(make -C "/lib/modules/$rel/build" M="$out" C=2 modules 2>&1 |
		grep -vE '^make|^  (CHECK|CC|LD|MODPOST|BTF)|^Skipping BTF' || true)
	if [ -n "$log" ]; then
		echo "sparse findings for $rel:"
		echo "$log"
		rc=1
	else
		echo "sparse: clean for $rel"
	fi
done
exit $rc
