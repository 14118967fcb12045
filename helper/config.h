/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: options from the command line and from a `key = value`
 * config file (same names as the long options; the command line wins).
 */
#ifndef CASFS_CONFIG_H
#define CASFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEFAULT_JOBS 8
#define DEFAULT_TIMEOUT_S 60
#define DEFAULT_STATS_FILE "/run/casfs/helper.stats"
#define MAX_JOBS 256
#define MAX_TIMEOUT_S 86400
#define CONFIG_MAX_BYTES (1 << 20)
#define CONFIG_MAX_LINE 4096

struct options {
	char *cas;
	char *cache;
	char *instance;
	char *ca_file;
	char *auth_header_file;	/* http: headers; grpc: metadata */
	char *client_cert;	/* grpcs: client certificate (PEM) */
	char *client_key;	/* grpcs: its key (default: in client_cert) */
	char *stats_file;	/* "" = none */
	char *config;
	uint64_t max_cache_bytes;
	/* free-space floor: see options_min_free(); *_set: given by the user */
	uint64_t min_free_bytes;
	unsigned min_free_percent;
	bool min_free_bytes_set, min_free_percent_set;
	unsigned jobs;
	unsigned timeout_s;
	unsigned sync_batch;	/* 0: FETCH_SYNC_BATCH; 1: fsync each blob */
	bool verbose;
};

void options_init(struct options *o);
void options_free(struct options *o);
/* key is a long option name without "--" ('_' accepted for '-'). 0 or -EINVAL with err. */
int options_set(struct options *o, const char *key, const char *value,
		char *err, size_t errlen);
/* Parse config text; errors name the file and line. */
int config_parse(struct options *o, const char *buf, size_t len, const char *fname,
		 char *err, size_t errlen);
int config_load(struct options *o, const char *path, char *err, size_t errlen);
/*
 * Full command line: --config FILE is loaded first, then every other
 * option applied over it. Returns 0, 1 for --help/--version (printed),
 * or -EINVAL with err.
 */
int options_parse_argv(struct options *o, int argc, char **argv, char *err, size_t errlen);
/*
 * Default free-space floor: 5% of the cache's filesystem or 1 GiB,
 * whichever is smaller. Given alone, either option is the floor; given
 * both, the smaller wins; 0 turns the floor off.
 */
#define DEFAULT_MIN_FREE_BYTES (1ULL << 30)
#define DEFAULT_MIN_FREE_PERCENT 5
#define MAX_MIN_FREE_PERCENT 90
/* The floor's terms for cache_set_floor() (CACHE_NO_BYTES/CACHE_NO_PCT: left out). */
void options_min_free(const struct options *o, uint64_t *bytes, unsigned *pct);

/* Check required options after parsing. */
int options_check(const struct options *o, char *err, size_t errlen);

/* "123", "64K", "10G", "1T" (powers of 1024). */
int parse_size(const char *s, uint64_t *out);

/*
 * Header lines ("Name: value"), one per line; blank lines and lines
 * starting with '#' skipped. At most 32 headers of 8 KiB. *out is a
 * NULL-terminated array of strings (free with free_lines).
 */
int parse_header_lines(const char *buf, size_t len, char ***out, char *err, size_t errlen);
void free_lines(char **v);

#endif
