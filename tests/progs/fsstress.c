/*
 * fsstress - concurrency stress test.
 *
 *   fsstress [-p PROCS] [-n OPS_PER_PROC] [-s SEED] DIR
 *
 * Forks PROCS children that all run random filesystem operations (create,
 * write, read, truncate, link, unlink, rename across directories including
 * RENAME_NOREPLACE/RENAME_EXCHANGE, mkdir, rmdir, symlink, chmod, xattrs,
 * mmap writes and reads, readdir, stat, recursive delete) on one small shared
 * namespace under DIR, so that they race with each other.
 *
 * Errors that races make legitimate (ENOENT, EEXIST, ENOTEMPTY, ...) are
 * counted; any other error, a short write or a fatal signal fails the run.
 * SIGBUS while touching a shared mapping is expected (another child may
 * have truncated the file) and only counted.
 *
 * Each child also owns a private file ("pN", a name the shared operations
 * never use) whose expected content it keeps in memory: every write is read
 * back and the whole file is verified regularly and at the end, which
 * catches data corruption caused by the concurrent activity around it.
 *
 * When all children are done, the parent walks DIR and checks that every
 * non-directory's st_nlink equals the number of names found for its inode,
 * that every directory's st_nlink is 2 + its number of subdirectories, and
 * that every regular file reads back exactly st_size bytes.  Hard links can
 * only be counted inside the walked tree, so DIR must be the root of the
 * filesystem under test (or a directory nothing outside links into).
 *
 * Exit status: 0 success, 1 failure, 2 usage or setup error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "testrand.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define MAX_FILE  (1024 * 1024) /* shared files never grow beyond this */
#define MAX_IO    (64 * 1024)   /* largest single read or write */
#define PRIV_MAX  (256 * 1024)  /* private file size limit */
#define MAX_PROCS 64
#define RELBUF    64
#define PATHBUF   8192

/* Same namespace shape as fsdiff: few names, so operations collide. */
static const char *const dir_pool[] = { "a", "b", "c" };
static const char *const file_pool[] = { "d", "e", "f", "g" };
#define NDIRS (sizeof(dir_pool) / sizeof(dir_pool[0]))
#define NFILES (sizeof(file_pool) / sizeof(file_pool[0]))

enum kind {
	K_CREATE, K_WRITE, K_READ, K_TRUNCATE, K_LINK, K_UNLINK, K_RENAME,
	K_MKDIR, K_RMDIR, K_SYMLINK, K_CHMOD, K_SETXATTR, K_RMXATTR,
	K_GETXATTR, K_MMAPW, K_MMAPR, K_READDIR, K_STAT, K_RMTREE, K_PRIVATE,
	NKINDS
};

static const struct {
	const char *name;
	unsigned weight; /* per mille */
	bool xattr;
} kinds[NKINDS] = {
	[K_CREATE]   = { "create",   90, false },
	[K_WRITE]    = { "write",   100, false },
	[K_READ]     = { "read",     60, false },
	[K_TRUNCATE] = { "truncate", 50, false },
	[K_LINK]     = { "link",     60, false },
	[K_UNLINK]   = { "unlink",   70, false },
	[K_RENAME]   = { "rename",  100, false },
	[K_MKDIR]    = { "mkdir",    60, false },
	[K_RMDIR]    = { "rmdir",    40, false },
	[K_SYMLINK]  = { "symlink",  30, false },
	[K_CHMOD]    = { "chmod",    20, false },
	[K_SETXATTR] = { "setxattr", 40, true },
	[K_RMXATTR]  = { "rmxattr",  20, true },
	[K_GETXATTR] = { "getxattr", 20, true },
	[K_MMAPW]    = { "mmapw",    50, false },
	[K_MMAPR]    = { "mmapr",    20, false },
	[K_READDIR]  = { "readdir",  30, false },
	[K_STAT]     = { "stat",     30, false },
	[K_RMTREE]   = { "rmtree",    5, false },
	[K_PRIVATE]  = { "private",  75, false },
};

/* Per-child counters, in memory shared with the parent. */
struct stats {
	unsigned long total[NKINDS], ok[NKINDS];
	unsigned long expected_errors, sigbus;
};

static struct stats *all_stats, *st;
static int proc_id;
static unsigned long op_no;
static char op_desc[256];
static char xprefix[16];
static bool use_xattr;
static long page_size;
static unsigned char wbuf[MAX_IO], rbuf[MAX_IO];

/* ------------------------------------------------------------------ */

/* rng_state, rnd(), rnd_below(), chance(): see testrand.h */

static void fill_pattern(unsigned char *buf, size_t len)
{
	uint64_t s = rnd(), v;

	for (size_t i = 0; i < len; i += sizeof(v)) {
		v = splitmix64(&s);
		memcpy(buf + i, &v, len - i < sizeof(v) ? len - i : sizeof(v));
	}
}

/* ------------------------------------------------------------------ */
/* Failure handling in children. */

static void child_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fsstress: FAIL proc %d op %lu (%s): %s\n", proc_id,
		op_no, op_desc, buf);
	_exit(1);
}

#define E(x) (1ULL << (x))
/* Errors that concurrent namespace changes make legitimate anywhere. */
#define RACE (E(ENOENT) | E(EEXIST) | E(ENOTDIR) | E(EISDIR) | E(ELOOP))

/*
 * Check a syscall result: true on success, false on an allowed error,
 * and the child fails on anything else.
 */
static bool chk(long long ret, const char *what, uint64_t allowed)
{
	int e = errno;

	if (ret >= 0)
		return true;
	if (e < 64 && (allowed & E(e))) {
		st->expected_errors++;
		return false;
	}
	child_fail("%s: unexpected %s", what, errname(e));
	return false;
}

/* ------------------------------------------------------------------ */
/* SIGBUS handling around accesses to shared mappings. */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	/* Not inside a guarded copy: die by the signal as usual. */
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * memcpy that survives SIGBUS (the file shrank under the mapping).
 * Returns false if it was interrupted.
 */
static bool guarded_copy(void *dst, const void *src, size_t len)
{
	bool done = false;

	bus_armed = 1;
	if (sigsetjmp(bus_jmp, 1) == 0) {
		memcpy(dst, src, len);
		done = true;
	}
	bus_armed = 0;
	return done;
}

/* ------------------------------------------------------------------ */
/* Paths. */

enum want { WANT_FILE, WANT_DIR };

static const char *gen_leaf(enum want want, unsigned cross)
{
	if (chance(cross))
		want = !want;
	return want == WANT_DIR ? dir_pool[rnd_below(NDIRS)]
				: file_pool[rnd_below(NFILES)];
}

/* depth 0: random, shallow paths most likely. */
static void gen_path_depth(char *buf, enum want want, unsigned cross,
			   int depth)
{
	if (!depth) {
		unsigned r = rnd_below(100);

		depth = r < 45 ? 1 : r < 80 ? 2 : 3;
	}
	buf[0] = '\0';
	for (int i = 1; i < depth; i++) {
		strcat(buf, chance(3) ? file_pool[rnd_below(NFILES)]
				      : dir_pool[rnd_below(NDIRS)]);
		strcat(buf, "/");
	}
	strcat(buf, gen_leaf(want, cross));
}

static void gen_path(char *buf, enum want want, unsigned cross)
{
	gen_path_depth(buf, want, cross, 0);
}

/* Often a sibling of p1, otherwise anywhere (renames across dirs). */
static void gen_path2(char *buf, const char *p1, enum want want)
{
	const char *slash = strrchr(p1, '/');

	if (chance(40)) {
		int n = slash ? slash - p1 + 1 : 0;

		memcpy(buf, p1, n);
		strcpy(buf + n, gen_leaf(want, 10));
	} else {
		gen_path(buf, want, 10);
	}
}

static unsigned gen_mode(void)
{
	/* u+rwx always, so that nothing becomes unreachable for the walk. */
	return (rnd_below(01000) | 0700) | (chance(10) ? rnd_below(8) << 9 : 0);
}

static uint64_t gen_offset(void)
{
	unsigned r = rnd_below(100);

	if (r < 75)
		return rnd_below(16384);
	if (r < 97)
		return rnd_below(128 * 1024);
	return rnd_below(MAX_FILE - MAX_IO);
}

static size_t gen_iolen(void)
{
	return chance(90) ? rnd_below(8193) : rnd_below(MAX_IO + 1);
}

/* ------------------------------------------------------------------ */
/* Shared-namespace operations. */

static void do_write(const char *p)
{
	bool append = chance(10);
	size_t len = gen_iolen();
	uint64_t off = gen_offset();
	struct stat sb;
	ssize_t n;
	int fd;

	snprintf(op_desc, sizeof(op_desc), "write %s off=%" PRIu64 " len=%zu%s",
		 p, off, len, append ? " append" : "");
	fd = open(p, O_WRONLY | (append ? O_APPEND : 0));
	if (!chk(fd, "open", RACE))
		return;
	fill_pattern(wbuf, len);
	if (append) {
		chk(fstat(fd, &sb), "fstat", 0);
		n = sb.st_size + len <= MAX_FILE ? write(fd, wbuf, len) : 0;
	} else {
		n = pwrite(fd, wbuf, len, off);
	}
	if (chk(n, append ? "write" : "pwrite", 0) && n != (ssize_t)len &&
	    !(append && n == 0))
		child_fail("short write: %zd of %zu bytes", n, len);
	if (chance(5))
		chk(chance(50) ? fsync(fd) : fdatasync(fd), "fsync", 0);
	chk(close(fd), "close", 0);
	st->ok[K_WRITE]++;
}

static void do_read(const char *p)
{
	uint64_t off = gen_offset();
	size_t len = gen_iolen();
	int fd;

	snprintf(op_desc, sizeof(op_desc), "read %s off=%" PRIu64 " len=%zu",
		 p, off, len);
	fd = open(p, O_RDONLY);
	if (!chk(fd, "open", RACE))
		return;
	/* The name may be a directory by now: EISDIR. */
	if (chk(pread(fd, rbuf, len, off), "pread", E(EISDIR)))
		st->ok[K_READ]++;
	chk(close(fd), "close", 0);
}

static void do_truncate(const char *p)
{
	uint64_t len = chance(30) ? rnd_below(4096) : gen_offset();
	int fd;

	snprintf(op_desc, sizeof(op_desc), "truncate %s len=%" PRIu64, p, len);
	if (chance(50)) {
		if (chk(truncate(p, len), "truncate", RACE))
			st->ok[K_TRUNCATE]++;
		return;
	}
	fd = open(p, O_WRONLY);
	if (!chk(fd, "open", RACE))
		return;
	if (chk(ftruncate(fd, len), "ftruncate", 0))
		st->ok[K_TRUNCATE]++;
	chk(close(fd), "close", 0);
}

/*
 * Write through a shared mapping.  Another child may shrink the file
 * between fstat and the copy: SIGBUS then is expected.
 */
static void do_mmap(const char *p, bool write)
{
	uint64_t want_end = gen_offset() + 1 + rnd_below(8192);
	uint64_t size, start, len, pstart, maplen;
	struct stat sb;
	void *m;
	int fd;

	snprintf(op_desc, sizeof(op_desc), "mmap%s %s end=%" PRIu64,
		 write ? "w" : "r", p, want_end);
	fd = open(p, write ? O_RDWR : O_RDONLY);
	if (!chk(fd, "open", RACE))
		return;
	chk(fstat(fd, &sb), "fstat", 0);
	if (!S_ISREG(sb.st_mode))
		goto out;
	size = sb.st_size;
	if (write && size < want_end && chance(50)) {
		chk(ftruncate(fd, want_end), "ftruncate", 0);
		size = want_end;
	}
	if (size == 0)
		goto out;
	start = rnd_below(size);
	len = 1 + rnd_below(size - start < 16384 ? size - start : 16384);
	pstart = start & ~(uint64_t)(page_size - 1);
	maplen = start + len - pstart;
	m = mmap(NULL, maplen, write ? PROT_READ | PROT_WRITE : PROT_READ,
		 MAP_SHARED, fd, pstart);
	if (!chk(m == MAP_FAILED ? -1 : 0, "mmap", 0))
		goto out;
	if (write) {
		fill_pattern(wbuf, len);
		if (!guarded_copy((char *)m + (start - pstart), wbuf, len))
			st->sigbus++;
		else if (chance(50))
			chk(msync(m, maplen, MS_SYNC), "msync", 0);
	} else if (!guarded_copy(rbuf, (char *)m + (start - pstart), len)) {
		st->sigbus++;
	}
	chk(munmap(m, maplen), "munmap", 0);
	st->ok[write ? K_MMAPW : K_MMAPR]++;
out:
	chk(close(fd), "close", 0);
}

static void do_xattr(enum kind k, const char *p)
{
	static const int xflags[] = { 0, 0, XATTR_CREATE, XATTR_REPLACE };
	char name[64], val[4096];
	int flags = xflags[rnd_below(4)], fd = -1;
	size_t vlen = rnd_below(65);
	bool nofollow = chance(50), res = false;

	snprintf(name, sizeof(name), "%sx%u", xprefix, (unsigned)rnd_below(4));
	snprintf(op_desc, sizeof(op_desc), "%s %s %s%s", kinds[k].name, p,
		 name, nofollow ? " nofollow" : "");
	switch (k) {
	case K_SETXATTR:
		fill_pattern(wbuf, vlen);
		/* EPERM: user.* xattrs are not allowed on symlinks. */
		if (nofollow) {
			res = chk(lsetxattr(p, name, wbuf, vlen, flags),
				 "lsetxattr", RACE | E(ENODATA) | E(EPERM));
		} else {
			fd = open(p, O_RDONLY);
			if (chk(fd, "open", RACE)) {
				res = chk(fsetxattr(fd, name, wbuf, vlen, flags),
					 "fsetxattr", E(EEXIST) | E(ENODATA));
				chk(close(fd), "close", 0);
			}
		}
		break;
	case K_RMXATTR:
		res = chk(nofollow ? lremovexattr(p, name) : removexattr(p, name),
			 "removexattr", RACE | E(ENODATA) | E(EPERM));
		break;
	case K_GETXATTR:
		if (chance(50))
			res = chk(llistxattr(p, val, sizeof(val)), "llistxattr",
				 RACE);
		else
			res = chk(nofollow ? lgetxattr(p, name, val, sizeof(val))
					  : getxattr(p, name, val, sizeof(val)),
				 "getxattr", RACE | E(ENODATA));
		break;
	default:
		break;
	}
	if (res)
		st->ok[k]++;
}

static void do_readdir(const char *p)
{
	struct dirent *de;
	DIR *d;

	snprintf(op_desc, sizeof(op_desc), "readdir %s", *p ? p : ".");
	d = opendir(*p ? p : ".");
	if (!chk(d ? 0 : -1, "opendir", RACE))
		return;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			chk(errno ? -1 : 0, "readdir", 0);
			break;
		}
		if (!de->d_name[0] || strchr(de->d_name, '/'))
			child_fail("readdir returned a bad name \"%s\"",
				   de->d_name);
	}
	chk(closedir(d), "closedir", 0);
	st->ok[K_READDIR]++;
}

static void do_stat(const char *p)
{
	char buf[PATHBUF];
	struct stat sb;

	snprintf(op_desc, sizeof(op_desc), "stat %s", p);
	if (!chk(lstat(p, &sb), "lstat", RACE))
		return;
	/* EINVAL: replaced by a non-symlink since the lstat. */
	if (S_ISLNK(sb.st_mode))
		chk(readlink(p, buf, sizeof(buf)), "readlink", RACE | E(EINVAL));
	st->ok[K_STAT]++;
}

/*
 * Append "/name" to the path in buf (PATHBUF bytes); returns the old
 * length to truncate back to.  Recursive walkers share one path buffer
 * this way: concurrent directory renames can nest directories hundreds of
 * levels deep, too deep for path arrays in every stack frame.  False if
 * the path would not fit.
 */
static bool path_push(char *buf, const char *name, size_t *oldlen)
{
	size_t len = strlen(buf);

	if (len + 1 + strlen(name) >= PATHBUF)
		return false;
	buf[len] = '/';
	strcpy(buf + len + 1, name);
	*oldlen = len;
	return true;
}

/* rm -r of path (a PATHBUF buffer); things vanish and appear meanwhile. */
static void rmtree(char *path)
{
	struct stat sb;
	struct dirent *de;
	size_t len;
	DIR *d;

	if (!chk(lstat(path, &sb), "lstat", RACE | E(ENAMETOOLONG)))
		return;
	if (!S_ISDIR(sb.st_mode)) {
		chk(unlink(path), "unlink", RACE);
		return;
	}
	if ((d = opendir(path))) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (!path_push(path, de->d_name, &len))
				break; /* absurdly deep: leave it */
			rmtree(path);
			path[len] = '\0';
		}
		closedir(d);
	}
	chk(rmdir(path), "rmdir", RACE | E(ENOTEMPTY));
}

/* ------------------------------------------------------------------ */
/* The private file: content known exactly, verified against a shadow. */

static unsigned char *shadow;
static size_t shadow_size;
static char priv_name[32];

static void priv_verify(int fd, const char *when)
{
	static unsigned char buf[PRIV_MAX];
	struct stat sb;
	ssize_t n;

	chk(fstat(fd, &sb), "fstat", 0);
	if ((size_t)sb.st_size != shadow_size)
		child_fail("%s: private file size %lld, expected %zu", when,
			   (long long)sb.st_size, shadow_size);
	n = pread(fd, buf, PRIV_MAX, 0);
	chk(n, "pread", 0);
	if ((size_t)n != shadow_size)
		child_fail("%s: private file read %zd bytes, expected %zu",
			   when, n, shadow_size);
	for (size_t i = 0; i < shadow_size; i++)
		if (buf[i] != shadow[i])
			child_fail("%s: private file differs at offset %zu "
				   "(0x%02x, expected 0x%02x)", when, i, buf[i],
				   shadow[i]);
}

static void do_private(void)
{
	unsigned r = rnd_below(100);
	int fd = open(priv_name, O_RDWR);
	size_t off, len;

	if (!chk(fd, "open private", 0))
		return;
	if (r < 45) {
		len = rnd_below(16385);
		off = rnd_below(PRIV_MAX - len + 1);
		snprintf(op_desc, sizeof(op_desc), "private pwrite off=%zu "
			 "len=%zu", off, len);
		fill_pattern(wbuf, len);
		ssize_t n = pwrite(fd, wbuf, len, off);

		if (chk(n, "private pwrite", 0) && n != (ssize_t)len)
			child_fail("private pwrite: short write: %zd of %zu "
				   "bytes", n, len);
		memcpy(shadow + off, wbuf, len);
		/* A zero-length write does not extend the file. */
		if (len && off + len > shadow_size)
			shadow_size = off + len;
		if (pread(fd, rbuf, len, off) != (ssize_t)len ||
		    memcmp(rbuf, wbuf, len))
			child_fail("private pwrite: read back differs");
	} else if (r < 60) {
		len = chance(50) ? rnd_below(8192) : rnd_below(PRIV_MAX + 1);
		snprintf(op_desc, sizeof(op_desc), "private ftruncate %zu", len);
		chk(ftruncate(fd, len), "ftruncate", 0);
		/* Bytes past a shrink come back as zeros if regrown. */
		if (len < shadow_size)
			memset(shadow + len, 0, shadow_size - len);
		shadow_size = len;
	} else if (r < 85 && shadow_size > 0) {
		uint64_t start = rnd_below(shadow_size), pstart, maplen;
		void *m;

		len = 1 + rnd_below(shadow_size - start < 16384 ?
				    shadow_size - start : 16384);
		snprintf(op_desc, sizeof(op_desc), "private mmap write "
			 "off=%" PRIu64 " len=%zu", start, len);
		pstart = start & ~(uint64_t)(page_size - 1);
		maplen = start + len - pstart;
		m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 pstart);
		chk(m == MAP_FAILED ? -1 : 0, "mmap private", 0);
		fill_pattern(wbuf, len);
		/* Nobody else touches this file: SIGBUS would be a bug. */
		memcpy((char *)m + (start - pstart), wbuf, len);
		memcpy(shadow + start, wbuf, len);
		if (chance(50))
			chk(msync(m, maplen, MS_SYNC), "msync", 0);
		chk(munmap(m, maplen), "munmap", 0);
		if (pread(fd, rbuf, len, start) != (ssize_t)len ||
		    memcmp(rbuf, wbuf, len))
			child_fail("private mmap write: read back differs");
	} else {
		snprintf(op_desc, sizeof(op_desc), "private verify");
		priv_verify(fd, "verify");
	}
	chk(close(fd), "close", 0);
	st->ok[K_PRIVATE]++;
}

/* ------------------------------------------------------------------ */

static enum kind pick_kind(void)
{
	unsigned total = 0, r;

	for (int k = 0; k < NKINDS; k++)
		if (use_xattr || !kinds[k].xattr)
			total += kinds[k].weight;
	r = rnd_below(total);
	for (int k = 0; k < NKINDS; k++) {
		if (!use_xattr && kinds[k].xattr)
			continue;
		if (r < kinds[k].weight)
			return k;
		r -= kinds[k].weight;
	}
	return K_STAT;
}

static void one_op(void)
{
	static const int rflags[] = { 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE };
	enum kind k = pick_kind();
	static char path[PATHBUF];
	char p1[RELBUF], p2[RELBUF], target[RELBUF];
	enum want want = WANT_FILE;
	int fd, flags;
	unsigned mode;

	st->total[k]++;
	switch (k) {
	case K_MKDIR:
	case K_RMDIR:
	case K_READDIR:
	case K_RMTREE:
		want = WANT_DIR;
		break;
	case K_RENAME:
	case K_CHMOD:
	case K_STAT:
	case K_SETXATTR:
	case K_RMXATTR:
	case K_GETXATTR:
		want = chance(30) ? WANT_DIR : WANT_FILE;
		break;
	default:
		break;
	}
	/*
	 * Directories renamed into deeper slots carry their subtrees along,
	 * so chains of nested directories grow out of reach of generated
	 * paths; rmtree, at every level, is what bounds them.
	 */
	gen_path_depth(p1, want, k == K_MKDIR ? 3 : k == K_RMDIR ? 30 : 10,
		       k == K_RMTREE ? 1 + rnd_below(3) : 0);

	switch (k) {
	case K_CREATE:
		flags = O_WRONLY | O_CREAT | (chance(60) ? O_EXCL :
					      chance(50) ? O_TRUNC : 0);
		mode = gen_mode();
		snprintf(op_desc, sizeof(op_desc), "create %s flags=0%o", p1,
			 flags);
		fd = open(p1, flags, mode);
		if (chk(fd, "open", RACE)) {
			chk(close(fd), "close", 0);
			st->ok[k]++;
		}
		break;
	case K_WRITE:
		do_write(p1);
		break;
	case K_READ:
		do_read(p1);
		break;
	case K_TRUNCATE:
		do_truncate(p1);
		break;
	case K_LINK:
		gen_path2(p2, p1, WANT_FILE);
		flags = chance(20) ? AT_SYMLINK_FOLLOW : 0;
		snprintf(op_desc, sizeof(op_desc), "link %s %s", p1, p2);
		/* EPERM: hard link to a directory. */
		if (chk(linkat(AT_FDCWD, p1, AT_FDCWD, p2, flags), "linkat",
			RACE | E(EPERM)))
			st->ok[k]++;
		break;
	case K_UNLINK:
		snprintf(op_desc, sizeof(op_desc), "unlink %s", p1);
		if (chk(unlink(p1), "unlink", RACE))
			st->ok[k]++;
		break;
	case K_RENAME:
		gen_path2(p2, p1, want);
		flags = rflags[rnd_below(4)];
		snprintf(op_desc, sizeof(op_desc), "rename %s %s flags=%d", p1,
			 p2, flags);
		/* EINVAL: a directory into its own subtree. */
		if (chk(syscall(SYS_renameat2, AT_FDCWD, p1, AT_FDCWD, p2, flags),
		       "renameat2", RACE | E(ENOTEMPTY) | E(EINVAL)))
			st->ok[k]++;
		break;
	case K_MKDIR:
		snprintf(op_desc, sizeof(op_desc), "mkdir %s", p1);
		if (chk(mkdir(p1, gen_mode()), "mkdir", RACE))
			st->ok[k]++;
		break;
	case K_RMDIR:
		snprintf(op_desc, sizeof(op_desc), "rmdir %s", p1);
		if (chk(rmdir(p1), "rmdir", RACE | E(ENOTEMPTY)))
			st->ok[k]++;
		break;
	case K_SYMLINK:
		gen_path(target, chance(25), 10);
		snprintf(op_desc, sizeof(op_desc), "symlink %s -> %s", p1,
			 target);
		if (chk(symlink(target, p1), "symlink", RACE))
			st->ok[k]++;
		break;
	case K_CHMOD:
		snprintf(op_desc, sizeof(op_desc), "chmod %s", p1);
		if (chk(chmod(p1, gen_mode()), "chmod", RACE))
			st->ok[k]++;
		break;
	case K_SETXATTR:
	case K_RMXATTR:
	case K_GETXATTR:
		do_xattr(k, p1);
		break;
	case K_MMAPW:
	case K_MMAPR:
		do_mmap(p1, k == K_MMAPW);
		break;
	case K_READDIR:
		do_readdir(chance(20) ? "" : p1);
		break;
	case K_STAT:
		do_stat(p1);
		break;
	case K_RMTREE:
		snprintf(op_desc, sizeof(op_desc), "rmtree %s", p1);
		strcpy(path, p1);
		rmtree(path);
		st->ok[k]++;
		break;
	case K_PRIVATE:
		do_private();
		break;
	case NKINDS:
		break;
	}
}

static void child(const char *dir, uint64_t seed, unsigned long nops)
{
	struct sigaction sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);

	st = &all_stats[proc_id];
	rng_state = seed ^ (0x9e3779b97f4a7c15ULL * (proc_id + 1));
	if (chdir(dir) < 0)
		child_fail("chdir %s: %s", dir, errname(errno));
	shadow = calloc(1, PRIV_MAX);
	if (!shadow)
		child_fail("out of memory");
	snprintf(priv_name, sizeof(priv_name), "p%d", proc_id);
	fd = open(priv_name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		child_fail("create %s: %s", priv_name, errname(errno));
	close(fd);

	for (op_no = 1; op_no <= nops; op_no++)
		one_op();

	snprintf(op_desc, sizeof(op_desc), "final private verify");
	fd = open(priv_name, O_RDONLY);
	chk(fd, "open private", 0);
	priv_verify(fd, "final");
	close(fd);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The parent's consistency walk. */

struct inode_ent {
	dev_t dev;
	ino_t ino;
	nlink_t nlink;
	unsigned long names;
	char *first;
};

static struct inode_ent *inodes;
static size_t ninodes, inodes_cap;
static unsigned long nfiles, ndirs, nsymlinks, problems;

static void problem(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsstress: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	problems++;
}

static void note_inode(const struct stat *sb, const char *path)
{
	for (size_t i = 0; i < ninodes; i++) {
		if (inodes[i].ino == sb->st_ino && inodes[i].dev == sb->st_dev) {
			inodes[i].names++;
			return;
		}
	}
	if (ninodes == inodes_cap) {
		inodes_cap = inodes_cap ? inodes_cap * 2 : 256;
		inodes = realloc(inodes, inodes_cap * sizeof(*inodes));
		if (!inodes) {
			fprintf(stderr, "fsstress: out of memory\n");
			exit(2);
		}
	}
	inodes[ninodes] = (struct inode_ent){ sb->st_dev, sb->st_ino,
					      sb->st_nlink, 1, strdup(path) };
	ninodes++;
}

static void check_content(const char *path, const struct stat *sb)
{
	static unsigned char buf[65536];
	long long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW);

	if (fd < 0) {
		problem("%s: open: %s", path, errname(errno));
		return;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0)
		problem("%s: read at %lld: %s", path, total, errname(errno));
	else if (total != sb->st_size)
		problem("%s: read %lld bytes but st_size is %lld", path, total,
			(long long)sb->st_size);
	close(fd);
}

/* Check the directory at walk_path (extended in place) and below. */
static char walk_path[PATHBUF];

static void walk(const struct stat *dsb)
{
	static char target[PATHBUF];
	unsigned long subdirs = 0;
	struct dirent *de;
	DIR *d = opendir(walk_path);
	size_t len;

	ndirs++;
	if (!d) {
		problem("%s: opendir: %s", walk_path, errname(errno));
		return;
	}
	while ((de = readdir(d))) {
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!path_push(walk_path, de->d_name, &len)) {
			problem("%s: tree too deep to check", walk_path);
			break;
		}
		if (lstat(walk_path, &sb) < 0) {
			problem("%s: listed but lstat fails: %s", walk_path,
				errname(errno));
		} else if (S_ISDIR(sb.st_mode)) {
			subdirs++;
			walk(&sb);
		} else {
			note_inode(&sb, walk_path);
			if (S_ISREG(sb.st_mode)) {
				nfiles++;
				check_content(walk_path, &sb);
			} else if (S_ISLNK(sb.st_mode)) {
				ssize_t n = readlink(walk_path, target,
						     sizeof(target));

				nsymlinks++;
				if (n != sb.st_size)
					problem("%s: readlink gives %zd bytes "
						"but st_size is %lld", walk_path,
						n, (long long)sb.st_size);
			}
		}
		walk_path[len] = '\0';
	}
	closedir(d);
	if (dsb->st_nlink != 2 + subdirs)
		problem("%s: directory st_nlink %lu, expected 2 + %lu subdirs",
			walk_path, (unsigned long)dsb->st_nlink, subdirs);
}

/* ------------------------------------------------------------------ */

static void probe_xattr(void)
{
	static const char *const cand[] = { "user.", "trusted." };
	char name[64];
	int fd = open(".fsstress-xattr-probe", O_RDWR | O_CREAT, 0600);

	if (fd < 0) {
		fprintf(stderr, "fsstress: cannot create probe file: %s\n",
			strerror(errno));
		exit(2);
	}
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		snprintf(name, sizeof(name), "%sfsstress_probe", cand[i]);
		if (fsetxattr(fd, name, "1", 1, 0) == 0) {
			snprintf(xprefix, sizeof(xprefix), "%s", cand[i]);
			use_xattr = true;
			break;
		}
	}
	close(fd);
	unlink(".fsstress-xattr-probe");
}

static void usage(void)
{
	fprintf(stderr, "usage: fsstress [-p PROCS] [-n OPS_PER_PROC] "
		"[-s SEED] DIR\n");
	exit(2);
}

static unsigned long long parse_num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	unsigned long nops = 10000, total_ops = 0, expected = 0, sigbus = 0;
	unsigned long ktotal[NKINDS] = { 0 }, kok[NKINDS] = { 0 };
	int nprocs = 4, c, failed = 0;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	struct timespec t0, t1;
	struct stat root;
	const char *dir;
	pid_t pids[MAX_PROCS];

	while ((c = getopt(argc, argv, "p:n:s:")) != -1) {
		switch (c) {
		case 'p':
			nprocs = parse_num(optarg);
			break;
		case 'n':
			nops = parse_num(optarg);
			break;
		case 's':
			seed = parse_num(optarg);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1 || nprocs < 1 || nprocs > MAX_PROCS)
		usage();
	dir = argv[optind];
	if (chdir(dir) < 0) {
		fprintf(stderr, "fsstress: %s: %s\n", dir, strerror(errno));
		return 2;
	}
	page_size = sysconf(_SC_PAGESIZE);
	umask(0);
	probe_xattr();

	all_stats = mmap(NULL, MAX_PROCS * sizeof(*all_stats),
			 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
	if (all_stats == MAP_FAILED) {
		perror("fsstress: mmap");
		return 2;
	}
	/* Children print their own failures; keep buffers empty at fork. */
	fflush(NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < nprocs; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fsstress: fork");
			return 2;
		}
		if (pids[i] == 0) {
			proc_id = i;
			child(".", seed, nops);
		}
	}
	for (int i = 0; i < nprocs; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) < 0) {
			perror("fsstress: waitpid");
			return 2;
		}
		if (WIFSIGNALED(status)) {
			fprintf(stderr, "fsstress: FAIL: proc %d killed by "
				"signal %s\n", i, strsignal(WTERMSIG(status)));
			failed++;
		} else if (WEXITSTATUS(status) != 0) {
			failed++; /* the child has said why */
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	/* The consistency walk runs even after a failure: more evidence. */
	if (lstat(".", &root) < 0) {
		perror("fsstress: lstat");
		return 2;
	}
	strcpy(walk_path, ".");
	walk(&root);
	for (size_t i = 0; i < ninodes; i++) {
		if (inodes[i].names != inodes[i].nlink)
			problem("%s: st_nlink %lu but %lu names in the tree",
				inodes[i].first, (unsigned long)inodes[i].nlink,
				inodes[i].names);
		free(inodes[i].first);
	}
	free(inodes);

	for (int i = 0; i < nprocs; i++) {
		for (int k = 0; k < NKINDS; k++) {
			ktotal[k] += all_stats[i].total[k];
			kok[k] += all_stats[i].ok[k];
			total_ops += all_stats[i].total[k];
		}
		expected += all_stats[i].expected_errors;
		sigbus += all_stats[i].sigbus;
	}
	printf("fsstress: %s seed=%" PRIu64 " procs=%d ops=%lu xattr=%s "
	       "time=%.1fs expected-errors=%lu sigbus=%lu "
	       "tree=%lu files/%lu dirs/%lu symlinks |",
	       failed || problems ? "FAIL" : "OK", seed, nprocs, total_ops,
	       use_xattr ? xprefix : "off",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       expected, sigbus, nfiles, ndirs, nsymlinks);
	for (int k = 0; k < NKINDS; k++)
		if (ktotal[k])
			printf(" %s=%lu/%lu", kinds[k].name, kok[k], ktotal[k]);
	printf("\n");
	return failed || problems ? 1 : 0;
}
