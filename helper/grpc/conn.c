// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: connections. A grpc_conn is one server (URL); it owns an
 * epoll fd holding a timerfd (deadlines), an eventfd (work queued from
 * outside a step) and the socket of each transport: the current one,
 * plus any draining after a GOAWAY, so a GOAWAY never stalls new calls.
 *
 * A transport is a TCP connection, optionally TLS (OpenSSL on memory
 * BIOs: all socket I/O is ours, with MSG_NOSIGNAL, so no SIGPIPE and one
 * code path for both), carrying one nghttp2 client session. Transports
 * are made on demand, when a call is queued and none is usable: a dead
 * connection is replaced at the next call, never in a busy loop.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define DEFAULT_WINDOW (16u * 1024 * 1024)
#define DEFAULT_CONNECT_MS 20000
#define DEFAULT_KEEPALIVE_MS 5000
#define DEFAULT_PING_TIMEOUT_MS 5000
#define MAX_PING_INTERVAL_MS (5 * 60 * 1000)
#define DEFAULT_CONNECTIONS 2
/*
 * Unacknowledged data older than this kills the TCP connection (the
 * kernel's default is ~15 min of retransmits): long enough for a
 * congested link's retransmits, far too short to stall a build.
 */
#define TCP_USER_TIMEOUT_MS 20000
/* Reconnect backoff after a failed connect: 100 ms doubling to 5 s. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* Calls on one transport hitting their deadline, nothing heard between. */
#define SILENT_EXPIRIES_MAX 2
/*
 * When more addresses remain, a TCP connect not done within this (or the
 * connect timeout, if shorter) moves on to the next address: a dead first
 * address (typically an AAAA record with IPv6 broken on the way) must not
 * use up the whole connect timeout. 5 s is many round trips even across
 * the world, and lets a lossy but live path get two SYN retransmits
 * (Linux resends after 1 s and 3 s). The last address gets it all.
 */
#define ADDR_CONNECT_MS 5000
#define OUT_HIGH 65536		/* refill the socket buffer up to this */
#define READ_CHUNK 65536
#define READS_PER_STEP 256	/* then yield to other fds (and wake) */

int64_t grpc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void grpc_log(struct grpc_conn *c, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!c->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->o.log(c->o.log_ud, level, buf);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *ssl_err(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

void conn_wake(struct grpc_conn *c)
{
	uint64_t one = 1;

	if (c->woken)
		return;
	if (write(c->wakefd, &one, sizeof(one)) == sizeof(one))
		c->woken = true;
}

/* ---------------------------------------------------------------- URL */

/* The unix socket path of a unix: or grpc+unix: URL, else NULL. */
static const char *unix_target(const char *url)
{
	const char *p;

	if (!strncmp(url, "unix:", 5))
		p = url + 5;
	else if (!strncmp(url, "grpc+unix:", 10))
		p = url + 10;
	else
		return NULL;
	if (!strncmp(p, "//", 2))	/* unix:///abs/path */
		p += 2;
	return p;
}

/* For messages: the socket path, or host:port. */
static const char *target_name(const struct grpc_conn *c)
{
	return c->unix_path ? c->unix_path : c->authority;
}

bool grpc_url_ok(const char *url)
{
	return url && (!strncmp(url, "grpc://", 7) || !strncmp(url, "grpcs://", 8) ||
		       unix_target(url));
}

/*
 * unix:PATH: the path must be absolute and fit sockaddr_un. The
 * authority is "localhost", as other gRPC clients send for unix targets.
 */
static int parse_unix(struct grpc_conn *c, const char *url, const char *path,
		      char *err, size_t errlen)
{
	if (path[0] != '/')
		return fail(err, errlen, "%s: the socket path must be absolute", url);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(err, errlen, "%s: socket path too long", url);
	c->unix_path = strdup(path);
	c->host = strdup("localhost");
	c->port = strdup("0");
	c->authority = strdup("localhost");
	if (!c->unix_path || !c->host || !c->port || !c->authority)
		return fail(err, errlen, "out of memory");
	return 0;
}

/*
 * grpc://host:port or grpcs://host:port, host may be [v6]; optional "/";
 * or a unix socket (parse_unix).
 */
static int parse_url(struct grpc_conn *c, const char *url, char *err,
		     size_t errlen)
{
	const char *p, *h, *he, *port = NULL;
	size_t plen = 0;

	if (unix_target(url))
		return parse_unix(c, url, unix_target(url), err, errlen);
	if (!strncmp(url, "grpc://", 7)) {
		p = url + 7;
	} else if (!strncmp(url, "grpcs://", 8)) {
		p = url + 8;
		c->tls = true;
	} else {
		return fail(err, errlen, "%s: not a grpc://, grpcs:// or unix: URL", url);
	}
	if (*p == '[') {
		h = p + 1;
		he = strchr(h, ']');
		if (!he)
			return fail(err, errlen, "%s: unterminated [address]", url);
		p = he + 1;
	} else {
		h = p;
		he = p + strcspn(p, ":/?#@");
		p = he;
	}
	if (he == h)
		return fail(err, errlen, "%s: no host", url);
	for (const char *q = h; q < he; q++)
		if (!(((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z') ||
		      (*q >= '0' && *q <= '9') || strchr("-._:%", *q)))
			return fail(err, errlen, "%s: bad character in host", url);
	if (*p == ':') {
		port = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		plen = (size_t)(p - port);
		if (!plen || plen > 5 || atoi(port) < 1 || atoi(port) > 65535)
			return fail(err, errlen, "%s: bad port", url);
	}
	if (*p == '/')
		p++;
	if (*p)
		return fail(err, errlen,
			    "%s: unexpected \"%s\" (only scheme://host:port)", url, p);
	c->host = strndup(h, (size_t)(he - h));
	c->port = port ? strndup(port, plen) : strdup(c->tls ? "443" : "80");
	if (!c->host || !c->port)
		return fail(err, errlen, "out of memory");
	{
		bool v6 = strchr(c->host, ':') != NULL;
		size_t n = strlen(c->host) + strlen(c->port) + 4;

		c->authority = malloc(n);
		if (!c->authority)
			return fail(err, errlen, "out of memory");
		snprintf(c->authority, n, v6 ? "[%s]:%s" : "%s:%s", c->host, c->port);
	}
	return 0;
}

/* ---------------------------------------------------------------- TLS */

static int tls_setup(struct grpc_conn *c, char *err, size_t errlen)
{
	char eb[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return fail(err, errlen, "SSL_CTX_new: %s", ssl_err(eb, sizeof(eb)));
	c->ssl_ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (c->ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1)
			return fail(err, errlen, "CA file %s: %s", c->ca_file,
				    ssl_err(eb, sizeof(eb)));
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		return fail(err, errlen, "system CA store: %s", ssl_err(eb, sizeof(eb)));
	}
	if (c->key_file && !c->cert_file)
		return fail(err, errlen, "a client key needs a client certificate");
	if (c->cert_file) {
		const char *key = c->key_file ? c->key_file : c->cert_file;

		if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1)
			return fail(err, errlen, "client certificate %s: %s",
				    c->cert_file, ssl_err(eb, sizeof(eb)));
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			return fail(err, errlen, "client key %s: %s", key,
				    ssl_err(eb, sizeof(eb)));
		if (SSL_CTX_check_private_key(ctx) != 1)
			return fail(err, errlen, "client key %s does not match %s",
				    key, c->cert_file);
	}
	/* HTTP/2 over TLS is negotiated with ALPN, nothing else. */
	if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3))
		return fail(err, errlen, "ALPN: %s", ssl_err(eb, sizeof(eb)));
	return 0;
}

static bool is_ip_literal(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* ------------------------------------------------------- conn: set up */

struct grpc_conn *grpc_conn_new(const struct grpc_conn_opts *o, char *err,
				size_t errlen)
{
	struct grpc_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };
	char sub[256];

	if (!c) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	c->epfd = c->timerfd = c->wakefd = -1;
	glist_init(&c->transports);
	glist_init(&c->queued);
	glist_init(&c->done);
	c->o = *o;
	if (!o->url) {
		fail(err, errlen, "no URL");
		goto bad;
	}
	c->url = strdup(o->url);
	c->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	c->cert_file = o->cert_file ? strdup(o->cert_file) : NULL;
	c->key_file = o->key_file ? strdup(o->key_file) : NULL;
	if (!c->url || (o->ca_file && !c->ca_file) ||
	    (o->cert_file && !c->cert_file) || (o->key_file && !c->key_file)) {
		fail(err, errlen, "out of memory");
		goto bad;
	}
	c->o.url = c->url;
	c->o.ca_file = c->ca_file;
	c->o.cert_file = c->cert_file;
	c->o.key_file = c->key_file;
	c->o.md = NULL;
	if (!c->o.max_recv_msg)
		c->o.max_recv_msg = GRPC_DEFAULT_MAX_MSG;
	if (!c->o.window)
		c->o.window = DEFAULT_WINDOW;
	if (c->o.window > 0x7fffffff)
		c->o.window = 0x7fffffff;
	if (c->o.window < 65535)
		c->o.window = 65535;
	if (c->o.connect_timeout_ms <= 0)
		c->o.connect_timeout_ms = DEFAULT_CONNECT_MS;
	if (c->o.transparent_retries < 0)
		c->o.transparent_retries = 1;
	if (!c->o.keepalive_ms)
		c->o.keepalive_ms = DEFAULT_KEEPALIVE_MS;
	if (c->o.ping_timeout_ms <= 0)
		c->o.ping_timeout_ms = DEFAULT_PING_TIMEOUT_MS;
	if (!c->o.connections)
		c->o.connections = DEFAULT_CONNECTIONS;
	if (c->o.connections > 16)
		c->o.connections = 16;
	if (parse_url(c, c->url, err, errlen))
		goto bad;
	c->server_name = strdup(o->tls_server_name ? o->tls_server_name : c->host);
	if (!c->server_name) {
		fail(err, errlen, "out of memory");
		goto bad;
	}
	c->o.tls_server_name = c->server_name;
	if (c->tls && tls_setup(c, err, errlen))
		goto bad;
	if (!c->tls && (c->ca_file || c->cert_file || c->key_file)) {
		fail(err, errlen, "%s: TLS options need a grpcs:// URL", c->url);
		goto bad;
	}
	if (o->md) {
		for (size_t i = 0; i < o->md->n; i++)
			if (grpc_md_add(&c->md, o->md->v[i].name, o->md->v[i].value,
					sub, sizeof(sub))) {
				fail(err, errlen, "metadata: %s", sub);
				goto bad;
			}
	}
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->epfd < 0 || c->timerfd < 0 || c->wakefd < 0) {
		fail(err, errlen, "epoll/timerfd/eventfd: %s", strerror(errno));
		goto bad;
	}
	c->timer_tag.kind = EP_TIMER;
	c->wake_tag.kind = EP_WAKE;
	ev.data.ptr = &c->timer_tag;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->timerfd, &ev))
		goto bad_ep;
	ev.data.ptr = &c->wake_tag;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->wakefd, &ev))
		goto bad_ep;
	return c;
bad_ep:
	fail(err, errlen, "epoll_ctl: %s", strerror(errno));
bad:
	grpc_conn_free(c);
	return NULL;
}

int grpc_conn_fd(const struct grpc_conn *c)
{
	return c->epfd;
}

short grpc_conn_events(const struct grpc_conn *c)
{
	(void)c;
	return POLLIN;
}

void grpc_conn_get_stats(const struct grpc_conn *c, struct grpc_conn_stats *s)
{
	const struct glist *e;

	*s = c->stats;
	s->active_calls = 0;
	s->transports = 0;
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		const struct transport *t = glist_entry(e, struct transport, link);

		s->transports++;
		s->active_calls += t->ncalls;
	}
	for (e = c->queued.next; e != &c->queued; e = e->next)
		s->active_calls++;
}

/* ------------------------------------------------------- transports */

static void transport_fail(struct transport *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void connect_backoff(struct grpc_conn *c, const char *why);

static void set_events(struct transport *t, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = &t->tag };

	if (t->fd < 0 || t->ep_events == events)
		return;
	if (epoll_ctl(t->conn->epfd, t->ep_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      t->fd, &ev) == 0)
		t->ep_events = events;
}

static void transport_close_fd(struct transport *t)
{
	if (t->fd < 0)
		return;
	if (t->ep_events)
		epoll_ctl(t->conn->epfd, EPOLL_CTL_DEL, t->fd, NULL);
	t->ep_events = 0;
	close(t->fd);
	t->fd = -1;
}

static void transport_destroy(struct transport *t)
{
	glist_del(&t->link);
	transport_close_fd(t);
	/* A lookup still running: its thread frees the late answer. */
	resolve_drop(t->res, t->conn->epfd);
	if (t->h2)
		nghttp2_session_del(t->h2);
	if (t->ssl)
		SSL_free(t->ssl);	/* frees the BIOs too */
	if (t->ai)
		t->ai_free(t->ai);
	free(t->out);
	free(t);
}

/*
 * The transport is finished: its calls fail (or are retried on another
 * transport); with no calls the queue is failed if it was waiting for
 * this one to connect. Freed at the end of the step.
 */
static void transport_fail(struct transport *t, const char *fmt, ...)
{
	struct grpc_conn *c = t->conn;
	bool connecting = t->state == TP_CONNECTING || t->state == TP_TLS;
	va_list ap;

	if (t->state == TP_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
	t->state = TP_DEAD;
	transport_close_fd(t);
	if (connecting) {
		c->stats.connect_failures++;
		grpc_log(c, GRPC_LOG_WARN, "%s: %s", c->url, t->why);
		connect_backoff(c, t->why);
		calls_fail_queued(c, t->why);
	} else {
		if (t->ncalls)
			grpc_log(c, GRPC_LOG_WARN,
				 "%s: connection lost with %u call(s): %s",
				 c->url, t->ncalls, t->why);
		else
			grpc_log(c, GRPC_LOG_DEBUG, "%s: connection closed: %s",
				 c->url, t->why);
		call_transport_failed(t, t->why);
	}
}

/*
 * A connect failed: the next one waits a backoff (with jitter, so many
 * helpers do not reconnect in step), and calls meanwhile fail at once
 * with what went wrong, for their callers' own retry policy.
 */
static void connect_backoff(struct grpc_conn *c, const char *why)
{
	int ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;

	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	c->backoff_ms = ms;
	ms = ms * 4 / 5 + (int)((unsigned)random() % (unsigned)(ms * 2 / 5 + 1));
	c->retry_at = grpc_now_ns() + (int64_t)ms * 1000000;
	snprintf(c->last_fail, sizeof(c->last_fail), "%s", why);
}

void transport_frame_seen(struct transport *t, uint8_t type, uint8_t flags)
{
	int64_t now = grpc_now_ns();

	if (type == NGHTTP2_SETTINGS && !t->got_settings)
		t->conn->backoff_ms = 0;	/* a server that speaks HTTP/2 */
	if (type != NGHTTP2_PING) {
		t->last_frame = now;
		t->ping_interval = (int64_t)t->conn->o.keepalive_ms * 1000000;
	} else if ((flags & NGHTTP2_FLAG_ACK) && t->ping_sent) {
		/* Only PINGs answered since ours went out: back off. */
		if (t->last_frame < t->ping_sent &&
		    t->ping_interval < (int64_t)MAX_PING_INTERVAL_MS * 1000000 / 2)
			t->ping_interval *= 2;
		t->ping_sent = 0;
	}
}

void transport_call_expired(struct transport *t, int64_t now)
{
	if (t->last_recv > t->last_expiry)
		t->silent_expiries = 0;
	t->silent_expiries++;
	t->last_expiry = now;
	if (t->silent_expiries >= SILENT_EXPIRIES_MAX && t->state == TP_READY) {
		grpc_log(t->conn, GRPC_LOG_WARN,
			 "%s: %u calls timed out with nothing from the server: "
			 "no new calls on this connection", t->conn->url,
			 t->silent_expiries);
		t->conn->stats.dead_transports++;
		t->state = TP_DRAINING;
		conn_wake(t->conn);
	}
}

/*
 * Is the server still there? A PING after keepalive_ms of silence with
 * calls waiting; no byte within ping_timeout_ms of it fails the
 * transport. Returns the next time this needs a look (ns), or 0.
 */
static int64_t live_check(struct transport *t, int64_t now)
{
	struct grpc_conn *c = t->conn;
	int64_t timeout = (int64_t)c->o.ping_timeout_ms * 1000000;
	int64_t idle_since = t->last_recv;

	if (c->o.keepalive_ms < 0 || !t->got_settings ||
	    (t->state != TP_READY && t->state != TP_DRAINING))
		return 0;
	if (t->ping_sent && t->last_recv < t->ping_sent) {
		if (now - t->ping_sent >= timeout) {
			c->stats.dead_transports++;
			transport_fail(t, "no answer to a PING within %d ms",
				       c->o.ping_timeout_ms);
			return 0;
		}
		return t->ping_sent + timeout;
	}
	if (!t->ncalls)
		return 0;
	if (t->ping_sent)	/* bytes came, but no ACK yet: still alive */
		idle_since = t->ping_sent > idle_since ? t->ping_sent : idle_since;
	if (now - idle_since < t->ping_interval)
		return idle_since + t->ping_interval;
	if (nghttp2_submit_ping(t->h2, NGHTTP2_FLAG_NONE, NULL)) {
		transport_fail(t, "HTTP/2: cannot send a PING");
		return 0;
	}
	c->stats.pings++;
	t->ping_sent = now;
	grpc_log(c, GRPC_LOG_DEBUG, "%s: PING after %lld ms of silence", c->url,
		 (long long)((now - t->last_recv) / 1000000));
	return now + timeout;
}

void transport_call_gone(struct transport *t)
{
	if (t->ncalls)
		t->ncalls--;
}

void transport_goaway(struct transport *t, int32_t last_id, uint32_t error,
		      const uint8_t *data, size_t len)
{
	struct grpc_conn *c = t->conn;
	char dbg[128];
	size_t n = len < sizeof(dbg) - 1 ? len : sizeof(dbg) - 1;

	for (size_t i = 0; i < n; i++)
		dbg[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '?';
	dbg[n] = 0;
	c->stats.goaways++;
	t->goaway = true;
	t->goaway_last_id = last_id;
	t->goaway_error = error;
	if (t->state == TP_READY)
		t->state = TP_DRAINING;
	grpc_log(c, error ? GRPC_LOG_WARN : GRPC_LOG_INFO,
		 "%s: GOAWAY %s, last stream %d%s%s", c->url,
		 nghttp2_http2_strerror(error), last_id, n ? ": " : "", dbg);
	conn_wake(c);		/* queued calls may need a new transport */
}

static int session_start(struct transport *t)
{
	struct grpc_conn *c = t->conn;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->o.window },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536 },
	};
	nghttp2_session_callbacks *cbs = call_h2_callbacks();
	nghttp2_option *opt;
	int rv;

	if (!cbs)
		return -1;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cbs);
		return -1;
	}
	/* Until the server's SETTINGS say otherwise (RFC 9113 suggests 100). */
	nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
	rv = nghttp2_session_client_new2(&t->h2, cbs, t, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv)
		return -1;
	rv = nghttp2_submit_settings(t->h2, NGHTTP2_FLAG_NONE, iv,
				     sizeof(iv) / sizeof(iv[0]));
	if (!rv)
		rv = nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE,
							   0, (int32_t)c->o.window);
	if (rv)
		return -1;
	t->state = TP_READY;
	t->last_recv = t->last_frame = grpc_now_ns();
	t->ping_interval = (int64_t)c->o.keepalive_ms * 1000000;
	grpc_log(c, GRPC_LOG_DEBUG, "%s: HTTP/2 session up", c->url);
	conn_wake(c);
	return 0;
}

/* Append to the socket buffer. */
static int out_append(struct transport *t, const void *p, size_t n)
{
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
	if (t->out_len + n > t->out_cap) {
		size_t cap = t->out_cap ? t->out_cap : 16384;
		uint8_t *b;

		if (t->out_off) {
			memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
			t->out_len -= t->out_off;
			t->out_off = 0;
		}
		while (cap < t->out_len + n)
			cap *= 2;
		if (cap > t->out_cap) {
			b = realloc(t->out, cap);
			if (!b)
				return -1;
			t->out = b;
			t->out_cap = cap;
		}
	}
	memcpy(t->out + t->out_len, p, n);
	t->out_len += n;
	return 0;
}

/* Move TLS records from the write BIO to the socket buffer. */
static int drain_wbio(struct transport *t)
{
	uint8_t buf[16384];
	int n;

	while (BIO_ctrl_pending(t->wbio) > 0) {
		n = BIO_read(t->wbio, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (out_append(t, buf, (size_t)n))
			return -1;
	}
	return 0;
}

/* Fill the socket buffer from nghttp2 (through TLS) and send it. */
static void transport_flush(struct transport *t)
{
	char eb[256];

	for (;;) {
		if (t->state == TP_DEAD || t->state == TP_CONNECTING)
			return;
		if (t->out_off == t->out_len && t->h2 &&
		    (t->state == TP_READY || t->state == TP_DRAINING)) {
			while (t->out_len - t->out_off < OUT_HIGH) {
				const uint8_t *data;
				ssize_t n = nghttp2_session_mem_send(t->h2, &data);

				if (n < 0) {
					transport_fail(t, "HTTP/2: %s",
						       nghttp2_strerror((int)n));
					return;
				}
				if (n == 0)
					break;
				if (t->ssl) {
					if (SSL_write(t->ssl, data, (int)n) != (int)n) {
						transport_fail(t, "TLS write: %s",
							       ssl_err(eb, sizeof(eb)));
						return;
					}
				} else if (out_append(t, data, (size_t)n)) {
					transport_fail(t, "out of memory");
					return;
				}
				if (t->ssl && drain_wbio(t)) {
					transport_fail(t, "out of memory");
					return;
				}
			}
		}
		if (t->ssl && drain_wbio(t)) {
			transport_fail(t, "out of memory");
			return;
		}
		if (t->out_off == t->out_len)
			return;
		{
			ssize_t n = send(t->fd, t->out + t->out_off,
					 t->out_len - t->out_off, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					t->write_blocked = true;
					return;
				}
				transport_fail(t, "send: %s", strerror(errno));
				return;
			}
			t->conn->stats.bytes_sent += (uint64_t)n;
			t->out_off += (size_t)n;
			t->write_blocked = false;
		}
	}
}

static void tls_handshake(struct transport *t)
{
	struct grpc_conn *c = t->conn;
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	char eb[256];
	int rv = SSL_do_handshake(t->ssl);

	if (drain_wbio(t)) {
		transport_fail(t, "out of memory");
		return;
	}
	if (rv != 1) {
		int e = SSL_get_error(t->ssl, rv);
		long vr = SSL_get_verify_result(t->ssl);

		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		if (vr != X509_V_OK)
			transport_fail(t, "TLS handshake with %s: certificate: %s",
				       c->authority, X509_verify_cert_error_string(vr));
		else
			transport_fail(t, "TLS handshake with %s: %s", c->authority,
				       ssl_err(eb, sizeof(eb)));
		return;
	}
	SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2)) {
		transport_fail(t, "TLS: %s did not select HTTP/2 (ALPN h2)",
			       c->authority);
		return;
	}
	grpc_log(c, GRPC_LOG_DEBUG, "%s: %s, %s", c->url, SSL_get_version(t->ssl),
		 SSL_get_cipher_name(t->ssl));
	if (session_start(t))
		transport_fail(t, "HTTP/2 session: out of memory");
}

static void connected(struct transport *t)
{
	struct grpc_conn *c = t->conn;
	int one = 1;

	int idle = 30, intvl = 10, cnt = 3, user_timeout = TCP_USER_TIMEOUT_MS;

	if (!c->unix_path) {
		setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* A server that vanishes without a FIN is noticed in about 60 s. */
		setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		setsockopt(t->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
			   sizeof(user_timeout));
	}
	if (!c->tls) {
		if (session_start(t))
			transport_fail(t, "HTTP/2 session: out of memory");
		return;
	}
	t->ssl = SSL_new(c->ssl_ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		t->rbio = t->wbio = NULL;
		transport_fail(t, "TLS: out of memory");
		return;
	}
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_connect_state(t->ssl);
	SSL_set_mode(t->ssl, SSL_MODE_AUTO_RETRY);
	if (is_ip_literal(c->server_name)) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), c->server_name);
	} else {
		SSL_set_tlsext_host_name(t->ssl, c->server_name);
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		SSL_set1_host(t->ssl, c->server_name);
	}
	t->state = TP_TLS;
	tls_handshake(t);
}

/* Log giving up the address being tried (numerically) and why. */
static void give_up_addr(struct transport *t, const char *why)
{
	struct grpc_conn *c = t->conn;
	const struct addrinfo *a = t->ai_cur;
	char host[NI_MAXHOST], serv[NI_MAXSERV], name[NI_MAXHOST + NI_MAXSERV + 4];

	t->ai_cur = NULL;
	if (!a)
		return;
	if (a->ai_family == AF_UNIX)
		snprintf(name, sizeof(name), "%s", c->unix_path);
	else if (getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof(host), serv,
			     sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(name, sizeof(name), "an address of family %d", a->ai_family);
	else
		snprintf(name, sizeof(name), a->ai_family == AF_INET6 ? "[%s]:%s" :
			 "%s:%s", host, serv);
	grpc_log(c, GRPC_LOG_INFO, "%s: %s: %s%s", c->url, name, why,
		 t->ai_next ? ", trying the next address" : "");
}

/*
 * Give up the address being tried (why: last_err) and try the next;
 * fails the transport when none is left. Each address gets its own
 * deadlines: the TCP connect's (ADDR_CONNECT_MS when more remain), and
 * connect_timeout_ms from its start for TLS and the server's SETTINGS.
 */
static void connect_next(struct transport *t, const char *last_err)
{
	struct grpc_conn *c = t->conn;

	transport_close_fd(t);
	if (last_err)
		give_up_addr(t, last_err);
	while (t->ai_next) {
		struct addrinfo *a = t->ai_next;
		int64_t now = grpc_now_ns();

		t->ai_next = a->ai_next;
		t->ai_cur = a;
		t->connect_ms = c->o.connect_timeout_ms;
		if (t->ai_next && t->connect_ms > ADDR_CONNECT_MS)
			t->connect_ms = ADDR_CONNECT_MS;
		t->connect_deadline = now + (int64_t)t->connect_ms * 1000000;
		t->settings_deadline = now + (int64_t)c->o.connect_timeout_ms * 1000000;
		t->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
			       SOCK_CLOEXEC, a->ai_protocol);
		if (t->fd < 0) {
			last_err = strerror(errno);
			give_up_addr(t, last_err);
			continue;
		}
		if (connect(t->fd, a->ai_addr, a->ai_addrlen) == 0) {
			set_events(t, EPOLLIN);
			connected(t);
			return;
		}
		if (errno == EINPROGRESS) {
			t->state = TP_CONNECTING;
			set_events(t, EPOLLOUT);
			return;
		}
		last_err = strerror(errno);
		give_up_addr(t, last_err);
		transport_close_fd(t);
	}
	transport_fail(t, "connect to %s: %s", target_name(c),
		       last_err ? last_err : "no address");
}

/* The lookup has answered (EP_RESOLVE): connect to what it found. */
static void resolved(struct transport *t)
{
	struct grpc_conn *c = t->conn;
	struct addrinfo *ai = NULL;
	grpc_freeaddrinfo_fn release = NULL;
	int rv = 0, sys_errno = 0;

	if (!t->res || t->state != TP_CONNECTING ||
	    !resolve_take(t->res, &rv, &ai, &release, &sys_errno))
		return;
	resolve_drop(t->res, c->epfd);
	t->res = NULL;
	if (rv) {
		transport_fail(t, "resolve %s: %s", c->host, rv == EAI_SYSTEM ?
			       strerror(sys_errno) : gai_strerror(rv));
		return;
	}
	t->ai = t->ai_next = ai;
	t->ai_free = release;
	grpc_log(c, GRPC_LOG_DEBUG, "%s: resolved, connecting", c->url);
	connect_next(t, NULL);
}

static struct transport *transport_new(struct grpc_conn *c)
{
	struct transport *t = calloc(1, sizeof(*t));
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG,
	};
	char err[256];
	int rv;

	if (!t)
		return NULL;
	t->tag.kind = EP_TRANSPORT;
	t->conn = c;
	t->fd = -1;
	t->state = TP_CONNECTING;
	glist_init(&t->calls);
	glist_add_tail(&c->transports, &t->link);
	c->stats.connects++;
	if (c->unix_path) {	/* one address, no lookup */
		t->unix_sa.sun_family = AF_UNIX;
		snprintf(t->unix_sa.sun_path, sizeof(t->unix_sa.sun_path), "%s",
			 c->unix_path);
		t->unix_ai.ai_family = AF_UNIX;
		t->unix_ai.ai_socktype = SOCK_STREAM;
		t->unix_ai.ai_addr = (struct sockaddr *)&t->unix_sa;
		t->unix_ai.ai_addrlen = sizeof(t->unix_sa);
		t->ai_next = &t->unix_ai;
		grpc_log(c, GRPC_LOG_DEBUG, "%s: connecting", c->url);
		connect_next(t, NULL);
		return t;
	}
	/* An IP literal needs no lookup: AI_NUMERICHOST answers at once. */
	hints.ai_flags |= AI_NUMERICHOST;
	rv = getaddrinfo(c->host, c->port, &hints, &t->ai);
	if (!rv) {
		t->ai_free = freeaddrinfo;
		t->ai_next = t->ai;
		grpc_log(c, GRPC_LOG_DEBUG, "%s: connecting", c->url);
		connect_next(t, NULL);
		return t;
	}
	t->ai = NULL;
	if (rv != EAI_NONAME) {
		transport_fail(t, "resolve %s: %s", c->host, gai_strerror(rv));
		return t;
	}
	/*
	 * A name: looked up on a thread (resolve.c), within the connect
	 * timeout; resolved() carries on when it answers.
	 */
	hints.ai_flags &= ~AI_NUMERICHOST;
	t->res_tag.kind = EP_RESOLVE;
	t->connect_ms = c->o.connect_timeout_ms;
	t->connect_deadline = grpc_now_ns() + (int64_t)t->connect_ms * 1000000;
	t->res = resolve_start(c->host, c->port, &hints, c->epfd, &t->res_tag,
			       err, sizeof(err));
	if (!t->res) {
		transport_fail(t, "resolve %s: %s", c->host, err);
		return t;
	}
	grpc_log(c, GRPC_LOG_DEBUG, "%s: resolving %s", c->url, c->host);
	return t;
}

static void transport_read(struct transport *t)
{
	uint8_t buf[READ_CHUNK];
	char eb[256];

	for (int i = 0; i < READS_PER_STEP; i++) {
		ssize_t n = recv(t->fd, buf, sizeof(buf), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			transport_fail(t, "recv: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			transport_fail(t, "connection closed by the server");
			return;
		}
		t->conn->stats.bytes_recv += (uint64_t)n;
		t->last_recv = grpc_now_ns();
		if (!t->ssl) {
			ssize_t r = nghttp2_session_mem_recv(t->h2, buf, (size_t)n);

			if (r < 0) {
				transport_fail(t, "HTTP/2: %s", nghttp2_strerror((int)r));
				return;
			}
			if (t->state == TP_DEAD)
				return;
			continue;
		}
		if (BIO_write(t->rbio, buf, (int)n) != (int)n) {
			transport_fail(t, "TLS: out of memory");
			return;
		}
		if (t->state == TP_TLS) {
			tls_handshake(t);
			if (t->state == TP_DEAD)
				return;
			if (t->state == TP_TLS)
				continue;
		}
		for (;;) {
			int r = SSL_read(t->ssl, buf, sizeof(buf));
			ssize_t h;

			if (r <= 0) {
				int e = SSL_get_error(t->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					break;
				if (e == SSL_ERROR_ZERO_RETURN)
					transport_fail(t, "TLS connection closed by the server");
				else
					transport_fail(t, "TLS read: %s",
						       ssl_err(eb, sizeof(eb)));
				return;
			}
			h = nghttp2_session_mem_recv(t->h2, buf, (size_t)r);
			if (h < 0) {
				transport_fail(t, "HTTP/2: %s", nghttp2_strerror((int)h));
				return;
			}
			if (t->state == TP_DEAD)
				return;
		}
		/* e.g. a KeyUpdate answer */
		if (drain_wbio(t)) {
			transport_fail(t, "out of memory");
			return;
		}
	}
	conn_wake(t->conn);	/* more to read: come back after the others */
}

static void transport_io(struct transport *t, uint32_t ev)
{
	if (t->state == TP_DEAD)
		return;
	if (t->state == TP_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
		if (err) {
			connect_next(t, strerror(err));
			return;
		}
		set_events(t, EPOLLIN);
		connected(t);
		return;
	}
	if (ev & EPOLLOUT)
		t->write_blocked = false;
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		transport_read(t);
}

/* ------------------------------------------------------------- step */

/* The ready transport with the fewest calls, or NULL. */
static struct transport *least_busy(struct grpc_conn *c)
{
	struct transport *best = NULL;
	struct glist *e;

	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);

		if (t->state == TP_READY && (!best || t->ncalls < best->ncalls))
			best = t;
	}
	return best;
}

/*
 * Hand queued calls to the least busy ready transports, and connect
 * another while there are fewer than o.connections and every ready one
 * is busy (or none is ready and none is connecting). After a failed
 * connect, within its backoff, queued calls fail at once instead.
 */
static void start_queued(struct grpc_conn *c)
{
	unsigned usable = 0, connecting = 0, idle = 0;
	struct transport *t;
	struct glist *e;

	if (glist_empty(&c->queued))
		return;
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		t = glist_entry(e, struct transport, link);
		if (t->state == TP_READY) {
			usable++;
			idle += !t->ncalls;
		} else if (t->state == TP_CONNECTING || t->state == TP_TLS) {
			usable++;
			connecting++;
		}
	}
	if (!usable && grpc_now_ns() < c->retry_at) {
		char why[320];

		snprintf(why, sizeof(why), "%s (reconnecting in %lld ms)",
			 c->last_fail,
			 (long long)((c->retry_at - grpc_now_ns()) / 1000000 + 1));
		calls_fail_queued(c, why);
		return;
	}
	if (usable < c->o.connections && !connecting && !idle &&
	    !transport_new(c) && !usable) {
		calls_fail_queued(c, "out of memory");
		return;
	}
	while (!glist_empty(&c->queued) && (t = least_busy(c))) {
		struct grpc_call *call = glist_entry(c->queued.next,
						     struct grpc_call, link);

		if (call_submit(t, call) < 0)
			break;	/* stays queued; retried on the next step */
	}
}

static void arm_timer(struct grpc_conn *c)
{
	int64_t next = calls_next_deadline(c);
	struct itimerspec its = { 0 };
	struct glist *e;

	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);
		int64_t d = 0;

		if (t->state == TP_CONNECTING)
			d = t->connect_deadline;	/* lookup or this address */
		else if (t->state == TP_TLS ||
			 (!t->got_settings && t->state != TP_DEAD))
			d = t->settings_deadline;
		if (d && (!next || d < next))
			next = d;
	}
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);

		if (t->live_next && t->state != TP_DEAD &&
		    (!next || t->live_next < next))
			next = t->live_next;
	}
	if (next == c->timer_armed)
		return;
	if (next) {
		its.it_value.tv_sec = next / 1000000000;
		its.it_value.tv_nsec = next % 1000000000;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(c->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	c->timer_armed = next;
}

int grpc_conn_step(struct grpc_conn *c)
{
	struct epoll_event evs[32];
	struct glist *e, *next;
	int64_t now;
	int n;

	n = epoll_wait(c->epfd, evs, 32, 0);
	if (n < 0 && errno != EINTR)
		return -errno;
	c->in_step = true;
	for (int i = 0; i < n; i++) {
		struct ep_tag *tag = evs[i].data.ptr;
		uint64_t v;

		if (tag->kind == EP_TIMER) {
			if (read(c->timerfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			c->timer_armed = 0;
		} else if (tag->kind == EP_WAKE) {
			if (read(c->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			c->woken = false;
		} else if (tag->kind == EP_RESOLVE) {
			resolved(glist_entry(tag, struct transport, res_tag));
		} else {
			((struct transport *)tag)->revents |= evs[i].events;
		}
	}
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);
		uint32_t ev = t->revents;

		t->revents = 0;
		if (ev)
			transport_io(t, ev);
	}
	now = grpc_now_ns();
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);

		if (t->state == TP_CONNECTING && now >= t->connect_deadline) {
			char why[64];

			snprintf(why, sizeof(why), "timed out after %d ms",
				 t->connect_ms);
			if (t->res)
				transport_fail(t, "resolve %s: %s", c->host, why);
			else	/* the next address, or the transport fails */
				connect_next(t, why);
		} else if (t->state == TP_TLS && now >= t->settings_deadline)
			transport_fail(t, "connect to %s: timed out after %d ms",
				       target_name(c), c->o.connect_timeout_ms);
		else if (!t->got_settings && t->state != TP_DEAD &&
			 t->state != TP_CONNECTING && now >= t->settings_deadline)
			transport_fail(t, "%s: no HTTP/2 SETTINGS from the server "
				       "within %d ms", target_name(c),
				       c->o.connect_timeout_ms);
	}
	calls_expire(c, now);
	start_queued(c);
	/* After start_queued: a call just sent counts as one waiting. */
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);

		t->live_next = live_check(t, now);
	}
	for (e = c->transports.next; e != &c->transports; e = e->next) {
		struct transport *t = glist_entry(e, struct transport, link);

		if (t->state != TP_READY && t->state != TP_DRAINING &&
		    t->state != TP_TLS)
			continue;
		transport_flush(t);
		if (t->state == TP_TLS || t->state == TP_DEAD)
			continue;
		if (!nghttp2_session_want_read(t->h2) &&
		    !nghttp2_session_want_write(t->h2))
			transport_fail(t, "HTTP/2 session closed%s",
				       t->goaway ? " after GOAWAY" : "");
		else if (t->state == TP_DRAINING && !t->ncalls &&
			 t->out_off == t->out_len)
			transport_fail(t, "drained (after GOAWAY, or calls timing out)");
	}
	for (e = c->transports.next; e != &c->transports; e = next) {
		struct transport *t = glist_entry(e, struct transport, link);

		next = e->next;
		if (t->state == TP_DEAD)
			transport_destroy(t);
		else if (t->state != TP_CONNECTING)
			set_events(t, EPOLLIN | (t->write_blocked ? EPOLLOUT : 0));
	}
	calls_complete(c);
	/* Calls started or cancelled by the callbacks go out next step. */
	arm_timer(c);
	c->in_step = false;
	return 0;
}

int grpc_conn_wait(struct grpc_conn *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->epfd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	return grpc_conn_step(c);
}

void grpc_conn_free(struct grpc_conn *c)
{
	if (!c)
		return;
	while (!glist_empty(&c->transports)) {
		struct transport *t = glist_entry(c->transports.next,
						  struct transport, link);

		while (!glist_empty(&t->calls)) {
			struct grpc_call *call = glist_entry(t->calls.next,
							     struct grpc_call, link);

			glist_del(&call->link);
			call_free(call);
		}
		transport_destroy(t);
	}
	while (!glist_empty(&c->queued)) {
		struct grpc_call *call = glist_entry(c->queued.next,
						     struct grpc_call, link);

		glist_del(&call->link);
		call_free(call);
	}
	while (!glist_empty(&c->done)) {
		struct grpc_call *call = glist_entry(c->done.next,
						     struct grpc_call, link);

		glist_del(&call->link);
		call_free(call);
	}
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->timerfd >= 0)
		close(c->timerfd);
	if (c->wakefd >= 0)
		close(c->wakefd);
	SSL_CTX_free(c->ssl_ctx);
	grpc_md_free(&c->md);
	free(c->url);
	free(c->host);
	free(c->port);
	free(c->authority);
	free(c->unix_path);
	free(c->server_name);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c);
}
