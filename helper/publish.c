// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: write to CACHE/tmp, verify, fsync, chmod 0400, rename. */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long tmp_counter;

int (*bw_fault_hook)(enum bw_op op, const struct blob_writer *w);

static int fault(enum bw_op op, const struct blob_writer *w)
{
	return bw_fault_hook ? bw_fault_hook(op, w) : 0;
}

void bw_init(struct blob_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

bool bw_is_open(const struct blob_writer *w)
{
	return w->fd >= 0;
}

int bw_open(struct blob_writer *w, int tmp_dirfd, int blobs_dirfd,
	    const uint8_t digest[CASFS_SHA256_LEN], uint64_t size)
{
	int err;

	bw_init(w);
	w->tmp_dirfd = tmp_dirfd;
	w->blobs_dirfd = blobs_dirfd;
	memcpy(w->digest, digest, CASFS_SHA256_LEN);
	hex_encode(digest, w->hex);
	w->expected = size;

	err = fault(BW_OP_OPEN, w);
	if (err)
		return err;
	for (int tries = 0; tries < 100; tries++) {
		snprintf(w->tmpname, sizeof(w->tmpname), "%s.%ld.%lu", w->hex,
			 (long)getpid(), ++tmp_counter);
		w->fd = openat(tmp_dirfd, w->tmpname,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			       0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		err = -errno;
		w->tmpname[0] = 0;
		return err;
	}
	w->buf = malloc(BW_BUFSIZE);
	err = w->buf ? sha256_init(&w->sha) : -ENOMEM;
	if (err) {
		bw_abort(w);
		return err;
	}
	return 0;
}

static int bw_flush(struct blob_writer *w)
{
	int err;

	if (!w->buflen)
		return 0;
	err = fault(BW_OP_WRITE, w);
	if (!err)
		err = write_all(w->fd, w->buf, w->buflen);
	w->buflen = 0;
	return err;
}

int bw_write(struct blob_writer *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	if (w->err)
		return w->err;
	if (w->fd < 0)
		return w->err = -EBADF;
	if (n > w->expected - w->written)
		return w->err = -EFBIG;
	sha256_update(&w->sha, p, n);
	w->written += n;
	while (n) {
		size_t k = BW_BUFSIZE - w->buflen;

		if (k > n)
			k = n;
		memcpy(w->buf + w->buflen, s, k);
		w->buflen += k;
		s += k;
		n -= k;
		if (w->buflen == BW_BUFSIZE) {
			int err = bw_flush(w);

			if (err)
				return w->err = err;
		}
	}
	return 0;
}

int bw_commit(struct blob_writer *w, const char **why)
{
	uint8_t got[CASFS_SHA256_LEN];
	int err;

	*why = NULL;
	if (w->fd < 0)
		return -EBADF;
	err = w->err;
	if (err == -EFBIG) {
		*why = "body longer than expected";
		err = -EIO;
		goto fail;
	}
	if (!err)
		err = bw_flush(w);
	if (!err)
		err = sha256_final(&w->sha, got);
	if (err)
		goto fail;
	*why = verify_check(w->expected, w->digest, w->written, got);
	if (*why) {
		err = -EIO;
		goto fail;
	}
	err = fault(BW_OP_SYNC, w);
	if (err)
		goto fail;
	if (fchmod(w->fd, 0400) < 0 || fsync(w->fd) < 0) {
		err = -errno;
		goto fail;
	}
	if (close(w->fd) < 0) {
		w->fd = -1;
		err = -errno;
		goto fail;
	}
	w->fd = -1;
	err = fault(BW_OP_RENAME, w);
	if (err)
		goto fail;
	if (renameat(w->tmp_dirfd, w->tmpname, w->blobs_dirfd, w->hex) < 0) {
		err = -errno;
		goto fail;
	}
	w->tmpname[0] = 0;
	bw_abort(w);		/* frees the rest */
	return 0;
fail:
	bw_abort(w);
	return err;
}

void bw_abort(struct blob_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmpname[0])
		unlinkat(w->tmp_dirfd, w->tmpname, 0);
	w->tmpname[0] = 0;
	sha256_free(&w->sha);
	free(w->buf);
	w->buf = NULL;
	w->buflen = 0;
}
