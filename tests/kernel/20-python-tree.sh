#!/bin/bash
# The seed case: a Python interpreter tree hard-linked inside casfs
# (cp -al) runs and imports its standard library, because Python finds
# its prefix from realpath(argv[0]) and hard links keep the tree intact.
# timeout: 900
. "$(dirname "$0")/../lib/guest.sh"
casfs_setup 1g

ver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
src=$MNT/src/usr
mkdir -p "$src/bin" "$src/lib"
cp -a "/usr/bin/python$ver" "$src/bin/"
# The standard library, without its large test suite.
tar -C /usr/lib -cf - --exclude="python$ver/test" --exclude='__pycache__' \
	"python$ver" | tar -C "$src/lib" -xf -
note "copied python$ver: $(du -sh "$MNT/src" | cut -f1)"

cp -al "$MNT/src" "$MNT/linked"
py=$MNT/linked/usr/bin/python$ver
[ "$(stat -c %i "$py")" = "$(stat -c %i "$src/bin/python$ver")" ] ||
	fail "cp -al did not hard-link the interpreter"
[ "$(stat -c %h "$py")" = 2 ] || fail "nlink of the interpreter is not 2"

out=$("$py" -S -c '
import sys, os, json, sysconfig, encodings
print(sys.prefix)
print(os.path.dirname(json.__file__))
')
prefix=$(echo "$out" | sed -n 1p)
jsondir=$(echo "$out" | sed -n 2p)
[ "$prefix" = "$MNT/linked/usr" ] || fail "sys.prefix is $prefix, not $MNT/linked/usr"
case $jsondir in
"$MNT/linked/usr/lib/python$ver/"*) ;;
*) fail "json imported from $jsondir" ;;
esac
note "hard-linked python: prefix $prefix, stdlib from $jsondir"

# Same interpreter through a symlink out of the tree finds the tree too
# (realpath), but one copied elsewhere alone must not: proves the prefix
# really comes from the hard-linked location.
mkdir -p "$MNT/lonely/bin"
cp "$py" "$MNT/lonely/bin/"
lonely=$("$MNT/lonely/bin/python$ver" -S -c 'import sys; print(sys.prefix)' 2>/dev/null || true)
[ "$lonely" != "$MNT/lonely" ] || fail "lonely interpreter found a stdlib it should not have"
echo "python tree test passed"
