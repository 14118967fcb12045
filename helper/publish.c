// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: write to CACHE/tmp (0400 from creation), verify, make
 * durable (fsync per blob, or one syncfs per group), rename.
 */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long tmp_counter;
static long my_pid;

int (*bw_fault_hook)(enum bw_op op, const struct blob_writer *w);

static int fault(enum bw_op op, const struct blob_writer *w)
{
	return bw_fault_hook ? bw_fault_hook(op, w) : 0;
}

/*
 * Buffers (256 KiB: malloc would mmap and munmap one per blob) and
 * digest contexts of finished writers, for the next ones. The helper is
 * single-threaded.
 */
#define POOL_MAX 16
static unsigned char *buf_pool[POOL_MAX];
static unsigned nbuf_pool;
static struct sha256 sha_pool[POOL_MAX];
static unsigned nsha_pool;

static unsigned char *buf_get(void)
{
	return nbuf_pool ? buf_pool[--nbuf_pool] : malloc(BW_BUFSIZE);
}

static void buf_put(unsigned char *b)
{
	if (!b)
		return;
	if (nbuf_pool < POOL_MAX)
		buf_pool[nbuf_pool++] = b;
	else
		free(b);
}

static int sha_get(struct sha256 *h)
{
	int err;

	if (!nsha_pool)
		return sha256_init(h);
	*h = sha_pool[--nsha_pool];
	err = sha256_reset(h);
	if (err)
		sha256_free(h);
	return err;
}

static void sha_put(struct sha256 *h)
{
	if (!h->ctx)
		return;
	if (nsha_pool < POOL_MAX) {
		sha_pool[nsha_pool++] = *h;
		h->ctx = NULL;
	} else {
		sha256_free(h);
	}
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
	if (!my_pid)
		my_pid = (long)getpid();

	err = fault(BW_OP_OPEN, w);
	if (err)
		return err;
	for (int tries = 0; tries < 100; tries++) {
		snprintf(w->tmpname, sizeof(w->tmpname), "%s.%ld.%lu", w->hex,
			 my_pid, ++tmp_counter);
		/* 0400 now: no fchmod later (kmod/cas.c wants no write bits) */
		w->fd = openat(tmp_dirfd, w->tmpname,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			       0400);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		err = -errno;
		w->tmpname[0] = 0;
		return err;
	}
	w->buf = buf_get();
	err = w->buf ? sha_get(&w->sha) : -ENOMEM;
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

/* Flush, hash, check. 0, or -EIO with *why, or -errno. The file stays open. */
static int finish_and_check(struct blob_writer *w, const char **why)
{
	uint8_t got[CASFS_SHA256_LEN];
	int err;

	*why = NULL;
	err = w->err;
	if (err == -EFBIG) {
		*why = "body longer than expected";
		return -EIO;
	}
	if (!err)
		err = bw_flush(w);
	if (!err)
		err = sha256_final(&w->sha, got);
	if (err)
		return err;
	*why = verify_check(w->expected, w->digest, w->written, got);
	return *why ? -EIO : 0;
}

/* Close the file and give the buffer and digest context back. */
static int release(struct blob_writer *w)
{
	int err = 0;

	if (w->fd >= 0 && close(w->fd) < 0)
		err = -errno;
	w->fd = -1;
	buf_put(w->buf);
	w->buf = NULL;
	w->buflen = 0;
	sha_put(&w->sha);
	return err;
}

static int do_rename(struct blob_writer *w)
{
	int err = fault(BW_OP_RENAME, w);

	if (err)
		return err;
	if (renameat(w->tmp_dirfd, w->tmpname, w->blobs_dirfd, w->hex) < 0)
		return -errno;
	w->tmpname[0] = 0;
	return 0;
}

int bw_commit(struct blob_writer *w, const char **why)
{
	int err;

	*why = NULL;
	if (w->fd < 0)
		return -EBADF;
	err = finish_and_check(w, why);
	if (!err)
		err = fault(BW_OP_SYNC, w);
	if (!err && fsync(w->fd) < 0)
		err = -errno;
	if (!err)
		err = release(w);
	if (!err)
		err = do_rename(w);
	bw_abort(w);		/* frees the rest; unlinks the file on failure */
	return err;
}

int bw_verify(struct blob_writer *w, const char **why)
{
	int err;

	*why = NULL;
	if (w->fd < 0)
		return -EBADF;
	err = finish_and_check(w, why);
	if (!err)
		err = release(w);	/* close reports delayed write errors */
	if (err) {
		bw_abort(w);
		return err;
	}
	w->verified = true;
	return 0;
}

int bw_sync_group(int dirfd)
{
	int err = fault(BW_OP_SYNCFS, NULL);

	if (err)
		return err;
	return syncfs(dirfd) < 0 ? -errno : 0;
}

int bw_publish(struct blob_writer *w)
{
	int err = w->verified ? do_rename(w) : -EINVAL;

	bw_abort(w);
	return err;
}

void bw_abort(struct blob_writer *w)
{
	release(w);
	if (w->tmpname[0])
		unlinkat(w->tmp_dirfd, w->tmpname, 0);
	w->tmpname[0] = 0;
	w->verified = false;
}
