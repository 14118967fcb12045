/* SPDX-License-Identifier: GPL-2.0 */
/* casfs gRPC tests: a tiny framework. */
#ifndef CASFS_GRPC_T_H
#define CASFS_GRPC_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tcheck.h"

struct suite {
	const char *name;
	const struct test *tests;
	/* NULL if ready; else why the suite's tests are skipped */
	const char *(*setup)(void);
	void (*teardown)(void);
};

void t_skip(const char *why);

int64_t t_now_ms(void);
const char *t_tmpdir(void);		/* per run, removed at exit */
int t_write_file(const char *path, const void *data, size_t len);

struct grpc_conn;
struct grpc_conn_opts;
/* What the last t_conn_new() conn logged, a line per message. */
extern char t_conn_log[8192];
/*
 * grpc_conn_new(o) for "grpc://host:port" (o->url is set here), logging
 * into t_conn_log (emptied first); prints why if it fails.
 */
struct grpc_conn *t_conn_new(struct grpc_conn_opts *o, const char *host, int port);

extern const struct suite frame_suite, md_suite, raw_suite, resolve_suite,
	interop_suite, server_suite;

#endif
