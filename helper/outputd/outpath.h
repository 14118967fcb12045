/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd: operations on one output path (DIR/<output_base_id> on a
 * casfs mount). Every path here comes from Bazel and is hostile: it is
 * checked by outpath_check() and then resolved beneath the output path's
 * directory fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV), so neither "..", an absolute symlink nor a symlink
 * pointing outside can take an operation out of the output path.
 *
 * The casfs specifics (CASFS_IOC_STAGE, CASFS_IOC_STATE, the digest
 * xattr) go through struct outpath_fs, so the host's tests can run this
 * on a filesystem that is not casfs (tests/fake_fs.c); the daemon uses
 * outpath_fs_casfs (casfs_fs.c).
 *
 * Not thread-safe per struct outpath for writes (stage, remove, clean):
 * the caller serialises those per output base. lstat is safe from any
 * thread.
 */
#ifndef CASFS_OUTPATH_H
#define CASFS_OUTPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OUTPATH_SHA256_LEN 32

/* What the filesystem layer answers about a regular file. */
struct outpath_file_state {
	bool cas;			/* CAS-backed (bytes not local) */
	bool writers;			/* open for writing right now */
	uint8_t sha256[OUTPATH_SHA256_LEN];	/* valid if cas */
	uint64_t size;
	uint64_t version;		/* CASFS_IOC_STATE's version */
};

struct outpath_stage_entry {
	const char *name;		/* one component, already checked */
	size_t name_len;
	uint8_t sha256[OUTPATH_SHA256_LEN];
	uint64_t size;
	uint32_t mode;
};

struct outpath_fs {
	/*
	 * Create every entry in the directory dirfd in one call, all or
	 * nothing (CASFS_IOC_STAGE). No entry's name exists in the
	 * directory. 0 or -errno; *bad gets the failing index or SIZE_MAX.
	 */
	int (*stage)(int dirfd, const struct outpath_stage_entry *e, size_t n,
		     size_t *bad);
	/* State of the regular file open at fd (CASFS_IOC_STATE). */
	int (*state)(int fd, struct outpath_file_state *st);
	/*
	 * sha256 of the regular file open at fd, never fetching: the
	 * "user.casfs.sha256" xattr (the kernel hashes local files).
	 */
	int (*digest)(int fd, uint8_t out[OUTPATH_SHA256_LEN]);
	/* Is the directory fd on this filesystem? (statfs f_type) */
	bool (*is_ours)(int dirfd);
};

extern const struct outpath_fs outpath_fs_casfs;

struct outpath {
	int dirfd;			/* O_PATH|O_DIRECTORY of the output path */
	const struct outpath_fs *fs;
};

/*
 * Check a path from Bazel: not empty, relative, at most PATH_MAX - 1
 * bytes, no NUL byte, no empty, "." or ".." component, no component over
 * NAME_MAX. 0 or -EINVAL.
 */
int outpath_check(const char *path, size_t len);

/*
 * Open (create if asked, mode 0755 less the umask) the output path
 * <name> in the directory rootfd; name is one component. Refuses a
 * directory that is not on fs (-EXDEV) or not a directory (-ENOTDIR).
 */
int outpath_open(struct outpath *op, const struct outpath_fs *fs, int rootfd,
		 const char *name, bool create);
void outpath_close(struct outpath *op);

enum outpath_type {
	OUTPATH_NONE = 0,		/* nothing at the path (ENOENT, ENOTDIR) */
	OUTPATH_FILE,
	OUTPATH_SYMLINK,
	OUTPATH_DIRECTORY,
	OUTPATH_OTHER,			/* fifo, socket, device */
};

struct outpath_stat {
	enum outpath_type type;
	struct outpath_file_state file;	/* OUTPATH_FILE */
	bool have_digest;		/* file.sha256 is valid (cas or hashed) */
	char *target;			/* OUTPATH_SYMLINK: malloc'ed */
};

/*
 * lstat(2) semantics beneath the output path: every component but the
 * last is resolved (symlinks followed, never leaving the output path;
 * leaving it is -EXDEV), the last is not followed. A missing path is 0
 * with type OUTPATH_NONE. For a file, with want_digest, also its sha256
 * (outpath_fs.digest, which for a CAS file costs nothing and for a local
 * one is the kernel's hash): have_digest says whether it was had.
 * Never reads a CAS file's bytes. Free st->target with outpath_stat_free.
 */
int outpath_lstat(const struct outpath *op, const char *path, bool want_digest,
		  struct outpath_stat *st);
void outpath_stat_free(struct outpath_stat *st);

/* One file to stage; err and version are outputs. */
struct outpath_item {
	const char *path;		/* checked with outpath_check() */
	uint8_t sha256[OUTPATH_SHA256_LEN];
	uint64_t size;
	uint32_t mode;
	int err;			/* out: 0 or -errno for this item */
	uint64_t version;		/* out: the staged file's version */
};

/*
 * Stage items: create missing parent directories (0755), replace whatever
 * is at each path (a file or symlink by an atomic rename over it, a
 * directory by removing its tree first), and create the files with one
 * outpath_fs.stage call per distinct parent directory. Each item gets its
 * own err: one bad item fails only itself. Two items with the same path:
 * the later one wins. Returns 0, or -errno only for a failure of the
 * whole batch (no memory).
 */
int outpath_stage(const struct outpath *op, struct outpath_item *items,
		  size_t n);

/* Remove the file or symlink at path if it is one (a directory: -EISDIR). */
int outpath_remove(const struct outpath *op, const char *path);

/*
 * Empty the output path, leaving the directory itself. Fast for 100,000
 * files: everything is first renamed into one hidden trash directory
 * inside it (one rename per top-level entry; inside, so it is on the same
 * filesystem, and a trash left by a crash goes with the next clean),
 * which is then deleted.
 */
int outpath_clean(const struct outpath *op);

/*
 * Walk every regular file under the output path (no symlinks followed):
 * fn gets its path relative to the output path and its state. Non-zero
 * from fn stops the walk and is returned.
 */
typedef int (*outpath_walk_fn)(void *ud, const char *path,
			       const struct outpath_file_state *st);
int outpath_walk(const struct outpath *op, outpath_walk_fn fn, void *ud);

#endif
