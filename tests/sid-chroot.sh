#!/bin/bash
# The Debian sid chroot that builds casfs for sid's kernel (7.x), and that
# kernel itself for the QEMU tests. Debian 12 has neither sid's compiler nor
# its kernel headers, and the module must be built with the compiler the
# kernel was built with (gcc-16); the host's toolchain is left alone.
#
# usage: tests/sid-chroot.sh
#
# Makes or updates:
#   $CASFS_SID_ROOT (/var/cache/casfs-sid, outside any clone, so a CI clone
#       reuses it): debootstrap --variant=minbase sid, from the mirror the
#       host's apt uses, holding make, gcc, sparse, dkms and
#       linux-headers-REL, where REL is the release sid's linux-image-amd64
#       points at (read when installing, as install-deps.sh does for
#       bookworm-backports), and bazel-bootstrap (Bazel 7.7.1, with the
#       JDK it depends on) for the Bazel guest test (tests/kernel/94-bazel7.sh,
#       tests/lib/bazel7.sh), with a CDS archive of the Bazel server's classes
#       in /var/cache/casfs-bazel/server.jsa. The mirror's sid Release file is past its
#       Valid-Until date: apt in the chroot does not check it.
#   /boot/vmlinuz-REL and /lib/modules/REL on the host, from
#       linux-image-REL (downloaded in the chroot, unpacked, copied; then
#       depmod REL): what tests/vm/boot.sh boots. The host gets no
#       /lib/modules/REL/build: tests/lib/kernels.sh finds the headers in
#       the chroot and builds there (casfs_kbuild).
#
# Idempotent, and quick when all is there: apt's lists are fetched only when
# the chroot has none or a package is missing, the kernel is copied only
# when the host's copy differs. Needs root; exits 77 (skip) without.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/kernels.sh
. "$top/tests/lib/kernels.sh"
root=$(casfs_sid_root)

log() { echo "sid-chroot: $*"; }
die() { echo "sid-chroot: $*" >&2; exit 1; }

if [[ $(id -u) != 0 ]]; then
	echo "sid-chroot: needs root (debootstrap, chroot, /boot, /lib/modules)"
	exit 77
fi

# The Debian mirror of the host's own apt sources (deb822 .sources or
# one-line .list), for the suite this host runs; else deb.debian.org.
host_mirror() {
	local suite files=()
	suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] && files+=("$f")
	done
	((${#files[@]})) || return 0
	# Reads every file to the end (no early exit; the caller takes the
	# first line).
	awk -v suite="$suite" '
		function flush() {
			if (uris != "" && suites ~ (" " suite " ")) print uris
			uris = ""; suites = ""
		}
		FNR == 1 { flush() }
		/^[[:space:]]*deb[[:space:]]/ {
			n = split($0, f, /[[:space:]]+/)
			i = 2
			if (f[i] ~ /^\[/) { while (i < n && f[i] !~ /\]$/) i++; i++ }
			if (f[i + 1] == suite) print f[i]
			next
		}
		/^URIs:/ { uris = $2 }
		/^Suites:/ { suites = " " substr($0, 8) " " }
		/^[[:space:]]*$/ { flush() }
		END { flush() }
	' "${files[@]}" 2>/dev/null || true
}

# Run a command in the chroot (tests/lib/kernels.sh: private mount
# namespace, /dev and /proc mounted only for it).
sid() { casfs_in_chroot "$root" -- env DEBIAN_FRONTEND=noninteractive "$@"; }

mkdir -p "$(dirname "$root")"
exec {lock_fd}>"$root.lock"
if ! flock -n "$lock_fd"; then
	log "waiting for another run using $root"
	flock "$lock_fd"
fi

t0=$SECONDS
if [[ ! -e $root/.casfs-complete ]]; then
	mapfile -t mirrors < <(host_mirror)
	mirror=${mirrors[0]:-http://deb.debian.org/debian}
	command -v debootstrap >/dev/null || {
		log "installing debootstrap on the host"
		apt-get install -y -q --no-install-recommends debootstrap
	}
	log "creating the sid chroot in $root from $mirror"
	rm -rf "$root.new"
	debootstrap --variant=minbase sid "$root.new" "$mirror" >"$root.debootstrap.log" 2>&1 || {
		tail -n 30 "$root.debootstrap.log" >&2
		die "debootstrap failed (log: $root.debootstrap.log)"
	}
	cat >"$root.new/etc/apt/apt.conf.d/90casfs" <<'EOF'
// casfs (tests/sid-chroot.sh): the mirror's sid Release file is past its
// Valid-Until date; only what the build needs is installed.
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
	# Nothing started by a package's maintainer scripts in the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$root.new/usr/sbin/policy-rc.d"
	chmod 755 "$root.new/usr/sbin/policy-rc.d"
	rm -rf "$root"
	mv "$root.new" "$root"
	: >"$root/.casfs-complete"
fi

# The release sid's linux-image-amd64 points at, from the chroot's lists
# (fetched only if there are none yet). awk reads all of apt-cache's
# output: an early-exiting reader would kill it with SIGPIPE.
sid_release() {
	sid apt-cache show --no-all-versions linux-image-amd64 2>/dev/null | awk '
		/^Depends:/ {
			n = split($0, f, /[ ,]+/)
			for (i = 2; i <= n; i++)
				if (f[i] ~ /^linux-image-[0-9]/ && rel == "") {
					rel = f[i]; sub(/^linux-image-/, "", rel)
				}
		}
		END { if (rel != "") print rel }'
}
updated=
apt_update() {
	if [[ -z $updated ]]; then
		sid apt-get update -q >/dev/null
		updated=1
	fi
}
rel=$(sid_release)
if [[ -z $rel ]]; then
	apt_update
	rel=$(sid_release)
fi
[[ -n $rel ]] || die "cannot find sid's linux-image-amd64 release"

# bazel-bootstrap: Bazel 7.7.1 and its JDK (default-jdk-headless), run in
# the guest by tests/lib/bazel7.sh.
pkgs=(make gcc sparse dkms kmod "linux-headers-$rel" bazel-bootstrap)
missing=()
for p in "${pkgs[@]}"; do
	[[ $(sid dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	apt_update
	log "installing in the chroot: ${missing[*]}"
	sid apt-get install -y -q "${missing[@]}" >"$root.apt.log" 2>&1 || {
		tail -n 30 "$root.apt.log" >&2
		die "apt-get install failed in the chroot (log: $root.apt.log)"
	}
fi

# Debian's linux-kbuild package lacks scripts/checker-valid.sh, with which
# the kernel's Makefile checks that sparse is recent enough for C=1/C=2;
# without it, sparse silently never runs. This is the kernel's own script.
kbuild_scripts=$root/usr/src/linux-headers-$rel/scripts
if [[ -d $kbuild_scripts && ! -e $kbuild_scripts/checker-valid.sh ]]; then
	cat >"$kbuild_scripts/checker-valid.sh" <<'EOF'
#!/bin/sh -eu
# SPDX-License-Identifier: GPL-2.0
# Installed by casfs's tests/sid-chroot.sh: the kernel's script, missing
# from Debian's linux-kbuild package.

[ ! -x "$(command -v "$1")" ] && exit 1

tmp_file=$(mktemp)
trap "rm -f $tmp_file" EXIT

cat << EOT >$tmp_file
static inline int u(const int *q)
{
	__typeof_unqual__(*q) v = *q;
	return v;
}
EOT

# sparse happily exits with 0 on error so validate
# there is none on stderr. Use awk as grep is a pain with sh -e
$@ $tmp_file 2>&1 | awk -v c=1 '/error/{c=0}END{print c}'
EOF
	chmod 755 "$kbuild_scripts/checker-valid.sh"
fi

# dkms installs into, and runs depmod for, only a kernel whose modules.dep
# exists (else "Skipping depmod"): give the headers-only kernel an index
# of its own (of no modules until dkms adds one), as an installed kernel
# would have.
if [[ ! -e $root/lib/modules/$rel/modules.dep ]]; then
	sid depmod "$rel"
fi

# The kernel for the guest: linux-image-REL and the packages of that release
# it depends on (sid splits the image from linux-binary-REL, the vmlinuz,
# and linux-modules-REL), unpacked in the chroot, not installed there (no
# initramfs, no hooks), and copied to the host.
img=$root/var/cache/casfs-image/$rel
if [[ ! -e $img/.complete ]]; then
	apt_update
	# awk reads all of apt-cache's output (no early exit).
	mapfile -t debs < <(sid apt-cache show --no-all-versions "linux-image-$rel" 2>/dev/null |
		awk -v rel="$rel" '
			/^Depends:/ {
				n = split($0, f, /[ ,|]+/)
				for (i = 2; i <= n; i++)
					if (f[i] ~ /^linux-/ && substr(f[i], length(f[i]) - length(rel)) == "-" rel)
						print f[i]
			}')
	debs+=("linux-image-$rel")
	log "downloading ${debs[*]}"
	rm -rf "$img"
	mkdir -p "$img/deb" "$img/tree"
	# As root in the chroot; the download directory is apt's own.
	chown _apt "$img/deb" 2>/dev/null || chmod 777 "$img/deb"
	casfs_in_chroot "$root" -- /bin/sh -c '
		set -e
		cd "$1/deb"
		shift
		apt-get download -q "$@" >/dev/null
		for d in ./*.deb; do dpkg-deb -x "$d" ../tree; done' \
		sh "/var/cache/casfs-image/$rel" "${debs[@]}"
	rm -rf "$img/deb"
	: >"$img/.complete"
fi
# Where the packages put them: sid keeps the image in the modules
# directory (/usr/lib/modules/REL/vmlinuz), older ones in /boot.
moddir=$img/tree/usr/lib/modules/$rel
[[ -d $moddir ]] || moddir=$img/tree/lib/modules/$rel
vmlinuz=$moddir/vmlinuz
[[ -e $vmlinuz ]] || vmlinuz=$img/tree/boot/vmlinuz-$rel
[[ -e $vmlinuz && -e $moddir/modules.order ]] ||
	die "no vmlinuz-$rel or modules in the packages of linux-image-$rel (see $img/tree)"
if ! cmp -s "$vmlinuz" "/boot/vmlinuz-$rel" || [[ ! -e /lib/modules/$rel/modules.dep ]]; then
	log "installing /boot/vmlinuz-$rel and /lib/modules/$rel on the host"
	rm -rf "/lib/modules/$rel.new"
	cp -a "$moddir" "/lib/modules/$rel.new"
	rm -rf "/lib/modules/$rel"
	mv "/lib/modules/$rel.new" "/lib/modules/$rel"
	depmod "$rel"
	# The image last: it is what says the kernel is complete.
	install -m 0644 "$vmlinuz" "/boot/vmlinuz-$rel.new"
	mv -f "/boot/vmlinuz-$rel.new" "/boot/vmlinuz-$rel"
fi

# A class-data sharing archive of the Bazel server's classes (a dynamic
# AppCDS archive, -XX:ArchiveClassesAtExit) for the guest test
# (tests/lib/bazel7.sh uses it when present): it halves the server's start
# under TCG, which is mostly loading and verifying classes. Made by one
# Bazel build on the host, in the chroot, with tests/lib/bazel7.sh's
# startup options; remade when bazel-bootstrap or the JDK changes (the JVM
# ignores an archive that does not match its classpath and JDK anyway).
cds=$root/var/cache/casfs-bazel
java_home=$(sid readlink -f /usr/bin/java)
java_home=${java_home%/bin/java}
cds_key="recipe 1 bazel-bootstrap $(sid dpkg-query -W -f '${Version}' bazel-bootstrap) $java_home $(stat -c '%s %Y' "$root$java_home/lib/modules")"
if [[ ! -s $cds/server.jsa || $(cat "$cds/key" 2>/dev/null) != "$cds_key" ]]; then
	log "making the Bazel server's CDS archive ($cds_key)"
	rm -rf "$cds"
	mkdir -p "$cds/ws" "$cds/tmp"
	: >"$cds/ws/WORKSPACE"
	printf 'genrule(name = "g", outs = ["g.txt"], cmd = "echo g >$@")\n' >"$cds/ws/BUILD"
	casfs_in_chroot "$root" -- /bin/sh -c '
		set -eu
		b() {
			bazel --nohome_rc --nosystem_rc --noworkspace_rc \
				--install_base=/usr/share/bazel --trust_install_base \
				--output_user_root=/var/cache/casfs-bazel/tmp/our \
				--host_jvm_args=-Xmx384m --host_jvm_args=-XX:TieredStopAtLevel=1 \
				--host_jvm_args=-XX:+UseSerialGC \
				--host_jvm_args=-XX:ArchiveClassesAtExit=/var/cache/casfs-bazel/server.jsa.new \
				"$@"
		}
		cd /var/cache/casfs-bazel/ws
		b build --noenable_bzlmod --curses=no --noshow_progress //:g >/var/cache/casfs-bazel/build.log 2>&1
		pid=$(cat /var/cache/casfs-bazel/tmp/our/*/server/server.pid.txt)
		b shutdown >>/var/cache/casfs-bazel/build.log 2>&1
		# The archive is written as the server exits.
		while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done' ||
		die "Bazel build for the CDS archive failed (see $cds/build.log)"
	[[ -s $cds/server.jsa.new ]] || die "no CDS archive written (see $cds/build.log)"
	chmod 0644 "$cds/server.jsa.new"
	mv "$cds/server.jsa.new" "$cds/server.jsa"
	rm -rf "$cds/tmp" "$cds/ws"
	echo "$cds_key" >"$cds/key"
fi

log "ok: $rel in $root ($((SECONDS - t0))s)"
