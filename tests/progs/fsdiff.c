/*
 * fsdiff - differential random-operation tester.
 *
 *   fsdiff [-s SEED] [-n OPS] [-c CHECK_EVERY] [-v] [--no-xattr]
 *          [--xattr-prefix user.|trusted.] DIR_A DIR_B
 *
 * Applies one seeded pseudo-random sequence of filesystem operations to two
 * directory trees: DIR_A (the filesystem under test, casfs) and DIR_B (the
 * reference, tmpfs).  Each operation is generated once and then applied to A
 * and to B; every syscall it makes must return the same value and errno in
 * both trees, and whatever it reads (file data, directory listings, xattr
 * values, symlink targets) must be identical.  Every CHECK_EVERY operations
 * and at the end, both trees are walked and compared in full: names, types,
 * permission bits, sizes, contents, link counts, symlink targets, xattrs of
 * the chosen namespace, and the hard-link structure.
 *
 * Not compared, because they legitimately differ between filesystems: inode
 * numbers, timestamps, st_blocks, directory sizes, and xattrs outside the
 * chosen prefix.
 *
 * All paths are drawn from a small pool of names so that collisions (EEXIST,
 * ENOENT, ENOTDIR, ENOTEMPTY, EISDIR, ELOOP, ...) are frequent.  Symlink
 * targets are relative and never contain "..", so path resolution can never
 * leave the tree it started in.
 *
 * Exit status: 0 no divergence, 1 divergence, 2 usage or setup error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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

#define MAX_FILE   (1024 * 1024) /* no operation makes a file bigger */
#define MAX_IO     (64 * 1024)   /* largest single read or write */
#define MAX_XVAL   64            /* largest xattr value we set */
#define MAX_TARGET 4100          /* symlink targets, a little over PATH_MAX */
#define RELBUF     64            /* operation paths: <= 3 one-letter names */
#define FULLBUF    16384         /* root + relative path seen by the walk */
#define MAX_STEPS  16            /* syscalls recorded per operation */
#define HISTORY    20            /* operations shown on divergence */

/*
 * The namespace: paths of 1..3 components.  Directory components come from
 * dir_pool; the last component from the pool matching what the operation
 * expects (a directory or a non-directory), sometimes from the other one so
 * type clashes (EISDIR, ENOTDIR, EEXIST) stay frequent.
 * That is 39 directory paths and 52 file paths.
 */
static const char *const dir_pool[] = { "a", "b", "c" };
static const char *const file_pool[] = { "d", "e", "f", "g" };
#define NDIRS (sizeof(dir_pool) / sizeof(dir_pool[0]))
#define NFILES (sizeof(file_pool) / sizeof(file_pool[0]))
#define MAX_DEPTH 3
#define NXNAMES 4 /* xattr names: PREFIX + "x0".."x3" */

/* ------------------------------------------------------------------ */
/* Deterministic PRNG (splitmix64): the whole sequence follows from -s. */

/* rng_state, rnd(), rnd_below(), chance(): see testrand.h */

/* Fill buf with bytes derived from seed (write and mmap patterns). */
static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed, v;

	for (size_t i = 0; i < len; i += sizeof(v)) {
		v = splitmix64(&s);
		memcpy(buf + i, &v, len - i < sizeof(v) ? len - i : sizeof(v));
	}
}

/* ------------------------------------------------------------------ */
/* Operations. */

enum kind {
	K_CREATE, K_WRITE, K_READ, K_TRUNCATE, K_LINK, K_UNLINK, K_RENAME,
	K_MKDIR, K_RMDIR, K_SYMLINK, K_CHMOD, K_SETXATTR, K_RMXATTR,
	K_GETXATTR, K_MMAPW, K_READDIR, K_STAT, K_RMTREE, NKINDS
};

static const struct {
	const char *name;
	unsigned weight; /* relative frequency, per mille */
	bool xattr;      /* disabled by --no-xattr */
} kinds[NKINDS] = {
	[K_CREATE]   = { "create",   100, false },
	[K_WRITE]    = { "write",    120, false },
	[K_READ]     = { "read",      70, false },
	[K_TRUNCATE] = { "truncate",  50, false },
	[K_LINK]     = { "link",      60, false },
	[K_UNLINK]   = { "unlink",    70, false },
	[K_RENAME]   = { "rename",   100, false },
	[K_MKDIR]    = { "mkdir",     70, false },
	[K_RMDIR]    = { "rmdir",     40, false },
	[K_SYMLINK]  = { "symlink",   40, false },
	[K_CHMOD]    = { "chmod",     30, false },
	[K_SETXATTR] = { "setxattr",  50, true },
	[K_RMXATTR]  = { "rmxattr",   30, true },
	[K_GETXATTR] = { "getxattr",  30, true },
	[K_MMAPW]    = { "mmapw",     50, false },
	[K_READDIR]  = { "readdir",   30, false },
	[K_STAT]     = { "stat",      40, false },
	/*
	 * Rare, but needed: directories renamed into deeper slots carry
	 * subtrees out of reach of the 3-level namespace, and without a
	 * recursive delete those would pile up and slow every tree check.
	 */
	[K_RMTREE]   = { "rmtree",     5, false },
};

struct op {
	enum kind kind;
	int variant;       /* kind-specific flavour, see gen_op() */
	int flags;         /* open/rename/link/xattr/fstatat flags */
	bool fsync;        /* write: fsync before close */
	unsigned mode;     /* create/mkdir/chmod */
	uint64_t off, len; /* write/read/truncate/mmap */
	uint64_t seed;     /* data pattern */
	char p1[RELBUF], p2[RELBUF];
	char target[MAX_TARGET + 1];
	char xname[64];
	size_t xlen;
	unsigned char xval[MAX_XVAL];
};

/* What one operation did in one tree. */
struct step {
	const char *what;
	long long ret; /* -1 on error; file descriptors and maps become 0 */
	int err;
};

struct trace {
	int n;
	struct step s[MAX_STEPS];
	unsigned char *data; /* everything the operation read */
	size_t dlen, dcap;
};

struct tree {
	const char *name; /* "A" or "B" */
	const char *root;
};

static struct tree tree_a, tree_b;
static char xprefix[32];
static bool use_xattr = true;
static bool verbose;
static uint64_t seed;
static long page_size;
static unsigned char wbuf[MAX_IO]; /* write pattern of the current op */
static char msg[8192];             /* text of the last divergence */

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsdiff: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Record a divergence message; always returns false for easy chaining. */
static bool diverge(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return false;
}

static char *full(const struct tree *t, const char *rel, char *buf)
{
	int n = *rel ? snprintf(buf, FULLBUF, "%s/%s", t->root, rel)
		     : snprintf(buf, FULLBUF, "%s", t->root);

	if (n < 0 || n >= FULLBUF)
		die("path too long: %s/%s", t->root, rel);
	return buf;
}

static void data_add(struct trace *t, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (t->dlen + n > t->dcap) {
		t->dcap = (t->dlen + n) * 2;
		t->data = realloc(t->data, t->dcap);
		if (!t->data)
			die("out of memory");
	}
	memcpy(t->data + t->dlen, p, n);
	t->dlen += n;
}

/* Record one syscall result; errno is read before anything can clobber it. */
static long long rec(struct trace *t, const char *what, long long ret)
{
	int e = errno;

	if (t->n >= MAX_STEPS)
		die("internal: too many steps in one operation");
	t->s[t->n].what = what;
	t->s[t->n].ret = ret < 0 ? -1 : ret;
	t->s[t->n].err = ret < 0 ? e : 0;
	t->n++;
	errno = e;
	return ret;
}

/* Descriptor numbers may legitimately differ, so record only success. */
static int rec_fd(struct trace *t, const char *what, int fd)
{
	rec(t, what, fd < 0 ? -1 : 0);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Helpers shared by operations and the tree walk. */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Sorted names of a directory (without . and ..): readdir order is
 * filesystem specific, so it is never compared.  Returns count or -1.
 */
static int list_dir(const char *path, char ***out)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **v = NULL;
	int n = 0, cap = 0;

	*out = NULL;
	if (!d)
		return -1;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				die("out of memory");
		}
		if (!(v[n++] = strdup(de->d_name)))
			die("out of memory");
		errno = 0;
	}
	if (errno) {
		int e = errno;

		closedir(d);
		while (n)
			free(v[--n]);
		free(v);
		errno = e;
		return -1;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	return n;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Names of the chosen xattr namespace on path (not following symlinks),
 * sorted and NUL-separated in out.  Other namespaces (security.*, system.*)
 * depend on the filesystem and the LSMs, so they are filtered out.
 * Returns the length used in out, or -1 with errno set.
 */
static ssize_t list_xattrs(const char *path, char *out, size_t outsz)
{
	static char raw[65536];
	char *names[512];
	ssize_t len = llistxattr(path, raw, sizeof(raw));
	size_t n = 0, used = 0, plen = strlen(xprefix);

	if (len < 0)
		return -1;
	for (char *p = raw; p < raw + len; p += strlen(p) + 1)
		if (!strncmp(p, xprefix, plen) && n < 512)
			names[n++] = p;
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]) + 1;

		if (used + l > outsz)
			die("xattr list too long on %s", path);
		memcpy(out + used, names[i], l);
		used += l;
	}
	return used;
}

/* read() until the buffer is full or EOF. */
static ssize_t read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

/* ------------------------------------------------------------------ */
/* Generating operations. */

enum want { WANT_FILE, WANT_DIR };

/*
 * Percentage of names drawn from the other pool.  Lower for mkdir, which
 * would otherwise turn many file names into (sticky) empty directories;
 * higher for rmdir, which is what removes those again.
 */
static unsigned cross_pct = 10;

static const char *gen_leaf(enum want want)
{
	if (chance(cross_pct))
		want = !want;
	return want == WANT_DIR ? dir_pool[rnd_below(NDIRS)]
				: file_pool[rnd_below(NFILES)];
}

/* A path of the given depth (0: random, shallow paths most likely). */
static void gen_path_depth(char *buf, enum want want, int depth)
{
	if (!depth) {
		unsigned r = rnd_below(100);

		depth = r < 45 ? 1 : r < 80 ? 2 : 3;
	}
	buf[0] = '\0';
	for (int i = 1; i < depth; i++) {
		/* Rarely a file name: ENOTDIR, or a file-named directory. */
		strcat(buf, chance(3) ? file_pool[rnd_below(NFILES)]
				      : dir_pool[rnd_below(NDIRS)]);
		strcat(buf, "/");
	}
	strcat(buf, gen_leaf(want));
}

static void gen_path(char *buf, enum want want)
{
	gen_path_depth(buf, want, 0);
}

/* A second path, often in the same directory as the first so that
 * renames and links succeed more often than pure chance would allow. */
static void gen_path2(char *buf, const char *p1, enum want want)
{
	const char *slash = strrchr(p1, '/');

	if (chance(40)) {
		int n = slash ? slash - p1 + 1 : 0;

		memcpy(buf, p1, n);
		strcpy(buf + n, gen_leaf(want));
	} else {
		gen_path(buf, want);
	}
}

static unsigned gen_mode(void)
{
	/* Always u+rwx: the checker and a non-root self-test must be able
	 * to open and search everything.  Sometimes set suid/sgid/sticky. */
	unsigned m = rnd_below(01000) | 0700;

	if (chance(10))
		m |= rnd_below(8) << 9;
	return m;
}

/* File offsets: mostly small files, sometimes far out to make holes. */
static uint64_t gen_offset(void)
{
	unsigned r = rnd_below(100);

	if (r < 10) /* around a page boundary */
		return rnd_below(32) * 4096 + rnd_below(3) + (r < 5 ? 4093 : 0);
	if (r < 75)
		return rnd_below(16384);
	if (r < 97)
		return rnd_below(128 * 1024);
	return rnd_below(MAX_FILE);
}

static uint64_t gen_iolen(void)
{
	unsigned r = rnd_below(100);

	if (r < 5)
		return 0;
	if (r < 60)
		return 1 + rnd_below(4096);
	if (r < 92)
		return 1 + rnd_below(16384);
	return rnd_below(MAX_IO + 1);
}

static void gen_target(struct op *op)
{
	unsigned r = rnd_below(100);
	const char *base = strrchr(op->p1, '/');

	if (r < 70) {
		gen_path(op->target, chance(25)); /* maybe dangling */
	} else if (r < 80) {
		strcpy(op->target, "zz"); /* dangling, never created */
	} else if (r < 88) {
		/* Points at itself: ELOOP on resolution. */
		strcpy(op->target, base ? base + 1 : op->p1);
	} else {
		/* Long target ("././.../a"), sometimes over PATH_MAX. */
		size_t len = 100 + rnd_below(MAX_TARGET - 100 + 1), i = 0;
		const char *leaf = gen_leaf(WANT_FILE);

		while (i + 2 + strlen(leaf) <= len) {
			op->target[i++] = '.';
			op->target[i++] = '/';
		}
		strcpy(op->target + i, leaf);
	}
}

static void gen_xattr(struct op *op)
{
	snprintf(op->xname, sizeof(op->xname), "%sx%u", xprefix,
		 (unsigned)rnd_below(NXNAMES));
}

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

static void gen_op(struct op *op)
{
	static const int xflags[] = { 0, 0, XATTR_CREATE, XATTR_REPLACE };
	static const int cflags[] = { O_CREAT | O_EXCL, O_CREAT | O_EXCL,
				      O_CREAT | O_EXCL, O_CREAT,
				      O_CREAT | O_TRUNC };
	static const int rflags[] = { 0, 0, RENAME_NOREPLACE,
				      RENAME_EXCHANGE };

	memset(op, 0, sizeof(*op));
	op->kind = pick_kind();
	cross_pct = op->kind == K_MKDIR ? 3 : op->kind == K_RMDIR ? 30 : 10;
	switch (op->kind) {
	case K_MKDIR:
	case K_RMDIR:
	case K_READDIR:
		gen_path(op->p1, WANT_DIR);
		break;
	case K_RMTREE:
		/*
		 * Mostly the deepest level: only directories there can hold
		 * entries beyond the reach of generated paths.
		 */
		gen_path_depth(op->p1, WANT_DIR, chance(80) ? MAX_DEPTH : 0);
		break;
	case K_CHMOD:
	case K_STAT:
	case K_SETXATTR:
	case K_RMXATTR:
	case K_GETXATTR:
		gen_path(op->p1, chance(30) ? WANT_DIR : WANT_FILE);
		break;
	case K_RENAME:
		/* Both names of the same kind (gen_leaf still mixes some). */
		op->variant = chance(30) ? WANT_DIR : WANT_FILE;
		gen_path(op->p1, op->variant);
		break;
	default:
		gen_path(op->p1, WANT_FILE);
		break;
	}

	switch (op->kind) {
	case K_CREATE:
		op->flags = O_WRONLY | cflags[rnd_below(5)];
		op->mode = gen_mode();
		break;
	case K_WRITE:
		op->variant = chance(10);	/* 1: O_APPEND + write() */
		op->len = gen_iolen();
		op->off = gen_offset();
		if (op->off + op->len > MAX_FILE)
			op->off = MAX_FILE - op->len;
		op->fsync = chance(5);
		op->seed = rnd();
		fill_pattern(wbuf, op->len, op->seed);
		break;
	case K_READ:
		op->variant = chance(25);	/* 1: through a mapping */
		op->off = gen_offset();
		op->len = gen_iolen();
		op->seed = rnd(); /* mmap: position inside the file */
		break;
	case K_TRUNCATE:
		op->variant = chance(50);	/* 1: ftruncate */
		op->len = chance(30) ? rnd_below(4096) : gen_offset();
		break;
	case K_LINK:
		gen_path2(op->p2, op->p1, WANT_FILE);
		op->flags = chance(20) ? AT_SYMLINK_FOLLOW : 0;
		break;
	case K_RENAME:
		gen_path2(op->p2, op->p1, op->variant);
		op->flags = rflags[rnd_below(4)];
		break;
	case K_MKDIR:
	case K_CHMOD:
		op->mode = gen_mode();
		break;
	case K_SYMLINK:
		gen_target(op);
		break;
	case K_SETXATTR:
		op->variant = rnd_below(3);	/* fd, no-follow, follow */
		op->flags = xflags[rnd_below(4)];
		gen_xattr(op);
		op->xlen = chance(5) ? 0 : 1 + rnd_below(MAX_XVAL);
		fill_pattern(op->xval, op->xlen, rnd());
		break;
	case K_RMXATTR:
		op->variant = rnd_below(3);	/* follow, no-follow, fd */
		gen_xattr(op);
		break;
	case K_GETXATTR:
		op->variant = rnd_below(3);	/* lget, get, llist */
		gen_xattr(op);
		break;
	case K_MMAPW:
		op->variant = chance(50);	/* 1: grow the file first */
		op->len = 1 + rnd_below(chance(90) ? 8192 : MAX_IO);
		op->off = gen_offset();
		if (op->off + op->len > MAX_FILE)
			op->off = MAX_FILE - op->len;
		op->seed = rnd();
		fill_pattern(wbuf, op->len, op->seed);
		break;
	case K_READDIR:
		if (chance(20))
			op->p1[0] = '\0'; /* the root */
		break;
	case K_STAT:
		op->flags = chance(50) ? AT_SYMLINK_NOFOLLOW : 0;
		break;
	case K_UNLINK:
	case K_RMDIR:
	case K_RMTREE:
	case NKINDS:
		break;
	}
}

static void fmt_op(const struct op *op, char *buf, size_t sz)
{
	const char *k = kinds[op->kind].name;

	switch (op->kind) {
	case K_CREATE:
		snprintf(buf, sz, "%s %s flags=%s mode=%04o", k, op->p1,
			 op->flags & O_EXCL ? "CREAT|EXCL" :
			 op->flags & O_TRUNC ? "CREAT|TRUNC" : "CREAT",
			 op->mode);
		break;
	case K_WRITE:
		snprintf(buf, sz, "%s %s %s off=%" PRIu64 " len=%" PRIu64 "%s",
			 k, op->p1, op->variant ? "append" : "pwrite", op->off,
			 op->len, op->fsync ? " fsync" : "");
		break;
	case K_READ:
		snprintf(buf, sz, "%s %s %s off=%" PRIu64 " len=%" PRIu64, k,
			 op->p1, op->variant ? "mmap" : "pread", op->off,
			 op->len);
		break;
	case K_TRUNCATE:
		snprintf(buf, sz, "%s %s %s len=%" PRIu64, k, op->p1,
			 op->variant ? "ftruncate" : "truncate", op->len);
		break;
	case K_LINK:
		snprintf(buf, sz, "%s %s -> %s%s", k, op->p1, op->p2,
			 op->flags ? " FOLLOW" : "");
		break;
	case K_RENAME:
		snprintf(buf, sz, "%s %s -> %s%s", k, op->p1, op->p2,
			 op->flags == RENAME_NOREPLACE ? " NOREPLACE" :
			 op->flags == RENAME_EXCHANGE ? " EXCHANGE" : "");
		break;
	case K_MKDIR:
	case K_CHMOD:
		snprintf(buf, sz, "%s %s mode=%04o", k, op->p1, op->mode);
		break;
	case K_SYMLINK: {
		size_t tl = strlen(op->target);

		if (tl > 40)
			snprintf(buf, sz, "%s %s -> \"%.20s...%s\" (len %zu)", k,
				 op->p1, op->target, op->target + tl - 8, tl);
		else
			snprintf(buf, sz, "%s %s -> \"%.40s\"", k, op->p1,
				 op->target);
		break;
	}
	case K_SETXATTR:
		snprintf(buf, sz, "%s %s %s %s len=%zu%s", k, op->p1,
			 (const char *[]){ "fd", "nofollow", "follow" }[op->variant],
			 op->xname, op->xlen,
			 op->flags == XATTR_CREATE ? " CREATE" :
			 op->flags == XATTR_REPLACE ? " REPLACE" : "");
		break;
	case K_RMXATTR:
		snprintf(buf, sz, "%s %s %s %s", k, op->p1,
			 (const char *[]){ "follow", "nofollow", "fd" }[op->variant],
			 op->xname);
		break;
	case K_GETXATTR:
		snprintf(buf, sz, "%s %s %s %s", k, op->p1,
			 (const char *[]){ "lget", "get", "llist" }[op->variant],
			 op->xname);
		break;
	case K_MMAPW:
		snprintf(buf, sz, "%s %s off=%" PRIu64 " len=%" PRIu64 "%s", k,
			 op->p1, op->off, op->len, op->variant ? " grow" : "");
		break;
	case K_STAT:
		snprintf(buf, sz, "%s %s%s", k, op->p1,
			 op->flags ? " nofollow" : "");
		break;
	case K_READDIR:
		snprintf(buf, sz, "%s %s", k, *op->p1 ? op->p1 : ".");
		break;
	case K_UNLINK:
	case K_RMDIR:
	case K_RMTREE:
	case NKINDS:
		snprintf(buf, sz, "%s %s", k, op->p1);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Applying operations to one tree. */

/*
 * Where a mapping-based operation works: [*start, *start + *len) lies
 * inside a file of the given (non-zero) size.  Derived only from the op and
 * the size, which is itself recorded, so both trees use the same range.
 */
static void map_range(const struct op *op, uint64_t size, uint64_t *start,
		      uint64_t *len)
{
	*start = op->off < size ? op->off : op->seed % size;
	*len = op->len < size - *start ? op->len : size - *start;
}

static void op_mmap_read(struct trace *tr, int fd, const struct op *op)
{
	struct stat st;
	uint64_t start, len, pstart;
	void *m;

	if (rec(tr, "fstat", fstat(fd, &st)) < 0)
		return;
	/* The size of a directory differs between filesystems. */
	rec(tr, "type", st.st_mode & S_IFMT);
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return;
	rec(tr, "size", st.st_size);
	map_range(op, st.st_size, &start, &len);
	if (len == 0)
		return;
	pstart = start & ~(uint64_t)(page_size - 1);
	m = mmap(NULL, start + len - pstart, PROT_READ, MAP_SHARED, fd, pstart);
	if (rec(tr, "mmap", m == MAP_FAILED ? -1 : 0) < 0)
		return;
	data_add(tr, (char *)m + (start - pstart), len);
	rec(tr, "munmap", munmap(m, start + len - pstart));
}

static void op_mmap_write(struct trace *tr, const char *path,
			  const struct op *op)
{
	static unsigned char back[MAX_IO];
	struct stat st;
	uint64_t start, len, pstart, size, maplen;
	int fd = rec_fd(tr, "open", open(path, O_RDWR));
	void *m;

	if (fd < 0)
		return;
	if (rec(tr, "fstat", fstat(fd, &st)) < 0)
		goto out;
	size = st.st_size;
	rec(tr, "size", size);
	if (op->variant && size < op->off + op->len) {
		if (rec(tr, "ftruncate", ftruncate(fd, op->off + op->len)) < 0)
			goto out;
		size = op->off + op->len;
	}
	if (size == 0)
		goto out;
	map_range(op, size, &start, &len);
	pstart = start & ~(uint64_t)(page_size - 1);
	maplen = start + len - pstart;
	m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pstart);
	if (rec(tr, "mmap", m == MAP_FAILED ? -1 : 0) < 0)
		goto out;
	memcpy((char *)m + (start - pstart), wbuf, len);
	rec(tr, "msync", msync(m, maplen, MS_SYNC));
	rec(tr, "munmap", munmap(m, maplen));
	/* Read it back through the file: mmap/read coherence. */
	ssize_t n = rec(tr, "pread", pread(fd, back, len, start));
	if (n > 0)
		data_add(tr, back, n);
out:
	rec(tr, "close", close(fd));
}

/*
 * Append "/name" (or "name" to the empty path) to the path in buf, a
 * FULLBUF-sized buffer; returns the old length to truncate back to.  The
 * recursive walkers share one path buffer like this instead of keeping
 * path arrays in every stack frame: directory renames can nest
 * directories hundreds of levels deep.
 */
static size_t path_push(char *buf, const char *name)
{
	size_t len = strlen(buf);

	if (len + 1 + strlen(name) >= FULLBUF)
		die("path too long: %s/%s", buf, name);
	if (len)
		buf[len++] = '/';
	strcpy(buf + len, name);
	return len ? len - 1 : 0;
}

/*
 * rm -r of rel (a FULLBUF buffer, extended in place while descending),
 * logging every step into the trace data in a fixed (sorted) order.
 */
static void rmtree(struct trace *tr, const struct tree *t, char *rel)
{
	static char path[FULLBUF], line[FULLBUF + 64];
	struct stat st;
	char **names;
	int n;

	full(t, rel, path);
	if (lstat(path, &st) < 0) {
		snprintf(line, sizeof(line), "lstat %s %s\n", rel,
			 errname(errno));
		data_add(tr, line, strlen(line));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		n = list_dir(path, &names);
		for (int i = 0; i < n; i++) {
			size_t len = path_push(rel, names[i]);

			rmtree(tr, t, rel);
			rel[len] = '\0';
		}
		free_list(names, n);
		full(t, rel, path); /* clobbered by the recursion */
		snprintf(line, sizeof(line), "rmdir %s %s\n", rel,
			 rmdir(path) < 0 ? errname(errno) : "ok");
	} else {
		snprintf(line, sizeof(line), "unlink %s %s\n", rel,
			 unlink(path) < 0 ? errname(errno) : "ok");
	}
	data_add(tr, line, strlen(line));
}

static void run_op(const struct tree *t, const struct op *op,
		   struct trace *tr)
{
	static unsigned char rbuf[MAX_IO];
	char p1[FULLBUF], p2[FULLBUF];
	struct stat st;
	int fd;

	tr->n = 0;
	tr->dlen = 0;
	full(t, op->p1, p1);
	full(t, op->p2, p2);

	switch (op->kind) {
	case K_CREATE:
		fd = rec_fd(tr, "open", open(p1, op->flags, op->mode));
		if (fd >= 0)
			rec(tr, "close", close(fd));
		break;

	case K_WRITE:
		fd = rec_fd(tr, "open",
			    open(p1, O_WRONLY | (op->variant ? O_APPEND : 0)));
		if (fd < 0)
			break;
		if (op->variant) {
			/* Appends are capped so files stay small. */
			if (rec(tr, "fstat", fstat(fd, &st)) == 0 &&
			    rec(tr, "size", st.st_size) + op->len <= MAX_FILE)
				rec(tr, "write", write(fd, wbuf, op->len));
		} else {
			rec(tr, "pwrite", pwrite(fd, wbuf, op->len, op->off));
		}
		if (op->fsync)
			rec(tr, "fsync", fsync(fd));
		rec(tr, "close", close(fd));
		break;

	case K_READ:
		fd = rec_fd(tr, "open", open(p1, O_RDONLY));
		if (fd < 0)
			break;
		if (op->variant) {
			op_mmap_read(tr, fd, op);
		} else {
			ssize_t n = rec(tr, "pread",
					pread(fd, rbuf, op->len, op->off));
			if (n > 0)
				data_add(tr, rbuf, n);
		}
		rec(tr, "close", close(fd));
		break;

	case K_TRUNCATE:
		if (!op->variant) {
			rec(tr, "truncate", truncate(p1, op->len));
			break;
		}
		fd = rec_fd(tr, "open", open(p1, O_WRONLY));
		if (fd < 0)
			break;
		rec(tr, "ftruncate", ftruncate(fd, op->len));
		rec(tr, "close", close(fd));
		break;

	case K_LINK:
		rec(tr, "linkat", linkat(AT_FDCWD, p1, AT_FDCWD, p2, op->flags));
		break;
	case K_UNLINK:
		rec(tr, "unlink", unlink(p1));
		break;
	case K_RENAME:
		rec(tr, "renameat2", syscall(SYS_renameat2, AT_FDCWD, p1,
					     AT_FDCWD, p2, op->flags));
		break;
	case K_MKDIR:
		rec(tr, "mkdir", mkdir(p1, op->mode));
		break;
	case K_RMDIR:
		rec(tr, "rmdir", rmdir(p1));
		break;
	case K_SYMLINK:
		rec(tr, "symlink", symlink(op->target, p1));
		break;
	case K_CHMOD:
		rec(tr, "chmod", chmod(p1, op->mode));
		break;

	case K_SETXATTR:
		if (op->variant == 1) {
			rec(tr, "lsetxattr", lsetxattr(p1, op->xname, op->xval,
						       op->xlen, op->flags));
		} else if (op->variant == 2) {
			rec(tr, "setxattr", setxattr(p1, op->xname, op->xval,
						     op->xlen, op->flags));
		} else {
			fd = rec_fd(tr, "open", open(p1, O_RDONLY));
			if (fd < 0)
				break;
			rec(tr, "fsetxattr", fsetxattr(fd, op->xname, op->xval,
						       op->xlen, op->flags));
			rec(tr, "close", close(fd));
		}
		break;

	case K_RMXATTR:
		if (op->variant == 0) {
			rec(tr, "removexattr", removexattr(p1, op->xname));
		} else if (op->variant == 1) {
			rec(tr, "lremovexattr", lremovexattr(p1, op->xname));
		} else {
			fd = rec_fd(tr, "open", open(p1, O_RDONLY));
			if (fd < 0)
				break;
			rec(tr, "fremovexattr", fremovexattr(fd, op->xname));
			rec(tr, "close", close(fd));
		}
		break;

	case K_GETXATTR: {
		char val[4096];
		ssize_t n;

		if (op->variant == 2) {
			n = list_xattrs(p1, val, sizeof(val));
			/* The raw length includes other namespaces. */
			rec(tr, "llistxattr", n < 0 ? -1 : 0);
		} else if (op->variant == 1) {
			n = rec(tr, "getxattr",
				getxattr(p1, op->xname, val, sizeof(val)));
		} else {
			n = rec(tr, "lgetxattr",
				lgetxattr(p1, op->xname, val, sizeof(val)));
		}
		if (n > 0)
			data_add(tr, val, n);
		break;
	}

	case K_MMAPW:
		op_mmap_write(tr, p1, op);
		break;

	case K_READDIR: {
		char **names;
		int n = rec(tr, "readdir", list_dir(p1, &names));

		for (int i = 0; i < n; i++)
			data_add(tr, names[i], strlen(names[i]) + 1);
		free_list(names, n);
		break;
	}

	case K_STAT:
		if (rec(tr, "fstatat", fstatat(AT_FDCWD, p1, &st, op->flags)) < 0)
			break;
		rec(tr, "mode", st.st_mode);
		rec(tr, "nlink", st.st_nlink);
		if (!S_ISDIR(st.st_mode))
			rec(tr, "size", st.st_size);
		if (S_ISLNK(st.st_mode)) {
			char buf[MAX_TARGET];
			ssize_t n = rec(tr, "readlink",
					readlink(p1, buf, sizeof(buf)));
			if (n > 0)
				data_add(tr, buf, n);
		}
		break;

	case K_RMTREE:
		strcpy(p1, op->p1); /* reused as rmtree's path buffer */
		rmtree(tr, t, p1);
		rec(tr, "rmtree", 0);
		break;

	case NKINDS:
		break;
	}
}

static void fmt_steps(const struct step *s, int n, char *buf, size_t sz)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && used < sz; i++) {
		int w;

		if (s[i].ret < 0)
			w = snprintf(buf + used, sz - used, "%s%s=-1/%s",
				     i ? " " : "", s[i].what, errname(s[i].err));
		else if (!strcmp(s[i].what, "mode") ||
			 !strcmp(s[i].what, "type"))
			w = snprintf(buf + used, sz - used, "%s%s=0%llo",
				     i ? " " : "", s[i].what, s[i].ret);
		else
			w = snprintf(buf + used, sz - used, "%s%s=%lld",
				     i ? " " : "", s[i].what, s[i].ret);
		if (w < 0)
			break;
		used += w;
	}
}

/* Did every syscall of the operation succeed? (for the summary only) */
static bool all_ok(const struct trace *t)
{
	for (int i = 0; i < t->n; i++)
		if (t->s[i].ret < 0)
			return false;
	return true;
}

static bool same_traces(const struct trace *a, const struct trace *b)
{
	char sa[1024], sb[1024];

	for (int i = 0; i < a->n || i < b->n; i++) {
		if (i < a->n && i < b->n && !strcmp(a->s[i].what, b->s[i].what) &&
		    a->s[i].ret == b->s[i].ret && a->s[i].err == b->s[i].err)
			continue;
		fmt_steps(a->s, a->n, sa, sizeof(sa));
		fmt_steps(b->s, b->n, sb, sizeof(sb));
		return diverge("results differ at step %d: A: %s | B: %s",
			       i + 1, sa, sb);
	}
	if (a->dlen != b->dlen ||
	    (a->dlen && memcmp(a->data, b->data, a->dlen))) {
		size_t i = 0;

		while (i < a->dlen && i < b->dlen && a->data[i] == b->data[i])
			i++;
		return diverge("data read differs: A %zu bytes, B %zu bytes, "
			       "first difference at byte %zu", a->dlen, b->dlen,
			       i);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Comparing the two trees. */

struct linkmap {
	struct { dev_t dev; ino_t ino; char *path; } *v;
	size_t n, cap;
};

/*
 * The first path (in walk order) seen with this inode.  Both trees are
 * walked in the same order, so the hard-link partitions are equal iff every
 * name has the same first path in A as in B.
 */
static const char *linkmap_first(struct linkmap *m, const struct stat *st,
				 const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].ino == st->st_ino && m->v[i].dev == st->st_dev)
			return m->v[i].path;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		if (!m->v)
			die("out of memory");
	}
	m->v[m->n].dev = st->st_dev;
	m->v[m->n].ino = st->st_ino;
	if (!(m->v[m->n].path = strdup(path)))
		die("out of memory");
	return m->v[m->n++].path;
}

struct walk {
	struct linkmap la, lb;
	unsigned long files, dirs, symlinks;
	unsigned long long bytes;
};

static bool cmp_content(const char *rel, const char *fa, const char *fb,
			off_t size)
{
	static unsigned char ba[65536], bb[65536];
	int a = open(fa, O_RDONLY | O_NOFOLLOW), b;
	off_t pos = 0;
	bool ok = true;

	if (a < 0)
		return diverge("%s: open in A: %s", rel, errname(errno));
	b = open(fb, O_RDONLY | O_NOFOLLOW);
	if (b < 0) {
		close(a);
		return diverge("%s: open in B: %s", rel, errname(errno));
	}
	for (;;) {
		ssize_t ra = read_full(a, ba, sizeof(ba));
		ssize_t rb = read_full(b, bb, sizeof(bb));

		if (ra < 0 || rb < 0) {
			ok = diverge("%s: read error at %lld (A %s, B %s)", rel,
				     (long long)pos, ra < 0 ? "fails" : "ok",
				     rb < 0 ? "fails" : "ok");
			break;
		}
		if (ra != rb || memcmp(ba, bb, ra)) {
			ssize_t i = 0;

			while (i < ra && i < rb && ba[i] == bb[i])
				i++;
			ok = diverge("%s: content differs at offset %lld "
				     "(A %s 0x%02x, B %s 0x%02x)", rel,
				     (long long)(pos + i),
				     i < ra ? "has" : "ends", i < ra ? ba[i] : 0,
				     i < rb ? "has" : "ends", i < rb ? bb[i] : 0);
			break;
		}
		if (ra == 0)
			break;
		pos += ra;
	}
	if (ok && pos != size)
		ok = diverge("%s: read %lld bytes but st_size is %lld", rel,
			     (long long)pos, (long long)size);
	close(a);
	close(b);
	return ok;
}

static bool cmp_xattrs(const char *rel, const char *fa, const char *fb)
{
	static char la[8192], lb[8192], va[65536], vb[65536];
	ssize_t na = list_xattrs(fa, la, sizeof(la));
	int ea = errno;
	ssize_t nb = list_xattrs(fb, lb, sizeof(lb));

	if (na < 0 || nb < 0) {
		if (na < 0 && nb < 0)
			return true; /* e.g. unsupported on both */
		return diverge("%s: llistxattr A %s, B %s", rel,
			       na < 0 ? errname(ea) : "ok",
			       nb < 0 ? errname(errno) : "ok");
	}
	if (na != nb || memcmp(la, lb, na)) {
		for (ssize_t i = 0; i < na; i++)
			if (!la[i]) la[i] = ' ';
		for (ssize_t i = 0; i < nb; i++)
			if (!lb[i]) lb[i] = ' ';
		return diverge("%s: xattr names differ: A [%.*s] B [%.*s]", rel,
			       (int)na, la, (int)nb, lb);
	}
	for (char *name = la; name < la + na; name += strlen(name) + 1) {
		ssize_t a = lgetxattr(fa, name, va, sizeof(va));
		ssize_t b = lgetxattr(fb, name, vb, sizeof(vb));

		if (a < 0 || b < 0)
			return diverge("%s: lgetxattr %s failed (A %zd, B %zd)",
				       rel, name, a, b);
		if (a != b || memcmp(va, vb, a))
			return diverge("%s: xattr %s differs (A %zd bytes, "
				       "B %zd bytes)", rel, name, a, b);
	}
	return true;
}

/*
 * The walk keeps the relative path of the current node in walk_rel
 * (extended in place, see path_push()) and builds full paths into static
 * buffers right before each use, so its stack frames stay small.
 */
static char walk_rel[FULLBUF], walk_a[FULLBUF], walk_b[FULLBUF];

static bool cmp_dir(struct walk *w);

/* Compare the node at walk_rel, whose lstat results are sa and sb. */
static bool cmp_node(struct walk *w, const struct stat *sa,
		     const struct stat *sb)
{
	static char ta[MAX_TARGET + 1], tb[MAX_TARGET + 1];
	const char *rel = walk_rel;
	char *fa = full(&tree_a, rel, walk_a), *fb = full(&tree_b, rel, walk_b);

	if ((sa->st_mode & S_IFMT) != (sb->st_mode & S_IFMT))
		return diverge("%s: type differs (A %o, B %o)", rel,
			       sa->st_mode & S_IFMT, sb->st_mode & S_IFMT);
	if ((sa->st_mode & 07777) != (sb->st_mode & 07777))
		return diverge("%s: mode differs (A %04o, B %04o)", rel,
			       sa->st_mode & 07777, sb->st_mode & 07777);
	if (sa->st_nlink != sb->st_nlink)
		return diverge("%s: st_nlink differs (A %lu, B %lu)", rel,
			       (unsigned long)sa->st_nlink,
			       (unsigned long)sb->st_nlink);
	if (!S_ISDIR(sa->st_mode)) {
		const char *first_a = linkmap_first(&w->la, sa, rel);
		const char *first_b = linkmap_first(&w->lb, sb, rel);

		if (sa->st_size != sb->st_size)
			return diverge("%s: size differs (A %lld, B %lld)", rel,
				       (long long)sa->st_size,
				       (long long)sb->st_size);
		if (strcmp(first_a, first_b))
			return diverge("%s: hard links differ: same inode as "
				       "%s in A but as %s in B", rel, first_a,
				       first_b);
	}
	if (use_xattr && !cmp_xattrs(rel, fa, fb))
		return false;

	if (S_ISREG(sa->st_mode)) {
		w->files++;
		w->bytes += sa->st_size;
		return cmp_content(rel, fa, fb, sa->st_size);
	}
	if (S_ISLNK(sa->st_mode)) {
		ssize_t na = readlink(fa, ta, sizeof(ta));
		ssize_t nb = readlink(fb, tb, sizeof(tb));

		w->symlinks++;
		if (na < 0 || nb < 0 || na != nb || memcmp(ta, tb, na))
			return diverge("%s: symlink targets differ (A %zd "
				       "bytes, B %zd bytes)", rel, na, nb);
		if (na != sa->st_size)
			return diverge("%s: symlink st_size %lld but target "
				       "has %zd bytes", rel,
				       (long long)sa->st_size, na);
		return true;
	}
	if (S_ISDIR(sa->st_mode)) {
		w->dirs++;
		return cmp_dir(w);
	}
	return true;
}

/* Compare the directory at walk_rel and everything below it. */
static bool cmp_dir(struct walk *w)
{
	const char *rel = walk_rel;
	char **va, **vb;
	int na = list_dir(full(&tree_a, rel, walk_a), &va);
	int ea = errno;
	int nb = list_dir(full(&tree_b, rel, walk_b), &vb);
	bool ok = true;

	if (na < 0 || nb < 0) {
		ok = diverge("%s: cannot list directory (A %s, B %s)",
			     *rel ? rel : ".", na < 0 ? errname(ea) : "ok",
			     nb < 0 ? errname(errno) : "ok");
		goto out;
	}
	for (int i = 0; ok && (i < na || i < nb); i++) {
		struct stat sa, sb;
		size_t len;

		if (i >= na || i >= nb || strcmp(va[i], vb[i])) {
			int c = i >= na ? 1 : i >= nb ? -1 : strcmp(va[i], vb[i]);

			ok = diverge("%s%s%s exists only in %s",
				     rel, *rel ? "/" : "",
				     c < 0 ? va[i] : vb[i], c < 0 ? "A" : "B");
			break;
		}
		len = path_push(walk_rel, va[i]);
		if (lstat(full(&tree_a, rel, walk_a), &sa) < 0 ||
		    lstat(full(&tree_b, rel, walk_b), &sb) < 0)
			ok = diverge("%s: listed but lstat fails: %s", rel,
				     errname(errno));
		else
			ok = cmp_node(w, &sa, &sb);
		walk_rel[len] = '\0';
	}
out:
	free_list(va, na);
	free_list(vb, nb);
	return ok;
}

static struct walk last_walk;

static bool cmp_trees(void)
{
	struct walk w;
	struct stat sa, sb;
	bool ok;

	memset(&w, 0, sizeof(w));
	if (lstat(tree_a.root, &sa) < 0 || lstat(tree_b.root, &sb) < 0)
		return diverge("cannot stat a root: %s", errname(errno));
	if (sa.st_nlink != sb.st_nlink)
		return diverge(".: st_nlink differs (A %lu, B %lu)",
			       (unsigned long)sa.st_nlink,
			       (unsigned long)sb.st_nlink);
	walk_rel[0] = '\0';
	ok = cmp_dir(&w);
	for (size_t i = 0; i < w.la.n; i++)
		free(w.la.v[i].path);
	for (size_t i = 0; i < w.lb.n; i++)
		free(w.lb.v[i].path);
	free(w.la.v);
	free(w.lb.v);
	w.la.v = w.lb.v = NULL;
	last_walk = w;
	return ok;
}

/* ------------------------------------------------------------------ */
/* History and reporting. */

struct hist_ent {
	unsigned long idx;
	struct op op;
	int na, nb;
	struct step sa[MAX_STEPS], sb[MAX_STEPS];
};

static struct hist_ent history[HISTORY];
static unsigned long nhist;

static void hist_push(unsigned long idx, const struct op *op,
		      const struct trace *ta, const struct trace *tb)
{
	struct hist_ent *h = &history[nhist++ % HISTORY];

	h->idx = idx;
	h->op = *op;
	h->na = ta->n;
	h->nb = tb->n;
	memcpy(h->sa, ta->s, sizeof(h->sa));
	memcpy(h->sb, tb->s, sizeof(h->sb));
}

static void print_entry(const struct hist_ent *h)
{
	char desc[256], ra[1024], rb[1024];

	fmt_op(&h->op, desc, sizeof(desc));
	fmt_steps(h->sa, h->na, ra, sizeof(ra));
	fmt_steps(h->sb, h->nb, rb, sizeof(rb));
	if (!strcmp(ra, rb))
		printf("  #%lu %s => %s\n", h->idx, desc, ra);
	else
		printf("  #%lu %s => A: %s | B: %s\n", h->idx, desc, ra, rb);
}

static void report(unsigned long idx, const char *what)
{
	unsigned long first = nhist > HISTORY ? nhist - HISTORY : 0;

	printf("DIVERGENCE seed=%" PRIu64 " op=%lu: %s%s\n", seed, idx, what,
	       msg);
	printf("last %lu operations (xattr prefix: %s):\n", nhist - first,
	       use_xattr ? xprefix : "none");
	for (unsigned long i = first; i < nhist; i++)
		print_entry(&history[i % HISTORY]);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Setup. */

/*
 * tmpfs gained user.* xattrs only in Linux 6.6; older ones have trusted.*
 * (root only) and security.*.  Use the first namespace the reference
 * filesystem accepts.
 */
static void probe_xattr_prefix(const char *dir)
{
	static const char *const cand[] = { "user.", "trusted." };
	char path[FULLBUF], name[64];
	int fd;

	snprintf(path, sizeof(path), "%s/.fsdiff-xattr-probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die("cannot create %s: %s", path, strerror(errno));
	use_xattr = false;
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		snprintf(name, sizeof(name), "%sfsdiff_probe", cand[i]);
		if (fsetxattr(fd, name, "1", 1, 0) == 0) {
			snprintf(xprefix, sizeof(xprefix), "%s", cand[i]);
			use_xattr = true;
			break;
		}
	}
	close(fd);
	if (unlink(path) < 0)
		die("cannot remove %s: %s", path, strerror(errno));
	if (!use_xattr)
		fprintf(stderr, "fsdiff: note: %s supports neither user.* nor "
			"trusted.* xattrs; xattr operations disabled\n", dir);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsdiff [-s SEED] [-n OPS] [-c CHECK_EVERY] [-v] "
		"[--no-xattr]\n"
		"              [--xattr-prefix user.|trusted.] DIR_A DIR_B\n");
	exit(2);
}

static unsigned long long parse_num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end)
		die("bad %s: %s", what, s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "no-xattr", no_argument, NULL, 'X' },
		{ "xattr-prefix", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long nops = 100000, check_every = 1000, checks = 0;
	unsigned long count[NKINDS] = { 0 }, okcount[NKINDS] = { 0 };
	bool seed_given = false, no_xattr = false;
	struct trace ta = { 0 }, tb = { 0 };
	struct timespec t0, t1;
	struct op *op;
	int c;

	while ((c = getopt_long(argc, argv, "s:n:c:v", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			seed = parse_num(optarg, "seed");
			seed_given = true;
			break;
		case 'n':
			nops = parse_num(optarg, "op count");
			break;
		case 'c':
			check_every = parse_num(optarg, "check interval");
			break;
		case 'v':
			verbose = true;
			break;
		case 'X':
			no_xattr = true;
			break;
		case 'P':
			if (strlen(optarg) >= sizeof(xprefix) - 4 ||
			    optarg[0] == '\0' ||
			    optarg[strlen(optarg) - 1] != '.')
				die("bad xattr prefix: %s", optarg);
			strcpy(xprefix, optarg);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	tree_a = (struct tree){ "A", argv[optind] };
	tree_b = (struct tree){ "B", argv[optind + 1] };
	if (!seed_given)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng_state = seed;
	page_size = sysconf(_SC_PAGESIZE);
	/* Modes passed to open/mkdir are then exactly the modes we get. */
	umask(0);

	for (int i = 0; i < 2; i++) {
		struct stat st;
		const char *d = argv[optind + i];

		if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode))
			die("%s is not a directory", d);
	}
	if (no_xattr)
		use_xattr = false;
	else if (!xprefix[0])
		probe_xattr_prefix(tree_b.root);

	if (!cmp_trees()) {
		fprintf(stderr, "fsdiff: the trees differ before the first "
			"operation: %s\n", msg);
		return 2;
	}
	if (!(op = malloc(sizeof(*op))))
		die("out of memory");
	clock_gettime(CLOCK_MONOTONIC, &t0);

	for (unsigned long i = 1; i <= nops; i++) {
		gen_op(op);
		run_op(&tree_a, op, &ta);
		run_op(&tree_b, op, &tb);
		hist_push(i, op, &ta, &tb);
		count[op->kind]++;
		if (all_ok(&ta))
			okcount[op->kind]++;
		if (verbose)
			print_entry(&history[(nhist - 1) % HISTORY]);
		if (!same_traces(&ta, &tb)) {
			report(i, "");
			return 1;
		}
		if (check_every && i % check_every == 0 && i != nops) {
			checks++;
			if (!cmp_trees()) {
				report(i, "tree check: ");
				return 1;
			}
		}
	}
	checks++;
	if (!cmp_trees()) {
		report(nops, "final tree check: ");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	printf("fsdiff: OK seed=%" PRIu64 " ops=%lu checks=%lu xattr=%s "
	       "time=%.1fs tree=%lu files/%lu dirs/%lu symlinks/%llu bytes |",
	       seed, nops, checks, use_xattr ? xprefix : "off",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       last_walk.files, last_walk.dirs, last_walk.symlinks,
	       last_walk.bytes);
	for (int k = 0; k < NKINDS; k++)
		if (count[k])
			printf(" %s=%lu/%lu", kinds[k].name, okcount[k],
			       count[k]);
	printf("\n");
	free(op);
	free(ta.data);
	free(tb.data);
	return 0;
}
