#!/bin/bash
# A full backing filesystem: ENOSPC reaches the writer, nothing already
# written is lost, and freeing space makes casfs writable again.
# timeout: 300
. "$(dirname "$0")/../lib/guest.sh"
casfs_setup 16m

head -c $((4 << 20)) /dev/urandom > /tmp/casfs-enospc-ref
cp /tmp/casfs-enospc-ref "$MNT/keep"
sync
sum=$(sha256sum < /tmp/casfs-enospc-ref)

# Fill: dd must fail with ENOSPC, not succeed silently or hang.
if dd if=/dev/zero of="$MNT/fill" bs=1M count=64 conv=fsync 2>/tmp/casfs-dd.err; then
	fail "writing 64 MiB to a 16 MiB cache succeeded"
fi
grep -q "No space left on device" /tmp/casfs-dd.err ||
	fail "dd did not see ENOSPC: $(cat /tmp/casfs-dd.err)"
note "writer got: $(grep -o -m 1 'No space left on device' /tmp/casfs-dd.err)"

# Small writes, xattrs and metadata operations on a full cache.
if echo more >> "$MNT/keep" 2>/dev/null; then
	# tmpfs may still have room in a partial page; then the data is there
	[[ $(tail -c 5 "$MNT/keep") == *more* ]] || fail "append lost"
	truncate -s $((4 << 20)) "$MNT/keep"
fi
[ "$(sha256sum < "$MNT/keep")" = "$sum" ] || fail "existing file changed by ENOSPC"
mkdir "$MNT/dir-on-full-cache"	# metadata is in memory: still works
size=$(stat -c %s "$MNT/fill")
[ "$size" -gt 0 ] || fail "partial file has no data"
cmp -n "$size" /dev/zero "$MNT/fill" || fail "partial file content is wrong"

rm "$MNT/fill"
dd if=/dev/zero of="$MNT/after" bs=1M count=4 status=none conv=fsync ||
	fail "no space after freeing"
[ "$(sha256sum < "$MNT/keep")" = "$sum" ] || fail "existing file changed"
rm -f /tmp/casfs-enospc-ref /tmp/casfs-dd.err
echo "enospc test passed"
