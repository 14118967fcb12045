/* SPDX-License-Identifier: GPL-2.0 */
/* casfs gRPC: what conn.c, call.c and run.c share. Not a public API. */
#ifndef CASFS_GRPC_INTERNAL_H
#define CASFS_GRPC_INTERNAL_H

#include "grpc.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <netdb.h>
#include <sys/un.h>

/* An intrusive doubly-linked list. */
struct glist {
	struct glist *prev, *next;
};
static inline void glist_init(struct glist *h) { h->prev = h->next = h; }
static inline bool glist_empty(const struct glist *h) { return h->next == h; }
static inline void glist_add_tail(struct glist *h, struct glist *e)
{
	e->prev = h->prev;
	e->next = h;
	h->prev->next = e;
	h->prev = e;
}
static inline void glist_del(struct glist *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}
#define glist_entry(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

#define CALL_BUCKETS 256

/* What an epoll event's data.ptr points at. */
enum ep_kind { EP_TIMER, EP_WAKE, EP_TRANSPORT, EP_RESOLVE };
struct ep_tag {
	enum ep_kind kind;
};

/* getaddrinfo() and freeaddrinfo(), or a test's (resolve.c) */
typedef int (*grpc_getaddrinfo_fn)(const char *host, const char *port,
				   const struct addrinfo *hints,
				   struct addrinfo **res);
typedef void (*grpc_freeaddrinfo_fn)(struct addrinfo *ai);
struct resolve;

enum tp_state {
	TP_CONNECTING,		/* name lookup (res) or TCP connect in progress */
	TP_TLS,			/* TLS handshake */
	TP_READY,		/* HTTP/2 session up, takes new calls */
	TP_DRAINING,		/* GOAWAY (or ids used up): no new calls */
	TP_DEAD,		/* to be freed at the end of this step */
};

/* One connection attempt / HTTP/2 session. */
struct transport {
	struct ep_tag tag;
	struct grpc_conn *conn;
	struct glist link;		/* in conn->transports */
	enum tp_state state;
	int fd;
	uint32_t ep_events;		/* registered with epoll */
	uint32_t revents;		/* this step's */
	struct ep_tag res_tag;		/* EP_RESOLVE: res is done */
	struct resolve *res;		/* name lookup in progress, or NULL */
	struct addrinfo *ai, *ai_next;	/* addresses still to try */
	struct addrinfo *ai_cur;	/* the one being tried */
	grpc_freeaddrinfo_fn ai_free;	/* frees ai */
	struct addrinfo unix_ai;	/* the one address of a unix: target */
	struct sockaddr_un unix_sa;
	/*
	 * ns: the lookup's, then this address's TCP connect's (shorter when
	 * more addresses remain, see ADDR_CONNECT_MS in conn.c)...
	 */
	int64_t connect_deadline;
	int connect_ms;			/* ...which is this many ms */
	int64_t settings_deadline;	/* ns: TLS and SETTINGS, this address */
	SSL *ssl;
	BIO *rbio, *wbio;		/* memory BIOs; we do the socket I/O */
	nghttp2_session *h2;
	uint8_t *out;			/* bytes waiting for the socket */
	size_t out_off, out_len, out_cap;
	bool write_blocked;		/* send() said EAGAIN */
	bool got_settings;		/* the server has spoken HTTP/2 */
	/* liveness (conn.c, live_check) */
	int64_t last_recv;		/* ns: the last byte from the server */
	int64_t last_frame;		/* ns: the last frame other than a PING */
	int64_t ping_sent;		/* ns: our PING waiting for any byte; 0: none */
	int64_t ping_interval;		/* ns: silence before the next PING */
	int64_t last_expiry;		/* ns: a call of ours last hit its deadline */
	unsigned silent_expiries;	/* deadlines hit with nothing received between */
	int64_t live_next;		/* ns: live_check() wants another look; 0: no */
	bool goaway;
	int32_t goaway_last_id;
	uint32_t goaway_error;
	struct glist calls;		/* struct grpc_call on this transport */
	unsigned ncalls;
	/*
	 * stream id -> call. nghttp2's stream_user_data is not used: a call
	 * leaves this table when it finishes or is cancelled, so no late
	 * nghttp2 callback can reach a freed call.
	 */
	struct grpc_call *by_id[CALL_BUCKETS];
	char why[256];			/* why it died */
};

enum call_state {
	CALL_QUEUED,		/* in conn->queued */
	CALL_ACTIVE,		/* on a transport, in t->calls */
	CALL_DONE,		/* in conn->done, on_done pending */
	CALL_FIRING,		/* in on_done */
	CALL_CANCELLED,		/* freed once out of its callback */
};

struct grpc_call {
	struct grpc_conn *conn;
	struct glist link;		/* in queued, t->calls or done */
	struct grpc_call *hnext;	/* in t->by_id[] */
	enum call_state state;
	struct transport *t;
	int32_t stream_id;
	char *method;
	uint8_t *req;			/* framed request */
	size_t req_len, req_off;
	int64_t deadline;		/* ns on CLOCK_MONOTONIC; 0: none */
	int64_t idle;			/* ns: idle_timeout_ms; 0: none */
	/* ns: when it was queued, its HEADERS sent, or response bytes last
	 * arrived (the idle bound counts from here) */
	int64_t progress;
	struct grpc_metadata md;
	char *accept_encoding;
	int (*on_msg)(void *, const uint8_t *, size_t, bool);
	void (*on_done)(void *, const struct grpc_status *);
	void *ud;
	int attempts;			/* transparent retries done */
	unsigned in_cb;			/* inside on_msg */
	bool headers_sent;		/* HEADERS went to the socket buffer */
	/* response */
	int http_status;
	bool content_type_ok, content_type_seen;
	bool compressed_ok;		/* grpc-encoding is one we accept */
	bool got_headers, got_trailers;
	int grpc_status;		/* -1 until seen */
	char *grpc_message;		/* raw, percent-encoded */
	size_t grpc_message_len;
	char *details_b64;
	size_t details_b64_len;
	size_t header_bytes;		/* received, all blocks */
	int local_code;			/* error we found ourselves, or -1 */
	char *local_msg;
	struct grpc_deframer df;
	struct grpc_status st;		/* final */
};

struct grpc_conn {
	struct grpc_conn_opts o;	/* strings below are our copies */
	char *url, *host, *port, *authority, *server_name;
	char *unix_path;		/* unix:PATH target, else NULL */
	char *ca_file, *cert_file, *key_file;
	bool tls;
	SSL_CTX *ssl_ctx;
	struct grpc_metadata md;
	int epfd, timerfd, wakefd;
	struct ep_tag timer_tag, wake_tag;
	int64_t timer_armed;		/* ns; 0: disarmed */
	bool woken;			/* wakefd has been written */
	struct glist transports;
	struct glist queued;		/* calls waiting for a transport */
	struct glist done;		/* calls whose on_done is pending */
	struct grpc_conn_stats stats;
	/* After a failed connect, no new one before retry_at (ns): calls
	 * fail fast meanwhile, and a dead server is not hammered. */
	int64_t retry_at;
	int backoff_ms;			/* 0 after a connect that worked */
	char last_fail[256];
	bool in_step;
};

int64_t grpc_now_ns(void);
void grpc_log(struct grpc_conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conn_wake(struct grpc_conn *c);

/* call.c, used by conn.c */
nghttp2_session_callbacks *call_h2_callbacks(void);	/* caller deletes */
/* Submit a queued call on a ready transport; on failure it stays queued
 * (returns <0) or is finished (returns 0). */
int call_submit(struct transport *t, struct grpc_call *call);
/* The transport is going away: finish (or requeue) its calls. */
void call_transport_failed(struct transport *t, const char *why);
/* Deadlines of queued and active calls. */
void calls_expire(struct grpc_conn *c, int64_t now);
int64_t calls_next_deadline(struct grpc_conn *c);
/* Fire on_done for everything in conn->done. */
void calls_complete(struct grpc_conn *c);
/* Finish queued calls (no transport could be had). */
void calls_fail_queued(struct grpc_conn *c, const char *why);
void call_free(struct grpc_call *call);

/* conn.c, used by call.c */
void transport_call_gone(struct transport *t);
/* A frame arrived (PING ACKs included); liveness bookkeeping. */
void transport_frame_seen(struct transport *t, uint8_t type, uint8_t flags);
/* A call on t hit its deadline (transports whose calls keep timing out
 * with nothing heard from the server take no new calls). */
void transport_call_expired(struct transport *t, int64_t now);
void transport_goaway(struct transport *t, int32_t last_id, uint32_t error,
		      const uint8_t *data, size_t len);

/*
 * resolve.c: getaddrinfo() on a thread of its own (why: resolve.c). The
 * request's eventfd is registered in epfd with tag; when it fires,
 * resolve_take() the result, then resolve_drop(). resolve_drop() may
 * come at any time: a late answer is then freed by the thread.
 */
/* Test hooks: the lookup and its free (default getaddrinfo, freeaddrinfo). */
extern grpc_getaddrinfo_fn grpc_resolver_getaddrinfo;
extern grpc_freeaddrinfo_fn grpc_resolver_freeaddrinfo;
struct resolve *resolve_start(const char *host, const char *port,
			      const struct addrinfo *hints, int epfd, void *tag,
			      char *err, size_t errlen);
/* false: not done yet. Else *rv is getaddrinfo's return, *ai the
 * caller's, freed with *release; *sys_errno is errno for EAI_SYSTEM. */
bool resolve_take(struct resolve *r, int *rv, struct addrinfo **ai,
		  grpc_freeaddrinfo_fn *release, int *sys_errno);
void resolve_drop(struct resolve *r, int epfd);	/* NULL: nothing */
int resolve_live(void);		/* requests not yet freed (tests) */

/* metadata.c: "what went wrong" into err (may be NULL), returns ret. */
int grpc_errf(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
