// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd tests: outpath.c on the host, with the fake fs. */
#include "harness.h"
#include "fake_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- fixtures ---- */

static char T[PATH_MAX];		/* the test's temp dir */
static int rootfd = -1;
static struct outpath op;

/* A counting, optionally failing, wrapper around the fake. */
static size_t stage_calls;
static const char *fail_name;		/* a name the wrapper refuses */
static bool not_ours;

static int wrap_stage(int dirfd, const struct outpath_stage_entry *e, size_t n,
		      size_t *bad)
{
	stage_calls++;
	for (size_t i = 0; fail_name && i < n; i++) {
		if (e[i].name_len == strlen(fail_name) &&
		    !memcmp(e[i].name, fail_name, e[i].name_len)) {
			*bad = i;
			return -EACCES;
		}
	}
	return outpath_fs_fake.stage(dirfd, e, n, bad);
}

static bool wrap_is_ours(int dirfd)
{
	return !not_ours;
}

static int wrap_state(int fd, struct outpath_file_state *st)
{
	return outpath_fs_fake.state(fd, st);
}

static int wrap_digest(int fd, uint8_t out[OUTPATH_SHA256_LEN])
{
	return outpath_fs_fake.digest(fd, out);
}

static const struct outpath_fs wrap_fs = {
	.stage = wrap_stage,
	.state = wrap_state,
	.digest = wrap_digest,
	.is_ours = wrap_is_ours,
};

static const char *P(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int k;

	k = (k + 1) % 4;
	if ((size_t)snprintf(buf[k], PATH_MAX, "%s/%s", T, rel) >= PATH_MAX)
		abort();	/* test paths are short */
	return buf[k];
}

static void setup(void)
{
	snprintf(T, sizeof(T), "%s", t_tmpdir());
	stage_calls = 0;
	fail_name = NULL;
	not_ours = false;
	rootfd = open(T, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || mkdir(P("outside"), 0755) < 0 ||
	    outpath_open(&op, &wrap_fs, rootfd, "out", true) != 0) {
		perror("setup");
		abort();
	}
}

static void teardown(void)
{
	outpath_close(&op);
	close(rootfd);
	rootfd = -1;
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		perror(path);
		abort();
	}
	close(fd);
}

static bool file_is(const char *path, const char *s)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)strlen(s) && !memcmp(buf, s, (size_t)n);
}

static bool has_fake_xattr(const char *path, uint8_t sha0)
{
	uint8_t x[FAKE_XATTR_LEN];

	return lgetxattr(path, FAKE_XATTR, x, sizeof(x)) == (ssize_t)sizeof(x) &&
	       x[0] == sha0;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void mkdirs(const char *rel)
{
	char buf[PATH_MAX];

	strcpy(buf, P(rel));
	for (char *p = buf + strlen(T) + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static void item(struct outpath_item *it, const char *path, uint8_t sha0, uint64_t size)
{
	memset(it, 0, sizeof(*it));
	it->path = path;
	memset(it->sha256, sha0, sizeof(it->sha256));
	it->size = size;
	it->mode = 0644;
	it->err = 12345;
}

/* ---- outpath_check ---- */

static int chk(const char *s)
{
	return outpath_check(s, strlen(s));
}

static void test_check(void)
{
	char *big = malloc(PATH_MAX + 1);

	CHECK_INT(chk("a"), 0);
	CHECK_INT(chk("a/b/c"), 0);
	CHECK_INT(chk("..."), 0);
	CHECK_INT(chk(".a/..b/a."), 0);
	CHECK_INT(chk(""), -EINVAL);
	CHECK_INT(chk("/a"), -EINVAL);
	CHECK_INT(chk(".."), -EINVAL);
	CHECK_INT(chk("a/.."), -EINVAL);
	CHECK_INT(chk("../a"), -EINVAL);
	CHECK_INT(chk("a/../b"), -EINVAL);
	CHECK_INT(chk("."), -EINVAL);
	CHECK_INT(chk("a/./b"), -EINVAL);
	CHECK_INT(chk("a//b"), -EINVAL);
	CHECK_INT(chk("a/"), -EINVAL);
	CHECK_INT(chk("/"), -EINVAL);
	CHECK_INT(outpath_check("a\0b", 3), -EINVAL);
	CHECK_INT(outpath_check(NULL, 0), -EINVAL);
	REQUIRE(big);
	/* components of 255, up to PATH_MAX - 1 bytes: fine; one more: no */
	for (size_t i = 0; i < PATH_MAX; i++)
		big[i] = i % 256 == 255 ? '/' : 'x';
	big[PATH_MAX] = 0;
	CHECK_INT(outpath_check(big, PATH_MAX - 1), 0);
	CHECK_INT(outpath_check(big, PATH_MAX), -EINVAL);
	memset(big, 'x', 256);
	CHECK_INT(outpath_check(big, 255), 0);
	CHECK_INT(outpath_check(big, 256), -EINVAL);
	big[256] = '/';
	CHECK_INT(outpath_check(big + 1, 256), -EINVAL);	/* 255 x, trailing / */
	CHECK_INT(outpath_check(big + 1, 257), 0);	/* 255 x, "/x" */
	free(big);
}

/* ---- outpath_open ---- */

static void test_open(void)
{
	struct outpath o2;

	setup();
	write_file(P("afile"), "x");
	CHECK(symlink("out", P("alink")) == 0);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "afile", false), -ENOTDIR);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "alink", false), -ENOTDIR);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "missing", false), -ENOENT);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "a/b", true), -EINVAL);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "..", true), -EINVAL);
	not_ours = true;
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "out", false), -EXDEV);
	not_ours = false;
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "out", false), 0);
	outpath_close(&o2);
	CHECK_INT(outpath_open(&o2, &wrap_fs, rootfd, "new", true), 0);
	outpath_close(&o2);
	CHECK(access(P("new"), F_OK) == 0);
	teardown();
}

/* ---- outpath_lstat ---- */

static void test_lstat(void)
{
	/* sha256("hello") */
	static const uint8_t hello[32] = {
		0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b,
		0x2a, 0xc5, 0xb9, 0xe2, 0x9e, 0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7,
		0x42, 0x5e, 0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24 };
	struct outpath_stat st;
	struct outpath_item it;

	setup();
	mkdirs("out/d/sub");
	write_file(P("out/d/sub/f"), "hello");
	write_file(P("outside/secret"), "secret");
	CHECK(symlink("d/sub", P("out/ln")) == 0);
	CHECK(symlink("../../outside", P("out/d/esc")) == 0);
	CHECK(symlink(P("outside"), P("out/abs")) == 0);
	CHECK(symlink(P("outside/secret"), P("out/d/lastout")) == 0);
	CHECK(mkfifo(P("out/fifo"), 0644) == 0);

	CHECK_INT(outpath_lstat(&op, "d/sub/f", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_FILE);
	CHECK(!st.file.cas);
	CHECK_INT(st.file.size, 5);
	CHECK(st.have_digest && !memcmp(st.file.sha256, hello, 32));
	outpath_stat_free(&st);
	CHECK_INT(outpath_lstat(&op, "d/sub/f", false, &st), 0);
	CHECK_INT(st.type, OUTPATH_FILE);
	CHECK(!st.have_digest);

	item(&it, "d/cas", 0xab, 1234);
	CHECK_INT(outpath_stage(&op, &it, 1), 0);
	CHECK_INT(it.err, 0);
	CHECK_INT(outpath_lstat(&op, "d/cas", false, &st), 0);
	CHECK_INT(st.type, OUTPATH_FILE);
	CHECK(st.file.cas && st.have_digest && st.file.sha256[0] == 0xab);
	CHECK_INT(st.file.size, 1234);
	CHECK(st.file.version == it.version && it.version != 0);

	CHECK_INT(outpath_lstat(&op, "d", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_DIRECTORY);
	CHECK_INT(outpath_lstat(&op, "fifo", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_OTHER);
	CHECK_INT(outpath_lstat(&op, "ln", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_SYMLINK);
	CHECK_STR(st.target, "d/sub");
	outpath_stat_free(&st);
	CHECK(st.target == NULL);
	/* the last component is never followed, even pointing outside */
	CHECK_INT(outpath_lstat(&op, "d/lastout", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_SYMLINK);
	CHECK_STR(st.target, P("outside/secret"));
	outpath_stat_free(&st);

	CHECK_INT(outpath_lstat(&op, "missing", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_NONE);
	CHECK_INT(outpath_lstat(&op, "missing/x/y", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_NONE);
	CHECK_INT(outpath_lstat(&op, "d/sub/f/x", true, &st), 0);	/* file as parent */
	CHECK_INT(st.type, OUTPATH_NONE);
	/* a symlinked parent that stays inside is followed */
	CHECK_INT(outpath_lstat(&op, "ln/f", true, &st), 0);
	CHECK_INT(st.type, OUTPATH_FILE);
	CHECK_INT(st.file.size, 5);
	/* ... one that leaves is refused, relative or absolute */
	CHECK_INT(outpath_lstat(&op, "d/esc/secret", true, &st), -EXDEV);
	CHECK_INT(outpath_lstat(&op, "abs/secret", true, &st), -EXDEV);
	CHECK_INT(outpath_lstat(&op, "../outside/secret", true, &st), -EINVAL);
	CHECK_INT(outpath_lstat(&op, "", true, &st), -EINVAL);
	CHECK(file_is(P("outside/secret"), "secret"));
	teardown();
}

/* ---- outpath_stage ---- */

static void test_stage_replace(void)
{
	struct outpath_item its[5];
	struct stat sb;

	setup();
	mkdirs("out/e");
	write_file(P("out/e/file"), "old");
	write_file(P("outside/victim"), "victim");
	CHECK(symlink(P("outside/victim"), P("out/e/link")) == 0);
	mkdirs("out/e/tree/x/y");
	write_file(P("out/e/tree/x/y/z"), "z");
	CHECK(symlink(P("outside"), P("out/e/tree/x/out")) == 0);

	item(&its[0], "a/b/c/new", 1, 10);
	item(&its[1], "e/file", 2, 20);
	item(&its[2], "e/link", 3, 30);
	item(&its[3], "e/tree", 4, 40);
	item(&its[4], "top", 5, 50);
	its[4].mode = 04755;		/* setuid: dropped */
	CHECK_INT(outpath_stage(&op, its, 5), 0);
	for (int i = 0; i < 5; i++) {
		CHECK_INT(its[i].err, 0);
		CHECK(its[i].version != 0);
	}
	CHECK(has_fake_xattr(P("out/a/b/c/new"), 1));
	CHECK(stat(P("out/a/b"), &sb) == 0 && S_ISDIR(sb.st_mode));
	CHECK(has_fake_xattr(P("out/e/file"), 2));
	CHECK(lstat(P("out/e/link"), &sb) == 0 && S_ISREG(sb.st_mode));
	CHECK(has_fake_xattr(P("out/e/link"), 3));
	CHECK(file_is(P("outside/victim"), "victim"));
	CHECK(!has_fake_xattr(P("outside/victim"), 3));
	CHECK(lstat(P("out/e/tree"), &sb) == 0 && S_ISREG(sb.st_mode));
	CHECK(has_fake_xattr(P("out/e/tree"), 4));
	CHECK_INT(count_dir(P("outside")), 1);
	CHECK(stat(P("out/top"), &sb) == 0 && (sb.st_mode & 07777) == 0755);
	/* no temporary name left behind */
	CHECK_INT(count_dir(P("out/e")), 3);
	CHECK_INT(count_dir(P("out")), 3);
	teardown();
}

static void test_stage_escape(void)
{
	struct outpath_item its[6];

	setup();
	mkdirs("out/d");
	mkdirs("outside/sub");
	CHECK(symlink("../../outside", P("out/d/esc")) == 0);
	CHECK(symlink(P("outside"), P("out/abs")) == 0);
	CHECK(symlink("d", P("out/in")) == 0);
	write_file(P("out/file"), "f");

	item(&its[0], "d/esc/new", 1, 1);
	item(&its[1], "abs/new", 2, 2);
	item(&its[2], "d/esc/sub/deeper/new", 3, 3);
	item(&its[3], "ok", 4, 4);
	item(&its[4], "in/viain", 5, 5);
	item(&its[5], "file/x", 6, 6);
	CHECK_INT(outpath_stage(&op, its, 6), 0);
	CHECK_INT(its[0].err, -EXDEV);
	CHECK_INT(its[1].err, -EXDEV);
	CHECK_INT(its[2].err, -EXDEV);
	CHECK_INT(its[3].err, 0);
	CHECK_INT(its[4].err, 0);
	CHECK_INT(its[5].err, -ENOTDIR);
	CHECK(has_fake_xattr(P("out/d/viain"), 5));
	CHECK_INT(count_dir(P("outside")), 1);
	CHECK_INT(count_dir(P("outside/sub")), 0);
	teardown();
}

static void test_stage_dup_and_errors(void)
{
	struct outpath_item its[6];
	struct outpath_stat st;

	setup();
	item(&its[0], "d/same", 1, 1);
	item(&its[1], "d/other", 2, 2);
	item(&its[2], "d/same", 3, 3);
	item(&its[3], "d/fail-me", 4, 4);
	item(&its[4], "d/../x", 5, 5);
	item(&its[5], "d/third", 6, 6);
	fail_name = "fail-me";
	CHECK_INT(outpath_stage(&op, its, 6), 0);
	CHECK_INT(its[0].err, 0);
	CHECK_INT(its[0].version, 0);	/* superseded by its[2] */
	CHECK_INT(its[1].err, 0);
	CHECK_INT(its[2].err, 0);
	CHECK_INT(its[3].err, -EACCES);
	CHECK_INT(its[4].err, -EINVAL);
	CHECK_INT(its[5].err, 0);
	CHECK(has_fake_xattr(P("out/d/same"), 3));
	CHECK(has_fake_xattr(P("out/d/other"), 2));
	CHECK(has_fake_xattr(P("out/d/third"), 6));
	CHECK(access(P("out/d/fail-me"), F_OK) < 0);
	CHECK_INT(count_dir(P("out/d")), 3);
	CHECK_INT(outpath_lstat(&op, "d/same", false, &st), 0);
	CHECK(st.file.version == its[2].version);
	/* restaging the same path replaces it (by rename) */
	item(&its[0], "d/same", 7, 7);
	CHECK_INT(outpath_stage(&op, its, 1), 0);
	CHECK_INT(its[0].err, 0);
	CHECK(has_fake_xattr(P("out/d/same"), 7));
	CHECK_INT(count_dir(P("out/d")), 3);
	CHECK_INT(outpath_stage(&op, its, 0), 0);
	teardown();
}

static int count_fn(void *ud, const char *path, const struct outpath_file_state *st)
{
	(*(size_t *)ud)++;
	return 0;
}

static void test_stage_many(void)
{
	enum { NDIRS = 100, NPER = 100, N = NDIRS * NPER };
	struct outpath_item *its = calloc(N, sizeof(*its));
	char (*paths)[32] = calloc(N, 32);
	size_t bad = 0, seen = 0;
	double t0;

	setup();
	REQUIRE(its && paths);
	for (int i = 0; i < N; i++) {
		snprintf(paths[i], 32, "dir%03d/sub/f%05d", i % NDIRS, i);
		item(&its[i], paths[i], (uint8_t)i, (uint64_t)i);
	}
	t0 = t_now();
	CHECK_INT(outpath_stage(&op, its, N), 0);
	fprintf(stderr, "  stage of %d items in %d dirs: %.3f s, %zu stage calls\n",
		N, NDIRS, t_now() - t0, stage_calls);
	CHECK_INT(stage_calls, NDIRS);
	for (int i = 0; i < N; i++)
		bad += its[i].err != 0;
	CHECK_INT(bad, 0);
	CHECK_INT(outpath_walk(&op, count_fn, &seen), 0);
	CHECK_INT(seen, N);
	/* again: now every item replaces a file, still one call per dir */
	stage_calls = 0;
	t0 = t_now();
	CHECK_INT(outpath_stage(&op, its, N), 0);
	fprintf(stderr, "  restage (replacing) of %d items: %.3f s, %zu stage calls\n",
		N, t_now() - t0, stage_calls);
	CHECK_INT(stage_calls, NDIRS);
	bad = 0;
	for (int i = 0; i < N; i++)
		bad += its[i].err != 0;
	CHECK_INT(bad, 0);
	CHECK_INT(count_dir(P("out/dir007/sub")), NPER);
	teardown();
	free(its);
	free(paths);
}

/* ---- outpath_remove ---- */

static void test_remove(void)
{
	setup();
	mkdirs("out/d");
	write_file(P("out/d/f"), "f");
	write_file(P("outside/victim"), "v");
	CHECK(symlink(P("outside/victim"), P("out/d/l")) == 0);
	CHECK(symlink("../../outside", P("out/esc")) == 0);
	CHECK_INT(outpath_remove(&op, "d/f"), 0);
	CHECK_INT(outpath_remove(&op, "d/l"), 0);
	CHECK(file_is(P("outside/victim"), "v"));
	CHECK_INT(outpath_remove(&op, "d"), -EISDIR);
	CHECK_INT(outpath_remove(&op, "d/f"), -ENOENT);
	CHECK_INT(outpath_remove(&op, "esc/victim"), -EXDEV);
	CHECK_INT(outpath_remove(&op, "d/.."), -EINVAL);
	CHECK(file_is(P("outside/victim"), "v"));
	CHECK_INT(count_dir(P("out/d")), 0);
	teardown();
}

/* ---- outpath_clean and outpath_walk ---- */

/* A chain of depth directories under rel, a file at each level. */
static void deep_chain(const char *rel, int depth)
{
	int fd = open(P(rel), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (int i = 0; fd >= 0 && i < depth; i++) {
		int nfd, ffd;

		ffd = openat(fd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (ffd >= 0)
			close(ffd);
		/* a sibling subtree too, to exercise resuming after a subdir */
		if (i > 60 && mkdirat(fd, "a", 0755) == 0) {
			ffd = openat(fd, "a/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (ffd >= 0)
				close(ffd);
		}
		if (mkdirat(fd, "d", 0755) < 0)
			break;
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = nfd;
	}
	if (fd >= 0)
		close(fd);
}

static void test_clean(void)
{
	enum { NDIRS = 4, NPER = 25000 };
	char name[32];
	double t0;

	setup();
	for (int d = 0; d < NDIRS; d++) {
		int fd;

		snprintf(name, sizeof(name), "out/d%d", d);
		mkdirs(name);
		fd = open(P(name), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		for (int i = 0; i < NPER; i++) {
			int ffd;

			snprintf(name, sizeof(name), "f%05d", i);
			ffd = openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			REQUIRE(ffd >= 0);
			close(ffd);
		}
		close(fd);
	}
	mkdirs("out/deep");
	deep_chain("out/deep", 150);
	write_file(P("outside/victim"), "v");
	mkdirs("outside/dir");
	write_file(P("outside/dir/keep"), "k");
	CHECK(symlink(P("outside"), P("out/abs")) == 0);
	CHECK(symlink("../../outside/dir", P("out/d0/rel")) == 0);
	CHECK(symlink(P("outside/victim"), P("out/d1/f")) == 0);
	write_file(P("out/top"), "t");
	/* a trash left by a crashed clean is cleaned too */
	mkdirs("out/.casfs-outputd-trash.0123456789abcdef/x");

	t0 = t_now();
	CHECK_INT(outpath_clean(&op), 0);
	fprintf(stderr, "  clean of %d files (+ a %d-deep tree): %.3f s\n",
		NDIRS * NPER, 150, t_now() - t0);
	CHECK_INT(count_dir(P("out")), 0);
	CHECK_INT(count_dir(T), 2);	/* out, outside: no trash beside */
	CHECK(file_is(P("outside/victim"), "v"));
	CHECK(file_is(P("outside/dir/keep"), "k"));
	/* cleaning an empty output path is fine */
	CHECK_INT(outpath_clean(&op), 0);
	CHECK_INT(count_dir(P("out")), 0);
	teardown();
}

/*
 * Bazel leaves output directories read-only (0555, tree artifacts among
 * them): clean, as their owner but not root, must still empty them. The
 * tests run as root, whom permissions do not stop: a child does it as
 * uid 65534, owner of the tree.
 */
static void test_clean_readonly_dirs(void)
{
	static const char *const dirs[] = { "out/a/tree/sub", "out/a/tree", "out/a" };
	const char *all[] = { "out", "out/a", "out/a/tree", "out/a/tree/sub",
			      "out/a/tree/f", "out/a/tree/sub/g", "out/top" };
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: skipped)\n");
		return;
	}
	setup();
	mkdirs("out/a/tree/sub");
	write_file(P("out/a/tree/f"), "f");
	write_file(P("out/a/tree/sub/g"), "g");
	write_file(P("out/top"), "t");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		CHECK(lchown(P(all[i]), 65534, 65534) == 0);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		CHECK(chmod(P(dirs[i]), 0555) == 0);
	pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(100);
		_exit(-outpath_clean(&op));
	}
	REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
	CHECK_INT(count_dir(P("out")), 0);
	teardown();
}

struct seen {
	int n;
	bool bad;
	int deep, deep_a;
};

static int seen_fn(void *ud, const char *path, const struct outpath_file_state *st)
{
	struct seen *s = ud;

	s->n++;
	if (!strncmp(path, "deep/", 5)) {
		size_t l = strlen(path);

		if (l >= 5 && !strcmp(path + l - 5, "/file"))
			s->deep++;
		else if (l >= 4 && !strcmp(path + l - 4, "/a/x"))
			s->deep_a++;
		else
			s->bad = true;
		return 0;
	}
	if (strcmp(path, "top") && strcmp(path, "d/f") && strcmp(path, "d/cas"))
		s->bad = true;
	if (!strcmp(path, "d/cas") && !(st->cas && st->sha256[0] == 9))
		s->bad = true;
	return 0;
}

static int stop_fn(void *ud, const char *path, const struct outpath_file_state *st)
{
	return ++*(int *)ud == 2 ? 42 : 0;
}

static void test_walk(void)
{
	struct seen s = { 0 };
	struct outpath_item it;
	int k = 0;

	setup();
	mkdirs("out/d");
	mkdirs("outside/dir");
	write_file(P("outside/dir/secret"), "s");
	write_file(P("out/top"), "t");
	write_file(P("out/d/f"), "f");
	item(&it, "d/cas", 9, 9);
	CHECK_INT(outpath_stage(&op, &it, 1), 0);
	CHECK(symlink(P("outside/dir"), P("out/abs")) == 0);
	CHECK(symlink("../../outside/dir", P("out/d/rel")) == 0);
	CHECK(symlink("f", P("out/d/tofile")) == 0);
	CHECK(mkfifo(P("out/d/fifo"), 0644) == 0);
	mkdirs("out/deep");
	deep_chain("out/deep", 150);
	mkdirs("out/.casfs-outputd-trash.0123456789abcdef");
	write_file(P("out/.casfs-outputd-trash.0123456789abcdef/old"), "o");

	CHECK_INT(outpath_walk(&op, seen_fn, &s), 0);
	CHECK(!s.bad);
	CHECK_INT(s.deep, 150);
	CHECK_INT(s.deep_a, 150 - 61);
	CHECK_INT(s.n, 3 + 150 + 150 - 61);
	CHECK_INT(outpath_walk(&op, stop_fn, &k), 42);
	CHECK_INT(k, 2);
	teardown();
}

/* A bind mount inside the output path is never crossed (needs root). */
static void test_mounts(void)
{
	struct outpath_item it;
	struct outpath_stat st;
	size_t seen = 0;

	setup();
	mkdirs("out/d/mnt");
	write_file(P("out/d/f"), "f");
	write_file(P("outside/victim"), "v");
	if (mount(P("outside"), P("out/d/mnt"), NULL, MS_BIND, NULL) < 0) {
		fprintf(stderr, "  skipped: mount: %s\n", strerror(errno));
		teardown();
		return;
	}
	CHECK_INT(outpath_lstat(&op, "d/mnt/victim", false, &st), -EXDEV);
	CHECK_INT(outpath_walk(&op, count_fn, &seen), 0);
	CHECK_INT(seen, 1);
	item(&it, "d/mnt/new", 1, 1);
	CHECK_INT(outpath_stage(&op, &it, 1), 0);
	CHECK_INT(it.err, -EXDEV);
	/* replacing d would remove its tree, which holds a mount: refused */
	item(&it, "d", 1, 1);
	CHECK_INT(outpath_stage(&op, &it, 1), 0);
	CHECK_INT(it.err, -EXDEV);
	CHECK(file_is(P("outside/victim"), "v"));
	/* d moves to the trash, whose removal stops at the mount */
	CHECK_INT(outpath_clean(&op), -EXDEV);
	CHECK(file_is(P("outside/victim"), "v"));
	CHECK_INT(count_dir(P("outside")), 1);
	{
		char mnt[PATH_MAX] = "";
		DIR *dir = opendir(P("out"));
		struct dirent *de;

		while (dir && (de = readdir(dir)))
			if (!strncmp(de->d_name, ".casfs-outputd-trash.", 21))
				snprintf(mnt, sizeof(mnt), "out/%.64s/d/mnt", de->d_name);
		if (dir)
			closedir(dir);
		CHECK(mnt[0] && umount2(P(mnt), MNT_DETACH) == 0);
	}
	CHECK_INT(outpath_clean(&op), 0);
	CHECK_INT(count_dir(P("out")), 0);
	teardown();
}

/* The real casfs layer, on a filesystem that is not casfs: refuses. */
static void test_casfs_fs_elsewhere(void)
{
	struct outpath_file_state st;
	struct outpath o2;
	uint8_t sha[OUTPATH_SHA256_LEN];
	int fd;

	setup();
	CHECK(!outpath_fs_casfs.is_ours(rootfd));
	CHECK_INT(outpath_open(&o2, &outpath_fs_casfs, rootfd, "out", false), -EXDEV);
	write_file(P("out/f"), "f");
	fd = open(P("out/f"), O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK_INT(outpath_fs_casfs.state(fd, &st), -ENOTTY);
	CHECK(outpath_fs_casfs.digest(fd, sha) < 0);
	close(fd);
	teardown();
}

static const struct test outpath_tests[] = {
	{ "check", test_check },
	{ "open", test_open },
	{ "lstat", test_lstat },
	{ "stage_replace", test_stage_replace },
	{ "stage_escape", test_stage_escape },
	{ "stage_dup_and_errors", test_stage_dup_and_errors },
	{ "stage_many", test_stage_many },
	{ "remove", test_remove },
	{ "clean", test_clean },
	{ "clean_readonly_dirs", test_clean_readonly_dirs },
	{ "walk", test_walk },
	{ "mounts", test_mounts },
	{ "casfs_fs_elsewhere", test_casfs_fs_elsewhere },
	{ NULL, NULL },
};
T_SUITE(outpath, outpath_tests)
