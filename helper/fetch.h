/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: the fetch engine. Independent of netlink so that tests can
 * drive it: fetch_submit() a (digest, size) with a callback, then call
 * fetch_run() in a loop; each callback is called exactly once, from
 * fetch_run(), with 0 (the blob is in CACHE/blobs) or a negative errno.
 *
 * Concurrent submits of one (digest, size) share one fetch. A blob already
 * in the cache completes at once. Queued blobs start in turns per uid (the
 * uid of the first submit), so one user's flood of reads does not starve
 * another's. At most `jobs` transfers run at a time;
 * transient failures are retried with exponential backoff and jitter
 * (100 ms doubling to 5 s) for up to `timeout_s` from the first attempt
 * (time spent queued behind other transfers does not count), a budget
 * that a transfer receiving bytes keeps extending. Callbacks
 * with status 0 are called only after the blob was renamed into blobs/,
 * which happens only after its bytes were made durable (fsync, or the
 * group's syncfs: see sync_batch).
 */
#ifndef CASFS_FETCH_H
#define CASFS_FETCH_H

#include <poll.h>
#include <stdint.h>
#include "common.h"

struct cache;
struct fetch_engine;

typedef void (*fetch_cb)(void *arg, uint64_t tag, int status);

struct fetch_config {
	const char *url;		/* file:///DIR, http(s)://..., grpc(s)://... */
	const char *instance;		/* REv2 instance name; unused by file/http */
	const char *ca_file;		/* https: CA bundle (CAINFO) */
	const char *auth_header_file;	/* http(s): extra header lines; grpc: metadata */
	const char *client_cert, *client_key;	/* grpcs: client certificate */
	unsigned jobs;			/* parallel transfers, >= 1 */
	unsigned timeout_s;		/* total time budget per blob, >= 1 */
	/*
	 * Group commit (issue 11 item 10): verified blobs wait in tmp/ until
	 * sync_batch of them (0: FETCH_SYNC_BATCH) are collected, or
	 * sync_delay_ms (0: FETCH_SYNC_DELAY_MS) passed since the first, or
	 * nothing else is queued or transferring; one syncfs(2) then makes
	 * all durable, then each is renamed into blobs/ and its callbacks
	 * called. sync_batch 1: fsync and rename each blob on its own.
	 */
	unsigned sync_batch;
	unsigned sync_delay_ms;
};

#define FETCH_SYNC_BATCH 64
#define FETCH_SYNC_DELAY_MS 5
#define FETCH_MAX_SYNC_BATCH 4096

/* Upper bound on callbacks outstanding (memory bound against a flood). */
#define FETCH_MAX_WAITERS (1u << 20)

int fetch_engine_new(struct fetch_engine **out, const struct fetch_config *cfg,
		     struct cache *cache);
/*
 * 0: cb will be called once from fetch_run(). Negative errno: refused
 * (bad size, too many outstanding, no memory), cb will not be called.
 * tag is passed back to cb; submits with the same tag on one in-flight
 * blob are merged (a resent request gets one answer).
 */
int fetch_submit(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		 uint64_t size, fetch_cb cb, void *arg, uint64_t tag);
#define FETCH_UID_NONE UINT32_MAX
/* fetch_submit() on behalf of uid (for the turns; FETCH_UID_NONE: none). */
int fetch_submit_as(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		    uint64_t size, uint32_t uid, fetch_cb cb, void *arg, uint64_t tag);
/*
 * Withdraw the submit (cb, arg, tag) of (digest, size): its callback will
 * not be called. A blob nobody waits for any more is dropped: taken out
 * of the queue, or its transfer abandoned. 0, or -ENOENT (no such submit:
 * done already, or never made).
 */
int fetch_cancel(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		 uint64_t size, fetch_cb cb, void *arg, uint64_t tag);
/*
 * Called (from fetch_run) at most about once a second for each waiter of
 * a transfer that received bytes since the last call.
 */
typedef void (*fetch_progress_fn)(void *arg, uint64_t tag);
void fetch_on_progress(struct fetch_engine *e, fetch_progress_fn fn);
/*
 * One turn of the loop: start transfers, wait up to timeout_ms for
 * transfer progress or for one of extra[0..n) to be ready (revents set as
 * by poll), make progress, deliver completions. 0 or -errno.
 */
int fetch_run(struct fetch_engine *e, int timeout_ms, struct pollfd *extra, unsigned n);
/* Blobs queued, transferring, waiting to retry or with callbacks pending. */
unsigned fetch_pending(const struct fetch_engine *e);
/* Abandon everything (temp files removed, callbacks not called) and free. */
void fetch_engine_free(struct fetch_engine *e);

#endif
