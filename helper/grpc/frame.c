// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: the length-prefixed message format. Each message is a
 * 1-byte compressed flag, a 4-byte big-endian length and the bytes; a
 * response body is any number of them, cut into DATA frames anywhere.
 *
 * Everything here comes from the server and is checked: the flag must be
 * 0 or 1 (1 only when compression was negotiated), the length at most
 * the cap. The buffer grows only as bytes arrive, so a header declaring
 * 4 MiB followed by silence costs nothing; messages that arrive whole in
 * one chunk are handed over without a copy.
 */
#include "grpc.h"

#include <stdlib.h>
#include <string.h>

const char *grpc_frame_strerror(int err)
{
	switch (err) {
	case GRPC_FRAME_OK:
		return "ok";
	case GRPC_FRAME_TOO_LARGE:
		return "message larger than the limit";
	case GRPC_FRAME_COMPRESSED:
		return "compressed message without a negotiated grpc-encoding";
	case GRPC_FRAME_BAD_FLAG:
		return "invalid message flag byte";
	case GRPC_FRAME_TRUNCATED:
		return "stream ended inside a message";
	case GRPC_FRAME_NOMEM:
		return "out of memory";
	}
	return "unknown framing error";
}

void grpc_deframer_init(struct grpc_deframer *d, size_t max_msg,
			bool allow_compressed)
{
	memset(d, 0, sizeof(*d));
	d->max_msg = max_msg ? max_msg : GRPC_DEFAULT_MAX_MSG;
	if (d->max_msg > UINT32_MAX)
		d->max_msg = UINT32_MAX;
	d->allow_compressed = allow_compressed;
}

void grpc_deframer_free(struct grpc_deframer *d)
{
	free(d->buf);
	d->buf = NULL;
	d->have = d->cap = 0;
}

int grpc_frame_header(uint8_t hdr[GRPC_FRAME_HDR], size_t len, bool compressed)
{
	if (len > UINT32_MAX)
		return -1;
	hdr[0] = compressed ? 1 : 0;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
	return 0;
}

/* The header is complete: validate it. */
static int take_header(struct grpc_deframer *d)
{
	uint32_t len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
		       (uint32_t)d->hdr[3] << 8 | d->hdr[4];

	if (d->hdr[0] > 1)
		return GRPC_FRAME_BAD_FLAG;
	if (d->hdr[0] == 1 && !d->allow_compressed)
		return GRPC_FRAME_COMPRESSED;
	if (len > d->max_msg)
		return GRPC_FRAME_TOO_LARGE;
	d->compressed = d->hdr[0] == 1;
	d->need = len;
	d->have = 0;
	return 0;
}

/* Make room for `more` bytes beyond d->have (have + more <= need). */
static int grow(struct grpc_deframer *d, size_t more)
{
	size_t want = d->have + more, cap;
	uint8_t *b;

	if (want <= d->cap)
		return 0;
	cap = d->cap ? d->cap : 4096;
	while (cap < want)
		cap = cap > d->need / 2 ? d->need : cap * 2;
	if (cap > d->need)
		cap = d->need;
	b = realloc(d->buf, cap);
	if (!b)
		return GRPC_FRAME_NOMEM;
	d->buf = b;
	d->cap = cap;
	return 0;
}

/* A message is complete: hand it over and reset for the next header. */
static int deliver(struct grpc_deframer *d, const uint8_t *msg, size_t len,
		   grpc_msg_fn fn, void *ud)
{
	bool compressed = d->compressed;
	int ret;

	d->hdr_have = 0;
	d->have = 0;
	d->need = 0;
	d->messages++;
	ret = fn ? fn(ud, msg, len, compressed) : 0;
	/* Keep a small buffer for the next message; drop a big one. */
	if (d->cap > 65536) {
		free(d->buf);
		d->buf = NULL;
		d->cap = 0;
	}
	return ret;
}

int grpc_deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n,
		       grpc_msg_fn fn, void *ud)
{
	int ret;

	if (d->err)
		return d->err;
	while (n) {
		if (d->hdr_have < GRPC_FRAME_HDR) {
			size_t k = GRPC_FRAME_HDR - d->hdr_have;

			if (k > n)
				k = n;
			memcpy(d->hdr + d->hdr_have, p, k);
			d->hdr_have += k;
			p += k;
			n -= k;
			if (d->hdr_have < GRPC_FRAME_HDR)
				break;
			ret = take_header(d);
			if (ret)
				return d->err = ret;
			if (d->need == 0) {
				ret = deliver(d, (const uint8_t *)"", 0, fn, ud);
				if (ret)
					return ret;
				continue;
			}
		}
		if (!n)
			break;
		/* Whole message in the input and nothing buffered: no copy. */
		if (d->have == 0 && n >= d->need) {
			const uint8_t *msg = p;
			size_t len = d->need;

			p += len;
			n -= len;
			ret = deliver(d, msg, len, fn, ud);
			if (ret)
				return ret;
			continue;
		}
		{
			size_t k = d->need - d->have;

			if (k > n)
				k = n;
			ret = grow(d, k);
			if (ret)
				return d->err = ret;
			memcpy(d->buf + d->have, p, k);
			d->have += k;
			p += k;
			n -= k;
			if (d->have == d->need) {
				ret = deliver(d, d->buf, d->need, fn, ud);
				if (ret)
					return ret;
			}
		}
	}
	return 0;
}

int grpc_deframer_finish(struct grpc_deframer *d)
{
	if (d->err)
		return d->err;
	if (d->hdr_have)
		return d->err = GRPC_FRAME_TRUNCATED;
	return 0;
}
