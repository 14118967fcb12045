#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A reference REv2 cache server for casfs's tests (grpcio, on-disk store).

    server.py --root DIR --port N [--tls-cert F --tls-key F [--tls-client-ca F]]
              [--instance NAME] [--max-batch BYTES] [--chunk BYTES]
              [--tree-page-max N] [--tree-pages-per-call N]
              [--fault MODE[:ARG][:LIMIT][@METHOD,...]]... [--quiet]
              [--read-log FILE]

Services: Capabilities, ContentAddressableStorage (FindMissingBlobs,
BatchUpdateBlobs, BatchReadBlobs, GetTree), ActionCache (GetActionResult,
UpdateActionResult), google.bytestream.ByteStream (Read, Write,
QueryWriteStatus). Store: DIR/cas/<sha256 hex> (blob bytes), DIR/ac/<sha256
hex> (serialised ActionResult), DIR/tmp/ (uploads in progress). SHA256 only,
no compression. Listens on 127.0.0.1:N (N = 0: any free port), h2c, or TLS
with --tls-cert/--tls-key; with --unix PATH also on a unix socket (h2c). Prints `READY port=N` on stdout once listening;
one log line per call on stderr (unless --quiet). With --read-log FILE,
appends to FILE one line per blob whose bytes it sends, `Read HASH/SIZE` for
ByteStream.Read (also when the read is a range or faulted) and
`BatchReadBlobs HASH/SIZE` for each blob found in a BatchReadBlobs, so a
test can tell which blobs a client fetched.

Faults (see tests/rev2/README.md for what each one looks like on the wire):

    corrupt      flip one byte of the data (ByteStream.Read, BatchReadBlobs)
    truncate     ByteStream.Read sends the first half of the range, then OK
    rst          ByteStream.Read sends the first half, then RST_STREAM(CANCEL)
    goaway       restart the listener mid-call: GOAWAY on every connection,
                 in-flight calls cancelled after a grace of ARG ms (def. 200)
    slow         sleep ARG ms (default 2000) before handling the call
    drip         ByteStream.Read sleeps ARG ms (default 200) before each
                 chunk after the first: slow but steady progress
    stall        ByteStream.Read sends the first half, then nothing for
                 ARG ms (default 10000), then the rest (if the client is
                 still there)
    unavailable  UNAVAILABLE with a google.rpc.RetryInfo of ARG ms (def. 100)
    exhausted    RESOURCE_EXHAUSTED, likewise
    notfound     NOT_FOUND for every blob / action result / tree

LIMIT is `once` or a number N: the fault hits only the first N calls it
applies to (then calls succeed, so a retry works). @METHOD,... limits it to
those methods (short names: Read, Write, QueryWriteStatus, GetCapabilities,
FindMissingBlobs, BatchReadBlobs, BatchUpdateBlobs, GetTree,
GetActionResult, UpdateActionResult). Defaults: corrupt on Read and
BatchReadBlobs; truncate and rst on Read; the others on every method but
GetCapabilities. Examples: corrupt:once, slow:3000:2, unavailable:500:once,
goaway:200:once@Read, notfound@GetActionResult.
"""

import argparse
import concurrent.futures
import hashlib
import os
import re as regex
import sys
import threading
import time
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rev2proto as P  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
HEX64 = regex.compile(r"^[0-9a-f]{64}$")
MAX_MSG = 64 * 1024 * 1024

ALL_METHODS = {"Read", "Write", "QueryWriteStatus", "GetCapabilities",
               "FindMissingBlobs", "BatchReadBlobs", "BatchUpdateBlobs",
               "GetTree", "GetActionResult", "UpdateActionResult"}
FAULT_DEFAULTS = {
    # mode: (takes ARG, default ARG, default methods)
    "corrupt": (False, None, {"Read", "BatchReadBlobs"}),
    "truncate": (False, None, {"Read"}),
    "rst": (False, None, {"Read"}),
    "goaway": (True, 200, ALL_METHODS - {"GetCapabilities"}),
    "slow": (True, 2000, ALL_METHODS - {"GetCapabilities"}),
    "drip": (True, 200, {"Read"}),
    "stall": (True, 10000, {"Read"}),
    "unavailable": (True, 100, ALL_METHODS - {"GetCapabilities"}),
    "exhausted": (True, 100, ALL_METHODS - {"GetCapabilities"}),
    "notfound": (False, None, ALL_METHODS - {"GetCapabilities"}),
}


def log(msg):
    if not ARGS.quiet:
        print("rev2-server: " + msg, file=sys.stderr, flush=True)


READ_LOG = None
READ_LOG_LOCK = threading.Lock()


def log_read(method, d):
    """--read-log: one line per blob whose bytes are sent."""
    if READ_LOG is None:
        return
    with READ_LOG_LOCK:
        READ_LOG.write("%s %s/%d\n" % (method, d.hash, d.size_bytes))
        READ_LOG.flush()


class Fault:
    def __init__(self, spec):
        self.spec = spec
        methods = None
        if "@" in spec:
            spec, m = spec.split("@", 1)
            methods = set(x for x in m.split(",") if x)
            bad = methods - ALL_METHODS
            if bad:
                raise ValueError("unknown method(s) %s" % ",".join(sorted(bad)))
        parts = spec.split(":")
        self.mode = parts[0]
        if self.mode not in FAULT_DEFAULTS:
            raise ValueError("unknown fault mode %r" % self.mode)
        takes_arg, self.arg, default_methods = FAULT_DEFAULTS[self.mode]
        rest = parts[1:]
        # For a mode that takes an ARG, a leading number is the ARG.
        if takes_arg and rest and rest[0].isdigit():
            self.arg = int(rest[0])
            rest = rest[1:]
        self.limit = None  # unlimited
        if rest:
            if len(rest) > 1:
                raise ValueError("too many ':' fields")
            self.limit = 1 if rest[0] == "once" else int(rest[0])
        self.methods = methods if methods is not None else default_methods
        self.hits = 0
        self.lock = threading.Lock()

    def take(self, method):
        """True if this call is hit by the fault (and counts it)."""
        if method not in self.methods:
            return False
        with self.lock:
            if self.limit is not None and self.hits >= self.limit:
                return False
            self.hits += 1
            return True


class Store:
    def __init__(self, root):
        self.root = root
        for d in ("cas", "ac", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)

    def cas_path(self, h):
        return os.path.join(self.root, "cas", h)

    def ac_path(self, h):
        return os.path.join(self.root, "ac", h)

    def has(self, d):
        if d.hash == EMPTY_SHA256 and d.size_bytes == 0:
            return True
        try:
            return os.stat(self.cas_path(d.hash)).st_size == d.size_bytes
        except FileNotFoundError:
            return False

    def get(self, d):
        """The blob's bytes, or None if absent (or of another size)."""
        if d.hash == EMPTY_SHA256 and d.size_bytes == 0:
            return b""
        try:
            with open(self.cas_path(d.hash), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data if len(data) == d.size_bytes else None

    def put_file(self, tmp, h):
        os.replace(tmp, self.cas_path(h))

    def put(self, h, data):
        tmp = os.path.join(self.root, "tmp", "put." + uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            f.write(data)
        self.put_file(tmp, h)

    def put_ac(self, h, data):
        tmp = os.path.join(self.root, "tmp", "ac." + uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.ac_path(h))


def valid_digest(d):
    return HEX64.match(d.hash) is not None and d.size_bytes >= 0


def status_msg(code, message):
    return P.status.Status(code=code.value[0], message=message)


def parse_resource(name, kind):
    """'{instance}/blobs/{hash}/{size}' (kind 'read') or
    '{instance}/uploads/{uuid}/blobs/{hash}/{size}[/meta...]' (kind 'write')
    -> (instance, Digest) or raise ValueError."""
    parts = name.split("/")
    if kind == "read":
        if len(parts) < 3 or parts[-3] != "blobs":
            if "compressed-blobs" in parts:
                raise NotImplementedError("compressed-blobs are not supported")
            raise ValueError("not {instance}/blobs/{hash}/{size}")
        inst, h, size = parts[:-3], parts[-2], parts[-1]
    else:
        try:
            i = parts.index("uploads")
        except ValueError:
            raise ValueError("no uploads/ in the resource name")
        if len(parts) < i + 5 or parts[i + 2] != "blobs":
            if len(parts) > i + 2 and parts[i + 2] == "compressed-blobs":
                raise NotImplementedError("compressed-blobs are not supported")
            raise ValueError("not {instance}/uploads/{uuid}/blobs/{hash}/{size}")
        inst, h, size = parts[:i], parts[i + 3], parts[i + 4]
    if not regex.match(r"^[0-9]+$", size):
        raise ValueError("bad size %r" % size)
    d = P.re.Digest(hash=h, size_bytes=int(size))
    if not valid_digest(d):
        raise ValueError("bad hash %r" % h)
    return "/".join(inst), d


class Server:
    """Owns the grpc.Server; can replace it (goaway fault) on the same port."""

    def __init__(self, args, store, faults):
        self.args = args
        self.store = store
        self.faults = faults
        self.port = args.port
        self.lock = threading.Lock()
        self.server = None
        self.generation = 0
        self.uploads = {}  # resource name -> committed bytes (in progress)
        self.uploads_lock = threading.Lock()
        self.calls = 0

    # --- listener ---------------------------------------------------------------
    def _make(self):
        opts = [("grpc.max_receive_message_length", MAX_MSG),
                ("grpc.max_send_message_length", MAX_MSG),
                ("grpc.so_reuseport", 1)]
        s = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=64),
                        options=opts, maximum_concurrent_rpcs=None)
        P.svc_grpc.add_CapabilitiesServicer_to_server(Capabilities(self), s)
        P.svc_grpc.add_ContentAddressableStorageServicer_to_server(CAS(self), s)
        P.svc_grpc.add_ActionCacheServicer_to_server(ActionCache(self), s)
        P.bs_grpc.add_ByteStreamServicer_to_server(ByteStream(self), s)
        addr = "127.0.0.1:%d" % self.port
        if self.args.tls_cert:
            with open(self.args.tls_key, "rb") as f:
                key = f.read()
            with open(self.args.tls_cert, "rb") as f:
                cert = f.read()
            ca = None
            if self.args.tls_client_ca:
                with open(self.args.tls_client_ca, "rb") as f:
                    ca = f.read()
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                                require_client_auth=ca is not None)
            port = s.add_secure_port(addr, creds)
        else:
            port = s.add_insecure_port(addr)
        if port == 0:
            raise SystemExit("rev2-server: cannot listen on %s" % addr)
        if self.args.unix and not s.add_insecure_port("unix:" + self.args.unix):
            raise SystemExit("rev2-server: cannot listen on unix:%s" % self.args.unix)
        self.port = port
        s.start()
        return s

    def start(self):
        self.server = self._make()

    def restart(self, grace):
        """GOAWAY to every connection of the current server (and cancel its
        calls after `grace` seconds); a new server listens on the same port
        (SO_REUSEPORT) before the old one closes its listener."""
        with self.lock:
            old = self.server
            self.server = self._make()
            self.generation += 1
            gen = self.generation
        log("goaway: listener restarted (generation %d), old calls cancelled in %.3f s"
            % (gen, grace))
        old.stop(grace)

    def wait(self):
        while True:
            with self.lock:
                s = self.server
            if s.wait_for_termination(timeout=0.5):
                continue  # timed out: still serving
            with self.lock:
                if s is self.server:
                    return

    # --- per call ---------------------------------------------------------------
    def check_instance(self, name, context):
        if self.args.require_metadata:
            want = [x.strip() for x in self.args.require_metadata.split(":", 1)]
            got = dict((k, v) for k, v in context.invocation_metadata())
            if len(want) != 2 or got.get(want[0].lower()) != want[1]:
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "missing or wrong %r metadata" % want[0])
        if name != self.args.instance:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "unknown instance %r (this server: %r)" % (name, self.args.instance))

    def fault(self, method, mode):
        for f in self.faults:
            if f.mode == mode and f.take(method):
                return f
        return None

    def before(self, method, context):
        """Faults that act before the handler runs, in order: slow,
        unavailable, exhausted, goaway (for methods other than Read: Read
        does it mid-stream)."""
        f = self.fault(method, "slow")
        if f:
            log("%s: slow %d ms" % (method, f.arg))
            time.sleep(f.arg / 1000.0)
            if not context.is_active():
                log("%s: client gone (deadline?) after the sleep" % method)
                context.abort(grpc.StatusCode.CANCELLED, "client gone")
        for mode, code in (("unavailable", grpc.StatusCode.UNAVAILABLE),
                           ("exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED)):
            f = self.fault(method, mode)
            if f:
                self.abort_retry(context, code, f.arg, "fault %s (%s)" % (mode, method))
        if method != "Read":
            f = self.fault(method, "goaway")
            if f:
                self.goaway_and_hang(context, f.arg)

    def abort_retry(self, context, code, delay_ms, message):
        ri = P.errd.RetryInfo()
        ri.retry_delay.seconds = delay_ms // 1000
        ri.retry_delay.nanos = (delay_ms % 1000) * 1000000
        a = any_pb2.Any()
        a.Pack(ri)
        st = P.status.Status(code=code.value[0], message=message, details=[a])
        context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
        log("%s: retry in %d ms" % (message, delay_ms))
        context.abort(code, message)

    def goaway_and_hang(self, context, grace_ms):
        threading.Thread(target=self.restart, args=(grace_ms / 1000.0,), daemon=True).start()
        deadline = time.monotonic() + grace_ms / 1000.0 + 5
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        context.abort(grpc.StatusCode.UNAVAILABLE, "server restarted (goaway fault)")

    def notfound(self, method):
        return self.fault(method, "notfound") is not None


def rpc(method):
    """Decorator: call counting, logging, and the faults that act first."""
    def wrap(fn):
        def handler(self, request, context):
            srv = self.srv
            srv.calls += 1
            srv.before(method, context)
            try:
                res = fn(self, request, context)
            except Exception:
                if context.code() is None and context.is_active():
                    log("%s: exception" % method)
                raise
            log("%s: done" % method)
            return res

        def stream_handler(self, request, context):
            srv = self.srv
            srv.calls += 1
            srv.before(method, context)
            yield from fn(self, request, context)
            log("%s: done" % method)
        import inspect
        return stream_handler if inspect.isgeneratorfunction(fn) else handler
    return wrap


class Capabilities(P.svc_grpc.CapabilitiesServicer):
    def __init__(self, srv):
        self.srv = srv

    @rpc("GetCapabilities")
    def GetCapabilities(self, request, context):
        self.srv.check_instance(request.instance_name, context)
        V = P.semver.SemVer
        cc = P.svc.CacheCapabilities(
            digest_functions=([P.svc.DigestFunction.SHA1] if self.srv.args.no_sha256
                              else [P.svc.DigestFunction.SHA256]),
            action_cache_update_capabilities=P.svc.ActionCacheUpdateCapabilities(update_enabled=True),
            max_batch_total_size_bytes=self.srv.args.max_batch,
            symlink_absolute_path_strategy=P.svc.SymlinkAbsolutePathStrategy.ALLOWED)
        return P.svc.ServerCapabilities(
            cache_capabilities=cc,
            deprecated_api_version=V(major=2, minor=0),
            low_api_version=V(major=2, minor=0),
            high_api_version=V(major=2, minor=3))


class CAS(P.svc_grpc.ContentAddressableStorageServicer):
    def __init__(self, srv):
        self.srv = srv

    def check_digests(self, digests, context):
        for d in digests:
            if not valid_digest(d):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "bad digest %s/%d" % (d.hash, d.size_bytes))

    def check_function(self, fn, context):
        if fn not in (P.svc.DigestFunction.UNKNOWN, P.svc.DigestFunction.SHA256):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only SHA256 is supported")

    def check_batch(self, total, context):
        lim = self.srv.args.max_batch
        if lim and total > lim:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "batch of %d bytes > max_batch_total_size_bytes %d" % (total, lim))

    @rpc("FindMissingBlobs")
    def FindMissingBlobs(self, request, context):
        self.srv.check_instance(request.instance_name, context)
        self.check_function(request.digest_function, context)
        self.check_digests(request.blob_digests, context)
        nf = self.srv.notfound("FindMissingBlobs")
        missing = [d for d in request.blob_digests if nf or not self.srv.store.has(d)]
        return P.svc.FindMissingBlobsResponse(missing_blob_digests=missing)

    @rpc("BatchUpdateBlobs")
    def BatchUpdateBlobs(self, request, context):
        self.srv.check_instance(request.instance_name, context)
        self.check_function(request.digest_function, context)
        self.check_digests([r.digest for r in request.requests], context)
        self.check_batch(sum(len(r.data) for r in request.requests), context)
        out = P.svc.BatchUpdateBlobsResponse()
        for r in request.requests:
            resp = out.responses.add()
            resp.digest.CopyFrom(r.digest)
            if r.compressor != P.svc.Compressor.IDENTITY:
                resp.status.CopyFrom(status_msg(grpc.StatusCode.INVALID_ARGUMENT,
                                                "compressor %d not supported" % r.compressor))
            elif len(r.data) != r.digest.size_bytes or \
                    hashlib.sha256(r.data).hexdigest() != r.digest.hash:
                resp.status.CopyFrom(status_msg(grpc.StatusCode.INVALID_ARGUMENT,
                                                "data does not match the digest"))
            else:
                self.srv.store.put(r.digest.hash, r.data)
                resp.status.code = 0
        return out

    @rpc("BatchReadBlobs")
    def BatchReadBlobs(self, request, context):
        self.srv.check_instance(request.instance_name, context)
        self.check_function(request.digest_function, context)
        self.check_digests(request.digests, context)
        self.check_batch(sum(d.size_bytes for d in request.digests), context)
        nf = self.srv.notfound("BatchReadBlobs")
        corrupt = self.srv.fault("BatchReadBlobs", "corrupt") is not None
        out = P.svc.BatchReadBlobsResponse()
        for d in request.digests:
            resp = out.responses.add()
            resp.digest.CopyFrom(d)
            data = None if nf else self.srv.store.get(d)
            if data is None:
                resp.status.CopyFrom(status_msg(grpc.StatusCode.NOT_FOUND,
                                                "blob %s/%d not found" % (d.hash, d.size_bytes)))
                continue
            log_read("BatchReadBlobs", d)
            if corrupt and data:
                b = bytearray(data)
                b[len(b) // 2] ^= 0xFF
                data = bytes(b)
            resp.data = data
            resp.status.code = 0
        return out

    @rpc("GetTree")
    def GetTree(self, request, context):
        srv = self.srv
        srv.check_instance(request.instance_name, context)
        self.check_function(request.digest_function, context)
        self.check_digests([request.root_digest], context)
        if request.page_size < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative page_size")
        start = 0
        if request.page_token:
            if not regex.match(r"^[0-9]+$", request.page_token):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad page_token")
            start = int(request.page_token)
        root = None if srv.notfound("GetTree") else srv.store.get(request.root_digest)
        if root is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "root directory not found")
        # Breadth first, each Directory digest once; the missing parts of
        # the tree are left out (as the spec says).
        dirs, seen, queue = [], set(), [(request.root_digest, root)]
        seen.add((request.root_digest.hash, request.root_digest.size_bytes))
        while queue:
            d, data = queue.pop(0)
            msg = P.re.Directory()
            try:
                msg.ParseFromString(data)
            except Exception:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "%s/%d is not a Directory" % (d.hash, d.size_bytes))
            dirs.append(msg)
            for sub in msg.directories:
                k = (sub.digest.hash, sub.digest.size_bytes)
                if k in seen or not valid_digest(sub.digest):
                    continue
                seen.add(k)
                child = srv.store.get(sub.digest)
                if child is not None:
                    queue.append((sub.digest, child))
        if start > len(dirs):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token past the end")
        page = srv.args.tree_page_max
        if request.page_size:
            page = min(page, request.page_size)
        pages = 0
        i = start
        while True:
            chunk = dirs[i:i + page]
            i += len(chunk)
            nxt = str(i) if i < len(dirs) else ""
            yield P.svc.GetTreeResponse(directories=chunk, next_page_token=nxt)
            pages += 1
            if not nxt:
                return
            if srv.args.tree_pages_per_call and pages >= srv.args.tree_pages_per_call:
                return


class ActionCache(P.svc_grpc.ActionCacheServicer):
    def __init__(self, srv):
        self.srv = srv

    @rpc("GetActionResult")
    def GetActionResult(self, request, context):
        srv = self.srv
        srv.check_instance(request.instance_name, context)
        d = request.action_digest
        if not valid_digest(d):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad action digest")
        if srv.notfound("GetActionResult"):
            context.abort(grpc.StatusCode.NOT_FOUND, "fault notfound")
        try:
            with open(srv.store.ac_path(d.hash), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, "no action result for %s" % d.hash)
        ar = P.re.ActionResult()
        ar.ParseFromString(data)
        return ar

    @rpc("UpdateActionResult")
    def UpdateActionResult(self, request, context):
        srv = self.srv
        srv.check_instance(request.instance_name, context)
        d = request.action_digest
        if not valid_digest(d):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad action digest")
        srv.store.put_ac(d.hash, request.action_result.SerializeToString())
        return request.action_result


class ByteStream(P.bs_grpc.ByteStreamServicer):
    def __init__(self, srv):
        self.srv = srv

    @rpc("Read")
    def Read(self, request, context):
        srv = self.srv
        try:
            inst, d = parse_resource(request.resource_name, "read")
        except NotImplementedError as e:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "%s: %s" % (request.resource_name, e))
        srv.check_instance(inst, context)
        if request.read_offset < 0 or request.read_offset > d.size_bytes:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          "read_offset %d outside 0..%d" % (request.read_offset, d.size_bytes))
        if request.read_limit < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative read_limit")
        data = None if srv.notfound("Read") else srv.store.get(d)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "blob %s/%d not found" % (d.hash, d.size_bytes))
        log_read("Read", d)
        end = d.size_bytes
        if request.read_limit:
            end = min(end, request.read_offset + request.read_limit)
        data = data[request.read_offset:end]
        corrupt = srv.fault("Read", "corrupt")
        truncate = srv.fault("Read", "truncate")
        rst = srv.fault("Read", "rst")
        goaway = srv.fault("Read", "goaway")
        drip = srv.fault("Read", "drip")
        stall = srv.fault("Read", "stall")
        if corrupt and data:
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            data = bytes(b)
        cut = len(data) // 2 if (truncate or rst or goaway or stall) else len(data)
        chunk = srv.args.chunk
        if not data:
            yield P.bs.ReadResponse()
        for i in range(0, cut, chunk):
            if drip and i:
                time.sleep(drip.arg / 1000.0)
                if not context.is_active():
                    log("Read: client gone while dripping, at %d of %d bytes" % (i, len(data)))
                    return
            yield P.bs.ReadResponse(data=data[i:min(i + chunk, cut)])
        if stall:
            log("Read: stalling %d ms after %d of %d bytes" % (stall.arg, cut, len(data)))
            end_at = time.monotonic() + stall.arg / 1000.0
            while time.monotonic() < end_at and context.is_active():
                time.sleep(0.02)
            if not context.is_active():
                log("Read: client gone during the stall")
                return
            for i in range(cut, len(data), chunk):
                yield P.bs.ReadResponse(data=data[i:min(i + chunk, len(data))])
            return
        if truncate:
            log("Read: truncated after %d of %d bytes (status OK)" % (cut, len(data)))
            return
        if rst:
            log("Read: RST_STREAM after %d of %d bytes" % (cut, len(data)))
            time.sleep(0.05)  # let the DATA frames go out first
            context.cancel()
            return
        if goaway:
            log("Read: GOAWAY after %d of %d bytes" % (cut, len(data)))
            time.sleep(0.05)
            srv.goaway_and_hang(context, goaway.arg)

    @rpc("Write")
    def Write(self, request_iterator, context):
        srv = self.srv
        first = next(request_iterator, None)
        if first is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no WriteRequest")
        name = first.resource_name
        try:
            inst, d = parse_resource(name, "write")
        except NotImplementedError as e:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "%s: %s" % (name, e))
        srv.check_instance(inst, context)
        if srv.store.has(d):
            # Already there: finish at once with the full size (the spec's
            # early return; the rest of the client's stream is ignored).
            return P.bs.WriteResponse(committed_size=d.size_bytes)
        tmp = os.path.join(srv.store.root, "tmp",
                           "up." + hashlib.sha256(name.encode()).hexdigest())
        with srv.uploads_lock:
            committed = srv.uploads.get(name, 0)
        if first.write_offset != committed and first.write_offset != 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "write_offset %d, committed %d" % (first.write_offset, committed))
        mode = "r+b" if first.write_offset and os.path.exists(tmp) else "wb"
        f = open(tmp, mode)
        try:
            f.seek(first.write_offset)
            f.truncate()
            off = first.write_offset
            req = first
            finished = False
            while True:
                if req.resource_name and req.resource_name != name:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "resource_name changed")
                if req.write_offset != off:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  "write_offset %d, expected %d" % (req.write_offset, off))
                f.write(req.data)
                off += len(req.data)
                with srv.uploads_lock:
                    srv.uploads[name] = off
                if off > d.size_bytes:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "more data than the size")
                if req.finish_write:
                    finished = True
                    break
                req = next(request_iterator, None)
                if req is None:
                    break
            f.close()
            if not finished:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "stream ended without finish_write")
            h = hashlib.sha256()
            with open(tmp, "rb") as g:
                for blk in iter(lambda: g.read(1 << 20), b""):
                    h.update(blk)
            if off != d.size_bytes or h.hexdigest() != d.hash:
                os.unlink(tmp)
                with srv.uploads_lock:
                    srv.uploads.pop(name, None)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "uploaded data (%d bytes, %s) does not match %s/%d"
                              % (off, h.hexdigest(), d.hash, d.size_bytes))
            srv.store.put_file(tmp, d.hash)
            with srv.uploads_lock:
                srv.uploads.pop(name, None)
            return P.bs.WriteResponse(committed_size=off)
        finally:
            if not f.closed:
                f.close()

    @rpc("QueryWriteStatus")
    def QueryWriteStatus(self, request, context):
        srv = self.srv
        try:
            inst, d = parse_resource(request.resource_name, "write")
        except (ValueError, NotImplementedError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        srv.check_instance(inst, context)
        if srv.store.has(d):
            return P.bs.QueryWriteStatusResponse(committed_size=d.size_bytes, complete=True)
        with srv.uploads_lock:
            n = srv.uploads.get(request.resource_name)
        if n is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such upload")
        return P.bs.QueryWriteStatusResponse(committed_size=n, complete=False)


def main():
    global ARGS, READ_LOG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--unix", metavar="PATH",
                    help="also listen (h2c) on this unix socket")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    ap.add_argument("--instance", default="")
    ap.add_argument("--max-batch", type=int, default=4 * 1024 * 1024,
                    help="max_batch_total_size_bytes (0: no limit); default 4 MiB")
    ap.add_argument("--chunk", type=int, default=64 * 1024,
                    help="bytes per ByteStream.Read response; default 64 KiB")
    ap.add_argument("--tree-page-max", type=int, default=1000,
                    help="most Directories per GetTree page; default 1000")
    ap.add_argument("--tree-pages-per-call", type=int, default=0,
                    help="GetTree ends the stream after this many pages (0: all)")
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--no-sha256", action="store_true",
                    help="advertise SHA1 only (clients must refuse this server)")
    ap.add_argument("--require-metadata", metavar="'NAME: VALUE'",
                    help="every call must carry this metadata, else UNAUTHENTICATED")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--read-log", metavar="FILE",
                    help="append `METHOD HASH/SIZE` for every blob sent (Read, BatchReadBlobs)")
    ARGS = ap.parse_args()
    if bool(ARGS.tls_cert) != bool(ARGS.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if ARGS.chunk <= 0 or ARGS.tree_page_max <= 0:
        ap.error("--chunk and --tree-page-max must be positive")
    try:
        faults = [Fault(s) for s in ARGS.fault]
    except ValueError as e:
        ap.error("--fault: %s" % e)
    if ARGS.read_log:
        READ_LOG = open(ARGS.read_log, "a")
    srv = Server(ARGS, Store(ARGS.root), faults)
    srv.start()
    print("READY port=%d%s" % (srv.port, " tls=1" if ARGS.tls_cert else ""), flush=True)
    log("serving %s on 127.0.0.1:%d (%s), instance %r, faults: %s"
        % (ARGS.root, srv.port, "TLS" if ARGS.tls_cert else "h2c", ARGS.instance,
           " ".join(ARGS.fault) or "none"))
    try:
        srv.wait()
    except KeyboardInterrupt:
        pass


ARGS = None
if __name__ == "__main__":
    main()
