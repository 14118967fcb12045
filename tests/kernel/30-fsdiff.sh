#!/bin/bash
# Differential random operations: the same seeded sequence of 100,000
# operations on casfs and on tmpfs, trees compared every 1,000 operations.
# On divergence fsdiff prints the seed and operation index.
# timeout: 900
. "$(dirname "$0")/../lib/guest.sh"
casfs_setup
REF=$(casfs_ref_tmpfs)
seed=${CASFS_FSDIFF_SEED:-20261121}
ops=${CASFS_FSDIFF_OPS:-100000}
note "seed $seed, $ops operations"
"$CASFS_BIN/fsdiff" -s "$seed" -n "$ops" -c 1000 "$MNT" "$REF"
# A second seed with a different mix, shorter, with xattrs off, so a
# regression in non-xattr paths is not masked by an early xattr one.
rm -rf "${MNT:?}"/* "${REF:?}"/*
"$CASFS_BIN/fsdiff" -s $((seed + 1)) -n 20000 -c 500 --no-xattr "$MNT" "$REF"
