#!/bin/bash
# Build and install the casfs debug kernel: Debian's own 6.1 source
# (/usr/src/linux-source-6.1.tar.xz, package linux-source) configured with
# allnoconfig plus tests/debug-kernel.config -- only what the QEMU harness
# and the tests need, everything built in, plus KASAN, lockdep, KFENCE,
# DEBUG_LIST, DEBUG_OBJECTS and friends. Debian's kernels have none of these.
#
# usage: tests/debug-kernel.sh [--force]
#
# Installs /boot/vmlinuz-REL (REL is 6.1.<n>-casfs-debug) and
# /lib/modules/REL/ (modules_install: modules.builtin, so that modprobe of a
# built-in driver succeeds; build -> the built tree, so that
# "make -C /lib/modules/REL/build M=..." builds casfs.ko against it). It does
# not run "make install": no initramfs, no boot loader entry, no
# /etc/kernel hooks; tests/vm/boot.sh boots it with its own initramfs.
#
# Cached: if the installed debug kernel was built from the same tarball,
# fragment settings (comments do not count), compiler and recipe (the key in
# /lib/modules/REL/casfs-debug.key),
# nothing is done. The tree stays in $CASFS_DEBUG_KERNEL_CACHE
# (/var/cache/casfs-debug-kernel), outside any clone, so a changed fragment
# rebuilds incrementally and a CI clone reuses it. --force (or
# CASFS_DEBUG_KERNEL_FORCE=1) throws the tree away and builds from scratch.
#
# Needs root (it writes /boot and /lib/modules); exits 77 (skip) without.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
frag=$top/tests/debug-kernel.config
tarball=${CASFS_DEBUG_KERNEL_SRC:-/usr/src/linux-source-6.1.tar.xz}
cache=${CASFS_DEBUG_KERNEL_CACHE:-/var/cache/casfs-debug-kernel}
tree=$cache/linux
force=${CASFS_DEBUG_KERNEL_FORCE:-0}
# Bump when the way the kernel is built or installed changes, so that
# installed kernels built the old way are rebuilt.
recipe=2
suffix=-casfs-debug
jobs=${CASFS_DEBUG_KERNEL_JOBS:-2}

case ${1:-} in
--force) force=1 ;;
"") ;;
*) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "debug-kernel: $*"; }
die() { echo "debug-kernel: $*" >&2; exit 1; }

if [[ $(id -u) != 0 ]]; then
	echo "debug-kernel: needs root (installs into /boot and /lib/modules)"
	exit 77
fi
[[ -r $tarball ]] || die "no $tarball (apt-get install linux-source, or tests/install-deps.sh)"
[[ -r $frag ]] || die "no $frag"

mkdir -p "$cache"
# One build at a time (a make check in a CI clone and one in a work tree
# share the cache).
exec {lock_fd}>"$cache/.lock"
if ! flock -n "$lock_fd"; then
	log "waiting for another build using $cache"
	flock "$lock_fd"
fi

t0=$SECONDS
src_sum=$(sha256sum "$tarball")
src_sum=${src_sum%% *}
# The fragment's settings only: editing a comment does not rebuild.
settings=
while IFS= read -r line; do
	if [[ $line =~ ^CONFIG_|^#\ CONFIG_[A-Za-z0-9_]+\ is\ not\ set$ ]]; then
		settings+=$line$'\n'
	fi
done <"$frag"
frag_sum=$(sha256sum <<<"$settings")
frag_sum=${frag_sum%% *}
cc_version=$(gcc --version)
cc_version=${cc_version%%$'\n'*}
key="recipe=$recipe source=$src_sum fragment=$frag_sum cc=$cc_version"

# Installed debug kernels: /lib/modules/*-casfs-debug.
installed=()
shopt -s nullglob
for d in /lib/modules/*"$suffix"; do
	installed+=("${d##*/}")
done
shopt -u nullglob

if [[ $force != 1 && ${#installed[@]} == 1 ]]; then
	rel=${installed[0]}
	d=/lib/modules/$rel
	have=
	[[ -r $d/casfs-debug.key ]] && have=$(<"$d/casfs-debug.key")
	if [[ $have == "$key" && -r /boot/vmlinuz-$rel && -r $d/modules.builtin &&
		-r $d/build/Makefile && -r $d/build/Module.symvers ]]; then
		log "up to date: $rel ($((SECONDS - t0))s)"
		exit 0
	fi
fi

# From here on the installed kernel is stale or missing. Remove it first, so
# that a build that fails leaves no half-matching kernel for the other
# stages to pick up.
for rel in "${installed[@]}"; do
	log "removing the stale installed $rel"
	rm -rf "/lib/modules/$rel"
	rm -f "/boot/vmlinuz-$rel" "/boot/System.map-$rel" "/boot/config-$rel"
done

# The source tree: extracted once per tarball; kept between builds so that a
# changed fragment rebuilds only what changed.
have_src=
[[ -r $tree/.casfs-source ]] && have_src=$(<"$tree/.casfs-source")
if [[ $force == 1 || $have_src != "$src_sum" || ! -r $tree/Makefile ]]; then
	log "extracting $tarball into $tree"
	rm -rf "$tree" "$tree.new"
	mkdir -p "$tree.new"
	tar -xJf "$tarball" -C "$tree.new" --strip-components=1
	echo "$src_sum" >"$tree.new/.casfs-source"
	mv "$tree.new" "$tree"
	log "extracted in $((SECONDS - t0))s"
fi

kmake() { nice -n 10 make -C "$tree" ARCH=x86_64 "$@"; }

# allnoconfig with the fragment as KCONFIG_ALLCONFIG (merge_config.sh -n),
# then olddefconfig; then every line of the fragment must hold.
(cd "$tree" && ARCH=x86_64 scripts/kconfig/merge_config.sh -n "$frag") >"$cache/config.log" 2>&1 ||
	{ cat "$cache/config.log"; die "merge_config.sh failed"; }
kmake -s olddefconfig

declare -A got
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) got[${line%%=*}]=${line#*=} ;;
	esac
done <"$tree/.config"
bad=0
while IFS= read -r line; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		opt=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
		if [[ ${got[$opt]-<unset>} != "$want" ]]; then
			echo "debug-kernel: $opt: wanted $want, .config has ${got[$opt]-no value}" >&2
			bad=1
		fi
	elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
		opt=${BASH_REMATCH[1]}
		if [[ -n ${got[$opt]:-} && ${got[$opt]} != n ]]; then
			echo "debug-kernel: $opt: wanted off, .config has ${got[$opt]}" >&2
			bad=1
		fi
	fi
done <"$frag"
((bad == 0)) || die "the config does not match $frag (a dependency missing from the fragment?)"
log "config: $(grep -c '=y$' "$tree/.config") options built in"

rel=$(kmake -s kernelrelease)
[[ $rel == *"$suffix" ]] || die "kernel release '$rel' does not end in $suffix"

log "building $rel with make -j$jobs (log: $cache/build.log)"
t_build=$SECONDS
if ! kmake -j"$jobs" all >"$cache/build.log" 2>&1; then
	tail -n 60 "$cache/build.log"
	die "kernel build failed; see $cache/build.log"
fi
log "built in $((SECONDS - t_build))s"

# modules_install writes modules.builtin/modules.order, runs depmod and
# points build/ and source/ at the tree.
kmake -s modules_install INSTALL_MOD_PATH= >"$cache/install.log" 2>&1 ||
	{ cat "$cache/install.log"; die "modules_install failed"; }
d=/lib/modules/$rel
[[ -r $d/modules.builtin && -r $d/modules.dep ]] || die "modules_install left no modules.builtin/modules.dep in $d"
[[ $(readlink -f "$d/build") == "$(readlink -f "$tree")" ]] || ln -sfn "$tree" "$d/build"
install -m 0644 "$tree/arch/x86/boot/bzImage" "/boot/vmlinuz-$rel.new"
install -m 0644 "$tree/System.map" "/boot/System.map-$rel"
install -m 0644 "$tree/.config" "/boot/config-$rel"
mv -f "/boot/vmlinuz-$rel.new" "/boot/vmlinuz-$rel"
# Last: the key says the install is complete.
echo "$key" >"$d/casfs-debug.key"
log "installed $rel: /boot/vmlinuz-$rel, $d (build -> $tree) in $((SECONDS - t0))s"
