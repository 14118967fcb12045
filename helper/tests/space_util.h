/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tests: a simulated filesystem for the cache's free-space probe. Its free
 * space is fake_fs.cap less fake_fs.other less every byte in the cache
 * directory's blobs/ and tmp/ as they are on disk now, so evicting or
 * writing a file changes it as on a real disk.
 */
#ifndef CASFS_T_SPACE_UTIL_H
#define CASFS_T_SPACE_UTIL_H

#include <stdint.h>

struct fake_fs {
	const char *cache;	/* the cache directory to measure */
	uint64_t cap;		/* filesystem size */
	uint64_t other;		/* used by others */
	unsigned probes;
};
extern struct fake_fs fake_fs;

/* Install the fake (cache_statfs_hook) for cache dir with cap bytes. */
void t_fake_fs(const char *cache, uint64_t cap, uint64_t other);
uint64_t t_dir_bytes(const char *path);

#endif
