#!/bin/bash
# CAS benchmarks, inside the guest (bench/run.sh boots it). Every figure
# is a ratio against a baseline measured in this same guest run:
#   - staging N files from a manifest  vs  writing the same bytes locally
#     (into casfs local files, and into tmpfs);
#   - cold reads through casfs (casfs-helper fetching from nginx) vs curl
#     fetching the same blobs from the same nginx: 1 MiB and 4 KiB blobs,
#     1 and 16 parallel readers;
#   - a hot read of a fetched blob through casfs vs the same blob file
#     read directly on the backing filesystem.
# timeout: 3600
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
FSB=$CASFS_BIN/fsbench
H=$CASFS_REPO/helper
NSTAGE=${CASFS_BENCH_NSTAGE:-100000}
N4K=${CASFS_BENCH_N4K:-2000}
N1M=${CASFS_BENCH_N1M:-200}
work=/tmp/bench-cas
casfs_setup 3g
trap 'casfs_stop_helper; casfs_stop_nginx; casfs_cleanup; rm -rf "$work"' EXIT
REF=$(casfs_ref_tmpfs)
mount -o remount,size=3g "$REF"
mkdir -p "$work/cas/cas"

. "$CASFS_REPO/bench/lib.sh"

# ---- staging vs writing -------------------------------------------------
$PY - "$work" "$NSTAGE" <<'PY'
import hashlib, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/stage.manifest", "w") as f:
    for i in range(n):
        h = hashlib.sha256(b"%d" % i).hexdigest()
        f.write(f"{h} 1024 0644 d{i // 100:04d}/f{i:07d}\n")
PY
mkdir -p "$MNT/staged" "$MNT/written" "$REF/written"
t_stage=$(elapsed "$H/casfsctl" stage "$MNT/staged" "$work/stage.manifest")
t_write=$(elapsed "$FSB" mkfiles "$MNT/written" "$NSTAGE" 1024)
t_tmpfs=$(elapsed "$FSB" mkfiles "$REF/written" "$NSTAGE" 1024)
ratio "stage $NSTAGE x 1 KiB files (manifest)" "$t_stage" "write-casfs" "$t_write"
ratio "stage $NSTAGE x 1 KiB files (manifest)" "$t_stage" "write-tmpfs" "$t_tmpfs"
rm -rf "${MNT:?}/staged" "${MNT:?}/written" "${REF:?}/written"

# ---- cold reads ----------------------------------------------------------
# make_set NAME COUNT SIZE: blobs in the CAS and a manifest for them.
make_set() {
	$PY - "$work" "$1" "$2" "$3" <<'PY'
import hashlib, os, sys
work, name, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(f"{work}/{name}.manifest", "w") as m, open(f"{work}/{name}.urls", "w") as u:
    for i in range(n):
        data = os.urandom(size)
        h = hashlib.sha256(data).hexdigest()
        with open(f"{work}/cas/cas/{h}", "wb") as f:
            f.write(data)
        m.write(f"{h} {size} 0644 f{i:06d}\n")
        u.write(f"url = \"http://127.0.0.1:8090/cas/{h}\"\noutput = \"/dev/null\"\n")
PY
}
make_set small "$N4K" 4096
make_set large "$N1M" $((1 << 20))
chmod -R a+rX "$work"
casfs_start_nginx "$work/cas" 8090
casfs_start_helper http://127.0.0.1:8090 --jobs 16

drop_blobs() { rm -f "$CACHE"/blobs/*; sync; echo 3 > /proc/sys/vm/drop_caches; }

# read_casfs NAME PARALLEL: stage fresh, read everything once.
read_casfs() {
	local d=$MNT/read-$1-$2-$RANDOM
	mkdir -p "$d"
	"$H/casfsctl" stage "$d" "$work/$1.manifest" >/dev/null
	drop_blobs
	(cd "$d" && elapsed sh -c "ls | xargs -P $2 -n 64 cat > /dev/null")
}
read_curl() {
	drop_blobs
	if [ "$2" = 1 ]; then
		elapsed curl -s -K "$work/$1.urls"
	else
		elapsed curl -s --parallel --parallel-max "$2" -K "$work/$1.urls"
	fi
}
# The helper verifies every blob's sha256 before publishing it; curl does
# not. To show what verification itself costs, a third baseline adds the
# time sha256sum takes over the same blobs (cached) to curl's.
hash_time() {
	(cd "$work/cas/cas" && cut -d' ' -f1 "$work/$1.manifest" |
		elapsed xargs -n 256 sha256sum)
}
for set in small large; do
	h=$(hash_time "$set")
	for par in 1 16; do
		c=$(read_casfs "$set" "$par")
		b=$(read_curl "$set" "$par")
		label="cold read $([ $set = small ] && echo "$N4K x 4 KiB" || echo "$N1M x 1 MiB"), $par reader(s)"
		ratio "$label" "$c" "curl" "$b"
		ratio "$label" "$c" "curl+sha256" "$(awk -v a="$b" -v b="$h" 'BEGIN {print a + b}')"
	done
done

# ---- hot read --------------------------------------------------------------
big=$(dd if=/dev/urandom bs=1M count=256 status=none | tee "$work/big" | sha256sum | cut -d' ' -f1)
cp "$work/big" "$work/cas/cas/$big"
rm "$work/big"
chmod a+r "$work/cas/cas/$big"
mkdir -p "$MNT/hot"
echo "$big $((256 << 20)) 0644 big" | "$H/casfsctl" stage "$MNT/hot" >/dev/null
cat "$MNT/hot/big" >/dev/null			# fetch it
cat "$CACHE/blobs/$big" >/dev/null		# and warm the page cache
for i in 1 2 3; do
	c=$("$FSB" read "$MNT/hot/big" | cut -d' ' -f2)
	b=$("$FSB" read "$CACHE/blobs/$big" | cut -d' ' -f2)
	ratio "hot sequential read 256 MiB blob (run $i)" "$c" "backing" "$b"
done
c=$("$FSB" rand "$MNT/hot/big" 200000 | cut -d' ' -f2)
b=$("$FSB" rand "$CACHE/blobs/$big" 200000 | cut -d' ' -f2)
ratio "hot random 4 KiB reads of the blob" "$c" "backing" "$b"
"$H/casfsctl" stats | sed 's/^/BENCH-STATS /'
echo "BENCH done (ratio = casfs time / baseline time: below 1 means casfs is faster)"
