// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark (issue 11 item 10): publish N blobs of SIZE bytes (default
 * 2,000 x 4 KiB) through casfs-helper's fetch engine and publish path
 * (file:// backend, --jobs 8) into a fresh cache directory, once with an
 * fsync per blob (sync_batch 1, the old path) and once with the group
 * commit (one syncfs per group of up to 64), alternating, ROUNDS times,
 * on the same filesystem in the same run. Every blob is checked in
 * blobs/ afterwards. Prints one BENCH line per round and the median
 * ratio.
 *
 *   make -C helper bench-publish && helper/.obj/bench-publish [DIR [N [SIZE [ROUNDS]]]]
 *
 * DIR (default /var/tmp) must be on a real disk, not tmpfs (stat -f).
 */
#include "backend.h"
#include "cache.h"
#include "fetch.h"
#include "stats.h"
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static unsigned done_ok, done_err;

static void cb(void *arg, uint64_t tag, int status)
{
	(void)arg;
	(void)tag;
	if (status)
		done_err++;
	else
		done_ok++;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static double run(const char *top, const char *name, uint8_t (*d)[32], unsigned n,
		  uint64_t size, unsigned batch)
{
	char cache[4200], url[4200];
	struct fetch_config fc = { .jobs = 8, .timeout_s = 600, .sync_batch = batch };
	struct fetch_engine *e;
	struct cache *c;
	uint64_t t0, t1;
	int fd, err;

	snprintf(cache, sizeof(cache), "%s/%s", top, name);
	snprintf(url, sizeof(url), "file://%s/cas", top);
	fc.url = url;
	if (mkdir(cache, 0700) < 0) {
		perror(cache);
		exit(1);
	}
	err = cache_open(&c, cache, 0, geteuid());
	if (!err)
		err = fetch_engine_new(&e, &fc, c);
	if (err) {
		fprintf(stderr, "bench: cannot set up %s: %s\n", cache, strerror(-err));
		exit(1);
	}
	fd = open(top, O_RDONLY | O_DIRECTORY);
	syncfs(fd);		/* start with nothing dirty */
	done_ok = done_err = 0;
	t0 = mono_us();
	for (unsigned i = 0; i < n; i++)
		if (fetch_submit(e, d[i], size, cb, NULL, i)) {
			fprintf(stderr, "bench: submit failed\n");
			exit(1);
		}
	while (fetch_pending(e))
		fetch_run(e, 50, NULL, 0);
	t1 = mono_us();
	fetch_engine_free(e);
	if (done_ok != n || done_err || cache_count(c) != n) {
		fprintf(stderr, "bench: %u ok, %u failed, %llu cached\n", done_ok, done_err,
			(unsigned long long)cache_count(c));
		exit(1);
	}
	for (unsigned i = 0; i < n; i++)	/* bytes verified once more */
		if (cache_lookup(c, d[i], size) != 1) {
			fprintf(stderr, "bench: blob %u missing\n", i);
			exit(1);
		}
	cache_close(c);
	close(fd);
	nftw(cache, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return (double)(t1 - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	unsigned n = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
	uint64_t size = argc > 3 ? (uint64_t)atoll(argv[3]) : 4096;
	unsigned rounds = argc > 4 ? (unsigned)atoi(argv[4]) : 3;
	char top[4096], p[4200], hex[65];
	uint8_t (*d)[32] = calloc(n, 32);
	unsigned char *buf = malloc(size);
	double ratio[64];
	struct statfs sf;

	if (!n || !rounds || rounds > 64 || !d || !buf)
		return 2;
	log_level = LOG_LVL_ERR;
	stats_reset();
	snprintf(top, sizeof(top), "%s/casfs-bench.XXXXXX", dir);
	if (!mkdtemp(top)) {
		perror(top);
		return 1;
	}
	if (statfs(top, &sf) == 0 && sf.f_type == 0x01021994)
		fprintf(stderr, "bench: warning: %s is tmpfs; fsync costs nothing there\n", top);
	snprintf(p, sizeof(p), "%s/cas", top);
	mkdir(p, 0700);
	for (unsigned i = 0; i < n; i++) {
		int fd;

		for (uint64_t k = 0; k < size; k++)
			buf[k] = (unsigned char)(i * 131 + k * 7 + (k >> 8));
		memcpy(buf, &i, sizeof(i) < size ? sizeof(i) : size);
		sha256_buf(buf, size, d[i]);
		hex_encode(d[i], hex);
		snprintf(p, sizeof(p), "%s/cas/%s", top, hex);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write_all(fd, buf, size)) {
			perror(p);
			return 1;
		}
		close(fd);
	}
	for (unsigned r = 0; r < rounds; r++) {
		double a, b;

		if (r % 2) {	/* alternate which goes first */
			b = run(top, "cache-group", d, n, size, 0);
			a = run(top, "cache-fsync", d, n, size, 1);
		} else {
			a = run(top, "cache-fsync", d, n, size, 1);
			b = run(top, "cache-group", d, n, size, 0);
		}
		ratio[r] = a / b;
		printf("BENCH publish %u x %llu B round %u: fsync per blob %.3f s, "
		       "group commit %.3f s, ratio fsync/group %.2f\n", n,
		       (unsigned long long)size, r + 1, a, b, a / b);
		fflush(stdout);
	}
	qsort(ratio, rounds, sizeof(ratio[0]), cmp_double);
	printf("BENCH publish %u x %llu B: median ratio fsync/group %.2f over %u rounds (%s)\n",
	       n, (unsigned long long)size, ratio[rounds / 2], rounds, dir);
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
	free(buf);
	return 0;
}
