# shellcheck shell=bash
# Helpers for kernel tests (run inside the QEMU guest as root, see
# tests/README.md). A test sources this, calls casfs_setup, and uses
# $MNT (a fresh casfs mount) and $CACHE (its cache directory on tmpfs).
# Everything is undone on exit, whatever happens.

set -euo pipefail
PY=/usr/bin/python3

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "  - $*"
}

# casfs_only_on_kernel PREFIX WHY: skip the test (exit 77) unless the
# guest's kernel release starts with PREFIX. For the tests whose subject is
# userspace (a daemon, Bazel) and that take minutes under TCG: the kernel
# paths they use are covered on every kernel by the other tests.
casfs_only_on_kernel() {
	case $(uname -r) in
	"$1"*) ;;
	*)
		echo "SKIP: runs on the $1* kernel only ($2)"
		exit 77
		;;
	esac
}

casfs_load() {
	if ! grep -q '^casfs ' /proc/modules; then
		insmod "$CASFS_KO"
	fi
}

casfs_unload() {
	if grep -q '^casfs ' /proc/modules; then
		rmmod casfs
	fi
}

# A fresh root-owned cache directory on its own tmpfs, so that statfs
# and ENOSPC tests see only casfs's own usage.
casfs_new_cache() {
	local dir size=${1:-512m}
	dir=$(mktemp -d /tmp/casfs-cache.XXXXXX)
	mount -t tmpfs -o "size=$size,mode=0755" casfs-cache "$dir"
	echo "$dir"
}

casfs_cleanup() {
	local m
	# Unmount casfs mounts first (they pin their cache directories).
	for m in $(awk '$3 == "casfs" {print $2}' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	for m in $(awk '$1 == "casfs-cache" || $1 == "casfs-ref" {print $2}' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
		rmdir "$m" 2>/dev/null || true
	done
	casfs_unload
}

casfs_setup() {
	trap casfs_cleanup EXIT
	casfs_load
	CACHE=$(casfs_new_cache "${1:-512m}")
	MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
	mount -t casfs -o "cache=$CACHE" casfs "$MNT"
	export CACHE MNT
}

# A tmpfs to compare against, same size.
casfs_ref_tmpfs() {
	local dir
	dir=$(mktemp -d /tmp/casfs-ref.XXXXXX)
	mount -t tmpfs -o size=512m casfs-ref "$dir"
	echo "$dir"
}

# casfs_start_nginx ROOT PORT [EXTRA_SERVER_DIRECTIVES]: serve ROOT on
# 127.0.0.1:PORT (Bazel's HTTP cache layout: ROOT/cas/<sha256>) in the
# background, with /slow/ as a rate-limited alias of the same tree. Sets
# NGINX_PID; casfs_stop_nginx stops it.
casfs_start_nginx() {
	local root=$1 port=$2 extra=${3:-} dir
	dir=$(mktemp -d /tmp/casfs-nginx.XXXXXX)
	cat >"$dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	server {
		listen 127.0.0.1:$port;
		root $root;
		location /slow/ { alias $root/; limit_rate 100k; }
		$extra
	}
}
NGINX
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
	NGINX_PID=$!
	NGINX_DIR=$dir
	local _
	for _ in $(seq 100); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	fail "nginx did not start: $(cat "$dir/error.log")"
}

casfs_stop_nginx() {
	if [ -n "${NGINX_PID:-}" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=
		rm -rf "$NGINX_DIR"
	fi
}

# casfs_start_helper CAS_URL [ARGS...]: start casfs-helper on $CACHE and
# wait until casfs.ko sees it registered. Sets HELPER_PID; its log goes
# to $HELPER_LOG (default /tmp/casfs-helper.log).
casfs_start_helper() {
	local url=$1 _
	shift
	HELPER_LOG=${HELPER_LOG:-/tmp/casfs-helper.log}
	"$CASFS_REPO/helper/casfs-helper" --cas "$url" --cache "$CACHE" \
		--stats-file /run/casfs/helper.stats "$@" >>"$HELPER_LOG" 2>&1 &
	HELPER_PID=$!
	local st
	for _ in $(seq 300); do
		st=$("$CASFS_REPO/helper/casfsctl" stats 2>/dev/null || true)
		grep -Eq 'helper_registered +yes' <<<"$st" && return 0
		sleep 0.1
	done
	cat "$HELPER_LOG"
	fail "casfs-helper did not register"
}

# casfs_stop_helper [SIGNAL]
casfs_stop_helper() {
	if [ -n "${HELPER_PID:-}" ]; then
		kill "-${1:-TERM}" "$HELPER_PID" 2>/dev/null || true
		wait "$HELPER_PID" 2>/dev/null || true
		HELPER_PID=
	fi
}

# casfs_start_rev2 ROOT PORT [server.py ARGS...]: the reference REv2 server
# (tests/rev2/server.py) on 127.0.0.1:PORT (0: any) serving ROOT/cas and
# ROOT/ac. Sets REV2_PID and REV2_PORT; its log goes to $REV2_LOG (default
# /tmp/rev2-server.log). casfs_stop_rev2 stops it.
casfs_start_rev2() {
	local root=$1 port=$2 out _
	shift 2
	REV2_LOG=${REV2_LOG:-/tmp/rev2-server.log}
	out=$(mktemp /tmp/rev2-ready.XXXXXX)
	$PY "$CASFS_REPO/tests/rev2/server.py" --root "$root" --port "$port" "$@" \
		>"$out" 2>>"$REV2_LOG" &
	REV2_PID=$!
	for _ in $(seq 600); do
		if grep -q '^READY port=' "$out"; then
			REV2_PORT=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$out")
			rm -f "$out"
			return 0
		fi
		kill -0 "$REV2_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$REV2_LOG" >&2
	fail "the REv2 server did not start"
}

casfs_stop_rev2() {
	if [ -n "${REV2_PID:-}" ]; then
		kill "$REV2_PID" 2>/dev/null || true
		wait "$REV2_PID" 2>/dev/null || true
		REV2_PID=
	fi
}

# casfs_rev2_frame WORKDIR: the frame of a test that runs the REv2 server
# and the helper. WORKDIR (made afresh, exported as $work) holds their logs
# ($HELPER_LOG, $REV2_LOG). On exit both are stopped (the helper with
# SIGKILL, as a crash would), casfs is cleaned up and WORKDIR removed.
casfs_rev2_frame() {
	work=$1
	HELPER_LOG=$work/helper.log
	REV2_LOG=$work/server.log
	trap casfs_rev2_teardown EXIT
	rm -rf "$work"
	mkdir -p "$work"
}

casfs_rev2_teardown() {
	casfs_stop_helper KILL
	casfs_stop_rev2
	wait 2>/dev/null
	casfs_cleanup
	rm -rf "$work"
}
