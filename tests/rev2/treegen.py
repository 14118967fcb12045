# SPDX-License-Identifier: GPL-2.0
"""Build REv2 Directory graphs, Trees and ActionResults for casfsctl tests.

Writes straight into a server.py store (STORE/cas/<sha256>, STORE/ac/<sha256>)
and, where there is something to compare, a plain reference directory with
the same files (0555 if executable, else 0444), directories and symlinks.
Prints shell assignments (NAME=HEX/SIZE) on stdout.

    treegen.py sample STORE REFDIR        files, shared subtree, symlinks, empty dir
    treegen.py malicious STORE KIND       one bad entry deep down (KIND: dotdot,
                                          slash, escape, absolute, unsorted, dup,
                                          missing)
    treegen.py action STORE REFDIR ARFILE an ActionResult in the action cache and
                                          in ARFILE
    treegen.py big STORE NDIRS NFILES MANIFEST
                                          NDIRS x NFILES files (no blobs) and the
                                          same files as a casfsctl manifest
    treegen.py seeds OUTDIR               seed inputs for helper/fuzz_tree

Run with /usr/bin/python3 (python3-protobuf, python3-grpc-tools).
"""

import hashlib
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rev2proto as P  # noqa: E402

RE = P.re


def digest(data):
    return RE.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def dstr(d):
    return f"{d.hash}/{d.size_bytes}"


class Store:
    """Blobs go to STORE/cas (or nowhere if store is None)."""

    def __init__(self, store):
        self.store = store
        if store:
            os.makedirs(f"{store}/cas", exist_ok=True)
            os.makedirs(f"{store}/ac", exist_ok=True)

    def put(self, data):
        d = digest(data)
        if self.store:
            with open(f"{self.store}/cas/{d.hash}", "wb") as f:
                f.write(data)
        return d


class Dir:
    """A Directory under construction: entries added in any order, sorted at build()."""

    def __init__(self):
        self.files, self.dirs, self.links = [], [], []

    def file(self, name, data, exe=False):
        self.files.append((name, data, exe))
        return self

    def sub(self, name, d):
        self.dirs.append((name, d))
        return self

    def link(self, name, target):
        self.links.append((name, target))
        return self


def build(top, st, ref=None, dirs_out=None, sort=True):
    """Serialize top and below; returns (root Directory message, bytes).

    dirs_out collects every Directory message (for Tree.children / pages),
    each digest once; ref, if given, is a path made to look like the tree.
    """
    if dirs_out is None:
        dirs_out = {}
    msg = RE.Directory()
    key = (lambda e: e[0].encode()) if sort else (lambda e: 0)
    if ref is not None:
        os.makedirs(ref, exist_ok=True)
    for name, data, exe in sorted(top.files, key=key):
        msg.files.add(name=name, digest=st.put(data), is_executable=exe)
        if ref is not None:
            p = os.path.join(ref, name)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o555 if exe else 0o444)
    for name, sub in sorted(top.dirs, key=key):
        m, b = build(sub, st, os.path.join(ref, name) if ref is not None else None,
                     dirs_out, sort)
        msg.directories.add(name=name, digest=digest(b))
    for name, target in sorted(top.links, key=key):
        msg.symlinks.add(name=name, target=target)
        if ref is not None:
            os.symlink(target, os.path.join(ref, name))
    b = msg.SerializeToString()
    st.put(b)
    dirs_out.setdefault(hashlib.sha256(b).hexdigest(), msg)
    return msg, b


def tree_of(top, st, ref=None, sort=True):
    """Returns (Tree bytes, root Directory bytes, [Directory messages])."""
    dirs = {}
    root, rb = build(top, st, ref, dirs, sort)
    rh = hashlib.sha256(rb).hexdigest()
    t = RE.Tree(root=root, children=[m for h, m in dirs.items() if h != rh])
    return t.SerializeToString(), rb, list(dirs.values())


def sample():
    rnd = random.Random(85)
    shared = (Dir().file("x.so", rnd.randbytes(5000), True).file("y.txt", b"shared\n")
              .link("self", "x.so"))
    deep = Dir().sub("a", Dir().sub("b", Dir().file("c.txt", b"deep\n"))
                     .link("up", "../../data/a.txt"))
    return (Dir()
            .sub("bin", Dir().file("tool", b"#!/bin/sh\necho hi\n", True))
            .sub("data", Dir().file("a.txt", rnd.randbytes(100))
                 .file("big.bin", rnd.randbytes(300 * 1024)).file("empty", b""))
            .sub("lib", shared).sub("lib2", shared)
            .sub("emptydir", Dir())
            .sub("deep", deep)
            .link("link_rel", "data/a.txt")
            .file("README", b"casfs materialize test\n"))


def cmd_sample(store, ref):
    st = Store(store)
    tb, rb, _ = tree_of(sample(), st, ref)
    print(f"TREE={dstr(st.put(tb))}")
    print(f"ROOT={dstr(digest(rb))}")


def cmd_malicious(store, kind):
    st = Store(store)
    bad = Dir().file("ok.txt", b"fine\n")
    sort = True
    if kind == "dotdot":
        bad.file("..", b"x")
    elif kind == "slash":
        bad.file("a/b", b"x")
    elif kind == "escape":
        bad.link("esc", "../../../etc/passwd")
    elif kind == "absolute":
        bad.link("abs", "/etc/passwd")
    elif kind == "unsorted":
        bad.file("zz", b"x").file("aa", b"y")
        sort = False
    elif kind == "dup":
        bad.file("same", b"x").sub("same", Dir())
    elif kind != "missing":
        sys.exit(f"treegen: unknown kind {kind}")
    top = Dir().file("first.txt", b"staged first?\n").sub("a", Dir().sub("b", bad))
    tb, rb, dirs = tree_of(top, st, None, sort)
    if kind == "missing":
        # the Tree without the deepest directory (and the store without it too)
        t = RE.Tree.FromString(tb)
        gone = t.children[0]
        gb = gone.SerializeToString()
        del t.children[0]
        tb = t.SerializeToString()
        os.unlink(f"{store}/cas/{hashlib.sha256(gb).hexdigest()}")
    print(f"TREE={dstr(st.put(tb))}")
    print(f"ROOT={dstr(digest(rb))}")


def cmd_action(store, ref, arfile):
    st = Store(store)
    ar = RE.ActionResult(exit_code=0)
    files = [("out/bin/tool", b"#!/bin/sh\necho tool\n", True),
             ("out/gen/a.h", b"#define A 1\n", False),
             ("top.txt", os.urandom(70000), False)]
    for path, data, exe in files:
        ar.output_files.add(path=path, digest=st.put(data), is_executable=exe)
        p = os.path.join(ref, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, 0o555 if exe else 0o444)
    tree = Dir().file("f1", b"tree file 1\n").sub("s", Dir().file("f2", b"two\n", True)) \
        .link("back", "../gen/a.h")
    tb, _, _ = tree_of(tree, st, os.path.join(ref, "out/treeout"))
    ar.output_directories.add(path="out/treeout", tree_digest=st.put(tb))
    for f in (ar.output_symlinks, ar.output_file_symlinks):
        f.add(path="out/link", target="bin/tool")
    ar.output_directory_symlinks.add(path="out/dlink", target="treeout/s")
    os.symlink("bin/tool", os.path.join(ref, "out/link"))
    os.symlink("treeout/s", os.path.join(ref, "out/dlink"))
    b = ar.SerializeToString()
    action = hashlib.sha256(b"casfs action 85").digest()
    with open(f"{store}/ac/{action.hex()}", "wb") as f:
        f.write(b)
    with open(arfile, "wb") as f:
        f.write(b)
    print(f"ACTION={action.hex()}/{len(b'casfs action 85')}")


def cmd_big(store, ndirs, nfiles, manifest):
    st = Store(store)
    top = Dir()
    lines = []
    for i in range(ndirs):
        d = RE.Directory()
        for j in range(nfiles):
            h = hashlib.sha256(f"{i}/{j}".encode()).hexdigest()
            size = 1 + (i * nfiles + j) % 4096
            d.files.add(name=f"f{j:04d}", digest=RE.Digest(hash=h, size_bytes=size))
            lines.append(f"{h} {size} 0444 d{i:05d}/f{j:04d}\n")
        top.dirs.append((f"d{i:05d}", d))
    # the per-directory messages are built directly: quicker than Dir()
    root = RE.Directory()
    children = []
    for name, d in top.dirs:
        b = d.SerializeToString()
        st.put(b)
        root.directories.add(name=name, digest=digest(b))
        children.append(d)
    rb = root.SerializeToString()
    st.put(rb)
    tb = RE.Tree(root=root, children=children).SerializeToString()
    with open(manifest, "w") as f:
        f.writelines(lines)
    print(f"TREE={dstr(st.put(tb))}")
    print(f"ROOT={dstr(digest(rb))}")


def frame(b):
    return b"\0" + struct.pack(">I", len(b)) + b


def cmd_seeds(out):
    os.makedirs(out, exist_ok=True)
    st = Store(None)
    tb, rb, dirs = tree_of(sample(), st)
    # pages: root first, then the rest split over two messages
    p1 = P.svc.GetTreeResponse(directories=[RE.Directory.FromString(rb)],
                               next_page_token="1").SerializeToString()
    rest = [m for m in dirs if m.SerializeToString() != rb]
    p2 = P.svc.GetTreeResponse(directories=rest[:3], next_page_token="2").SerializeToString()
    p3 = P.svc.GetTreeResponse(directories=rest[3:]).SerializeToString()
    seeds = {
        "pages": b"\0\x07" + frame(p1) + frame(p2) + frame(p3),
        "tree": b"\x03\x01" + tb,
        "tree-policy": b"\x1f\x02" + tb,
    }
    ar = RE.ActionResult()
    ar.output_files.add(path="a/b", digest=digest(b"x"), is_executable=True)
    ar.output_directories.add(path="a/t", tree_digest=digest(tb))
    ar.output_symlinks.add(path="a/l", target="b")
    seeds["action"] = b"\0\0" + ar.SerializeToString()
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def main():
    os.umask(0o022)     # reference directories 0755, like casfsctl's
    a = sys.argv[1:]
    if a[:1] == ["sample"] and len(a) == 3:
        cmd_sample(a[1], a[2])
    elif a[:1] == ["malicious"] and len(a) == 3:
        cmd_malicious(a[1], a[2])
    elif a[:1] == ["action"] and len(a) == 4:
        cmd_action(a[1], a[2], a[3])
    elif a[:1] == ["big"] and len(a) == 5:
        cmd_big(a[1], int(a[2]), int(a[3]), a[4])
    elif a[:1] == ["seeds"] and len(a) == 2:
        cmd_seeds(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
