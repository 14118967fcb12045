/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: atomic publication of a verified blob.
 *
 * bw_open() creates CACHE/tmp/<hex>.<pid>.<n> (mode 0400 at creation,
 * O_EXCL). bw_write() hashes and writes the bytes as they arrive and
 * refuses (-EFBIG) the first byte past the expected size. Then either
 *
 *  - bw_commit(): checks size and sha256; only if both match does it
 *    fsync and rename the file to CACHE/blobs/<hex> (one fsync per blob);
 *  - or, for a group (issue 11 item 10): bw_verify() checks size and
 *    sha256 and closes the file, which stays in tmp/; once a group of
 *    verified files is collected, bw_sync_group() (one syncfs(2) of the
 *    cache's filesystem) makes all of them durable, and only then does
 *    bw_publish() rename each into blobs/.
 *
 * Every failure path (and bw_abort) unlinks the temporary file, so
 * nothing unverified, nor anything not yet durable, ever appears under
 * blobs/. Write buffers and digest contexts are kept in a small pool and
 * reused.
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
	unsigned char *buf;	/* BW_BUFSIZE, from the pool */
	size_t buflen;
	int err;		/* sticky: first error seen */
	bool verified;		/* bw_verify passed: closed, awaiting bw_publish */
};

#define BW_BUFSIZE (256 * 1024)

void bw_init(struct blob_writer *w);	/* makes bw_abort() a no-op */
int bw_open(struct blob_writer *w, int tmp_dirfd, int blobs_dirfd,
	    const uint8_t digest[CASFS_SHA256_LEN], uint64_t size);
/* 0; -EFBIG if this would exceed the expected size; -errno on I/O error. */
int bw_write(struct blob_writer *w, const void *p, size_t n);
/* 0: published. -EIO: failed verification (*why says how). Else -errno. */
int bw_commit(struct blob_writer *w, const char **why);
/*
 * 0: verified and closed, still in tmp/ (bw_publish or bw_abort next).
 * -EIO: failed verification (*why says how). Else -errno. On error the
 * file is gone.
 */
int bw_verify(struct blob_writer *w, const char **why);
/* One syncfs(2) of the filesystem of dirfd. 0 or -errno. */
int bw_sync_group(int dirfd);
/* Rename a verified (and synced) file into blobs/. 0 or -errno (file gone). */
int bw_publish(struct blob_writer *w);
/* Remove the temporary file and free everything. Idempotent. */
void bw_abort(struct blob_writer *w);
bool bw_is_open(const struct blob_writer *w);

/* Test hook: a fault to inject before each step (0: go on; -errno: fail it). */
enum bw_op { BW_OP_OPEN, BW_OP_WRITE, BW_OP_SYNC, BW_OP_RENAME, BW_OP_SYNCFS };
/* w is NULL for BW_OP_SYNCFS. */
extern int (*bw_fault_hook)(enum bw_op op, const struct blob_writer *w);

#endif
