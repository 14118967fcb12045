#!/bin/bash
# The demo, inside the guest (tests/demo.sh prepares build/demo on the host).
# timeout: 600
. "$CASFS_REPO/tests/lib/guest.sh"
demo=$CASFS_REPO/build/demo
H=$CASFS_REPO/helper
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

casfs_setup 1g
trap 'kill $helper 2>/dev/null; wait $helper 2>/dev/null; casfs_cleanup' EXIT

say "1. a local CAS (file:// backend) and casfs-helper"
echo "CAS directory: $demo/cas ($(find "$demo/cas" -type f | wc -l) blobs)"
"$H/casfs-helper" --cas "file://$demo/cas" --cache "$CACHE" --jobs 4 \
	--stats-file /run/casfs-helper.stats 2>/tmp/helper.log &
helper=$!
for _ in $(seq 50); do
	"$H/casfsctl" stats 2>/dev/null | grep -Eq 'helper_registered +yes' && break
	sleep 0.1
done
run "$H/casfsctl" stats

say "2. stage the output tree lazily from its manifest"
head -n 3 "$demo/manifest"
mkdir -p "$MNT/out"
run "$H/casfsctl" stage "$MNT/out" "$demo/manifest"
run ls -l "$MNT/out/bin" "$MNT/out/data"
run du -sh --apparent-size "$MNT/out"

say "3. nothing was downloaded"
run ls -A "$CACHE/blobs"
echo "blobs in the cache: $(ls "$CACHE/blobs" | wc -l)"
run "$H/casfsctl" digest "$MNT/out/data/big.bin"

say "4. read a few files: each is fetched once, on first read"
run head -n 2 "$MNT/out/docs/page3.txt"
run sha256sum "$MNT/out/data/big.bin"
ln "$MNT/out/bin/tool" "$MNT/tool-hardlink"
run stat -c '%n: inode %i, %h links' "$MNT/out/bin/tool" "$MNT/tool-hardlink"
run "$MNT/tool-hardlink" && echo "(the hard-linked, lazily fetched executable ran)"
echo "blobs in the cache now: $(ls "$CACHE/blobs" | wc -l) of $(wc -l < "$demo/manifest")"
run "$H/casfsctl" stats
echo
echo "helper log:"
sed 's/^/  /' /tmp/helper.log | tail -n 8
