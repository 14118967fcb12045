#!/bin/bash
# The demo's second half, inside the guest: Debian sid's Bazel 7.7.1 (in
# the sid chroot, tests/lib/bazel7.sh) builds tests/outputd/workspace with
# casfs as its output tree through casfs-outputd. The remote cache is
# filled by a first build, then forgotten locally (bazel clean); the
# build with the output service downloads nothing; running the built
# program and reading an output fetch exactly those.
# timeout: 900
. "$CASFS_REPO/tests/lib/guest.sh"
. "$CASFS_REPO/tests/lib/bazel7.sh"
H=$CASFS_REPO/helper
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
bazel7_available || fail "no Bazel 7.7.1 in $BZ_CHROOT (tests/sid-chroot.sh installs it)"

casfs_rev2_frame /tmp/casfs-demo-bazel
od_pid=
trap '[ -n "$od_pid" ] && kill "$od_pid"; bazel7_teardown; casfs_rev2_teardown' EXIT
uid=4242
casfs_load
CACHE=$(casfs_new_cache 512m)
MNT=$(mktemp -d /tmp/casfs-mnt.XXXXXX)
mount -t casfs -o "cache=$CACHE" casfs "$MNT"
chmod 0755 "$MNT"
mkdir "$MNT/outputs"
chown "$uid:$uid" "$MNT/outputs"
mkdir -p "$work/store"
casfs_start_rev2 "$work/store" 0 --quiet --read-log "$work/reads.log"
: >"$work/reads.log"
casfs_start_helper "grpc://127.0.0.1:$REV2_PORT"
RC=--remote_cache=grpc://127.0.0.1:$REV2_PORT
bazel7_setup "$CASFS_REPO/tests/outputd/workspace"
bazel7_bind "$MNT" /mnt/casfs
bazel7_user "$uid"
quiet() { "$@" >"$work/bazel.log" 2>&1 || { cat "$work/bazel.log"; fail "bazel $2 failed"; }; }
summary() { grep -E 'INFO: [0-9]+ process' "$work/bazel.log" || true; }

say "1. fill the remote cache (a plain build with --remote_cache), then forget it locally"
quiet bazel7 build "$RC" //:everything
summary
quiet bazel7 clean
echo "remote cache: $(find "$work/store/ac" -type f | wc -l) action results, $(find "$work/store/cas" -type f | wc -l) blobs"

say "2. casfs-outputd, as the user, serves Bazel's output service"
setpriv "--reuid=$uid" "--regid=$uid" --clear-groups "$H/casfs-outputd" \
	--root "$MNT/outputs" --bazel-root /mnt/casfs/outputs \
	--listen grpc://127.0.0.1:8981 --cas "grpc://127.0.0.1:$REV2_PORT" \
	>"$work/outputd.log" 2>&1 &
od_pid=$!
for _ in $(seq 100); do
	grep -q serving "$work/outputd.log" && break
	sleep 0.1
done
sed 's/^/  /' "$work/outputd.log"
cat <<EOF
.bazelrc:
  build $RC
  build --experimental_remote_output_service=grpc://127.0.0.1:8981
  build --experimental_remote_output_service_output_path_prefix=/mnt/casfs/outputs
EOF

say "3. bazel build with casfs as the output tree"
: >"$work/reads.log"
quiet bazel7 build "$RC" --experimental_remote_output_service=grpc://127.0.0.1:8981 \
	--experimental_remote_output_service_output_path_prefix=/mnt/casfs/outputs //:everything
summary
out=$BZ_CHROOT$(bazel7_output_base)/execroot/casfs_outputd/bazel-out
run readlink "$out"
bin=$MNT/outputs/$(basename "$(readlink "$out")")/k8-fastbuild/bin
run ls -l "$bin"
echo "files under bazel-out: $(find "$bin" -type f | wc -l), $(du -sh --apparent-size "$bin" | cut -f1) (apparent)"
echo "blobs fetched during the build: $(grep -c . "$work/reads.log" || true)" \
	"(the inputs of the one local, no-remote action, which read them through casfs)"
run "$H/casfsctl" digest "$bin/hello"
run "$H/casfsctl" stats

say "4. run the built program (nothing read it yet): fetched on first use"
r0=$(grep -c . "$work/reads.log" || true)
run "$bin/hello" one two
echo "blobs fetched for that: $(($(grep -c . "$work/reads.log" || true) - r0))"
run "$bin/hello" again
echo "blobs fetched in all now: $(grep -c . "$work/reads.log" || true) (the second run was a cache hit)"
quiet bazel7 shutdown
echo
echo "demo: Bazel 7.7.1 built with casfs as its output tree; nothing was downloaded until read"
