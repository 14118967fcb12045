// SPDX-License-Identifier: GPL-2.0
/* casfs-outputd: the CAS client (cas.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cas.h"

/* FindMissingBlobs requests stay well under 4 MiB: ~80 bytes a digest. */
#define CAS_BATCH 10000

struct cas {
	struct rev2_opts o;
	char *url, *instance, *ca, *cert, *key, *hdr;
	pthread_key_t key_client;
};

static void client_free(void *p)
{
	rev2_close(p);
}

static char *dup_or_null(const char *s, int *err)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*err = -ENOMEM;
	return d;
}

int cas_new(struct cas **out, const struct rev2_opts *opts, char *err, size_t errlen)
{
	struct cas *c = calloc(1, sizeof(*c));
	int e = 0;

	if (!c)
		return -ENOMEM;
	c->url = dup_or_null(opts->url, &e);
	c->instance = dup_or_null(opts->instance, &e);
	c->ca = dup_or_null(opts->ca_file, &e);
	c->cert = dup_or_null(opts->cert_file, &e);
	c->key = dup_or_null(opts->key_file, &e);
	c->hdr = dup_or_null(opts->header_file, &e);
	c->o = (struct rev2_opts){
		.url = c->url, .instance = c->instance, .ca_file = c->ca,
		.cert_file = c->cert, .key_file = c->key, .header_file = c->hdr,
		.timeout_ms = opts->timeout_ms,
	};
	if (!e && pthread_key_create(&c->key_client, client_free))
		e = -EAGAIN;
	if (e) {
		free(c->url);
		free(c->instance);
		free(c->ca);
		free(c->cert);
		free(c->key);
		free(c->hdr);
		free(c);
		return e;
	}
	/* Check the settings now, so a bad URL fails at start, not at the
	 * first build. */
	if (c->url) {
		struct rev2 *r;
		int ret = rev2_open(&r, &c->o, err, errlen);

		if (ret) {
			cas_free(c);
			return ret;
		}
		rev2_close(r);
	}
	*out = c;
	return 0;
}

void cas_free(struct cas *c)
{
	struct rev2 *r;

	if (!c)
		return;
	r = pthread_getspecific(c->key_client);
	if (r) {
		pthread_setspecific(c->key_client, NULL);
		rev2_close(r);
	}
	pthread_key_delete(c->key_client);
	free(c->url);
	free(c->instance);
	free(c->ca);
	free(c->cert);
	free(c->key);
	free(c->hdr);
	free(c);
}

bool cas_configured(const struct cas *c)
{
	return c && c->url;
}

int cas_find_missing(struct cas *c, const struct rev2_digest *d, size_t n,
		     bool *missing, char *err, size_t errlen)
{
	struct rev2 *r;
	int ret;

	if (!cas_configured(c)) {
		memset(missing, 0, n * sizeof(*missing));
		return 0;
	}
	r = pthread_getspecific(c->key_client);
	if (!r) {
		ret = rev2_open(&r, &c->o, err, errlen);
		if (ret)
			return ret;
		pthread_setspecific(c->key_client, r);
	}
	for (size_t i = 0; i < n; i += CAS_BATCH) {
		size_t k = n - i < CAS_BATCH ? n - i : CAS_BATCH;

		ret = rev2_find_missing(r, d + i, k, missing + i, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}
