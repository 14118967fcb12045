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

    def __init__(self, store, mode="ok", delay=0.0, version=U.PROTO_VERSION):
        self.store = store          # sha256 bytes -> data
        self.mode = mode            # ok | corrupt | short | error | mute | evicted
        self.evicted = 0            # "evicted": DONE without a blob this many times
        self.delay = delay
        self.fetches = []
        self.fetch_attrs = []       # every FETCH's attributes
        self.cancels = []           # every CANCEL's attributes
        self.used = []              # every USED's attributes
        self.nl = U.Genl()
        err, replies = self.nl.register(version=version)
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
        self.fetch_attrs.append(attrs)
        if self.mode == "mute":
            return
        time.sleep(self.delay)
        if self.mode == "progress":
            # a slow transfer: PROGRESS every second, for longer than the
            # mount's timeout, then the blob
            for _ in range(int(TIMEOUT) + 2):
                self.nl.send(self.nl.family, U.CMD_PROGRESS,
                             U.attr(U.A_REQ_ID, struct.pack("=I", req)),
                             flags=U.NLM_F_REQUEST)
                time.sleep(1)
        data = self.store.get(digest)
        status = 0
        if data is None:
            status = -errno.ENOENT
        elif self.mode == "error":
            status = -errno.EIO
        elif self.mode == "eintr":
            status = -errno.EINTR
        elif self.mode == "evicted" and self.evicted > 0:
            # DONE, but the blob is gone before the reader opens it (as
            # when eviction deletes it right after publishing)
            self.evicted -= 1
        else:
            if self.mode == "corrupt":
                data = bytes([data[0] ^ 1]) + data[1:]
            elif self.mode == "short":
                data = data[:-1]
            if status == 0 and size == len(self.store[digest]):
                tmp = os.path.join(CACHE, "tmp", digest.hex())
                with open(tmp, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o400)
                os.rename(tmp, os.path.join(BLOBS, digest.hex()))
        if data is not None and size != len(self.store[digest]):
            # the real helper checks (digest, size) too: nothing published
            status = -errno.EIO
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
                elif m[0] == "msg" and m[1] == U.CMD_CANCEL:
                    self.cancels.append(m[2])
                elif m[0] == "msg" and m[1] == U.CMD_USED:
                    self.used.append(m[2])

    def close(self):
        self.stop = True
        self.thread.join()
        self.nl.close()


def kstats():
    """GET_STATS on a socket of its own (the helper's is its thread's)."""
    nl = U.Genl()
    try:
        return nl.stats()
    finally:
        nl.close()


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
        # digest_fn (was "reserved"): only SHA-256 (0) is implemented
        for fn in (1, 6, 0xffffffff):
            raw = U._ENTRY.pack(sha(b"x"), 1, 0o644, 0, 1, fn)
            with self.assertRaises(OSError) as cm:
                U.stage(self.d, [(b"o", sha(b"x"), 1, 0o644)], raw_entries=raw)
            self.assertEqual(cm.exception.errno, errno.EOPNOTSUPP)
            self.assertEqual(cm.exception.bad_index, 0)
            self.assertEqual(os.listdir(self.d), [])
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


class Version(Base):
    """CASFS_IOC_STATE's version: what casfs-outputd trusts to answer
    Bazel "unchanged" without reading a file."""

    def ver(self, name):
        return U.state_full(self.p(name))[3]

    def test_unique_and_stable_without_changes(self):
        data = b"staged bytes"
        self.add("c", data)
        with open(self.p("l"), "wb") as f:
            f.write(b"local")
        versions = {self.ver("c"), self.ver("l")}
        self.assertEqual(len(versions), 2)
        self.assertNotIn(0, versions)
        v = self.ver("c")
        # No change: stat, chmod, rename, a link, reading opens.
        os.chmod(self.p("c"), 0o555)
        os.rename(self.p("c"), self.p("c2"))
        os.link(self.p("c2"), self.p("c3"))
        os.getxattr(self.p("c2"), U.XATTR_SHA256)
        os.close(os.open(self.p("c2"), os.O_RDONLY))
        self.assertEqual(self.ver("c2"), v)
        self.assertEqual(self.ver("c3"), v)
        # The old 48-byte form is still served.
        self.assertEqual(U.state_v1(self.p("c2")), U.state(self.p("c2")))

    def test_every_change_renews_it(self):
        with open(self.p("f"), "wb") as f:
            f.write(b"one")
        seen = [self.ver("f")]

        def changed():
            v = self.ver("f")
            self.assertNotIn(v, seen)
            seen.append(v)

        with open(self.p("f"), "r+b") as f:
            f.write(b"t")
        changed()
        os.truncate(self.p("f"), 1)
        changed()
        # An open for writing without a write: its close renews it.
        os.close(os.open(self.p("f"), os.O_WRONLY))
        changed()
        # Staged (CAS) file, made local by a truncate that keeps nothing
        # (no helper runs here, so nothing that needs the blob).
        self.add("c", b"cas bytes")
        v0 = self.ver("c")
        os.truncate(self.p("c"), 0)
        self.assertNotEqual(self.ver("c"), v0)

    def test_writers_flag_and_shared_mmap(self):
        import mmap
        with open(self.p("f"), "wb") as f:
            f.write(b"x" * 4096)
        v0 = self.ver("f")
        fd = os.open(self.p("f"), os.O_RDWR)
        try:
            m = mmap.mmap(fd, 4096)
            self.assertTrue(U.state_full(self.p("f"))[2] & U.STATE_WRITERS)
            m[0:1] = b"y"       # no write call: only the close tells
            m.close()
        finally:
            os.close(fd)
        sha_, size, flags, v1 = U.state_full(self.p("f"))
        self.assertFalse(flags & U.STATE_WRITERS)
        self.assertNotEqual(v1, v0)
        self.assertEqual(open(self.p("f"), "rb").read(1), b"y")


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
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o400)
        self.assertEqual(stat.S_IMODE(os.stat(BLOBS).st_mode), 0o700)

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

    def test_evicted_after_done_is_fetched_again(self):
        """Issue 11 item 6: a blob gone between DONE and the open is
        fetched again (up to 3 rounds), not an EIO for the reader."""
        data = os.urandom(3000)
        self.add("ev", data)
        self.helper = FakeHelper(self.store, mode="evicted")
        self.helper.evicted = 2
        before = kstats()["refetches"]
        with open(self.p("ev"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.helper.fetches.count(sha(data)), 3)
        self.assertEqual(kstats()["refetches"] - before, 2)
        # gone after every DONE: EIO after 3 rounds, no loop
        clear_blobs()
        data2 = os.urandom(3001)
        self.add("ev2", data2)
        self.helper.evicted = 100
        self.assertErrno(errno.EIO, lambda: open(self.p("ev2"), "rb").read())
        self.assertEqual(self.helper.fetches.count(sha(data2)), 3)

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

    def test_progress_extends_the_timeout(self):
        """Issue 11 item 3: timeout= bounds a wait without progress: a
        helper that reports PROGRESS every second keeps the reader
        waiting past it, and the read succeeds."""
        data = os.urandom(10_000)
        self.add("f", data)
        self.helper = FakeHelper(self.store, mode="progress")
        t0 = time.monotonic()
        self.assertEqual(open(self.p("f"), "rb").read(), data)
        self.assertGreater(time.monotonic() - t0, TIMEOUT + 1)
        # PROGRESS only from the registered helper, for a live request
        nl = U.Genl()
        try:
            self.assertEqual(nl.request(U.CMD_PROGRESS, U.attr(
                U.A_REQ_ID, struct.pack("=I", 1)))[0], errno.EPERM)
        finally:
            nl.close()
        h, self.helper = self.helper, None
        h.stop = True                   # its socket is ours now
        h.thread.join()
        try:
            err, _ = h.nl.request(U.CMD_PROGRESS, U.attr(
                U.A_REQ_ID, struct.pack("=I", 0x7fffffff)))
            self.assertEqual(err, errno.ENOENT)
        finally:
            h.nl.close()

    def test_used_tells_the_helper(self):
        """Issue 11 item 7: opening a cached blob sends USED {digest,
        size} to the helper (for eviction by use), at most once a minute
        per inode; a miss sends FETCH, not USED."""
        data = os.urandom(5000)
        self.add("u", data)
        self.add("v", data)             # another inode, the same blob
        self.helper = FakeHelper(self.store)
        self.assertEqual(open(self.p("u"), "rb").read(), data)   # miss
        time.sleep(0.3)
        self.assertEqual(self.helper.used, [])
        for _ in range(3):              # hits on one inode: one USED
            self.assertEqual(open(self.p("u"), "rb").read(), data)
        self.assertEqual(open(self.p("v"), "rb").read(), data)   # and v's
        deadline = time.monotonic() + 3
        while len(self.helper.used) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        self.assertEqual(len(self.helper.used), 2)
        for a in self.helper.used:
            self.assertEqual(a[U.A_DIGEST], sha(data))
            self.assertEqual(struct.unpack("=Q", a[U.A_SIZE])[0], len(data))
            self.assertNotIn(U.A_REQ_ID, a)

    def test_cancel_and_uid(self):
        """Issue 11 item 9: FETCH names the uid that asked; when the last
        reader leaves, the helper gets CANCEL for the request (protocol
        3), and an old (protocol 2) helper gets neither."""
        for version in (3, 2):
            clear_blobs()
            data = os.urandom(4000 + version)
            name = "c%d" % version
            self.add(name, data)
            self.helper = FakeHelper(self.store, mode="mute", version=version)
            before = kstats()["cancels"]
            pid = os.fork()
            if pid == 0:
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    open(self.p(name), "rb").read()
                finally:
                    os._exit(0)
            deadline = time.monotonic() + 5
            while not self.helper.fetch_attrs and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(len(self.helper.fetch_attrs), 1)
            fa = self.helper.fetch_attrs[0]
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            time.sleep(0.5)
            self.assertEqual(kstats()["cancels"] - before, 1)
            if version == 3:
                self.assertEqual(struct.unpack("=I", fa[U.A_UID])[0], 65534)
                self.assertEqual(struct.unpack("=I", fa[U.A_DIGEST_FN])[0], 0)
                self.assertEqual(len(self.helper.cancels), 1)
                ca = self.helper.cancels[0]
                self.assertEqual(ca[U.A_REQ_ID], fa[U.A_REQ_ID])
                self.assertEqual(ca[U.A_DIGEST], sha(data))
                self.assertEqual(struct.unpack("=Q", ca[U.A_SIZE])[0], len(data))
            else:
                self.assertNotIn(U.A_UID, fa)
                self.assertEqual(self.helper.cancels, [])
            self.helper.close()
            self.helper = None

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
        blobs_fd = os.open(BLOBS, os.O_RDONLY | os.O_DIRECTORY)
        pid = os.fork()
        if pid == 0:
            os.setgid(65534)
            os.setuid(65534)
            nl = U.Genl()
            codes = [nl.register(blobs_fd=blobs_fd)[0], nl.done(1, 0)[0]]
            ok = codes == [errno.EPERM, errno.EPERM]
            st = nl.stats()     # stats are for everyone
            os._exit(0 if ok and "misses" in st else 1)
        _, status = os.waitpid(pid, 0)
        os.close(blobs_fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_register_needs_blobs_proof(self):
        """CAP_NET_ADMIN alone (a network daemon) cannot become the helper:
        REGISTER must carry an fd of a root-owned 0700 directory that the
        sender may write."""
        nl = U.Genl()
        try:
            # no BLOBS_FD at all
            self.assertEqual(nl.raw(U.CMD_REGISTER, U.attr(
                U.A_VERSION, struct.pack("=I", U.PROTO_VERSION)))[0], errno.EINVAL)
            # not an open fd; a file; a 0755 directory
            self.assertEqual(nl.register(blobs_fd=987654)[0], errno.EBADF)
            with open("/etc/hostname", "rb") as f:
                self.assertEqual(nl.register(blobs_fd=f.fileno())[0], errno.EPERM)
            self.assertEqual(nl.register(blobs="/")[0], errno.EPERM)
            # a 0700 directory owned by someone else
            other = os.path.join(CACHE, "tmp", "other")
            os.mkdir(other, 0o700)
            os.chown(other, 65534, 65534)
            self.assertEqual(nl.register(blobs=other)[0], errno.EPERM)
            os.rmdir(other)
            self.assertEqual(nl.register()[0], 0)
        finally:
            nl.close()
        # CAP_NET_ADMIN without root: setpriv keeps the capability across
        # the uid change; every fd it can get is refused.
        if not shutil.which("setpriv"):
            self.skipTest("no setpriv")
        os.makedirs("/tmp/casfs-nobody", 0o700, exist_ok=True)
        os.chown("/tmp/casfs-nobody", 65534, 65534)
        code = ("import errno, os, sys; sys.path.insert(0, %r); "
                "import casfs_uapi as U; nl = U.Genl(); "
                "r = [nl.register(blobs=b)[0] for b in ('/', '/tmp/casfs-nobody')]; "
                "print(r); sys.exit(0 if r == [errno.EPERM] * 2 else 1)"
                % os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--inh-caps=+net_admin", "--ambient-caps=+net_admin",
             sys.executable, "-c", code], capture_output=True, text=True)
        shutil.rmtree("/tmp/casfs-nobody", ignore_errors=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

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



def in_child(fn, uid=None, gid=None, groups=None):
    """Run fn() in a forked child (optionally as uid/gid); its return
    value (True/False or a string saying what went wrong) decides."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            if groups is not None:
                os.setgroups(groups)
            if gid is not None:
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)
            res = fn()
            msg = "" if res is True or res is None else str(res)
        except BaseException as e:  # noqa: B902 - report everything
            msg = "%s: %s" % (type(e).__name__, e)
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


class Hostile(Base):
    """What an unprivileged local user must not get (issue 8)."""

    def test_stage_refuses_setuid_setgid(self):
        for mode in (0o4755, 0o2755, 0o6755, 0o2000):
            self.assertErrno(errno.EINVAL, U.stage, self.d,
                             [("f", sha(b"x"), 1, mode)])
            self.assertEqual(os.listdir(self.d), [])
        # the sticky bit is harmless and kept
        U.stage(self.d, [("t", sha(b"x"), 1, 0o1644)])
        self.assertEqual(stat.S_IMODE(os.stat(self.p("t")).st_mode), 0o1644)

    def test_setgid_directory_as_nobody(self):
        """In a setgid directory a staged file gets the directory's group
        (as creat(2) gives it) but never a setgid bit."""
        os.chown(self.d, 0, 4242)
        os.chmod(self.d, 0o2777)

        def child():
            try:
                U.stage(self.d, [("g", sha(b"x"), 1, 0o2755)])
                return "setgid entry staged"
            except OSError as e:
                if e.errno != errno.EINVAL:
                    return "errno %d" % e.errno
            U.stage(self.d, [("g", sha(b"x"), 1, 0o755)])
            st = os.stat(self.p("g"))
            if st.st_gid != 4242 or st.st_mode & (stat.S_ISGID | stat.S_ISUID):
                return "gid %d mode %o" % (st.st_gid, st.st_mode)
            return True
        self.assertEqual(in_child(child, 65534, 65534, []), "")

    def test_stage_applies_umask(self):
        old = os.umask(0o027)
        try:
            U.stage(self.d, [("u", sha(b"x"), 1, 0o777)])
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.p("u")).st_mode), 0o750)

    def test_stage_needs_write_permission(self):
        os.chmod(self.d, 0o755)

        def child():
            try:
                U.stage(self.d, [("n", sha(b"x"), 1, 0o644)])
            except OSError as e:
                return True if e.errno == errno.EACCES else "errno %d" % e.errno
            return "staged without write permission"
        self.assertEqual(in_child(child, 65534, 65534, []), "")

    def test_stage_notifies_inotify(self):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK)
        self.assertGreaterEqual(fd, 0)
        try:
            IN_CREATE = 0x100
            self.assertGreaterEqual(
                libc.inotify_add_watch(fd, self.d.encode(), IN_CREATE), 0)
            U.stage(self.d, [("a", sha(b"x"), 1, 0o644),
                             ("b", sha(b"y"), 1, 0o644),
                             ("c", sha(b""), 0, 0o644)])
            buf = os.read(fd, 4096)
            names, off = [], 0
            while off < len(buf):
                _wd, mask, _cookie, ln = struct.unpack_from("=iIII", buf, off)
                name = buf[off + 16:off + 16 + ln].rstrip(b"\0").decode()
                if mask & IN_CREATE:
                    names.append(name)
                off += 16 + ln
            self.assertEqual(sorted(names), ["a", "b", "c"])
        finally:
            os.close(fd)

    def test_stage_goes_through_landlock(self):
        """An LSM that forbids creating regular files (Landlock, through
        security_path_mknod) forbids staging them too."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        SYS_create_ruleset, SYS_restrict_self = 444, 446
        abi = libc.syscall(SYS_create_ruleset, None, 0, 1)  # VERSION
        if abi < 1:
            self.skipTest("Landlock not enabled on this kernel")

        def child():
            MAKE_REG = 1 << 8
            attr = struct.pack("=Q", MAKE_REG)
            rs = libc.syscall(SYS_create_ruleset, attr, len(attr), 0)
            if rs < 0:
                return "create_ruleset errno %d" % ctypes.get_errno()
            PR_SET_NO_NEW_PRIVS = 38
            libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            if libc.syscall(SYS_restrict_self, rs, 0) < 0:
                return "restrict_self errno %d" % ctypes.get_errno()
            try:
                open(self.p("plain"), "w").close()
                return "creat allowed under Landlock"
            except PermissionError:
                pass
            try:
                U.stage(self.d, [("l", sha(b"x"), 1, 0o644)])
                return "staging allowed under Landlock"
            except OSError as e:
                if e.errno != errno.EACCES:
                    return "errno %d" % e.errno
            return True
        self.assertEqual(in_child(child), "")
        self.assertEqual(os.listdir(self.d), [])

    def test_fifo_or_device_blob_refused_without_blocking(self):
        U.stage(self.d, [("fifo", sha(b"fifo"), 4, 0o644),
                         ("dev", sha(b"dev!"), 4, 0o644)])
        os.mkfifo(os.path.join(BLOBS, sha(b"fifo").hex()), 0o400)
        os.mknod(os.path.join(BLOBS, sha(b"dev!").hex()), 0o400 | stat.S_IFCHR,
                 os.makedev(1, 3))
        for n in ("fifo", "dev"):
            t0 = time.monotonic()
            self.assertErrno(errno.EIO, lambda: open(self.p(n), "rb").read())
            self.assertLess(time.monotonic() - t0, 2, n)

    def test_huge_cas_file_truncated_copies_little(self):
        """Truncating a 1 TiB CAS-backed file to 1 byte copies 1 byte."""
        size = 1 << 40
        h = sha(b"huge")
        blob = os.path.join(BLOBS, h.hex())
        with open(blob, "wb") as f:
            f.write(b"H")
            f.truncate(size)            # sparse: costs one page
        os.chmod(blob, 0o400)
        U.stage(self.d, [("huge", h, size, 0o644)])
        t0 = time.monotonic()
        os.truncate(self.p("huge"), 1)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(open(self.p("huge"), "rb").read(), b"H")
        self.assertEqual(U.state(self.p("huge"))[2], U.STATE_LOCAL)
        self.assertEqual(os.getxattr(self.p("huge"), U.XATTR_SHA256), sha(b"H"))

    def test_wrong_size_does_not_fail_the_real_blob(self):
        """A user who stages the right digest with a wrong size gets EIO;
        readers of the real (digest, size) are not failed with them."""
        data = os.urandom(5000)
        self.add("real", data)
        U.stage(self.d, [("wrong", sha(data), len(data) + 1, 0o644)])
        self.helper = FakeHelper(self.store, delay=0.5)
        res = {}

        def rd(n):
            try:
                res[n] = open(self.p(n), "rb").read()
            except OSError as e:
                res[n] = e.errno
        ts = [threading.Thread(target=rd, args=(n,)) for n in ("wrong", "real")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(res["real"], data)
        self.assertEqual(res["wrong"], errno.EIO)
        self.assertEqual(len(self.helper.fetches), 2)   # two requests

    def test_digest_follows_truncate(self):
        with open(self.p("l"), "wb") as f:
            f.write(b"hello world")
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256),
                         sha(b"hello world"))
        os.truncate(self.p("l"), 5)
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256), sha(b"hello"))
        os.truncate(self.p("l"), 7)
        self.assertEqual(os.getxattr(self.p("l"), U.XATTR_SHA256),
                         sha(b"hello\0\0"))

    def test_times_atime_mmap_fadvise_syncfs(self):
        import ctypes
        import mmap
        libc = ctypes.CDLL(None, use_errno=True)
        with open(self.p("t"), "wb") as f:
            f.write(b"0123456789")
        st0 = os.stat(self.p("t"))
        time.sleep(0.05)
        open(self.p("t"), "rb").read()          # relatime: atime <= mtime
        self.assertGreater(os.stat(self.p("t")).st_atime_ns, st0.st_atime_ns)
        time.sleep(0.05)
        with open(self.p("t"), "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            m[0:1] = b"X"
            m.flush()
            m.close()
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
            self.assertEqual(libc.syncfs(f.fileno()), 0)
        st1 = os.stat(self.p("t"))
        self.assertGreater(st1.st_mtime_ns, st0.st_mtime_ns)
        self.assertEqual(open(self.p("t"), "rb").read(), b"X123456789")
        self.assertEqual(os.getxattr(self.p("t"), U.XATTR_SHA256),
                         sha(b"X123456789"))
        # advice on a CAS file never read fetches nothing
        self.add("c", b"cas bytes")
        with open(self.p("c"), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        self.assertEqual(os.listdir(BLOBS), [])


class HelperStatus(Base):
    def test_helper_eintr_is_eio_for_readers(self):
        """A helper's status is the helper's: a reader never sees it as
        its own EINTR (which would mean a signal, and invite a retry)."""
        self.add("f", b"status")
        self.helper = FakeHelper(self.store, mode="eintr")
        self.assertErrno(errno.EIO, lambda: open(self.p("f"), "rb").read())


class CrossFilesystem(unittest.TestCase):
    """blobs/ on another filesystem than local/: copy-up still works."""

    def test_copy_up_from_another_filesystem(self):
        base = os.path.abspath(os.path.join(CACHE, "..", "casfs-xfs-%d" % os.getpid()))
        cache, mnt = base + "-cache", base + "-mnt"
        os.mkdir(cache, 0o755)
        os.mkdir(mnt)
        try:
            subprocess.check_call(["mount", "-t", "tmpfs", "-o", "mode=0755",
                                   "casfs-cache", cache])
            os.mkdir(os.path.join(cache, "blobs"), 0o700)
            subprocess.check_call(["mount", "-t", "tmpfs", "-o", "mode=0700",
                                   "casfs-cache", os.path.join(cache, "blobs")])
            subprocess.check_call(["mount", "-t", "casfs", "-o",
                                   "cache=" + cache, "casfs", mnt])
            data = os.urandom(200_000)
            blob = os.path.join(cache, "blobs", sha(data).hex())
            with open(blob, "wb") as f:
                f.write(data)
            os.chmod(blob, 0o400)
            U.stage(mnt, [("f", sha(data), len(data), 0o644)])
            with open(os.path.join(mnt, "f"), "r+b") as f:   # copy-up
                f.seek(0, 2)
                f.write(b"tail")
            with open(os.path.join(mnt, "f"), "rb") as f:
                self.assertEqual(f.read(), data + b"tail")
            self.assertEqual(U.state(os.path.join(mnt, "f"))[2], U.STATE_LOCAL)
        finally:
            subprocess.call(["umount", mnt])
            subprocess.call(["umount", os.path.join(cache, "blobs")])
            subprocess.call(["umount", cache])
            os.rmdir(mnt)
            os.rmdir(cache)


class Limits(unittest.TestCase):
    """nr_inodes= and xattr_bytes= bound what any user can pin."""

    def setUp(self):
        self.mnt = os.path.join(CACHE, "..", "casfs-limits-%d" % os.getpid())
        self.mnt = os.path.abspath(self.mnt)
        os.mkdir(self.mnt)

    def tearDown(self):
        subprocess.call(["umount", self.mnt])
        os.rmdir(self.mnt)

    def mount(self, opts):
        subprocess.check_call(["mount", "-t", "casfs", "-o",
                               "cache=%s,%s" % (CACHE, opts), "casfs", self.mnt])

    def test_nr_inodes(self):
        self.mount("nr_inodes=20")
        st = os.statvfs(self.mnt)
        self.assertEqual(st.f_files, 20)
        made = 0
        with self.assertRaises(OSError) as cm:
            for i in range(30):
                open(os.path.join(self.mnt, "f%d" % i), "w").close()
                made += 1
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        self.assertEqual(made, 19)      # the root is one of the 20
        self.assertEqual(os.statvfs(self.mnt).f_ffree, 0)
        with self.assertRaises(OSError) as cm:
            U.stage(self.mnt, [("s", sha(b"x"), 1, 0o644)])
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        os.unlink(os.path.join(self.mnt, "f0"))
        open(os.path.join(self.mnt, "again"), "w").close()
        # remount cannot go below what is in use; may go above
        self.assertNotEqual(subprocess.call(
            ["mount", "-o", "remount,nr_inodes=5", self.mnt],
            stderr=subprocess.DEVNULL), 0)
        subprocess.check_call(["mount", "-o", "remount,nr_inodes=100", self.mnt])
        self.assertEqual(os.statvfs(self.mnt).f_files, 100)
        self.assertIn("nr_inodes=100", open("/proc/mounts").read())

    def test_xattr_bytes(self):
        self.mount("xattr_bytes=4k")
        a, b = (os.path.join(self.mnt, n) for n in "ab")
        open(a, "w").close()
        open(b, "w").close()
        os.setxattr(a, "user.v", b"x" * 3000)
        with self.assertRaises(OSError) as cm:
            os.setxattr(b, "user.v", b"y" * 2000)
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        os.removexattr(a, "user.v")
        os.setxattr(b, "user.v", b"y" * 2000)      # room again
        os.unlink(b)                                # freed with the inode
        os.setxattr(a, "user.v", b"z" * 4000)

    def test_remount_keeps_what_it_does_not_name(self):
        self.mount("timeout=7,mode=0755")
        subprocess.check_call(["mount", "-o", "remount,mode=0700,uid=65534",
                               self.mnt])
        line = [ln for ln in open("/proc/mounts") if self.mnt in ln][0]
        self.assertIn("timeout=7", line)
        st = os.stat(self.mnt)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, 65534))


class FetchTable(Base):
    """One user cannot take every fetch slot: each uid has a share
    (max_fetches_per_uid, lowered here to keep the test small)."""

    PARAM = "/sys/module/casfs/parameters/max_fetches_per_uid"

    def test_per_uid_share_is_eagain(self):
        share, n = 8, 12
        old = open(self.PARAM).read().strip()
        mnt = os.path.abspath(os.path.join(CACHE, "..", "casfs-share-%d" % os.getpid()))
        os.mkdir(mnt)
        subprocess.check_call(["mount", "-t", "casfs", "-o",
                               "cache=%s,timeout=60" % CACHE, "casfs", mnt])
        pid = None
        try:
            with open(self.PARAM, "w") as f:
                f.write(str(share))
            d = os.path.join(mnt, "d")
            os.mkdir(d, 0o777)
            U.stage(d, [("f%d" % i, sha(b"%d" % i), 8, 0o644) for i in range(n)])
            U.stage(d, [("root", sha(b"root"), 8, 0o644)])
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.setgid(65534)
                os.setuid(65534)
                res = []

                def rd(i):
                    # os.read: no buffered layer to reinterpret an errno
                    fd = os.open(os.path.join(d, "f%d" % i), os.O_RDONLY)
                    try:
                        os.read(fd, 8)
                        res.append("ok")
                    except OSError as e:
                        res.append(e.errno)
                    finally:
                        os.close(fd)
                for i in range(n):
                    threading.Thread(target=rd, args=(i,), daemon=True).start()
                deadline = time.monotonic() + 50
                while len(res) < n - share and time.monotonic() < deadline:
                    time.sleep(0.1)
                os.write(w, repr(sorted(res, key=str)).encode())
                time.sleep(3600)        # hold the slots until killed
            os.close(w)
            got = os.read(r, 1000).decode()
            os.close(r)
            self.assertEqual(got, repr([errno.ENOBUFS] * (n - share)))
            self.assertEqual(U.Genl().stats()["pending"], share)
            # root has a share of its own: its miss is queued, not refused
            res = {}

            def rd_root():
                try:
                    res["root"] = open(os.path.join(d, "root"), "rb").read()
                except OSError as e:
                    res["root"] = e.errno
            t = threading.Thread(target=rd_root, daemon=True)
            t.start()
            deadline = time.monotonic() + 10
            while U.Genl().stats()["pending"] != share + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertNotIn("root", res)
            self.assertEqual(U.Genl().stats()["pending"], share + 1)
            # the share's waiters killed at once leave only root's request
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pid = None
            deadline = time.monotonic() + 30
            while U.Genl().stats()["pending"] > 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(U.Genl().stats()["pending"], 1)
            # staged as 8 bytes under sha(b"root"): the fake helper serves
            # 8 bytes under that digest (it checks sizes, not hashes)
            self.helper = FakeHelper({sha(b"root"): b"rootdata"})
            t.join(20)
            self.assertEqual(res.get("root"), b"rootdata")
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            with open(self.PARAM, "w") as f:
                f.write(old)
            if self.helper:
                self.helper.close()
                self.helper = None
            subprocess.call(["umount", mnt])
            os.rmdir(mnt)

if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
