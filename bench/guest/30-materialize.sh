#!/bin/bash
# Materialisation benchmark, inside the guest (bench/run.sh boots it):
# `casfsctl materialize` of a REv2 Tree of NDIRS x NFILES files (default
# 1000 x 100 = 100,000), as a Tree blob and as a root Directory through
# paged GetTree, from the reference server (tests/rev2/server.py) on
# loopback, against `casfsctl stage` of the same files from a manifest.
# Same guest run, same mount; no file bytes are fetched by either.
# timeout: 1800
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
H=$CASFS_REPO/helper
NDIRS=${CASFS_BENCH_MAT_DIRS:-1000}
NFILES=${CASFS_BENCH_MAT_FILES:-100}
N=$((NDIRS * NFILES))
work=/tmp/bench-mat
REV2_LOG=$work/server.log
casfs_setup 1g
trap 'casfs_stop_rev2; casfs_cleanup; rm -rf "$work"' EXIT
mkdir -p "$work/store"

. "$CASFS_REPO/bench/lib.sh"

eval "$($PY "$CASFS_REPO/tests/rev2/treegen.py" big "$work/store" "$NDIRS" "$NFILES" \
	"$work/files.manifest")"
# casfsctl asks for pages of 100 Directories (REV2_TREE_PAGE_SIZE).
casfs_start_rev2 "$work/store" 0 --quiet
CAS=grpc://127.0.0.1:$REV2_PORT

# A baseline for what the server itself costs: a grpcio client (Python)
# reading the same GetTree pages (100 Directories each), without casfs.
direct_gettree() {
	$PY - "$CASFS_REPO" "$REV2_PORT" "$ROOT" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1] + "/tests/rev2")
import grpc, rev2proto as P
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[2],
                           options=[("grpc.max_receive_message_length", 8 << 20)])
cas = P.svc_grpc.ContentAddressableStorageStub(ch)
h, s = sys.argv[3].split("/")
t0, token, n = time.time(), "", 0
while True:
    last = None
    for page in cas.GetTree(P.svc.GetTreeRequest(
            root_digest=P.re.Digest(hash=h, size_bytes=int(s)), page_size=100,
            page_token=token)):
        n += len(page.directories)
        last = page
    token = last.next_page_token if last else ""
    if not token:
        break
print("%.3f" % (time.time() - t0))
PY
}

for run in 1 2 3; do
	t_stage=$(elapsed "$H/casfsctl" stage "$MNT/stage$run" "$work/files.manifest")
	t_tree=$(elapsed "$H/casfsctl" materialize --cas "$CAS" --tree "$TREE" "$MNT/tree$run")
	t_gt=$(elapsed "$H/casfsctl" materialize --cas "$CAS" "$ROOT" "$MNT/gettree$run")
	[ "$(find "$MNT/tree$run" -type f | wc -l)" = "$N" ] || fail "tree$run: wrong count"
	[ "$(find "$MNT/gettree$run" -type f | wc -l)" = "$N" ] || fail "gettree$run: wrong count"
	ratio "materialize Tree $NDIRS x $NFILES files (run $run)" "$t_tree" "stage-manifest" "$t_stage"
	ratio "materialize GetTree $NDIRS x $NFILES (run $run)" "$t_gt" "stage-manifest" "$t_stage"
	ratio "materialize GetTree $NDIRS x $NFILES (run $run)" "$t_gt" "grpcio-direct" "$(direct_gettree)"
	rm -rf "${MNT:?}/stage$run" "${MNT:?}/tree$run" "${MNT:?}/gettree$run"
done
