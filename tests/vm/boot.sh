#!/bin/bash
# Boot /boot/vmlinuz-RELEASE in QEMU (TCG, no KVM) with the host's root shared
# read-only over 9p, run tests/guest/runner.sh in the guest and write the
# serial console to OUTDIR/console-RELEASE.log. See tests/README.md.
#
# usage: tests/vm/boot.sh RELEASE OUTDIR [extra kernel args...]
#
# Environment:
#   CASFS_REPO          repo top (default: the repo holding this script)
#   CASFS_KO            module to test (default: build/kbuild/RELEASE/kmod/casfs.ko)
#   CASFS_BIN           test programs (default: build/tests)
#   CASFS_FILTER        comma-separated globs on test names, e.g. '0[1-3]-*'
#   CASFS_TESTS_DIR     absolute directory of the tests to run (tests/kernel)
#   CASFS_TEST_TIMEOUT  default per-test timeout in the guest (600 s)
#   CASFS_VM_TIMEOUT    hard limit for the whole VM run (1500 s)
#   CASFS_VM_MEM        guest memory in MiB (2048)
#   CASFS_GUEST_ENV     "NAME=VAL ..." (BENCH_*/CASFS_* names) set for the tests
#   CASFS_VM_SMP        guest CPUs (2)
#   CASFS_VM_CPU        QEMU CPU model (qemu64,+rdrand)
#   CASFS_VM_ACCEL      QEMU -accel value (tcg,thread=single); "tcg" runs the
#                       vCPUs on parallel host threads instead
#   CASFS_VM_DISK_MB    if set, attach a fresh sparse raw disk of that size as
#                       virtio-blk (/dev/vda in the guest, CASFS_DISK there)
#   CASFS_VM_CACHE      where initramfs images are cached (build/vm)
#   CASFS_VM_VERBOSE=1  also copy the console to stderr while it runs
#
# Exit status: QEMU's (0 after the guest powered off), 124 if the hard limit
# hit. Whether the tests passed is for the caller to read from the log.
set -euo pipefail

if [[ $# -lt 2 ]]; then
	echo "usage: $0 RELEASE OUTDIR [extra kernel args...]" >&2
	exit 2
fi
release=$1
outdir=$2
shift 2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=${CASFS_REPO:-$(cd "$here/../.." && pwd)}
ko=${CASFS_KO:-$repo/build/kbuild/$release/kmod/casfs.ko}
bin=${CASFS_BIN:-$repo/build/tests}
cache=${CASFS_VM_CACHE:-$repo/build/vm}
kernel=/boot/vmlinuz-$release

[[ -r $kernel ]] || { echo "$0: cannot read $kernel" >&2; exit 1; }
# The kernel command line is split on whitespace; the guest sees these paths
# through it.
for p in "$repo" "$ko" "$bin"; do
	if [[ $p =~ [[:space:]] || $p != /* ]]; then
		echo "$0: path must be absolute and without whitespace: '$p'" >&2
		exit 1
	fi
done

mkdir -p "$outdir" "$cache"
outdir=$(cd "$outdir" && pwd)
log=$outdir/console-$release.log

# Rebuilding the initramfs costs about a second; do it only when an input
# changed.
initrd=$cache/initramfs-$release.cpio.gz
stale=0
[[ -s $initrd ]] || stale=1
for input in "$here/mkinitramfs.sh" "$here/init.sh" \
	"/lib/modules/$release/modules.dep" "${CASFS_BUSYBOX:-/bin/busybox}"; do
	[[ $input -nt $initrd ]] && stale=1
done
if ((stale)); then
	"$here/mkinitramfs.sh" "$release" "$initrd"
fi

# shellcheck disable=SC2054 # the commas belong to option values
cmdline=(
	console=ttyS0,115200
	# A panic reboots at once; -no-reboot turns that into QEMU exiting, so
	# a crashed kernel ends the run instead of sitting out the timeout.
	panic=-1
	# Timestamps let the host tell kernel lines from test output.
	printk.time=1
	casfsvm.repo="$repo"
	casfsvm.ko="$ko"
	casfsvm.bin="$bin"
)
[[ -n ${CASFS_FILTER:-} ]] && cmdline+=(casfsvm.filter="$CASFS_FILTER")
[[ -n ${CASFS_TESTS_DIR:-} ]] && cmdline+=(casfsvm.tests="$CASFS_TESTS_DIR")
[[ -n ${CASFS_TEST_TIMEOUT:-} ]] && cmdline+=(casfsvm.timeout="$CASFS_TEST_TIMEOUT")
# CASFS_GUEST_ENV="NAME=VAL ...": environment for the guest's tests (no
# spaces in a value; BENCH_* and CASFS_* names only, see init.sh).
for kv in ${CASFS_GUEST_ENV:-}; do
	cmdline+=("casfsvm.env.$kv")
done

# Measured choices (tests/vm/README.md has the numbers):
# - thread=single runs both vCPUs round-robin on one host thread. With one
#   host thread per vCPU (MTTCG) on this 2-core machine, a run now and then
#   took 2 to 3 times as long (vCPUs spinning on a lock whose holder's thread
#   was descheduled), and that risks false soft-lockup/RCU-stall reports.
# - qemu64 runs user space faster than "max" (whose AVX2 paths glibc picks
#   are slow to emulate); +rdrand lets the kernel seed its RNG at boot, or
#   the first getrandom() (python3's start, for one) waits seconds for it.
# shellcheck disable=SC2054
qemu=(
	qemu-system-x86_64
	-accel "${CASFS_VM_ACCEL:-tcg,thread=single}"
	-cpu "${CASFS_VM_CPU:-qemu64,+rdrand}"
	-m "${CASFS_VM_MEM:-2048}"
	-smp "${CASFS_VM_SMP:-2}"
	-nographic -no-reboot
	-nic none
	-kernel "$kernel"
	-initrd "$initrd"
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
)

disk=
if [[ -n ${CASFS_VM_DISK_MB:-} ]]; then
	# A new sparse file every boot, so each run starts from an empty disk.
	disk=$outdir/disk-$release.img
	rm -f "$disk"
	truncate -s "${CASFS_VM_DISK_MB}M" "$disk"
	qemu+=(-drive "file=$disk,format=raw,if=virtio,cache=unsafe,discard=unmap")
	cmdline+=(casfsvm.disk=1)
fi
cmdline+=("$@")
qemu+=(-append "${cmdline[*]}")

vm_timeout=${CASFS_VM_TIMEOUT:-1500}
start=$SECONDS
status=0
# stdin from /dev/null: QEMU's stdio backend must not eat the caller's input
# (or stop the job on a terminal).
if [[ ${CASFS_VM_VERBOSE:-0} == 1 ]]; then
	timeout -k 10 "$vm_timeout" "${qemu[@]}" </dev/null 2>&1 | tee "$log" >&2 || status=$?
else
	timeout -k 10 "$vm_timeout" "${qemu[@]}" </dev/null >"$log" 2>&1 || status=$?
fi
if [[ $status == 124 ]]; then
	echo "CASFS-HOST: VM killed after ${vm_timeout}s (CASFS_VM_TIMEOUT)" >>"$log"
fi
[[ -n $disk ]] && rm -f "$disk"
echo "boot.sh: $release: QEMU exited with status $status after $((SECONDS - start))s; log: $log" >&2
exit "$status"
