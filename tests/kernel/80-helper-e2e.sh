#!/bin/bash
# casfs-helper and casfsctl end to end, with the real daemon: the file://
# backend, Bazel's HTTP cache protocol served by Debian's nginx on
# loopback, corrupt/404/over-long bodies, SIGKILL of the helper with 16
# readers waiting, the server going down, prefetch, digest and stats.
# timeout: 900
. "$(dirname "$0")/../lib/guest.sh"
H=$CASFS_REPO/helper
[ -x "$H/casfs-helper" ] || fail "helper not built (make -C helper)"
work=/tmp/e2e
cas=$work/cas
helper=
HELPER_LOG=$work/helper.log
cleanup() {
	[ -n "$helper" ] && kill -9 "$helper" 2>/dev/null
	casfs_stop_nginx
	wait 2>/dev/null
	casfs_cleanup
	rm -rf "$work"
}
trap cleanup EXIT
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=15" casfs "$MNT"
mkdir -p "$cas/cas"

# The CAS content and manifests: good files, and the bad cases.
$PY - "$work" <<'PY'
import hashlib, os, random, sys
work = sys.argv[1]
rnd = random.Random(80)
def put(name, data, stored=None):
    h = hashlib.sha256(data).hexdigest()
    with open(f"{work}/cas/cas/{h}", "wb") as f:
        f.write(data if stored is None else stored)
    return f"{h} {len(data)} 0644 {name}\n"
good = [put(f"d{i % 3}/f{i}", os.urandom(rnd.choice([1, 100, 4096, 65537, 1 << 20, 3 << 20])))
        for i in range(24)]
open(f"{work}/good.manifest", "w").writelines(good)
open(f"{work}/prefetch.manifest", "w").writelines(
    put(f"p/f{i}", os.urandom(10000 + i)) for i in range(40))
slow = os.urandom(600 << 10)
open(f"{work}/slow.manifest", "w").write(put("slow", slow))
bad = {
    "corrupt": put("corrupt", b"A" * 5000, stored=b"B" * 5000),
    "long": put("long", b"C" * 5000, stored=b"C" * 5001),
    "short": put("short", b"D" * 5000, stored=b"D" * 4999),
    "missing": "%s 10 0644 missing\n" % hashlib.sha256(b"missing!!!").hexdigest(),
}
for k, v in bad.items():
    open(f"{work}/{k}.manifest", "w").write(v)
PY
chmod -R a+rX "$work"

casfs_start_nginx "$cas" 8080

start_helper() {
	casfs_start_helper "$1" --jobs 8 --timeout 8
	helper=$HELPER_PID
}

# check_tree DIR MANIFEST: every file reads back with its digest.
check_tree() {
	local dir=$1 manifest=$2 h size mode path
	while read -r h size mode path; do
		[ "$(sha256sum < "$dir/$path" | cut -d' ' -f1)" = "$h" ] ||
			fail "$path: wrong bytes"
	done <"$manifest"
}

note "http backend (nginx, Bazel HTTP cache layout)"
start_helper http://127.0.0.1:8080
mkdir -p "$MNT/http"
"$H/casfsctl" stage "$MNT/http" "$work/good.manifest"
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "staging fetched something"
dg=$("$H/casfsctl" digest "$MNT/http/d0/f0") || dg=
[[ $dg == "$(sed -n 1p "$work/good.manifest" | cut -d' ' -f1) "* ]] ||
	fail "casfsctl digest"
check_tree "$MNT/http" "$work/good.manifest"
[ "$(ls "$CACHE/blobs" | wc -l)" = "$(cut -d' ' -f1 "$work/good.manifest" | sort -u | wc -l)" ] ||
	fail "blob count after reading"

for k in corrupt long short missing; do
	mkdir -p "$MNT/bad-$k"
	"$H/casfsctl" stage "$MNT/bad-$k" "$work/$k.manifest"
	if cat "$MNT/bad-$k/$k" >/dev/null 2>&1; then
		fail "$k: read succeeded"
	fi
	h=$(cut -d' ' -f1 "$work/$k.manifest")
	[ ! -e "$CACHE/blobs/$h" ] || fail "$k: a bad blob was published"
	note "$k body: EIO, nothing published"
done
[ -z "$(ls -A "$CACHE/tmp")" ] || fail "helper left temp files: $(ls "$CACHE/tmp")"

note "SIGKILL the helper with 16 readers waiting on a slow fetch"
kill "$helper"
wait "$helper" 2>/dev/null || true
start_helper http://127.0.0.1:8080/slow
mkdir -p "$MNT/slow"
"$H/casfsctl" stage "$MNT/slow" "$work/slow.manifest"
want=$(cut -d' ' -f1 "$work/slow.manifest")
pids=()
for i in $(seq 16); do
	(sha256sum < "$MNT/slow/slow" | cut -d' ' -f1 > "$work/reader.$i") &
	pids+=($!)
done
sleep 2
kill -9 "$helper"
wait "$helper" 2>/dev/null || true
start_helper http://127.0.0.1:8080
for p in "${pids[@]}"; do
	wait "$p" || fail "a reader failed after the helper restart"
done
for i in $(seq 16); do
	[ "$(cat "$work/reader.$i")" = "$want" ] || fail "reader $i got wrong bytes"
done
note "all 16 readers got the right bytes"

note "prefetch"
mkdir -p "$MNT/pre"
"$H/casfsctl" stage "$MNT/pre" "$work/prefetch.manifest"
"$H/casfsctl" prefetch --jobs 8 "$MNT/pre"
while read -r h _; do
	[ -e "$CACHE/blobs/$h" ] || fail "prefetch missed $h"
done <"$work/prefetch.manifest"
"$H/casfsctl" stats

note "file:// backend"
kill "$helper"
wait "$helper" 2>/dev/null || true
rm -f "$CACHE"/blobs/*
start_helper "file://$cas"
mkdir -p "$MNT/file"
"$H/casfsctl" stage "$MNT/file" "$work/good.manifest"
check_tree "$MNT/file" "$work/good.manifest"

note "server down: EIO within the timeout"
kill "$helper"
wait "$helper" 2>/dev/null || true
casfs_stop_nginx
start_helper http://127.0.0.1:8080
rm -f "$CACHE"/blobs/*
t0=$(date +%s)
if cat "$MNT/http/d1/f1" >/dev/null 2>&1; then
	fail "read with the server down succeeded"
fi
dt=$(($(date +%s) - t0))
[ "$dt" -le 17 ] || fail "EIO took ${dt}s (timeout=15)"
note "server down: EIO after ${dt}s"
echo "helper e2e passed"
