// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: counters, latency histogram, atomic stats file. */
#include "stats.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct helper_stats stats;

void stats_reset(void)
{
	memset(&stats, 0, sizeof(stats));
	stats.started_ms = mono_ms();
}

uint64_t stats_bucket_bound(unsigned i)
{
	/* 64us * 2^(i/4), with 2^(k/4) for k = 0..3 as fixed ratios. */
	static const uint32_t frac[4] = { 10000, 11892, 14142, 16818 };
	unsigned shift = i / 4;

	if (i >= STATS_NBUCKETS - 1)
		return UINT64_MAX;
	return ((uint64_t)64 << shift) * frac[i % 4] / 10000;
}

void stats_latency(uint64_t us)
{
	unsigned i = 0;

	while (i < STATS_NBUCKETS - 1 && us > stats_bucket_bound(i))
		i++;
	stats.lat_buckets[i]++;
	stats.lat_count++;
	stats.lat_sum_us += us;
}

uint64_t stats_percentile(double p)
{
	uint64_t want, seen = 0;

	if (!stats.lat_count)
		return 0;
	want = (uint64_t)(p * (double)stats.lat_count + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < STATS_NBUCKETS; i++) {
		seen += stats.lat_buckets[i];
		if (seen >= want)
			return stats_bucket_bound(i);
	}
	return UINT64_MAX;
}

static void ms3(char *buf, size_t len, uint64_t us)
{
	if (us == UINT64_MAX)
		snprintf(buf, len, "inf");
	else
		snprintf(buf, len, "%llu.%03llu", (unsigned long long)(us / 1000),
			 (unsigned long long)(us % 1000));
}

size_t stats_format(char *buf, size_t len)
{
	char p50[32], p90[32], p99[32], avg[32];
	int n;

	ms3(p50, sizeof(p50), stats_percentile(0.50));
	ms3(p90, sizeof(p90), stats_percentile(0.90));
	ms3(p99, sizeof(p99), stats_percentile(0.99));
	ms3(avg, sizeof(avg), stats.lat_count ? stats.lat_sum_us / stats.lat_count : 0);
#define U(x) ((unsigned long long)(x))
	n = snprintf(buf, len,
		     "pid %ld\n"
		     "uptime_s %llu\n"
		     "requests %llu\n"
		     "cache_hits %llu\n"
		     "dedup_joins %llu\n"
		     "fetches %llu\n"
		     "fetch_ok %llu\n"
		     "fetch_bytes %llu\n"
		     "attempts %llu\n"
		     "retries %llu\n"
		     "errors %llu\n"
		     "errors_notfound %llu\n"
		     "errors_verify %llu\n"
		     "errors_access %llu\n"
		     "errors_timeout %llu\n"
		     "errors_other %llu\n"
		     "errors_nospace %llu\n"
		     "sync_groups %llu\n"
		     "sync_group_blobs %llu\n"
		     "sync_failures %llu\n"
		     "done_sent %llu\n"
		     "done_failed %llu\n"
		     "malformed_messages %llu\n"
		     "inflight %llu\n"
		     "queued %llu\n"
		     "cache_bytes %llu\n"
		     "cache_blobs %llu\n"
		     "cache_max_bytes %llu\n"
		     "evictions %llu\n"
		     "evicted_bytes %llu\n"
		     "evictions_deferred %llu\n"
		     "cancelled %llu\n"
		     "progress_sent %llu\n"
		     "cache_used %llu\n"
		     "evictions_space %llu\n"
		     "evictions_grace_overridden %llu\n"
		     "refused_space %llu\n"
		     "space_retries %llu\n"
		     "cache_fs_free_bytes %llu\n"
		     "cache_fs_floor_bytes %llu\n"
		     "latency_count %llu\n"
		     "latency_avg_ms %s\n"
		     "latency_p50_ms %s\n"
		     "latency_p90_ms %s\n"
		     "latency_p99_ms %s\n",
		     (long)getpid(), U((mono_ms() - stats.started_ms) / 1000),
		     U(stats.requests), U(stats.cache_hits), U(stats.dedup_joins),
		     U(stats.fetches), U(stats.fetch_ok), U(stats.fetch_bytes),
		     U(stats.attempts), U(stats.retries), U(stats.errors),
		     U(stats.err_notfound), U(stats.err_verify), U(stats.err_access),
		     U(stats.err_timeout), U(stats.err_other), U(stats.err_nospace),
		     U(stats.sync_groups), U(stats.sync_group_blobs),
		     U(stats.sync_failures), U(stats.done_sent),
		     U(stats.done_failed), U(stats.malformed), U(stats.inflight),
		     U(stats.queued), U(stats.cache_bytes), U(stats.cache_blobs),
		     U(stats.cache_max_bytes), U(stats.evictions),
		     U(stats.evicted_bytes), U(stats.evictions_deferred),
		     U(stats.cancelled), U(stats.progress_sent), U(stats.cache_used),
		     U(stats.evictions_space), U(stats.evictions_grace_overridden),
		     U(stats.refused_space), U(stats.space_retries),
		     U(stats.cache_fs_free_bytes), U(stats.cache_fs_floor_bytes),
		     U(stats.lat_count), avg, p50, p90, p99);
#undef U
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

/*
 * The default file lives in a directory of its own (/run/casfs, which the
 * systemd unit's RuntimeDirectory= makes, so the unit need not open all of
 * /run for writing); run by hand, the helper makes that one level itself.
 */
static int make_parent(const char *path)
{
	char dir[4096];
	char *slash;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -ENOENT;
	*slash = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int stats_write(const char *path)
{
	char buf[4096], tmp[4200];
	size_t len = stats_format(buf, sizeof(buf));
	int fd, err;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno == ENOENT && make_parent(path) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	err = write_all(fd, buf, len);
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
