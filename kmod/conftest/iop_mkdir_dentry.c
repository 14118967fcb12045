// SPDX-License-Identifier: GPL-2.0
/* 6.15: inode_operations.mkdir returns a struct dentry * (NULL: as passed). */
#include <linux/fs.h>

static struct dentry *casfs_probe_mkdir(struct mnt_idmap *idmap,
					struct inode *dir,
					struct dentry *dentry, umode_t mode)
{
	return NULL;
}

static const struct inode_operations casfs_probe __maybe_unused = {
	.mkdir	= casfs_probe_mkdir,
};
