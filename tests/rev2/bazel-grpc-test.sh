#!/bin/bash
# tests/rev2/bazel-grpc-test.sh [OUTDIR]: prove tests/rev2/server.py against a
# REv2 client the team did not write: Debian's bazel-bootstrap 4.2.3 builds
# tests/bazel/workspace with --remote_cache=grpc://127.0.0.1:PORT.
#
#   1. clean, build: every action runs locally and uploads (Capabilities,
#      FindMissingBlobs, ByteStream.Write / BatchUpdateBlobs,
#      UpdateActionResult); the store must then hold one action result per
#      local action and every output blob
#   2. clean, build with --remote_download_minimal: all remote cache hits
#      (GetActionResult), nothing downloaded into bazel-out
#   3. clean, build with --remote_download_outputs=all: all remote cache
#      hits, every output downloaded (ByteStream.Read / BatchReadBlobs) and
#      equal, by sha256, to the blob in the store named by its action result
#
# OUTDIR (default build/rev2-bazel) gets: store/{cas,ac} (the server's
# root), expected/ (build 3's outputs, exec-root-relative paths), actions
# (one "HASH/SIZE" action digest per action result: Bazel puts each Action
# in the CAS too, which gives its size), ws/ (a copy of the workspace),
# bazel-root/ (Bazel's --output_user_root, kept between runs), logs/
# (bazel, server). tests/kernel/92-bazel-grpc.sh uses store/, expected/ and
# actions in the guest. Offline, host only (Bazel needs its JVM);
# idempotent. Exit 0 on success.
#
# Needs: bazel-bootstrap, default-jdk-headless, python3-grpcio,
# python3-protobuf, python3-grpc-tools (for /usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/rev2-bazel}
t_start=$(date +%s.%N)
PY=/usr/bin/python3

log() { echo "bazel-grpc: $*"; }
die() { echo "bazel-grpc: FAIL: $*" >&2; exit 1; }
elapsed() { $PY -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(date +%s.%N)"; }

for c in bazel java; do
	command -v "$c" >/dev/null || die "$c not found (bazel-bootstrap, default-jdk-headless)"
done
$PY -c 'import grpc, google.protobuf, grpc_tools' 2>/dev/null ||
	die "$PY lacks grpc/protobuf/grpc_tools (python3-grpcio python3-protobuf python3-grpc-tools)"

mkdir -p "$out"
out=$(cd "$out" && pwd)
ws=$out/ws
store=$out/store
logs=$out/logs
root=$out/bazel-root
rm -rf "$ws" "$store" "$logs" "$out/expected" "$out/actions"
mkdir -p "$store" "$logs" "$root"
cp -r "$top/tests/bazel/workspace" "$ws"

server_pid=
bazel_started=
cleanup() {
	local rc=$?
	if [ -n "$bazel_started" ]; then
		(cd "$ws" && bazel --nohome_rc --output_user_root="$root" shutdown) >/dev/null 2>&1 || true
	fi
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	[ $rc = 0 ] || echo "bazel-grpc: failed; logs in $logs" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the server, on a port it picks itself ------------------------------------
$PY "$here/server.py" --root "$store" --port 0 >"$logs/server.out" 2>"$logs/server.log" &
server_pid=$!
port=
for _ in $(seq 200); do
	port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$logs/server.out")
	[ -n "$port" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$logs/server.log" >&2; die "server.py exited"; }
	sleep 0.05
done
[ -n "$port" ] || die "server.py did not print READY"
log "server.py (pid $server_pid) on grpc://127.0.0.1:$port, store $store"

# --- bazel (shared with tests/bazel/host-build.sh) ---------------------------------
. "$(dirname "$0")/../bazel/lib.sh"
bazel_remote "grpc://127.0.0.1:$port"
BAZEL_BUILD_NOTE=processes
processes() {
	grep -E '^INFO: [0-9]+ process(es)?: ' "$1" | tail -n 1 | sed -E 's/^INFO: //; s/\.$//'
}
count() {
	processes "$1" | tr ',:' '\n' | sed -E 's/^ +//' |
		awk -v k="$2" '{ n = $1; $1 = ""; sub(/^ /, ""); if ($0 == k) s += n } END { print s + 0 }'
}
only_hits() {
	local other
	other=$(processes "$1" | sed -E 's/^[0-9]+ process(es)?: //' | tr ',' '\n' |
		sed -E 's/^ +//' | grep -Ev '^[0-9]+ (internal|remote cache hit)$' || true)
	[ -z "$other" ]
}
calls() { grep -c "^rev2-server: $1: done" "$logs/server.log" || true; }

# 1. upload
build upload
execroot=$(bz info --noshow_progress execution_root 2>>"$logs/upload.log")
n_local=$(count "$logs/upload.log" local)
[ "$n_local" -gt 0 ] || die "the first build ran nothing locally"
n_ac=$(find "$store/ac" -type f | wc -l)
n_cas=$(find "$store/cas" -type f | wc -l)
[ "$n_ac" = "$n_local" ] || die "$n_local actions ran, but the store holds $n_ac action results"
[ "$n_cas" -gt 0 ] || die "no blobs uploaded"
# Every stored blob is what its name says.
for f in "$store"/cas/*; do
	[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || die "store: $f does not match its name"
done
log "store after upload: $n_ac action results, $n_cas blobs ($(du -sh "$store/cas" | cut -f1)); calls: GetCapabilities $(calls GetCapabilities), FindMissingBlobs $(calls FindMissingBlobs), Write $(calls Write), BatchUpdateBlobs $(calls BatchUpdateBlobs), UpdateActionResult $(calls UpdateActionResult)"
# Every output file of every action result is in the store (Directory/Tree
# outputs are not used by this workspace).
REV2_DIR=$here $PY - "$store" <<'PY' || die "an action result names a blob that is not in the store"
import os, sys
sys.path.insert(0, os.environ["REV2_DIR"])
import rev2proto as P
store = sys.argv[1]
n = 0
for name in os.listdir(os.path.join(store, "ac")):
    ar = P.re.ActionResult()
    ar.ParseFromString(open(os.path.join(store, "ac", name), "rb").read())
    for f in ar.output_files:
        p = os.path.join(store, "cas", f.digest.hash)
        if f.digest.size_bytes and (not os.path.exists(p) or os.path.getsize(p) != f.digest.size_bytes):
            sys.exit("missing %s (%s)" % (f.digest.hash, f.path))
        n += 1
print("bazel-grpc: %d output files named by the action results, all in the store" % n)
PY
n_uploaded_calls=$(( $(calls Write) + $(calls BatchUpdateBlobs) ))
[ "$n_uploaded_calls" -gt 0 ] || die "no Write or BatchUpdateBlobs call seen"

# 2. Builds without the Bytes
before_get=$(calls GetActionResult)
build minimal --remote_download_minimal
only_hits "$logs/minimal.log" || die "minimal build: not all remote cache hits: $(processes "$logs/minimal.log")"
hits=$(count "$logs/minimal.log" "remote cache hit")
[ "$hits" = "$n_local" ] || die "minimal build: $hits remote cache hits, want $n_local"
left=$(find "$execroot/bazel-out/" -path '*/bin/*' ! -type d | sed "s|^$execroot/||")
[ -z "$left" ] || die "minimal build left outputs in bazel-out: $left"
got=$(( $(calls GetActionResult) - before_get ))
[ "$got" -ge "$n_local" ] || die "minimal build: $got GetActionResult calls, want >= $n_local"

# 3. download everything, compare with the store
reads0=$(( $(calls Read) + $(calls BatchReadBlobs) ))
build all --remote_download_outputs=all
only_hits "$logs/all.log" || die "download-all build: not all remote cache hits: $(processes "$logs/all.log")"
[ "$(count "$logs/all.log" "remote cache hit")" = "$n_local" ] || die "download-all build: wrong hit count"
reads=$(( $(calls Read) + $(calls BatchReadBlobs) - reads0 ))
[ "$reads" -gt 0 ] || die "download-all build: no Read or BatchReadBlobs call"
n_out=0
while IFS= read -r -d '' f; do
	h=$(sha256sum <"$f" | cut -d' ' -f1)
	s=$(stat -c %s "$f")
	if [ "$s" != 0 ]; then
		[ -f "$store/cas/$h" ] || die "${f#$execroot/}: its bytes ($h) are not in the store"
	fi
	n_out=$((n_out + 1))
done < <(find "$execroot/bazel-out/" -path '*/bin/*' -type f -print0)
[ "$n_out" -gt 0 ] || die "no outputs downloaded"
want=$(printf '%s\n' "hello from a Bazel output on casfs" "fib(90) = 2880067194370816120")
[ "$("$execroot/bazel-out/k8-fastbuild/bin/hello")" = "$want" ] || die "the downloaded hello does not run right"

# Keep the full download and the action digests for the guest test.
mkdir -p "$out/expected"
(cd "$execroot" && find bazel-out/ -path '*/bin/*' -type f -exec cp --parents -p {} "$out/expected/" \;)
for f in "$store"/ac/*; do
	h=$(basename "$f")
	[ -f "$store/cas/$h" ] || die "action $h: the Action itself is not in the CAS"
	echo "$h/$(stat -c %s "$store/cas/$h")"
done >"$out/actions"

errors=$(grep -cE 'exception|Traceback' "$logs/server.log" || true)
[ "$errors" = 0 ] || die "server.log has $errors exceptions"
log "downloaded $n_out outputs ($reads Read/BatchReadBlobs calls: Read $(calls Read), BatchReadBlobs $(calls BatchReadBlobs)), all in the store"
log "PASS: $n_local actions uploaded over gRPC, $n_local/$n_local remote cache hits after clean (minimal and all); $(elapsed "$t_start") s"
