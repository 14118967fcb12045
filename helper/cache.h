/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: the cache directory (CACHE/blobs, CACHE/tmp) and its LRU
 * bound. An in-memory index of blobs/ (built by scanning it at start,
 * ordered by mtime) is kept in least-recently-used order; serving a blob
 * touches its mtime and moves it to the young end. After a publish, if
 * the total exceeds max_bytes, the oldest blobs are unlinked until the
 * total is at most 90% of max_bytes. The blob just published is pinned.
 *
 * Independently of max_bytes, a free-space floor on the cache's
 * filesystem (cache_set_floor; fstatvfs f_bavail * f_frsize): when less
 * than the floor is free after a publish (or before a fetch that would
 * take it below), blobs are evicted in LRU order, ignoring the grace rule
 * of cache_evict_to(), until floor + floor/10 (the high watermark) plus
 * the blob to come is free. A blob that cannot fit even if every other
 * blob went is refused before it is fetched (cache_admit).
 */
#ifndef CASFS_CACHE_H
#define CASFS_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common.h"

struct cache;

/*
 * Open and check dir: it must be a directory owned by owner (root for the
 * daemon) and not group/other-writable, likewise blobs/ and tmp/ if they
 * exist; creates blobs/ (0755) and tmp/ (0700), empties tmp/, scans blobs/,
 * and evicts if already over max_bytes (0 = unbounded).
 */
int cache_open(struct cache **out, const char *dir, uint64_t max_bytes, uid_t owner);
void cache_close(struct cache *c);

int cache_tmp_fd(const struct cache *c);
int cache_blobs_fd(const struct cache *c);
const char *cache_dir(const struct cache *c);

/*
 * 1 if blobs/<hex> is a regular file of exactly size bytes (its times are
 * touched and it becomes most recently used); 0 if not.
 */
int cache_lookup(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size);

/* Record a blob just renamed into blobs/, then evict (never this one). */
void cache_published(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size);
/*
 * The kernel opened this cached blob for a reader (USED): it becomes the
 * most recently used, on disk too (mtime, for the order after a
 * restart). A blob not in the index is ignored. Returns 1 if it was.
 */
int cache_used(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size);

/* Evict least recently used blobs until the total is <= target (pinned may be NULL). */
void cache_evict_to(struct cache *c, uint64_t target, const uint8_t *pinned);

/*
 * The free-space floor: the smaller of min_free_bytes and min_free_pct
 * percent of the filesystem's size (CACHE_NO_BYTES / CACHE_NO_PCT leave a
 * term out; both out, or either 0: no floor). Default: no floor.
 */
#define CACHE_NO_BYTES UINT64_MAX
#define CACHE_NO_PCT 1000u
void cache_set_floor(struct cache *c, uint64_t min_free_bytes, unsigned min_free_pct);

struct cache_space {
	bool known;		/* false: the probe failed (no floor enforced) */
	uint64_t avail;		/* bytes free for us (f_bavail * f_frsize) */
	uint64_t fs_size;	/* f_blocks * f_frsize */
	uint64_t floor, high;	/* keep >= floor free; evict up to high */
};
/* Probe the cache's filesystem now. */
void cache_space(struct cache *c, struct cache_space *s);

/*
 * May a blob of size bytes be fetched? 0 (room made by evicting if it
 * was needed), -EFBIG (larger than max_bytes) or -ENOSPC (it cannot fit
 * above the floor even with every blob evicted); refusals are logged
 * with hex, size, free space and floor.
 */
int cache_admit(struct cache *c, const char *hex, uint64_t size);

/*
 * Evict (LRU, grace ignored, pinned kept) until size bytes plus the high
 * watermark are free, or nothing is left to evict. Returns bytes evicted.
 */
uint64_t cache_make_room(struct cache *c, uint64_t size, const uint8_t *pinned);

/*
 * Test hook: replaces fstatvfs(2) on the cache directory. Returns 0 and
 * sets *avail and *size, or -errno.
 */
extern int (*cache_statfs_hook)(int dirfd, uint64_t *avail, uint64_t *size);

uint64_t cache_total_bytes(const struct cache *c);
uint64_t cache_count(const struct cache *c);
uint64_t cache_max_bytes(const struct cache *c);

/* Test hook: digest of the n-th least recently used entry, or NULL. */
const uint8_t *cache_lru_nth(const struct cache *c, size_t n);

#endif
