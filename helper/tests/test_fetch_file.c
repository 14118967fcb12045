// SPDX-License-Identifier: GPL-2.0
/* Tests: the fetch engine end to end with the file:// backend. */
#include "fetch_util.h"
#include "space_util.h"
#include "../publish.h"
#include "../common.h"
#include "../stats.h"
#include "../verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct env {
	const char *cas, *cache;
	char url[400];
	struct cache *c;
	struct fetch_engine *e;
	struct results r;
};

static unsigned setup_sync_batch;	/* fetch_config.sync_batch for setup() */

static int setup(struct env *v, unsigned jobs, uint64_t max_bytes)
{
	struct fetch_config fc = { .sync_batch = setup_sync_batch };

	memset(v, 0, sizeof(*v));
	v->cas = t_tmpdir();
	v->cache = t_tmpdir();
	if (!v->cas || !v->cache)
		return -1;
	snprintf(v->url, sizeof(v->url), "file://%s", v->cas);
	if (cache_open(&v->c, v->cache, max_bytes, 0))
		return -1;
	fc.url = v->url;
	fc.jobs = jobs;
	fc.timeout_s = 5;
	return fetch_engine_new(&v->e, &fc, v->c);
}

static void teardown(struct env *v)
{
	fetch_engine_free(v->e);
	cache_close(v->c);
}

static int tmp_count(struct env *v)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/tmp", v->cache);
	return t_count_dir(p);
}

static void t_both_layouts(void)
{
	struct env v;
	uint8_t a[32], b[32];

	REQUIRE(setup(&v, 4, 0) == 0);
	t_make_blob(v.cas, "cas", 1, 300000, a);	/* DIR/cas/<hex> */
	t_make_blob(v.cas, "", 2, 5000, b);		/* DIR/<hex> */
	CHECK_INT(fetch_submit(v.e, a, 300000, t_cb, &v.r, 0), 0);
	CHECK_INT(fetch_submit(v.e, b, 5000, t_cb, &v.r, 1), 0);
	CHECK_INT(v.r.called[0], 0);	/* never from inside submit */
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.called[0], 1);
	CHECK_INT(v.r.status[0], 0);
	CHECK_INT(v.r.called[1], 1);
	CHECK_INT(v.r.status[1], 0);
	CHECK(t_cached_ok(v.cache, a, 300000, 1));
	CHECK(t_cached_ok(v.cache, b, 5000, 2));
	CHECK_INT(tmp_count(&v), 0);
	CHECK_INT(stats.fetch_ok, 2);
	CHECK_INT(stats.fetch_bytes, 305000);
	CHECK_INT(stats.lat_count, 2);
	teardown(&v);
}

static void t_big_blob_sliced(void)
{
	struct env v;
	uint8_t a[32];
	size_t n = 5 * 1024 * 1024 + 17;

	REQUIRE(setup(&v, 2, 0) == 0);
	t_make_blob(v.cas, "cas", 3, n, a);
	CHECK_INT(fetch_submit(v.e, a, n, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 10000), 0);
	CHECK_INT(v.r.status[0], 0);
	CHECK(t_cached_ok(v.cache, a, n, 3));
	teardown(&v);
}

static void t_missing(void)
{
	struct env v;
	uint8_t a[32] = { 0xaa };

	REQUIRE(setup(&v, 4, 0) == 0);
	CHECK_INT(fetch_submit(v.e, a, 10, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.called[0], 1);
	CHECK_INT(v.r.status[0], -ENOENT);
	CHECK_INT(stats.err_notfound, 1);
	CHECK_INT(stats.retries, 0);
	CHECK_INT(tmp_count(&v), 0);
	teardown(&v);
}

static void corrupt_case(size_t real, size_t claimed, bool flip, const char *logmsg)
{
	struct env v;
	char path[512], hex[65];
	char *buf = malloc(real + 1);
	uint8_t d[32];

	REQUIRE(setup(&v, 4, 0) == 0);
	/* the blob's true content, then a different file under its name */
	t_fill(buf, claimed, 9);
	sha256_buf(buf, claimed, d);
	hex_encode(d, hex);
	t_fill(buf, real, 9);
	if (flip)
		buf[real / 2] ^= 1;
	mkdir(strcat(strcpy(path, v.cas), "/cas"), 0755);
	snprintf(path, sizeof(path), "%s/cas/%s", v.cas, hex);
	t_write_file(path, buf, real, 0644);
	free(buf);

	CHECK_INT(fetch_submit(v.e, d, claimed, t_cb, &v.r, 3), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.called[3], 1);
	CHECK_INT(v.r.status[3], -EIO);
	snprintf(path, sizeof(path), "%s/blobs/%s", v.cache, hex);
	CHECK(access(path, F_OK) != 0);
	CHECK_INT(tmp_count(&v), 0);
	{
		char want[200];

		snprintf(want, sizeof(want), "%s: %s", hex, logmsg);
		CHECK(t_log_contains(want));
	}
	teardown(&v);
}

static void t_corrupt(void)
{
	corrupt_case(10000, 10000, true, "sha256 mismatch");
}

static void t_short(void)
{
	corrupt_case(9999, 10000, false, "short body");
}

static void t_long(void)
{
	corrupt_case(10001, 10000, false, "body longer than expected");
}

static void t_fifo_not_followed(void)
{
	struct env v;
	char path[512], hex[65];
	uint8_t d[32] = { 0x42 };

	REQUIRE(setup(&v, 4, 0) == 0);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/%s", v.cas, hex);
	REQUIRE(mkfifo(path, 0644) == 0);
	CHECK_INT(fetch_submit(v.e, d, 10, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 3000), 0);
	CHECK_INT(v.r.status[0], -EIO);
	teardown(&v);
}

static void t_dedup(void)
{
	struct env v;
	uint8_t a[32];

	REQUIRE(setup(&v, 4, 0) == 0);
	t_make_blob(v.cas, "cas", 4, 100000, a);
	for (int i = 0; i < 5; i++)
		CHECK_INT(fetch_submit(v.e, a, 100000, t_cb, &v.r, (uint64_t)i), 0);
	/* the same request twice (a resend) gets one answer */
	CHECK_INT(fetch_submit(v.e, a, 100000, t_cb, &v.r, 2), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	for (int i = 0; i < 5; i++) {
		CHECK_INT(v.r.called[i], 1);
		CHECK_INT(v.r.status[i], 0);
	}
	CHECK_INT(stats.fetches, 1);
	CHECK_INT(stats.attempts, 1);
	CHECK_INT(stats.dedup_joins, 4);
	CHECK_INT(stats.requests, 6);
	teardown(&v);
}

static void t_cache_hit(void)
{
	struct env v;
	uint8_t a[32];
	char path[512], hex[65];
	struct stat st;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };

	REQUIRE(setup(&v, 4, 0) == 0);
	t_make_blob(v.cas, "cas", 5, 1000, a);
	CHECK_INT(fetch_submit(v.e, a, 1000, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(stats.fetches, 1);
	/* remove it from the CAS: a second request must be served from the cache */
	hex_encode(a, hex);
	snprintf(path, sizeof(path), "%s/cas/%s", v.cas, hex);
	unlink(path);
	snprintf(path, sizeof(path), "%s/blobs/%s", v.cache, hex);
	utimensat(AT_FDCWD, path, old, 0);
	CHECK_INT(fetch_submit(v.e, a, 1000, t_cb, &v.r, 1), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.called[1], 1);
	CHECK_INT(v.r.status[1], 0);
	CHECK_INT(stats.cache_hits, 1);
	CHECK_INT(stats.fetches, 1);
	CHECK(stat(path, &st) == 0 && st.st_mtime > 1000);	/* touched for LRU */
	/* a cached blob of the wrong size is fetched again (and fails here) */
	CHECK_INT(fetch_submit(v.e, a, 999, t_cb, &v.r, 2), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.status[2], -ENOENT);
	teardown(&v);
}

static void t_jobs_limit(void)
{
	struct env v;
	uint8_t d[20][32];
	unsigned max_active = 0;

	REQUIRE(setup(&v, 3, 0) == 0);
	for (int i = 0; i < 20; i++) {
		t_make_blob(v.cas, "cas", 100 + (unsigned)i, 2 * 1024 * 1024, d[i]);
		CHECK_INT(fetch_submit(v.e, d[i], 2 * 1024 * 1024, t_cb, &v.r, (uint64_t)i), 0);
	}
	while (fetch_pending(v.e)) {
		REQUIRE(fetch_run(v.e, 50, NULL, 0) == 0);
		if (stats.inflight > max_active)
			max_active = (unsigned)stats.inflight;
	}
	CHECK(max_active <= 3);
	CHECK(max_active >= 2);
	for (int i = 0; i < 20; i++) {
		CHECK_INT(v.r.status[i], 0);
		CHECK(t_cached_ok(v.cache, d[i], 2 * 1024 * 1024, 100 + (unsigned)i));
	}
	teardown(&v);
}

static void t_eviction_through_engine(void)
{
	struct env v;
	uint8_t d[6][32];
	char blobs[400];

	REQUIRE(setup(&v, 2, 25000) == 0);
	for (int i = 0; i < 6; i++) {
		t_make_blob(v.cas, "cas", 200 + (unsigned)i, 10000, d[i]);
		CHECK_INT(fetch_submit(v.e, d[i], 10000, t_cb, &v.r, (uint64_t)i), 0);
		CHECK_INT(t_drain(v.e, 5000), 0);
		CHECK_INT(v.r.status[i], 0);
		/* just published, so in their grace time: up to 1.5 x the bound */
		CHECK(cache_total_bytes(v.c) <= 37500);
	}
	snprintf(blobs, sizeof(blobs), "%s/blobs", v.cache);
	CHECK(t_count_dir(blobs) <= 3);
	CHECK(t_cached_ok(v.cache, d[5], 10000, 205));	/* the newest stays */
	CHECK(stats.evictions >= 3);
	teardown(&v);
}

static int order[16];
static unsigned norder;

static void order_cb(void *arg, uint64_t tag, int status)
{
	struct results *r = arg;

	t_cb(arg, tag, status);
	if (norder < 16 && !r->status[tag])
		order[norder++] = (int)tag;
}

/*
 * Issue 11 item 9: queued blobs start in turns per uid, so one user's
 * flood does not starve another's: with one transfer at a time, uid 100's
 * four blobs and uid 200's two go 100, 200, 100, 200, 100, 100.
 */
static void t_turns_per_uid(void)
{
	static const int want[6] = { 0, 4, 1, 5, 2, 3 };
	struct env v;
	uint8_t d[6][32];

	REQUIRE(setup(&v, 1, 0) == 0);
	norder = 0;
	for (int i = 0; i < 6; i++) {
		t_make_blob(v.cas, "cas", 300 + (unsigned)i, 1000, d[i]);
		CHECK_INT(fetch_submit_as(v.e, d[i], 1000, i < 4 ? 100 : 200, order_cb,
					  &v.r, (uint64_t)i), 0);
	}
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(norder, 6);
	for (int i = 0; i < 6; i++)
		CHECK_INT(order[i], want[i]);
	teardown(&v);
}

/*
 * Issue 11 item 9: a withdrawn request is dropped (queued, or its
 * transfer abandoned), unless someone else still waits for the blob; its
 * callback is never called and nothing is left in tmp/.
 */
static void t_cancel(void)
{
	struct env v;
	uint8_t d[4][32];

	REQUIRE(setup(&v, 1, 0) == 0);
	t_make_blob(v.cas, "cas", 400, 8 * 1024 * 1024, d[0]);	/* sliced: several turns */
	for (int i = 1; i < 4; i++)
		t_make_blob(v.cas, "cas", 400 + (unsigned)i, 1000, d[i]);
	CHECK_INT(fetch_submit(v.e, d[0], 8 * 1024 * 1024, t_cb, &v.r, 0), 0);
	CHECK_INT(fetch_submit(v.e, d[1], 1000, t_cb, &v.r, 1), 0);
	CHECK_INT(fetch_submit(v.e, d[2], 1000, t_cb, &v.r, 2), 0);
	CHECK_INT(fetch_submit(v.e, d[2], 1000, t_cb, &v.r, 3), 0);	/* two waiters */
	CHECK_INT(fetch_submit(v.e, d[3], 1000, t_cb, &v.r, 4), 0);
	CHECK_INT(fetch_run(v.e, 0, NULL, 0), 0);	/* d[0] is transferring */
	CHECK_INT(fetch_cancel(v.e, d[0], 8 * 1024 * 1024, t_cb, &v.r, 0), 0);
	CHECK_INT(fetch_cancel(v.e, d[1], 1000, t_cb, &v.r, 1), 0);	/* queued */
	CHECK_INT(fetch_cancel(v.e, d[2], 1000, t_cb, &v.r, 2), 0);	/* 3 still waits */
	CHECK_INT(fetch_cancel(v.e, d[2], 1000, t_cb, &v.r, 9), -ENOENT);
	CHECK_INT(fetch_cancel(v.e, d[1], 1000, t_cb, &v.r, 1), -ENOENT);	/* gone */
	CHECK_INT(stats.cancelled, 2);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.called[0], 0);
	CHECK_INT(v.r.called[1], 0);
	CHECK_INT(v.r.called[2], 0);
	CHECK_INT(v.r.called[3], 1);
	CHECK_INT(v.r.status[3], 0);
	CHECK_INT(v.r.called[4], 1);
	CHECK(!t_cached_ok(v.cache, d[0], 8 * 1024 * 1024, 400));
	CHECK(!t_cached_ok(v.cache, d[1], 1000, 401));
	CHECK(t_cached_ok(v.cache, d[2], 1000, 402));
	CHECK_INT(tmp_count(&v), 0);
	CHECK_INT(fetch_pending(v.e), 0);
	teardown(&v);
}

static void t_refuses(void)
{
	struct env v;
	uint8_t a[32] = { 0 };

	REQUIRE(setup(&v, 1, 0) == 0);
	CHECK_INT(fetch_submit(v.e, a, CASFS_MAX_BLOB_SIZE + 1, t_cb, &v.r, 0), -EINVAL);
	CHECK_INT(fetch_pending(v.e), 0);
	teardown(&v);
}

static void t_abandon(void)
{
	/* freeing the engine mid-transfer removes temp files, calls nothing */
	struct env v;
	uint8_t a[32];

	REQUIRE(setup(&v, 1, 0) == 0);
	t_make_blob(v.cas, "cas", 6, 8 * 1024 * 1024, a);
	CHECK_INT(fetch_submit(v.e, a, 8 * 1024 * 1024, t_cb, &v.r, 0), 0);
	CHECK_INT(fetch_run(v.e, 0, NULL, 0), 0);
	CHECK_INT(tmp_count(&v), 1);
	fetch_engine_free(v.e);
	v.e = NULL;
	CHECK_INT(tmp_count(&v), 0);
	CHECK_INT(v.r.called[0], 0);
	cache_close(v.c);
}

static void t_bad_urls(void)
{
	const char *cache = t_tmpdir();
	struct fetch_config fc = { .jobs = 1, .timeout_s = 1 };
	struct fetch_engine *e = NULL;
	struct cache *c;

	REQUIRE(cache_open(&c, cache, 0, 0) == 0);
	fc.url = "file://relative";
	CHECK_INT(fetch_engine_new(&e, &fc, c), -EINVAL);
	fc.url = "ftp://x/";
	CHECK_INT(fetch_engine_new(&e, &fc, c), -EINVAL);
	fc.url = "grpc://";	/* no host */
	CHECK_INT(fetch_engine_new(&e, &fc, c), -EINVAL);
	fc.url = "http://x/ y";
	CHECK_INT(fetch_engine_new(&e, &fc, c), -EINVAL);
	fc.url = "file:///srv/cas";
	fc.instance = "main";
	CHECK_INT(fetch_engine_new(&e, &fc, c), 0);
	CHECK(t_log_contains("--instance main is only used by the gRPC backend"));
	fetch_engine_free(e);
	cache_close(c);
}

/* Put n blobs of size bytes straight into the cache (old mtimes: no grace). */
static void seed_cache(const char *cache, unsigned seed, int n, size_t size, uint8_t d[][32])
{
	char p[512], hex[65];
	char *buf = malloc(size);

	snprintf(p, sizeof(p), "%s/blobs", cache);
	mkdir(p, 0700);
	for (int i = 0; i < n; i++) {
		struct timespec ts[2] = { { 1000 + i, 0 }, { 1000 + i, 0 } };

		t_fill(buf, size, seed + (unsigned)i);
		sha256_buf(buf, size, d[i]);
		hex_encode(d[i], hex);
		snprintf(p, sizeof(p), "%s/blobs/%s", cache, hex);
		t_write_file(p, buf, size, 0400);
		utimensat(AT_FDCWD, p, ts, 0);
	}
	free(buf);
}

static bool in_cache(const char *cache, const uint8_t d[32])
{
	char p[512], hex[65];

	hex_encode(d, hex);
	snprintf(p, sizeof(p), "%s/blobs/%s", cache, hex);
	return access(p, F_OK) == 0;
}

/*
 * Issue 11 item 8: a blob that cannot fit above the floor even with every
 * blob evicted is refused at once (no transfer, no temp file, nothing
 * evicted), with ENOSPC and a log line naming it, its size, the free
 * space and the floor; one over --max-cache-bytes gets EFBIG.
 */
static void t_refuses_what_cannot_fit(void)
{
	struct env v;
	uint8_t old[2][32], big[32], huge[32];
	char want[400], hex[65];

	REQUIRE(setup(&v, 2, 0) == 0);
	seed_cache(v.cache, 300, 2, 128 << 10, old);
	cache_close(v.c);
	REQUIRE(cache_open(&v.c, v.cache, 0, 0) == 0);
	fetch_engine_free(v.e);
	{
		struct fetch_config fc = { .url = v.url, .jobs = 2, .timeout_s = 5 };

		REQUIRE(fetch_engine_new(&v.e, &fc, v.c) == 0);
	}
	t_fake_fs(v.cache, 1 << 20, 512 << 10);		/* 256 KiB free */
	cache_set_floor(v.c, 64 << 10, CACHE_NO_PCT);
	t_make_blob(v.cas, "cas", 310, 512 << 10, big);	/* > 256 + 256 - 64 */
	CHECK_INT(fetch_submit(v.e, big, 512 << 10, t_cb, &v.r, 0), 0);
	CHECK_INT(v.r.called[0], 0);		/* never from inside submit */
	CHECK_INT(fetch_run(v.e, 0, NULL, 0), 0);
	CHECK_INT(v.r.called[0], 1);
	CHECK_INT(v.r.status[0], -ENOSPC);
	CHECK_INT(stats.attempts, 0);		/* not fetched at all */
	CHECK_INT(stats.refused_space, 1);
	CHECK_INT(stats.err_nospace, 1);
	CHECK_INT(tmp_count(&v), 0);
	CHECK(!in_cache(v.cache, big));
	CHECK(in_cache(v.cache, old[0]) && in_cache(v.cache, old[1]));
	hex_encode(big, hex);
	snprintf(want, sizeof(want), "%s: %u bytes cannot fit in %s: %u bytes free, "
		 "floor %u", hex, 512u << 10, v.cache, 256u << 10, 64u << 10);
	CHECK(t_log_contains(want));
	teardown(&v);

	REQUIRE(setup(&v, 2, 100 << 10) == 0);
	t_make_blob(v.cas, "cas", 311, (100 << 10) + 1, huge);
	CHECK_INT(fetch_submit(v.e, huge, (100 << 10) + 1, t_cb, &v.r, 1), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.status[1], -EFBIG);
	CHECK_INT(stats.attempts, 0);
	CHECK(!in_cache(v.cache, huge));
	hex_encode(huge, hex);
	snprintf(want, sizeof(want), "%s: %u bytes is more than --max-cache-bytes (%u)",
		 hex, (100u << 10) + 1, 100u << 10);
	CHECK(t_log_contains(want));
	teardown(&v);
}

/* A blob that fits only once older blobs go: they go before the fetch. */
static void t_evicts_before_fetch(void)
{
	struct env v;
	uint8_t old[4][32], a[32];

	REQUIRE(setup(&v, 2, 0) == 0);
	seed_cache(v.cache, 320, 4, 128 << 10, old);
	cache_close(v.c);
	fetch_engine_free(v.e);
	REQUIRE(cache_open(&v.c, v.cache, 0, 0) == 0);
	{
		struct fetch_config fc = { .url = v.url, .jobs = 2, .timeout_s = 5 };

		REQUIRE(fetch_engine_new(&v.e, &fc, v.c) == 0);
	}
	t_fake_fs(v.cache, 1 << 20, 256 << 10);		/* 256 KiB free */
	cache_set_floor(v.c, 64 << 10, CACHE_NO_PCT);
	t_make_blob(v.cas, "cas", 330, 384 << 10, a);
	CHECK_INT(fetch_submit(v.e, a, 384 << 10, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	CHECK_INT(v.r.status[0], 0);
	CHECK(t_cached_ok(v.cache, a, 384 << 10, 330));
	/* 64 + 6.4 + 384 - 256 = 198.4 KiB more: the two oldest */
	CHECK(!in_cache(v.cache, old[0]) && !in_cache(v.cache, old[1]));
	CHECK(in_cache(v.cache, old[2]) && in_cache(v.cache, old[3]));
	CHECK_INT(stats.evictions_space, 2);
	CHECK_INT(stats.space_retries, 0);
	CHECK_INT(stats.attempts, 1);
	teardown(&v);
}

static unsigned enospc_writes;

/* Someone else fills the disk during the first write; writes beyond the
 * simulated free space then fail with ENOSPC, as write(2) would. */
static int fill_then_enospc(enum bw_op op, const struct blob_writer *w)
{
	uint64_t avail, size;

	if (op != BW_OP_WRITE)
		return 0;
	if (!enospc_writes++)
		fake_fs.other = 900 << 10;
	cache_statfs_hook(-1, &avail, &size);	/* the simulated disk */
	return avail < w->buflen ? -ENOSPC : 0;
}

/*
 * ENOSPC in the middle of a write: the helper evicts enough for the blob
 * (LRU) and retries the job once; the retry publishes verified bytes.
 */
static void t_enospc_evicts_and_retries(void)
{
	struct env v;
	uint8_t old[8][32], a[32];
	size_t n = 640 << 10;		/* more than one 256 KiB write */

	REQUIRE(setup(&v, 1, 0) == 0);
	seed_cache(v.cache, 340, 8, 128 << 10, old);
	cache_close(v.c);
	fetch_engine_free(v.e);
	REQUIRE(cache_open(&v.c, v.cache, 0, 0) == 0);
	{
		struct fetch_config fc = { .url = v.url, .jobs = 1, .timeout_s = 5 };

		REQUIRE(fetch_engine_new(&v.e, &fc, v.c) == 0);
	}
	t_fake_fs(v.cache, 2 << 20, 0);			/* 1 MiB free */
	cache_set_floor(v.c, 64 << 10, CACHE_NO_PCT);
	enospc_writes = 0;
	bw_fault_hook = fill_then_enospc;
	t_make_blob(v.cas, "cas", 350, n, a);
	CHECK_INT(fetch_submit(v.e, a, n, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	bw_fault_hook = NULL;
	CHECK_INT(v.r.called[0], 1);
	CHECK_INT(v.r.status[0], 0);
	CHECK(t_cached_ok(v.cache, a, n, 350));
	CHECK_INT(stats.space_retries, 1);
	CHECK_INT(stats.attempts, 2);
	CHECK_INT(tmp_count(&v), 0);
	/* 124 KiB free after the fill; 70.4 + 640 wanted: the 5 oldest go */
	for (int i = 0; i < 5; i++)
		CHECK(!in_cache(v.cache, old[i]));
	for (int i = 5; i < 8; i++)
		CHECK(in_cache(v.cache, old[i]));
	CHECK_INT(stats.evictions_space, 5);
	CHECK(t_log_contains("writing the temporary file in"));
	CHECK(t_log_contains("No space left on device; evicted 655360 bytes, retrying"));
	teardown(&v);
}

static int always_enospc(enum bw_op op, const struct blob_writer *w)
{
	(void)w;
	return op == BW_OP_SYNC || op == BW_OP_SYNCFS ? -ENOSPC : 0;
}

/*
 * ENOSPC again on the retry: a clear error, ENOSPC, no temp file left;
 * with fsync per blob (sync_batch 1) and with the group's syncfs.
 */
static void enospc_twice(unsigned batch, const char *what)
{
	struct env v;
	uint8_t a[32];
	char hex[65], want[300];

	stats_reset();
	setup_sync_batch = batch;
	REQUIRE(setup(&v, 1, 0) == 0);
	setup_sync_batch = 0;
	bw_fault_hook = always_enospc;
	t_make_blob(v.cas, "cas", 360, 5000, a);
	CHECK_INT(fetch_submit(v.e, a, 5000, t_cb, &v.r, 0), 0);
	CHECK_INT(t_drain(v.e, 5000), 0);
	bw_fault_hook = NULL;
	CHECK_INT(v.r.status[0], -ENOSPC);
	CHECK_INT(stats.space_retries, 1);
	CHECK_INT(stats.attempts, 2);
	CHECK_INT(stats.err_nospace, 1);
	CHECK_INT(tmp_count(&v), 0);
	CHECK(!in_cache(v.cache, a));
	hex_encode(a, hex);
	snprintf(want, sizeof(want), "%s: %s in %s: No space left on device, "
		 "even after evicting", hex, what, v.cache);
	CHECK(t_log_contains(want));
	/* the group's syncfs failed both times; fsync per blob: no syncfs */
	CHECK_INT(stats.sync_failures, batch == 1 ? 0 : 2);
	teardown(&v);
}

static void t_enospc_twice_fails(void)
{
	enospc_twice(1, "publishing");
	enospc_twice(0, "syncing");
}

/*
 * Group commit (issue 11 item 10). The fault hook follows the order of
 * events: a blob's last write (its flush) gets the current sync epoch,
 * and its rename into blobs/ must come after a later syncfs.
 */
#define GC_MAX 256
static struct {
	char name[GC_MAX][HEX_LEN + 48];
	unsigned epoch[GC_MAX];
	unsigned n, syncs, renames, bad_renames, fail_syncs;
	int sync_err;
	const char *cache;
	int blobs_at_failed_sync;
} gc;

static int gc_hook(enum bw_op op, const struct blob_writer *w)
{
	char p[512];

	switch (op) {
	case BW_OP_WRITE:
		for (unsigned i = 0; i < gc.n; i++)
			if (!strcmp(gc.name[i], w->tmpname)) {
				gc.epoch[i] = gc.syncs;
				return 0;
			}
		if (gc.n < GC_MAX) {
			snprintf(gc.name[gc.n], sizeof(gc.name[0]), "%s", w->tmpname);
			gc.epoch[gc.n++] = gc.syncs;
		}
		return 0;
	case BW_OP_SYNCFS:
		if (gc.fail_syncs) {
			gc.fail_syncs--;
			snprintf(p, sizeof(p), "%s/blobs", gc.cache);
			gc.blobs_at_failed_sync += t_count_dir(p);
			return gc.sync_err;
		}
		gc.syncs++;
		return 0;
	case BW_OP_RENAME:
		gc.renames++;
		for (unsigned i = 0; i < gc.n; i++)
			if (!strcmp(gc.name[i], w->tmpname) && gc.epoch[i] >= gc.syncs)
				gc.bad_renames++;
		return 0;
	default:
		return 0;
	}
}

struct gc_done {
	const char *cache;
	uint8_t (*d)[32];
	int called, ok, file_there;
};

static void gc_cb(void *arg, uint64_t tag, int status)
{
	struct gc_done *g = arg;

	g->called++;
	if (!status)
		g->ok++;
	if (in_cache(g->cache, g->d[tag]))	/* DONE only after the rename */
		g->file_there++;
}

static void t_group_commit(void)
{
	enum { N = 100 };
	static uint8_t d[N][32];
	struct gc_done g = { 0 };
	struct env v;

	memset(&gc, 0, sizeof(gc));
	REQUIRE(setup(&v, 8, 0) == 0);
	gc.cache = v.cache;
	bw_fault_hook = gc_hook;
	g.cache = v.cache;
	g.d = d;
	for (int i = 0; i < N; i++) {
		t_make_blob(v.cas, "cas", 400 + (unsigned)i, 4096, d[i]);
		CHECK_INT(fetch_submit(v.e, d[i], 4096, gc_cb, &g, (uint64_t)i), 0);
	}
	CHECK_INT(t_drain(v.e, 10000), 0);
	bw_fault_hook = NULL;
	CHECK_INT(g.called, N);
	CHECK_INT(g.ok, N);
	CHECK_INT(g.file_there, N);
	for (int i = 0; i < N; i++)
		CHECK(t_cached_ok(v.cache, d[i], 4096, 400 + (unsigned)i));
	CHECK_INT(tmp_count(&v), 0);
	CHECK_INT(gc.n, N);
	CHECK_INT(gc.renames, N);
	CHECK_INT(gc.bad_renames, 0);		/* every rename after a later syncfs */
	CHECK_INT(stats.sync_group_blobs, N);
	CHECK_INT(stats.sync_groups, gc.syncs);
	CHECK(stats.sync_groups >= 2);		/* at most 64 a group */
	CHECK(stats.sync_groups <= N / 4);	/* far fewer than one a blob */
	CHECK_INT(stats.fetch_ok, N);
	teardown(&v);
}

/*
 * A syncfs that fails publishes none of its group: every file is removed
 * and every job tried once more (it succeeds here), or, if syncfs fails
 * again, failed with its error and nothing in blobs/.
 */
static void syncfs_fails(unsigned fails, int want_status)
{
	enum { N = 10 };
	static uint8_t d[N][32];
	struct gc_done g = { 0 };
	struct env v;
	char p[512];

	stats_reset();
	memset(&gc, 0, sizeof(gc));
	REQUIRE(setup(&v, N, 0) == 0);
	gc.cache = v.cache;
	gc.fail_syncs = fails;
	gc.sync_err = -EIO;
	bw_fault_hook = gc_hook;
	g.cache = v.cache;
	g.d = d;
	for (int i = 0; i < N; i++) {
		t_make_blob(v.cas, "cas", 500 + (unsigned)i, 4096, d[i]);
		CHECK_INT(fetch_submit(v.e, d[i], 4096, gc_cb, &g, (uint64_t)i), 0);
	}
	CHECK_INT(t_drain(v.e, 10000), 0);
	bw_fault_hook = NULL;
	CHECK_INT(g.called, N);
	CHECK_INT(gc.blobs_at_failed_sync, 0);	/* nothing published unsynced */
	CHECK_INT(tmp_count(&v), 0);
	CHECK_INT(stats.sync_failures, fails);
	CHECK_INT(gc.bad_renames, 0);
	CHECK(t_log_contains("syncfs on "));
	CHECK(t_log_contains("Input/output error; 10 verified blobs not published"));
	if (!want_status) {
		CHECK_INT(g.ok, N);
		CHECK_INT(g.file_there, N);
		CHECK_INT(stats.attempts, 2 * N);
		for (int i = 0; i < N; i++)
			CHECK(t_cached_ok(v.cache, d[i], 4096, 500 + (unsigned)i));
	} else {
		char hex[65], want[300];

		CHECK_INT(g.ok, 0);
		CHECK_INT(g.file_there, 0);
		snprintf(p, sizeof(p), "%s/blobs", v.cache);
		CHECK_INT(t_count_dir(p), 0);
		CHECK_INT(stats.err_other, N);
		hex_encode(d[0], hex);
		snprintf(want, sizeof(want), "%s: syncing in %s: Input/output error",
			 hex, v.cache);
		CHECK(t_log_contains(want));
	}
	teardown(&v);
}

static void t_syncfs_failure(void)
{
	syncfs_fails(1, 0);
	syncfs_fails(2, -EIO);
}

const struct test fetch_file_tests[] = {
	{ "both_layouts", t_both_layouts },
	{ "big_blob_sliced", t_big_blob_sliced },
	{ "missing_enoent", t_missing },
	{ "corrupt_eio", t_corrupt },
	{ "short_eio", t_short },
	{ "long_eio", t_long },
	{ "fifo_in_cas", t_fifo_not_followed },
	{ "dedup", t_dedup },
	{ "cache_hit_touches", t_cache_hit },
	{ "jobs_limit", t_jobs_limit },
	{ "eviction_through_engine", t_eviction_through_engine },
	{ "refuses_bad_size", t_refuses },
	{ "abandon_on_free", t_abandon },
	{ "bad_urls", t_bad_urls },
	{ "turns_per_uid", t_turns_per_uid },
	{ "cancel", t_cancel },
	{ "refuses_what_cannot_fit", t_refuses_what_cannot_fit },
	{ "evicts_before_fetch", t_evicts_before_fetch },
	{ "enospc_evicts_and_retries", t_enospc_evicts_and_retries },
	{ "enospc_twice_fails", t_enospc_twice_fails },
	{ "group_commit", t_group_commit },
	{ "syncfs_failure", t_syncfs_failure },
	{ NULL, NULL },
};
