#!/bin/bash
# CAS-backed files, kernel side, against a small fake helper written in
# Python on raw generic netlink (py/test_cas.py): staging, laziness,
# fetch, blob checks, copy-up, digests, helper restart, faults.
# timeout: 600
. "$(dirname "$0")/../lib/guest.sh"
trap casfs_cleanup EXIT
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=3" casfs "$MNT"
grep -q "timeout=3" /proc/mounts || fail "timeout= not shown in /proc/mounts"
CASFS_MNT=$MNT CASFS_CACHE=$CACHE $PY "$(dirname "$0")/py/test_cas.py"
# Unmount while a request is pending: the reader gets EIO or its bytes,
# nothing hangs, and the module unloads afterwards.
$PY - "$MNT" <<'PYEOF'
import hashlib, os, sys
sys.path.insert(0, os.environ["CASFS_REPO"] + "/tests/kernel/py")
import casfs_uapi as U
d = sys.argv[1]
U.stage(d, [("pending", hashlib.sha256(b"p").digest(), 1, 0o644)])
PYEOF
cat "$MNT/pending" >/dev/null 2>&1 &
reader=$!
sleep 1
umount -l "$MNT"
wait $reader && fail "read of an unfetchable blob succeeded"
rmdir "$MNT"
echo "cas tests passed"
