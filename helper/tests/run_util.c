// SPDX-License-Identifier: GPL-2.0
/* Tests: running the programs under test (run_util.h). */
#include "run_util.h"
#include "t.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t t_spawn(char *const argv[], const char *in_path, const char *out, const char *err)
{
	pid_t pid = fork();

	if (pid == 0) {
		int i = open(in_path ? in_path : "/dev/null", O_RDONLY);
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(i, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

struct t_run t_run(char *const argv[], const char *input, const char *dir)
{
	char in[300], out[300], err[300];
	struct t_run r = { .status = -1 };
	size_t len;
	int st;
	pid_t pid;

	snprintf(in, sizeof(in), "%s/in", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	if (input)
		t_write_file(in, input, strlen(input), 0644);
	pid = t_spawn(argv, input ? in : NULL, out, err);
	if (pid > 0 && waitpid(pid, &st, 0) == pid)
		r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = t_read_file(out, &len);
	r.err = t_read_file(err, &len);
	if (!r.out)
		r.out = strdup("");
	if (!r.err)
		r.err = strdup("");
	return r;
}

void t_run_free(struct t_run *r)
{
	free(r->out);
	free(r->err);
}
