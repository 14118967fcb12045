/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs - internal declarations shared by the files of the module.
 *
 * How the pieces fit (see docs/design.md for the long form):
 *   super.c  module init, mount options (fs_context), superblock
 *   cache.c  the backing cache directory: checks, layout, private files
 *   inode.c  inode life cycle, getattr/setattr
 *   namei.c  directory operations (the dcache is the namespace)
 *   file.c   regular-file I/O forwarded to the backing file
 *   xattr.c  casfs's own bounded extended attribute store
 *   cas.c    CAS-backed files: staging, blobs, copy-up, digests
 *   fetch.c  the table of blob fetches in flight
 *   netlink.c the generic netlink channel to casfs-helper
 */
#ifndef CASFS_H
#define CASFS_H

#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/path.h>

#include "compat.h"
#include "../include/uapi/linux/casfs.h"

#define CASFS_MAGIC		0x43415346	/* "CASF" */

/* Layout of the cache directory (created at mount when missing). */
#define CASFS_CACHE_LOCAL	"local"	/* parent of private O_TMPFILEs */
#define CASFS_CACHE_BLOBS	"blobs"	/* content-addressed, read-only */
#define CASFS_CACHE_TMP		"tmp"	/* helper's staging area */

/* xattr store limits, per inode (see xattr.c for why these values). */
#define CASFS_XATTR_MAX_COUNT	128
#define CASFS_XATTR_MAX_BYTES	(64 * 1024)

/* Which options a mount or remount named (casfs_mount_opts.set). */
#define CASFS_SET_MODE		0x01
#define CASFS_SET_UID		0x02
#define CASFS_SET_GID		0x04
#define CASFS_SET_TIMEOUT	0x08
#define CASFS_SET_NR_INODES	0x10
#define CASFS_SET_XATTR_BYTES	0x20

struct casfs_mount_opts {
	char *cache;		/* cache= */
	umode_t root_mode;	/* mode= */
	kuid_t root_uid;	/* uid= */
	kgid_t root_gid;	/* gid= */
	unsigned int timeout;	/* timeout=: seconds a read waits for a fetch */
	unsigned long nr_inodes; /* nr_inodes=: inodes at most (0: no bound) */
	unsigned long xattr_bytes; /* xattr_bytes=: xattr names+values at most */
	unsigned int set;	/* CASFS_SET_*: named on this (re)mount */
};

struct casfs_sb_info {
	struct casfs_mount_opts opts;
	struct path cache;	/* the cache directory itself */
	struct path local;	/* cache/local: parent of private files */
	struct path blobs;	/* cache/blobs: the shared blobs */
	const struct cred *creator_cred; /* all backing I/O runs as the mounter */
	atomic64_t next_ino;	/* unique, never reused for the mount's life */
	atomic64_t next_version; /* casfs_new_version(): the same, for bytes */
	atomic_long_t inodes;	/* inodes in use, bounded by opts.nr_inodes */
	atomic_long_t xattr_bytes; /* bounded by opts.xattr_bytes */
};

struct casfs_xattr {
	struct list_head list;
	size_t value_len;
	char *name;
	char value[];
};

struct casfs_inode_info {
	struct inode vfs_inode;

	/*
	 * Private backing file of a regular file, an unlinked O_TMPFILE in
	 * cache/local. NULL until the file is first opened or grown: an
	 * empty file costs nothing on the backing filesystem. Set once under
	 * backing_lock, then stable until eviction.
	 */
	struct file *backing;
	struct mutex backing_lock;	/* serialises creating backing */

	/*
	 * CAS state (cas.c). While cas is set the file's bytes are the blob
	 * cas_sha256, set at staging and never changed after; copy-up sets
	 * backing, then clears cas (under backing_lock). For local files
	 * local_sha256 caches the computed digest (under backing_lock):
	 * valid while digest_seq == data_seq + 1. Every data change bumps
	 * data_seq after the bytes changed, attempted or not.
	 */
	bool cas;
	bool mapped_writable;	/* ever mmapped shared-writable */
	unsigned long cas_used;	/* jiffies of the last USED sent; 0: never */
	u8 cas_sha256[CASFS_SHA256_LEN];
	u8 local_sha256[CASFS_SHA256_LEN];
	atomic_t data_seq;
	int digest_seq;
	/*
	 * CASFS_IOC_STATE's version: a mount-wide unique number, renewed
	 * with data_seq and when a writer closes (casfs_new_version()).
	 */
	u64 version;

	/* xattrs: names and values, bounded; protected by xattr_lock. */
	spinlock_t xattr_lock;
	struct list_head xattrs;
	unsigned int xattr_count;
	size_t xattr_bytes;
};

static inline struct casfs_sb_info *CASFS_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

static inline struct casfs_inode_info *CASFS_I(struct inode *inode)
{
	return container_of(inode, struct casfs_inode_info, vfs_inode);
}

/*
 * A new version for the inode's bytes, unique within the mount: userspace
 * (casfs-outputd) compares versions to know a file is unchanged without
 * reading it. Call after the change, as for data_seq.
 */
static inline void casfs_new_version(struct inode *inode)
{
	WRITE_ONCE(CASFS_I(inode)->version,
		   atomic64_inc_return(&CASFS_SB(inode->i_sb)->next_version));
}

/* super.c */
extern struct file_system_type casfs_fs_type;

/* cache.c */
int casfs_cache_open(struct super_block *sb, struct fs_context *fc);
void casfs_cache_close(struct casfs_sb_info *sbi);
struct file *casfs_cache_create_private(struct super_block *sb);
int casfs_cache_statfs(struct super_block *sb, struct kstatfs *buf);

/* inode.c */
int casfs_inode_cache_init(void);
void casfs_inode_cache_destroy(void);
struct inode *casfs_alloc_inode(struct super_block *sb);
void casfs_free_inode(struct inode *inode);
void casfs_evict_inode(struct inode *inode);
struct inode *casfs_new_inode(struct super_block *sb, const struct inode *dir,
			      umode_t mode, dev_t dev);	/* or ERR_PTR */
int casfs_setattr(casfs_idmap_t *idmap, struct dentry *dentry,
		  struct iattr *attr);
int casfs_getattr(casfs_idmap_t *idmap, const struct path *path,
		  struct kstat *stat, u32 request_mask, unsigned int flags);
extern const struct inode_operations casfs_file_inode_operations;
extern const struct inode_operations casfs_special_inode_operations;
extern const struct inode_operations casfs_symlink_inode_operations;

/* namei.c */
extern const struct inode_operations casfs_dir_inode_operations;
extern const struct file_operations casfs_dir_operations;

/* file.c */
extern const struct file_operations casfs_file_operations;
void casfs_init_file_inode(struct inode *inode);
struct file *casfs_get_backing(struct inode *inode);
int casfs_truncate_backing(struct inode *inode, loff_t size);
void casfs_data_changed(struct inode *inode);

/* cas.c */
int casfs_cas_init(void);
void casfs_cas_exit(void);
struct file *casfs_cas_blob(struct inode *inode);
bool casfs_cas_present(struct inode *inode);
int casfs_cas_copy_up(struct inode *inode, loff_t keep);
int casfs_digest_xattr_get(struct inode *inode, const char *name,
			   void *buffer, size_t size);
long casfs_ioc_stage(struct file *file, struct casfs_stage __user *uarg);
long casfs_ioc_state(struct file *file, void __user *uarg, size_t usize);

/* fetch.c */
struct casfs_stats {
	atomic64_t misses;
	atomic64_t fetches;
	atomic64_t fetch_bytes;
	atomic64_t errors;
	atomic64_t timeouts;
	atomic64_t refetches;	/* evicted between the helper's DONE and our open */
	atomic64_t cancels;	/* withdrawn: the last reader left first */
};

extern struct casfs_stats casfs_stats;
int casfs_fetch_wait(const u8 *sha256, u64 size, unsigned long timeout,
		     int *helper_status);
int casfs_fetch_done(u32 id, int status);
int casfs_fetch_progress(u32 id);
void casfs_fetch_resend_all(void);
unsigned int casfs_fetch_pending_count(void);
void casfs_fetch_exit(void);

/* netlink.c */
int casfs_nl_init(void);
void casfs_nl_exit(void);
void casfs_nl_send_fetch(u32 id, const u8 *sha256, u64 size, kuid_t uid);
void casfs_nl_send_cancel(u32 id, const u8 *sha256, u64 size);
void casfs_nl_send_used(const u8 *sha256, u64 size);

/* xattr.c */
extern const struct xattr_handler *CASFS_XATTR_HANDLERS_CONST
	casfs_xattr_handlers[];
ssize_t casfs_listxattr(struct dentry *dentry, char *buf, size_t size);
void casfs_xattrs_free(struct inode *inode);

#endif /* CASFS_H */
