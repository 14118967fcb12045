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

ratio() {	# NAME CASFS_SECONDS BASE_NAME BASE_SECONDS
	awk -v n="$1" -v c="$2" -v bn="$3" -v b="$4" 'BEGIN {
		printf "BENCH %-44s casfs %8.3fs  %s %8.3fs  ratio %.3f\n", n, c, bn, b, c / b }'
}
elapsed() { local t0=$EPOCHREALTIME; "$@" >/dev/null; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'; }

eval "$($PY "$CASFS_REPO/tests/rev2/treegen.py" big "$work/store" "$NDIRS" "$NFILES" \
	"$work/files.manifest")"
# Pages of at most 200 Directories (1.8 MB here): rev2_get_tree sends no
# page_size and takes messages up to 4 MiB, and the server's default page
# of 1000 of these directories is 8.8 MB.
casfs_start_rev2 "$work/store" 0 --tree-page-max 200
CAS=grpc://127.0.0.1:$REV2_PORT

for run in 1 2 3; do
	t_stage=$(elapsed "$H/casfsctl" stage "$MNT/stage$run" "$work/files.manifest")
	t_tree=$(elapsed "$H/casfsctl" materialize --cas "$CAS" --tree "$TREE" "$MNT/tree$run")
	t_gt=$(elapsed "$H/casfsctl" materialize --cas "$CAS" "$ROOT" "$MNT/gettree$run")
	[ "$(find "$MNT/tree$run" -type f | wc -l)" = "$N" ] || fail "tree$run: wrong count"
	[ "$(find "$MNT/gettree$run" -type f | wc -l)" = "$N" ] || fail "gettree$run: wrong count"
	ratio "materialize Tree $NDIRS x $NFILES files (run $run)" "$t_tree" "stage-manifest" "$t_stage"
	ratio "materialize GetTree $NDIRS x $NFILES (run $run)" "$t_gt" "stage-manifest" "$t_stage"
	rm -rf "${MNT:?}/stage$run" "${MNT:?}/tree$run" "${MNT:?}/gettree$run"
done
