// SPDX-License-Identifier: GPL-2.0
/*
 * casfsctl: the command line for casfs.
 *
 *   casfsctl stage DIR [MANIFEST|-]   create CAS-backed files (CASFS_IOC_STAGE)
 *   casfsctl stage DIR --action DIGEST | --action-result FILE [REV2 OPTIONS]
 *                                     stage an ActionResult's outputs
 *   casfsctl materialize [--tree] [REV2 OPTIONS] DIGEST PATH
 *                                     a REv2 Directory graph as a lazy subtree
 *   casfsctl check [REV2 OPTIONS] PATH...
 *                                     CAS-backed files whose blob the CAS lost
 *   casfsctl digest PATH...           print "<sha256 hex> <size>  PATH"
 *   casfsctl prefetch [--regex RE] [--jobs N] PATH...
 *                                     fetch every CAS-backed file not yet present
 *   casfsctl stats [--stats-file F]   kernel and helper statistics
 */
#include "common.h"
#include "config.h"
#include "manifest.h"
#include "rev2.h"
#include "stage.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>

static const char usage[] =
	"usage: casfsctl stage DIR [MANIFEST|-]\n"
	"       casfsctl stage DIR (--action DIGEST | --action-result FILE) [SYMLINK POLICY] [REV2]\n"
	"       casfsctl materialize [--tree] [SYMLINK POLICY] [REV2] DIGEST PATH\n"
	"       casfsctl check [REV2] PATH...\n"
	"       casfsctl digest PATH...\n"
	"       casfsctl prefetch [--regex ERE] [--jobs N] PATH...\n"
	"       casfsctl stats [--stats-file FILE]\n"
	"\n"
	"stage     create CAS-backed files under DIR (on casfs) from manifest lines\n"
	"          '<sha256 hex> <size> <octal mode> <relative path>' (stdin if no\n"
	"          MANIFEST); missing directories are created (0755). With --action\n"
	"          (GetActionResult) or --action-result (a binary ActionResult file):\n"
	"          its output files, directories (Trees) and symlinks\n"
	"materialize  a REv2 root Directory DIGEST (GetTree), or with --tree a Tree\n"
	"          blob, as CAS-backed files (0555 if executable, else 0444),\n"
	"          directories (0755) and symlinks under PATH; fetches no file bytes\n"
	"check     list CAS-backed files under PATH... whose blob the CAS no longer\n"
	"          has (FindMissingBlobs); exit 1 if any\n"
	"digest    print '<sha256 hex> <size>  PATH' from the file's digest xattr\n"
	"prefetch  fetch now, N at a time (default 8), every CAS-backed file under\n"
	"          PATH... not yet in the cache (whose path matches ERE, if given)\n"
	"stats     show casfs.ko's counters and casfs-helper's statistics\n"
	"\n"
	"DIGEST is HEX/SIZE. SYMLINK POLICY: --allow-absolute-symlinks,\n"
	"--allow-escaping-symlinks (by default targets must stay inside the root).\n"
	"REV2: --cas grpc[s]://HOST:PORT --instance NAME --ca-file F --client-cert F\n"
	"--client-key F --auth-header-file F --timeout SECS --config FILE (default\n"
	"/etc/casfs/helper.conf if it exists; the command line wins)\n";

static double now_s(void)
{
	return (double)mono_us() / 1e6;
}

/* ------------------------------------------------------------------ stage */

struct sent {
	struct manifest_entry m;
	size_t dirlen;		/* bytes of path before the last '/' (0: top) */
	const char *name;	/* after the last '/' */
};

static int cmp_sent(const void *a, const void *b)
{
	const struct sent *x = a, *y = b;
	size_t n = x->dirlen < y->dirlen ? x->dirlen : y->dirlen;
	int c = memcmp(x->m.path, y->m.path, n);

	if (c)
		return c;
	if (x->dirlen != y->dirlen)
		return x->dirlen < y->dirlen ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1: line in buf (len bytes, no '\n'); 0: EOF; -1: line too long; -2: read error */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF) {
		if (c == '\n') {
			*len = n;
			return 1;
		}
		if (n == cap) {
			while ((c = getc_unlocked(f)) != EOF && c != '\n')
				;
			return -1;
		}
		buf[n++] = (char)c;
	}
	if (ferror(f))
		return -2;
	*len = n;
	return n ? 1 : 0;
}

static int stage_group(int root, struct sent *v, size_t n, size_t *created,
		       size_t *staged)
{
	const char *dir = v[0].m.path;
	size_t dirlen = v[0].dirlen, bad;
	struct stage_file *sf;
	int dfd, e;

	dfd = dirlen ? stage_open_dir_p(root, dir, dirlen, created) : dup(root);
	if (dfd < 0) {
		e = dirlen ? -dfd : errno;
		fprintf(stderr, "casfsctl: line %lu: %.*s: cannot create directory: %s\n",
			v[0].m.line, (int)dirlen, dir, strerror(e));
		return -1;
	}
	sf = calloc(n, sizeof(*sf));
	if (!sf) {
		fprintf(stderr, "casfsctl: out of memory\n");
		close(dfd);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		sf[i].sha256 = v[i].m.sha256;
		sf[i].size = v[i].m.size;
		sf[i].mode = v[i].m.mode;
		sf[i].name = v[i].name;
		sf[i].name_len = strlen(v[i].name);
	}
	e = stage_files(dfd, sf, n, staged, &bad);
	if (e == -ENOMEM) {
		fprintf(stderr, "casfsctl: out of memory\n");
	} else if (e && bad < n) {
		struct sent *b = &v[bad];

		fprintf(stderr, "casfsctl: line %lu: %s: %s\n", b->m.line,
			b->m.path, e == -EEXIST ? "already exists" : strerror(-e));
	} else if (e) {
		fprintf(stderr, "casfsctl: %.*s%s: CASFS_IOC_STAGE: %s%s\n",
			(int)dirlen, dirlen ? dir : ".", "", strerror(-e),
			e == -ENOTTY ? " (not a casfs directory?)" : "");
	}
	free(sf);
	close(dfd);
	return e ? -1 : 0;
}

/* ------------------------------------------------- REv2 (materialize etc.) */

/*
 * The connection options every REv2 command takes. They are collected
 * first and applied over the config file afterwards, so that the
 * command line wins whatever the order, as in casfs-helper.
 */
#define DEFAULT_CONFIG "/etc/casfs/helper.conf"
enum {
	OPT_CAS = 0x100, OPT_INSTANCE, OPT_CA_FILE, OPT_CLIENT_CERT, OPT_CLIENT_KEY,
	OPT_AUTH_HEADER_FILE, OPT_TIMEOUT, OPT_CONFIG, OPT_TREE, OPT_ALLOW_ABS,
	OPT_ALLOW_ESC, OPT_ACTION, OPT_ACTION_RESULT,
};
#define CONN_OPTIONS \
	{ "cas", required_argument, NULL, OPT_CAS }, \
	{ "instance", required_argument, NULL, OPT_INSTANCE }, \
	{ "ca-file", required_argument, NULL, OPT_CA_FILE }, \
	{ "client-cert", required_argument, NULL, OPT_CLIENT_CERT }, \
	{ "client-key", required_argument, NULL, OPT_CLIENT_KEY }, \
	{ "auth-header-file", required_argument, NULL, OPT_AUTH_HEADER_FILE }, \
	{ "timeout", required_argument, NULL, OPT_TIMEOUT }, \
	{ "config", required_argument, NULL, OPT_CONFIG }
#define POLICY_OPTIONS \
	{ "allow-absolute-symlinks", no_argument, NULL, OPT_ALLOW_ABS }, \
	{ "allow-escaping-symlinks", no_argument, NULL, OPT_ALLOW_ESC }

struct conn {
	const char *config;
	struct { const char *key, *val; } set[16];
	int nset;
	struct options o;
	struct rev2 *c;
};

/* 1: taken; 0: not a connection or policy option. */
static int conn_opt(struct conn *k, struct tree_policy *pol, int c, const char *arg)
{
	static const char *const keys[] = {
		[OPT_CAS - OPT_CAS] = "cas", [OPT_INSTANCE - OPT_CAS] = "instance",
		[OPT_CA_FILE - OPT_CAS] = "ca-file", [OPT_CLIENT_CERT - OPT_CAS] = "client-cert",
		[OPT_CLIENT_KEY - OPT_CAS] = "client-key",
		[OPT_AUTH_HEADER_FILE - OPT_CAS] = "auth-header-file",
		[OPT_TIMEOUT - OPT_CAS] = "timeout",
	};

	if (c == OPT_CONFIG) {
		k->config = arg;
		return 1;
	}
	if (c == OPT_ALLOW_ABS || c == OPT_ALLOW_ESC) {
		if (c == OPT_ALLOW_ABS)
			pol->allow_absolute = true;
		else
			pol->allow_escaping = true;
		return 1;
	}
	if (c < OPT_CAS || c > OPT_TIMEOUT || k->nset == (int)(sizeof(k->set) / sizeof(k->set[0])))
		return 0;
	k->set[k->nset].key = keys[c - OPT_CAS];
	k->set[k->nset++].val = arg;
	return 1;
}

/* Config file, then the command line; connects (lazily). 0 or -1 (printed). */
static int conn_open(struct conn *k)
{
	struct rev2_opts ro = { 0 };
	const char *cfg = k->config;
	char err[512];
	int r;

	options_init(&k->o);
	if (!cfg && access(DEFAULT_CONFIG, F_OK) == 0)
		cfg = DEFAULT_CONFIG;
	if (cfg && *cfg && config_load(&k->o, cfg, err, sizeof(err))) {
		fprintf(stderr, "casfsctl: %s\n", err);
		return -1;
	}
	for (int i = 0; i < k->nset; i++) {
		if (options_set(&k->o, k->set[i].key, k->set[i].val, err, sizeof(err))) {
			fprintf(stderr, "casfsctl: --%s\n", err);
			return -1;
		}
	}
	if (!k->o.cas) {
		fprintf(stderr, "casfsctl: no CAS: give --cas grpc://HOST:PORT (or a config file "
			"with 'cas = ...', default %s)\n", DEFAULT_CONFIG);
		return -1;
	}
	if (!grpc_url_ok(k->o.cas)) {
		url_redact(k->o.cas, err, sizeof(err));
		fprintf(stderr, "casfsctl: %s: the REv2 commands need a grpc://, grpcs:// or unix: CAS\n",
			err);
		return -1;
	}
	ro.url = k->o.cas;
	ro.instance = k->o.instance;
	ro.ca_file = k->o.ca_file;
	ro.cert_file = k->o.client_cert;
	ro.key_file = k->o.client_key;
	ro.header_file = k->o.auth_header_file;
	ro.timeout_ms = (int64_t)k->o.timeout_s * 1000;
	r = rev2_open(&k->c, &ro, err, sizeof(err));
	if (r) {
		fprintf(stderr, "casfsctl: %s\n", err);
		return -1;
	}
	return 0;
}

static void conn_close(struct conn *k)
{
	if (k->c)
		rev2_close(k->c);
	k->c = NULL;
	options_free(&k->o);
}

static void digest_str(const struct rev2_digest *d, char *buf, size_t len)
{
	char hex[HEX_LEN + 1];

	hex_encode(d->sha256, hex);
	snprintf(buf, len, "%s/%llu", hex, (unsigned long long)d->size);
}

/* Fetch a Tree blob (verified against its digest) into t; *root its root. */
static int load_tree_blob(struct conn *k, struct tree *t, const struct rev2_digest *d,
			  struct rev2_digest *root, const char *what)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[512], ds[HEX_LEN + 32];
	int r;

	digest_str(d, ds, sizeof(ds));
	r = rev2_read_blob(k->c, d, TREE_MAX_BYTES, &buf, &len, err, sizeof(err));
	if (r) {
		fprintf(stderr, "casfsctl: %s: Tree %s: %s\n", what, ds, err);
		return -1;
	}
	r = tree_add_tree(t, buf, len, root, err, sizeof(err));
	free(buf);
	if (r) {
		fprintf(stderr, "casfsctl: %s: Tree %s: %s\n", what, ds, err);
		return -1;
	}
	return 0;
}

struct page_ctx {
	struct tree *t;
	size_t pages;
	char err[512];
};

static int on_page(void *ud, const uint8_t *msg, size_t len)
{
	struct page_ctx *p = ud;

	p->pages++;
	return tree_add_page(p->t, msg, len, p->err, sizeof(p->err)) ? -EBADMSG : 0;
}

/* Bazel's output permissions: r-x or r-- for everyone, never writable. */
#define MODE_EXEC 0555
#define MODE_PLAIN 0444

static int v_dir(void *ud, const char *path)
{
	return stager_dir(ud, path) ? -ECANCELED : 0;
}

static int v_file(void *ud, const char *path, const char *name,
		  const struct rev2_digest *d, bool exec)
{
	return stager_file(ud, name, d->sha256, d->size, exec ? MODE_EXEC : MODE_PLAIN) ?
		-ECANCELED : 0;
}

static int v_symlink(void *ud, const char *path, const char *name, const char *target)
{
	return stager_symlink(ud, name, target) ? -ECANCELED : 0;
}

static const struct tree_visitor stage_visitor = { v_dir, v_file, v_symlink };

static int cmd_materialize(int argc, char **argv)
{
	static const struct option opts[] = {
		CONN_OPTIONS, POLICY_OPTIONS,
		{ "tree", no_argument, NULL, OPT_TREE },
		{ NULL, 0, NULL, 0 },
	};
	struct tree_policy pol = { 0 };
	struct conn k = { 0 };
	struct tree *t = NULL;
	struct rev2_digest d, root;
	struct tree_stats st;
	struct stager sg;
	bool as_tree = false;
	char err[TREE_MAX_PATH + 600], ds[HEX_LEN + 32];
	size_t created = 0;
	double t0 = now_s(), t_fetch;
	int c, r, fd = -1, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_TREE)
			as_tree = true;
		else if (!conn_opt(&k, &pol, c, optarg)) {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (rev2_parse_digest(argv[optind], &d)) {
		fprintf(stderr, "casfsctl: bad digest '%s' (want HEX/SIZE)\n", argv[optind]);
		return 2;
	}
	if (conn_open(&k))
		goto out;
	if (tree_new(&t)) {
		fprintf(stderr, "casfsctl: out of memory\n");
		goto out;
	}
	digest_str(&d, ds, sizeof(ds));
	if (as_tree) {
		if (load_tree_blob(&k, t, &d, &root, argv[optind + 1]))
			goto out;
	} else {
		struct page_ctx p = { .t = t };

		root = d;
		r = rev2_get_tree(k.c, &d, on_page, &p, err, sizeof(err));
		if (r) {
			fprintf(stderr, "casfsctl: GetTree %s: %s\n", ds,
				r == -EBADMSG && p.err[0] ? p.err : err);
			goto out;
		}
	}
	t_fetch = now_s() - t0;
	/* everything is checked before anything is created */
	r = tree_walk(t, &root, NULL, 0, &pol, NULL, NULL, &st, err, sizeof(err));
	if (r) {
		fprintf(stderr, "casfsctl: %s: refused: %s\n", argv[optind + 1], err);
		goto out;
	}
	fd = stage_open_root(argv[optind + 1], &created);
	if (fd < 0)
		goto out;
	stager_init(&sg, fd);
	r = tree_walk(t, &root, NULL, 0, &pol, &stage_visitor, &sg, &st, err, sizeof(err));
	if (r && r != -ECANCELED)
		fprintf(stderr, "casfsctl: %s: %s\n", argv[optind + 1], err);
	if (stager_finish(&sg) || r) {
		fprintf(stderr, "casfsctl: stopped after staging %zu files\n", sg.files);
		goto out;
	}
	printf("materialized %llu files, %llu directories, %llu symlinks "
	       "(%zu distinct directories fetched in %.3f s) in %.3f s\n",
	       (unsigned long long)st.files, (unsigned long long)st.dirs,
	       (unsigned long long)st.symlinks, tree_count(t), t_fetch, now_s() - t0);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	tree_free(t);
	conn_close(&k);
	return ret;
}

/* ------------------------------------------------------------------ check */

struct ck_item {
	char *path;
	struct rev2_digest d;
};

static struct ck {
	struct ck_item *v;
	size_t n, cap;
	size_t walk_errors, other;
	bool oom;
} ck;

static int ck_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	struct casfs_state st;
	int fd;

	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		fprintf(stderr, "casfsctl: %s: cannot read\n", path);
		ck.walk_errors++;
		return 0;
	}
	if (type != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "casfsctl: %s: %s\n", path, strerror(errno));
		ck.walk_errors++;
		return 0;
	}
	memset(&st, 0, sizeof(st));
	if (ioctl(fd, CASFS_IOC_STATE, &st) < 0 || !(st.flags & CASFS_STATE_CAS) ||
	    (st.flags & CASFS_STATE_LOCAL)) {
		close(fd);
		ck.other++;	/* local, or not on casfs: nothing to ask */
		return 0;
	}
	close(fd);
	if (ck.n == ck.cap) {
		size_t ncap = ck.cap ? ck.cap * 2 : 1024;
		struct ck_item *nv = realloc(ck.v, ncap * sizeof(*nv));

		if (!nv) {
			ck.oom = true;
			return -1;
		}
		ck.v = nv;
		ck.cap = ncap;
	}
	ck.v[ck.n].path = strdup(path);
	if (!ck.v[ck.n].path) {
		ck.oom = true;
		return -1;
	}
	memcpy(ck.v[ck.n].d.sha256, st.sha256, CASFS_SHA256_LEN);
	ck.v[ck.n++].d.size = st.size;
	return 0;
}

static int cmp_digest(const void *a, const void *b)
{
	const struct rev2_digest *x = a, *y = b;
	int c = memcmp(x->sha256, y->sha256, CASFS_SHA256_LEN);

	return c ? c : x->size < y->size ? -1 : x->size > y->size;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		CONN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct tree_policy unused = { 0 };
	struct conn k = { 0 };
	struct rev2_digest *u = NULL;
	bool *missing = NULL;
	size_t nu = 0, nmissing = 0;
	char err[512];
	double t0 = now_s();
	int c, r, ret = 3;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (!conn_opt(&k, &unused, c, optarg)) {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (conn_open(&k))
		goto out;
	for (int i = optind; i < argc; i++) {
		if (nftw(argv[i], ck_visit, 32, FTW_PHYS) != 0) {
			fprintf(stderr, "casfsctl: %s: %s\n", argv[i],
				ck.oom ? "out of memory" : errno ? strerror(errno) : "walk failed");
			ck.walk_errors++;
		}
	}
	if (ck.oom)
		goto out;
	/* one question per distinct blob, however many files share it */
	u = malloc((ck.n ? ck.n : 1) * sizeof(*u));
	missing = calloc(ck.n ? ck.n : 1, sizeof(*missing));
	if (!u || !missing) {
		fprintf(stderr, "casfsctl: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < ck.n; i++)
		u[i] = ck.v[i].d;
	qsort(u, ck.n, sizeof(*u), cmp_digest);
	for (size_t i = 0; i < ck.n; i++)
		if (!nu || cmp_digest(&u[nu - 1], &u[i]))
			u[nu++] = u[i];
	if (nu) {
		r = rev2_find_missing(k.c, u, nu, missing, err, sizeof(err));
		if (r) {
			fprintf(stderr, "casfsctl: FindMissingBlobs: %s\n", err);
			goto out;
		}
	}
	for (size_t i = 0; i < ck.n; i++) {
		struct rev2_digest *f = bsearch(&ck.v[i].d, u, nu, sizeof(*u), cmp_digest);
		char ds[HEX_LEN + 32];

		if (f && missing[f - u]) {
			digest_str(&ck.v[i].d, ds, sizeof(ds));
			printf("missing %s %s\n", ds, ck.v[i].path);
			nmissing++;
		}
	}
	printf("checked %zu CAS-backed files (%zu distinct blobs): %zu missing, "
	       "%zu other files, %zu errors, in %.3f s\n", ck.n, nu, nmissing, ck.other,
	       ck.walk_errors, now_s() - t0);
	ret = nmissing ? 1 : ck.walk_errors ? 3 : 0;
out:
	for (size_t i = 0; i < ck.n; i++)
		free(ck.v[i].path);
	free(ck.v);
	free(u);
	free(missing);
	conn_close(&k);
	return ret;
}

/* --------------------------------------------------- stage an ActionResult */

static unsigned slashes_in(const char *p)
{
	unsigned n = 0;

	for (; *p; p++)
		n += *p == '/';
	return n;
}

struct leaf {
	const char *path;
	size_t dirlen;		/* bytes before the last '/' (0: top) */
	const struct ar_file *f;	/* or */
	const struct ar_symlink *l;
};

static int cmp_leaf(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;
	size_t n = x->dirlen < y->dirlen ? x->dirlen : y->dirlen;
	int c = memcmp(x->path, y->path, n);

	if (c)
		return c;
	if (x->dirlen != y->dirlen)
		return x->dirlen < y->dirlen ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int cmd_stage_action(int argc, char **argv)
{
	static const struct option opts[] = {
		CONN_OPTIONS, POLICY_OPTIONS,
		{ "action", required_argument, NULL, OPT_ACTION },
		{ "action-result", required_argument, NULL, OPT_ACTION_RESULT },
		{ NULL, 0, NULL, 0 },
	};
	struct tree_policy pol = { 0 };
	struct conn k = { 0 };
	struct action_result ar = { 0 };
	struct rev2_digest *roots = NULL;
	struct tree *t = NULL;
	struct leaf *lv = NULL;
	struct stager sg;
	const char *action = NULL, *arfile = NULL, *dir;
	uint8_t *buf = NULL;
	size_t len = 0, created = 0, nl = 0;
	char err[TREE_MAX_PATH + 600];
	double t0 = now_s();
	int c, r, fd = -1, ret = 1;
	bool staging = false;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_ACTION)
			action = optarg;
		else if (c == OPT_ACTION_RESULT)
			arfile = optarg;
		else if (!conn_opt(&k, &pol, c, optarg)) {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || !action == !arfile) {
		fputs(usage, stderr);
		return 2;
	}
	dir = argv[optind];
	if (action) {
		struct rev2_digest ad;

		if (rev2_parse_digest(action, &ad)) {
			fprintf(stderr, "casfsctl: bad action digest '%s' (want HEX/SIZE)\n", action);
			return 2;
		}
		if (conn_open(&k))
			goto out;
		r = rev2_get_action_result(k.c, &ad, &buf, &len, err, sizeof(err));
		if (r) {
			fprintf(stderr, "casfsctl: GetActionResult %s: %s\n", action,
				r == -ENOENT ? "not in the action cache" : err);
			goto out;
		}
	} else {
		r = read_small_file(arfile, 64 << 20, (char **)&buf, &len);
		if (r) {
			fprintf(stderr, "casfsctl: %s: %s\n", arfile, strerror(-r));
			goto out;
		}
	}
	if (tree_parse_action_result(buf, len, &pol, &ar, err, sizeof(err))) {
		fprintf(stderr, "casfsctl: ActionResult: %s\n", err);
		goto out;
	}
	/* the output directories' Trees: all fetched and checked first */
	if (ar.ndirs) {
		if (!k.c && conn_open(&k))
			goto out;
		roots = calloc(ar.ndirs, sizeof(*roots));
		if (!roots || tree_new(&t)) {
			fprintf(stderr, "casfsctl: out of memory\n");
			goto out;
		}
	}
	for (size_t i = 0; i < ar.ndirs; i++) {
		struct tree_stats st;

		if (load_tree_blob(&k, t, &ar.dirs[i].tree, &roots[i], ar.dirs[i].path))
			goto out;
		r = tree_walk(t, &roots[i], ar.dirs[i].path, slashes_in(ar.dirs[i].path) + 1,
			      &pol, NULL, NULL, &st, err, sizeof(err));
		if (r) {
			fprintf(stderr, "casfsctl: refused: %s\n", err);
			goto out;
		}
	}
	/* files and symlinks, grouped by directory */
	lv = calloc(ar.nfiles + ar.nsymlinks + 1, sizeof(*lv));
	if (!lv) {
		fprintf(stderr, "casfsctl: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < ar.nfiles; i++)
		lv[nl++] = (struct leaf){ .path = ar.files[i].path, .f = &ar.files[i] };
	for (size_t i = 0; i < ar.nsymlinks; i++)
		lv[nl++] = (struct leaf){ .path = ar.symlinks[i].path, .l = &ar.symlinks[i] };
	for (size_t i = 0; i < nl; i++) {
		const char *s = strrchr(lv[i].path, '/');

		lv[i].dirlen = s ? (size_t)(s - lv[i].path) : 0;
	}
	qsort(lv, nl, sizeof(*lv), cmp_leaf);

	fd = stage_open_root(dir, &created);
	if (fd < 0)
		goto out;
	stager_init(&sg, fd);
	staging = true;
	for (size_t i = 0; i < nl; i++) {
		const char *name = lv[i].path + lv[i].dirlen + (lv[i].dirlen ? 1 : 0);

		if (!i || lv[i].dirlen != lv[i - 1].dirlen ||
		    memcmp(lv[i].path, lv[i - 1].path, lv[i].dirlen)) {
			char d[MANIFEST_MAX_PATH + 1];

			memcpy(d, lv[i].path, lv[i].dirlen);
			d[lv[i].dirlen] = 0;
			if (stager_dir(&sg, d))
				goto stop;
		}
		if (lv[i].f ? stager_file(&sg, name, lv[i].f->d.sha256, lv[i].f->d.size,
					  lv[i].f->executable ? MODE_EXEC : MODE_PLAIN) :
			      stager_symlink(&sg, name, lv[i].l->target))
			goto stop;
	}
	for (size_t i = 0; i < ar.ndirs; i++) {
		r = tree_walk(t, &roots[i], ar.dirs[i].path, slashes_in(ar.dirs[i].path) + 1,
			      &pol, &stage_visitor, &sg, NULL, err, sizeof(err));
		if (r) {
			if (r != -ECANCELED)
				fprintf(stderr, "casfsctl: %s\n", err);
			goto stop;
		}
	}
	staging = false;
	if (stager_finish(&sg))
		goto stop;
	printf("staged %zu files, %zu symlinks, %zu output directories (%zu directories) "
	       "from the action result in %.3f s\n", sg.files, sg.symlinks, ar.ndirs, sg.dirs,
	       now_s() - t0);
	ret = 0;
	goto out;
stop:
	if (staging)
		stager_finish(&sg);
	fprintf(stderr, "casfsctl: stopped after staging %zu files\n", sg.files);
out:
	if (fd >= 0)
		close(fd);
	action_result_free(&ar);
	free(roots);
	free(lv);
	free(buf);
	tree_free(t);
	conn_close(&k);
	return ret;
}

static int cmd_stage(int argc, char **argv)
{
	static char line[MANIFEST_MAX_LINE + 1];
	const char *dir, *mf;
	struct sent *v = NULL;
	char **files = NULL, err[256];
	size_t n = 0, cap = 0, created = 0, staged = 0, ndirs = 0, len;
	unsigned long lineno = 0;
	double t0 = now_s();
	int root = -1, r, ret = 1;
	FILE *f;

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--", 2))
			return cmd_stage_action(argc, argv);
	if (argc < 2 || argc > 3) {
		fputs(usage, stderr);
		return 2;
	}
	dir = argv[1];
	mf = argc == 3 ? argv[2] : "-";
	f = strcmp(mf, "-") ? fopen(mf, "re") : stdin;
	if (!f) {
		fprintf(stderr, "casfsctl: %s: %s\n", mf, strerror(errno));
		return 1;
	}
	while ((r = read_line(f, line, MANIFEST_MAX_LINE, &len)) != 0) {
		struct manifest_entry e = { 0 };
		const char *slash;

		lineno++;
		if (r == -2) {
			fprintf(stderr, "casfsctl: %s: %s\n", mf, strerror(errno));
			goto out;
		}
		if (r == -1) {
			fprintf(stderr, "casfsctl: %s:%lu: line longer than %d bytes\n", mf,
				lineno, MANIFEST_MAX_LINE);
			goto out;
		}
		r = manifest_parse_line(line, len, &e, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "casfsctl: %s:%lu: %s\n", mf, lineno, err);
			goto out;
		}
		if (!r)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			struct sent *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				free(e.path);
				fprintf(stderr, "casfsctl: out of memory\n");
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		e.line = lineno;
		slash = strrchr(e.path, '/');
		v[n].m = e;
		v[n].dirlen = slash ? (size_t)(slash - e.path) : 0;
		v[n].name = slash ? slash + 1 : e.path;
		n++;
	}

	/* Whole-manifest checks before touching anything. */
	qsort(v, n, sizeof(*v), cmp_sent);
	files = malloc((n ? n : 1) * sizeof(*files));
	if (!files) {
		fprintf(stderr, "casfsctl: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		files[i] = v[i].m.path;
		if (i && !strcmp(v[i].m.path, v[i - 1].m.path)) {
			fprintf(stderr, "casfsctl: %s:%lu: %s: duplicate (also line %lu)\n",
				mf, v[i].m.line, v[i].m.path, v[i - 1].m.line);
			goto out;
		}
	}
	qsort(files, n, sizeof(*files), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char *p = v[i].m.path;

		if (i && v[i].dirlen == v[i - 1].dirlen &&
		    !memcmp(p, v[i - 1].m.path, v[i].dirlen))
			continue;	/* same directory as before */
		for (size_t k = 1; k <= v[i].dirlen; k++) {
			char prefix[MANIFEST_MAX_PATH + 1], *key = prefix;

			if (k < v[i].dirlen && p[k] != '/')
				continue;
			/* a copy: files[] points at these very strings */
			memcpy(prefix, p, k);
			prefix[k] = 0;
			if (bsearch(&key, files, n, sizeof(*files), cmp_str)) {
				fprintf(stderr, "casfsctl: %s:%lu: %s: a parent is also a file in the manifest\n",
					mf, v[i].m.line, p);
				goto out;
			}
		}
	}

	root = stage_open_root(dir, &created);
	if (root < 0)
		goto out;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && v[j].dirlen == v[i].dirlen &&
		       !memcmp(v[j].m.path, v[i].m.path, v[i].dirlen))
			j++;
		ndirs++;
		if (stage_group(root, v + i, j - i, &created, &staged)) {
			fprintf(stderr, "casfsctl: stopped after staging %zu files\n", staged);
			goto out;
		}
		i = j;
	}
	printf("staged %zu file%s in %zu director%s (%zu created) in %.3f s\n",
	       staged, staged == 1 ? "" : "s", ndirs, ndirs == 1 ? "y" : "ies", created,
	       now_s() - t0);
	ret = 0;
out:
	if (root >= 0)
		close(root);
	for (size_t i = 0; i < n; i++)
		free(v[i].m.path);
	free(v);
	free(files);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* ----------------------------------------------------------------- digest */

static int cmd_digest(int argc, char **argv)
{
	int ret = 0;

	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		uint8_t d[CASFS_SHA256_LEN + 1];
		char hex[HEX_LEN + 1];
		struct stat st;
		ssize_t n;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "casfsctl: %s: %s\n", argv[i], strerror(errno));
			ret = 1;
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr, "casfsctl: %s: not a regular file\n", argv[i]);
			ret = 1;
			continue;
		}
		n = getxattr(argv[i], CASFS_XATTR_SHA256, d, sizeof(d));
		if (n != CASFS_SHA256_LEN) {
			if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
				fprintf(stderr, "casfsctl: %s: no casfs digest (not on casfs?)\n",
					argv[i]);
			else if (n < 0)
				fprintf(stderr, "casfsctl: %s: %s\n", argv[i], strerror(errno));
			else
				fprintf(stderr, "casfsctl: %s: digest xattr has %zd bytes\n",
					argv[i], n);
			ret = 1;
			continue;
		}
		hex_encode(d, hex);
		printf("%s %llu  %s\n", hex, (unsigned long long)st.st_size, argv[i]);
	}
	return ret;
}

/* --------------------------------------------------------------- prefetch */

struct pf_item {
	char *path;
	uint64_t size;
};

static struct pf {
	regex_t re;
	bool use_re;
	struct pf_item *v;
	size_t n, cap;
	size_t files, present, local, walk_errors;
	atomic_size_t next, done, errors;
	atomic_ullong bytes;
} pf;

static int pf_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	struct casfs_state st;
	int fd;

	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		fprintf(stderr, "casfsctl: %s: cannot read\n", path);
		pf.walk_errors++;
		return 0;
	}
	if (type != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	if (pf.use_re && regexec(&pf.re, path, 0, NULL, 0))
		return 0;
	pf.files++;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "casfsctl: %s: %s\n", path, strerror(errno));
		pf.walk_errors++;
		return 0;
	}
	memset(&st, 0, sizeof(st));
	if (ioctl(fd, CASFS_IOC_STATE, &st) < 0) {
		close(fd);
		pf.local++;	/* not on casfs */
		return 0;
	}
	close(fd);
	if (!(st.flags & CASFS_STATE_CAS) || st.size == 0) {
		pf.local++;
		return 0;
	}
	if (st.flags & CASFS_STATE_PRESENT) {
		pf.present++;
		return 0;
	}
	if (pf.n == pf.cap) {
		size_t ncap = pf.cap ? pf.cap * 2 : 1024;
		struct pf_item *nv = realloc(pf.v, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		pf.v = nv;
		pf.cap = ncap;
	}
	pf.v[pf.n].path = strdup(path);
	if (!pf.v[pf.n].path)
		return -1;
	pf.v[pf.n++].size = st.size;
	return 0;
}

static void *pf_worker(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i = atomic_fetch_add(&pf.next, 1);
		struct pf_item *it;
		char b;
		int fd;

		if (i >= pf.n)
			return NULL;
		it = &pf.v[i];
		fd = open(it->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0 || pread(fd, &b, 1, 0) < 0) {
			fprintf(stderr, "casfsctl: %s: %s\n", it->path, strerror(errno));
			atomic_fetch_add(&pf.errors, 1);
		} else {
			atomic_fetch_add(&pf.done, 1);
			atomic_fetch_add(&pf.bytes, it->size);
		}
		if (fd >= 0)
			close(fd);
	}
}

static int cmd_prefetch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "regex", required_argument, NULL, 'r' },
		{ "jobs", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *re = NULL;
	uint64_t jobs = 8;
	pthread_t *th;
	double t0 = now_s();
	int c, ret = 0;
	size_t nth;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:j:", opts, NULL)) != -1) {
		if (c == 'r') {
			re = optarg;
		} else if (c == 'j') {
			if (parse_u64(optarg, 1024, &jobs) || !jobs) {
				fprintf(stderr, "casfsctl: --jobs: want 1..1024\n");
				return 2;
			}
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (re) {
		char msg[256];
		int e = regcomp(&pf.re, re, REG_EXTENDED | REG_NOSUB);

		if (e) {
			regerror(e, &pf.re, msg, sizeof(msg));
			fprintf(stderr, "casfsctl: --regex: %s\n", msg);
			return 2;
		}
		pf.use_re = true;
	}
	for (int i = optind; i < argc; i++) {
		if (nftw(argv[i], pf_visit, 32, FTW_PHYS) != 0) {
			fprintf(stderr, "casfsctl: %s: %s\n", argv[i],
				errno ? strerror(errno) : "walk failed");
			ret = 1;
		}
	}
	nth = pf.n < jobs ? pf.n : (size_t)jobs;
	th = calloc(nth ? nth : 1, sizeof(*th));
	if (!th) {
		fprintf(stderr, "casfsctl: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, pf_worker, NULL)) {
			nth = i;
			break;
		}
	}
	if (!nth && pf.n)
		pf_worker(NULL);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	free(th);
	printf("prefetched %zu of %zu files (%llu bytes), %zu errors, %zu already present, "
	       "%zu not CAS-backed, in %.3f s\n",
	       (size_t)pf.done, pf.n, (unsigned long long)pf.bytes,
	       (size_t)pf.errors + pf.walk_errors, pf.present, pf.local, now_s() - t0);
	for (size_t i = 0; i < pf.n; i++)
		free(pf.v[i].path);
	free(pf.v);
	if (pf.use_re)
		regfree(&pf.re);
	return ret || pf.errors || pf.walk_errors ? 1 : 0;
}

/* ------------------------------------------------------------------ stats */

static const struct {
	int attr;
	const char *name;
	int len;
} kstats[] = {
	{ CASFS_A_STAT_HELPER, "helper_registered", 4 },
	{ CASFS_A_STAT_MISSES, "misses", 8 },
	{ CASFS_A_STAT_FETCHES, "fetches", 8 },
	{ CASFS_A_STAT_FETCH_BYTES, "fetch_bytes", 8 },
	{ CASFS_A_STAT_ERRORS, "errors", 8 },
	{ CASFS_A_STAT_TIMEOUTS, "timeouts", 8 },
	{ CASFS_A_STAT_PENDING, "pending", 8 },
	{ CASFS_A_STAT_REFETCHES, "refetches", 8 },
	{ CASFS_A_STAT_CANCELS, "cancels", 8 },
};

static int stats_reply(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nh = nlmsg_hdr(msg);
	struct nlattr *tb[CASFS_A_MAX + 1];
	int *got = arg;

	if (!genlmsg_valid_hdr(nh, 0) || genlmsg_hdr(nh)->cmd != CASFS_CMD_GET_STATS ||
	    genlmsg_parse(nh, 0, tb, CASFS_A_MAX, NULL) < 0)
		return NL_SKIP;
	printf("kernel (casfs.ko):\n");
	for (size_t i = 0; i < sizeof(kstats) / sizeof(kstats[0]); i++) {
		struct nlattr *a = tb[kstats[i].attr];

		if (!a || nla_len(a) != kstats[i].len)
			printf("  %-22s -\n", kstats[i].name);
		else if (kstats[i].len == 4)
			printf("  %-22s %s\n", kstats[i].name, nla_get_u32(a) ? "yes" : "no");
		else
			printf("  %-22s %llu\n", kstats[i].name,
			       (unsigned long long)nla_get_u64(a));
	}
	*got = 1;
	return NL_OK;
}

static int kernel_stats(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_msg *m = NULL;
	int fam, r, got = 0;

	if (!sk)
		return -ENOMEM;
	r = genl_connect(sk);
	if (r < 0)
		goto out;
	fam = genl_ctrl_resolve(sk, CASFS_GENL_NAME);
	if (fam < 0) {
		printf("kernel (casfs.ko): not loaded\n");
		r = 0;
		goto out;
	}
	m = nlmsg_alloc();
	if (!m || !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, fam, 0, 0,
			       CASFS_CMD_GET_STATS, CASFS_GENL_VERSION)) {
		r = -NLE_NOMEM;
		goto out;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, stats_reply, &got);
	r = nl_send_auto(sk, m);
	if (r >= 0)
		r = nl_recvmsgs_default(sk);
	if (r >= 0 && got)
		r = nl_wait_for_ack(sk);
	if (r >= 0 && !got)
		printf("kernel (casfs.ko): no statistics in the reply\n");
out:
	if (r < 0)
		fprintf(stderr, "casfsctl: GET_STATS: %s\n", nl_geterror(r));
	nlmsg_free(m);
	nl_socket_free(sk);
	return r < 0 ? -EIO : 0;
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stats-file", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_STATS_FILE;
	char *buf = NULL;
	size_t len;
	int c, ret = 0, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (c != 's') {
			fputs(usage, stderr);
			return 2;
		}
		path = optarg;
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (kernel_stats())
		ret = 1;
	r = read_small_file(path, 64 * 1024, &buf, &len);
	if (r) {
		printf("helper: no statistics (%s: %s)\n", path, strerror(-r));
		return ret;
	}
	printf("helper (%s):\n", path);
	for (char *l = buf, *nl; *l; l = nl + 1) {
		char *sp;

		nl = strchr(l, '\n');
		if (!nl)
			nl = l + strlen(l) - 1;
		else
			*nl = 0;
		sp = strchr(l, ' ');
		for (char *p = l; *p; p++)	/* it is only text, keep it so */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		if (sp) {
			*sp = 0;
			printf("  %-22s %s\n", l, sp + 1);
		} else if (*l) {
			printf("  %s\n", l);
		}
		if (!nl[1])
			break;
	}
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	log_prefix = "casfsctl";
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "stage"))
		return cmd_stage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "materialize"))
		return cmd_materialize(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "digest"))
		return cmd_digest(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prefetch"))
		return cmd_prefetch(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats"))
		return cmd_stats(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("casfsctl %s\n", CASFS_VERSION);
		return 0;
	}
	fprintf(stderr, "casfsctl: unknown command '%s'\n", argv[1]);
	fputs(usage, stderr);
	return 2;
}
