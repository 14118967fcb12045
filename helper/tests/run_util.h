/* SPDX-License-Identifier: GPL-2.0 */
/* Tests: running the programs under test (casfsctl, casfs-helper). */
#ifndef CASFS_T_RUN_UTIL_H
#define CASFS_T_RUN_UTIL_H

#include <sys/types.h>

struct t_run {
	int status;		/* exit status, 128 + signal, or -1 */
	char *out, *err;	/* everything it printed (never NULL) */
};

/* Start argv with stdin from in_path (or /dev/null), output to out/err files. */
pid_t t_spawn(char *const argv[], const char *in_path, const char *out, const char *err);
/*
 * Run argv to completion, stdin from `input` if not NULL; its files go to
 * dir (e.g. a t_tmpdir() of the test).
 */
struct t_run t_run(char *const argv[], const char *input, const char *dir);
void t_run_free(struct t_run *r);

#endif
