#!/bin/bash
# Bazel 7.7.1 with casfs as its output tree: casfs-outputd serves the
# output service (--experimental_remote_output_service), casfs-helper
# fetches what is read, the reference REv2 server is the remote cache.
# Bazel runs in the sid chroot (tests/lib/bazel7.sh) as uid 4242, and so
# does casfs-outputd (outside the chroot; --bazel-root names the root as
# Bazel sees it). The workspace is tests/outputd/workspace plus `unread`,
# a 2 MiB output nothing reads. Checked:
#   - after an upload build and `bazel clean`, a build with the output
#     service: bazel-out is a symlink into casfs; every output has its size
#     and mode; no output blob was fetched but the inputs of the local
#     (no-remote) action, which read them through casfs; afterwards every
#     output is byte-identical to tests/outputd/expected.sh's, each blob is
#     fetched once, the gcc-built program runs;
#   - no-op rebuilds execute nothing and fetch nothing: with the server
#     running, after `bazel shutdown`, after restarting casfs-outputd;
#   - an edited source rebuilds only what depends on it;
#   - a blob deleted from the CAS between builds: the next build succeeds
#     with correct outputs;
#   - `bazel clean` empties the output path; the next build stages again;
#   - another uid is refused (PERMISSION_DENIED) and changes nothing;
#   - a plain --remote_download_minimal build and back (with a `bazel
#     shutdown` before coming back: see step 8); the way back fetches
#     nothing.
# Runs on one kernel (CASFS_BAZEL7_KERNEL, default the newest test kernel,
# 7.x): Bazel under TCG takes minutes, and the kernel side of what it does
# is covered on every kernel by the other tests.
# timeout: 1500
. "$(dirname "$0")/../lib/guest.sh"
. "$CASFS_REPO/tests/lib/bazel7.sh"
casfs_only_on_kernel "${CASFS_BAZEL7_KERNEL:-7.}" "Bazel under TCG takes minutes"
bazel7_available || { echo "SKIP: no Bazel in $BZ_CHROOT (tests/sid-chroot.sh installs it)"; exit 77; }
H=$CASFS_REPO/helper
[ -x "$H/casfs-outputd" ] && [ -x "$H/casfs-helper" ] || fail "helper/ not built (make -C helper)"

casfs_rev2_frame /tmp/casfs-bazel-outputd
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
t_start=$EPOCHREALTIME
elapsed() { awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$work/store"
"$CASFS_REPO/tests/outputd/expected.sh" "$work/expected"
# unread.bin: what the appended genrule writes.
awk 'BEGIN { for (i = 0; i < 32768; i++) printf "%063d\n", i }' >"$work/expected/unread.bin"

casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=60" casfs "$MNT"
chmod 0755 "$MNT"
mkdir "$MNT/outputs"
chown "$uid:$uid" "$MNT/outputs"
casfs_start_rev2 "$work/store" 0 --read-log "$work/reads.log"
: >"$work/reads.log"
casfs_start_helper "grpc://127.0.0.1:$REV2_PORT"
RC=--remote_cache=grpc://127.0.0.1:$REV2_PORT

bazel7_setup "$CASFS_REPO/tests/outputd/workspace"
cat >>"$BZ_HOST_WS/BUILD" <<'EOF'

# 95-bazel-outputd.sh: 2 MiB nothing reads, so it must never be fetched.
genrule(
    name = "unread",
    outs = ["unread.bin"],
    cmd = "awk 'BEGIN { for (i = 0; i < 32768; i++) printf \"%063d\\n\", i }' >$@",
)
EOF
bazel7_bind "$MNT" /mnt/casfs
bazel7_user "$uid"
TARGETS=(//:everything //:unread)

# casfs-outputd as the user, on loopback port OD_PORT.
OD_LOG=$work/outputd.log
start_outputd() {
	local port=${1:-0} _ line
	setpriv "--reuid=$uid" "--regid=$uid" --clear-groups \
		"$H/casfs-outputd" --root "$MNT/outputs" --bazel-root /mnt/casfs/outputs \
		--listen "grpc://127.0.0.1:$port" --cas "grpc://127.0.0.1:$REV2_PORT" \
		--cas-timeout 20 --verbose >>"$OD_LOG" 2>&1 &
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

run() {
	local log=$work/$1.log label=$2
	shift 2
	if ! bazel7_timed "$label" bazel7 "$@" >"$log" 2>&1; then
		cat "$log"
		echo "--- casfs-outputd:"
		cat "$OD_LOG"
		fail "$label failed"
	fi
}
processes() {
	local out
	out=$(grep -E 'INFO: [0-9]+ process(es)?[:.]' "$work/$1.log" || true)
	echo "${out##*INFO: }"
}
count() {
	local line n
	line=$(processes "$1")
	n=$(sed -nE "s/.*[:,] ([0-9]+) $2([,.]| \\().*/\\1/p" <<<"$line")
	echo "${n:-0}"
}
# executed LOG: actions that ran or were looked up remotely (not internal).
executed() {
	local line n=0 k
	line=$(processes "$1")
	for k in "remote cache hit" linux-sandbox processwrapper-sandbox local remote; do
		n=$((n + $(count "$1" "$k")))
	done
	echo "$n"
}
reads() { grep -c . "$work/reads.log" || true; }
execroot=$BZ_CHROOT$(bazel7_output_base)/execroot/casfs_outputd
bin() { echo "$execroot/bazel-out/k8-fastbuild/bin"; }
sha() { local h; h=$(sha256sum "$1"); echo "${h%% *}"; }

# 1. Upload everything, then forget it locally.
run up "upload build (--remote_cache, no output service)" build "$RC" "${TARGETS[@]}"
n_ac=$(find "$work/store/ac" -type f | wc -l)
note "uploaded $n_ac action results, $(find "$work/store/cas" -type f | wc -l) blobs"
[ "$n_ac" -ge 7 ] || fail "only $n_ac action results"
run clean0 "bazel clean" clean

# 2. The build with the output service.
r0=$(reads)
run os1 "clean build with the output service" build "$RC" "${OS[@]}" "${TARGETS[@]}"
note "output-service build: $(processes os1)"
[ "$(count os1 "remote cache hit")" = "$n_ac" ] || fail "want $n_ac remote cache hits"
link=$(readlink "$execroot/bazel-out")
case $link in /mnt/casfs/outputs/*) ;; *) fail "bazel-out -> '$link', not into casfs" ;; esac
OUTPATH=$MNT/outputs/${link#/mnt/casfs/outputs/}
B=$OUTPATH/k8-fastbuild/bin
[ -d "$B" ] || fail "no $B"
build_reads=$(($(reads) - r0))
# What the local action read (its inputs) may have been fetched; nothing
# else: not hello, not unread.bin.
xhex() { $PY -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.casfs.sha256hex").decode())' "$1"; }
for f in hello unread.bin; do
	h=$(xhex "$B/$f")
	[ ${#h} = 64 ] || fail "$f has no digest in casfs"
	! grep -q "$h" "$work/reads.log" || fail "$f was fetched during the build"
done
note "blobs fetched during the build: $build_reads (the no-remote action's inputs)"
cmp "$work/expected/summary.txt" "$B/summary.txt" || fail "summary.txt (read its inputs through casfs) differs"
# Sizes and modes, then bytes; each blob fetched once.
n=0
while IFS= read -r -d '' f; do
	p=${f#"$work/expected/"}
	[ -f "$B/$p" ] || fail "$p is missing in casfs"
	[ "$(stat -c %s "$B/$p")" = "$(stat -c %s "$f")" ] || fail "$p: wrong size"
	m=$(stat -c %a "$B/$p")
	# Staged outputs are 0555 (Bazel chmods them so); summary.txt is the
	# local action's, copied in by Bazel across filesystems and left 0544.
	if [ "$p" = summary.txt ]; then
		case $m in 544 | 555) ;; *) fail "$p: mode $m" ;; esac
	else
		[ "$m" = 555 ] || fail "$p: mode $m, want 555"
	fi
	n=$((n + 1))
done < <(find "$work/expected" -type f -print0)
[ "$(stat -c %a "$B/hello")" = 555 ] || fail "hello: mode $(stat -c %a "$B/hello")"
out=$(setpriv "--reuid=$uid" "--regid=$uid" --clear-groups "$B/hello" one two)
[ "$out" = "$(cat "$work/expected/hello_out.txt")" ] || fail "hello printed '$out'"
while IFS= read -r -d '' f; do
	p=${f#"$work/expected/"}
	cmp "$f" "$B/$p" || fail "$p differs from the expected bytes"
done < <(find "$work/expected" -type f -print0)
dups=$(cut -d' ' -f2 "$work/reads.log" | sort | uniq -d)
[ -z "$dups" ] || fail "blobs fetched more than once: $dups"
note "$n outputs + hello: sizes, modes 0555 and bytes right, each blob fetched once; hello runs"

# 3. No-op rebuilds: running server, after shutdown, after an outputd restart.
noop() {
	local r
	r=$(reads)
	run "$1" "$2" build "$RC" "${OS[@]}" "${TARGETS[@]}"
	[ "$(executed "$1")" = 0 ] || fail "$2 executed: $(processes "$1")"
	[ "$(reads)" = "$r" ] || fail "$2 fetched $(($(reads) - r)) blobs"
}
noop noop1 "no-op rebuild"
run shut1 "bazel shutdown" shutdown
noop noop2 "no-op rebuild after bazel shutdown"
stop_outputd
start_outputd "$OD_PORT"
noop noop3 "no-op rebuild after restarting casfs-outputd"

# 4. An edited source: only hello_bin (twice: the target and the exec
# configuration, hello_out uses it as a tool), hello_out and summary run
# again; the other outputs are not even re-staged (same kernel version).
vers() {
	$PY - "$B" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["CASFS_REPO"], "tests/kernel/py"))
import casfs_uapi as U
for p in ("greeting.txt", "numbers.txt", "unread.bin", "tree/d1/sub/f1.txt"):
    print(p, U.state_full(os.path.join(sys.argv[1], p))[3])
EOF
}
v0=$(vers)
sed -i 's/gcc-built test program/edited program/' "$BZ_HOST_WS/src/hello.c"
run edit "rebuild after editing src/hello.c" build "$RC" "${OS[@]}" "${TARGETS[@]}"
note "after the edit: $(processes edit)"
[ "$(executed edit)" = 4 ] || fail "the edit ran $(executed edit) actions, want 4"
[ "$(vers)" = "$v0" ] || fail "outputs that do not depend on hello.c changed: $v0 / $(vers)"
grep -q "edited program" "$B/hello_out.txt" || fail "hello_out.txt not rebuilt"
cmp "$work/expected/numbers.txt" "$B/numbers.txt" || fail "numbers.txt changed"

# 5. A blob the CAS lost between builds.
h=$(sha "$work/expected/numbers.txt")
rm "$work/store/cas/$h"
run lost "build after the CAS lost numbers.txt's blob" build "$RC" "${OS[@]}" "${TARGETS[@]}"
note "after the loss: $(processes lost)"
cmp "$work/expected/numbers.txt" "$B/numbers.txt" || fail "numbers.txt wrong after the loss"

# 6. Another uid: refused, changes nothing.
before=$(find "$OUTPATH" | wc -l)
cat >"$work/other.py" <<'EOF'
import sys
import grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
bad = 0
base = sys.argv[2].encode()
for m, req in (("Clean", b"\x0a" + bytes([len(base)]) + base),
               ("StartBuild", b"\x08\x01")):
    try:
        ch.unary_unary("/bazel_output_service.BazelOutputService/" + m)(req, timeout=20)
        print(m, "was served"); bad += 1
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.PERMISSION_DENIED:
            print(m, e.code()); bad += 1
sys.exit(bad)
EOF
setpriv --reuid=4243 --regid=4243 --clear-groups $PY "$work/other.py" "$OD_PORT" "${OUTPATH##*/}" ||
	fail "another uid was not refused"
[ "$(find "$OUTPATH" | wc -l)" = "$before" ] || fail "another uid's calls changed the output path"
note "uid 4243: PERMISSION_DENIED, nothing changed"

# 7. bazel clean empties the output path; the next build stages again.
# (clean needs the output service flags, as it takes build's from a
# bazelrc: without them Bazel does not call Clean; and 7.7.1 refuses the
# output service flag without --remote_cache, for clean too.)
run clean1 "bazel clean" clean "$RC" "${OS[@]}"
left=$(find "$OUTPATH" -mindepth 1 | wc -l)
if [ "$left" != 0 ]; then
	tail -n 30 "$OD_LOG"
	find "$OUTPATH" -mindepth 1 -maxdepth 3
	fail "bazel clean left $left entries in the output path"
fi
run os2 "build after bazel clean" build "$RC" "${OS[@]}" "${TARGETS[@]}"
[ -f "$B/unread.bin" ] || fail "not staged again after bazel clean"
cmp "$work/expected/greeting.txt" "$B/greeting.txt" || fail "greeting.txt wrong after clean"

# 8. Off and on again: a plain minimal build, then the output service.
r0=$(reads)
run min "--remote_download_minimal build without the output service" \
	build "$RC" --remote_download_minimal "${TARGETS[@]}"
# Bazel 7.7.1's server, kept running from the plain build, crashes on the
# way back ("Cannot get last change time": its start-of-build check asks
# BatchStat about outputs it holds as changed; upstream issue 29405, fixed
# in 9.2), whatever the service answers for them. A new server takes the
# action cache path instead: shut it down between the two.
r1=$(reads)
note "the plain build: $(processes min); fetched $((r1 - r0)) blobs"
run shut3 "bazel shutdown" shutdown
run os3 "back to the output service" build "$RC" "${OS[@]}" "${TARGETS[@]}"
sw=$(($(reads) - r0))
note "back: $(processes os3); fetched $(($(reads) - r1)) blobs"
# What the plain build downloads is Bazel's own business (the local
# action's inputs, and what 7.7.1 takes as changed when bazel-out stops
# pointing into casfs); the way back must fetch nothing.
if [ "$(($(reads) - r1))" != 0 ]; then
	grep -E 'BatchStat: [0-9]+ paths' "$OD_LOG" | tail -n 20
	tail -n $(($(reads) - r1)) "$work/reads.log"
	fail "switching back to the output service fetched blobs"
fi
[ -f "$B/unread.bin" ] || fail "outputs missing after switching back"
cmp "$work/expected/unread.bin" "$B/unread.bin" || fail "unread.bin wrong after switching back"

run shutdown "bazel shutdown" shutdown
grep -E 'ERROR|AddressSanitizer' "$OD_LOG" && fail "casfs-outputd logged errors"
echo "bazel with casfs-outputd passed in $(elapsed) s"
