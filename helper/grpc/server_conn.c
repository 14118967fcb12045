// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC server: one HTTP/2 connection (nghttp2's server session),
 * driven from memory: bytes in through sconn_recv(), bytes out through
 * sconn_send(), so the fuzzer needs no socket. Everything the client
 * sends is hostile:
 *
 * - a call is a POST with content-type application/grpc[+...|;...] to a
 *   registered path (else HTTP 405 / 415 / UNIMPLEMENTED), carrying
 *   exactly one request message (none, or a second, is INTERNAL, as
 *   grpc-java's unary calls answer);
 * - a message over max_recv_msg is RESOURCE_EXHAUSTED at its 5-byte
 *   header, before anything is buffered; the deframer's buffers grow only
 *   with bytes that arrived, and those are counted against a connection
 *   and a global budget (over either: RESOURCE_EXHAUSTED);
 * - header blocks over MAX_HEADER_BYTES reset the stream; nghttp2
 *   enforces the preface, frame syntax, SETTINGS_MAX_CONCURRENT_STREAMS
 *   and flow control, and answers protocol errors with GOAWAY.
 *
 * Answers: HEADERS (:status 200, content-type application/grpc), one
 * DATA-framed message read lazily by a data provider (so a 4 MiB answer
 * follows flow control), trailers with grpc-status; errors are
 * trailers-only. If the client's half is still open when we finish, the
 * stream is reset with NO_ERROR, as grpc servers do, so it stops sending.
 */
#include "server_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADER_BYTES 16384		/* one request's header blocks */
#define MAX_PATH 256
#define STREAM_WINDOW (1 << 20)		/* request DATA in flight per stream */
#define CONN_WINDOW (8 << 20)
#define MAX_TIMEOUT_MS ((int64_t)1000 * 86400 * 30)	/* longer: no deadline */

enum st_state {
	ST_HEADERS,	/* request headers arriving */
	ST_BODY,	/* accepted; request DATA arriving */
	ST_QUEUED,	/* the job is with the workers */
	ST_REPLIED,	/* the answer is submitted; input is ignored */
};

struct sstream {
	struct glist link;		/* in sconn->streams */
	int32_t id;
	enum st_state state;
	size_t hdr_bytes;
	bool post, grpc_ct, bad_encoding;
	char path[MAX_PATH + 1];
	bool path_too_long;
	int64_t timeout_ms;		/* -1: none */
	struct grpc_deframer df;
	unsigned nmsgs;
	uint8_t *req;
	size_t req_len;
	size_t charge;			/* DATA bytes counted against budgets */
	/* the OK answer, read by the data provider */
	uint8_t fhdr[GRPC_FRAME_HDR];
	uint8_t *resp;
	size_t resp_len, resp_off;	/* off counts the 5-byte prefix too */
};

struct sconn {
	struct sconn_cfg cfg;
	nghttp2_session *h2;
	struct glist streams;		/* nghttp2_session_del() frees none */
	size_t mem;			/* request bytes held on this connection */
	unsigned nstreams, jobs;
	bool handshaked, broken;
};

int64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void srv_job_free(struct srv_job *j)
{
	if (!j)
		return;
	free(j->req);
	free(j->resp);
	free(j->msg);
	free(j);
}

static void slog(struct sconn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void slog(struct sconn *c, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (!c->cfg.log)
		return;
	n = snprintf(buf, sizeof(buf), "grpc server conn %llu: ",
		     (unsigned long long)c->cfg.id);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	c->cfg.log(c->cfg.log_ud, level, buf);
}

static void uncharge(struct sconn *c, size_t n)
{
	c->mem -= n;
	*c->cfg.global_mem -= n;
}

/* Drop what the request holds (the answer, if any, stays). */
static void stream_drop_request(struct sconn *c, struct sstream *s)
{
	grpc_deframer_free(&s->df);
	free(s->req);
	s->req = NULL;
	s->req_len = 0;
	uncharge(c, s->charge);
	s->charge = 0;
}

static struct sstream *stream_get(struct sconn *c, int32_t id)
{
	return nghttp2_session_get_stream_user_data(c->h2, id);
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
		   NGHTTP2_NV_FLAG_NONE }

/*
 * A trailers-only answer: HEADERS with END_STREAM. http is the :status
 * (200 for every gRPC status; 405/415 for what is not gRPC at all).
 */
static void reply_status(struct sconn *c, struct sstream *s, int http,
			 int code, const char *msg)
{
	char st[8], cs[12], *enc = NULL;
	nghttp2_nv nva[4];
	size_t n = 0;

	stream_drop_request(c, s);
	s->state = ST_REPLIED;
	snprintf(st, sizeof(st), "%d", http);
	snprintf(cs, sizeof(cs), "%d", code);
	nva[n++] = (nghttp2_nv)NV(":status", st);
	nva[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
	nva[n++] = (nghttp2_nv)NV("grpc-status", cs);
	if (msg && *msg) {
		enc = grpc_percent_encode(msg, strlen(msg));
		if (enc)
			nva[n++] = (nghttp2_nv)NV("grpc-message", enc);
	}
	if (nghttp2_submit_response(c->h2, s->id, nva, n, NULL))
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
	free(enc);
	if (c->cfg.done)
		c->cfg.done(c->cfg.ud, code);
}

static void reply_error(struct sconn *c, struct sstream *s, int code,
			const char *msg)
{
	reply_status(c, s, 200, code, msg);
}

static ssize_t read_resp(nghttp2_session *h2, int32_t id, uint8_t *buf,
			 size_t length, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct sstream *s = src->ptr;
	size_t total = GRPC_FRAME_HDR + s->resp_len, n = 0;
	nghttp2_nv tr[1] = { NV("grpc-status", "0") };

	(void)ud;
	while (n < length && s->resp_off < total) {
		size_t k;

		if (s->resp_off < GRPC_FRAME_HDR) {
			buf[n++] = s->fhdr[s->resp_off++];
			continue;
		}
		k = total - s->resp_off;
		if (k > length - n)
			k = length - n;
		memcpy(buf + n, s->resp + (s->resp_off - GRPC_FRAME_HDR), k);
		n += k;
		s->resp_off += k;
	}
	if (s->resp_off == total) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(h2, id, tr, 1))
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

/* An OK answer; takes resp. */
static void reply_ok(struct sconn *c, struct sstream *s, uint8_t *resp,
		     size_t len)
{
	nghttp2_nv nva[2] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_resp };

	if (grpc_frame_header(s->fhdr, len, false)) {
		free(resp);
		reply_error(c, s, GRPC_INTERNAL, "response message too large");
		return;
	}
	stream_drop_request(c, s);
	s->state = ST_REPLIED;
	s->resp = resp;
	s->resp_len = len;
	s->resp_off = 0;
	if (nghttp2_submit_response(c->h2, s->id, nva, 2, &prd)) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (c->cfg.done)
		c->cfg.done(c->cfg.ud, GRPC_OK);
}

/* ------------------------------------------------------------ requests */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f,
			    void *ud)
{
	struct sconn *c = ud;
	struct sstream *s;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	/* nghttp2 refuses streams over our SETTINGS; this is the backstop. */
	if (c->nstreams >= c->cfg.max_streams)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* RST_STREAM */
	s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->id = f->hd.stream_id;
	s->timeout_ms = -1;
	grpc_deframer_init(&s->df, c->cfg.max_recv_msg, false);
	if (nghttp2_session_set_stream_user_data(h2, s->id, s)) {
		free(s);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	glist_add_tail(&c->streams, &s->link);
	c->nstreams++;
	return 0;
}

static bool is_grpc_ct(const uint8_t *v, size_t len)
{
	static const char ct[] = "application/grpc";
	size_t l = sizeof(ct) - 1;

	if (len < l || memcmp(v, ct, l))
		return false;
	return len == l || v[l] == '+' || v[l] == ';';
}

#define HDR_IS(name, lit) (namelen == sizeof(lit) - 1 && !memcmp(name, lit, namelen))

static int on_header(nghttp2_session *h2, const nghttp2_frame *f,
		     const uint8_t *name, size_t namelen, const uint8_t *value,
		     size_t valuelen, uint8_t flags, void *ud)
{
	struct sconn *c = ud;
	struct sstream *s = stream_get(c, f->hd.stream_id);

	(void)h2;
	(void)flags;
	if (!s)
		return 0;
	s->hdr_bytes += namelen + valuelen + 32;
	if (s->hdr_bytes > MAX_HEADER_BYTES) {
		slog(c, GRPC_LOG_DEBUG, "stream %d: headers over %d bytes",
		     s->id, MAX_HEADER_BYTES);
		/* nghttp2 resets the stream (INTERNAL_ERROR). */
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (s->state != ST_HEADERS)
		return 0;	/* request trailers: nothing in them for us */
	if (HDR_IS(name, ":method")) {
		s->post = valuelen == 4 && !memcmp(value, "POST", 4);
	} else if (HDR_IS(name, ":path")) {
		if (valuelen > MAX_PATH) {
			s->path_too_long = true;
		} else {
			memcpy(s->path, value, valuelen);
			s->path[valuelen] = 0;
		}
	} else if (HDR_IS(name, "content-type")) {
		s->grpc_ct = is_grpc_ct(value, valuelen);
	} else if (HDR_IS(name, "grpc-timeout")) {
		int64_t ms = grpc_timeout_parse((const char *)value, valuelen);

		/* A malformed one is ignored, as grpc-java does. */
		s->timeout_ms = ms >= 0 && ms <= MAX_TIMEOUT_MS ? ms : -1;
	} else if (HDR_IS(name, "grpc-encoding")) {
		s->bad_encoding = !(valuelen == 8 && !memcmp(value, "identity", 8));
	}
	return 0;
}

/* The request's headers are complete: accept the call or answer it. */
static void headers_done(struct sconn *c, struct sstream *s)
{
	if (c->cfg.deny_code != GRPC_OK) {
		reply_error(c, s, c->cfg.deny_code, "connection refused by policy");
		return;
	}
	if (!s->post) {
		reply_status(c, s, 405, GRPC_INTERNAL, "method must be POST");
		return;
	}
	if (!s->grpc_ct) {
		reply_status(c, s, 415, GRPC_INTERNAL,
			     "content-type must be application/grpc");
		return;
	}
	if (s->path_too_long || !s->path[0]) {
		reply_error(c, s, GRPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	if (s->bad_encoding) {
		reply_error(c, s, GRPC_UNIMPLEMENTED,
			    "grpc-encoding not supported (identity only)");
		return;
	}
	{
		grpc_unary_fn fn;
		void *fn_ud;

		if (!c->cfg.route(c->cfg.ud, s->path, &fn, &fn_ud)) {
			char m[MAX_PATH + 32];

			snprintf(m, sizeof(m), "unknown method %s", s->path);
			reply_error(c, s, GRPC_UNIMPLEMENTED, m);
			return;
		}
	}
	s->state = ST_BODY;
}

static int on_msg(void *ud, const uint8_t *msg, size_t len, bool compressed)
{
	struct sstream *s = ud;

	(void)compressed;
	if (s->nmsgs++)
		return 1;		/* a second message */
	s->req = malloc(len ? len : 1);
	if (!s->req)
		return 2;
	memcpy(s->req, msg, len);
	s->req_len = len;
	return 0;
}

static void frame_error(struct sconn *c, struct sstream *s, int ret)
{
	switch (ret) {
	case 1:
		reply_error(c, s, GRPC_INTERNAL,
			    "more than one request message for a unary call");
		break;
	case 2:
	case GRPC_FRAME_NOMEM:
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		break;
	case GRPC_FRAME_TOO_LARGE: {
		char m[96];

		snprintf(m, sizeof(m), "request message larger than %zu bytes",
			 c->cfg.max_recv_msg);
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED, m);
		break;
	}
	default:
		reply_error(c, s, GRPC_INTERNAL, grpc_frame_strerror(ret));
	}
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *ud)
{
	struct sconn *c = ud;
	struct sstream *s = stream_get(c, id);
	int ret;

	(void)h2;
	(void)flags;
	if (!s || s->state != ST_BODY)
		return 0;	/* answered already: discard, hold nothing */
	if (c->mem + len > c->cfg.conn_mem_max ||
	    *c->cfg.global_mem + len > c->cfg.global_mem_max) {
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED,
			    "server busy: too much request data buffered");
		return 0;
	}
	c->mem += len;
	*c->cfg.global_mem += len;
	s->charge += len;
	ret = grpc_deframer_feed(&s->df, data, len, on_msg, s);
	if (ret)
		frame_error(c, s, ret);
	return 0;
}

/* The client's half is closed: run the call. */
static void request_done(struct sconn *c, struct sstream *s)
{
	struct srv_job *j;
	int ret = grpc_deframer_finish(&s->df);

	if (ret) {
		frame_error(c, s, ret);
		return;
	}
	if (s->nmsgs != 1) {
		reply_error(c, s, GRPC_INTERNAL,
			    "no request message for a unary call");
		return;
	}
	if (c->jobs >= c->cfg.max_streams) {
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED,
			    "too many calls in progress on this connection");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (!c->cfg.route(c->cfg.ud, s->path, &j->fn, &j->fn_ud)) {
		free(j);
		reply_error(c, s, GRPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	j->conn_id = c->cfg.id;
	j->stream_id = s->id;
	j->peer = c->cfg.peer;
	j->req = s->req;
	j->req_len = s->req_len;
	j->charge = s->charge;
	if (s->timeout_ms >= 0)
		j->deadline = srv_now_ns() + s->timeout_ms * 1000000;
	if (c->cfg.submit(c->cfg.ud, j)) {
		free(j);
		reply_error(c, s, GRPC_RESOURCE_EXHAUSTED,
			    "server busy: too many calls queued");
		return;
	}
	/* The job owns the message and its charge now. */
	grpc_deframer_free(&s->df);
	s->req = NULL;
	s->req_len = 0;
	s->charge = 0;
	s->state = ST_QUEUED;
	c->jobs++;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct sconn *c = ud;
	struct sstream *s;

	(void)h2;
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
		c->handshaked = true;
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	s = stream_get(c, f->hd.stream_id);
	if (!s)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && s->state == ST_HEADERS)
		headers_done(c, s);
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->state == ST_BODY)
		request_done(c, s);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	(void)ud;
	/* Our answer is complete but the client is still sending: stop it. */
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id) == 0)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_NO_ERROR);
	return 0;
}

static void stream_free(struct sconn *c, struct sstream *s)
{
	stream_drop_request(c, s);
	glist_del(&s->link);
	free(s->resp);
	free(s);
	c->nstreams--;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code,
			   void *ud)
{
	struct sconn *c = ud;
	struct sstream *s = stream_get(c, id);

	(void)code;
	if (!s)
		return 0;
	/* A job still out finds no stream (by id) and is dropped. */
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	stream_free(c, s);
	return 0;
}

static nghttp2_session_callbacks *callbacks(void)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_session_callbacks_new(&cbs))
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	return cbs;
}

struct sconn *sconn_new(const struct sconn_cfg *cfg)
{
	struct sconn *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cbs = callbacks();
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[3];
	int rv = -1;

	if (!c || !cbs || nghttp2_option_new(&opt))
		goto fail;
	c->cfg = *cfg;
	glist_init(&c->streams);
	/* Bounds on what a client can make nghttp2 queue or keep. */
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
#if NGHTTP2_VERSION_NUM >= 0x013900
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
#endif
	rv = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
	if (rv)
		goto fail;
	iv[0] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
					  cfg->max_streams };
	iv[1] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
					  STREAM_WINDOW };
	iv[2] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
					  MAX_HEADER_BYTES };
	rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 3);
	if (!rv)
		rv = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE,
							   0, CONN_WINDOW);
	if (rv)
		goto fail;
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return c;
fail:
	if (c && c->h2)
		nghttp2_session_del(c->h2);
	if (opt)
		nghttp2_option_del(opt);
	if (cbs)
		nghttp2_session_callbacks_del(cbs);
	free(c);
	return NULL;
}

void sconn_free(struct sconn *c)
{
	if (!c)
		return;
	nghttp2_session_del(c->h2);	/* no on_stream_close calls */
	while (!glist_empty(&c->streams))
		stream_free(c, glist_entry(c->streams.next, struct sstream, link));
	free(c);
}

int sconn_recv(struct sconn *c, const uint8_t *p, size_t n)
{
	ssize_t r;

	if (c->broken)
		return -1;
	r = nghttp2_session_mem_recv(c->h2, p, n);
	if (r < 0) {
		slog(c, GRPC_LOG_DEBUG, "HTTP/2: %s", nghttp2_strerror((int)r));
		c->broken = true;
		return -1;
	}
	return 0;
}

int sconn_send(struct sconn *c, const uint8_t **p, size_t *len)
{
	ssize_t n = nghttp2_session_mem_send(c->h2, p);

	*len = 0;
	if (n < 0) {
		slog(c, GRPC_LOG_DEBUG, "HTTP/2 send: %s", nghttp2_strerror((int)n));
		c->broken = true;
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

bool sconn_finished(const struct sconn *c)
{
	return !nghttp2_session_want_read(c->h2) &&
	       !nghttp2_session_want_write(c->h2);
}

bool sconn_handshaked(const struct sconn *c)
{
	return c->handshaked;
}

unsigned sconn_jobs(const struct sconn *c)
{
	return c->jobs;
}

void sconn_result(struct sconn *c, struct srv_job *j)
{
	struct sstream *s;

	c->jobs--;
	c->mem -= j->charge;	/* the global count is the caller's */
	s = stream_get(c, j->stream_id);
	if (!s || s->id != j->stream_id || s->state != ST_QUEUED)
		return;		/* reset or closed meanwhile: dropped */
	if (j->deadline && srv_now_ns() > j->deadline) {
		reply_error(c, s, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
		return;
	}
	if (j->code == GRPC_OK) {
		reply_ok(c, s, j->resp, j->resp_len);
		j->resp = NULL;
		return;
	}
	reply_error(c, s, j->code, j->msg ? j->msg : "");
}

void sconn_goaway(struct sconn *c)
{
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->h2),
			      NGHTTP2_NO_ERROR, NULL, 0);
}
