// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for everything after the socket: nghttp2, response
 * headers and trailers, statuses, RST_STREAM/GOAWAY handling, deadlines
 * and the deframer, as one client with three calls in flight sees a
 * hostile server's bytes.
 *
 * Each run: a real conn to a loopback listener; the "server" sends an
 * empty SETTINGS frame and then frames built from the input, then
 * closes. Input records: [type][flags][stream][len hi][len lo][payload].
 * stream picks 0, 1, 3, 5, 7 or 0x7fffffff (the calls are 1, 3, 5).
 * A type with bit 7 set sends a header block (HEADERS, flags as given)
 * made of the payload's "name\0value\0..." pairs as HPACK literals, so
 * the fuzzer can reach the header logic without learning HPACK.
 *
 * Checked: no memory error, UB or leak; every call ends exactly once;
 * the client never hangs once the server has closed.
 */
#include "grpc.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lfd = -1, port;

static void listen_once(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 64) || getsockname(lfd, (struct sockaddr *)&a, &al))
		abort();
	port = ntohs(a.sin_port);
}

struct out {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->b = realloc(o->b, o->cap);
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void frame_hdr(struct out *o, size_t len, int type, int flags, uint32_t sid)
{
	uint8_t h[9] = { (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
			 (uint8_t)type, (uint8_t)flags, (uint8_t)(sid >> 24),
			 (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid };

	put(o, h, 9);
}

static void hp_str(struct out *o, const uint8_t *s, size_t n)
{
	uint8_t b[8];
	size_t k = 0, v = n;

	if (v < 127) {
		b[k++] = (uint8_t)v;
	} else {
		b[k++] = 127;
		v -= 127;
		while (v >= 128) {
			b[k++] = (uint8_t)(v % 128 + 128);
			v /= 128;
		}
		b[k++] = (uint8_t)v;
	}
	put(o, b, k);
	put(o, s, n);
}

/* "name\0value\0..." -> HPACK literals without indexing. */
static void header_block(struct out *o, const uint8_t *p, size_t n, int flags,
			 uint32_t sid)
{
	struct out hb = { 0 };
	const uint8_t *end = p + n;

	while (p < end) {
		const uint8_t *nz = memchr(p, 0, (size_t)(end - p)), *v, *vz;

		if (!nz)
			break;
		v = nz + 1;
		vz = memchr(v, 0, (size_t)(end - v));
		if (!vz)
			vz = end;
		put(&hb, "", 1);
		hp_str(&hb, p, (size_t)(nz - p));
		hp_str(&hb, v, (size_t)(vz - v));
		p = vz + (vz < end);
	}
	if (hb.len > 16384)
		hb.len = 16384;
	frame_hdr(o, hb.len, 1, flags, sid);
	if (hb.len)
		put(o, hb.b, hb.len);
	free(hb.b);
}

struct calls {
	int done[3];
};

static void on_done(void *ud, const struct grpc_status *st)
{
	int *d = ud;

	if (!st->message)
		abort();
	(*d)++;
}

static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	(void)ud;
	(void)compressed;
	if (n && (m[0] == 0xee))	/* let the fuzzer reach "cancel" too */
		return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t sids[] = { 0, 1, 3, 5, 7, 0x7fffffff };
	struct grpc_conn_opts o = { 0 };
	struct grpc_conn *c;
	struct calls k = { { 0 } };
	struct out srv = { 0 };
	char url[64], err[256];
	size_t off = 0;
	int sfd = -1, extra = 0;

	if (lfd < 0)
		listen_once();
	snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", port);
	o.url = url;
	o.max_recv_msg = 1000;
	o.transparent_retries = 0;
	o.connect_timeout_ms = 5000;
	c = grpc_conn_new(&o, err, sizeof(err));
	if (!c)
		abort();
	for (int i = 0; i < 3; i++) {
		struct grpc_call_opts co = {
			.method = "/f.F/M", .req = "req", .req_len = 3,
			.timeout_ms = i == 2 ? 5000 : 0,
			.idle_timeout_ms = i == 0 ? 5000 : 0, .on_msg = on_msg,
			.on_done = on_done, .ud = &k.done[i],
			.accept_encoding = i == 1 ? "gzip" : NULL,
		};

		if (!grpc_call_start(c, &co))
			abort();
	}
	/* the server's side of the conversation */
	frame_hdr(&srv, 0, 4, 0, 0);		/* SETTINGS */
	while (off + 5 <= size) {
		int type = data[off], flags = data[off + 1];
		uint32_t sid = sids[data[off + 2] % 6];
		size_t len = (size_t)data[off + 3] << 8 | data[off + 4];

		off += 5;
		if (len > size - off)
			len = size - off;
		if (type & 0x80) {
			header_block(&srv, data + off, len, flags, sid);
		} else {
			frame_hdr(&srv, len, type & 0x0f, flags, sid);
			put(&srv, data + off, len);
		}
		off += len;
	}
	for (int step = 0; step < 400; step++) {
		int fd;

		grpc_conn_wait(c, 20);
		while ((fd = accept(lfd, NULL, NULL)) >= 0) {
			if (sfd < 0) {
				sfd = fd;
				/* all of it at once, then the end */
				if (send(sfd, srv.b, srv.len, MSG_NOSIGNAL) < 0)
					abort();
				shutdown(sfd, SHUT_WR);
			} else {
				extra++;	/* a reconnect for queued calls */
				close(fd);
			}
		}
		if (k.done[0] && k.done[1] && k.done[2])
			break;
	}
	if (k.done[0] != 1 || k.done[1] != 1 || k.done[2] != 1) {
		fprintf(stderr, "calls done %d %d %d (extra connections %d)\n",
			k.done[0], k.done[1], k.done[2], extra);
		abort();
	}
	grpc_conn_free(c);
	if (sfd >= 0)
		close(sfd);
	free(srv.b);
	return 0;
}
