// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - inode life cycle and attributes.
 *
 * Every inode lives only in memory (like ramfs): it is pinned by its
 * dentries and evicted when its last name is gone and nobody holds it
 * open. Inode numbers come from a per-mount 64-bit counter, so they are
 * unique per inode and never reused while the mount exists.
 */
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/xattr.h>

#include "casfs.h"

static struct kmem_cache *casfs_inode_cachep;

static void casfs_inode_init_once(void *obj)
{
	struct casfs_inode_info *ci = obj;

	inode_init_once(&ci->vfs_inode);
}

int casfs_inode_cache_init(void)
{
	casfs_inode_cachep = kmem_cache_create("casfs_inode_cache",
					       sizeof(struct casfs_inode_info),
					       0,
					       SLAB_RECLAIM_ACCOUNT |
					       SLAB_ACCOUNT,
					       casfs_inode_init_once);
	return casfs_inode_cachep ? 0 : -ENOMEM;
}

void casfs_inode_cache_destroy(void)
{
	/* Inodes are freed by RCU callbacks; wait for them first. */
	rcu_barrier();
	kmem_cache_destroy(casfs_inode_cachep);
}

struct inode *casfs_alloc_inode(struct super_block *sb)
{
	struct casfs_inode_info *ci;

	ci = alloc_inode_sb(sb, casfs_inode_cachep, GFP_KERNEL);
	if (!ci)
		return NULL;
	ci->backing = NULL;
	mutex_init(&ci->backing_lock);
	spin_lock_init(&ci->xattr_lock);
	INIT_LIST_HEAD(&ci->xattrs);
	ci->xattr_count = 0;
	ci->xattr_bytes = 0;
	ci->cas = false;
	ci->mapped_writable = false;
	ci->cas_used = 0;
	atomic_set(&ci->data_seq, 0);
	ci->digest_seq = 0;
	ci->version = 0;
	return &ci->vfs_inode;
}

/* Runs after an RCU grace period: path walk may still look at i_link. */
void casfs_free_inode(struct inode *inode)
{
	if (S_ISLNK(inode->i_mode))
		kfree(inode->i_link);
	kmem_cache_free(casfs_inode_cachep, CASFS_I(inode));
}

void casfs_evict_inode(struct inode *inode)
{
	struct casfs_inode_info *ci = CASFS_I(inode);

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	/* Dropping the last reference frees the unnamed backing file. */
	if (ci->backing) {
		fput(ci->backing);
		ci->backing = NULL;
	}
	casfs_xattrs_free(inode);
	atomic_long_dec(&CASFS_SB(inode->i_sb)->inodes);
}

/*
 * A new inode of the mount, or ERR_PTR(-ENOSPC) past nr_inodes= (as
 * tmpfs), or ERR_PTR(-ENOMEM).
 */
struct inode *casfs_new_inode(struct super_block *sb, const struct inode *dir,
			      umode_t mode, dev_t dev)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);
	struct inode *inode;

	if (atomic_long_inc_return(&sbi->inodes) > sbi->opts.nr_inodes &&
	    sbi->opts.nr_inodes) {
		atomic_long_dec(&sbi->inodes);
		return ERR_PTR(-ENOSPC);
	}
	inode = new_inode(sb);
	if (!inode) {
		atomic_long_dec(&sbi->inodes);
		return ERR_PTR(-ENOMEM);
	}
	inode->i_ino = atomic64_inc_return(&CASFS_SB(sb)->next_ino);
	casfs_new_version(inode);
	inode_init_owner(CASFS_NOP_IDMAP, inode, dir, mode);
	casfs_touch_all(inode);

	switch (mode & S_IFMT) {
	case S_IFREG:
		casfs_init_file_inode(inode);
		break;
	case S_IFDIR:
		inode->i_op = &casfs_dir_inode_operations;
		inode->i_fop = &casfs_dir_operations;
		/* "." and the parent's entry; the parent bumps its own. */
		inc_nlink(inode);
		break;
	case S_IFLNK:
		inode->i_op = &casfs_symlink_inode_operations;
		break;
	default:
		inode->i_op = &casfs_special_inode_operations;
		init_special_inode(inode, mode, dev);
		break;
	}
	return inode;
}

int casfs_setattr(casfs_idmap_t *idmap, struct dentry *dentry,
		  struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	int err;

	err = setattr_prepare(idmap, dentry, attr);
	if (err)
		return err;

	if ((attr->ia_valid & ATTR_SIZE) && S_ISREG(inode->i_mode) &&
	    attr->ia_size != i_size_read(inode)) {
		err = casfs_truncate_backing(inode, attr->ia_size);
		if (err)
			return err;
		i_size_write(inode, attr->ia_size);
		/* truncate(2) must move the times even if no time was given */
		if (!(attr->ia_valid & (ATTR_MTIME | ATTR_CTIME)))
			casfs_touch_mctime(inode);
	}
	setattr_copy(idmap, inode, attr);
	return 0;
}

int casfs_getattr(casfs_idmap_t *idmap, const struct path *path,
		  struct kstat *stat, u32 request_mask, unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct file *backing = READ_ONCE(ci->backing);
	struct timespec64 bt, mt;

	/*
	 * Stores through a shared writable mapping reach the backing file
	 * without casfs seeing them; its page_mkwrite moved the backing
	 * mtime. Carry a newer one over, as a write would have.
	 */
	if (backing && READ_ONCE(ci->mapped_writable)) {
		bt = casfs_get_mtime(file_inode(backing));
		mt = casfs_get_mtime(inode);
		if (timespec64_compare(&bt, &mt) > 0) {
			casfs_set_mtime(inode, bt);
			casfs_set_ctime(inode, bt);
		}
	}
	casfs_generic_fillattr(idmap, request_mask, inode, stat);
	/*
	 * Space used is what the backing file really holds (holes stay
	 * holes). A CAS-backed file counts as fully allocated: its bytes
	 * exist, only elsewhere, and tools must not take it for a hole.
	 */
	if (S_ISREG(inode->i_mode)) {
		if (backing)
			stat->blocks = file_inode(backing)->i_blocks;
		else if (READ_ONCE(CASFS_I(inode)->cas))
			stat->blocks = DIV_ROUND_UP(i_size_read(inode), 512);
		else
			stat->blocks = 0;
	}
	return 0;
}

const struct inode_operations casfs_file_inode_operations = {
	.setattr	= casfs_setattr,
	.getattr	= casfs_getattr,
	.listxattr	= casfs_listxattr,
};

const struct inode_operations casfs_special_inode_operations = {
	.setattr	= casfs_setattr,
	.getattr	= casfs_getattr,
	.listxattr	= casfs_listxattr,
};

const struct inode_operations casfs_symlink_inode_operations = {
	.get_link	= simple_get_link,
	.setattr	= casfs_setattr,
	.getattr	= casfs_getattr,
	.listxattr	= casfs_listxattr,
};
