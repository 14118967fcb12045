// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: name resolution off the event loop. getaddrinfo() blocks
 * (DNS, /etc/hosts, NSS modules) for as long as it likes, so a lookup
 * runs on a detached thread of its own and says it is done through an
 * eventfd in the conn's epoll set; the event loop never waits for it.
 *
 * Why a thread and not glibc's getaddrinfo_a(): it cannot abandon a
 * lookup in progress (gai_cancel() says EAI_NOTCANCELED), so its gaicb
 * must outlive a conn that gave up anyway; it reports by a signal or a
 * SIGEV_THREAD thread of its own, and it needs -lanl on older glibc. One
 * short-lived thread per connect (connects are rare: made lazily, never
 * in a loop) with an explicitly refcounted request is as cheap and says
 * plainly who frees what.
 *
 * A request has two references: the thread's and the owner's (the
 * transport). Whichever lets go last frees it, with the addresses if the
 * owner never took them, so a conn freed or a transport that timed out
 * while the lookup hangs just drops its reference and the late result is
 * freed by the thread. The thread touches only the request; the owner
 * takes the addresses only after the release store of done.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

grpc_getaddrinfo_fn grpc_resolver_getaddrinfo = getaddrinfo;
grpc_freeaddrinfo_fn grpc_resolver_freeaddrinfo = freeaddrinfo;

static atomic_int live;		/* requests not yet freed, for the tests */

struct resolve {
	atomic_int refs;
	atomic_bool done;
	int efd;			/* eventfd: written once, when done */
	bool registered;		/* efd is in the owner's epoll set */
	char *host, *port;
	struct addrinfo hints;
	grpc_getaddrinfo_fn lookup;	/* the hooks as they were at start */
	grpc_freeaddrinfo_fn release;
	/* written by the thread before done, read by the owner after */
	int rv, err;
	struct addrinfo *ai;
};

static void resolve_unref(struct resolve *r)
{
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (r->ai)
		r->release(r->ai);
	if (r->efd >= 0)
		close(r->efd);
	free(r->host);
	free(r->port);
	free(r);
	atomic_fetch_sub(&live, 1);
}

static void *resolve_thread(void *arg)
{
	struct resolve *r = arg;
	uint64_t one = 1;
	ssize_t n;

	errno = 0;
	r->rv = r->lookup(r->host, r->port, &r->hints, &r->ai);
	r->err = r->rv == EAI_SYSTEM ? errno : 0;
	if (r->rv)
		r->ai = NULL;
	atomic_store_explicit(&r->done, true, memory_order_release);
	/*
	 * Adding 1 to a fresh eventfd cannot block or fail (were it to, the
	 * owner would see the lookup time out, nothing worse).
	 */
	n = write(r->efd, &one, sizeof(one));
	(void)n;
	resolve_unref(r);
	return NULL;
}

struct resolve *resolve_start(const char *host, const char *port,
			      const struct addrinfo *hints, int epfd, void *tag,
			      char *err, size_t errlen)
{
	struct resolve *r = calloc(1, sizeof(*r));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
	pthread_attr_t attr;
	sigset_t all, old;
	int rv;

	if (!r) {
		grpc_errf(err, errlen, -1, "out of memory");
		return NULL;
	}
	atomic_init(&r->refs, 2);
	atomic_init(&r->done, false);
	atomic_fetch_add(&live, 1);
	r->hints = *hints;
	r->lookup = grpc_resolver_getaddrinfo;
	r->release = grpc_resolver_freeaddrinfo;
	r->host = strdup(host);
	r->port = strdup(port);
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!r->host || !r->port || r->efd < 0) {
		grpc_errf(err, errlen, -1, "%s", r->efd < 0 ? strerror(errno) :
			  "out of memory");
		goto bad;
	}
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, r->efd, &ev)) {
		grpc_errf(err, errlen, -1, "epoll_ctl: %s", strerror(errno));
		goto bad;
	}
	r->registered = true;
	if ((rv = pthread_attr_init(&attr))) {
		grpc_errf(err, errlen, -1, "thread: %s", strerror(rv));
		goto bad;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/*
	 * No signals on the lookup thread: the program's handlers (or its
	 * signalfd) expect them on its own threads.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = pthread_create(&(pthread_t){ 0 }, &attr, resolve_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rv) {
		grpc_errf(err, errlen, -1, "cannot start a thread: %s", strerror(rv));
		goto bad;
	}
	return r;
bad:
	resolve_drop(r, epfd);		/* ours */
	resolve_unref(r);		/* the one no thread took */
	return NULL;
}

bool resolve_take(struct resolve *r, int *rv, struct addrinfo **ai,
		  grpc_freeaddrinfo_fn *release, int *sys_errno)
{
	/* No need to read the eventfd: resolve_drop() takes it out of epoll. */
	if (!atomic_load_explicit(&r->done, memory_order_acquire))
		return false;
	*ai = r->ai;
	*release = r->release;
	*sys_errno = r->err;
	*rv = r->rv;
	r->ai = NULL;
	return true;
}

void resolve_drop(struct resolve *r, int epfd)
{
	if (!r)
		return;
	if (r->registered)
		epoll_ctl(epfd, EPOLL_CTL_DEL, r->efd, NULL);
	r->registered = false;
	resolve_unref(r);
}

int resolve_live(void)
{
	return atomic_load(&live);
}
