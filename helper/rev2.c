// SPDX-License-Identifier: GPL-2.0
/*
 * casfs userspace: REv2 requests and responses (protobuf-c), the mapping
 * of gRPC statuses to errors, and the blocking client casfsctl uses.
 * Every byte of a response is treated as hostile: digests are checked for
 * form, blob bytes are verified against their digest before they are
 * returned, and nothing is trusted for its declared length.
 */
#include "rev2_pb.h"
#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_INFO_URL "type.googleapis.com/google.rpc.RetryInfo"
#define RETRY_AFTER_MAX_MS 60000
#define CALL_ATTEMPTS 5		/* blocking calls: tries for a transient failure */
#define DEFAULT_TIMEOUT_MS 60000

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ---- digests ---- */

int rev2_digest_from_pb(const PbDigest *pb, struct rev2_digest *out)
{
	if (!pb || !pb->hash || strlen(pb->hash) != HEX_LEN ||
	    !hex_is_blob_name(pb->hash) || pb->size_bytes < 0 ||
	    (uint64_t)pb->size_bytes > CASFS_MAX_BLOB_SIZE)
		return -EINVAL;
	if (hex_decode(pb->hash, HEX_LEN, out->sha256))
		return -EINVAL;
	out->size = (uint64_t)pb->size_bytes;
	return 0;
}

void rev2_digest_to_pb(const struct rev2_digest *d, PbDigest *pb, char hex[HEX_LEN + 1])
{
	PbDigest init = PB_DIGEST_INIT;

	*pb = init;
	hex_encode(d->sha256, hex);
	pb->hash = hex;
	pb->size_bytes = (int64_t)d->size;
}

int rev2_parse_digest(const char *s, struct rev2_digest *d)
{
	const char *sep;
	uint64_t size;

	if (!s)
		return -EINVAL;
	sep = s + strcspn(s, "/ ");
	if (sep - s != HEX_LEN || !*sep || hex_decode(s, HEX_LEN, d->sha256))
		return -EINVAL;
	if (parse_u64(sep + 1, CASFS_MAX_BLOB_SIZE, &size))
		return -EINVAL;
	d->size = size;
	return 0;
}

int rev2_resource_name(char *out, size_t len, const char *instance,
		       const struct rev2_digest *d)
{
	char hex[HEX_LEN + 1];
	int n;

	hex_encode(d->sha256, hex);
	if (instance && *instance)
		n = snprintf(out, len, "%s/blobs/%s/%" PRIu64, instance, hex, d->size);
	else
		n = snprintf(out, len, "blobs/%s/%" PRIu64, hex, d->size);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- statuses ---- */

static uint64_t retry_after(const uint8_t *details, size_t len)
{
	PbStatus *st;
	uint64_t ms = 0;

	if (!details || !len)
		return 0;
	st = google__rpc__status__unpack(NULL, len, details);
	if (!st)
		return 0;
	for (size_t i = 0; i < st->n_details; i++) {
		Google__Protobuf__Any *a = st->details[i];
		PbRetryInfo *ri;

		if (!a->type_url || strcmp(a->type_url, RETRY_INFO_URL))
			continue;
		ri = google__rpc__retry_info__unpack(NULL, a->value.len, a->value.data);
		if (!ri)
			continue;
		if (ri->retry_delay && ri->retry_delay->seconds >= 0 &&
		    ri->retry_delay->nanos >= 0) {
			int64_t s = ri->retry_delay->seconds;

			ms = s > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS :
				(uint64_t)s * 1000 + (uint64_t)ri->retry_delay->nanos / 1000000;
			if (ms > RETRY_AFTER_MAX_MS)
				ms = RETRY_AFTER_MAX_MS;
		}
		google__rpc__retry_info__free_unpacked(ri, NULL);
		break;
	}
	google__rpc__status__free_unpacked(st, NULL);
	return ms;
}

struct rev2_err rev2_map_status(int code, bool transport,
				const uint8_t *details, size_t details_len)
{
	struct rev2_err r = { .err = -EIO, .transient = true };

	switch (code) {
	case GRPC_OK:
		r.err = 0;
		r.transient = false;
		return r;
	case GRPC_NOT_FOUND:
		r.err = -ENOENT;
		r.transient = false;
		break;
	case GRPC_PERMISSION_DENIED:
	case GRPC_UNAUTHENTICATED:
		r.err = -EACCES;
		r.transient = false;
		break;
	case GRPC_INVALID_ARGUMENT:
	case GRPC_FAILED_PRECONDITION:
	case GRPC_OUT_OF_RANGE:
		r.err = -EINVAL;
		r.transient = false;
		break;
	case GRPC_UNIMPLEMENTED:
		r.err = -EPROTONOSUPPORT;
		r.transient = false;
		break;
	case GRPC_DEADLINE_EXCEEDED:
		r.err = -ETIMEDOUT;
		break;
	case GRPC_UNAVAILABLE:
	case GRPC_RESOURCE_EXHAUSTED:
		r.err = -EAGAIN;
		break;
	default:	/* ABORTED, INTERNAL, UNKNOWN, CANCELLED, DATA_LOSS, ... */
		r.err = -EIO;
		break;
	}
	/* A transport failure (reset, GOAWAY, a dropped connection) says
	 * nothing about the request itself: always worth another try. */
	if (transport && code != GRPC_DEADLINE_EXCEEDED) {
		r.transient = true;
		if (r.err != -EAGAIN)
			r.err = -ECONNRESET;
	}
	r.retry_after_ms = retry_after(details, details_len);
	return r;
}

int rev2_parse_caps(const uint8_t *msg, size_t len, struct rev2_caps *caps)
{
	PbCaps *c = build__bazel__remote__execution__v2__server_capabilities__unpack(NULL, len, msg);
	uint64_t lim = REV2_MSG_LIMIT;

	memset(caps, 0, sizeof(*caps));
	if (!c)
		return -EINVAL;
	if (c->cache_capabilities) {
		Build__Bazel__Remote__Execution__V2__CacheCapabilities *cc = c->cache_capabilities;

		for (size_t i = 0; i < cc->n_digest_functions; i++)
			if (cc->digest_functions[i] == PB_DIGEST_FN_SHA256)
				caps->sha256 = true;
		for (size_t i = 0; i < cc->n_supported_compressors; i++)
			if (cc->supported_compressors[i] ==
			    BUILD__BAZEL__REMOTE__EXECUTION__V2__COMPRESSOR__VALUE__ZSTD)
				caps->zstd = true;
		if (cc->max_batch_total_size_bytes > 0 &&
		    (uint64_t)cc->max_batch_total_size_bytes < lim)
			lim = (uint64_t)cc->max_batch_total_size_bytes;
	}
	/*
	 * The server's limit counts blob bytes; the message also carries a
	 * digest and status per blob. Keep clear of both limits.
	 */
	caps->max_batch = lim > 2 * REV2_BATCH_SLACK ? lim - REV2_BATCH_SLACK : lim / 2;
	if (c->high_api_version) {
		caps->api_major = (uint32_t)c->high_api_version->major;
		caps->api_minor = (uint32_t)c->high_api_version->minor;
	}
	build__bazel__remote__execution__v2__server_capabilities__free_unpacked(c, NULL);
	return 0;
}

/* ---- requests ---- */

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	*out = malloc(n ? n : 1);
	if (!*out)
		return -ENOMEM;
	*len = protobuf_c_message_pack(m, *out);
	return 0;
}

int rev2_pack_batch_read(const char *instance, const struct rev2_digest *d,
			 size_t n, uint8_t **out, size_t *len)
{
	PbBatchReadReq req = BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_READ_BLOBS_REQUEST__INIT;
	PbDigest *pd = calloc(n ? n : 1, sizeof(*pd));
	PbDigest **pp = calloc(n ? n : 1, sizeof(*pp));
	char (*hex)[HEX_LEN + 1] = calloc(n ? n : 1, sizeof(*hex));
	int r = -ENOMEM;

	if (!pd || !pp || !hex)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rev2_digest_to_pb(&d[i], &pd[i], hex[i]);
		pp[i] = &pd[i];
	}
	req.instance_name = (char *)(instance ? instance : "");
	req.n_digests = n;
	req.digests = pp;
	req.digest_function = PB_DIGEST_FN_SHA256;
	r = pack(&req.base, out, len);
out:
	free(pd);
	free(pp);
	free(hex);
	return r;
}

int rev2_pack_bs_read(const char *instance, const struct rev2_digest *d,
		      uint64_t offset, uint8_t **out, size_t *len)
{
	PbBsReadReq req = GOOGLE__BYTESTREAM__READ_REQUEST__INIT;
	char name[4096 + 128];
	int r = rev2_resource_name(name, sizeof(name), instance, d);

	if (r)
		return r;
	req.resource_name = name;
	req.read_offset = (int64_t)offset;
	req.read_limit = 0;	/* to the end */
	return pack(&req.base, out, len);
}

/* ---- responses ---- */

int rev2_parse_batch_read(const uint8_t *msg, size_t len, rev2_blob_fn fn, void *ud)
{
	PbBatchReadResp *resp =
		build__bazel__remote__execution__v2__batch_read_blobs_response__unpack(NULL, len, msg);
	int r = 0;

	if (!resp)
		return -EINVAL;
	for (size_t i = 0; i < resp->n_responses && !r; i++) {
		PbBatchReadEntry *e = resp->responses[i];
		struct rev2_digest d;
		int code = e->status ? e->status->code : GRPC_OK;

		if (rev2_digest_from_pb(e->digest, &d)) {
			r = -EINVAL;
			break;
		}
		if (e->compressor != BUILD__BAZEL__REMOTE__EXECUTION__V2__COMPRESSOR__VALUE__IDENTITY)
			code = code ? code : GRPC_UNIMPLEMENTED;	/* none asked for */
		r = fn(ud, &d, code, e->status ? e->status->message : NULL,
		       e->data.data, e->data.len);
	}
	build__bazel__remote__execution__v2__batch_read_blobs_response__free_unpacked(resp, NULL);
	return r;
}

/* One protobuf varint at p[*i..n); 0 or -EINVAL. */
static int wire_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*i >= n)
			return -EINVAL;
		b = p[(*i)++];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -EINVAL;
}

int rev2_parse_bs_chunk(const uint8_t *msg, size_t len, const uint8_t **data, size_t *dlen)
{
	size_t i = 0;

	*data = NULL;
	*dlen = 0;
	while (i < len) {
		uint64_t tag, v;

		if (wire_varint(msg, len, &i, &tag) || (tag >> 3) == 0)
			return -EINVAL;
		switch (tag & 7) {
		case 0:
			if (wire_varint(msg, len, &i, &v))
				return -EINVAL;
			break;
		case 1:
			if (len - i < 8)
				return -EINVAL;
			i += 8;
			break;
		case 5:
			if (len - i < 4)
				return -EINVAL;
			i += 4;
			break;
		case 2:
			if (wire_varint(msg, len, &i, &v) || v > len - i)
				return -EINVAL;
			if ((tag >> 3) == 10) {	/* bytes data = 10; the last one wins */
				*data = msg + i;
				*dlen = (size_t)v;
			}
			i += (size_t)v;
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- blocking client ---- */

struct rev2 {
	struct grpc_conn *conn;
	struct grpc_metadata md;
	char *instance;
	int64_t timeout_ms;
	bool have_caps;
	struct rev2_caps caps;
};

static void conn_log(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= GRPC_LOG_WARN)
		log_msg(level == GRPC_LOG_ERR ? LOG_LVL_ERR : LOG_LVL_WARN, "%s", msg);
	else
		log_dbg("%s", msg);
}

int rev2_open(struct rev2 **out, const struct rev2_opts *o, char *err, size_t errlen)
{
	struct rev2 *c = calloc(1, sizeof(*c));
	struct grpc_conn_opts co = { 0 };
	int r;

	if (!c)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (!grpc_url_ok(o->url)) {
		free(c);
		return fail(err, errlen, -EINVAL, "%s: not a grpc://, grpcs:// or unix: URL",
			    o->url ? o->url : "(no URL)");
	}
	c->instance = strdup(o->instance ? o->instance : "");
	if (!c->instance) {
		free(c);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	if (o->header_file) {
		char why[256];

		r = grpc_md_load_file(&c->md, o->header_file, why, sizeof(why));
		if (r) {
			rev2_close(c);
			return fail(err, errlen, r, "%s: %s", o->header_file, why);
		}
	}
	co.url = o->url;
	co.ca_file = o->ca_file;
	co.cert_file = o->cert_file;
	co.key_file = o->key_file;
	co.md = &c->md;
	co.log = conn_log;
	c->conn = grpc_conn_new(&co, err, errlen);
	if (!c->conn) {
		rev2_close(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

void rev2_close(struct rev2 *c)
{
	if (!c)
		return;
	if (c->conn)
		grpc_conn_free(c->conn);
	grpc_md_free(&c->md);
	free(c->instance);
	free(c);
}

const char *rev2_instance(const struct rev2 *c)
{
	return c->instance;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Backoff before try number `attempt` (2, 3, ...): 100 ms doubling, or
 * the server's RetryInfo if it asked for longer. */
static void backoff(unsigned attempt, uint64_t retry_after_ms)
{
	uint64_t ms = 100ull << (attempt - 2);

	if (ms > 2000)
		ms = 2000;
	if (retry_after_ms > ms)
		ms = retry_after_ms;
	sleep_ms(ms);
}

/*
 * A finished call's status as our error: 0, or a negative errno with
 * "WHAT: CODE: message" in err. *transient and *after say whether and when
 * to try again.
 */
static int call_error(const char *what, const struct grpc_status *st, bool *transient,
		      uint64_t *after, char *err, size_t errlen)
{
	struct rev2_err e = rev2_map_status(st->code, st->transport,
					    st->details, st->details_len);

	*transient = e.transient;
	*after = e.retry_after_ms;
	if (!e.err)
		return 0;
	return fail(err, errlen, e.err, "%s: %s: %s", what, grpc_code_name(st->code),
		    st->message ? st->message : "");
}

/* A unary call, retried while transient. */
static int unary(struct rev2 *c, const char *method, const char *what,
		 const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
		 char *err, size_t errlen)
{
	int r = -EIO;

	for (unsigned attempt = 1; attempt <= CALL_ATTEMPTS; attempt++) {
		struct grpc_status st;
		bool transient;
		uint64_t after;

		grpc_unary(c->conn, method, req, req_len, c->timeout_ms, resp, resp_len, &st);
		r = call_error(what, &st, &transient, &after, err, errlen);
		grpc_status_free(&st);
		if (!r || !transient)
			return r;
		if (attempt < CALL_ATTEMPTS) {
			log_dbg("%s; trying again", err);
			backoff(attempt + 1, after);
		}
	}
	return r;
}

int rev2_get_caps(struct rev2 *c, struct rev2_caps *caps, char *err, size_t errlen)
{
	PbCapsReq req = BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_CAPABILITIES_REQUEST__INIT;
	uint8_t *buf, *resp;
	size_t len, rlen;
	int r;

	if (c->have_caps) {
		*caps = c->caps;
		return 0;
	}
	req.instance_name = c->instance;
	r = pack(&req.base, &buf, &len);
	if (r)
		return fail(err, errlen, r, "out of memory");
	r = unary(c, REV2_M_CAPS, "GetCapabilities", buf, len, &resp, &rlen, err, errlen);
	free(buf);
	if (r)
		return r;
	r = rev2_parse_caps(resp, rlen, &c->caps);
	free(resp);
	if (r)
		return fail(err, errlen, r, "GetCapabilities: malformed ServerCapabilities");
	if (!c->caps.sha256)
		return fail(err, errlen, -EPROTONOSUPPORT,
			    "the server does not offer SHA256 digests (casfs needs them)");
	c->have_caps = true;
	*caps = c->caps;
	return 0;
}

/* Batch limit: the server's if it told us, else the safe default. */
static uint64_t batch_limit(struct rev2 *c)
{
	struct rev2_caps caps;
	char why[256];

	if (rev2_get_caps(c, &caps, why, sizeof(why)))
		return REV2_MSG_LIMIT - REV2_BATCH_SLACK;
	return caps.max_batch;
}

struct one_blob {
	const struct rev2_digest *want;
	uint8_t *buf;
	size_t len;
	int code;
	char msg[200];
	bool seen;
};

static int one_blob_fn(void *ud, const struct rev2_digest *d, int code,
		       const char *message, const uint8_t *data, size_t len)
{
	struct one_blob *b = ud;

	if (memcmp(d->sha256, b->want->sha256, CASFS_SHA256_LEN) || d->size != b->want->size)
		return 0;	/* not what we asked for: ignore */
	if (b->seen)
		return 0;
	b->seen = true;
	b->code = code;
	snprintf(b->msg, sizeof(b->msg), "%s", message ? message : "");
	if (code)
		return 0;
	b->buf = malloc(len ? len : 1);
	if (!b->buf)
		return -ENOMEM;
	memcpy(b->buf, data, len);
	b->len = len;
	return 0;
}

static int read_batch(struct rev2 *c, const struct rev2_digest *d, uint8_t **buf,
		      size_t *len, char *err, size_t errlen)
{
	struct one_blob b = { .want = d };
	uint8_t *req, *resp;
	size_t rlen, resp_len;
	int r = rev2_pack_batch_read(c->instance, d, 1, &req, &rlen);

	if (r)
		return fail(err, errlen, r, "out of memory");
	r = unary(c, REV2_M_BATCH_READ, "BatchReadBlobs", req, rlen, &resp, &resp_len,
		  err, errlen);
	free(req);
	if (r)
		return r;
	r = rev2_parse_batch_read(resp, resp_len, one_blob_fn, &b);
	free(resp);
	if (r) {
		free(b.buf);
		return fail(err, errlen, r == -ENOMEM ? r : -EIO,
			    "BatchReadBlobs: malformed response");
	}
	if (!b.seen)
		return fail(err, errlen, -EIO, "BatchReadBlobs: the blob is not in the response");
	if (b.code) {
		struct rev2_err e = rev2_map_status(b.code, false, NULL, 0);

		return fail(err, errlen, e.err, "BatchReadBlobs: %s: %s",
			    grpc_code_name(b.code), b.msg);
	}
	*buf = b.buf;
	*len = b.len;
	return 0;
}

struct bs_mem {
	uint8_t *buf;
	uint64_t size, have;
	bool overflow, bad;
};

static int bs_mem_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct bs_mem *b = ud;
	const uint8_t *data;
	size_t dlen;

	if (compressed || rev2_parse_bs_chunk(m, n, &data, &dlen)) {
		b->bad = true;
		return 1;
	}
	if (dlen > b->size - b->have) {
		b->overflow = true;
		return 1;
	}
	memcpy(b->buf + b->have, data, dlen);
	b->have += dlen;
	return 0;
}

/* ByteStream.Read into memory, resuming at read_offset after a break. */
static int read_stream(struct rev2 *c, const struct rev2_digest *d, uint8_t **buf,
		       size_t *len, char *err, size_t errlen)
{
	struct bs_mem b = { .size = d->size };
	int r = -EIO;
	unsigned fails = 0;

	b.buf = malloc(d->size ? d->size : 1);
	if (!b.buf)
		return fail(err, errlen, -ENOMEM, "out of memory for %" PRIu64 " bytes", d->size);
	while (fails < CALL_ATTEMPTS) {
		struct grpc_status st;
		struct grpc_call_opts o = {
			.method = REV2_M_BS_READ, .timeout_ms = c->timeout_ms,
			.on_msg = bs_mem_msg, .ud = &b,
		};
		uint64_t before = b.have, after;
		uint8_t *req;
		size_t rlen;
		bool transient;

		r = rev2_pack_bs_read(c->instance, d, b.have, &req, &rlen);
		if (r) {
			fail(err, errlen, r, "ByteStream.Read: cannot encode the request");
			break;
		}
		o.req = req;
		o.req_len = rlen;
		grpc_call_run(c->conn, &o, &st);
		free(req);
		if (b.bad || b.overflow) {
			grpc_status_free(&st);
			r = fail(err, errlen, -EIO, "ByteStream.Read: %s",
				 b.bad ? "malformed response" : "more bytes than the blob's size");
			break;
		}
		r = call_error("ByteStream.Read", &st, &transient, &after, err, errlen);
		grpc_status_free(&st);
		if (!r && b.have == b.size)
			break;
		if (!r) {	/* a clean end, but short: resume */
			transient = true;
			after = 0;
			r = fail(err, errlen, -EIO, "ByteStream.Read: stream ended at %" PRIu64
				 " of %" PRIu64 " bytes", b.have, b.size);
		}
		if (!transient)
			break;
		if (b.have == before)	/* no progress: count it against us */
			fails++;
		if (fails < CALL_ATTEMPTS) {
			log_dbg("%s; resuming at %" PRIu64, err, b.have);
			backoff(fails + 2, after);
		}
	}
	if (r) {
		free(b.buf);
		return r;
	}
	*buf = b.buf;
	*len = (size_t)b.size;
	return 0;
}

int rev2_read_blob(struct rev2 *c, const struct rev2_digest *d, size_t max,
		   uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	uint8_t got[CASFS_SHA256_LEN];
	const char *why;
	int r;

	*buf = NULL;
	*len = 0;
	if (d->size > max)
		return fail(err, errlen, -EFBIG, "blob of %" PRIu64 " bytes is over the %zu limit",
			    d->size, max);
	if (d->size == 0) {
		*buf = malloc(1);
		if (!*buf)
			return fail(err, errlen, -ENOMEM, "out of memory");
	} else if (d->size <= batch_limit(c)) {
		r = read_batch(c, d, buf, len, err, errlen);
		if (r)
			return r;
	} else {
		r = read_stream(c, d, buf, len, err, errlen);
		if (r)
			return r;
	}
	if (sha256_buf(*buf, *len, got)) {
		free(*buf);
		*buf = NULL;
		return fail(err, errlen, -ENOMEM, "sha256: out of memory");
	}
	why = verify_check(d->size, d->sha256, *len, got);
	if (why) {
		char hex[HEX_LEN + 1];

		hex_encode(d->sha256, hex);
		free(*buf);
		*buf = NULL;
		*len = 0;
		return fail(err, errlen, -EIO, "%s/%" PRIu64 ": %s", hex, d->size, why);
	}
	return 0;
}

int rev2_find_missing(struct rev2 *c, const struct rev2_digest *d, size_t n,
		      bool *missing, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		missing[i] = false;
	for (size_t base = 0; base < n; base += REV2_FIND_MISSING_MAX) {
		size_t cnt = n - base < REV2_FIND_MISSING_MAX ? n - base : REV2_FIND_MISSING_MAX;
		PbFindMissingReq req =
			BUILD__BAZEL__REMOTE__EXECUTION__V2__FIND_MISSING_BLOBS_REQUEST__INIT;
		PbFindMissingResp *resp;
		PbDigest *pd = calloc(cnt, sizeof(*pd));
		PbDigest **pp = calloc(cnt, sizeof(*pp));
		char (*hex)[HEX_LEN + 1] = calloc(cnt, sizeof(*hex));
		uint8_t *buf = NULL, *rbuf;
		size_t len, rlen;
		int r = -ENOMEM;

		if (pd && pp && hex) {
			for (size_t i = 0; i < cnt; i++) {
				rev2_digest_to_pb(&d[base + i], &pd[i], hex[i]);
				pp[i] = &pd[i];
			}
			req.instance_name = c->instance;
			req.n_blob_digests = cnt;
			req.blob_digests = pp;
			req.digest_function = PB_DIGEST_FN_SHA256;
			r = pack(&req.base, &buf, &len);
		}
		free(pd);
		free(pp);
		free(hex);
		if (r)
			return fail(err, errlen, r, "out of memory");
		r = unary(c, REV2_M_FIND_MISSING, "FindMissingBlobs", buf, len, &rbuf, &rlen,
			  err, errlen);
		free(buf);
		if (r)
			return r;
		resp = build__bazel__remote__execution__v2__find_missing_blobs_response__unpack(
			NULL, rlen, rbuf);
		free(rbuf);
		if (!resp)
			return fail(err, errlen, -EIO, "FindMissingBlobs: malformed response");
		for (size_t k = 0; k < resp->n_missing_blob_digests; k++) {
			struct rev2_digest m;

			if (rev2_digest_from_pb(resp->missing_blob_digests[k], &m))
				continue;	/* not one of ours, whatever it is */
			for (size_t i = base; i < base + cnt; i++)
				if (d[i].size == m.size &&
				    !memcmp(d[i].sha256, m.sha256, CASFS_SHA256_LEN))
					missing[i] = true;
		}
		build__bazel__remote__execution__v2__find_missing_blobs_response__free_unpacked(
			resp, NULL);
	}
	return 0;
}

struct tree_pages {
	int (*page)(void *ud, const uint8_t *msg, size_t len);
	void *ud;
	int cb_ret;
	bool bad;
	char *token;		/* next_page_token of the last page seen */
	uint64_t pages;
};

static int tree_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct tree_pages *t = ud;
	PbGetTreeResp *resp;

	if (compressed) {
		t->bad = true;
		return 1;
	}
	/* Only the token is read here; the caller decodes the directories. */
	resp = build__bazel__remote__execution__v2__get_tree_response__unpack(NULL, n, m);
	if (!resp) {
		t->bad = true;
		return 1;
	}
	free(t->token);
	t->token = strdup(resp->next_page_token ? resp->next_page_token : "");
	build__bazel__remote__execution__v2__get_tree_response__free_unpacked(resp, NULL);
	if (!t->token) {
		t->cb_ret = -ENOMEM;
		return 1;
	}
	t->pages++;
	t->cb_ret = t->page(t->ud, m, n);
	return t->cb_ret ? 1 : 0;
}

#define TREE_MAX_PAGES 1000000

int rev2_get_tree(struct rev2 *c, const struct rev2_digest *root,
		  int (*page)(void *ud, const uint8_t *msg, size_t len), void *ud,
		  char *err, size_t errlen)
{
	struct tree_pages t = { .page = page, .ud = ud };
	char hex[HEX_LEN + 1];
	char *cur = NULL;	/* page_token of the call being made */
	unsigned fails = 0;
	int r = 0;

	for (;;) {
		PbGetTreeReq req = BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_TREE_REQUEST__INIT;
		PbDigest pd;
		struct grpc_status st;
		struct grpc_call_opts o = {
			.method = REV2_M_GET_TREE, .timeout_ms = c->timeout_ms,
			.on_msg = tree_msg, .ud = &t,
		};
		uint64_t pages_before = t.pages, after;
		uint8_t *buf;
		size_t len;
		bool transient;

		rev2_digest_to_pb(root, &pd, hex);
		req.instance_name = c->instance;
		req.root_digest = &pd;
		req.page_token = cur ? cur : (char *)"";
		/* A server's own default may not fit one 4 MiB message. */
		req.page_size = REV2_TREE_PAGE_SIZE;
		req.digest_function = PB_DIGEST_FN_SHA256;
		r = pack(&req.base, &buf, &len);
		if (r) {
			fail(err, errlen, r, "out of memory");
			break;
		}
		o.req = buf;
		o.req_len = len;
		grpc_call_run(c->conn, &o, &st);
		free(buf);
		if (t.cb_ret) {
			grpc_status_free(&st);
			r = t.cb_ret;
			if (r == -ENOMEM)
				fail(err, errlen, r, "out of memory");
			break;
		}
		if (t.bad) {
			grpc_status_free(&st);
			r = fail(err, errlen, -EIO, "GetTree: malformed GetTreeResponse");
			break;
		}
		r = call_error("GetTree", &st, &transient, &after, err, errlen);
		grpc_status_free(&st);
		if (r) {
			if (!transient || ++fails >= CALL_ATTEMPTS)
				break;
			/* Resume after the last page we got (or from the start). */
			free(cur);
			cur = t.pages ? strdup(t.token) : NULL;
			if (t.pages && !cur) {
				r = fail(err, errlen, -ENOMEM, "out of memory");
				break;
			}
			backoff(fails + 1, after);
			continue;
		}
		if (t.pages == pages_before && t.pages)
			fails++;	/* an empty call: do not loop forever */
		if (!t.pages || !t.token || !*t.token)
			break;	/* no pages at all (an empty answer), or the last */
		if (t.pages > TREE_MAX_PAGES || fails >= CALL_ATTEMPTS) {
			r = fail(err, errlen, -EIO, "GetTree: too many pages");
			break;
		}
		if (cur && !strcmp(cur, t.token)) {
			r = fail(err, errlen, -EIO, "GetTree: the server repeats page token '%s'",
				 cur);
			break;
		}
		free(cur);
		cur = strdup(t.token);
		if (!cur) {
			r = fail(err, errlen, -ENOMEM, "out of memory");
			break;
		}
	}
	free(cur);
	free(t.token);
	return r;
}

int rev2_get_action_result(struct rev2 *c, const struct rev2_digest *action,
			   uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	PbGetAcReq req = BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_ACTION_RESULT_REQUEST__INIT;
	PbDigest pd;
	char hex[HEX_LEN + 1];
	uint8_t *rb;
	size_t rl;
	int r;

	*buf = NULL;
	*len = 0;
	rev2_digest_to_pb(action, &pd, hex);
	req.instance_name = c->instance;
	req.action_digest = &pd;
	req.digest_function = PB_DIGEST_FN_SHA256;
	r = pack(&req.base, &rb, &rl);
	if (r)
		return fail(err, errlen, r, "out of memory");
	r = unary(c, REV2_M_GET_AC, "GetActionResult", rb, rl, buf, len, err, errlen);
	free(rb);
	return r;
}
