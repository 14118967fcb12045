# shellcheck shell=bash
# The kernels the tests run on: $CASFS_KERNELS if set, else every
# installed kernel that has both an image in /boot and a headers tree.
casfs_test_kernels() {
	if [ -n "${CASFS_KERNELS:-}" ]; then
		echo "$CASFS_KERNELS"
		return
	fi
	local d rel
	for d in /lib/modules/*/build; do
		[ -e "$d/Makefile" ] || continue
		rel=$(basename "$(dirname "$d")")
		[ -e "/boot/vmlinuz-$rel" ] && echo "$rel"
	done | sort -V
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
# under TCG, runs the concurrency, error-path and fetch tests.
casfs_kernel_filter() {
	if casfs_is_debug_kernel "$1"; then
		echo "00-smoke,01-mount,10-semantics,40-stress,50-enospc,60-cas,*fetch*,*race*,75-helper,80-helper-e2e"
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
	if casfs_is_debug_kernel "$1"; then echo 3000; else echo 1500; fi
}
