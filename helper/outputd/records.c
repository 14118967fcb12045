// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd: the path -> digest table (records.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"

/* FNV-1a: paths are Bazel's, not chosen to collide with a secret seed;
 * a user who made them collide would only slow their own daemon. */
static uint64_t path_hash(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	while (len--) {
		h ^= (unsigned char)*p++;
		h *= 1099511628211ULL;
	}
	return h;
}

void records_init(struct records *r)
{
	memset(r, 0, sizeof(*r));
}

void records_free(struct records *r)
{
	for (size_t i = 0; i < r->nb; i++) {
		struct record *e = r->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(r->b);
	records_init(r);
}

static int grow(struct records *r)
{
	size_t nb = r->nb ? r->nb * 2 : 1024;
	struct record **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < r->nb; i++) {
		struct record *e = r->b[i], *next;

		for (; e; e = next) {
			size_t k = path_hash(e->path, e->path_len) & (nb - 1);

			next = e->next;
			e->next = b[k];
			b[k] = e;
		}
	}
	free(r->b);
	r->b = b;
	r->nb = nb;
	return 0;
}

static struct record **slot(const struct records *r, const char *path,
			    size_t len)
{
	struct record **pp;

	if (!r->nb)
		return NULL;
	pp = &r->b[path_hash(path, len) & (r->nb - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->path_len == len && !memcmp((*pp)->path, path, len))
			return pp;
	return pp;
}

int records_put(struct records *r, const char *path, size_t len,
		const uint8_t sha256[32], uint64_t size, uint64_t version)
{
	struct record **pp, *e;

	if (len > UINT32_MAX)
		return -EINVAL;
	if (r->n >= r->nb && grow(r))
		return -ENOMEM;
	pp = slot(r, path, len);
	e = *pp;
	if (!e) {
		e = malloc(sizeof(*e) + len + 1);
		if (!e)
			return -ENOMEM;
		e->next = NULL;
		e->path_len = (uint32_t)len;
		memcpy(e->path, path, len);
		e->path[len] = '\0';
		*pp = e;
		r->n++;
	}
	memcpy(e->sha256, sha256, 32);
	e->size = size;
	e->version = version;
	return 0;
}

struct record *records_get(const struct records *r, const char *path, size_t len)
{
	struct record **pp = slot(r, path, len);

	return pp ? *pp : NULL;
}

void records_del(struct records *r, const char *path, size_t len)
{
	struct record **pp = slot(r, path, len), *e;

	if (!pp || !*pp)
		return;
	e = *pp;
	*pp = e->next;
	free(e);
	r->n--;
}

void records_del_under(struct records *r, const char *dir, size_t len)
{
	for (size_t i = 0; i < r->nb; i++) {
		struct record **pp = &r->b[i];

		while (*pp) {
			struct record *e = *pp;

			if (e->path_len > len && e->path[len] == '/' &&
			    !memcmp(e->path, dir, len)) {
				*pp = e->next;
				free(e);
				r->n--;
			} else {
				pp = &e->next;
			}
		}
	}
}

int records_each(const struct records *r,
		 int (*fn)(void *ud, const struct record *rec), void *ud)
{
	for (size_t i = 0; i < r->nb; i++)
		for (const struct record *e = r->b[i]; e; e = e->next) {
			int ret = fn(ud, e);

			if (ret)
				return ret;
		}
	return 0;
}
