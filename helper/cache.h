/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: the cache directory (CACHE/blobs, CACHE/tmp) and its LRU
 * bound. An in-memory index of blobs/ (built by scanning it at start,
 * ordered by mtime) is kept in least-recently-used order; serving a blob
 * touches its mtime and moves it to the young end. After a publish, if
 * the total exceeds max_bytes, the oldest blobs are unlinked until the
 * total is at most 90% of max_bytes. The blob just published is pinned.
 */
#ifndef CASFS_CACHE_H
#define CASFS_CACHE_H

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

/* Evict least recently used blobs until the total is <= target (pinned may be NULL). */
void cache_evict_to(struct cache *c, uint64_t target, const uint8_t *pinned);

uint64_t cache_total_bytes(const struct cache *c);
uint64_t cache_count(const struct cache *c);
uint64_t cache_max_bytes(const struct cache *c);

/* Test hook: digest of the n-th least recently used entry, or NULL. */
const uint8_t *cache_lru_nth(const struct cache *c, size_t n);

#endif
