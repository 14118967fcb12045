#!/bin/bash
# Build the module against every test kernel's headers, each in its own
# copy of the sources (build/kbuild/<release>/), so that builds for
# different kernels never share objects and "make clean" of one cannot
# delete another's module. Result: build/kbuild/<release>/kmod/casfs.ko.
# Any compiler warning fails: the module must build warning-free on
# Debian's 6.1 and 6.12, and on sid's 7.x, which builds in the sid chroot
# (tests/sid-chroot.sh) with the chroot's gcc, the kernel's own compiler
# (casfs_kbuild in tests/lib/kernels.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/kernels.sh"

rc=0
for rel in $(casfs_test_kernels); do
	out=$top/build/kbuild/$rel
	mkdir -p "$out"
	# Copy sources, keeping timestamps so unchanged files are not rebuilt.
	cp -a "$top/Kbuild" "$top/kmod" "$top/include" "$out/"
	rm -f "$out"/kmod/*.ko
	log=$out/build.log
	if ! casfs_kbuild "$rel" "$out" modules >"$log" 2>&1; then
		cat "$log"
		echo "build failed for $rel" >&2
		rc=1
	elif grep -E "warning:|error:" "$log"; then
		echo "compiler warnings for $rel" >&2
		rc=1
	else
		echo "built build/kbuild/$rel/kmod/casfs.ko"
	fi
done
exit $rc
