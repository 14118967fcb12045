/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: atomic publication of a verified blob.
 *
 * bw_open() creates CACHE/tmp/<hex>.<pid>.<n> (0600, O_EXCL). bw_write()
 * hashes and writes the bytes as they arrive and refuses (-EFBIG) the first
 * byte past the expected size. bw_commit() checks size and sha256; only if
 * both match does it chmod 0444, fsync and rename the file to
 * CACHE/blobs/<hex>. Every failure path unlinks the temporary file, so
 * nothing unverified ever appears under blobs/.
 */
#ifndef CASFS_PUBLISH_H
#define CASFS_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"
#include "verify.h"

struct blob_writer {
	int tmp_dirfd, blobs_dirfd, fd;
	char tmpname[HEX_LEN + 48];
	char hex[HEX_LEN + 1];
	uint8_t digest[CASFS_SHA256_LEN];
	uint64_t expected, written;
	struct sha256 sha;
	unsigned char *buf;
	size_t buflen;
	int err;		/* sticky: first error seen */
};

#define BW_BUFSIZE (256 * 1024)

void bw_init(struct blob_writer *w);	/* makes bw_abort() a no-op */
int bw_open(struct blob_writer *w, int tmp_dirfd, int blobs_dirfd,
	    const uint8_t digest[CASFS_SHA256_LEN], uint64_t size);
/* 0; -EFBIG if this would exceed the expected size; -errno on I/O error. */
int bw_write(struct blob_writer *w, const void *p, size_t n);
/* 0: published. -EIO: failed verification (*why says how). Else -errno. */
int bw_commit(struct blob_writer *w, const char **why);
/* Remove the temporary file and free everything. Idempotent. */
void bw_abort(struct blob_writer *w);
bool bw_is_open(const struct blob_writer *w);

/* Test hook: a fault to inject before each step (0: go on; -errno: fail it). */
enum bw_op { BW_OP_OPEN, BW_OP_WRITE, BW_OP_SYNC, BW_OP_RENAME };
extern int (*bw_fault_hook)(enum bw_op op, const struct blob_writer *w);

#endif
