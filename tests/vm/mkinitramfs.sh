#!/bin/bash
# Build the tiny initramfs that boots a Debian kernel far enough to mount the
# host's root over 9p and hand over to tests/guest/runner.sh in a chroot.
#
# usage: tests/vm/mkinitramfs.sh RELEASE OUT.cpio.gz
#
# Contents: busybox-static (+ one symlink per applet), the virtio/9p modules
# the kernel RELEASE needs before it can see the host root (taken from
# /lib/modules/RELEASE, decompressed, in dependency order), and /init
# (tests/vm/init.sh). Everything else -- virtio_blk, loop, ext4, casfs -- is
# loaded later from inside the chroot, where the host's /lib/modules is
# visible, so it does not belong here.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 RELEASE OUT.cpio.gz" >&2
	exit 2
fi
release=$1
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
moddir=/lib/modules/$release
busybox=${CASFS_BUSYBOX:-/bin/busybox}

[[ -r $moddir/modules.dep ]] || { echo "$0: no $moddir/modules.dep" >&2; exit 1; }
# A dynamically linked busybox would need its libraries in the initramfs too.
if command -v file >/dev/null && [[ $(file -L "$busybox") == *'dynamically linked'* ]]; then
	echo "$0: $busybox is not statically linked (apt-get install busybox-static)" >&2
	exit 1
fi

# What must be loaded before the 9p mount can happen. virtio_pci is built in
# on 6.12 and a module on 6.1; whatever is built in is simply skipped.
wanted=(virtio_pci 9pnet_virtio 9p)

# modules.dep: "kernel/a/b.ko[.xz]: dep1 dep2 ...". Index it by module name
# (basename, no suffix, '-' folded to '_' as the kernel does).
# modname sets $name rather than printing it: a $(...) per line of
# modules.dep would fork thousands of times.
declare -A path_of deps_of
modname() {
	name=${1##*/}
	name=${name%%.ko*}
	name=${name//-/_}
}
name=
while IFS= read -r line; do
	file=${line%%:*}
	modname "$file"
	path_of[$name]=$file
	deps_of[$name]=${line#*:}
done <"$moddir/modules.dep"

builtin=" "
if [[ -r $moddir/modules.builtin ]]; then
	while IFS= read -r line; do
		modname "$line"
		builtin+="$name "
	done <"$moddir/modules.builtin"
fi

# Depth-first walk: every module comes after all of its dependencies, which
# is the order insmod needs (busybox insmod does no dependency resolution).
declare -A seen
order=()
visit() {
	local m=$1 d
	[[ -n ${seen[$m]:-} ]] && return 0
	seen[$m]=1
	for d in ${deps_of[$m]}; do
		modname "$d"
		visit "$name"
	done
	order+=("$m")
}
for m in "${wanted[@]}"; do
	if [[ -n ${path_of[$m]:-} ]]; then
		visit "$m"
	elif [[ $builtin == *" $m "* ]]; then
		: # built in: nothing to load
	else
		echo "$0: module $m is neither a module nor built in for $release" >&2
		exit 1
	fi
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/casfs-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,host,modules}

cp "$busybox" "$stage/bin/busybox"
# Only the shell here: /init installs the other applet links itself (one
# ln per applet on the host would cost seconds of forks).
ln -s busybox "$stage/bin/sh"

# The kernel opens /dev/console for init before anything is mounted; without
# the node init would start with no stdio. init.sh also re-opens the console
# after mounting devtmpfs, so a failing mknod (no CAP_MKNOD) is not fatal.
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true

# Modules, decompressed on the host (busybox insmod and the 6.1 kernel cannot
# be relied on to take compressed ones), plus the load order for init.
: >"$stage/modules/order"
for m in "${order[@]}"; do
	src=$moddir/${path_of[$m]}
	dst=$stage/modules/$m.ko
	case $src in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) echo "$0: unknown module format: $src" >&2; exit 1 ;;
	esac
	echo "$m" >>"$stage/modules/order"
done

install -m 755 "$here/init.sh" "$stage/init"

mkdir -p "$(dirname "$out")"
tmp_out=$out.tmp.$$
(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --null --create --format=newc --owner=0:0 --quiet) |
	gzip -6 >"$tmp_out"
mv -f "$tmp_out" "$out"
