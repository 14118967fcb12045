// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: fetch engine: dedup, queueing, retries, completion. */
#include "backend.h"
#include "cache.h"
#include "stats.h"
#include "grpc/grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PROGRESS_EVERY_MS 1000	/* progress reports per transfer, at most */

static void list_add(struct job_list *l, struct job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static void list_del(struct job_list *l, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
	l->n--;
}

static struct job *list_pop(struct job_list *l)
{
	struct job *j = l->head;

	if (j)
		list_del(l, j);
	return j;
}

/* ---- the queue: a FIFO per uid, the uids taking turns ---- */

/* 0, or -ENOMEM (a new uid's turn could not be made). */
static int queue_add(struct fetch_engine *e, struct job *j)
{
	struct uid_queue *q = e->turn;

	if (q) {
		do {
			if (q->uid == j->uid)
				goto found;
			q = q->next;
		} while (q != e->turn);
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->uid = j->uid;
	if (e->turn) {		/* last in the ring: after everyone queued now */
		q->next = e->turn;
		q->prev = e->turn->prev;
		q->prev->next = q;
		e->turn->prev = q;
	} else {
		q->next = q->prev = q;
		e->turn = q;
	}
found:
	j->uq = q;
	list_add(&q->jobs, j);
	e->nqueued++;
	return 0;
}

static void queue_del(struct fetch_engine *e, struct job *j)
{
	struct uid_queue *q = j->uq;

	list_del(&q->jobs, j);
	j->uq = NULL;
	e->nqueued--;
	if (q->jobs.n)
		return;
	if (q->next == q) {
		e->turn = NULL;
	} else {
		if (e->turn == q)
			e->turn = q->next;
		q->prev->next = q->next;
		q->next->prev = q->prev;
	}
	free(q);
}

/* The next queued job: the head of the current uid's queue; then the next uid. */
static struct job *queue_pop(struct fetch_engine *e)
{
	struct uid_queue *q = e->turn;
	struct job *j;

	if (!q)
		return NULL;
	j = q->jobs.head;
	e->turn = q->next;
	queue_del(e, j);
	return j;
}

static size_t slot(size_t tabsz, const uint8_t *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)h & (tabsz - 1);
}

static struct job *table_find(struct fetch_engine *e, const uint8_t *d, uint64_t size)
{
	for (struct job *j = e->tab[slot(e->tabsz, d)]; j; j = j->hnext)
		if (j->size == size && !memcmp(j->digest, d, CASFS_SHA256_LEN))
			return j;
	return NULL;
}

static int table_add(struct fetch_engine *e, struct job *j)
{
	size_t s;

	if ((e->ntab + 1) * 4 > e->tabsz * 3) {
		size_t nsz = e->tabsz * 2;
		struct job **nt = calloc(nsz, sizeof(*nt));

		if (!nt)
			return -ENOMEM;
		for (size_t i = 0; i < e->tabsz; i++) {
			struct job *x = e->tab[i], *n;

			for (; x; x = n) {
				n = x->hnext;
				s = slot(nsz, x->digest);
				x->hnext = nt[s];
				nt[s] = x;
			}
		}
		free(e->tab);
		e->tab = nt;
		e->tabsz = nsz;
	}
	s = slot(e->tabsz, j->digest);
	j->hnext = e->tab[s];
	e->tab[s] = j;
	e->ntab++;
	return 0;
}

static void table_del(struct fetch_engine *e, struct job *j)
{
	struct job **pp = &e->tab[slot(e->tabsz, j->digest)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == j) {
			*pp = j->hnext;
			j->hnext = NULL;
			e->ntab--;
			return;
		}
	}
}

static int add_waiter(struct fetch_engine *e, struct job *j, fetch_cb cb, void *arg,
		      uint64_t tag)
{
	for (unsigned i = 0; i < j->nw; i++)
		if (j->w[i].tag == tag && j->w[i].cb == cb && j->w[i].arg == arg)
			return 0;	/* the same request again */
	if (j->nw == j->capw) {
		unsigned ncap = j->capw ? j->capw * 2 : 2;
		struct waiter *nw = realloc(j->w, ncap * sizeof(*nw));

		if (!nw)
			return -ENOMEM;
		j->w = nw;
		j->capw = ncap;
	}
	j->w[j->nw++] = (struct waiter){ .cb = cb, .arg = arg, .tag = tag };
	e->nwaiters++;
	return 0;
}

static void job_free(struct job *j)
{
	bw_abort(&j->bw);
	free(j->w);
	free(j);
}

static uint64_t rnd(struct fetch_engine *e)
{
	uint64_t x = e->rnd;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return e->rnd = x;
}

static uint64_t backoff_ms(struct fetch_engine *e, unsigned attempt)
{
	uint64_t base = BACKOFF_MIN_MS;

	while (--attempt && base < BACKOFF_MAX_MS)
		base *= 2;
	if (base > BACKOFF_MAX_MS)
		base = BACKOFF_MAX_MS;
	return base / 2 + rnd(e) % (base / 2 + 1);	/* jitter: [base/2, base] */
}

/* Move a job out of the table into the done list. */
static void finish(struct fetch_engine *e, struct job *j, int status)
{
	table_del(e, j);
	bw_abort(&j->bw);
	j->status = status;
	j->state = JOB_DONE;
	list_add(&e->done, j);
	if (j->fetched)
		stats_latency(mono_us() - j->t_start_us);
	if (status)
		stats.errors++;
}

static void count_error(int err)
{
	switch (err) {
	case -ENOENT:
		stats.err_notfound++;
		break;
	case -EACCES:
	case -EPERM:
		stats.err_access++;
		break;
	default:
		stats.err_other++;
	}
}

static bool disk_full(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

/*
 * The cache's filesystem ran out of space (or quota) writing, syncing or
 * renaming j's file (already removed by the caller): evict enough for the
 * blob plus the high watermark, ignoring the grace rule, and queue j
 * again, once. false: j had its retry; the caller fails it.
 */
static bool retry_disk_full(struct fetch_engine *e, struct job *j, int err,
			    const char *what)
{
	uint64_t freed;

	if (j->disk_retried)
		return false;
	j->disk_retried = true;
	freed = cache_make_room(e->cache, j->size, NULL);
	stats.space_retries++;
	log_warn("%s: %s in %s: %s; evicted %llu bytes, retrying", j->hex, what,
		 cache_dir(e->cache), strerror(-err), (unsigned long long)freed);
	j->state = JOB_QUEUED;
	if (queue_add(e, j)) {
		stats.err_other++;
		finish(e, j, -ENOMEM);
	}
	return true;
}

static void fail_disk_full(struct fetch_engine *e, struct job *j, int err,
			   const char *what)
{
	struct cache_space s;

	cache_space(e->cache, &s);
	log_err("%s: %s in %s: %s, even after evicting (%llu bytes, %llu bytes free, "
		"floor %llu)", j->hex, what, cache_dir(e->cache), strerror(-err),
		(unsigned long long)j->size, (unsigned long long)s.avail,
		(unsigned long long)s.floor);
	stats.err_nospace++;
	finish(e, j, err);
}

static void published(struct fetch_engine *e, struct job *j)
{
	stats.fetch_ok++;
	stats.fetch_bytes += j->size;
	log_dbg("%s: published, %llu bytes", j->hex, (unsigned long long)j->size);
	cache_published(e->cache, j->digest, j->size);
	finish(e, j, 0);
}

/*
 * One syncfs for every verified blob waiting, then a rename each; their
 * callbacks go out from deliver(), so never before the rename. If the
 * syncfs fails, nothing of the group is published: each file is removed
 * and its job tried again once (evicting first for ENOSPC/EDQUOT), or
 * failed with the error.
 */
void fetch_commit_group(struct fetch_engine *e)
{
	unsigned n = e->syncing.n;
	struct job *j;
	int err;

	if (!n)
		return;
	err = bw_sync_group(cache_blobs_fd(e->cache));
	stats.sync_groups++;
	stats.sync_group_blobs += n;
	if (err) {
		stats.sync_failures++;
		log_err("syncfs on %s: %s; %u verified blobs not published (each job is "
			"tried again once at most)", cache_dir(e->cache), strerror(-err), n);
	}
	while ((j = list_pop(&e->syncing))) {
		int perr = err ? err : bw_publish(&j->bw);

		if (!perr) {
			published(e, j);
			continue;
		}
		bw_abort(&j->bw);
		if (disk_full(perr)) {
			if (!retry_disk_full(e, j, perr, err ? "syncing" : "publishing"))
				fail_disk_full(e, j, perr, err ? "syncing" : "publishing");
		} else if (err && !j->disk_retried) {
			j->disk_retried = true;
			j->state = JOB_QUEUED;
			if (queue_add(e, j)) {
				stats.err_other++;
				finish(e, j, -ENOMEM);
			}
		} else {
			log_err("%s: %s in %s: %s", j->hex, err ? "syncing" : "publishing",
				cache_dir(e->cache), strerror(-perr));
			stats.err_other++;
			finish(e, j, perr);
		}
	}
}

static void maybe_commit_group(struct fetch_engine *e)
{
	if (!e->syncing.n)
		return;
	if (e->syncing.n >= e->sync_batch || (!e->active.n && !e->nqueued) ||
	    mono_ms() - e->sync_first_ms >= e->sync_delay_ms)
		fetch_commit_group(e);
}

/*
 * Did j get further than any attempt of its before (bytes past the
 * high-water mark)? Then that is progress: the retry budget is extended
 * to timeout_s from now, and true is returned. An attempt that starts
 * over and stalls at the same place again is not progress, so the
 * budget ends.
 */
static bool note_progress(struct fetch_engine *e, struct job *j, uint64_t now)
{
	uint64_t until = now + (uint64_t)e->cfg.timeout_s * 1000;

	if (j->bw.written <= j->reported)
		return false;
	j->reported = j->bw.written;
	if (j->deadline_ms < until)
		j->deadline_ms = until;
	return true;
}

void fetch_attempt_done(struct fetch_engine *e, struct job *j, enum attempt_result r,
			int err, const char *why)
{
	const char *vwhy;
	uint64_t now, delay;
	int cerr;

	list_del(&e->active, j);
	if (r != RES_OK && (disk_full(err) || disk_full(j->bw.err))) {
		if (!disk_full(err))
			err = j->bw.err;
		bw_abort(&j->bw);
		if (!retry_disk_full(e, j, err, "writing the temporary file"))
			fail_disk_full(e, j, err, "writing the temporary file");
		return;
	}
	if (r == RES_OK) {
		bool group = e->sync_batch > 1;

		cerr = group ? bw_verify(&j->bw, &vwhy) : bw_commit(&j->bw, &vwhy);
		if (disk_full(cerr)) {
			if (!retry_disk_full(e, j, cerr, "publishing"))
				fail_disk_full(e, j, cerr, "publishing");
			return;
		}
		if (!cerr && group) {
			/* durable and published with its group (fetch_commit_group) */
			if (!e->syncing.n)
				e->sync_first_ms = mono_ms();
			j->state = JOB_SYNCING;
			list_add(&e->syncing, j);
			if (e->syncing.n >= e->sync_batch)
				fetch_commit_group(e);
		} else if (!cerr) {
			published(e, j);
		} else if (cerr == -EIO && vwhy) {
			log_err("%s: %s", j->hex, vwhy);
			stats.err_verify++;
			finish(e, j, -EIO);
		} else {
			log_err("%s: publishing in %s: %s", j->hex,
				cache_dir(e->cache), strerror(-cerr));
			stats.err_other++;
			finish(e, j, cerr);
		}
		return;
	}
	/*
	 * Bytes past the high-water mark since the last progress report (at
	 * most once a second) are progress all the same: the budget is
	 * extended now rather than depending on whether the report ran
	 * before the failure.
	 */
	if (r == RES_TRANSIENT)
		note_progress(e, j, mono_ms());
	bw_abort(&j->bw);
	if (!why)
		why = strerror(-err);
	if (r == RES_TRANSIENT) {
		now = mono_ms();
		delay = backoff_ms(e, j->attempt);
		if (j->retry_after_ms > delay)	/* the server's RetryInfo */
			delay = j->retry_after_ms;
		j->retry_after_ms = 0;
		if (now + delay < j->deadline_ms) {
			stats.retries++;
			log_info("%s: %s; retry %u in %llu ms", j->hex, why,
				 j->attempt, (unsigned long long)delay);
			j->next_try_ms = now + delay;
			j->state = JOB_BACKOFF;
			list_add(&e->backoff, j);
			return;
		}
		log_err("%s: %s; giving up after %u attempts in %llu ms", j->hex, why,
			j->attempt,
			(unsigned long long)((mono_us() - j->t_start_us) / 1000));
		stats.err_timeout++;
		finish(e, j, -ETIMEDOUT);
		return;
	}
	log_err("%s: %s", j->hex, why);
	if (err == -EIO)
		stats.err_verify++;
	else
		count_error(err);
	finish(e, j, err);
}

int fetch_engine_new(struct fetch_engine **out, const struct fetch_config *cfg,
		     struct cache *cache)
{
	struct fetch_engine *e;
	const char *url = cfg->url;
	int err;

	if (!url || cfg->jobs < 1 || cfg->timeout_s < 1)
		return -EINVAL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	e->cfg = *cfg;
	e->cache = cache;
	e->sync_batch = cfg->sync_batch ? cfg->sync_batch : FETCH_SYNC_BATCH;
	if (e->sync_batch > FETCH_MAX_SYNC_BATCH)
		e->sync_batch = FETCH_MAX_SYNC_BATCH;
	e->sync_delay_ms = cfg->sync_delay_ms ? cfg->sync_delay_ms : FETCH_SYNC_DELAY_MS;
	e->be.eng = e;
	e->rnd = (mono_us() ^ ((uint64_t)getpid() << 32)) | 1;
	e->tabsz = 256;
	e->tab = calloc(e->tabsz, sizeof(*e->tab));
	e->multi = curl_multi_init();
	if (!e->tab || !e->multi) {
		err = -ENOMEM;
		goto fail;
	}
	if (!strncmp(url, "file://", 7)) {
		err = backend_file_init(&e->be, url);
	} else if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)) {
		err = backend_http_init(&e->be, url, cfg);
	} else if (grpc_url_ok(url)) {
		err = backend_grpc_init(&e->be, url, cfg);
	} else {
		log_err("--cas %s: unsupported URL (file://, http(s)://, grpc(s)://, unix:)", url);
		err = -EINVAL;
	}
	if (err)
		goto fail;
	if (cfg->instance && *cfg->instance &&
	    strcmp(e->be.ops->name, "grpc"))
		log_info("--instance %s is only used by the gRPC backend; ignored for %s",
			 cfg->instance, e->be.ops->name);
	*out = e;
	return 0;
fail:
	e->be.ops = NULL;
	fetch_engine_free(e);
	return err;
}

int fetch_submit(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		 uint64_t size, fetch_cb cb, void *arg, uint64_t tag)
{
	return fetch_submit_as(e, digest, size, FETCH_UID_NONE, cb, arg, tag);
}

int fetch_submit_as(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		    uint64_t size, uint32_t uid, fetch_cb cb, void *arg, uint64_t tag)
{
	struct job *j;
	int err;

	if (size > CASFS_MAX_BLOB_SIZE || !cb)
		return -EINVAL;
	if (e->nwaiters >= FETCH_MAX_WAITERS)
		return -EAGAIN;
	stats.requests++;
	j = table_find(e, digest, size);
	if (j) {
		unsigned before = j->nw;

		err = add_waiter(e, j, cb, arg, tag);
		if (!err && j->nw > before)
			stats.dedup_joins++;
		return err;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	bw_init(&j->bw);
	memcpy(j->digest, digest, CASFS_SHA256_LEN);
	hex_encode(digest, j->hex);
	j->size = size;
	j->uid = uid;
	err = add_waiter(e, j, cb, arg, tag);
	if (err) {
		job_free(j);
		return err;
	}
	if (cache_lookup(e->cache, digest, size) == 1) {
		stats.cache_hits++;
		log_dbg("%s: already cached", j->hex);
		j->state = JOB_DONE;
		list_add(&e->done, j);
		return 0;
	}
	err = cache_admit(e->cache, j->hex, size);
	if (err) {		/* cannot fit: fail at once, not after the download */
		stats.errors++;
		stats.err_nospace++;
		j->status = err;
		j->state = JOB_DONE;
		list_add(&e->done, j);
		return 0;
	}
	if (table_add(e, j)) {
		e->nwaiters--;
		job_free(j);
		return -ENOMEM;
	}
	j->t_start_us = mono_us();	/* latency counts the time queued */
	j->state = JOB_QUEUED;
	if (queue_add(e, j)) {
		table_del(e, j);
		e->nwaiters--;
		job_free(j);
		return -ENOMEM;
	}
	log_dbg("%s: queued, %llu bytes", j->hex, (unsigned long long)size);
	return 0;
}

int fetch_cancel(struct fetch_engine *e, const uint8_t digest[CASFS_SHA256_LEN],
		 uint64_t size, fetch_cb cb, void *arg, uint64_t tag)
{
	struct job *j = table_find(e, digest, size);
	unsigned i;

	if (!j)
		return -ENOENT;
	for (i = 0; i < j->nw; i++)
		if (j->w[i].tag == tag && j->w[i].cb == cb && j->w[i].arg == arg)
			break;
	if (i == j->nw)
		return -ENOENT;
	j->w[i] = j->w[--j->nw];
	e->nwaiters--;
	if (j->nw)
		return 0;	/* others still wait for it */
	/* Nobody waits: drop it. */
	switch (j->state) {
	case JOB_QUEUED:
		queue_del(e, j);
		break;
	case JOB_BACKOFF:
		list_del(&e->backoff, j);
		break;
	case JOB_ACTIVE:
		list_del(&e->active, j);
		e->be.ops->cancel(&e->be, j);
		break;
	case JOB_SYNCING:	/* verified, published at the group's syncfs */
	case JOB_DONE:		/* not in the table */
		return 0;
	}
	log_dbg("%s: withdrawn by the kernel, dropped", j->hex);
	stats.cancelled++;
	table_del(e, j);
	job_free(j);
	return 0;
}

void fetch_on_progress(struct fetch_engine *e, fetch_progress_fn fn)
{
	e->progress = fn;
}

/*
 * Transfers that made progress (note_progress) since the last round: tell
 * their waiters (the kernel restarts its readers' timeout).
 */
static void report_progress(struct fetch_engine *e)
{
	uint64_t now = mono_ms();

	if (now - e->progress_ms < PROGRESS_EVERY_MS)
		return;
	e->progress_ms = now;
	for (struct job *j = e->active.head; j; j = j->next) {
		if (!note_progress(e, j, now) || !e->progress)
			continue;
		for (unsigned i = 0; i < j->nw; i++)
			e->progress(j->w[i].arg, j->w[i].tag);
	}
}

static void start_jobs(struct fetch_engine *e)
{
	struct job *j;
	int err;

	unsigned max = e->be.max_active ? e->be.max_active : e->cfg.jobs;

	while (e->active.n < max && (j = queue_pop(e))) {
		j->attempt++;
		stats.attempts++;
		if (!j->fetched) {
			/* The retry budget starts now, not while queued. */
			j->fetched = true;
			j->deadline_ms = mono_ms() + (uint64_t)e->cfg.timeout_s * 1000;
			stats.fetches++;
		}
		if (j->attempt > 1) {	/* space may have gone while it waited */
			err = cache_admit(e->cache, j->hex, j->size);
			if (err) {
				stats.err_nospace++;
				finish(e, j, err);
				continue;
			}
		}
		err = bw_open(&j->bw, cache_tmp_fd(e->cache), cache_blobs_fd(e->cache),
			      j->digest, j->size);
		if (disk_full(err)) {
			if (!retry_disk_full(e, j, err, "creating the temporary file"))
				fail_disk_full(e, j, err, "creating the temporary file");
			continue;
		}
		if (err) {
			log_err("%s: cannot create a file in %s/tmp: %s", j->hex,
				cache_dir(e->cache), strerror(-err));
			stats.err_other++;
			finish(e, j, err);
			continue;
		}
		j->state = JOB_ACTIVE;
		list_add(&e->active, j);
		err = e->be.ops->start(&e->be, j);
		if (err)
			fetch_attempt_done(e, j, RES_PERMANENT, err, NULL);
	}
}

static void expire_backoff(struct fetch_engine *e)
{
	uint64_t now = mono_ms();

	for (struct job *j = e->backoff.head, *n; j; j = n) {
		n = j->next;
		if (j->next_try_ms <= now) {
			list_del(&e->backoff, j);
			j->state = JOB_QUEUED;
			if (queue_add(e, j)) {
				stats.err_other++;
				finish(e, j, -ENOMEM);
			}
		}
	}
}

static void deliver(struct fetch_engine *e)
{
	struct job *j;

	while ((j = list_pop(&e->done))) {
		for (unsigned i = 0; i < j->nw; i++) {
			e->nwaiters--;
			j->w[i].cb(j->w[i].arg, j->w[i].tag, j->status);
		}
		job_free(j);
	}
}

#define MAX_EXTRA 16

int fetch_run(struct fetch_engine *e, int timeout_ms, struct pollfd *extra, unsigned n)
{
	struct curl_waitfd wfd[MAX_EXTRA + 1];
	int bfd = e->be.ops->poll_fd ? e->be.ops->poll_fd(&e->be) : -1;
	unsigned nw = n;
	uint64_t now;
	CURLMcode mc;
	int t = timeout_ms < 0 ? 0 : timeout_ms;

	if (n > MAX_EXTRA)
		return -EINVAL;
	start_jobs(e);
	if (e->done.n || e->be.ops->busy(&e->be))
		t = 0;
	now = mono_ms();
	if (e->syncing.n) {		/* wake up for the group's deadline */
		uint64_t due = e->sync_first_ms + e->sync_delay_ms;
		uint64_t left = due > now ? due - now : 0;

		if (left < (uint64_t)t)
			t = (int)left;
	}
	for (struct job *j = e->backoff.head; j && t; j = j->next) {
		uint64_t left = j->next_try_ms > now ? j->next_try_ms - now : 0;

		if (left < (uint64_t)t)
			t = (int)left;
	}
	for (unsigned i = 0; i < n; i++) {
		wfd[i].fd = extra[i].fd;
		wfd[i].events = (short)((extra[i].events & POLLIN ? CURL_WAIT_POLLIN : 0) |
					(extra[i].events & POLLPRI ? CURL_WAIT_POLLPRI : 0) |
					(extra[i].events & POLLOUT ? CURL_WAIT_POLLOUT : 0));
		wfd[i].revents = 0;
	}
	if (bfd >= 0) {
		wfd[nw].fd = bfd;
		wfd[nw].events = CURL_WAIT_POLLIN;
		wfd[nw].revents = 0;
		nw++;
	}
	mc = curl_multi_poll(e->multi, nw ? wfd : NULL, nw, t, NULL);
	for (unsigned i = 0; i < n; i++)
		extra[i].revents = (short)((wfd[i].revents & CURL_WAIT_POLLIN ? POLLIN : 0) |
					   (wfd[i].revents & CURL_WAIT_POLLPRI ? POLLPRI : 0) |
					   (wfd[i].revents & CURL_WAIT_POLLOUT ? POLLOUT : 0));
	if (mc != CURLM_OK) {
		log_err("curl_multi_poll: %s", curl_multi_strerror(mc));
		return -EIO;
	}
	e->be.ops->step(&e->be);
	report_progress(e);
	expire_backoff(e);
	start_jobs(e);
	maybe_commit_group(e);
	deliver(e);
	stats.inflight = e->active.n;
	stats.queued = e->nqueued + e->backoff.n;
	return 0;
}

unsigned fetch_pending(const struct fetch_engine *e)
{
	return e->nqueued + e->active.n + e->backoff.n + e->syncing.n + e->done.n;
}

void fetch_engine_free(struct fetch_engine *e)
{
	struct job *j;

	if (!e)
		return;
	while ((j = list_pop(&e->active))) {
		if (e->be.ops)
			e->be.ops->cancel(&e->be, j);
		job_free(j);
	}
	while ((j = queue_pop(e)))
		job_free(j);
	while ((j = list_pop(&e->backoff)))
		job_free(j);
	while ((j = list_pop(&e->syncing)))	/* verified, not published */
		job_free(j);
	while ((j = list_pop(&e->done)))
		job_free(j);
	if (e->be.ops)
		e->be.ops->destroy(&e->be);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	free(e->tab);
	free(e);
	curl_global_cleanup();
}
