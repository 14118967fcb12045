#!/bin/bash
# Run the kernel tests (tests/kernel/*.sh) in QEMU on each test kernel and
# count the results. See tests/README.md for the contract.
#
# usage: tests/run-vm-tests.sh [RELEASE...]
#
# Kernels: the RELEASEs given, else $CASFS_KERNELS (space or comma
# separated), else every kernel with an image in /boot and a headers tree
# (tests/lib/kernels.sh): every kernel the module is built for.
# The module loaded is build/kbuild/RELEASE/kmod/casfs.ko; test programs are in
# build/tests. Console logs go to $CASFS_VM_OUT (build/vm/logs).
# tests/vm/boot.sh documents the other knobs (CASFS_FILTER, timeouts, ...).
# Unless set by the caller, CASFS_FILTER, CASFS_VM_MEM and CASFS_VM_TIMEOUT
# are chosen per kernel (tests/lib/kernels.sh): every test on Debian's
# kernels, a subset on the debug kernel (tests/debug-kernel.sh).
#
# Prints "PASS|FAIL|SKIP RELEASE TEST (seconds)" per test, one extra FAIL
# "kernel-log" per kernel whose log shows a splat, one FAIL "boot" per kernel
# whose guest never finished, and closes with "N passed, N failed, N skipped".
# Exits non-zero if anything failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${CASFS_VM_OUT:-$repo/build/vm/logs}

# shellcheck source-path=SCRIPTDIR source=lib/kernels.sh
. "$here/lib/kernels.sh"
releases=("$@")
if ((${#releases[@]} == 0)); then
	# The same list tests/build-modules.sh builds the module for.
	read -r -a releases <<<"$(casfs_test_kernels | tr ',\n' '  ')"
fi
if ((${#releases[@]} == 0)); then
	echo "run-vm-tests: no kernel to test (no /boot/vmlinuz-* with headers)" >&2
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

# What counts as a kernel splat. Only lines carrying a printk timestamp are
# looked at, so a test that prints "WARNING:" itself does not trip this.
# The debug kernel's reports start with WARNING: or BUG: too ("BUG: KASAN:",
# "BUG: KFENCE:", "WARNING: possible circular locking dependency detected",
# "WARNING: suspicious RCU usage", ...); the other lockdep/KASAN/ODEBUG words
# are there for a report whose first line was lost. Not a bare "lockdep" or
# "KASAN": the debug kernel says "RCU lockdep checking is enabled" at boot.
splat='WARNING:|BUG:|Oops|general protection fault|INFO: task .* blocked for more than'
splat+='|possible circular locking|possible recursive locking|inconsistent lock state'
splat+='|suspicious RCU usage|lock held when returning|bad unlock balance|lockdep is turned off'
splat+='|turning off the locking correctness validator|KASAN:|KFENCE:|ODEBUG:|UBSAN:'
splat+='|kernel BUG|Call Trace|Kernel panic|stall on CPU|detected stalls'
stamp='\[ *[0-9]+\.[0-9]+\] '

passed=0 failed=0 skipped=0

# Prints the tail of one test's output from the console log, indented.
show_output() {
	local clean=$1 name=$2
	awk -v n="$name" '
		$0 ~ "CASFS-TEST-BEGIN " n "$" { on = 1; next }
		on && $0 ~ "CASFS-RESULT " n " " { exit }
		on { print }
	' "$clean" | tail -n 60 | sed 's/^/    | /'
}

# A sparse scratch disk for tests that want a real block-device filesystem
# (ext4) under casfs; costs nothing until written.
export CASFS_VM_DISK_MB=${CASFS_VM_DISK_MB:-8192}

mkdir -p "$out"
# Two runs sharing $out would overwrite each other's console logs (and two
# VMs on this 2-core machine only slow each other down): take turns.
exec {lock_fd}>"$out/.lock"
if ! flock -n "$lock_fd"; then
	echo "run-vm-tests: waiting for another run using $out" >&2
	flock "$lock_fd"
fi
for rel in "${releases[@]}"; do
	ko=${CASFS_KO:-$repo/build/kbuild/$rel/kmod/casfs.ko}
	[[ -e $ko ]] || echo "run-vm-tests: warning: $ko not built" >&2
	# Per kernel (tests/lib/kernels.sh): which tests, how much memory and
	# time; what the caller set wins.
	if [[ -n ${CASFS_FILTER+set} ]]; then
		filter=$CASFS_FILTER
	else
		filter=$(casfs_kernel_filter "$rel")
	fi
	vm_mem=${CASFS_VM_MEM:-$(casfs_kernel_vm_mem "$rel")}
	vm_timeout=${CASFS_VM_TIMEOUT:-$(casfs_kernel_vm_timeout "$rel")}
	echo "== $rel: booting (log: $out/console-$rel.log; tests: ${filter:-all})"
	start=$SECONDS
	vm_status=0
	CASFS_FILTER=$filter CASFS_VM_MEM=$vm_mem CASFS_VM_TIMEOUT=$vm_timeout \
		"$here/vm/boot.sh" "$rel" "$out" 2>"$out/boot-$rel.err" || vm_status=$?
	wall=$((SECONDS - start))
	log=$out/console-$rel.log
	clean=$out/console-$rel.clean
	# The serial line ends lines with \r\n; drop the \r for matching.
	tr -d '\r' <"$log" >"$clean" 2>/dev/null || : >"$clean"

	kp=0 kf=0 ks=0
	while read -r name result secs; do
		case $result in
		PASS) kp=$((kp + 1)) ;;
		SKIP) ks=$((ks + 1)) ;;
		*) kf=$((kf + 1)) ;;
		esac
		echo "$result $rel $name (${secs}s)"
		[[ $result == FAIL ]] && show_output "$clean" "$name"
	done < <(grep -oE 'CASFS-RESULT [^ ]+ (PASS|FAIL|SKIP) [0-9.]+' "$clean" | cut -d' ' -f2-)

	if ! grep -q 'CASFS-GUEST-DONE' "$clean"; then
		# A test that began and never reported is what the guest died in.
		last=$(grep -oE 'CASFS-TEST-BEGIN [^ ]+' "$clean" | tail -n 1 | cut -d' ' -f2)
		if [[ -n $last ]] && ! grep -qE "CASFS-RESULT $last " "$clean"; then
			echo "FAIL $rel $last (did not finish)"
			show_output "$clean" "$last"
			kf=$((kf + 1))
		fi
		echo "FAIL $rel boot (guest never finished, QEMU status $vm_status; see $log)"
		tail -n 30 "$clean" | sed 's/^/    | /'
		# boot.sh's own errors (initramfs build, QEMU options).
		sed 's/^/    boot.sh: /' "$out/boot-$rel.err"
		kf=$((kf + 1))
	fi

	# The dmesg section has everything; the rest of the console has what
	# was printed before a crash that kept the guest from dumping it.
	hits=$(grep -E "$stamp" "$clean" | grep -E "$splat" | sed -E "s/^.*($stamp)/\\1/" |
		awk '!seen[$0]++' || true)
	if [[ -n $hits ]]; then
		echo "FAIL $rel kernel-log (kernel reported problems; see $log)"
		head -n 40 <<<"$hits" | sed 's/^/    | /'
		echo "    first report in context:"
		first=$(head -n 1 <<<"$hits")
		grep -F -B 3 -A 40 -m 1 -- "$first" "$clean" | sed 's/^/    | /'
		kf=$((kf + 1))
	fi

	echo "== $rel: ${wall}s wall; $kp pass, $kf fail, $ks skip"
	passed=$((passed + kp))
	failed=$((failed + kf))
	skipped=$((skipped + ks))
done

if ((passed + failed + skipped == 0)); then
	echo "run-vm-tests: no test ran (CASFS_FILTER='${CASFS_FILTER:-}')" >&2
	failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
