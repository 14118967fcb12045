#!/bin/bash
# Real Bazel outputs in casfs: the guest half of the Bazel test. On the
# host, tests/bazel/host-build.sh built tests/bazel/workspace with Debian's
# Bazel against an nginx HTTP cache, checked that a
# --remote_download_minimal rebuild downloads nothing, and wrote
# $CASFS_REPO/build/bazel/ (cache/, manifest, expected/, expect-exec).
# Here: nginx serves that cache read-only on loopback, casfs-helper
# fetches from it over Bazel's HTTP cache protocol, casfsctl stages the
# manifest (exec-root-relative paths) into casfs, and:
#   - staging, stat and the digest xattrs fetch nothing;
#   - the executable output, hard-linked elsewhere in casfs, runs from the
#     link (its first read is the exec) and prints what it printed on the
#     host; every executable output behaves as the host's copy;
#   - every staged file is byte-identical to the --remote_download_all
#     output, each distinct blob was fetched exactly once, no errors.
# timeout: 300
. "$(dirname "$0")/../lib/guest.sh"
H=$CASFS_REPO/helper
OUT=$CASFS_REPO/build/bazel
PORT=8090
for f in manifest expect-exec cache/ac cache/cas expected; do
	[ -e "$OUT/$f" ] ||
		fail "$OUT/$f is missing: run tests/bazel/host-build.sh $OUT on the host first"
done
[ -x "$H/casfs-helper" ] && [ -x "$H/casfsctl" ] || fail "helper not built (make -C helper)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || fail "nginx not installed"
work=/tmp/bazel-e2e
helper=
nginx_pid=
cleanup() {
	[ -n "$helper" ] && kill -9 "$helper" 2>/dev/null
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
	wait 2>/dev/null
	casfs_cleanup
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/nginx"
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=30" casfs "$MNT"
ROOT=$MNT/execroot

n_files=$(grep -c . "$OUT/manifest")
# Distinct non-empty blobs: an empty file is local in casfs, never fetched.
n_blobs=$(awk '$2 != 0 {print $1}' "$OUT/manifest" | sort -u | wc -l)
note "$n_files outputs, $n_blobs distinct non-empty blobs, $(du -sh "$OUT/cache/cas" | cut -f1) in the CAS"

# nginx: GET only, from the host's (read-only) cache directory. Workers
# run as root: the host tree may not be traversable for nobody.
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
user root root;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 128; }
http {
	access_log $work/nginx/access.log;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	server {
		listen 127.0.0.1:$PORT;
		root $OUT/cache;
		location /cas/ { limit_except GET { deny all; } }
		location / { return 404; }
	}
}
NGINX
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
nginx_pid=$!
up=
for _ in $(seq 100); do
	if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
		up=1
		break
	fi
	kill -0 "$nginx_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$up" ] || { cat "$work/nginx/error.log" >&2; fail "nginx did not start"; }
h1=$(awk '$2 != 0 {print $1; exit}' "$OUT/manifest")
[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data x "http://127.0.0.1:$PORT/cas/$h1")" = 403 ] ||
	fail "nginx accepts PUT"

"$H/casfs-helper" --cas "http://127.0.0.1:$PORT" --cache "$CACHE" --jobs 4 --timeout 20 \
	--stats-file /run/casfs/helper.stats 2>>"$work/helper.log" &
helper=$!
reg=
for _ in $(seq 100); do
	st=$("$H/casfsctl" stats 2>/dev/null) || st=
	if grep -Eq 'helper_registered +yes' <<<"$st"; then
		reg=1
		break
	fi
	sleep 0.1
done
[ -n "$reg" ] || { cat "$work/helper.log" >&2; fail "helper did not register"; }

note "stage the manifest"
"$H/casfsctl" stage "$ROOT" "$OUT/manifest"
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "staging fetched something"

# Metadata only: size, mode and digest of every file, nothing fetched.
while read -r h size mode path; do
	f=$ROOT/$path
	[ -f "$f" ] || fail "$path: not staged"
	[ "$(stat -c '%s %a' "$f")" = "$size ${mode#0}" ] ||
		fail "$path: stat says $(stat -c '%s %a' "$f"), manifest $size $mode"
	[ "$("$H/casfsctl" digest "$f" | cut -d' ' -f1-2)" = "$h $size" ] || fail "$path: digest"
done <"$OUT/manifest"
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "stat or digest fetched something"
note "stat and digest of $n_files files fetched nothing"

# The executable: hard-linked elsewhere in casfs and run from there first,
# so that its blob is fetched by the exec itself.
exe=$(sed -n 1p "$OUT/expect-exec")
want=$(tail -n +2 "$OUT/expect-exec")
[ -n "$exe" ] && [ -n "$want" ] || fail "bad $OUT/expect-exec"
mkdir -p "$MNT/elsewhere/bin"
ln "$ROOT/$exe" "$MNT/elsewhere/bin/tool"
[ "$(stat -c '%i %h' "$ROOT/$exe")" = "$(stat -c '%i %h' "$MNT/elsewhere/bin/tool")" ] ||
	fail "hard link is not the same inode"
[ "$(stat -c %h "$ROOT/$exe")" = 2 ] || fail "st_nlink of the executable is not 2"
got=$("$MNT/elsewhere/bin/tool") || fail "$exe (via a hard link) failed"
[ "$got" = "$want" ] || fail "$exe printed '$got', want '$want'"
[ "$(cd "$MNT/elsewhere/bin" && ./tool)" = "$want" ] || fail "$exe by relative path"
[ "$("$ROOT/$exe")" = "$want" ] || fail "$exe at its own path"
note "$exe ran from a hard link in casfs: ${got%%$'\n'*}"

# Every executable output behaves like the host's copy (no arguments).
while read -r h size mode path; do
	[ "$mode" = 0755 ] || continue
	rc=0
	a=$("$ROOT/$path" 2>&1) || rc=$?
	rc2=0
	b=$("$OUT/expected/$path" 2>&1) || rc2=$?
	[ "$a" = "$b" ] && [ $rc = $rc2 ] ||
		fail "$path: exit $rc and '$a' in casfs, exit $rc2 and '$b' on the host"
	note "$path runs (exit $rc)"
done <"$OUT/manifest"

note "compare every output with the --remote_download_all build"
while read -r h size mode path; do
	cmp "$ROOT/$path" "$OUT/expected/$path" || fail "$path differs"
done <"$OUT/manifest"
[ "$(ls "$CACHE/blobs" | wc -l)" = "$n_blobs" ] ||
	fail "$(ls "$CACHE/blobs" | wc -l) blobs in the cache, want $n_blobs"
# Kernel counters: one miss and one fetch per distinct blob (the two
# copies of gen share theirs), no errors anywhere.
kstat() { "$H/casfsctl" stats | sed -n '/^kernel/,/^helper/p' | awk -v k="$1" '$1 == k {print $2}'; }
"$H/casfsctl" stats | tee "$work/stats"
[ "$(kstat fetches)" = "$n_blobs" ] || fail "$(kstat fetches) fetches, want $n_blobs"
[ "$(kstat misses)" = "$n_blobs" ] || fail "$(kstat misses) misses, want $n_blobs"
! grep -Eq '^ +(errors[a-z_]*|timeouts|done_failed) +[1-9]' "$work/stats" || fail "fetch errors"
[ -z "$(ls -A "$CACHE/tmp")" ] || fail "helper left temp files"

note "again from the cache, page cache dropped"
sync
echo 3 >/proc/sys/vm/drop_caches
while read -r h size mode path; do
	cmp "$ROOT/$path" "$OUT/expected/$path" || fail "$path differs after drop_caches"
done <"$OUT/manifest"
[ "$(kstat fetches)" = "$n_blobs" ] || fail "re-read fetched again"
echo "bazel e2e passed: $n_files outputs, $n_blobs blobs fetched"
