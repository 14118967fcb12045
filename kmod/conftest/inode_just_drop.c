// SPDX-License-Identifier: GPL-2.0
/* 6.18: generic_delete_inode() was renamed inode_just_drop(). */
#include <linux/fs.h>

static const struct super_operations casfs_probe __maybe_unused = {
	.drop_inode	= inode_just_drop,
};
