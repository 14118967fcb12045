// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the Directory graph decoder (tree.c), fed the way
 * casfsctl gets its bytes: a GetTree response stream through the gRPC
 * deframer, cut into DATA chunks anywhere, each message a GetTreeResponse
 * page; the whole input as a Tree blob; and as an ActionResult.
 *
 * Input: byte 0: bit 0 allow absolute symlinks, bit 1 allow escaping,
 * bits 2-3 the depth cap (4 / 16 / 256 / default), bit 4: an entry cap of
 * 1000 (else 100000); byte 1 seeds the chunk sizes; the rest is the stream.
 *
 * Every message is also indexed as a Directory itself (wrapped in a page)
 * and walked from, so that bytes the fuzzer finds need not first hash to
 * a digest that some other message names. Checked: no memory error, UB or
 * leak; walks either succeed or fail with an error message; the counts
 * the walk reports equal the callbacks it made.
 */
#include "tree.h"
#include "verify.h"
#include "grpc/grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	uint64_t dirs, files, links;
};

static int f_dir(void *ud, const char *path)
{
	((struct seen *)ud)->dirs++;
	return 0;
}

static int f_file(void *ud, const char *path, const char *name,
		  const struct rev2_digest *d, bool exec)
{
	if (strlen(name) > TREE_MAX_NAME || !strchr(path, 0))
		abort();
	((struct seen *)ud)->files++;
	return 0;
}

static int f_link(void *ud, const char *path, const char *name, const char *target)
{
	if (!*target || strlen(target) > TREE_MAX_TARGET)
		abort();
	((struct seen *)ud)->links++;
	return 0;
}

static const struct tree_visitor vis = { f_dir, f_file, f_link };

static void walk(struct tree *t, const struct rev2_digest *root, const struct tree_policy *pol)
{
	struct tree_stats st;
	struct seen s = { 0 };
	char err[TREE_MAX_PATH + 600];
	int r;

	err[0] = 0;
	r = tree_walk(t, root, NULL, 0, pol, &vis, &s, &st, err, sizeof(err));
	if (r && !err[0])
		abort();	/* every failure says why */
	if (!r && (s.dirs != st.dirs || s.files != st.files || s.links != st.symlinks))
		abort();
}

struct ctx {
	struct tree *t;
	const struct tree_policy *pol;
	char err[512];
};

/* One GetTreeResponse message: as a page, then as a Directory walked from. */
static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct ctx *c = ud;
	struct rev2_digest d;
	uint8_t hdr[11];
	size_t h = 0;
	uint8_t *wrapped;
	uint64_t v = n;

	tree_add_page(c->t, m, n, c->err, sizeof(c->err));
	/* field 1, length-delimited, then the length as a varint */
	hdr[h++] = 0x0a;
	do {
		hdr[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	wrapped = malloc(h + n + 1);
	if (!wrapped)
		return 0;
	memcpy(wrapped, hdr, h);
	if (n)
		memcpy(wrapped + h, m, n);
	if (tree_add_page(c->t, wrapped, h + n, c->err, sizeof(c->err)) == 0) {
		d.size = n;
		sha256_buf(m, n, d.sha256);
		walk(c->t, &d, c->pol);
	}
	free(wrapped);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned depths[] = { 4, 16, 256, 0 };
	struct tree_policy pol = { 0 };
	struct grpc_deframer df;
	struct action_result ar;
	struct rev2_digest root;
	struct ctx c = { 0 };
	char err[TREE_MAX_PATH + 600];
	uint32_t x;
	size_t off;

	if (size < 2)
		return 0;
	pol.allow_absolute = data[0] & 1;
	pol.allow_escaping = data[0] & 2;
	pol.max_depth = depths[(data[0] >> 2) & 3];
	/* the default (10 million) would make slow units, not new paths */
	pol.max_entries = data[0] & 16 ? 1000 : 100000;
	x = data[1] * 2654435761u + 1;
	data += 2;
	size -= 2;

	/* GetTree: the stream in chunks of 0..63 bytes */
	if (tree_new(&c.t))
		return 0;
	c.pol = &pol;
	grpc_deframer_init(&df, 1 << 20, false);
	for (off = 0; off <= size;) {
		size_t n;

		x = x * 1103515245u + 12345u;
		n = (x >> 16) % 64;
		if (n > size - off)
			n = size - off;
		if (grpc_deframer_feed(&df, data + off, n, on_msg, &c))
			break;
		off += n;
		if (off == size)
			break;
	}
	grpc_deframer_finish(&df);
	grpc_deframer_free(&df);
	tree_free(c.t);

	/* a Tree blob */
	if (tree_new(&c.t))
		return 0;
	if (tree_add_tree(c.t, data, size, &root, err, sizeof(err)) == 0)
		walk(c.t, &root, &pol);
	tree_free(c.t);

	/* an ActionResult */
	if (tree_parse_action_result(data, size, &pol, &ar, err, sizeof(err)) == 0)
		action_result_free(&ar);
	return 0;
}
