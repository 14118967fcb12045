#!/bin/bash
# Bazel 7.7.1 (Debian sid's bazel-bootstrap, in the sid chroot:
# tests/lib/bazel7.sh) builds tests/outputd/workspace in the guest against
# the reference REv2 server (tests/rev2/server.py) on loopback, as an
# unprivileged uid without a passwd entry, no output service yet:
#   1. a clean build with --remote_cache (uploads every cacheable action);
#   2. bazel clean, then --remote_download_minimal: every cacheable action
#      is a remote cache hit, only the no-remote action runs;
#   3. bazel clean, then --remote_download_all: every output is downloaded
#      and is byte-identical to tests/outputd/expected.sh's; the gcc-built
#      program runs.
# The server logs every blob it sends (--read-log); the steps' timings are
# printed. A casfs mount is bound into the chroot (/mnt/casfs), for the
# output-service test that builds on this one.
# timeout: 1200
. "$(dirname "$0")/../lib/guest.sh"
. "$CASFS_REPO/tests/lib/bazel7.sh"
if ! bazel7_available; then
	echo "SKIP: no Bazel in $BZ_CHROOT (tests/sid-chroot.sh installs it)"
	exit 77
fi
casfs_rev2_frame /tmp/casfs-bazel7
trap 'bazel7_teardown; casfs_rev2_teardown' EXIT
uid=${BZ_TEST_UID:-4242}
mkdir -p "$work/store"
"$CASFS_REPO/tests/outputd/expected.sh" "$work/expected"

t_start=$EPOCHREALTIME
elapsed() { awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
mem() { awk '/^(MemTotal|MemAvailable):/ { printf "%s %d MiB ", $1, $2 / 1024 }' /proc/meminfo; }
note "guest: $(nproc) CPUs, $(mem)"

casfs_load
CACHE=$(casfs_new_cache 256m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE" casfs "$MNT"
casfs_start_rev2 "$work/store" 0 --read-log "$work/reads.log"
: >"$work/reads.log"
RC=--remote_cache=grpc://127.0.0.1:$REV2_PORT

bazel7_timed "chroot setup (tmpfs, binds, workspace copy)" \
	bazel7_setup "$CASFS_REPO/tests/outputd/workspace"
bazel7_bind "$MNT" /mnt/casfs
fstype=$(bazel7_chroot awk '$2 == "/mnt/casfs" { print $3 }' /proc/mounts)
[ "$fstype" = casfs ] || fail "/mnt/casfs in the chroot is '$fstype', not casfs"
bazel7_user "$uid"

# run LOG LABEL BAZEL-ARGS...: bazel7 with its output in $work/LOG.log
# (printed on failure), timed.
run() {
	local log=$work/$1.log label=$2
	shift 2
	if ! bazel7_timed "$label" logged "$log" "$@"; then
		cat "$log"
		fail "$label failed"
	fi
	# Bazel's own view: analysis, then the command's elapsed time.
	local l
	while IFS= read -r l; do
		if [ -n "$l" ]; then note "  bazel: ${l#*INFO: }"; fi
	done <<<"$(grep -E 'INFO: (Analyzed|Elapsed)' "$log" || true)"
}
logged() {
	local log=$1
	shift
	bazel7 "$@" >"$log" 2>&1
}
# processes LOG: Bazel's "N processes: ..." summary line.
processes() {
	local out
	out=$(grep -E 'INFO: [0-9]+ process(es)?: ' "$work/$1.log" || true)
	echo "${out##*INFO: }"
}
# count LOG KIND: the number before KIND in that line (0 if absent).
count() {
	local line n
	line=$(processes "$1")
	n=$(sed -nE "s/.*[:,] ([0-9]+) $2([,.]| \\().*/\\1/p" <<<"$line")
	echo "${n:-0}"
}
bin() { echo "$BZ_CHROOT$(bazel7_output_base)/execroot/casfs_outputd/bazel-out/k8-fastbuild/bin"; }
reads() { grep -c . "$work/reads.log" || true; }

# Debian's build has no version stamp (bazel info release: "development
# version"; bazel version fails): ask dpkg.
version=$(bazel7_chroot dpkg-query -W -f '${Version}' bazel-bootstrap)
case $version in 7.7.1*) ;; *) fail "bazel-bootstrap $version is not 7.7.1" ;; esac
java() { bazel7_chroot java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -version >"$work/java.log" 2>&1; }
bazel7_timed "JVM start (java -version in the chroot)" java ||
	{ cat "$work/java.log"; fail "java does not start"; }
note "$(head -n 1 "$work/java.log")"
run info "Bazel $version: server start (first command: bazel info release)" info release
note "server pid $(bazel7_server_pid), output base $(bazel7_output_base)"

# 1. Clean build, uploading.
run build1 "clean build with --remote_cache (upload)" build "$RC" //:everything
note "build 1: $(processes build1)"
n_ac=$(find "$work/store/ac" -type f | wc -l)
n_cas=$(find "$work/store/cas" -type f | wc -l)
note "uploaded: $n_ac action results, $n_cas blobs; blobs read: $(reads)"
[ "$n_ac" -ge 6 ] || fail "only $n_ac action results uploaded"
[ "$(reads)" = 0 ] || fail "the upload build read blobs from the cache"
cmp "$work/expected/summary.txt" "$(bin)/summary.txt" || fail "build 1: summary.txt differs"
lines=$(bazel7_chroot sh -c 'ls /mnt/casfs >/dev/null && echo ok')
[ "$lines" = ok ] || fail "casfs not readable as uid $uid in the chroot"

# 2. Clean, then a minimal download: all cache hits but the no-remote one.
run clean2 "bazel clean" clean
[ ! -e "$(bin)" ] || fail "bazel clean left $(bin)"
r0=$(reads)
run build2 "clean + --remote_download_minimal build" build "$RC" --remote_download_minimal //:everything
hits=$(count build2 "remote cache hit")
note "build 2: $(processes build2); blobs read: $(($(reads) - r0)) (the no-remote action's inputs)"
[ "$hits" = "$n_ac" ] || fail "build 2: $hits remote cache hits, want $n_ac"
grep -qE "$n_ac remote cache hits?" "$work/build2.log" || fail "no '$n_ac remote cache hit' in Bazel's output"
[ ! -e "$(bin)/hello" ] || fail "build 2 downloaded hello (nothing needs it)"
cmp "$work/expected/summary.txt" "$(bin)/summary.txt" || fail "build 2: summary.txt differs"
sed "s/^/    /" "$work/reads.log" >"$work/reads-minimal.log"

# 3. Clean, then download everything; compare bytes.
run clean3 "bazel clean" clean
r0=$(reads)
run build3 "clean + --remote_download_all build" build "$RC" --remote_download_all //:everything
note "build 3: $(processes build3); blobs read: $(($(reads) - r0))"
[ "$(count build3 "remote cache hit")" = "$n_ac" ] || fail "build 3: not all cache hits"
n=0
while IFS= read -r -d '' f; do
	p=${f#"$work/expected/"}
	cmp "$f" "$(bin)/$p" || fail "$p differs from tests/outputd/expected.sh's"
	n=$((n + 1))
done < <(find "$work/expected" -type f -print0)
got=$(cd "$(bin)" && find . -type f | wc -l)
[ "$got" = $((n + 1)) ] || fail "bazel-bin has $got files, want $((n + 1)) ($n + hello)"
out=$(bazel7_chroot "$(bazel7_output_base)/execroot/casfs_outputd/bazel-out/k8-fastbuild/bin/hello" one two)
[ "$out" = "$(cat "$work/expected/hello_out.txt")" ] || fail "hello printed '$out'"
# Every blob of the outputs was read from the server (none came from
# anywhere else), but summary.txt's: its action is local only (no-remote).
while IFS= read -r -d '' f; do
	[ -s "$f" ] && [ "${f##*/}" != summary.txt ] || continue
	h=$(sha256sum "$f")
	grep -q "${h%% *}/" "$work/reads.log" || fail "${f#"$(bin)/"}: its blob was never read"
done < <(find "$(bin)" -type f -print0)
note "$n outputs + hello byte-identical; hello runs; every output blob was read over gRPC"

pid=$(bazel7_server_pid)
[ -z "$pid" ] || note "Bazel server: $(awk '/^VmHWM/ { printf "peak RSS %d MiB", $2 / 1024 }' "/proc/$pid/status")"
note "guest after the builds: $(mem); chroot /tmp: $(df -m --output=used "$BZ_CHROOT/tmp" | tail -n 1 | tr -d ' ') MiB used"
run shutdown "bazel shutdown" shutdown
echo "bazel 7.7.1 guest test passed in $(elapsed) s: $n_ac cached actions, $n_cas blobs"
