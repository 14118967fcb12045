#!/bin/bash
# Prove dkms.conf: add, build and install the module for every test
# kernel through dkms, check modinfo sees it, then remove it again so the
# host is left as it was. Needs root and the dkms package.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/kernels.sh"
version=$(cat "$top/VERSION")
grep -q "^PACKAGE_VERSION=\"$version\"$" "$top/dkms.conf" ||
	{ echo "dkms.conf PACKAGE_VERSION does not match VERSION ($version)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "dkms test needs root" >&2; exit 1; }
command -v dkms >/dev/null || { echo "dkms not installed" >&2; exit 1; }

src=/usr/src/casfs-$version
cleanup() {
	dkms remove "casfs/$version" --all >/dev/null 2>&1 || true
	rm -rf "$src"
}
cleanup
trap cleanup EXIT
make -C "$top" -s install-dkms DESTDIR=
dkms add "casfs/$version"
rc=0
# dkms is for the distribution's kernels: not the debug kernel
# (tests/debug-kernel.sh), which build-modules.sh and sparse.sh cover.
for rel in $(casfs_distro_kernels); do
	if dkms build "casfs/$version" -k "$rel" >/tmp/casfs-dkms.log 2>&1 &&
	   dkms install "casfs/$version" -k "$rel" >>/tmp/casfs-dkms.log 2>&1 &&
	   modfile=$(modinfo -k "$rel" -F filename casfs) &&
	   [[ $modfile == */updates/dkms/casfs.ko* ]]; then
		echo "dkms: built and installed for $rel: $modfile"
	else
		cat /tmp/casfs-dkms.log
		echo "dkms: FAILED for $rel" >&2
		rc=1
	fi
done
dkms status casfs
exit $rc
