# shellcheck shell=bash
# The kernels the tests run on: $CASFS_KERNELS if set, else every
# installed kernel that has both an image in /boot and a headers tree: on
# the host (/lib/modules/REL/build), or in the sid chroot
# (tests/sid-chroot.sh: sid's kernel, whose headers and compiler live
# there; its image and modules are on the host).
casfs_test_kernels() {
	if [ -n "${CASFS_KERNELS:-}" ]; then
		echo "$CASFS_KERNELS"
		return
	fi
	local d rel root
	root=$(casfs_sid_root)
	{
		for d in /lib/modules/*/build; do
			[ -e "$d/Makefile" ] || continue
			rel=$(basename "$(dirname "$d")")
			[ -e "/boot/vmlinuz-$rel" ] && echo "$rel"
		done
		for d in "$root"/lib/modules/*/build; do
			[ -e "$d/Makefile" ] || continue
			rel=$(basename "$(dirname "$d")")
			[ -e "/lib/modules/$rel/build/Makefile" ] && continue
			[ -e "/boot/vmlinuz-$rel" ] && [ -e "/lib/modules/$rel/modules.dep" ] &&
				echo "$rel"
		done
	} | sort -V
}

# The Debian sid chroot (tests/sid-chroot.sh).
casfs_sid_root() {
	echo "${CASFS_SID_ROOT:-/var/cache/casfs-sid}"
}

# casfs_kernel_root RELEASE: empty if RELEASE's headers are on the host,
# else the chroot that has them (and the compiler to use with them).
casfs_kernel_root() {
	local root
	[ -e "/lib/modules/$1/build/Makefile" ] && return 0
	root=$(casfs_sid_root)
	if [ -e "$root/lib/modules/$1/build/Makefile" ]; then
		echo "$root"
	fi
	return 0
}

# casfs_in_chroot ROOT [--bind HOSTDIR DIR]... -- COMMAND...: run COMMAND
# in the chroot ROOT with a clean environment, /dev, /proc and each
# HOSTDIR (at DIR) mounted in a private mount namespace of its own: the
# mounts vanish with COMMAND, however it ends, and runs in parallel do not
# see each other's.
casfs_in_chroot() {
	local root=$1
	shift
	local binds=()
	while [ "${1:-}" = --bind ]; do
		binds+=("$2" "$3")
		shift 3
	done
	[ "${1:-}" = -- ] && shift
	unshare --mount --propagation private -- /bin/bash -c '
		set -eu
		root=$1 n=$2
		shift 2
		mount --rbind /dev "$root/dev"
		mount -t proc proc "$root/proc"
		while [ "$n" -gt 0 ]; do
			mkdir -p "$root$2"
			mount --bind "$1" "$root$2"
			shift 2
			n=$((n - 2))
		done
		exec chroot "$root" /usr/bin/env -i \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 "$@"
	' casfs-chroot "$root" "${#binds[@]}" "${binds[@]}" "$@"
}

# casfs_kbuild RELEASE DIR MAKEARGS...: kbuild of the external module in DIR
# against RELEASE's headers: on the host, or for a kernel whose headers
# are in the sid chroot, there, with the chroot's compiler (the kernel's
# own, gcc-16) and DIR mounted at /casfs/kbuild.
casfs_kbuild() {
	local rel=$1 dir=$2 root
	shift 2
	root=$(casfs_kernel_root "$rel")
	if [ -n "$root" ]; then
		casfs_in_chroot "$root" --bind "$dir" /casfs/kbuild -- \
			make -C "/lib/modules/$rel/build" M=/casfs/kbuild "$@"
	else
		make -C "/lib/modules/$rel/build" M="$dir" "$@"
	fi
}

# The casfs debug kernel (tests/debug-kernel.sh: KASAN, lockdep, KFENCE, ...)
# has a release ending in -casfs-debug.
casfs_is_debug_kernel() {
	case $1 in
	*-casfs-debug) return 0 ;;
	*) return 1 ;;
	esac
}

# The kernels the distribution ships (dkms is for those): the test kernels
# without the debug kernel.
casfs_distro_kernels() {
	local rel
	for rel in $(casfs_test_kernels | tr ',' ' '); do
		casfs_is_debug_kernel "$rel" || echo "$rel"
	done
}

# casfs_kernel_filter RELEASE: the CASFS_FILTER (comma-separated globs on
# tests/kernel names) for that kernel; empty means every test. Debian's
# kernels run every test; the debug kernel, which is several times slower
# under TCG, runs the concurrency, error-path and fetch tests (75-helper
# drives the fetch path with the real helper; 80-helper-e2e, two minutes
# there, adds no kernel path of its own).
casfs_kernel_filter() {
	if casfs_is_debug_kernel "$1"; then
		echo "00-smoke,01-mount,10-semantics,40-stress,50-enospc,60-cas,*fetch*,*race*,75-helper"
	fi
}

# casfs_kernel_vm_mem RELEASE / casfs_kernel_vm_timeout RELEASE: the
# defaults for CASFS_VM_MEM (MiB) and CASFS_VM_TIMEOUT (s) on that kernel.
# KASAN takes an eighth of the memory for its shadow plus a quarantine of
# freed objects.
casfs_kernel_vm_mem() {
	if casfs_is_debug_kernel "$1"; then echo 3072; else echo 2048; fi
}
casfs_kernel_vm_timeout() {
	# 2400 on Debian's: the newest also runs Bazel (95-bazel-outputd,
	# about 6.5 minutes under TCG) after the rest (about 15).
	if casfs_is_debug_kernel "$1"; then echo 3000; else echo 2400; fi
}
