// SPDX-License-Identifier: GPL-2.0
/*
 * casfsctl: the command line for casfs.
 *
 *   casfsctl stage DIR [MANIFEST|-]   create CAS-backed files (CASFS_IOC_STAGE)
 *   casfsctl digest PATH...           print "<sha256 hex> <size>  PATH"
 *   casfsctl prefetch [--regex RE] [--jobs N] PATH...
 *                                     fetch every CAS-backed file not yet present
 *   casfsctl stats [--stats-file F]   kernel and helper statistics
 */
#include "common.h"
#include "manifest.h"

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

#define DEFAULT_STATS_FILE "/run/casfs-helper.stats"

static const char usage[] =
	"usage: casfsctl stage DIR [MANIFEST|-]\n"
	"       casfsctl digest PATH...\n"
	"       casfsctl prefetch [--regex ERE] [--jobs N] PATH...\n"
	"       casfsctl stats [--stats-file FILE]\n"
	"\n"
	"stage     create CAS-backed files under DIR (on casfs) from manifest lines\n"
	"          '<sha256 hex> <size> <octal mode> <relative path>' (stdin if no\n"
	"          MANIFEST); missing directories are created (0755)\n"
	"digest    print '<sha256 hex> <size>  PATH' from the file's digest xattr\n"
	"prefetch  fetch now, N at a time (default 8), every CAS-backed file under\n"
	"          PATH... not yet in the cache (whose path matches ERE, if given)\n"
	"stats     show casfs.ko's counters and casfs-helper's statistics\n";

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

/* mkdir -p rel under root (no symlinks followed); returns an fd or -errno. */
static int open_dir_p(int root, const char *rel, size_t len, size_t *created)
{
	char comp[MANIFEST_MAX_NAME + 1];
	int fd = dup(root), nfd;
	size_t i = 0;

	if (fd < 0)
		return -errno;
	while (i < len) {
		size_t j = i;

		while (j < len && rel[j] != '/')
			j++;
		if (j == i || j - i > MANIFEST_MAX_NAME) {	/* "//", or too long */
			if (j == i) {
				i++;
				continue;
			}
			errno = ENAMETOOLONG;
			goto fail;
		}
		memcpy(comp, rel + i, j - i);
		comp[j - i] = 0;
		if (mkdirat(fd, comp, 0755) == 0)
			(*created)++;
		else if (errno != EEXIST)
			goto fail;
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			goto fail;
		close(fd);
		fd = nfd;
		i = j + 1;
	}
	return fd;
fail:
	nfd = -errno;
	close(fd);
	return nfd;
}

static int stage_group(int root, struct sent *v, size_t n, size_t *created,
		       size_t *staged)
{
	const char *dir = v[0].m.path;
	size_t dirlen = v[0].dirlen, i = 0, names_cap = 0;
	struct casfs_stage_entry *ents;
	char *names;
	int dfd, ret = 0;

	dfd = dirlen ? open_dir_p(root, dir, dirlen, created) : dup(root);
	if (dfd < 0) {
		int e = dirlen ? -dfd : errno;

		fprintf(stderr, "casfsctl: line %lu: %.*s: cannot create directory: %s\n",
			v[0].m.line, (int)dirlen, dir, strerror(e));
		return -1;
	}
	for (size_t k = 0; k < n && names_cap < CASFS_STAGE_MAX_NAMES; k++)
		names_cap += strlen(v[k].name);
	if (names_cap > CASFS_STAGE_MAX_NAMES)
		names_cap = CASFS_STAGE_MAX_NAMES;
	ents = calloc(n < CASFS_STAGE_MAX_ENTRIES ? n : CASFS_STAGE_MAX_ENTRIES,
		      sizeof(*ents));
	names = malloc(names_cap ? names_cap : 1);
	if (!ents || !names) {
		fprintf(stderr, "casfsctl: out of memory\n");
		ret = -1;
		goto out;
	}
	while (i < n) {
		struct casfs_stage st = { 0 };
		uint32_t count = 0, nlen = 0;
		size_t first = i;

		while (i < n && count < CASFS_STAGE_MAX_ENTRIES) {
			size_t l = strlen(v[i].name);

			if (nlen + l > names_cap)
				break;
			memset(&ents[count], 0, sizeof(ents[count]));
			memcpy(ents[count].sha256, v[i].m.sha256, CASFS_SHA256_LEN);
			ents[count].size = v[i].m.size;
			ents[count].mode = v[i].m.mode;
			ents[count].name_off = nlen;
			ents[count].name_len = (uint32_t)l;
			memcpy(names + nlen, v[i].name, l);
			nlen += (uint32_t)l;
			count++;
			i++;
		}
		st.entries = (uint64_t)(uintptr_t)ents;
		st.names = (uint64_t)(uintptr_t)names;
		st.count = count;
		st.names_len = nlen;
		st.bad_index = ~0u;
		if (ioctl(dfd, CASFS_IOC_STAGE, &st) < 0) {
			int e = errno;

			if (st.bad_index < count) {
				struct sent *b = &v[first + st.bad_index];

				fprintf(stderr, "casfsctl: line %lu: %s: %s\n", b->m.line,
					b->m.path, e == EEXIST ? "already exists" : strerror(e));
			} else {
				fprintf(stderr, "casfsctl: %.*s%s: CASFS_IOC_STAGE: %s%s\n",
					(int)dirlen, dirlen ? dir : ".", "", strerror(e),
					e == ENOTTY ? " (not a casfs directory?)" : "");
			}
			ret = -1;
			goto out;
		}
		*staged += count;
	}
out:
	free(ents);
	free(names);
	close(dfd);
	return ret;
}

/* An empty STAGE on a directory: 0 if it is on casfs and writable. */
static int probe_casfs(int fd)
{
	struct casfs_stage probe = { .bad_index = ~0u };

	if (ioctl(fd, CASFS_IOC_STAGE, &probe) < 0 &&
	    (errno == ENOTTY || errno == EACCES || errno == EROFS || errno == EPERM))
		return -errno;
	return 0;
}

/*
 * Open DIR, creating it and missing parents (0755) -- but only after its
 * deepest existing ancestor proved to be on casfs, so that nothing is
 * created anywhere else. Returns an fd or -1 (message printed).
 */
static int open_stage_root(const char *dir, size_t *created)
{
	char *path = strdup(dir), *cut = NULL;
	size_t len;
	int fd = -1, e;

	if (!path || !*path) {
		fprintf(stderr, "casfsctl: bad directory '%s'\n", dir);
		free(path);
		return -1;
	}
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = 0;
	/* the deepest existing ancestor */
	for (;;) {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		cut = strrchr(path, '/');
		if (!cut) {	/* relative: the current directory */
			fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			cut = path - 1;
			break;
		}
		if (cut == path) {	/* "/x": the root */
			fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			break;
		}
		*cut = 0;
	}
	if (fd < 0) {
		fprintf(stderr, "casfsctl: %s: %s\n", dir, strerror(errno));
		free(path);
		return -1;
	}
	e = probe_casfs(fd);
	if (e) {
		fprintf(stderr, "casfsctl: %s: %s\n", dir,
			e == -ENOTTY ? "not a directory on casfs" : strerror(-e));
		close(fd);
		free(path);
		return -1;
	}
	if (cut) {	/* create the rest, as in the manifest */
		const char *rest = dir + (cut - path) + 1;
		size_t rlen = strlen(rest);
		int nfd;

		while (rlen && rest[rlen - 1] == '/')
			rlen--;
		nfd = open_dir_p(fd, rest, rlen, created);
		close(fd);
		if (nfd < 0) {
			fprintf(stderr, "casfsctl: %s: cannot create: %s\n", dir,
				strerror(-nfd));
			free(path);
			return -1;
		}
		fd = nfd;
	}
	free(path);
	return fd;
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

	root = open_stage_root(dir, &created);
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
