// SPDX-License-Identifier: GPL-2.0
/*
 * Name resolution off the event loop and a timeout per address
 * (resolve.c, conn.c's connect_next): without real DNS, through the
 * resolver hook in internal.h, a fake getaddrinfo that can be slow and
 * returns addresses of our choosing, and a local "blackhole" that never
 * answers a SYN.
 */
#include "t.h"
#include "grpc.h"
#include "internal.h"
#include "rawh2.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct rawsrv srv;
static struct grpc_conn *mkconn(const char *host, int port, int connect_ms)
{
	struct grpc_conn_opts o = { .connect_timeout_ms = connect_ms };

	return t_conn_new(&o, host, port);
}

static int run(struct grpc_conn *c, const char *scenario, int64_t timeout_ms,
	       struct grpc_status *st)
{
	struct grpc_call_opts o = {
		.method = "/casfs.test.Raw/Call", .req = scenario,
		.req_len = strlen(scenario), .timeout_ms = timeout_ms,
	};

	return grpc_call_run(c, &o, st);
}

/*
 * The fake resolver, on the lookup thread: waits delay_ms (or until
 * released), then answers 127.0.0.1 at each of ports[]. Its lists are
 * counted, so a test can see the late answer freed (through the hook).
 */
static struct {
	int delay_ms;
	int ports[2];
	int naddr;
	atomic_int calls, inside, release, lists;
} fake;

struct fake_ai {
	struct addrinfo ai;		/* first: freed as the whole node */
	struct sockaddr_in sa;
};

static int fake_getaddrinfo(const char *host, const char *port,
			    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo *head = NULL, **tail = &head;

	(void)host;
	(void)port;
	(void)hints;
	atomic_fetch_add(&fake.calls, 1);
	atomic_fetch_add(&fake.inside, 1);
	for (int i = 0; i < fake.delay_ms / 10 && !atomic_load(&fake.release); i++)
		usleep(10000);
	for (int i = 0; i < fake.naddr; i++) {
		struct fake_ai *n = calloc(1, sizeof(*n));

		n->sa.sin_family = AF_INET;
		n->sa.sin_port = htons((uint16_t)fake.ports[i]);
		n->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		n->ai.ai_family = AF_INET;
		n->ai.ai_socktype = SOCK_STREAM;
		n->ai.ai_protocol = IPPROTO_TCP;
		n->ai.ai_addr = (struct sockaddr *)&n->sa;
		n->ai.ai_addrlen = sizeof(n->sa);
		*tail = &n->ai;
		tail = &n->ai.ai_next;
	}
	atomic_fetch_add(&fake.lists, 1);
	*res = head;
	atomic_fetch_sub(&fake.inside, 1);
	return 0;
}

static void fake_freeaddrinfo(struct addrinfo *ai)
{
	atomic_fetch_sub(&fake.lists, 1);
	while (ai) {
		struct addrinfo *next = ai->ai_next;

		free(ai);
		ai = next;
	}
}

static void fake_install(int delay_ms, int port0, int port1)
{
	fake.delay_ms = delay_ms;
	fake.ports[0] = port0;
	fake.ports[1] = port1;
	fake.naddr = port1 ? 2 : 1;
	atomic_store(&fake.calls, 0);
	atomic_store(&fake.inside, 0);
	atomic_store(&fake.release, 0);
	atomic_store(&fake.lists, 0);
	grpc_resolver_getaddrinfo = fake_getaddrinfo;
	grpc_resolver_freeaddrinfo = fake_freeaddrinfo;
}

/*
 * Let the fake answer and wait for every lookup request to be freed:
 * true if none is left within 3 s. Then back to the real resolver
 * (requests keep the hooks they started with).
 */
static bool fake_finish(void)
{
	int64_t t0 = t_now_ms();

	atomic_store(&fake.release, 1);
	while (resolve_live() && t_now_ms() - t0 < 3000)
		usleep(1000);
	grpc_resolver_getaddrinfo = getaddrinfo;
	grpc_resolver_freeaddrinfo = freeaddrinfo;
	return resolve_live() == 0;
}

/*
 * A loopback port that never answers a SYN: a listener with backlog 0
 * whose accept queue holds one connection nobody accepts. Linux drops
 * SYNs to a full accept queue, so connects hang like those to a dead
 * host. (10.255.255.1 or 192.0.2.1 would do on a real network, but in
 * this sandbox something answers their SYNs, so no test could rely on
 * them.)
 */
struct blackhole {
	int lfd, filler, port;
};

static int blackhole_open(struct blackhole *b)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	b->filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->lfd < 0 || b->filler < 0 ||
	    bind(b->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(b->lfd, 0) ||
	    getsockname(b->lfd, (struct sockaddr *)&a, &al) ||
	    connect(b->filler, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	b->port = ntohs(a.sin_port);
	return 0;
}

static void blackhole_close(struct blackhole *b)
{
	close(b->filler);
	close(b->lfd);
}

/* A real lookup (getaddrinfo on the thread) of a name. */
static void t_localhost(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct grpc_status st = { 0 };
	struct grpc_conn *c;

	if (getaddrinfo("localhost", "1", &hints, &ai)) {
		t_skip("\"localhost\" does not resolve here");
		return;
	}
	freeaddrinfo(ai);
	REQUIRE(rawsrv_start(&srv, false) == 0);
	c = mkconn("localhost", srv.port, 2000);
	REQUIRE(c);
	CHECK_INT(run(c, "echo:hi", 5000, &st), GRPC_OK);
	grpc_status_free(&st);
	CHECK_CONTAINS(t_conn_log, "resolving localhost");
	CHECK_CONTAINS(t_conn_log, "resolved, connecting");
	CHECK_INT(atomic_load(&srv.conns), 1);
	grpc_conn_free(c);
	CHECK_INT(resolve_live(), 0);
	rawsrv_stop(&srv);
}

struct done_ctx {
	int done;
	struct grpc_status st;
};

static void on_done(void *ud, const struct grpc_status *st)
{
	struct done_ctx *d = ud;

	d->done++;
	d->st.code = st->code;
}

/*
 * While a lookup hangs (2 s), its conn's step returns at once and
 * another conn, already connected, keeps serving calls; a numeric host
 * never reaches the resolver.
 */
static void t_lookup_does_not_block(void)
{
	struct grpc_conn *a, *b;
	struct grpc_status st = { 0 };
	struct done_ctx d = { 0 };
	struct grpc_call_opts co = {
		.method = "/casfs.test.Raw/Call", .req = "echo:b", .req_len = 6,
		.timeout_ms = 10000, .on_done = on_done, .ud = &d,
	};
	int64_t t0, max_step_us = 0;
	int steps = 0, a_calls = 0;

	REQUIRE(rawsrv_start(&srv, false) == 0);
	fake_install(2000, srv.port, 0);
	a = mkconn("127.0.0.1", srv.port, 2000);
	b = mkconn("slow.test", srv.port, 5000);
	REQUIRE(a && b);
	CHECK_INT(run(a, "echo:a", 2000, &st), GRPC_OK);
	grpc_status_free(&st);
	CHECK_INT(atomic_load(&fake.calls), 0);	/* an IP literal: no lookup */
	REQUIRE(grpc_call_start(b, &co));
	t0 = t_now_ms();
	while (t_now_ms() - t0 < 500) {
		struct timespec s, e;

		clock_gettime(CLOCK_MONOTONIC, &s);
		grpc_conn_step(b);
		clock_gettime(CLOCK_MONOTONIC, &e);
		steps++;
		if ((e.tv_sec - s.tv_sec) * 1000000 + (e.tv_nsec - s.tv_nsec) / 1000 >
		    max_step_us)
			max_step_us = (e.tv_sec - s.tv_sec) * 1000000 +
				      (e.tv_nsec - s.tv_nsec) / 1000;
		/* the other conn, meanwhile */
		if (run(a, "echo:a", 2000, &st) == GRPC_OK)
			a_calls++;
		grpc_status_free(&st);
	}
	CHECK_INT(atomic_load(&fake.inside), 1);	/* still looking up */
	CHECK_INT(d.done, 0);
	CHECK(steps > 10);
	CHECK_INT(a_calls, steps);
	if (max_step_us >= 100000)
		printf("    slowest step %lld us\n", (long long)max_step_us);
	CHECK(max_step_us < 100000);
	/* the answer comes (at 2 s) and the call goes through */
	while (!d.done && t_now_ms() - t0 < 4000)
		grpc_conn_wait(b, 100);
	CHECK_INT(d.done, 1);
	CHECK_INT(d.st.code, GRPC_OK);
	CHECK(t_now_ms() - t0 >= 1400);		/* it did wait for the fake */
	CHECK_INT(atomic_load(&fake.calls), 1);
	CHECK_CONTAINS(t_conn_log, "resolved, connecting");
	CHECK_INT(atomic_load(&srv.conns), 2);
	grpc_conn_free(a);
	grpc_conn_free(b);
	CHECK(fake_finish());
	CHECK_INT(atomic_load(&fake.lists), 0);
	rawsrv_stop(&srv);
}

/* A lookup that does not answer within connect_timeout_ms fails the call. */
static void t_lookup_timeout(void)
{
	struct grpc_conn *c;
	struct grpc_conn_stats s;
	struct grpc_status st = { 0 };
	int64_t t0, dt;

	fake_install(2000, 9, 0);
	c = mkconn("slow.test", 9, 300);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 5000, &st), GRPC_UNAVAILABLE);
	dt = t_now_ms() - t0;
	CHECK(dt >= 250 && dt < 1000);
	CHECK_CONTAINS(st.message, "resolve slow.test: timed out after 300 ms");
	CHECK(st.unprocessed);
	grpc_status_free(&st);
	CHECK_INT(atomic_load(&fake.inside), 1);	/* it gave up on a live lookup */
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connect_failures, 1);
	CHECK_INT(s.transports, 0);
	CHECK_INT(resolve_live(), 1);		/* the thread's, still running */
	grpc_conn_free(c);
	CHECK(fake_finish());			/* the late answer was freed */
	CHECK_INT(atomic_load(&fake.lists), 0);
}

/* Freed with a lookup in flight: the thread frees the late answer. */
static void t_free_during_lookup(void)
{
	struct grpc_conn *c;
	struct done_ctx d = { 0 };
	struct grpc_call_opts co = {
		.method = "/casfs.test.Raw/Call", .req = "echo:x", .req_len = 6,
		.timeout_ms = 10000, .on_done = on_done, .ud = &d,
	};
	int64_t t0;

	fake_install(300, 9, 0);
	c = mkconn("slow.test", 9, 5000);
	REQUIRE(c);
	REQUIRE(grpc_call_start(c, &co));
	t0 = t_now_ms();
	while (!atomic_load(&fake.inside) && t_now_ms() - t0 < 1000)
		grpc_conn_wait(c, 10);
	CHECK_INT(atomic_load(&fake.inside), 1);
	grpc_conn_free(c);
	CHECK_INT(d.done, 0);			/* no callback after the free */
	/* not released early: the fake answers by itself after 300 ms */
	t0 = t_now_ms();
	while ((resolve_live() || atomic_load(&fake.lists)) && t_now_ms() - t0 < 3000)
		usleep(1000);
	CHECK_INT(atomic_load(&fake.calls), 1);
	CHECK_INT(resolve_live(), 0);
	CHECK_INT(atomic_load(&fake.lists), 0);
	CHECK(fake_finish());
}

/*
 * The first address never answers; the second does. The first is given
 * up after ADDR_CONNECT_MS (5 s), not the whole 20 s connect timeout.
 */
static void t_dead_first_address(void)
{
	struct blackhole bh;
	struct grpc_conn *c;
	struct grpc_status st = { 0 };
	char want[128];
	int64_t t0, dt;

	REQUIRE(blackhole_open(&bh) == 0);
	REQUIRE(rawsrv_start(&srv, false) == 0);
	fake_install(0, bh.port, srv.port);
	c = mkconn("two.test", 1, 0);		/* 0: the default 20 s */
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 15000, &st), GRPC_OK);
	dt = t_now_ms() - t0;
	grpc_status_free(&st);
	CHECK(dt >= 4900 && dt < 6500);
	snprintf(want, sizeof(want),
		 "127.0.0.1:%d: timed out after 5000 ms, trying the next address",
		 bh.port);
	CHECK_CONTAINS(t_conn_log, want);
	CHECK_INT(atomic_load(&srv.conns), 1);
	grpc_conn_free(c);
	CHECK(fake_finish());
	CHECK_INT(atomic_load(&fake.lists), 0);
	rawsrv_stop(&srv);
	blackhole_close(&bh);
}

/*
 * Two dead addresses and connect_timeout_ms 300 (under 5 s): each gets
 * 300 ms, both are logged, and the error is the last one's.
 */
static void t_every_address_dead(void)
{
	struct blackhole bh;
	struct grpc_conn *c;
	struct grpc_status st = { 0 };
	char want[128];
	int64_t t0, dt;

	REQUIRE(blackhole_open(&bh) == 0);
	fake_install(0, bh.port, bh.port);
	c = mkconn("two.test", 1, 300);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 5000, &st), GRPC_UNAVAILABLE);
	dt = t_now_ms() - t0;
	CHECK(dt >= 550 && dt < 1500);
	CHECK_STR(st.message, "connect to two.test:1: timed out after 300 ms");
	CHECK(st.unprocessed);
	grpc_status_free(&st);
	snprintf(want, sizeof(want),
		 "127.0.0.1:%d: timed out after 300 ms, trying the next address\n",
		 bh.port);
	CHECK_CONTAINS(t_conn_log, want);
	snprintf(want, sizeof(want), "127.0.0.1:%d: timed out after 300 ms\n",
		 bh.port);
	CHECK_CONTAINS(strstr(t_conn_log, "trying the next address"), want);
	grpc_conn_free(c);
	CHECK(fake_finish());
	CHECK_INT(atomic_load(&fake.lists), 0);
	blackhole_close(&bh);
}

/* A refused first address moves on at once (and is logged). */
static void t_refused_first_address(void)
{
	struct grpc_conn *c;
	struct grpc_status st = { 0 };
	char want[128];
	int64_t t0;
	int dead;

	/* a port nobody listens on: start and stop a server */
	REQUIRE(rawsrv_start(&srv, false) == 0);
	dead = srv.port;
	rawsrv_stop(&srv);
	REQUIRE(rawsrv_start(&srv, false) == 0);
	REQUIRE(srv.port != dead);
	fake_install(0, dead, srv.port);
	c = mkconn("two.test", 1, 2000);
	REQUIRE(c);
	t0 = t_now_ms();
	CHECK_INT(run(c, "echo:x", 5000, &st), GRPC_OK);
	CHECK(t_now_ms() - t0 < 1000);
	grpc_status_free(&st);
	snprintf(want, sizeof(want),
		 "127.0.0.1:%d: Connection refused, trying the next address", dead);
	CHECK_CONTAINS(t_conn_log, want);
	grpc_conn_free(c);
	CHECK(fake_finish());
	rawsrv_stop(&srv);
}

static const struct test tests[] = {
	{ "localhost", t_localhost },
	{ "lookup_does_not_block", t_lookup_does_not_block },
	{ "lookup_timeout", t_lookup_timeout },
	{ "free_during_lookup", t_free_during_lookup },
	{ "dead_first_address", t_dead_first_address },
	{ "every_address_dead", t_every_address_dead },
	{ "refused_first_address", t_refused_first_address },
	{ NULL, NULL },
};

const struct suite resolve_suite = { "resolve", tests, NULL, NULL };
