// SPDX-License-Identifier: GPL-2.0
/*
 * casfsctl: REv2 Directory graphs and ActionResults from hostile bytes
 * (see tree.h). Everything here reads only bytes that are in bounds and
 * never trusts a length before checking it against what is left.
 */
#include "tree.h"
#include "manifest.h"
#include "verify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------ wire level */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct pb {
	const uint8_t *p, *end;
};

struct pb_field {
	uint32_t num;
	int wt;
	uint64_t v;			/* WT_VARINT */
	const uint8_t *data;		/* WT_LEN */
	size_t len;
};

static int pb_varint(struct pb *r, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 10; i++) {
		uint8_t b;

		if (r->p == r->end)
			return -1;
		b = *r->p++;
		/* the 10th byte holds bit 63 only */
		if (i == 9 && b > 1)
			return -1;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* 1: a field in *f; 0: clean end; -1: malformed (groups are refused). */
static int pb_next(struct pb *r, struct pb_field *f)
{
	uint64_t tag, n;

	if (r->p == r->end)
		return 0;
	if (pb_varint(r, &tag) || tag >> 32 || (tag >> 3) == 0)
		return -1;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (int)(tag & 7);
	switch (f->wt) {
	case WT_VARINT:
		return pb_varint(r, &f->v) ? -1 : 1;
	case WT_I64:
	case WT_I32:
		n = f->wt == WT_I64 ? 8 : 4;
		if ((uint64_t)(r->end - r->p) < n)
			return -1;
		r->p += n;
		return 1;
	case WT_LEN:
		if (pb_varint(r, &n) || n > (uint64_t)(r->end - r->p))
			return -1;
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 1;
	default:
		return -1;
	}
}

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* hostile names end up in messages: keep control bytes off terminals */
	for (char *s = err; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	return ret;
}

/* ---------------------------------------------------------- single checks */

int tree_check_name(const char *name, size_t len, char *err, size_t errlen)
{
	if (!len)
		return fail(err, errlen, -EINVAL, "empty name");
	if (len > TREE_MAX_NAME)
		return fail(err, errlen, -EINVAL, "name longer than %d bytes",
			    TREE_MAX_NAME);
	if (memchr(name, 0, len))
		return fail(err, errlen, -EINVAL, "NUL in name");
	if (memchr(name, '/', len))
		return fail(err, errlen, -EINVAL, "'/' in name");
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return fail(err, errlen, -EINVAL, "name '.' or '..'");
	return 0;
}

int tree_check_target(const char *t, size_t len, unsigned depth,
		      const struct tree_policy *pol, char *err, size_t errlen)
{
	size_t i = 0;
	unsigned ups = 0;
	bool named = false;

	if (!len)
		return fail(err, errlen, -EINVAL, "empty symlink target");
	if (len > TREE_MAX_TARGET)
		return fail(err, errlen, -EINVAL, "symlink target longer than %d bytes",
			    TREE_MAX_TARGET);
	if (memchr(t, 0, len))
		return fail(err, errlen, -EINVAL, "NUL in symlink target");
	if (t[0] == '/')
		return pol->allow_absolute ? 0 :
			fail(err, errlen, -EINVAL,
			     "absolute symlink target (allowed by --allow-absolute-symlinks)");
	if (pol->allow_escaping)
		return 0;
	while (i < len) {
		size_t j = i;

		while (j < len && t[j] != '/')
			j++;
		if (j - i == 2 && t[i] == '.' && t[i + 1] == '.') {
			if (named)
				return fail(err, errlen, -EINVAL,
					    "'..' after a name in symlink target "
					    "(allowed by --allow-escaping-symlinks)");
			if (++ups > depth)
				return fail(err, errlen, -EINVAL,
					    "symlink target escapes the root "
					    "(allowed by --allow-escaping-symlinks)");
		} else if (j - i && !(j - i == 1 && t[i] == '.')) {
			named = true;
		}
		i = j + 1;
	}
	return 0;
}

int tree_parse_digest(const uint8_t *msg, size_t len, struct rev2_digest *d,
		      char *err, size_t errlen)
{
	struct pb r = { msg, msg + len };
	struct pb_field f;
	bool have_hash = false, have_size = false;
	int k;

	memset(d, 0, sizeof(*d));
	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num == 1) {
			if (f.wt != WT_LEN || have_hash)
				return fail(err, errlen, -EINVAL, "bad digest hash field");
			have_hash = true;
			if (f.len != HEX_LEN)
				return fail(err, errlen, -EINVAL,
					    "digest hash is not 64 lowercase hex digits");
			for (size_t i = 0; i < f.len; i++)
				if (!((f.data[i] >= '0' && f.data[i] <= '9') ||
				      (f.data[i] >= 'a' && f.data[i] <= 'f')))
					return fail(err, errlen, -EINVAL,
						    "digest hash is not 64 lowercase hex digits");
			if (hex_decode((const char *)f.data, f.len, d->sha256))
				return fail(err, errlen, -EINVAL, "bad digest hash");
		} else if (f.num == 2) {
			if (f.wt != WT_VARINT || have_size)
				return fail(err, errlen, -EINVAL, "bad digest size field");
			have_size = true;
			/* int64 on the wire: a negative one is a huge uint64 here */
			if (f.v > CASFS_MAX_BLOB_SIZE)
				return fail(err, errlen, -EINVAL,
					    "digest size %lld out of range 0..%llu",
					    (long long)f.v,
					    (unsigned long long)CASFS_MAX_BLOB_SIZE);
			d->size = f.v;
		}
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "malformed digest");
	if (!have_hash)
		return fail(err, errlen, -EINVAL,
			    "digest hash is not 64 lowercase hex digits");
	return 0;
}

/* ------------------------------------------------------ Directory decode */

struct tnode {
	const char *name;	/* NUL-terminated copy */
	size_t nlen;
	struct rev2_digest d;	/* files, directories */
	bool exec;
	const char *target;	/* symlinks, NUL-terminated */
	size_t tlen;
};

struct tdir {
	struct tnode *nodes;	/* files, then dirs, then links */
	size_t nfiles, ndirs, nlinks;
	char *strs;
};

enum { NODE_FILE, NODE_DIR, NODE_LINK };
static const char *const kind_name[] = { "file", "directory", "symlink" };

/* A path for messages: "dir/name", "name" at the top, "." for the root. */
static const char *at(char *buf, size_t len, const char *dir, const char *name)
{
	if (*dir && name)
		snprintf(buf, len, "%s/%s", dir, name);
	else
		snprintf(buf, len, "%s", *dir ? dir : name ? name : ".");
	return buf;
}

/* One FileNode / DirectoryNode / SymlinkNode into n (strings into *strs). */
static int decode_node(int kind, const uint8_t *p, size_t len, struct tnode *n,
		       char **strs, const char *dir, char *err, size_t errlen)
{
	struct pb r = { p, p + len };
	struct pb_field f;
	const uint8_t *name = NULL, *target = NULL;
	size_t nlen = 0, tlen = 0;
	bool have_digest = false, have_exec = false;
	char sub[256], w[TREE_MAX_PATH + 300];
	int k;

	memset(n, 0, sizeof(*n));
	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num == 1) {
			if (f.wt != WT_LEN || name)
				goto bad_field;
			name = f.data;
			nlen = f.len;
		} else if (f.num == 2 && kind != NODE_LINK) {
			if (f.wt != WT_LEN || have_digest)
				goto bad_field;
			have_digest = true;
			if (tree_parse_digest(f.data, f.len, &n->d, sub, sizeof(sub)))
				goto bad_digest;
		} else if (f.num == 2) {
			if (f.wt != WT_LEN || target)
				goto bad_field;
			target = f.data ? f.data : (const uint8_t *)"";
			tlen = f.len;
		} else if (f.num == 4 && kind == NODE_FILE) {
			if (f.wt != WT_VARINT || have_exec)
				goto bad_field;
			have_exec = true;
			n->exec = f.v != 0;
		}
		/* other fields (node_properties, ...) do not matter here */
		continue;
bad_field:
		/*
		 * A repeated singular field would be merged or overridden
		 * by other decoders; never guess which one the server meant.
		 */
		return fail(err, errlen, -EINVAL, "%s: %s entry with a bad or repeated field %u",
			    at(w, sizeof(w), dir, NULL), kind_name[kind], f.num);
bad_digest:
		{
			char nm[TREE_MAX_NAME + 1];

			snprintf(nm, sizeof(nm), "%.*s", (int)(nlen < TREE_MAX_NAME ? nlen : TREE_MAX_NAME),
				 name ? (const char *)name : "?");
			return fail(err, errlen, -EINVAL, "%s: %s", at(w, sizeof(w), dir, nm), sub);
		}
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "%s: malformed %s entry",
			    at(w, sizeof(w), dir, NULL), kind_name[kind]);
	if (tree_check_name((const char *)name, nlen, sub, sizeof(sub))) {
		char nm[TREE_MAX_NAME + 1];

		snprintf(nm, sizeof(nm), "%.*s", (int)(nlen < TREE_MAX_NAME ? nlen : TREE_MAX_NAME),
			 name ? (const char *)name : "");
		return fail(err, errlen, -EINVAL, "%s: bad name '%s' (%s)",
			    at(w, sizeof(w), dir, NULL), nm, sub);
	}
	memcpy(*strs, name, nlen);
	(*strs)[nlen] = 0;
	n->name = *strs;
	n->nlen = nlen;
	*strs += nlen + 1;
	if (kind != NODE_LINK && !have_digest)
		return fail(err, errlen, -EINVAL, "%s: %s without a digest",
			    at(w, sizeof(w), dir, n->name), kind_name[kind]);
	if (kind == NODE_LINK) {
		/* the target's policy depends on the place: tree_walk checks it */
		if (!target)
			return fail(err, errlen, -EINVAL, "%s: empty symlink target",
				    at(w, sizeof(w), dir, n->name));
		if (memchr(target, 0, tlen) || tlen > TREE_MAX_TARGET)
			return fail(err, errlen, -EINVAL, "%s: %s",
				    at(w, sizeof(w), dir, n->name),
				    tlen > TREE_MAX_TARGET ? "symlink target too long" :
				    "NUL in symlink target");
		memcpy(*strs, target, tlen);
		(*strs)[tlen] = 0;
		n->target = *strs;
		n->tlen = tlen;
		*strs += tlen + 1;
	}
	return 0;
}

static int cmp_name(const struct tnode *a, const struct tnode *b)
{
	size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
	int c = memcmp(a->name, b->name, n);

	if (c)
		return c;
	return a->nlen < b->nlen ? -1 : a->nlen > b->nlen;
}

static void tdir_free(struct tdir *d)
{
	if (!d)
		return;
	free(d->nodes);
	free(d->strs);
	free(d);
}

/* Decode and check one Directory; errors name dir (its path). */
static int decode_dir(const uint8_t *p, size_t len, struct tdir **out,
		      const char *dir, char *err, size_t errlen)
{
	struct pb r = { p, p + len };
	struct pb_field f;
	size_t cnt[3] = { 0 }, fill[3] = { 0 }, total;
	struct tdir *d;
	char *strs, w[TREE_MAX_PATH + 300];
	int k, ret;

	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num >= 1 && f.num <= 3) {
			if (f.wt != WT_LEN)
				return fail(err, errlen, -EINVAL, "%s: malformed directory",
					    at(w, sizeof(w), dir, NULL));
			cnt[f.num - 1]++;
		}
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "%s: malformed directory",
			    at(w, sizeof(w), dir, NULL));
	total = cnt[0] + cnt[1] + cnt[2];
	d = calloc(1, sizeof(*d));
	if (!d)
		return fail(err, errlen, -ENOMEM, "out of memory");
	d->nodes = calloc(total ? total : 1, sizeof(*d->nodes));
	/* every string is a slice of the message plus its NUL */
	d->strs = malloc(len + 2 * total + 1);
	if (!d->nodes || !d->strs) {
		tdir_free(d);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	d->nfiles = cnt[0];
	d->ndirs = cnt[1];
	d->nlinks = cnt[2];
	strs = d->strs;
	r.p = p;
	while ((k = pb_next(&r, &f)) > 0) {
		size_t base, kind;

		if (f.num < 1 || f.num > 3)
			continue;
		kind = f.num - 1;
		base = kind == 0 ? 0 : kind == 1 ? cnt[0] : cnt[0] + cnt[1];
		ret = decode_node((int)kind, f.data, f.len, &d->nodes[base + fill[kind]],
				  &strs, dir, err, errlen);
		if (ret) {
			tdir_free(d);
			return ret;
		}
		fill[kind]++;
	}
	/* each list strictly sorted (which also makes it duplicate-free) */
	for (size_t kind = 0, base = 0; kind < 3; base += cnt[kind], kind++) {
		for (size_t i = base + 1; i < base + cnt[kind]; i++) {
			if (cmp_name(&d->nodes[i - 1], &d->nodes[i]) >= 0) {
				ret = fail(err, errlen, -EINVAL, "%s: %ss not strictly sorted by name ('%s' after '%s')",
					   at(w, sizeof(w), dir, NULL), kind_name[kind],
					   d->nodes[i].name, d->nodes[i - 1].name);
				tdir_free(d);
				return ret;
			}
		}
	}
	/* and no name in two lists: a three-way merge of sorted lists */
	{
		size_t i[3] = { 0, cnt[0], cnt[0] + cnt[1] };
		size_t end[3] = { cnt[0], cnt[0] + cnt[1], total };
		const struct tnode *prev = NULL;

		for (;;) {
			int best = -1;

			for (int q = 0; q < 3; q++)
				if (i[q] < end[q] &&
				    (best < 0 || cmp_name(&d->nodes[i[q]], &d->nodes[i[best]]) < 0))
					best = q;
			if (best < 0)
				break;
			if (prev && !cmp_name(prev, &d->nodes[i[best]])) {
				ret = fail(err, errlen, -EINVAL, "%s: duplicate name in the directory",
					   at(w, sizeof(w), dir, prev->name));
				tdir_free(d);
				return ret;
			}
			prev = &d->nodes[i[best]++];
		}
	}
	*out = d;
	return 0;
}

/* ---------------------------------------------------------------- index */

struct tslot {
	struct rev2_digest d;
	uint8_t *raw;		/* NULL: free slot */
	size_t len;
	struct tdir *dec;	/* decoded on first visit */
};

struct tree {
	struct tslot *slots;
	size_t cap, n, bytes;
	uint64_t key;		/* so that a server cannot aim at one bucket */
};

int tree_new(struct tree **out)
{
	struct tree *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->cap = 64;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return -ENOMEM;
	}
	if (getrandom(&t->key, sizeof(t->key), GRND_NONBLOCK) != sizeof(t->key))
		t->key = (uint64_t)(uintptr_t)t ^ mono_us();
	*out = t;
	return 0;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++) {
		free(t->slots[i].raw);
		tdir_free(t->slots[i].dec);
	}
	free(t->slots);
	free(t);
}

size_t tree_count(const struct tree *t)
{
	return t->n;
}

static size_t bucket(const struct tree *t, const uint8_t *sha, size_t cap)
{
	uint64_t h;

	memcpy(&h, sha, sizeof(h));
	h = (h ^ t->key) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 7) & (cap - 1);
}

static struct tslot *lookup(const struct tree *t, const uint8_t *sha)
{
	for (size_t i = bucket(t, sha, t->cap);; i = (i + 1) & (t->cap - 1)) {
		struct tslot *s = &t->slots[i];

		if (!s->raw || !memcmp(s->d.sha256, sha, CASFS_SHA256_LEN))
			return s;
	}
}

bool tree_has(const struct tree *t, const struct rev2_digest *d)
{
	const struct tslot *s = lookup(t, d->sha256);

	return s->raw && s->d.size == d->size;
}

static int grow(struct tree *t)
{
	size_t ncap = t->cap * 2;
	struct tslot *old = t->slots, *nv = calloc(ncap, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (!old[i].raw)
			continue;
		for (j = bucket(t, old[i].d.sha256, ncap); nv[j].raw; j = (j + 1) & (ncap - 1))
			;
		nv[j] = old[i];
	}
	t->slots = nv;
	t->cap = ncap;
	free(old);
	return 0;
}

/* Index one Directory by the sha256 of exactly these bytes. */
static int add_dir(struct tree *t, const uint8_t *p, size_t len, struct rev2_digest *d,
		   char *err, size_t errlen)
{
	struct tslot *s;

	d->size = len;
	if (sha256_buf(p, len, d->sha256))
		return fail(err, errlen, -ENOMEM, "sha256 failed");
	s = lookup(t, d->sha256);
	if (s->raw)
		return 0;	/* the same bytes again: a shared subtree */
	if (len > TREE_MAX_BYTES - t->bytes || t->n >= TREE_DEFAULT_MAX_ENTRIES)
		return fail(err, errlen, -EFBIG, "directory graph larger than %zu MiB",
			    TREE_MAX_BYTES >> 20);
	if ((t->n + 1) * 2 > t->cap) {
		if (grow(t))
			return fail(err, errlen, -ENOMEM, "out of memory");
		s = lookup(t, d->sha256);
	}
	s->raw = malloc(len ? len : 1);
	if (!s->raw)
		return fail(err, errlen, -ENOMEM, "out of memory");
	memcpy(s->raw, p, len);
	s->len = len;
	s->d = *d;
	t->n++;
	t->bytes += len;
	return 0;
}

int tree_add_tree(struct tree *t, const uint8_t *msg, size_t len,
		  struct rev2_digest *root, char *err, size_t errlen)
{
	struct pb r = { msg, msg + len };
	struct pb_field f;
	struct rev2_digest d;
	bool have_root = false;
	int k, ret;

	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num != 1 && f.num != 2)
			continue;
		if (f.wt != WT_LEN)
			return fail(err, errlen, -EINVAL, "malformed Tree message");
		if (f.num == 1 && have_root)
			/* protobuf would merge the two: refuse instead */
			return fail(err, errlen, -EINVAL, "Tree message with two roots");
		ret = add_dir(t, f.data, f.len, &d, err, errlen);
		if (ret)
			return ret;
		if (f.num == 1) {
			have_root = true;
			*root = d;
		}
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "malformed Tree message");
	if (!have_root)
		return fail(err, errlen, -EINVAL, "Tree message without a root");
	return 0;
}

int tree_add_page(struct tree *t, const uint8_t *msg, size_t len,
		  char *err, size_t errlen)
{
	struct pb r = { msg, msg + len };
	struct pb_field f;
	struct rev2_digest d;
	int k, ret;

	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num != 1)
			continue;
		if (f.wt != WT_LEN)
			return fail(err, errlen, -EINVAL, "malformed GetTreeResponse");
		ret = add_dir(t, f.data, f.len, &d, err, errlen);
		if (ret)
			return ret;
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "malformed GetTreeResponse");
	return 0;
}

/* ------------------------------------------------------------------ walk */

struct walker {
	struct tree *t;
	const struct tree_policy *pol;
	const struct tree_visitor *v;
	void *ud;
	struct tree_stats *st;
	char *err;
	size_t errlen;
	unsigned base_depth, max_depth;
	uint64_t entries, max_entries;
	size_t plen;
	char path[TREE_MAX_PATH + 1];
};

static int hexd(char *buf, size_t len, const struct rev2_digest *d)
{
	char hex[HEX_LEN + 1];

	hex_encode(d->sha256, hex);
	return snprintf(buf, len, "%s/%llu", hex, (unsigned long long)d->size);
}

/* Append "/name" (or "name" at the top) to w->path; -1 if too long. */
static int push(struct walker *w, const struct tnode *n)
{
	size_t add = n->nlen + (w->plen ? 1 : 0);

	if (w->plen + add > TREE_MAX_PATH)
		return -1;
	if (w->plen)
		w->path[w->plen] = '/';
	memcpy(w->path + w->plen + (w->plen ? 1 : 0), n->name, n->nlen);
	w->plen += add;
	w->path[w->plen] = 0;
	return 0;
}

static void pop(struct walker *w, size_t plen)
{
	w->plen = plen;
	w->path[plen] = 0;
}

static int walk_dir(struct walker *w, struct tslot *s, unsigned depth)
{
	struct tdir *d;
	size_t plen = w->plen, nall;
	char m[TREE_MAX_PATH + 300];
	int ret;

	if (!s->dec) {
		ret = decode_dir(s->raw, s->len, &s->dec, w->path, w->err, w->errlen);
		if (ret)
			return ret;
	}
	d = s->dec;
	nall = d->nfiles + d->ndirs + d->nlinks;
	/* counted before visiting so that a fan-out bomb stops early */
	w->entries += nall + 1;
	if (w->entries > w->max_entries)
		return fail(w->err, w->errlen, -E2BIG, "%s: more than %llu entries in the tree",
			    at(m, sizeof(m), w->path, NULL),
			    (unsigned long long)w->max_entries);
	w->st->dirs++;
	if (w->v->dir && (ret = w->v->dir(w->ud, w->path)))
		return ret;
	for (size_t i = 0; i < nall; i++) {
		const struct tnode *n = &d->nodes[i];
		bool is_file = i < d->nfiles, is_dir = !is_file && i < d->nfiles + d->ndirs;

		if (is_dir)
			continue;	/* after the files and symlinks */
		if (push(w, n))
			return fail(w->err, w->errlen, -EINVAL, "%s: path longer than %d bytes",
				    at(m, sizeof(m), w->path, n->name), TREE_MAX_PATH);
		if (is_file) {
			w->st->files++;
			if (w->v->file)
				ret = w->v->file(w->ud, w->path, w->path + w->plen - n->nlen,
						 &n->d, n->exec);
		} else {
			char sub[256];

			if (tree_check_target(n->target, n->tlen, w->base_depth + depth, w->pol,
					      sub, sizeof(sub)))
				return fail(w->err, w->errlen, -EINVAL, "%s: %s -> '%s'",
					    w->path, sub, n->target);
			w->st->symlinks++;
			if (w->v->symlink)
				ret = w->v->symlink(w->ud, w->path, w->path + w->plen - n->nlen,
						    n->target);
		}
		pop(w, plen);
		if (ret)
			return ret;
	}
	for (size_t i = d->nfiles; i < d->nfiles + d->ndirs; i++) {
		const struct tnode *n = &d->nodes[i];
		struct tslot *c;
		char dg[HEX_LEN + 32];

		if (push(w, n))
			return fail(w->err, w->errlen, -EINVAL, "%s: path longer than %d bytes",
				    at(m, sizeof(m), w->path, n->name), TREE_MAX_PATH);
		/* depth bounds recursion, and with it any cycle */
		if (depth + 1 > w->max_depth)
			return fail(w->err, w->errlen, -E2BIG, "%s: deeper than %u directories",
				    w->path, w->max_depth);
		c = lookup(w->t, n->d.sha256);
		hexd(dg, sizeof(dg), &n->d);
		if (!c->raw)
			return fail(w->err, w->errlen, -ENOENT,
				    "%s: directory %s is not in the tree", w->path, dg);
		if (c->len != n->d.size)
			return fail(w->err, w->errlen, -EINVAL,
				    "%s: directory %s has %zu bytes, not %llu", w->path, dg,
				    c->len, (unsigned long long)n->d.size);
		ret = walk_dir(w, c, depth + 1);
		pop(w, plen);
		if (ret)
			return ret;
	}
	return 0;
}

int tree_walk(struct tree *t, const struct rev2_digest *root, const char *prefix,
	      unsigned base_depth, const struct tree_policy *pol,
	      const struct tree_visitor *v, void *ud, struct tree_stats *st,
	      char *err, size_t errlen)
{
	static const struct tree_visitor none;
	struct tree_stats dummy;
	struct walker *w;
	struct tslot *s;
	char dg[HEX_LEN + 32];
	int ret;

	w = calloc(1, sizeof(*w));
	if (!w)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	w->t = t;
	w->pol = pol;
	w->v = v ? v : &none;
	w->ud = ud;
	w->st = st;
	w->err = err;
	w->errlen = errlen;
	w->base_depth = base_depth;
	w->max_depth = pol->max_depth ? pol->max_depth : TREE_DEFAULT_MAX_DEPTH;
	w->max_entries = pol->max_entries ? pol->max_entries : TREE_DEFAULT_MAX_ENTRIES;
	prefix = prefix ? prefix : "";
	w->plen = strlen(prefix);
	if (w->plen > TREE_MAX_PATH) {
		ret = fail(err, errlen, -EINVAL, "path longer than %d bytes", TREE_MAX_PATH);
		goto out;
	}
	memcpy(w->path, prefix, w->plen + 1);
	s = lookup(t, root->sha256);
	hexd(dg, sizeof(dg), root);
	if (!s->raw) {
		ret = fail(err, errlen, -ENOENT, "%s: root directory %s is not in the tree",
			   *prefix ? prefix : ".", dg);
		goto out;
	}
	if (s->len != root->size) {
		ret = fail(err, errlen, -EINVAL, "root directory %s has %zu bytes", dg, s->len);
		goto out;
	}
	ret = walk_dir(w, s, 0);
out:
	free(w);
	return ret;
}

/* ---------------------------------------------------------- ActionResult */

void action_result_free(struct action_result *ar)
{
	for (size_t i = 0; i < ar->nfiles; i++)
		free(ar->files[i].path);
	for (size_t i = 0; i < ar->ndirs; i++)
		free(ar->dirs[i].path);
	for (size_t i = 0; i < ar->nsymlinks; i++) {
		free(ar->symlinks[i].path);
		free(ar->symlinks[i].target);
	}
	free(ar->files);
	free(ar->dirs);
	free(ar->symlinks);
	memset(ar, 0, sizeof(*ar));
}

/* A string field as a C string; NULs refused (they would cut it short). */
static char *dup_str(const uint8_t *p, size_t len)
{
	char *s;

	if (memchr(p, 0, len))
		return NULL;
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = 0;
	}
	return s;
}

static int grow_arr(void **v, size_t *cap, size_t n, size_t sz)
{
	void *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	nv = realloc(*v, ncap * sz);
	if (!nv)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

static int cmp_pathp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static unsigned slashes(const char *p)
{
	unsigned n = 0;

	for (; *p; p++)
		n += *p == '/';
	return n;
}

/* One output message: fields path (1), and digest (2, 3) / target (2). */
static int decode_output(int fnum, const uint8_t *p, size_t len, char **path,
			 struct rev2_digest *d, bool *exec, char **target,
			 char *err, size_t errlen)
{
	struct pb r = { p, p + len };
	struct pb_field f;
	int dnum = fnum == 3 ? 3 : 2, k;
	bool have_d = false, have_x = false;
	char sub[256];

	while ((k = pb_next(&r, &f)) > 0) {
		if (f.num == 1) {
			if (f.wt != WT_LEN || *path)
				goto bad;
			*path = dup_str(f.data, f.len);
			if (!*path)
				return fail(err, errlen, -EINVAL, "output path with a NUL");
		} else if (f.num == (uint32_t)dnum && fnum != 10 && fnum != 11 && fnum != 12) {
			if (f.wt != WT_LEN || have_d)
				goto bad;
			have_d = true;
			if (tree_parse_digest(f.data, f.len, d, sub, sizeof(sub)))
				return fail(err, errlen, -EINVAL, "%s: %s",
					    *path ? *path : "output", sub);
		} else if (f.num == 2 && target) {
			if (f.wt != WT_LEN || *target)
				goto bad;
			*target = dup_str(f.data, f.len);
			if (!*target)
				return fail(err, errlen, -EINVAL, "%s: NUL in symlink target",
					    *path ? *path : "output");
		} else if (f.num == 4 && fnum == 2) {
			if (f.wt != WT_VARINT || have_x)
				goto bad;
			have_x = true;
			*exec = f.v != 0;
		}
	}
	if (k < 0)
		return fail(err, errlen, -EINVAL, "malformed ActionResult output");
	if (!*path)
		*path = dup_str((const uint8_t *)"", 0);
	if (!*path)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (manifest_check_path(*path, sub, sizeof(sub)))
		return fail(err, errlen, -EINVAL, "output '%s': %s", *path, sub);
	if (target && !*target)
		return fail(err, errlen, -EINVAL, "%s: empty symlink target", *path);
	if (!target && !have_d)
		return fail(err, errlen, -EINVAL, "%s: output without a digest", *path);
	return 0;
bad:
	return fail(err, errlen, -EINVAL, "ActionResult output with a bad or repeated field %u",
		    f.num);
}

int tree_parse_action_result(const uint8_t *msg, size_t len,
			     const struct tree_policy *pol, struct action_result *ar,
			     char *err, size_t errlen)
{
	struct pb r = { msg, msg + len };
	struct pb_field f;
	size_t fcap = 0, dcap = 0, scap = 0, np = 0;
	char **paths = NULL, sub[256];
	int k, ret = 0;

	memset(ar, 0, sizeof(*ar));
	while ((k = pb_next(&r, &f)) > 0) {
		char *path = NULL, *target = NULL;
		struct rev2_digest d = { 0 };
		bool exec = false, link = f.num >= 10 && f.num <= 12;

		if (f.num != 2 && f.num != 3 && !link)
			continue;
		if (f.wt != WT_LEN) {
			ret = fail(err, errlen, -EINVAL, "malformed ActionResult");
			goto out;
		}
		ret = decode_output((int)f.num, f.data, f.len, &path, &d, &exec,
				    link ? &target : NULL, err, errlen);
		if (ret) {
			free(path);
			free(target);
			goto out;
		}
		if (f.num == 2) {
			if (grow_arr((void **)&ar->files, &fcap, ar->nfiles, sizeof(*ar->files)))
				goto oom;
			ar->files[ar->nfiles++] = (struct ar_file){ path, d, exec };
		} else if (f.num == 3) {
			if (grow_arr((void **)&ar->dirs, &dcap, ar->ndirs, sizeof(*ar->dirs)))
				goto oom;
			ar->dirs[ar->ndirs++] = (struct ar_dir){ path, d };
		} else {
			bool same = false;

			if (tree_check_target(target, strlen(target), slashes(path), pol,
					      sub, sizeof(sub))) {
				ret = fail(err, errlen, -EINVAL, "%s: %s -> '%s'", path, sub, target);
				free(path);
				free(target);
				goto out;
			}
			/* Bazel sends a symlink in the deprecated lists too */
			for (size_t i = 0; i < ar->nsymlinks && !same; i++)
				same = !strcmp(ar->symlinks[i].path, path) &&
				       !strcmp(ar->symlinks[i].target, target);
			if (same) {
				free(path);
				free(target);
				continue;
			}
			if (grow_arr((void **)&ar->symlinks, &scap, ar->nsymlinks,
				     sizeof(*ar->symlinks))) {
				free(target);
				goto oom;
			}
			ar->symlinks[ar->nsymlinks++] = (struct ar_symlink){ path, target };
		}
		continue;
oom:
		free(path);
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (k < 0) {
		ret = fail(err, errlen, -EINVAL, "malformed ActionResult");
		goto out;
	}
	/* one place per path, and no output inside another */
	np = ar->nfiles + ar->ndirs + ar->nsymlinks;
	paths = malloc((np ? np : 1) * sizeof(*paths));
	if (!paths) {
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	np = 0;
	for (size_t i = 0; i < ar->nfiles; i++)
		paths[np++] = ar->files[i].path;
	for (size_t i = 0; i < ar->ndirs; i++)
		paths[np++] = ar->dirs[i].path;
	for (size_t i = 0; i < ar->nsymlinks; i++)
		paths[np++] = ar->symlinks[i].path;
	qsort(paths, np, sizeof(*paths), cmp_pathp);
	for (size_t i = 0; i < np; i++) {
		char prefix[MANIFEST_MAX_PATH + 1], *key = prefix;
		size_t l = strlen(paths[i]);

		if (i && !strcmp(paths[i], paths[i - 1])) {
			ret = fail(err, errlen, -EINVAL, "%s: output listed twice", paths[i]);
			goto out;
		}
		for (size_t j = 1; j < l; j++) {
			if (paths[i][j] != '/')
				continue;
			memcpy(prefix, paths[i], j);
			prefix[j] = 0;
			if (bsearch(&key, paths, np, sizeof(*paths), cmp_pathp)) {
				ret = fail(err, errlen, -EINVAL, "%s: inside another output '%s'",
					   paths[i], prefix);
				goto out;
			}
		}
	}
out:
	free(paths);
	if (ret)
		action_result_free(ar);
	return ret;
}
