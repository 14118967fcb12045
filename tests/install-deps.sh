#!/bin/bash
# Install what building and testing casfs needs on Debian 12, including
# Debian's 6.1 kernel and bookworm-backports' 6.12 kernel (images for the
# QEMU tests, headers for the builds). Quick when all is present.
set -euo pipefail

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

pkgs=(
	build-essential make gcc pkg-config git
	qemu-system-x86 busybox-static cpio xz-utils kmod
	dkms sparse linux-source
	flex bison bc libelf-dev
	linux-image-amd64 linux-headers-amd64
	dosfstools util-linux coreutils python3
	e2fsprogs
	libnl-genl-3-dev libnl-3-dev libcurl4-openssl-dev libssl-dev
	nginx-light curl systemd openssl
	bazel-bootstrap default-jdk-headless protobuf-c-compiler libprotobuf-c-dev
	libnghttp2-dev python3-grpcio python3-protobuf python3-grpc-tools
	clang libclang-rt-14-dev
)

bp=/etc/apt/sources.list.d/bookworm-backports.sources
updated=
apt_update() {
	if [ -z "$updated" ]; then
		$SUDO apt-get update -q
		updated=1
	fi
}

if [ ! -e "$bp" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
	$SUDO tee "$bp" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	apt_update
fi

# The 6.12 kernel: whatever release bookworm-backports' metapackage
# currently points at, installed by its versioned name so that it sits
# beside the 6.1 kernel instead of replacing the metapackage.
# awk reads all of apt-cache's output (no early exit): a reader that stops
# early kills the writer with SIGPIPE, which pipefail turns into failure.
bpo_release() {
	apt-cache show linux-headers-amd64 2>/dev/null | awk '
		/^Version:/ { ver = $2 }
		/^Depends:/ && ver ~ /bpo12/ && rel == "" { sub(/^linux-headers-/, "", $2); rel = $2 }
		END { if (rel != "") print rel }'
}
rel=$(bpo_release)
if [ -z "$rel" ]; then
	apt_update
	rel=$(bpo_release)
fi
[ -n "$rel" ] || { echo "install-deps: cannot find the bookworm-backports kernel" >&2; exit 1; }
pkgs+=("linux-image-$rel" "linux-headers-$rel")

missing=()
for p in "${pkgs[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	echo "install-deps: installing ${missing[*]}"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
fi
$SUDO "$(dirname "$0")/sid-chroot.sh"	# sid's 7.x kernel: headers and gcc-16 in a sid chroot
echo "install-deps: ok (kernels: $(ls /lib/modules | tr '\n' ' '))"
