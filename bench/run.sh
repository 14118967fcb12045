#!/bin/bash
# Run the benchmarks in bench/guest/ inside QEMU on each test kernel (or
# the ones given) and print their BENCH lines. Every figure is a ratio
# against a baseline measured in the same guest run (see each script).
#
# usage: bench/run.sh [RELEASE...]     (CASFS_KERNELS works too)
# Results are also written to build/bench/<release>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
tests/build-modules.sh >/dev/null
make -s tests-bin >/dev/null
mkdir -p build/bench
export CASFS_TESTS_DIR=$top/bench/guest
export CASFS_VM_MEM=${CASFS_VM_MEM:-6144}
export CASFS_VM_OUT=$top/build/bench/logs
export CASFS_VM_TIMEOUT=${CASFS_VM_TIMEOUT:-3600}
rc=0
tests/run-vm-tests.sh "$@" >build/bench/run.log 2>&1 || rc=$?
for log in build/bench/logs/console-*.log; do
	rel=$(basename "$log" .log)
	rel=${rel#console-}
	grep -a "^BENCH" "$log" | sed "s/^/$rel /" | tee "build/bench/$rel.txt"
done
if [ $rc != 0 ]; then
	grep -v '^    |' build/bench/run.log | tail -n 20
	echo "bench: a benchmark failed (build/bench/run.log)" >&2
fi
exit $rc
