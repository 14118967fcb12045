# SPDX-License-Identifier: GPL-2.0
"""Python stubs for casfs's REv2 protos (proto/), generated at import time.

grpc_tools.protoc (Debian: python3-grpc-tools) compiles proto/*.proto into
a private temporary directory that is put on sys.path and removed at exit;
nothing generated is ever written into the source tree. The local
google/protobuf/{any,duration}.proto only resolve imports: their Python
modules come from the protobuf runtime (same file names, so the descriptor
pool sees one definition).

    import rev2proto as P
    P.re.Digest, P.svc.BatchReadBlobsRequest, P.svc_grpc.ContentAddressableStorageStub,
    P.bs.ReadRequest, P.bs_grpc.ByteStreamServicer, P.status.Status, P.errd.RetryInfo
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "proto"))

PROTOS = [
    "build/bazel/remote/execution/v2/remote_execution.proto",
    "build/bazel/remote/execution/v2/remote_execution_services.proto",
    "build/bazel/semver/semver.proto",
    "google/bytestream/bytestream.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
]


def _generate():
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit("rev2proto: grpc_tools missing (apt-get install python3-grpc-tools; "
                 "run with /usr/bin/python3)")
    out = tempfile.mkdtemp(prefix="casfs-rev2-pb.")
    atexit.register(shutil.rmtree, out, True)
    args = ["protoc", "-I" + PROTO_DIR, "--python_out=" + out,
            "--grpc_python_out=" + out] + PROTOS
    if protoc.main(args) != 0:
        sys.exit("rev2proto: grpc_tools.protoc failed on " + PROTO_DIR)
    sys.path.insert(0, out)
    # 'google' is a namespace package (protobuf's), so google.rpc and
    # google.bytestream from `out` join it; make sure of it if some other
    # google package was imported first.
    import google
    gdir = os.path.join(out, "google")
    if hasattr(google, "__path__") and gdir not in list(google.__path__):
        try:
            google.__path__.append(gdir)
        except AttributeError:
            pass
    importlib.invalidate_caches()
    return out


GEN_DIR = _generate()

from build.bazel.remote.execution.v2 import remote_execution_pb2 as re  # noqa: E402
from build.bazel.remote.execution.v2 import remote_execution_services_pb2 as svc  # noqa: E402
from build.bazel.remote.execution.v2 import remote_execution_services_pb2_grpc as svc_grpc  # noqa: E402
from build.bazel.semver import semver_pb2 as semver  # noqa: E402
from google.bytestream import bytestream_pb2 as bs  # noqa: E402
from google.bytestream import bytestream_pb2_grpc as bs_grpc  # noqa: E402
from google.rpc import status_pb2 as status  # noqa: E402
from google.rpc import error_details_pb2 as errd  # noqa: E402
