#!/bin/bash
# Bazel 7.7.1 with casfs-outputd, inside the guest (bench/run.sh boots it).
#
# Part 1, builds: the workspace of bench/bazel-outputd/gen-workspace.sh
# (210 genrules with outputs from 1 KiB to 20 MiB, 218 MiB in all, and a
# 4,000-file tree artifact: 211 remote-cacheable actions) is built once
# with --remote_cache against tests/rev2/server.py on loopback (the
# upload). Then, each from a clean output base (`bazel clean` between),
# every action a remote cache hit, the same Bazel server throughout:
#   eager    --remote_download_all, the output base on tmpfs
#   minimal  --remote_download_minimal, no output service (the roofline:
#            Bazel downloads nothing and writes nothing)
#   outputd  the output service (casfs-outputd) on casfs: outputs are
#            staged, nothing is fetched
# BENCH_BZ_RUNS rounds (default 2), each eager, minimal, outputd in that
# order. Issue goal: outputd <= 1.3x minimal and <= 0.5x eager.
#
# Part 2, the service's own costs, measured by a C client
# (bench/outputd_rpc.c, one HTTP/2 connection on loopback) against the
# same casfs-outputd: BatchStat of one path (median and p99 over
# BENCH_OD_STATS calls, default 2000), StageArtifacts of BENCH_OD_FILES
# files (default 100,000; blobs written straight into the server's store,
# so FindMissingBlobs finds them) in requests of 1,000, and casfs-outputd's
# VmRSS before and after holding those staged outputs.
#
# Runs as uid 4242 (Bazel in the sid chroot, tests/lib/bazel7.sh;
# casfs-outputd outside it with --bazel-root), like
# tests/kernel/95-bazel-outputd.sh.
# timeout: 3300
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
. "$CASFS_REPO/tests/lib/bazel7.sh"
. "$CASFS_REPO/bench/lib.sh"
bazel7_available || { echo "SKIP: no Bazel in $BZ_CHROOT (tests/sid-chroot.sh installs it)"; exit 77; }
H=$CASFS_REPO/helper
ORPC=$CASFS_BIN/outputd_rpc
[ -x "$H/casfs-outputd" ] && [ -x "$H/casfs-helper" ] || fail "helper/ not built (make -C helper)"
[ -x "$ORPC" ] || fail "no $ORPC (make tests-bin)"
RUNS=${BENCH_BZ_RUNS:-2}
NSTATS=${BENCH_OD_STATS:-2000}
NFILES=${BENCH_OD_FILES:-100000}
: "${BZ_XMX:=1g}" "${BZ_TMP_SIZE:=3g}"

casfs_rev2_frame /tmp/bench-outputd
od_pid=
stop_outputd() {
	if [ -n "$od_pid" ]; then
		kill "$od_pid" 2>/dev/null || true
		wait "$od_pid" 2>/dev/null || true
		od_pid=
	fi
}
trap 'stop_outputd; bazel7_teardown; casfs_rev2_teardown' EXIT
uid=4242
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

mkdir -p "$work/store"
"$CASFS_REPO/bench/bazel-outputd/gen-workspace.sh" "$work/ws"

casfs_load
CACHE=$(casfs_new_cache 1g)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=60" casfs "$MNT"
chmod 0755 "$MNT"
mkdir "$MNT/outputs"
chown "$uid:$uid" "$MNT/outputs"
casfs_start_rev2 "$work/store" 0 --quiet
casfs_start_helper "grpc://127.0.0.1:$REV2_PORT"
RC=--remote_cache=grpc://127.0.0.1:$REV2_PORT

bazel7_setup "$work/ws"
bazel7_bind "$MNT" /mnt/casfs
bazel7_user "$uid"
TARGETS=(//:all_outputs)

OD_LOG=$work/outputd.log
start_outputd() {
	local port=${1:-0} _ line
	setpriv "--reuid=$uid" "--regid=$uid" --clear-groups \
		"$H/casfs-outputd" --root "$MNT/outputs" --bazel-root /mnt/casfs/outputs \
		--listen "grpc://127.0.0.1:$port" --cas "grpc://127.0.0.1:$REV2_PORT" \
		--cas-timeout 60 >>"$OD_LOG" 2>&1 &
	od_pid=$!
	for _ in $(seq 100); do
		line=$(grep -E 'listening on grpc://127.0.0.1:[0-9]+ \(port [0-9]+\)' "$OD_LOG" || true)
		if [ -n "$line" ] && grep -q "serving" "$OD_LOG"; then
			OD_PORT=$(sed -nE 's/.*\(port ([0-9]+)\).*/\1/p' <<<"$line" | tail -n 1)
			return 0
		fi
		kill -0 "$od_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$OD_LOG"
	fail "casfs-outputd did not start"
}
start_outputd
OS=(--experimental_remote_output_service=grpc://127.0.0.1:$OD_PORT
	--experimental_remote_output_service_output_path_prefix=/mnt/casfs/outputs)

# run NAME ARGS...: bazel ARGS, log in $work/NAME.log; sets T (seconds).
run() {
	local log=$work/$1.log t0
	shift
	t0=$EPOCHREALTIME
	if ! bazel7 "$@" >"$log" 2>&1; then
		cat "$log"
		echo "--- casfs-outputd:"
		cat "$OD_LOG"
		fail "bazel $* failed"
	fi
	T=$(secs "$t0" "$EPOCHREALTIME")
}
processes() {
	local out
	out=$(grep -E 'INFO: [0-9]+ process(es)?[:.]' "$work/$1.log" || true)
	echo "${out##*INFO: }"
}
hits() {
	local line n
	line=$(processes "$1")
	n=$(sed -nE 's/.*[:,] ([0-9]+) remote cache hit([,.]| \().*/\1/p' <<<"$line")
	echo "${n:-0}"
}
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$od_pid/status"; }
execroot=$BZ_CHROOT$(bazel7_output_base)/execroot/casfs_bench

# 1. The upload (local execution, results and outputs to the cache).
run up build "$RC" --spawn_strategy=local "${TARGETS[@]}"
n_ac=$(find "$work/store/ac" -type f | wc -l)
cas_bytes=$(du -sb "$work/store/cas")
note "upload build: $T s, $(processes up); $n_ac action results, $(find "$work/store/cas" -type f | wc -l) blobs, ${cas_bytes%%[[:space:]]*} bytes"
[ "$n_ac" -ge 200 ] || fail "only $n_ac action results"
bin=$execroot/bazel-out/k8-fastbuild/bin
big=$(stat -c %s "$bin/g000.bin")
ntree=$(find "$bin/tree" -type f | wc -l)
note "g000.bin: $big bytes, tree: $ntree files"
[ "$ntree" = 4000 ] || fail "tree has $ntree files"
run clean0 clean

# 2. The timed builds.
check_outpath_empty() {
	local left
	left=$(find "$MNT/outputs" -mindepth 2 -not -path "$MNT/outputs/.casfs-outputd*" | wc -l)
	[ "$left" = 0 ] || note "after bazel clean the output service's output path still holds $left entries"
}
declare -A TM
for r in $(seq "$RUNS"); do
	run "eager$r" build "$RC" --remote_download_all "${TARGETS[@]}"
	TM[eager$r]=$T
	note "round $r eager: $T s, $(processes "eager$r")"
	[ "$(hits "eager$r")" = "$n_ac" ] || note "eager: want $n_ac remote cache hits"
	[ "$(stat -c %s "$bin/g000.bin")" = "$big" ] || fail "eager: g000.bin not downloaded"
	run "cleana$r" clean

	run "minimal$r" build "$RC" --remote_download_minimal "${TARGETS[@]}"
	TM[minimal$r]=$T
	note "round $r minimal: $T s, $(processes "minimal$r")"
	[ "$(hits "minimal$r")" = "$n_ac" ] || note "minimal: want $n_ac remote cache hits"
	run "cleanb$r" clean

	run "outputd$r" build "$RC" "${OS[@]}" "${TARGETS[@]}"
	TM[outputd$r]=$T
	note "round $r outputd: $T s, $(processes "outputd$r")"
	[ "$(hits "outputd$r")" = "$n_ac" ] || note "outputd: want $n_ac remote cache hits"
	link=$(readlink "$execroot/bazel-out")
	case $link in /mnt/casfs/outputs/*) ;; *) fail "bazel-out -> '$link', not into casfs" ;; esac
	B=$MNT/outputs/${link#/mnt/casfs/outputs/}/k8-fastbuild/bin
	[ "$(stat -c %s "$B/g000.bin")" = "$big" ] || fail "outputd: g000.bin has the wrong size"
	n=$(find "$B/tree" -type f | wc -l)
	[ "$n" = 4000 ] || fail "outputd: tree has $n files"
	fetched=$("$H/casfsctl" stats 2>/dev/null || true)
	fetched=$(grep -iE 'fetch' <<<"$fetched" || true)
	note "outputd: outputs staged in casfs ($n tree files); casfsctl stats: $(tr -s ' \n' ' ' <<<"$fetched")"
	# A plain `bazel clean` does not reach the output service (the output
	# path keeps everything); with the service flags Bazel also wants a
	# --remote_cache.
	if ! bazel7 clean "$RC" "${OS[@]}" >"$work/cleanc$r.log" 2>&1; then
		note "bazel clean with the output service flags failed: $(tail -n 3 "$work/cleanc$r.log")"
		run "cleanc$r" clean
	fi
	check_outpath_empty
done

for r in $(seq "$RUNS"); do
	label="bazel 211 actions 218 MiB (run $r)"
	BENCH_SUBJECT=outputd ratio "$label" "${TM[outputd$r]}" minimal "${TM[minimal$r]}"
	BENCH_SUBJECT=outputd ratio "$label" "${TM[outputd$r]}" eager "${TM[eager$r]}"
	BENCH_SUBJECT=minimal ratio "$label" "${TM[minimal$r]}" eager "${TM[eager$r]}"
done
run shutdown shutdown

# 3. The service's own costs.
$PY - "$work/store/cas" "$NFILES" "$work/stage.list" <<'PY'
import hashlib, os, sys
cas, n, lst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(lst, "w") as out:
    for i in range(n):
        data = b"staged output %d\n" % i
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(cas, h), "wb") as f:
            f.write(data)
        out.write("s/d%03d/f%06d.txt %s %d\n" % (i // 1000, i, h, len(data)))
PY
chmod a+r "$work/stage.list"
chmod a+x "$work"
orpc() {
	setpriv "--reuid=$uid" "--regid=$uid" --clear-groups "$ORPC" "grpc://127.0.0.1:$OD_PORT" "$@"
}
rss0=$(rss)
suffix=$(orpc start /mnt/casfs/outputs bench0 bench-build-1)
[ "$suffix" = bench0 ] || fail "StartBuild answered suffix '$suffix'"
out=$(orpc stage bench-build-1 "$work/stage.list" 1000)
note "$out"
per=$(sed -nE 's/.* ([0-9.]+) us\/file.*/\1/p' <<<"$out")
total=$(sed -nE 's/.*calls: ([0-9.]+) s,.*/\1/p' <<<"$out")
n=$(find "$MNT/outputs/bench0/s" -type f | wc -l)
[ "$n" = "$NFILES" ] || fail "staged $n files, want $NFILES"
rss1=$(rss)
st=$(orpc stat bench-build-1 s/d050/f050000.txt "$NSTATS")
note "$st"
med=$(sed -nE 's/.*median ([0-9.]+) us.*/\1/p' <<<"$st")
p99=$(sed -nE 's/.*p99 ([0-9.]+) us.*/\1/p' <<<"$st")
orpc finalize bench-build-1
rss2=$(rss)
t0=$EPOCHREALTIME
orpc clean bench0
tclean=$(secs "$t0" "$EPOCHREALTIME")
rss3=$(rss)
printf 'BENCH %-44s median %8.1f us  p99 %8.1f us  (%s calls, %s)\n' \
	"outputd BatchStat 1 path" "$med" "$p99" "$NSTATS" "${st##*, }"
printf 'BENCH %-44s %8.1f us/file  total %8.3fs\n' \
	"outputd StageArtifacts $NFILES files, 1000/call" "$per" "$total"
printf 'BENCH %-44s before %d KiB  staged %d KiB  finalized %d KiB  +%d KiB per %d outputs\n' \
	"outputd VmRSS" "$rss0" "$rss1" "$rss2" "$((rss2 - rss0))" "$NFILES"
printf 'BENCH %-44s %8.3fs  VmRSS after %d KiB\n' "outputd Clean of $NFILES outputs" "$tclean" "$rss3"
if grep -E 'ERROR|AddressSanitizer' "$OD_LOG"; then
	note "casfs-outputd logged errors (above)"
fi
