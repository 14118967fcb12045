#!/bin/bash
# casfs-helper with the capabilities its systemd unit leaves it
# (packaging/casfs-helper.service: CapabilityBoundingSet=CAP_NET_ADMIN),
# as root, against a root-owned cache: REGISTER, cold reads (fetch, verify,
# publish into blobs/), eviction under --max-cache-bytes (deleting cached
# blobs) and the stats file in its default place (/run/casfs/helper.stats,
# a directory the helper makes when run by hand) all work without
# CAP_DAC_OVERRIDE, CAP_FOWNER or CAP_CHOWN. Without CAP_NET_ADMIN the
# helper exits at once, saying what it lacks.
# timeout: 300
. "$CASFS_REPO/tests/lib/guest.sh"
B=$CASFS_REPO/helper
hp=
cleanup() { [ -n "$hp" ] && kill "$hp" 2>/dev/null; wait 2>/dev/null; casfs_cleanup; }
trap cleanup EXIT
casfs_load
CACHE=$(casfs_new_cache 256m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=30" casfs "$MNT"
CAS=$(mktemp -d /tmp/cas.XXXXXX)
mkdir -p "$CAS/cas"
: >/tmp/lp-manifest
for i in 1 2 3 4 5 6; do
	head -c $((i * 200000 + 7)) /dev/urandom >"/tmp/lp$i"
	h=$(sha256sum "/tmp/lp$i" | cut -d' ' -f1)
	cp "/tmp/lp$i" "$CAS/cas/$h"
	echo "$h $(stat -c %s "/tmp/lp$i") 0644 f$i" >>/tmp/lp-manifest
done
"$B/casfsctl" stage "$MNT" /tmp/lp-manifest
rm -rf /run/casfs
# setpriv execs the helper, so $! below is the helper itself.
UNIT_CAPS=(setpriv --bounding-set=-all,+net_admin --inh-caps=-all --)
NO_CAPS=(setpriv --bounding-set=-all --inh-caps=-all --)

# Without CAP_NET_ADMIN: refused by the kernel, a fatal error, said so.
rc=0
"${NO_CAPS[@]}" timeout 20 "$B/casfs-helper" --cas "file://$CAS" --cache "$CACHE" \
	>/tmp/lp-nocap.log 2>&1 || rc=$?
cat /tmp/lp-nocap.log
[ "$rc" = 78 ] || fail "helper without CAP_NET_ADMIN: exit $rc, want 78"
grep -q 'CAP_NET_ADMIN' /tmp/lp-nocap.log || fail "no word of CAP_NET_ADMIN"

# With it only; the cache bound (2 MiB) is below the 4.2 MB of blobs, so
# reading them all makes the helper evict (delete) cached ones.
"${UNIT_CAPS[@]}" "$B/casfs-helper" --cas "file://$CAS" --cache "$CACHE" \
	--max-cache-bytes 2097152 >/tmp/lp-helper.log 2>&1 &
hp=$!
for _ in $(seq 300); do
	st=$("$B/casfsctl" stats 2>/dev/null || true)
	grep -Eq 'helper_registered +yes' <<<"$st" && break
	sleep 0.1
done
st=$("$B/casfsctl" stats)
grep -Eq 'helper_registered +yes' <<<"$st" ||
	{ cat /tmp/lp-helper.log; fail "helper did not register"; }
eff=$(awk '$1 == "CapEff:" { print $2 }' "/proc/$hp/status")
note "helper CapEff: $eff"
[ "$eff" = 0000000000001000 ] || fail "helper runs with CapEff $eff, want CAP_NET_ADMIN only"
for i in 1 2 3 4 5 6; do
	cmp "$MNT/f$i" "/tmp/lp$i" || { cat /tmp/lp-helper.log; fail "content $i"; }
done
echo 3 >/proc/sys/vm/drop_caches
for i in 6 1; do
	cmp "$MNT/f$i" "/tmp/lp$i" || { cat /tmp/lp-helper.log; fail "content $i after eviction"; }
done
sleep 1.5
stats=$("$B/casfsctl" stats)
echo "$stats"
[ -s /run/casfs/helper.stats ] || fail "no stats file in /run/casfs"
ev=$(awk '$1 == "evictions" { print $2 }' /run/casfs/helper.stats)
[ "${ev:-0}" -gt 0 ] || fail "no evictions (cache bound not reached?)"
bytes=$(du -sb "$CACHE/blobs" | cut -f1)
note "evictions: $ev; blobs/ holds $bytes bytes"
if grep -E 'EPERM|EACCES|Permission denied|Operation not permitted' /tmp/lp-helper.log; then
	fail "the helper hit a permission error"
fi
kill "$hp"; wait "$hp" || true; hp=
echo "PASS"
