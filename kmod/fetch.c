// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - the table of blob fetches in flight.
 *
 * A read of a CAS-backed file whose blob is not in the cache asks the
 * helper for it (netlink.c) and sleeps until the helper says DONE, the
 * mount's timeout passes, or the reader is killed. The table is global,
 * not per mount: the helper serves every mount, and concurrent misses on
 * one blob -- from any inode, reader or mount -- share one request.
 *
 * A blob is (sha256, size), as the helper keys it: a request for the
 * same digest with another size is another request, so one user staging
 * a wrong size cannot fail other users' reads of the real blob.
 *
 * The mount's timeout= bounds a wait without progress, not a transfer:
 * each PROGRESS from the helper (bytes are arriving) lets the wait run
 * for another timeout, so a big blob on a slow link finishes, while a
 * stalled one fails.
 *
 * Life of a request (cf. fs/cachefiles/ondemand.c):
 *   - created by the first waiter, with a cyclic non-zero id (xarray) and
 *     a place in a hash table keyed by (sha256, size);
 *   - sent as FETCH to the registered helper (outside the table lock), or
 *     kept pending until a helper registers (then every pending request
 *     is sent again);
 *   - finished by DONE from the helper: removed from the table, status
 *     stored, waiters woken;
 *   - each waiter holds a reference. References are dropped only under
 *     casfs_fetch_lock, so "am I the last waiter of an unfinished
 *     request" and the drop are one atomic step: the last waiter to leave
 *     withdraws an unfinished request (a late DONE for it is ignored),
 *     tells the helper (CANCEL, so it drops the work), and frees it.
 *
 * Bounds: max_fetches requests in all, and max_fetches_per_uid created by
 * any one uid, so one user who starts and kills reads cannot take every
 * slot. A full table is -ENOBUFS for the reader: a resource that may come
 * back, reported as neither EIO (the blob is not bad) nor EAGAIN (on a
 * blocking read, EAGAIN makes Python's buffered readers return None or a
 * short read, and shutil.copyfileobj() stop silently). Both are module
 * parameters (/sys/module/casfs/parameters/), for root to tune.
 */
#include <linux/xarray.h>
#include <linux/completion.h>
#include <linux/hashtable.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/cred.h>
#include <linux/sched/signal.h>
#include <linux/moduleparam.h>

#include "casfs.h"

#define CASFS_FETCH_HASH_BITS	10

static unsigned int casfs_max_fetches = 4096;
module_param_named(max_fetches, casfs_max_fetches, uint, 0644);
MODULE_PARM_DESC(max_fetches, "blob fetches in flight at most (4096)");

static unsigned int casfs_max_fetches_uid = 1024;
module_param_named(max_fetches_per_uid, casfs_max_fetches_uid, uint, 0644);
MODULE_PARM_DESC(max_fetches_per_uid,
		 "blob fetches in flight that one uid may start (1024)");

struct casfs_fetch_req {
	u32 id;
	u8 sha256[CASFS_SHA256_LEN];
	u64 size;
	kuid_t uid;			/* charged to this uid's share */
	refcount_t ref;			/* one per waiter; dropped under the lock */
	int status;			/* valid once done is complete */
	unsigned long progress;		/* jiffies: created, or the last PROGRESS */
	struct completion done;
	struct hlist_node hash;		/* in casfs_fetch_hash until unlinked */
	bool linked;
};

static DEFINE_MUTEX(casfs_fetch_lock);	/* everything below */
static DEFINE_XARRAY_ALLOC1(casfs_fetch_reqs);	/* id -> request */
static DEFINE_HASHTABLE(casfs_fetch_hash, CASFS_FETCH_HASH_BITS);
static DEFINE_XARRAY(casfs_fetch_uids);	/* uid -> pending count (value) */
static unsigned int casfs_fetch_npending;
static u32 casfs_fetch_next_id;

struct casfs_stats casfs_stats;

/* The digest is a uniform hash already: its first bytes make a good key. */
static u32 casfs_fetch_key(const u8 *sha256, u64 size)
{
	u32 k;

	memcpy(&k, sha256, sizeof(k));
	return k ^ (u32)size ^ (u32)(size >> 32);
}

static unsigned long casfs_fetch_uid_count(kuid_t uid)
{
	void *v = xa_load(&casfs_fetch_uids, __kuid_val(uid));

	return v ? xa_to_value(v) : 0;
}

/* Caller holds casfs_fetch_lock. */
static int casfs_fetch_uid_add(kuid_t uid, long delta)
{
	unsigned long n = casfs_fetch_uid_count(uid) + delta;

	if (!n) {
		xa_erase(&casfs_fetch_uids, __kuid_val(uid));
		return 0;
	}
	return xa_err(xa_store(&casfs_fetch_uids, __kuid_val(uid),
			       xa_mk_value(n), GFP_NOFS));
}

/* Caller holds casfs_fetch_lock. Removes req from the table. */
static void casfs_fetch_unlink(struct casfs_fetch_req *req)
{
	if (!req->linked)
		return;
	xa_erase(&casfs_fetch_reqs, req->id);
	hash_del(&req->hash);
	req->linked = false;
	casfs_fetch_npending--;
	/* Only shrinks an existing entry: cannot fail. */
	casfs_fetch_uid_add(req->uid, -1);
}

static struct casfs_fetch_req *casfs_fetch_find(const u8 *sha256, u64 size)
{
	struct casfs_fetch_req *req;

	hash_for_each_possible(casfs_fetch_hash, req, hash,
			       casfs_fetch_key(sha256, size))
		if (req->size == size &&
		    !memcmp(req->sha256, sha256, CASFS_SHA256_LEN))
			return req;
	return NULL;
}

/* Caller holds casfs_fetch_lock. A new request, in the table. */
static struct casfs_fetch_req *casfs_fetch_new(const u8 *sha256, u64 size)
{
	struct casfs_fetch_req *req;
	kuid_t uid = current_fsuid();
	int err;

	if (casfs_fetch_npending >= READ_ONCE(casfs_max_fetches) ||
	    casfs_fetch_uid_count(uid) >= READ_ONCE(casfs_max_fetches_uid))
		return ERR_PTR(-ENOBUFS);
	/* GFP_NOFS: we may be under mmap_lock or the inode lock. */
	req = kzalloc(sizeof(*req), GFP_NOFS);
	if (!req)
		return ERR_PTR(-ENOMEM);
	memcpy(req->sha256, sha256, CASFS_SHA256_LEN);
	req->size = size;
	req->uid = uid;
	req->progress = jiffies;
	refcount_set(&req->ref, 1);	/* this waiter's */
	init_completion(&req->done);
	err = casfs_fetch_uid_add(uid, 1);
	if (err)
		goto out_free;
	err = xa_alloc_cyclic(&casfs_fetch_reqs, &req->id, req,
			      XA_LIMIT(1, U32_MAX), &casfs_fetch_next_id,
			      GFP_NOFS);
	if (err < 0) {
		casfs_fetch_uid_add(uid, -1);
		goto out_free;
	}
	hash_add(casfs_fetch_hash, &req->hash, casfs_fetch_key(sha256, size));
	req->linked = true;
	casfs_fetch_npending++;
	return req;

out_free:
	kfree(req);
	return ERR_PTR(err);
}

/*
 * Wait until the helper has placed blob (@sha256, @size) in the cache
 * directory, at most @timeout jiffies from now or from the helper's last
 * PROGRESS for it, whichever is later. Returns 0 when the helper reports
 * success (the caller still verifies the blob), or a negative errno:
 * -ECANCELED if the reader was killed, -ETIMEDOUT, -ENOBUFS if too many
 * requests are in flight, or -EIO when the helper reported a failure
 * (its status is stored in *@helper_status for the log).
 */
int casfs_fetch_wait(const u8 *sha256, u64 size, unsigned long timeout,
		     int *helper_status)
{
	struct casfs_fetch_req *req;
	bool new_req = false, last, withdrawn = false;
	unsigned long start = jiffies, until;
	u32 id = 0;
	long left;
	int err;

	*helper_status = 0;
	atomic64_inc(&casfs_stats.misses);
	mutex_lock(&casfs_fetch_lock);
	req = casfs_fetch_find(sha256, size);
	if (req) {
		refcount_inc(&req->ref);
	} else {
		req = casfs_fetch_new(sha256, size);
		if (IS_ERR(req)) {
			mutex_unlock(&casfs_fetch_lock);
			return PTR_ERR(req);
		}
		new_req = true;
	}
	mutex_unlock(&casfs_fetch_lock);
	/* Our reference keeps req alive; DONE may already have come. */
	if (new_req)
		casfs_nl_send_fetch(req->id, req->sha256, req->size, req->uid);

	for (until = start + timeout;;) {
		long t = (long)(until - jiffies);
		unsigned long progress;

		left = t > 0 ? wait_for_completion_killable_timeout(&req->done, t) : 0;
		if (left || completion_done(&req->done))
			break;	/* done, or killed */
		progress = READ_ONCE(req->progress);
		if (!time_after(progress + timeout, jiffies))
			break;	/* nothing from the helper for a whole timeout */
		until = progress + timeout;
	}

	mutex_lock(&casfs_fetch_lock);
	if (completion_done(&req->done)) {
		*helper_status = req->status;
		err = req->status ? -EIO : 0;
	} else {
		err = left ? -ECANCELED : -ETIMEDOUT;
		if (!left)
			atomic64_inc(&casfs_stats.timeouts);
	}
	last = refcount_dec_and_test(&req->ref);
	/* The last waiter of an unfinished request withdraws it. */
	if (last) {
		withdrawn = req->linked;
		id = req->id;
		casfs_fetch_unlink(req);
	}
	mutex_unlock(&casfs_fetch_lock);
	if (withdrawn) {
		atomic64_inc(&casfs_stats.cancels);
		casfs_nl_send_cancel(id, sha256, size);
	}
	if (last)
		kfree(req);
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

/* PROGRESS from the helper: bytes of request @id are arriving. */
int casfs_fetch_progress(u32 id)
{
	struct casfs_fetch_req *req;

	mutex_lock(&casfs_fetch_lock);
	req = xa_load(&casfs_fetch_reqs, id);
	if (req)
		WRITE_ONCE(req->progress, jiffies);
	mutex_unlock(&casfs_fetch_lock);
	return req ? 0 : -ENOENT;
}

/* A helper registered: (re)send every pending request to it. */
void casfs_fetch_resend_all(void)
{
	struct casfs_fetch_req *req;
	unsigned long id;

	mutex_lock(&casfs_fetch_lock);
	xa_for_each(&casfs_fetch_reqs, id, req)
		casfs_nl_send_fetch(req->id, req->sha256, req->size, req->uid);
	mutex_unlock(&casfs_fetch_lock);
}

unsigned int casfs_fetch_pending_count(void)
{
	return READ_ONCE(casfs_fetch_npending);
}

/*
 * Module exit: every waiter holds a file of a mounted casfs, which pins
 * the module, so the table is empty by now. Be safe anyway: finish what
 * is left, so any waiter wakes and frees its request.
 */
void casfs_fetch_exit(void)
{
	struct casfs_fetch_req *req;
	unsigned long id;

	mutex_lock(&casfs_fetch_lock);
	xa_for_each(&casfs_fetch_reqs, id, req) {
		casfs_fetch_unlink(req);
		req->status = -ESHUTDOWN;
		complete_all(&req->done);
	}
	mutex_unlock(&casfs_fetch_lock);
	xa_destroy(&casfs_fetch_reqs);
	xa_destroy(&casfs_fetch_uids);
}
