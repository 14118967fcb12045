// SPDX-License-Identifier: GPL-2.0
/*
 * 6.15: vfs_mkdir() returns the dentry it made the directory at, which may
 * not be the one passed in (that one is then consumed), or an ERR_PTR.
 */
#include <linux/fs.h>

static struct dentry *__maybe_unused casfs_probe(struct inode *dir,
						 struct dentry *dentry)
{
	return vfs_mkdir(&nop_mnt_idmap, dir, dentry, 0700);
}
