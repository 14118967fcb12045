// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: grpc:// and grpcs:// backend, the Remote Execution API v2
 * CAS over one HTTP/2 connection (grpc/).
 *
 * Small blobs (up to REV2_BATCH_BLOB_MAX, and within the server's batch
 * limit) wait in a batch queue; every turn of the engine's loop sends what
 * has gathered as BatchReadBlobs calls, so concurrent misses share a round
 * trip. Larger blobs stream with ByteStream.Read straight into the blob
 * writer; a stream that breaks (reset, GOAWAY, a short clean end) is
 * resumed at read_offset = bytes already written, since the writer hashes
 * as it goes. Whatever arrives, the engine's commit verifies size and
 * sha256 before anything is published.
 *
 * Timeouts measure progress (issue 11 item 3), as the HTTP backend's
 * low-speed limit does: a ByteStream.Read has no total deadline, only an
 * idle timeout of --timeout (no response bytes for that long fails it),
 * so a 3 GB blob at 50 MB/s finishes while a stalled stream still fails
 * and goes through the resume/retry logic below. BatchReadBlobs
 * (bounded at ~4 MiB) keeps the job's remaining budget as its total
 * deadline, plus the same idle timeout.
 *
 * At most `jobs` calls are on the wire at once; the engine may hand us
 * many more jobs than that (max_active) so that batches can fill.
 */
#include "backend.h"
#include "rev2_pb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ACTIVE_PER_JOB 32	/* engine jobs per call slot (batching room) */
#define MAX_ACTIVE 1024
#define STREAM_RESUMES 8	/* resumes of one attempt's ByteStream.Read */
#define CAPS_TIMEOUT_MS 10000
#define CAPS_PROBE_MS 3000	/* at start-up: do not hold up registering */
#define CAPS_RETRY_MS 5000

enum gx_state { GX_WAIT_BATCH, GX_WAIT_STREAM, GX_BATCH, GX_STREAM };

struct gbatch;

/* One job's attempt (j->bpriv). */
struct gx {
	struct grpc_be *gb;
	struct job *j;
	enum gx_state state;
	struct gx *next, *prev;		/* in a wait queue */
	struct gbatch *batch;		/* GX_BATCH */
	struct grpc_call *call;		/* GX_STREAM */
	unsigned resumes;
	uint64_t call_from;		/* GX_STREAM: bytes written when this call started */
	bool bad_msg, overflow;
	int werr;
	/* batch result */
	bool got;
	int code;
};

struct gx_queue {
	struct gx *head, *tail;
	unsigned n;
};

struct grpc_be;

struct gbatch {
	struct grpc_be *gb;
	struct gbatch *next, *prev;	/* in gb->batches while on the wire */
	struct grpc_call *call;
	struct gx **x;		/* NULL where a job was cancelled */
	size_t n;
	bool bad_msg;
	int write_err;
};

struct grpc_be {
	struct backend *b;
	struct grpc_conn *conn;
	struct grpc_metadata md;
	char *instance;
	unsigned max_calls, calls;
	int64_t idle_ms;	/* --timeout: no response bytes for this long fails a call */
	/*
	 * BatchReadBlobs calls in flight, and their cap: while they are
	 * out, new small misses gather into the next batch instead of each
	 * taking a call of its own.
	 */
	unsigned batch_calls, max_batch_calls;
	struct gbatch *batches;	/* on the wire: freed by destroy if never done */
	struct gx_queue wait_batch, wait_stream;
	struct rev2_caps caps;
	bool have_caps, no_sha256;
	struct grpc_call *caps_call;
	uint64_t caps_next_ms;
	uint64_t nbatches, batched_blobs, streams, resumes;
};

static void q_add(struct gx_queue *q, struct gx *x)
{
	x->next = NULL;
	x->prev = q->tail;
	if (q->tail)
		q->tail->next = x;
	else
		q->head = x;
	q->tail = x;
	q->n++;
}

static void q_del(struct gx_queue *q, struct gx *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		q->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		q->tail = x->prev;
	x->next = x->prev = NULL;
	q->n--;
}

static int64_t left_ms(const struct job *j)
{
	uint64_t now = mono_ms();

	return j->deadline_ms > now ? (int64_t)(j->deadline_ms - now) : 1;
}

static uint64_t batch_bytes(const struct grpc_be *gb)
{
	return gb->have_caps ? gb->caps.max_batch : REV2_MSG_LIMIT - REV2_BATCH_SLACK;
}

/* End j's attempt: free our state, then tell the engine. */
static void report(struct grpc_be *gb, struct gx *x, enum attempt_result r, int err,
		   const char *why)
{
	struct job *j = x->j;

	j->bpriv = NULL;
	free(x);
	fetch_attempt_done(gb->b->eng, j, r, err, why);
}

static void report_status(struct grpc_be *gb, struct gx *x, const char *what,
			  int code, bool transport, const char *message,
			  const uint8_t *details, size_t dlen)
{
	struct rev2_err e = rev2_map_status(code, transport, details, dlen);
	char why[512];

	snprintf(why, sizeof(why), "%s: %s%s%s", what, grpc_code_name(code),
		 message && *message ? ": " : "", message ? message : "");
	if (e.transient && e.retry_after_ms)
		x->j->retry_after_ms = e.retry_after_ms;
	report(gb, x, e.transient ? RES_TRANSIENT : RES_PERMANENT, e.err, why);
}

/* ---- capabilities ---- */

static int caps_apply(struct grpc_be *gb, const uint8_t *msg, size_t len)
{
	struct rev2_caps caps;

	if (rev2_parse_caps(msg, len, &caps)) {
		log_warn("GetCapabilities: malformed ServerCapabilities; using defaults");
		return 0;
	}
	if (!caps.sha256) {
		log_err("the CAS does not offer SHA256 digests (GetCapabilities); "
			"casfs cannot use it");
		gb->no_sha256 = true;
		return -EPROTONOSUPPORT;
	}
	gb->caps = caps;
	gb->have_caps = true;
	log_info("CAS capabilities: REv2 %u.%u, batch limit %" PRIu64 " bytes%s",
		 caps.api_major, caps.api_minor, caps.max_batch,
		 caps.zstd ? ", zstd offered (not used)" : "");
	return 0;
}

static int caps_req(struct grpc_be *gb, uint8_t **buf, size_t *len)
{
	PbCapsReq req = BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_CAPABILITIES_REQUEST__INIT;
	size_t n;

	req.instance_name = gb->instance;
	n = protobuf_c_message_get_packed_size(&req.base);
	*buf = malloc(n ? n : 1);
	if (!*buf)
		return -ENOMEM;
	*len = protobuf_c_message_pack(&req.base, *buf);
	return 0;
}

static int caps_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct grpc_be *gb = ud;

	if (!compressed && !gb->have_caps)
		caps_apply(gb, m, n);
	return 0;
}

static void caps_done(void *ud, const struct grpc_status *st)
{
	struct grpc_be *gb = ud;

	gb->caps_call = NULL;
	if (st->code != GRPC_OK) {
		log_dbg("GetCapabilities: %s: %s", grpc_code_name(st->code), st->message);
		gb->caps_next_ms = mono_ms() + CAPS_RETRY_MS;
	}
}

/* Ask again in the background if start-up could not reach the server. */
static void caps_maybe_start(struct grpc_be *gb)
{
	struct grpc_call_opts o = {
		.method = REV2_M_CAPS, .timeout_ms = CAPS_TIMEOUT_MS,
		.on_msg = caps_msg, .on_done = caps_done, .ud = gb,
	};
	uint8_t *buf;
	size_t len;

	if (gb->have_caps || gb->no_sha256 || gb->caps_call || mono_ms() < gb->caps_next_ms)
		return;
	if (caps_req(gb, &buf, &len))
		return;
	o.req = buf;
	o.req_len = len;
	gb->caps_call = grpc_call_start(gb->conn, &o);
	free(buf);
	if (!gb->caps_call)
		gb->caps_next_ms = mono_ms() + CAPS_RETRY_MS;
}

/* ---- BatchReadBlobs ---- */

static struct gx *batch_find(struct gbatch *bt, const struct rev2_digest *d)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct gx *x = bt->x[i];

		if (x && !x->got && x->j->size == d->size &&
		    !memcmp(x->j->digest, d->sha256, CASFS_SHA256_LEN))
			return x;
	}
	return NULL;
}

static int batch_entry(void *ud, const struct rev2_digest *d, int code,
		       const char *message, const uint8_t *data, size_t len)
{
	struct gbatch *bt = ud;
	struct gx *x = batch_find(bt, d);
	int err;

	(void)message;
	if (!x)
		return 0;	/* not asked for, or answered twice: ignore */
	x->got = true;
	x->code = code;
	if (code != GRPC_OK)
		return 0;
	err = bw_write(&x->j->bw, data, len);
	if (err == -EFBIG)
		x->overflow = true;	/* commit says "longer than expected" */
	else if (err)
		x->werr = err;
	return 0;
}

static int batch_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct gbatch *bt = ud;

	if (compressed || rev2_parse_batch_read(m, n, batch_entry, bt)) {
		bt->bad_msg = true;
		return 1;
	}
	return 0;
}

static void batch_link(struct grpc_be *gb, struct gbatch *bt)
{
	bt->prev = NULL;
	bt->next = gb->batches;
	if (gb->batches)
		gb->batches->prev = bt;
	gb->batches = bt;
}

static void batch_unlink(struct grpc_be *gb, struct gbatch *bt)
{
	if (bt->prev)
		bt->prev->next = bt->next;
	else
		gb->batches = bt->next;
	if (bt->next)
		bt->next->prev = bt->prev;
}

static void batch_done(void *ud, const struct grpc_status *st)
{
	struct gbatch *bt = ud;
	struct grpc_be *gb = bt->gb;

	gb->calls--;
	gb->batch_calls--;
	batch_unlink(gb, bt);
	for (size_t i = 0; i < bt->n; i++) {
		struct gx *x = bt->x[i];

		if (!x)
			continue;
		x->batch = NULL;
		if (bt->bad_msg) {
			report(gb, x, RES_TRANSIENT, -EIO, "BatchReadBlobs: malformed response");
		} else if (st->code != GRPC_OK) {
			report_status(gb, x, "BatchReadBlobs", st->code, st->transport,
				      st->message, st->details, st->details_len);
		} else if (!x->got) {
			report(gb, x, RES_TRANSIENT, -EIO,
			       "BatchReadBlobs: blob missing from the response");
		} else if (x->code != GRPC_OK) {
			report_status(gb, x, "BatchReadBlobs (blob)", x->code, false,
				      NULL, NULL, 0);
		} else if (x->werr) {
			char why[128];

			snprintf(why, sizeof(why), "writing the temporary file: %s",
				 strerror(-x->werr));
			report(gb, x, RES_PERMANENT, x->werr, why);
		} else {
			report(gb, x, RES_OK, 0, NULL);
		}
	}
	free(bt->x);
	free(bt);
}

/*
 * A BatchReadBlobs call has one deadline, the shortest of its members':
 * a retried job with a second left must not cut the call short for
 * fresh jobs with a minute left. So a call carries only jobs of one
 * band, ceil(log2(ms left)): within a band the shortest time left is
 * more than half of any member's, and no job's call gets less than half
 * of the time it has.
 */
unsigned grpc_deadline_band(int64_t left_ms)
{
	return left_ms <= 1 ? 0 : 64 - (unsigned)__builtin_clzll((uint64_t)left_ms - 1);
}

/*
 * How far past the head batch_send() looks for jobs of the head's band
 * (the queue is in deadline order but for retried jobs, so the scan is
 * short in practice and bounded when it is not).
 */
#define BATCH_SCAN (4 * REV2_BATCH_MAX_DIGESTS)

/* Send one BatchReadBlobs with as many waiting blobs of the head's band as fit. */
static void batch_send(struct grpc_be *gb)
{
	uint64_t limit = batch_bytes(gb), total = 0;
	struct rev2_digest *d;
	struct gbatch *bt;
	struct gx *x, *next;
	int64_t timeout = 0;
	unsigned band, scanned = 0;
	size_t n = 0, cap = gb->wait_batch.n;
	uint8_t *req;
	size_t len;

	if (cap > REV2_BATCH_MAX_DIGESTS)
		cap = REV2_BATCH_MAX_DIGESTS;
	bt = calloc(1, sizeof(*bt));
	d = calloc(cap, sizeof(*d));
	if (bt)
		bt->x = calloc(cap, sizeof(*bt->x));
	if (!bt || !d || !bt->x)
		goto nomem;
	bt->gb = gb;
	band = grpc_deadline_band(left_ms(gb->wait_batch.head->j));
	for (x = gb->wait_batch.head; x && n < cap && scanned < BATCH_SCAN;
	     x = next, scanned++) {
		int64_t left = left_ms(x->j);

		next = x->next;
		if (grpc_deadline_band(left) != band)
			continue;
		if (n && total + x->j->size > limit)
			break;
		q_del(&gb->wait_batch, x);
		total += x->j->size;
		memcpy(d[n].sha256, x->j->digest, CASFS_SHA256_LEN);
		d[n].size = x->j->size;
		if (!timeout || left < timeout)
			timeout = left;
		x->state = GX_BATCH;
		x->batch = bt;
		bt->x[n++] = x;
	}
	bt->n = n;
	if (rev2_pack_batch_read(gb->instance, d, n, &req, &len))
		goto fail;
	free(d);
	{
		struct grpc_call_opts o = {
			.method = REV2_M_BATCH_READ, .req = req, .req_len = len,
			.timeout_ms = timeout, .idle_timeout_ms = gb->idle_ms,
			.on_msg = batch_msg,
			.on_done = batch_done, .ud = bt,
		};

		bt->call = grpc_call_start(gb->conn, &o);
	}
	free(req);
	if (!bt->call)
		goto fail_sent;
	gb->calls++;
	gb->batch_calls++;
	batch_link(gb, bt);
	gb->nbatches++;
	gb->batched_blobs += n;
	log_dbg("BatchReadBlobs: %zu blobs, %" PRIu64 " bytes", n, total);
	return;
fail:
	free(d);
fail_sent:
	for (size_t i = 0; i < bt->n; i++)
		report(gb, bt->x[i], RES_TRANSIENT, -ENOMEM, "cannot start BatchReadBlobs");
	free(bt->x);
	free(bt);
	return;
nomem:
	free(d);
	if (bt)
		free(bt->x);
	free(bt);
	/* Leave the jobs waiting; the next turn tries again. */
}

/* ---- ByteStream.Read ---- */

static int stream_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct gx *x = ud;
	const uint8_t *data;
	size_t dlen;
	int err;

	if (compressed || rev2_parse_bs_chunk(m, n, &data, &dlen)) {
		x->bad_msg = true;
		return 1;
	}
	err = bw_write(&x->j->bw, data, dlen);
	if (err == -EFBIG) {
		x->overflow = true;
		return 1;
	}
	if (err) {
		x->werr = err;
		return 1;
	}
	/*
	 * Bytes arrived: where the engine would hear of progress (e.g. to
	 * push back the job's retry budget, j->deadline_ms) once fetch.c
	 * offers a way to say so.
	 */
	return 0;
}

static void stream_done(void *ud, const struct grpc_status *st);

static int stream_start(struct grpc_be *gb, struct gx *x)
{
	/* no total deadline: a stream may take as long as it keeps coming */
	struct grpc_call_opts o = {
		.method = REV2_M_BS_READ, .idle_timeout_ms = gb->idle_ms,
		.on_msg = stream_msg, .on_done = stream_done, .ud = x,
	};
	struct rev2_digest d;
	uint8_t *req;
	size_t len;

	memcpy(d.sha256, x->j->digest, CASFS_SHA256_LEN);
	d.size = x->j->size;
	if (rev2_pack_bs_read(gb->instance, &d, x->j->bw.written, &req, &len))
		return -ENOMEM;
	o.req = req;
	o.req_len = len;
	x->call = grpc_call_start(gb->conn, &o);
	free(req);
	if (!x->call)
		return -ENOMEM;
	x->call_from = x->j->bw.written;
	x->state = GX_STREAM;
	return 0;
}

static void stream_done(void *ud, const struct grpc_status *st)
{
	struct gx *x = ud;
	struct grpc_be *gb = x->gb;
	struct job *j = x->j;
	bool resume = false;
	char why[512];

	x->call = NULL;
	gb->calls--;
	if (x->bad_msg) {
		report(gb, x, RES_TRANSIENT, -EIO, "ByteStream.Read: malformed response");
		return;
	}
	if (x->overflow) {
		report(gb, x, RES_OK, 0, NULL);	/* commit: "longer than expected" */
		return;
	}
	if (x->werr) {
		snprintf(why, sizeof(why), "writing the temporary file: %s", strerror(-x->werr));
		report(gb, x, RES_PERMANENT, x->werr, why);
		return;
	}
	if (st->code == GRPC_OK && j->bw.written == j->size) {
		report(gb, x, RES_OK, 0, NULL);
		return;
	}
	if (st->code == GRPC_OK) {
		snprintf(why, sizeof(why), "ByteStream.Read ended at %" PRIu64 " of %" PRIu64
			 " bytes", j->bw.written, j->size);
		resume = true;
	} else {
		struct rev2_err e = rev2_map_status(st->code, st->transport, st->details,
						    st->details_len);

		snprintf(why, sizeof(why), "ByteStream.Read: %s: %s", grpc_code_name(st->code),
			 st->message);
		/* Resume only a stream that broke after bringing something. */
		resume = e.transient && j->bw.written > 0 && e.err != -ETIMEDOUT;
		if (!resume) {
			report_status(gb, x, "ByteStream.Read", st->code, st->transport,
				      st->message, st->details, st->details_len);
			return;
		}
	}
	/*
	 * Resume within the budget, or past it if this call was making
	 * progress: a long transfer that breaks late is worth finishing.
	 */
	if (resume && x->resumes < STREAM_RESUMES &&
	    (left_ms(j) > 1 || j->bw.written > x->call_from)) {
		x->resumes++;
		gb->resumes++;
		log_info("%s: %s; resuming at offset %" PRIu64, j->hex, why, j->bw.written);
		if (!stream_start(gb, x)) {
			gb->calls++;
			return;
		}
	}
	report(gb, x, RES_TRANSIENT, -EIO, why);
}

/* ---- backend ops ---- */

static int g_start(struct backend *b, struct job *j)
{
	struct grpc_be *gb = b->priv;
	struct gx *x;

	if (gb->no_sha256)
		return -EPROTONOSUPPORT;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->gb = gb;
	x->j = j;
	j->bpriv = x;
	if (j->size <= REV2_BATCH_BLOB_MAX && j->size <= batch_bytes(gb)) {
		x->state = GX_WAIT_BATCH;
		q_add(&gb->wait_batch, x);
	} else {
		x->state = GX_WAIT_STREAM;
		q_add(&gb->wait_stream, x);
	}
	return 0;
}

static bool can_batch(const struct grpc_be *gb)
{
	return gb->wait_batch.n && gb->batch_calls < gb->max_batch_calls;
}

/* Put waiting work on the wire, streams and batches taking turns. */
static void g_dispatch(struct grpc_be *gb)
{
	bool turn_stream = false;

	while (gb->calls < gb->max_calls && (can_batch(gb) || gb->wait_stream.n)) {
		if (gb->wait_stream.n && (turn_stream || !can_batch(gb))) {
			struct gx *x = gb->wait_stream.head;

			q_del(&gb->wait_stream, x);
			if (stream_start(gb, x)) {
				report(gb, x, RES_TRANSIENT, -ENOMEM, "cannot start ByteStream.Read");
				continue;
			}
			gb->calls++;
			gb->streams++;
		} else {
			unsigned before = gb->wait_batch.n;

			batch_send(gb);
			if (gb->wait_batch.n == before)
				break;	/* out of memory: try next turn */
		}
		turn_stream = !turn_stream;
	}
}

static void g_step(struct backend *b)
{
	struct grpc_be *gb = b->priv;
	int err;

	caps_maybe_start(gb);
	g_dispatch(gb);
	err = grpc_conn_step(gb->conn);
	if (err)
		log_err("gRPC connection: %s", strerror(-err));
	g_dispatch(gb);
}

static bool g_busy(struct backend *b)
{
	struct grpc_be *gb = b->priv;

	return gb->calls < gb->max_calls && (can_batch(gb) || gb->wait_stream.n);
}

static int g_poll_fd(struct backend *b)
{
	struct grpc_be *gb = b->priv;

	return grpc_conn_fd(gb->conn);
}

static void g_cancel(struct backend *b, struct job *j)
{
	struct grpc_be *gb = b->priv;
	struct gx *x = j->bpriv;

	if (!x)
		return;
	switch (x->state) {
	case GX_WAIT_BATCH:
		q_del(&gb->wait_batch, x);
		break;
	case GX_WAIT_STREAM:
		q_del(&gb->wait_stream, x);
		break;
	case GX_BATCH:
		for (size_t i = 0; i < x->batch->n; i++)
			if (x->batch->x[i] == x)
				x->batch->x[i] = NULL;
		break;
	case GX_STREAM:
		if (x->call) {
			grpc_call_cancel(x->call);
			gb->calls--;
		}
		break;
	}
	j->bpriv = NULL;
	free(x);
}

static void g_destroy(struct backend *b)
{
	struct grpc_be *gb = b->priv;

	if (!gb)
		return;
	if (gb->conn) {
		struct grpc_conn_stats s;

		grpc_conn_get_stats(gb->conn, &s);
		log_info("gRPC: %" PRIu64 " calls (%" PRIu64 " failed), %" PRIu64
			 " batches of %" PRIu64 " blobs, %" PRIu64 " streams, %" PRIu64
			 " resumes, %" PRIu64 " connects, %" PRIu64 " GOAWAYs",
			 s.calls_started, s.calls_failed, gb->nbatches, gb->batched_blobs,
			 gb->streams, gb->resumes, s.connects, s.goaways);
		/* Calls still open are dropped without callbacks. */
		grpc_conn_free(gb->conn);
	}
	/* Their jobs were cancelled (g_cancel) before we got here. */
	while (gb->batches) {
		struct gbatch *bt = gb->batches;

		batch_unlink(gb, bt);
		free(bt->x);
		free(bt);
	}
	grpc_md_free(&gb->md);
	free(gb->instance);
	free(gb);
	b->priv = NULL;
}

static const struct backend_ops grpc_ops = {
	.name = "grpc",
	.start = g_start,
	.step = g_step,
	.busy = g_busy,
	.cancel = g_cancel,
	.destroy = g_destroy,
	.poll_fd = g_poll_fd,
};

static void conn_log(void *ud, int level, const char *msg)
{
	(void)ud;
	switch (level) {
	case GRPC_LOG_ERR:
		log_err("gRPC: %s", msg);
		break;
	case GRPC_LOG_WARN:
		log_warn("gRPC: %s", msg);
		break;
	case GRPC_LOG_INFO:
		log_info("gRPC: %s", msg);
		break;
	default:
		log_dbg("gRPC: %s", msg);
	}
}

/*
 * GetCapabilities before serving: a server without SHA256 is refused now
 * (a configuration error); one that cannot be reached yet is asked again
 * in the background while fetches go ahead with the default limits.
 */
static int caps_probe(struct grpc_be *gb)
{
	struct grpc_status st;
	uint8_t *req, *resp;
	size_t len, rlen;
	int r;

	if (caps_req(gb, &req, &len))
		return -ENOMEM;
	grpc_unary(gb->conn, REV2_M_CAPS, req, len, CAPS_PROBE_MS, &resp, &rlen, &st);
	free(req);
	if (st.code == GRPC_OK) {
		r = caps_apply(gb, resp, rlen);
		free(resp);
		grpc_status_free(&st);
		return r;
	}
	if (st.code == GRPC_UNIMPLEMENTED) {
		log_warn("GetCapabilities is not implemented by the server; "
			 "assuming SHA256 and a %" PRIu64 "-byte batch limit",
			 REV2_MSG_LIMIT - REV2_BATCH_SLACK);
		gb->have_caps = true;
		gb->caps.sha256 = true;
		gb->caps.max_batch = REV2_MSG_LIMIT - REV2_BATCH_SLACK;
	} else {
		log_warn("GetCapabilities: %s: %s; asking again in the background",
			 grpc_code_name(st.code), st.message);
		gb->caps_next_ms = mono_ms() + CAPS_RETRY_MS;
	}
	grpc_status_free(&st);
	return 0;
}

int backend_grpc_init(struct backend *b, const char *url, const struct fetch_config *cfg)
{
	struct grpc_be *gb = calloc(1, sizeof(*gb));
	struct grpc_conn_opts co = { 0 };
	char err[512], shown[4200];
	int r;

	if (!gb)
		return -ENOMEM;
	gb->b = b;
	gb->instance = strdup(cfg->instance ? cfg->instance : "");
	if (!gb->instance) {
		free(gb);
		return -ENOMEM;
	}
	if (strpbrk(gb->instance, " \t\r\n?#") || strlen(gb->instance) > 1024) {
		log_err("--instance '%s': bad instance name", gb->instance);
		r = -EINVAL;
		goto fail;
	}
	if (cfg->auth_header_file) {
		r = grpc_md_load_file(&gb->md, cfg->auth_header_file, err, sizeof(err));
		if (r) {
			log_err("--auth-header-file %s: %s", cfg->auth_header_file, err);
			goto fail;
		}
	}
	co.url = url;
	co.ca_file = cfg->ca_file;
	co.cert_file = cfg->client_cert;
	co.key_file = cfg->client_key;
	co.md = &gb->md;
	co.log = conn_log;
	gb->conn = grpc_conn_new(&co, err, sizeof(err));
	if (!gb->conn) {
		url_redact(url, shown, sizeof(shown));
		log_err("--cas %s: %s", shown, err);
		r = -EINVAL;
		goto fail;
	}
	gb->max_calls = cfg->jobs;
	gb->idle_ms = (int64_t)cfg->timeout_s * 1000;
	gb->max_batch_calls = cfg->jobs / 4 > 2 ? cfg->jobs / 4 : 2;
	b->priv = gb;
	b->ops = &grpc_ops;
	b->max_active = cfg->jobs * ACTIVE_PER_JOB > MAX_ACTIVE ? MAX_ACTIVE :
		cfg->jobs * ACTIVE_PER_JOB;
	r = caps_probe(gb);
	if (r) {
		g_destroy(b);
		b->ops = NULL;
		return r;
	}
	url_redact(url, shown, sizeof(shown));
	log_info("CAS: %s (REv2%s%s), %u calls in parallel, timeout %u s%s%s", shown,
		 *gb->instance ? ", instance " : "", gb->instance, cfg->jobs, cfg->timeout_s,
		 cfg->ca_file ? ", CA file " : "", cfg->ca_file ? cfg->ca_file : "");
	return 0;
fail:
	grpc_md_free(&gb->md);
	free(gb->instance);
	free(gb);
	return r;
}
