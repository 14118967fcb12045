#!/bin/bash
# Guest sanity: the harness itself works (root, writable tmpfs /tmp, host
# binaries usable over 9p, mount/umount allowed). Needs no casfs module.
set -euo pipefail

[[ $(id -u) == 0 ]] || { echo "not root"; exit 1; }

f=$(mktemp)
echo hello >"$f"
[[ $(cat "$f") == hello ]]
rm -f "$f"
[[ $(stat -f -c %T /tmp) == tmpfs ]] || { echo "/tmp is not a tmpfs"; exit 1; }

# The host root is read-only in the guest.
if touch /casfs-smoke-rofs 2>/dev/null; then
	rm -f /casfs-smoke-rofs
	echo "/ is writable"
	exit 1
fi

[[ $(/usr/bin/python3 -c 'print(1)') == 1 ]]

mount -t tmpfs none /mnt
touch /mnt/x
umount /mnt

echo "smoke ok: kernel $(uname -r), CASFS_KO=${CASFS_KO:-}, CASFS_BIN=${CASFS_BIN:-}"
