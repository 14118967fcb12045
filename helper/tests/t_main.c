// SPDX-License-Identifier: GPL-2.0
/* casfs userspace unit tests: runner and helpers. */
#include "t.h"
#include "../cache.h"
#include "../common.h"
#include "../publish.h"
#include "../stats.h"
#include "../verify.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int t_checks_failed;
static char logbuf[1 << 16];
static size_t loglen;
static bool verbose;
static char tmpdirs[8][256];
static int ntmp;

void t_fail(const char *file, int line, const char *what)
{
	t_checks_failed++;
	printf("    %s:%d: check failed: %s\n", file, line, what);
}

static void hook(int lvl, const char *line)
{
	size_t n = strlen(line);

	(void)lvl;
	if (verbose)
		fprintf(stderr, "      log: %s\n", line);
	if (loglen + n + 2 < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, n);
		loglen += n;
		logbuf[loglen++] = '\n';
		logbuf[loglen] = 0;
	}
}

bool t_log_contains(const char *needle)
{
	return strstr(logbuf, needle) != NULL;
}

void t_log_clear(void)
{
	loglen = 0;
	logbuf[0] = 0;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)f;
	if (type == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

void t_rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *t_tmpdir(void)
{
	char *d;

	if (ntmp == 8)
		return NULL;
	snprintf(tmpdirs[ntmp], sizeof(tmpdirs[ntmp]), "/tmp/casfs-test.XXXXXX");
	d = mkdtemp(tmpdirs[ntmp]);
	if (!d)
		return NULL;
	chmod(d, 0755);
	ntmp++;
	return d;
}

int t_write_file(const char *path, const void *data, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int err;

	if (fd < 0)
		return -errno;
	err = write_all(fd, data, len);
	close(fd);
	return err;
}

char *t_read_file(const char *path, size_t *len)
{
	char *buf;

	if (read_small_file(path, 64 << 20, &buf, len))
		return NULL;
	return buf;
}

int t_count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

void t_fill(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

void t_sha256_hex(const void *p, size_t n, char hex[65])
{
	uint8_t d[32];

	sha256_buf(p, n, d);
	hex_encode(d, hex);
}

static const struct suite suites[] = {
	{ "verify", verify_tests, NULL },
	{ "publish", publish_tests, NULL },
	{ "manifest", manifest_tests, NULL },
	{ "tree", tree_tests, NULL },
	{ "cache", cache_tests, NULL },
	{ "config", config_tests, NULL },
	{ "stats", stats_tests, NULL },
	{ "netlink", netlink_tests, NULL },
	{ "fetch_file", fetch_file_tests, NULL },
	{ "http", http_tests, http_skip },
	{ "rev2", rev2_tests, NULL },
	{ "grpc_backend", grpc_backend_tests, grpc_backend_skip },
	{ "cli", cli_tests, cli_skip },
	{ "ctl_rev2", ctl_rev2_tests, ctl_rev2_skip },
	{ "outputd", outputd_tests, outputd_skip },
};

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0, skipped = 0;
	uint64_t t_all = mono_ms();

	verbose = getenv("T_VERBOSE") != NULL;
	log_hook = hook;
	log_level = LOG_LVL_DEBUG;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("these tests need root (cache ownership rules, chown)\n");
		printf("0 passed, 1 failed\n");
		return 1;
	}
	for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
		const char *why = suites[s].skip ? suites[s].skip() : NULL;

		for (const struct test *t = suites[s].tests; t->name; t++) {
			char full[256];
			uint64_t t0;

			snprintf(full, sizeof(full), "%s/%s", suites[s].name, t->name);
			if (only && !strstr(full, only))
				continue;
			if (why) {
				printf("skip - %s (%s)\n", full, why);
				skipped++;
				continue;
			}
			t_checks_failed = 0;
			t_log_clear();
			stats_reset();
			t0 = mono_ms();
			t->fn();
			cache_statfs_hook = NULL;	/* a failed test may leave them */
			bw_fault_hook = NULL;
			for (int i = 0; i < ntmp; i++)
				t_rm_rf(tmpdirs[i]);
			ntmp = 0;
			if (t_checks_failed) {
				printf("FAIL - %s (%llu ms)\n", full,
				       (unsigned long long)(mono_ms() - t0));
				if (!verbose)
					printf("    log:\n%s", logbuf);
				failed++;
			} else {
				printf("ok - %s (%llu ms)\n", full,
				       (unsigned long long)(mono_ms() - t0));
				passed++;
			}
		}
	}
	printf("# %d skipped, %.1f s\n", skipped, (double)(mono_ms() - t_all) / 1000);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
