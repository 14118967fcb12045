/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd: what Bazel was told about each output of an output base,
 * so that BatchStat can vouch for a file's digest only while the file is
 * unchanged: path -> (sha256, size, version). The version is the kernel's
 * (CASFS_IOC_STATE), unique within the mount and renewed by any change to
 * the bytes, so "same version, no writer" means "the bytes Bazel knows".
 *
 * The table is saved with the tree, in the casfs mount itself
 * (statefile.c), so that it lives exactly as long as the versions it
 * holds are meaningful, and a restarted daemon picks it up.
 *
 * Not thread-safe: the owner (struct obase) holds its lock.
 */
#ifndef CASFS_OUTPUTD_RECORDS_H
#define CASFS_OUTPUTD_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct record {
	struct record *next;	/* hash chain */
	uint8_t sha256[32];
	uint64_t size;
	uint64_t version;
	uint32_t path_len;
	char path[];		/* NUL-terminated */
};

struct records {
	struct record **b;
	size_t nb;		/* buckets, a power of two (0 when empty) */
	size_t n;
};

void records_init(struct records *r);
void records_free(struct records *r);
/* Insert or replace. 0 or -ENOMEM. */
int records_put(struct records *r, const char *path, size_t len,
		const uint8_t sha256[32], uint64_t size, uint64_t version);
struct record *records_get(const struct records *r, const char *path, size_t len);
void records_del(struct records *r, const char *path, size_t len);
/* Drop every record under the directory prefix ("a/b" drops "a/b/..."). */
void records_del_under(struct records *r, const char *dir, size_t len);
/* Call fn for each record; non-zero stops and is returned. */
int records_each(const struct records *r,
		 int (*fn)(void *ud, const struct record *rec), void *ud);

#endif
