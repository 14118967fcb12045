/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfsctl: creating things on casfs. CAS-backed files go in with
 * CASFS_IOC_STAGE, batched per directory; directories with mkdirat 0755
 * and symlinks with symlinkat, always relative to directory fds opened
 * with O_NOFOLLOW, so that nothing is ever created through a symlink.
 * Used by `stage` (manifests, ActionResults) and `materialize`.
 */
#ifndef CASFS_STAGE_H
#define CASFS_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"

/* mkdir -p rel (len bytes) under root, no symlinks followed: an fd or -errno. */
int stage_open_dir_p(int root, const char *rel, size_t len, size_t *created);

/* An empty STAGE on a directory: 0 if it is on casfs and writable, else -errno. */
int stage_probe_casfs(int fd);

/*
 * Open DIR, creating it and missing parents (0755) -- but only after its
 * deepest existing ancestor proved to be on casfs, so that nothing is
 * created anywhere else. Returns an fd or -1 (message printed).
 */
int stage_open_root(const char *dir, size_t *created);

struct stage_file {
	const uint8_t *sha256;
	uint64_t size;
	uint32_t mode;
	const char *name;	/* one component, in the directory */
	size_t name_len;
};

/*
 * Stage n files in directory dfd with as few CASFS_IOC_STAGE calls as the
 * kernel's limits allow. 0, or -errno with *bad the index of the entry the
 * kernel refused (or (size_t)-1 when the call as a whole failed); the
 * batches before the failing one stay staged, counted in *staged.
 */
int stage_files(int dfd, const struct stage_file *v, size_t n, size_t *staged,
		size_t *bad);

/*
 * A stream of directories, files and symlinks, each directory's entries
 * given together right after stager_dir() for it (the order tree_walk()
 * produces). Files are collected and staged in batches per directory.
 * Errors are printed ("casfsctl: PATH: reason") and returned as -1.
 */
struct stager {
	int root;		/* the staging root (not owned) */
	int dfd;		/* the current directory */
	char *dir;		/* its path under root ("" for root) */
	struct casfs_stage_entry *ents;	/* pending, for dfd */
	size_t n;
	char *names;		/* their names, back to back */
	size_t nlen;
	size_t created, dirs, files, symlinks;
};

void stager_init(struct stager *s, int root);
int stager_dir(struct stager *s, const char *path);
int stager_file(struct stager *s, const char *name, const uint8_t sha256[CASFS_SHA256_LEN],
		uint64_t size, uint32_t mode);
int stager_symlink(struct stager *s, const char *name, const char *target);
/* Stage what is pending; stager_finish also releases everything. */
int stager_flush(struct stager *s);
int stager_finish(struct stager *s);

#endif
