#!/bin/bash
# usage: tests/outputd/expected.sh DIR
#
# Writes into DIR what Bazel builds in bazel-bin for the workspace
# tests/outputd/workspace (//:everything), computed here independently of
# Bazel: greeting.txt, numbers.txt, shout.txt, hello_out.txt, tree/ (43
# files) and summary.txt. Not the gcc-built `hello`, whose bytes depend on
# the compiler: a test runs it and compares its output with hello_out.txt.
# Keep in step with workspace/BUILD and workspace/tree.bzl.
set -euo pipefail
out=$1
mkdir -p "$out"
echo 'hello from a genrule' >"$out/greeting.txt"
seq 1 2000 >"$out/numbers.txt"
tr a-z A-Z <"$out/greeting.txt" >"$out/shout.txt"
echo "hello from casfs-outputd's gcc-built test program (argc=3)" >"$out/hello_out.txt"
dirs=6 files=6
for n in $(seq 1 $dirs); do
	mkdir -p "$out/tree/d$n/sub"
	for m in $(seq 1 $files); do
		{ echo "tree $n $m"; printf '%*s\n' $((n * m)) '' | tr ' ' .; } >"$out/tree/d$n/sub/f$m.txt"
	done
	cp "$out/greeting.txt" "$out/tree/d$n/seed.txt"
done
echo "$dirs dirs, $files files each" >"$out/tree/MANIFEST"
{
	cat "$out/greeting.txt" "$out/shout.txt" "$out/hello_out.txt"
	echo "numbers: $(wc -l <"$out/numbers.txt") lines, sum $(awk '{s += $1} END {print s}' "$out/numbers.txt")"
	(cd "$out/tree" && find -L . -type f | LC_ALL=C sort | xargs cat) | cksum
} >"$out/summary.txt"
