// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - CAS-backed files.
 *
 * A CAS-backed regular file has a sha256 digest and a size, and no bytes
 * until something reads it. stat, readdir, getxattr and open never fetch.
 * The first read, splice, mmap or copy of its data opens its blob,
 * CACHE/blobs/<sha256 hex>, asking the helper to fetch it first when it is
 * missing (fetch.c). Every open file then reads the blob at page-cache
 * speed. Writing to or truncating the file first copies it up: the bytes
 * move into a private local backing file (cache.c) and the inode stops
 * being CAS-backed. The blob itself is never written.
 *
 * The cache directory is a trust boundary: a blob is used only if it is a
 * regular file owned by root, read-only, and exactly the expected size,
 * checked on the dentry before anything is opened (a FIFO would block an
 * open, a device would open as root). The helper has already checked its
 * sha256 before publishing it.
 *
 * Files are staged in batches by CASFS_IOC_STAGE on a directory (all or
 * nothing), through the same checks and hooks as creat(2): the caller's
 * write and search permission on the directory, the LSM hooks
 * (security_path_mknod, security_inode_create), the umask, audit and
 * fsnotify. setuid and setgid bits are refused. Digests are exposed
 * read-only by the user.casfs.* xattrs, which for local files the kernel
 * computes and caches until the next modification.
 */
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/security.h>
#include <linux/fsnotify.h>
#include <linux/audit.h>
#include <crypto/hash.h>

#include "casfs.h"

static struct crypto_shash *casfs_sha256_tfm;

/* sha256 of zero bytes: the only digest a size-0 entry may have. */
static const u8 casfs_empty_sha256[CASFS_SHA256_LEN] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
	0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
	0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

int casfs_cas_init(void)
{
	casfs_sha256_tfm = crypto_alloc_shash("sha256", 0, 0);
	return PTR_ERR_OR_ZERO(casfs_sha256_tfm);
}

void casfs_cas_exit(void)
{
	crypto_free_shash(casfs_sha256_tfm);
}

/*
 * Open the blob if it is in the cache and trustworthy; -ENOENT if absent.
 * The name is looked up in blobs/ (held since mount, so never a symlink),
 * and the dentry is checked before it is opened.
 */
static struct file *casfs_blob_open_present(struct inode *inode)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct casfs_inode_info *ci = CASFS_I(inode);
	char name[2 * CASFS_SHA256_LEN + 1];
	const struct cred *old_cred;
	struct path path;
	struct inode *binode;
	const char *why;
	struct file *blob;

	snprintf(name, sizeof(name), "%*phN", CASFS_SHA256_LEN, ci->cas_sha256);
	old_cred = override_creds(sbi->creator_cred);
	path.dentry = casfs_lookup_unlocked(name, sbi->blobs.dentry,
					    2 * CASFS_SHA256_LEN);
	revert_creds(old_cred);
	if (IS_ERR(path.dentry))
		return ERR_CAST(path.dentry);
	path.mnt = sbi->blobs.mnt;

	binode = d_inode(path.dentry);
	if (!binode) {
		dput(path.dentry);
		return ERR_PTR(-ENOENT);
	}
	if (!d_is_reg(path.dentry))
		why = "not a regular file";
	else if (!uid_eq(binode->i_uid, GLOBAL_ROOT_UID) ||
		 (binode->i_mode & 0222))
		why = "not root-owned and read-only";
	else if (i_size_read(binode) != i_size_read(inode))
		why = "wrong size";
	else
		why = NULL;
	if (why) {
		pr_warn_ratelimited("casfs: blob %*phN: %s, refusing it\n",
				    CASFS_SHA256_LEN, ci->cas_sha256, why);
		dput(path.dentry);
		return ERR_PTR(-EIO);
	}
	/* The backing atime of a shared blob tells nobody anything. */
	old_cred = override_creds(sbi->creator_cred);
	blob = dentry_open(&path, O_RDONLY | O_LARGEFILE | O_NOATIME |
			   CASFS_O_NONOTIFY, sbi->creator_cred);
	revert_creds(old_cred);
	dput(path.dentry);
	return blob;
}

/*
 * How many times a blob is fetched for one open when the helper reports
 * it fetched but it is gone by the time we look: the helper's eviction
 * may delete a blob between its DONE and our open when the cache bound
 * is small against the blobs in flight. Each round is a new fetch, so a
 * cache that cannot hold one blob still ends in EIO, not a loop.
 */
#define CASFS_FETCH_ROUNDS	3

/* How often one inode's use of its cached blob is told to the helper. */
#define CASFS_USED_INTERVAL	(60 * HZ)

/* One fetch round: ask the helper, wait, then open what it published. */
static struct file *casfs_cas_fetch_open(struct inode *inode)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct casfs_inode_info *ci = CASFS_I(inode);
	int err, status;

	err = casfs_fetch_wait(ci->cas_sha256, i_size_read(inode),
			       sbi->opts.timeout * HZ, &status);
	switch (err) {
	case 0:
		break;
	case -ECANCELED:
		return ERR_PTR(-EINTR);	/* killed: nothing to report */
	case -ENOBUFS:
		pr_warn_ratelimited("casfs: fetch of blob %*phN: too many fetches in flight\n",
				    CASFS_SHA256_LEN, ci->cas_sha256);
		return ERR_PTR(-ENOBUFS);
	default:
		pr_warn_ratelimited("casfs: fetch of blob %*phN (%lld bytes) failed: error %d\n",
				    CASFS_SHA256_LEN, ci->cas_sha256,
				    i_size_read(inode), status ? status : err);
		return ERR_PTR(-EIO);
	}
	return casfs_blob_open_present(inode);	/* -ENOENT: evicted already */
}

/*
 * The blob of a CAS-backed inode, opened read-only, fetched first if it
 * is missing. May sleep for up to the mount's timeout per round; killable.
 */
struct file *casfs_cas_blob(struct inode *inode)
{
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct file *blob;
	int round;

	blob = casfs_blob_open_present(inode);
	if (!IS_ERR(blob)) {
		/*
		 * A hit: tell the helper, so that its eviction is by use,
		 * not by fetch time. Racy on purpose: two opens at once may
		 * both send, which costs a message, not correctness.
		 */
		unsigned long used = READ_ONCE(ci->cas_used);

		if (!used || time_after(jiffies, used + CASFS_USED_INTERVAL)) {
			WRITE_ONCE(ci->cas_used, jiffies ? jiffies : 1);
			casfs_nl_send_used(ci->cas_sha256, i_size_read(inode));
		}
		return blob;
	}
	for (round = 0; PTR_ERR(blob) == -ENOENT; round++) {
		if (round == CASFS_FETCH_ROUNDS) {
			pr_warn_ratelimited("casfs: blob %*phN: helper reported it fetched %d times, but it is not in the cache\n",
					    CASFS_SHA256_LEN, ci->cas_sha256,
					    CASFS_FETCH_ROUNDS);
			return ERR_PTR(-EIO);
		}
		if (round)
			atomic64_inc(&casfs_stats.refetches);
		blob = casfs_cas_fetch_open(inode);
	}
	return blob;
}

/* Is the blob present now? Never fetches. */
bool casfs_cas_present(struct inode *inode)
{
	struct file *blob = casfs_blob_open_present(inode);

	if (IS_ERR(blob))
		return false;
	fput(blob);
	return true;
}

/*
 * Copy @len bytes from @in to @out at the same offsets. copy_file_range
 * first (reflink or in-kernel copy where the backing filesystem can);
 * between two filesystems (blobs/ may be on another one than local/) it
 * is -EXDEV, and then a plain read/write loop does it. Killable.
 */
static int casfs_copy_bytes(struct file *in, struct file *out, loff_t len)
{
	const size_t bufsize = 256 * 1024;
	loff_t pos = 0, wpos;
	void *buf = NULL;
	ssize_t n, w;
	int err = 0;

	while (pos < len) {
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (!buf) {
			n = vfs_copy_file_range(in, pos, out, pos,
						min_t(loff_t, len - pos, SZ_1G), 0);
			if (n > 0) {
				pos += n;
				continue;
			}
			if (n == 0) {
				err = -EIO;	/* the blob is shorter than staged */
				break;
			}
			if (n != -EXDEV && n != -EOPNOTSUPP && n != -EINVAL) {
				err = n;
				break;
			}
			buf = kvmalloc(bufsize, GFP_KERNEL);
			if (!buf) {
				err = -ENOMEM;
				break;
			}
		}
		n = kernel_read(in, buf, min_t(loff_t, len - pos, bufsize), &pos);
		if (n <= 0) {
			err = n ? n : -EIO;
			break;
		}
		wpos = pos - n;
		w = kernel_write(out, buf, n, &wpos);
		if (w != n) {
			err = w < 0 ? w : -EIO;
			break;
		}
	}
	kvfree(buf);
	return err;
}

/*
 * Turn a CAS-backed inode into a local one, keeping its first @keep bytes
 * (fetching the blob if any are kept): the whole file for a write, none
 * for O_TRUNC or truncate to 0, the new size for a shrinking truncate.
 * The state change happens under backing_lock: readers that see
 * ci->backing use it; ci->cas is cleared only after.
 */
int casfs_cas_copy_up(struct inode *inode, loff_t keep)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct casfs_inode_info *ci = CASFS_I(inode);
	const struct cred *old_cred;
	struct file *local, *blob;
	int err = 0;

	if (mutex_lock_killable(&ci->backing_lock))
		return -EINTR;
	if (!READ_ONCE(ci->cas))
		goto out_unlock;

	keep = min_t(loff_t, keep, i_size_read(inode));
	local = casfs_cache_create_private(inode->i_sb);
	if (IS_ERR(local)) {
		err = PTR_ERR(local);
		goto out_unlock;
	}
	if (keep > 0) {
		blob = casfs_cas_blob(inode);
		if (IS_ERR(blob)) {
			err = PTR_ERR(blob);
			fput(local);
			goto out_unlock;
		}
		old_cred = override_creds(sbi->creator_cred);
		err = casfs_copy_bytes(blob, local, keep);
		revert_creds(old_cred);
		fput(blob);
		if (err) {
			fput(local);
			goto out_unlock;
		}
	}
	i_size_write(inode, keep);
	/* Publish the local file before clearing the CAS state. */
	smp_store_release(&ci->backing, local);
	WRITE_ONCE(ci->cas, false);
	atomic_inc(&ci->data_seq);
	casfs_new_version(inode);
out_unlock:
	mutex_unlock(&ci->backing_lock);
	return err;
}

/* ---- digests ---- */

static int casfs_hash_file(struct file *file, u8 *out)
{
	SHASH_DESC_ON_STACK(desc, casfs_sha256_tfm);
	const size_t bufsize = 256 * 1024;
	loff_t pos = 0;
	ssize_t n;
	void *buf;
	int err;

	buf = kvmalloc(bufsize, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	desc->tfm = casfs_sha256_tfm;
	err = crypto_shash_init(desc);
	while (!err) {
		n = kernel_read(file, buf, bufsize, &pos);
		if (n <= 0) {
			err = n;
			break;
		}
		err = crypto_shash_update(desc, buf, n);
		if (!err && fatal_signal_pending(current))
			err = -EINTR;
	}
	if (!err)
		err = crypto_shash_final(desc, out);
	shash_desc_zero(desc);
	kvfree(buf);
	return err;
}

/*
 * The sha256 of a regular file: the staged digest of a CAS-backed file,
 * or the hash of a local file's bytes, cached until the next change.
 * A file that was ever mapped shared-writable is hashed every time: its
 * pages can change without casfs seeing it.
 */
static int casfs_inode_digest(struct inode *inode, u8 *out)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct casfs_inode_info *ci = CASFS_I(inode);
	const struct cred *old_cred;
	struct file *backing;
	int seq, err = 0;

	if (mutex_lock_killable(&ci->backing_lock))
		return -EINTR;
	if (READ_ONCE(ci->cas)) {
		memcpy(out, ci->cas_sha256, CASFS_SHA256_LEN);
		goto out_unlock;
	}
	if (ci->digest_seq == atomic_read(&ci->data_seq) + 1 &&
	    !READ_ONCE(ci->mapped_writable)) {
		memcpy(out, ci->local_sha256, CASFS_SHA256_LEN);
		goto out_unlock;
	}
	seq = atomic_read(&ci->data_seq);
	backing = ci->backing;
	if (backing) {
		old_cred = override_creds(sbi->creator_cred);
		err = casfs_hash_file(backing, out);
		revert_creds(old_cred);
	} else {
		err = crypto_shash_tfm_digest(casfs_sha256_tfm, NULL, 0, out);
	}
	if (!err && seq == atomic_read(&ci->data_seq)) {
		memcpy(ci->local_sha256, out, CASFS_SHA256_LEN);
		ci->digest_seq = seq + 1;	/* 0 means never computed */
	}
out_unlock:
	mutex_unlock(&ci->backing_lock);
	return err;
}

/* getxattr of CASFS_XATTR_SHA256 / CASFS_XATTR_SHA256_HEX. */
int casfs_digest_xattr_get(struct inode *inode, const char *name,
			   void *buffer, size_t size)
{
	u8 digest[CASFS_SHA256_LEN];
	char hex[2 * CASFS_SHA256_LEN];
	bool raw;
	int err;

	if (!strcmp(name, CASFS_XATTR_SHA256))
		raw = true;
	else if (!strcmp(name, CASFS_XATTR_SHA256_HEX))
		raw = false;
	else
		return -ENODATA;
	if (!S_ISREG(inode->i_mode))
		return -ENODATA;

	if (!size)	/* size query: no need to hash */
		return raw ? CASFS_SHA256_LEN : sizeof(hex);
	if (size < (raw ? CASFS_SHA256_LEN : sizeof(hex)))
		return -ERANGE;
	err = casfs_inode_digest(inode, digest);
	if (err)
		return err;
	if (raw) {
		memcpy(buffer, digest, CASFS_SHA256_LEN);
		return CASFS_SHA256_LEN;
	}
	bin2hex(hex, digest, CASFS_SHA256_LEN);
	memcpy(buffer, hex, sizeof(hex));
	return sizeof(hex);
}

/* ---- CASFS_IOC_STAGE ---- */

static bool casfs_name_ok(const char *name, u32 len)
{
	if (!len || len > NAME_MAX)
		return false;
	if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
		return false;
	return !memchr(name, '/', len) && !memchr(name, '\0', len);
}

struct casfs_stage_ctx {
	struct casfs_stage_entry *ents;
	const char *names;
};

/* Order entry indices by name, to find duplicates. */
static int casfs_stage_cmp(const void *a, const void *b, const void *priv)
{
	const struct casfs_stage_ctx *ctx = priv;
	const struct casfs_stage_entry *ea = &ctx->ents[*(const u32 *)a];
	const struct casfs_stage_entry *eb = &ctx->ents[*(const u32 *)b];
	u32 n = min(ea->name_len, eb->name_len);
	int c = memcmp(ctx->names + ea->name_off, ctx->names + eb->name_off, n);

	if (c)
		return c;
	return ea->name_len < eb->name_len ? -1 : ea->name_len > eb->name_len;
}

/* Validate every entry; on failure *bad is the first bad index. */
static int casfs_stage_validate(struct casfs_stage_ctx *ctx, u32 count,
				u32 names_len, u32 *bad)
{
	u32 i, *order;
	int err = 0;

	for (i = 0; i < count; i++) {
		const struct casfs_stage_entry *e = &ctx->ents[i];

		if (e->digest_fn != CASFS_DIGEST_SHA256) {
			*bad = i;
			return -EOPNOTSUPP;
		}
		/* No setuid/setgid: staging must not mint privileges. */
		if ((e->mode & ~01777) ||
		    e->size > CASFS_MAX_BLOB_SIZE ||
		    (!e->size && memcmp(e->sha256, casfs_empty_sha256,
					CASFS_SHA256_LEN)) ||
		    e->name_off > names_len ||
		    e->name_len > names_len - e->name_off ||
		    !casfs_name_ok(ctx->names + e->name_off, e->name_len)) {
			*bad = i;
			return -EINVAL;
		}
	}

	/* Duplicate names within the batch: sort indices, compare neighbours. */
	order = kvmalloc_array(count, sizeof(*order), GFP_KERNEL_ACCOUNT);
	if (!order)
		return -ENOMEM;
	for (i = 0; i < count; i++)
		order[i] = i;
	sort_r(order, count, sizeof(*order), casfs_stage_cmp, NULL, ctx);
	for (i = 1; i < count; i++) {
		if (!casfs_stage_cmp(&order[i - 1], &order[i], ctx)) {
			*bad = max(order[i - 1], order[i]);
			err = -EINVAL;
			break;
		}
	}
	kvfree(order);
	return err;
}

/*
 * Create the entries in @parent. All lookups, permission and LSM checks
 * and allocations happen before the first name becomes visible, so a
 * failure creates nothing. Each entry then is created as creat(2) would:
 * mode less the umask, audit, and fsnotify for inotify/fanotify watchers.
 */
static int casfs_stage_create(const struct path *parent_path,
			      struct casfs_stage_ctx *ctx, u32 count, u32 *bad)
{
	struct dentry *parent = parent_path->dentry;
	struct inode *dir = d_inode(parent);
	umode_t umask = current_umask();
	struct dentry **dentries;
	struct inode **inodes;
	u32 i, done_d = 0, done_i = 0;
	int err = 0;

	dentries = kvcalloc(count, sizeof(*dentries), GFP_KERNEL_ACCOUNT);
	inodes = kvcalloc(count, sizeof(*inodes), GFP_KERNEL_ACCOUNT);
	if (!dentries || !inodes) {
		err = -ENOMEM;
		goto out_free;
	}

	/* Killable: N callers must not each sleep here pinning buffers. */
	err = down_write_killable_nested(&dir->i_rwsem, I_MUTEX_PARENT);
	if (err)
		goto out_free;
	if (IS_DEADDIR(dir)) {
		err = -ENOENT;
		goto out_unlock;
	}
	for (i = 0; i < count; i++) {
		const struct casfs_stage_entry *e = &ctx->ents[i];
		umode_t mode = S_IFREG | (e->mode & ~umask);
		struct dentry *d;

		d = casfs_lookup_locked(ctx->names + e->name_off, parent,
					e->name_len);
		if (IS_ERR(d)) {
			err = PTR_ERR(d);
			*bad = i;
			goto out_put;
		}
		dentries[i] = d;
		done_d = i + 1;
		if (d_really_is_positive(d))
			err = -EEXIST;
		else
			err = security_path_mknod(parent_path, d, mode, 0);
		if (!err)
			err = security_inode_create(dir, d, mode);
		if (err) {
			*bad = i;
			goto out_put;
		}
	}
	for (i = 0; i < count; i++) {
		const struct casfs_stage_entry *e = &ctx->ents[i];
		struct casfs_inode_info *ci;
		struct inode *inode;

		inode = casfs_new_inode(dir->i_sb, dir,
					S_IFREG | (e->mode & ~umask), 0);
		if (IS_ERR(inode)) {
			err = PTR_ERR(inode);
			*bad = i;
			goto out_put;
		}
		inodes[i] = inode;
		done_i = i + 1;
		/* The empty blob is never fetched: an empty file is local. */
		if (!e->size)
			continue;
		ci = CASFS_I(inode);
		memcpy(ci->cas_sha256, e->sha256, CASFS_SHA256_LEN);
		ci->cas = true;
		inode->i_size = e->size;
	}
	/* Point of no return: nothing below can fail. */
	for (i = 0; i < count; i++) {
		/* The pin, as for any casfs name; the inode moves to it. */
		casfs_pin_name(dentries[i], inodes[i]);
		inodes[i] = NULL;
		audit_inode_child(dir, dentries[i], AUDIT_TYPE_CHILD_CREATE);
		fsnotify_create(dir, dentries[i]);
	}
	if (count)
		casfs_touch_mctime(dir);
out_put:
	for (i = 0; i < done_i; i++)
		if (inodes[i])
			iput(inodes[i]);
	for (i = 0; i < done_d; i++)
		dput(dentries[i]);
out_unlock:
	inode_unlock(dir);
out_free:
	kvfree(inodes);
	kvfree(dentries);
	return err;
}

long casfs_ioc_stage(struct file *file, struct casfs_stage __user *uarg)
{
	struct inode *dir = file_inode(file);
	struct casfs_stage_ctx ctx = {};
	struct casfs_stage st;
	u32 bad = ~0U;
	int err;

	if (copy_from_user(&st, uarg, sizeof(st)))
		return -EFAULT;
	if (st.flags || st.count > CASFS_STAGE_MAX_ENTRIES ||
	    st.names_len > CASFS_STAGE_MAX_NAMES)
		return -EINVAL;
	err = inode_permission(CASFS_NOP_IDMAP, dir, MAY_WRITE | MAY_EXEC);
	if (err)
		return err;
	err = mnt_want_write_file(file);
	if (err)
		return err;

	/* User-sized: charged to the caller's memory cgroup. */
	ctx.ents = kvmalloc_array(st.count, sizeof(*ctx.ents),
				  GFP_KERNEL_ACCOUNT);
	ctx.names = kvmalloc(st.names_len ? st.names_len : 1,
			     GFP_KERNEL_ACCOUNT);
	if (!ctx.ents || !ctx.names) {
		err = -ENOMEM;
		goto out;
	}
	if (copy_from_user(ctx.ents, u64_to_user_ptr(st.entries),
			   array_size(st.count, sizeof(*ctx.ents))) ||
	    copy_from_user((void *)ctx.names, u64_to_user_ptr(st.names),
			   st.names_len)) {
		err = -EFAULT;
		goto out;
	}
	err = casfs_stage_validate(&ctx, st.count, st.names_len, &bad);
	if (!err)
		err = casfs_stage_create(&file->f_path, &ctx, st.count, &bad);
out:
	if (put_user(bad, &uarg->bad_index) && !err)
		err = -EFAULT;
	kvfree(ctx.names);
	kvfree(ctx.ents);
	mnt_drop_write_file(file);
	return err;
}

long casfs_ioc_state(struct file *file, void __user *uarg, size_t usize)
{
	struct inode *inode = file_inode(file);
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct casfs_state st = {};
	bool writers;

	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	/*
	 * Writers first, version second: a writer's close renews the
	 * version before it leaves i_writecount (casfs_release()), so "no
	 * writers" and an unchanged version together mean unchanged bytes.
	 */
	writers = inode_is_open_for_write(inode);
	/* Pairs with the smp_wmb() in casfs_release(). */
	smp_rmb();
	st.version = READ_ONCE(ci->version);
	if (writers)
		st.flags |= CASFS_STATE_WRITERS;
	if (mutex_lock_killable(&ci->backing_lock))
		return -EINTR;
	st.size = i_size_read(inode);
	if (READ_ONCE(ci->cas)) {
		st.flags |= CASFS_STATE_CAS;
		memcpy(st.sha256, ci->cas_sha256, CASFS_SHA256_LEN);
	} else {
		st.flags |= CASFS_STATE_LOCAL;
	}
	mutex_unlock(&ci->backing_lock);
	if ((st.flags & CASFS_STATE_CAS) && (!st.size || casfs_cas_present(inode)))
		st.flags |= CASFS_STATE_PRESENT;
	/* usize: the caller's form, without version for the first one. */
	return copy_to_user(uarg, &st, min(usize, sizeof(st))) ? -EFAULT : 0;
}
