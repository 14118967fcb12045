// SPDX-License-Identifier: GPL-2.0
/* Tests: options, config file, header file, sizes, URL redaction. */
#include "t.h"
#include "../common.h"
#include "../config.h"
#include "../cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cfg(struct options *o, const char *text, char *err)
{
	err[0] = 0;
	return config_parse(o, text, strlen(text), "test.conf", err, 512);
}

static void t_good_file(void)
{
	struct options o;
	char err[512];

	options_init(&o);
	CHECK_INT(cfg(&o,
		      "# casfs-helper\n"
		      "\n"
		      "cas = https://cache.example.com:8443/base\n"
		      "  cache=/var/cache/casfs  \n"
		      "instance = \"main instance\"\n"
		      "max-cache-bytes = 10G\n"
		      "max_cache_bytes = 20G\r\n"
		      "jobs = 16\n"
		      "timeout = 30\n"
		      "ca-file = /etc/ssl/certs/ca.pem\n"
		      "auth-header-file = /etc/casfs/auth\n"
		      "stats-file = none\n"
		      "verbose = yes", err), 0);
	CHECK_STR(err, "");
	CHECK_STR(o.cas, "https://cache.example.com:8443/base");
	CHECK_STR(o.cache, "/var/cache/casfs");
	CHECK_STR(o.instance, "main instance");
	CHECK_INT(o.max_cache_bytes, 20ULL << 30);
	CHECK_INT(o.jobs, 16);
	CHECK_INT(o.timeout_s, 30);
	CHECK_STR(o.ca_file, "/etc/ssl/certs/ca.pem");
	CHECK_STR(o.auth_header_file, "/etc/casfs/auth");
	CHECK_STR(o.stats_file, "");
	CHECK(o.verbose);
	options_free(&o);
}

static void bad(const char *text, const char *want)
{
	struct options o;
	char err[512];

	options_init(&o);
	CHECK_INT(cfg(&o, text, err), -EINVAL);
	if (!strstr(err, want)) {
		char m[1200];

		snprintf(m, sizeof(m), "error '%s' should contain '%s'", err, want);
		t_fail(__FILE__, __LINE__, m);
	}
	options_free(&o);
}

static void t_bad_files(void)
{
	bad("cas = file:///x\nbogus = 1\n", "test.conf:2: unknown option 'bogus'");
	bad("cas file:///x\n", "test.conf:1: expected 'key = value'");
	bad(" = 3\n", "missing key");
	bad("jobs = 0\n", "jobs: want 1..256");
	bad("jobs = 257\n", "jobs");
	bad("jobs = -1\n", "jobs");
	bad("jobs = 8x\n", "jobs");
	bad("timeout = 0\n", "timeout");
	bad("timeout = 86401\n", "timeout");
	bad("max-cache-bytes = 10Q\n", "bad size");
	bad("max-cache-bytes = 99999999999T\n", "bad size");
	bad("max-cache-bytes = -5\n", "bad size");
	bad("max-cache-bytes = G\n", "bad size");
	bad("verbose = maybe\n", "verbose");
	bad("cache = relative/path\n", "not an absolute path");
	bad("stats-file = relative\n", "not an absolute path");
	bad("cas = \n", "empty URL");
	bad("config = /etc/other.conf\n", "cannot be set in a config file");
	bad("cas = a\x01" "b\n", "control characters");
	{
		const char t[] = "cas = x\0y\n";
		struct options o;
		char err[512];

		options_init(&o);
		CHECK_INT(config_parse(&o, t, sizeof(t) - 1, "f", err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "NUL") != NULL);
		options_free(&o);
	}
	{
		char *t = malloc(CONFIG_MAX_LINE + 100);

		memset(t, 'x', CONFIG_MAX_LINE + 99);
		t[CONFIG_MAX_LINE + 99] = 0;
		bad(t, "line too long");
		free(t);
	}
}

static void t_sizes(void)
{
	uint64_t v;

	CHECK_INT(parse_size("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(parse_size("123", &v), 0);
	CHECK_INT(v, 123);
	CHECK_INT(parse_size("64K", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(parse_size("3m", &v), 0);
	CHECK_INT(v, 3 << 20);
	CHECK_INT(parse_size("1T", &v), 0);
	CHECK_INT(v, 1ULL << 40);
	CHECK(parse_size("", &v) < 0);
	CHECK(parse_size("K", &v) < 0);
	CHECK(parse_size("1.5G", &v) < 0);
	CHECK(parse_size(" 1", &v) < 0);
	CHECK(parse_size("18446744073709551616", &v) < 0);
	CHECK(parse_size("16777216T", &v) < 0);
}

static void t_argv_wins(void)
{
	const char *dir = t_tmpdir();
	char path[400], err[512];
	struct options o;

	snprintf(path, sizeof(path), "%s/helper.conf", dir);
	t_write_file(path, "cas = file:///from-config\ncache = /c1\njobs = 3\ntimeout = 9\n",
		     strlen("cas = file:///from-config\ncache = /c1\njobs = 3\ntimeout = 9\n"),
		     0644);
	{
		char *argv[] = { "casfs-helper", "--jobs", "5", "--config", path,
				 "--cache=/c2", "-v", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 7, argv, err, sizeof(err)), 0);
		CHECK_STR(o.cas, "file:///from-config");
		CHECK_STR(o.cache, "/c2");
		CHECK_INT(o.jobs, 5);
		CHECK_INT(o.timeout_s, 9);
		CHECK(o.verbose);
		CHECK_INT(options_check(&o, err, sizeof(err)), 0);
		options_free(&o);
	}
	{
		char *argv[] = { "casfs-helper", "--cas", "file:///x", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 3, argv, err, sizeof(err)), 0);
		CHECK_INT(options_check(&o, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "--cache") != NULL);
		CHECK_INT(o.jobs, DEFAULT_JOBS);
		CHECK_INT(o.timeout_s, DEFAULT_TIMEOUT_S);
		CHECK_STR(o.stats_file, DEFAULT_STATS_FILE);
		options_free(&o);
	}
	{
		char *argv[] = { "casfs-helper", "--jobs", "0", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 3, argv, err, sizeof(err)), -EINVAL);
		options_free(&o);
	}
	{
		char *argv[] = { "casfs-helper", "--nope", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 2, argv, err, sizeof(err)), -EINVAL);
		options_free(&o);
	}
	{
		char *argv[] = { "casfs-helper", "stray", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 2, argv, err, sizeof(err)), -EINVAL);
		options_free(&o);
	}
	{
		char *argv[] = { "casfs-helper", "--config", "/nonexistent.conf", NULL };

		options_init(&o);
		CHECK_INT(options_parse_argv(&o, 3, argv, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "/nonexistent.conf") != NULL);
		options_free(&o);
	}
}

static void t_header_lines(void)
{
	char **v = NULL, err[256];
	const char *good = "# token for the cache\n"
			   "Authorization: Bearer xyz\r\n"
			   "\n"
			   "  X-Custom-Header:  value with\ttab  \n"
			   "X-Empty:";

	CHECK_INT(parse_header_lines(good, strlen(good), &v, err, sizeof(err)), 0);
	REQUIRE(v);
	CHECK_STR(v[0], "Authorization: Bearer xyz");
	CHECK_STR(v[1], "X-Custom-Header:  value with\ttab");
	CHECK_STR(v[2], "X-Empty:");
	CHECK(v[3] == NULL);
	free_lines(v);

	CHECK_INT(parse_header_lines("no colon here\n", 14, &v, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 1") != NULL);
	CHECK_INT(parse_header_lines(": empty name\n", 13, &v, err, sizeof(err)), -EINVAL);
	CHECK_INT(parse_header_lines("Bad Name: x\n", 12, &v, err, sizeof(err)), -EINVAL);
	CHECK_INT(parse_header_lines("A: b\x01\n", 6, &v, err, sizeof(err)), -EINVAL);
	CHECK_INT(parse_header_lines("A: b\0c\n", 7, &v, err, sizeof(err)), -EINVAL);
	{
		char many[2000] = "";

		for (int i = 0; i < 33; i++)
			strcat(many, "X-A: b\n");
		CHECK_INT(parse_header_lines(many, strlen(many), &v, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "more than") != NULL);
	}
	CHECK_INT(parse_header_lines("", 0, &v, err, sizeof(err)), 0);
	CHECK(v && v[0] == NULL);
	free_lines(v);
}

static void t_redact(void)
{
	char out[256];

	url_redact("https://user:secret@host:8080/path@x", out, sizeof(out));
	CHECK_STR(out, "https://***@host:8080/path@x");
	url_redact("http://host/a@b", out, sizeof(out));
	CHECK_STR(out, "http://host/a@b");
	url_redact("file:///srv/cas", out, sizeof(out));
	CHECK_STR(out, "file:///srv/cas");
}

static void t_parse_u64(void)
{
	uint64_t v;

	CHECK_INT(parse_u64("0", 10, &v), 0);
	CHECK_INT(parse_u64("10", 10, &v), 0);
	CHECK_INT(parse_u64("11", 10, &v), -ERANGE);
	CHECK_INT(parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(parse_u64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
	CHECK_INT(parse_u64("01", 10, &v), -EINVAL);
	CHECK_INT(parse_u64("", 10, &v), -EINVAL);
	CHECK_INT(parse_u64("1 ", 10, &v), -EINVAL);
}

/* --min-free-bytes / --min-free-percent: which terms make the floor. */
static void t_min_free(void)
{
	struct options o;
	char err[512];
	uint64_t b;
	unsigned p;

	options_init(&o);
	options_min_free(&o, &b, &p);		/* default: 1 GiB and 5% */
	CHECK_INT(b, 1ULL << 30);
	CHECK_INT(p, 5);
	CHECK_INT(cfg(&o, "min-free-bytes = 20G\n", err), 0);
	options_min_free(&o, &b, &p);		/* alone: it is the floor */
	CHECK_INT(b, 20ULL << 30);
	CHECK_INT(p, CACHE_NO_PCT);
	CHECK_INT(cfg(&o, "min_free_percent = 10\n", err), 0);
	options_min_free(&o, &b, &p);		/* both: the smaller */
	CHECK_INT(b, 20ULL << 30);
	CHECK_INT(p, 10);
	options_free(&o);
	options_init(&o);
	CHECK_INT(cfg(&o, "min-free-percent = 0\n", err), 0);
	options_min_free(&o, &b, &p);
	CHECK_INT(b, CACHE_NO_BYTES);
	CHECK_INT(p, 0);
	options_free(&o);
	bad("min-free-percent = 91\n", "min-free-percent: want 0..90");
	bad("min-free-percent = 5%\n", "min-free-percent: want 0..90");
	bad("min-free-bytes = lots\n", "min-free-bytes: bad size");
	bad("sync-batch = 0\n", "sync-batch: want 1..4096");
	bad("sync-batch = 4097\n", "sync-batch: want 1..4096");
	options_init(&o);
	CHECK_INT(o.sync_batch, 0);
	CHECK_INT(cfg(&o, "sync-batch = 1\n", err), 0);
	CHECK_INT(o.sync_batch, 1);
	options_free(&o);
}

const struct test config_tests[] = {
	{ "good_file", t_good_file },
	{ "bad_files", t_bad_files },
	{ "sizes", t_sizes },
	{ "command_line_wins", t_argv_wins },
	{ "auth_header_lines", t_header_lines },
	{ "url_redact", t_redact },
	{ "parse_u64", t_parse_u64 },
	{ "min_free", t_min_free },
	{ NULL, NULL },
};
