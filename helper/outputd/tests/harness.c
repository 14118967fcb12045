// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd tests: the runner, see harness.h. */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUITES 64

static struct {
	const char *name;
	const struct test *tests;
} suites[MAX_SUITES];
static int nsuites;
static int failed_checks;
static char tmpdir[PATH_MAX];

void t_register(const char *suite, const struct test *tests)
{
	if (nsuites == MAX_SUITES) {
		fprintf(stderr, "harness: too many suites\n");
		abort();
	}
	suites[nsuites].name = suite;
	suites[nsuites++].tests = tests;
}

void t_fail(const char *file, int line, const char *what)
{
	failed_checks++;
	fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what);
}

double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, "harness: remove %s: %s\n", path, strerror(errno));
	return 0;
}

void t_rm_rf(const char *path)
{
	nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

const char *t_tmpdir(void)
{
	const char *base = getenv("OUTPATH_TEST_DIR");
	struct stat sb;

	if (tmpdir[0])
		return tmpdir;
	if (!base)
		base = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/outputd-test.XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", tmpdir, strerror(errno));
		abort();
	}
	return tmpdir;
}

int main(void)
{
	const char *only = getenv("T");
	int ran = 0, failed = 0;

	for (int s = 0; s < nsuites; s++) {
		for (const struct test *t = suites[s].tests; t->name; t++) {
			char full[256];
			int before = failed_checks;

			snprintf(full, sizeof(full), "%s/%s", suites[s].name, t->name);
			if (only && !strstr(full, only))
				continue;
			fprintf(stderr, "%s\n", full);
			t->fn();
			if (tmpdir[0]) {
				t_rm_rf(tmpdir);
				tmpdir[0] = 0;
			}
			ran++;
			if (failed_checks != before)
				failed++;
		}
	}
	fprintf(stderr, "%d tests, %d failed\n", ran, failed);
	return failed ? 1 : 0;
}
