// SPDX-License-Identifier: GPL-2.0
/*
 * 6.16: lookup_one_len() and lookup_one_len_unlocked() are gone;
 * lookup_one() and lookup_one_unlocked() take a struct qstr.
 */
#include <linux/fs.h>
#include <linux/namei.h>

static struct dentry *__maybe_unused casfs_probe(struct dentry *dir)
{
	struct qstr name = QSTR_LEN("x", 1);

	if (IS_ERR(lookup_one_unlocked(&nop_mnt_idmap, &name, dir)))
		return NULL;
	return lookup_one(&nop_mnt_idmap, &name, dir);
}
