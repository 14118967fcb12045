// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: sha256 (OpenSSL EVP) and blob verification. */
#include "verify.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

int sha256_init(struct sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	h->ctx = NULL;
	if (!c)
		return -ENOMEM;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return -EIO;
	}
	h->ctx = c;
	return 0;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	if (n)
		EVP_DigestUpdate(h->ctx, p, n);
}

int sha256_final(struct sha256 *h, uint8_t out[CASFS_SHA256_LEN])
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(h->ctx, out, &len) != 1 || len != CASFS_SHA256_LEN)
		return -EIO;
	return 0;
}

int sha256_reset(struct sha256 *h)
{
	return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

void sha256_free(struct sha256 *h)
{
	if (h->ctx)
		EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int sha256_buf(const void *p, size_t n, uint8_t out[CASFS_SHA256_LEN])
{
	struct sha256 h;
	int err = sha256_init(&h);

	if (err)
		return err;
	sha256_update(&h, p, n);
	err = sha256_final(&h, out);
	sha256_free(&h);
	return err;
}

const char *verify_check(uint64_t size, const uint8_t digest[CASFS_SHA256_LEN],
			 uint64_t got_size, const uint8_t got[CASFS_SHA256_LEN])
{
	if (got_size < size)
		return "short body";
	if (got_size > size)
		return "body longer than expected";
	if (memcmp(digest, got, CASFS_SHA256_LEN))
		return "sha256 mismatch";
	return NULL;
}

int verify_fd(int fd, uint64_t size, const uint8_t digest[CASFS_SHA256_LEN],
	      const char **why)
{
	static __thread unsigned char buf[65536];
	uint8_t got[CASFS_SHA256_LEN] = { 0 };
	uint64_t total = 0;
	struct sha256 h;
	int err = sha256_init(&h);

	if (err)
		return err;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > size) {	/* no need to read the rest */
			*why = verify_check(size, digest, total, got);
			err = -EIO;
			goto out;
		}
		sha256_update(&h, buf, (size_t)n);
	}
	err = sha256_final(&h, got);
	if (err)
		goto out;
	*why = verify_check(size, digest, total, got);
	err = *why ? -EIO : 0;
out:
	sha256_free(&h);
	return err;
}
