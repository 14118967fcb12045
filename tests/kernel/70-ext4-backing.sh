#!/bin/bash
# casfs over ext4 on a virtio disk: a file larger than the guest's memory
# goes through casfs (no file data lives in casfs's memory, and the page
# cache under it is reclaimable), O_DIRECT works where ext4 allows it,
# and the semantics tests pass on this backing filesystem too.
# timeout: 900
. "$(dirname "$0")/../lib/guest.sh"
[ -n "${CASFS_DISK:-}" ] || { echo "no scratch disk (CASFS_VM_DISK_MB)"; exit 77; }
disk=$(mktemp -d /tmp/casfs-disk.XXXXXX)
cleanup() {
	casfs_cleanup
	mountpoint -q "$disk" && umount "$disk"
	rmdir "$disk" 2>/dev/null || true
}
trap cleanup EXIT
casfs_load
mkfs.ext4 -q -F "$CASFS_DISK"
mount -t ext4 "$CASFS_DISK" "$disk"
mkdir -m 0755 "$disk/cache"
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$disk/cache" casfs "$MNT"

mem_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
size_mib=$((mem_kib / 1024 + 1024))	# 1 GiB more than the guest has
note "writing $size_mib MiB through casfs (guest memory $((mem_kib / 1024)) MiB)"
dd if=/dev/zero of="$MNT/large" bs=1M count="$size_mib" status=none conv=fsync
[ "$(stat -c %s "$MNT/large")" = $((size_mib * 1048576)) ] || fail "size of the large file"
cmp -n $((size_mib * 1048576)) "$MNT/large" /dev/zero || fail "large file content"
note "read back $size_mib MiB: equal"
rm "$MNT/large"

# O_DIRECT through casfs onto ext4.
dd if=/dev/urandom of=/tmp/casfs-odirect bs=1M count=8 status=none
dd if=/tmp/casfs-odirect of="$MNT/direct" bs=1M oflag=direct status=none ||
	fail "O_DIRECT write"
dd if="$MNT/direct" of=/tmp/casfs-odirect.back bs=1M iflag=direct status=none ||
	fail "O_DIRECT read"
cmp /tmp/casfs-odirect /tmp/casfs-odirect.back || fail "O_DIRECT data"
rm -f /tmp/casfs-odirect /tmp/casfs-odirect.back "$MNT/direct"

# The semantics suite again, with ext4 as the backing filesystem.
REF=$(casfs_ref_tmpfs)
CASFS_MNT=$MNT CASFS_CACHE=$disk/cache CASFS_REF=$REF \
	$PY "$(dirname "$0")/py/test_semantics.py" 2>&1 | tail -n 4
[ "${PIPESTATUS[0]}" = 0 ] || fail "semantics on ext4 backing"
umount "$MNT"
rmdir "$MNT"
echo "ext4 backing passed"
