#!/bin/sh
# /init of the casfs test VM (busybox sh). mkinitramfs.sh copies this file
# into the initramfs. It mounts the host's root (shared read-only over 9p,
# tag "host") at /host, gives it writable tmpfs scratch directories and the
# usual pseudo filesystems, then runs tests/guest/runner.sh chrooted into it,
# and powers off. Configuration comes from the kernel command line:
#
#   casfsvm.repo=DIR     repo top as seen on the host (required)
#   casfsvm.ko=FILE      casfs.ko built for this kernel       -> CASFS_KO
#   casfsvm.bin=DIR      built test programs                  -> CASFS_BIN
#   casfsvm.filter=GLOBS comma-separated test-name globs      -> CASFS_FILTER
#   casfsvm.tests=DIR    directory of tests (tests/kernel)     -> CASFS_TESTS_DIR
#   casfsvm.timeout=N    default per-test timeout, seconds    -> CASFS_TEST_TIMEOUT
#   casfsvm.disk=1       a scratch virtio disk is attached    -> CASFS_DISK
#   casfsvm.9p=OPTS      override the 9p mount options (for measuring)
#   casfsvm.env.NAME=VAL an environment variable for the tests, e.g. a
#                        benchmark's settings (boot.sh: CASFS_GUEST_ENV);
#                        NAME must be a BENCH_* or CASFS_* name
#
# The prefix is "casfsvm." and not "casfs." on purpose: modprobe passes
# "casfs.*" command-line words to the casfs module as parameters, and the
# module would refuse to load with unknown ones.

export PATH=/bin
# The initramfs holds only busybox and /bin/sh; make the applet links. /proc
# is mounted first so busybox can find itself through /proc/self/exe.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin

# The console node in the cpio may be missing (built without CAP_MKNOD), so
# (re)open stdio on devtmpfs's console before printing anything.
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t sysfs sysfs /sys
# udev normally makes these; bash process substitution needs /dev/fd.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

die() {
	echo "CASFS-INIT-ERROR: $*"
	# If poweroff itself fails, PID 1 exits: the kernel panics, panic=-1
	# asks for a reboot and QEMU's -no-reboot turns that into an exit.
	poweroff -f
	exit 1
}

repo='' ko='' bin='' tests='' filter='' timeout='' disk='' p9opts=''
extra_env=''
# set -f: the filter may hold glob characters that must not expand here.
set -f
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	casfsvm.repo=*) repo=${arg#*=} ;;
	casfsvm.ko=*) ko=${arg#*=} ;;
	casfsvm.bin=*) bin=${arg#*=} ;;
	casfsvm.filter=*) filter=${arg#*=} ;;
	casfsvm.tests=*) tests=${arg#*=} ;;
	casfsvm.timeout=*) timeout=${arg#*=} ;;
	casfsvm.disk=*) disk=${arg#*=} ;;
	casfsvm.9p=*) p9opts=${arg#*=} ;;
	casfsvm.env.BENCH_*=* | casfsvm.env.CASFS_*=*)
		extra_env="$extra_env ${arg#casfsvm.env.}" ;;
	esac
done
set +f
[ -n "$repo" ] || die "no casfsvm.repo= on the kernel command line"

while read -r m; do
	insmod "/modules/$m.ko" || die "insmod $m failed"
done </modules/order

# msize=512000 is the largest the virtio transport accepts on these kernels
# and cuts the number of round trips for big reads; cache=loose lets the
# guest keep pages and dentries, which is safe because the share is
# read-only and the host does not change the tree during a run (see
# tests/vm/README.md for the measurements behind the choice).
: "${p9opts:=trans=virtio,version=9p2000.L,msize=512000,cache=loose}"
# The virtio device normally probes synchronously during insmod; retry a
# little in case it does not.
tries=0
until mount -t 9p -o "ro,$p9opts" host /host; do
	tries=$((tries + 1))
	[ "$tries" -lt 50 ] || die "cannot mount the host root over 9p"
	sleep 0.1
done

# Paths the tests need that live under a directory about to be covered by a
# tmpfs (a CI clone in /tmp, say) are bind-mounted aside first and moved back
# on top of the tmpfs afterwards.
n=0
kept=
for p in "$repo" "${ko%/*}" "$bin" "$tests"; do
	case $p/ in
	/tmp/* | /run/* | /mnt/* | /var/tmp/*) ;;
	*) continue ;;
	esac
	[ -d "/host$p" ] || continue
	n=$((n + 1))
	mkdir -p "/keep/$n"
	mount --bind "/host$p" "/keep/$n" || die "cannot keep $p"
	kept="$kept $n:$p"
done

mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
mount -t tmpfs -o mode=755 tmpfs /host/mnt
mount -t tmpfs -o mode=1777 tmpfs /host/var/tmp

for k in $kept; do
	n=${k%%:*}
	p=${k#*:}
	mkdir -p "/host$p" 2>/dev/null
	mount --move "/keep/$n" "/host$p" || die "cannot restore $p"
done

# The kernel runs /sbin/modprobe itself for "mount -t ext4", a loop device
# and the like, in PID 1's root: this initramfs, which has no modules. Send
# those requests to the host's modprobe and /lib/modules instead.
printf '#!/bin/sh\nexec chroot /host /sbin/modprobe "$@"\n' >/bin/modprobe-host
chmod 755 /bin/modprobe-host
echo /bin/modprobe-host >/proc/sys/kernel/modprobe

mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount --bind /dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
# Tests run servers on loopback (nginx, the helper): bring lo up. There is no
# other network interface (QEMU runs with -nic none).
ip link set lo up
hostname casfs-vm

disk_dev=
[ "$disk" = 1 ] && disk_dev=/dev/vda

echo "CASFS-INIT: host root mounted, uptime $(cut -d' ' -f1 /proc/uptime)s"
# $extra_env splits into words but must not glob; it comes first, so the
# settings below (the later assignment wins in env) cannot be overridden.
set -f
chroot /host /usr/bin/env -i \
	$extra_env \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp \
	CASFS_REPO="$repo" CASFS_KO="$ko" CASFS_BIN="$bin" \
	CASFS_FILTER="$filter" CASFS_TEST_TIMEOUT="$timeout" \
	CASFS_TESTS_DIR="$tests" \
	CASFS_DISK="$disk_dev" \
	/bin/bash "$repo/tests/guest/runner.sh"
echo "CASFS-INIT: runner exited with status $?, uptime $(cut -d' ' -f1 /proc/uptime)s"
poweroff -f
