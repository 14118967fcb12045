#!/bin/bash
# tests/bazel/host-build.sh OUTDIR: the host half of the "real Bazel" test
# (the guest half is tests/kernel/90-bazel.sh, which reads OUTDIR).
#
# Builds tests/bazel/workspace with Debian's bazel-bootstrap against a
# Bazel HTTP remote cache served by nginx (dav module) on loopback:
#
#   1. clean, build with --remote_cache: every action runs locally and
#      uploads its outputs (PUT /cas/<sha256>) and result (PUT /ac/<sha256>)
#   2. clean, build with --remote_download_minimal: every action must be a
#      remote cache hit and no output may land in bazel-out
#   3. clean, build with --remote_download_outputs=all: every output is
#      downloaded; they are copied as the expected bytes
#
# and writes:
#
#   OUTDIR/cache/{cas,ac}/   the remote cache (nginx's root)
#   OUTDIR/manifest          `ac2manifest OUTDIR/cache/ac`: casfs manifest
#                            of every output, paths relative to the exec root
#   OUTDIR/expected/<path>   the outputs of build 3, same relative paths
#   OUTDIR/expect-exec       line 1: path of the executable output to run;
#                            the rest: what it must print
#   OUTDIR/logs/             bazel's and nginx's logs
#   OUTDIR/bazel-root/       Bazel's --output_user_root (kept: re-runs are
#                            faster; nothing of it is used by the guest)
#
# The outputs are checked against the manifest here too (same set of paths,
# same sha256 and size), so the guest test starts from a known-good state.
# Idempotent: the cache, expected/ and the manifest are made afresh each
# run. Offline: the workspace has no external repositories.
#
# Needs: bazel-bootstrap (4.2.3) with default-jdk-headless, nginx-light
# (dav module), curl, python3, gcc, and what `make -C tests/progs
# ac2manifest` needs (protobuf-c-compiler, libprotobuf-c-dev, libssl-dev).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ $# = 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
t_start=$(date +%s.%N)

log() { echo "host-build: $*"; }
die() { echo "host-build: FAIL: $*" >&2; exit 1; }

for c in bazel java nginx curl python3 gcc make; do
	command -v "$c" >/dev/null || die "$c not found (tests/install-deps.sh)"
done

mkdir -p "$1"
out=$(cd "$1" && pwd)
ws=$out/ws
ngx=$out/nginx
logs=$out/logs
cache=$out/cache
root=$out/bazel-root

# --- ac2manifest (host binary) ---------------------------------------------
make -s -C "$top/tests/progs" O="$top/build/tests" "$top/build/tests/ac2manifest"
ac2manifest=$top/build/tests/ac2manifest

# --- fresh state -------------------------------------------------------------
rm -rf "$ws" "$ngx" "$logs" "$cache" "$out/expected" "$out/manifest" \
	"$out/expect-exec" "$out/manifest.tmp"
mkdir -p "$ngx" "$logs" "$cache/cas" "$cache/ac" "$root"
# A copy of the workspace, so that Bazel writes nothing into the source
# tree (and a stale copy from an older run never matters).
cp -r "$here/workspace" "$ws"

nginx_pid=
bazel_started=
cleanup() {
	local rc=$?
	if [ -n "$bazel_started" ]; then
		(cd "$ws" && bazel --nohome_rc --output_user_root="$root" shutdown) >/dev/null 2>&1 || true
	fi
	if [ -n "$nginx_pid" ]; then
		kill "$nginx_pid" 2>/dev/null || true
		wait "$nginx_pid" 2>/dev/null || true
	fi
	[ $rc = 0 ] || echo "host-build: failed; logs in $logs" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- nginx: Bazel's HTTP cache protocol over WebDAV PUT ----------------------
# Workers run as the invoking user (as root, nginx would otherwise switch
# them to nobody, who cannot write the cache).
start_nginx() {
	local port=$1 user=
	[ "$(id -u)" != 0 ] || user="user root root;"
	mkdir -p "$ngx/body"
	cat >"$ngx/nginx.conf" <<NGINX
daemon off;
$user
worker_processes 1;
pid $ngx/nginx.pid;
error_log $logs/nginx-error.log;
events { worker_connections 256; }
http {
	access_log $logs/nginx-access.log;
	client_body_temp_path $ngx/body;
	proxy_temp_path $ngx/proxy;
	fastcgi_temp_path $ngx/fastcgi;
	uwsgi_temp_path $ngx/uwsgi;
	scgi_temp_path $ngx/scgi;
	client_max_body_size 0;
	server {
		listen 127.0.0.1:$port;
		root $cache;
		location /cas/ {
			dav_methods PUT;
			create_full_put_path on;
			dav_access user:rw group:r all:r;
		}
		location /ac/ {
			dav_methods PUT;
			create_full_put_path on;
			dav_access user:rw group:r all:r;
		}
		location / { return 404; }
	}
}
NGINX
	nginx -p "$ngx" -c "$ngx/nginx.conf" -e "$logs/nginx-error.log" &
	nginx_pid=$!
	for _ in $(seq 100); do
		kill -0 "$nginx_pid" 2>/dev/null || { wait "$nginx_pid" || true; nginx_pid=; return 1; }
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
		sleep 0.05
	done
	return 1
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=
for _ in 1 2 3 4 5; do
	p=$(free_port)
	if start_nginx "$p"; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { cat "$logs/nginx-error.log" >&2 || true; die "nginx did not start"; }
log "nginx (pid $nginx_pid) serving $cache on 127.0.0.1:$port"

# --- bazel -------------------------------------------------------------------
. "$(dirname "$0")/lib.sh"
bazel_remote "http://127.0.0.1:$port"

# processes LOG: bazel's process summary ("12 processes: 1 internal, 11 local.")
processes() {
	grep -E '^INFO: [0-9]+ process(es)?: ' "$1" | tail -n 1 | sed -E 's/^INFO: //; s/\.$//'
}
# count LOG KIND: how many processes of that kind ("local", "remote cache hit", ...)
count() {
	processes "$1" | tr ',:' '\n' | sed -E 's/^ +//' |
		awk -v k="$2" '{ n = $1; $1 = ""; sub(/^ /, ""); if ($0 == k) s += n } END { print s + 0 }'
}

build upload
execroot=$(bz info --noshow_progress execution_root 2>>"$logs/upload.log")
[ -d "$execroot" ] || die "no execution root ($execroot)"
log "upload: $(processes "$logs/upload.log")"
n_local=$(count "$logs/upload.log" local)
[ "$n_local" -gt 0 ] || die "the first build ran nothing locally: $(processes "$logs/upload.log")"
n_ac=$(find "$cache/ac" -type f | wc -l)
[ "$n_ac" = "$n_local" ] ||
	die "$n_local actions ran, but the cache holds $n_ac action results"

# --- the Builds-without-the-Bytes build --------------------------------------
build minimal --remote_download_minimal
log "minimal: $(processes "$logs/minimal.log")"
hits=$(count "$logs/minimal.log" "remote cache hit")
other=$(processes "$logs/minimal.log" | sed -E 's/^[0-9]+ process(es)?: //' | tr ',' '\n' |
	sed -E 's/^ +//' | grep -Ev '^[0-9]+ (internal|remote cache hit)$' || true)
[ -z "$other" ] || die "minimal build: not all remote cache hits: $(processes "$logs/minimal.log")"
[ "$hits" = "$n_local" ] || die "minimal build: $hits remote cache hits, want $n_local"
left=$(find "$execroot/bazel-out/" -path '*/bin/*' ! -type d | sed "s|^$execroot/||")
[ -z "$left" ] || die "minimal build left outputs in bazel-out: $left"

# --- the manifest ------------------------------------------------------------
"$ac2manifest" "$cache/ac" >"$out/manifest.tmp" 2>"$logs/ac2manifest.log" ||
	{ cat "$logs/ac2manifest.log" >&2; die "ac2manifest"; }
cat "$logs/ac2manifest.log"
n_files=$(wc -l <"$out/manifest.tmp")
[ "$n_files" -gt 0 ] || die "empty manifest"

# --- the expected bytes --------------------------------------------------------
build all --remote_download_outputs=all
log "all: $(processes "$logs/all.log")"
[ "$(count "$logs/all.log" "remote cache hit")" = "$n_local" ] ||
	die "download-all build: not all remote cache hits: $(processes "$logs/all.log")"
mkdir -p "$out/expected"
(cd "$execroot" && find bazel-out/ -path '*/bin/*' -type f | sort) >"$logs/outputs.txt"
cut -d' ' -f4- "$out/manifest.tmp" | sort >"$logs/manifest-paths.txt"
if ! cmp -s "$logs/outputs.txt" "$logs/manifest-paths.txt"; then
	diff "$logs/outputs.txt" "$logs/manifest-paths.txt" >&2 || true
	die "the outputs of the build (<) and the manifest (>) differ"
fi
(cd "$execroot" && tar -cf - -T "$logs/outputs.txt") | (cd "$out/expected" && tar -xf -)
chmod -R u+w "$out/expected"
# Every expected file against its manifest line.
while read -r h size mode path; do
	f=$out/expected/$path
	[ "$(stat -c %s "$f")" = "$size" ] || die "$path: size differs from the manifest"
	[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$h" ] || die "$path: sha256 differs from the manifest"
	if [ "$mode" = 0755 ]; then
		[ -x "$f" ] || die "$path: executable in the manifest, not in the build"
	fi
done <"$out/manifest.tmp"

# --- the executable to run in the guest ----------------------------------------
exe=bazel-out/k8-fastbuild/bin/hello
grep -q " 0755 $exe\$" "$out/manifest.tmp" || die "$exe is not an executable in the manifest"
want=$(printf '%s\n' "hello from a Bazel output on casfs" "fib(90) = 2880067194370816120")
got=$("$out/expected/$exe")
[ "$got" = "$want" ] || die "$exe printed '$got'"
printf '%s\n%s\n' "$exe" "$got" >"$out/expect-exec"

chmod -R a+rX "$cache" "$out/expected"
mv "$out/manifest.tmp" "$out/manifest"
log "$n_files outputs of $n_local actions, $(du -sh "$cache" | cut -f1) in the cache"
log "done in $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t_start" "$(date +%s.%N)") s: $out"
