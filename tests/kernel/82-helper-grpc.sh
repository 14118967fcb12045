#!/bin/bash
# casfs-helper's grpc:// backend end to end: readers on casfs, the real
# helper, the reference REv2 server (tests/rev2/server.py) on loopback in
# each of its fault modes. Every fault ends in the right bytes after a
# retry, or in EIO to the reader with a log line naming the blob; never in
# wrong bytes, a published bad blob, a hang past the timeout, or a crash.
# Runs on one kernel (CASFS_HELPER_GRPC_KERNEL, default Debian 12's 6.12):
# its subject is the helper's fault handling, about 6 minutes under TCG;
# the kernel's side of a fetch is covered on every kernel by 60-80.
# timeout: 1200
. "$(dirname "$0")/../lib/guest.sh"
casfs_only_on_kernel "${CASFS_HELPER_GRPC_KERNEL:-6.12.}" "userspace fault modes, minutes under TCG"
H=$CASFS_REPO/helper
[ -x "$H/casfs-helper" ] || fail "helper not built (make -C helper)"
PORT=9092
casfs_rev2_frame /tmp/grpc-e2e
mkdir -p "$work/store/cas"
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=20" casfs "$MNT"

# 24 small blobs (BatchReadBlobs) and 2 large ones (ByteStream.Read).
$PY - "$work" <<'PY'
import hashlib, os, random, sys
work = sys.argv[1]
rnd = random.Random(82)
lines = []
for i in range(26):
    n = rnd.choice([0, 1, 100, 4096, 65537]) if i < 24 else (1 << 20) + rnd.randrange(1 << 19)
    data = rnd.randbytes(n)
    h = hashlib.sha256(data).hexdigest()
    with open(f"{work}/store/cas/{h}", "wb") as f:
        f.write(data)
    lines.append(f"{h} {n} {'0755' if i % 7 == 0 else '0644'} d{i % 4}/f{i}\n")
open(f"{work}/files.manifest", "w").writelines(lines)
PY

# read_all DIR: 16 parallel readers over every file; each result goes to
# $work/got/<file> ("EIO" if the read failed). No read may outlast 60 s.
read_all() {
	local dir=$1
	rm -rf "$work/got"
	mkdir -p "$work/got"
	# shellcheck disable=SC2016
	cut -d' ' -f4 "$work/files.manifest" | xargs -P 16 -I{} sh -c '
		out=$2/got/$(echo "$1" | tr / _)
		if s=$(timeout 60 sha256sum < "$3/$1"); then
			echo "${s%% *}" > "$out"
		else
			echo EIO > "$out"
		fi' _ {} "$work" "$dir"
}

# expect DIR ok|eio [large-only]: check what the readers got.
expect() {
	local dir=$1 want=$2 scope=${3:-all} h size mode path got n=0
	while read -r h size mode path; do
		n=$((n + 1))
		got=$(cat "$work/got/$(echo "$path" | tr / _)")
		if [ "$want" = ok ] || { [ "$scope" = large ] && [ "$n" -le 24 ]; } ||
			[ "$size" = 0 ]; then
			[ "$got" = "$h" ] || fail "$dir/$path: got '$got', want $h"
		else
			[ "$got" = EIO ] || fail "$dir/$path: read succeeded ($got)"
			[ ! -e "$CACHE/blobs/$h" ] || fail "$path: a bad blob was published"
		fi
	done <"$work/files.manifest"
	[ -z "$(ls -A "$CACHE/tmp")" ] || fail "helper left temp files: $(ls "$CACHE/tmp")"
}

# run_mode NAME FAULT|none ok|eio [large] [helper args]
run_mode() {
	local name=$1 fault=$2 want=$3 scope=$4 t0 dt
	casfs_stop_rev2
	rm -f "$CACHE"/blobs/*
	if [ "$fault" = none ]; then
		casfs_start_rev2 "$work/store" "$PORT"
	else
		casfs_start_rev2 "$work/store" "$PORT" --fault "$fault"
	fi
	mkdir -p "$MNT/$name"
	"$H/casfsctl" stage "$MNT/$name" "$work/files.manifest"
	t0=$(date +%s)
	read_all "$MNT/$name"
	dt=$(($(date +%s) - t0))
	expect "$MNT/$name" "$want" "$scope"
	note "$name ($fault): $want ($scope files) in ${dt}s"
}

casfs_start_rev2 "$work/store" "$PORT"
casfs_start_helper "grpc://127.0.0.1:$PORT" --jobs 8 --timeout 10
grep -q "CAS capabilities: REv2 2" "$HELPER_LOG" || fail "no GetCapabilities at start-up"

run_mode plain none ok all
batches=$(grep -c 'BatchReadBlobs: done' "$REV2_LOG")
reads=$(grep -c ' Read: done' "$REV2_LOG")
small=$(head -n 24 "$work/files.manifest" | awk '$2 > 0 {print $1}' | sort -u | wc -l)
note "plain: $batches BatchReadBlobs calls for $small small blobs, $reads ByteStream reads"
[ "$batches" -lt "$small" ] || fail "no batching ($batches calls)"
[ "$reads" -ge 2 ] || fail "large blobs did not stream ($reads)"

run_mode truncate truncate:once ok all
grep -q "resuming at offset" "$HELPER_LOG" || fail "truncate: no resume"
run_mode rst rst:2 ok all
run_mode goaway goaway:100:2 ok all
run_mode unavailable unavailable:300:3 ok all
grep -q "UNAVAILABLE" "$HELPER_LOG" || fail "unavailable: not logged"
run_mode exhausted exhausted:200:3 ok all
run_mode corrupt corrupt eio all
grep -q "sha256 mismatch" "$HELPER_LOG" || fail "corrupt: no log line"
run_mode notfound notfound eio all
grep -q "NOT_FOUND" "$HELPER_LOG" || fail "notfound: no log line"
run_mode truncall "truncate@Read" eio large
# Slower than the helper's whole budget (10 s): the reader gets EIO when
# the helper gives up, well before the mount's timeout=20.
run_mode slow slow:30000 eio all
grep -q "DEADLINE_EXCEEDED" "$HELPER_LOG" || fail "slow: no deadline"

note "server restarted under a reader: the helper reconnects"
# A budget longer than the server's start-up under emulation.
casfs_stop_helper
casfs_start_helper "grpc://127.0.0.1:$PORT" --jobs 8 --timeout 60
casfs_stop_rev2
rm -f "$CACHE"/blobs/*
mkdir -p "$MNT/restart"
"$H/casfsctl" stage "$MNT/restart" "$work/files.manifest"
big=$(tail -n 1 "$work/files.manifest")
(sha256sum < "$MNT/restart/${big##* }" | cut -d' ' -f1 > "$work/restart.sum") &
reader=$!
sleep 2
casfs_start_rev2 "$work/store" "$PORT"
wait "$reader" || fail "the reader failed across the server restart"
[ "$(cat "$work/restart.sum")" = "${big%% *}" ] || fail "restart: wrong bytes"

kill -0 "$HELPER_PID" || fail "the helper died"
"$H/casfsctl" stats | grep -E 'fetch|error|retr' | sed -n 1,20p
echo "helper grpc e2e passed"
