// SPDX-License-Identifier: GPL-2.0
/*
 * 6.19: pinned names are marked with d_make_persistent() and unpinned
 * with d_make_discardable(); libfs's simple_* expect it, and
 * kill_litter_super() is gone (kill_anon_super() drops the pins).
 */
#include <linux/fs.h>
#include <linux/dcache.h>

static struct dentry *__maybe_unused casfs_probe(struct dentry *dentry,
						 struct inode *inode)
{
	return d_make_persistent(dentry, inode);
}
