#!/bin/bash
# make demo: casfs end to end, in a QEMU guest running Debian's kernel.
#
# On the host: build the module, casfs-helper and casfsctl; make a small
# "build output" tree, put its blobs and its REv2 Directory messages in a
# store for the reference REv2 server (tests/rev2/server.py), with a
# manifest too. In the guest (tests/demo/10-demo.sh): mount casfs, start
# the server and casfs-helper on grpc://, materialize the tree lazily from
# its root Directory digest, show that nothing was downloaded, read a few
# files and show what was fetched. Then (tests/demo/20-bazel.sh) Bazel
# 7.7.1 builds with casfs as its output tree through casfs-outputd, and
# nothing is downloaded until read.
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
/usr/bin/python3 - "$demo" "$top/tests/rev2" <<'PY'
import hashlib, os, random, shutil, sys
demo = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import rev2proto as P
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

# The same tree as REv2 Directory messages, each stored under its digest.
def put(blob):
    h = hashlib.sha256(blob).hexdigest()
    with open(os.path.join(demo, "cas", "cas", h), "wb") as f:
        f.write(blob)
    return P.re.Digest(hash=h, size_bytes=len(blob))
def directory(prefix):
    d = P.re.Directory()
    names = sorted({p[len(prefix):].split("/")[0] for p in files if p.startswith(prefix)})
    for n in names:
        full = prefix + n
        if full in files:
            data = files[full]
            d.files.add(name=n, digest=P.re.Digest(hash=hashlib.sha256(data).hexdigest(),
                                                   size_bytes=len(data)),
                        is_executable=full.startswith("bin/"))
        else:
            d.directories.add(name=n, digest=put(directory(full + "/").SerializeToString()))
    return d
root = put(directory("").SerializeToString())
with open(os.path.join(demo, "root-digest"), "w") as f:
    f.write(f"{root.hash}/{root.size_bytes}\n")
print(f"{len(files)} files, {sum(map(len, files.values()))} bytes in the CAS; "
      f"root Directory {root.hash}/{root.size_bytes}")
PY

# The newest Debian kernel (sid's 7.x, beside sid's Bazel 7.7.1 in the
# chroot); sed reads the whole list (tail or head would stop early and
# could kill the writer with SIGPIPE under pipefail).
rel=${CASFS_DEMO_KERNEL:-$(casfs_distro_kernels | sed -n '$p')}
echo "== booting Debian kernel $rel in QEMU (software emulation; ~4 minutes)"
export CASFS_TESTS_DIR=$top/tests/demo CASFS_DEMO_DIR=$demo
export CASFS_VM_OUT=$demo/logs
rc=0
tests/run-vm-tests.sh "$rel" >"$demo/run.log" 2>&1 || rc=$?
sed -n '/CASFS-TEST-BEGIN/,/CASFS-RESULT/p' "$demo/logs/console-$rel.log" |
	grep -av '^CASFS-\|^\[ *[0-9.]*\] casfs: \(loading\|module verification\)'
grep -v '^    |' "$demo/run.log" | tail -n 3
exit $rc
