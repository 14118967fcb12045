// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: casfsctl's REv2 commands (materialize, check, stage --action*)
 * on the host, against the reference server (tests/rev2/server.py) with
 * inputs from tests/rev2/treegen.py. There is no casfs here, so what
 * these show is everything before the first thing is created: options,
 * the connection, fetching, and that every malicious tree is refused
 * before anything is created. tests/kernel/85-rev2-materialize.sh does
 * the rest in the guest.
 */
#include "t.h"
#include "rev2_server.h"
#include "run_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


static const char *ctl(void)
{
	return getenv("CASFS_TEST_CTL");
}

const char *ctl_rev2_skip(void)
{
	if (!ctl() || access(ctl(), X_OK))
		return "CASFS_TEST_CTL not set (run via make check)";
	return t_rev2_skip();
}

/* Output files of run(): one directory per test (t_tmpdir() has a cap). */
static const char *rundir;

static struct t_run run(char *const argv[])
{
	return t_run(argv, NULL, rundir ? rundir : (rundir = t_tmpdir()));
}

/* The server on ROOT (a fresh temp dir), port 0, quiet. */
static bool srv_start(struct t_rev2 *s, const char *root)
{
	static const char *const args[] = { "--quiet", NULL };

	return t_rev2_start(s, root, args);
}

/* treegen.py ARGS; the value of "NAME=" from its output into val. */
static bool gen(const char *args, const char *name, char *val, size_t len)
{
	char cmd[1200], line[512];
	size_t nl = strlen(name);
	bool found = false;
	FILE *p;

	snprintf(cmd, sizeof(cmd), T_PY " %s/treegen.py %s", t_rev2_dir(), args);
	p = popen(cmd, "r");
	if (!p)
		return false;
	while (fgets(line, sizeof(line), p)) {
		if (!strncmp(line, name, nl) && line[nl] == '=') {
			line[strcspn(line, "\n")] = 0;
			snprintf(val, len, "%s", line + nl + 1);
			found = true;
		}
	}
	return pclose(p) == 0 && found;
}

static void t_usage(void)
{
	const char *d = t_tmpdir();
	char cfg[300];
	struct t_run r;

	rundir = NULL;
	r = run((char *[]){ (char *)ctl(), "materialize", NULL });
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "casfsctl materialize");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "materialize", "abc/1", "/tmp/x", NULL });
	CHECK_INT(r.status, 2);
	CHECK_CONTAINS(r.err, "bad digest 'abc/1'");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "materialize", "--frob", NULL });
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	/* no CAS anywhere (an empty config file instead of the default) */
	snprintf(cfg, sizeof(cfg), "%s/empty.conf", d);
	t_write_file(cfg, "", 0, 0644);
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0",
			    "/tmp/x", NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "no CAS");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "check", "--config", cfg, "--cas",
			    "http://user:secret@127.0.0.1:1", "/tmp", NULL });
	CHECK_INT(r.status, 3);
	CHECK_CONTAINS(r.err, "need a grpc://, grpcs:// or unix: CAS");
	CHECK(!strstr(r.err, "secret"));
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "check", "--config", cfg, NULL });
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stage", "/tmp/x", "--action", "a/1",
			    "--action-result", "f", NULL });
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stage", "--action", NULL });
	CHECK_INT(r.status, 2);
	t_run_free(&r);
	/* a bad option value from the config file names file and line */
	t_write_file(cfg, "timeout = 0\n", 12, 0644);
	r = run((char *[]){ (char *)ctl(), "check", "--config", cfg, "/tmp", NULL });
	CHECK_INT(r.status, 3);
	CHECK_CONTAINS(r.err, "empty.conf:1");
	t_run_free(&r);
}

static void t_malicious_refused(void)
{
	static const char *const kinds[] = { "dotdot", "slash", "escape", "absolute",
					     "unsorted", "dup", "missing" };
	static const char *const why[] = { "bad name '..'", "'/' in name", "escapes the root",
					   "absolute symlink target", "not strictly sorted",
					   "a/b/same: duplicate name", "is not in the tree" };
	const char *d = t_tmpdir();
	char store[300], args[600], tree[200], root[200], out[300];
	struct t_rev2 s;
	struct t_run r;
	struct stat st;

	rundir = NULL;
	snprintf(store, sizeof(store), "%s/store", d);
	snprintf(out, sizeof(out), "%s/out/new", d);
	mkdir(store, 0755);
	REQUIRE(srv_start(&s, store));
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(args, sizeof(args), "malicious %s %s", store, kinds[i]);
		REQUIRE(gen(args, "TREE", tree, sizeof(tree)));
		REQUIRE(gen(args, "ROOT", root, sizeof(root)));
		r = run((char *[]){ (char *)ctl(), "materialize", "--config", "", "--cas", s.url,
				    "--tree", tree, out, NULL });
		CHECK_INT(r.status, 1);
		CHECK_CONTAINS(r.err, "refused");
		CHECK_CONTAINS(r.err, why[i]);
		t_run_free(&r);
		r = run((char *[]){ (char *)ctl(), "materialize", "--config", "", "--cas", s.url,
				    root, out, NULL });
		CHECK_INT(r.status, 1);
		CHECK_CONTAINS(r.err, "refused");
		CHECK_CONTAINS(r.err, why[i]);
		t_run_free(&r);
		CHECK(stat(out, &st) < 0);	/* nothing created, not even PATH */
	}
	/* what the policy allows passes the checks (and then finds no casfs) */
	snprintf(args, sizeof(args), "malicious %s escape", store);
	REQUIRE(gen(args, "TREE", tree, sizeof(tree)));
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", "", "--cas", s.url,
			    "--tree", "--allow-escaping-symlinks", tree, out, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");
	t_run_free(&r);
	t_rev2_stop(&s);
}

static void t_good_tree_and_config(void)
{
	const char *d = t_tmpdir();
	char store[300], args[600], tree[200], root[200], cfg[300], text[200], out[300];
	struct t_rev2 s;
	struct t_run r;

	rundir = NULL;
	snprintf(store, sizeof(store), "%s/store", d);
	snprintf(out, sizeof(out), "%s/out", d);
	mkdir(store, 0755);
	REQUIRE(srv_start(&s, store));
	snprintf(args, sizeof(args), "sample %s %s/ref", store, d);
	REQUIRE(gen(args, "TREE", tree, sizeof(tree)));
	snprintf(args, sizeof(args), "sample %s %s/ref2", store, d);
	REQUIRE(gen(args, "ROOT", root, sizeof(root)));
	/* the CAS from a helper config file */
	snprintf(cfg, sizeof(cfg), "%s/helper.conf", d);
	snprintf(text, sizeof(text), "cas = %s\ncache = /var/cache/casfs\njobs = 4\n", s.url);
	t_write_file(cfg, text, strlen(text), 0644);
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg, "--tree", tree, out,
			    NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");	/* checked and found fine */
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg, root, out, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");
	t_run_free(&r);
	/* a Tree digest that is not in the CAS, and a Directory as a Tree */
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg, "--tree",
			    "0000000000000000000000000000000000000000000000000000000000000000/5",
			    out, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "NOT_FOUND");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg, "--tree", root, out,
			    NULL });
	CHECK_INT(r.status, 1);	/* a Directory read as a Tree: some clean error */
	CHECK_CONTAINS(r.err, "casfsctl: ");
	t_run_free(&r);
	/* check: nothing CAS-backed on the host */
	r = run((char *[]){ (char *)ctl(), "check", "--config", cfg, (char *)d, NULL });
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.out, "checked 0 CAS-backed files (0 distinct blobs): 0 missing");
	t_run_free(&r);
	t_rev2_stop(&s);
	/* the server gone: a clean error within the timeout */
	r = run((char *[]){ (char *)ctl(), "materialize", "--config", cfg, "--timeout", "2",
			    root, out, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "GetTree");
	t_run_free(&r);
}

static void t_action_result(void)
{
	const char *d = t_tmpdir();
	char store[300], args[700], action[200], arfile[300], bad[300], out[300];
	struct t_rev2 s;
	struct t_run r;

	rundir = NULL;
	snprintf(store, sizeof(store), "%s/store", d);
	snprintf(arfile, sizeof(arfile), "%s/ar.bin", d);
	snprintf(bad, sizeof(bad), "%s/bad.bin", d);
	snprintf(out, sizeof(out), "%s/out", d);
	mkdir(store, 0755);
	REQUIRE(srv_start(&s, store));
	snprintf(args, sizeof(args), "action %s %s/aref %s", store, d, arfile);
	REQUIRE(gen(args, "ACTION", action, sizeof(action)));
	r = run((char *[]){ (char *)ctl(), "stage", out, "--config", "", "--cas", s.url,
			    "--action", action, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");	/* fetched and checked */
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stage", out, "--config", "", "--cas", s.url,
			    "--action-result", arfile, NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not a directory on casfs");
	t_run_free(&r);
	r = run((char *[]){ (char *)ctl(), "stage", out, "--config", "", "--cas", s.url,
			    "--action",
			    "1111111111111111111111111111111111111111111111111111111111111111/3",
			    NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "not in the action cache");
	t_run_free(&r);
	/* hostile ActionResults need no server at all */
	t_write_file(bad, "\x12\x09", 2, 0644);
	r = run((char *[]){ (char *)ctl(), "stage", out, "--config", "", "--action-result", bad,
			    NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "ActionResult: malformed");
	t_run_free(&r);
	/* OutputFile{path "../x", digest{hash 64 x 'a'}} */
	{
		char m[128] = "\x12\x4a\x0a\x04../x\x12\x42\x0a\x40";

		memset(m + 12, 'a', 64);
		t_write_file(bad, m, 76, 0644);
	}
	r = run((char *[]){ (char *)ctl(), "stage", out, "--config", "", "--action-result", bad,
			    NULL });
	CHECK_INT(r.status, 1);
	CHECK_CONTAINS(r.err, "output '../x': '..' path component");
	t_run_free(&r);
	t_rev2_stop(&s);
}

const struct test ctl_rev2_tests[] = {
	{ "usage", t_usage },
	{ "malicious_refused", t_malicious_refused },
	{ "good_tree_and_config", t_good_tree_and_config },
	{ "action_result", t_action_result },
	{ NULL, NULL },
};
