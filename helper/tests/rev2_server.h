/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tests: the reference REv2 server (tests/rev2/server.py, run by
 * /usr/bin/python3 with Debian's grpcio) as a child process on 127.0.0.1.
 */
#ifndef CASFS_T_REV2_SERVER_H
#define CASFS_T_REV2_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#define T_PY "/usr/bin/python3"

struct t_rev2 {
	pid_t pid;
	int port;
	char url[64];		/* grpc://127.0.0.1:PORT */
	char log[300];		/* its stderr: one line per call */
};

/* Directory of server.py and its siblings (tests/rev2). */
const char *t_rev2_dir(void);
/* NULL if the server can run here, else why not (for a suite's skip). */
const char *t_rev2_skip(void);
/*
 * server.py --root ROOT --port 0 ARGS... (NULL-terminated, may be NULL);
 * waits for its READY line. Its log goes to ROOT/server.log.
 */
bool t_rev2_start(struct t_rev2 *s, const char *root, const char *const *args);
void t_rev2_stop(struct t_rev2 *s);
/* Occurrences of needle in the server's log (-1: no log). */
int t_rev2_count(const struct t_rev2 *s, const char *needle);

#endif
