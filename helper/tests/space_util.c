// SPDX-License-Identifier: GPL-2.0
/* Tests: a simulated filesystem for the cache's free-space probe. */
#include "space_util.h"
#include "../cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct fake_fs fake_fs;

uint64_t t_dir_bytes(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	uint64_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			n += (uint64_t)st.st_size;
	}
	closedir(d);
	return n;
}

static int fake_statfs(int dirfd, uint64_t *avail, uint64_t *size)
{
	char p[600];
	uint64_t used = fake_fs.other;

	(void)dirfd;
	fake_fs.probes++;
	snprintf(p, sizeof(p), "%s/blobs", fake_fs.cache);
	used += t_dir_bytes(p);
	snprintf(p, sizeof(p), "%s/tmp", fake_fs.cache);
	used += t_dir_bytes(p);
	*size = fake_fs.cap;
	*avail = used < fake_fs.cap ? fake_fs.cap - used : 0;
	return 0;
}

void t_fake_fs(const char *cache, uint64_t cap, uint64_t other)
{
	fake_fs = (struct fake_fs){ .cache = cache, .cap = cap, .other = other };
	cache_statfs_hook = fake_statfs;
}
