#!/bin/bash
# Real Bazel outputs in casfs over REv2 gRPC: the guest half of
# tests/rev2/bazel-grpc-test.sh, which had Debian's Bazel upload a build to
# the reference REv2 server (tests/rev2/server.py) over grpc:// and
# download it all again (--remote_download_outputs=all), and wrote
# $CASFS_REPO/build/rev2-bazel/{store,expected,actions}. Here the same
# server serves a copy of that store on loopback, casfs-helper fetches over
# grpc://, and for every action digest `casfsctl stage --action` asks the
# Action Cache (GetActionResult) and stages the outputs. Then:
#   - staging fetched nothing; stat and the digest xattrs fetch nothing;
#   - the executable outputs run and print what the host's copies print;
#   - every staged output is byte-identical to Bazel's full download, and
#     every output of the full download was staged.
# timeout: 300
. "$(dirname "$0")/../lib/guest.sh"
H=$CASFS_REPO/helper
OUT=$CASFS_REPO/build/rev2-bazel
for f in store/ac store/cas expected actions; do
	[ -e "$OUT/$f" ] ||
		fail "$OUT/$f is missing: run tests/rev2/bazel-grpc-test.sh on the host first"
done
[ -x "$H/casfs-helper" ] && [ -x "$H/casfsctl" ] || fail "helper not built (make -C helper)"
casfs_rev2_frame /tmp/bazel-grpc
cp -r "$OUT/store" "$work/store"	# the host tree is read-only here
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE,timeout=30" casfs "$MNT"
ROOT=$MNT/execroot

casfs_start_rev2 "$work/store" 0
G=grpc://127.0.0.1:$REV2_PORT
casfs_start_helper "$G" --jobs 4 --timeout 20

n_actions=$(grep -c . "$OUT/actions")
note "stage $n_actions actions from the Action Cache (GetActionResult)"
while read -r a; do
	"$H/casfsctl" stage "$ROOT" --action "$a" --cas "$G" >>"$work/stage.log" ||
		{ cat "$work/stage.log"; fail "stage --action $a"; }
done <"$OUT/actions"
[ "$(grep -c 'GetActionResult: done' "$REV2_LOG")" -ge "$n_actions" ] ||
	fail "fewer GetActionResult calls than actions"
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "staging fetched something"

# Metadata only: every file of the full download is staged with its size,
# and casfsctl digest answers from the xattr; still nothing fetched.
n_files=0
while IFS= read -r -d '' f; do
	p=${f#"$OUT/expected/"}
	[ -f "$ROOT/$p" ] || fail "$p: not staged"
	[ "$(stat -c %s "$ROOT/$p")" = "$(stat -c %s "$f")" ] || fail "$p: size"
	"$H/casfsctl" digest "$ROOT/$p" >/dev/null || fail "$p: digest"
	n_files=$((n_files + 1))
done < <(find "$OUT/expected" -type f -print0)
[ -z "$(ls -A "$CACHE/blobs")" ] || fail "stat or digest fetched something"
n_staged=$(find "$ROOT" -type f | wc -l)
[ "$n_staged" = "$n_files" ] || fail "$n_staged files staged, the full download has $n_files"
note "$n_files outputs staged; stat and digest fetched nothing"

# Bazel makes every output it downloads 0555; the ActionResult marks only
# real executables (is_executable), and those are what casfs gives 0555.
note "executables (is_executable) run like the host's copies"
[ -x "$ROOT/bazel-out/k8-fastbuild/bin/hello" ] || fail "hello is not executable in casfs"
while IFS= read -r -d '' f; do
	p=${f#"$OUT/expected/"}
	[ -x "$ROOT/$p" ] || continue
	[ -x "$f" ] || fail "$p: executable in casfs, not on the host"
	case $p in *.sh) continue ;; esac	# scripts may want arguments
	rc=0
	a=$("$ROOT/$p" 2>&1) || rc=$?
	rc2=0
	b=$("$f" 2>&1) || rc2=$?
	[ "$a" = "$b" ] && [ $rc = $rc2 ] ||
		fail "$p: exit $rc and '$a' in casfs, exit $rc2 and '$b' on the host"
	note "$p runs (exit $rc)"
done < <(find "$OUT/expected" -type f -print0)

note "compare every output with Bazel's full download"
while IFS= read -r -d '' f; do
	p=${f#"$OUT/expected/"}
	cmp "$ROOT/$p" "$f" || fail "$p differs"
done < <(find "$OUT/expected" -type f -print0)
n_blobs=$(find "$ROOT" -type f -size +0 -exec "$H/casfsctl" digest {} + | cut -d' ' -f1 | sort -u | wc -l)
[ "$(ls "$CACHE/blobs" | wc -l)" = "$n_blobs" ] ||
	fail "$(ls "$CACHE/blobs" | wc -l) blobs in the cache, want $n_blobs"
"$H/casfsctl" stats | tee "$work/stats" | sed -n '/^helper/,$p'
! grep -Eq '^ +(errors[a-z_]*|timeouts|done_failed) +[1-9]' "$work/stats" || fail "fetch errors"
"$H/casfsctl" check --cas "$G" "$ROOT" || fail "casfsctl check: blobs missing"
echo "bazel grpc e2e passed: $n_actions actions, $n_files outputs, $n_blobs blobs fetched over gRPC"
