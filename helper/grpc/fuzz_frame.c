// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the deframer (frame.c): what a server sends in
 * DATA frames, cut into chunks the way the network might.
 *
 * Input: byte 0 picks the options (bits 0-1: message cap 16 / 300 /
 * 70000 / default; bit 2: compression negotiated); then records of
 * [n][n bytes], each record one DATA chunk (n = 0 is an empty chunk).
 *
 * Checked: no memory error or UB (ASan/UBSan); the messages and the
 * final result equal those of a simple reference parser run over the
 * whole stream at once; memory held stays within the cap and within
 * twice the bytes of the message being assembled.
 */
#include "grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	unsigned n;
	uint64_t hash;		/* over lengths, flags and bytes */
};

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void note(struct seen *s, const uint8_t *m, size_t n, bool compressed)
{
	uint8_t meta[9];

	for (int i = 0; i < 8; i++)
		meta[i] = (uint8_t)((uint64_t)n >> (8 * i));
	meta[8] = compressed;
	s->hash = mix(mix(s->hash, meta, 9), m, n);
	s->n++;
}

static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	note(ud, m, n, compressed);
	return 0;
}

/* The reference: the same rules, the whole stream in one buffer. */
static int reference(const uint8_t *p, size_t n, size_t max, bool allow,
		     struct seen *s)
{
	size_t off = 0;

	while (off < n) {
		uint32_t len;

		if (n - off < GRPC_FRAME_HDR)
			return GRPC_FRAME_TRUNCATED;
		len = (uint32_t)p[off + 1] << 24 | (uint32_t)p[off + 2] << 16 |
		      (uint32_t)p[off + 3] << 8 | p[off + 4];
		if (p[off] > 1)
			return GRPC_FRAME_BAD_FLAG;
		if (p[off] == 1 && !allow)
			return GRPC_FRAME_COMPRESSED;
		if (len > max)
			return GRPC_FRAME_TOO_LARGE;
		if (n - off - GRPC_FRAME_HDR < len)
			return GRPC_FRAME_TRUNCATED;
		note(s, p + off + GRPC_FRAME_HDR, len, p[off] == 1);
		off += GRPC_FRAME_HDR + len;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 16, 300, 70000, 0 };
	struct grpc_deframer d;
	struct seen got = { 0, 14695981039346656037ull };
	struct seen want = got;
	uint8_t *all;
	size_t off = 1, alen = 0;
	int r = 0, ref;
	bool allow;

	if (!size)
		return 0;
	allow = data[0] & 4;
	grpc_deframer_init(&d, caps[data[0] & 3], allow);
	all = malloc(size);
	while (off < size) {
		size_t n = data[off++];

		if (n > size - off)
			n = size - off;
		memcpy(all + alen, data + off, n);
		alen += n;
		if (!r)
			r = grpc_deframer_feed(&d, data + off, n, on_msg, &got);
		off += n;
		if (d.cap > d.max_msg || (d.cap > 65536 && d.cap >= 2 * d.have)) {
			fprintf(stderr, "holds %zu bytes (cap %zu, have %zu)\n",
				d.cap, d.max_msg, d.have);
			abort();
		}
	}
	if (!r)
		r = grpc_deframer_finish(&d);
	ref = reference(all, alen, d.max_msg, allow, &want);
	if (r != ref || got.n != want.n || got.hash != want.hash) {
		fprintf(stderr, "deframer %d (%u msgs), reference %d (%u msgs)\n",
			r, got.n, ref, want.n);
		abort();
	}
	grpc_deframer_free(&d);
	free(all);
	return 0;
}
