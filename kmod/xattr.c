// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - extended attributes.
 *
 * casfs keeps its own small store per inode rather than libfs's
 * simple_xattrs, whose interface changed between 6.1 and 6.12 and which
 * has no limits of its own. Limits (per inode): at most
 * CASFS_XATTR_MAX_COUNT attributes and CASFS_XATTR_MAX_BYTES of names plus
 * values; per mount, xattr_bytes= (see super.c); past any, setxattr fails
 * with ENOSPC. A single value larger than XATTR_SIZE_MAX is refused by the
 * VFS with E2BIG before it gets here. Names and values are user-sized
 * kernel memory that stays pinned: they are charged to the setter's
 * memory cgroup (GFP_KERNEL_ACCOUNT), as simple_xattr does.
 *
 * Namespaces: user.* (VFS rules: regular files and directories only),
 * trusted.* (CAP_SYS_ADMIN, enforced by the VFS for get/set and here for
 * listing) and security.*. Anything else is EOPNOTSUPP.
 *
 * user.casfs.* is reserved: its names are the read-only digest
 * attributes (cas.c), never stored and never listed.
 *
 * Setters run under the inode lock (the VFS takes it); readers take only
 * xattr_lock, so lookups never allocate under the spinlock.
 */
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/xattr.h>
#include <linux/capability.h>

#include "casfs.h"

static size_t casfs_xattr_cost(const char *name, size_t value_len)
{
	return strlen(name) + 1 + value_len;
}

static struct casfs_xattr *casfs_xattr_find(struct casfs_inode_info *ci,
					    const char *name)
{
	struct casfs_xattr *xa;

	list_for_each_entry(xa, &ci->xattrs, list)
		if (!strcmp(xa->name, name))
			return xa;
	return NULL;
}

static void casfs_xattr_free_one(struct casfs_xattr *xa)
{
	kfree(xa->name);
	kvfree(xa);
}

void casfs_xattrs_free(struct inode *inode)
{
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct casfs_xattr *xa, *next;

	list_for_each_entry_safe(xa, next, &ci->xattrs, list)
		casfs_xattr_free_one(xa);
	atomic_long_sub(ci->xattr_bytes, &CASFS_SB(inode->i_sb)->xattr_bytes);
	INIT_LIST_HEAD(&ci->xattrs);
	ci->xattr_count = 0;
	ci->xattr_bytes = 0;
}

static int casfs_xattr_get(const struct xattr_handler *handler,
			   struct dentry *unused, struct inode *inode,
			   const char *suffix, void *buffer, size_t size)
{
	struct casfs_inode_info *ci = CASFS_I(inode);
	const char *name = xattr_full_name(handler, suffix);
	struct casfs_xattr *xa;
	int ret;

	if (!strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1))
		return casfs_digest_xattr_get(inode, name, buffer, size);

	spin_lock(&ci->xattr_lock);
	xa = casfs_xattr_find(ci, name);
	if (!xa) {
		ret = -ENODATA;
	} else if (!size) {
		ret = xa->value_len;
	} else if (size < xa->value_len) {
		ret = -ERANGE;
	} else {
		memcpy(buffer, xa->value, xa->value_len);
		ret = xa->value_len;
	}
	spin_unlock(&ci->xattr_lock);
	return ret;
}

static int casfs_xattr_set(const struct xattr_handler *handler,
			   casfs_idmap_t *idmap, struct dentry *unused,
			   struct inode *inode, const char *suffix,
			   const void *value, size_t size, int flags)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct casfs_inode_info *ci = CASFS_I(inode);
	const char *name = xattr_full_name(handler, suffix);
	struct casfs_xattr *old, *new = NULL;
	size_t bytes;
	long delta;
	int ret = 0;

	/* user.casfs.* is casfs's own, read-only namespace (digests). */
	if (!strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1))
		return -EPERM;

	if (value) {
		new = kvmalloc(struct_size(new, value, size),
			       GFP_KERNEL_ACCOUNT);
		if (!new)
			return -ENOMEM;
		new->name = kstrdup(name, GFP_KERNEL_ACCOUNT);
		if (!new->name) {
			kvfree(new);
			return -ENOMEM;
		}
		memcpy(new->value, value, size);
		new->value_len = size;
	}

	spin_lock(&ci->xattr_lock);
	old = casfs_xattr_find(ci, name);
	if (old && (flags & XATTR_CREATE)) {
		ret = -EEXIST;
		goto out_unlock;
	}
	if (!old && (flags & XATTR_REPLACE || !value)) {
		ret = -ENODATA;
		goto out_unlock;
	}

	bytes = ci->xattr_bytes;
	if (old)
		bytes -= casfs_xattr_cost(old->name, old->value_len);
	if (new) {
		bytes += casfs_xattr_cost(new->name, new->value_len);
		if (bytes > CASFS_XATTR_MAX_BYTES ||
		    (!old && ci->xattr_count >= CASFS_XATTR_MAX_COUNT)) {
			ret = -ENOSPC;
			goto out_unlock;
		}
	}
	/* The mount's bound: charge the growth, give back a shrink. */
	delta = (long)bytes - (long)ci->xattr_bytes;
	if (delta > 0 &&
	    atomic_long_add_return(delta, &sbi->xattr_bytes) >
	    (long)sbi->opts.xattr_bytes) {
		atomic_long_sub(delta, &sbi->xattr_bytes);
		ret = -ENOSPC;
		goto out_unlock;
	}
	if (delta < 0)
		atomic_long_add(delta, &sbi->xattr_bytes);

	if (old && new) {
		list_replace(&old->list, &new->list);
	} else if (old) {
		list_del(&old->list);
		ci->xattr_count--;
	} else {
		list_add_tail(&new->list, &ci->xattrs);
		ci->xattr_count++;
	}
	ci->xattr_bytes = bytes;
	new = NULL;	/* now owned by the list */
out_unlock:
	spin_unlock(&ci->xattr_lock);

	if (new)
		casfs_xattr_free_one(new);
	if (!ret) {
		if (old)
			casfs_xattr_free_one(old);
		casfs_set_ctime(inode, current_time(inode));
	}
	return ret;
}

ssize_t casfs_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	struct casfs_inode_info *ci = CASFS_I(d_inode(dentry));
	/* noaudit: not being shown trusted.* is no denial worth a log line. */
	bool trusted = ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);
	struct casfs_xattr *xa;
	size_t used = 0, len;
	ssize_t ret = 0;

	spin_lock(&ci->xattr_lock);
	list_for_each_entry(xa, &ci->xattrs, list) {
		if (!trusted && !strncmp(xa->name, XATTR_TRUSTED_PREFIX,
					 XATTR_TRUSTED_PREFIX_LEN))
			continue;
		len = strlen(xa->name) + 1;
		if (buf) {
			if (used + len > size) {
				ret = -ERANGE;
				break;
			}
			memcpy(buf + used, xa->name, len);
		}
		used += len;
	}
	spin_unlock(&ci->xattr_lock);
	return ret ? ret : used;
}

static const struct xattr_handler casfs_user_xattr_handler = {
	.prefix	= XATTR_USER_PREFIX,
	.get	= casfs_xattr_get,
	.set	= casfs_xattr_set,
};

static const struct xattr_handler casfs_trusted_xattr_handler = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.get	= casfs_xattr_get,
	.set	= casfs_xattr_set,
};

static const struct xattr_handler casfs_security_xattr_handler = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.get	= casfs_xattr_get,
	.set	= casfs_xattr_set,
};

const struct xattr_handler *CASFS_XATTR_HANDLERS_CONST casfs_xattr_handlers[] = {
	&casfs_user_xattr_handler,
	&casfs_trusted_xattr_handler,
	&casfs_security_xattr_handler,
	NULL
};
