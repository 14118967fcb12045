// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: rev2.c's pure half: resource names, digests, the status map
 * (RetryInfo in grpc-status-details-bin), and the decoders of the
 * responses the backend parses itself, fed well-formed and hostile bytes.
 */
#include "t.h"
#include "../rev2_pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char H[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void t_names(void)
{
	struct rev2_digest d;
	char name[300];

	CHECK_INT(rev2_parse_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0", &d), 0);
	CHECK_INT(d.size, 0);
	CHECK_INT(rev2_parse_digest("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 12", &d), 0);
	CHECK_INT(d.size, 12);
	CHECK_INT(rev2_parse_digest("e3b0/0", &d), -EINVAL);
	CHECK_INT(rev2_parse_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &d), -EINVAL);
	CHECK_INT(rev2_parse_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/-1", &d), -EINVAL);
	CHECK_INT(rev2_parse_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/01", &d), -EINVAL);
	CHECK_INT(rev2_parse_digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/99999999999999999999", &d), -EINVAL);
	CHECK_INT(rev2_parse_digest(NULL, &d), -EINVAL);
	d.size = 7;
	CHECK_INT(rev2_resource_name(name, sizeof(name), "", &d), 0);
	CHECK_STR(name, "blobs/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/7");
	CHECK_INT(rev2_resource_name(name, sizeof(name), "main/x", &d), 0);
	CHECK_STR(name, "main/x/blobs/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/7");
	CHECK_INT(rev2_resource_name(name, 20, "main", &d), -ENAMETOOLONG);
}

static void t_digest_from_pb(void)
{
	PbDigest pb = PB_DIGEST_INIT;
	struct rev2_digest d;
	char upper[65];

	pb.hash = (char *)H;
	pb.size_bytes = 5;
	CHECK_INT(rev2_digest_from_pb(&pb, &d), 0);
	CHECK_INT(d.size, 5);
	pb.size_bytes = -1;
	CHECK_INT(rev2_digest_from_pb(&pb, &d), -EINVAL);
	pb.size_bytes = (int64_t)CASFS_MAX_BLOB_SIZE + 1;
	CHECK_INT(rev2_digest_from_pb(&pb, &d), -EINVAL);
	pb.size_bytes = 1;
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(H[i] >= 'a' && H[i] <= 'f' ? H[i] - 32 : H[i]);
	pb.hash = upper;	/* the spec wants lowercase */
	CHECK_INT(rev2_digest_from_pb(&pb, &d), -EINVAL);
	pb.hash = (char *)"abc";
	CHECK_INT(rev2_digest_from_pb(&pb, &d), -EINVAL);
	pb.hash = NULL;
	CHECK_INT(rev2_digest_from_pb(&pb, &d), -EINVAL);
	CHECK_INT(rev2_digest_from_pb(NULL, &d), -EINVAL);
}

/* A google.rpc.Status with a RetryInfo of (s, ns), packed into *out. */
static size_t status_with_retry(int64_t s, int32_t ns, uint8_t **out)
{
	Google__Protobuf__Duration dur = GOOGLE__PROTOBUF__DURATION__INIT;
	PbRetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT, *anys[1] = { &any };
	PbStatus st = GOOGLE__RPC__STATUS__INIT;
	uint8_t ribuf[64];
	size_t n;

	dur.seconds = s;
	dur.nanos = ns;
	ri.retry_delay = &dur;
	any.type_url = (char *)"type.googleapis.com/google.rpc.RetryInfo";
	any.value.len = google__rpc__retry_info__pack(&ri, ribuf);
	any.value.data = ribuf;
	st.code = GRPC_UNAVAILABLE;
	st.n_details = 1;
	st.details = anys;
	n = google__rpc__status__get_packed_size(&st);
	*out = malloc(n);
	return google__rpc__status__pack(&st, *out);
}

static void t_status_map(void)
{
	struct rev2_err e;
	uint8_t *det;
	size_t n;

	e = rev2_map_status(GRPC_OK, false, NULL, 0);
	CHECK_INT(e.err, 0);
	e = rev2_map_status(GRPC_NOT_FOUND, false, NULL, 0);
	CHECK_INT(e.err, -ENOENT);
	CHECK(!e.transient);
	e = rev2_map_status(GRPC_PERMISSION_DENIED, false, NULL, 0);
	CHECK_INT(e.err, -EACCES);
	e = rev2_map_status(GRPC_UNAUTHENTICATED, false, NULL, 0);
	CHECK_INT(e.err, -EACCES);
	e = rev2_map_status(GRPC_INVALID_ARGUMENT, false, NULL, 0);
	CHECK_INT(e.err, -EINVAL);
	CHECK(!e.transient);
	e = rev2_map_status(GRPC_UNIMPLEMENTED, false, NULL, 0);
	CHECK_INT(e.err, -EPROTONOSUPPORT);
	e = rev2_map_status(GRPC_DEADLINE_EXCEEDED, true, NULL, 0);
	CHECK_INT(e.err, -ETIMEDOUT);
	CHECK(e.transient);
	e = rev2_map_status(GRPC_RESOURCE_EXHAUSTED, false, NULL, 0);
	CHECK_INT(e.err, -EAGAIN);
	CHECK(e.transient);
	/* a transport failure is worth retrying whatever its code */
	e = rev2_map_status(GRPC_INTERNAL, true, NULL, 0);
	CHECK_INT(e.err, -ECONNRESET);
	CHECK(e.transient);

	n = status_with_retry(1, 250000000, &det);
	e = rev2_map_status(GRPC_UNAVAILABLE, false, det, n);
	CHECK_INT(e.retry_after_ms, 1250);
	free(det);
	n = status_with_retry(3600, 0, &det);	/* capped */
	e = rev2_map_status(GRPC_UNAVAILABLE, false, det, n);
	CHECK_INT(e.retry_after_ms, 60000);
	free(det);
	n = status_with_retry(-5, 0, &det);	/* nonsense: ignored */
	e = rev2_map_status(GRPC_UNAVAILABLE, false, det, n);
	CHECK_INT(e.retry_after_ms, 0);
	free(det);
	e = rev2_map_status(GRPC_UNAVAILABLE, false, (const uint8_t *)"\xff\xff\xff", 3);
	CHECK_INT(e.retry_after_ms, 0);	/* garbage details */
}

static void t_bs_chunk(void)
{
	/* field 10 (bytes) "abc", an unknown varint field 3, fixed32 field 4 */
	static const uint8_t ok[] = { 0x52, 3, 'a', 'b', 'c', 0x18, 0x96, 0x01,
				      0x25, 1, 2, 3, 4 };
	static const uint8_t overlong[] = { 0x52, 9, 'a' };
	static const uint8_t badwire[] = { 0x57, 0 };	/* wire type 7 */
	static const uint8_t tag0[] = { 0x02, 0 };	/* field 0 */
	static const uint8_t varint11[] = { 0x18, 0x80, 0x80, 0x80, 0x80, 0x80,
					    0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	const uint8_t *data;
	size_t len;

	CHECK_INT(rev2_parse_bs_chunk(ok, sizeof(ok), &data, &len), 0);
	CHECK_INT(len, 3);
	CHECK(data == ok + 2);
	CHECK_INT(rev2_parse_bs_chunk(ok, 0, &data, &len), 0);
	CHECK_INT(len, 0);
	CHECK_INT(rev2_parse_bs_chunk(overlong, sizeof(overlong), &data, &len), -EINVAL);
	CHECK_INT(rev2_parse_bs_chunk(badwire, sizeof(badwire), &data, &len), -EINVAL);
	CHECK_INT(rev2_parse_bs_chunk(tag0, sizeof(tag0), &data, &len), -EINVAL);
	CHECK_INT(rev2_parse_bs_chunk(varint11, sizeof(varint11), &data, &len), -EINVAL);
	CHECK_INT(rev2_parse_bs_chunk(ok, 4, &data, &len), -EINVAL);	/* cut */
}

static void t_caps(void)
{
	Build__Bazel__Remote__Execution__V2__CacheCapabilities cc =
		BUILD__BAZEL__REMOTE__EXECUTION__V2__CACHE_CAPABILITIES__INIT;
	PbCaps c = BUILD__BAZEL__REMOTE__EXECUTION__V2__SERVER_CAPABILITIES__INIT;
	Build__Bazel__Remote__Execution__V2__DigestFunction__Value fns[2] = {
		BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA1,
		PB_DIGEST_FN_SHA256,
	};
	struct rev2_caps caps;
	uint8_t buf[256];
	size_t n;

	c.cache_capabilities = &cc;
	cc.n_digest_functions = 1;	/* SHA1 only */
	cc.digest_functions = fns;
	n = protobuf_c_message_pack(&c.base, buf);
	CHECK_INT(rev2_parse_caps(buf, n, &caps), 0);
	CHECK(!caps.sha256);
	cc.n_digest_functions = 2;
	cc.max_batch_total_size_bytes = 0;	/* no limit: ours */
	n = protobuf_c_message_pack(&c.base, buf);
	CHECK_INT(rev2_parse_caps(buf, n, &caps), 0);
	CHECK(caps.sha256);
	CHECK_INT(caps.max_batch, REV2_MSG_LIMIT - REV2_BATCH_SLACK);
	cc.max_batch_total_size_bytes = 64 << 20;	/* above 4 MiB: capped */
	n = protobuf_c_message_pack(&c.base, buf);
	CHECK_INT(rev2_parse_caps(buf, n, &caps), 0);
	CHECK_INT(caps.max_batch, REV2_MSG_LIMIT - REV2_BATCH_SLACK);
	cc.max_batch_total_size_bytes = 100000;
	n = protobuf_c_message_pack(&c.base, buf);
	CHECK_INT(rev2_parse_caps(buf, n, &caps), 0);
	CHECK(caps.max_batch > 0 && caps.max_batch < 100000);
	CHECK_INT(rev2_parse_caps((const uint8_t *)"\x0a\xff", 2, &caps), -EINVAL);
}

struct seen {
	int n, codes[4];
	size_t lens[4];
};

static int on_blob(void *ud, const struct rev2_digest *d, int code, const char *message,
		   const uint8_t *data, size_t len)
{
	struct seen *s = ud;

	(void)d;
	(void)message;
	(void)data;
	if (s->n < 4) {
		s->codes[s->n] = code;
		s->lens[s->n] = len;
	}
	s->n++;
	return 0;
}

static void t_batch_read(void)
{
	PbBatchReadResp r = BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_READ_BLOBS_RESPONSE__INIT;
	PbBatchReadEntry e[2] = {
		BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_READ_BLOBS_RESPONSE__RESPONSE__INIT,
		BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_READ_BLOBS_RESPONSE__RESPONSE__INIT,
	};
	PbBatchReadEntry *ep[2] = { &e[0], &e[1] };
	PbStatus nf = GOOGLE__RPC__STATUS__INIT;
	PbDigest d0 = PB_DIGEST_INIT, d1 = PB_DIGEST_INIT;
	struct seen s = { 0 };
	uint8_t buf[512];
	size_t n;

	d0.hash = d1.hash = (char *)H;
	d0.size_bytes = 3;
	d1.size_bytes = 4;
	e[0].digest = &d0;
	e[0].data.data = (uint8_t *)"abc";
	e[0].data.len = 3;
	e[1].digest = &d1;
	nf.code = GRPC_NOT_FOUND;
	e[1].status = &nf;
	r.n_responses = 2;
	r.responses = ep;
	n = protobuf_c_message_pack(&r.base, buf);
	CHECK_INT(rev2_parse_batch_read(buf, n, on_blob, &s), 0);
	CHECK_INT(s.n, 2);
	CHECK_INT(s.codes[0], GRPC_OK);
	CHECK_INT(s.lens[0], 3);
	CHECK_INT(s.codes[1], GRPC_NOT_FOUND);

	/* a compressor we never asked for: not data we can use */
	e[0].compressor = BUILD__BAZEL__REMOTE__EXECUTION__V2__COMPRESSOR__VALUE__ZSTD;
	n = protobuf_c_message_pack(&r.base, buf);
	memset(&s, 0, sizeof(s));
	CHECK_INT(rev2_parse_batch_read(buf, n, on_blob, &s), 0);
	CHECK_INT(s.codes[0], GRPC_UNIMPLEMENTED);
	e[0].compressor = 0;

	/* a malformed digest makes the whole response malformed */
	d1.hash = (char *)"nothex";
	n = protobuf_c_message_pack(&r.base, buf);
	memset(&s, 0, sizeof(s));
	CHECK_INT(rev2_parse_batch_read(buf, n, on_blob, &s), -EINVAL);
	CHECK_INT(rev2_parse_batch_read((const uint8_t *)"\x0a\x05\x01", 3, on_blob, &s), -EINVAL);
}

static void t_pack(void)
{
	struct rev2_digest d[2];
	uint8_t *out;
	size_t len;
	PbBatchReadReq *req;
	Google__Bytestream__ReadRequest *rr;

	memset(d, 0, sizeof(d));
	d[0].size = 1;
	d[1].size = 2;
	CHECK_INT(rev2_pack_batch_read("inst", d, 2, &out, &len), 0);
	req = build__bazel__remote__execution__v2__batch_read_blobs_request__unpack(NULL, len, out);
	REQUIRE(req);
	CHECK_STR(req->instance_name, "inst");
	CHECK_INT(req->n_digests, 2);
	CHECK_INT(req->digests[1]->size_bytes, 2);
	CHECK_INT(req->digest_function, PB_DIGEST_FN_SHA256);
	build__bazel__remote__execution__v2__batch_read_blobs_request__free_unpacked(req, NULL);
	free(out);
	CHECK_INT(rev2_pack_bs_read("", &d[1], 12345, &out, &len), 0);
	rr = google__bytestream__read_request__unpack(NULL, len, out);
	REQUIRE(rr);
	CHECK_STR(rr->resource_name,
		  "blobs/0000000000000000000000000000000000000000000000000000000000000000/2");
	CHECK_INT(rr->read_offset, 12345);
	CHECK_INT(rr->read_limit, 0);
	google__bytestream__read_request__free_unpacked(rr, NULL);
	free(out);
}

const struct test rev2_tests[] = {
	{ "names_and_digests", t_names },
	{ "digest_from_wire", t_digest_from_pb },
	{ "status_map_retry_info", t_status_map },
	{ "bytestream_chunk", t_bs_chunk },
	{ "capabilities", t_caps },
	{ "batch_read_response", t_batch_read },
	{ "requests", t_pack },
	{ NULL, NULL },
};
