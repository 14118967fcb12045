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
# order (BENCH_BZ_MODES, default "eager,minimal,outputd", picks some).
# Issue goal: outputd <= 1.3x minimal and <= 0.5x eager.
#
# Every build also prints CPU lines: CPU seconds (user + system) the guest
# and each process taking part (the Bazel server's JVM, casfs-outputd, the
# reference server, casfs-helper) spent during it.
#
# BENCH_BZ_PROFILE=1 also breaks each build down: Bazel writes a JSON
# profile (--profile, --noslim_profile) summarized by
# bench/bazel-outputd/profile-summary.py into PROFILE lines, and
# casfs-outputd runs with --verbose, its calls summed per method into
# OUTPUTD lines (count, handler time). Both cost a little time themselves,
# so the ratios of a profiled run are not the benchmark's figures.
# BENCH_BZ_PERF=1 (with BENCH_BZ_PROFILE=1) adds perf samples of the whole
# guest per build: PERF lines by process and binary, and casfs-outputd's
# hottest functions.
#
# Part 2, the service's own costs, measured by a C client
# (bench/outputd_rpc.c, one HTTP/2 connection on loopback) against the
# same casfs-outputd: BatchStat of one path (median and p99 over
# BENCH_OD_STATS calls, default 2000), StageArtifacts of BENCH_OD_FILES
# files (default 100,000; blobs written straight into the server's store,
# so FindMissingBlobs finds them) in requests of 1,000, and casfs-outputd's
# VmRSS before and after holding those staged outputs. BENCH_OD_FILES=0
# skips part 2.
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
MODES=${BENCH_BZ_MODES:-eager,minimal,outputd}
MODES=" ${MODES//,/ } "
PROFILE=${BENCH_BZ_PROFILE:-0}
NSTATS=${BENCH_OD_STATS:-2000}
NFILES=${BENCH_OD_FILES:-100000}
: "${BZ_XMX:=1g}" "${BZ_TMP_SIZE:=3g}"
# BENCH_BZ_JIT=tiered: the JVM's own JIT instead of C1 only (tests/lib/bazel7.sh)
BZ_JIT=${BENCH_BZ_JIT:-$BZ_JIT}

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
od_verbose=()
[ "$PROFILE" = 1 ] && od_verbose=(--verbose)
start_outputd() {
	local port=${1:-0} _ line
	setpriv "--reuid=$uid" "--regid=$uid" --clear-groups \
		"$H/casfs-outputd" --root "$MNT/outputs" --bazel-root /mnt/casfs/outputs \
		--listen "grpc://127.0.0.1:$port" --cas "grpc://127.0.0.1:$REV2_PORT" \
		--cas-timeout 60 "${od_verbose[@]}" >>"$OD_LOG" 2>&1 &
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

# cpu_snapshot: "NAME TICKS" lines, CPU time (user + system, clock ticks)
# of the guest as a whole (busy and idle) and of each process that takes
# part in a build; cpu_report NAME BEFORE AFTER prints the differences.
cpu_snapshot() {
	awk '$1 == "cpu" { print "busy", $2 + $3 + $4 + $7 + $8; print "idle", $5 + $6 }' /proc/stat
	local who pid
	for who in "bazel:$(bazel7_server_pid)" "outputd:$od_pid" \
		"rev2:${REV2_PID:-}" "helper:${HELPER_PID:-}"; do
		pid=${who#*:}
		[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || continue
		# Fields 14 and 15 (utime, stime), counted after the ")" that
		# ends the command name.
		sed -E 's/.*\) //' "/proc/$pid/stat" | awk -v n="${who%%:*}" '{ print n, $12 + $13 }'
	done
}
cpu_report() {
	local hz
	hz=$(getconf CLK_TCK)
	awk -v b="$1" -v hz="$hz" '
		NR == FNR { before[$1] = $2; next }
		{ printf "CPU %s %-8s %8.2f s\n", b, $1, ($2 - before[$1]) / hz }
	' <(echo "$2") <(echo "$3")
}
# run NAME ARGS...: bazel ARGS, log in $work/NAME.log; sets T (seconds).
# With BENCH_BZ_PROFILE=1 a build also prints its breakdown (above).
run() {
	local name=$1 log=$work/$1.log t0 prof=() od0 cpu_before=
	shift
	if [ "$PROFILE" = 1 ] && [ "$1" = build ]; then
		prof=("--profile=/tmp/prof-$name.json.gz" --noslim_profile)
	fi
	od0=$(wc -l <"$OD_LOG")
	perf_pid=
	[ "$1" = build ] && cpu_before=$(cpu_snapshot)
	if ((${#prof[@]})); then
		if [ "${BENCH_BZ_PERF:-0}" = 1 ] && [ "$name" != up ]; then
			perf record -q -F 200 -a -g -o "$work/$name.perf" >/dev/null 2>&1 &
			perf_pid=$!
		fi
	fi
	t0=$EPOCHREALTIME
	if ! bazel7 "$@" "${prof[@]}" >"$log" 2>&1; then
		cat "$log"
		echo "--- casfs-outputd:"
		cat "$OD_LOG"
		fail "bazel $* failed"
	fi
	T=$(secs "$t0" "$EPOCHREALTIME")
	[ "$1" = build ] && cpu_report "$name" "$cpu_before" "$(cpu_snapshot)"
	((${#prof[@]})) || return 0
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid"
		wait "$perf_pid" || true
		perf report -i "$work/$name.perf" --stdio --no-children --sort comm,dso 2>/dev/null |
			awk -v p="PERF $name" '/^ +[0-9]/ && n++ < 25 { print p, $0 }'
		perf report -i "$work/$name.perf" --stdio --no-children --comm casfs-outputd \
			--sort sym -g none 2>/dev/null |
			awk -v p="PERF $name outputd" '/^ +[0-9]/ && n++ < 40 { print p, $0 }'
	fi
	$PY "$CASFS_REPO/bench/bazel-outputd/profile-summary.py" "$name" \
		"$BZ_CHROOT/tmp/prof-$name.json.gz" 30
	# casfs-outputd's --verbose lines: "casfs-outputd: Method: N bytes
	# in, CODE, T ms".
	tail -n "+$((od0 + 1))" "$OD_LOG" | awk -v b="$name" '
		/^casfs-outputd: [A-Za-z]+: [0-9]+ bytes in, / {
			m = $2; sub(":", "", m)
			t = $NF == "ms" ? $(NF - 1) : 0
			n[m]++; sum[m] += t; if (t > max[m]) max[m] = t
			bytes[m] += $3
		}
		/^casfs-outputd: grpc server: conn [0-9]+ from / { conns++ }
		END {
			printf "OUTPUTD %s %-18s %6d\n", b, "connections", conns
			for (m in n)
				printf "OUTPUTD %s %-18s %6d calls  %10.1f ms in handlers  max %8.1f ms  %d bytes in\n",
					b, m, n[m], sum[m], max[m], bytes[m]
		}'
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
want() { [[ $MODES == *" $1 "* ]]; }
for r in $(seq "$RUNS"); do
	if want eager; then
		run "eager$r" build "$RC" --remote_download_all "${TARGETS[@]}"
		TM[eager$r]=$T
		note "round $r eager: $T s, $(processes "eager$r")"
		[ "$(hits "eager$r")" = "$n_ac" ] || note "eager: want $n_ac remote cache hits"
		[ "$(stat -c %s "$bin/g000.bin")" = "$big" ] || fail "eager: g000.bin not downloaded"
		run "cleana$r" clean
	fi

	if want minimal; then
		run "minimal$r" build "$RC" --remote_download_minimal "${TARGETS[@]}"
		TM[minimal$r]=$T
		note "round $r minimal: $T s, $(processes "minimal$r")"
		[ "$(hits "minimal$r")" = "$n_ac" ] || note "minimal: want $n_ac remote cache hits"
		run "cleanb$r" clean
	fi

	want outputd || continue
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
	for pair in "outputd minimal" "outputd eager" "minimal eager"; do
		read -r a b <<<"$pair"
		[ -n "${TM[$a$r]:-}" ] && [ -n "${TM[$b$r]:-}" ] || continue
		BENCH_SUBJECT=$a ratio "$label" "${TM[$a$r]}" "$b" "${TM[$b$r]}"
	done
done
run shutdown shutdown
[ "$NFILES" -gt 0 ] || exit 0

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
