// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - the table of blob fetches in flight.
 *
 * A read of a CAS-backed file whose blob is not in the cache asks the
 * helper for it (netlink.c) and sleeps until the helper says DONE, the
 * mount's timeout passes, or the reader is killed. The table is global,
 * not per mount: the helper serves every mount, and concurrent misses on
 * one digest -- from any inode, reader or mount -- share one request.
 *
 * Life of a request (cf. fs/cachefiles/ondemand.c):
 *   - created by the first waiter, with a cyclic non-zero id (xarray);
 *   - sent as FETCH to the registered helper, or kept pending until a
 *     helper registers (then every pending request is sent again);
 *   - finished by DONE from the helper: status stored, waiters woken;
 *   - each waiter holds a reference; the last waiter to leave removes an
 *     unfinished request, so a killed or timed-out reader leaks nothing
 *     and a late DONE for it is ignored.
 */
#include <linux/xarray.h>
#include <linux/completion.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/sched/signal.h>

#include "casfs.h"

#define CASFS_MAX_PENDING	4096

struct casfs_fetch_req {
	u32 id;
	u8 sha256[CASFS_SHA256_LEN];
	u64 size;
	refcount_t ref;
	int status;			/* valid once done is complete */
	struct completion done;
	struct list_head list;		/* on casfs_fetch_pending until done */
	unsigned long start;		/* jiffies, for the log */
};

static DEFINE_MUTEX(casfs_fetch_lock);	/* table, pending list */
static DEFINE_XARRAY_ALLOC1(casfs_fetch_reqs);
static LIST_HEAD(casfs_fetch_pending);
static unsigned int casfs_fetch_npending;
static u32 casfs_fetch_next_id;

struct casfs_stats casfs_stats;

static void casfs_fetch_req_put(struct casfs_fetch_req *req)
{
	if (refcount_dec_and_test(&req->ref))
		kfree(req);
}

/* Caller holds casfs_fetch_lock. Removes req from the table and list. */
static void casfs_fetch_unlink(struct casfs_fetch_req *req)
{
	xa_erase(&casfs_fetch_reqs, req->id);
	list_del_init(&req->list);
	casfs_fetch_npending--;
}

static struct casfs_fetch_req *casfs_fetch_find(const u8 *sha256)
{
	struct casfs_fetch_req *req;

	list_for_each_entry(req, &casfs_fetch_pending, list)
		if (!memcmp(req->sha256, sha256, CASFS_SHA256_LEN))
			return req;
	return NULL;
}

/*
 * Wait until the helper has placed blob @sha256 of @size bytes in the
 * cache directory, at most @timeout jiffies. Returns 0 when the helper
 * reports success (the caller still verifies the blob), or a negative
 * errno: the helper's error, -ETIMEDOUT, -EINTR if killed, -EBUSY if too
 * many requests are in flight.
 */
int casfs_fetch_wait(const u8 *sha256, u64 size, unsigned long timeout)
{
	struct casfs_fetch_req *req;
	bool new_req = false;
	long left;
	int err;

	atomic64_inc(&casfs_stats.misses);
	mutex_lock(&casfs_fetch_lock);
	req = casfs_fetch_find(sha256);
	if (req) {
		refcount_inc(&req->ref);
	} else {
		if (casfs_fetch_npending >= CASFS_MAX_PENDING) {
			mutex_unlock(&casfs_fetch_lock);
			return -EBUSY;
		}
		/* GFP_NOFS: we may be under mmap_lock or the inode lock. */
		req = kzalloc(sizeof(*req), GFP_NOFS);
		if (!req) {
			mutex_unlock(&casfs_fetch_lock);
			return -ENOMEM;
		}
		memcpy(req->sha256, sha256, CASFS_SHA256_LEN);
		req->size = size;
		refcount_set(&req->ref, 1);	/* this waiter's */
		init_completion(&req->done);
		req->start = jiffies;
		err = xa_alloc_cyclic(&casfs_fetch_reqs, &req->id, req,
				      XA_LIMIT(1, U32_MAX),
				      &casfs_fetch_next_id, GFP_NOFS);
		if (err < 0) {
			mutex_unlock(&casfs_fetch_lock);
			kfree(req);
			return err;
		}
		list_add_tail(&req->list, &casfs_fetch_pending);
		casfs_fetch_npending++;
		new_req = true;
	}
	if (new_req)
		casfs_nl_send_fetch(req->id, req->sha256, req->size);
	mutex_unlock(&casfs_fetch_lock);

	left = wait_for_completion_killable_timeout(&req->done, timeout);

	mutex_lock(&casfs_fetch_lock);
	if (left > 0) {
		err = req->status;
	} else {
		err = left ? -EINTR : -ETIMEDOUT;
		if (!left)
			atomic64_inc(&casfs_stats.timeouts);
		/* Last waiter of an unfinished request: withdraw it. */
		if (!completion_done(&req->done) &&
		    refcount_read(&req->ref) == 1)
			casfs_fetch_unlink(req);
	}
	mutex_unlock(&casfs_fetch_lock);
	casfs_fetch_req_put(req);
	return err;
}

/* DONE from the helper. */
int casfs_fetch_done(u32 id, int status)
{
	struct casfs_fetch_req *req;

	mutex_lock(&casfs_fetch_lock);
	req = xa_load(&casfs_fetch_reqs, id);
	if (!req) {
		mutex_unlock(&casfs_fetch_lock);
		return -ENOENT;	/* withdrawn, or never existed */
	}
	casfs_fetch_unlink(req);
	req->status = status;
	if (status)
		atomic64_inc(&casfs_stats.errors);
	else
		atomic64_add(req->size, &casfs_stats.fetch_bytes);
	complete_all(&req->done);
	mutex_unlock(&casfs_fetch_lock);
	return 0;
}

/* A helper registered: (re)send every pending request to it. */
void casfs_fetch_resend_all(void)
{
	struct casfs_fetch_req *req;

	mutex_lock(&casfs_fetch_lock);
	list_for_each_entry(req, &casfs_fetch_pending, list)
		casfs_nl_send_fetch(req->id, req->sha256, req->size);
	mutex_unlock(&casfs_fetch_lock);
}

unsigned int casfs_fetch_pending_count(void)
{
	return READ_ONCE(casfs_fetch_npending);
}

/*
 * Module exit: every waiter holds a file of a mounted casfs, which pins
 * the module, so the table is empty by now. Be safe anyway.
 */
void casfs_fetch_exit(void)
{
	struct casfs_fetch_req *req, *next;

	mutex_lock(&casfs_fetch_lock);
	list_for_each_entry_safe(req, next, &casfs_fetch_pending, list) {
		casfs_fetch_unlink(req);
		req->status = -ESHUTDOWN;
		complete_all(&req->done);
	}
	mutex_unlock(&casfs_fetch_lock);
	xa_destroy(&casfs_fetch_reqs);
}
