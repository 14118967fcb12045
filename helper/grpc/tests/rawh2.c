// SPDX-License-Identifier: GPL-2.0
/* The misbehaving HTTP/2 server (see rawh2.h). */
#include "rawh2.h"
#include "grpc.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { F_DATA, F_HEADERS, F_PRIORITY, F_RST, F_SETTINGS, F_PUSH, F_PING,
       F_GOAWAY, F_WINDOW, F_CONT };
#define END_STREAM 1
#define END_HEADERS 4
#define ACK 1

struct kconn {
	struct rawsrv *s;
	int fd;
	bool closed;
	struct { int32_t id; uint8_t buf[4096]; size_t len; } st[64];
};

static void pump_pings(struct kconn *k, int ms);

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void wr(struct kconn *k, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n && !k->closed) {
		ssize_t w = send(k->fd, b, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			k->closed = true;
			return;
		}
		b += w;
		n -= (size_t)w;
	}
}

static void frame(struct kconn *k, int type, int flags, int32_t sid,
		  const void *p, size_t n)
{
	uint8_t h[9] = {
		(uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, (uint8_t)type,
		(uint8_t)flags, (uint8_t)(sid >> 24), (uint8_t)(sid >> 16),
		(uint8_t)(sid >> 8), (uint8_t)sid,
	};

	wr(k, h, 9);
	if (n)
		wr(k, p, n);
}

/* HPACK: literal without indexing, new name, no Huffman. */
static size_t hp_int(uint8_t *o, size_t v)
{
	size_t n = 0;

	if (v < 127) {
		o[n++] = (uint8_t)v;
		return n;
	}
	o[n++] = 127;
	v -= 127;
	while (v >= 128) {
		o[n++] = (uint8_t)(v % 128 + 128);
		v /= 128;
	}
	o[n++] = (uint8_t)v;
	return n;
}

struct hblock {
	uint8_t *b;
	size_t len;
};

static void hadd(struct hblock *h, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	h->b = realloc(h->b, h->len + nl + vl + 16);
	h->b[h->len++] = 0;
	h->len += hp_int(h->b + h->len, nl);
	memcpy(h->b + h->len, name, nl);
	h->len += nl;
	h->len += hp_int(h->b + h->len, vl);
	memcpy(h->b + h->len, value, vl);
	h->len += vl;
}

/* Send a header block, in CONTINUATIONs past 16 KiB. */
static void hsend(struct kconn *k, int32_t sid, struct hblock *h, bool end)
{
	size_t off = 0;
	bool first = true;

	do {
		size_t n = h->len - off > 16384 ? 16384 : h->len - off;
		bool last = off + n == h->len;

		frame(k, first ? F_HEADERS : F_CONT,
		      (last ? END_HEADERS : 0) | (first && end ? END_STREAM : 0),
		      sid, h->b + off, n);
		off += n;
		first = false;
	} while (off < h->len);
	free(h->b);
	h->b = NULL;
	h->len = 0;
}

static void headers_ok(struct kconn *k, int32_t sid, const char *extra_name,
		       const char *extra_value)
{
	struct hblock h = { 0 };

	hadd(&h, ":status", "200");
	hadd(&h, "content-type", "application/grpc");
	if (extra_name)
		hadd(&h, extra_name, extra_value);
	hsend(k, sid, &h, false);
}

static void trailers(struct kconn *k, int32_t sid, const char *status,
		     const char *msg)
{
	struct hblock h = { 0 };

	hadd(&h, "grpc-status", status);
	if (msg)
		hadd(&h, "grpc-message", msg);
	hsend(k, sid, &h, true);
}

static void data(struct kconn *k, int32_t sid, const void *p, size_t n, bool end)
{
	const uint8_t *b = p;

	do {
		size_t c = n > 16384 ? 16384 : n;

		frame(k, F_DATA, end && c == n ? END_STREAM : 0, sid, b, c);
		b += c;
		n -= c;
	} while (n);
}

static void msg(struct kconn *k, int32_t sid, const void *p, size_t n,
		bool compressed)
{
	uint8_t *b = malloc(n + 5);

	grpc_frame_header(b, n, compressed);
	memcpy(b + 5, p, n);
	data(k, sid, b, n + 5, false);
	free(b);
}

static void rst(struct kconn *k, int32_t sid, uint32_t code)
{
	uint8_t p[4] = { (uint8_t)(code >> 24), (uint8_t)(code >> 16),
			 (uint8_t)(code >> 8), (uint8_t)code };

	frame(k, F_RST, 0, sid, p, 4);
}

static void goaway(struct kconn *k, int32_t last, uint32_t code)
{
	uint8_t p[8] = { (uint8_t)(last >> 24), (uint8_t)(last >> 16),
			 (uint8_t)(last >> 8), (uint8_t)last,
			 (uint8_t)(code >> 24), (uint8_t)(code >> 16),
			 (uint8_t)(code >> 8), (uint8_t)code };

	frame(k, F_GOAWAY, 0, 0, p, 8);
}

static void trailers_only(struct kconn *k, int32_t sid, const char *http,
			  const char *ct, const char *status, const char *m,
			  const char *details)
{
	struct hblock h = { 0 };

	hadd(&h, ":status", http);
	if (ct)
		hadd(&h, "content-type", ct);
	if (status)
		hadd(&h, "grpc-status", status);
	if (m)
		hadd(&h, "grpc-message", m);
	if (details)
		hadd(&h, "grpc-status-details-bin", details);
	hsend(k, sid, &h, true);
}

static void echo(struct kconn *k, int32_t sid, const char *m, size_t n)
{
	headers_ok(k, sid, NULL, NULL);
	msg(k, sid, m, n, false);
	trailers(k, sid, "0", NULL);
}

static void respond(struct kconn *k, int32_t sid, const uint8_t *req, size_t len)
{
	char sc[256];
	size_t n = len >= 5 ? len - 5 : 0;

	if (n >= sizeof(sc))
		n = sizeof(sc) - 1;
	memcpy(sc, req + 5, n);
	sc[n] = 0;
	atomic_fetch_add(&k->s->requests, 1);
#define IS(x) (!strcmp(sc, x))
	if (!strncmp(sc, "echo:", 5)) {
		echo(k, sid, sc + 5, n - 5);
	} else if (IS("split")) {
		/* "alpha", "", 20000 bytes of i&0xff: 1-byte frames, then 7 */
		size_t tl = 5 + 5 + 5 + 0 + 5 + 20000, off = 0;
		uint8_t *b = malloc(tl);

		grpc_frame_header(b, 5, false);
		memcpy(b + 5, "alpha", 5);
		grpc_frame_header(b + 10, 0, false);
		grpc_frame_header(b + 15, 20000, false);
		for (int i = 0; i < 20000; i++)
			b[20 + i] = (uint8_t)i;
		headers_ok(k, sid, NULL, NULL);
		while (off < tl) {
			size_t c = off < 60 ? 1 : (off < 400 ? 7 : 4000);

			if (c > tl - off)
				c = tl - off;
			data(k, sid, b + off, c, false);
			off += c;
		}
		free(b);
		trailers(k, sid, "0", NULL);
	} else if (IS("many")) {
		uint8_t b[10 * 1000];

		for (int i = 0; i < 1000; i++) {
			grpc_frame_header(b + 10 * i, 5, false);
			char t[16];

			snprintf(t, sizeof(t), "m%04u", (unsigned)i % 10000);
			memcpy(b + 10 * i + 5, t, 5);
		}
		headers_ok(k, sid, NULL, NULL);
		data(k, sid, b, sizeof(b), false);
		trailers(k, sid, "0", NULL);
	} else if (IS("trailers-only-5")) {
		trailers_only(k, sid, "200", "application/grpc", "5",
			      "no%20such%20blob%3A%20%E2%9C%93", NULL);
	} else if (IS("details")) {
		trailers_only(k, sid, "200", "application/grpc+proto", "8",
			      "slow%20down", "CAgSA2FiYw");
	} else if (IS("http-503")) {
		trailers_only(k, sid, "503", "text/plain", NULL, NULL, NULL);
	} else if (IS("http-404")) {
		trailers_only(k, sid, "404", NULL, NULL, NULL, NULL);
	} else if (IS("http-401")) {
		trailers_only(k, sid, "401", "text/html", NULL, NULL, NULL);
	} else if (IS("http-500-body")) {
		struct hblock h = { 0 };

		hadd(&h, ":status", "500");
		hadd(&h, "content-type", "text/html");
		hsend(k, sid, &h, false);
		data(k, sid, "\0\0\0\0\x05oops!", 10, true);
	} else if (IS("bad-ctype")) {
		struct hblock h = { 0 };

		hadd(&h, ":status", "200");
		hadd(&h, "content-type", "text/html");
		hsend(k, sid, &h, false);
		data(k, sid, "<html>", 6, false);
		trailers(k, sid, "0", NULL);
	} else if (IS("rst-mid")) {
		headers_ok(k, sid, NULL, NULL);
		msg(k, sid, "one", 3, false);
		rst(k, sid, 2);
	} else if (IS("rst-cancel")) {
		headers_ok(k, sid, NULL, NULL);
		rst(k, sid, 8);
	} else if (IS("enhance-calm")) {
		rst(k, sid, 0xb);
	} else if (IS("rst-refused")) {
		rst(k, sid, 7);
	} else if (IS("refuse-once")) {
		if (atomic_fetch_add(&k->s->once, 1) == 0)
			rst(k, sid, 7);
		else
			echo(k, sid, "second try", 10);
	} else if (IS("goaway-once")) {
		if (atomic_fetch_add(&k->s->once, 1) == 0)
			goaway(k, sid - 2 > 0 ? sid - 2 : 0, 0);
		else
			echo(k, sid, "after goaway", 12);
	} else if (IS("goaway-error")) {
		goaway(k, 0, 2);
		k->closed = true;
	} else if (IS("goaway-slow")) {
		goaway(k, sid, 0);
		headers_ok(k, sid, NULL, NULL);
		msleep(300);
		msg(k, sid, "slow", 4, false);
		trailers(k, sid, "0", NULL);
		msleep(20);
		k->closed = true;
	} else if (IS("goaway-after")) {
		goaway(k, sid, 0);
		echo(k, sid, "finished", 8);
		msleep(20);
		k->closed = true;
	} else if (IS("oversize")) {
		uint8_t b[1005] = { 0, 0x06, 0x40, 0, 0 };	/* 100 MiB */

		headers_ok(k, sid, NULL, NULL);
		data(k, sid, b, sizeof(b), false);
	} else if (IS("big-headers")) {
		struct hblock h = { 0 };
		char *v = malloc(6001), name[32];

		memset(v, 'v', 6000);
		v[6000] = 0;
		hadd(&h, ":status", "200");
		hadd(&h, "content-type", "application/grpc");
		for (int i = 0; i < 12; i++) {
			snprintf(name, sizeof(name), "x-big-%u", (unsigned)i % 100);
			hadd(&h, name, v);
		}
		free(v);
		hsend(k, sid, &h, false);
		trailers(k, sid, "0", NULL);
	} else if (IS("compressed")) {
		headers_ok(k, sid, NULL, NULL);
		msg(k, sid, "zzz", 3, true);
		trailers(k, sid, "0", NULL);
	} else if (IS("compressed-gzip")) {
		headers_ok(k, sid, "grpc-encoding", "gzip");
		msg(k, sid, "zzz", 3, true);
		msg(k, sid, "plain", 5, false);
		trailers(k, sid, "0", NULL);
	} else if (IS("no-trailers")) {
		headers_ok(k, sid, NULL, NULL);
		msg(k, sid, "x", 1, false);
		data(k, sid, "", 0, true);
	} else if (IS("truncated")) {
		headers_ok(k, sid, NULL, NULL);
		data(k, sid, "\0\0\0\0\x0a" "abc", 8, false);
		trailers(k, sid, "0", NULL);
	} else if (IS("hang")) {
		;
	} else if (IS("hang-headers")) {
		headers_ok(k, sid, NULL, NULL);
		msg(k, sid, "one", 3, false);
	} else if (IS("freeze")) {
		atomic_store(&k->s->frozen, true);
	} else if (!strncmp(sc, "pinged:", 7)) {
		/* A slow answer from a live server: PINGs answered meanwhile. */
		headers_ok(k, sid, NULL, NULL);
		pump_pings(k, atoi(sc + 7));
		msg(k, sid, "late", 4, false);
		trailers(k, sid, "0", NULL);
	} else if (!strncmp(sc, "trickle:", 8)) {
		/* "trickle:N:MS": N small messages MS apart (PINGs answered) */
		int cnt = atoi(sc + 8);
		const char *c2 = strchr(sc + 8, ':');
		int ms = c2 ? atoi(c2 + 1) : 100;

		headers_ok(k, sid, NULL, NULL);
		for (int i = 0; i < cnt && !k->closed; i++) {
			pump_pings(k, ms);
			msg(k, sid, "tick", 4, false);
		}
		trailers(k, sid, "0", NULL);
	} else if (!strncmp(sc, "stall-after:", 12)) {
		/* K messages at once, then 5 s of silence (PINGs answered),
		 * then a clean end */
		int cnt = atoi(sc + 12);

		headers_ok(k, sid, NULL, NULL);
		for (int i = 0; i < cnt; i++)
			msg(k, sid, "early", 5, false);
		pump_pings(k, 5000);
		msg(k, sid, "late", 4, false);
		trailers(k, sid, "0", NULL);
	} else if (IS("close")) {
		headers_ok(k, sid, NULL, NULL);
		data(k, sid, "\0\0\0\0\x0a" "abc", 8, false);
		msleep(10);
		k->closed = true;
	} else if (IS("cancel-me")) {
		headers_ok(k, sid, NULL, NULL);
		for (int i = 0; i < 5 && !k->closed; i++) {
			msg(k, sid, "chunk", 5, false);
			msleep(5);
		}
		trailers(k, sid, "0", NULL);
	} else {
		trailers_only(k, sid, "200", "application/grpc", "12",
			      "unknown%20scenario", NULL);
	}
#undef IS
}

static int rd(struct kconn *k, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		struct pollfd pf = { .fd = k->fd, .events = POLLIN };
		ssize_t r;

		if (atomic_load(&k->s->stop) || k->closed)
			return -1;
		if (atomic_load(&k->s->frozen)) {
			msleep(10);
			continue;
		}
		if (poll(&pf, 1, 50) <= 0)
			continue;
		r = recv(k->fd, b, n, 0);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* For ms: read frames, answering PINGs (and ignoring the rest). */
static void pump_pings(struct kconn *k, int ms)
{
	struct timespec t0, t1;
	uint8_t h[9], p[256];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pf = { .fd = k->fd, .events = POLLIN };
		long el;
		size_t len;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= ms || atomic_load(&k->s->stop))
			return;
		if (poll(&pf, 1, ms - el > 50 ? 50 : (int)(ms - el)) <= 0)
			continue;
		if (rd(k, h, 9))
			return;
		len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		if (len > sizeof(p) || rd(k, p, len))
			return;	/* not expected while a call is pending */
		if (h[3] == F_PING && !(h[4] & ACK)) {
			atomic_fetch_add(&k->s->pings, 1);
			frame(k, F_PING, ACK, 0, p, len);
		} else if (h[3] == F_RST) {
			atomic_fetch_add(&k->s->rst_seen, 1);
		}
	}
}

static void serve(struct rawsrv *s, int fd)
{
	struct kconn *k = calloc(1, sizeof(*k));
	uint8_t pre[24], h[9], *p = malloc(1 << 24);

	k->s = s;
	k->fd = fd;
	if (rd(k, pre, 24) ||
	    (!s->mute && memcmp(pre, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24)))
		goto out;
	if (!s->mute) {
		int mc = atomic_load(&s->max_concurrent);
		uint8_t st[6] = { 0, 3, (uint8_t)(mc >> 24), (uint8_t)(mc >> 16),
				  (uint8_t)(mc >> 8), (uint8_t)mc };

		frame(k, F_SETTINGS, 0, 0, st, mc ? 6 : 0);
	}
	while (!rd(k, h, 9)) {
		size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		int type = h[3], flags = h[4];
		int32_t sid = (int32_t)((uint32_t)(h[5] & 0x7f) << 24 |
					(uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]);
		int slot = sid / 2 % 64;

		if (s->mute) {
			if (rd(k, p, 1))	/* anything: just keep reading */
				break;
			continue;
		}
		if (rd(k, p, len))
			break;
		switch (type) {
		case F_SETTINGS:
			if (!(flags & ACK))
				frame(k, F_SETTINGS, ACK, 0, NULL, 0);
			break;
		case F_PING:
			if (!(flags & ACK)) {
				atomic_fetch_add(&s->pings, 1);
				frame(k, F_PING, ACK, 0, p, len);
			}
			break;
		case F_RST:
			atomic_fetch_add(&s->rst_seen, 1);
			break;
		case F_HEADERS:
			k->st[slot].id = sid;
			k->st[slot].len = 0;
			if (flags & END_STREAM)
				respond(k, sid, k->st[slot].buf, 0);
			break;
		case F_DATA:
			if (k->st[slot].id != sid)
				break;
			if (k->st[slot].len + len <= sizeof(k->st[slot].buf)) {
				memcpy(k->st[slot].buf + k->st[slot].len, p, len);
				k->st[slot].len += len;
			}
			if (flags & END_STREAM)
				respond(k, sid, k->st[slot].buf, k->st[slot].len);
			break;
		}
		if (k->closed)
			break;
	}
out:
	shutdown(fd, SHUT_RDWR);
	close(fd);
	free(p);
	free(k);
}

struct job {
	struct rawsrv *s;
	int fd;
};

static void *serve_thread(void *arg)
{
	struct job *j = arg;

	serve(j->s, j->fd);
	atomic_fetch_sub(&j->s->serving, 1);
	free(j);
	return NULL;
}

/* One thread per connection: a draining connection and its successor
 * are served at the same time, as by a real server. */
static void *run(void *arg)
{
	struct rawsrv *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd pf = { .fd = s->lfd, .events = POLLIN };
		struct job *j;
		pthread_t th;
		int fd;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->conns, 1);
		j = malloc(sizeof(*j));
		j->s = s;
		j->fd = fd;
		atomic_fetch_add(&s->serving, 1);
		if (pthread_create(&th, NULL, serve_thread, j)) {
			atomic_fetch_sub(&s->serving, 1);
			close(fd);
			free(j);
			continue;
		}
		pthread_detach(th);
	}
	while (atomic_load(&s->serving))
		msleep(5);
	return NULL;
}

int rawsrv_start(struct rawsrv *s, bool mute)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->mute = mute;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s->lfd, 16) || getsockname(s->lfd, (struct sockaddr *)&a, &al))
		return -1;
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->th, NULL, run, s) ? -1 : 0;
}

void rawsrv_stop(struct rawsrv *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->th, NULL);
	close(s->lfd);
}
