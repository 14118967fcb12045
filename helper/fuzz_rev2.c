// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the REv2 responses casfs-helper decodes itself
 * (rev2.c), fed the way the backend gets them: a response stream through
 * the gRPC deframer, cut into DATA chunks anywhere, each message then
 * given to the parser byte 0 picks:
 *   0 BatchReadBlobsResponse (digests checked, data handed on),
 *   1 ByteStream ReadResponse (zero-copy wire reader),
 *   2 ServerCapabilities,
 *   3 grpc-status-details-bin: a google.rpc.Status with RetryInfo.
 * Byte 1 seeds the chunk sizes. Checked: no memory error, UB or leak; what
 * the parsers hand on lies inside the message and is well-formed.
 */
#include "rev2_pb.h"
#include "grpc/grpc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	unsigned kind;
};

static int on_blob(void *ud, const struct rev2_digest *d, int code,
		   const char *message, const uint8_t *p, size_t len)
{
	volatile uint8_t sink = 0;

	(void)ud;
	if (d->size > CASFS_MAX_BLOB_SIZE)
		abort();
	if (message)
		sink ^= (uint8_t)strlen(message);
	for (size_t i = 0; i < len; i++)	/* the data must be readable */
		sink ^= p[i];
	(void)code;
	(void)sink;
	return 0;
}

static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct ctx *c = ud;
	const uint8_t *chunk;
	struct rev2_caps caps;
	struct rev2_err e;
	size_t clen;

	(void)compressed;
	switch (c->kind) {
	case 0:
		rev2_parse_batch_read(m, n, on_blob, c);
		break;
	case 1:
		if (rev2_parse_bs_chunk(m, n, &chunk, &clen) == 0 && clen &&
		    (chunk < m || chunk + clen > m + n))
			abort();	/* must point inside the message */
		break;
	case 2:
		if (rev2_parse_caps(m, n, &caps) == 0 &&
		    caps.max_batch > REV2_MSG_LIMIT)
			abort();
		break;
	default:
		e = rev2_map_status(GRPC_UNAVAILABLE, false, m, n);
		if (e.retry_after_ms > 60000 || !e.transient)
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct grpc_deframer df;
	struct ctx c;
	uint32_t x;

	if (size < 2)
		return 0;
	c.kind = data[0] & 3;
	x = data[1] * 2654435761u + 1;
	data += 2;
	size -= 2;
	grpc_deframer_init(&df, 1 << 20, false);
	for (size_t off = 0; off < size;) {
		size_t n;

		x = x * 1103515245u + 12345u;
		n = (x >> 16) % 64 + 1;
		if (n > size - off)
			n = size - off;
		if (grpc_deframer_feed(&df, data + off, n, on_msg, &c))
			break;
		off += n;
	}
	grpc_deframer_finish(&df);
	grpc_deframer_free(&df);
	return 0;
}
