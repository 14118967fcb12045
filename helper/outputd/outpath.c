// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-outputd: operations on one output path, see outpath.h.
 *
 * Every resolution of a directory goes through openat2() beneath the
 * output path's fd; the last component of a path is then handled with
 * *at() calls on that directory fd, never following a symlink there. A
 * file is only ever opened O_RDONLY|O_NOFOLLOW|O_NONBLOCK and asked for
 * its state: opening a casfs file does not fetch it, reading would.
 */
#include "outpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "linux/casfs.h"

#define RESOLVE_FLAGS (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
/* openat2() says EAGAIN when a rename raced with a ".." in a symlink. */
#define RESOLVE_TRIES 8
#define FILE_OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
#define DIR_OPEN_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* Temporary and trash names: a prefix and 16 hex digits. */
#define TMP_PREFIX ".casfs-outputd."
#define TRASH_PREFIX ".casfs-outputd-trash."
#define RAND_HEX 16

/*
 * Tree walks (clean, remove a directory, walk) keep the directory
 * streams of the first TREE_FD_DEPTH levels open; deeper ones are closed
 * on the way down and reopened through ".." (checked by inode) on the
 * way up, so that a deep tree costs neither unbounded fds nor recursion.
 * TREE_MAX_DEPTH bounds the frames' memory (512 bytes each): no path
 * Bazel can name (PATH_MAX) is deeper than PATH_MAX / 2.
 */
#define TREE_FD_DEPTH 64
#define TREE_MAX_DEPTH 4096

int outpath_check(const char *path, size_t len)
{
	size_t i = 0;

	if (!path || len == 0 || len > PATH_MAX - 1 || path[0] == '/')
		return -EINVAL;
	if (memchr(path, 0, len))
		return -EINVAL;
	while (i <= len) {
		size_t j = i;

		while (j < len && path[j] != '/')
			j++;
		/* empty (a//b, trailing /), ".", ".." or too long */
		if (j == i || j - i > NAME_MAX)
			return -EINVAL;
		if (path[i] == '.' && (j - i == 1 || (j - i == 2 && path[i + 1] == '.')))
			return -EINVAL;
		i = j + 1;
	}
	return 0;
}

static int check_cstr(const char *path, size_t *len)
{
	if (!path)
		return -EINVAL;
	/* strnlen: a path with no NUL in PATH_MAX bytes is too long anyway */
	*len = strnlen(path, PATH_MAX);
	return outpath_check(path, *len);
}

/*
 * Open the directory at the first len bytes of path (a checked path or
 * one of its prefixes), beneath the output path, symlinks followed while
 * they stay beneath. flags: O_PATH or O_RDONLY. Returns an fd or -errno.
 */
static int resolve_dir(const struct outpath *op, const char *path, size_t len,
		       int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_DIRECTORY | O_CLOEXEC),
		.resolve = RESOLVE_FLAGS,
	};
	char buf[PATH_MAX];
	int fd, tries = 0;

	if (len == 0) {
		buf[0] = '.';
		buf[1] = 0;
	} else {
		if (len > PATH_MAX - 1)
			return -ENAMETOOLONG;
		memcpy(buf, path, len);
		buf[len] = 0;
	}
	do {
		fd = (int)syscall(SYS_openat2, op->dirfd, buf, &how, sizeof(how));
	} while (fd < 0 && errno == EAGAIN && ++tries < RESOLVE_TRIES);
	return fd < 0 ? -errno : fd;
}

/* Split a checked path into its parent's length and its last component. */
static void split(const char *path, size_t len, size_t *plen, const char **name)
{
	const char *slash = memrchr(path, '/', len);

	*plen = slash ? (size_t)(slash - path) : 0;
	*name = slash ? slash + 1 : path;
}

static int rand_hex(char out[RAND_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[RAND_HEX / 2];
	ssize_t n;

	do {
		n = getrandom(b, sizeof(b), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(b))
		return -EIO;
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[RAND_HEX] = 0;
	return 0;
}

int outpath_open(struct outpath *op, const struct outpath_fs *fs, int rootfd,
		 const char *name, bool create)
{
	size_t len;
	int fd, r;

	op->dirfd = -1;
	op->fs = fs;
	r = check_cstr(name, &len);
	if (r)
		return r;
	if (memchr(name, '/', len))
		return -EINVAL;
	if (create && mkdirat(rootfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* O_NOFOLLOW: the output path itself must not be a symlink */
	fd = openat(rootfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	if (!fs->is_ours(fd)) {
		close(fd);
		return -EXDEV;
	}
	op->dirfd = fd;
	return 0;
}

void outpath_close(struct outpath *op)
{
	if (op->dirfd >= 0)
		close(op->dirfd);
	op->dirfd = -1;
}

void outpath_stat_free(struct outpath_stat *st)
{
	free(st->target);
	st->target = NULL;
}

int outpath_lstat(const struct outpath *op, const char *path, bool want_digest,
		  struct outpath_stat *st)
{
	const char *name;
	size_t len, plen;
	struct stat sb;
	int dfd, fd, r;

	memset(st, 0, sizeof(*st));
	r = check_cstr(path, &len);
	if (r)
		return r;
	split(path, len, &plen, &name);
	dfd = resolve_dir(op, path, plen, O_PATH);
	if (dfd == -ENOENT || dfd == -ENOTDIR)
		return 0;		/* OUTPATH_NONE */
	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		r = errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
		goto out;
	}
	if (S_ISLNK(sb.st_mode)) {
		char *t = malloc(PATH_MAX);
		ssize_t n;

		if (!t) {
			r = -ENOMEM;
			goto out;
		}
		n = readlinkat(dfd, name, t, PATH_MAX);
		if (n < 0 || n >= PATH_MAX) {
			/* gone or replaced since the fstatat: a race, say so */
			r = n < 0 ? (errno == EINVAL ? -EAGAIN : -errno) : -ENAMETOOLONG;
			free(t);
			goto out;
		}
		t[n] = 0;
		st->type = OUTPATH_SYMLINK;
		st->target = t;
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		st->type = OUTPATH_DIRECTORY;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		st->type = OUTPATH_OTHER;
		goto out;
	}
	/* a regular file: its state needs a real fd, which does not fetch */
	fd = openat(dfd, name, FILE_OPEN_FLAGS);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : errno == ELOOP ? -EAGAIN : -errno;
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		r = -errno;
	} else if (!S_ISREG(sb.st_mode)) {
		r = -EAGAIN;		/* replaced between fstatat and open */
	} else {
		r = op->fs->state(fd, &st->file);
		if (r == 0) {
			st->type = OUTPATH_FILE;
			if (st->file.cas)
				st->have_digest = true;
			else if (want_digest)
				st->have_digest = op->fs->digest(fd, st->file.sha256) == 0;
		}
	}
	close(fd);
out:
	close(dfd);
	if (r)
		outpath_stat_free(st);
	return r;
}

int outpath_remove(const struct outpath *op, const char *path)
{
	const char *name;
	size_t len, plen;
	int dfd, r;

	r = check_cstr(path, &len);
	if (r)
		return r;
	split(path, len, &plen, &name);
	dfd = resolve_dir(op, path, plen, O_PATH);
	if (dfd < 0)
		return dfd == -ENOTDIR ? -ENOENT : dfd;
	/* unlinkat without AT_REMOVEDIR refuses a directory with EISDIR */
	r = unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	close(dfd);
	return r;
}

/* ---- iterative tree walks ---- */

/* Who a directory is: to come back to it through "..", to stay on one mount. */
struct dir_id {
	dev_t dev;
	ino_t ino;
	uint64_t mnt;			/* 0 if statx did not say */
};

static int dir_id(int fd, struct dir_id *id)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
		  STATX_INO | STATX_MNT_ID, &stx) < 0)
		return -errno;
	id->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	id->ino = stx.stx_ino;
	id->mnt = stx.stx_mask & STATX_MNT_ID ? stx.stx_mnt_id : 0;
	return 0;
}

/* A bind mount of the same filesystem has the same st_dev: use mnt ids. */
static bool same_mount(const struct dir_id *a, const struct dir_id *b)
{
	if (a->mnt && b->mnt)
		return a->mnt == b->mnt;
	return a->dev == b->dev;
}

struct tree_frame {
	DIR *dir;			/* NULL while closed (deep levels) */
	struct dir_id id;
	size_t path_len;		/* this dir's path in tree->path */
	char name[NAME_MAX + 1];	/* this dir's name in its parent */
	char child[NAME_MAX + 1];	/* the subdir being walked, to resume */
};

struct tree {
	/* for each entry but a directory; dtype from readdir or fstatat */
	int (*leaf)(struct tree *t, int dirfd, const char *name, unsigned char dtype);
	/* a directory, all entries done, in parentfd; may be NULL */
	int (*post)(struct tree *t, int parentfd, const char *name);
	bool deleting;			/* entries vanish: rescan from the start */
	bool want_path;			/* keep path: for the walk's callback */
	char path[PATH_MAX];		/* the current entry's path (want_path) */
	size_t path_len;
	const struct outpath *op;	/* walk: */
	outpath_walk_fn fn;
	void *ud;
};

/* The path of name in the current dir, in t->path; false if too long. */
static bool tree_path(struct tree *t, size_t base, const char *name)
{
	size_t n = strlen(name), len = base + (base ? 1 : 0) + n;

	if (len > PATH_MAX - 1)
		return false;
	if (base)
		t->path[base] = '/';
	memcpy(t->path + base + (base ? 1 : 0), name, n + 1);
	t->path_len = len;
	return true;
}

/*
 * Walk the tree of the directory fd (consumed), leaves first, never
 * following a symlink. Returns 0, or the first error (from a syscall or
 * a callback), which stops the walk.
 */
static int tree_run(struct tree *t, int fd, size_t base_len)
{
	struct tree_frame *fr = NULL, *f;
	size_t depth = 0, cap = 0;
	char sub[NAME_MAX + 1] = "";
	struct dir_id id, top;
	unsigned char dtype;
	struct dirent *de;
	struct stat sb;
	int r = 0;

	for (;;) {
		int nfd;

		if (depth == 0 && fr)
			break;		/* the top directory is done */
		if (depth == 0) {
			/* push the top directory */
			cap = 16;
			fr = calloc(cap, sizeof(*fr));
			if (!fr) {
				close(fd);
				return -ENOMEM;
			}
			r = dir_id(fd, &top);
			if (r) {
				close(fd);
				break;
			}
			id = top;
			goto push;
		}
		f = &fr[depth - 1];
		errno = 0;
		de = readdir(f->dir);
		if (!de) {
			struct tree_frame *p;
			int pfd;

			if (errno) {
				r = -errno;
				break;
			}
			if (depth == 1) {
				closedir(f->dir);
				f->dir = NULL;
				depth = 0;
				continue;
			}
			p = &fr[depth - 2];
			if (p->dir) {
				pfd = dirfd(p->dir);
			} else {
				/* a deep level: back up through "..", same inode */
				pfd = openat(dirfd(f->dir), "..", DIR_OPEN_FLAGS);
				if (pfd < 0) {
					r = -errno;
					break;
				}
				r = dir_id(pfd, &id);
				if (!r && (id.dev != p->id.dev || id.ino != p->id.ino))
					r = -EAGAIN;	/* moved under us */
				if (r) {
					close(pfd);
					break;
				}
				p->dir = fdopendir(pfd);
				if (!p->dir) {
					r = -errno;
					close(pfd);
					break;
				}
			}
			closedir(f->dir);
			f->dir = NULL;
			depth--;
			if (t->post) {
				r = t->post(t, pfd, f->name);
				if (r)
					break;
			}
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (f->child[0]) {
			/* reopened (not deleting): skip up to the subdir we left */
			if (!strcmp(de->d_name, f->child))
				f->child[0] = 0;
			continue;
		}
		dtype = de->d_type;

		/* de dies with its stream, which a deep level closes below */
		strcpy(sub, de->d_name);

		if (dtype == DT_UNKNOWN) {
			if (fstatat(dirfd(f->dir), sub, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue;
				r = -errno;
				break;
			}
			dtype = S_ISDIR(sb.st_mode) ? DT_DIR : S_ISREG(sb.st_mode) ? DT_REG :
				S_ISLNK(sb.st_mode) ? DT_LNK : DT_UNKNOWN;
		}
		if (t->want_path && !tree_path(t, f->path_len, sub))
			continue;	/* no path Bazel can name: not reported */
		/* a trash a crashed clean left is not part of the outputs */
		if (t->want_path && depth == 1 &&
		    !strncmp(sub, TRASH_PREFIX, sizeof(TRASH_PREFIX) - 1))
			continue;
		if (dtype != DT_DIR) {
			r = t->leaf(t, dirfd(f->dir), sub, dtype);
			if (r)
				break;
			continue;
		}
		if (depth >= TREE_MAX_DEPTH) {
			r = -ELOOP;
			break;
		}
		nfd = openat(dirfd(f->dir), sub, DIR_OPEN_FLAGS);
		if (nfd < 0) {
			if (errno == ENOENT)
				continue;
			if (errno == ENOTDIR || errno == ELOOP) {
				/* replaced by a file or symlink since readdir */
				r = t->leaf(t, dirfd(f->dir), sub, DT_UNKNOWN);
				if (r)
					break;
				continue;
			}
			r = -errno;
			break;
		}
		r = dir_id(nfd, &id);
		if (r) {
			close(nfd);
			break;
		}
		if (!same_mount(&id, &top)) {
			/* like RESOLVE_NO_XDEV: never into another mount */
			close(nfd);
			if (t->deleting) {
				r = -EXDEV;
				break;
			}
			continue;
		}
		fd = nfd;
		if (depth >= TREE_FD_DEPTH) {
			/* keep fds bounded: reopen through ".." later */
			if (!t->deleting)
				strcpy(f->child, sub);
			closedir(f->dir);
			f->dir = NULL;
		}
push:
		if (depth == cap) {
			struct tree_frame *nf = reallocarray(fr, cap * 2, sizeof(*fr));

			if (!nf) {
				close(fd);
				r = -ENOMEM;
				break;
			}
			fr = nf;
			cap *= 2;
		}
		/*
		 * Deleting: Bazel leaves tree artifacts and other output
		 * directories read-only (0555), and their entries cannot be
		 * unlinked until the directory is writable again. Ours: make
		 * it u+rwx (a failure shows as the unlink's error).
		 */
		if (t->deleting && !fstat(fd, &sb) && (sb.st_mode & S_IRWXU) != S_IRWXU)
			(void)fchmod(fd, (sb.st_mode & 07777) | S_IRWXU);
		f = &fr[depth];
		memset(f, 0, sizeof(*f));
		if (depth > 0)
			strcpy(f->name, sub);
		f->id = id;
		f->path_len = depth == 0 ? base_len : t->path_len;
		f->dir = fdopendir(fd);
		if (!f->dir) {
			r = -errno;
			close(fd);
			break;
		}
		depth++;
	}
	while (depth > 0) {
		if (fr[depth - 1].dir)
			closedir(fr[depth - 1].dir);
		depth--;
	}
	free(fr);
	return r;
}

static int del_leaf(struct tree *t, int dirfd, const char *name, unsigned char dtype)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	/* became a directory since readdir: take it as an empty one */
	if (errno == EISDIR && unlinkat(dirfd, name, AT_REMOVEDIR) == 0)
		return 0;
	return -errno;
}

static int del_post(struct tree *t, int parentfd, const char *name)
{
	if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return -errno;
}

/* Remove the directory name in dirfd and everything in it. */
static int remove_tree(int dirfd, const char *name)
{
	struct tree t = { .leaf = del_leaf, .post = del_post, .deleting = true };
	int fd, r;

	fd = openat(dirfd, name, DIR_OPEN_FLAGS);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = tree_run(&t, fd, 0);
	if (r)
		return r;
	return del_post(&t, dirfd, name);
}

/*
 * Moving a directory to another parent rewrites its "..", which needs
 * write permission on it: a read-only (0555) output directory must be
 * made u+w first. Only a directory, opened without following a symlink.
 * 0, or -1 with errno (EACCES when there was nothing to fix).
 */
static int make_writable(int dfd, const char *name)
{
	struct stat sb;
	int fd = openat(dfd, name, DIR_OPEN_FLAGS), ret = -1;

	if (fd < 0) {
		errno = EACCES;
		return -1;
	}
	if (!fstat(fd, &sb) && !(sb.st_mode & S_IWUSR) &&
	    !fchmod(fd, (sb.st_mode & 07777) | S_IRWXU))
		ret = 0;
	close(fd);
	if (ret)
		errno = EACCES;
	return ret;
}

int outpath_clean(const struct outpath *op)
{
	char trash[sizeof(TRASH_PREFIX) + RAND_HEX];
	int dfd, tfd, r, moved;
	struct dirent *de;
	DIR *d;

	r = rand_hex(trash + sizeof(TRASH_PREFIX) - 1);
	if (r)
		return r;
	memcpy(trash, TRASH_PREFIX, sizeof(TRASH_PREFIX) - 1);
	/*
	 * The trash is inside the output path: the same filesystem for
	 * certain (the parent might be another mount), and nothing outside
	 * is touched. A trash left by a crash is just one more entry.
	 */
	if (mkdirat(op->dirfd, trash, 0700) < 0)
		return -errno;
	tfd = openat(op->dirfd, trash, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0) {
		r = -errno;
		goto rm_trash;
	}
	dfd = openat(op->dirfd, ".", DIR_OPEN_FLAGS);
	if (dfd < 0) {
		r = -errno;
		close(tfd);
		goto rm_trash;
	}
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		close(tfd);
		goto rm_trash;
	}
	/*
	 * Renaming while reading may make readdir skip an entry: pass again
	 * until a pass moves nothing (bounded: a writer racing us forever
	 * would keep us here, so give up after a few passes).
	 */
	for (int pass = 0; pass < 8; pass++) {
		moved = 0;
		rewinddir(d);
		for (;;) {
			errno = 0;
			de = readdir(d);
			if (!de) {
				if (errno)
					r = -errno;
				break;
			}
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			    !strcmp(de->d_name, trash))
				continue;
			if (renameat(dfd, de->d_name, tfd, de->d_name) < 0 &&
			    (errno != EACCES || make_writable(dfd, de->d_name) ||
			     renameat(dfd, de->d_name, tfd, de->d_name) < 0)) {
				if (errno == ENOENT)
					continue;
				r = -errno;
				break;
			}
			moved++;
		}
		if (r || !moved)
			break;
	}
	closedir(d);
	close(tfd);
	if (!r && moved)
		r = -EAGAIN;
rm_trash:
	{
		int r2 = remove_tree(op->dirfd, trash);

		return r ? r : r2;
	}
}

/* ---- walk ---- */

static int walk_leaf(struct tree *t, int dirfd, const char *name, unsigned char dtype)
{
	struct outpath_file_state st;
	struct stat sb;
	bool ok = false;
	int fd;

	if (dtype != DT_REG && dtype != DT_UNKNOWN)
		return 0;
	fd = openat(dirfd, name, FILE_OPEN_FLAGS);
	if (fd < 0)
		return 0;	/* gone, a symlink now (ELOOP), or unopenable */
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
		ok = t->op->fs->state(fd, &st) == 0;
	close(fd);
	/* a file whose state fails is skipped: we cannot say what it is */
	return ok ? t->fn(t->ud, t->path, &st) : 0;
}

int outpath_walk(const struct outpath *op, outpath_walk_fn fn, void *ud)
{
	struct tree *t = calloc(1, sizeof(*t));	/* PATH_MAX inside */
	int fd, r;

	if (!t)
		return -ENOMEM;
	t->leaf = walk_leaf;
	t->want_path = true;
	t->op = op;
	t->fn = fn;
	t->ud = ud;
	fd = openat(op->dirfd, ".", DIR_OPEN_FLAGS);
	if (fd < 0) {
		r = -errno;
	} else {
		r = tree_run(t, fd, 0);
	}
	free(t);
	return r;
}

/* ---- stage ---- */

struct stage_slot {
	struct outpath_item *item;
	const char *name;		/* last component, in item->path */
	size_t name_len;
	bool tmp;			/* staged as tmp_name, renamed over name */
	char tmp_name[sizeof(TMP_PREFIX) + RAND_HEX];
};

static size_t parent_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

/* Group by parent directory, then by path, then by position. */
static int item_cmp(const void *a, const void *b)
{
	const struct outpath_item *x = *(struct outpath_item *const *)a;
	const struct outpath_item *y = *(struct outpath_item *const *)b;
	size_t xl = parent_len(x->path), yl = parent_len(y->path);
	int c;

	if (xl != yl)
		return xl < yl ? -1 : 1;
	c = memcmp(x->path, y->path, xl);
	if (c)
		return c;
	c = strcmp(x->path + xl, y->path + yl);
	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/*
 * Open the parent directory path[0..plen) for staging (a real fd: the
 * ioctl wants one), creating missing components 0755. Each prefix is
 * resolved from the output path again, so a component that is a symlink
 * is followed only while it stays beneath, and mkdirat() only ever runs
 * in a directory that was resolved beneath.
 */
static int open_parent_create(const struct outpath *op, const char *path, size_t plen)
{
	int fd, pfd;
	size_t i;

	fd = resolve_dir(op, path, plen, O_RDONLY);
	if (fd != -ENOENT)
		return fd;
	pfd = resolve_dir(op, path, 0, O_RDONLY);
	if (pfd < 0)
		return pfd;
	for (i = 0; i < plen;) {
		char comp[NAME_MAX + 1];
		size_t j = i;

		while (j < plen && path[j] != '/')
			j++;
		fd = resolve_dir(op, path, j, O_RDONLY);
		if (fd == -ENOENT) {
			memcpy(comp, path + i, j - i);	/* checked: <= NAME_MAX */
			comp[j - i] = 0;
			if (mkdirat(pfd, comp, 0755) < 0 && errno != EEXIST) {
				fd = -errno;
				close(pfd);
				return fd;
			}
			fd = resolve_dir(op, path, j, O_RDONLY);
		}
		close(pfd);
		if (fd < 0)
			return fd;
		pfd = fd;
		i = j + 1;
	}
	return pfd;
}

/*
 * A staged entry exists under its staged name: take its version (before
 * the rename, so that it is ours for certain), then rename it over the
 * target if it was staged under a temporary name. On failure the staged
 * file is removed again, and the item fails.
 */
static void stage_finish(const struct outpath *op, int dfd, struct stage_slot *s)
{
	const char *staged = s->tmp ? s->tmp_name : s->name;
	struct outpath_file_state st;
	struct stat sb;
	int fd, r;

	fd = openat(dfd, staged, FILE_OPEN_FLAGS);
	if (fd < 0) {
		s->item->err = -errno;
		return;		/* not there any more: nothing to undo */
	}
	if (fstat(fd, &sb) < 0)
		r = -errno;
	else if (!S_ISREG(sb.st_mode))
		r = -EAGAIN;
	else
		r = op->fs->state(fd, &st);
	close(fd);
	if (r == 0 && s->tmp && renameat(dfd, s->tmp_name, dfd, s->name) < 0)
		r = -errno;
	if (r) {
		/* best effort: the item fails with the first error anyway */
		(void)unlinkat(dfd, staged, 0);
		s->item->err = r;
		return;
	}
	s->item->err = 0;
	s->item->version = st.version;
}

static void fill_entry(struct outpath_stage_entry *e, const struct stage_slot *s)
{
	e->name = s->tmp ? s->tmp_name : s->name;
	e->name_len = s->tmp ? strlen(s->tmp_name) : s->name_len;
	memcpy(e->sha256, s->item->sha256, OUTPATH_SHA256_LEN);
	e->size = s->item->size;
	/* permission and sticky bits only: casfs refuses setuid/setgid */
	e->mode = s->item->mode & 01777;
}

/* Stage slots[0..n) in dfd with as few fs->stage calls as the limits allow. */
static void stage_dir(const struct outpath *op, int dfd, struct stage_slot *slots,
		      size_t n, struct outpath_stage_entry *ents)
{
	size_t i = 0;

	while (i < n) {
		size_t cnt = 0, names = 0, bad = SIZE_MAX, k;
		int r;

		while (i + cnt < n && cnt < CASFS_STAGE_MAX_ENTRIES) {
			fill_entry(&ents[cnt], &slots[i + cnt]);
			if (names + ents[cnt].name_len > CASFS_STAGE_MAX_NAMES)
				break;
			names += ents[cnt].name_len;
			cnt++;
		}
		r = op->fs->stage(dfd, ents, cnt, &bad);
		if (r == 0) {
			for (k = 0; k < cnt; k++)
				stage_finish(op, dfd, &slots[i + k]);
		} else {
			/*
			 * All or nothing: nothing was made. One at a time now,
			 * so that each item gets its own error.
			 */
			for (k = 0; k < cnt; k++) {
				struct stage_slot *s = &slots[i + k];

				if (cnt == 1) {
					s->item->err = r;
					break;
				}
				/* a fresh tmp name, in case the old one was taken */
				if (s->tmp && rand_hex(s->tmp_name + sizeof(TMP_PREFIX) - 1) < 0) {
					s->item->err = -EIO;
					continue;
				}
				fill_entry(&ents[0], s);
				r = op->fs->stage(dfd, ents, 1, &bad);
				if (r)
					s->item->err = r;
				else
					stage_finish(op, dfd, s);
			}
		}
		i += cnt;
	}
}

/*
 * Prepare one item whose parent is dfd: decide whether it is staged
 * under its name or a temporary one. 0, or -errno for this item.
 */
static int stage_prepare(int dfd, struct stage_slot *s)
{
	struct stat sb;
	int r;

	if (fstatat(dfd, s->name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return -errno;
	}
	if (S_ISDIR(sb.st_mode)) {
		/* a rename cannot replace a directory by a file */
		r = remove_tree(dfd, s->name);
		return r;
	}
	/* a file, symlink or other: atomically replaced by a rename */
	memcpy(s->tmp_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
	r = rand_hex(s->tmp_name + sizeof(TMP_PREFIX) - 1);
	if (r)
		return r;
	s->tmp = true;
	return 0;
}

/*
 * Items with the same path: only the last one is staged; the earlier
 * ones get err 0 and version 0, as if staged and at once replaced by it.
 * Two different parent strings that resolve to the same directory (one
 * through a symlink) are staged as two groups, one after the other: an
 * item of the second group replaces a same-named one of the first.
 */
int outpath_stage(const struct outpath *op, struct outpath_item *items, size_t n)
{
	struct outpath_stage_entry *ents = NULL;
	struct stage_slot *slots = NULL;
	struct outpath_item **order;
	size_t m = 0, i, j;

	if (n == 0)
		return 0;
	order = calloc(n, sizeof(*order));
	slots = calloc(n, sizeof(*slots));
	ents = calloc(n < CASFS_STAGE_MAX_ENTRIES ? n : CASFS_STAGE_MAX_ENTRIES,
		      sizeof(*ents));
	if (!order || !slots || !ents) {
		free(order);
		free(slots);
		free(ents);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		size_t len;

		items[i].version = 0;
		items[i].err = check_cstr(items[i].path, &len);
		if (items[i].err == 0)
			order[m++] = &items[i];
	}
	qsort(order, m, sizeof(*order), item_cmp);

	for (i = 0; i < m; i = j) {
		const char *p = order[i]->path;
		size_t plen = parent_len(p), k, ns = 0;
		int dfd;

		/* the group: every item with the same parent string */
		for (j = i + 1; j < m; j++) {
			if (parent_len(order[j]->path) != plen ||
			    memcmp(order[j]->path, p, plen))
				break;
		}
		dfd = open_parent_create(op, p, plen);
		for (k = i; k < j; k++) {
			struct stage_slot *s = &slots[ns];
			struct outpath_item *it = order[k];

			if (dfd < 0) {
				it->err = dfd;
				continue;
			}
			/* superseded by a later item with the same path */
			if (k + 1 < j && !strcmp(order[k + 1]->path, it->path)) {
				it->err = 0;
				continue;
			}
			memset(s, 0, sizeof(*s));
			s->item = it;
			s->name = it->path + plen + (plen ? 1 : 0);
			s->name_len = strlen(s->name);
			it->err = stage_prepare(dfd, s);
			if (it->err == 0)
				ns++;
		}
		if (dfd >= 0) {
			stage_dir(op, dfd, slots, ns, ents);
			close(dfd);
		}
	}
	free(order);
	free(slots);
	free(ents);
	return 0;
}
