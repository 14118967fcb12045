/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfsctl: REv2 Directory graphs (and ActionResults) from hostile bytes.
 *
 * A Directory is named by the sha256 of its serialized bytes exactly as
 * the server sent them, so the containers (Tree, GetTreeResponse) are
 * split at the protobuf wire level and every Directory slice is hashed
 * as received; a Directory is then only ever found by that computed
 * digest, never by anything the server claims. Directory contents are
 * decoded here too, strictly, rather than with protobuf-c: protobuf-c
 * hands strings back NUL-terminated, which would silently cut a name
 * holding a NUL ("a\0/../x" would read as "a").
 *
 * Usage: tree_new(), feed bytes (tree_add_tree() for a Tree message,
 * tree_add_page() per GetTreeResponse), then tree_walk() from the root.
 * A Directory is decoded and checked once, on the first visit, however
 * many places it appears in; the walk checks what depends on the place
 * (depth, entry count, symlink targets against the root) at every one.
 * Every error names the path (relative to the materialization root) and
 * the offending name.
 */
#ifndef CASFS_TREE_H
#define CASFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rev2.h"

#define TREE_MAX_NAME 255
#define TREE_MAX_TARGET 4095
/* Relative paths under the root, like manifest paths. */
#define TREE_MAX_PATH 4095
#define TREE_DEFAULT_MAX_DEPTH 256
#define TREE_DEFAULT_MAX_ENTRIES 10000000ull
/* Bytes of Directory messages kept in memory for one graph. */
#define TREE_MAX_BYTES ((size_t)1 << 30)

struct tree_policy {
	bool allow_absolute;	/* symlink targets starting with '/' */
	bool allow_escaping;	/* relative targets leaving the root, or with
				 * a '..' after a name (see tree_check_target) */
	unsigned max_depth;	/* directory nesting below the root; 0: default */
	uint64_t max_entries;	/* files + dirs + symlinks visited; 0: default */
};

struct tree;

int tree_new(struct tree **out);
void tree_free(struct tree *t);

/*
 * One Tree message (root = field 1, children = field 2). *root gets the
 * computed digest of the root Directory. 0 or -EINVAL / -ENOMEM / -EFBIG
 * with err.
 */
int tree_add_tree(struct tree *t, const uint8_t *msg, size_t len,
		  struct rev2_digest *root, char *err, size_t errlen);

/* One GetTreeResponse message (directories = field 1; the token is ignored). */
int tree_add_page(struct tree *t, const uint8_t *msg, size_t len,
		  char *err, size_t errlen);

/* Directories indexed so far (distinct digests). */
size_t tree_count(const struct tree *t);
bool tree_has(const struct tree *t, const struct rev2_digest *d);

/*
 * Depth-first, in an order fit for staging: dir(path) before anything in
 * it, then all its files, then all its symlinks, then each subdirectory
 * in turn (each group sorted by name). path is relative to the root (""
 * for the root itself, "a/b" below it), name points at its last
 * component. A callback's non-zero return stops the walk with that value.
 * Any callback may be NULL.
 */
struct tree_visitor {
	int (*dir)(void *ud, const char *path);
	int (*file)(void *ud, const char *path, const char *name,
		    const struct rev2_digest *d, bool executable);
	int (*symlink)(void *ud, const char *path, const char *name,
		       const char *target);
};

struct tree_stats {
	uint64_t dirs, files, symlinks;	/* dirs counts the root */
};

/*
 * Walk from root. base_depth is how deep the root itself sits below the
 * directory that symlinks must not escape (0 for materialize; the output
 * directory's depth for an ActionResult's output_directories). prefix, if
 * not NULL, is prepended ("prefix/...") to every path in messages and
 * callbacks. 0, a callback's value, or -EINVAL / -ENOENT (a Directory
 * missing from the graph) / -E2BIG (limits) / -ENOMEM, with err.
 */
int tree_walk(struct tree *t, const struct rev2_digest *root, const char *prefix,
	      unsigned base_depth, const struct tree_policy *pol,
	      const struct tree_visitor *v, void *ud, struct tree_stats *st,
	      char *err, size_t errlen);

/* ---- the single checks, shared with ActionResult staging ---- */

/* A Directory entry name: 0 or -EINVAL with err saying why (not naming it). */
int tree_check_name(const char *name, size_t len, char *err, size_t errlen);

/*
 * A symlink target, for a link whose directory is depth levels below the
 * no-escape root. By default: non-empty, at most 4095 bytes, no NUL, not
 * absolute, and relative ones may only use '..' as leading components and
 * never more of them than depth. Leading-only is what makes the check
 * sound: a '..' after a name that is itself a symlink would go up from
 * wherever that symlink points, which counting cannot see. 0 or -EINVAL.
 */
int tree_check_target(const char *target, size_t len, unsigned depth,
		      const struct tree_policy *pol, char *err, size_t errlen);

/* "Digest" message fields: 64 lowercase hex, 0 <= size <= CASFS_MAX_BLOB_SIZE. */
int tree_parse_digest(const uint8_t *msg, size_t len, struct rev2_digest *d,
		      char *err, size_t errlen);

/* ---- ActionResult ---- */

struct ar_file {
	char *path;
	struct rev2_digest d;
	bool executable;
};
struct ar_dir {
	char *path;
	struct rev2_digest tree;
};
struct ar_symlink {
	char *path, *target;
};
struct action_result {
	struct ar_file *files;
	size_t nfiles;
	struct ar_dir *dirs;
	size_t ndirs;
	/* output_symlinks, output_file_symlinks, output_directory_symlinks
	 * in that order, identical (path, target) pairs kept once */
	struct ar_symlink *symlinks;
	size_t nsymlinks;
};

/*
 * Decode an ActionResult (only the outputs). Paths are checked with
 * manifest_check_path(); duplicate paths (other than identical symlinks)
 * and outputs nested in other outputs are refused; symlink targets are
 * checked with tree_check_target() for the link's depth. 0 or -EINVAL /
 * -ENOMEM with err.
 */
int tree_parse_action_result(const uint8_t *msg, size_t len,
			     const struct tree_policy *pol, struct action_result *ar,
			     char *err, size_t errlen);
void action_result_free(struct action_result *ar);

#endif
