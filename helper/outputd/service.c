// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-outputd: the BazelOutputService RPCs (service.h).
 *
 * State: one struct obase per output base (output path
 * <root>/<output_base_id>, its records, its current build), found by id
 * or by build id. s->lock guards the lists; an obase's lock guards its
 * records and serialises what changes its tree. Calls to the CAS happen
 * with no lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bazel_output_service/bazel_output_service.pb-c.h"
#include "bazel_output_service/bazel_output_service_rev2.pb-c.h"
#include "cas.h"
#include "records.h"
#include "service.h"
#include "statefile.h"

#define MAX_BUILDS 256			/* build ids remembered */
#define MAX_ID 64			/* output_base_id bytes */
#define MAX_BUILD_ID 128

struct obase {
	struct obase *next;
	char id[MAX_ID + 1];
	pthread_mutex_t lock;
	struct outpath op;
	bool open;			/* op is valid */
	bool loaded;			/* records read from the state file */
	bool dirty;			/* records changed since saved */
	struct records recs;
	char build_id[MAX_BUILD_ID + 1];	/* current or last build */
	bool active;			/* started, not finalized */
};

struct build {
	char id[MAX_BUILD_ID + 1];
	struct obase *base;
};

struct service;

/* What the server calls: the method's index, for the log line. */
struct route {
	struct service *s;
	unsigned idx;
};

struct service {
	struct service_opts o;
	struct route routes[6];
	char *root;
	int rootfd;
	dev_t root_dev;
	ino_t root_ino;
	pthread_mutex_t lock;
	struct obase *bases;
	struct build builds[MAX_BUILDS];	/* a ring */
	unsigned nbuilds, next_build;
};

/* ---- small helpers ---- */

static int fail(char **msg, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char **msg, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(msg, fmt, ap) < 0)
		*msg = NULL;
	va_end(ap);
	return code;
}

static int pack_msg(const ProtobufCMessage *m, uint8_t **resp, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	*resp = malloc(n ? n : 1);
	if (!*resp)
		return GRPC_RESOURCE_EXHAUSTED;
	*len = protobuf_c_message_pack(m, *resp);
	return GRPC_OK;
}

static int errno_code(int err)
{
	switch (-err) {
	case 0:
		return GRPC_OK;
	case EINVAL:
	case EXDEV:
	case ENAMETOOLONG:
	case ELOOP:
		return GRPC_INVALID_ARGUMENT;
	case ENOENT:
		return GRPC_NOT_FOUND;
	case EACCES:
	case EPERM:
		return GRPC_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case ENOBUFS:
		return GRPC_RESOURCE_EXHAUSTED;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EAGAIN:
		return GRPC_UNAVAILABLE;
	default:
		return GRPC_INTERNAL;
	}
}

static bool id_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '/')
			return false;
	return true;
}

/* Output base ids name directories: Bazel's are lowercase hex md5s. */
static bool base_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > MAX_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A FileArtifactLocator in an Any: its sha256 and size. */
static bool locator_parse(const Google__Protobuf__Any *a, uint8_t sha[32],
			  uint64_t *size)
{
	BazelOutputServiceRev2__FileArtifactLocator *l;
	const char *h;
	bool ok = false;

	if (!a || !a->type_url || strcmp(a->type_url, BOS_LOCATOR_URL))
		return false;
	l = bazel_output_service_rev2__file_artifact_locator__unpack(
		NULL, a->value.len, a->value.data);
	if (!l)
		return false;
	if (!l->digest || !l->digest->hash || strlen(l->digest->hash) != 64 ||
	    l->digest->size_bytes < 0 ||
	    (uint64_t)l->digest->size_bytes > CASFS_MAX_BLOB_SIZE)
		goto out;
	h = l->digest->hash;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);

		if (hi < 0 || lo < 0)
			goto out;
		sha[i] = (uint8_t)(hi << 4 | lo);
	}
	*size = (uint64_t)l->digest->size_bytes;
	ok = true;
out:
	bazel_output_service_rev2__file_artifact_locator__free_unpacked(l, NULL);
	return ok;
}

static const uint8_t empty_sha[32] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
	0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
	0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/* ---- output bases and builds ---- */

static struct obase *base_get(struct service *s, const char *id, bool create)
{
	struct obase *b;

	for (b = s->bases; b; b = b->next)
		if (!strcmp(b->id, id))
			return b;
	if (!create)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	snprintf(b->id, sizeof(b->id), "%s", id);
	pthread_mutex_init(&b->lock, NULL);
	records_init(&b->recs);
	b->next = s->bases;
	s->bases = b;
	return b;
}

static void build_add(struct service *s, const char *id, struct obase *b)
{
	struct build *e = &s->builds[s->next_build];

	snprintf(e->id, sizeof(e->id), "%s", id);
	e->base = b;
	s->next_build = (s->next_build + 1) % MAX_BUILDS;
	if (s->nbuilds < MAX_BUILDS)
		s->nbuilds++;
}

/* The output base of a known build id, or NULL. */
static struct obase *build_base(struct service *s, const char *id)
{
	struct obase *b = NULL;

	if (!id)
		return NULL;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nbuilds; i++)
		if (!strcmp(s->builds[i].id, id)) {
			b = s->builds[i].base;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return b;
}

/* With b->lock: open the output path and read its records once. */
static int base_open(struct service *s, struct obase *b, bool create)
{
	int err;

	if (!b->open) {
		err = outpath_open(&b->op, s->o.fs, s->rootfd, b->id, create);
		if (err)
			return err;
		b->open = true;
	}
	if (!b->loaded) {
		err = statefile_load(s->rootfd, b->id, &b->recs);
		if (err)	/* unreadable: vouch for nothing */
			records_free(&b->recs);
		b->loaded = true;
	}
	return 0;
}

static void base_save(struct service *s, struct obase *b)
{
	if (b->loaded && b->dirty && !statefile_save(s->rootfd, b->id, &b->recs))
		b->dirty = false;
}

/* ---- StartBuild ---- */

struct sweep {
	struct rev2_digest *d;
	char **paths;
	size_t n, cap;
	int err;
};

static int sweep_add(void *ud, const char *path, const struct outpath_file_state *st)
{
	struct sweep *w = ud;

	if (!st->cas || !st->size)
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		struct rev2_digest *d = realloc(w->d, cap * sizeof(*d));
		char **p;

		if (!d)
			return -ENOMEM;
		w->d = d;
		p = realloc(w->paths, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->paths = p;
		w->cap = cap;
	}
	w->paths[w->n] = strdup(path);
	if (!w->paths[w->n])
		return -ENOMEM;
	memcpy(w->d[w->n].sha256, st->sha256, 32);
	w->d[w->n].size = st->size;
	w->n++;
	return 0;
}

static void sweep_free(struct sweep *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->paths[i]);
	free(w->paths);
	free(w->d);
}

/*
 * What the CAS lost since the last build must not stay in the tree as a
 * file nobody can read: FindMissingBlobs over every CAS-backed file,
 * remove the missing ones (Bazel then finds the output gone and reruns
 * or re-stages it). With b->lock held.
 */
static int base_sweep(struct service *s, struct obase *b, char **msg)
{
	struct sweep w = { 0 };
	char err[256] = "";
	bool *missing = NULL;
	int ret, code = GRPC_OK;

	if (!cas_configured(s->o.cas))
		return GRPC_OK;
	ret = outpath_walk(&b->op, sweep_add, &w);
	if (ret) {
		code = fail(msg, errno_code(ret), "walking the output path: %s",
			    strerror(-ret));
		goto out;
	}
	if (!w.n)
		goto out;
	missing = calloc(w.n, sizeof(*missing));
	if (!missing) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	ret = cas_find_missing(s->o.cas, w.d, w.n, missing, err, sizeof(err));
	if (ret) {
		code = fail(msg, GRPC_UNAVAILABLE, "CAS: %s", err);
		goto out;
	}
	for (size_t i = 0; i < w.n; i++) {
		if (!missing[i])
			continue;
		outpath_remove(&b->op, w.paths[i]);
		records_del(&b->recs, w.paths[i], strlen(w.paths[i]));
		b->dirty = true;
	}
out:
	free(missing);
	sweep_free(&w);
	return code;
}

/* Bazel's output_path_prefix names our root (trailing '/'s aside)? */
static bool prefix_ok(const struct service *s, const char *p, struct stat *st)
{
	size_t n, m;

	if (!p || p[0] != '/')
		return false;
	if (!s->o.bazel_root)
		return !stat(p, st) && st->st_dev == s->root_dev &&
		       st->st_ino == s->root_ino;
	n = strlen(p);
	m = strlen(s->o.bazel_root);
	while (n > 1 && p[n - 1] == '/')
		n--;
	while (m > 1 && s->o.bazel_root[m - 1] == '/')
		m--;
	return n == m && !memcmp(p, s->o.bazel_root, n);
}

static int do_start_build(void *ud, const struct grpc_peer *peer,
			  const uint8_t *req, size_t req_len,
			  uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__StartBuildRequest *r;
	BazelOutputService__StartBuildResponse out =
		BAZEL_OUTPUT_SERVICE__START_BUILD_RESPONSE__INIT;
	struct obase *b;
	struct stat st;
	int code, err;

	r = bazel_output_service__start_build_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed StartBuildRequest");
	if (r->version != 1) {
		code = fail(msg, GRPC_INVALID_ARGUMENT,
			    "protocol version %d: only 1 is served", r->version);
		goto out;
	}
	if (!base_id_ok(r->output_base_id) || !id_ok(r->build_id, MAX_BUILD_ID)) {
		code = fail(msg, GRPC_INVALID_ARGUMENT, "bad output_base_id or build_id");
		goto out;
	}
	if (r->args) {
		BazelOutputServiceRev2__StartBuildArgs *a;

		if (!r->args->type_url || strcmp(r->args->type_url, BOS_ARGS_URL)) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "args: want %s", BOS_ARGS_URL);
			goto out;
		}
		a = bazel_output_service_rev2__start_build_args__unpack(
			NULL, r->args->value.len, r->args->value.data);
		if (!a) {
			code = fail(msg, GRPC_INVALID_ARGUMENT, "malformed StartBuildArgs");
			goto out;
		}
		err = a->digest_function !=
			      BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__UNKNOWN &&
		      a->digest_function !=
			      BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
		bazel_output_service_rev2__start_build_args__free_unpacked(a, NULL);
		if (err) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "digest function: casfs serves SHA256 only");
			goto out;
		}
	}
	/* The prefix Bazel was given must be our root (same directory). */
	if (!prefix_ok(s, r->output_path_prefix, &st)) {
		code = fail(msg, GRPC_FAILED_PRECONDITION,
			    "output_path_prefix must be %s (this casfs-outputd's --root%s)",
			    s->o.bazel_root ? s->o.bazel_root : s->root,
			    s->o.bazel_root ? " as Bazel sees it, --bazel-root" : "");
		goto out;
	}

	pthread_mutex_lock(&s->lock);
	b = base_get(s, r->output_base_id, true);
	if (b)
		build_add(s, r->build_id, b);
	pthread_mutex_unlock(&s->lock);
	if (!b) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}

	pthread_mutex_lock(&b->lock);
	err = base_open(s, b, true);
	if (err) {
		pthread_mutex_unlock(&b->lock);
		code = fail(msg, errno_code(err), "output path %s/%s: %s", s->root,
			    b->id, strerror(-err));
		goto out;
	}
	/* A retry of the same StartBuild must not sweep twice. */
	code = GRPC_OK;
	if (!b->active || strcmp(b->build_id, r->build_id)) {
		if (b->active)		/* never finalized: finalize it now */
			base_save(s, b);
		code = base_sweep(s, b, msg);
		if (code == GRPC_OK) {
			snprintf(b->build_id, sizeof(b->build_id), "%s", r->build_id);
			b->active = true;
		}
	}
	pthread_mutex_unlock(&b->lock);
	if (code != GRPC_OK)
		goto out;
	out.output_path_suffix = b->id;
	code = pack_msg(&out.base, resp, resp_len);
out:
	bazel_output_service__start_build_request__free_unpacked(r, NULL);
	return code;
}

/* ---- StageArtifacts ---- */

static int code_of_missing(Google__Rpc__Status **st, int code, const char *m)
{
	Google__Rpc__Status *x = malloc(sizeof(*x));

	if (!x)
		return -ENOMEM;
	google__rpc__status__init(x);
	x->code = code;
	x->message = m ? strdup(m) : NULL;
	*st = x;
	return 0;
}

/*
 * Does any path lead out of the output path through a symlinked parent?
 * lstat resolves every parent, beneath the output path or not at all.
 */
static int parents_inside(const struct outpath *op, char **paths, size_t n,
			  char **msg)
{
	for (size_t i = 0; i < n; i++) {
		struct outpath_stat st;
		int err = outpath_lstat(op, paths[i], false, &st);

		if (!err)
			outpath_stat_free(&st);
		if (err == -EXDEV)
			return fail(msg, GRPC_INVALID_ARGUMENT,
				    "path %s leaves the output path", paths[i]);
	}
	return GRPC_OK;
}

static int do_stage(void *ud, const struct grpc_peer *peer,
		    const uint8_t *req, size_t req_len,
		    uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__StageArtifactsRequest *r;
	BazelOutputService__StageArtifactsResponse out =
		BAZEL_OUTPUT_SERVICE__STAGE_ARTIFACTS_RESPONSE__INIT;
	BazelOutputService__StageArtifactsResponse__Response *rs = NULL, **rp = NULL;
	struct outpath_item *items = NULL;
	struct rev2_digest *d = NULL;
	bool *missing = NULL;
	char **paths = NULL;
	struct obase *b;
	size_t n, nd = 0, *di = NULL;
	char err[256] = "";
	int code = GRPC_OK, ret;

	r = bazel_output_service__stage_artifacts_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed StageArtifactsRequest");
	b = build_base(s, r->build_id);
	if (!b) {
		code = fail(msg, GRPC_FAILED_PRECONDITION, "unknown build id");
		goto out;
	}
	n = r->n_artifacts;
	if (n > s->o.max_artifacts) {
		code = fail(msg, GRPC_INVALID_ARGUMENT, "%zu artifacts: at most %zu",
			    n, s->o.max_artifacts);
		goto out;
	}
	items = calloc(n ? n : 1, sizeof(*items));
	paths = calloc(n ? n : 1, sizeof(*paths));
	d = calloc(n ? n : 1, sizeof(*d));
	di = calloc(n ? n : 1, sizeof(*di));
	missing = calloc(n ? n : 1, sizeof(*missing));
	rs = calloc(n ? n : 1, sizeof(*rs));
	rp = calloc(n ? n : 1, sizeof(*rp));
	if (!items || !paths || !d || !di || !missing || !rs || !rp) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	/* Everything is checked before anything changes. */
	for (size_t i = 0; i < n; i++) {
		const BazelOutputService__StageArtifactsRequest__Artifact *a =
			r->artifacts[i];

		if (!a->path || outpath_check(a->path, strlen(a->path))) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "artifact %zu: bad path", i);
			goto out;
		}
		if (!locator_parse(a->locator, items[i].sha256, &items[i].size)) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "artifact %zu (%s): bad locator", i, a->path);
			goto out;
		}
		if (!items[i].size && memcmp(items[i].sha256, empty_sha, 32)) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "artifact %zu (%s): size 0 with a non-empty digest",
				    i, a->path);
			goto out;
		}
		items[i].path = a->path;
		/* Bazel sends no executable bit and chmods afterwards. */
		items[i].mode = 0555;
		paths[i] = a->path;
		if (items[i].size) {
			memcpy(d[nd].sha256, items[i].sha256, 32);
			d[nd].size = items[i].size;
			di[nd++] = i;
		}
	}
	pthread_mutex_lock(&b->lock);
	ret = base_open(s, b, true);
	if (!ret)
		code = parents_inside(&b->op, paths, n, msg);
	pthread_mutex_unlock(&b->lock);
	if (ret) {
		code = fail(msg, errno_code(ret), "output path: %s", strerror(-ret));
		goto out;
	}
	if (code != GRPC_OK)
		goto out;
	/* Present in the CAS (and kept alive there for the build)? */
	ret = cas_find_missing(s->o.cas, d, nd, missing, err, sizeof(err));
	if (ret) {
		code = fail(msg, GRPC_UNAVAILABLE, "CAS: %s", err);
		goto out;
	}
	for (size_t k = 0; k < nd; k++)
		if (missing[k])
			items[di[k]].err = -ENOENT;

	pthread_mutex_lock(&b->lock);
	{
		/* Stage only what the CAS has: a compacted copy. */
		struct outpath_item *todo = calloc(n ? n : 1, sizeof(*todo));
		size_t *map = calloc(n ? n : 1, sizeof(*map)), m = 0;

		if (!todo || !map) {
			free(todo);
			free(map);
			pthread_mutex_unlock(&b->lock);
			code = GRPC_RESOURCE_EXHAUSTED;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			if (!items[i].err) {
				map[m] = i;
				todo[m++] = items[i];
			}
		ret = outpath_stage(&b->op, todo, m);
		for (size_t k = 0; k < m; k++) {
			struct outpath_item *it = &items[map[k]];

			it->err = ret ? ret : todo[k].err;
			it->version = todo[k].version;
			if (!it->err) {
				if (records_put(&b->recs, it->path, strlen(it->path),
						it->sha256, it->size, it->version))
					records_del(&b->recs, it->path, strlen(it->path));
			} else {
				records_del(&b->recs, it->path, strlen(it->path));
			}
			b->dirty = true;
		}
		free(todo);
		free(map);
	}
	pthread_mutex_unlock(&b->lock);

	for (size_t i = 0; i < n; i++) {
		char m[384] = "";
		int c = errno_code(items[i].err);

		bazel_output_service__stage_artifacts_response__response__init(&rs[i]);
		rp[i] = &rs[i];
		if (items[i].err == -ENOENT && c == GRPC_NOT_FOUND) {
			char hex[65];

			for (int j = 0; j < 32; j++)
				snprintf(hex + 2 * j, 3, "%02x", items[i].sha256[j]);
			snprintf(m, sizeof(m), "%s/%" PRIu64 " is not in the CAS",
				 hex, items[i].size);
		} else if (items[i].err) {
			snprintf(m, sizeof(m), "staging %.300s: %s", items[i].path,
				 strerror(-items[i].err));
		}
		if (code_of_missing(&rs[i].status, c, m[0] ? m : NULL)) {
			code = GRPC_RESOURCE_EXHAUSTED;
			n = i + 1;
			goto free_statuses;
		}
	}
	out.n_responses = n;
	out.responses = rp;
	code = pack_msg(&out.base, resp, resp_len);
free_statuses:
	for (size_t i = 0; i < n; i++)
		if (rs[i].status) {
			free(rs[i].status->message);
			free(rs[i].status);
		}
out:
	free(items);
	free(paths);
	free(d);
	free(di);
	free(missing);
	free(rs);
	free(rp);
	bazel_output_service__stage_artifacts_request__free_unpacked(r, NULL);
	return code;
}

/* ---- FinalizeArtifacts ---- */

static int do_finalize_artifacts(void *ud, const struct grpc_peer *peer,
				 const uint8_t *req, size_t req_len,
				 uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__FinalizeArtifactsRequest *r;
	BazelOutputService__FinalizeArtifactsResponse out =
		BAZEL_OUTPUT_SERVICE__FINALIZE_ARTIFACTS_RESPONSE__INIT;
	struct obase *b;
	uint8_t (*sha)[32] = NULL;
	uint64_t *size = NULL;
	int code = GRPC_OK, ret;

	r = bazel_output_service__finalize_artifacts_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed FinalizeArtifactsRequest");
	b = build_base(s, r->build_id);
	if (!b) {
		code = fail(msg, GRPC_FAILED_PRECONDITION, "unknown build id");
		goto out;
	}
	if (r->n_artifacts > s->o.max_artifacts) {
		code = fail(msg, GRPC_INVALID_ARGUMENT, "too many artifacts");
		goto out;
	}
	sha = calloc(r->n_artifacts ? r->n_artifacts : 1, sizeof(*sha));
	size = calloc(r->n_artifacts ? r->n_artifacts : 1, sizeof(*size));
	if (!sha || !size) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	for (size_t i = 0; i < r->n_artifacts; i++) {
		const char *p = r->artifacts[i]->path;

		if (!p || outpath_check(p, strlen(p)) ||
		    !locator_parse(r->artifacts[i]->locator, sha[i], &size[i])) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "artifact %zu: bad path or locator", i);
			goto out;
		}
	}
	pthread_mutex_lock(&b->lock);
	ret = base_open(s, b, true);
	for (size_t i = 0; !ret && i < r->n_artifacts; i++) {
		const char *p = r->artifacts[i]->path;
		struct outpath_stat st;
		bool ok;

		/*
		 * Record it only if the file holds what Bazel believes, now:
		 * a CAS file's digest is the kernel's, a local file's is
		 * hashed by the kernel (cached there until it changes).
		 */
		if (outpath_lstat(&b->op, p, true, &st)) {
			records_del(&b->recs, p, strlen(p));
			b->dirty = true;
			continue;
		}
		ok = st.type == OUTPATH_FILE && !st.file.writers &&
		     st.file.size == size[i] &&
		     (st.have_digest ? !memcmp(st.file.sha256, sha[i], 32) :
				       !size[i]);
		outpath_stat_free(&st);
		if (!ok || records_put(&b->recs, p, strlen(p), sha[i], size[i],
				       st.file.version))
			records_del(&b->recs, p, strlen(p));
		b->dirty = true;
	}
	pthread_mutex_unlock(&b->lock);
	if (ret) {
		code = fail(msg, errno_code(ret), "output path: %s", strerror(-ret));
		goto out;
	}
	code = pack_msg(&out.base, resp, resp_len);
out:
	free(sha);
	free(size);
	bazel_output_service__finalize_artifacts_request__free_unpacked(r, NULL);
	return code;
}

/* ---- FinalizeBuild ---- */

static int do_finalize_build(void *ud, const struct grpc_peer *peer,
			     const uint8_t *req, size_t req_len,
			     uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__FinalizeBuildRequest *r;
	BazelOutputService__FinalizeBuildResponse out =
		BAZEL_OUTPUT_SERVICE__FINALIZE_BUILD_RESPONSE__INIT;
	struct obase *b;
	int code;

	r = bazel_output_service__finalize_build_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed FinalizeBuildRequest");
	b = build_base(s, r->build_id);
	if (!b) {
		code = fail(msg, GRPC_FAILED_PRECONDITION, "unknown build id");
		goto out;
	}
	pthread_mutex_lock(&b->lock);
	/* Idempotent: a later build of the base may already be running. */
	if (b->active && !strcmp(b->build_id, r->build_id)) {
		b->active = false;
		base_save(s, b);
	}
	pthread_mutex_unlock(&b->lock);
	code = pack_msg(&out.base, resp, resp_len);
out:
	bazel_output_service__finalize_build_request__free_unpacked(r, NULL);
	return code;
}

/* ---- BatchStat ---- */

struct stat_out {
	BazelOutputService__BatchStatResponse__StatResponse sr;
	BazelOutputService__Stat stat;
	BazelOutputService__Stat__File file;
	BazelOutputService__Stat__Symlink link;
	BazelOutputService__Stat__Directory dir;
	Google__Protobuf__Any any;
	uint8_t loc[96];		/* packed FileArtifactLocator */
	char hash[65];
	char *target;
};

static void set_locator(struct stat_out *o, const struct record *rec)
{
	BazelOutputServiceRev2__FileArtifactLocator l =
		BAZEL_OUTPUT_SERVICE_REV2__FILE_ARTIFACT_LOCATOR__INIT;
	Build__Bazel__Remote__Execution__V2__Digest dg =
		BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;

	for (int j = 0; j < 32; j++)
		snprintf(o->hash + 2 * j, 3, "%02x", rec->sha256[j]);
	dg.hash = o->hash;
	dg.size_bytes = (int64_t)rec->size;
	l.digest = &dg;
	google__protobuf__any__init(&o->any);
	o->any.type_url = (char *)BOS_LOCATOR_URL;
	o->any.value.len = bazel_output_service_rev2__file_artifact_locator__pack(&l, o->loc);
	o->any.value.data = o->loc;
	o->file.locator = &o->any;
}

static int do_batch_stat(void *ud, const struct grpc_peer *peer,
			 const uint8_t *req, size_t req_len,
			 uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__BatchStatRequest *r;
	BazelOutputService__BatchStatResponse out =
		BAZEL_OUTPUT_SERVICE__BATCH_STAT_RESPONSE__INIT;
	BazelOutputService__BatchStatResponse__StatResponse **rp = NULL;
	struct stat_out *so = NULL;
	size_t n, budget = s->o.max_response, used = 0;
	struct obase *b;
	int code = GRPC_OK, ret;

	r = bazel_output_service__batch_stat_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed BatchStatRequest");
	b = build_base(s, r->build_id);
	if (!b) {
		code = fail(msg, GRPC_FAILED_PRECONDITION, "unknown build id");
		goto out;
	}
	n = r->n_paths;
	if (n > s->o.max_artifacts) {
		code = fail(msg, GRPC_INVALID_ARGUMENT, "too many paths");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (outpath_check(r->paths[i], strlen(r->paths[i]))) {
			code = fail(msg, GRPC_INVALID_ARGUMENT, "path %zu: bad path", i);
			goto out;
		}
	so = calloc(n ? n : 1, sizeof(*so));
	rp = calloc(n ? n : 1, sizeof(*rp));
	if (!so || !rp) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	pthread_mutex_lock(&b->lock);
	ret = base_open(s, b, true);
	pthread_mutex_unlock(&b->lock);
	if (ret) {
		code = fail(msg, errno_code(ret), "output path: %s", strerror(-ret));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat_out *o = &so[i];
		const char *p = r->paths[i];
		struct outpath_stat st;

		bazel_output_service__batch_stat_response__stat_response__init(&o->sr);
		rp[i] = &o->sr;
		used += strlen(p) + 16;
		ret = outpath_lstat(&b->op, p, false, &st);
		if (ret == -EXDEV) {
			code = fail(msg, GRPC_INVALID_ARGUMENT,
				    "path %s leaves the output path", p);
			goto free_targets;
		}
		if (ret || st.type == OUTPATH_NONE || st.type == OUTPATH_OTHER) {
			if (!ret)
				outpath_stat_free(&st);
			continue;	/* nothing Bazel can use there */
		}
		bazel_output_service__stat__init(&o->stat);
		o->sr.stat = &o->stat;
		switch (st.type) {
		case OUTPATH_FILE: {
			const struct record *rec;

			bazel_output_service__stat__file__init(&o->file);
			o->stat.type_case = BAZEL_OUTPUT_SERVICE__STAT__TYPE_FILE;
			o->stat.file = &o->file;
			/*
			 * A locator only for bytes Bazel already knows: same
			 * version as when staged or finalized, no writer, and
			 * for a CAS file the same digest. Anything else is
			 * answered without one (Bazel hashes it), which is
			 * also what keeps 7.7.1 from crashing on outputs it
			 * considers changed.
			 */
			pthread_mutex_lock(&b->lock);
			rec = records_get(&b->recs, p, strlen(p));
			if (rec && used + 200 <= budget && !st.file.writers &&
			    rec->version == st.file.version &&
			    rec->size == st.file.size &&
			    (!st.file.cas || !memcmp(rec->sha256, st.file.sha256, 32))) {
				set_locator(o, rec);
				used += 200;
			}
			pthread_mutex_unlock(&b->lock);
			break;
		}
		case OUTPATH_SYMLINK:
			bazel_output_service__stat__symlink__init(&o->link);
			o->stat.type_case = BAZEL_OUTPUT_SERVICE__STAT__TYPE_SYMLINK;
			o->stat.symlink = &o->link;
			o->target = st.target;
			st.target = NULL;
			o->link.target = o->target ? o->target : (char *)"";
			used += o->target ? strlen(o->target) : 0;
			break;
		default:
			bazel_output_service__stat__directory__init(&o->dir);
			o->stat.type_case = BAZEL_OUTPUT_SERVICE__STAT__TYPE_DIRECTORY;
			o->stat.directory = &o->dir;
			break;
		}
		outpath_stat_free(&st);
		if (used > budget + budget / 8) {
			code = fail(msg, GRPC_RESOURCE_EXHAUSTED,
				    "BatchStat of %zu paths: the response would pass %zu bytes",
				    n, budget);
			goto free_targets;
		}
	}
	out.n_responses = n;
	out.responses = rp;
	code = pack_msg(&out.base, resp, resp_len);
	if (s->o.log) {
		size_t files = 0, located = 0;
		char line[160];

		for (size_t i = 0; i < n; i++)
			if (so[i].sr.stat && so[i].stat.type_case ==
			    BAZEL_OUTPUT_SERVICE__STAT__TYPE_FILE) {
				files++;
				located += so[i].file.locator != NULL;
			}
		snprintf(line, sizeof(line),
			 "BatchStat: %zu paths, %zu files, %zu without a locator",
			 n, files, files - located);
		s->o.log(line);
	}
free_targets:
	for (size_t i = 0; i < n; i++)
		free(so[i].target);
out:
	free(so);
	free(rp);
	bazel_output_service__batch_stat_request__free_unpacked(r, NULL);
	return code;
}

/* ---- Clean ---- */

static int do_clean(void *ud, const struct grpc_peer *peer,
		    const uint8_t *req, size_t req_len,
		    uint8_t **resp, size_t *resp_len, char **msg)
{
	struct service *s = ud;
	BazelOutputService__CleanRequest *r;
	BazelOutputService__CleanResponse out = BAZEL_OUTPUT_SERVICE__CLEAN_RESPONSE__INIT;
	struct obase *b;
	int code, err;

	r = bazel_output_service__clean_request__unpack(NULL, req_len, req);
	if (!r)
		return fail(msg, GRPC_INVALID_ARGUMENT, "malformed CleanRequest");
	if (!base_id_ok(r->output_base_id)) {
		code = fail(msg, GRPC_INVALID_ARGUMENT, "bad output_base_id");
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	b = base_get(s, r->output_base_id, true);
	pthread_mutex_unlock(&s->lock);
	if (!b) {
		code = GRPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	pthread_mutex_lock(&b->lock);
	err = base_open(s, b, false);
	if (!err)
		err = outpath_clean(&b->op);
	if (err == -ENOENT)
		err = 0;	/* nothing there: already clean */
	if (!err) {
		records_free(&b->recs);
		statefile_remove(s->rootfd, b->id);
		b->dirty = false;
		b->active = false;
	}
	pthread_mutex_unlock(&b->lock);
	if (err) {
		code = fail(msg, errno_code(err), "cleaning %s/%s: %s", s->root,
			    r->output_base_id, strerror(-err));
		goto out;
	}
	code = pack_msg(&out.base, resp, resp_len);
out:
	bazel_output_service__clean_request__free_unpacked(r, NULL);
	return code;
}

/* ---- the service ---- */

int service_accept_peer(void *ud, const struct grpc_peer *peer)
{
	struct service *s = ud;

	return peer->uid == s->o.uid ? GRPC_OK : GRPC_PERMISSION_DENIED;
}

int service_new(struct service **out, const struct service_opts *o,
		char *err, size_t errlen)
{
	struct service *s;
	struct stat st;

	if (!o->root || o->root[0] != '/' || !o->fs) {
		snprintf(err, errlen, "the root must be an absolute path");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	if (!s->o.max_artifacts)
		s->o.max_artifacts = 1000000;
	if (!s->o.max_response)
		s->o.max_response = (size_t)7 << 19;	/* 3.5 MiB */
	s->root = strdup(o->root);
	pthread_mutex_init(&s->lock, NULL);
	s->rootfd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!s->root || s->rootfd < 0 || fstat(s->rootfd, &st)) {
		snprintf(err, errlen, "%s: %s", o->root, strerror(errno));
		service_free(s);
		return -EINVAL;
	}
	if (!o->fs->is_ours(s->rootfd)) {
		snprintf(err, errlen, "%s is not on a casfs mount", o->root);
		service_free(s);
		return -EXDEV;
	}
	if (st.st_uid != o->uid) {
		snprintf(err, errlen, "%s belongs to uid %u, not to uid %u", o->root,
			 (unsigned)st.st_uid, (unsigned)o->uid);
		service_free(s);
		return -EPERM;
	}
	s->root_dev = st.st_dev;
	s->root_ino = st.st_ino;
	*out = s;
	return 0;
}

void service_free(struct service *s)
{
	struct obase *b, *next;

	if (!s)
		return;
	for (b = s->bases; b; b = next) {
		next = b->next;
		base_save(s, b);
		if (b->open)
			outpath_close(&b->op);
		records_free(&b->recs);
		pthread_mutex_destroy(&b->lock);
		free(b);
	}
	if (s->rootfd >= 0)
		close(s->rootfd);
	pthread_mutex_destroy(&s->lock);
	free(s->root);
	free(s);
}

static const struct {
	const char *path;
	grpc_unary_fn fn;
} methods[] = {
	{ BOS_METHOD("Clean"), do_clean },
	{ BOS_METHOD("StartBuild"), do_start_build },
	{ BOS_METHOD("StageArtifacts"), do_stage },
	{ BOS_METHOD("FinalizeArtifacts"), do_finalize_artifacts },
	{ BOS_METHOD("FinalizeBuild"), do_finalize_build },
	{ BOS_METHOD("BatchStat"), do_batch_stat },
};

static int dispatch(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		    size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	const struct route *r = ud;
	struct timespec t0, t1;
	int code;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	code = methods[r->idx].fn(r->s, peer, req, len, resp, resp_len, msg);
	if (r->s->o.log) {
		char line[512];

		clock_gettime(CLOCK_MONOTONIC, &t1);
		snprintf(line, sizeof(line), "%s: %zu bytes in, %s%s%.200s, %.3f ms",
			 methods[r->idx].path + sizeof(BOS_METHOD("")) - 1, len,
			 grpc_code_name(code), *msg ? ": " : "", *msg ? *msg : "",
			 (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		r->s->o.log(line);
	}
	return code;
}

int service_register(struct service *s, struct grpc_server *srv)
{
	for (unsigned i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		int err;

		s->routes[i] = (struct route){ .s = s, .idx = i };
		err = grpc_server_add_unary(srv, methods[i].path, dispatch,
					    &s->routes[i]);
		if (err)
			return err;
	}
	return 0;
}

int service_call(struct service *s, unsigned idx, const uint8_t *req,
		 size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	struct grpc_peer peer = { .family = AF_UNIX, .uid = s->o.uid };

	*resp = NULL;
	*resp_len = 0;
	*msg = NULL;
	if (idx >= sizeof(methods) / sizeof(methods[0]))
		return GRPC_UNIMPLEMENTED;
	return methods[idx].fn(s, &peer, req, len, resp, resp_len, msg);
}
