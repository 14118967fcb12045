/* SPDX-License-Identifier: GPL-2.0 */
/* casfs gRPC tests: a tiny framework. */
#ifndef CASFS_GRPC_T_H
#define CASFS_GRPC_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct test {
	const char *name;
	void (*fn)(void);
};

struct suite {
	const char *name;
	const struct test *tests;
	/* NULL if ready; else why the suite's tests are skipped */
	const char *(*setup)(void);
	void (*teardown)(void);
};

void t_fail(const char *file, int line, const char *what);
void t_skip(const char *why);
#define CHECK(c) do { if (!(c)) t_fail(__FILE__, __LINE__, #c); } while (0)
#define CHECK_INT(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { \
		char _m[512]; \
		snprintf(_m, sizeof(_m), "%s == %s (%lld != %lld)", #a, #b, _a, _b); \
		t_fail(__FILE__, __LINE__, _m); \
	} } while (0)
#define CHECK_STR(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b)) { \
		char _m[1024]; \
		snprintf(_m, sizeof(_m), "%s == %s (\"%s\" != \"%s\")", #a, #b, \
			 _a ? _a : "(null)", _b ? _b : "(null)"); \
		t_fail(__FILE__, __LINE__, _m); \
	} } while (0)
#define CHECK_CONTAINS(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (!_a || !strstr(_a, _b)) { \
		char _m[1024]; \
		snprintf(_m, sizeof(_m), "%s contains \"%s\" (is \"%.600s\")", #a, _b, \
			 _a ? _a : "(null)"); \
		t_fail(__FILE__, __LINE__, _m); \
	} } while (0)
#define REQUIRE(c) do { if (!(c)) { t_fail(__FILE__, __LINE__, #c); return; } } while (0)

int64_t t_now_ms(void);
const char *t_tmpdir(void);		/* per run, removed at exit */
int t_write_file(const char *path, const void *data, size_t len);

extern const struct suite frame_suite, md_suite, raw_suite, interop_suite;

#endif
