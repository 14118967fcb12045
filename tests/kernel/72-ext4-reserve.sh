#!/bin/bash
# Backing I/O runs without CAP_SYS_RESOURCE (issue 8, finding 7): root
# writing through casfs onto ext4 stops at ENOSPC where an unprivileged
# writer would, and leaves ext4's reserved blocks alone; root writing to
# the same ext4 directly may use them. ext4 on a loop file in /tmp.
#
# The reserve belongs to CAP_SYS_RESOURCE and to the uid resuid= names
# (0 by default, i.e. the mounter: as for overlayfs, the mounter's own
# uid keeps what it owns). The ext4 here names another uid, so only the
# capability could reach the reserve.
# timeout: 300
. "$(dirname "$0")/../lib/guest.sh"
img=/tmp/casfs-reserve.img
disk=$(mktemp -d /tmp/casfs-rdisk.XXXXXX)
cleanup() {
	casfs_cleanup
	mountpoint -q "$disk" && umount "$disk"
	rmdir "$disk" 2>/dev/null || true
	rm -f "$img"
}
trap cleanup EXIT
casfs_load
modprobe loop 2>/dev/null || true
truncate -s 64M "$img"
# 25% reserved for root; no journal, so the figures are the data's own
mkfs.ext4 -q -F -m 25 -O ^has_journal "$img"
mount -o loop,resuid=12345 -t ext4 "$img" "$disk"
mkdir -m 0755 "$disk/cache"
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$disk/cache" casfs "$MNT"
read -r total avail < <(df -B1 --output=size,avail "$disk" | sed -n 2p)
if dd if=/dev/zero of="$MNT/fill" bs=1M count=64 status=none 2>/tmp/casfs-reserve.err; then
	fail "64 MiB went into a 64 MiB ext4 with 25% reserved"
fi
grep -q "No space left on device" /tmp/casfs-reserve.err || fail "dd: $(cat /tmp/casfs-reserve.err)"
sync
free=$(df -B1 --output=avail "$disk" | sed -n 2p)
written=$(stat -c %s "$MNT/fill")
# Unprivileged semantics: casfs stops near "available" (0 left); the
# reserve (a quarter of the disk) is still free for root.
reserve_free=$(stat -f -c '%f %S' "$disk" | awk '{print $1 * $2}')
note "ext4 ${total} bytes, ${avail} available to users; casfs wrote ${written} as root; free now ${reserve_free} (reserve kept)"
[ "$written" -le "$avail" ] || fail "casfs wrote $written bytes, more than the $avail available to users"
[ "$reserve_free" -ge $((total / 8)) ] || fail "the root reserve was eaten: $reserve_free bytes free"
[ "$free" = 0 ] || note "available after the fill: $free"
# root writing to ext4 itself still may use the reserve
dd if=/dev/zero of="$disk/root-direct" bs=1M count=4 status=none ||
	fail "root could not write into the reserve directly"
echo "ext4 reserve kept"
