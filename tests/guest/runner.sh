#!/bin/bash
# Runs inside the test VM, chrooted into the host's root (see tests/vm/init.sh
# and tests/README.md). Runs every executable tests/kernel/*.sh in name order
# and reports on stdout, which is the serial console:
#
#   CASFS-TEST-BEGIN <name>
#   ...the test's own output, as is...
#   CASFS-RESULT <name> PASS|FAIL|SKIP <seconds>
#   ...
#   CASFS-DMESG-BEGIN / kernel log / CASFS-DMESG-END
#   CASFS-GUEST-DONE
#
# Environment (set by init.sh from the kernel command line):
#   CASFS_REPO, CASFS_KO, CASFS_BIN  passed on to the tests
#   CASFS_FILTER        comma-separated globs on test names (without .sh)
#   CASFS_TEST_TIMEOUT  default per-test timeout in seconds (600); a test can
#                       set its own with a "# timeout: N" line
#   CASFS_DISK          /dev/vda if a scratch disk is attached, else empty
#
# A test exits 0 to pass, 77 to skip, anything else fails. It must leave the
# guest as it found it; the runner checks that casfs is unloaded, that the
# mount table is unchanged and that no process of the test is left, cleans up
# what it finds and fails the test for it.

# No -e: a failing test or cleanup step must not end the run.
set -uo pipefail

: "${CASFS_REPO:?}"
export CASFS_REPO CASFS_KO="${CASFS_KO:-}" CASFS_BIN="${CASFS_BIN:-}"
export CASFS_DISK="${CASFS_DISK:-}" TMPDIR="${TMPDIR:-/tmp}"
default_timeout=${CASFS_TEST_TIMEOUT:-}
[[ $default_timeout =~ ^[0-9]+$ ]] || default_timeout=600

echo "CASFS-RUNNER-START kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s"

# A task stuck in D state (a deadlock in the module, typically) is reported
# after 60 s instead of Debian's 120: the host side fails the kernel on it.
if [[ -w /proc/sys/kernel/hung_task_timeout_secs ]]; then
	echo 60 >/proc/sys/kernel/hung_task_timeout_secs
fi

if [[ -n $CASFS_KO && ! -e $CASFS_KO ]]; then
	echo "CASFS-RUNNER: warning: module $CASFS_KO does not exist (not built?)"
fi

# The scratch disk's driver is a module; it is not in the initramfs because
# the host's /lib/modules is visible from here.
if [[ -n $CASFS_DISK ]]; then
	modprobe virtio_blk || echo "CASFS-RUNNER: warning: modprobe virtio_blk failed"
	for _ in $(seq 50); do
		[[ -b $CASFS_DISK ]] && break
		sleep 0.1
	done
	[[ -b $CASFS_DISK ]] || echo "CASFS-RUNNER: warning: $CASFS_DISK did not appear"
fi

IFS=, read -r -a filters <<<"${CASFS_FILTER:-}"
selected() {
	local name=$1 g
	((${#filters[@]} == 0)) && return 0
	for g in "${filters[@]}"; do
		# shellcheck disable=SC2053 # $g is a glob on purpose
		[[ $name == $g || $name.sh == $g ]] && return 0
	done
	return 1
}

test_timeout() {
	local t
	t=$(grep -m1 -oE '^#[[:space:]]*timeout:[[:space:]]*[0-9]+' "$1" | grep -oE '[0-9]+$')
	echo "${t:-$default_timeout}"
}

# Mount points (field 5 of mountinfo), one per mount, in sort order. The
# kernel writes a space in a path as \040, a tab as \011.
mountpoints() { awk '{print $5}' /proc/self/mountinfo | sort; }
unescape() {
	local p=${1//\\040/ }
	echo "${p//\\011/$'\t'}"
}
baseline_mounts=$(mountpoints)

casfs_loaded() { [[ -d /sys/module/casfs ]]; }

# Cleans up what a test left behind. Prints what it found; returns 1 if it
# found anything.
check_state() {
	local dirty=0 mp
	# casfs mounts first (lazy: a test may still hold files open on them).
	while read -r mp; do
		[[ -n $mp ]] || continue
		echo "CASFS-RUNNER: left state behind: casfs mounted on $(unescape "$mp")"
		umount -l "$(unescape "$mp")" || true
		dirty=1
	done <<<"$(awk '$3 == "casfs" {print $2}' /proc/self/mounts | sort -r)"
	# Any other new mount, deepest first (reverse order puts /a/b before /a;
	# a path mounted twice appears twice).
	while read -r mp; do
		[[ -n $mp ]] || continue
		echo "CASFS-RUNNER: left state behind: $(unescape "$mp") still mounted"
		umount -l "$(unescape "$mp")" || true
		dirty=1
	done <<<"$(comm -13 <(echo "$baseline_mounts") <(mountpoints) | sort -r)"
	while read -r mp; do
		[[ -n $mp ]] || continue
		echo "CASFS-RUNNER: left state behind: $(unescape "$mp") was unmounted"
		dirty=1
	done <<<"$(comm -23 <(echo "$baseline_mounts") <(mountpoints))"
	if casfs_loaded; then
		echo "CASFS-RUNNER: left state behind: casfs module still loaded"
		rmmod casfs || echo "CASFS-RUNNER: rmmod casfs failed"
		dirty=1
	fi
	# What could not be undone is the next test's starting point, not its
	# fault.
	((dirty)) && baseline_mounts=$(mountpoints)
	return "$dirty"
}

now() { echo "$EPOCHREALTIME"; }

shopt -s nullglob
for test in "${CASFS_TESTS_DIR:-$CASFS_REPO/tests/kernel}"/*.sh; do
	[[ -f $test && -x $test ]] || continue
	name=$(basename "$test" .sh)
	selected "$name" || continue
	limit=$(test_timeout "$test")

	echo "CASFS-TEST-BEGIN $name"
	start=$(now)
	# timeout(1) puts itself and the test in a new process group and, when
	# time is up, signals the whole group; 10 s later it SIGKILLs the group,
	# itself included, so it never waits on a child stuck in the kernel.
	# Run from the test's directory so relative paths behave the same.
	(cd "$(dirname "$test")" && exec timeout -k 10 "$limit" "$test") </dev/null &
	pid=$!
	wait "$pid"
	rc=$?
	end=$(now)

	case $rc in
	0) result=PASS ;;
	77) result=SKIP ;;
	124 | 137)
		echo "CASFS-RUNNER: $name timed out after ${limit}s"
		result=FAIL
		;;
	*)
		echo "CASFS-RUNNER: $name exited with status $rc"
		result=FAIL
		;;
	esac

	# Background processes the test started and did not stop are still in
	# its process group (unless they made their own session). One that
	# survives SIGKILL is stuck in the kernel (a deadlock in the module,
	# say): have the kernel log the stacks of all blocked tasks.
	if kill -0 -- "-$pid" 2>/dev/null; then
		echo "CASFS-RUNNER: left state behind: processes still running:"
		pgrep -a -g "$pid" || true
		kill -KILL -- "-$pid" 2>/dev/null
		sleep 1
		if kill -0 -- "-$pid" 2>/dev/null; then
			echo "CASFS-RUNNER: unkillable, stuck in the kernel:"
			ps -o pid,stat,wchan:32,args -p "$(pgrep -d, -g "$pid")" || true
			echo w >/proc/sysrq-trigger
		fi
		result=FAIL
	fi
	if ! check_state; then
		result=FAIL
	fi

	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	echo "CASFS-RESULT $name $result $secs"
done

# The whole kernel log, from /dev/kmsg: dmesg(1) would leave out whatever a
# test cleared with "dmesg -C". Records are "prio,seq,usec,flags;text" plus
# " KEY=value" continuation lines; print them the way dmesg does.
echo "CASFS-DMESG-BEGIN"
dd if=/dev/kmsg iflag=nonblock bs=16384 status=none 2>/dev/null |
	awk '/^ / { next }
	{
		i = index($0, ";")
		if (!i) next
		split(substr($0, 1, i - 1), h, ",")
		printf "[%5d.%06d] %s\n", int(h[3] / 1000000), h[3] % 1000000, substr($0, i + 1)
	}'
echo "CASFS-DMESG-END"
echo "CASFS-GUEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)s"
