/* SPDX-License-Identifier: GPL-2.0 */
/* casfs-helper: what fetch.c and the backends share. Internal. */
#ifndef CASFS_BACKEND_H
#define CASFS_BACKEND_H

#include <stdbool.h>
#include <curl/curl.h>
#include "fetch.h"
#include "publish.h"

/* JOB_SYNCING: verified, in tmp/, waiting for its group's syncfs and rename. */
enum job_state { JOB_QUEUED, JOB_ACTIVE, JOB_BACKOFF, JOB_SYNCING, JOB_DONE };

struct waiter {
	fetch_cb cb;
	void *arg;
	uint64_t tag;
};

struct job {
	uint8_t digest[CASFS_SHA256_LEN];
	char hex[HEX_LEN + 1];
	uint64_t size;
	enum job_state state;
	bool fetched;		/* went to the backend (latency is recorded) */
	struct waiter *w;
	unsigned nw, capw;
	uint64_t t_start_us, deadline_ms, next_try_ms;
	unsigned attempt;
	uint32_t uid;			/* whose turn it queues in */
	struct uid_queue *uq;		/* while QUEUED */
	uint64_t reported;		/* the most bytes any attempt has written */
	bool disk_retried;	/* retried once after a local disk error (ENOSPC: evicted) */
	uint64_t retry_after_ms;	/* set by a backend: server asked to wait */
	int status;
	struct blob_writer bw;	/* open while ACTIVE */
	void *bpriv;		/* backend's per-attempt state */
	struct job *prev, *next;	/* in the list of its state */
	struct job *hnext;		/* in the dedup table (not DONE) */
};

struct job_list {
	struct job *head, *tail;
	unsigned n;
};

/* The queued jobs of one uid, in a ring of uids taking turns. */
struct uid_queue {
	uint32_t uid;
	struct job_list jobs;
	struct uid_queue *prev, *next;
};

enum attempt_result {
	RES_OK,		/* all bytes written to j->bw; commit (verifies) */
	RES_TRANSIENT,	/* retry if time is left */
	RES_PERMANENT,	/* fail now */
};

struct backend;
struct backend_ops {
	const char *name;
	/* Start an attempt for j (j->bw is open). 0, or a negative errno
	 * meaning the attempt failed permanently at once. */
	int (*start)(struct backend *b, struct job *j);
	/* Make progress; report finished attempts with fetch_attempt_done(). */
	void (*step)(struct backend *b);
	/* True if step() has work that needs no waiting (don't sleep). */
	bool (*busy)(struct backend *b);
	/* Abandon j's attempt (no report). */
	void (*cancel)(struct backend *b, struct job *j);
	void (*destroy)(struct backend *b);
	/* Optional: an fd to poll for POLLIN besides curl's (-1: none). */
	int (*poll_fd)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	struct fetch_engine *eng;
	void *priv;
	/* Jobs the engine may have active at once (0: cfg.jobs). A backend
	 * that batches takes more than it has calls on the wire. */
	unsigned max_active;
};

struct fetch_engine {
	struct fetch_config cfg;
	struct cache *cache;
	CURLM *multi;		/* used for waiting even by the file backend */
	struct backend be;
	struct job **tab;
	size_t tabsz, ntab;
	struct uid_queue *turn;		/* the ring; whose turn is next */
	unsigned nqueued;
	struct job_list active, backoff, syncing, done;
	uint64_t sync_first_ms;	/* when the oldest of syncing was verified */
	unsigned sync_batch, sync_delay_ms;
	unsigned long nwaiters;
	fetch_progress_fn progress;
	uint64_t progress_ms;		/* the last round of progress reports */
	uint64_t rnd;
};

/* Called by backends when an attempt ends. err: negative errno unless RES_OK. */
void fetch_attempt_done(struct fetch_engine *e, struct job *j, enum attempt_result r,
			int err, const char *why);

/* Make the verified blobs waiting durable and publish them (fetch.c; tests). */
void fetch_commit_group(struct fetch_engine *e);

int backend_file_init(struct backend *b, const char *url);
int backend_http_init(struct backend *b, const char *url, const struct fetch_config *cfg);
int backend_grpc_init(struct backend *b, const char *url, const struct fetch_config *cfg);
/* The deadline band of a job with left_ms to go (backend_grpc.c; tests). */
unsigned grpc_deadline_band(int64_t left_ms);

#endif
