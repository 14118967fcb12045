/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs tests: the checks every test file uses. Shared by the gRPC core's
 * tests (grpc/tests/t.h) and the helper's (tests/t.h), which add their own
 * runners and utilities.
 */
#ifndef CASFS_TCHECK_H
#define CASFS_TCHECK_H

#include <stdio.h>
#include <string.h>

struct test {
	const char *name;
	void (*fn)(void);
};

void t_fail(const char *file, int line, const char *what);
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
/* Stop the test if a precondition does not hold. */
#define REQUIRE(c) do { if (!(c)) { t_fail(__FILE__, __LINE__, #c); return; } } while (0)

#endif
