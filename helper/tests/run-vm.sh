#!/bin/bash
# Run the helper's kernel tests (tests/kernel/75-helper.sh, 80-helper-e2e.sh) in QEMU against casfs.ko, with the project's
# harness (tests/run-vm-tests.sh; see tests/vm/README.md): the guest sees
# this tree, the helper binaries built here, and the module built for each
# kernel in build/kbuild/RELEASE/kmod/casfs.ko.
#
# usage: helper/tests/run-vm.sh [RELEASE...]     (default: every test kernel)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
make -s -C "$repo/helper" >/dev/null
# Own console logs (build/vm/logs-helper), but take turns with the main
# test runs: hold their lock too (two VMs on a small host only slow down).
mkdir -p "$repo/build/vm/logs"
exec {lock_fd}>"$repo/build/vm/logs/.lock"
flock "$lock_fd"
export CASFS_FILTER=${CASFS_FILTER:-75-*,80-*}
export CASFS_VM_OUT=${CASFS_VM_OUT:-$repo/build/vm/logs-helper}
exec "$repo/tests/run-vm-tests.sh" "$@"
