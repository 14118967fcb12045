// SPDX-License-Identifier: GPL-2.0
/* Tests: latency histogram and the stats file. */
#include "t.h"
#include "../stats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void t_buckets(void)
{
	CHECK_INT(stats_bucket_bound(0), 64);
	CHECK_INT(stats_bucket_bound(4), 128);
	CHECK_INT(stats_bucket_bound(40), 64 << 10);
	CHECK(stats_bucket_bound(STATS_NBUCKETS - 1) == UINT64_MAX);
	for (unsigned i = 1; i < STATS_NBUCKETS; i++)
		CHECK(stats_bucket_bound(i) > stats_bucket_bound(i - 1));
}

static void t_percentiles(void)
{
	CHECK_INT(stats_percentile(0.5), 0);
	/* 90 fast (1 ms), 9 medium (100 ms), 1 slow (10 s) */
	for (int i = 0; i < 90; i++)
		stats_latency(1000);
	for (int i = 0; i < 9; i++)
		stats_latency(100000);
	stats_latency(10000000);
	uint64_t p50 = stats_percentile(0.5), p90 = stats_percentile(0.9);
	uint64_t p99 = stats_percentile(0.99), p100 = stats_percentile(1.0);

	/* each is the upper bound of its bucket: within +19% */
	CHECK(p50 >= 1000 && p50 < 1190);
	CHECK(p90 >= 1000 && p90 < 1190);
	CHECK(p99 >= 100000 && p99 < 119000);
	CHECK(p100 >= 10000000 && p100 < 11900000);
	CHECK_INT(stats.lat_count, 100);
	/* beyond the last bound */
	stats_latency(UINT64_MAX / 2);
	CHECK(stats.lat_buckets[STATS_NBUCKETS - 1] == 1);
}

static void t_file(void)
{
	const char *dir = t_tmpdir();
	char path[400], tmp[420];
	size_t len;
	char *s;

	stats.requests = 42;
	stats.fetch_bytes = 1234567;
	stats_latency(2000);
	snprintf(path, sizeof(path), "%s/casfs-helper.stats", dir);
	CHECK_INT(stats_write(path), 0);
	s = t_read_file(path, &len);
	REQUIRE(s);
	CHECK(strstr(s, "\nrequests 42\n") != NULL);
	CHECK(strstr(s, "\nfetch_bytes 1234567\n") != NULL);
	CHECK(strstr(s, "\nlatency_p50_ms 2.") != NULL);
	CHECK(strstr(s, "\nlatency_p99_ms ") != NULL);
	CHECK(len > 0 && s[len - 1] == '\n');
	free(s);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(access(tmp, F_OK) != 0);	/* renamed into place */
	CHECK(stats_write("/nonexistent-dir/sub/x.stats") < 0);
	/* one missing directory level is made (the default /run/casfs/...) */
	snprintf(path, sizeof(path), "%s/newdir/helper.stats", dir);
	CHECK_INT(stats_write(path), 0);
	CHECK(access(path, R_OK) == 0);
}

const struct test stats_tests[] = {
	{ "bucket_bounds", t_buckets },
	{ "percentiles", t_percentiles },
	{ "atomic_file", t_file },
	{ NULL, NULL },
};
