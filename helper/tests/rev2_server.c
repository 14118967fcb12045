// SPDX-License-Identifier: GPL-2.0
/* Tests: the reference REv2 server as a child process (rev2_server.h). */
#include "rev2_server.h"
#include "t.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *t_rev2_dir(void)
{
	static char path[512];
	const char *env = getenv("CASFS_TEST_REV2_DIR");

	if (env)
		return env;
	snprintf(path, sizeof(path), "%s/../tests/rev2", CASFS_TEST_SRCDIR);
	return path;
}

const char *t_rev2_skip(void)
{
	char py[600];

	snprintf(py, sizeof(py), "%s/server.py", t_rev2_dir());
	if (access(T_PY, X_OK) || access(py, R_OK))
		return "no /usr/bin/python3 or tests/rev2/server.py";
	if (system(T_PY " -c 'import grpc, google.protobuf, grpc_tools' 2>/dev/null"))
		return "python3-grpcio / python3-protobuf / python3-grpc-tools not installed";
	return NULL;
}

bool t_rev2_start(struct t_rev2 *s, const char *root, const char *const *args)
{
	const char *argv[40];
	char py[600], line[256];
	int out[2], n = 0;
	FILE *f;

	memset(s, 0, sizeof(*s));
	snprintf(py, sizeof(py), "%s/server.py", t_rev2_dir());
	snprintf(s->log, sizeof(s->log), "%s/server.log", root);
	argv[n++] = T_PY;
	argv[n++] = py;
	argv[n++] = "--root";
	argv[n++] = root;
	argv[n++] = "--port";
	argv[n++] = "0";
	for (; args && *args && n < 38; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe(out))
		return false;
	s->pid = fork();
	if (s->pid == 0) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(out[1], 1);
		if (fd >= 0)
			dup2(fd, 2);
		close(out[0]);
		execv(T_PY, (char **)argv);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "READY port=%d", &s->port) == 1)
			break;
	fclose(f);
	snprintf(s->url, sizeof(s->url), "grpc://127.0.0.1:%d", s->port);
	return s->port > 0;
}

void t_rev2_stop(struct t_rev2 *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

int t_rev2_count(const struct t_rev2 *s, const char *needle)
{
	size_t len;
	char *buf = t_read_file(s->log, &len);
	int n = 0;

	if (!buf)
		return -1;
	for (char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(buf);
	return n;
}
