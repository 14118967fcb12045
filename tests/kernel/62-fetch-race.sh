#!/bin/bash
# The fetch table under waiters that leave together (issue 8, finding 1):
# many readers of one missing blob, with no helper, all killed by one
# kill(2), round after round; then as many timing out together. Each round
# must leave nothing pending, and the module must unload cleanly. On the
# debug kernel (KASAN, lockdep) a use-after-free here is reported, and the
# harness fails the run on any such report.
# timeout: 600
. "$(dirname "$0")/../lib/guest.sh"
trap casfs_cleanup EXIT
casfs_load
CACHE=$(casfs_new_cache 64m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=60" casfs "$MNT"
export CASFS_MNT=$MNT CASFS_CACHE=$CACHE
rounds=${CASFS_RACE_ROUNDS:-60}
$PY - "$rounds" <<'PYEOF'
import hashlib, os, signal, subprocess, sys, time
sys.path.insert(0, os.environ["CASFS_REPO"] + "/tests/kernel/py")
import casfs_uapi as U

mnt = os.environ["CASFS_MNT"]
rounds = int(sys.argv[1])
waiters = 12


def pending():
    nl = U.Genl()
    try:
        return nl.stats()["pending"]
    finally:
        nl.close()


def settle(want, secs=20):
    deadline = time.monotonic() + secs
    while pending() != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return pending()


def readers(path, n):
    """n children in one new process group, each blocked reading path."""
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, pids[0] if pids else 0)
            except OSError:
                pass
            try:
                with open(path, "rb") as f:
                    f.read()
            except OSError:
                pass
            os._exit(0)
        if not pids:
            pids.append(pid)
            os.setpgid(pid, pid)
        else:
            try:
                os.setpgid(pid, pids[0])
            except OSError:
                pass
            pids.append(pid)
    return pids


# 1. killed together: one kill(2) of the whole group, every round.
digest = hashlib.sha256(b"never there").digest()
U.stage(mnt, [("one", digest, 11, 0o644)])
path = os.path.join(mnt, "one")
for r in range(rounds):
    pids = readers(path, waiters)
    # wait until the request exists (every reader is at least on its way)
    deadline = time.monotonic() + 10
    while pending() != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    if pending() != 1:
        sys.exit("round %d: %d requests pending, want 1" % (r, pending()))
    time.sleep(0.05 * (r % 4))
    os.killpg(pids[0], signal.SIGKILL)
    for p in pids:
        os.waitpid(p, 0)
    left = settle(0)
    if left:
        sys.exit("round %d: %d requests left pending after the kill" % (r, left))
print("killed together: %d rounds x %d waiters, nothing left pending" % (rounds, waiters))

# 2. many digests at once, killed together: the table empties.
ents = [("m%d" % i, hashlib.sha256(b"m%d" % i).digest(), 5, 0o644) for i in range(64)]
U.stage(mnt, ents)
groups = [readers(os.path.join(mnt, e[0]), 3) for e in ents]
deadline = time.monotonic() + 60
while pending() < 64 and time.monotonic() < deadline:
    time.sleep(0.1)
if pending() != 64:
    sys.exit("%d requests for 64 digests" % pending())
for g in groups:
    os.killpg(g[0], signal.SIGKILL)
for g in groups:
    for p in g:
        os.waitpid(p, 0)
if settle(0):
    sys.exit("%d requests left after killing 192 waiters" % pending())
print("64 digests x 3 waiters killed: nothing left pending")
PYEOF

# 3. timing out together: 16 readers of one blob on a 1 s mount, 5 rounds.
mount -o remount,timeout=1 "$MNT"
grep -q "timeout=1" /proc/mounts || fail "remount,timeout=1 not applied"
for r in 1 2 3 4 5; do
	pids=
	for _ in $(seq 16); do
		cat "$MNT/one" >/dev/null 2>&1 &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p" && fail "round $r: a read of a missing blob succeeded"
	done
done
left=$($PY -c 'import os, sys; sys.path.insert(0, os.environ["CASFS_REPO"] + "/tests/kernel/py"); import casfs_uapi as U; print(U.Genl().stats()["pending"])')
[ "$left" = 0 ] || fail "$left requests pending after the timeouts"
note "16 readers timed out together, 5 rounds: nothing pending"
umount "$MNT"
rmmod casfs || fail "the module does not unload"
note "module unloaded"
echo "fetch race tests passed"
