/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs gRPC client core: HTTP/2 (nghttp2) over TCP or TLS (OpenSSL, ALPN
 * h2), carrying opaque protobuf message bytes. Single-threaded and
 * non-blocking: one grpc_conn owns an epoll fd that becomes readable
 * whenever grpc_conn_step() has work (socket I/O, a deadline, a queued
 * call); put it in a poll() loop with POLLIN. grpc_call_run() and
 * grpc_unary() are blocking conveniences for tools.
 *
 * Nothing here is thread-safe: use a grpc_conn and its calls from one
 * thread. Callbacks run only inside grpc_conn_step() (never inside
 * grpc_call_start() or grpc_call_cancel()).
 */
#ifndef CASFS_GRPC_H
#define CASFS_GRPC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum grpc_code {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};
const char *grpc_code_name(int code);	/* "NOT_FOUND", ...; "CODE_99" */

/* ---- frame.c: the length-prefixed message format (pure, no I/O) ---- */

#define GRPC_FRAME_HDR 5
/* Default cap on one received message: REv2's 4 MiB plus slack. */
#define GRPC_DEFAULT_MAX_MSG ((size_t)4 * 1024 * 1024 + 64 * 1024)

enum grpc_frame_err {
	GRPC_FRAME_OK = 0,
	GRPC_FRAME_TOO_LARGE = -1,	/* declared length over the cap */
	GRPC_FRAME_COMPRESSED = -2,	/* compressed flag, none negotiated */
	GRPC_FRAME_BAD_FLAG = -3,	/* flag byte neither 0 nor 1 */
	GRPC_FRAME_TRUNCATED = -4,	/* stream ended inside a message */
	GRPC_FRAME_NOMEM = -5,
};
const char *grpc_frame_strerror(int err);

/*
 * Called once per complete message; msg is valid only during the call
 * (it may point into the caller's input). Return 0 to go on; anything
 * else stops grpc_deframer_feed(), which returns that value.
 */
typedef int (*grpc_msg_fn)(void *ud, const uint8_t *msg, size_t len,
			   bool compressed);

struct grpc_deframer {
	size_t max_msg;
	bool allow_compressed;
	int err;		/* sticky grpc_frame_err once set */
	uint8_t hdr[GRPC_FRAME_HDR];
	size_t hdr_have;	/* bytes of hdr[] filled */
	bool compressed;	/* of the message being assembled */
	size_t need;		/* its length (valid once hdr_have == 5) */
	uint8_t *buf;		/* partial message; grows with what arrived */
	size_t have, cap;
	uint64_t messages;	/* delivered so far */
};

void grpc_deframer_init(struct grpc_deframer *d, size_t max_msg,
			bool allow_compressed);
/*
 * Feed the next bytes of the stream, split anywhere. Returns 0, a
 * (negative, sticky) grpc_frame_err, or the callback's non-zero value.
 * Memory held is at most about max_msg, and grows only with bytes that
 * actually arrived, never with a declared length.
 */
int grpc_deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n,
		       grpc_msg_fn fn, void *ud);
/* At end of stream: 0 if it ended on a message boundary. */
int grpc_deframer_finish(struct grpc_deframer *d);
void grpc_deframer_free(struct grpc_deframer *d);

/* Write the 5-byte prefix; -1 if len does not fit in 32 bits. */
int grpc_frame_header(uint8_t hdr[GRPC_FRAME_HDR], size_t len, bool compressed);

/* ---- metadata.c: request headers ---- */

struct grpc_md {
	char *name;		/* lowercase, validated */
	char *value;		/* printable ASCII, trimmed */
};
struct grpc_metadata {
	struct grpc_md *v;
	size_t n;
};

#define GRPC_MD_MAX 64			/* entries in one set */
#define GRPC_MD_MAX_LINE 8192		/* one "name: value" */

/*
 * Add one header. The name is lowercased and must be [a-z0-9-_.]+, and
 * not one the protocol sets ("grpc-*", content-type, te, user-agent,
 * and HTTP/2's forbidden connection headers; ':' cannot pass anyway).
 * The value must be printable ASCII (0x20-0x7e), non-empty after
 * trimming, and base64 text for names ending in "-bin". Returns 0 or
 * -EINVAL/-E2BIG/-ENOMEM with a message in err.
 */
int grpc_md_add(struct grpc_metadata *md, const char *name, const char *value,
		char *err, size_t errlen);
/*
 * Walk header text: one "name: value" per line, CRLF and surrounding
 * blanks trimmed, blank lines and '#' comments skipped, a NUL byte
 * refused. fn gets each line (not NUL-terminated), its number and the
 * offset of its first ':' (> 0); a non-zero return stops the walk and is
 * returned. A line without a name and ':' fails here (-EINVAL), one
 * longer than max_line too (-E2BIG), with a message in err.
 */
typedef int (*grpc_line_fn)(void *ud, unsigned long lineno, const char *s,
			    size_t len, size_t colon);
int grpc_header_lines(const char *text, size_t len, size_t max_line,
		      grpc_line_fn fn, void *ud, char *err, size_t errlen);
/* "name: value" lines (grpc_header_lines) into md, each through grpc_md_add. */
int grpc_md_parse(struct grpc_metadata *md, const char *text, size_t len,
		  char *err, size_t errlen);
/* grpc_md_parse() of a file of at most 64 KiB. */
int grpc_md_load_file(struct grpc_metadata *md, const char *path,
		      char *err, size_t errlen);
void grpc_md_free(struct grpc_metadata *md);

/* grpc-message percent-decoding (malformed escapes are kept as they are). */
char *grpc_percent_decode(const char *s, size_t len);
/*
 * grpc-message percent-encoding (PROTOCOL-HTTP2.md): bytes outside
 * 0x20-0x7e, and '%', become %XX. malloc'ed; NULL only without memory.
 */
char *grpc_percent_encode(const char *s, size_t len);
/* base64 (standard alphabet, padding optional), for "-bin" headers. */
int grpc_base64_decode(const char *s, size_t len, uint8_t **out,
		       size_t *outlen);
/* "grpc-timeout" value for a timeout in ms (>= 1): "5000m", "90000S". */
void grpc_timeout_format(int64_t ms, char out[16]);
/* Parse a grpc-timeout value into ms (rounded up); -1 if malformed. */
int64_t grpc_timeout_parse(const char *s, size_t len);

/* ---- conn.c: a connection to one server ---- */

struct grpc_conn;

enum grpc_log_level { GRPC_LOG_ERR, GRPC_LOG_WARN, GRPC_LOG_INFO, GRPC_LOG_DEBUG };

struct grpc_conn_opts {
	/*
	 * grpc://host:port (h2c), grpcs://host:port, or a unix socket:
	 * unix:PATH, unix:///PATH or grpc+unix:PATH (h2c; PATH absolute)
	 */
	const char *url;
	const char *ca_file;	/* grpcs: trust these (default: system) */
	const char *cert_file;	/* grpcs: optional client certificate... */
	const char *key_file;	/* ...and key (default: cert_file) */
	const char *tls_server_name; /* SNI and name check (default: host) */
	const struct grpc_metadata *md;	/* sent with every call (copied) */
	size_t max_recv_msg;	/* 0: GRPC_DEFAULT_MAX_MSG */
	uint32_t window;	/* stream and connection window; 0: 16 MiB */
	/*
	 * 0: 20 s. Bounds the name lookup (which never blocks the caller:
	 * it runs on a thread of its own), then each address in turn: its
	 * TCP connect, TLS handshake and the server's first SETTINGS. While
	 * more addresses remain, one whose TCP connect is not done within
	 * 5 s (or this, if less) is given up for the next, so a dead first
	 * address (broken IPv6, say) costs 5 s, not all of it; the last
	 * address gets all of it. Each address given up is logged.
	 */
	int connect_timeout_ms;
	/*
	 * How many times a call the server provably did not process
	 * (REFUSED_STREAM, above a GOAWAY's last stream id, never sent) is
	 * retried on a new stream before it fails with UNAVAILABLE and
	 * status.unprocessed; -1: default 1, 0: never.
	 */
	int transparent_retries;
	/*
	 * Liveness. A transport with calls on it that has received nothing
	 * for keepalive_ms is sent an HTTP/2 PING; if no byte at all arrives
	 * within ping_timeout_ms of it, the server is taken for dead (it may
	 * be stopped, or its host gone, with no reset ever coming): the
	 * transport is closed, its calls fail with UNAVAILABLE (transport
	 * set), and the next call connects anew. 0: 5 s each; keepalive_ms
	 * -1: no PINGs. While only PING answers arrive, the interval doubles
	 * (up to 5 min): gRPC servers answer a client that keeps pinging a
	 * silent connection more than about every 5 min with GOAWAY
	 * ENHANCE_YOUR_CALM, and any other frame from them resets it.
	 * TCP_USER_TIMEOUT (20 s) bounds unacknowledged data the same way.
	 */
	int keepalive_ms;
	int ping_timeout_ms;
	/*
	 * HTTP/2 connections to keep to the server, each call going to the
	 * least busy; a second one opens only while the first has calls on
	 * it, so a one-call tool keeps one. 0: 2.
	 */
	unsigned connections;
	void (*log)(void *ud, int level, const char *msg);
	void *log_ud;
};

/* Is url one grpc_conn_new() takes (by its scheme alone)? */
bool grpc_url_ok(const char *url);

/* Parses the URL and sets up TLS; connects lazily at the first call. */
struct grpc_conn *grpc_conn_new(const struct grpc_conn_opts *o,
				char *err, size_t errlen);
/* Outstanding calls are dropped without callbacks. Not from a callback. */
void grpc_conn_free(struct grpc_conn *c);

/* The fd to poll (stable for the conn's life) and the events (POLLIN). */
int grpc_conn_fd(const struct grpc_conn *c);
short grpc_conn_events(const struct grpc_conn *c);
/*
 * Do whatever is due without blocking: socket I/O, TLS, deadlines,
 * starting queued calls, callbacks. Returns 0, or -errno for a failure
 * of the conn itself (epoll); call errors go to their callbacks.
 */
int grpc_conn_step(struct grpc_conn *c);
/* poll() the fd for at most timeout_ms (-1: forever), then step. */
int grpc_conn_wait(struct grpc_conn *c, int timeout_ms);

struct grpc_conn_stats {
	uint64_t connects;	/* transports started */
	uint64_t connect_failures;
	uint64_t goaways;	/* GOAWAY frames received */
	uint64_t calls_started, calls_ok, calls_failed;
	uint64_t retries;	/* transparent retries */
	uint64_t pings;		/* liveness PINGs sent */
	uint64_t dead_transports; /* closed: no answer to a PING, or calls timing out */
	uint64_t bytes_sent, bytes_recv;	/* on the socket */
	unsigned active_calls;
	unsigned transports;	/* open, including draining ones */
};
void grpc_conn_get_stats(const struct grpc_conn *c, struct grpc_conn_stats *s);

/* ---- call.c: calls ---- */

struct grpc_status {
	int code;		/* enum grpc_code */
	char *message;		/* never NULL: decoded grpc-message or ours */
	uint8_t *details;	/* grpc-status-details-bin (a google.rpc.Status) */
	size_t details_len;
	int http_status;	/* :status received, 0 if none */
	uint32_t h2_error;	/* RST_STREAM / GOAWAY error code, if any */
	/*
	 * The server did not process the request (refused stream, GOAWAY
	 * above it, or never sent): safe to retry any call.
	 */
	bool unprocessed;
	/* From the transport (connection, RST_STREAM, GOAWAY, deadline,
	 * framing), not from grpc-status in trailers. */
	bool transport;
	uint64_t messages;	/* response messages delivered */
};
void grpc_status_free(struct grpc_status *s);
int grpc_status_copy(struct grpc_status *dst, const struct grpc_status *src);

struct grpc_call;

struct grpc_call_opts {
	const char *method;	/* "/package.Service/Method" */
	const void *req;	/* one request message, unframed (copied) */
	size_t req_len;
	int64_t timeout_ms;	/* 0: none; sent as grpc-timeout and enforced */
	/*
	 * 0: none. Progress, not total time: the call fails with
	 * DEADLINE_EXCEEDED (status.transport set, "no data for N ms")
	 * once no response bytes for it (HEADERS or DATA frames of its
	 * stream) have arrived for this long, counted from when its HEADERS
	 * went out, then from the last such frame; a call still waiting for
	 * a transport fails the same after this long from when it was
	 * queued (or requeued by a transparent retry). Any response bytes
	 * count, even ones that complete no message. Combines with
	 * timeout_ms (whichever comes first); never sent to the server
	 * (grpc-timeout carries timeout_ms alone).
	 */
	int64_t idle_timeout_ms;
	const struct grpc_metadata *md;	/* extra headers for this call */
	/* e.g. "gzip": sent as grpc-accept-encoding; compressed messages in
	 * that encoding reach on_msg with compressed set, for the caller to
	 * decode. NULL: compressed messages are an INTERNAL error. */
	const char *accept_encoding;
	/*
	 * Each response message as it completes (valid during the call).
	 * Non-zero cancels the call: RST_STREAM CANCEL, then on_done with
	 * CANCELLED.
	 */
	int (*on_msg)(void *ud, const uint8_t *msg, size_t len, bool compressed);
	/* Exactly once, unless the call is cancelled by grpc_call_cancel().
	 * st is valid during the call (grpc_status_copy() to keep it); the
	 * call handle is freed when on_done returns. */
	void (*on_done)(void *ud, const struct grpc_status *st);
	void *ud;
};

/*
 * Queue a call; it starts at the next grpc_conn_step() (connecting
 * first if needed). Returns NULL only for bad arguments or no memory
 * (errno set); every other failure reaches on_done.
 */
struct grpc_call *grpc_call_start(struct grpc_conn *c,
				  const struct grpc_call_opts *o);
/*
 * Cancel: sends RST_STREAM CANCEL if the call is on the wire; no further
 * callbacks, and the handle is invalid afterwards. Allowed from any
 * callback, including the call's own on_msg (not its on_done).
 */
void grpc_call_cancel(struct grpc_call *call);

/* ---- run.c: blocking conveniences ---- */

/* Start a call and run the conn until it completes; *st gets its status
 * (grpc_status_free() it). Returns st->code. on_done in o is ignored. */
int grpc_call_run(struct grpc_conn *c, const struct grpc_call_opts *o,
		  struct grpc_status *st);
/* A unary call: exactly one response message in *resp (malloc'ed) on OK. */
int grpc_unary(struct grpc_conn *c, const char *method, const void *req,
	       size_t req_len, int64_t timeout_ms, uint8_t **resp,
	       size_t *resp_len, struct grpc_status *st);

/* ---- server.c, server_conn.c, peer.c: a unary gRPC server ---- */

/*
 * HTTP/2 cleartext with prior knowledge on loopback TCP and unix
 * sockets. One thread (the caller of grpc_server_run()) owns the sockets
 * and nghttp2 sessions; handlers run on a pool of worker threads.
 */
struct grpc_server;

struct grpc_peer {
	int family;	/* AF_UNIX, AF_INET or AF_INET6 */
	uid_t uid;	/* (uid_t)-1 when unknown */
	pid_t pid;	/* unix sockets (SO_PEERCRED); 0 otherwise */
};
/*
 * The peer of a connected socket: SO_PEERCRED for unix sockets; for TCP
 * from a loopback address, the owner of the client's socket as the
 * kernel's socket diagnostics (NETLINK_SOCK_DIAG) report it. Other
 * peers, and any failure, leave uid (uid_t)-1. Blocks at most ~250 ms.
 */
void grpc_peer_of_fd(int fd, struct grpc_peer *peer);

/*
 * Runs on a worker thread. req/req_len: the one request message
 * (unframed). On return: *resp (malloc'ed, may be NULL with *resp_len 0
 * for an empty message) is sent when the return value is GRPC_OK;
 * otherwise the return value is the status code and *msg (malloc'ed or
 * NULL) its message. A handler always runs to completion: if its result
 * comes after the call's grpc-timeout, the client gets DEADLINE_EXCEEDED
 * instead; if the client has gone, the result is dropped.
 */
typedef int (*grpc_unary_fn)(void *ud, const struct grpc_peer *peer,
			     const uint8_t *req, size_t req_len,
			     uint8_t **resp, size_t *resp_len, char **msg);

struct grpc_server_opts {
	unsigned workers;		/* handler threads; 0: 4 */
	size_t max_recv_msg;		/* 0: GRPC_DEFAULT_MAX_MSG */
	unsigned max_conns;		/* 0: 64; more are accepted and closed at once */
	unsigned max_streams;		/* concurrent per connection; 0: 100 */
	int handshake_timeout_ms;	/* preface+SETTINGS; 0: 10 s */
	/*
	 * Called once per accepted connection with its peer (on the event
	 * loop thread); return GRPC_OK to serve it, or a code (e.g.
	 * GRPC_PERMISSION_DENIED) with which every call on it is answered,
	 * without calling any handler. NULL: serve all.
	 */
	int (*accept_peer)(void *ud, const struct grpc_peer *peer);
	void *accept_ud;
	void (*log)(void *ud, int level, const char *msg);	/* enum grpc_log_level */
	void *log_ud;
};

struct grpc_server *grpc_server_new(const struct grpc_server_opts *o,
				    char *err, size_t errlen);
/* path: "/package.Service/Method". Before grpc_server_start(). 0 or -errno. */
int grpc_server_add_unary(struct grpc_server *s, const char *path,
			  grpc_unary_fn fn, void *ud);
/*
 * "grpc://127.0.0.1:PORT", "grpc://[::1]:PORT", "grpc://localhost:PORT"
 * or "unix:/abs/path" (also "unix:relative"). TCP only on loopback
 * addresses (else -EINVAL). PORT 0 picks one: grpc_server_bound_port().
 * A unix path that exists as a socket is replaced; the socket is made
 * mode 0600 (umask 077 around bind()). 0 or -errno with err set.
 */
int grpc_server_listen(struct grpc_server *s, const char *url,
		       char *err, size_t errlen);
/* An already bound, listening socket (socket activation); the server
 * owns it from now on, even on failure. */
int grpc_server_listen_fd(struct grpc_server *s, int fd, char *err, size_t errlen);
/* The idx-th listener's TCP port, or -1. */
int grpc_server_bound_port(const struct grpc_server *s, unsigned idx);
/* Start the workers. 0 or -errno. */
int grpc_server_start(struct grpc_server *s);
/*
 * Serve until *stop (may be NULL) becomes non-zero or grpc_server_stop();
 * either is noticed within 100 ms. Then GOAWAY to every connection and
 * return 0 (-errno if the loop itself failed). Once per server.
 */
int grpc_server_run(struct grpc_server *s, volatile sig_atomic_t *stop);
/* Thread-safe and async-signal-safe (an atomic store and an eventfd write). */
void grpc_server_stop(struct grpc_server *s);
/* Joins the workers (waiting for running handlers), closes everything,
 * unlinks the unix socket paths it created. */
void grpc_server_free(struct grpc_server *s);

struct grpc_server_stats {
	uint64_t conns_accepted, conns_refused;	/* refused: over max_conns */
	uint64_t calls, calls_failed;		/* finished; failed: not OK */
	unsigned conns_open, calls_active;	/* active: in a handler or queued */
};
/* Any thread. */
void grpc_server_get_stats(struct grpc_server *s, struct grpc_server_stats *st);

#endif
