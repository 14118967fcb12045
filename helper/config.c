// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: command line and config file. */
#include "config.h"
#include "grpc/grpc.h"
#include "common.h"
#include "cache.h"
#include "fetch.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void options_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->jobs = DEFAULT_JOBS;
	o->timeout_s = DEFAULT_TIMEOUT_S;
	o->min_free_bytes = DEFAULT_MIN_FREE_BYTES;
	o->min_free_percent = DEFAULT_MIN_FREE_PERCENT;
	o->stats_file = strdup(DEFAULT_STATS_FILE);
}

void options_free(struct options *o)
{
	free(o->cas);
	free(o->cache);
	free(o->instance);
	free(o->ca_file);
	free(o->auth_header_file);
	free(o->client_cert);
	free(o->client_key);
	free(o->stats_file);
	free(o->config);
	memset(o, 0, sizeof(*o));
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t len = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (len && strchr("KMGTkmgt", s[len - 1])) {
		shift = 10 * (unsigned)(strchr("KMGT", toupper((unsigned char)s[len - 1])) -
					"KMGT" + 1);
		len--;
	}
	if (!len || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len);
	num[len] = 0;
	if (parse_u64(num, UINT64_MAX, &v))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const t[] = { "1", "yes", "true", "on" };
	static const char *const f[] = { "0", "no", "false", "off" };

	for (unsigned i = 0; i < 4; i++) {
		if (!strcasecmp(v, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, f[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int options_set(struct options *o, const char *key0, const char *v,
		char *err, size_t errlen)
{
	char key[64];
	uint64_t n;
	size_t i;

	for (i = 0; key0[i] && i < sizeof(key) - 1; i++)
		key[i] = key0[i] == '_' ? '-' : key0[i];
	key[i] = 0;
	if (key0[i])
		return fail(err, errlen, "unknown option '%.60s...'", key0);
	if (strlen(v) > 4096)
		return fail(err, errlen, "%s: value too long", key);
	if (!printable(v))
		return fail(err, errlen, "%s: control characters in value", key);

	if (!strcmp(key, "cas")) {
		if (!*v)
			return fail(err, errlen, "cas: empty URL");
		return set_str(&o->cas, v);
	}
	if (!strcmp(key, "cache")) {
		if (v[0] != '/')
			return fail(err, errlen, "cache: '%s' is not an absolute path", v);
		return set_str(&o->cache, v);
	}
	if (!strcmp(key, "instance"))
		return set_str(&o->instance, v);
	if (!strcmp(key, "ca-file"))
		return set_str(&o->ca_file, v);
	if (!strcmp(key, "auth-header-file"))
		return set_str(&o->auth_header_file, v);
	if (!strcmp(key, "client-cert"))
		return set_str(&o->client_cert, v);
	if (!strcmp(key, "client-key"))
		return set_str(&o->client_key, v);
	if (!strcmp(key, "stats-file")) {
		if (!strcmp(v, "none"))
			v = "";
		if (*v && v[0] != '/')
			return fail(err, errlen, "stats-file: '%s' is not an absolute path", v);
		return set_str(&o->stats_file, v);
	}
	if (!strcmp(key, "max-cache-bytes")) {
		if (parse_size(v, &o->max_cache_bytes))
			return fail(err, errlen, "max-cache-bytes: bad size '%s'", v);
		return 0;
	}
	if (!strcmp(key, "min-free-bytes")) {
		if (parse_size(v, &o->min_free_bytes))
			return fail(err, errlen, "min-free-bytes: bad size '%s'", v);
		o->min_free_bytes_set = true;
		return 0;
	}
	if (!strcmp(key, "min-free-percent")) {
		if (parse_u64(v, MAX_MIN_FREE_PERCENT, &n))
			return fail(err, errlen, "min-free-percent: want 0..%d, not '%s'",
				    MAX_MIN_FREE_PERCENT, v);
		o->min_free_percent = (unsigned)n;
		o->min_free_percent_set = true;
		return 0;
	}
	if (!strcmp(key, "sync-batch")) {
		if (parse_u64(v, FETCH_MAX_SYNC_BATCH, &n) || n < 1)
			return fail(err, errlen, "sync-batch: want 1..%d, not '%s'",
				    FETCH_MAX_SYNC_BATCH, v);
		o->sync_batch = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "jobs")) {
		if (parse_u64(v, MAX_JOBS, &n) || n < 1)
			return fail(err, errlen, "jobs: want 1..%d, not '%s'", MAX_JOBS, v);
		o->jobs = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "timeout")) {
		if (parse_u64(v, MAX_TIMEOUT_S, &n) || n < 1)
			return fail(err, errlen, "timeout: want 1..%d seconds, not '%s'",
				    MAX_TIMEOUT_S, v);
		o->timeout_s = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "verbose")) {
		if (parse_bool(v, &o->verbose))
			return fail(err, errlen, "verbose: want yes or no, not '%s'", v);
		return 0;
	}
	return fail(err, errlen, "unknown option '%s'", key);
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = 0;
	*end = 0;
	return s;
}

int config_parse(struct options *o, const char *buf, size_t len, const char *fname,
		 char *err, size_t errlen)
{
	char line[CONFIG_MAX_LINE + 1], sub[512];
	unsigned long lineno = 0;
	size_t pos = 0;

	if (len > CONFIG_MAX_BYTES)
		return fail(err, errlen, "%s: larger than %d bytes", fname, CONFIG_MAX_BYTES);
	if (memchr(buf, 0, len))
		return fail(err, errlen, "%s: contains a NUL byte", fname);
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t l = (nl ? (size_t)(nl - buf) : len) - pos;
		char *k, *v, *eq;

		lineno++;
		if (l > CONFIG_MAX_LINE)
			return fail(err, errlen, "%s:%lu: line too long", fname, lineno);
		memcpy(line, buf + pos, l);
		line[l] = 0;
		pos += l + 1;
		k = trim(line, line + l);
		if (!*k || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq)
			return fail(err, errlen, "%s:%lu: expected 'key = value'", fname, lineno);
		v = trim(eq + 1, eq + strlen(eq));
		k = trim(k, eq);
		if (!*k)
			return fail(err, errlen, "%s:%lu: missing key", fname, lineno);
		if (strlen(v) >= 2 && v[0] == '"' && v[strlen(v) - 1] == '"') {
			v[strlen(v) - 1] = 0;
			v++;
		}
		if (!strcmp(k, "config"))
			return fail(err, errlen, "%s:%lu: 'config' cannot be set in a config file",
				    fname, lineno);
		if (options_set(o, k, v, sub, sizeof(sub)))
			return fail(err, errlen, "%s:%lu: %s", fname, lineno, sub);
	}
	return 0;
}

int config_load(struct options *o, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int r = read_small_file(path, CONFIG_MAX_BYTES, &buf, &len);

	if (r == -EFBIG)
		return fail(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
	if (r)
		return fail(err, errlen, "%s: %s", path, strerror(-r));
	r = config_parse(o, buf, len, path, err, errlen);
	free(buf);
	return r;
}

static const struct option longopts[] = {
	{ "cas", required_argument, NULL, 0 },
	{ "cache", required_argument, NULL, 0 },
	{ "instance", required_argument, NULL, 0 },
	{ "max-cache-bytes", required_argument, NULL, 0 },
	{ "min-free-bytes", required_argument, NULL, 0 },
	{ "min-free-percent", required_argument, NULL, 0 },
	{ "sync-batch", required_argument, NULL, 0 },
	{ "jobs", required_argument, NULL, 0 },
	{ "config", required_argument, NULL, 0 },
	{ "ca-file", required_argument, NULL, 0 },
	{ "auth-header-file", required_argument, NULL, 0 },
	{ "client-cert", required_argument, NULL, 0 },
	{ "client-key", required_argument, NULL, 0 },
	{ "timeout", required_argument, NULL, 0 },
	{ "stats-file", required_argument, NULL, 0 },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const char usage[] =
	"usage: casfs-helper --cas URL --cache DIR [--instance NAME]\n"
	"         [--max-cache-bytes N[K|M|G|T]] [--min-free-bytes N[K|M|G|T]]\n"
	"         [--min-free-percent P] [--sync-batch N] [--jobs N] [--config FILE]\n"
	"         [--ca-file FILE] [--auth-header-file FILE] [--timeout SECS]\n"
	"         [--client-cert FILE [--client-key FILE]]\n"
	"         [--stats-file PATH|none] [--verbose]\n"
	"\n"
	"Fetches blobs for casfs.ko on demand, verifies them and publishes them\n"
	"in DIR/blobs. URL: file:///DIR, http://HOST[:PORT]/PATH, https://...\n"
	"(Bazel's HTTP cache), grpc://HOST:PORT, grpcs://HOST:PORT or\n"
	"unix:/PATH (REv2 on a unix socket, e.g. a local bazel-remote; the\n"
	"header file then holds gRPC metadata, e.g. 'authorization: Bearer T').\n"
	"\n"
	"The cache keeps min(--min-free-bytes, --min-free-percent of its\n"
	"filesystem) free (default: 1G and 5%, whichever is smaller; one option\n"
	"alone is the floor; 0 disables it), evicting LRU blobs, and refuses\n"
	"blobs that cannot fit (ENOSPC) or exceed --max-cache-bytes (EFBIG).\n"
	"Verified blobs are made durable in groups of up to --sync-batch\n"
	"(default 64; 1: fsync each blob) by one syncfs of the cache's\n"
	"filesystem, then renamed into DIR/blobs and answered.\n";

int options_parse_argv(struct options *o, int argc, char **argv, char *err, size_t errlen)
{
	char sub[512];
	int c, idx, r;

	/* Pass 1: find --config (and --help). */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+vhV", longopts, &idx)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == 'V') {
			printf("casfs-helper %s\n", CASFS_VERSION);
			return 1;
		}
		if (c == '?' || c == ':')
			return fail(err, errlen, "bad option '%s' (try --help)",
				    optind > 0 && optind <= argc ? argv[optind - 1] : "?");
		if (c == 0 && !strcmp(longopts[idx].name, "config") &&
		    set_str(&o->config, optarg))
			return -ENOMEM;
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
	if (o->config) {
		r = config_load(o, o->config, err, errlen);
		if (r)
			return r;
	}
	/* Pass 2: the command line wins. */
	optind = 1;
	while ((c = getopt_long(argc, argv, "+vhV", longopts, &idx)) != -1) {
		const char *name = c == 'v' ? "verbose" : longopts[idx].name;

		if (!strcmp(name, "config"))
			continue;
		if (options_set(o, name, c == 'v' ? "yes" : optarg, sub, sizeof(sub)))
			return fail(err, errlen, "--%s", sub);
	}
	return 0;
}

void options_min_free(const struct options *o, uint64_t *bytes, unsigned *pct)
{
	bool both = o->min_free_bytes_set == o->min_free_percent_set;

	*bytes = both || o->min_free_bytes_set ? o->min_free_bytes : CACHE_NO_BYTES;
	*pct = both || o->min_free_percent_set ? o->min_free_percent : CACHE_NO_PCT;
}

int options_check(const struct options *o, char *err, size_t errlen)
{
	if (!o->cas)
		return fail(err, errlen, "--cas URL is required");
	if (!o->cache)
		return fail(err, errlen, "--cache DIR is required");
	return 0;
}

void free_lines(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

#define MAX_HEADERS 32
#define MAX_HEADER_LEN 8192

struct header_parse {
	char **v;
	size_t n;
	char *err;
	size_t errlen;
};

/* One "Name: value" line (grpc_header_lines found its ':'). */
static int header_line(void *ud, unsigned long lineno, const char *s, size_t l,
		       size_t colon)
{
	struct header_parse *h = ud;

	for (size_t i = 0; i < colon; i++)	/* RFC 9110 token */
		if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
			return fail(h->err, h->errlen,
				    "line %lu: not a 'Name: value' header", lineno);
	for (size_t i = colon + 1; i < l; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return fail(h->err, h->errlen,
				    "line %lu: not a 'Name: value' header", lineno);
	if (h->n == MAX_HEADERS)
		return fail(h->err, h->errlen, "more than %d headers", MAX_HEADERS);
	h->v[h->n] = strndup(s, l);
	if (!h->v[h->n])
		return -ENOMEM;
	h->n++;
	return 0;
}

int parse_header_lines(const char *buf, size_t len, char ***out, char *err, size_t errlen)
{
	struct header_parse h = { .err = err, .errlen = errlen };
	int r;

	h.v = calloc(MAX_HEADERS + 1, sizeof(*h.v));
	if (!h.v)
		return -ENOMEM;
	r = grpc_header_lines(buf, len, MAX_HEADER_LEN, header_line, &h, err, errlen);
	if (r) {
		free_lines(h.v);
		return r == -E2BIG ? -EINVAL : r;
	}
	*out = h.v;
	return 0;
}
