// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd: records on disk (statefile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "outpath.h"
#include "statefile.h"

static const char magic[8] = "CASFSOD1";

struct enc {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void put(struct enc *e, const void *src, size_t n)
{
	if (e->err)
		return;
	if (e->cap - e->len < n) {
		size_t cap = e->cap ? e->cap : 4096;
		uint8_t *p;

		while (cap - e->len < n)
			cap *= 2;
		p = realloc(e->p, cap);
		if (!p) {
			e->err = -ENOMEM;
			return;
		}
		e->p = p;
		e->cap = cap;
	}
	memcpy(e->p + e->len, src, n);
	e->len += n;
}

static void put_u32(struct enc *e, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(e, b, 4);
}

static void put_u64(struct enc *e, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(e, b, 8);
}

static int enc_one(void *ud, const struct record *rec)
{
	struct enc *e = ud;

	put_u32(e, rec->path_len);
	put(e, rec->path, rec->path_len);
	put(e, rec->sha256, 32);
	put_u64(e, rec->size);
	put_u64(e, rec->version);
	return e->err;
}

int statefile_encode(const struct records *r, uint8_t **buf, size_t *len)
{
	struct enc e = { 0 };
	uint8_t sum[SHA256_DIGEST_LENGTH];

	put(&e, magic, sizeof(magic));
	put_u64(&e, r->n);
	records_each(r, enc_one, &e);
	if (!e.err) {
		SHA256(e.p, e.len, sum);
		put(&e, sum, sizeof(sum));
	}
	if (e.err) {
		free(e.p);
		return e.err;
	}
	*buf = e.p;
	*len = e.len;
	return 0;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

int statefile_decode(struct records *r, const uint8_t *buf, size_t len)
{
	uint8_t sum[SHA256_DIGEST_LENGTH];
	size_t off = 16, end;
	uint64_t count;
	int err;

	if (len < 16 + 32 || memcmp(buf, magic, 8))
		return -EINVAL;
	end = len - 32;
	SHA256(buf, end, sum);
	if (memcmp(sum, buf + end, 32))
		return -EINVAL;
	count = get_le(buf + 8, 8);
	/* Each record takes at least 4 + 1 + 32 + 16 bytes. */
	if (count > (end - 16) / 53)
		return -EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t plen;
		const char *path;

		if (end - off < 4)
			goto bad;
		plen = get_le(buf + off, 4);
		off += 4;
		if (plen > end - off || end - off - plen < 48)
			goto bad;
		path = (const char *)buf + off;
		if (outpath_check(path, plen))
			goto bad;
		err = records_put(r, path, plen, buf + off + plen,
				  get_le(buf + off + plen + 32, 8),
				  get_le(buf + off + plen + 40, 8));
		if (err) {
			records_free(r);
			return err;
		}
		off += plen + 48;
	}
	if (off != end)
		goto bad;
	return 0;
bad:
	records_free(r);
	return -EINVAL;
}

static int state_dir(int rootfd, bool create)
{
	int fd;

	if (create && mkdirat(rootfd, STATEFILE_DIR, 0700) && errno != EEXIST)
		return -errno;
	fd = openat(rootfd, STATEFILE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int statefile_save(int rootfd, const char *id, const struct records *r)
{
	char name[128], tmp[160];
	uint8_t *buf;
	size_t len, off = 0;
	int dfd, fd, err;

	if (snprintf(name, sizeof(name), "%s.state", id) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), ".%s.%d", name, (int)getpid());
	err = statefile_encode(r, &buf, &len);
	if (err)
		return err;
	dfd = state_dir(rootfd, true);
	if (dfd < 0) {
		free(buf);
		return dfd;
	}
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	if (!err && renameat(dfd, tmp, dfd, name))
		err = -errno;
	if (err)
		unlinkat(dfd, tmp, 0);
out:
	close(dfd);
	free(buf);
	return err;
}

int statefile_load(int rootfd, const char *id, struct records *r)
{
	char name[128];
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int dfd, fd, err = 0;

	if (snprintf(name, sizeof(name), "%s.state", id) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	dfd = state_dir(rootfd, false);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > STATEFILE_MAX_BYTES) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EINVAL;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	if (!err)
		err = statefile_decode(r, buf, off);
	free(buf);
	return err;
}

int statefile_remove(int rootfd, const char *id)
{
	char name[128];
	int dfd, err = 0;

	if (snprintf(name, sizeof(name), "%s.state", id) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	dfd = state_dir(rootfd, false);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	if (unlinkat(dfd, name, 0) && errno != ENOENT)
		err = -errno;
	close(dfd);
	return err;
}
