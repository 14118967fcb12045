#!/bin/bash
# The demo, inside the guest (tests/demo.sh prepares build/demo on the host).
# timeout: 600
. "$CASFS_REPO/tests/lib/guest.sh"
demo=$CASFS_REPO/build/demo
H=$CASFS_REPO/helper
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

casfs_setup 1g
HELPER_LOG=/tmp/helper.log
REV2_LOG=/tmp/rev2-server.log
trap 'casfs_stop_helper; casfs_stop_rev2; casfs_cleanup' EXIT

say "1. a REv2 CAS (the reference server, on loopback) and casfs-helper on grpc://"
cp -r "$demo/cas" /tmp/demo-store	# the host tree is read-only here
casfs_start_rev2 /tmp/demo-store 0 --quiet
echo "REv2 server: grpc://127.0.0.1:$REV2_PORT ($(find /tmp/demo-store/cas -type f | wc -l) blobs)"
casfs_start_helper "grpc://127.0.0.1:$REV2_PORT" --jobs 4
grep -a "CAS" "$HELPER_LOG" | sed 's/^/  /'
run "$H/casfsctl" stats

say "2. materialize the output tree lazily from its root Directory digest"
root=$(cat "$demo/root-digest")
run "$H/casfsctl" materialize --config '' --cas "grpc://127.0.0.1:$REV2_PORT" "$root" "$MNT/out"
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
run "$H/casfsctl" check --config '' --cas "grpc://127.0.0.1:$REV2_PORT" "$MNT/out"
run "$H/casfsctl" stats
echo
echo "helper log:"
sed 's/^/  /' /tmp/helper.log | tail -n 8
