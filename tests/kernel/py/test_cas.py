#!/usr/bin/python3
"""CAS-backed files, the kernel side: staging, laziness, fetch over
generic netlink, verification of blobs, copy-up, digests, faults.

The helper here is a deliberately small fake written against
casfs_uapi.py (not casfs-helper), so the kernel is tested on its own.

Environment: CASFS_MNT (casfs mounted with timeout=3), CASFS_CACHE.
"""
import errno
import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest
import warnings

warnings.simplefilter("ignore", ResourceWarning)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import casfs_uapi as U  # noqa: E402

MNT = os.environ["CASFS_MNT"]
CACHE = os.environ["CASFS_CACHE"]
BLOBS = os.path.join(CACHE, "blobs")
TIMEOUT = 3


def sha(data):
    return hashlib.sha256(data).digest()


class FakeHelper:
    """Serves FETCH from an in-memory store; counts requests."""

    def __init__(self, store, mode="ok", delay=0.0):
        self.store = store          # sha256 bytes -> data
        self.mode = mode            # ok | corrupt | short | error | mute
        self.delay = delay
        self.fetches = []
        self.nl = U.Genl()
        err, replies = self.nl.register()
        if err:
            raise OSError(err, "REGISTER")
        self.stop = False
        self.pending = [m for m in replies if m[1] == U.CMD_FETCH]
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def serve(self, attrs):
        req = struct.unpack("=I", attrs[U.A_REQ_ID])[0]
        digest = attrs[U.A_DIGEST]
        size = struct.unpack("=Q", attrs[U.A_SIZE])[0]
        self.fetches.append(digest)
        if self.mode == "mute":
            return
        time.sleep(self.delay)
        data = self.store.get(digest)
        status = 0
        if data is None:
            status = -errno.ENOENT
        elif self.mode == "error":
            status = -errno.EIO
        else:
            if self.mode == "corrupt":
                data = bytes([data[0] ^ 1]) + data[1:]
            elif self.mode == "short":
                data = data[:-1]
            if self.mode in ("ok", "short") or self.mode == "corrupt":
                tmp = os.path.join(CACHE, "tmp", digest.hex())
                with open(tmp, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o444)
                os.rename(tmp, os.path.join(BLOBS, digest.hex()))
        assert size == len(self.store.get(digest, b"")) or data is None
        self.nl.send(self.nl.family, U.CMD_DONE,
                     U.attr(U.A_REQ_ID, struct.pack("=I", req)) +
                     U.attr(U.A_STATUS, struct.pack("=i", status)),
                     flags=U.NLM_F_REQUEST)

    def loop(self):
        for m in self.pending:
            self.serve(m[2])
        while not self.stop:
            try:
                msgs = self.nl.recv(timeout=0.2)
            except (TimeoutError, OSError):
                continue
            for m in msgs:
                if m[0] == "msg" and m[1] == U.CMD_FETCH:
                    self.serve(m[2])

    def close(self):
        self.stop = True
        self.thread.join()
        self.nl.close()


def clear_blobs():
    for n in os.listdir(BLOBS):
        os.unlink(os.path.join(BLOBS, n))


class Base(unittest.TestCase):
    def setUp(self):
        self.d = os.path.join(MNT, self.id().split(".")[-1])
        os.mkdir(self.d)
        clear_blobs()
        self.store = {}
        self.helper = None

    def tearDown(self):
        if self.helper:
            self.helper.close()
        shutil.rmtree(self.d, ignore_errors=True)

    def p(self, *names):
        return os.path.join(self.d, *names)

    def add(self, name, data, mode=0o644):
        self.store[sha(data)] = data
        U.stage(self.d, [(name, sha(data), len(data), mode)])

    def assertErrno(self, err, fn, *args):
        with self.assertRaises(OSError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.errno, err, str(cm.exception))


class Staging(Base):
    def test_stage_and_stat_without_fetch(self):
        files = {f"f{i}": os.urandom(i * 1000 + 1) for i in range(50)}
        U.stage(self.d, [(n, sha(d), len(d), 0o640) for n, d in files.items()])
        for n, d in files.items():
            st = os.stat(self.p(n))
            self.assertEqual(st.st_size, len(d))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(os.getxattr(self.p(n), U.XATTR_SHA256), sha(d))
            self.assertEqual(os.getxattr(self.p(n), U.XATTR_SHA256_HEX),
                             sha(d).hex().encode())
            self.assertNotIn(U.XATTR_SHA256, os.listxattr(self.p(n)))
            s, size, flags = U.state(self.p(n))
            self.assertEqual((s, size, flags), (sha(d), len(d), U.STATE_CAS))
            os.close(os.open(self.p(n), os.O_RDONLY))   # open: no fetch
        self.assertEqual(sorted(os.listdir(self.d)), sorted(files))
        self.assertEqual(os.listdir(BLOBS), [])

    def test_batch_of_thousands(self):
        ents = [(f"n{i:05d}", sha(str(i).encode()), len(str(i)), 0o444)
                for i in range(20000)]
        U.stage(self.d, ents)
        self.assertEqual(len(os.listdir(self.d)), 20000)

    def test_bad_entries_create_nothing(self):
        good = (b"ok", sha(b"x"), 1, 0o644)
        bad_cases = [
            (b"a/b", errno.EINVAL), (b".", errno.EINVAL),
            (b"..", errno.EINVAL), (b"", errno.EINVAL),
            (b"n\0ul", errno.EINVAL), (b"x" * 256, errno.EINVAL),
        ]
        for name, err in bad_cases:
            with self.assertRaises(OSError) as cm:
                U.stage(self.d, [good, (name, sha(b"y"), 1, 0o644)])
            self.assertEqual(cm.exception.errno, err, name)
            self.assertEqual(cm.exception.bad_index, 1, name)
            self.assertEqual(os.listdir(self.d), [], name)
        for ent in [(b"m", sha(b"y"), 1, 0o10644),         # type bits
                    (b"z", sha(b"y"), 0, 0o644),            # size 0, not empty sha
                    (b"big", sha(b"y"), (1 << 40) + 1, 0o644)]:
            self.assertErrno(errno.EINVAL, U.stage, self.d, [good, ent])
            self.assertEqual(os.listdir(self.d), [])
        # duplicates within the batch
        self.assertErrno(errno.EINVAL, U.stage, self.d, [good, good])
        # reserved field
        raw = U._ENTRY.pack(sha(b"x"), 1, 0o644, 0, 1, 7)
        with self.assertRaises(OSError) as cm:
            U.stage(self.d, [(b"o", sha(b"x"), 1, 0o644)], raw_entries=raw)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        # an existing name fails the whole batch with EEXIST
        open(self.p("exists"), "w").close()
        with self.assertRaises(OSError) as cm:
            U.stage(self.d, [good, (b"exists", sha(b"y"), 1, 0o644)])
        self.assertEqual(cm.exception.errno, errno.EEXIST)
        self.assertEqual(os.listdir(self.d), ["exists"])
        # the ioctl on a regular file is not a staging call
        fd = os.open(self.p("exists"), os.O_RDONLY)
        import fcntl
        with self.assertRaises(OSError) as cm:
            fcntl.ioctl(fd, U.IOC_STAGE, bytearray(U._STAGE.size))
        self.assertEqual(cm.exception.errno, errno.ENOTTY)
        os.close(fd)

    def test_empty_blob_is_local(self):
        U.stage(self.d, [("empty", sha(b""), 0, 0o644)])
        self.assertEqual(open(self.p("empty"), "rb").read(), b"")
        self.assertEqual(U.state(self.p("empty"))[2], U.STATE_LOCAL)
        self.assertEqual(os.getxattr(self.p("empty"), U.XATTR_SHA256), sha(b""))

    def test_digest_xattrs_read_only(self):
        self.add("f", b"data")
        for name in (U.XATTR_SHA256, U.XATTR_SHA256_HEX, "user.casfs.other"):
            self.assertErrno(errno.EPERM, os.setxattr, self.p("f"), name, b"x")
            self.assertErrno(errno.EPERM, os.removexattr, self.p("f"), name)
        self.assertEqual(os.getxattr(self.p("f"), U.XATTR_SHA256), sha(b"data"))


class Fetching(Base):
    def test_no_helper_times_out_with_eio(self):
        self.add("f", b"never fetched")
        t0 = time.monotonic()
        self.assertErrno(errno.EIO, lambda: open(self.p("f"), "rb").read())
        dt = time.monotonic() - t0
        self.assertGreaterEqual(dt, TIMEOUT - 0.5)
        self.assertLess(dt, TIMEOUT + 5)
        log = subprocess.check_output(["dmesg"]).decode()
        self.assertIn(sha(b"never fetched").hex(), log)

    def test_lazy_read_and_mmap(self):
        data = os.urandom(1 << 20)
        self.add("f", data)
        os.link(self.p("f"), self.p("g"))
        self.helper = FakeHelper(self.store)
        self.assertEqual(open(self.p("f"), "rb").read(), data)
        self.assertEqual(len(self.helper.fetches), 1)
        self.assertEqual(U.state(self.p("g"))[2], U.STATE_CAS | U.STATE_PRESENT)
        # second reader and mmap: no more fetches
        import mmap
        with open(self.p("g"), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            self.assertEqual(m[:], data)
            m.close()
        self.assertEqual(len(self.helper.fetches), 1)
        st = os.stat(os.path.join(BLOBS, sha(data).hex()))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o444)

    def test_concurrent_misses_one_request(self):
        data = os.urandom(300_000)
        self.add("a", data)
        os.link(self.p("a"), self.p("b"))
        self.add("c", data[:1])  # an unrelated blob
        self.helper = FakeHelper(self.store, delay=1.0)
        results = []

        def reader(name):
            results.append(open(self.p(name), "rb").read())
        ts = [threading.Thread(target=reader, args=("ab"[i % 2],))
              for i in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(results, [data] * 16)
        self.assertEqual(self.helper.fetches, [sha(data)])

    def test_sendfile_splice_copy_fetch(self):
        data = os.urandom(100_000)
        self.add("f", data)
        self.helper = FakeHelper(self.store)
        src = os.open(self.p("f"), os.O_RDONLY)
        dst = os.open(self.p("copy"), os.O_CREAT | os.O_WRONLY, 0o644)
        n = 0
        while n < len(data):
            n += os.copy_file_range(src, dst, len(data) - n, n, n)
        os.close(dst)
        os.close(src)
        self.assertEqual(open(self.p("copy"), "rb").read(), data)

    def test_exec_staged_hardlinked(self):
        with open("/usr/bin/true", "rb") as f:
            exe = f.read()
        self.add("true", exe, 0o755)
        os.mkdir(self.p("bin"))
        os.link(self.p("true"), self.p("bin", "t"))
        self.helper = FakeHelper(self.store)
        # Plain fork+exec: subprocess's vfork would stop this process's
        # helper thread (GIL held) until the exec, which waits for it.
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(self.p("bin", "t"), ["t"])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_helper_errors_give_eio(self):
        for mode in ("error", "corrupt", "short"):
            clear_blobs()
            data = os.urandom(5000)
            name = "f-" + mode
            self.add(name, data)
            self.helper = FakeHelper(self.store, mode=mode)
            if mode == "corrupt":
                # Same size, wrong bytes: the kernel trusts the helper's
                # verification of the hash, so this fake *is* the attack
                # the helper prevents; only the size check is the kernel's.
                self.helper.close()
                self.helper = None
                continue
            self.assertErrno(errno.EIO,
                             lambda: open(self.p(name), "rb").read())
            self.helper.close()
            self.helper = None
        # missing blob in the store: helper says ENOENT -> EIO
        U.stage(self.d, [("ghost", sha(b"ghost"), 5, 0o644)])
        self.helper = FakeHelper({})
        self.assertErrno(errno.EIO, lambda: open(self.p("ghost"), "rb").read())

    def test_untrusted_blob_refused(self):
        data = b"trust me" * 100
        self.add("f", data)
        path = os.path.join(BLOBS, sha(data).hex())
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)           # writable: refused
        self.assertErrno(errno.EIO, lambda: open(self.p("f"), "rb").read())
        os.chmod(path, 0o444)
        self.assertEqual(open(self.p("f"), "rb").read(), data)

    def test_helper_restart_with_waiters(self):
        data = os.urandom(200_000)
        self.add("f", data)
        mute = FakeHelper(self.store, mode="mute")
        results = []

        def reader():
            try:
                results.append(open(self.p("f"), "rb").read())
            except OSError as e:
                results.append(e)
        ts = [threading.Thread(target=reader) for _ in range(16)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        self.assertEqual(len(mute.fetches), 1)
        mute.close()                     # the helper "dies"
        time.sleep(0.3)
        self.helper = FakeHelper(self.store)   # restarted: gets the resend
        for t in ts:
            t.join()
        self.assertEqual(results, [data] * 16)
        self.assertEqual(len(self.helper.fetches), 1)

    def test_killed_waiter_leaks_nothing(self):
        self.add("f", b"k" * 1000)
        nl = U.Genl()
        before = nl.stats()["pending"]
        pid = os.fork()
        if pid == 0:
            try:
                open(self.p("f"), "rb").read()
            finally:
                os._exit(0)
        time.sleep(0.5)
        self.assertEqual(nl.stats()["pending"], before + 1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        self.assertEqual(nl.stats()["pending"], before)
        nl.close()


class CopyUp(Base):
    def test_write_copies_up_and_links_see_it(self):
        data = b"original " * 1000
        self.add("f", data)
        os.link(self.p("f"), self.p("g"))
        self.helper = FakeHelper(self.store)
        reader = open(self.p("g"), "rb")        # opened before copy-up
        with open(self.p("f"), "r+b") as f:
            f.write(b"CHANGED")
        new = b"CHANGED" + data[7:]
        self.assertEqual(open(self.p("g"), "rb").read(), new)
        self.assertEqual(reader.read(), new)
        reader.close()
        self.assertEqual(U.state(self.p("f"))[2], U.STATE_LOCAL)
        # the blob is untouched
        self.assertEqual(open(os.path.join(BLOBS, sha(data).hex()), "rb").read(),
                         data)
        self.assertEqual(os.getxattr(self.p("g"), U.XATTR_SHA256), sha(new))

    def test_truncate_to_zero_needs_no_fetch(self):
        self.add("f", b"x" * 5000)
        self.add("g", b"y" * 5000)
        os.truncate(self.p("f"), 0)
        with open(self.p("g"), "wb") as f:     # O_TRUNC
            f.write(b"new")
        self.assertEqual(open(self.p("f"), "rb").read(), b"")
        self.assertEqual(open(self.p("g"), "rb").read(), b"new")
        self.assertEqual(os.listdir(BLOBS), [])

    def test_local_digest_follows_changes(self):
        with open(self.p("l"), "wb") as f:
            f.write(b"one")
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256), sha(b"one"))
        with open(self.p("l"), "ab") as f:
            f.write(b"two")
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256),
                         sha(b"onetwo"))
        os.truncate(self.p("l"), 2)
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256_HEX),
                         hashlib.sha256(b"on").hexdigest().encode())
        import mmap
        with open(self.p("l"), "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            m[0:1] = b"O"
            m.close()
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256), sha(b"On"))


class Netlink(Base):
    def test_unprivileged_commands_eperm(self):
        pid = os.fork()
        if pid == 0:
            os.setgid(65534)
            os.setuid(65534)
            nl = U.Genl()
            codes = [nl.register()[0], nl.done(1, 0)[0]]
            ok = codes == [errno.EPERM, errno.EPERM]
            st = nl.stats()     # stats are for everyone
            os._exit(0 if ok and "misses" in st else 1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_malformed_attributes(self):
        nl = U.Genl()
        try:
            self.assertEqual(nl.register(version=99)[0], errno.EPROTONOSUPPORT)
            self.assertEqual(nl.raw(U.CMD_REGISTER, b"")[0], errno.EINVAL)
            self.assertEqual(nl.register()[0], 0)
            # DONE without STATUS, with a positive STATUS, with REQ_ID 0,
            # with a short attribute
            self.assertEqual(nl.raw(U.CMD_DONE, U.attr(U.A_REQ_ID, struct.pack("=I", 5)))[0],
                             errno.EINVAL)
            self.assertIn(nl.done(5, 1)[0], (errno.EINVAL, errno.ERANGE))
            self.assertIn(nl.done(0, 0)[0], (errno.EINVAL, errno.ERANGE))
            self.assertEqual(nl.raw(U.CMD_DONE, U.attr(U.A_REQ_ID, b"\1\0") +
                                    U.attr(U.A_STATUS, b"\0\0\0\0"))[0], errno.EINVAL)
            self.assertEqual(nl.raw(U.CMD_FETCH, b"")[0], errno.EOPNOTSUPP)
            self.assertEqual(nl.done(12345, 0)[0], errno.ENOENT)
            # a second helper is refused while the first lives
            nl2 = U.Genl()
            self.assertEqual(nl2.register()[0], errno.EBUSY)
            nl2.close()
        finally:
            nl.close()
        # the first one's socket closed: registration is free again
        time.sleep(0.2)
        nl3 = U.Genl()
        self.assertEqual(nl3.register()[0], 0)
        nl3.close()


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
