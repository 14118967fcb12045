// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC server: listeners, the event loop and the worker pool.
 *
 * The thread in grpc_server_run() owns every socket and nghttp2 session
 * (server_conn.c); handlers run on worker threads. A call's job goes to
 * the workers through a mutex-protected queue and comes back through a
 * second one plus an eventfd, which also carries grpc_server_stop().
 * Results name their connection by a 64-bit id that is never reused, so
 * one that comes back after its connection closed is dropped.
 *
 * Bounds, since everything from the network is hostile: max_conns
 * connections (more are accepted and closed at once); per connection,
 * max_streams streams and max_streams jobs out, about 64 KiB of output
 * held (we stop reading a connection while its output is stuck), the
 * handshake within handshake_timeout_ms, and a connection whose output
 * makes no progress for STALL_MS is closed; request bytes held are
 * capped per connection and globally; jobs out are capped globally
 * (QUEUE_MAX). Over a cap a call is answered RESOURCE_EXHAUSTED.
 */
#include "server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_LISTENERS 16
#define MAX_ROUTES 256
#define QUEUE_MAX 1024			/* jobs out, all connections */
#define LOOP_TICK_MS 100		/* stop flag and timeouts are polled */
#define OUT_HIGH 65536			/* output held per connection */
#define READ_CHUNK 65536
#define READS_PER_WAKE 4		/* fairness between connections */
#define ACCEPTS_PER_WAKE 64
#define STALL_MS 60000			/* output stuck that long: close */

enum ep_item_kind { EPI_LISTENER, EPI_CONN, EPI_WAKE };
struct ep_item {
	enum ep_item_kind kind;
};

struct route {
	char *path;
	grpc_unary_fn fn;
	void *ud;
};

struct listener {
	struct ep_item tag;
	int fd;
	int family;
	char *unix_path;		/* created by us: unlinked at free */
	dev_t dev;
	ino_t ino;
};

struct srv_conn {
	struct ep_item tag;
	struct grpc_server *s;
	struct glist link;		/* in s->conns */
	uint64_t id;
	int fd;
	struct sconn *sc;
	uint32_t ep_events;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	int64_t handshake_deadline;	/* ns */
	int64_t stall_since;		/* ns, 0: output moving */
	bool dead;			/* to be closed */
	bool closed;			/* in s->graveyard, freed by reap() */
};

struct grpc_server {
	struct grpc_server_opts o;
	struct route *routes;
	size_t nroutes;
	struct listener l[MAX_LISTENERS];
	unsigned nl;
	int ep;
	struct ep_item wake_tag;
	int evfd;
	atomic_int stopping;
	bool started, ran;
	pthread_t *th;
	unsigned nth;
	/* mu guards the queues, quit and the stats */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct glist work, done;
	unsigned jobs_out;
	bool quit;
	struct grpc_server_stats st;
	/* event loop thread only */
	struct glist conns;
	struct glist graveyard;		/* closed this iteration */
	uint64_t next_id;
	size_t mem, mem_max, conn_mem_max;
};

static void slog(struct grpc_server *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void slog(struct grpc_server *s, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_ud, level, buf);
}


static void wake(struct grpc_server *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->evfd, &one, sizeof(one));

	(void)r;	/* EAGAIN: the counter is already non-zero */
}

/* ------------------------------------------------------------- setup */

struct grpc_server *grpc_server_new(const struct grpc_server_opts *o,
				    char *err, size_t errlen)
{
	struct grpc_server *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!s) {
		grpc_errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	if (o)
		s->o = *o;
	if (!s->o.workers)
		s->o.workers = 4;
	if (!s->o.max_recv_msg)
		s->o.max_recv_msg = GRPC_DEFAULT_MAX_MSG;
	if (s->o.max_recv_msg > UINT32_MAX)
		s->o.max_recv_msg = UINT32_MAX;
	if (!s->o.max_conns)
		s->o.max_conns = 64;
	if (!s->o.max_streams)
		s->o.max_streams = 100;
	if (s->o.handshake_timeout_ms <= 0)
		s->o.handshake_timeout_ms = 10000;
	/* Room for a few maximal requests per connection, more in all. */
	s->conn_mem_max = 4 * s->o.max_recv_msg + (1 << 20);
	s->mem_max = 16 * s->o.max_recv_msg + (16 << 20);
	glist_init(&s->work);
	glist_init(&s->done);
	glist_init(&s->conns);
	glist_init(&s->graveyard);
	s->next_id = 1;
	s->ep = s->evfd = -1;
	s->wake_tag.kind = EPI_WAKE;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.ptr = &s->wake_tag;
	if (s->ep < 0 || s->evfd < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->evfd, &ev)) {
		grpc_errf(err, errlen, -errno, "epoll/eventfd: %s", strerror(errno));
		grpc_server_free(s);
		return NULL;
	}
	return s;
}

int grpc_server_add_unary(struct grpc_server *s, const char *path,
			  grpc_unary_fn fn, void *ud)
{
	struct route *r;

	if (s->started || !path || path[0] != '/' || !fn || strlen(path) > 256)
		return -EINVAL;
	if (s->nroutes >= MAX_ROUTES)
		return -E2BIG;
	for (size_t i = 0; i < s->nroutes; i++)
		if (!strcmp(s->routes[i].path, path))
			return -EEXIST;
	r = realloc(s->routes, (s->nroutes + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->routes = r;
	r[s->nroutes].path = strdup(path);
	if (!r[s->nroutes].path)
		return -ENOMEM;
	r[s->nroutes].fn = fn;
	r[s->nroutes].ud = ud;
	s->nroutes++;
	return 0;
}

static int add_listener(struct grpc_server *s, int fd, int family,
			char *unix_path, char *err, size_t errlen)
{
	struct listener *l = &s->l[s->nl];
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev)) {
		int e = errno;

		if (unix_path)
			unlink(unix_path);
		free(unix_path);
		close(fd);
		return grpc_errf(err, errlen, -e, "listener: %s", strerror(e));
	}
	l->tag.kind = EPI_LISTENER;
	l->fd = fd;
	l->family = family;
	l->unix_path = unix_path;
	if (unix_path && !stat(unix_path, &st)) {
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	s->nl++;
	return 0;
}

static int listen_unix(struct grpc_server *s, const char *path, char *err,
		       size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	char *copy;
	int fd, ret;

	if (!*path || strlen(path) >= sizeof(a.sun_path))
		return grpc_errf(err, errlen, -EINVAL, "unix:%s: bad path", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode))
			return grpc_errf(err, errlen, -EEXIST,
				    "unix:%s: exists and is not a socket", path);
		/* A stale socket from an earlier run. */
		if (unlink(path) && errno != ENOENT)
			return grpc_errf(err, errlen, -errno, "unix:%s: unlink: %s",
				    path, strerror(errno));
	}
	copy = strdup(path);
	if (!copy)
		return grpc_errf(err, errlen, -ENOMEM, "out of memory");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		free(copy);
		return grpc_errf(err, errlen, -errno, "socket: %s", strerror(errno));
	}
	/*
	 * umask is per process: other threads see 077 for this moment. It
	 * makes the socket 0700 from its first instant; then 0600, as a
	 * socket needs no x bit.
	 */
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (ret) {
		/* Not ours (e.g. EADDRINUSE: another server just took it). */
		ret = -errno;
		close(fd);
		free(copy);
		return grpc_errf(err, errlen, ret, "unix:%s: %s", path, strerror(-ret));
	}
	if (chmod(path, 0600) || listen(fd, 128)) {
		ret = -errno;
		unlink(path);
		close(fd);
		free(copy);
		return grpc_errf(err, errlen, ret, "unix:%s: %s", path, strerror(-ret));
	}
	return add_listener(s, fd, AF_UNIX, copy, err, errlen);
}

static bool sa_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24 == 127;
	if (a->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
	return false;
}

static int listen_tcp(struct grpc_server *s, const char *url, const char *hp,
		      char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[64];
	const char *port;
	char *end;
	long pn;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (*hp == '[') {
		const char *e = strchr(hp, ']');

		if (!e || e - hp - 1 >= (long)sizeof(host) || e[1] != ':')
			return grpc_errf(err, errlen, -EINVAL, "%s: bad address", url);
		memcpy(host, hp + 1, (size_t)(e - hp - 1));
		host[e - hp - 1] = 0;
		port = e + 2;
	} else {
		const char *c = strrchr(hp, ':');

		if (!c || c - hp >= (long)sizeof(host) || c == hp)
			return grpc_errf(err, errlen, -EINVAL, "%s: need host:port", url);
		memcpy(host, hp, (size_t)(c - hp));
		host[c - hp] = 0;
		port = c + 1;
	}
	errno = 0;
	pn = strtol(port, &end, 10);
	if (!*port || errno || pn < 0 || pn > 65535 ||
	    (*end && strcmp(end, "/")))
		return grpc_errf(err, errlen, -EINVAL, "%s: bad port", url);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)pn);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)pn);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return grpc_errf(err, errlen, -EINVAL,
			    "%s: host must be a loopback IP address or localhost", url);
	}
	if (!sa_loopback(&ss))
		return grpc_errf(err, errlen, -EINVAL,
			    "%s: not a loopback address (this server is local-only)", url);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return grpc_errf(err, errlen, -errno, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 128)) {
		int e = errno;

		close(fd);
		return grpc_errf(err, errlen, -e, "%s: %s", url, strerror(e));
	}
	return add_listener(s, fd, ss.ss_family, NULL, err, errlen);
}

int grpc_server_listen(struct grpc_server *s, const char *url, char *err,
		       size_t errlen)
{
	if (s->nl >= MAX_LISTENERS)
		return grpc_errf(err, errlen, -E2BIG, "more than %d listeners",
			    MAX_LISTENERS);
	if (!strncmp(url, "unix:", 5))
		return listen_unix(s, url + 5, err, errlen);
	if (!strncmp(url, "grpc://", 7))
		return listen_tcp(s, url, url + 7, err, errlen);
	return grpc_errf(err, errlen, -EINVAL, "%s: not grpc://host:port or unix:path", url);
}

int grpc_server_listen_fd(struct grpc_server *s, int fd, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int acc = 0;
	socklen_t al = sizeof(acc);

	if (s->nl >= MAX_LISTENERS) {
		close(fd);
		return grpc_errf(err, errlen, -E2BIG, "more than %d listeners",
			    MAX_LISTENERS);
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) || !acc ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		close(fd);
		return grpc_errf(err, errlen, -EINVAL, "fd %d: not a listening socket", fd);
	}
	if (ss.ss_family != AF_UNIX && ss.ss_family != AF_INET &&
	    ss.ss_family != AF_INET6) {
		close(fd);
		return grpc_errf(err, errlen, -EINVAL, "fd %d: not unix or TCP", fd);
	}
	return add_listener(s, fd, ss.ss_family, NULL, err, errlen);
}

int grpc_server_bound_port(const struct grpc_server *s, unsigned idx)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (idx >= s->nl || getsockname(s->l[idx].fd, (struct sockaddr *)&ss, &sl))
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* ----------------------------------------------------------- workers */

static void run_job(struct srv_job *j)
{
	int code;

	/* Expired while queued: the answer is known without the handler. */
	if (j->deadline && srv_now_ns() > j->deadline) {
		j->code = GRPC_DEADLINE_EXCEEDED;
		return;
	}
	code = j->fn(j->fn_ud, &j->peer, j->req, j->req_len, &j->resp,
		     &j->resp_len, &j->msg);
	free(j->req);		/* done with it; the charge ends at delivery */
	j->req = NULL;
	if (code < 0 || code > GRPC_UNAUTHENTICATED)
		code = GRPC_UNKNOWN;
	if (code == GRPC_OK && !j->resp && j->resp_len) {
		code = GRPC_INTERNAL;
		j->resp_len = 0;
	}
	if (code != GRPC_OK) {
		free(j->resp);
		j->resp = NULL;
		j->resp_len = 0;
	}
	j->code = code;
}

static void *worker(void *arg)
{
	struct grpc_server *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct srv_job *j;

		while (!s->quit && glist_empty(&s->work))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		j = glist_entry(s->work.next, struct srv_job, link);
		glist_del(&j->link);
		pthread_mutex_unlock(&s->mu);
		run_job(j);
		pthread_mutex_lock(&s->mu);
		glist_add_tail(&s->done, &j->link);
		wake(s);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int grpc_server_start(struct grpc_server *s)
{
	sigset_t all, old;

	if (s->started)
		return 0;
	s->th = calloc(s->o.workers, sizeof(*s->th));
	if (!s->th)
		return -ENOMEM;
	/* Workers take no signals: those belong to the caller's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; s->nth < s->o.workers; s->nth++) {
		int r = pthread_create(&s->th[s->nth], NULL, worker, s);

		if (r) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -r;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	s->started = true;
	return 0;
}

/* ---------------------------------------------------- sconn plumbing */

static bool route(void *ud, const char *path, grpc_unary_fn *fn, void **fn_ud)
{
	struct grpc_server *s = ud;

	for (size_t i = 0; i < s->nroutes; i++)
		if (!strcmp(s->routes[i].path, path)) {
			*fn = s->routes[i].fn;
			*fn_ud = s->routes[i].ud;
			return true;
		}
	return false;
}

static int submit(void *ud, struct srv_job *j)
{
	struct grpc_server *s = ud;
	int ret = 0;

	pthread_mutex_lock(&s->mu);
	if (s->jobs_out >= QUEUE_MAX) {
		ret = -EBUSY;
	} else {
		glist_add_tail(&s->work, &j->link);
		s->jobs_out++;
		s->st.calls_active++;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static void call_done(void *ud, int code)
{
	struct grpc_server *s = ud;

	pthread_mutex_lock(&s->mu);
	s->st.calls++;
	if (code != GRPC_OK)
		s->st.calls_failed++;
	pthread_mutex_unlock(&s->mu);
}

/* -------------------------------------------------------- connections */

/*
 * Close now, free at the end of the loop iteration: later events in the
 * same epoll batch may still point at c.
 */
static void conn_close(struct srv_conn *c)
{
	struct grpc_server *s = c->s;

	if (c->closed)
		return;
	c->closed = true;
	glist_del(&c->link);
	glist_add_tail(&s->graveyard, &c->link);
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_lock(&s->mu);
	s->st.conns_open--;
	pthread_mutex_unlock(&s->mu);
}

static void reap(struct grpc_server *s)
{
	while (!glist_empty(&s->graveyard)) {
		struct srv_conn *c = glist_entry(s->graveyard.next,
						 struct srv_conn, link);

		glist_del(&c->link);
		sconn_free(c->sc);
		free(c->out);
		free(c);
	}
}

static void conn_set_events(struct srv_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (events == c->ep_events)
		return;
	if (!epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &ev))
		c->ep_events = events;
}

/* Pull nghttp2's output into c->out, up to OUT_HIGH. */
static int conn_fill(struct srv_conn *c)
{
	while (c->out_len - c->out_off < OUT_HIGH) {
		const uint8_t *p;
		size_t n;

		if (sconn_send(c->sc, &p, &n))
			return -1;
		if (!n)
			break;
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		if (c->out_len + n > c->out_cap) {
			size_t cap = c->out_len + n;
			uint8_t *b;

			if (c->out_off) {	/* compact first */
				memmove(c->out, c->out + c->out_off,
					c->out_len - c->out_off);
				c->out_len -= c->out_off;
				c->out_off = 0;
				cap = c->out_len + n;
			}
			if (cap < 2 * OUT_HIGH)
				cap = 2 * OUT_HIGH;
			if (cap > c->out_cap) {
				b = realloc(c->out, cap);
				if (!b)
					return -1;
				c->out = b;
				c->out_cap = cap;
			}
		}
		memcpy(c->out + c->out_len, p, n);
		c->out_len += n;
	}
	return 0;
}

/* Write what we can. -1: the connection is gone. */
static int conn_flush(struct srv_conn *c)
{
	for (;;) {
		if (c->out_off == c->out_len && conn_fill(c))
			return -1;
		if (c->out_off == c->out_len)
			break;
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->out_off += (size_t)n;
		c->stall_since = 0;
	}
	if (c->out_off < c->out_len) {
		if (!c->stall_since)
			c->stall_since = srv_now_ns();
		/* Stuck output: stop reading, so the client cannot make us
		 * queue more (see the header comment). */
		conn_set_events(c, EPOLLOUT);
	} else {
		c->out_off = c->out_len = 0;
		c->stall_since = 0;
		conn_set_events(c, EPOLLIN);
	}
	return 0;
}

/* After anything happened on c: write, and close it if it is over. */
static void conn_kick(struct srv_conn *c)
{
	if (c->closed)
		return;
	if (c->dead || conn_flush(c) || sconn_finished(c->sc))
		conn_close(c);
}

static void conn_readable(struct srv_conn *c)
{
	uint8_t buf[READ_CHUNK];

	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->dead = true;	/* closed or reset: results are dropped */
			break;
		}
		if (sconn_recv(c->sc, buf, (size_t)n)) {
			/* nghttp2 has queued a GOAWAY: send it if we can. */
			conn_flush(c);
			c->dead = true;
			break;
		}
		if (c->out_len || (size_t)n < sizeof(buf))
			break;
	}
	conn_kick(c);
}

static void do_accept(struct grpc_server *s, struct listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		struct sconn_cfg cfg = { 0 };
		struct epoll_event ev = { .events = EPOLLIN };
		struct srv_conn *c;
		unsigned open;
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				slog(s, GRPC_LOG_WARN, "grpc server: accept: %s",
				     strerror(errno));
			return;
		}
		pthread_mutex_lock(&s->mu);
		open = s->st.conns_open;
		if (open >= s->o.max_conns)
			s->st.conns_refused++;
		pthread_mutex_unlock(&s->mu);
		if (open >= s->o.max_conns) {
			slog(s, GRPC_LOG_WARN, "grpc server: over %u connections, refusing one",
			     s->o.max_conns);
			close(fd);
			continue;
		}
		if (l->family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->tag.kind = EPI_CONN;
		c->s = s;
		c->fd = fd;
		c->id = s->next_id++;
		cfg.id = c->id;
		cfg.max_recv_msg = s->o.max_recv_msg;
		cfg.max_streams = s->o.max_streams;
		cfg.conn_mem_max = s->conn_mem_max;
		cfg.global_mem = &s->mem;
		cfg.global_mem_max = s->mem_max;
		grpc_peer_of_fd(fd, &cfg.peer);
		cfg.deny_code = s->o.accept_peer ?
			s->o.accept_peer(s->o.accept_ud, &cfg.peer) : GRPC_OK;
		cfg.route = route;
		cfg.submit = submit;
		cfg.done = call_done;
		cfg.ud = s;
		cfg.log = s->o.log;
		cfg.log_ud = s->o.log_ud;
		c->sc = sconn_new(&cfg);
		ev.data.ptr = c;
		if (!c->sc || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev)) {
			sconn_free(c->sc);
			free(c);
			close(fd);
			continue;
		}
		c->ep_events = EPOLLIN;
		c->handshake_deadline = srv_now_ns() +
			(int64_t)s->o.handshake_timeout_ms * 1000000;
		glist_add_tail(&s->conns, &c->link);
		pthread_mutex_lock(&s->mu);
		s->st.conns_accepted++;
		s->st.conns_open++;
		pthread_mutex_unlock(&s->mu);
		slog(s, GRPC_LOG_DEBUG, "grpc server: conn %llu from uid %d pid %d%s",
		     (unsigned long long)c->id, (int)cfg.peer.uid, (int)cfg.peer.pid,
		     cfg.deny_code ? " (refused by policy)" : "");
		conn_kick(c);	/* our SETTINGS */
	}
}

static struct srv_conn *conn_by_id(struct grpc_server *s, uint64_t id)
{
	for (struct glist *e = s->conns.next; e != &s->conns; e = e->next) {
		struct srv_conn *c = glist_entry(e, struct srv_conn, link);

		if (c->id == id)
			return c;
	}
	return NULL;
}

/* Results from the workers, back to their streams (if still there). */
static void take_results(struct grpc_server *s)
{
	struct glist done;
	uint64_t v;
	ssize_t r = read(s->evfd, &v, sizeof(v));

	(void)r;
	glist_init(&done);
	pthread_mutex_lock(&s->mu);
	if (!glist_empty(&s->done)) {
		done = s->done;
		done.next->prev = &done;
		done.prev->next = &done;
		glist_init(&s->done);
	}
	pthread_mutex_unlock(&s->mu);
	while (!glist_empty(&done)) {
		struct srv_job *j = glist_entry(done.next, struct srv_job, link);
		struct srv_conn *c = conn_by_id(s, j->conn_id);

		glist_del(&j->link);
		if (c) {
			sconn_result(c->sc, j);
			conn_kick(c);
		}
		s->mem -= j->charge;
		srv_job_free(j);
		pthread_mutex_lock(&s->mu);
		s->jobs_out--;
		s->st.calls_active--;
		pthread_mutex_unlock(&s->mu);
	}
}

static void check_timeouts(struct grpc_server *s)
{
	int64_t now = srv_now_ns();
	struct glist *e, *next;

	for (e = s->conns.next; e != &s->conns; e = next) {
		struct srv_conn *c = glist_entry(e, struct srv_conn, link);

		next = e->next;
		if (!sconn_handshaked(c->sc) && now > c->handshake_deadline) {
			slog(s, GRPC_LOG_DEBUG, "grpc server: conn %llu: no HTTP/2 preface in %d ms",
			     (unsigned long long)c->id, s->o.handshake_timeout_ms);
			conn_close(c);
		} else if (c->stall_since &&
			   now - c->stall_since > (int64_t)STALL_MS * 1000000) {
			slog(s, GRPC_LOG_DEBUG, "grpc server: conn %llu: output stalled",
			     (unsigned long long)c->id);
			conn_close(c);
		}
	}
}

int grpc_server_run(struct grpc_server *s, volatile sig_atomic_t *stop)
{
	struct epoll_event evs[64];
	int ret = 0;

	if (s->ran)
		return -EALREADY;
	s->ran = true;
	if (!s->started && (ret = grpc_server_start(s)))
		return ret;
	while (!(stop && *stop) && !atomic_load(&s->stopping)) {
		int n = epoll_wait(s->ep, evs, 64, LOOP_TICK_MS);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		for (int i = 0; i < n; i++)
			if (((struct ep_item *)evs[i].data.ptr)->kind == EPI_WAKE)
				take_results(s);
		for (int i = 0; i < n; i++) {
			struct ep_item *it = evs[i].data.ptr;

			if (it->kind == EPI_LISTENER) {
				do_accept(s, (struct listener *)it);
			} else if (it->kind == EPI_CONN) {
				struct srv_conn *c = (struct srv_conn *)it;

				if (c->closed)
					continue;
				if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP) &&
				    !(c->ep_events & EPOLLOUT))
					conn_readable(c);
				else
					conn_kick(c);
			}
		}
		check_timeouts(s);
		reap(s);
	}
	/* Shutdown: tell every client, best effort, without waiting. */
	for (struct glist *e = s->conns.next, *next; e != &s->conns; e = next) {
		struct srv_conn *c = glist_entry(e, struct srv_conn, link);

		next = e->next;
		sconn_goaway(c->sc);
		if (conn_flush(c))
			conn_close(c);
	}
	reap(s);
	return ret;
}

void grpc_server_stop(struct grpc_server *s)
{
	atomic_store(&s->stopping, 1);
	wake(s);
}

void grpc_server_get_stats(struct grpc_server *s, struct grpc_server_stats *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->st;
	pthread_mutex_unlock(&s->mu);
}

void grpc_server_free(struct grpc_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (unsigned i = 0; i < s->nth; i++)
		pthread_join(s->th[i], NULL);
	free(s->th);
	while (!glist_empty(&s->conns))
		conn_close(glist_entry(s->conns.next, struct srv_conn, link));
	reap(s);
	while (!glist_empty(&s->work)) {
		struct srv_job *j = glist_entry(s->work.next, struct srv_job, link);

		glist_del(&j->link);
		srv_job_free(j);
	}
	while (!glist_empty(&s->done)) {
		struct srv_job *j = glist_entry(s->done.next, struct srv_job, link);

		glist_del(&j->link);
		srv_job_free(j);
	}
	for (unsigned i = 0; i < s->nl; i++) {
		struct listener *l = &s->l[i];
		struct stat st;

		close(l->fd);
		/* Only if it is still the socket we made, not a successor's. */
		if (l->unix_path && !stat(l->unix_path, &st) &&
		    st.st_dev == l->dev && st.st_ino == l->ino)
			unlink(l->unix_path);
		free(l->unix_path);
	}
	for (size_t i = 0; i < s->nroutes; i++)
		free(s->routes[i].path);
	free(s->routes);
	if (s->ep >= 0)
		close(s->ep);
	if (s->evfd >= 0)
		close(s->evfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
