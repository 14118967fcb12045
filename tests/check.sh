#!/bin/bash
# The whole test suite ("make check"): host-side stages, then the kernel
# tests in QEMU for every test kernel. Prints one line per stage and per
# kernel test, and closes with "N passed, N failed" alone on a line.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0
failed=0
skipped=0
failures=()
start=$(date +%s)

# stage NAME COMMAND...: run a host-side stage, log to build/logs/NAME.log
stage() {
	local name=$1 t0 rc
	shift
	mkdir -p build/logs
	t0=$(date +%s)
	"$@" >"build/logs/$name.log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		echo "PASS host $name ($(($(date +%s) - t0))s)"
		passed=$((passed + 1))
	elif [ $rc = 77 ]; then
		echo "SKIP host $name: $(tail -n 1 "build/logs/$name.log")"
		skipped=$((skipped + 1))
	else
		echo "FAIL host $name ($(($(date +%s) - t0))s), last lines of build/logs/$name.log:"
		tail -n 30 "build/logs/$name.log" | sed 's/^/    /'
		failed=$((failed + 1))
		failures+=("host $name")
	fi
	return $rc
}

# The README's commands start with install-deps.sh: it must pass in a plain
# shell with default signal dispositions, and no script may put an early-
# stopping reader after a writer under pipefail (issue 13).
stage install-deps tests/install-deps-test.sh
# The debug kernel (KASAN, lockdep, KFENCE; tests/debug-kernel.sh): built
# once and cached, then a test kernel like Debian's for build-modules,
# sparse and the VM tests (a subset of them: tests/lib/kernels.sh).
stage debug-kernel tests/debug-kernel.sh
stage build-modules tests/build-modules.sh
built=$?
stage checkpatch tests/checkpatch.sh
if [ $built = 0 ]; then
	stage sparse tests/sparse.sh
fi
if [ "$(id -u)" = 0 ]; then
	stage dkms tests/dkms.sh
else
	echo "SKIP host dkms: needs root"
	skipped=$((skipped + 1))
fi
stage tests-bin make -s tests-bin
stage helper-build make -s -C helper
stage helper-unit-tests make -s -C helper check
stage systemd-unit packaging/verify-unit.sh
stage grpc-core-tests make -s -C helper/grpc check
# casfs-outputd's output-path layer (openat2 beneath, staging, clean, walk)
# on a fake filesystem; its service runs in helper-unit-tests.
stage outputd-outpath-tests make -s -C helper/outputd check
# libFuzzer on the gRPC client core: the deframer, then the whole response
# path (HTTP/2 frames from a hostile server); make -C helper/grpc fuzz-long
# for longer.
if command -v clang >/dev/null; then
	stage fuzz-grpc make -s -C helper/grpc fuzz-short FUZZ_SHORT_TIME=15
else
	echo "SKIP host fuzz-grpc: no clang"
	skipped=$((skipped + 1))
fi
# libFuzzer on the REv2 Directory/Tree decoder, bounded (make -C helper
# fuzz-tree-long for longer); skipped without clang.
if command -v clang >/dev/null; then
	stage fuzz-tree make -s -C helper fuzz-tree-short FUZZ_SHORT_TIME=20
	stage fuzz-rev2 make -s -C helper fuzz-rev2-short FUZZ_SHORT_TIME=15
	stage fuzz-outputd make -s -C helper fuzz-outputd-short FUZZ_SHORT_TIME=15
else
	echo "SKIP host fuzz-tree: no clang"
	skipped=$((skipped + 1))
fi
stage progs-selftest make -s -C tests/progs check-host O="$top/build/tests"

# The real-Bazel test: Bazel builds on the host against nginx; the guest
# test (90-bazel) stages the results from the action cache.
stage bazel-host tests/bazel/host-build.sh build/bazel
# The reference REv2 server (for issue 4's gRPC backend): its own grpcio
# self-test, and Bazel 4.2.3 over grpc:// against it.
stage rev2-server-selftest /usr/bin/python3 tests/rev2/test_server.py
stage rev2-bazel-grpc tests/rev2/bazel-grpc-test.sh build/rev2-bazel

if [ $built = 0 ]; then
	mkdir -p build/logs
	tests/run-vm-tests.sh 2>&1 | tee build/logs/vm.log
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' build/logs/vm.log | tail -n 1)
	if [ -z "$summary" ]; then
		echo "FAIL vm: the VM test runner printed no summary"
		failed=$((failed + 1))
	else
		read -r vp vf vs < <(echo "$summary" |
			sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/')
		passed=$((passed + vp))
		failed=$((failed + vf))
		skipped=$((skipped + ${vs:-0}))
	fi
else
	echo "FAIL vm: not run, the module did not build"
	failed=$((failed + 1))
fi

echo "make check: $(($(date +%s) - start))s wall time"
[ ${#failures[@]} = 0 ] || echo "host failures: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
