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
