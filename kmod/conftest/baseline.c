// SPDX-License-Identifier: GPL-2.0
/* Must compile everywhere: proves the probes' compiler and flags work. */
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/dcache.h>

static int __maybe_unused casfs_probe(struct inode *inode)
{
	return inode->i_nlink != 0;
}
