// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - the backing cache directory.
 *
 * A mount names a directory on a real filesystem (cache=DIR). casfs keeps
 * no file bytes in its own memory: they live there.
 *
 *   DIR/local/  parent of the private backing files of local (written)
 *               casfs inodes. Each is an O_TMPFILE that is never linked,
 *               so it has no name, nobody else can open it, and the
 *               backing filesystem frees it when casfs drops its last
 *               reference: at the last unlink of the casfs inode, at
 *               unmount, or -- after a crash -- at the backing
 *               filesystem's own orphan cleanup. No stale private file
 *               can outlive its mount, so a new mount has nothing to sweep
 *               and never deletes anything in the directory.
 *   DIR/blobs/  content-addressed blobs, shared by every mount of DIR.
 *               Mode 0700, blobs 0400: a blob is readable through casfs
 *               by whoever may read a casfs file naming it, and by
 *               nobody else (the kernel opens blobs as the mounter).
 *   DIR/tmp/    the helper's staging area for blobs being fetched.
 *
 * The directory is a trust boundary: it must be owned by root and writable
 * by nobody else, or anyone could plant or swap the bytes casfs serves.
 */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/statfs.h>
#include <linux/cred.h>
#include <linux/string.h>

#include "casfs.h"

/*
 * Refuse a directory that anyone but root could write into, or (with
 * @private) that anyone but root could even search: blobs/ holds every
 * user's fetched outputs.
 */
static int casfs_check_trusted_dir(struct fs_context *fc, const char *what,
				   struct dentry *dentry, bool private)
{
	struct inode *inode = d_inode(dentry);

	if (!d_is_dir(dentry))
		return invalfc(fc, "cache: %s is not a directory", what);
	if (!uid_eq(inode->i_uid, GLOBAL_ROOT_UID) ||
	    (inode->i_mode & 0022)) {
		errorfc(fc, "cache: %s must be owned by root and writable only by root (mode %o)",
			what, inode->i_mode & S_IALLUGO);
		return -EPERM;
	}
	if (private && (inode->i_mode & 0077)) {
		errorfc(fc, "cache: %s must be accessible only by root (mode %o; chmod 0700 it)",
			what, inode->i_mode & S_IALLUGO);
		return -EPERM;
	}
	return 0;
}

/*
 * Look up DIR/name, creating it with @mode when it is missing, and return
 * it in @out. Existing entries are checked, never changed.
 */
static int casfs_cache_subdir(struct fs_context *fc, const struct path *parent,
			      const char *name, umode_t mode, struct path *out)
{
	struct inode *dir = d_inode(parent->dentry);
	struct dentry *dentry;
	int err = 0;

	/* Freeze protection first, then the directory: the VFS's order. */
	err = mnt_want_write(parent->mnt);
	if (err)
		return err;
	inode_lock_nested(dir, I_MUTEX_PARENT);
	dentry = casfs_lookup_locked(name, parent->dentry, strlen(name));
	if (IS_ERR(dentry)) {
		inode_unlock(dir);
		mnt_drop_write(parent->mnt);
		return PTR_ERR(dentry);
	}
	if (d_really_is_negative(dentry)) {
		/* Consumes dentry; the result may be another dentry. */
		dentry = casfs_vfs_mkdir(dir, dentry, mode);
		if (IS_ERR(dentry)) {
			err = PTR_ERR(dentry);
			dentry = NULL;
		}
		/* Some filesystems leave the dentry negative; look again. */
		if (!err && d_really_is_negative(dentry)) {
			dput(dentry);
			dentry = casfs_lookup_locked(name, parent->dentry,
						     strlen(name));
			if (IS_ERR(dentry)) {
				inode_unlock(dir);
				mnt_drop_write(parent->mnt);
				return PTR_ERR(dentry);
			}
			if (d_really_is_negative(dentry))
				err = -ENOENT;
		}
	}
	inode_unlock(dir);
	mnt_drop_write(parent->mnt);

	if (err) {
		dput(dentry);
		errorfc(fc, "cache: cannot create %s: error %d", name, err);
		return err;
	}
	/*
	 * Hold the directory as the helper sees it: a filesystem mounted on
	 * it (blobs on their own disk) is crossed; a symlink is not followed,
	 * and is then refused as "not a directory".
	 */
	out->mnt = mntget(parent->mnt);
	out->dentry = dentry;
	while (d_mountpoint(out->dentry) && follow_down_one(out))
		;
	if (casfs_mnt_idmapped(out->mnt))
		err = invalfc(fc, "cache: %s is on an idmapped mount", name);
	else
		err = casfs_check_trusted_dir(fc, name, out->dentry,
					      !(mode & 0077));
	if (err)
		path_put(out);
	return err;
}

int casfs_cache_open(struct super_block *sb, struct fs_context *fc)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);
	const char *dir = sbi->opts.cache;
	struct super_block *csb;
	struct path tmp;
	struct cred *cred;
	int err;

	/*
	 * Backing I/O runs as the mounter, less CAP_SYS_RESOURCE (as
	 * overlayfs does): writes through casfs must meet the backing
	 * filesystem's quotas and leave ext4's root reserve alone.
	 */
	cred = prepare_creds();
	if (!cred)
		return -ENOMEM;
	cap_lower(cred->cap_effective, CAP_SYS_RESOURCE);
	sbi->creator_cred = cred;

	err = kern_path(dir, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &sbi->cache);
	if (err) {
		errorfc(fc, "cache=%s: cannot open directory: error %d",
			dir, err);
		return err;
	}
	csb = sbi->cache.mnt->mnt_sb;
	if (csb->s_type == &casfs_fs_type)
		return invalfc(fc, "cache=%s: cannot be on casfs itself", dir);
	/* The ownership checks below must see the real owners. */
	if (casfs_mnt_idmapped(sbi->cache.mnt))
		return invalfc(fc, "cache=%s: cannot be an idmapped mount", dir);

	/*
	 * casfs forwards I/O to the backing filesystem, so it stacks on it
	 * like overlayfs does, and the same stack-depth bound applies.
	 */
	sb->s_stack_depth = csb->s_stack_depth + 1;
	if (sb->s_stack_depth > FILESYSTEM_MAX_STACK_DEPTH)
		return invalfc(fc, "cache=%s: filesystems stacked too deep",
			       dir);

	err = mnt_want_write(sbi->cache.mnt);
	if (err) {
		errorfc(fc, "cache=%s: not writable: error %d", dir, err);
		return err;
	}
	mnt_drop_write(sbi->cache.mnt);

	err = casfs_check_trusted_dir(fc, dir, sbi->cache.dentry, false);
	if (err)
		return err;

	err = casfs_cache_subdir(fc, &sbi->cache, CASFS_CACHE_LOCAL, 0700,
				 &sbi->local);
	if (err)
		return err;
	if (!d_inode(sbi->local.dentry)->i_op->tmpfile)
		return invalfc(fc, "cache=%s: filesystem %s has no O_TMPFILE support",
			       dir, csb->s_type->name);

	/*
	 * blobs/ and tmp/ belong to the CAS side; create them for it. blobs/
	 * is held for the mount's life: blob lookups start there, so a
	 * blobs/ swapped for a symlink later is never followed.
	 */
	err = casfs_cache_subdir(fc, &sbi->cache, CASFS_CACHE_BLOBS, 0700,
				 &sbi->blobs);
	if (err)
		return err;
	err = casfs_cache_subdir(fc, &sbi->cache, CASFS_CACHE_TMP, 0700, &tmp);
	if (err)
		return err;
	path_put(&tmp);
	return 0;
}

void casfs_cache_close(struct casfs_sb_info *sbi)
{
	if (sbi->blobs.dentry)
		path_put(&sbi->blobs);
	if (sbi->local.dentry)
		path_put(&sbi->local);
	if (sbi->cache.dentry)
		path_put(&sbi->cache);
	if (sbi->creator_cred)
		put_cred(sbi->creator_cred);
}

/*
 * Create the private backing file of one casfs inode: an unnamed
 * O_TMPFILE, owned by the mounter and opened read-write.
 */
struct file *casfs_cache_create_private(struct super_block *sb)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);
	const struct cred *old_cred;
	struct file *file;
	int err;

	err = mnt_want_write(sbi->local.mnt);
	if (err)
		return ERR_PTR(err);
	old_cred = override_creds(sbi->creator_cred);
	/* O_EXCL: never linkable, so it can never get a name. */
	file = casfs_tmpfile_open(&sbi->local, S_IFREG | 0600,
				  O_RDWR | O_LARGEFILE | O_EXCL | O_NOATIME |
				  CASFS_O_NONOTIFY, sbi->creator_cred);
	revert_creds(old_cred);
	mnt_drop_write(sbi->local.mnt);
	return file;
}

/* statfs reports the backing filesystem: that is where the bytes go. */
int casfs_cache_statfs(struct super_block *sb, struct kstatfs *buf)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);
	int err;

	err = vfs_statfs(&sbi->cache, buf);
	if (err)
		return err;
	buf->f_type = CASFS_MAGIC;
	buf->f_namelen = NAME_MAX;
	/* Inodes are casfs's own, bounded by nr_inodes= (as tmpfs). */
	if (sbi->opts.nr_inodes) {
		long used = atomic_long_read(&sbi->inodes);

		buf->f_files = sbi->opts.nr_inodes;
		buf->f_ffree = used < buf->f_files ? buf->f_files - used : 0;
	}
	return 0;
}
