// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - directory operations.
 *
 * The dcache is the namespace, as in ramfs: every name is a dentry pinned
 * with an extra reference, and libfs's simple_* helpers keep link counts
 * right for link, unlink, rmdir and rename (including RENAME_NOREPLACE
 * and RENAME_EXCHANGE; RENAME_WHITEOUT is refused with EINVAL, since
 * casfs is never an overlayfs upper layer).
 */
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "casfs.h"

/* Attach a new inode to a negative dentry and pin it. */
static void casfs_instantiate(struct inode *dir, struct dentry *dentry,
			      struct inode *inode)
{
	casfs_pin_name(dentry, inode);	/* the dentry is the name */
	casfs_touch_mctime(dir);
}

static int casfs_mknod(casfs_idmap_t *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode, dev_t dev)
{
	struct inode *inode;

	inode = casfs_new_inode(dir->i_sb, dir, mode, dev);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	casfs_instantiate(dir, dentry, inode);
	return 0;
}

static int casfs_create(casfs_idmap_t *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode, bool excl)
{
	return casfs_mknod(idmap, dir, dentry, mode | S_IFREG, 0);
}

static casfs_mkdir_ret_t casfs_mkdir(casfs_idmap_t *idmap, struct inode *dir,
				     struct dentry *dentry, umode_t mode)
{
	int err = casfs_mknod(idmap, dir, dentry, mode | S_IFDIR, 0);

	if (!err)
		inc_nlink(dir);	/* the child's ".." */
	return casfs_mkdir_return(err);
}

static int casfs_symlink(casfs_idmap_t *idmap, struct inode *dir,
			 struct dentry *dentry, const char *target)
{
	struct inode *inode;
	char *link;

	/* User-sized and pinned with the inode: charged to the caller. */
	link = kstrdup(target, GFP_KERNEL_ACCOUNT);
	if (!link)
		return -ENOMEM;
	inode = casfs_new_inode(dir->i_sb, dir, S_IFLNK | 0777, 0);
	if (IS_ERR(inode)) {
		kfree(link);
		return PTR_ERR(inode);
	}
	inode->i_link = link;	/* freed in casfs_free_inode() */
	inode->i_size = strlen(link);
	casfs_instantiate(dir, dentry, inode);
	return 0;
}

static int casfs_tmpfile(casfs_idmap_t *idmap, struct inode *dir,
			 struct file *file, umode_t mode)
{
	struct inode *inode;

	inode = casfs_new_inode(dir->i_sb, dir, mode, 0);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_tmpfile(file, inode);	/* nlink 0 until linkat() gives it a name */
	return finish_open_simple(file, 0);
}

static long casfs_dir_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	switch (cmd) {
	case CASFS_IOC_STAGE:
		return casfs_ioc_stage(file, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

/* libfs's simple_dir_operations, plus the staging ioctl. */
const struct file_operations casfs_dir_operations = {
	.open		= dcache_dir_open,
	.release	= dcache_dir_close,
	.llseek		= dcache_dir_lseek,
	.read		= generic_read_dir,
	.iterate_shared	= dcache_readdir,
	.fsync		= noop_fsync,
	.unlocked_ioctl	= casfs_dir_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

const struct inode_operations casfs_dir_inode_operations = {
	.create		= casfs_create,
	.lookup		= simple_lookup,
	.link		= simple_link,
	.unlink		= simple_unlink,
	.symlink	= casfs_symlink,
	.mkdir		= casfs_mkdir,
	.rmdir		= simple_rmdir,
	.mknod		= casfs_mknod,
	.rename		= simple_rename,
	.tmpfile	= casfs_tmpfile,
	.setattr	= casfs_setattr,
	.getattr	= casfs_getattr,
	.listxattr	= casfs_listxattr,
};
