#!/bin/bash
# Prove dkms.conf: add, build and install the module for every test
# kernel through dkms, check modinfo sees it, then remove it again so the
# host is left as it was. Needs root and the dkms package. A kernel whose
# headers are in the sid chroot (tests/sid-chroot.sh: sid's 7.x) gets the
# same inside the chroot, with the chroot's dkms and compiler; the chroot
# is left as it was too.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/kernels.sh"
version=$(cat "$top/VERSION")
grep -q "^PACKAGE_VERSION=\"$version\"$" "$top/dkms.conf" ||
	{ echo "dkms.conf PACKAGE_VERSION does not match VERSION ($version)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "dkms test needs root" >&2; exit 1; }
command -v dkms >/dev/null || { echo "dkms not installed" >&2; exit 1; }

src=/usr/src/casfs-$version
# dkms is for the distribution's kernels: not the debug kernel
# (tests/debug-kernel.sh), which build-modules.sh and sparse.sh cover.
kernels=$(casfs_distro_kernels)
# Where each kernel's dkms runs: "" is the host, else a chroot.
roots=("")
for rel in $kernels; do
	root=$(casfs_kernel_root "$rel")
	[ -n "$root" ] && [[ " ${roots[*]} " != *" $root "* ]] && roots+=("$root")
done
# in_root ROOT COMMAND...: COMMAND on the host or in the chroot ROOT.
in_root() {
	local root=$1
	shift
	if [ -n "$root" ]; then
		casfs_in_chroot "$root" -- "$@"
	else
		"$@"
	fi
}
cleanup() {
	local root
	for root in "${roots[@]}"; do
		in_root "$root" dkms remove "casfs/$version" --all >/dev/null 2>&1 || true
		rm -rf "$root$src"
	done
}
cleanup
trap cleanup EXIT
for root in "${roots[@]}"; do
	make -C "$top" -s install-dkms DESTDIR="$root"
	in_root "$root" dkms add "casfs/$version"
done
rc=0
for rel in $kernels; do
	root=$(casfs_kernel_root "$rel")
	if in_root "$root" dkms build "casfs/$version" -k "$rel" >/tmp/casfs-dkms.log 2>&1 &&
	   in_root "$root" dkms install "casfs/$version" -k "$rel" >>/tmp/casfs-dkms.log 2>&1 &&
	   modfile=$(in_root "$root" modinfo -k "$rel" -F filename casfs) &&
	   [[ $modfile == */updates/dkms/casfs.ko* ]]; then
		echo "dkms: built and installed for $rel${root:+ (in $root)}: $modfile"
	else
		cat /tmp/casfs-dkms.log
		echo "dkms: FAILED for $rel${root:+ (in $root)}" >&2
		rc=1
	fi
done
for root in "${roots[@]}"; do
	in_root "$root" dkms status casfs
done
exit $rc
