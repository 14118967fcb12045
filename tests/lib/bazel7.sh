# shellcheck shell=bash
# Bazel 7.7.1 in the QEMU guest: Debian sid's bazel-bootstrap, installed in
# the sid chroot by tests/sid-chroot.sh. Source after tests/lib/guest.sh.
#
# The guest sees the chroot read-only (it is part of the host root over
# 9p), so bazel7_setup mounts, in the guest's own mount namespace (the
# Bazel server outlives each client, so a namespace per command would not
# do), tmpfs over what Bazel and the JVM write: /tmp (output user roots,
# java.io.tmpdir), /var/tmp, /root and /home (HOMEs), /mnt (the workspace
# copy and bind mounts); /dev (rbind), /proc and /sys. bazel7_teardown
# stops every Bazel server and unmounts it all; call it from the test's
# EXIT trap, before casfs_cleanup.
#
#   bazel7_available                 0 if the chroot has Bazel (else skip)
#   bazel7_setup WORKSPACE_DIR       mounts; copies the workspace to /mnt/ws
#                                    in the chroot ($BZ_WS; $BZ_HOST_WS is
#                                    the same directory seen from the guest)
#   bazel7_bind GUESTDIR CHROOTDIR   bind GUESTDIR (e.g. a casfs mount) at
#                                    CHROOTDIR, which must be under /mnt
#   bazel7_user UID [GID]            run the next commands as UID (default:
#                                    root); a HOME is made on tmpfs, and an
#                                    output user root /tmp/bazel-UID (each
#                                    user has a server of its own). Any
#                                    uid works, one without a passwd entry
#                                    too.
#   bazel7 COMMAND [ARGS...]         `bazel COMMAND ARGS` in $BZ_WS as that
#                                    user, with our startup options and rc
#                                    file ($BZ_HOST_WS/../bazelrc)
#   bazel7_chroot CMD [ARGS...]      any command in the chroot, same user
#   bazel7_output_base               the output base (chroot path)
#   bazel7_server_pid                the running server's pid, or nothing
#   bazel7_timed LABEL COMMAND...    run COMMAND, note "LABEL: N.N s"
#   bazel7_teardown                  stop the servers, unmount everything
#
# Settings (set before bazel7_setup):
#   BZ_XMX (384m)      JVM heap (--host_jvm_args=-Xmx)
#   BZ_JOBS (4)        --jobs
#   BZ_IDLE (900)      --max_idle_secs: a server left behind exits by itself
#   BZ_TMP_SIZE (1g)   size of the chroot's /tmp tmpfs
#   BZ_CDS (1)         0: do not use the class-data sharing archive of the
#                      server's classes that tests/sid-chroot.sh makes
#                      (/var/cache/casfs-bazel/server.jsa in the chroot)
#   BZ_JIT (c1)        c1: the JVM compiles with C1 only (below); tiered:
#                      the JVM's default (C1 then C2), for long builds
#   BZ_STARTUP         array of extra startup options
#
# Startup options that never change (a change restarts the server):
# Debian's install base /usr/share/bazel (read-only, so no extraction at
# first start) with --trust_install_base, no rc file but ours, the JVM
# limited to C1 (-XX:TieredStopAtLevel=1: C2 compiles cost much more under
# TCG than they give back in a build this short; BZ_JIT) and the serial GC (2
# vCPUs), and the CDS archive (BZ_CDS). See tests/README.md for the
# timings.

BZ_CHROOT=${CASFS_SID_ROOT:-/var/cache/casfs-sid}
BZ_MOUNTS=()
BZ_UIDS=()
BZ_UID=0
BZ_GID=0
BZ_HOME=/root
BZ_WS=/mnt/ws
BZ_HOST_WS=$BZ_CHROOT$BZ_WS
: "${BZ_XMX:=384m}" "${BZ_JOBS:=4}" "${BZ_IDLE:=900}" "${BZ_TMP_SIZE:=1g}" "${BZ_CDS:=1}"
: "${BZ_JIT:=c1}"
BZ_CDS_ARCHIVE=/var/cache/casfs-bazel/server.jsa
[ -n "${BZ_STARTUP+set}" ] || BZ_STARTUP=()

bazel7_available() {
	[ -x "$BZ_CHROOT/usr/bin/bazel" ] && [ -e "$BZ_CHROOT/usr/share/bazel/A-server.jar" ]
}

# _bz_mount ARGS... TARGET: mount, and remember TARGET for the teardown.
_bz_mount() {
	mount "$@"
	BZ_MOUNTS+=("${*: -1}")
}

bazel7_setup() {
	local src=$1 R=$BZ_CHROOT
	bazel7_available || fail "no Bazel in $R (run tests/sid-chroot.sh as root)"
	_bz_mount -t tmpfs -o "size=$BZ_TMP_SIZE,mode=1777" bz-tmp "$R/tmp"
	_bz_mount -t tmpfs -o size=64m,mode=1777 bz-vartmp "$R/var/tmp"
	_bz_mount -t tmpfs -o size=64m,mode=0700 bz-root "$R/root"
	_bz_mount -t tmpfs -o size=64m,mode=0755 bz-home "$R/home"
	_bz_mount -t tmpfs -o size=256m,mode=0755 bz-mnt "$R/mnt"
	_bz_mount --rbind /dev "$R/dev"
	_bz_mount -t proc proc "$R/proc"
	_bz_mount -t sysfs sysfs "$R/sys"
	# The workspace copy belongs to nobody in particular: any uid may read
	# it, and Bazel writes its convenience symlinks (bazel-bin, ...) there.
	mkdir -p "$R$BZ_WS"
	cp -r "$src/." "$R$BZ_WS/"
	chmod -R a+rwX "$R$BZ_WS"
	cat >"$R/mnt/bazelrc" <<EOF
# tests/lib/bazel7.sh: the only rc file (--nohome_rc --nosystem_rc
# --noworkspace_rc). Debian's /etc/bazel.bazelrc would add --sandbox_debug
# and Bzlmod overrides; WORKSPACE mode, offline.
common --noenable_bzlmod
common --color=no --curses=no
common --show_timestamps
build --noshow_progress
build --jobs=$BZ_JOBS
build --incompatible_strict_action_env
build --remote_timeout=300
EOF
}

bazel7_bind() {
	local from=$1 to=$2
	case $to in /mnt/*) ;; *) fail "bazel7_bind: $to is not under /mnt" ;; esac
	mkdir -p "$BZ_CHROOT$to"
	_bz_mount --bind "$from" "$BZ_CHROOT$to"
}

bazel7_user() {
	BZ_UID=${1:-0}
	BZ_GID=${2:-$BZ_UID}
	if [ "$BZ_UID" = 0 ]; then
		BZ_HOME=/root
	else
		BZ_HOME=/home/u$BZ_UID
		mkdir -p "$BZ_CHROOT$BZ_HOME"
		chown "$BZ_UID:$BZ_GID" "$BZ_CHROOT$BZ_HOME"
	fi
	mkdir -p "$BZ_CHROOT/tmp/bazel-$BZ_UID"
	chown "$BZ_UID:$BZ_GID" "$BZ_CHROOT/tmp/bazel-$BZ_UID"
	case " ${BZ_UIDS[*]} " in *" $BZ_UID "*) ;; *) BZ_UIDS+=("$BZ_UID") ;; esac
}

bazel7_chroot() {
	local as=()
	if [ "$BZ_UID" != 0 ]; then
		as=(/usr/bin/setpriv "--reuid=$BZ_UID" "--regid=$BZ_GID" --clear-groups --)
	fi
	chroot "$BZ_CHROOT" "${as[@]}" /usr/bin/env -i \
		PATH=/usr/local/bin:/usr/bin:/bin HOME="$BZ_HOME" USER="u$BZ_UID" \
		LOGNAME="u$BZ_UID" LANG=C.UTF-8 TMPDIR=/tmp "$@"
}

bazel7() {
	local startup=(
		--nohome_rc --nosystem_rc --noworkspace_rc --bazelrc=/mnt/bazelrc
		--install_base=/usr/share/bazel --trust_install_base
		"--output_user_root=/tmp/bazel-$BZ_UID"
		"--host_jvm_args=-Xmx$BZ_XMX"
		--host_jvm_args=-XX:+UseSerialGC
		"--host_jvm_args=-Duser.home=$BZ_HOME"
		"--max_idle_secs=$BZ_IDLE"
	)
	[ "$BZ_JIT" = c1 ] && startup+=(--host_jvm_args=-XX:TieredStopAtLevel=1)
	if [ "$BZ_CDS" = 1 ] && [ -s "$BZ_CHROOT$BZ_CDS_ARCHIVE" ]; then
		startup+=("--host_jvm_args=-XX:SharedArchiveFile=$BZ_CDS_ARCHIVE")
	fi
	startup+=("${BZ_STARTUP[@]}")
	bazel7_chroot /bin/sh -c 'cd "$1" && shift && exec /usr/bin/bazel "$@"' sh \
		"$BZ_WS" "${startup[@]}" "$@"
}

# The output base: the md5 of the workspace path, under the output user root.
bazel7_output_base() {
	local md5
	md5=$(printf %s "$BZ_WS" | md5sum)
	echo "/tmp/bazel-$BZ_UID/${md5%% *}"
}

bazel7_server_pid() {
	local f pid
	f=$BZ_CHROOT$(bazel7_output_base)/server/server.pid.txt
	[ -r "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "$pid"
	fi
	return 0
}

bazel7_timed() {
	local label=$1 t0 rc=0
	shift
	t0=$EPOCHREALTIME
	"$@" || rc=$?
	note "$label: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s (exit $rc)"
	return "$rc"
}

bazel7_teardown() {
	local u pid pids=() i m
	# bazel shutdown for each user that ran Bazel, then a kill for any
	# server still there (the server is a daemon in a session of its own:
	# the runner would not see it).
	if ((${#BZ_UIDS[@]})); then
		for u in "${BZ_UIDS[@]}"; do
			bazel7_user "$u"
			pid=$(bazel7_server_pid)
			[ -n "$pid" ] || continue
			pids+=("$pid")
			timeout 60 bazel7 shutdown >/dev/null 2>&1 || true
		done
	fi
	if ((${#pids[@]})); then
		for i in $(seq 100); do
			kill -0 "${pids[@]}" 2>/dev/null || break
			[ "$i" = 50 ] && kill -KILL "${pids[@]}" 2>/dev/null
			sleep 0.2
		done
	fi
	BZ_UIDS=()
	# Unmount in reverse order (the rbind of /dev with its submounts).
	if ((${#BZ_MOUNTS[@]})); then
		for ((i = ${#BZ_MOUNTS[@]} - 1; i >= 0; i--)); do
			m=${BZ_MOUNTS[i]}
			umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
		done
	fi
	BZ_MOUNTS=()
}
