# shellcheck shell=bash
# Running Bazel on the test workspace, shared by tests/bazel/host-build.sh
# (HTTP cache) and tests/rev2/bazel-grpc-test.sh (gRPC cache).
#
# The caller sets ws (workspace), root (private --output_user_root), logs
# (directory for bazel's output) and bazel_started=, defines log and die,
# then calls bazel_remote URL before the first build.
#
# No ~/.bazelrc (the system rc stays: Debian's points at its install base).
# The server stays up across the builds of one run and is shut down by the
# caller at exit; --max_idle_secs bounds it should the script be killed.

bz() {
	(cd "$ws" && bazel --nohome_rc --output_user_root="$root" --max_idle_secs=300 "$@")
}

# bazel_remote URL: the flags of every build, with URL as the remote cache.
bazel_remote() {
	build_flags=(
		--spawn_strategy=local
		--noshow_progress
		--color=no
		--curses=no
		--symlink_prefix=/
		--incompatible_strict_action_env
		--remote_cache="$1"
		--remote_timeout=60
	)
}

# Seconds since T0 (a `date +%s.%N` value), one decimal.
bazel_seconds_since() {
	python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" \
		"$1" "$(date +%s.%N)"
}

# build NAME FLAGS...: clean, then build //...; bazel's output goes to
# logs/NAME.log, whose tail is shown on failure.
build() {
	local name=$1 t0
	shift
	t0=$(date +%s.%N)
	bazel_started=1
	bz clean >>"$logs/$name.log" 2>&1 || { tail -n 30 "$logs/$name.log" >&2; die "bazel clean ($name)"; }
	bz build "${build_flags[@]}" "$@" //... >>"$logs/$name.log" 2>&1 ||
		{ tail -n 30 "$logs/$name.log" >&2; die "bazel build ($name)"; }
	log "$name build: $(bazel_seconds_since "$t0") s${BAZEL_BUILD_NOTE:+: $($BAZEL_BUILD_NOTE "$logs/$name.log")}"
}
