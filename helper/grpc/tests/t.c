// SPDX-License-Identifier: GPL-2.0
/* casfs gRPC tests: runner. Prints one line per test and, last,
 * "N passed, N failed" (", N skipped" when some were). */
#include "t.h"
#include "grpc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int failed_checks;
static const char *skip_why;
static char tmpdir[64];

void t_fail(const char *file, int line, const char *what)
{
	failed_checks++;
	printf("    %s:%d: %s\n", file, line, what);
	fflush(stdout);
}

void t_skip(const char *why)
{
	skip_why = why;
}

int64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *t_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/casfs-grpc-test.XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(2);
		}
	}
	return tmpdir;
}

char t_conn_log[8192];

static void conn_logger(void *ud, int level, const char *m)
{
	size_t l = strlen(t_conn_log);

	(void)ud;
	(void)level;
	snprintf(t_conn_log + l, sizeof(t_conn_log) - l, "%s\n", m);
}

struct grpc_conn *t_conn_new(struct grpc_conn_opts *o, const char *host, int port)
{
	char url[128], err[256];
	struct grpc_conn *c;

	snprintf(url, sizeof(url), "grpc://%s:%d", host, port);
	o->url = url;
	o->log = conn_logger;
	t_conn_log[0] = 0;
	c = grpc_conn_new(o, err, sizeof(err));
	if (!c)
		printf("    grpc_conn_new: %s\n", err);
	o->url = NULL;	/* url was ours */
	return c;
}

int t_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static void cleanup(void)
{
	char cmd[128];

	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
}

int main(int argc, char **argv)
{
	static const struct suite *const suites[] = {
		&frame_suite, &md_suite, &raw_suite, &resolve_suite, &interop_suite,
		&server_suite,
	};
	const char *filter = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0, skipped = 0;

	signal(SIGPIPE, SIG_DFL);	/* the library must not need SIG_IGN */
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(cleanup);
	for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
		const struct suite *su = suites[s];
		const char *why = NULL;
		bool any = false, set_up = false;
		char full[256];

		for (const struct test *t = su->tests; t->name; t++) {
			int before = failed_checks;
			int64_t t0;

			snprintf(full, sizeof(full), "%s/%s", su->name, t->name);
			if (filter && !strstr(full, filter))
				continue;
			if (!any) {
				any = true;
				why = su->setup ? su->setup() : NULL;
				set_up = !why;
			}
			if (why) {
				printf("skip %s: %s\n", full, why);
				skipped++;
				continue;
			}
			skip_why = NULL;
			t0 = t_now_ms();
			t->fn();
			if (skip_why) {
				printf("skip %s: %s\n", full, skip_why);
				skipped++;
			} else if (failed_checks == before) {
				printf("ok   %s (%lld ms)\n", full,
				       (long long)(t_now_ms() - t0));
				passed++;
			} else {
				printf("FAIL %s\n", full);
				failed++;
			}
		}
		if (set_up && su->teardown)
			su->teardown();
	}
	if (skipped)
		printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	else
		printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
