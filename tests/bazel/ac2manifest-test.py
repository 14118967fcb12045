#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Self-test of ac2manifest (tests/progs/ac2manifest.c) on crafted input.

    ac2manifest-test.py PATH/TO/ac2manifest

Run by `make -C tests/progs check-ac2manifest` on the normal and the
ASan/UBSan build. Action results are encoded here by hand (protobuf wire
format), so that malformed encodings can be made too: good results and the
exact manifest they give; every kind of bad input, which must fail with a
message naming the reason, and be skipped with -k; cross-file conflicts;
files that are not action results at all; and a few hundred random
mutations of a good result, which may succeed or fail but must never crash
or trip a sanitizer.
"""
import hashlib
import os
import random
import subprocess
import sys
import tempfile

AC2M = os.path.abspath(sys.argv[1])
ENV = dict(os.environ,
           ASAN_OPTIONS="exitcode=99:abort_on_error=0:detect_leaks=1",
           UBSAN_OPTIONS="exitcode=99:print_stacktrace=1:halt_on_error=1")
EMPTY = hashlib.sha256(b"").hexdigest()


# --- protobuf wire format ----------------------------------------------------
def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wt):
    return varint(field << 3 | wt)


def ld(field, data):
    if isinstance(data, str):
        data = data.encode()
    return key(field, 2) + varint(len(data)) + data


def vi(field, n):
    return key(field, 0) + varint(n)


def digest(h, size):
    return ld(1, h) + (vi(2, size) if size else b"")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def outfile(path, data=None, h=None, size=None, exe=False, contents=None, raw_digest=None):
    """An OutputFile; the digest is of data unless h/size say otherwise."""
    if data is not None:
        h = sha(data) if h is None else h
        size = len(data) if size is None else size
    m = ld(1, path)
    if raw_digest is not None:
        m += ld(2, raw_digest)
    elif h is not None:
        m += ld(2, digest(h, size))
    if exe:
        m += vi(4, 1)
    if contents is not None:
        m += ld(5, contents)
    return m


def result(*files, exit_code=0, extra=b""):
    m = b"".join(ld(2, f) for f in files)
    if exit_code:
        m += vi(4, exit_code)
    return m + extra


def acname(i):
    return sha(b"action %d" % i)


# --- running -------------------------------------------------------------------
failures = []


def run(acs, args=()):
    """acs: {name: bytes | callable(path)}; returns (rc, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="ac2m.") as d:
        ac = os.path.join(d, "ac")
        os.mkdir(ac)
        for name, v in acs.items():
            p = os.path.join(ac, name)
            if callable(v):
                v(p)
            else:
                with open(p, "wb") as f:
                    f.write(v)
        r = subprocess.run([AC2M, *args, ac], env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def sanitizer_trouble(rc, err):
    return rc not in (0, 1, 2) or "Sanitizer" in err or "runtime error" in err


def check(name, cond, detail=""):
    if not cond:
        failures.append(name)
        print(f"FAIL {name} {detail}")


def line(data, path, exe=False):
    return f"{sha(data)} {len(data)} {'0755' if exe else '0644'} {path}\n"


# --- good input ------------------------------------------------------------------
A = b"hello\n"
B = os.urandom(100000)
X = b"#!/bin/sh\necho hi\n"
good = {
    acname(1): result(outfile("bazel-out/k8-fastbuild/bin/a.txt", A),
                      outfile("bazel-out/k8-fastbuild/bin/x", X, exe=True)),
    # inlined contents that match; an unknown field (execution_metadata,
    # 9) and stdout_digest (6) are ignored; the empty file.
    acname(2): result(outfile("bazel-out/k8-fastbuild/bin/d/b.bin", B, contents=B),
                      outfile("bazel-out/k8-fastbuild/bin/d/empty", b""),
                      extra=ld(6, digest(sha(b"out"), 3)) + ld(9, ld(1, "worker")) + vi(99, 7)),
    # the same output again, identical: printed once
    acname(3): result(outfile("bazel-out/k8-fastbuild/bin/a.txt", A)),
    # an action with no outputs
    acname(4): b"",
}
want = "".join(sorted([
    line(A, "bazel-out/k8-fastbuild/bin/a.txt"),
    line(X, "bazel-out/k8-fastbuild/bin/x", exe=True),
    line(B, "bazel-out/k8-fastbuild/bin/d/b.bin"),
    line(b"", "bazel-out/k8-fastbuild/bin/d/empty"),
], key=lambda s: s.split(" ", 3)[3]))
rc, out, err = run(good)
check("good", rc == 0 and out == want, f"rc={rc}\n{out}\n{err}\nwant:\n{want}")
check("good-summary", "4 action results (0 skipped), 4 files" in err, err)
rc, out, err = run({})
check("empty-dir", rc == 0 and out == "", err)

# --- bad action results ------------------------------------------------------------
P = "bazel-out/k8-fastbuild/bin/"
bad = {
    "absolute": (result(outfile("/etc/passwd", A)), "absolute output path"),
    "dotdot": (result(outfile(P + "../../../etc/x", A)), "'..' component"),
    "dotdot-only": (result(outfile("..", A)), "'..' component"),
    "dot": (result(outfile(P + "./a", A)), "'.' component"),
    "empty-comp": (result(outfile(P + "a//b", A)), "empty component"),
    "trailing-slash": (result(outfile(P + "a/", A)), "empty component"),
    "empty-path": (result(outfile("", A)), "empty output path"),
    "newline": (result(outfile(P + "a\nb", A)), "control character"),
    "del": (result(outfile(P + "a\x7fb", A)), "control character"),
    "blank": (result(outfile(" " + P + "a", A)), "starts with a blank"),
    "long-path": (result(outfile("a/" * 2100 + "b", A)), "longer than 4095"),
    "long-name": (result(outfile(P + "n" * 256, A)), "component longer than 255"),
    "hash-63": (result(outfile(P + "a", h=sha(A)[:63], size=6)), "64 lowercase hex"),
    "hash-65": (result(outfile(P + "a", h=sha(A) + "0", size=6)), "64 lowercase hex"),
    "hash-upper": (result(outfile(P + "a", h=sha(A).upper(), size=6)), "64 lowercase hex"),
    "hash-nonhex": (result(outfile(P + "a", h="g" * 64, size=6)), "64 lowercase hex"),
    "hash-empty": (result(outfile(P + "a", raw_digest=vi(2, 6))), "64 lowercase hex"),
    "no-digest": (result(outfile(P + "a")), "no digest"),
    "size-negative": (result(outfile(P + "a", h=sha(A), size=-1)), "negative size"),
    "size-min": (result(outfile(P + "a", h=sha(A), size=-(1 << 63))), "negative size"),
    "size-huge": (result(outfile(P + "a", h=sha(A), size=(1 << 40) + 1)), "above the limit"),
    "size-0-wrong-hash": (result(outfile(P + "a", h=sha(A), size=0)), "sha256 of nothing"),
    "inline-short": (result(outfile(P + "a", A, contents=A[:-1])), "inlined bytes"),
    "inline-wrong": (result(outfile(P + "a", A, contents=b"HELLO\n")), "do not match"),
    "nul-path": (result(outfile(P + "a\0/../../x", A)), "NUL byte in string field"),
    "nul-hash": (result(outfile(P + "a", raw_digest=ld(1, sha(A)[:10] + "\0" + sha(A)[11:]) + vi(2, 6))),
                 "NUL byte in string field"),
    "exit-code": (result(outfile(P + "a", A), exit_code=1), "exit code 1"),
    "exit-code-neg": (result(outfile(P + "a", A), exit_code=-1), "exit code -1"),
    "out-dir": (result(outfile(P + "a", A), extra=ld(3, ld(1, P + "dir") + ld(3, digest(sha(A), 6)))),
                "output directory"),
    "out-symlink": (result(extra=ld(12, ld(1, P + "l") + ld(2, "a"))), "symlinks"),
    "out-file-symlink": (result(extra=ld(10, ld(1, P + "l") + ld(2, "/etc/passwd"))), "symlinks"),
    "out-dir-symlink": (result(extra=ld(11, ld(1, P + "l") + ld(2, "."))), "symlinks"),
    "truncated": (result(outfile(P + "a", A))[:-5], ""),
    "len-past-end": (key(2, 2) + varint(1000) + b"xx", "runs past"),
    "overlong-varint": (key(4, 0) + b"\xff" * 11, "over-long varint"),
    "truncated-key": (b"\x80", "field key"),
    "field-0": (key(0, 0) + varint(1), "field number 0"),
    "group": (key(2, 3) + key(2, 4), "groups"),
    "wrong-wire-type": (vi(2, 5), "not a valid ActionResult"),
    "path-as-varint": (ld(2, vi(1, 5)), "not a valid ActionResult"),
    "garbage": (bytes(random.Random(1).randrange(256) for _ in range(300)), ""),
}
for name, (data, msg) in bad.items():
    rc, out, err = run({acname(0): data})
    check("bad-" + name, rc == 1 and out == "" and msg in err and "ac2manifest: " in err,
          f"rc={rc} out={out!r} err={err!r}")
    check("bad-" + name + "-sanitizer", not sanitizer_trouble(rc, err), err)
    # -k: skipped with a warning; the good results still come out
    acs = dict(good)
    acs[acname(0)] = data
    rc, out, err = run(acs, ["-k"])
    check("keep-going-" + name, rc == 0 and out == want and "skipped" in err and msg in err,
          f"rc={rc} err={err!r}")

def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


# --- not action results ---------------------------------------------------------------
GOOD1 = good[acname(1)]
not_ac = {
    "bad-name": ({"README": GOOD1}, "not an action cache entry"),
    "upper-name": ({acname(5).upper(): GOOD1}, "not an action cache entry"),
    "dot-name": ({".tmp": GOOD1}, "not an action cache entry"),
    "directory": ({acname(5): lambda p: os.mkdir(p)}, "not a regular file"),
    "fifo": ({acname(5): lambda p: os.mkfifo(p)}, "not a regular file"),
    "symlink": ({acname(5): lambda p: os.symlink("/etc/passwd", p)}, "open:"),
    "too-big": ({acname(5): lambda p: sparse(p, (64 << 20) + 1)}, "more than the limit"),
}
for name, (acs, msg) in not_ac.items():
    rc, out, err = run(acs)
    check("file-" + name, rc == 1 and out == "" and msg in err, f"rc={rc} err={err!r}")

# --- conflicts across action results (errors even with -k) ----------------------------
conflicts = {
    "digest": ({acname(1): result(outfile(P + "a", A)), acname(2): result(outfile(P + "a", B))},
               "disagree"),
    "mode": ({acname(1): result(outfile(P + "a", A)),
              acname(2): result(outfile(P + "a", A, exe=True))}, "disagree"),
    "parent": ({acname(1): result(outfile(P + "d", A)), acname(2): result(outfile(P + "d/e", B))},
               "parent directory"),
    "parent-same-result": ({acname(1): result(outfile(P + "d", A), outfile(P + "d/e/f", B))},
                           "parent directory"),
}
for name, (acs, msg) in conflicts.items():
    for args in ([], ["-k"]):
        rc, out, err = run(acs, args)
        check(f"conflict-{name}{args}", rc == 1 and out == "" and msg in err,
              f"rc={rc} err={err!r}")
# A name that only shares a prefix is not a parent.
rc, out, err = run({acname(1): result(outfile(P + "d", A), outfile(P + "d.x/e", B),
                                      outfile(P + "dd/e", X))})
check("not-a-parent", rc == 0 and len(out.splitlines()) == 3, f"rc={rc} err={err!r}")

# --- usage -------------------------------------------------------------------------------
for args in ([], ["-x", "d"], ["a", "b"]):
    r = subprocess.run([AC2M, *args], env=ENV, capture_output=True)
    check(f"usage{args}", r.returncode == 2 and b"usage" in r.stderr)
r = subprocess.run([AC2M, "/nonexistent-ac-dir"], env=ENV, capture_output=True)
check("missing-dir", r.returncode == 1 and b"No such file" in r.stderr)

# --- random mutations: never a crash --------------------------------------------------------
rnd = random.Random(int(os.environ.get("SEED", "1")))
base = [good[acname(1)], good[acname(2)]]
for i in range(300):
    m = bytearray(rnd.choice(base))
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(3)
        if op == 0 and m:
            m[rnd.randrange(len(m))] = rnd.randrange(256)
        elif op == 1 and m:
            pos = rnd.randrange(len(m))
            del m[pos:pos + rnd.randint(1, 8)]
        else:
            pos = rnd.randrange(len(m) + 1)
            m[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
    rc, out, err = run({acname(0): bytes(m)})
    check(f"mutation-{i}", rc in (0, 1) and not sanitizer_trouble(rc, err),
          f"rc={rc} err={err!r} input={bytes(m).hex()}")
    if rc == 0:
        # Whatever was accepted must be a well-formed manifest.
        for ln in out.splitlines():
            h, size, mode, path = ln.split(" ", 3)
            check(f"mutation-{i}-line", len(h) == 64 and int(size) >= 0 and
                  mode in ("0644", "0755") and not path.startswith("/") and
                  ".." not in path.split("/"), ln)

n = 2 + len(bad) * 3 + len(not_ac) + len(conflicts) * 2 + 1 + 4 + 300
if failures:
    print(f"ac2manifest-test: {len(failures)} of about {n} checks failed: {' '.join(failures[:20])}")
    sys.exit(1)
print(f"ac2manifest-test: OK ({AC2M})")
