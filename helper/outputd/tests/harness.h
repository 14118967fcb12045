/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd tests: a tiny runner. A test file registers its tests
 * with T_SUITE(); the runner (harness.c) runs every registered suite, or
 * with T=substring only the tests whose "suite/name" contains it.
 */
#ifndef CASFS_OUTPUTD_HARNESS_H
#define CASFS_OUTPUTD_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "../../grpc/tests/tcheck.h"

void t_register(const char *suite, const struct test *tests);
#define T_SUITE(sname, tests) \
	__attribute__((constructor)) static void t_reg_##sname(void) \
	{ t_register(#sname, tests); }

/* A fresh empty directory for this test (removed after it), on tmpfs if any. */
const char *t_tmpdir(void);
/* Remove a tree (test helper: uses nftw, no symlinks followed). */
void t_rm_rf(const char *path);
double t_now(void);

#endif
