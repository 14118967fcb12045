#!/bin/bash
# Concurrency: several processes doing random operations on one mount at
# once; then the tree must be consistent (link counts, directory nlink,
# readable contents) and the kernel log clean (the harness checks it).
# timeout: 900
. "$(dirname "$0")/../lib/guest.sh"
casfs_setup
"$CASFS_BIN/fsstress" -p 6 -n 8000 -s 7 "$MNT"
# And with two mounts of one cache racing, plus unmount afterwards.
MNT2=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE" casfs "$MNT2"
rm -rf "${MNT:?}"/*
"$CASFS_BIN/fsstress" -p 3 -n 5000 -s 8 "$MNT" &
p1=$!
"$CASFS_BIN/fsstress" -p 3 -n 5000 -s 9 "$MNT2" &
p2=$!
wait $p1 || fail "fsstress on mount 1"
wait $p2 || fail "fsstress on mount 2"
umount "$MNT2"
rmdir "$MNT2"
echo "stress passed"
