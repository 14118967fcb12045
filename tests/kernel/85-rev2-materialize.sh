#!/bin/bash
# casfsctl's REv2 commands end to end against the reference server
# (tests/rev2/server.py) with casfs-helper on grpc://: materialize a Tree
# blob and a root Directory (GetTree) as lazy subtrees and read every byte
# back through casfs; shared subtrees; malicious trees refused with
# nothing created; symlink policy flags; `check` after the CAS lost a
# blob; `stage --action-result FILE` and `stage --action DIGEST`.
# Runs on one kernel (CASFS_REV2_MATERIALIZE_KERNEL, default Debian 12's
# 6.12), as 82 does: its subject is casfsctl's REv2 handling, two minutes
# under TCG; the kernel paths it uses (staging, lazy reads through the
# helper) are covered on every kernel by 60-80.
# timeout: 600
. "$(dirname "$0")/../lib/guest.sh"
casfs_only_on_kernel "${CASFS_REV2_MATERIALIZE_KERNEL:-6.12.}" "userspace REv2 handling, minutes under TCG"
H=$CASFS_REPO/helper
C=$H/casfsctl
G="$PY $CASFS_REPO/tests/rev2/treegen.py"
[ -x "$C" ] || fail "casfsctl not built (make -C helper)"
casfs_rev2_frame /tmp/rev2-mat
mkdir -p "$work/store"
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=20" casfs "$MNT"

casfs_start_rev2 "$work/store" 0
CAS=grpc://127.0.0.1:$REV2_PORT
casfs_start_helper "$CAS" --timeout 10

# compare REF DIR: the same names, types, modes and symlink targets, and
# the same bytes in every file (read through casfs, i.e. fetched).
compare() {
	local ref=$1 dir=$2 f
	(cd "$ref" && find . -printf '%y %m %p %l\n' | sort) >"$work/ref.lst"
	(cd "$dir" && find . -printf '%y %m %p %l\n' | sort) >"$work/got.lst"
	diff -u "$work/ref.lst" "$work/got.lst" || fail "$dir: not the same tree as $ref"
	while read -r f; do
		cmp "$ref/$f" "$dir/$f" || fail "$dir/$f: wrong bytes"
	done < <(cd "$ref" && find . -type f)
}

eval "$($G sample "$work/store" "$work/ref")"
note "sample tree: Tree $TREE, root $ROOT"

# 1. A Tree blob: nothing is fetched until read; then every byte matches.
out=$("$C" materialize --cas "$CAS" --tree "$TREE" "$MNT/t1")
echo "$out"
[[ $out == *"materialized 10 files, 9 directories, 4 symlinks (8 distinct directories"* ]] ||
	fail "materialize --tree: unexpected summary"
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "materialize fetched file bytes: $(ls "$CACHE/blobs")"
[ "$(stat -c %a "$MNT/t1/bin/tool")" = 555 ] || fail "executable mode lost"
[ "$(stat -c %a "$MNT/t1/data/a.txt")" = 444 ] || fail "plain file mode"
compare "$work/ref" "$MNT/t1"
note "--tree: tree and bytes match"

# 2. A root Directory digest through paged GetTree (pages of 3), with the
# connection from a config file like the helper's.
casfs_stop_rev2
casfs_start_rev2 "$work/store" "$REV2_PORT" --tree-page-max 3 --tree-pages-per-call 1
printf 'cas = %s\ntimeout = 20\ncache = /nonexistent-unused\n' "$CAS" >"$work/helper.conf"
before=$(grep -c 'GetTree: done' "$REV2_LOG" || true)
"$C" materialize --config "$work/helper.conf" "$ROOT" "$MNT/t2"
after=$(grep -c 'GetTree: done' "$REV2_LOG" || true)
[ $((after - before)) -ge 3 ] || fail "GetTree was not paged ($before -> $after calls)"
compare "$work/ref" "$MNT/t2"
# shared subtree: one Directory, two places, same bytes
cmp "$MNT/t2/lib/x.so" "$MNT/t2/lib2/x.so" || fail "shared subtree differs"
[ "$(readlink "$MNT/t2/lib2/self")" = x.so ] || fail "shared subtree symlink"
note "GetTree ($((after - before)) calls): tree and bytes match"

# 3. Malicious trees: refused before anything is created (the bad entry is
# two levels down, after a good file), as Tree blobs and via GetTree.
for kind in dotdot slash escape absolute unsorted dup missing; do
	eval "$($G malicious "$work/store" "$kind")"
	for how in tree root; do
		if [ $how = tree ]; then d=$TREE; flag=--tree; else d=$ROOT; flag=; fi
		if "$C" materialize --cas "$CAS" $flag "$d" "$MNT/bad-$kind-$how" 2>"$work/err"; then
			fail "$kind ($how): malicious tree materialized"
		fi
		grep -q "refused" "$work/err" || fail "$kind ($how): $(cat "$work/err")"
		[ ! -e "$MNT/bad-$kind-$how" ] || fail "$kind ($how): something was created"
	done
	note "$kind: $(head -n 1 "$work/err")"
done
# ... unless the policy allows it
eval "$($G malicious "$work/store" escape)"
"$C" materialize --cas "$CAS" --tree --allow-escaping-symlinks "$TREE" "$MNT/esc"
[ "$(readlink "$MNT/esc/a/b/esc")" = ../../../etc/passwd ] || fail "escaping symlink"
eval "$($G malicious "$work/store" absolute)"
"$C" materialize --cas "$CAS" --tree --allow-absolute-symlinks "$TREE" "$MNT/abs"
[ "$(readlink "$MNT/abs/a/b/abs")" = /etc/passwd ] || fail "absolute symlink"
# existing names are not overwritten
if "$C" materialize --cas "$CAS" --tree --allow-absolute-symlinks "$TREE" "$MNT/abs" \
	2>"$work/err"; then
	fail "materialize over an existing tree succeeded"
fi
grep -q "already exists" "$work/err" || fail "over existing: $(cat "$work/err")"
note "policy flags and existing names"

# 4. check: all there (the empty files are not CAS-backed: 18 files, 7
# blobs); then the CAS loses a blob.
"$C" check --cas "$CAS" "$MNT/t1" "$MNT/t2" >"$work/check.out" || fail "check: $(cat "$work/check.out")"
grep -Eq "checked 18 CAS-backed files \(7 distinct blobs\): 0 missing" "$work/check.out" ||
	fail "check: $(cat "$work/check.out")"
lost=$(sha256sum <"$work/ref/data/a.txt" | cut -d' ' -f1)
rm -f "$work/store/cas/$lost"
set +e
"$C" check --cas "$CAS" "$MNT/t1" "$MNT/t2" >"$work/check.out"
rc=$?
set -e
cat "$work/check.out"
[ $rc = 1 ] || fail "check: exit $rc with a blob gone"
grep -q "^missing $lost/100 $MNT/t1/data/a.txt$" "$work/check.out" || fail "check: t1 not listed"
grep -q "^missing $lost/100 $MNT/t2/data/a.txt$" "$work/check.out" || fail "check: t2 not listed"
[ "$(grep -c '^missing' "$work/check.out")" = 2 ] || fail "check: wrong count"
# a locally written file is not CAS-backed any more
chmod u+w "$MNT/t1/data/a.txt" "$MNT/t2/data/a.txt"
echo local >"$MNT/t1/data/a.txt"
echo local >"$MNT/t2/data/a.txt"
"$C" check --cas "$CAS" "$MNT/t1" "$MNT/t2" >"$work/check.out" || fail "check after copy-up"
note "check: $(tail -n 1 "$work/check.out")"

# 5. An ActionResult: from a file, and from the action cache.
eval "$($G action "$work/store" "$work/aref" "$work/ar.bin")"
"$C" stage "$MNT/ar1" --action-result "$work/ar.bin" --cas "$CAS"
compare "$work/aref" "$MNT/ar1"
"$C" stage "$MNT/ar2" --action "$ACTION" --cas "$CAS"
compare "$work/aref" "$MNT/ar2"
[ "$(readlink "$MNT/ar2/out/link")" = bin/tool ] || fail "output symlink"
if "$C" stage "$MNT/ar3" --action "$(echo -n nope | sha256sum | cut -d' ' -f1)/4" \
	--cas "$CAS" 2>"$work/err"; then
	fail "stage --action of an unknown action succeeded"
fi
grep -q "not in the action cache" "$work/err" || fail "unknown action: $(cat "$work/err")"
note "stage --action-result and --action: outputs match"

kill -0 "$HELPER_PID" || fail "the helper died"
echo "rev2 materialize passed"
