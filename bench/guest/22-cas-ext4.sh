#!/bin/bash
# Cold reads with the helper's cache on ext4 on a virtio disk (issue 11
# item 12), not on tmpfs: what the helper's durability costs shows here.
# The baseline does the same work on the same filesystem in this same
# guest run: curl fetching the same blobs from the same nginx into files
# in a directory on that ext4, then sha256sum over them (the helper
# verifies every blob) -- and, since the helper makes its blobs durable
# before answering (one syncfs per group), a second baseline adds one
# sync(1) at the end.
#   - N4K x 4 KiB and N1M x 1 MiB blobs, 1 and 16 parallel readers.
# Goals (issue 11): at most 1.2x the baseline with 16 readers, 1.5x with 1.
# Ratios are casfs time / baseline time: below 1 means casfs is faster.
# timeout: 3600
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
[ -n "${CASFS_DISK:-}" ] || { echo "SKIP: no scratch disk (CASFS_VM_DISK_MB)"; exit 77; }
H=$CASFS_REPO/helper
N4K=${CASFS_BENCH_N4K:-2000}
N1M=${CASFS_BENCH_N1M:-200}
work=/tmp/bench-ext4
disk=$(mktemp -d /tmp/casfs-disk.XXXXXX)
cleanup() {
	casfs_stop_helper
	casfs_stop_nginx
	casfs_cleanup
	mountpoint -q "$disk" && umount "$disk"
	rm -rf "$work"
}
trap cleanup EXIT
casfs_load
mkfs.ext4 -q -F "$CASFS_DISK"
mount -t ext4 "$CASFS_DISK" "$disk"
mkdir -m 0755 "$disk/cache" "$disk/curl"
CACHE=$disk/cache
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE" casfs "$MNT"
export CACHE MNT
mkdir -p "$work/cas/cas"

. "$CASFS_REPO/bench/lib.sh"

# make_set NAME COUNT SIZE: blobs in the CAS, a manifest, and curl's config
# writing each blob to a file of its own on the ext4.
make_set() {
	$PY - "$work" "$disk/curl" "$1" "$2" "$3" <<'PY'
import hashlib, os, sys
work, out, name, n, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(f"{work}/{name}.manifest", "w") as m, open(f"{work}/{name}.urls", "w") as u:
    for i in range(n):
        data = os.urandom(size)
        h = hashlib.sha256(data).hexdigest()
        with open(f"{work}/cas/cas/{h}", "wb") as f:
            f.write(data)
        m.write(f"{h} {size} 0644 f{i:06d}\n")
        u.write(f"url = \"http://127.0.0.1:8092/cas/{h}\"\noutput = \"{out}/{h}\"\n")
PY
}
make_set small "$N4K" 4096
make_set large "$N1M" $((1 << 20))
chmod -R a+rX "$work"
casfs_start_nginx "$work/cas" 8092
casfs_start_helper http://127.0.0.1:8092 --jobs 16

clean_disk() {
	rm -f "$CACHE"/blobs/* "$disk"/curl/*
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# read_casfs NAME PARALLEL: stage fresh, read everything once.
read_casfs() {
	local d=$MNT/read-$1-$2-$RANDOM t
	mkdir -p "$d"
	"$H/casfsctl" stage "$d" "$work/$1.manifest" >/dev/null
	clean_disk
	t=$(cd "$d" && elapsed sh -c "ls | xargs -P $2 -n 64 cat > /dev/null")
	[ "$(find "$CACHE/blobs" -type f | wc -l)" -ge "$(wc -l <"$work/$1.manifest")" ] ||
		fail "not every blob was fetched"
	echo "$t"
}
# curl_files NAME PARALLEL [sync]: curl into files on the ext4, sha256sum
# them, and (with sync) make them durable; one elapsed time for it all.
curl_files() {
	local par=$2 s=${3:-}
	clean_disk
	elapsed sh -c '
		if [ "$1" = 1 ]; then curl -s -K "$2"; else curl -s --parallel --parallel-max "$1" -K "$2"; fi
		cd "$3" && ls | xargs -n 256 sha256sum >/dev/null
		[ -z "$4" ] || sync
	' _ "$par" "$work/$1.urls" "$disk/curl" "$s"
}

for set in small large; do
	for par in 1 16; do
		c=$(read_casfs "$set" "$par")
		b=$(curl_files "$set" "$par")
		bs=$(curl_files "$set" "$par" sync)
		label="cold read $([ $set = small ] && echo "$N4K x 4 KiB" || echo "$N1M x 1 MiB"), $par reader(s), ext4"
		ratio "$label" "$c" "curl+sha256" "$b"
		ratio "$label" "$c" "curl+sha256+sync" "$bs"
	done
done
st=$(cat /run/casfs/helper.stats)
grep -E '^(sync_groups|sync_group_blobs|fetch_ok) ' <<<"$st" | sed 's/^/BENCH-STATS /'
echo "BENCH done (ratio = casfs time / baseline time: below 1 means casfs is faster)"
