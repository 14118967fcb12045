/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: counters and a fetch-latency histogram, written atomically
 * as "key value" lines to the stats file (default /run/casfs/helper.stats)
 * for `casfsctl stats`.
 */
#ifndef CASFS_STATS_H
#define CASFS_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Bucket i holds latencies <= 64us * 2^(i/4); the last one everything above. */
#define STATS_NBUCKETS 100

struct helper_stats {
	uint64_t requests;	/* FETCH requests received (incl. joins, hits) */
	uint64_t cache_hits;	/* blob already in the cache */
	uint64_t dedup_joins;	/* joined a fetch already in flight */
	uint64_t fetches;	/* blobs fetched from the CAS (jobs started) */
	uint64_t fetch_ok;	/* ... that ended published */
	uint64_t fetch_bytes;	/* bytes published */
	uint64_t attempts;	/* backend transfers started (incl. retries) */
	uint64_t retries;
	uint64_t errors;	/* jobs that ended in an error */
	uint64_t err_notfound;
	uint64_t err_verify;	/* size or sha256 mismatch */
	uint64_t err_access;
	uint64_t err_timeout;	/* gave up: transient errors until the deadline */
	uint64_t err_other;
	uint64_t evictions;
	uint64_t evicted_bytes;
	uint64_t evictions_deferred;	/* stopped at a blob in its grace time */
	uint64_t cancelled;	/* jobs dropped: the kernel withdrew their request */
	uint64_t progress_sent;	/* PROGRESS messages to the kernel */
	uint64_t cache_used;	/* USED from the kernel: cached blobs read */
	uint64_t evictions_space;	/* evictions for the free-space floor (in evictions) */
	uint64_t evictions_grace_overridden;	/* ... of blobs in their grace time */
	uint64_t refused_space;	/* refused before fetching: cannot fit (ENOSPC) or > bound (EFBIG) */
	uint64_t space_retries;	/* ENOSPC/EDQUOT writing: evicted and retried */
	uint64_t err_nospace;	/* jobs failed with ENOSPC/EDQUOT after the retry, or refused */
	uint64_t sync_groups;	/* syncfs calls of the group commit */
	uint64_t sync_group_blobs;	/* blobs they covered */
	uint64_t sync_failures;	/* ... that failed (the group was not published) */
	uint64_t done_sent;
	uint64_t done_failed;
	uint64_t malformed;	/* netlink messages ignored */
	/* gauges, refreshed by the owner before writing */
	uint64_t inflight;
	uint64_t queued;
	uint64_t cache_bytes;
	uint64_t cache_blobs;
	uint64_t cache_max_bytes;
	uint64_t cache_fs_free_bytes;	/* free on the cache's filesystem (last probe) */
	uint64_t cache_fs_floor_bytes;	/* the free-space floor */
	/* latency of fetched (not cached) blobs, request to DONE */
	uint64_t lat_count;
	uint64_t lat_sum_us;
	uint64_t lat_buckets[STATS_NBUCKETS];
	uint64_t started_ms;
};

extern struct helper_stats stats;

void stats_reset(void);
void stats_latency(uint64_t us);
/* p in [0,1]; upper bound of the bucket that holds the p-quantile, in us. */
uint64_t stats_percentile(double p);
uint64_t stats_bucket_bound(unsigned i);
/* Format into buf; returns length (truncated to len-1). */
size_t stats_format(char *buf, size_t len);
/* Write to path.tmp and rename over path. 0 or -errno. */
int stats_write(const char *path);

#endif
