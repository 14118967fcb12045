/* SPDX-License-Identifier: GPL-2.0 */
/* casfs-helper: sha256 and the size/digest check every blob must pass. */
#ifndef CASFS_VERIFY_H
#define CASFS_VERIFY_H

#include <stdint.h>
#include <stddef.h>
#include "common.h"

struct sha256 {
	void *ctx;		/* EVP_MD_CTX */
};

int sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
int sha256_final(struct sha256 *h, uint8_t out[CASFS_SHA256_LEN]);
void sha256_free(struct sha256 *h);
/* Start over with the same context (cheaper than free + init). */
int sha256_reset(struct sha256 *h);
int sha256_buf(const void *p, size_t n, uint8_t out[CASFS_SHA256_LEN]);

/*
 * NULL if (got_size, got) is exactly (size, digest); otherwise a short
 * reason for the log: "short body", "body longer than expected",
 * "sha256 mismatch".
 */
const char *verify_check(uint64_t size, const uint8_t digest[CASFS_SHA256_LEN],
			 uint64_t got_size, const uint8_t got[CASFS_SHA256_LEN]);

/* Hash all of fd from its current offset and check it; 0, -EIO (why set) or -errno. */
int verify_fd(int fd, uint64_t size, const uint8_t digest[CASFS_SHA256_LEN],
	      const char **why);

#endif
