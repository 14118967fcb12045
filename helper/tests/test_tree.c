// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: REv2 Directory graphs and ActionResults from hostile bytes
 * (tree.c). Good inputs come from protobuf-c's encoder as well as from a
 * raw wire writer here; bad ones only from the raw writer, which can say
 * what no encoder would (NULs in names, repeated fields, bad varints).
 */
#include "t.h"
#include "../tree.h"
#include "../verify.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "build/bazel/remote/execution/v2/remote_execution_services.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HB "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

/* ------------------------------------------------------------ raw writer */

struct w {
	uint8_t *p;
	size_t n, cap;
};

static void w_raw(struct w *w, const void *p, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2 + 64;
		w->p = realloc(w->p, w->cap);
		if (!w->p)
			abort();
	}
	if (n)
		memcpy(w->p + w->n, p, n);
	w->n += n;
}

static void w_varint(struct w *w, uint64_t v)
{
	do {
		uint8_t b = (uint8_t)(v & 0x7f);

		v >>= 7;
		if (v)
			b |= 0x80;
		w_raw(w, &b, 1);
	} while (v);
}

static void w_tag(struct w *w, unsigned num, unsigned wt)
{
	w_varint(w, (uint64_t)num << 3 | wt);
}

static void w_bytes(struct w *w, unsigned num, const void *p, size_t n)
{
	w_tag(w, num, 2);
	w_varint(w, n);
	w_raw(w, p, n);
}

static void w_msg(struct w *w, unsigned num, const struct w *m)
{
	w_bytes(w, num, m->p, m->n);
}

static void w_free(struct w *w)
{
	free(w->p);
	memset(w, 0, sizeof(*w));
}

static void digest_of(const struct w *m, char hex[65])
{
	t_sha256_hex(m->p, m->n, hex);
}

static void w_digest(struct w *out, unsigned num, const char *hex, int64_t size)
{
	struct w d = { 0 };

	w_bytes(&d, 1, hex, strlen(hex));
	if (size) {
		w_tag(&d, 2, 0);
		w_varint(&d, (uint64_t)size);
	}
	w_msg(out, num, &d);
	w_free(&d);
}

static void file_n(struct w *dir, const char *name, size_t nlen, const char *hex,
		   int64_t size, bool exec)
{
	struct w f = { 0 };

	w_bytes(&f, 1, name, nlen);
	w_digest(&f, 2, hex, size);
	if (exec) {
		w_tag(&f, 4, 0);
		w_varint(&f, 1);
	}
	w_msg(dir, 1, &f);
	w_free(&f);
}

static void file(struct w *dir, const char *name, bool exec)
{
	file_n(dir, name, strlen(name), HA, 0, exec);
}

static void subdir(struct w *dir, const char *name, const struct w *child)
{
	struct w f = { 0 };
	char hex[65];

	digest_of(child, hex);
	w_bytes(&f, 1, name, strlen(name));
	w_digest(&f, 2, hex, (int64_t)child->n);
	w_msg(dir, 2, &f);
	w_free(&f);
}

static void link_n(struct w *dir, const char *name, const char *target, size_t tlen)
{
	struct w f = { 0 };

	w_bytes(&f, 1, name, strlen(name));
	w_bytes(&f, 2, target, tlen);
	w_msg(dir, 3, &f);
	w_free(&f);
}

static void add_link(struct w *dir, const char *name, const char *target)
{
	link_n(dir, name, target, strlen(target));
}

/* ------------------------------------------------------------- recording */

struct rec {
	char s[700];
};

/* kind, path, and for symlinks ">target", then "|" */
static void rec_add(struct rec *r, char kind, const char *a, const char *b)
{
	size_t n = strlen(r->s);

	snprintf(r->s + n, sizeof(r->s) - n, "%c%s%s%s|", kind, a, b ? ">" : "", b ? b : "");
}

static int r_dir(void *ud, const char *path)
{
	rec_add(ud, 'D', path, NULL);
	return 0;
}

static int r_file(void *ud, const char *path, const char *name,
		  const struct rev2_digest *d, bool exec)
{
	CHECK(!strcmp(path + strlen(path) - strlen(name), name));
	rec_add(ud, exec ? 'X' : 'F', path, NULL);
	return 0;
}

static int r_link(void *ud, const char *path, const char *name, const char *target)
{
	rec_add(ud, 'L', path, target);
	return 0;
}

static const struct tree_visitor recv = { r_dir, r_file, r_link };
static const struct tree_policy strict;

#define REQUIRE_RET(c) do { if (!(c)) { t_fail(__FILE__, __LINE__, #c); return -999; } } while (0)

/* A Tree message of root + children, walked; returns the walk's result. */
static int walk_tree(const struct w *root, const struct w *const *kids, size_t n,
		     const struct tree_policy *pol, struct rec *r, char *err)
{
	struct w tm = { 0 };
	struct tree *t;
	struct rev2_digest d;
	int ret;

	w_msg(&tm, 1, root);
	for (size_t i = 0; i < n; i++)
		w_msg(&tm, 2, kids[i]);
	REQUIRE_RET(tree_new(&t) == 0);
	err[0] = 0;
	ret = tree_add_tree(t, tm.p, tm.n, &d, err, 8192);
	if (!ret) {
		if (r)
			r->s[0] = 0;
		ret = tree_walk(t, &d, NULL, 0, pol ? pol : &strict, r ? &recv : NULL, r,
				NULL, err, 8192);
	}
	tree_free(t);
	w_free(&tm);
	return ret;
}

static void want_err(int got, int want, const char *err, const char *needle, int line)
{
	char m[1024];

	if (got != want) {
		snprintf(m, sizeof(m), "result %d, want %d (err '%s')", got, want, err);
		t_fail(__FILE__, line, m);
	} else if (!strstr(err, needle)) {
		snprintf(m, sizeof(m), "error '%s' should contain '%s'", err, needle);
		t_fail(__FILE__, line, m);
	}
}
#define WANT_ERR(got, want, needle) want_err(got, want, err, needle, __LINE__)

/* ----------------------------------------------------------------- tests */

static void t_good_tree(void)
{
	struct w root = { 0 }, sub = { 0 }, empty = { 0 };
	const struct w *kids[] = { &sub, &empty };
	struct rec r;
	char err[8192];

	file(&sub, "x", false);
	file(&root, "a", true);
	file(&root, "b", false);
	subdir(&root, "e", &empty);
	subdir(&root, "sub", &sub);
	add_link(&root, "l", "sub/x");
	add_link(&root, "m", "./sub/../b");	/* '..' after a name: refused by default */
	CHECK_INT(walk_tree(&root, kids, 2, NULL, &r, err), -EINVAL);
	CHECK(strstr(err, "m: '..' after a name"));
	{
		struct tree_policy esc = { .allow_escaping = true };

		CHECK_INT(walk_tree(&root, kids, 2, &esc, &r, err), 0);
		CHECK_STR(r.s, "D|Xa|Fb|Ll>sub/x|Lm>./sub/../b|De|Dsub|Fsub/x|");
	}
	w_free(&root);
	w_free(&sub);
	w_free(&empty);
}

/* The same graph from protobuf-c's encoder, as a Tree and as GetTree pages. */
static void t_protobuf_c_encoded(void)
{
	Build__Bazel__Remote__Execution__V2__Digest dg[3];
	Build__Bazel__Remote__Execution__V2__FileNode fn[2], *fp[2];
	Build__Bazel__Remote__Execution__V2__DirectoryNode dn, *dp[1] = { &dn };
	Build__Bazel__Remote__Execution__V2__SymlinkNode sn, *sp[1] = { &sn };
	Build__Bazel__Remote__Execution__V2__Directory root, sub, *kids[1] = { &sub };
	Build__Bazel__Remote__Execution__V2__Tree tr = BUILD__BAZEL__REMOTE__EXECUTION__V2__TREE__INIT;
	Build__Bazel__Remote__Execution__V2__GetTreeResponse p1, p2;
	Build__Bazel__Remote__Execution__V2__Directory *all[1] = { &root };
	uint8_t sb[4096], tb[8192], pb1[4096], pb2[4096];
	size_t sl, tl, l1, l2;
	char hex[65], err[512];
	struct rev2_digest rd;
	struct tree *t;
	struct rec r = { { 0 } };
	struct tree_stats st;

	for (int i = 0; i < 3; i++)
		build__bazel__remote__execution__v2__digest__init(&dg[i]);
	for (int i = 0; i < 2; i++) {
		build__bazel__remote__execution__v2__file_node__init(&fn[i]);
		fp[i] = &fn[i];
		fn[i].digest = &dg[i];
	}
	dg[0].hash = (char *)HA;
	dg[1].hash = (char *)HB;
	dg[1].size_bytes = 5;
	fn[0].name = (char *)"bin";
	fn[0].is_executable = 1;
	fn[1].name = (char *)"data.txt";
	build__bazel__remote__execution__v2__directory__init(&sub);
	sub.n_files = 1;
	sub.files = &fp[1];
	sl = build__bazel__remote__execution__v2__directory__pack(&sub, sb);
	t_sha256_hex(sb, sl, hex);
	dg[2].hash = hex;
	dg[2].size_bytes = (int64_t)sl;
	build__bazel__remote__execution__v2__directory_node__init(&dn);
	dn.name = (char *)"lib";
	dn.digest = &dg[2];
	build__bazel__remote__execution__v2__symlink_node__init(&sn);
	sn.name = (char *)"link";
	sn.target = (char *)"lib/data.txt";
	build__bazel__remote__execution__v2__directory__init(&root);
	root.n_files = 1;
	root.files = fp;
	root.n_directories = 1;
	root.directories = dp;
	root.n_symlinks = 1;
	root.symlinks = sp;
	tr.root = &root;
	tr.n_children = 1;
	tr.children = kids;
	REQUIRE(build__bazel__remote__execution__v2__tree__get_packed_size(&tr) < sizeof(tb));
	tl = build__bazel__remote__execution__v2__tree__pack(&tr, tb);

	REQUIRE(tree_new(&t) == 0);
	CHECK_INT(tree_add_tree(t, tb, tl, &rd, err, sizeof(err)), 0);
	CHECK_INT(tree_count(t), 2);
	CHECK_INT(tree_walk(t, &rd, NULL, 0, &strict, &recv, &r, &st, err, sizeof(err)), 0);
	CHECK_STR(r.s, "D|Xbin|Llink>lib/data.txt|Dlib|Flib/data.txt|");
	CHECK_INT(st.dirs, 2);
	CHECK_INT(st.files, 2);
	CHECK_INT(st.symlinks, 1);
	tree_free(t);

	/* GetTree: pages in any order, the token ignored; root by digest */
	build__bazel__remote__execution__v2__get_tree_response__init(&p1);
	build__bazel__remote__execution__v2__get_tree_response__init(&p2);
	p1.n_directories = 1;
	p1.directories = kids;
	p1.next_page_token = (char *)"1";
	p2.n_directories = 1;
	p2.directories = all;
	l1 = build__bazel__remote__execution__v2__get_tree_response__pack(&p1, pb1);
	l2 = build__bazel__remote__execution__v2__get_tree_response__pack(&p2, pb2);
	REQUIRE(tree_new(&t) == 0);
	CHECK_INT(tree_add_page(t, pb1, l1, err, sizeof(err)), 0);
	CHECK_INT(tree_add_page(t, pb2, l2, err, sizeof(err)), 0);
	CHECK_INT(tree_add_page(t, pb2, l2, err, sizeof(err)), 0);	/* repeats are fine */
	CHECK_INT(tree_count(t), 2);
	sl = build__bazel__remote__execution__v2__directory__pack(&root, sb);
	CHECK_INT(sha256_buf(sb, sl, rd.sha256), 0);
	rd.size = sl;
	CHECK(tree_has(t, &rd));
	r.s[0] = 0;
	CHECK_INT(tree_walk(t, &rd, "out/x", 2, &strict, &recv, &r, NULL, err, sizeof(err)), 0);
	CHECK_STR(r.s, "Dout/x|Xout/x/bin|Lout/x/link>lib/data.txt|Dout/x/lib|Fout/x/lib/data.txt|");
	/* a root digest that is not there */
	rd.sha256[0] ^= 1;
	WANT_ERR(tree_walk(t, &rd, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err)),
		 -ENOENT, "root directory");
	tree_free(t);
}

static void t_shared_subtree(void)
{
	struct w root = { 0 }, mid = { 0 }, leaf = { 0 };
	const struct w *kids[] = { &mid, &leaf, &leaf };
	struct rec r;
	char err[8192];

	file(&leaf, "f", false);
	add_link(&leaf, "up", "../s1/f");	/* fine at depth >= 1 */
	subdir(&mid, "s1", &leaf);
	subdir(&mid, "s2", &leaf);
	subdir(&root, "m", &mid);
	subdir(&root, "s1", &leaf);
	CHECK_INT(walk_tree(&root, kids, 3, NULL, &r, err), 0);
	CHECK_STR(r.s, "D|Dm|Dm/s1|Fm/s1/f|Lm/s1/up>../s1/f|Dm/s2|Fm/s2/f|Lm/s2/up>../s1/f|"
		  "Ds1|Fs1/f|Ls1/up>../s1/f|");
	w_free(&root);
	w_free(&mid);
	w_free(&leaf);
}

static void bad_name(const char *name, size_t nlen, const char *why)
{
	struct w root = { 0 }, sub = { 0 };
	const struct w *kids[] = { &sub };
	char err[8192];
	int ret;

	file_n(&sub, name, nlen, HA, 0, false);
	subdir(&root, "dir", &sub);
	ret = walk_tree(&root, kids, 1, NULL, NULL, err);
	WANT_ERR(ret, -EINVAL, why);
	WANT_ERR(ret, -EINVAL, "dir: ");
	w_free(&root);
	w_free(&sub);
}

static void t_bad_names(void)
{
	char longname[300];

	memset(longname, 'n', sizeof(longname));
	bad_name("", 0, "empty name");
	bad_name(".", 1, "name '.' or '..'");
	bad_name("..", 2, "name '.' or '..'");
	bad_name("a/b", 3, "'/' in name");
	bad_name("/", 1, "'/' in name");
	bad_name("a\0b", 3, "NUL in name");
	bad_name(longname, 256, "longer than 255");
	bad_name("\x1b[31m/x", 7, "'?[31m/x'");	/* and not an escape on the terminal */
	{
		struct w root = { 0 };
		char err[8192];

		file_n(&root, longname, 255, HA, 0, false);	/* 255 is fine */
		CHECK_INT(walk_tree(&root, NULL, 0, NULL, NULL, err), 0);
		w_free(&root);
	}
}

static void t_unsorted_duplicates(void)
{
	struct w a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 }, empty = { 0 };
	const struct w *kids[] = { &empty };
	char err[8192];

	file(&a, "b", false);
	file(&a, "a", false);
	WANT_ERR(walk_tree(&a, NULL, 0, NULL, NULL, err), -EINVAL,
		 "files not strictly sorted by name ('a' after 'b')");
	file(&b, "a", false);
	file(&b, "a", true);
	WANT_ERR(walk_tree(&b, NULL, 0, NULL, NULL, err), -EINVAL, "not strictly sorted");
	/* bytewise: "B" < "a", and "a" < "a0" < "ab" */
	file(&c, "B", false);
	file(&c, "a", false);
	file(&c, "a0", false);
	file(&c, "ab", false);
	file(&c, "\xc3\xa9", false);
	CHECK_INT(walk_tree(&c, NULL, 0, NULL, NULL, err), 0);
	/* the same name as a file and a directory */
	file(&d, "x", false);
	subdir(&d, "x", &empty);
	WANT_ERR(walk_tree(&d, kids, 1, NULL, NULL, err), -EINVAL, "x: duplicate name");
	/* ... and as a directory and a symlink, among others */
	file(&e, "a", false);
	file(&e, "z", false);
	subdir(&e, "m", &empty);
	add_link(&e, "b", "a");
	add_link(&e, "m", "a");
	WANT_ERR(walk_tree(&e, kids, 1, NULL, NULL, err), -EINVAL, "m: duplicate name");
	w_free(&a);
	w_free(&b);
	w_free(&c);
	w_free(&d);
	w_free(&e);
	w_free(&empty);
}

static void bad_digest(const char *hex, int64_t size, const char *why)
{
	struct w root = { 0 };
	char err[8192];

	file_n(&root, "f", 1, hex, size, false);
	WANT_ERR(walk_tree(&root, NULL, 0, NULL, NULL, err), -EINVAL, why);
	WANT_ERR(walk_tree(&root, NULL, 0, NULL, NULL, err), -EINVAL, "f: ");
	w_free(&root);
}

static void t_bad_digests(void)
{
	struct w root = { 0 }, f = { 0 };
	char err[8192];

	bad_digest("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", 0,
		   "64 lowercase hex");
	bad_digest(HA "0", 0, "64 lowercase hex");
	bad_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", 0,
		   "64 lowercase hex");
	bad_digest("", 0, "64 lowercase hex");
	bad_digest("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0,
		   "64 lowercase hex");
	bad_digest(HA, -1, "out of range");
	bad_digest(HA, (1LL << 40) + 1, "out of range");
	{
		struct w ok = { 0 };

		file_n(&ok, "f", 1, HA, 1LL << 40, false);
		CHECK_INT(walk_tree(&ok, NULL, 0, NULL, NULL, err), 0);
		w_free(&ok);
	}
	/* a FileNode without a digest */
	w_bytes(&f, 1, "f", 1);
	w_msg(&root, 1, &f);
	WANT_ERR(walk_tree(&root, NULL, 0, NULL, NULL, err), -EINVAL, "f: file without a digest");
	w_free(&root);
	w_free(&f);
}

static void t_missing_wrong_child(void)
{
	struct w root = { 0 }, a = { 0 }, sub = { 0 }, other = { 0 }, liar = { 0 };
	const struct w *kids[] = { &other };
	char err[8192], hex[65];
	struct w dn = { 0 };

	file(&sub, "x", false);
	file(&other, "y", false);
	subdir(&a, "sub", &sub);
	subdir(&root, "a", &a);
	{
		const struct w *k2[] = { &a };

		WANT_ERR(walk_tree(&root, k2, 1, NULL, NULL, err), -ENOENT,
			 "a/sub: directory ");
		digest_of(&sub, hex);
		WANT_ERR(walk_tree(&root, k2, 1, NULL, NULL, err), -ENOENT, hex);
	}
	/* a child with the wrong bytes is simply not the child */
	{
		const struct w *k3[] = { &a, &other };

		WANT_ERR(walk_tree(&root, k3, 2, NULL, NULL, err), -ENOENT, "a/sub: directory");
	}
	/* right hash, wrong size */
	digest_of(&other, hex);
	w_bytes(&dn, 1, "d", 1);
	w_digest(&dn, 2, hex, (int64_t)other.n + 1);
	w_msg(&liar, 2, &dn);
	WANT_ERR(walk_tree(&liar, kids, 1, NULL, NULL, err), -EINVAL, "d: directory");
	WANT_ERR(walk_tree(&liar, kids, 1, NULL, NULL, err), -EINVAL, "bytes, not");
	w_free(&root);
	w_free(&a);
	w_free(&sub);
	w_free(&other);
	w_free(&liar);
	w_free(&dn);
}

static void t_symlink_policy(void)
{
	struct tree_policy abs = { .allow_absolute = true }, esc = { .allow_escaping = true };
	char err[8192];

#define TGT(t, depth, pol) tree_check_target(t, strlen(t), depth, pol, err, sizeof(err))
	CHECK_INT(TGT("x", 0, &strict), 0);
	CHECK_INT(TGT("./x/./y/", 0, &strict), 0);
	CHECK_INT(TGT(".", 0, &strict), 0);
	CHECK_INT(TGT("../x", 1, &strict), 0);
	CHECK_INT(TGT("../../a/b", 2, &strict), 0);
	CHECK_INT(TGT("..//./../a", 2, &strict), 0);
	WANT_ERR(TGT("..", 0, &strict), -EINVAL, "escapes the root");
	WANT_ERR(TGT("../../x", 1, &strict), -EINVAL, "escapes the root");
	WANT_ERR(TGT("a/../../x", 5, &strict), -EINVAL, "'..' after a name");
	WANT_ERR(TGT("a/..", 5, &strict), -EINVAL, "'..' after a name");
	WANT_ERR(TGT("/etc/passwd", 3, &strict), -EINVAL, "absolute");
	CHECK_INT(TGT("/etc/passwd", 3, &abs), 0);
	WANT_ERR(TGT("../x", 0, &abs), -EINVAL, "escapes");
	CHECK_INT(TGT("../../../x", 0, &esc), 0);
	WANT_ERR(TGT("/x", 0, &esc), -EINVAL, "absolute");
	WANT_ERR(TGT("", 0, &esc), -EINVAL, "empty symlink target");
	WANT_ERR(tree_check_target("a\0b", 3, 0, &esc, err, sizeof(err)), -EINVAL, "NUL");
	{
		char big[4097];

		memset(big, 'a', sizeof(big));
		WANT_ERR(tree_check_target(big, 4096, 0, &strict, err, sizeof(err)), -EINVAL,
			 "longer than 4095");
		CHECK_INT(tree_check_target(big, 4095, 0, &strict, err, sizeof(err)), 0);
	}
#undef TGT
	/* in a tree: the link's depth counts, as does the root's own depth */
	{
		struct w root = { 0 }, sub = { 0 }, nul = { 0 };
		const struct w *kids[] = { &sub };
		
		struct tree *t;
		struct w tm = { 0 };
		struct rev2_digest d;

		add_link(&sub, "ok", "../top");
		add_link(&sub, "out", "../../x");
		subdir(&root, "s", &sub);
		WANT_ERR(walk_tree(&root, kids, 1, NULL, NULL, err), -EINVAL,
			 "s/out: symlink target escapes the root");
		CHECK(strstr(err, "'../../x'"));
		CHECK_INT(walk_tree(&root, kids, 1, &esc, NULL, err), 0);
		w_msg(&tm, 1, &root);
		w_msg(&tm, 2, &sub);
		REQUIRE(tree_new(&t) == 0);
		CHECK_INT(tree_add_tree(t, tm.p, tm.n, &d, err, sizeof(err)), 0);
		/* materialized one level down (an output directory "o/"): fine */
		CHECK_INT(tree_walk(t, &d, "o", 1, &strict, NULL, NULL, NULL, err, sizeof(err)), 0);
		tree_free(t);
		w_free(&tm);
		link_n(&nul, "n", "a\0b", 3);
		WANT_ERR(walk_tree(&nul, NULL, 0, &esc, NULL, err), -EINVAL, "n: NUL in symlink target");
		w_free(&nul);
		link_n(&nul, "n", "", 0);
		WANT_ERR(walk_tree(&nul, NULL, 0, &esc, NULL, err), -EINVAL, "n: empty symlink target");
		w_free(&root);
		w_free(&sub);
		w_free(&nul);
	}
}

/* Hostile wire bytes: never a crash or a leak, always a clean error. */
static void t_wire_garbage(void)
{
	struct w root = { 0 }, sub = { 0 }, tm = { 0 };
	struct rev2_digest d;
	char err[8192];
	struct tree *t;
	unsigned seed = 1;

	file(&sub, "x", false);
	subdir(&root, "s", &sub);
	add_link(&root, "z", "s/x");
	w_msg(&tm, 1, &root);
	w_msg(&tm, 2, &sub);
	/* every truncation, as a Tree and as a page */
	for (size_t n = 0; n < tm.n; n++) {
		REQUIRE(tree_new(&t) == 0);
		if (tree_add_tree(t, tm.p, n, &d, err, sizeof(err)) == 0)
			tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err));
		tree_add_page(t, tm.p, n, err, sizeof(err));
		tree_free(t);
	}
	/* every single-byte corruption */
	for (size_t n = 0; n < tm.n; n++) {
		uint8_t *c = malloc(tm.n);

		REQUIRE(c);
		memcpy(c, tm.p, tm.n);
		c[n] ^= (uint8_t)(0x55 + n);
		REQUIRE(tree_new(&t) == 0);
		if (tree_add_tree(t, c, tm.n, &d, err, sizeof(err)) == 0)
			tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err));
		tree_free(t);
		free(c);
	}
	/* random bytes */
	for (int i = 0; i < 2000; i++) {
		uint8_t b[64];

		t_fill(b, sizeof(b), seed++);
		REQUIRE(tree_new(&t) == 0);
		if (tree_add_tree(t, b, (size_t)(i % 64), &d, err, sizeof(err)) == 0)
			tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err));
		tree_add_page(t, b, sizeof(b), err, sizeof(err));
		tree_free(t);
	}
	REQUIRE(tree_new(&t) == 0);
	/* specific bad shapes */
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x0b\x00", 2, &d, err, sizeof(err)),
		 -EINVAL, "malformed");	/* group start */
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x0a\x05\x00", 3, &d, err, sizeof(err)),
		 -EINVAL, "malformed");	/* length past the end */
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
			       11, &d, err, sizeof(err)), -EINVAL, "malformed");	/* huge */
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x08\x01", 2, &d, err, sizeof(err)),
		 -EINVAL, "malformed");	/* root as a varint */
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x12\x00", 2, &d, err, sizeof(err)),
		 -EINVAL, "without a root");
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x0a\x00\x0a\x00", 4, &d, err, sizeof(err)),
		 -EINVAL, "two roots");
	WANT_ERR(tree_add_tree(t, (const uint8_t *)"\x00", 1, &d, err, sizeof(err)),
		 -EINVAL, "malformed");	/* field 0 */
	CHECK_INT(tree_add_tree(t, (const uint8_t *)"\x0a\x00", 2, &d, err, sizeof(err)), 0);
	CHECK_INT(tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err)), 0);
	/* unknown fields are skipped, at every level */
	{
		struct w u = { 0 }, un = { 0 };

		w_tag(&u, 9, 0);
		w_varint(&u, 300);
		w_tag(&u, 10, 1);
		w_raw(&u, "12345678", 8);
		w_tag(&u, 11, 5);
		w_raw(&u, "1234", 4);
		w_bytes(&u, 5, "props", 5);
		w_bytes(&un, 1, "f", 1);
		w_digest(&un, 2, HA, 0);
		w_bytes(&un, 6, "props", 5);
		w_msg(&u, 1, &un);
		w_free(&tm);
		w_msg(&tm, 1, &u);
		w_bytes(&tm, 3, "junk", 4);
		CHECK_INT(tree_add_tree(t, tm.p, tm.n, &d, err, sizeof(err)), 0);
		CHECK_INT(tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err)), 0);
		/* a repeated name field is refused, not merged */
		w_free(&un);
		w_free(&u);
		w_bytes(&un, 1, "f", 1);
		w_bytes(&un, 1, "g", 1);
		w_digest(&un, 2, HA, 0);
		w_msg(&u, 1, &un);
		w_free(&tm);
		w_msg(&tm, 1, &u);
		CHECK_INT(tree_add_tree(t, tm.p, tm.n, &d, err, sizeof(err)), 0);
		WANT_ERR(tree_walk(t, &d, NULL, 0, &strict, NULL, NULL, NULL, err, sizeof(err)),
			 -EINVAL, "repeated field 1");
		w_free(&un);
		w_free(&u);
	}
	tree_free(t);
	w_free(&root);
	w_free(&sub);
	w_free(&tm);
}

static void t_depth_and_fanout_bombs(void)
{
	struct w lv[300];
	const struct w *kids[300];
	struct tree_policy small = { .max_entries = 1000 }, shallow = { .max_depth = 10 };
	char err[8192];

	/* a chain 299 deep */
	memset(lv, 0, sizeof(lv));
	file(&lv[0], "f", false);
	for (int i = 1; i < 300; i++)
		subdir(&lv[i], "d", &lv[i - 1]);
	for (int i = 0; i < 299; i++)
		kids[i] = &lv[i];
	WANT_ERR(walk_tree(&lv[299], kids, 299, NULL, NULL, err), -E2BIG,
		 "deeper than 256 directories");
	CHECK(!strncmp(err, "d/d/d/", 6));
	WANT_ERR(walk_tree(&lv[20], kids, 20, &shallow, NULL, err), -E2BIG, "deeper than 10");
	CHECK_INT(walk_tree(&lv[200], kids, 200, NULL, NULL, err), 0);
	for (int i = 0; i < 300; i++)
		w_free(&lv[i]);

	/* each level twice the one below: 2^60 paths from 60 small messages */
	file(&lv[0], "f", false);
	for (int i = 1; i <= 60; i++) {
		subdir(&lv[i], "a", &lv[i - 1]);
		subdir(&lv[i], "b", &lv[i - 1]);
	}
	for (int i = 0; i < 60; i++)
		kids[i] = &lv[i];
	WANT_ERR(walk_tree(&lv[60], kids, 60, &small, NULL, err), -E2BIG,
		 "more than 1000 entries");
	for (int i = 0; i <= 60; i++)
		w_free(&lv[i]);
}

/* A callback's value stops the walk and comes back unchanged. */
static int stop_at_file(void *ud, const char *path, const char *name,
			const struct rev2_digest *d, bool exec)
{
	(*(int *)ud)++;
	return -ECANCELED;
}

static void t_callback_stops(void)
{
	struct w root = { 0 };
	struct tree_visitor v = { .file = stop_at_file };
	struct w tm = { 0 };
	struct tree *t;
	struct rev2_digest d;
	char err[8192];
	int n = 0;

	file(&root, "a", false);
	file(&root, "b", false);
	w_msg(&tm, 1, &root);
	REQUIRE(tree_new(&t) == 0);
	CHECK_INT(tree_add_tree(t, tm.p, tm.n, &d, err, sizeof(err)), 0);
	CHECK_INT(tree_walk(t, &d, NULL, 0, &strict, &v, &n, NULL, err, sizeof(err)), -ECANCELED);
	CHECK_INT(n, 1);
	tree_free(t);
	w_free(&root);
	w_free(&tm);
}

/* --------------------------------------------------------- ActionResult */

static void ar_file(struct w *ar, const char *path, const char *hex, int64_t size, bool x)
{
	struct w f = { 0 };

	w_bytes(&f, 1, path, strlen(path));
	w_digest(&f, 2, hex, size);
	if (x) {
		w_tag(&f, 4, 0);
		w_varint(&f, 1);
	}
	w_bytes(&f, 5, "inline", 6);
	w_msg(ar, 2, &f);
	w_free(&f);
}

static void ar_dir(struct w *ar, const char *path, const char *hex, int64_t size)
{
	struct w f = { 0 };

	w_bytes(&f, 1, path, strlen(path));
	w_digest(&f, 3, hex, size);
	w_msg(ar, 3, &f);
	w_free(&f);
}

static void ar_link(struct w *ar, unsigned field, const char *path, const char *target)
{
	struct w f = { 0 };

	w_bytes(&f, 1, path, strlen(path));
	w_bytes(&f, 2, target, strlen(target));
	w_msg(ar, field, &f);
	w_free(&f);
}

static int parse_ar(const struct w *m, const struct tree_policy *pol,
		    struct action_result *ar, char *err)
{
	err[0] = 0;
	return tree_parse_action_result(m->p, m->n, pol ? pol : &strict, ar, err, 8192);
}

static void t_action_result(void)
{
	struct w m = { 0 };
	struct action_result ar;
	char err[8192];

	ar_file(&m, "bazel-out/bin/tool", HA, 0, true);
	ar_file(&m, "bazel-out/bin/data", HB, 5, false);
	ar_dir(&m, "bazel-out/bin/tree", HB, 99);
	ar_link(&m, 12, "bazel-out/bin/l", "tool");
	ar_link(&m, 10, "bazel-out/bin/l", "tool");	/* the same, deprecated list */
	ar_link(&m, 11, "bazel-out/bin/dl", "tree");
	w_tag(&m, 4, 0);	/* exit_code and stdout: skipped */
	w_varint(&m, 3);
	w_bytes(&m, 5, "out", 3);
	CHECK_INT(parse_ar(&m, NULL, &ar, err), 0);
	CHECK_INT(ar.nfiles, 2);
	CHECK_INT(ar.ndirs, 1);
	CHECK_INT(ar.nsymlinks, 2);
	CHECK_STR(ar.files[0].path, "bazel-out/bin/tool");
	CHECK(ar.files[0].executable);
	CHECK(!ar.files[1].executable);
	CHECK_INT(ar.files[1].d.size, 5);
	CHECK_INT(ar.dirs[0].tree.size, 99);
	CHECK_STR(ar.symlinks[0].target, "tool");
	CHECK_STR(ar.symlinks[1].path, "bazel-out/bin/dl");
	action_result_free(&ar);
	w_free(&m);

	/* an empty result is fine */
	CHECK_INT(parse_ar(&m, NULL, &ar, err), 0);
	CHECK_INT(ar.nfiles + ar.ndirs + ar.nsymlinks, 0);
	action_result_free(&ar);

#define BAD_AR(build, want) do { \
		w_free(&m); \
		build; \
		WANT_ERR(parse_ar(&m, NULL, &ar, err), -EINVAL, want); \
	} while (0)
	BAD_AR(ar_file(&m, "../x", HA, 0, false), "'..' path component");
	BAD_AR(ar_file(&m, "/etc/x", HA, 0, false), "absolute path");
	BAD_AR(ar_file(&m, "a//b", HA, 0, false), "empty path component");
	BAD_AR(ar_file(&m, "a/./b", HA, 0, false), "'.' path component");
	BAD_AR(ar_file(&m, "", HA, 0, false), "empty path");
	BAD_AR(ar_file(&m, "a/", HA, 0, false), "trailing '/'");
	BAD_AR(ar_file(&m, "x", "ABC", 0, false), "x: digest hash");
	BAD_AR(ar_dir(&m, "d", HA, -5), "d: digest size");
	BAD_AR((ar_file(&m, "a", HA, 0, false), ar_file(&m, "a", HB, 0, false)),
	       "a: output listed twice");
	BAD_AR((ar_file(&m, "a/b", HA, 0, false), ar_dir(&m, "a", HA, 0)),
	       "a/b: inside another output 'a'");
	BAD_AR((ar_link(&m, 12, "l", "x"), ar_link(&m, 10, "l", "y")), "l: output listed twice");
	BAD_AR(ar_link(&m, 12, "a/l", "../../x"), "a/l: symlink target escapes the root");
	BAD_AR(ar_link(&m, 12, "l", "/abs"), "absolute symlink target");
	BAD_AR(ar_link(&m, 12, "l", ""), "l: empty symlink target");
	{
		struct w f = { 0 };

		BAD_AR((w_bytes(&f, 1, "a\0b", 3), w_digest(&f, 2, HA, 0), w_msg(&m, 2, &f)),
		       "NUL");
		w_free(&f);
	}
	BAD_AR(w_raw(&m, "\x12\x09", 2), "malformed");
#undef BAD_AR
	w_free(&m);
	/* what the policy allows */
	{
		struct tree_policy p = { .allow_absolute = true, .allow_escaping = true };

		ar_link(&m, 12, "a/l", "../../x");
		ar_link(&m, 12, "b", "/abs");
		CHECK_INT(parse_ar(&m, &p, &ar, err), 0);
		CHECK_INT(ar.nsymlinks, 2);
		action_result_free(&ar);
		w_free(&m);
	}
}

const struct test tree_tests[] = {
	{ "good_tree", t_good_tree },
	{ "protobuf_c_encoded", t_protobuf_c_encoded },
	{ "shared_subtree", t_shared_subtree },
	{ "bad_names", t_bad_names },
	{ "unsorted_duplicates", t_unsorted_duplicates },
	{ "bad_digests", t_bad_digests },
	{ "missing_wrong_child", t_missing_wrong_child },
	{ "symlink_policy", t_symlink_policy },
	{ "wire_garbage", t_wire_garbage },
	{ "depth_and_fanout_bombs", t_depth_and_fanout_bombs },
	{ "callback_stops", t_callback_stops },
	{ "action_result", t_action_result },
	{ NULL, NULL },
};
