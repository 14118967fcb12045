# shellcheck shell=bash
# Shared by the guest benchmarks (bench/guest/*.sh source it).

# ratio NAME SECONDS BASE_NAME BASE_SECONDS: one BENCH line. What was
# measured is called $BENCH_SUBJECT (default casfs).
ratio() {
	awk -v s="${BENCH_SUBJECT:-casfs}" -v n="$1" -v c="$2" -v bn="$3" -v b="$4" 'BEGIN {
		printf "BENCH %-44s %s %8.3fs  %s %8.3fs  ratio %.3f\n", n, s, c, bn, b, c / b }'
}

# elapsed CMD...: run CMD (output discarded), print its wall time in seconds.
elapsed() {
	local t0=$EPOCHREALTIME
	"$@" >/dev/null
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'
}
