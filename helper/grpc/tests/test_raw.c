// SPDX-License-Identifier: GPL-2.0
/*
 * The client against a hand-rolled HTTP/2 server that does what real
 * servers rarely do on purpose: split messages everywhere, trailers-only
 * errors, RST_STREAM, GOAWAY, lies about lengths, silence.
 */
#include "t.h"
#include "grpc.h"
#include "rawh2.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct res {
	struct grpc_status st;
	unsigned n;
	uint8_t *first[3];
	size_t first_len[3];
	size_t total;
	unsigned ncompressed;
	unsigned stop_after;	/* on_msg returns 1 after this many */
};

static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct res *r = ud;

	if (r->n < 3) {
		r->first[r->n] = malloc(n + 1);
		memcpy(r->first[r->n], m, n);
		r->first[r->n][n] = 0;
		r->first_len[r->n] = n;
	}
	r->n++;
	r->total += n;
	r->ncompressed += compressed;
	return r->stop_after && r->n >= r->stop_after;
}

static void res_free(struct res *r)
{
	for (int i = 0; i < 3; i++)
		free(r->first[i]);
	grpc_status_free(&r->st);
	memset(r, 0, sizeof(*r));
}

static struct rawsrv srv;
static struct grpc_conn *mkconn(int port, int retries)
{
	struct grpc_conn_opts o = {
		.transparent_retries = retries, .connect_timeout_ms = 2000,
	};

	return t_conn_new(&o, "127.0.0.1", port);
}

static struct grpc_conn *start(bool mute, int retries)
{
	if (rawsrv_start(&srv, mute)) {
		perror("rawsrv_start");
		return NULL;
	}
	return mkconn(srv.port, retries);
}

static void stop(struct grpc_conn *c)
{
	grpc_conn_free(c);
	rawsrv_stop(&srv);
}

static int run(struct grpc_conn *c, const char *scenario, int64_t timeout_ms,
	       struct res *r)
{
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = scenario,
		.req_len = strlen(scenario), .timeout_ms = timeout_ms,
		.on_msg = on_msg, .ud = r,
	};

	return grpc_call_run(c, &o, &r->st);
}

static void t_echo_and_split(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	bool pattern = true;

	REQUIRE(c);
	CHECK_INT(run(c, "echo:hello", 2000, &r), GRPC_OK);
	CHECK_INT(r.n, 1);
	CHECK_STR((char *)r.first[0], "hello");
	CHECK_STR(r.st.message, "");
	CHECK(!r.st.transport);
	res_free(&r);

	CHECK_INT(run(c, "split", 2000, &r), GRPC_OK);
	CHECK_INT(r.n, 3);
	CHECK_STR((char *)r.first[0], "alpha");
	CHECK_INT(r.first_len[1], 0);
	CHECK_INT(r.first_len[2], 20000);
	for (int i = 0; i < 20000 && r.first[2]; i++)
		pattern &= r.first[2][i] == (uint8_t)i;
	CHECK(pattern);
	res_free(&r);

	CHECK_INT(run(c, "many", 2000, &r), GRPC_OK);
	CHECK_INT(r.n, 1000);
	CHECK_STR((char *)r.first[2], "m0002");
	res_free(&r);
	stop(c);
}

static void t_trailers_only(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(run(c, "trailers-only-5", 2000, &r), GRPC_NOT_FOUND);
	CHECK_STR(r.st.message, "no such blob: \xe2\x9c\x93");
	CHECK_INT(r.st.http_status, 200);
	CHECK(!r.st.transport);
	CHECK_INT(r.n, 0);
	res_free(&r);

	CHECK_INT(run(c, "details", 2000, &r), GRPC_RESOURCE_EXHAUSTED);
	CHECK_STR(r.st.message, "slow down");
	CHECK_INT(r.st.details_len, 7);
	CHECK(r.st.details && !memcmp(r.st.details, "\x08\x08\x12\x03" "abc", 7));
	res_free(&r);

	CHECK_INT(run(c, "nonsense", 2000, &r), GRPC_UNIMPLEMENTED);
	res_free(&r);
	stop(c);
}

static void t_http_status(void)
{
	static const struct { const char *sc; int code, http; } cases[] = {
		{ "http-503", GRPC_UNAVAILABLE, 503 },
		{ "http-404", GRPC_UNIMPLEMENTED, 404 },
		{ "http-401", GRPC_UNAUTHENTICATED, 401 },
		{ "http-500-body", GRPC_UNKNOWN, 500 },
		{ "bad-ctype", GRPC_UNKNOWN, 200 },
	};
	struct grpc_conn *c = start(false, -1);

	REQUIRE(c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct res r = { 0 };

		CHECK_INT(run(c, cases[i].sc, 2000, &r), cases[i].code);
		CHECK_INT(r.st.http_status, cases[i].http);
		CHECK_INT(r.n, 0);
		if (cases[i].http != 200)
			CHECK_CONTAINS(r.st.message, "HTTP status");
		res_free(&r);
	}
	stop(c);
}

static void t_rst_stream(void)
{
	struct grpc_conn *c = start(false, -1);
	struct grpc_conn_stats s;
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(run(c, "rst-mid", 2000, &r), GRPC_INTERNAL);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.st.h2_error, 2);
	CHECK(r.st.transport && !r.st.unprocessed);
	CHECK_CONTAINS(r.st.message, "RST_STREAM");
	res_free(&r);

	CHECK_INT(run(c, "rst-cancel", 2000, &r), GRPC_CANCELLED);
	res_free(&r);
	CHECK_INT(run(c, "enhance-calm", 2000, &r), GRPC_RESOURCE_EXHAUSTED);
	res_free(&r);

	/* refused: retried once transparently, then UNAVAILABLE */
	CHECK_INT(run(c, "rst-refused", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(r.st.unprocessed);
	CHECK_INT(r.st.h2_error, 7);
	CHECK_CONTAINS(r.st.message, "REFUSED_STREAM");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.retries, 1);

	CHECK_INT(run(c, "refuse-once", 2000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "second try");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.retries, 2);
	CHECK_INT(s.connects, 1);	/* all on one connection */
	CHECK_INT(atomic_load(&srv.conns), 1);
	stop(c);
}

struct cancel_ctx {
	struct grpc_call *call;
	int msgs, done;
};

static void count_done(void *ud, const struct grpc_status *st)
{
	(void)st;
	((struct cancel_ctx *)ud)->done++;
}

static void t_goaway(void)
{
	struct grpc_conn *c = start(false, 0);	/* no transparent retries */
	struct grpc_conn_stats s;
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(run(c, "echo:warm", 2000, &r), GRPC_OK);
	res_free(&r);
	CHECK_INT(run(c, "goaway-once", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(r.st.unprocessed && r.st.transport);
	CHECK_CONTAINS(r.st.message, "GOAWAY");
	res_free(&r);
	CHECK_CONTAINS(t_conn_log, "GOAWAY");
	/* the next call reconnects */
	CHECK_INT(run(c, "goaway-once", 2000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "after goaway");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.goaways, 1);
	CHECK_INT(s.connects, 2);
	stop(c);

	/* with a transparent retry the caller never sees it */
	c = start(false, 1);
	REQUIRE(c);
	CHECK_INT(run(c, "goaway-once", 2000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "after goaway");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.retries, 1);
	CHECK_INT(s.connects, 2);
	stop(c);

	/* a stream at or below last_stream_id finishes normally */
	c = start(false, 0);
	REQUIRE(c);
	CHECK_INT(run(c, "goaway-after", 2000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "finished");
	res_free(&r);
	CHECK_INT(run(c, "echo:again", 2000, &r), GRPC_OK);
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connects, 2);
	stop(c);

	/* a draining connection does not hold up new calls */
	c = start(false, 0);
	REQUIRE(c);
	{
		struct cancel_ctx a = { 0 }, b = { 0 };
		struct grpc_call_opts o = {
			.method = "/casfs.test.Raw/Call", .req = "goaway-slow",
			.req_len = 11, .timeout_ms = 3000, .on_done = count_done,
			.ud = &a,
		};

		REQUIRE(grpc_call_start(c, &o));
		for (int i = 0; i < 200; i++) {
			grpc_conn_get_stats(c, &s);
			if (s.goaways)
				break;
			grpc_conn_wait(c, 5);
		}
		CHECK_INT(s.goaways, 1);
		o.req = "echo:b";
		o.req_len = 6;
		o.ud = &b;
		REQUIRE(grpc_call_start(c, &o));
		for (int i = 0; i < 300 && !b.done; i++)
			grpc_conn_wait(c, 5);
		CHECK_INT(b.done, 1);
		CHECK_INT(a.done, 0);	/* still streaming on the old one */
		grpc_conn_get_stats(c, &s);
		CHECK_INT(s.transports, 2);
		for (int i = 0; i < 300 && !a.done; i++)
			grpc_conn_wait(c, 5);
		CHECK_INT(a.done, 1);
		CHECK_INT(a.msgs, 0);
		grpc_conn_get_stats(c, &s);
		CHECK_INT(s.calls_ok, 2);
	}
	stop(c);

	/* GOAWAY with an error, then the connection closes */
	c = start(false, 0);
	REQUIRE(c);
	CHECK_INT(run(c, "goaway-error", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(r.st.unprocessed);
	res_free(&r);
	CHECK_INT(run(c, "echo:recovered", 2000, &r), GRPC_OK);
	res_free(&r);
	stop(c);
}

static void t_hostile_framing(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	int64_t t0;

	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "oversize", 5000, &r), GRPC_RESOURCE_EXHAUSTED);
	CHECK(t_now_ms() - t0 < 2000);
	CHECK_CONTAINS(r.st.message, "larger than max");
	res_free(&r);
	CHECK_INT(run(c, "compressed", 2000, &r), GRPC_INTERNAL);
	CHECK_CONTAINS(r.st.message, "compressed");
	CHECK_INT(r.n, 0);
	res_free(&r);
	CHECK_INT(run(c, "no-trailers", 2000, &r), GRPC_INTERNAL);
	CHECK_CONTAINS(r.st.message, "without trailers");
	res_free(&r);
	CHECK_INT(run(c, "truncated", 2000, &r), GRPC_INTERNAL);
	CHECK_CONTAINS(r.st.message, "inside a message");
	res_free(&r);
	CHECK_INT(run(c, "big-headers", 2000, &r), GRPC_RESOURCE_EXHAUSTED);
	CHECK_CONTAINS(r.st.message, "headers");
	res_free(&r);
	/* and the connection still works */
	CHECK_INT(run(c, "echo:still fine", 2000, &r), GRPC_OK);
	res_free(&r);
	{
		struct grpc_conn_stats s;

		grpc_conn_get_stats(c, &s);
		CHECK_INT(s.connects, 1);
	}
	stop(c);
}

static void t_compression_negotiated(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = "compressed-gzip",
		.req_len = 15, .timeout_ms = 2000, .accept_encoding = "deflate, gzip",
		.on_msg = on_msg, .ud = &r,
	};

	REQUIRE(c);
	CHECK_INT(grpc_call_run(c, &o, &r.st), GRPC_OK);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.ncompressed, 1);
	res_free(&r);
	/* not offered: the compressed message is an error */
	CHECK_INT(run(c, "compressed-gzip", 2000, &r), GRPC_INTERNAL);
	res_free(&r);
	stop(c);
}

static void t_deadline(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	int64_t t0, dt;

	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "hang", 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 2000);
	CHECK(r.st.transport);
	res_free(&r);
	t0 = t_now_ms();
	CHECK_INT(run(c, "hang-headers", 200, &r), GRPC_DEADLINE_EXCEEDED);
	CHECK_INT(r.n, 1);
	CHECK(t_now_ms() - t0 < 1000);
	res_free(&r);
	/* the client reset both streams */
	for (int i = 0; i < 100 && atomic_load(&srv.rst_seen) < 2; i++)
		grpc_conn_wait(c, 10);
	CHECK_INT(atomic_load(&srv.rst_seen), 2);
	CHECK_INT(run(c, "echo:ok", 2000, &r), GRPC_OK);
	res_free(&r);
	stop(c);
}

static struct grpc_conn *mkconn_live(int port, int keepalive_ms, int ping_timeout_ms,
				     unsigned connections);

/* run() with an idle timeout as well */
static int run_idle(struct grpc_conn *c, const char *scenario, int64_t timeout_ms,
		    int64_t idle_ms, struct res *r)
{
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = scenario,
		.req_len = strlen(scenario), .timeout_ms = timeout_ms,
		.idle_timeout_ms = idle_ms, .on_msg = on_msg, .ud = r,
	};

	return grpc_call_run(c, &o, &r->st);
}

/*
 * Issue 11 item 3: an idle timeout measures progress. A response that
 * keeps coming (a message every 100 ms for 2 s) outlives an idle
 * timeout of 300 ms many times over; without it, a total deadline of
 * the same 300 ms cuts it short.
 */
static void t_idle_progress(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	int64_t t0, dt;

	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "trickle:20:100", 0, 300, &r), GRPC_OK);
	dt = t_now_ms() - t0;
	CHECK_INT(r.n, 20);
	CHECK_STR((char *)r.first[0], "tick");
	CHECK(dt >= 1900 && dt < 6000);
	res_free(&r);
	/* the same with only a total deadline of 300 ms fails */
	t0 = t_now_ms();
	CHECK_INT(run(c, "trickle:20:100", 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 1500);
	CHECK(r.n >= 1 && r.n < 20);
	CHECK_CONTAINS(r.st.message, "deadline exceeded");
	res_free(&r);
	stop(c);
}

/*
 * A response that stops coming fails ~300 ms after its last bytes, even
 * though the server is alive: PINGs are answered (keepalive 100 ms here),
 * and those do not count as the call's progress.
 */
static void t_idle_stall(void)
{
	struct grpc_conn *c;
	struct grpc_conn_stats s;
	struct res r = { 0 };
	int64_t t0, dt;

	REQUIRE(rawsrv_start(&srv, false) == 0);
	c = mkconn_live(srv.port, 100, 2000, 0);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "stall-after:2", 0, 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 1500);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.st.messages, 2);
	CHECK(r.st.transport);
	CHECK_CONTAINS(r.st.message, "no data for 300 ms");
	CHECK_CONTAINS(r.st.message, "after some messages");
	CHECK(atomic_load(&srv.pings) >= 1);	/* the server was alive */
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.dead_transports, 0);
	res_free(&r);
	/* the client reset the stream */
	for (int i = 0; i < 100 && atomic_load(&srv.rst_seen) < 1; i++)
		grpc_conn_wait(c, 10);
	CHECK_INT(atomic_load(&srv.rst_seen), 1);
	grpc_conn_free(c);
	rawsrv_stop(&srv);

	/* nothing at all after the request (no HEADERS either) */
	c = start(false, -1);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "hang", 0, 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 1500);
	CHECK_INT(r.n, 0);
	CHECK(r.st.transport);
	CHECK_STR(r.st.message, "no data for 300 ms");
	res_free(&r);
	stop(c);
}

/* Idle and total together: whichever comes first. */
static void t_idle_and_total(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };
	int64_t t0, dt;

	REQUIRE(c);
	/* progress all along: the total (800 ms) ends it */
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "trickle:20:100", 800, 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 790 && dt < 1800);
	CHECK(r.n >= 4 && r.n < 20);
	CHECK_STR(r.st.message, "deadline exceeded (after some messages)");
	res_free(&r);
	/* a stall: the idle bound (300 ms) ends it long before the 5 s total */
	stop(c);
	c = start(false, -1);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "stall-after:1", 5000, 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 1500);
	CHECK_INT(r.n, 1);
	CHECK_CONTAINS(r.st.message, "no data for 300 ms");
	res_free(&r);
	/* a total shorter than the idle bound wins on a stall too */
	stop(c);
	c = start(false, -1);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "hang", 200, 1000, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 190 && dt < 900);
	CHECK_STR(r.st.message, "deadline exceeded");
	res_free(&r);
	stop(c);
}

/*
 * A queued call that never gets a transport (the TCP connect hangs: a
 * listener whose accept queue is full) fails by the idle bound from when
 * it was queued, not after the 5 s connect timeout.
 */
static void t_idle_queued(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct grpc_conn_opts o = { .connect_timeout_ms = 5000 };
	struct grpc_conn *c;
	struct res r = { 0 };
	int64_t t0, dt;

	REQUIRE(lfd >= 0 && filler >= 0);
	REQUIRE(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 0) == 0 &&
		getsockname(lfd, (struct sockaddr *)&a, &al) == 0 &&
		connect(filler, (struct sockaddr *)&a, sizeof(a)) == 0);
	c = t_conn_new(&o, "127.0.0.1", ntohs(a.sin_port));
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run_idle(c, "echo:x", 0, 300, &r), GRPC_DEADLINE_EXCEEDED);
	dt = t_now_ms() - t0;
	CHECK(dt >= 290 && dt < 1500);
	CHECK(r.st.transport);
	CHECK_STR(r.st.message, "no data for 300 ms (still waiting for a connection)");
	res_free(&r);
	grpc_conn_free(c);
	close(filler);
	close(lfd);
}

static void t_connection_lost(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(run(c, "close", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(r.st.transport);
	CHECK(!r.st.unprocessed);
	CHECK_CONTAINS(r.st.message, "closed");
	res_free(&r);
	CHECK_INT(run(c, "echo:reconnected", 2000, &r), GRPC_OK);
	res_free(&r);
	CHECK_INT(atomic_load(&srv.conns), 2);
	stop(c);
}

static void t_connect_refused(void)
{
	struct grpc_conn *c;
	struct grpc_conn_stats s;
	struct res r = { 0 };
	int port;

	/* a port nobody listens on: start and stop a server */
	REQUIRE(rawsrv_start(&srv, false) == 0);
	port = srv.port;
	rawsrv_stop(&srv);
	c = mkconn(port, -1);
	REQUIRE(c);
	CHECK_INT(run(c, "echo:x", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(r.st.unprocessed);
	CHECK_CONTAINS(r.st.message, "refused");
	res_free(&r);
	/* within the backoff (100 ms +-20%): fails at once, no new connect */
	CHECK_INT(run(c, "echo:x", 2000, &r), GRPC_UNAVAILABLE);
	CHECK_CONTAINS(r.st.message, "refused");
	CHECK_CONTAINS(r.st.message, "reconnecting in");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connects, 1);
	usleep(200 * 1000);
	CHECK_INT(run(c, "echo:x", 2000, &r), GRPC_UNAVAILABLE);
	CHECK(!strstr(r.st.message, "reconnecting in"));
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connects, 2);	/* tried again after the backoff */
	CHECK_INT(s.connect_failures, 2);
	grpc_conn_free(c);
}

static struct grpc_conn *mkconn_live(int port, int keepalive_ms, int ping_timeout_ms,
				     unsigned connections)
{
	struct grpc_conn_opts o = {
		.keepalive_ms = keepalive_ms, .ping_timeout_ms = ping_timeout_ms,
		.connections = connections, .connect_timeout_ms = 2000,
	};

	return t_conn_new(&o, "127.0.0.1", port);
}

/*
 * Issue 11 item 1: a server that stops answering without closing (a
 * stopped process: its kernel still ACKs TCP) is found dead by a PING
 * within keepalive + ping timeout, not by TCP after ~15 minutes; the
 * next call connects anew and works once the server is back.
 */
static void t_dead_server_ping(void)
{
	struct grpc_conn_stats s;
	struct grpc_conn *c;
	struct res r = { 0 };
	int64_t t0, el;

	REQUIRE(rawsrv_start(&srv, false) == 0);
	c = mkconn_live(srv.port, 200, 300, 1);
	REQUIRE(c);
	CHECK_INT(run(c, "echo:before", 2000, &r), GRPC_OK);
	res_free(&r);
	t0 = t_now_ms();
	CHECK_INT(run(c, "freeze", 20000, &r), GRPC_UNAVAILABLE);
	el = t_now_ms() - t0;
	CHECK(r.st.transport);
	CHECK_CONTAINS(r.st.message, "PING");
	CHECK(el >= 450 && el < 2000);
	printf("    frozen server found dead after %lld ms\n", (long long)el);
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.dead_transports, 1);
	CHECK(s.pings >= 1);
	atomic_store(&srv.frozen, false);
	CHECK_INT(run(c, "echo:after", 2000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "after");
	res_free(&r);
	CHECK_INT(atomic_load(&srv.conns), 2);
	stop(c);
}

/* A slow answer from a live server: PINGs answered, so the call lives. */
static void t_slow_live_server(void)
{
	struct grpc_conn_stats s;
	struct grpc_conn *c;
	struct res r = { 0 };

	REQUIRE(rawsrv_start(&srv, false) == 0);
	c = mkconn_live(srv.port, 200, 300, 1);
	REQUIRE(c);
	CHECK_INT(run(c, "pinged:1500", 5000, &r), GRPC_OK);
	CHECK_STR((char *)r.first[0], "late");
	res_free(&r);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.dead_transports, 0);
	/* 200 ms of silence, then the interval doubles: 200, 400, 800 */
	CHECK(atomic_load(&srv.pings) >= 2 && atomic_load(&srv.pings) <= 4);
	printf("    %d PINGs in 1.5 s of silence\n", atomic_load(&srv.pings));
	/* keepalive -1: no PINGs at all */
	grpc_conn_free(c);
	atomic_store(&srv.pings, 0);
	c = mkconn_live(srv.port, -1, 300, 1);
	REQUIRE(c);
	CHECK_INT(run(c, "pinged:800", 5000, &r), GRPC_OK);
	res_free(&r);
	CHECK_INT(atomic_load(&srv.pings), 0);
	stop(c);
}


/* A TLS client against a server that never answers the ClientHello. */
static void t_connect_timeout(void)
{
	struct grpc_conn_opts o = { 0 };
	struct grpc_conn *c;
	struct res r = { 0 };
	char url[64], err[256];
	int64_t t0;

	REQUIRE(rawsrv_start(&srv, true) == 0);
	snprintf(url, sizeof(url), "grpcs://127.0.0.1:%d", srv.port);
	o.url = url;
	o.connect_timeout_ms = 300;
	c = grpc_conn_new(&o, err, sizeof(err));
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 5000, &r), GRPC_UNAVAILABLE);
	CHECK_CONTAINS(r.st.message, "timed out");
	CHECK(t_now_ms() - t0 < 1500);
	res_free(&r);
	/* a deadline shorter than the connect timeout wins (past the backoff) */
	usleep(200 * 1000);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 100, &r), GRPC_DEADLINE_EXCEEDED);
	CHECK(t_now_ms() - t0 < 1000);
	res_free(&r);
	grpc_conn_free(c);
	rawsrv_stop(&srv);
}

/* h2c to a server that accepts and never says a word of HTTP/2. */
static void t_no_settings(void)
{
	struct grpc_conn *c;
	struct res r = { 0 };
	int64_t t0;

	REQUIRE(rawsrv_start(&srv, true) == 0);
	c = mkconn(srv.port, -1);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 0, &r), GRPC_UNAVAILABLE);	/* no deadline */
	CHECK_CONTAINS(r.st.message, "SETTINGS");
	CHECK(t_now_ms() - t0 >= 1900 && t_now_ms() - t0 < 5000);
	res_free(&r);
	grpc_conn_free(c);
	rawsrv_stop(&srv);
}

struct multi {
	int done, ok;
	char want[32];
	struct res r;
};

static void multi_done(void *ud, const struct grpc_status *st)
{
	struct multi *m = ud;

	m->done++;
	if (st->code == GRPC_OK && m->r.n == 1 && !strcmp((char *)m->r.first[0], m->want))
		m->ok++;
}

static int multi_msg(void *ud, const uint8_t *p, size_t n, bool compressed)
{
	return on_msg(&((struct multi *)ud)->r, p, n, compressed);
}

/* Many calls at once on one connection, past MAX_CONCURRENT_STREAMS. */
static void t_concurrent(void)
{
	enum { N = 40 };
	struct grpc_conn *c;
	struct multi *m = calloc(N, sizeof(*m));
	struct grpc_conn_stats s;
	int done = 0, ok = 0;

	REQUIRE(rawsrv_start(&srv, false) == 0);
	atomic_store(&srv.max_concurrent, 5);
	c = mkconn(srv.port, -1);
	REQUIRE(c);
	for (int i = 0; i < N; i++) {
		char req[40];
		struct grpc_call_opts o = {
			.method = "/casfs.test.Raw/Call", .req = req,
			.timeout_ms = 5000, .on_msg = multi_msg,
			.on_done = multi_done, .ud = &m[i],
		};

		snprintf(m[i].want, sizeof(m[i].want), "call-%d", i);
		snprintf(req, sizeof(req), "echo:%s", m[i].want);
		o.req_len = strlen(req);
		REQUIRE(grpc_call_start(c, &o));
	}
	for (int k = 0; k < 500 && done < N; k++) {
		grpc_conn_wait(c, 20);
		done = ok = 0;
		for (int i = 0; i < N; i++) {
			done += m[i].done;
			ok += m[i].ok;
		}
	}
	CHECK_INT(done, N);
	CHECK_INT(ok, N);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connects, 1);
	CHECK_INT(s.calls_ok, N);
	CHECK_INT(s.active_calls, 0);
	for (int i = 0; i < N; i++)
		res_free(&m[i].r);
	free(m);
	stop(c);
}

static int cancel_self(void *ud, const uint8_t *p, size_t n, bool compressed)
{
	struct cancel_ctx *x = ud;

	(void)p;
	(void)n;
	(void)compressed;
	if (++x->msgs == 2)
		grpc_call_cancel(x->call);
	return 0;
}

static void t_cancel(void)
{
	struct grpc_conn *c = start(false, -1);
	struct res r = { .stop_after = 2 };
	struct cancel_ctx x = { 0 };
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = "cancel-me", .req_len = 9,
		.on_msg = cancel_self, .on_done = count_done, .ud = &x,
	};

	REQUIRE(c);
	/* on_msg asks to stop */
	CHECK_INT(run(c, "cancel-me", 2000, &r), GRPC_CANCELLED);
	CHECK_INT(r.n, 2);
	CHECK_CONTAINS(r.st.message, "callback");
	res_free(&r);
	/* grpc_call_cancel from its own on_msg: no on_done, no more messages */
	x.call = grpc_call_start(c, &o);
	REQUIRE(x.call);
	for (int i = 0; i < 30; i++)
		grpc_conn_wait(c, 10);
	CHECK_INT(x.msgs, 2);
	CHECK_INT(x.done, 0);
	/* from outside, while it hangs */
	o.req = "hang";
	o.req_len = 4;
	o.on_msg = NULL;
	x.call = grpc_call_start(c, &o);
	REQUIRE(x.call);
	for (int i = 0; i < 10; i++)
		grpc_conn_wait(c, 10);
	grpc_call_cancel(x.call);
	/* and while still queued */
	grpc_call_cancel(grpc_call_start(c, &o));
	for (int i = 0; i < 100 && atomic_load(&srv.rst_seen) < 3; i++)
		grpc_conn_wait(c, 10);
	CHECK_INT(atomic_load(&srv.rst_seen), 3);
	CHECK_INT(x.done, 0);
	CHECK_INT(run(c, "echo:after cancels", 2000, &r), GRPC_OK);
	res_free(&r);
	stop(c);
}

static void t_bad_args(void)
{
	static const char *const bad[] = {
		"http://127.0.0.1:1", "grpc://", "grpc://h:0", "grpc://h:99999",
		"grpc://h:1/path", "grpc://h:x", "grpc://[::1", "grpc://a b:1",
		"grpc://user@h:1",
	};
	struct grpc_conn_opts o = { 0 };
	struct grpc_conn *c;
	char err[256];
	struct grpc_call_opts co = { .method = "noslash" };
	struct grpc_status st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.url = bad[i];
		c = grpc_conn_new(&o, err, sizeof(err));
		if (c)
			printf("    accepted %s\n", bad[i]);
		CHECK(!c);
		grpc_conn_free(c);
	}
	o.url = "grpc://[::1]:50051/";
	c = grpc_conn_new(&o, err, sizeof(err));
	CHECK(c);
	grpc_conn_free(c);
	o.url = "grpc://127.0.0.1:1";
	o.ca_file = "/nonexistent";
	CHECK(!grpc_conn_new(&o, err, sizeof(err)));
	CHECK_CONTAINS(err, "grpcs://");
	o.url = "grpcs://127.0.0.1:1";
	CHECK(!grpc_conn_new(&o, err, sizeof(err)));
	CHECK_CONTAINS(err, "/nonexistent");
	o.ca_file = NULL;
	o.url = "grpc://127.0.0.1:1";
	c = grpc_conn_new(&o, err, sizeof(err));
	REQUIRE(c);
	errno = 0;
	CHECK(!grpc_call_start(c, &co));
	CHECK_INT(errno, EINVAL);
	CHECK_INT(grpc_call_run(c, &co, &st), GRPC_INVALID_ARGUMENT);
	grpc_status_free(&st);
	co.method = "/casfs.test.Raw/Call";
	co.on_done = count_done;
	co.idle_timeout_ms = -1;	/* negative: refused */
	errno = 0;
	CHECK(!grpc_call_start(c, &co));
	CHECK_INT(errno, EINVAL);
	co.idle_timeout_ms = INT64_MAX;	/* would overflow in ns */
	errno = 0;
	CHECK(!grpc_call_start(c, &co));
	CHECK_INT(errno, EINVAL);
	grpc_conn_free(c);
}

/* The conn's fd is all a poll() loop needs: it wakes for a deadline. */
static void t_poll_fd(void)
{
	struct grpc_conn *c = start(false, -1);
	struct cancel_ctx x = { 0 };
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = "hang", .req_len = 4,
		.timeout_ms = 150, .on_done = count_done, .ud = &x,
	};
	int64_t t0 = t_now_ms();

	REQUIRE(c);
	CHECK_INT(grpc_conn_events(c), POLLIN);
	REQUIRE(grpc_call_start(c, &o));
	while (!x.done && t_now_ms() - t0 < 2000) {
		struct pollfd p = { .fd = grpc_conn_fd(c), .events = grpc_conn_events(c) };

		poll(&p, 1, -1);	/* no timeout: the fd must wake us */
		grpc_conn_step(c);
	}
	CHECK_INT(x.done, 1);
	CHECK(t_now_ms() - t0 < 1500);
	stop(c);
}

static const struct test tests[] = {
	{ "echo_and_split", t_echo_and_split },
	{ "trailers_only", t_trailers_only },
	{ "http_status", t_http_status },
	{ "rst_stream", t_rst_stream },
	{ "goaway", t_goaway },
	{ "hostile_framing", t_hostile_framing },
	{ "compression_negotiated", t_compression_negotiated },
	{ "deadline", t_deadline },
	{ "idle_progress", t_idle_progress },
	{ "idle_stall", t_idle_stall },
	{ "idle_and_total", t_idle_and_total },
	{ "idle_queued", t_idle_queued },
	{ "connection_lost", t_connection_lost },
	{ "connect_refused", t_connect_refused },
	{ "connect_timeout", t_connect_timeout },
	{ "dead_server_ping", t_dead_server_ping },
	{ "slow_live_server", t_slow_live_server },
	{ "no_settings", t_no_settings },
	{ "concurrent", t_concurrent },
	{ "cancel", t_cancel },
	{ "bad_args", t_bad_args },
	{ "poll_fd", t_poll_fd },
	{ NULL, NULL },
};

const struct suite raw_suite = { "raw", tests, NULL, NULL };
