/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs gRPC server: what server.c (sockets, event loop, workers) and
 * server_conn.c (one HTTP/2 connection, driven from memory) share, and
 * what fuzz_server.c drives. Not a public API.
 */
#ifndef CASFS_GRPC_SERVER_INTERNAL_H
#define CASFS_GRPC_SERVER_INTERNAL_H

#include "internal.h"

/*
 * One unary call handed to a worker and back. It names its stream by
 * connection id and stream id, never by pointer: the stream or the whole
 * connection may be gone when the result comes back (HTTP/2 never reuses
 * a stream id on a connection, and connection ids are never reused).
 */
struct srv_job {
	struct glist link;
	uint64_t conn_id;
	int32_t stream_id;
	grpc_unary_fn fn;
	void *fn_ud;
	struct grpc_peer peer;
	uint8_t *req;
	size_t req_len;
	int64_t deadline;	/* CLOCK_MONOTONIC ns; 0: none */
	size_t charge;		/* request bytes counted against the budgets */
	/* the result */
	int code;
	uint8_t *resp;
	size_t resp_len;
	char *msg;
};
void srv_job_free(struct srv_job *j);
int64_t srv_now_ns(void);

struct sconn_cfg {
	uint64_t id;
	size_t max_recv_msg;
	unsigned max_streams;
	/*
	 * Request bytes held (partial messages, messages waiting for or in a
	 * handler), on this connection and on all (*global_mem, owned by the
	 * event loop thread). Over either: RESOURCE_EXHAUSTED.
	 */
	size_t conn_mem_max;
	size_t *global_mem, global_mem_max;
	int deny_code;		/* GRPC_OK, or every call gets this */
	struct grpc_peer peer;
	/* The handler for a path; false if none. */
	bool (*route)(void *ud, const char *path, grpc_unary_fn *fn, void **fn_ud);
	/* Queue a job for the workers: 0, or -EBUSY when the queue is full
	 * (the job stays the caller's). */
	int (*submit)(void *ud, struct srv_job *job);
	/* Each call's final status, as it is answered (statistics). */
	void (*done)(void *ud, int code);
	void *ud;
	void (*log)(void *ud, int level, const char *msg);
	void *log_ud;
};

struct sconn;

struct sconn *sconn_new(const struct sconn_cfg *cfg);
void sconn_free(struct sconn *c);
/* Bytes from the client. 0, or -1: the connection is broken (send what
 * sconn_send() still has, a GOAWAY, then close). */
int sconn_recv(struct sconn *c, const uint8_t *p, size_t n);
/* The next bytes for the client: *len 0 when there are none. *p is valid
 * until the next sconn_* call. 0, or -1 when broken. */
int sconn_send(struct sconn *c, const uint8_t **p, size_t *len);
/* Nothing more to read or write: close it. */
bool sconn_finished(const struct sconn *c);
/* The client preface and its SETTINGS have arrived. */
bool sconn_handshaked(const struct sconn *c);
/* A worker's result for one of this connection's jobs; the job stays the
 * caller's (its response buffer may have been taken). */
void sconn_result(struct sconn *c, struct srv_job *job);
/* Jobs submitted and not yet back through sconn_result(). */
unsigned sconn_jobs(const struct sconn *c);
/* Graceful shutdown: GOAWAY with the last stream id processed. */
void sconn_goaway(struct sconn *c);

#endif
