// SPDX-License-Identifier: GPL-2.0
/* 6.19: vfs_mkdir() also takes a struct delegated_inode * (may be NULL). */
#include <linux/fs.h>

static struct dentry *__maybe_unused casfs_probe(struct inode *dir,
						 struct dentry *dentry)
{
	return vfs_mkdir(&nop_mnt_idmap, dir, dentry, 0700, NULL);
}
