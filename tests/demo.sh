#!/bin/bash
# make demo: casfs end to end, in a QEMU guest running Debian's kernel.
#
# On the host: build the module, casfs-helper and casfsctl; make a small
# "build output" tree and put its blobs in a local CAS directory
# (file:// backend), with a manifest. In the guest (tests/demo/demo.sh):
# mount casfs, start casfs-helper, stage the tree lazily, show that
# nothing was downloaded, read a few files and show what was fetched.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tests/lib/kernels.sh

echo "== building"
tests/build-modules.sh
make -s tests-bin
make -s -C helper

echo "== making a demo output tree and its CAS"
demo=$top/build/demo
rm -rf "$demo"
mkdir -p "$demo/cas/cas" "$demo/tree"
python3 - "$demo" <<'PY'
import hashlib, os, random, shutil, sys
demo = sys.argv[1]
rnd = random.Random(2026)
files = {}
for i in range(40):
    files[f"lib/module{i:02d}.o"] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 64 << 10)))
for i in range(10):
    files[f"docs/page{i}.txt"] = (f"page {i}\n" * rnd.randrange(1, 500)).encode()
files["data/big.bin"] = os.urandom(8 << 20)
with open("/usr/bin/true", "rb") as f:
    files["bin/tool"] = f.read()
lines = []
for path, data in sorted(files.items()):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(demo, "cas", "cas", h), "wb") as f:
        f.write(data)
    mode = "0755" if path.startswith("bin/") else "0644"
    lines.append(f"{h} {len(data)} {mode} {path}\n")
with open(os.path.join(demo, "manifest"), "w") as f:
    f.writelines(lines)
print(f"{len(files)} files, {sum(map(len, files.values()))} bytes in the CAS")
PY

rel=${CASFS_DEMO_KERNEL:-$(casfs_test_kernels | head -n 1)}
echo "== booting Debian kernel $rel in QEMU (software emulation; ~1 minute)"
export CASFS_TESTS_DIR=$top/tests/demo CASFS_DEMO_DIR=$demo
export CASFS_VM_OUT=$demo/logs
rc=0
tests/run-vm-tests.sh "$rel" >"$demo/run.log" 2>&1 || rc=$?
sed -n '/CASFS-TEST-BEGIN/,/CASFS-RESULT/p' "$demo/logs/console-$rel.log" |
	grep -av '^CASFS-\|^\[ *[0-9.]*\] casfs: \(loading\|module verification\)'
grep -v '^    |' "$demo/run.log" | tail -n 3
exit $rc
