"""Python bindings of include/uapi/linux/casfs.h, for the kernel tests.

Written independently of casfs-helper and casfsctl, so that the kernel's
side of the interface is tested against a second implementation: raw
generic netlink over socket(AF_NETLINK), ioctls through fcntl.
"""
import ctypes
import fcntl
import os
import socket
import struct

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2

CMD_REGISTER, CMD_FETCH, CMD_DONE, CMD_GET_STATS = 1, 2, 3, 4
CMD_PROGRESS, CMD_CANCEL, CMD_USED = 5, 6, 7
A_VERSION, A_REQ_ID, A_DIGEST, A_SIZE, A_STATUS = 1, 2, 3, 4, 5
STAT_ATTRS = {6: "misses", 7: "fetches", 8: "fetch_bytes", 9: "errors",
              10: "timeouts", 11: "pending", 12: "helper", 15: "refetches",
              17: "cancels"}
A_BLOBS_FD = 14
A_UID = 16
A_DIGEST_FN = 18
PROTO_VERSION = 3

XATTR_SHA256 = "user.casfs.sha256"
XATTR_SHA256_HEX = "user.casfs.sha256hex"

STATE_CAS, STATE_PRESENT, STATE_LOCAL, STATE_WRITERS = 1, 2, 4, 8

_ENTRY = struct.Struct("=32sQIIII")
_STAGE = struct.Struct("=QQIIII")
_STATE = struct.Struct("=32sQIIQ")
_STATE_V1 = struct.Struct("=32sQII")   # before version: 48 bytes


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (0xCA << 8) | nr


IOC_STAGE = _ioc(3, 1, _STAGE.size)
IOC_STATE = _ioc(2, 2, _STATE.size)
IOC_STATE_V1 = _ioc(2, 2, _STATE_V1.size)


def stage(dirpath, entries, raw_entries=None):
    """entries: [(name(bytes|str), sha256 bytes(32), size, mode)].

    Returns bad_index (0xffffffff when none); raises OSError on failure
    with .bad_index set."""
    names = b""
    packed = b""
    for name, sha, size, mode in entries:
        if isinstance(name, str):
            name = name.encode()
        packed += _ENTRY.pack(sha, size, mode, len(names), len(name), 0)
        names += name
    if raw_entries is not None:
        packed = raw_entries
    ebuf = ctypes.create_string_buffer(packed, max(len(packed), 1))
    nbuf = ctypes.create_string_buffer(names, max(len(names), 1))
    count = len(entries) if raw_entries is None else len(raw_entries) // _ENTRY.size
    arg = bytearray(_STAGE.pack(ctypes.addressof(ebuf), ctypes.addressof(nbuf),
                                count, len(names), 0, 0))
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, IOC_STAGE, arg)
    except OSError as e:
        e.bad_index = _STAGE.unpack(bytes(arg))[5]
        raise
    finally:
        os.close(fd)
    return _STAGE.unpack(bytes(arg))[5]


def state_fd(fd):
    """(sha256, size, flags, version) of the file open at fd."""
    buf = bytearray(_STATE.size)
    fcntl.ioctl(fd, IOC_STATE, buf)
    sha, size, flags, _, version = _STATE.unpack(bytes(buf))
    return sha, size, flags, version


def state_full(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return state_fd(fd)
    finally:
        os.close(fd)


def state(path):
    return state_full(path)[:3]


def state_v1(path):
    """The first, 48-byte form of CASFS_IOC_STATE (no version)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(_STATE_V1.size)
        fcntl.ioctl(fd, IOC_STATE_V1, buf)
    finally:
        os.close(fd)
    sha, size, flags, _ = _STATE_V1.unpack(bytes(buf))
    return sha, size, flags


def _attr(atype, payload):
    hdr = struct.pack("=HH", 4 + len(payload), atype)
    pad = b"\0" * ((4 - len(payload) % 4) % 4)
    return hdr + payload + pad


def parse_attrs(data):
    attrs = {}
    while len(data) >= 4:
        alen, atype = struct.unpack_from("=HH", data)
        if alen < 4:
            break
        attrs[atype & 0x3fff] = data[4:alen]
        data = data[(alen + 3) & ~3:]
    return attrs


class Genl:
    """A generic netlink socket speaking the casfs family."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                  NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.seq = 1
        self.family = None
        self.family = self._resolve("casfs")

    def close(self):
        self.sock.close()

    def send(self, family, cmd, attrs=b"", flags=NLM_F_REQUEST | NLM_F_ACK,
             version=1):
        self.seq += 1
        payload = struct.pack("=BBH", cmd, version, 0) + attrs
        msg = struct.pack("=LHHLL", 16 + len(payload), family, flags,
                          self.seq, 0) + payload
        self.sock.send(msg)
        return self.seq

    def recv(self, timeout=None):
        """Yield (type, cmd, attrs) or ('error', errno) per message."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        out = []
        while len(data) >= 16:
            mlen, mtype, _flags, _seq, _pid = struct.unpack_from("=LHHLL", data)
            body = data[16:mlen]
            if mtype == NLMSG_ERROR:
                out.append(("error", -struct.unpack_from("=i", body)[0]))
            else:
                cmd = body[0]
                out.append(("msg", cmd, parse_attrs(body[4:])))
            data = data[(mlen + 3) & ~3:]
        return out

    def request(self, cmd, attrs=b"", family=None):
        """Send and wait for the ack; returns (errno, [replies])."""
        self.send(family or self.family, cmd, attrs)
        replies = []
        while True:
            for m in self.recv(timeout=10):
                if m[0] == "error":
                    return m[1], replies
                replies.append(m)

    def _resolve(self, name):
        err, replies = self.request(
            CTRL_CMD_GETFAMILY, _attr(CTRL_ATTR_FAMILY_NAME,
                                      name.encode() + b"\0"),
            family=GENL_ID_CTRL)
        if err:
            raise OSError(err, "resolving genl family " + name)
        return struct.unpack("=H", replies[0][2][CTRL_ATTR_FAMILY_ID][:2])[0]

    def register(self, version=PROTO_VERSION, blobs=None, blobs_fd=None):
        """REGISTER with an fd of blobs/ (default: $CASFS_CACHE/blobs),
        the kernel's proof that the sender may publish blobs."""
        close = False
        if blobs_fd is None:
            blobs = blobs or os.path.join(os.environ["CASFS_CACHE"], "blobs")
            blobs_fd = os.open(blobs, os.O_RDONLY | os.O_DIRECTORY)
            close = True
        try:
            return self.request(CMD_REGISTER,
                                _attr(A_VERSION, struct.pack("=I", version)) +
                                _attr(A_BLOBS_FD, struct.pack("=I", blobs_fd)))
        finally:
            if close:
                os.close(blobs_fd)

    def done(self, req_id, status):
        return self.request(CMD_DONE,
                            _attr(A_REQ_ID, struct.pack("=I", req_id)) +
                            _attr(A_STATUS, struct.pack("=i", status)))

    def raw(self, cmd, attrs):
        return self.request(cmd, attrs)

    def stats(self):
        err, replies = self.request(CMD_GET_STATS)
        if err:
            raise OSError(err, "GET_STATS")
        attrs = replies[0][2]
        out = {}
        for k, v in STAT_ATTRS.items():
            if k in attrs:
                fmt = "=Q" if len(attrs[k]) == 8 else "=I"
                out[v] = struct.unpack(fmt, attrs[k])[0]
        return out


def attr(atype, payload):
    return _attr(atype, payload)
