// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: calls. A call is queued, submitted as an HTTP/2 request on
 * the conn's current transport (HEADERS, then the one framed request
 * message with END_STREAM), and ends with exactly one status, from the
 * first of: its trailers (or a trailers-only response), a non-200 HTTP
 * status, RST_STREAM, GOAWAY, the connection failing, its deadline, a
 * framing error, or the caller. Response messages go to on_msg as each
 * one completes. Statuses follow grpc's doc/PROTOCOL-HTTP2.md and
 * doc/http-grpc-status-mapping.md.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADER_BYTES 65536		/* of one response, all blocks */
#define MAX_GRPC_MESSAGE 16384
#define MAX_DETAILS 16384
#define USER_AGENT "casfs-grpc/1"

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *grpc_code_name(int code)
{
	static char buf[24];

	if (code >= 0 && code <= GRPC_UNAUTHENTICATED)
		return code_names[code];
	snprintf(buf, sizeof(buf), "CODE_%d", code);
	return buf;
}

void grpc_status_free(struct grpc_status *s)
{
	free(s->message);
	free(s->details);
	s->message = NULL;
	s->details = NULL;
	s->details_len = 0;
}

int grpc_status_copy(struct grpc_status *dst, const struct grpc_status *src)
{
	*dst = *src;
	dst->message = strdup(src->message ? src->message : "");
	dst->details = NULL;
	if (src->details_len) {
		dst->details = malloc(src->details_len);
		if (dst->details)
			memcpy(dst->details, src->details, src->details_len);
	}
	if (!dst->message || (src->details_len && !dst->details)) {
		grpc_status_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------- bookkeeping */

static struct grpc_call **bucket(struct transport *t, int32_t id)
{
	return &t->by_id[(uint32_t)id / 2 % CALL_BUCKETS];
}

static struct grpc_call *lookup(struct transport *t, int32_t id)
{
	struct grpc_call *c;

	for (c = *bucket(t, id); c; c = c->hnext)
		if (c->stream_id == id)
			return c;
	return NULL;
}

static void unhash(struct grpc_call *call)
{
	struct grpc_call **pp;

	if (!call->t || !call->stream_id)
		return;
	for (pp = bucket(call->t, call->stream_id); *pp; pp = &(*pp)->hnext)
		if (*pp == call) {
			*pp = call->hnext;
			break;
		}
	call->hnext = NULL;
}

/* Take the call off its transport (and out of the id table). */
static void detach(struct grpc_call *call)
{
	unhash(call);
	glist_del(&call->link);
	if (call->t)
		transport_call_gone(call->t);
	call->t = NULL;
}

/* Detach and tell the server to stop (RST_STREAM). */
static void reset_stream(struct grpc_call *call, uint32_t h2code)
{
	struct transport *t = call->t;

	if (t && t->h2 && t->state != TP_DEAD && call->stream_id > 0) {
		nghttp2_submit_rst_stream(t->h2, NGHTTP2_FLAG_NONE,
					  call->stream_id, h2code);
		conn_wake(call->conn);
	}
	detach(call);
}

static void reset_response(struct grpc_call *call)
{
	call->http_status = 0;
	call->content_type_ok = call->content_type_seen = false;
	call->compressed_ok = false;
	call->got_headers = call->got_trailers = false;
	call->grpc_status = -1;
	free(call->grpc_message);
	call->grpc_message = NULL;
	call->grpc_message_len = 0;
	free(call->details_b64);
	call->details_b64 = NULL;
	call->details_b64_len = 0;
	call->header_bytes = 0;
	call->local_code = -1;
	free(call->local_msg);
	call->local_msg = NULL;
	grpc_deframer_free(&call->df);
	grpc_deframer_init(&call->df, call->conn->o.max_recv_msg, false);
}

void call_free(struct grpc_call *call)
{
	free(call->method);
	free(call->req);
	free(call->accept_encoding);
	grpc_md_free(&call->md);
	free(call->grpc_message);
	free(call->details_b64);
	free(call->local_msg);
	grpc_deframer_free(&call->df);
	grpc_status_free(&call->st);
	free(call);
}

/*
 * The call has its status: queue on_done. The caller has already taken
 * it off its transport or queue.
 */
static void finish(struct grpc_call *call, int code, bool transport,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void finish(struct grpc_call *call, int code, bool transport,
		   const char *fmt, ...)
{
	struct grpc_conn *c = call->conn;
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	call->st.code = code;
	call->st.transport = transport;
	call->st.http_status = call->http_status;
	free(call->st.message);
	call->st.message = strdup(buf);
	call->state = CALL_DONE;
	glist_add_tail(&c->done, &call->link);
	if (!c->in_step)
		conn_wake(c);
}

/* Give a call the server provably did not process another go. */
static bool maybe_retry(struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;

	if (call->st.messages || call->attempts >= c->o.transparent_retries)
		return false;
	call->attempts++;
	c->stats.retries++;
	reset_response(call);
	call->stream_id = 0;
	call->headers_sent = false;
	call->req_off = 0;
	call->progress = grpc_now_ns();	/* the queue's idle bound anew */
	call->state = CALL_QUEUED;
	glist_add_tail(&c->queued, &call->link);
	conn_wake(c);
	grpc_log(c, GRPC_LOG_INFO, "%s: retrying %s (not processed by the server)",
		 c->url, call->method);
	return true;
}

/* Not processed: retry transparently, or finish UNAVAILABLE. */
static void unprocessed(struct grpc_call *call, uint32_t h2code, const char *why)
{
	detach(call);
	if (maybe_retry(call))
		return;
	call->st.unprocessed = true;
	call->st.h2_error = h2code;
	finish(call, GRPC_UNAVAILABLE, true, "%s", why);
}

/* ------------------------------------------------------------ start */

/* A :path (no spaces) or a header value (spaces allowed). */
static bool printable(const char *s, bool path)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 + path || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

struct grpc_call *grpc_call_start(struct grpc_conn *c,
				  const struct grpc_call_opts *o)
{
	struct grpc_call *call;
	char err[256];

	if (!o->method || o->method[0] != '/' || !printable(o->method, true) ||
	    !o->on_done || (o->req_len && !o->req) || o->req_len > UINT32_MAX ||
	    (o->accept_encoding && !printable(o->accept_encoding, false)) ||
	    o->timeout_ms < 0 || o->idle_timeout_ms < 0 ||
	    o->timeout_ms > INT64_MAX / 2000000 ||
	    o->idle_timeout_ms > INT64_MAX / 2000000) {
		errno = EINVAL;
		return NULL;
	}
	call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->conn = c;
	glist_init(&call->link);
	call->method = strdup(o->method);
	call->req_len = GRPC_FRAME_HDR + o->req_len;
	call->req = malloc(call->req_len);
	call->accept_encoding = o->accept_encoding ? strdup(o->accept_encoding) : NULL;
	if (!call->method || !call->req ||
	    (o->accept_encoding && !call->accept_encoding))
		goto nomem;
	grpc_frame_header(call->req, o->req_len, false);
	if (o->req_len)
		memcpy(call->req + GRPC_FRAME_HDR, o->req, o->req_len);
	if (o->md)
		for (size_t i = 0; i < o->md->n; i++) {
			int r = grpc_md_add(&call->md, o->md->v[i].name,
					    o->md->v[i].value, err, sizeof(err));

			if (r) {
				call_free(call);
				errno = -r;
				return NULL;
			}
		}
	call->on_msg = o->on_msg;
	call->on_done = o->on_done;
	call->ud = o->ud;
	call->progress = grpc_now_ns();
	call->deadline = o->timeout_ms ? call->progress + o->timeout_ms * 1000000 : 0;
	call->idle = o->idle_timeout_ms * 1000000;
	grpc_deframer_init(&call->df, c->o.max_recv_msg, false);
	reset_response(call);
	call->state = CALL_QUEUED;
	glist_add_tail(&c->queued, &call->link);
	c->stats.calls_started++;
	conn_wake(c);
	return call;
nomem:
	call_free(call);
	errno = ENOMEM;
	return NULL;
}

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf,
			size_t len, uint32_t *flags, nghttp2_data_source *src,
			void *ud)
{
	struct grpc_call *call = lookup(ud, id);
	size_t n;

	(void)s;
	(void)src;
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	n = call->req_len - call->req_off;
	if (n > len)
		n = len;
	memcpy(buf, call->req + call->req_off, n);
	call->req_off += n;
	if (call->req_off == call->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
		   NGHTTP2_NV_FLAG_NO_COPY_NAME }

int call_submit(struct transport *t, struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;
	size_t nmd = c->md.n + call->md.n, n = 0;
	nghttp2_data_provider prd = { .read_callback = req_read };
	char timeout[16];
	nghttp2_nv *nva;
	int32_t id;

	if (call->deadline) {
		int64_t left = call->deadline - grpc_now_ns();

		if (left <= 0) {
			glist_del(&call->link);
			finish(call, GRPC_DEADLINE_EXCEEDED, true,
			       "deadline exceeded before the call could start");
			return 0;
		}
		grpc_timeout_format((left + 999999) / 1000000, timeout);
	}
	nva = calloc(9 + nmd, sizeof(*nva));
	if (!nva)
		return -1;
	nva[n++] = (nghttp2_nv)NV(":method", "POST");
	nva[n++] = (nghttp2_nv)NV(":scheme", c->tls ? "https" : "http");
	nva[n++] = (nghttp2_nv)NV(":path", call->method);
	nva[n++] = (nghttp2_nv)NV(":authority", c->authority);
	nva[n++] = (nghttp2_nv)NV("te", "trailers");
	nva[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
	nva[n++] = (nghttp2_nv)NV("user-agent", USER_AGENT);
	if (call->deadline)
		nva[n++] = (nghttp2_nv)NV("grpc-timeout", timeout);
	if (call->accept_encoding)
		nva[n++] = (nghttp2_nv)NV("grpc-accept-encoding",
					  call->accept_encoding);
	for (int k = 0; k < 2; k++) {
		const struct grpc_metadata *md = k ? &call->md : &c->md;

		for (size_t i = 0; i < md->n; i++) {
			nva[n].name = (uint8_t *)md->v[i].name;
			nva[n].namelen = strlen(md->v[i].name);
			nva[n].value = (uint8_t *)md->v[i].value;
			nva[n].valuelen = strlen(md->v[i].value);
			nva[n].flags = NGHTTP2_NV_FLAG_NONE;
			n++;
		}
	}
	id = nghttp2_submit_request(t->h2, NULL, nva, n, &prd, NULL);
	free(nva);
	if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ||
	    id == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED) {
		/* Ids used up, or going away: it takes no more calls. */
		t->state = TP_DRAINING;
		conn_wake(c);
		return -1;
	}
	if (id < 0) {
		glist_del(&call->link);
		finish(call, GRPC_INTERNAL, true, "HTTP/2 request: %s",
		       nghttp2_strerror(id));
		return 0;
	}
	glist_del(&call->link);
	glist_add_tail(&t->calls, &call->link);
	t->ncalls++;
	call->t = t;
	call->stream_id = id;
	call->hnext = *bucket(t, id);
	*bucket(t, id) = call;
	call->state = CALL_ACTIVE;
	return 0;
}

void grpc_call_cancel(struct grpc_call *call)
{
	switch (call->state) {
	case CALL_QUEUED:
	case CALL_DONE:
		glist_del(&call->link);
		call_free(call);
		return;
	case CALL_ACTIVE:
		reset_stream(call, NGHTTP2_CANCEL);
		if (call->in_cb) {
			call->state = CALL_CANCELLED;	/* freed on the way out */
			return;
		}
		call_free(call);
		return;
	case CALL_FIRING:
	case CALL_CANCELLED:
		return;
	}
}

/* ---------------------------------------------------------- deadlines */

/*
 * When the call expires (ns; 0: never): its total deadline, or its idle
 * bound (progress + idle) if that comes first (*idle then set).
 */
static int64_t call_expiry(const struct grpc_call *call, bool *idle)
{
	int64_t d = call->deadline;

	*idle = false;
	if (call->idle && (!d || call->progress + call->idle < d)) {
		d = call->progress + call->idle;
		*idle = true;
	}
	return d;
}

static void expire_one(struct grpc_call *call, int64_t now, bool idle)
{
	bool queued = call->state != CALL_ACTIVE;
	const char *some = call->st.messages ? " (after some messages)" : "";

	if (!queued) {
		transport_call_expired(call->t, now);
		reset_stream(call, NGHTTP2_CANCEL);
	}
	else
		glist_del(&call->link);
	if (!idle)
		finish(call, GRPC_DEADLINE_EXCEEDED, true, "deadline exceeded%s", some);
	else
		finish(call, GRPC_DEADLINE_EXCEEDED, true, "no data for %lld ms%s%s",
		       (long long)(call->idle / 1000000),
		       queued ? " (still waiting for a connection)" :
		       !call->headers_sent ? " (request not sent yet)" : "", some);
}

static void expire_list(struct glist *h, int64_t now)
{
	struct glist *e, *next;

	for (e = h->next; e != h; e = next) {
		struct grpc_call *call = glist_entry(e, struct grpc_call, link);

		int64_t d;
		bool idle;

		next = e->next;
		d = call_expiry(call, &idle);
		if (d && now >= d)
			expire_one(call, now, idle);
	}
}

void calls_expire(struct grpc_conn *c, int64_t now)
{
	struct glist *e;

	expire_list(&c->queued, now);
	for (e = c->transports.next; e != &c->transports; e = e->next)
		expire_list(&glist_entry(e, struct transport, link)->calls, now);
}

static int64_t min_deadline(const struct glist *h, int64_t best)
{
	const struct glist *e;

	for (e = h->next; e != h; e = e->next) {
		const struct grpc_call *call = glist_entry(e, struct grpc_call, link);
		bool idle;
		int64_t d = call_expiry(call, &idle);

		if (d && (!best || d < best))
			best = d;
	}
	return best;
}

int64_t calls_next_deadline(struct grpc_conn *c)
{
	int64_t best = min_deadline(&c->queued, 0);
	struct glist *e;

	for (e = c->transports.next; e != &c->transports; e = e->next)
		best = min_deadline(&glist_entry(e, struct transport, link)->calls,
				    best);
	return best;
}

/* ------------------------------------------------- failures, completion */

void calls_fail_queued(struct grpc_conn *c, const char *why)
{
	while (!glist_empty(&c->queued)) {
		struct grpc_call *call = glist_entry(c->queued.next,
						     struct grpc_call, link);

		glist_del(&call->link);
		call->st.unprocessed = true;
		finish(call, GRPC_UNAVAILABLE, true, "%s", why);
	}
}

void call_transport_failed(struct transport *t, const char *why)
{
	while (!glist_empty(&t->calls)) {
		struct grpc_call *call = glist_entry(t->calls.next,
						     struct grpc_call, link);

		if (!call->headers_sent) {
			unprocessed(call, 0, why);
			continue;
		}
		detach(call);
		finish(call, GRPC_UNAVAILABLE, true, "%s", why);
	}
}

void calls_complete(struct grpc_conn *c)
{
	while (!glist_empty(&c->done)) {
		struct grpc_call *call = glist_entry(c->done.next,
						     struct grpc_call, link);

		glist_del(&call->link);
		call->state = CALL_FIRING;
		if (call->st.code == GRPC_OK)
			c->stats.calls_ok++;
		else
			c->stats.calls_failed++;
		if (call->st.code != GRPC_OK)
			grpc_log(c, GRPC_LOG_DEBUG, "%s%s: %s: %s", c->url,
				 call->method, grpc_code_name(call->st.code),
				 call->st.message);
		call->on_done(call->ud, &call->st);
		call_free(call);
	}
}

/* ---------------------------------------------------- the response */

/* grpc/doc/http-grpc-status-mapping.md */
static int http_to_grpc(int http)
{
	switch (http) {
	case 400:
		return GRPC_INTERNAL;
	case 401:
		return GRPC_UNAUTHENTICATED;
	case 403:
		return GRPC_PERMISSION_DENIED;
	case 404:
		return GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return GRPC_UNAVAILABLE;
	}
	return GRPC_UNKNOWN;
}

static bool is_grpc_content_type(const uint8_t *v, size_t n)
{
	static const char ct[] = "application/grpc";
	size_t l = sizeof(ct) - 1;

	if (n < l || strncasecmp((const char *)v, ct, l))
		return false;
	return n == l || v[l] == '+' || v[l] == ';';
}

/* Is enc in the comma-separated list we offered? */
static bool encoding_accepted(const char *list, const uint8_t *enc, size_t n)
{
	const char *p = list;

	if (!list)
		return false;
	while (*p) {
		size_t l;

		while (*p == ' ' || *p == ',')
			p++;
		l = strcspn(p, ", ");
		if (l && l == n && !strncasecmp(p, (const char *)enc, n))
			return true;
		p += l;
	}
	return false;
}

static int set_local_error(struct grpc_call *call, int code, const char *msg)
{
	if (call->local_code < 0) {
		call->local_code = code;
		call->local_msg = strdup(msg);
	}
	return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
}

static int keep_value(char **dst, size_t *dlen, const uint8_t *v, size_t n,
		      size_t max)
{
	char *s;

	if (n > max)
		n = max;
	s = malloc(n + 1);
	if (!s)
		return -1;
	memcpy(s, v, n);
	s[n] = 0;
	free(*dst);
	*dst = s;
	*dlen = n;
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t nl, const uint8_t *v, size_t vl,
		     uint8_t flags, void *ud)
{
	struct grpc_call *call;

	(void)s;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	call = lookup(ud, f->hd.stream_id);
	if (!call)
		return 0;
	call->header_bytes += nl + vl + 32;
	if (call->header_bytes > MAX_HEADER_BYTES)
		return set_local_error(call, GRPC_RESOURCE_EXHAUSTED,
				       "response headers larger than 64 KiB");
#define IS(lit) (nl == sizeof(lit) - 1 && !memcmp(name, lit, nl))
	if (IS(":status")) {
		int st = 0;

		if (vl != 3)
			return set_local_error(call, GRPC_INTERNAL, "bad :status");
		for (size_t i = 0; i < 3; i++) {
			if (v[i] < '0' || v[i] > '9')
				return set_local_error(call, GRPC_INTERNAL,
						       "bad :status");
			st = st * 10 + (v[i] - '0');
		}
		if (st >= 200)
			call->http_status = st;
	} else if (IS("content-type")) {
		call->content_type_seen = true;
		call->content_type_ok = is_grpc_content_type(v, vl);
	} else if (IS("grpc-status")) {
		int st = 0;

		if (!vl || vl > 3)
			st = GRPC_UNKNOWN;
		for (size_t i = 0; i < vl && vl <= 3; i++) {
			if (v[i] < '0' || v[i] > '9') {
				st = GRPC_UNKNOWN;
				break;
			}
			st = st * 10 + (v[i] - '0');
		}
		call->grpc_status = st;
	} else if (IS("grpc-message")) {
		if (keep_value(&call->grpc_message, &call->grpc_message_len, v, vl,
			       MAX_GRPC_MESSAGE))
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	} else if (IS("grpc-status-details-bin")) {
		if (keep_value(&call->details_b64, &call->details_b64_len, v, vl,
			       MAX_DETAILS))
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	} else if (IS("grpc-encoding")) {
		call->compressed_ok = !(vl == 8 && !memcmp(v, "identity", 8)) &&
				      encoding_accepted(call->accept_encoding, v, vl);
	}
#undef IS
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct transport *t = ud;
	struct grpc_call *call;

	(void)s;
	transport_frame_seen(t, f->hd.type, f->hd.flags);
	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		t->got_settings = true;
		return 0;
	case NGHTTP2_GOAWAY:
		transport_goaway(t, f->goaway.last_stream_id, f->goaway.error_code,
				 f->goaway.opaque_data, f->goaway.opaque_data_len);
		return 0;
	case NGHTTP2_HEADERS:
		call = lookup(t, f->hd.stream_id);
		if (!call)
			return 0;
		call->progress = grpc_now_ns();
		if (call->http_status && !call->got_headers) {
			call->got_headers = true;
			call->df.allow_compressed = call->compressed_ok;
		}
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
			call->got_trailers = true;
		return 0;
	}
	return 0;
}

static int deliver_msg(void *ud, const uint8_t *msg, size_t len, bool compressed)
{
	struct grpc_call *call = ud;
	int r = 0;

	if (call->state != CALL_ACTIVE)
		return 1;
	call->st.messages++;
	if (call->on_msg)
		r = call->on_msg(call->ud, msg, len, compressed);
	if (call->state != CALL_ACTIVE)
		return 1;	/* cancelled from the callback */
	return r ? 2 : 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *ud)
{
	struct transport *t = ud;
	struct grpc_call *call = lookup(t, id);
	int r;

	(void)s;
	(void)flags;
	if (!call || call->state != CALL_ACTIVE)
		return 0;
	if (call->idle)
		call->progress = grpc_now_ns();	/* bytes came: not stalled */
	if (call->http_status != 200 || !call->content_type_ok)
		return 0;	/* an error page: the status says it all */
	call->in_cb++;
	r = grpc_deframer_feed(&call->df, data, len, deliver_msg, call);
	call->in_cb--;
	if (call->state == CALL_CANCELLED) {
		if (!call->in_cb)
			call_free(call);
		return 0;
	}
	if (r == 0)
		return 0;
	reset_stream(call, NGHTTP2_CANCEL);
	if (r == 2)
		finish(call, GRPC_CANCELLED, false, "cancelled by the message callback");
	else if (r == GRPC_FRAME_TOO_LARGE)
		finish(call, GRPC_RESOURCE_EXHAUSTED, true,
		       "received message larger than max (%zu bytes)",
		       call->df.max_msg);
	else
		finish(call, GRPC_INTERNAL, true, "response: %s",
		       grpc_frame_strerror(r));
	return 0;
}

/* The stream ended with trailers or END_STREAM: work out the status. */
static void close_clean(struct grpc_call *call)
{
	int code = call->grpc_status;
	int fr;

	if (call->details_b64)
		grpc_base64_decode(call->details_b64, call->details_b64_len,
				   &call->st.details, &call->st.details_len);
	if (call->http_status != 200) {
		if (code < 0) {
			code = call->http_status ? http_to_grpc(call->http_status)
						 : GRPC_INTERNAL;
			finish(call, code, true, "HTTP status %d%s", call->http_status,
			       call->http_status ? "" : " (no response headers)");
			return;
		}
	} else if (!call->content_type_ok) {
		finish(call, GRPC_UNKNOWN, true,
		       call->content_type_seen ? "response content-type is not application/grpc"
					       : "response without content-type");
		return;
	}
	if (!call->got_trailers) {
		finish(call, GRPC_INTERNAL, true,
		       "stream ended without trailers (no grpc-status)");
		return;
	}
	if (code < 0) {
		finish(call, GRPC_UNKNOWN, true, "trailers without grpc-status");
		return;
	}
	if (code > GRPC_UNAUTHENTICATED)
		code = GRPC_UNKNOWN;
	fr = grpc_deframer_finish(&call->df);
	if (code == GRPC_OK && fr) {
		finish(call, GRPC_INTERNAL, true, "response: %s",
		       grpc_frame_strerror(fr));
		return;
	}
	if (call->grpc_message) {
		char *m = grpc_percent_decode(call->grpc_message,
					      call->grpc_message_len);

		finish(call, code, false, "%s", m ? m : "");
		free(m);
	} else {
		finish(call, code, false, "%s", "");
	}
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t err,
			   void *ud)
{
	struct transport *t = ud;
	struct grpc_call *call = lookup(t, id);
	bool late;

	(void)s;
	if (!call || call->state != CALL_ACTIVE)
		return 0;
	if (call->local_code >= 0) {
		detach(call);
		finish(call, call->local_code, true, "%s",
		       call->local_msg ? call->local_msg : "error");
		return 0;
	}
	if (err == NGHTTP2_REFUSED_STREAM) {
		bool ga = t->goaway && id > t->goaway_last_id;
		char why[160];

		snprintf(why, sizeof(why), ga ?
			 "server sent GOAWAY (%s): request not processed" :
			 "stream refused by the server (REFUSED_STREAM): request not processed",
			 nghttp2_http2_strerror(t->goaway_error));
		unprocessed(call, err, why);
		return 0;
	}
	detach(call);
	if (err == NGHTTP2_NO_ERROR) {
		close_clean(call);
		return 0;
	}
	call->st.h2_error = err;
	late = call->deadline && grpc_now_ns() >= call->deadline;
	switch (err) {
	case NGHTTP2_CANCEL:
		if (late)
			finish(call, GRPC_DEADLINE_EXCEEDED, true,
			       "deadline exceeded (stream cancelled by the server)");
		else
			finish(call, GRPC_CANCELLED, true,
			       "stream cancelled by the server (RST_STREAM CANCEL)");
		break;
	case NGHTTP2_ENHANCE_YOUR_CALM:
		finish(call, GRPC_RESOURCE_EXHAUSTED, true,
		       "RST_STREAM ENHANCE_YOUR_CALM from the server");
		break;
	case NGHTTP2_INADEQUATE_SECURITY:
		finish(call, GRPC_PERMISSION_DENIED, true,
		       "RST_STREAM INADEQUATE_SECURITY from the server");
		break;
	default:
		finish(call, GRPC_INTERNAL, true, "stream reset (RST_STREAM %s)%s",
		       nghttp2_http2_strerror(err),
		       call->st.messages ? " after some messages" : "");
		break;
	}
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct grpc_call *call;

	(void)s;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	call = lookup(ud, f->hd.stream_id);
	if (call) {
		call->headers_sent = true;
		/* on the wire: the idle bound counts from now */
		call->progress = grpc_now_ns();
	}
	return 0;
}

static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f,
			     int lib_err, void *ud)
{
	struct transport *t = ud;
	struct grpc_call *call;
	char why[160];

	(void)s;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	call = lookup(t, f->hd.stream_id);
	if (!call || call->state != CALL_ACTIVE)
		return 0;
	if (t->state == TP_READY)
		t->state = TP_DRAINING;	/* it takes no new streams */
	snprintf(why, sizeof(why), "request not sent: %s", nghttp2_strerror(lib_err));
	unprocessed(call, 0, why);
	return 0;
}

static int on_error(nghttp2_session *s, int lib_err, const char *msg,
		    size_t len, void *ud)
{
	struct transport *t = ud;

	(void)s;
	grpc_log(t->conn, GRPC_LOG_DEBUG, "%s: HTTP/2 (%s): %.*s", t->conn->url,
		 nghttp2_strerror(lib_err), (int)len, msg);
	return 0;
}

/* A fresh set for each session (nghttp2 copies it): no shared state. */
nghttp2_session_callbacks *call_h2_callbacks(void)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_session_callbacks_new(&cbs))
		return NULL;
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs,
								 on_frame_not_send);
	nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
	return cbs;
}
