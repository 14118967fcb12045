// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for one server connection (server_conn.c): nghttp2's
 * server session, request headers, the deframer, the memory budgets,
 * answers through the data provider, results of jobs that come back
 * late, for closed streams, or past their deadline. No socket: bytes go
 * in through sconn_recv() and out through sconn_send().
 *
 * Input: byte 0 picks the chunk sizes the client bytes are cut into and
 * bit 7 of byte 1 leaves out the automatic client preface + SETTINGS
 * (to fuzz the preface itself). Then records, as fuzz_conn.c:
 * [type][flags][stream][len hi][len lo][payload]; stream picks 0, 1, 3,
 * 5, 7, 9 or 0x7fffffff. A type with bit 7 set is a header block
 * (HEADERS, or CONTINUATION for type 0x89) made of the payload's
 * "name\0value\0..." pairs as HPACK literals, so the fuzzer reaches the
 * header logic without learning HPACK.
 *
 * Jobs (at most 4 queued, more are refused as a busy server would) are
 * finished between chunks in an order and with results drawn from the
 * input. Checked: no memory error, UB or leak, and that the request
 * bytes charged to the budget all come back (global_mem is 0 at the end).
 */
#include "server_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_QUEUED 4

struct fz {
	struct srv_job *q[MAX_QUEUED];
	unsigned nq;
	size_t global_mem;
	const uint8_t *ctl;	/* bytes that steer the job results */
	size_t nctl, ctl_off;
};

static uint8_t ctl_byte(struct fz *f)
{
	return f->nctl ? f->ctl[f->ctl_off++ % f->nctl] : 0;
}

static int h_echo(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		  size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	(void)ud, (void)peer, (void)req, (void)len, (void)resp, (void)resp_len,
		(void)msg;
	return GRPC_OK;	/* never called: the fuzzer completes jobs itself */
}

static bool route(void *ud, const char *path, grpc_unary_fn *fn, void **fn_ud)
{
	(void)ud;
	if (strncmp(path, "/f.S/", 5))
		return false;
	*fn = h_echo;
	*fn_ud = NULL;
	return true;
}

static int submit(void *ud, struct srv_job *j)
{
	struct fz *f = ud;

	if (f->nq >= MAX_QUEUED)
		return -EBUSY;
	f->q[f->nq++] = j;
	return 0;
}

/* What a handler might have said: echo, empty, big, an error. */
static void finish(struct fz *f, struct srv_job *j)
{
	uint8_t c = ctl_byte(f);

	switch (c & 3) {
	case 0:
		j->code = GRPC_OK;
		j->resp = malloc(j->req_len ? j->req_len : 1);
		memcpy(j->resp, j->req, j->req_len);
		j->resp_len = j->req_len;
		break;
	case 1:
		j->code = GRPC_OK;
		break;
	case 2:
		j->code = GRPC_OK;
		j->resp_len = 70000 + c;	/* several DATA frames, windows */
		j->resp = calloc(1, j->resp_len);
		break;
	default:
		j->code = 1 + c % 16;
		j->msg = strdup("failed: \x01 100% \xff\n");
		break;
	}
	if (c & 4)
		j->deadline = srv_now_ns() - 1;	/* came back too late */
}

static void run_jobs(struct fz *f, struct sconn *c, bool all)
{
	while (f->nq) {
		unsigned i = ctl_byte(f) % f->nq;
		struct srv_job *j = f->q[i];

		if (!all && (ctl_byte(f) & 1))
			break;		/* leave some running */
		f->q[i] = f->q[--f->nq];
		finish(f, j);
		if (c)
			sconn_result(c, j);
		f->global_mem -= j->charge;
		srv_job_free(j);
	}
}

static void drain(struct sconn *c)
{
	/* Bounded: a window-limited answer stops producing output. */
	for (int i = 0; i < 4096; i++) {
		const uint8_t *p;
		size_t n;

		if (sconn_send(c, &p, &n) || !n)
			return;
	}
}

struct buf {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct buf *o, const void *p, size_t n)
{
	if (!n)
		return;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		o->b = realloc(o->b, o->cap);
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void put_frame(struct buf *o, uint8_t type, uint8_t flags,
		      uint32_t sid, const uint8_t *p, size_t n)
{
	uint8_t h[9] = { (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
			 type, flags, (uint8_t)(sid >> 24 & 0x7f),
			 (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid };

	put(o, h, 9);
	put(o, p, n);
}

/* "name\0value\0..." as HPACK literals without indexing (lengths < 127). */
static void hpack(struct buf *o, const uint8_t *p, size_t n)
{
	while (n) {
		const uint8_t *name = p, *val, *z = memchr(p, 0, n);
		size_t nl, vl;
		uint8_t b;

		if (!z)
			return;
		nl = (size_t)(z - name);
		n -= nl + 1;
		p = z + 1;
		val = p;
		z = memchr(p, 0, n);
		vl = z ? (size_t)(z - val) : n;
		n -= z ? vl + 1 : vl;
		p = z ? z + 1 : p + vl;
		if (nl > 126 || vl > 126)
			continue;
		b = 0;
		put(o, &b, 1);
		b = (uint8_t)nl;
		put(o, &b, 1);
		put(o, name, nl);
		b = (uint8_t)vl;
		put(o, &b, 1);
		put(o, val, vl);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t sids[] = { 0, 1, 3, 5, 7, 9, 0x7fffffff };
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct fz f = { 0 };
	struct sconn_cfg cfg = {
		.id = 1, .max_recv_msg = 1024, .max_streams = 8,
		.conn_mem_max = 4096, .global_mem_max = 8192,
		.route = route, .submit = submit,
	};
	struct buf in = { 0 };
	struct sconn *c;
	uint8_t chunking;
	size_t off;

	if (size < 2)
		return 0;
	chunking = data[0];
	if (!(data[1] & 0x80)) {
		put(&in, preface, sizeof(preface) - 1);
		put_frame(&in, 4, 0, 0, NULL, 0);
	}
	f.ctl = data + 1;
	f.nctl = size - 1 < 16 ? size - 1 : 16;
	off = 2;
	while (off + 5 <= size) {
		uint8_t type = data[off], flags = data[off + 1];
		uint32_t sid = sids[data[off + 2] % 7];
		size_t n = (size_t)data[off + 3] << 8 | data[off + 4];

		off += 5;
		if (n > size - off)
			n = size - off;
		if (type & 0x80) {
			struct buf hb = { 0 };

			hpack(&hb, data + off, n);
			put_frame(&in, type == 0x89 ? 9 : 1, flags, sid, hb.b, hb.len);
			free(hb.b);
		} else {
			put_frame(&in, type, flags, sid, data + off, n);
		}
		off += n;
	}
	if (off < size)		/* a tail of raw bytes */
		put(&in, data + off, size - off);

	cfg.global_mem = &f.global_mem;
	cfg.ud = &f;
	c = sconn_new(&cfg);
	if (!c)
		abort();
	drain(c);
	for (size_t p = 0, k = 0; p < in.len; k++) {
		size_t n = 1 + ((chunking >> (k % 4 * 2)) & 3) * 97;

		if (n > in.len - p)
			n = in.len - p;
		if (sconn_recv(c, in.b + p, n))
			break;
		p += n;
		drain(c);
		run_jobs(&f, c, false);
		drain(c);
		if (sconn_finished(c))
			break;
	}
	run_jobs(&f, c, true);
	drain(c);
	sconn_goaway(c);
	drain(c);
	/* Some jobs come back after their connection is gone. */
	sconn_free(c);
	run_jobs(&f, NULL, true);
	if (f.global_mem != 0) {
		fprintf(stderr, "request bytes still charged: %zu\n", f.global_mem);
		abort();
	}
	free(in.b);
	return 0;
}
