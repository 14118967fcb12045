/* SPDX-License-Identifier: GPL-2.0 */
/* casfs userspace unit tests: a tiny framework. */
#ifndef CASFS_T_H
#define CASFS_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../grpc/tests/tcheck.h"

struct suite {
	const char *name;
	const struct test *tests;
	/* set when the suite cannot run here; its tests are reported skipped */
	const char *(*skip)(void);
};

extern int t_checks_failed;

/* Captured log lines (since the test began). */
bool t_log_contains(const char *needle);
void t_log_clear(void);

/* A fresh 0755 root-owned temp dir (removed after the test). */
const char *t_tmpdir(void);
void t_rm_rf(const char *path);
int t_write_file(const char *path, const void *data, size_t len, int mode);
/* Read a file; returns malloc'ed bytes (caller frees) or NULL. */
char *t_read_file(const char *path, size_t *len);
int t_count_dir(const char *path);	/* entries besides . and .. */
void t_fill(void *buf, size_t len, unsigned seed);
void t_sha256_hex(const void *p, size_t n, char hex[65]);

extern const struct test verify_tests[], publish_tests[], manifest_tests[],
	cache_tests[], config_tests[], fetch_file_tests[], http_tests[],
	netlink_tests[], stats_tests[], cli_tests[], grpc_backend_tests[], rev2_tests[], tree_tests[],
	ctl_rev2_tests[], outputd_tests[];
const char *outputd_skip(void);
const char *ctl_rev2_skip(void);
const char *http_skip(void);
const char *cli_skip(void);
const char *grpc_backend_skip(void);

#endif
