// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: blocking conveniences for tools and tests. They run the
 * conn's loop (other calls on it make progress too) until one call ends.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct run {
	struct grpc_status *st;
	bool done;
	int (*on_msg)(void *, const uint8_t *, size_t, bool);
	void *ud;
};

static void run_done(void *ud, const struct grpc_status *st)
{
	struct run *r = ud;

	if (grpc_status_copy(r->st, st)) {
		memset(r->st, 0, sizeof(*r->st));
		r->st->code = st->code;
	}
	r->done = true;
}

static int run_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct run *r = ud;

	return r->on_msg ? r->on_msg(r->ud, m, n, compressed) : 0;
}

int grpc_call_run(struct grpc_conn *c, const struct grpc_call_opts *o,
		  struct grpc_status *st)
{
	struct run r = { .st = st, .on_msg = o->on_msg, .ud = o->ud };
	struct grpc_call_opts ro = *o;
	int err;

	memset(st, 0, sizeof(*st));
	ro.on_msg = run_msg;
	ro.on_done = run_done;
	ro.ud = &r;
	if (!grpc_call_start(c, &ro)) {
		err = errno;
		st->code = err == EINVAL ? GRPC_INVALID_ARGUMENT : GRPC_RESOURCE_EXHAUSTED;
		st->message = strdup(strerror(err));
		return st->code;
	}
	while (!r.done) {
		err = grpc_conn_wait(c, -1);
		if (err < 0 && !r.done) {
			/* epoll itself failed: nothing will complete the call. */
			st->code = GRPC_INTERNAL;
			st->message = strdup(strerror(-err));
			return st->code;
		}
	}
	return st->code;
}

struct unary {
	uint8_t *buf;
	size_t len;
	unsigned n;
	bool nomem;
};

static int unary_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct unary *u = ud;

	if (compressed || ++u->n > 1)
		return 1;
	u->buf = malloc(n ? n : 1);
	if (!u->buf) {
		u->nomem = true;
		return 1;
	}
	memcpy(u->buf, m, n);
	u->len = n;
	return 0;
}

static void override(struct grpc_status *st, int code, const char *msg)
{
	free(st->message);
	st->message = strdup(msg);
	st->code = code;
}

int grpc_unary(struct grpc_conn *c, const char *method, const void *req,
	       size_t req_len, int64_t timeout_ms, uint8_t **resp,
	       size_t *resp_len, struct grpc_status *st)
{
	struct unary u = { 0 };
	struct grpc_call_opts o = {
		.method = method, .req = req, .req_len = req_len,
		.timeout_ms = timeout_ms, .on_msg = unary_msg, .ud = &u,
	};

	*resp = NULL;
	*resp_len = 0;
	grpc_call_run(c, &o, st);
	if (u.nomem)
		override(st, GRPC_RESOURCE_EXHAUSTED, "out of memory");
	else if (u.n > 1)
		override(st, GRPC_INTERNAL, "unary call: more than one response message");
	else if (st->code == GRPC_OK && u.n == 0)
		override(st, GRPC_INTERNAL, "unary call: no response message");
	if (st->code == GRPC_OK) {
		*resp = u.buf;
		*resp_len = u.len;
	} else {
		free(u.buf);
	}
	return st->code;
}
