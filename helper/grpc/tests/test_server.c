// SPDX-License-Identifier: GPL-2.0
/*
 * The server core (server.c, server_conn.c, peer.c), driven by this
 * library's own client over TCP, and by a small nghttp2 client written
 * here ("rcall") where the client core cannot go: unix sockets, requests
 * the real client never sends (no message, two, a compressed flag, a
 * wrong content-type), grpc-timeout without client-side enforcement.
 * Raw sockets for garbage and silence. The uid tests need root (they
 * fork a child that becomes uid 65534) and skip otherwise.
 */
#include "t.h"
#include "grpc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SVC "/casfs.test.S/"
#define CAP (1 << 20)		/* the test server's max_recv_msg */
#define BIG (3 << 20)

static atomic_int handler_calls, slow_done;

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (b && n)
		memcpy(b, p, n);
	return b;
}

static int h_echo(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		  size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	(void)ud, (void)peer, (void)msg;
	handler_calls++;
	*resp = len ? dup_bytes(req, len) : NULL;
	*resp_len = len;
	return GRPC_OK;
}

static int h_fail(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		  size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	(void)ud, (void)peer, (void)req, (void)len, (void)resp, (void)resp_len;
	handler_calls++;
	*msg = strdup("bad: 100% \xc3\xbcnicode\nline");
	return GRPC_FAILED_PRECONDITION;
}

static int h_big(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		 size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	uint8_t *b = malloc(BIG);

	(void)ud, (void)peer, (void)req, (void)len, (void)msg;
	handler_calls++;
	for (size_t i = 0; i < BIG; i++)
		b[i] = (uint8_t)(i * 7 + (i >> 16));
	*resp = b;
	*resp_len = BIG;
	return GRPC_OK;
}

/* Sleeps for the request's decimal ms, then echoes. */
static int h_slow(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		  size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	char n[16] = { 0 };

	(void)ud, (void)peer, (void)msg;
	handler_calls++;
	memcpy(n, req, len < 15 ? len : 15);
	msleep(atoi(n));
	*resp = dup_bytes(req, len);
	*resp_len = len;
	slow_done++;
	return GRPC_OK;
}

/* "uid pid family" */
static int h_peer(void *ud, const struct grpc_peer *peer, const uint8_t *req,
		  size_t len, uint8_t **resp, size_t *resp_len, char **msg)
{
	char b[64];

	(void)ud, (void)req, (void)len, (void)msg;
	handler_calls++;
	snprintf(b, sizeof(b), "%d %d %d", (int)peer->uid, (int)peer->pid,
		 peer->family);
	*resp = (uint8_t *)strdup(b);
	*resp_len = strlen(b);
	return GRPC_OK;
}

/* ------------------------------------------------------ server fixture */

struct tsrv {
	struct grpc_server *s;
	pthread_t th;
	int port;
	char upath[108];
	int run_ret;
	volatile sig_atomic_t stop;
};

static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct grpc_peer peers[64];
static unsigned npeers;
static int deny_code;

static int accept_peer(void *ud, const struct grpc_peer *p)
{
	(void)ud;
	pthread_mutex_lock(&peers_mu);
	if (npeers < 64)
		peers[npeers++] = *p;
	pthread_mutex_unlock(&peers_mu);
	return deny_code;
}

static void *run_thread(void *arg)
{
	struct tsrv *t = arg;

	t->run_ret = grpc_server_run(t->s, &t->stop);
	return NULL;
}

static bool tsrv_start(struct tsrv *t, struct grpc_server_opts *o)
{
	char err[256], url[160];
	static unsigned seq;
	static const struct { const char *m; grpc_unary_fn fn; } h[] = {
		{ SVC "Echo", h_echo }, { SVC "Fail", h_fail }, { SVC "Big", h_big },
		{ SVC "Slow", h_slow }, { SVC "Peer", h_peer },
	};

	memset(t, 0, sizeof(*t));
	if (!o->max_recv_msg)
		o->max_recv_msg = CAP;
	o->accept_peer = accept_peer;
	t->s = grpc_server_new(o, err, sizeof(err));
	if (!t->s) {
		printf("    grpc_server_new: %s\n", err);
		return false;
	}
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (grpc_server_add_unary(t->s, h[i].m, h[i].fn, NULL))
			return false;
	if (grpc_server_listen(t->s, "grpc://127.0.0.1:0", err, sizeof(err))) {
		printf("    listen: %s\n", err);
		return false;
	}
	t->port = grpc_server_bound_port(t->s, 0);
	snprintf(t->upath, sizeof(t->upath), "%s/s%u.sock", t_tmpdir(), seq++);
	snprintf(url, sizeof(url), "unix:%s", t->upath);
	if (grpc_server_listen(t->s, url, err, sizeof(err))) {
		printf("    listen: %s\n", err);
		return false;
	}
	if (grpc_server_start(t->s) || pthread_create(&t->th, NULL, run_thread, t))
		return false;
	return t->port > 0;
}

static void tsrv_stop(struct tsrv *t)
{
	if (!t->s)
		return;
	grpc_server_stop(t->s);
	pthread_join(t->th, NULL);
	grpc_server_free(t->s);
	t->s = NULL;
}

static struct grpc_conn *mkconn(int port)
{
	struct grpc_conn_opts o = { 0 };
	char url[64], err[256];
	struct grpc_conn *c;

	snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", port);
	o.url = url;
	o.connect_timeout_ms = 2000;
	c = grpc_conn_new(&o, err, sizeof(err));
	if (!c)
		printf("    grpc_conn_new: %s\n", err);
	return c;
}

static int unary(struct grpc_conn *c, const char *m, const void *req,
		 size_t len, int64_t timeout_ms, uint8_t **resp, size_t *rlen,
		 struct grpc_status *st)
{
	*resp = NULL;
	*rlen = 0;
	return grpc_unary(c, m, req, len, timeout_ms, resp, rlen, st);
}

/* ---------------------------------------------- rcall: a raw h2 client */

struct rres {
	int http, grpc_status;
	char grpc_message[512];
	uint8_t *body;
	size_t body_len;
	bool closed;
	uint32_t rst;
	/* the request body */
	const uint8_t *req;
	size_t req_len, req_off;
};

static int r_on_header(nghttp2_session *h2, const nghttp2_frame *f,
		       const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
		       uint8_t flags, void *ud)
{
	struct rres *r = ud;

	(void)h2, (void)f, (void)flags;
	if (nl == 7 && !memcmp(n, ":status", 7))
		r->http = atoi((const char *)v);
	else if (nl == 11 && !memcmp(n, "grpc-status", 11))
		r->grpc_status = atoi((const char *)v);
	else if (nl == 12 && !memcmp(n, "grpc-message", 12))
		snprintf(r->grpc_message, sizeof(r->grpc_message), "%.*s",
			 (int)vl, (const char *)v);
	return 0;
}

static int r_on_data(nghttp2_session *h2, uint8_t flags, int32_t id,
		     const uint8_t *d, size_t len, void *ud)
{
	struct rres *r = ud;

	(void)h2, (void)flags, (void)id;
	r->body = realloc(r->body, r->body_len + len + 1);
	memcpy(r->body + r->body_len, d, len);
	r->body_len += len;
	r->body[r->body_len] = 0;
	return 0;
}

static int r_on_close(nghttp2_session *h2, int32_t id, uint32_t code, void *ud)
{
	struct rres *r = ud;

	(void)h2, (void)id;
	r->closed = true;
	r->rst = code;
	return 0;
}

static ssize_t r_read(nghttp2_session *h2, int32_t id, uint8_t *buf,
		      size_t length, uint32_t *flags, nghttp2_data_source *src,
		      void *ud)
{
	struct rres *r = ud;
	size_t n = r->req_len - r->req_off;

	(void)h2, (void)id, (void)src;
	if (n > length)
		n = length;
	memcpy(buf, r->req + r->req_off, n);
	r->req_off += n;
	if (r->req_off == r->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

#define RNV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), \
		    NGHTTP2_NV_FLAG_NONE }

/*
 * One request on a new HTTP/2 connection over fd (closed here): body is
 * the raw DATA (framing is the caller's, so it can lie). NULL method /
 * ctype: POST / application/grpc. Returns 0 when the stream closed
 * within timeout_ms.
 */
static int rcall(int fd, const char *path, const char *method,
		 const char *ctype, const char *timeout, const char *encoding,
		 const void *body, size_t len, int timeout_ms, struct rres *r)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session *h2;
	nghttp2_nv nva[9] = {
		RNV(":method", method ? method : "POST"), RNV(":scheme", "http"),
		RNV(":path", path), RNV(":authority", "localhost"),
		RNV("content-type", ctype ? ctype : "application/grpc"),
		RNV("te", "trailers"),
	};
	size_t n = 6;
	nghttp2_data_provider prd = { .read_callback = r_read };
	int64_t end = t_now_ms() + timeout_ms;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->grpc_status = -1;
	r->req = body;
	r->req_len = len;
	if (fd < 0)
		return -1;
	if (timeout)
		nva[n++] = (nghttp2_nv)RNV("grpc-timeout", timeout);
	if (encoding)
		nva[n++] = (nghttp2_nv)RNV("grpc-encoding", encoding);
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_header_callback(cbs, r_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, r_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, r_on_close);
	nghttp2_session_client_new(&h2, cbs, r);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
	nghttp2_submit_request(h2, NULL, nva, n, body ? &prd : NULL, NULL);
	while (!r->closed && t_now_ms() < end) {
		const uint8_t *p;
		ssize_t k;
		struct pollfd pf = { fd, POLLIN, 0 };
		uint8_t buf[65536];

		while ((k = nghttp2_session_mem_send(h2, &p)) > 0)
			if (write(fd, p, (size_t)k) != k)
				goto out;
		if (poll(&pf, 1, 50) <= 0)
			continue;
		k = read(fd, buf, sizeof(buf));
		if (k <= 0 || nghttp2_session_mem_recv(h2, buf, (size_t)k) < 0)
			break;
	}
	ret = r->closed ? 0 : -1;
out:
	nghttp2_session_del(h2);
	close(fd);
	return ret;
}

static void rres_free(struct rres *r)
{
	free(r->body);
	r->body = NULL;
}

/* ---------------------------------------------------------------- tests */

static struct tsrv srv;
static struct grpc_conn *conn;

static const char *setup(void)
{
	struct grpc_server_opts o = { .workers = 4, .handshake_timeout_ms = 300 };

	if (!tsrv_start(&srv, &o))
		return "could not start the server";
	conn = mkconn(srv.port);
	return conn ? NULL : "no client";
}

static void teardown(void)
{
	grpc_conn_free(conn);
	tsrv_stop(&srv);
}

static void t_echo(void)
{
	struct grpc_status st = { 0 };
	uint8_t *resp;
	size_t n;

	CHECK_INT(unary(conn, SVC "Echo", "hello", 5, 2000, &resp, &n, &st), GRPC_OK);
	CHECK_INT(n, 5);
	CHECK(resp && !memcmp(resp, "hello", 5));
	free(resp);
	grpc_status_free(&st);
	CHECK_INT(unary(conn, SVC "Echo", "", 0, 2000, &resp, &n, &st), GRPC_OK);
	CHECK_INT(n, 0);
	free(resp);
	grpc_status_free(&st);
}

/*
 * o.connections: a call that arrives while every ready transport is busy
 * opens another (up to the limit) and later calls go to the least busy
 * one; calls one at a time keep one transport.
 */
struct wave_call {
	bool done;
	int code;
};

static void wave_done(void *ud, const struct grpc_status *st)
{
	struct wave_call *w = ud;

	w->done = true;
	w->code = st->code;
}

static void wave(struct grpc_conn *c, struct wave_call *w, int n)
{
	for (int i = 0; i < n; i++) {
		struct grpc_call_opts o = {
			.method = SVC "Slow", .req = "600", .req_len = 3,
			.timeout_ms = 5000, .on_done = wave_done, .ud = &w[i],
		};

		REQUIRE(grpc_call_start(c, &o));
	}
	for (int k = 0; k < 10; k++)
		grpc_conn_wait(c, 20);
}

static void t_connections(void)
{
	struct grpc_conn_opts o = { 0 };
	struct grpc_server_stats ss0, ss;
	struct grpc_conn_stats cs;
	struct wave_call w[6] = { 0 };
	struct grpc_status st = { 0 };
	char url[64], err[256];
	struct grpc_conn *c;
	uint8_t *resp;
	size_t n;
	int done = 0;

	snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", srv.port);
	o.url = url;
	o.connections = 3;
	c = grpc_conn_new(&o, err, sizeof(err));
	REQUIRE(c);
	grpc_server_get_stats(srv.s, &ss0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(unary(c, SVC "Echo", "x", 1, 2000, &resp, &n, &st), GRPC_OK);
		free(resp);
		grpc_status_free(&st);
	}
	grpc_conn_get_stats(c, &cs);
	CHECK_INT(cs.connects, 1);	/* one at a time: one transport */
	wave(c, &w[0], 2);		/* on the first, which is busy now */
	wave(c, &w[2], 2);		/* so a second one opens */
	grpc_conn_get_stats(c, &cs);
	CHECK_INT(cs.transports, 2);
	wave(c, &w[4], 2);		/* the second is idle: no third */
	grpc_conn_get_stats(c, &cs);
	CHECK_INT(cs.transports, 2);
	for (int k = 0; k < 300 && done < 6; k++) {
		grpc_conn_wait(c, 20);
		done = 0;
		for (int i = 0; i < 6; i++)
			done += w[i].done && w[i].code == GRPC_OK;
	}
	CHECK_INT(done, 6);
	grpc_server_get_stats(srv.s, &ss);
	CHECK_INT(ss.conns_accepted - ss0.conns_accepted, 2);
	grpc_conn_free(c);
}

static void t_unix_echo(void)
{
	static const uint8_t req[] = { 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o' };
	struct rres r;

	REQUIRE(!rcall(connect_unix(srv.upath), SVC "Echo", NULL, NULL, NULL,
		       NULL, req, sizeof(req), 2000, &r));
	CHECK_INT(r.http, 200);
	CHECK_INT(r.grpc_status, 0);
	CHECK_INT(r.body_len, sizeof(req));
	CHECK(r.body && !memcmp(r.body, req, sizeof(req)));
	rres_free(&r);
}

/* The client core on a unix socket: each spelling of the target. */
static void t_unix_client(void)
{
	const char *forms[] = { "unix:", "unix://", "grpc+unix:" };
	struct grpc_conn_opts o = { 0 };
	char url[400], err[1024];

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct grpc_status st = { 0 };
		struct grpc_conn *c;
		uint8_t *resp;
		size_t n;

		snprintf(url, sizeof(url), "%s%s", forms[i], srv.upath);
		CHECK(grpc_url_ok(url));
		o.url = url;
		o.connect_timeout_ms = 2000;
		c = grpc_conn_new(&o, err, sizeof(err));
		REQUIRE(c);
		CHECK_INT(unary(c, SVC "Echo", "hello", 5, 2000, &resp, &n, &st), GRPC_OK);
		CHECK_INT(n, 5);
		CHECK(resp && !memcmp(resp, "hello", 5));
		free(resp);
		grpc_status_free(&st);
		grpc_conn_free(c);
	}
	/* relative, too long, TLS: refused up front */
	o.url = "unix:relative.sock";
	CHECK(!grpc_conn_new(&o, err, sizeof(err)));
	CHECK(strstr(err, "absolute") != NULL);
	memset(url, 'x', sizeof(url) - 1);
	url[sizeof(url) - 1] = 0;
	memcpy(url, "unix:/", 6);
	o.url = url;
	CHECK(!grpc_conn_new(&o, err, sizeof(err)));
	CHECK(strstr(err, "too long") != NULL);
	CHECK(!grpc_url_ok("grpcs+unix:/x"));
	CHECK(!grpc_url_ok("http://x"));
	/* a socket nobody listens on: a clear error, not a hang */
	{
		struct grpc_status st = { 0 };
		struct grpc_conn *c;
		uint8_t *resp;
		size_t n;

		snprintf(url, sizeof(url), "unix:%s.none", srv.upath);
		o.url = url;
		c = grpc_conn_new(&o, err, sizeof(err));
		REQUIRE(c);
		CHECK_INT(unary(c, SVC "Echo", "x", 1, 2000, &resp, &n, &st), GRPC_UNAVAILABLE);
		CHECK(st.message && strstr(st.message, ".none") != NULL);
		free(resp);
		grpc_status_free(&st);
		grpc_conn_free(c);
	}
}

static void t_unix_socket_mode(void)
{
	struct stat st;

	REQUIRE(!lstat(srv.upath, &st));
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0600);
}

static void t_unimplemented(void)
{
	struct grpc_status st = { 0 };
	uint8_t *resp;
	size_t n;

	CHECK_INT(unary(conn, SVC "Nope", "x", 1, 2000, &resp, &n, &st),
		  GRPC_UNIMPLEMENTED);
	CHECK_CONTAINS(st.message, SVC "Nope");
	free(resp);
	grpc_status_free(&st);
}

static void t_error_message(void)
{
	static const uint8_t req[] = { 0, 0, 0, 0, 0 };
	struct grpc_status st = { 0 };
	struct rres r;
	uint8_t *resp;
	size_t n;

	CHECK_INT(unary(conn, SVC "Fail", "x", 1, 2000, &resp, &n, &st),
		  GRPC_FAILED_PRECONDITION);
	/* the client's decoder turns control bytes into '?' */
	CHECK_STR(st.message, "bad: 100% \xc3\xbcnicode?line");
	free(resp);
	grpc_status_free(&st);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Fail", NULL, NULL, NULL, NULL,
		       req, sizeof(req), 2000, &r));
	CHECK_STR(r.grpc_message, "bad: 100%25 %C3%BCnicode%0Aline");
	CHECK_INT(r.grpc_status, GRPC_FAILED_PRECONDITION);
	rres_free(&r);
}

static void t_percent_encode(void)
{
	char *e = grpc_percent_encode("a%b\x01\xff ~", 7), *d;

	CHECK_STR(e, "a%25b%01%FF ~");
	d = grpc_percent_decode(e, strlen(e));
	CHECK_STR(d, "a%b?\xff ~");
	free(e);
	free(d);
}

static void t_big_response(void)
{
	struct grpc_status st = { 0 };
	uint8_t *resp;
	size_t n;
	bool ok = true;

	CHECK_INT(unary(conn, SVC "Big", "", 0, 10000, &resp, &n, &st), GRPC_OK);
	CHECK_INT(n, BIG);
	for (size_t i = 0; resp && i < n; i++)
		ok &= resp[i] == (uint8_t)(i * 7 + (i >> 16));
	CHECK(ok);
	free(resp);
	grpc_status_free(&st);
}

static void t_request_cap(void)
{
	struct grpc_status st = { 0 };
	uint8_t *big = calloc(1, CAP + 1), *resp;
	size_t n;

	REQUIRE(big);
	CHECK_INT(unary(conn, SVC "Echo", big, CAP + 1, 5000, &resp, &n, &st),
		  GRPC_RESOURCE_EXHAUSTED);
	CHECK_CONTAINS(st.message, "larger than");
	free(resp);
	grpc_status_free(&st);
	CHECK_INT(unary(conn, SVC "Echo", big, CAP, 5000, &resp, &n, &st), GRPC_OK);
	CHECK_INT(n, CAP);
	free(resp);
	grpc_status_free(&st);
	free(big);
}

static void t_deadline(void)
{
	static const uint8_t req[] = { 0, 0, 0, 0, 3, '4', '0', '0' };
	struct grpc_status st = { 0 };
	struct rres r;
	uint8_t *resp;
	size_t n;
	int before = slow_done;

	/* The server's own check: this client does not enforce it. */
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Slow", NULL, NULL, "100m",
		       NULL, req, sizeof(req), 3000, &r));
	CHECK_INT(r.http, 200);
	CHECK_INT(r.grpc_status, GRPC_DEADLINE_EXCEEDED);
	CHECK_INT(r.body_len, 0);
	CHECK_INT(slow_done, before + 1);	/* the handler ran to the end */
	rres_free(&r);
	/* The real client gives up on its own; the server drops the result. */
	CHECK_INT(unary(conn, SVC "Slow", "300", 3, 100, &resp, &n, &st),
		  GRPC_DEADLINE_EXCEEDED);
	free(resp);
	grpc_status_free(&st);
	msleep(400);
	CHECK_INT(unary(conn, SVC "Echo", "x", 1, 2000, &resp, &n, &st), GRPC_OK);
	free(resp);
	grpc_status_free(&st);
}

struct cres {
	struct grpc_status st;
	char want[16];
	bool match, done;
};

static int c_on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct cres *c = ud;

	(void)compressed;
	c->match = n == strlen(c->want) && !memcmp(m, c->want, n);
	return 0;
}

static void c_on_done(void *ud, const struct grpc_status *st)
{
	struct cres *c = ud;

	grpc_status_copy(&c->st, st);
	c->done = true;
}

static void t_concurrent(void)
{
	enum { N = 50 };
	struct cres r[N];
	int64_t end = t_now_ms() + 10000;
	int done = 0, ok = 0;

	memset(r, 0, sizeof(r));
	for (int i = 0; i < N; i++) {
		struct grpc_call_opts o = {
			.method = SVC "Slow", .timeout_ms = 10000,
			.on_msg = c_on_msg, .on_done = c_on_done, .ud = &r[i],
		};

		snprintf(r[i].want, sizeof(r[i].want), "%d", 20 + i);
		o.req = r[i].want;
		o.req_len = strlen(r[i].want);
		REQUIRE(grpc_call_start(conn, &o));
	}
	while (done < N && t_now_ms() < end) {
		grpc_conn_wait(conn, 100);
		done = 0;
		for (int i = 0; i < N; i++)
			done += r[i].done;
	}
	for (int i = 0; i < N; i++) {
		ok += r[i].done && r[i].st.code == GRPC_OK && r[i].match;
		grpc_status_free(&r[i].st);
	}
	CHECK_INT(ok, N);
}

static void t_client_gone(void)
{
	struct grpc_server_stats st;
	struct grpc_call_opts o = { .method = SVC "Slow", .req = "300", .req_len = 3,
				    .on_done = c_on_done };
	struct grpc_conn *c = mkconn(srv.port);
	struct cres r = { 0 };
	struct grpc_status gs = { 0 };
	int before = slow_done;
	uint8_t *resp;
	size_t n;
	int64_t end;

	REQUIRE(c);
	o.ud = &r;
	/* 1: the connection closes while the handler runs */
	REQUIRE(grpc_call_start(c, &o));
	end = t_now_ms() + 2000;
	do {
		grpc_conn_wait(c, 20);
		grpc_server_get_stats(srv.s, &st);
	} while (!st.calls_active && t_now_ms() < end);
	CHECK_INT(st.calls_active, 1);
	grpc_conn_free(c);
	end = t_now_ms() + 2000;
	while (slow_done < before + 1 && t_now_ms() < end)
		msleep(10);
	/* 2: RST_STREAM while the handler runs */
	c = mkconn(srv.port);
	REQUIRE(c);
	o.req = "500";
	struct grpc_call *call = grpc_call_start(c, &o);
	REQUIRE(call);
	end = t_now_ms() + 2000;
	do {
		grpc_conn_wait(c, 20);
		grpc_server_get_stats(srv.s, &st);
	} while (!st.calls_active && !r.done && t_now_ms() < end);
	CHECK_INT(st.calls_active, 1);
	REQUIRE(!r.done);
	grpc_call_cancel(call);
	grpc_conn_wait(c, 20);
	end = t_now_ms() + 3000;
	while (slow_done < before + 2 && t_now_ms() < end)
		msleep(20);
	msleep(100);
	grpc_server_get_stats(srv.s, &st);
	CHECK_INT(st.calls_active, 0);
	CHECK_INT(unary(c, SVC "Echo", "y", 1, 2000, &resp, &n, &gs), GRPC_OK);
	free(resp);
	grpc_status_free(&gs);
	grpc_conn_free(c);
	CHECK_INT(unary(conn, SVC "Echo", "z", 1, 2000, &resp, &n, &gs), GRPC_OK);
	free(resp);
	grpc_status_free(&gs);
	CHECK(!r.done);
}

static void t_bad_requests(void)
{
	static const uint8_t two[] = { 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b' };
	static const uint8_t comp[] = { 1, 0, 0, 0, 1, 'a' };
	static const uint8_t flag[] = { 7, 0, 0, 0, 1, 'a' };
	static const uint8_t trunc[] = { 0, 0, 0, 0, 9, 'a' };
	static const uint8_t one[] = { 0, 0, 0, 0, 1, 'a' };
	int before = handler_calls;
	struct rres r;

	/* no message at all (HEADERS with END_STREAM) */
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       NULL, 0, 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	rres_free(&r);
	/* an empty DATA body */
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       "", 0, 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       two, sizeof(two), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	CHECK_CONTAINS(r.grpc_message, "more than one");
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       comp, sizeof(comp), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       flag, sizeof(flag), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, NULL,
		       trunc, sizeof(trunc), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_INTERNAL);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, NULL, NULL, "gzip",
		       one, sizeof(one), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_UNIMPLEMENTED);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL, "text/plain", NULL,
		       NULL, one, sizeof(one), 2000, &r));
	CHECK_INT(r.http, 415);
	rres_free(&r);
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", "PUT", NULL, NULL,
		       NULL, one, sizeof(one), 2000, &r));
	CHECK_INT(r.http, 405);
	rres_free(&r);
	/* content-type variants grpc allows */
	REQUIRE(!rcall(connect_tcp(srv.port), SVC "Echo", NULL,
		       "application/grpc+proto", NULL, NULL, one, sizeof(one), 2000, &r));
	CHECK_INT(r.grpc_status, GRPC_OK);
	rres_free(&r);
	CHECK_INT(handler_calls, before + 1);
}

/* Read until EOF; the ms it took, or -1 if it did not close in limit_ms. */
static int64_t wait_closed(int fd, int limit_ms)
{
	int64_t t0 = t_now_ms();
	uint8_t buf[4096];

	while (t_now_ms() - t0 < limit_ms) {
		struct pollfd pf = { fd, POLLIN, 0 };

		if (poll(&pf, 1, 50) <= 0)
			continue;
		if (read(fd, buf, sizeof(buf)) <= 0)
			return t_now_ms() - t0;
	}
	return -1;
}

static void t_garbage(void)
{
	static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = connect_tcp(srv.port);
	int64_t ms;

	REQUIRE(fd >= 0);
	CHECK_INT(write(fd, get, sizeof(get) - 1), sizeof(get) - 1);
	ms = wait_closed(fd, 2000);
	CHECK(ms >= 0 && ms < 250);
	close(fd);
	/* the right preface, then DATA on stream 0 (a connection error) */
	fd = connect_tcp(srv.port);
	REQUIRE(fd >= 0);
	{
		static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
			"\0\0\0\4\0\0\0\0\0" "\0\0\4\0\0\0\0\0\0zzzz";

		CHECK_INT(write(fd, pre, sizeof(pre) - 1), sizeof(pre) - 1);
	}
	ms = wait_closed(fd, 2000);
	CHECK(ms >= 0 && ms < 250);
	close(fd);
}

static void t_handshake_timeout(void)
{
	int fd = connect_tcp(srv.port), fd2 = connect_unix(srv.upath);
	int64_t ms, ms2;

	REQUIRE(fd >= 0 && fd2 >= 0);
	/* half a preface, then silence */
	CHECK_INT(write(fd2, "PRI * HTTP/2.0\r\n", 16), 16);
	ms = wait_closed(fd, 3000);
	ms2 = wait_closed(fd2, 3000);
	CHECK(ms >= 200 && ms < 1000);	/* 300 ms + up to one 100 ms tick */
	CHECK(ms2 >= 0 && ms2 < 1000);
	close(fd);
	close(fd2);
}

static void t_max_conns(void)
{
	struct grpc_server_opts o = { .workers = 1, .max_conns = 2 };
	struct grpc_server_stats st;
	struct tsrv t;
	int fds[3];

	REQUIRE(tsrv_start(&t, &o));
	for (int i = 0; i < 3; i++) {
		fds[i] = connect_tcp(t.port);
		msleep(30);
	}
	CHECK(wait_closed(fds[2], 1000) >= 0);
	CHECK_INT(wait_closed(fds[0], 300), -1);	/* still served */
	grpc_server_get_stats(t.s, &st);
	CHECK_INT(st.conns_refused, 1);
	CHECK_INT(st.conns_open, 2);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	tsrv_stop(&t);
}

static void t_permission_denied(void)
{
	struct grpc_server_opts o = { .workers = 1 };
	struct grpc_status st = { 0 };
	struct grpc_conn *c;
	struct tsrv t;
	uint8_t *resp;
	size_t n;
	int before = handler_calls;

	deny_code = GRPC_PERMISSION_DENIED;
	if (!tsrv_start(&t, &o)) {
		deny_code = 0;
		CHECK(0);
		return;
	}
	c = mkconn(t.port);
	CHECK_INT(unary(c, SVC "Echo", "x", 1, 2000, &resp, &n, &st),
		  GRPC_PERMISSION_DENIED);
	free(resp);
	grpc_status_free(&st);
	CHECK_INT(unary(c, SVC "Nope", "x", 1, 2000, &resp, &n, &st),
		  GRPC_PERMISSION_DENIED);
	free(resp);
	grpc_status_free(&st);
	CHECK_INT(handler_calls, before);
	grpc_conn_free(c);
	tsrv_stop(&t);
	deny_code = 0;
}

static void t_peer_uid(void)
{
	static const uint8_t req[] = { 0, 0, 0, 0, 0 };
	struct grpc_status st = { 0 };
	struct rres r;
	uint8_t *resp;
	size_t n;
	char want[64];

	CHECK_INT(unary(conn, SVC "Peer", "", 0, 2000, &resp, &n, &st), GRPC_OK);
	snprintf(want, sizeof(want), "%d 0 %d", (int)getuid(), AF_INET);
	CHECK(resp && n == strlen(want) && !memcmp(resp, want, n));
	free(resp);
	grpc_status_free(&st);
	REQUIRE(!rcall(connect_unix(srv.upath), SVC "Peer", NULL, NULL, NULL, NULL,
		       req, sizeof(req), 2000, &r));
	snprintf(want, sizeof(want), "%d %d %d", (int)getuid(), (int)getpid(),
		 AF_UNIX);
	CHECK_STR((char *)r.body + 5, want);
	rres_free(&r);
	/*
	 * A dual-stack AF_INET6 client (Java's default, so Bazel's) reaching
	 * 127.0.0.1 as ::ffff:127.0.0.1: socket diagnostics report its
	 * addresses v4-mapped; still the same socket, still our uid.
	 */
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6,
					  .sin6_port = htons((uint16_t)srv.port) };
		int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), off = 0;

		a.sin6_addr.s6_addr[10] = 0xff;
		a.sin6_addr.s6_addr[11] = 0xff;
		a.sin6_addr.s6_addr[12] = 127;
		a.sin6_addr.s6_addr[15] = 1;
		REQUIRE(fd >= 0);
		REQUIRE(!setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)));
		REQUIRE(!connect(fd, (struct sockaddr *)&a, sizeof(a)));
		REQUIRE(!rcall(fd, SVC "Peer", NULL, NULL, NULL, NULL, req,
			       sizeof(req), 2000, &r));
		snprintf(want, sizeof(want), "%d 0 %d", (int)getuid(), AF_INET);
		CHECK_STR((char *)r.body + 5, want);
		rres_free(&r);
	}
}

/* The child: only raw system calls (a fork of a threaded process). */
static void child_connect(int port, const char *upath)
{
	static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
	gid_t g = 65534;
	int fds[2];

	if (setgroups(1, &g) || setgid(65534) || setuid(65534))
		_exit(3);
	fds[0] = connect_tcp(port);
	fds[1] = connect_unix(upath);
	for (int i = 0; i < 2; i++) {
		struct pollfd pf = { fds[i], POLLIN, 0 };
		char b[64];

		if (fds[i] < 0)
			_exit(4 + i);
		if (write(fds[i], pre, sizeof(pre) - 1) != sizeof(pre) - 1)
			_exit(6);
		/* the server's SETTINGS: it has accepted (and asked) */
		if (poll(&pf, 1, 2000) != 1 || read(fds[i], b, sizeof(b)) <= 0)
			_exit(7);
	}
	_exit(0);
}

static void t_peer_uid_other_user(void)
{
	char dir[160];
	bool tcp = false, un = false;
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		t_skip("needs root");
		return;
	}
	/* uid 65534 must reach the socket: open up a copy's directory. */
	snprintf(dir, sizeof(dir), "%s", t_tmpdir());
	CHECK(!chmod(dir, 0711));
	CHECK(!chmod(srv.upath, 0666));
	pthread_mutex_lock(&peers_mu);
	npeers = 0;
	pthread_mutex_unlock(&peers_mu);
	pid = fork();
	REQUIRE(pid >= 0);
	if (!pid)
		child_connect(srv.port, srv.upath);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	chmod(srv.upath, 0600);
	chmod(dir, 0700);
	pthread_mutex_lock(&peers_mu);
	for (unsigned i = 0; i < npeers; i++) {
		if (peers[i].uid != 65534)
			continue;
		tcp |= peers[i].family == AF_INET;
		un |= peers[i].family == AF_UNIX && peers[i].pid == pid;
	}
	pthread_mutex_unlock(&peers_mu);
	CHECK(tcp);
	CHECK(un);
}

static void t_listen_errors(void)
{
	struct grpc_server *s = grpc_server_new(NULL, NULL, 0);
	char err[256], path[100], url[200];
	struct stat st;

	REQUIRE(s);
	CHECK_INT(grpc_server_listen(s, "grpc://10.1.2.3:0", err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "loopback");
	CHECK_INT(grpc_server_listen(s, "grpc://0.0.0.0:0", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_listen(s, "grpc://[::]:0", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_listen(s, "grpc://example.com:80", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_listen(s, "grpc://127.0.0.1:99999", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_listen(s, "grpc://127.0.0.1", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_listen(s, "http://127.0.0.1:1", err, sizeof(err)), -EINVAL);
	CHECK_INT(grpc_server_add_unary(s, "NoSlash", h_echo, NULL), -EINVAL);
	CHECK_INT(grpc_server_add_unary(s, SVC "A", h_echo, NULL), 0);
	CHECK_INT(grpc_server_add_unary(s, SVC "A", h_echo, NULL), -EEXIST);
	/* a regular file is not replaced; a stale socket is */
	snprintf(path, sizeof(path), "%s/plain", t_tmpdir());
	REQUIRE(!t_write_file(path, "x", 1));
	snprintf(url, sizeof(url), "unix:%s", path);
	CHECK_INT(grpc_server_listen(s, url, err, sizeof(err)), -EEXIST);
	snprintf(path, sizeof(path), "%s/stale.sock", t_tmpdir());
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
		CHECK(!bind(fd, (struct sockaddr *)&a, sizeof(a)));
		close(fd);
	}
	snprintf(url, sizeof(url), "unix:%s", path);
	CHECK_INT(grpc_server_listen(s, url, err, sizeof(err)), 0);
	CHECK_INT(grpc_server_bound_port(s, 0), -1);
	CHECK_INT(grpc_server_listen(s, "grpc://localhost:0", err, sizeof(err)), 0);
	CHECK(grpc_server_bound_port(s, 1) > 0);
	if (grpc_server_listen(s, "grpc://[::1]:0", err, sizeof(err)) == 0)
		CHECK(grpc_server_bound_port(s, 2) > 0);
	else
		printf("    (no IPv6 loopback: %s)\n", err);
	CHECK_INT(grpc_server_bound_port(s, 9), -1);
	grpc_server_free(s);
	CHECK(lstat(path, &st) && errno == ENOENT);	/* unlinked */
}

static void t_listen_fd_and_stop(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct grpc_server_opts o = { .workers = 2 };
	struct grpc_status st = { 0 };
	struct tsrv t = { 0 };
	struct grpc_conn *c;
	char err[256];
	uint8_t *resp;
	size_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t t0;

	REQUIRE(fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
		!getsockname(fd, (struct sockaddr *)&a, &al));
	t.s = grpc_server_new(&o, err, sizeof(err));
	REQUIRE(t.s);
	/* not listening yet: refused (and closed) */
	CHECK_INT(grpc_server_listen_fd(t.s, dup(fd), err, sizeof(err)), -EINVAL);
	REQUIRE(!listen(fd, 8));
	CHECK_INT(grpc_server_listen_fd(t.s, fd, err, sizeof(err)), 0);
	CHECK_INT(grpc_server_add_unary(t.s, SVC "Echo", h_echo, NULL), 0);
	CHECK_INT(grpc_server_bound_port(t.s, 0), ntohs(a.sin_port));
	REQUIRE(!grpc_server_start(t.s));
	REQUIRE(!pthread_create(&t.th, NULL, run_thread, &t));
	c = mkconn(ntohs(a.sin_port));
	CHECK_INT(unary(c, SVC "Echo", "q", 1, 2000, &resp, &n, &st), GRPC_OK);
	free(resp);
	grpc_status_free(&st);
	/* the flag, as a signal handler would set it */
	t0 = t_now_ms();
	t.stop = 1;
	pthread_join(t.th, NULL);
	CHECK(t_now_ms() - t0 < 300);
	CHECK_INT(t.run_ret, 0);
	/* GOAWAY reached the client: the next call needs a new connection,
	 * which the server (not running) does not answer in time. */
	grpc_conn_wait(c, 100);
	grpc_conn_free(c);
	grpc_server_free(t.s);
}

static void t_stats(void)
{
	struct grpc_server_stats st;

	grpc_server_get_stats(srv.s, &st);
	CHECK(st.conns_accepted >= 10);
	CHECK(st.calls >= 60);
	CHECK(st.calls_failed >= 10);
	CHECK_INT(st.calls_active, 0);
}

static const struct test tests[] = {
	{ "echo", t_echo },
	{ "connections", t_connections },
	{ "unix_echo", t_unix_echo },
	{ "unix_client", t_unix_client },
	{ "unix_socket_mode", t_unix_socket_mode },
	{ "unimplemented", t_unimplemented },
	{ "error_message", t_error_message },
	{ "percent_encode", t_percent_encode },
	{ "big_response", t_big_response },
	{ "request_cap", t_request_cap },
	{ "deadline", t_deadline },
	{ "concurrent_50", t_concurrent },
	{ "client_gone", t_client_gone },
	{ "bad_requests", t_bad_requests },
	{ "garbage", t_garbage },
	{ "handshake_timeout", t_handshake_timeout },
	{ "max_conns", t_max_conns },
	{ "permission_denied", t_permission_denied },
	{ "peer_uid", t_peer_uid },
	{ "peer_uid_other_user", t_peer_uid_other_user },
	{ "listen_errors", t_listen_errors },
	{ "listen_fd_and_stop", t_listen_fd_and_stop },
	{ "stats", t_stats },
	{ NULL, NULL },
};

const struct suite server_suite = { "server", tests, setup, teardown };
