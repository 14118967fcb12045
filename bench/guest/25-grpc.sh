#!/bin/bash
# Cold reads through casfs with casfs-helper's grpc:// backend (REv2,
# against the reference server tests/rev2/server.py) versus the http://
# backend (Bazel's HTTP cache protocol, against nginx), over the very same
# blob files, in this same guest run:
#   - N x 4 KiB blobs, 1 and 16 parallel readers (BatchReadBlobs batches
#     concurrent misses; HTTP needs one GET each);
#   - one 256 MiB blob (ByteStream.Read vs one GET).
# A third baseline, "grpcio-direct": a grpcio client (Python) downloading
# the same blobs from the same server without casfs (one BatchReadBlobs per
# blob, 1 or 16 threads; one ByteStream.Read for the big blob), to separate
# what the server costs from what casfs and the helper cost.
# Ratios are grpc time / baseline time: below 1 means gRPC is faster.
# timeout: 3600
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
H=$CASFS_REPO/helper
N4K=${CASFS_BENCH_N4K:-2000}
work=/tmp/bench-grpc
REV2_LOG=$work/server.log
casfs_setup 2g
trap 'casfs_stop_helper; casfs_stop_nginx; casfs_stop_rev2; casfs_cleanup; rm -rf "$work"' EXIT
mkdir -p "$work/store/cas"

. "$CASFS_REPO/bench/lib.sh"
BENCH_SUBJECT=grpc

$PY - "$work" "$N4K" <<'PY'
import hashlib, os, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/small.manifest", "w") as m:
    for i in range(n):
        data = os.urandom(4096)
        h = hashlib.sha256(data).hexdigest()
        with open(f"{work}/store/cas/{h}", "wb") as f:
            f.write(data)
        m.write(f"{h} 4096 0644 f{i:06d}\n")
PY
big=$(dd if=/dev/urandom bs=1M count=256 status=none | tee "$work/big" | sha256sum | cut -d' ' -f1)
mv "$work/big" "$work/store/cas/$big"
echo "$big $((256 << 20)) 0644 big" >"$work/large.manifest"
chmod -R a+rX "$work"

casfs_start_nginx "$work/store" 8091
casfs_start_rev2 "$work/store" 0 --quiet

drop_blobs() { rm -f "$CACHE"/blobs/*; sync; echo 3 > /proc/sys/vm/drop_caches; }

# use URL: (re)start the helper on URL, in this shell (not in a $(...)).
use() {
	casfs_stop_helper
	casfs_start_helper "$1" --jobs 16 --timeout 600
}

# read_casfs SET PARALLEL: stage fresh, read it all once through the helper.
read_casfs() {
	local d=$MNT/read-$RANDOM$RANDOM t
	mkdir -p "$d"
	"$H/casfsctl" stage "$d" "$work/$1.manifest" >/dev/null
	drop_blobs
	t=$(cd "$d" && elapsed sh -c "ls | xargs -P $2 -n 64 cat > /dev/null")
	[ "$(ls "$CACHE/blobs" | wc -l)" -ge "$(wc -l < "$work/$1.manifest")" ] ||
		fail "not every blob was fetched"
	echo "$t"
}

G=grpc://127.0.0.1:$REV2_PORT
N=http://127.0.0.1:8091
# direct_small PARALLEL: seconds for a grpcio client to fetch every small
# blob, one BatchReadBlobs each, PARALLEL threads.
direct_small() {
	$PY - "$CASFS_REPO" "$REV2_PORT" "$work/small.manifest" "$1" <<'PY'
import concurrent.futures, sys, time
sys.path.insert(0, sys.argv[1] + "/tests/rev2")
import grpc, rev2proto as P
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[2])
cas = P.svc_grpc.ContentAddressableStorageStub(ch)
digests = [l.split()[:2] for l in open(sys.argv[3])]
def get(d):
    r = cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(
        digests=[P.re.Digest(hash=d[0], size_bytes=int(d[1]))]))
    assert len(r.responses[0].data) == int(d[1])
t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(int(sys.argv[4])) as ex:
    list(ex.map(get, digests))
print("%.3f" % (time.time() - t0))
PY
}

for par in 1 16; do
	use "$G"
	g=$(read_casfs small "$par")
	use "$N"
	h=$(read_casfs small "$par")
	d=$(direct_small "$par")
	ratio "cold read $N4K x 4 KiB, $par reader(s)" "$g" "http" "$h"
	ratio "cold read $N4K x 4 KiB, $par reader(s)" "$g" "grpcio-direct" "$d"
	grep -E 'gRPC: .* batches' "$HELPER_LOG" | tail -n 1 | sed 's/^/BENCH-INFO /' || true
done
for run in 1 2; do
	use "$G"
	g=$(read_casfs large 1)
	use "$N"
	h=$(read_casfs large 1)
	ratio "cold read 256 MiB blob (run $run)" "$g" "http" "$h"
done
d=$($PY - "$CASFS_REPO" "$REV2_PORT" "$big" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1] + "/tests/rev2")
import grpc, rev2proto as P
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[2],
                           options=[("grpc.max_receive_message_length", 8 << 20)])
bs = P.bs_grpc.ByteStreamStub(ch)
t0 = time.time()
n = sum(len(r.data) for r in bs.Read(P.bs.ReadRequest(
    resource_name="blobs/%s/%d" % (sys.argv[3], 256 << 20))))
assert n == 256 << 20, n
print("%.3f" % (time.time() - t0))
PY
)
use "$G"
g=$(read_casfs large 1)
ratio "cold read 256 MiB blob" "$g" "grpcio-direct" "$d"
"$H/casfsctl" stats | sed 's/^/BENCH-STATS /'
echo "BENCH done (ratio = grpc time / baseline time: below 1 means gRPC is faster)"
