// SPDX-License-Identifier: GPL-2.0
/* Tests: cache directory rules, scan, LRU eviction. */
#include "t.h"
#include "space_util.h"
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

/*
 * Issue 11 item 7: eviction is by use. The kernel's USED for a blob a
 * reader opened makes it most recently used, so a blob read again and
 * again survives while cold ones go.
 */
static void t_used_keeps_hot_blobs(void)
{
	const char *dir = t_tmpdir();
	char p[400];
	struct cache *c;
	uint8_t d[5][32];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0755);
	for (int i = 0; i < 4; i++)	/* oldest first: 0 (hot), 1, 2, 3 */
		put_blob(dir, 60 + i, 100, 1000 + i, d[i]);
	REQUIRE(cache_open(&c, dir, 450, 0) == 0);
	stats.cache_used = 0;
	CHECK_INT(cache_used(c, d[0], 100), 1);		/* read: now the newest */
	CHECK_INT(cache_used(c, d[0], 101), 0);		/* another size: not it */
	CHECK_INT(stats.cache_used, 1);
	CHECK(!memcmp(cache_lru_nth(c, 3), d[0], 32));
	/* 500 > 450: evict to 405 from the least recently used */
	put_blob(dir, 70, 100, 2000, d[4]);
	cache_published(c, d[4], 100);
	CHECK(blob_exists(dir, d[0]));			/* the hot one stays */
	CHECK(!blob_exists(dir, d[1]));			/* the coldest went */
	CHECK(blob_exists(dir, d[4]));
	cache_close(c);
	/* on disk too: after a restart the hot one is not the oldest */
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	CHECK(memcmp(cache_lru_nth(c, 0), d[0], 32));
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

/*
 * Issue 11 item 8: with less than the floor free after a publish, blobs
 * go in LRU order until the high watermark (floor + 10%) is free, so the
 * next few publishes evict nothing (batches, not one blob per publish).
 */
static void t_floor_evicts_to_high_watermark(void)
{
	const char *dir = t_tmpdir();
	struct cache_space s;
	struct cache *c;
	uint8_t d[10][32];
	char p[400];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0700);
	for (int i = 0; i < 7; i++)
		put_blob(dir, 60 + (unsigned)i, 128 << 10, 1000 + i, d[i]);
	t_fake_fs(dir, 1 << 20, 0);		/* 1 MiB disk, 896 KiB used */
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	cache_set_floor(c, 100 << 10, CACHE_NO_PCT);
	cache_space(c, &s);
	CHECK(s.known);
	CHECK_INT(s.floor, 100 << 10);
	CHECK_INT(s.high, (100 << 10) + (10 << 10));
	CHECK_INT(s.avail, 128 << 10);
	CHECK_INT(cache_count(c), 7);		/* 128 KiB >= floor: nothing yet */
	CHECK_INT(stats.cache_fs_free_bytes, 128 << 10);

	put_blob(dir, 70, 64 << 10, 2000, d[7]);
	cache_published(c, d[7], 64 << 10);	/* 64 KiB free < 100 KiB */
	CHECK(!blob_exists(dir, d[0]));		/* the oldest went, only it */
	for (int i = 1; i < 8; i++)
		CHECK(blob_exists(dir, d[i]));
	cache_space(c, &s);
	CHECK(s.avail >= s.high);
	CHECK_INT(s.avail, 192 << 10);
	CHECK_INT(stats.evictions_space, 1);

	put_blob(dir, 71, 64 << 10, 2001, d[8]);
	cache_published(c, d[8], 64 << 10);	/* 128 KiB free: above the floor */
	CHECK_INT(stats.evictions_space, 1);
	CHECK(blob_exists(dir, d[1]));

	put_blob(dir, 72, 64 << 10, 2002, d[9]);
	cache_published(c, d[9], 64 << 10);	/* 64 KiB again: the next oldest */
	CHECK_INT(stats.evictions_space, 2);
	CHECK(!blob_exists(dir, d[1]));
	CHECK(blob_exists(dir, d[2]) && blob_exists(dir, d[9]));
	CHECK_INT(stats.evictions_grace_overridden, 0);	/* scanned: no grace */
	cache_close(c);
}

/* Percent and bytes: the smaller is the floor; 0 turns it off. */
static void t_floor_terms(void)
{
	const char *dir = t_tmpdir();
	struct cache_space s;
	struct cache *c;

	t_fake_fs(dir, 1000 << 20, 0);
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	cache_space(c, &s);
	CHECK_INT(s.floor, 0);				/* default: none */
	cache_set_floor(c, 1ULL << 30, 5);		/* 5% of 1000 MiB < 1 GiB */
	cache_space(c, &s);
	CHECK_INT(s.floor, 50ULL << 20);
	cache_set_floor(c, 10 << 20, 5);		/* 10 MiB < 5% */
	cache_space(c, &s);
	CHECK_INT(s.floor, 10 << 20);
	cache_set_floor(c, CACHE_NO_BYTES, 20);		/* percent alone */
	cache_space(c, &s);
	CHECK_INT(s.floor, 200ULL << 20);
	cache_set_floor(c, 0, 20);
	cache_space(c, &s);
	CHECK_INT(s.floor, 0);
	CHECK_INT(s.high, 0);
	cache_close(c);
}

/*
 * The floor is harder than the byte bound: blobs in their grace time,
 * which cache_evict_to() keeps up to 1.5 x --max-cache-bytes, are evicted
 * for the floor (oldest first; never the one just published).
 */
static void t_floor_overrides_grace(void)
{
	const char *dir = t_tmpdir();
	struct cache *c;
	uint8_t d[7][32];
	char p[400];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0700);
	t_fake_fs(dir, 1 << 20, 0);
	REQUIRE(cache_open(&c, dir, 512 << 10, 0) == 0);
	cache_set_floor(c, 100 << 10, CACHE_NO_PCT);
	for (int i = 0; i < 6; i++) {
		put_blob(dir, 80 + (unsigned)i, 128 << 10, 1000 + i, d[i]);
		cache_published(c, d[i], 128 << 10);
	}
	/* 768 KiB > 512 KiB bound, all in grace (<= 1.5 x): deferred */
	CHECK_INT(cache_count(c), 6);
	CHECK(stats.evictions_deferred > 0);
	CHECK_INT(stats.evictions, 0);
	/* 7th: 896 KiB used, 128 KiB free: the byte bound evicts past 1.5 x
	 * down to 768 KiB (one blob), leaving 256 KiB free: above the floor */
	put_blob(dir, 86, 128 << 10, 1006, d[6]);
	cache_published(c, d[6], 128 << 10);
	CHECK_INT(stats.evictions, 1);
	CHECK_INT(stats.evictions_space, 0);
	/* someone else takes 200 KiB: 56 KiB free < floor; the floor evicts
	 * blobs in their grace time until 110 KiB + are free */
	fake_fs.other = 200 << 10;
	stats.evictions_deferred = 0;
	cache_published(c, d[6], 128 << 10);	/* published again: 768 KiB */
	CHECK(stats.evictions_deferred > 0);	/* the bound alone would wait */
	CHECK_INT(stats.evictions_space, 1);
	CHECK_INT(stats.evictions_grace_overridden, 1);
	CHECK(!blob_exists(dir, d[1]));		/* the oldest left, in grace */
	CHECK(blob_exists(dir, d[2]) && blob_exists(dir, d[6]));
	CHECK_INT(cache_count(c), 5);
	cache_close(c);
}

/* Refusals: larger than the bound (EFBIG); cannot fit (ENOSPC). */
static void t_admit(void)
{
	const char *dir = t_tmpdir();
	struct cache *c;
	uint8_t d[2][32];
	char p[400], want[300], hex[65];

	snprintf(p, sizeof(p), "%s/blobs", dir);
	mkdir(p, 0700);
	put_blob(dir, 90, 128 << 10, 1000, d[0]);
	put_blob(dir, 91, 128 << 10, 1001, d[1]);
	t_fake_fs(dir, 1 << 20, 512 << 10);	/* 256 KiB free */
	REQUIRE(cache_open(&c, dir, 0, 0) == 0);
	cache_set_floor(c, 64 << 10, CACHE_NO_PCT);
	memset(hex, 'a', 64);
	hex[64] = 0;
	/* 256 free + 256 evictable - 64 floor = 448 KiB at most */
	CHECK_INT(cache_admit(c, hex, 449 << 10), -ENOSPC);
	snprintf(want, sizeof(want), "%s: %u bytes cannot fit in %s: %u bytes free, "
		 "floor %u, %u bytes of blobs to evict: refused (ENOSPC)", hex,
		 449u << 10, dir, 256u << 10, 64u << 10, 256u << 10);
	CHECK(t_log_contains(want));
	CHECK_INT(stats.refused_space, 1);
	CHECK_INT(cache_count(c), 2);		/* refused: nothing evicted */
	/* fits once both blobs go: they go now, before the fetch */
	CHECK_INT(cache_admit(c, hex, 400 << 10), 0);
	CHECK_INT(cache_count(c), 0);
	CHECK_INT(stats.evictions_space, 2);
	cache_close(c);

	REQUIRE(cache_open(&c, dir, 100 << 10, 0) == 0);
	CHECK_INT(cache_admit(c, hex, (100 << 10) + 1), -EFBIG);
	CHECK(t_log_contains("bytes is more than --max-cache-bytes (102400): refused (EFBIG)"));
	CHECK_INT(cache_admit(c, hex, 100 << 10), 0);
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
	{ "used_keeps_hot_blobs", t_used_keeps_hot_blobs },
	{ "many_entries", t_many_entries },
	{ "floor_evicts_to_high_watermark", t_floor_evicts_to_high_watermark },
	{ "floor_terms", t_floor_terms },
	{ "floor_overrides_grace", t_floor_overrides_grace },
	{ "admit_refuses", t_admit },
	{ NULL, NULL },
};
