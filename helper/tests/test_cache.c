// SPDX-License-Identifier: GPL-2.0
/* Tests: cache directory rules, scan, LRU eviction. */
#include "t.h"
#include "../cache.h"
#include "../stats.h"
#include "../verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Put a blob of n bytes (content from seed) with mtime t; returns its digest. */
static void put_blob(const char *dir, unsigned seed, size_t n, time_t t, uint8_t d[32])
{
	char path[400], hex[65];
	char *buf = malloc(n ? n : 1);
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	t_fill(buf, n, seed);
	sha256_buf(buf, n, d);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/blobs/%s", dir, hex);
	t_write_file(path, buf, n, 0444);
	utimensat(AT_FDCWD, path, ts, 0);
	free(buf);
}

static bool blob_exists(const char *dir, const uint8_t d[32])
{
	char path[400], hex[65];

	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/blobs/%s", dir, hex);
	return access(path, F_OK) == 0;
}

static void t_creates_layout(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	struct stat st;

	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	snprintf(p, sizeof(p), "%s/blobs", dir);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
	CHECK_INT(cache_count(c), 0);
	cache_close(c);
}

/* A blobs/ left 0755 by an older version is tightened to 0700. */
static void t_tightens_blobs(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	struct stat st;

	snprintf(p, sizeof(p), "%s/blobs", dir);
	REQUIRE(mkdir(p, 0755) == 0);
	REQUIRE(chmod(p, 0755) == 0);
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0700);
	cache_close(c);
}

static void t_refuses_untrusted(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c = NULL;

	chmod(dir, 0775);
	CHECK_INT(cache_open(&c, dir, 0, 0), -EPERM);
	CHECK(t_log_contains("group- or other-writable"));
	chmod(dir, 0757);
	CHECK_INT(cache_open(&c, dir, 0, 0), -EPERM);
	chmod(dir, 0755);
	REQUIRE(chown(dir, 1234, 0) == 0);
	CHECK_INT(cache_open(&c, dir, 0, 0), -EPERM);
	CHECK(t_log_contains("owned by uid 1234"));
	REQUIRE(chown(dir, 0, 0) == 0);
	/* an untrusted subdirectory */
	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0777);
	chmod(p, 0777);
	CHECK_INT(cache_open(&c, dir, 0, 0), -EPERM);
	chmod(p, 0755);
	/* blobs as a symlink is refused */
	rmdir(p);
	REQUIRE(symlink("/tmp", p) == 0);
	CHECK(cache_open(&c, dir, 0, 0) < 0);
	unlink(p);
	/* not absolute, missing */
	CHECK_INT(cache_open(&c, "relative/dir", 0, 0), -EINVAL);
	CHECK_INT(cache_open(&c, "/nonexistent/casfs-cache", 0, 0), -ENOENT);
	/* and now it is fine */
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	cache_close(c);
}

static void t_cleans_tmp_and_scans(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	uint8_t a[32], b[32];

	snprintf(p, sizeof(p), "%s/tmp", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/tmp/stale.1.1", dir);
	t_write_file(p, "partial", 7, 0600);
	put_blob(dir, 1, 100, 1000, a);
	put_blob(dir, 2, 50, 2000, b);
	/* foreign names are not blobs */
	snprintf(p, sizeof(p), "%s/blobs/README", dir);
	t_write_file(p, "x", 1, 0644);
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_INT(t_count_dir(p), 0);
	CHECK_INT(cache_count(c), 2);
	CHECK_INT(cache_total_bytes(c), 150);
	CHECK(cache_lru_nth(c, 0) && !memcmp(cache_lru_nth(c, 0), a, 32));
	CHECK(cache_lru_nth(c, 1) && !memcmp(cache_lru_nth(c, 1), b, 32));
	cache_close(c);
}

static void t_lookup(void)
{
	const char *dir = t_tmpdir();
	char p[400], hex[65];
	struct cache *c;
	uint8_t a[32], b[32], x[32] = { 9 };
	struct stat st;

	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	put_blob(dir, 1, 100, 1000, a);
	put_blob(dir, 2, 100, 1000, b);
	CHECK_INT(cache_lookup(c, a, 100), 1);		/* not yet indexed: found, indexed */
	CHECK_INT(cache_count(c), 1);
	CHECK_INT(cache_lookup(c, b, 99), 0);		/* wrong size */
	CHECK_INT(cache_lookup(c, x, 100), 0);		/* absent */
	hex_encode(a, hex);
	snprintf(p, sizeof(p), "%s/blobs/%s", dir, hex);
	CHECK(stat(p, &st) == 0 && st.st_mtime > 1000);	/* touched */
	unlink(p);
	CHECK_INT(cache_lookup(c, a, 100), 0);		/* gone: dropped from the index */
	CHECK_INT(cache_count(c), 0);
	cache_close(c);
}

static void t_lru_order(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	uint8_t d[6][32];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0755);
	/* five 100-byte blobs, oldest first: 0,1,2,3,4 */
	for (int i = 0; i < 5; i++)
		put_blob(dir, 10 + i, 100, 1000 + i * 10, d[i]);
	/* max 600: all fit */
	REQUIRE(cache_open(&c, dir, 600, 0) == 0);
	CHECK_INT(cache_count(c), 5);
	/* use 0 and 2: order becomes 1,3,4,0,2 */
	CHECK_INT(cache_lookup(c, d[0], 100), 1);
	CHECK_INT(cache_lookup(c, d[2], 100), 1);
	CHECK(!memcmp(cache_lru_nth(c, 0), d[1], 32));
	CHECK(!memcmp(cache_lru_nth(c, 1), d[3], 32));
	CHECK(!memcmp(cache_lru_nth(c, 4), d[2], 32));
	/* publish a 150-byte blob: total 650 > 600 -> evict to <= 540: 1 and 3 go */
	put_blob(dir, 20, 150, 5000, d[5]);
	cache_published(c, d[5], 150);
	CHECK_INT(cache_total_bytes(c), 450);
	CHECK_INT(cache_count(c), 4);
	CHECK(!blob_exists(dir, d[1]));
	CHECK(!blob_exists(dir, d[3]));
	CHECK(blob_exists(dir, d[0]) && blob_exists(dir, d[2]) && blob_exists(dir, d[4]) &&
	      blob_exists(dir, d[5]));
	CHECK_INT(stats.evictions, 2);
	CHECK_INT(stats.evicted_bytes, 200);
	cache_close(c);

	/* restart: the scan orders by mtime; the touched ones are youngest */
	REQUIRE(cache_open(&c, dir, 600, 0) == 0);
	CHECK_INT(cache_count(c), 4);
	CHECK(!memcmp(cache_lru_nth(c, 0), d[4], 32));
	cache_close(c);
}

static void t_pinned_never_evicted(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	uint8_t a[32], big[32];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0755);
	put_blob(dir, 1, 100, 1000, a);
	REQUIRE(cache_open(&c, dir, 300, 0) == 0);
	/* a blob bigger than the whole bound: everything else goes, not it */
	put_blob(dir, 2, 500, 2000, big);
	cache_published(c, big, 500);
	CHECK(blob_exists(dir, big));
	CHECK(!blob_exists(dir, a));
	CHECK_INT(cache_count(c), 1);
	cache_close(c);
}

static void t_evicts_at_open(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	uint8_t d[4][32];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0755);
	for (int i = 0; i < 4; i++)
		put_blob(dir, 30 + i, 100, 1000 + i, d[i]);
	REQUIRE(cache_open(&c, dir, 250, 0) == 0);	/* -> <= 225: keep 2 youngest */
	CHECK_INT(cache_count(c), 2);
	CHECK(!blob_exists(dir, d[0]) && !blob_exists(dir, d[1]));
	CHECK(blob_exists(dir, d[2]) && blob_exists(dir, d[3]));
	cache_close(c);
}

/*
 * Issue 11 item 6: a blob just published has its DONE on the way and a
 * reader about to open it, so eviction leaves blobs younger than the
 * grace time alone, until the cache is 1.5 times its bound.
 */
static void t_grace_for_new_blobs(void)
{
	const char *dir = t_tmpdir();
	struct cache *c;
	uint8_t d[7][32];

	REQUIRE(cache_open(&c, dir, 300, 0) == 0);
	stats.evictions = stats.evictions_deferred = 0;
	for (int i = 0; i < 4; i++) {
		put_blob(dir, 40 + i, 100, 1000 + i, d[i]);
		cache_published(c, d[i], 100);
	}
	/* 400 > 300, but every blob is in its grace time (and 400 <= 450) */
	CHECK_INT(cache_count(c), 4);
	CHECK_INT(stats.evictions, 0);
	CHECK(stats.evictions_deferred > 0);
	for (int i = 0; i < 4; i++)
		CHECK(blob_exists(dir, d[i]));
	for (int i = 4; i < 7; i++) {
		put_blob(dir, 40 + i, 100, 1000 + i, d[i]);
		cache_published(c, d[i], 100);
	}
	/* each publish past 450 = 1.5 x 300 makes the oldest go regardless */
	CHECK_INT(cache_total_bytes(c), 400);
	for (int i = 0; i < 3; i++)
		CHECK(!blob_exists(dir, d[i]));
	for (int i = 3; i < 7; i++)
		CHECK(blob_exists(dir, d[i]));
	CHECK_INT(stats.evictions, 3);
	cache_close(c);
}

static void t_many_entries(void)
{
	/* exercise the index growing */
	const char *dir = t_tmpdir();
	struct cache *c;
	uint8_t d[32];

	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	for (unsigned i = 0; i < 5000; i++) {
		memset(d, 0, sizeof(d));
		memcpy(d, &i, sizeof(i));
		d[31] = 1;
		cache_published(c, d, 1);
	}
	CHECK_INT(cache_count(c), 5000);
	CHECK_INT(cache_total_bytes(c), 5000);
	memset(d, 0, sizeof(d));
	d[31] = 1;
	cache_published(c, d, 1);	/* refresh, not a new entry */
	CHECK_INT(cache_count(c), 5000);
	cache_close(c);
}

const struct test cache_tests[] = {
	{ "creates_layout", t_creates_layout },
	{ "tightens_blobs", t_tightens_blobs },
	{ "refuses_untrusted", t_refuses_untrusted },
	{ "cleans_tmp_and_scans", t_cleans_tmp_and_scans },
	{ "lookup_touch_size", t_lookup },
	{ "lru_eviction_order", t_lru_order },
	{ "pinned_never_evicted", t_pinned_never_evicted },
	{ "evicts_at_open", t_evicts_at_open },
	{ "grace_for_new_blobs", t_grace_for_new_blobs },
	{ "many_entries", t_many_entries },
	{ NULL, NULL },
};
