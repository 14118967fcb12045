// SPDX-License-Identifier: GPL-2.0
/* The deframer: every split, hostile lengths, flags, truncation. */
#include "t.h"
#include "grpc.h"

#include <stdlib.h>

#define MAXM 16

struct got {
	unsigned n;
	size_t len[MAXM];
	uint8_t *msg[MAXM];
	bool compressed[MAXM];
	unsigned stop_after;	/* return 7 after this many; 0: never */
};

static int collect(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct got *g = ud;

	if (g->n < MAXM) {
		g->msg[g->n] = malloc(n ? n : 1);
		memcpy(g->msg[g->n], m, n);
		g->len[g->n] = n;
		g->compressed[g->n] = compressed;
	}
	g->n++;
	return g->stop_after && g->n == g->stop_after ? 7 : 0;
}

static void got_free(struct got *g)
{
	for (unsigned i = 0; i < g->n && i < MAXM; i++)
		free(g->msg[i]);
	memset(g, 0, sizeof(*g));
}

/* A stream of messages of these sizes, byte j of message i = i*31+j. */
static uint8_t *make_stream(const size_t *sizes, unsigned n, size_t *len)
{
	size_t total = 0, off = 0;
	uint8_t *s;

	for (unsigned i = 0; i < n; i++)
		total += GRPC_FRAME_HDR + sizes[i];
	s = malloc(total ? total : 1);
	for (unsigned i = 0; i < n; i++) {
		grpc_frame_header(s + off, sizes[i], false);
		off += GRPC_FRAME_HDR;
		for (size_t j = 0; j < sizes[i]; j++)
			s[off + j] = (uint8_t)(i * 31 + j);
		off += sizes[i];
	}
	*len = total;
	return s;
}

static bool matches(const struct got *g, const size_t *sizes, unsigned n)
{
	if (g->n != n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (g->len[i] != sizes[i] || g->compressed[i])
			return false;
		for (size_t j = 0; j < sizes[i]; j++)
			if (g->msg[i][j] != (uint8_t)(i * 31 + j))
				return false;
	}
	return true;
}

static const size_t sizes[] = { 3, 0, 1, 17, 0, 300, 6 };
#define NS (sizeof(sizes) / sizeof(sizes[0]))

/* Every split into two chunks, and into three at every pair of points. */
static void t_every_split(void)
{
	size_t len;
	uint8_t *s = make_stream(sizes, NS, &len);
	unsigned bad = 0;

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct grpc_deframer d;
			struct got g = { 0 };
			int r = 0;

			grpc_deframer_init(&d, 1024, false);
			r |= grpc_deframer_feed(&d, s, a, collect, &g);
			r |= grpc_deframer_feed(&d, s + a, b - a, collect, &g);
			r |= grpc_deframer_feed(&d, s + b, len - b, collect, &g);
			r |= grpc_deframer_finish(&d);
			if (r || !matches(&g, sizes, NS))
				bad++;
			grpc_deframer_free(&d);
			got_free(&g);
		}
	}
	CHECK_INT(bad, 0);
	free(s);
}

/* One byte at a time, and random chunkings of a stream with big messages. */
static void t_bytewise_and_random(void)
{
	static const size_t big[] = { 70000, 5, 0, 200000, 4096, 65536, 1 };
	size_t len;
	uint8_t *s = make_stream(big, 7, &len);
	struct grpc_deframer d;
	struct got g = { 0 };
	int r = 0;

	grpc_deframer_init(&d, 300000, false);
	for (size_t i = 0; i < len; i++)
		r |= grpc_deframer_feed(&d, s + i, 1, collect, &g);
	CHECK_INT(r, 0);
	CHECK_INT(grpc_deframer_finish(&d), 0);
	CHECK(matches(&g, big, 7));
	CHECK_INT(d.messages, 7);
	grpc_deframer_free(&d);
	got_free(&g);

	srand(42);
	for (int round = 0; round < 200; round++) {
		size_t off = 0;

		grpc_deframer_init(&d, 300000, false);
		r = 0;
		while (off < len) {
			size_t k = (size_t)rand() % (round % 2 ? 20000 : 40);

			if (k > len - off)
				k = len - off;
			r |= grpc_deframer_feed(&d, s + off, k, collect, &g);
			off += k;
		}
		r |= grpc_deframer_finish(&d);
		if (r || !matches(&g, big, 7)) {
			CHECK(!"random chunking");
			round = 1000;
		}
		grpc_deframer_free(&d);
		got_free(&g);
	}
	free(s);
}

static void t_too_large(void)
{
	struct grpc_deframer d;
	struct got g = { 0 };
	uint8_t h[GRPC_FRAME_HDR];

	/* exactly the cap: fine */
	grpc_deframer_init(&d, 100, false);
	grpc_frame_header(h, 100, false);
	CHECK_INT(grpc_deframer_feed(&d, h, 5, collect, &g), 0);
	grpc_deframer_free(&d);

	/* one over: refused at the header, before any allocation */
	grpc_deframer_init(&d, 100, false);
	grpc_frame_header(h, 101, false);
	CHECK_INT(grpc_deframer_feed(&d, h, 5, collect, &g), GRPC_FRAME_TOO_LARGE);
	CHECK(d.buf == NULL);
	/* sticky */
	CHECK_INT(grpc_deframer_feed(&d, (const uint8_t *)"x", 1, collect, &g),
		  GRPC_FRAME_TOO_LARGE);
	CHECK_INT(grpc_deframer_finish(&d), GRPC_FRAME_TOO_LARGE);
	grpc_deframer_free(&d);

	/* 4 GiB - 1 against the default cap, split in the length bytes */
	grpc_deframer_init(&d, 0, false);
	CHECK_INT(d.max_msg, GRPC_DEFAULT_MAX_MSG);
	CHECK_INT(grpc_deframer_feed(&d, (const uint8_t *)"\0\xff\xff", 3, collect, &g), 0);
	CHECK_INT(grpc_deframer_feed(&d, (const uint8_t *)"\xff\xff", 2, collect, &g),
		  GRPC_FRAME_TOO_LARGE);
	grpc_deframer_free(&d);
	CHECK_INT(g.n, 0);
}

/* A 4 MiB declaration followed by 10 bytes holds ~10 bytes, not 4 MiB. */
static void t_memory_follows_arrival(void)
{
	struct grpc_deframer d;
	uint8_t h[GRPC_FRAME_HDR], body[10] = { 0 };

	grpc_deframer_init(&d, 0, false);
	grpc_frame_header(h, 4 << 20, false);
	CHECK_INT(grpc_deframer_feed(&d, h, 5, NULL, NULL), 0);
	CHECK_INT(grpc_deframer_feed(&d, body, sizeof(body), NULL, NULL), 0);
	CHECK(d.cap <= 4096);
	CHECK_INT(grpc_deframer_finish(&d), GRPC_FRAME_TRUNCATED);
	grpc_deframer_free(&d);
}

static void t_truncated(void)
{
	struct grpc_deframer d;
	uint8_t s[16];

	/* empty stream: fine */
	grpc_deframer_init(&d, 100, false);
	CHECK_INT(grpc_deframer_finish(&d), 0);
	grpc_deframer_free(&d);
	/* inside the header */
	grpc_deframer_init(&d, 100, false);
	CHECK_INT(grpc_deframer_feed(&d, (const uint8_t *)"\0\0", 2, NULL, NULL), 0);
	CHECK_INT(grpc_deframer_finish(&d), GRPC_FRAME_TRUNCATED);
	grpc_deframer_free(&d);
	/* inside the body */
	grpc_deframer_init(&d, 100, false);
	grpc_frame_header(s, 10, false);
	memset(s + 5, 'x', 9);
	CHECK_INT(grpc_deframer_feed(&d, s, 14, NULL, NULL), 0);
	CHECK_INT(grpc_deframer_finish(&d), GRPC_FRAME_TRUNCATED);
	grpc_deframer_free(&d);
	/* a complete one, then nothing: fine */
	grpc_deframer_init(&d, 100, false);
	s[13] = 'x';
	s[14] = 'x';
	CHECK_INT(grpc_deframer_feed(&d, s, 15, NULL, NULL), 0);
	CHECK_INT(grpc_deframer_finish(&d), 0);
	CHECK_INT(d.messages, 1);
	grpc_deframer_free(&d);
}

static void t_flags(void)
{
	struct grpc_deframer d;
	struct got g = { 0 };
	uint8_t s[8];

	grpc_frame_header(s, 3, true);
	memcpy(s + 5, "abc", 3);
	/* compressed, not negotiated */
	grpc_deframer_init(&d, 100, false);
	CHECK_INT(grpc_deframer_feed(&d, s, 8, collect, &g), GRPC_FRAME_COMPRESSED);
	CHECK_INT(g.n, 0);
	grpc_deframer_free(&d);
	/* negotiated: delivered, flagged */
	grpc_deframer_init(&d, 100, true);
	CHECK_INT(grpc_deframer_feed(&d, s, 8, collect, &g), 0);
	CHECK_INT(g.n, 1);
	CHECK(g.compressed[0]);
	grpc_deframer_free(&d);
	got_free(&g);
	/* flag 2 and 0x80: never valid */
	for (int f = 2; f < 256; f += 125) {
		grpc_deframer_init(&d, 100, true);
		s[0] = (uint8_t)f;
		CHECK_INT(grpc_deframer_feed(&d, s, 8, collect, &g), GRPC_FRAME_BAD_FLAG);
		CHECK_INT(g.n, 0);
		grpc_deframer_free(&d);
	}
	CHECK(strlen(grpc_frame_strerror(GRPC_FRAME_BAD_FLAG)) > 0);
}

static void t_callback_stops(void)
{
	size_t len;
	uint8_t *s = make_stream(sizes, NS, &len);
	struct grpc_deframer d;
	struct got g = { .stop_after = 2 };

	grpc_deframer_init(&d, 1024, false);
	CHECK_INT(grpc_deframer_feed(&d, s, len, collect, &g), 7);
	CHECK_INT(g.n, 2);
	grpc_deframer_free(&d);
	got_free(&g);
	free(s);
}

static void t_header_encode(void)
{
	uint8_t h[GRPC_FRAME_HDR];

	CHECK_INT(grpc_frame_header(h, 0x01020304, false), 0);
	CHECK(!memcmp(h, "\0\x01\x02\x03\x04", 5));
	CHECK_INT(grpc_frame_header(h, 5, true), 0);
	CHECK_INT(h[0], 1);
	if (sizeof(size_t) > 4)
		CHECK_INT(grpc_frame_header(h, (size_t)UINT32_MAX + 1, false), -1);
}

static const struct test tests[] = {
	{ "every_split", t_every_split },
	{ "bytewise_and_random", t_bytewise_and_random },
	{ "too_large", t_too_large },
	{ "memory_follows_arrival", t_memory_follows_arrival },
	{ "truncated", t_truncated },
	{ "flags", t_flags },
	{ "callback_stops", t_callback_stops },
	{ "header_encode", t_header_encode },
	{ NULL, NULL },
};

const struct suite frame_suite = { "frame", tests, NULL, NULL };
