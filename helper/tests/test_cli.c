// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: casfsctl and casfs-helper as programs (sanitized builds, paths in
 * $CASFS_TEST_CTL and $CASFS_TEST_HELPER). Without casfs.ko: argument and
 * manifest checking, refusals, the helper's wait-for-the-module loop,
 * its stats file and a clean exit on SIGTERM.
 */
#include "t.h"
#include "run_util.h"
#include "../common.h"
#include "../stats.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ctl(void)
{
	return getenv("CASFS_TEST_CTL");
}

static const char *helper(void)
{
	return getenv("CASFS_TEST_HELPER");
}

const char *cli_skip(void)
{
	if (!ctl() || !helper() || access(ctl(), X_OK) || access(helper(), X_OK))
		return "CASFS_TEST_CTL / CASFS_TEST_HELPER not set (run via make check)";
	return NULL;
}

/* Run to completion; stdin gets `input` if not NULL. */
static struct t_run run(char *const argv[], const char *input)
{
	return t_run(argv, input, t_tmpdir());
}

#define H1 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H2 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void t_ctl_usage(void)
{
	struct t_run r;

	r = run((char *[]){ (char *)ctl(), NULL }, NULL);
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "usage: casfsctl stage");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "frobnicate", NULL }, NULL);
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "unknown command 'frobnicate'");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "--help", NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "prefetch");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stage", NULL }, NULL);
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "prefetch", "--jobs", "0", "/tmp", NULL }, NULL);
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "prefetch", "--regex", "(", "/tmp", NULL }, NULL);
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "--regex");
	t_run_free(&r);
}

static void t_ctl_stage_checks(void)
{
	const char *dir = t_tmpdir();
	struct t_run r;
	char mf[300];

	/* a bad line: its number */
	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL },
		"# header\n" H1 " 1 0644 a\n" H2 " 1 0999 b\n");
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "-:3: mode '0999' is not octal");
	t_run_free(&r);
	/* from a file: its name */
	snprintf(mf, sizeof(mf), "%s/m", t_tmpdir());
	t_write_file(mf, H1 " 1 0644 ../x\n", strlen(H1 " 1 0644 ../x\n"), 0644);
	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, mf, NULL }, NULL);
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "/m:1: '..' path component");
	t_run_free(&r);
	/* duplicates */
	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL },
		H1 " 1 0644 x/a\n" H2 " 2 0644 y\n" H2 " 3 0600 x/a\n");
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "-:3: x/a: duplicate (also line 1)");
	t_run_free(&r);
	/* a file that is also a parent */
	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL },
		H1 " 1 0644 p/q\n" H2 " 2 0644 p/q/r/s\n");
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "p/q/r/s: a parent is also a file");
	t_run_free(&r);
	/* a long line */
	{
		char *big = malloc(10000);

		memset(big, 'a', 9998);
		big[9998] = '\n';
		big[9999] = 0;
		r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL }, big);
		CHECK_INT(r.status, 1);
		CHECK_CONTAINS(r.err, "-:1: line longer than 8192 bytes");
		t_run_free(&r);
		free(big);
	}
	CHECK_INT(t_count_dir(dir), 0);	/* nothing was created */
}

static void t_ctl_stage_not_casfs(void)
{
	/* Nested directories pass the checks (regression: a false "parent is a
	 * file"); then the target is found not to be casfs before any mkdir. */
	const char *dir = t_tmpdir();
	struct t_run r;

	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL },
		H1 " 1 0644 d1/sub dir/file1\n"
		H2 " 2 0644 d0/sub dir/file2\n"
		H1 " 3 0755 d1/sub dir/file3\n"
		H2 " 4 0644 top\n"
		H1 " 5 0644 d1/x/y/z\n");
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");
	CHECK(!strstr(r.err, "parent"));
	CHECK_INT(t_count_dir(dir), 0);
	t_run_free(&r);
	/* a DIR to create: probed on its deepest existing ancestor first */
	{
		char sub[300];

		snprintf(sub, sizeof(sub), "%s/new/dir//", dir);
		r = run((char *[]){ (char *)ctl(), "stage", sub, NULL }, H1 " 1 0644 a\n");
		CHECK_INT(r.status, 1);
		CHECK_CONTAINS(r.err, "new/dir//: not a directory on casfs");
		CHECK_INT(t_count_dir(dir), 0);
		t_run_free(&r);
	}
	/* an empty manifest is fine, but still not casfs */
	r = run((char *[]){ (char *)ctl(), "stage", (char *)dir, NULL }, "");
	CHECK_INT(r.status, 1);
	t_run_free(&r);
}

static void t_ctl_digest_prefetch_local(void)
{
	const char *dir = t_tmpdir();
	char f[300], g[300];
	struct t_run r;

	snprintf(f, sizeof(f), "%s/file", dir);
	snprintf(g, sizeof(g), "%s/sub", dir);
	t_write_file(f, "abc", 3, 0644);
	mkdir(g, 0755);
	snprintf(g, sizeof(g), "%s/sub/other.o", dir);
	t_write_file(g, "x", 1, 0644);
	r = run((char *[]){ (char *)ctl(), "digest", f, NULL }, NULL);
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "no casfs digest");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "digest", (char *)dir, NULL }, NULL);
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a regular file");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "prefetch", "--jobs", "4", (char *)dir, NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "prefetched 0 of 0 files (0 bytes), 0 errors, 0 already present, "
			"2 not CAS-backed");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "prefetch", "-r", "\\.o$", (char *)dir, NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "1 not CAS-backed");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "prefetch", "/nonexistent", NULL }, NULL);
	CHECK_INT(r.status, 1);
	t_run_free(&r);
}

static void t_ctl_stats(void)
{
	const char *dir = t_tmpdir();
	char sf[300];
	struct t_run r;

	snprintf(sf, sizeof(sf), "%s/h.stats", dir);
	stats.requests = 5;
	stats_latency(3000);
	REQUIRE(stats_write(sf) == 0);
	r = run((char *[]){ (char *)ctl(), "stats", "--stats-file", sf, NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "kernel (casfs.ko): not loaded");
	CHECK_CONTAINS(r.out, "helper (");
	CHECK_CONTAINS(r.out, "  requests               5\n");
	CHECK_CONTAINS(r.out, "  latency_p50_ms         3.");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stats", "--stats-file", "/nonexistent", NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "helper: no statistics");
	t_run_free(&r);
}

static void t_helper_args(void)
{
	const char *dir = t_tmpdir();
	char conf[300];
	struct t_run r;

	r = run((char *[]){ (char *)helper(), NULL }, NULL);
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "casfs-helper: --cas URL is required");
	t_run_free(&r);
	r = run((char *[]){ (char *)helper(), "--help", NULL }, NULL);
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "--max-cache-bytes");
	t_run_free(&r);
	r = run((char *[]){ (char *)helper(), "--jobs", "x", NULL }, NULL);
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	snprintf(conf, sizeof(conf), "%s/helper.conf", dir);
	t_write_file(conf, "cas = file:///x\nnonsense\n", 25, 0644);
	r = run((char *[]){ (char *)helper(), "--config", conf, NULL }, NULL);
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "helper.conf:2: expected 'key = value'");
	t_run_free(&r);
}

static void t_helper_refusals(void)
{
	const char *cache = t_tmpdir();
	char c2[300];
	struct t_run r;

	r = run((char *[]){ (char *)helper(), "--cas", "ftp://x/", "--cache", (char *)cache,
			    "--stats-file", "none", NULL }, NULL);
	CHECK_INT(r.status, 78);
	CHECK_CONTAINS(r.err, "unsupported URL");
	t_run_free(&r);
	snprintf(c2, sizeof(c2), "%s", t_tmpdir());
	chmod(c2, 0777);
	r = run((char *[]){ (char *)helper(), "--cas", "file:///x", "--cache", c2,
			    "--stats-file", "none", NULL }, NULL);
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "group- or other-writable");
	t_run_free(&r);
}

static bool wait_for(const char *path, const char *needle, unsigned ms)
{
	for (unsigned i = 0; i < ms / 20; i++) {
		size_t len;
		char *s = t_read_file(path, &len);
		bool ok = s && strstr(s, needle);

		free(s);
		if (ok)
			return true;
		usleep(20000);
	}
	return false;
}

static void t_helper_waits_for_module(void)
{
	const char *dir = t_tmpdir(), *cache = t_tmpdir(), *cas = t_tmpdir();
	char out[300], err[300], sf[300], url[300], stale[300];
	int st = -1;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	snprintf(sf, sizeof(sf), "%s/helper.stats", dir);
	snprintf(url, sizeof(url), "file://%s", cas);
	snprintf(stale, sizeof(stale), "%s/tmp", cache);
	mkdir(stale, 0700);
	snprintf(stale, sizeof(stale), "%s/tmp/old.1.1", cache);
	t_write_file(stale, "x", 1, 0600);
	pid = t_spawn((char *[]){ (char *)helper(), "--cas", url, "--cache", (char *)cache,
				"--stats-file", sf, "--instance", "i1", NULL },
		    NULL, out, err);
	REQUIRE(pid > 0);
	CHECK(wait_for(err, "casfs.ko not loaded (no generic netlink family 'casfs'); "
			    "retrying every second", 5000));
	CHECK(wait_for(sf, "requests 0", 3000));
	CHECK(access(stale, F_OK) != 0);
	CHECK(wait_for(err, "--instance i1 is only used by the gRPC backend", 100));
	kill(pid, SIGTERM);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(wait_for(err, "exiting", 100));
	CHECK(wait_for(sf, "inflight 0", 100));
}

const struct test cli_tests[] = {
	{ "casfsctl_usage", t_ctl_usage },
	{ "casfsctl_stage_checks", t_ctl_stage_checks },
	{ "casfsctl_stage_not_casfs", t_ctl_stage_not_casfs },
	{ "casfsctl_digest_prefetch_local", t_ctl_digest_prefetch_local },
	{ "casfsctl_stats", t_ctl_stats },
	{ "helper_args", t_helper_args },
	{ "helper_refusals", t_helper_refusals },
	{ "helper_waits_for_module_sigterm", t_helper_waits_for_module },
	{ NULL, NULL },
};
