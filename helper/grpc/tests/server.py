#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""A real gRPC server (Debian's python3-grpcio) for helper/grpc's tests.

No .proto: generic handlers with raw bytes in and out. Methods of
/casfs.test.Test/:
  Echo       unary: the request
  Stream     server-streaming: request "N SIZE", N messages of SIZE bytes,
             message i filled with byte i % 256
  Status     unary: request "CODE message": fails with that status; if the
             message contains "details", grpc-status-details-bin is set
  Sleep      unary: sleeps the request's milliseconds, then answers
  AbortMid   server-streaming: request K: K messages, then DATA_LOSS
  Meta       unary: the request metadata as "name=value" lines, and
             "remaining=SECONDS" (or "remaining=none")
  Big        unary: a message of the request's size

Listens on 127.0.0.1, free ports; prints "PORTS h2c tls mtls" (0 for the
TLS ones without --cert) and serves until stdin closes. Exits 77 without
grpcio.
"""
import argparse
import sys
import time
from concurrent import futures

try:
    import grpc
except ImportError:
    print("SKIP python3-grpcio is not installed for %s" % sys.executable,
          flush=True)
    sys.exit(77)

CODES = {c.value[0]: c for c in grpc.StatusCode}


def echo(req, ctx):
    return req


def stream(req, ctx):
    n, size = (int(x) for x in req.split())
    for i in range(n):
        yield bytes([i % 256]) * size


def status(req, ctx):
    code, _, msg = req.decode().partition(" ")
    if "details" in msg:
        ctx.set_trailing_metadata(
            (("grpc-status-details-bin", b"\x08\x08\x12\x03abc"),))
    ctx.abort(CODES[int(code)], msg)


def sleep(req, ctx):
    time.sleep(int(req) / 1000)
    return b"late"


def abort_mid(req, ctx):
    k = int(req)
    for i in range(k):
        yield b"part%d" % i
    ctx.abort(grpc.StatusCode.DATA_LOSS, "broken after %d" % k)


def meta(req, ctx):
    lines = ["%s=%s" % (k, v) for k, v in ctx.invocation_metadata()]
    rem = ctx.time_remaining()
    # grpcio says "no deadline" with None or with a huge number
    lines.append("remaining=%s" % (
        "none" if rem is None or rem > 1e9 else "%.3f" % rem))
    return "\n".join(lines).encode()


def big(req, ctx):
    return b"b" * int(req)


UNARY = {"Echo": echo, "Status": status, "Sleep": sleep, "Meta": meta,
         "Big": big}
STREAMING = {"Stream": stream, "AbortMid": abort_mid}
PREFIX = "/casfs.test.Test/"


class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if not details.method.startswith(PREFIX):
            return None
        name = details.method[len(PREFIX):]
        if name in UNARY:
            return grpc.unary_unary_rpc_method_handler(UNARY[name])
        if name in STREAMING:
            return grpc.unary_stream_rpc_method_handler(STREAMING[name])
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    a = ap.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64), handlers=[Handler()],
        options=[("grpc.max_send_message_length", -1),
                 ("grpc.max_receive_message_length", 16 << 20)])
    h2c = server.add_insecure_port("127.0.0.1:0")
    tls = mtls = 0
    if a.cert:
        key = open(a.key, "rb").read()
        cert = open(a.cert, "rb").read()
        tls = server.add_secure_port(
            "127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
        if a.client_ca:
            mtls = server.add_secure_port(
                "127.0.0.1:0", grpc.ssl_server_credentials(
                    [(key, cert)], root_certificates=open(a.client_ca, "rb").read(),
                    require_client_auth=True))
    server.start()
    print("PORTS %d %d %d" % (h2c, tls, mtls), flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
