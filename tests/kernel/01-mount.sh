#!/bin/bash
# Mount options, cache-directory checks, layout, show_options, remount,
# mount/unmount cycles and rmmod after unmount.
# timeout: 300
. "$(dirname "$0")/../lib/guest.sh"
trap casfs_cleanup EXIT
casfs_load

cache=$(casfs_new_cache 64m)
mnt=$(mktemp -d /tmp/casfs-mnt.XXXXXX)

# expect_mount_fail WANT_LOG_REGEX OPTIONS: the mount must fail and the
# kernel log must say why.
expect_mount_fail() {
	local want=$1 opts=$2
	dmesg -C
	if mount -t casfs -o "$opts" casfs "$mnt" 2>/dev/null; then
		umount "$mnt"
		fail "mount -o '$opts' succeeded"
	fi
	dmesg | grep -E "casfs: .*$want" >/dev/null ||
		fail "mount -o '$opts': no kernel log line matching '$want': $(dmesg | tail -n 3)"
	note "refused -o '$opts': $(dmesg | grep casfs | tail -n 1)"
}

expect_mount_fail "cache=DIR option is required" "mode=755"
expect_mount_fail "Unknown parameter" "cache=$cache,bogus=1"
expect_mount_fail "mode" "cache=$cache,mode=99999"
expect_mount_fail "mode" "cache=$cache,mode=abc"
expect_mount_fail "uid" "cache=$cache,uid=-5"
expect_mount_fail "absolute path" "cache=relative/dir"
expect_mount_fail "cannot open directory: error -2" "cache=/tmp/does-not-exist"
touch /tmp/casfs-not-a-dir
expect_mount_fail "cannot open directory: error -20" "cache=/tmp/casfs-not-a-dir"
rm -f /tmp/casfs-not-a-dir

# Trust boundary: writable by others, or not owned by root.
chmod 0777 "$cache"
expect_mount_fail "must be owned by root" "cache=$cache"
chmod 0755 "$cache"
chown 65534 "$cache"
expect_mount_fail "must be owned by root" "cache=$cache"
chown 0 "$cache"

# Unsuitable filesystems: read-only, no O_TMPFILE (bpf), casfs itself.
ro=$(mktemp -d /tmp/casfs-ro.XXXXXX)
mount -t tmpfs -o ro,mode=0755 casfs-cache "$ro"
expect_mount_fail "not writable" "cache=$ro"
umount "$ro"
mount -t bpf -o mode=0755 casfs-cache "$ro"
expect_mount_fail "no O_TMPFILE support" "cache=$ro"
umount "$ro"
mount -t casfs -o "cache=$cache" casfs "$mnt"
expect_mount_fail "cannot be on casfs itself" "cache=$mnt"
umount "$mnt"
rmdir "$ro"

# A cache directory with unrelated content: mount lays out what is
# missing and touches nothing else.
mkdir -p "$cache/unrelated"
echo keep > "$cache/unrelated/file"
echo keep > "$cache/blobs-note"
mount -t casfs -o "cache=$cache,mode=0711,uid=1234,gid=5678" casfs "$mnt"
for d in local blobs tmp; do
	[ -d "$cache/$d" ] || fail "layout: $cache/$d missing"
done
[ "$(cat "$cache/unrelated/file")" = keep ] || fail "unrelated file changed"
[ "$(cat "$cache/blobs-note")" = keep ] || fail "unrelated file changed"
[ "$(stat -c '%a %u %g' "$mnt")" = "711 1234 5678" ] ||
	fail "root mode/uid/gid: $(stat -c '%a %u %g' "$mnt")"
grep -E "^casfs $mnt casfs rw,relatime,cache=$cache,mode=711,uid=1234,gid=5678 " /proc/mounts >/dev/null ||
	fail "show_options: $(grep " $mnt " /proc/mounts)"
[ "$(stat -f -c %T "$mnt")" != "" ] || fail "statfs"

# Remount: same cache is fine, a different cache is refused.
mount -o remount,ro "$mnt"
touch "$mnt/x" 2>/dev/null && fail "write on read-only remount"
mount -o remount,rw "$mnt"
touch "$mnt/x"
dmesg -C
if mount -o "remount,cache=/tmp" "$mnt" 2>/dev/null; then
	fail "remount with a new cache= succeeded"
fi
grep -q "casfs: cache= cannot change on remount" <<<"$(dmesg)" || fail "remount: no log line"
umount "$mnt"

# A second mount of the same cache sees none of the first mount's files.
mount -t casfs -o "cache=$cache" casfs "$mnt"
[ -z "$(ls -A "$mnt")" ] || fail "new mount is not empty: $(ls -A "$mnt")"
[ -z "$(ls -A "$cache/local")" ] || fail "private files are named in local/"
umount "$mnt"

# Two mounts of one cache at once, and cycles of mount/write/unmount.
mnt2=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
for i in $(seq 1 20); do
	mount -t casfs -o "cache=$cache" casfs "$mnt"
	mount -t casfs -o "cache=$cache" casfs "$mnt2"
	echo "$i" > "$mnt/f"
	echo "x$i" > "$mnt2/f"
	[ "$(cat "$mnt/f")" = "$i" ] || fail "cycle $i: wrong content"
	umount "$mnt2"
	umount "$mnt"
done
rmdir "$mnt2"
note "20 mount/unmount cycles with two mounts of one cache"

# Unmount frees every private file: the cache tmpfs is back to empty.
used_before=$(df --output=used "$cache" | tail -n 1)
mount -t casfs -o "cache=$cache" casfs "$mnt"
dd if=/dev/zero of="$mnt/big" bs=1M count=16 status=none
used_full=$(df --output=used "$cache" | tail -n 1)
[ "$used_full" -ge $((used_before + 16000)) ] || fail "16 MiB write not on backing fs ($used_before -> $used_full)"
umount "$mnt"
used_after=$(df --output=used "$cache" | tail -n 1)
[ "$used_after" -le "$used_before" ] || fail "unmount left $((used_after - used_before)) KiB behind"
note "unmount freed the backing space ($used_full KiB -> $used_after KiB)"

# rmmod after unmount, then load again and mount.
rmmod casfs
casfs_load
mount -t casfs -o "cache=$cache" casfs "$mnt"
umount "$mnt"
rmmod casfs
grep -q '^casfs ' /proc/modules && fail "module still loaded"
# While mounted, the module cannot go away.
casfs_load
mount -t casfs -o "cache=$cache" casfs "$mnt"
rmmod casfs 2>/dev/null && fail "rmmod succeeded while mounted"
umount "$mnt"
rmdir "$mnt"
echo "mount tests passed"
