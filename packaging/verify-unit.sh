#!/bin/bash
# Check packaging/casfs-helper.service with systemd-analyze verify.
#
# verify insists that ExecStart's binary exists, so this checks a temporary
# copy whose ExecStart points at the helper built in the tree (built here
# if missing). Any complaint about the unit fails the check.
#
# usage: packaging/verify-unit.sh [HELPER_BINARY]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
unit=$here/casfs-helper.service
helper=${1:-$repo/helper/casfs-helper}

command -v systemd-analyze >/dev/null || {
	echo "verify-unit: systemd-analyze not found (apt-get install systemd)" >&2
	exit 1
}
if [[ ! -x $helper ]]; then
	make -s -C "$repo/helper" "$helper" >/dev/null
fi
helper=$(cd "$(dirname "$helper")" && pwd)/$(basename "$helper")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -q '^ExecStart=/usr/local/sbin/casfs-helper ' "$unit" || {
	echo "verify-unit: unexpected ExecStart in $unit" >&2
	exit 1
}
sed "s|^ExecStart=/usr/local/sbin/casfs-helper |ExecStart=$helper |" "$unit" \
	>"$tmp/casfs-helper.service"

# Only lines about this unit count: verify also loads the units it names
# (multi-user.target, ...), and the host's own may be imperfect.
status=0
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify \
	"$tmp/casfs-helper.service" 2>&1) || status=$?
mine=$(grep -F 'casfs-helper.service' <<<"$out" || true)
if ((status != 0)) || [[ -n $mine ]]; then
	echo "$out" >&2
	echo "verify-unit: FAIL" >&2
	exit 1
fi
echo "verify-unit: casfs-helper.service OK"
