# shellcheck shell=bash
# Helpers for kernel tests (run inside the QEMU guest as root, see
# tests/README.md). A test sources this, calls casfs_setup, and uses
# $MNT (a fresh casfs mount) and $CACHE (its cache directory on tmpfs).
# Everything is undone on exit, whatever happens.

set -euo pipefail
PY=/usr/bin/python3

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "  - $*"
}

casfs_load() {
	if ! grep -q '^casfs ' /proc/modules; then
		insmod "$CASFS_KO"
	fi
}

casfs_unload() {
	if grep -q '^casfs ' /proc/modules; then
		rmmod casfs
	fi
}

# A fresh root-owned cache directory on its own tmpfs, so that statfs
# and ENOSPC tests see only casfs's own usage.
casfs_new_cache() {
	local dir size=${1:-512m}
	dir=$(mktemp -d /tmp/casfs-cache.XXXXXX)
	mount -t tmpfs -o "size=$size,mode=0755" casfs-cache "$dir"
	echo "$dir"
}

casfs_cleanup() {
	local m
	# Unmount casfs mounts first (they pin their cache directories).
	for m in $(awk '$3 == "casfs" {print $2}' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	for m in $(awk '$1 == "casfs-cache" || $1 == "casfs-ref" {print $2}' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
		rmdir "$m" 2>/dev/null || true
	done
	casfs_unload
}

casfs_setup() {
	trap casfs_cleanup EXIT
	casfs_load
	CACHE=$(casfs_new_cache "${1:-512m}")
	MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
	mount -t casfs -o "cache=$CACHE" casfs "$MNT"
	export CACHE MNT
}

# A tmpfs to compare against, same size.
casfs_ref_tmpfs() {
	local dir
	dir=$(mktemp -d /tmp/casfs-ref.XXXXXX)
	mount -t tmpfs -o size=512m casfs-ref "$dir"
	echo "$dir"
}
