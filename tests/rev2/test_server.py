#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Self-test of tests/rev2/server.py with a grpcio client: every RPC and
every fault mode, so that what the C client will meet is pinned down.

    /usr/bin/python3 tests/rev2/test_server.py [-v]

Starts server.py several times (port 0, scratch roots under /tmp), prints
one line per check and ends with `N passed, N failed` (exit 1 if any
failed).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rev2proto as P  # noqa: E402

VERBOSE = "-v" in sys.argv
PASSED = 0
FAILED = 0
SCRATCH = tempfile.mkdtemp(prefix="casfs-rev2-test.")


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok   %s" % name)
    else:
        FAILED += 1
        print("FAIL %s %s" % (name, detail))


def digest(data):
    return P.re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def blob(n, seed):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


class Srv:
    def __init__(self, *args, preload=(), tls=None):
        self.root = tempfile.mkdtemp(dir=SCRATCH)
        os.makedirs(os.path.join(self.root, "cas"))
        for data in preload:
            with open(os.path.join(self.root, "cas", digest(data).hash), "wb") as f:
                f.write(data)
        cmd = [sys.executable, os.path.join(HERE, "server.py"), "--root", self.root,
               "--port", "0"] + list(args)
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.log = open(os.path.join(self.root, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=None if VERBOSE else self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY port="):
            raise SystemExit("server did not start: %r" % line)
        self.port = int(line.split()[1].split("=")[1])
        if tls:
            with open(tls[0], "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self.ch = grpc.secure_channel("127.0.0.1:%d" % self.port, creds,
                                          options=[("grpc.ssl_target_name_override", "localhost")])
        else:
            self.ch = grpc.insecure_channel("127.0.0.1:%d" % self.port)
        self.cas = P.svc_grpc.ContentAddressableStorageStub(self.ch)
        self.ac = P.svc_grpc.ActionCacheStub(self.ch)
        self.caps = P.svc_grpc.CapabilitiesStub(self.ch)
        self.bs = P.bs_grpc.ByteStreamStub(self.ch)

    def read(self, d, offset=0, limit=0, instance="", timeout=10):
        name = "%sblobs/%s/%d" % (instance + "/" if instance else "", d.hash, d.size_bytes)
        got = bytearray()
        try:
            for r in self.bs.Read(P.bs.ReadRequest(resource_name=name, read_offset=offset,
                                                   read_limit=limit), timeout=timeout):
                got += r.data
        except grpc.RpcError as e:
            return bytes(got), e
        return bytes(got), None

    def write(self, data, d=None, chunk=100000, instance=""):
        d = d or digest(data)
        name = "%suploads/%s/blobs/%s/%d" % (instance + "/" if instance else "", uuid.uuid4(),
                                              d.hash, d.size_bytes)

        def reqs():
            off = 0
            while True:
                part = data[off:off + chunk]
                last = off + len(part) >= len(data)
                yield P.bs.WriteRequest(resource_name=name if off == 0 else "",
                                        write_offset=off, data=part, finish_write=last)
                off += len(part)
                if last:
                    return
        return name, self.bs.Write(reqs(), timeout=10)

    def stop(self):
        self.ch.close()
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def code(e):
    return e.code() if isinstance(e, grpc.RpcError) else None


def expect_error(fn, want):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code() == want, e
    return False, None


# --------------------------------------------------------------------------------
def test_basic():
    s = Srv("--max-batch", "1000000")
    try:
        caps = s.caps.GetCapabilities(P.svc.GetCapabilitiesRequest(), timeout=5)
        cc = caps.cache_capabilities
        check("GetCapabilities: SHA256, update enabled, max batch, API 2.0..2.3",
              list(cc.digest_functions) == [P.svc.DigestFunction.SHA256]
              and cc.action_cache_update_capabilities.update_enabled
              and cc.max_batch_total_size_bytes == 1000000
              and not cc.supported_compressors
              and caps.low_api_version.major == 2 and caps.high_api_version.minor == 3, str(caps))
        ok, _ = expect_error(lambda: s.caps.GetCapabilities(
            P.svc.GetCapabilitiesRequest(instance_name="other"), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT)
        check("GetCapabilities: unknown instance is INVALID_ARGUMENT", ok)

        a, b = blob(1000, 1), blob(5000, 2)
        bad = P.re.Digest(hash=digest(b"x").hash, size_bytes=1)
        r = s.cas.BatchUpdateBlobs(P.svc.BatchUpdateBlobsRequest(requests=[
            P.svc.BatchUpdateBlobsRequest.Request(digest=digest(a), data=a),
            P.svc.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b),
            P.svc.BatchUpdateBlobsRequest.Request(digest=bad, data=b"y")]), timeout=5)
        check("BatchUpdateBlobs: per-blob status OK, OK, INVALID_ARGUMENT",
              [x.status.code for x in r.responses] == [0, 0, 3], str(r))
        check("BatchUpdateBlobs: blobs on disk under cas/<hex>",
              open(os.path.join(s.root, "cas", digest(b).hash), "rb").read() == b)

        missing = digest(b"not there")
        empty = digest(b"")
        r = s.cas.FindMissingBlobs(P.svc.FindMissingBlobsRequest(
            blob_digests=[digest(a), missing, empty, digest(b)]), timeout=5)
        check("FindMissingBlobs: only the absent blob (the empty blob is always there)",
              [d.hash for d in r.missing_blob_digests] == [missing.hash], str(r))
        ok, _ = expect_error(lambda: s.cas.FindMissingBlobs(P.svc.FindMissingBlobsRequest(
            blob_digests=[P.re.Digest(hash="XYZ", size_bytes=1)]), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT)
        check("FindMissingBlobs: malformed hash is INVALID_ARGUMENT", ok)

        r = s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(
            digests=[digest(a), missing, digest(b), empty]), timeout=5)
        check("BatchReadBlobs: data and per-blob NOT_FOUND",
              [x.status.code for x in r.responses] == [0, 5, 0, 0]
              and r.responses[0].data == a and r.responses[2].data == b
              and r.responses[3].data == b"", str([x.status for x in r.responses]))
        ok, _ = expect_error(lambda: s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(
            digests=[digest(a)] * 1001), timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        check("BatchReadBlobs: over max_batch_total_size_bytes is INVALID_ARGUMENT", ok)

        big = blob(1500 * 1000 + 7, 3)
        name, wr = s.write(big)
        check("ByteStream.Write: committed_size is the size", wr.committed_size == len(big))
        got, err = s.read(digest(big))
        check("ByteStream.Read: whole blob", got == big and err is None, str(err))
        got, err = s.read(digest(big), offset=1000, limit=70000)
        check("ByteStream.Read: read_offset and read_limit", got == big[1000:71000], str(err))
        got, err = s.read(digest(big), offset=len(big))
        check("ByteStream.Read: read_offset == size gives nothing", got == b"" and err is None)
        got, err = s.read(digest(big), offset=len(big) + 1)
        check("ByteStream.Read: read_offset past the end is OUT_OF_RANGE",
              code(err) == grpc.StatusCode.OUT_OF_RANGE, str(err))
        got, err = s.read(missing)
        check("ByteStream.Read: absent blob is NOT_FOUND",
              code(err) == grpc.StatusCode.NOT_FOUND, str(err))
        got, err = s.read(empty)
        check("ByteStream.Read: empty blob", got == b"" and err is None, str(err))
        q = s.bs.QueryWriteStatus(P.bs.QueryWriteStatusRequest(resource_name=name), timeout=5)
        check("QueryWriteStatus: finished upload is complete",
              q.complete and q.committed_size == len(big), str(q))
        ok, _ = expect_error(lambda: s.bs.QueryWriteStatus(P.bs.QueryWriteStatusRequest(
            resource_name="uploads/%s/blobs/%s/3" % (uuid.uuid4(), missing.hash)), timeout=5),
            grpc.StatusCode.NOT_FOUND)
        check("QueryWriteStatus: unknown upload is NOT_FOUND", ok)
        _, wr = s.write(big, chunk=1000)
        check("ByteStream.Write: existing blob returns at once with the full size",
              wr.committed_size == len(big))
        c = blob(300000, 4)
        ok, e = expect_error(lambda: s.write(c, d=P.re.Digest(hash=digest(a).hash, size_bytes=len(c))),
                             grpc.StatusCode.INVALID_ARGUMENT)
        check("ByteStream.Write: data not matching the hash is INVALID_ARGUMENT, not stored",
              ok and not os.path.exists(os.path.join(s.root, "cas", digest(c).hash))
              and os.path.getsize(os.path.join(s.root, "cas", digest(a).hash)) == len(a), str(e))

        # GetTree: root -> x, y (both the same Directory 'shared') and z -> shared
        f1 = P.re.FileNode(name="f", digest=digest(a), is_executable=True)
        shared = P.re.Directory(files=[f1])
        sd = digest(shared.SerializeToString())
        z = P.re.Directory(directories=[P.re.DirectoryNode(name="s", digest=sd)])
        zd = digest(z.SerializeToString())
        root = P.re.Directory(directories=[P.re.DirectoryNode(name="x", digest=sd),
                                           P.re.DirectoryNode(name="y", digest=sd),
                                           P.re.DirectoryNode(name="z", digest=zd)],
                              symlinks=[P.re.SymlinkNode(name="l", target="x/f")])
        rd = digest(root.SerializeToString())
        s.cas.BatchUpdateBlobs(P.svc.BatchUpdateBlobsRequest(requests=[
            P.svc.BatchUpdateBlobsRequest.Request(digest=digest(m.SerializeToString()),
                                                  data=m.SerializeToString())
            for m in (shared, z, root)]), timeout=5)
        pages = list(s.cas.GetTree(P.svc.GetTreeRequest(root_digest=rd, page_size=1), timeout=5))
        dirs = [d for p in pages for d in p.directories]
        check("GetTree: page_size 1 streams 3 pages, each Directory once, root first",
              len(pages) == 3 and len(dirs) == 3 and dirs[0] == root
              and set(d.SerializeToString() for d in dirs) ==
              set(m.SerializeToString() for m in (root, shared, z))
              and pages[-1].next_page_token == "" and pages[0].next_page_token != "",
              str([(len(p.directories), p.next_page_token) for p in pages]))
        rest = list(s.cas.GetTree(P.svc.GetTreeRequest(root_digest=rd, page_size=2,
                                                       page_token=pages[0].next_page_token),
                                  timeout=5))
        check("GetTree: page_token resumes",
              [d for p in rest for d in p.directories] == dirs[1:], str(rest))
        ok, _ = expect_error(lambda: list(s.cas.GetTree(P.svc.GetTreeRequest(
            root_digest=missing), timeout=5)), grpc.StatusCode.NOT_FOUND)
        check("GetTree: absent root is NOT_FOUND", ok)

        ar = P.re.ActionResult(output_files=[P.re.OutputFile(path="out/a", digest=digest(a))],
                               exit_code=0)
        ad = digest(b"an action")
        r = s.ac.UpdateActionResult(P.svc.UpdateActionResultRequest(action_digest=ad,
                                                                    action_result=ar), timeout=5)
        check("UpdateActionResult: returns the result", r == ar)
        r = s.ac.GetActionResult(P.svc.GetActionResultRequest(action_digest=ad), timeout=5)
        check("GetActionResult: same result back", r == ar)
        ok, _ = expect_error(lambda: s.ac.GetActionResult(P.svc.GetActionResultRequest(
            action_digest=missing), timeout=5), grpc.StatusCode.NOT_FOUND)
        check("GetActionResult: unknown action is NOT_FOUND", ok)
    finally:
        s.stop()


def test_instance_and_paging():
    a = blob(100, 5)
    s = Srv("--instance", "main/ci", "--tree-pages-per-call", "1", "--tree-page-max", "1",
            preload=[a])
    try:
        got, err = s.read(digest(a), instance="main/ci")
        check("--instance: Read of {instance}/blobs/{hash}/{size}", got == a and err is None, str(err))
        got, err = s.read(digest(a))
        check("--instance: Read without the instance is INVALID_ARGUMENT",
              code(err) == grpc.StatusCode.INVALID_ARGUMENT, str(err))
        c = blob(2000, 6)
        _, wr = s.write(c, instance="main/ci")
        check("--instance: Write to {instance}/uploads/...", wr.committed_size == len(c))
        sub = P.re.Directory(files=[P.re.FileNode(name="a", digest=digest(a))])
        root = P.re.Directory(directories=[P.re.DirectoryNode(
            name="d", digest=digest(sub.SerializeToString()))])
        s.cas.BatchUpdateBlobs(P.svc.BatchUpdateBlobsRequest(instance_name="main/ci", requests=[
            P.svc.BatchUpdateBlobsRequest.Request(digest=digest(m.SerializeToString()),
                                                  data=m.SerializeToString())
            for m in (sub, root)]), timeout=5)
        rd = digest(root.SerializeToString())
        r1 = list(s.cas.GetTree(P.svc.GetTreeRequest(instance_name="main/ci", root_digest=rd),
                                timeout=5))
        r2 = list(s.cas.GetTree(P.svc.GetTreeRequest(instance_name="main/ci", root_digest=rd,
                                                     page_token=r1[-1].next_page_token),
                                timeout=5))
        check("GetTree: --tree-pages-per-call 1 makes the client page with page_token",
              len(r1) == 1 and r1[0].next_page_token and r1[0].directories[0] == root
              and len(r2) == 1 and r2[0].directories[0] == sub and r2[0].next_page_token == "",
              str((r1, r2)))
    finally:
        s.stop()


def test_faults():
    big = blob(1000 * 1000, 7)
    d = digest(big)

    s = Srv("--fault", "corrupt:once", preload=[big])
    try:
        got, err = s.read(d)
        check("fault corrupt: Read returns the full length, status OK, wrong bytes",
              err is None and len(got) == len(big) and got != big
              and sum(x != y for x, y in zip(got, big)) == 1)
        got, err = s.read(d)
        check("fault corrupt:once: the retry gets the right bytes", got == big)
    finally:
        s.stop()
    s = Srv("--fault", "corrupt:once@BatchReadBlobs", preload=[big])
    try:
        r = s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(digests=[d]), timeout=5)
        r2 = s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(digests=[d]), timeout=5)
        check("fault corrupt@BatchReadBlobs: status OK, wrong bytes; then right",
              r.responses[0].status.code == 0 and r.responses[0].data != big
              and len(r.responses[0].data) == len(big) and r2.responses[0].data == big)
    finally:
        s.stop()

    s = Srv("--fault", "truncate:once", preload=[big])
    try:
        got, err = s.read(d)
        check("fault truncate: Read ends with OK after half the bytes",
              err is None and got == big[:len(big) // 2], "%d bytes, %s" % (len(got), err))
        got, err = s.read(d)
        check("fault truncate:once: the retry gets everything", got == big)
    finally:
        s.stop()

    s = Srv("--fault", "rst:once", preload=[big])
    try:
        got, err = s.read(d)
        check("fault rst: half the bytes, then RST_STREAM (grpcio: CANCELLED)",
              code(err) == grpc.StatusCode.CANCELLED and 0 < len(got) <= len(big) // 2
              and big.startswith(got), "%d bytes, %s" % (len(got), err))
        if VERBOSE and err is not None:
            print("     rst client error: %s" % err.details())
        rest, err2 = s.read(d, offset=len(got))
        check("fault rst:once: resuming with read_offset completes the blob",
              err2 is None and got + rest == big)
    finally:
        s.stop()

    s = Srv("--fault", "goaway:200:once@Read", preload=[big])
    try:
        t0 = time.monotonic()
        got, err = s.read(d)
        dt = time.monotonic() - t0
        check("fault goaway: half the bytes, then the call fails (GOAWAY, stream cancelled)",
              err is not None and code(err) in (grpc.StatusCode.UNAVAILABLE,
                                                grpc.StatusCode.CANCELLED,
                                                grpc.StatusCode.INTERNAL)
              and 0 < len(got) <= len(big) // 2 and dt < 5,
              "%d bytes, %.2f s, %s" % (len(got), dt, err))
        if VERBOSE and err is not None:
            print("     goaway client error: %s %s" % (err.code(), err.details()))
        rest, err2 = s.read(d, offset=len(got))
        check("fault goaway:once: same channel reconnects to the new listener and resumes",
              err2 is None and got + rest == big, str(err2))
    finally:
        s.stop()
    s = Srv("--fault", "goaway:100:once@FindMissingBlobs", preload=[big])
    try:
        ok, e = expect_error(lambda: s.cas.FindMissingBlobs(
            P.svc.FindMissingBlobsRequest(blob_digests=[d]), timeout=5), grpc.StatusCode.UNAVAILABLE)
        ok2 = e is not None and e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        r = s.cas.FindMissingBlobs(P.svc.FindMissingBlobsRequest(blob_digests=[d]), timeout=5)
        check("fault goaway on a unary call: fails, then the retry works",
              ok2 and len(r.missing_blob_digests) == 0, str(e))
    finally:
        s.stop()

    s = Srv("--fault", "slow:1500:once", preload=[big])
    try:
        t0 = time.monotonic()
        got, err = s.read(d, timeout=0.5)
        dt = time.monotonic() - t0
        check("fault slow: the client's deadline passes (DEADLINE_EXCEEDED at ~0.5 s)",
              code(err) == grpc.StatusCode.DEADLINE_EXCEEDED and dt < 1.4 and got == b"",
              "%.2f s %s" % (dt, err))
        got, err = s.read(d, timeout=5)
        check("fault slow:once: the retry is fast and right", got == big)
    finally:
        s.stop()

    s = Srv("--fault", "drip:50", preload=[big])
    try:
        t0 = time.monotonic()
        got, err = s.read(d, timeout=10)
        dt = time.monotonic() - t0
        # 1 MB in 64 KiB chunks: 15 pauses of 50 ms
        check("fault drip: all the bytes, right, with a pause before each chunk",
              err is None and got == big and dt >= 0.7, "%.2f s %s" % (dt, err))
    finally:
        s.stop()

    s = Srv("--fault", "stall:800:once", preload=[big])
    try:
        t0 = time.monotonic()
        got, err = s.read(d, timeout=10)
        dt = time.monotonic() - t0
        check("fault stall: half the bytes, 800 ms of silence, then the rest",
              err is None and got == big and dt >= 0.8, "%.2f s %s" % (dt, err))
        got, err = s.read(d, timeout=5)
        check("fault stall:once: the next read does not stall", err is None and got == big)
    finally:
        s.stop()

    s = Srv("--fault", "stall:5000:once", preload=[big])
    try:
        got, err = s.read(d, timeout=0.5)
        check("fault stall: a client deadline during the stall ends it after half",
              code(err) == grpc.StatusCode.DEADLINE_EXCEEDED and len(got) == len(big) // 2,
              "%d bytes %s" % (len(got), err))
    finally:
        s.stop()

    for mode, want in (("unavailable", grpc.StatusCode.UNAVAILABLE),
                       ("exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED)):
        s = Srv("--fault", "%s:250:once" % mode, preload=[big])
        try:
            got, err = s.read(d)
            tm = dict(err.trailing_metadata() or ()) if err is not None else {}
            st = P.status.Status()
            st.ParseFromString(tm.get("grpc-status-details-bin", b""))
            ri = P.errd.RetryInfo()
            has = len(st.details) == 1 and st.details[0].Unpack(ri)
            check("fault %s: %s, grpc-status-details-bin with RetryInfo 250 ms" % (mode, want.name),
                  code(err) == want and st.code == want.value[0] and has
                  and ri.retry_delay.seconds == 0 and ri.retry_delay.nanos == 250000000,
                  "%s %s" % (err, st))
            got, err = s.read(d)
            check("fault %s:once: the retry succeeds" % mode, got == big)
            caps = s.caps.GetCapabilities(P.svc.GetCapabilitiesRequest(), timeout=5)
            check("fault %s: GetCapabilities is not hit by default" % mode,
                  caps.cache_capabilities.digest_functions[0] == P.svc.DigestFunction.SHA256)
        finally:
            s.stop()

    s = Srv("--fault", "notfound", preload=[big])
    try:
        got, err = s.read(d)
        r = s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(digests=[d]), timeout=5)
        m = s.cas.FindMissingBlobs(P.svc.FindMissingBlobsRequest(blob_digests=[d]), timeout=5)
        ok_ac, _ = expect_error(lambda: s.ac.GetActionResult(P.svc.GetActionResultRequest(
            action_digest=d), timeout=5), grpc.StatusCode.NOT_FOUND)
        ok_tree, _ = expect_error(lambda: list(s.cas.GetTree(P.svc.GetTreeRequest(
            root_digest=d), timeout=5)), grpc.StatusCode.NOT_FOUND)
        caps = s.caps.GetCapabilities(P.svc.GetCapabilitiesRequest(), timeout=5)
        check("fault notfound: Read, BatchReadBlobs, FindMissingBlobs, GetActionResult, GetTree "
              "all say not found; GetCapabilities works",
              code(err) == grpc.StatusCode.NOT_FOUND and r.responses[0].status.code == 5
              and len(m.missing_blob_digests) == 1 and ok_ac and ok_tree
              and caps.HasField("cache_capabilities"))
    finally:
        s.stop()


def test_tls():
    if not shutil.which("openssl"):
        check("TLS (openssl not found: skipped)", True)
        return
    cert = os.path.join(SCRATCH, "cert.pem")
    key = os.path.join(SCRATCH, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    a = blob(70000, 8)
    s = Srv(preload=[a], tls=(cert, key))
    try:
        got, err = s.read(digest(a))
        check("TLS: Read over grpcs with the server's certificate as CA",
              got == a and err is None, str(err))
    finally:
        s.stop()


def test_read_log():
    a, b, c = blob(1000, 21), blob(70000, 22), blob(5, 23)
    path = os.path.join(SCRATCH, "reads.log")
    s = Srv("--read-log", path, preload=[a, b, c])
    try:
        got_a, err = s.read(digest(a))
        got_b, _ = s.read(digest(b), offset=100, limit=10)
        missing = digest(b"not stored")
        s.read(missing)
        r = s.cas.BatchReadBlobs(P.svc.BatchReadBlobsRequest(digests=[digest(c), missing]),
                                 timeout=5)
        s.cas.FindMissingBlobs(P.svc.FindMissingBlobsRequest(blob_digests=[digest(a)]),
                               timeout=5)
        with open(path) as f:
            lines = f.read().splitlines()
        want = ["Read %s/%d" % (digest(a).hash, len(a)),
                "Read %s/%d" % (digest(b).hash, len(b)),
                "BatchReadBlobs %s/%d" % (digest(c).hash, len(c))]
        check("--read-log: one line per blob sent (Read, ranged Read, BatchReadBlobs); "
              "none for missing blobs or FindMissingBlobs",
              got_a == a and err is None and got_b == b[100:110] and r.responses[0].data == c
              and lines == want, repr(lines))
    finally:
        s.stop()


def main():
    t0 = time.monotonic()
    try:
        test_basic()
        test_read_log()
        test_instance_and_paging()
        test_faults()
        test_tls()
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    print("time %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
