#!/usr/bin/python3
"""POSIX semantics of a casfs mount, one unittest case per behaviour.

Run inside the test guest as root by tests/kernel/10-semantics.sh with
CASFS_MNT (a fresh casfs mount), CASFS_CACHE (its cache directory, on a
tmpfs of its own) and CASFS_REF (a tmpfs to compare behaviour against).
"""
import ctypes
import errno
import mmap
import os
import shutil
import signal
import stat
import subprocess
import sys
import unittest

MNT = os.environ["CASFS_MNT"]
CACHE = os.environ["CASFS_CACHE"]
REF = os.environ["CASFS_REF"]

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
SYS_renameat2 = 316  # x86_64


def renameat2(old, new, flags):
    if libc.syscall(SYS_renameat2, AT_FDCWD, old.encode(), AT_FDCWD,
                    new.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def linkat_fd(fd, path):
    """linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH): name an O_TMPFILE."""
    AT_EMPTY_PATH = 0x1000
    if libc.linkat(fd, b"", AT_FDCWD, path.encode(), AT_EMPTY_PATH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def write_file(path, data, mode=0o644):
    with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode),
              "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def backing_used_kib():
    st = os.statvfs(CACHE)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


def as_user(uid, fn):
    """Run fn() in a child with uid/gid; return its exit status (0 = ok)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            fn()
            os._exit(0)
        except AssertionError:
            os._exit(1)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


class Base(unittest.TestCase):
    def setUp(self):
        self.d = os.path.join(MNT, self.id().split(".")[-1])
        os.mkdir(self.d)

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def p(self, *names):
        return os.path.join(self.d, *names)

    def assertErrno(self, err, fn, *args):
        with self.assertRaises(OSError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.errno, err,
                         f"{getattr(fn, '__name__', fn)}{args}: {cm.exception}")


class Namespace(Base):
    def test_create_read_write(self):
        write_file(self.p("a"), b"hello")
        self.assertEqual(read_file(self.p("a")), b"hello")
        st = os.stat(self.p("a"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_size, 5)
        self.assertEqual(st.st_nlink, 1)
        self.assertErrno(errno.EEXIST, os.open, self.p("a"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY)

    def test_mkdir_rmdir_nlink(self):
        os.mkdir(self.p("d"))
        self.assertEqual(os.stat(self.d).st_nlink, 3)
        self.assertEqual(os.stat(self.p("d")).st_nlink, 2)
        os.mkdir(self.p("d", "e"))
        self.assertEqual(os.stat(self.p("d")).st_nlink, 3)
        self.assertErrno(errno.ENOTEMPTY, os.rmdir, self.p("d"))
        os.rmdir(self.p("d", "e"))
        os.rmdir(self.p("d"))
        self.assertEqual(os.stat(self.d).st_nlink, 2)
        self.assertErrno(errno.ENOENT, os.rmdir, self.p("d"))

    def test_unlink(self):
        write_file(self.p("a"), b"x")
        os.unlink(self.p("a"))
        self.assertErrno(errno.ENOENT, os.stat, self.p("a"))
        os.mkdir(self.p("d"))
        self.assertErrno(errno.EISDIR, os.unlink, self.p("d"))

    def test_symlink_readlink(self):
        target = "some/where/../else" + "x" * 300
        os.symlink(target, self.p("l"))
        self.assertEqual(os.readlink(self.p("l")), target)
        st = os.lstat(self.p("l"))
        self.assertTrue(stat.S_ISLNK(st.st_mode))
        self.assertEqual(st.st_size, len(target))
        write_file(self.p("t"), b"via link")
        os.symlink("t", self.p("l2"))
        self.assertEqual(read_file(self.p("l2")), b"via link")
        long_target = "y" * 4095
        os.symlink(long_target, self.p("l3"))
        self.assertEqual(os.readlink(self.p("l3")), long_target)

    def test_mknod_kinds(self):
        os.mkfifo(self.p("fifo"))
        self.assertTrue(stat.S_ISFIFO(os.stat(self.p("fifo")).st_mode))
        os.mknod(self.p("chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        st = os.stat(self.p("chr"))
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual(st.st_rdev, os.makedev(1, 3))
        # /dev/null semantics through a casfs device node
        with open(self.p("chr"), "wb") as f:
            f.write(b"discarded")
        os.mknod(self.p("blk"), 0o600 | stat.S_IFBLK, os.makedev(7, 0))
        self.assertTrue(stat.S_ISBLK(os.stat(self.p("blk")).st_mode))
        os.mknod(self.p("sock"), 0o600 | stat.S_IFSOCK)
        self.assertTrue(stat.S_ISSOCK(os.stat(self.p("sock")).st_mode))
        # a fifo on casfs works as a fifo
        pid = os.fork()
        if pid == 0:
            with open(self.p("fifo"), "wb") as f:
                f.write(b"through the fifo")
            os._exit(0)
        with open(self.p("fifo"), "rb") as f:
            self.assertEqual(f.read(), b"through the fifo")
        os.waitpid(pid, 0)

    def test_readdir(self):
        names = {f"n{i}" for i in range(300)}
        for n in names:
            write_file(self.p(n), b"")
        self.assertEqual(set(os.listdir(self.d)), names)
        with os.scandir(self.d) as it:
            inos = {e.name: e.inode() for e in it}
        for n in list(names)[:20]:
            self.assertEqual(inos[n], os.stat(self.p(n)).st_ino)

    def test_inode_numbers_unique(self):
        inos = set()
        for i in range(200):
            write_file(self.p(f"f{i}"), b"same content")
            inos.add(os.stat(self.p(f"f{i}")).st_ino)
        self.assertEqual(len(inos), 200, "same content must not share inodes")
        # and stable: unlink/recreate gives a new number, old ones stay
        ino0 = os.stat(self.p("f0")).st_ino
        os.rename(self.p("f0"), self.p("g0"))
        self.assertEqual(os.stat(self.p("g0")).st_ino, ino0)

    def test_name_max(self):
        write_file(self.p("n" * 255), b"")
        self.assertErrno(errno.ENAMETOOLONG, os.open, self.p("n" * 256),
                         os.O_CREAT | os.O_WRONLY)


class HardLinks(Base):
    def test_link_shares_inode(self):
        write_file(self.p("a"), b"data")
        os.link(self.p("a"), self.p("b"))
        sa, sb = os.stat(self.p("a")), os.stat(self.p("b"))
        self.assertEqual(sa.st_ino, sb.st_ino)
        self.assertEqual(sa.st_nlink, 2)
        os.link(self.p("a"), self.p("c"))
        self.assertEqual(os.stat(self.p("b")).st_nlink, 3)
        # a write through one name is seen through all
        with open(self.p("c"), "r+b") as f:
            f.write(b"DATA")
        self.assertEqual(read_file(self.p("a")), b"DATA")
        # metadata is per inode
        os.chmod(self.p("b"), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.p("a")).st_mode), 0o600)

    def test_unlink_keeps_data_for_others(self):
        write_file(self.p("a"), b"survivor" * 1000)
        os.link(self.p("a"), self.p("b"))
        os.unlink(self.p("a"))
        self.assertEqual(os.stat(self.p("b")).st_nlink, 1)
        self.assertEqual(read_file(self.p("b")), b"survivor" * 1000)

    def test_rename_over_hardlinked_name(self):
        write_file(self.p("a"), b"A")
        os.link(self.p("a"), self.p("a2"))
        write_file(self.p("b"), b"B")
        os.rename(self.p("b"), self.p("a"))   # replaces one name of A
        self.assertEqual(read_file(self.p("a")), b"B")
        self.assertEqual(read_file(self.p("a2")), b"A")
        self.assertEqual(os.stat(self.p("a2")).st_nlink, 1)
        self.assertEqual(os.stat(self.p("a")).st_nlink, 1)
        # rename one hard link onto another name of the same inode: no-op
        os.link(self.p("a2"), self.p("a3"))
        os.rename(self.p("a2"), self.p("a3"))
        self.assertTrue(os.path.exists(self.p("a2")))
        self.assertEqual(os.stat(self.p("a3")).st_nlink, 2)

    def test_link_across_directories(self):
        os.mkdir(self.p("x"))
        os.mkdir(self.p("y"))
        write_file(self.p("x", "f"), b"f")
        os.link(self.p("x", "f"), self.p("y", "g"))
        shutil.rmtree(self.p("x"))
        self.assertEqual(read_file(self.p("y", "g")), b"f")
        self.assertEqual(os.stat(self.p("y", "g")).st_nlink, 1)

    def test_link_errors(self):
        os.mkdir(self.p("d"))
        self.assertErrno(errno.EPERM, os.link, self.p("d"), self.p("d2"))
        write_file(self.p("a"), b"")
        write_file(self.p("b"), b"")
        self.assertErrno(errno.EEXIST, os.link, self.p("a"), self.p("b"))

    def test_hardlinked_executable_runs(self):
        shutil.copy2("/usr/bin/true", self.p("true"))
        os.mkdir(self.p("bin"))
        os.link(self.p("true"), self.p("bin", "true-link"))
        self.assertEqual(subprocess.call([self.p("bin", "true-link")]), 0)
        script = b"#!/bin/sh\necho \"$0 ran\"\n"
        write_file(self.p("s.sh"), script, 0o755)
        os.link(self.p("s.sh"), self.p("bin", "s2.sh"))
        out = subprocess.check_output([self.p("bin", "s2.sh")])
        self.assertEqual(out, f"{self.p('bin', 's2.sh')} ran\n".encode())
        # a running executable cannot be opened for writing (ETXTBSY)
        shutil.copy2("/usr/bin/sleep", self.p("sleep"))
        proc = subprocess.Popen([self.p("sleep"), "5"])
        try:
            import time
            time.sleep(0.5)
            self.assertErrno(errno.ETXTBSY, os.open, self.p("sleep"),
                             os.O_WRONLY)
        finally:
            proc.kill()
            proc.wait()


class Rename(Base):
    def test_noreplace(self):
        write_file(self.p("a"), b"a")
        write_file(self.p("b"), b"b")
        self.assertErrno(errno.EEXIST, renameat2, self.p("a"), self.p("b"),
                         RENAME_NOREPLACE)
        renameat2(self.p("a"), self.p("c"), RENAME_NOREPLACE)
        self.assertEqual(read_file(self.p("c")), b"a")

    def test_exchange(self):
        write_file(self.p("a"), b"a")
        os.mkdir(self.p("d"))
        write_file(self.p("d", "inner"), b"i")
        ia, idd = os.stat(self.p("a")).st_ino, os.stat(self.p("d")).st_ino
        renameat2(self.p("a"), self.p("d"), RENAME_EXCHANGE)
        self.assertEqual(os.stat(self.p("d")).st_ino, ia)
        self.assertEqual(os.stat(self.p("a")).st_ino, idd)
        self.assertEqual(read_file(self.p("a", "inner")), b"i")
        self.assertErrno(errno.ENOENT, renameat2, self.p("a"),
                         self.p("missing"), RENAME_EXCHANGE)
        # exchange a directory across parents keeps link counts right
        os.mkdir(self.p("p"))
        write_file(self.p("p", "f"), b"")
        renameat2(self.p("a"), self.p("p", "f"), RENAME_EXCHANGE)
        self.assertEqual(os.stat(self.p("p")).st_nlink, 3)
        self.assertEqual(os.stat(self.d).st_nlink, 3)

    def test_whiteout_refused(self):
        write_file(self.p("a"), b"a")
        self.assertErrno(errno.EINVAL, renameat2, self.p("a"), self.p("b"),
                         RENAME_WHITEOUT)
        self.assertTrue(os.path.exists(self.p("a")))

    def test_rename_dirs(self):
        os.makedirs(self.p("a", "sub"))
        os.mkdir(self.p("b"))
        os.rename(self.p("a"), self.p("b", "a"))
        self.assertEqual(os.stat(self.p("b")).st_nlink, 3)
        self.assertEqual(os.stat(self.d).st_nlink, 3)
        os.mkdir(self.p("empty"))
        os.rename(self.p("b", "a"), self.p("empty"))  # over an empty dir
        self.assertTrue(os.path.isdir(self.p("empty", "sub")))
        os.mkdir(self.p("full"))
        write_file(self.p("full", "x"), b"")
        self.assertErrno(errno.ENOTEMPTY, os.rename, self.p("empty"),
                         self.p("full"))
        self.assertErrno(errno.EINVAL, os.rename, self.p("empty"),
                         self.p("empty", "sub", "into-self"))
        write_file(self.p("file"), b"")
        self.assertErrno(errno.EISDIR, os.rename, self.p("file"),
                         self.p("full"))
        self.assertErrno(errno.ENOTDIR, os.rename, self.p("full"),
                         self.p("file"))


class Attributes(Base):
    def test_chmod_chown_utimes(self):
        write_file(self.p("a"), b"")
        os.chmod(self.p("a"), 0o4751)
        self.assertEqual(stat.S_IMODE(os.stat(self.p("a")).st_mode), 0o4751)
        os.chown(self.p("a"), 1000, 2000)
        st = os.stat(self.p("a"))
        self.assertEqual((st.st_uid, st.st_gid), (1000, 2000))
        # chown by root clears setuid on a regular file, as on tmpfs
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o4000, 0)
        os.utime(self.p("a"), ns=(1_000_000_123, 2_000_000_456))
        st = os.stat(self.p("a"))
        self.assertEqual(st.st_atime_ns, 1_000_000_123)
        self.assertEqual(st.st_mtime_ns, 2_000_000_456)

    def test_write_clears_setuid(self):
        write_file(self.p("a"), b"x")
        os.chmod(self.p("a"), 0o6755)
        os.chown(self.p("a"), 1000, 1000)
        os.chmod(self.p("a"), 0o6755)

        def w():
            with open(self.p("a"), "r+b") as f:
                f.write(b"y")
        os.chmod(self.d, 0o777)
        os.chmod(self.p("a"), 0o6777)
        self.assertEqual(as_user(1001, w), 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.p("a")).st_mode) & 0o6000,
                         0, "write by another user must clear setuid/setgid")

    def test_truncate(self):
        write_file(self.p("a"), b"0123456789")
        os.truncate(self.p("a"), 4)
        self.assertEqual(read_file(self.p("a")), b"0123")
        os.truncate(self.p("a"), 1 << 20)
        data = read_file(self.p("a"))
        self.assertEqual(len(data), 1 << 20)
        self.assertEqual(data[:4], b"0123")
        self.assertEqual(data[4:], bytes((1 << 20) - 4))
        # growing is sparse: no backing blocks for the hole
        self.assertLess(os.stat(self.p("a")).st_blocks, 64)
        with open(self.p("a"), "r+b") as f:
            f.truncate(0)
        self.assertEqual(os.stat(self.p("a")).st_size, 0)
        # truncate of a never-opened file
        os.mknod(self.p("b"), 0o644 | stat.S_IFREG)
        os.truncate(self.p("b"), 12345)
        self.assertEqual(read_file(self.p("b")), bytes(12345))

    def test_permissions(self):
        write_file(self.p("secret"), b"s", 0o600)
        os.chmod(self.d, 0o755)

        def r():
            try:
                open(self.p("secret"), "rb")
            except PermissionError:
                return
            raise AssertionError("read of a 0600 root file succeeded")
        self.assertEqual(as_user(1000, r), 0)

        def c():
            try:
                os.open(self.p("new"), os.O_CREAT | os.O_WRONLY)
            except PermissionError:
                return
            raise AssertionError("create in a 0755 root dir succeeded")
        self.assertEqual(as_user(1000, c), 0)

    def test_statfs_is_backing(self):
        a, b = os.statvfs(MNT), os.statvfs(CACHE)
        self.assertEqual(a.f_blocks, b.f_blocks)
        self.assertEqual(a.f_bsize, b.f_bsize)
        self.assertEqual(a.f_namemax, 255)


class Data(Base):
    def test_random_offsets(self):
        fd = os.open(self.p("a"), os.O_CREAT | os.O_RDWR, 0o644)
        model = bytearray()
        import random
        rnd = random.Random(7)
        for _ in range(300):
            off = rnd.randrange(0, 300_000)
            data = os.urandom(rnd.randrange(1, 9000))
            os.pwrite(fd, data, off)
            if len(model) < off + len(data):
                model.extend(bytes(off + len(data) - len(model)))
            model[off:off + len(data)] = data
        self.assertEqual(os.fstat(fd).st_size, len(model))
        self.assertEqual(os.pread(fd, len(model) + 10, 0), bytes(model))
        os.close(fd)

    def test_append(self):
        write_file(self.p("a"), b"one\n")
        fd = os.open(self.p("a"), os.O_WRONLY | os.O_APPEND)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"two\n")
        self.assertEqual(os.lseek(fd, 0, os.SEEK_CUR), 8)
        os.close(fd)
        fd = os.open(self.p("a"), os.O_WRONLY)
        # F_SETFL O_APPEND after open is honoured too
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, os.O_APPEND)
        os.write(fd, b"three\n")
        os.close(fd)
        self.assertEqual(read_file(self.p("a")), b"one\ntwo\nthree\n")

    def test_o_direct_like_backing(self):
        """O_DIRECT works exactly where the backing filesystem allows it."""
        probe = os.path.join(CACHE, "tmp", "odirect-probe")
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT))
            backing_ok = True
        except OSError as e:
            self.assertEqual(e.errno, errno.EINVAL)
            backing_ok = False
        finally:
            if os.path.exists(probe):
                os.unlink(probe)
        write_file(self.p("a"), b"")
        if not backing_ok:
            self.assertErrno(errno.EINVAL, os.open, self.p("a"),
                             os.O_RDWR | os.O_DIRECT)
            return
        fd = os.open(self.p("a"), os.O_RDWR | os.O_DIRECT)
        buf = mmap.mmap(-1, 8192)
        buf.write(b"d" * 8192)
        self.assertEqual(os.pwritev(fd, [buf], 0), 8192)
        os.close(fd)
        self.assertEqual(read_file(self.p("a")), b"d" * 8192)

    def test_mmap_shared_write(self):
        write_file(self.p("a"), bytes(3 * 4096))
        with open(self.p("a"), "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            m[4096:4101] = b"hello"
            m.flush()
            m.close()
        self.assertEqual(read_file(self.p("a"))[4096:4101], b"hello")
        # read() then mmap of another open see the same page cache
        fd1 = os.open(self.p("a"), os.O_RDWR)
        m1 = mmap.mmap(fd1, 0)
        os.pwrite(fd1, b"WORLD", 100)
        self.assertEqual(m1[100:105], b"WORLD")
        m1[200:203] = b"abc"
        self.assertEqual(os.pread(fd1, 3, 200), b"abc")
        m1.close()
        os.close(fd1)
        # a hard link sees mmap writes
        os.link(self.p("a"), self.p("b"))
        self.assertEqual(read_file(self.p("b"))[200:203], b"abc")

    def test_mmap_private_and_exec(self):
        write_file(self.p("a"), b"x" * 8192)
        with open(self.p("a"), "r+b") as f:
            m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE)
            m[0:1] = b"y"
            m.close()
        self.assertEqual(read_file(self.p("a"))[0:1], b"x")

    def test_fsync_fdatasync(self):
        fd = os.open(self.p("a"), os.O_CREAT | os.O_RDWR, 0o644)
        os.write(fd, b"durable")
        os.fsync(fd)
        os.fdatasync(fd)
        os.close(fd)
        fd = os.open(self.d, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    def test_fallocate(self):
        fd = os.open(self.p("a"), os.O_CREAT | os.O_RDWR, 0o644)
        os.posix_fallocate(fd, 0, 1 << 20)
        self.assertEqual(os.fstat(fd).st_size, 1 << 20)
        self.assertGreaterEqual(os.fstat(fd).st_blocks * 512, 1 << 20)
        # punch a hole (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
        os.pwrite(fd, b"z" * 8192, 0)
        if libc.fallocate(fd, 3, ctypes.c_long(0), ctypes.c_long(4096)) != 0:
            self.fail(f"punch hole: {os.strerror(ctypes.get_errno())}")
        self.assertEqual(os.pread(fd, 8192, 0), bytes(4096) + b"z" * 4096)
        self.assertEqual(os.fstat(fd).st_size, 1 << 20)
        os.close(fd)

    def test_seek_data_hole(self):
        fd = os.open(self.p("a"), os.O_CREAT | os.O_RDWR, 0o644)
        os.pwrite(fd, b"d" * 4096, 1 << 20)
        self.assertEqual(os.lseek(fd, 0, os.SEEK_DATA), 1 << 20)
        self.assertEqual(os.lseek(fd, 0, os.SEEK_HOLE), 0)
        self.assertEqual(os.lseek(fd, 1 << 20, os.SEEK_HOLE),
                         (1 << 20) + 4096)
        self.assertErrno(errno.ENXIO, os.lseek, fd, (1 << 20) + 4096,
                         os.SEEK_DATA)
        self.assertEqual(os.lseek(fd, 0, os.SEEK_END), (1 << 20) + 4096)
        os.close(fd)

    def test_sendfile_splice_copy_file_range(self):
        data = os.urandom(300_000)
        write_file(self.p("src"), data)
        # sendfile casfs -> casfs
        src = os.open(self.p("src"), os.O_RDONLY)
        dst = os.open(self.p("dst"), os.O_CREAT | os.O_WRONLY, 0o644)
        n = 0
        while n < len(data):
            n += os.sendfile(dst, src, n, len(data) - n)
        os.close(dst)
        self.assertEqual(read_file(self.p("dst")), data)
        # splice casfs -> pipe -> casfs
        r, w = os.pipe()
        out = os.open(self.p("spliced"), os.O_CREAT | os.O_WRONLY, 0o644)
        off = 0
        while off < len(data):
            k = os.splice(src, w, min(65536, len(data) - off), offset_src=off)
            os.splice(r, out, k)
            off += k
        os.close(out)
        os.close(r)
        os.close(w)
        self.assertEqual(read_file(self.p("spliced")), data)
        # copy_file_range within casfs
        dst = os.open(self.p("cfr"), os.O_CREAT | os.O_WRONLY, 0o644)
        n = 0
        while n < len(data):
            k = os.copy_file_range(src, dst, len(data) - n, n, n)
            self.assertGreater(k, 0)
            n += k
        os.close(dst)
        self.assertEqual(read_file(self.p("cfr")), data)
        # copy_file_range across filesystems: EXDEV, like other filesystems
        other = os.open(os.path.join(REF, "cfr-out"),
                        os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.copy_file_range(src, other, 10, 0, 0)
        except OSError as e:
            self.assertIn(e.errno, (errno.EXDEV, errno.EOPNOTSUPP))
        os.close(other)
        os.close(src)

    def test_tmpfile_linkat(self):
        fd = os.open(self.d, os.O_TMPFILE | os.O_RDWR, 0o640)
        os.write(fd, b"anonymous")
        self.assertEqual(os.fstat(fd).st_nlink, 0)
        linkat_fd(fd, self.p("named"))
        self.assertEqual(os.fstat(fd).st_nlink, 1)
        os.close(fd)
        self.assertEqual(read_file(self.p("named")), b"anonymous")
        # O_TMPFILE | O_EXCL can never be linked
        fd = os.open(self.d, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
        self.assertErrno(errno.ENOENT, linkat_fd, fd, self.p("never"))
        os.close(fd)

    def test_last_unlink_frees_backing(self):
        before = backing_used_kib()
        write_file(self.p("big"), b"b" * (8 << 20))
        os.link(self.p("big"), self.p("big2"))
        self.assertGreaterEqual(backing_used_kib(), before + 8000)
        os.unlink(self.p("big"))
        self.assertGreaterEqual(backing_used_kib(), before + 8000)
        fd = os.open(self.p("big2"), os.O_RDONLY)
        os.unlink(self.p("big2"))
        # still open: the data must stay readable
        self.assertEqual(os.pread(fd, 4, (8 << 20) - 4), b"bbbb")
        self.assertGreaterEqual(backing_used_kib(), before + 8000)
        os.close(fd)
        self.assertLessEqual(backing_used_kib(), before + 64)


class Xattrs(Base):
    def test_user_xattrs(self):
        write_file(self.p("a"), b"")
        os.setxattr(self.p("a"), "user.k", b"v1")
        self.assertEqual(os.getxattr(self.p("a"), "user.k"), b"v1")
        os.setxattr(self.p("a"), "user.k", b"v2", os.XATTR_REPLACE)
        self.assertEqual(os.getxattr(self.p("a"), "user.k"), b"v2")
        self.assertErrno(errno.EEXIST, os.setxattr, self.p("a"), "user.k",
                         b"v", os.XATTR_CREATE)
        self.assertErrno(errno.ENODATA, os.setxattr, self.p("a"), "user.n",
                         b"v", os.XATTR_REPLACE)
        os.setxattr(self.p("a"), "user.empty", b"")
        self.assertEqual(os.getxattr(self.p("a"), "user.empty"), b"")
        self.assertEqual(sorted(os.listxattr(self.p("a"))),
                         ["user.empty", "user.k"])
        os.removexattr(self.p("a"), "user.k")
        self.assertErrno(errno.ENODATA, os.getxattr, self.p("a"), "user.k")
        self.assertErrno(errno.ENODATA, os.removexattr, self.p("a"),
                         "user.k")
        # xattrs belong to the inode: visible through a hard link
        os.link(self.p("a"), self.p("b"))
        self.assertEqual(os.listxattr(self.p("b")), ["user.empty"])
        # user.* is not allowed on symlinks and device nodes (VFS rule)
        os.symlink("a", self.p("l"))
        self.assertErrno(errno.EPERM, lambda: os.setxattr(
            self.p("l"), "user.k", b"v", follow_symlinks=False))
        os.mkdir(self.p("d"))
        os.setxattr(self.p("d"), "user.dir", b"ok")

    def test_namespaces(self):
        write_file(self.p("a"), b"")
        os.setxattr(self.p("a"), "trusted.t", b"T")
        os.setxattr(self.p("a"), "security.s", b"S")
        self.assertErrno(errno.EOPNOTSUPP, os.setxattr, self.p("a"),
                         "bogus.x", b"v")
        os.chmod(self.d, 0o777)
        os.chmod(self.p("a"), 0o666)

        def unpriv():
            names = os.listxattr(self.p("a"))
            assert "trusted.t" not in names, names
            assert "security.s" in names, names
            try:
                os.getxattr(self.p("a"), "trusted.t")
                raise AssertionError("trusted read by unprivileged user")
            except OSError as e:
                assert e.errno == errno.ENODATA, e
            try:
                os.setxattr(self.p("a"), "trusted.u", b"v")
                raise AssertionError("trusted write by unprivileged user")
            except OSError as e:
                assert e.errno == errno.EPERM, e
            os.setxattr(self.p("a"), "user.mine", b"ok")
        self.assertEqual(as_user(1000, unpriv), 0)
        self.assertIn("trusted.t", os.listxattr(self.p("a")))

    def test_limits(self):
        write_file(self.p("a"), b"")
        self.assertErrno(errno.E2BIG, os.setxattr, self.p("a"), "user.big",
                         b"x" * (65536 + 1))
        self.assertErrno(errno.ERANGE, os.setxattr, self.p("a"),
                         "user." + "n" * 260, b"v")
        # total bytes per inode
        os.setxattr(self.p("a"), "user.a", b"x" * 40000)
        self.assertErrno(errno.ENOSPC, os.setxattr, self.p("a"), "user.b",
                         b"x" * 30000)
        os.removexattr(self.p("a"), "user.a")
        # count per inode
        for i in range(128):
            os.setxattr(self.p("a"), f"user.{i}", b"")
        self.assertErrno(errno.ENOSPC, os.setxattr, self.p("a"),
                         "user.one-too-many", b"")
        # replacing an existing one is still fine at the count limit
        os.setxattr(self.p("a"), "user.0", b"new")
        self.assertEqual(len(os.listxattr(self.p("a"))), 128)


if __name__ == "__main__":
    # Verbose: one line per case in the console log.
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
