// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-outputd tests: outpath_fs on tmpfs or ext4. A "CAS-backed" file is
 * an empty file whose digest and size are in the user.fakecas xattr; any
 * other regular file is a local one.
 */
#include "fake_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int fake_stage(int dirfd, const struct outpath_stage_entry *e, size_t n,
		      size_t *bad)
{
	uint8_t x[FAKE_XATTR_LEN];
	char name[256];
	size_t i, k;
	int fd, r = 0;

	*bad = SIZE_MAX;
	for (i = 0; i < n; i++) {
		if (e[i].name_len == 0 || e[i].name_len > 255 ||
		    memchr(e[i].name, '/', e[i].name_len) ||
		    memchr(e[i].name, 0, e[i].name_len) || (e[i].mode & ~01777u)) {
			r = -EINVAL;
			break;
		}
		memcpy(name, e[i].name, e[i].name_len);
		name[e[i].name_len] = 0;
		/* O_EXCL: like the ioctl, an existing name (or a duplicate) fails */
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			    O_CLOEXEC, e[i].mode);
		if (fd < 0) {
			r = -errno;
			break;
		}
		memcpy(x, e[i].sha256, OUTPATH_SHA256_LEN);
		for (k = 0; k < 8; k++)
			x[OUTPATH_SHA256_LEN + k] = (uint8_t)(e[i].size >> (8 * k));
		if (fsetxattr(fd, FAKE_XATTR, x, sizeof(x), 0) < 0) {
			r = -errno;
			close(fd);
			(void)unlinkat(dirfd, name, 0);
			break;
		}
		close(fd);
	}
	if (r == 0)
		return 0;
	/* all or nothing: undo the ones made */
	*bad = i;
	for (k = 0; k < i; k++) {
		memcpy(name, e[k].name, e[k].name_len);
		name[e[k].name_len] = 0;
		(void)unlinkat(dirfd, name, 0);
	}
	return r;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	/* FNV-1a over the 8 bytes: enough for a test's version */
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * version: from inode, mtime and size, which a write changes; not ctime,
 * which a rename changes too, while casfs's version follows the bytes.
 */
static int fake_state(int fd, struct outpath_file_state *st)
{
	uint8_t x[FAKE_XATTR_LEN];
	struct stat sb;
	uint64_t h = 0xcbf29ce484222325ULL;
	ssize_t n;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	n = fgetxattr(fd, FAKE_XATTR, x, sizeof(x));
	if (n == (ssize_t)sizeof(x)) {
		st->cas = true;
		memcpy(st->sha256, x, OUTPATH_SHA256_LEN);
		for (int k = 0; k < 8; k++)
			st->size |= (uint64_t)x[OUTPATH_SHA256_LEN + k] << (8 * k);
	} else if (n >= 0 || errno == ENODATA) {
		st->size = (uint64_t)sb.st_size;
	} else {
		return -errno;
	}
	h = mix(h, sb.st_dev);
	h = mix(h, sb.st_ino);
	h = mix(h, (uint64_t)sb.st_mtim.tv_sec);
	h = mix(h, (uint64_t)sb.st_mtim.tv_nsec);
	h = mix(h, (uint64_t)sb.st_size);
	st->version = h;
	st->writers = false;
	return 0;
}

static int fake_digest(int fd, uint8_t out[OUTPATH_SHA256_LEN])
{
	uint8_t x[FAKE_XATTR_LEN], buf[65536];
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	off_t off = 0;
	ssize_t n;
	int r = 0;

	n = fgetxattr(fd, FAKE_XATTR, x, sizeof(x));
	if (n == (ssize_t)sizeof(x)) {
		memcpy(out, x, OUTPATH_SHA256_LEN);
		return 0;
	}
	if (n < 0 && errno != ENODATA)
		return -errno;
	/* a local file: the fake may read it, nothing is fetched here */
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r = -EIO;
		goto out;
	}
	for (;;) {
		n = pread(fd, buf, sizeof(buf), off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
			r = -EIO;
			goto out;
		}
		off += n;
	}
	if (!EVP_DigestFinal_ex(ctx, out, &len) || len != OUTPATH_SHA256_LEN)
		r = -EIO;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

static bool fake_is_ours(int dirfd)
{
	return true;
}

const struct outpath_fs outpath_fs_fake = {
	.stage = fake_stage,
	.state = fake_state,
	.digest = fake_digest,
	.is_ours = fake_is_ours,
};
