#!/bin/bash
# Run the kernel's checkpatch.pl (from Debian's linux-source package) over
# every kernel source file that git tracks. The only exceptions are the
# ones kmod/compat.h justifies in its header comment.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cp_dir=$top/build/checkpatch
if [ ! -x "$cp_dir/scripts/checkpatch.pl" ]; then
	tarball=$(find /usr/src -maxdepth 1 -name 'linux-source-*.tar.xz' | sort -V | tail -n 1)
	if [ -z "$tarball" ]; then
		echo "checkpatch: no /usr/src/linux-source-*.tar.xz (apt-get install linux-source)" >&2
		exit 1
	fi
	mkdir -p "$cp_dir"
	base=$(basename "$tarball" .tar.xz)
	tar -xJf "$tarball" -C "$cp_dir" --strip-components=1 \
		"$base/scripts/checkpatch.pl" "$base/scripts/spelling.txt" \
		"$base/scripts/const_structs.checkpatch"
fi
cd "$top"
cp=("$cp_dir/scripts/checkpatch.pl" --no-tree --strict --show-types --quiet
    --ignore FILE_PATH_CHANGES)
mapfile -t files < <(git ls-files 'kmod/*.[ch]' 'include/*.h' | grep -v '^kmod/compat.h$')
rc=0
"${cp[@]}" -f "${files[@]}" || rc=1
"${cp[@]}" --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON,NEW_TYPEDEFS \
	-f kmod/compat.h || rc=1
[ $rc = 0 ] && echo "checkpatch: clean (${#files[@]} files + kmod/compat.h)"
exit $rc
