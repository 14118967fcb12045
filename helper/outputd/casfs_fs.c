// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd: the outpath_fs of a real casfs mount (ioctls, xattr). */
#include "outpath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include "linux/casfs.h"

/* The uapi's fixed layout, which the kernel checks by the ioctl's size. */
_Static_assert(sizeof(struct casfs_stage_entry) == 56, "casfs_stage_entry");
_Static_assert(sizeof(struct casfs_stage) == 32, "casfs_stage");
_Static_assert(sizeof(struct casfs_state) == 56, "casfs_state");

static int casfs_stage(int dirfd, const struct outpath_stage_entry *e, size_t n,
		       size_t *bad)
{
	struct casfs_stage_entry *ce;
	struct casfs_stage s = { 0 };
	size_t names = 0, i;
	char *buf;
	int r = 0;

	*bad = SIZE_MAX;
	if (n == 0)
		return 0;
	if (n > CASFS_STAGE_MAX_ENTRIES)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		if (e[i].name_len == 0 || e[i].name_len > 255) {
			*bad = i;
			return -EINVAL;
		}
		names += e[i].name_len;
	}
	if (names > CASFS_STAGE_MAX_NAMES)
		return -E2BIG;
	ce = calloc(n, sizeof(*ce));
	buf = malloc(names);
	if (!ce || !buf) {
		free(ce);
		free(buf);
		return -ENOMEM;
	}
	names = 0;
	for (i = 0; i < n; i++) {
		memcpy(ce[i].sha256, e[i].sha256, CASFS_SHA256_LEN);
		ce[i].size = e[i].size;
		/* the kernel refuses anything but permission and sticky bits */
		ce[i].mode = e[i].mode & 01777;
		ce[i].name_off = (__u32)names;
		ce[i].name_len = (__u32)e[i].name_len;
		memcpy(buf + names, e[i].name, e[i].name_len);
		names += e[i].name_len;
	}
	s.entries = (__u64)(uintptr_t)ce;
	s.names = (__u64)(uintptr_t)buf;
	s.count = (__u32)n;
	s.names_len = (__u32)names;
	s.bad_index = ~0u;
	if (ioctl(dirfd, CASFS_IOC_STAGE, &s) < 0) {
		r = -errno;
		if (s.bad_index != ~0u && s.bad_index < n)
			*bad = s.bad_index;
	}
	free(ce);
	free(buf);
	return r;
}

/*
 * No fallback to CASFS_IOC_STATE_V1: without a version the daemon could
 * not tell whether a file's bytes changed, so an old kernel is an error.
 */
static int casfs_state(int fd, struct outpath_file_state *st)
{
	struct casfs_state cs = { 0 };

	if (ioctl(fd, CASFS_IOC_STATE, &cs) < 0)
		return -errno;
	memset(st, 0, sizeof(*st));
	st->cas = cs.flags & CASFS_STATE_CAS;
	st->writers = cs.flags & CASFS_STATE_WRITERS;
	if (st->cas)
		memcpy(st->sha256, cs.sha256, OUTPATH_SHA256_LEN);
	st->size = cs.size;
	st->version = cs.version;
	return 0;
}

static int casfs_digest(int fd, uint8_t out[OUTPATH_SHA256_LEN])
{
	ssize_t n = fgetxattr(fd, CASFS_XATTR_SHA256, out, OUTPATH_SHA256_LEN);

	if (n < 0)
		return -errno;
	return n == OUTPATH_SHA256_LEN ? 0 : -EIO;
}

static bool casfs_is_ours(int dirfd)
{
	struct statfs sf;

	return fstatfs(dirfd, &sf) == 0 && sf.f_type == CASFS_SUPER_MAGIC;
}

const struct outpath_fs outpath_fs_casfs = {
	.stage = casfs_stage,
	.state = casfs_state,
	.digest = casfs_digest,
	.is_ours = casfs_is_ours,
};
