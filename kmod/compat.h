/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs - every kernel-version difference lives here.
 *
 * casfs supports Debian 12's 6.1 kernel and bookworm-backports' 6.12. The
 * VFS API moved between them in three ways that matter to us:
 *
 *  - 6.3 replaced "struct user_namespace *mnt_userns" by "struct mnt_idmap *"
 *    in every inode operation and helper (casfs_idmap_t, CASFS_NOP_IDMAP);
 *  - 6.6/6.7 hid inode timestamps behind accessors (casfs_set_*time());
 *  - 6.5 reworked splice reading (casfs_real_splice_read()) and 6.2
 *    renamed vfs_tmpfile_open() to kernel_tmpfile_open().
 *
 * Callers use only the casfs_* names below, never a version check.
 *
 * checkpatch exceptions, for this file only (tests/checkpatch.sh):
 * LINUX_VERSION_CODE and CONSTANT_COMPARISON, because an out-of-tree
 * module must build against more than the one kernel it would be merged
 * into; NEW_TYPEDEFS, because casfs_idmap_t names whichever of the two
 * idmap types the running kernel's inode operations take.
 */
#ifndef CASFS_COMPAT_H
#define CASFS_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>
#include <linux/splice.h>
#include <linux/xattr.h>
#include <linux/namei.h>
#include <linux/mount.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
typedef struct mnt_idmap casfs_idmap_t;
#define CASFS_NOP_IDMAP (&nop_mnt_idmap)
#else
typedef struct user_namespace casfs_idmap_t;
#define CASFS_NOP_IDMAP (&init_user_ns)
#endif

/*
 * Look up one name in a directory: with the directory locked by the
 * caller, or without (then the dcache or a shared-lock lookup). Both check
 * MAY_EXEC on the directory with the current credentials.
 */
static inline struct dentry *casfs_lookup_locked(const char *name,
						 struct dentry *dir, int len)
{
	return lookup_one_len(name, dir, len);
}

static inline struct dentry *casfs_lookup_unlocked(const char *name,
						   struct dentry *dir, int len)
{
	return lookup_one_len_unlocked(name, dir, len);
}

/*
 * Open flag for the real files casfs opens (backing files, blobs): no
 * fsnotify events, so a read or write through casfs notifies watchers
 * once, on the casfs file, and skips the walk over the backing file's
 * marks. The flag is fanotify's own (__FMODE_NONOTIFY) on the kernels
 * that have it; where it is gone, 0 (the events are merely doubled).
 */
#ifdef __FMODE_NONOTIFY
#define CASFS_O_NONOTIFY	__FMODE_NONOTIFY
#else
#define CASFS_O_NONOTIFY	0
#endif

/* Is this mount idmapped? (6.3 turned the user namespace into an idmap.) */
static inline bool casfs_mnt_idmapped(struct vfsmount *mnt)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	return mnt_idmap(mnt) != &nop_mnt_idmap;
#else
	return mnt_user_ns(mnt) != &init_user_ns;
#endif
}

/* 6.2 renamed vfs_tmpfile_open() without changing its arguments. */
static inline struct file *casfs_tmpfile_open(const struct path *parent,
					      umode_t mode, int flags,
					      const struct cred *cred)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	return kernel_tmpfile_open(CASFS_NOP_IDMAP, parent, mode, flags, cred);
#else
	return vfs_tmpfile_open(CASFS_NOP_IDMAP, parent, mode, flags, cred);
#endif
}

static inline void casfs_generic_fillattr(casfs_idmap_t *idmap, u32 mask,
					  struct inode *inode,
					  struct kstat *stat)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	generic_fillattr(idmap, mask, inode, stat);
#else
	generic_fillattr(idmap, inode, stat);
#endif
}

/* Timestamps: 6.6 made ctime private, 6.7 did the same for atime/mtime. */
static inline void casfs_set_ctime(struct inode *inode, struct timespec64 ts)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	inode_set_ctime_to_ts(inode, ts);
#else
	inode->i_ctime = ts;
#endif
}

static inline void casfs_set_mtime(struct inode *inode, struct timespec64 ts)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	inode_set_mtime_to_ts(inode, ts);
#else
	inode->i_mtime = ts;
#endif
}

static inline void casfs_set_atime(struct inode *inode, struct timespec64 ts)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	inode_set_atime_to_ts(inode, ts);
#else
	inode->i_atime = ts;
#endif
}

static inline struct timespec64 casfs_get_mtime(const struct inode *inode)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	return inode_get_mtime(inode);
#else
	return inode->i_mtime;
#endif
}

/* Set atime, mtime and ctime to "now", as every new inode needs. */
static inline void casfs_touch_all(struct inode *inode)
{
	struct timespec64 now = current_time(inode);

	casfs_set_atime(inode, now);
	casfs_set_mtime(inode, now);
	casfs_set_ctime(inode, now);
}

/* A data change: mtime and ctime move together. */
static inline void casfs_touch_mctime(struct inode *inode)
{
	struct timespec64 now = current_time(inode);

	casfs_set_mtime(inode, now);
	casfs_set_ctime(inode, now);
}

/*
 * Splice from the backing file. 6.1 still has generic_file_splice_read();
 * 6.5+ routes through vfs_splice_read(), which also handles O_DIRECT.
 */
static inline ssize_t casfs_real_splice_read(struct file *real, loff_t *ppos,
					     struct pipe_inode_info *pipe,
					     size_t len, unsigned int flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	return vfs_splice_read(real, ppos, pipe, len, flags);
#else
	return generic_file_splice_read(real, ppos, pipe, len, flags);
#endif
}

/*
 * Write to the backing file. 6.8 moved the freeze protection
 * (file_start_write) into vfs_iter_write(); before that the caller took it.
 */
static inline ssize_t casfs_real_iter_write(struct file *real,
					    struct iov_iter *from,
					    loff_t *ppos, rwf_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	return vfs_iter_write(real, from, ppos, flags);
#else
	ssize_t ret;

	file_start_write(real);
	ret = vfs_iter_write(real, from, ppos, flags);
	file_end_write(real);
	return ret;
#endif
}

/* 6.7 made the superblock's xattr handler table a const array. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
#define CASFS_XATTR_HANDLERS_CONST const
#else
#define CASFS_XATTR_HANDLERS_CONST
#endif

#endif /* CASFS_COMPAT_H */
