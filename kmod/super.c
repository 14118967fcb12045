// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - module init, mount options and the superblock.
 *
 * The namespace lives in pinned dentries like ramfs; file bytes live in the
 * cache directory named by the required cache= option (see cache.c).
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/string.h>
#include <linux/mm.h>

#include "casfs.h"

#define CASFS_DEFAULT_ROOT_MODE	0755

enum casfs_param {
	CASFS_OPT_CACHE,
	CASFS_OPT_MODE,
	CASFS_OPT_UID,
	CASFS_OPT_GID,
	CASFS_OPT_TIMEOUT,
	CASFS_OPT_NR_INODES,
	CASFS_OPT_XATTR_BYTES,
};

#define CASFS_DEFAULT_TIMEOUT	60	/* seconds */
#define CASFS_MAX_TIMEOUT	86400

static const struct fs_parameter_spec casfs_fs_parameters[] = {
	fsparam_string("cache", CASFS_OPT_CACHE),
	fsparam_u32oct("mode", CASFS_OPT_MODE),
	fsparam_u32("uid", CASFS_OPT_UID),
	fsparam_u32("gid", CASFS_OPT_GID),
	fsparam_u32("timeout", CASFS_OPT_TIMEOUT),
	fsparam_string("nr_inodes", CASFS_OPT_NR_INODES),
	fsparam_string("xattr_bytes", CASFS_OPT_XATTR_BYTES),
	{}
};

static int casfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct casfs_mount_opts *opts = fc->fs_private;
	struct fs_parse_result result;
	unsigned long long n;
	char *rest;
	kuid_t uid;
	kgid_t gid;
	int opt;

	opt = fs_parse(fc, casfs_fs_parameters, param, &result);
	if (opt < 0)
		return opt;	/* fs_parse() already logged why */

	switch (opt) {
	case CASFS_OPT_CACHE:
		if (!param->string[0])
			return invalfc(fc, "cache= needs a directory");
		if (param->string[0] != '/')
			return invalfc(fc, "cache=%s: must be an absolute path",
				       param->string);
		kfree(opts->cache);
		opts->cache = param->string;
		param->string = NULL;	/* ownership moves to opts */
		break;
	case CASFS_OPT_MODE:
		if (result.uint_32 & ~S_IALLUGO)
			return invalfc(fc, "mode=%o: not a permission mode",
				       result.uint_32);
		opts->root_mode = result.uint_32;
		opts->set |= CASFS_SET_MODE;
		break;
	case CASFS_OPT_UID:
		/* IDs are the mounter's view: the fs_context's namespace. */
		uid = make_kuid(fc->user_ns, result.uint_32);
		if (!uid_valid(uid))
			return invalfc(fc, "uid=%u: not mapped", result.uint_32);
		opts->root_uid = uid;
		opts->set |= CASFS_SET_UID;
		break;
	case CASFS_OPT_GID:
		gid = make_kgid(fc->user_ns, result.uint_32);
		if (!gid_valid(gid))
			return invalfc(fc, "gid=%u: not mapped", result.uint_32);
		opts->root_gid = gid;
		opts->set |= CASFS_SET_GID;
		break;
	case CASFS_OPT_TIMEOUT:
		if (!result.uint_32 || result.uint_32 > CASFS_MAX_TIMEOUT)
			return invalfc(fc, "timeout=%u: must be 1 to %u seconds",
				       result.uint_32, CASFS_MAX_TIMEOUT);
		opts->timeout = result.uint_32;
		opts->set |= CASFS_SET_TIMEOUT;
		break;
	case CASFS_OPT_NR_INODES:
	case CASFS_OPT_XATTR_BYTES:
		/* A number with an optional k/m/g suffix, as tmpfs takes. */
		n = memparse(param->string, &rest);
		if (*rest || n > LONG_MAX || rest == param->string)
			return invalfc(fc, "%s=%s: not a number", param->key,
				       param->string);
		if (opt == CASFS_OPT_NR_INODES) {
			opts->nr_inodes = n;
			opts->set |= CASFS_SET_NR_INODES;
		} else {
			opts->xattr_bytes = n;
			opts->set |= CASFS_SET_XATTR_BYTES;
		}
		break;
	}
	return 0;
}

/* Defaults that scale with the machine, as tmpfs's nr_inodes does. */
static unsigned long casfs_default_nr_inodes(void)
{
	return totalram_pages() / 2;
}

static unsigned long casfs_default_xattr_bytes(void)
{
	return (totalram_pages() / 64) << PAGE_SHIFT;
}

static int casfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	return casfs_cache_statfs(dentry->d_sb, buf);
}

/* syncfs(2) on casfs syncs the backing filesystem: the bytes are there. */
static int casfs_sync_fs(struct super_block *sb, int wait)
{
	struct super_block *csb = CASFS_SB(sb)->cache.mnt->mnt_sb;
	int err;

	if (!wait)
		return 0;
	down_read(&csb->s_umount);
	err = sync_filesystem(csb);
	up_read(&csb->s_umount);
	return err;
}

static int casfs_show_options(struct seq_file *m, struct dentry *root)
{
	struct casfs_sb_info *sbi = CASFS_SB(root->d_sb);

	seq_show_option(m, "cache", sbi->opts.cache);
	if (sbi->opts.root_mode != CASFS_DEFAULT_ROOT_MODE)
		seq_printf(m, ",mode=%o", sbi->opts.root_mode);
	if (!uid_eq(sbi->opts.root_uid, GLOBAL_ROOT_UID))
		seq_printf(m, ",uid=%u",
			   from_kuid_munged(&init_user_ns, sbi->opts.root_uid));
	if (!gid_eq(sbi->opts.root_gid, GLOBAL_ROOT_GID))
		seq_printf(m, ",gid=%u",
			   from_kgid_munged(&init_user_ns, sbi->opts.root_gid));
	if (sbi->opts.timeout != CASFS_DEFAULT_TIMEOUT)
		seq_printf(m, ",timeout=%u", sbi->opts.timeout);
	if (sbi->opts.nr_inodes != casfs_default_nr_inodes())
		seq_printf(m, ",nr_inodes=%lu", sbi->opts.nr_inodes);
	if (sbi->opts.xattr_bytes != casfs_default_xattr_bytes())
		seq_printf(m, ",xattr_bytes=%lu", sbi->opts.xattr_bytes);
	return 0;
}

static const struct super_operations casfs_super_ops = {
	.alloc_inode	= casfs_alloc_inode,
	.free_inode	= casfs_free_inode,
	.evict_inode	= casfs_evict_inode,
	.drop_inode	= casfs_drop_inode,
	.sync_fs	= casfs_sync_fs,
	.statfs		= casfs_statfs,
	.show_options	= casfs_show_options,
};

static int casfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct casfs_sb_info *sbi;
	struct inode *root;
	int err;

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	sb->s_fs_info = sbi;

	/* Take the parsed options over from the fs_context. */
	sbi->opts = *(struct casfs_mount_opts *)fc->fs_private;
	((struct casfs_mount_opts *)fc->fs_private)->cache = NULL;
	atomic64_set(&sbi->next_ino, 1);
	atomic64_set(&sbi->next_version, 0);
	atomic_long_set(&sbi->inodes, 0);
	atomic_long_set(&sbi->xattr_bytes, 0);

	sb->s_maxbytes		= MAX_LFS_FILESIZE;
	sb->s_blocksize		= PAGE_SIZE;
	sb->s_blocksize_bits	= PAGE_SHIFT;
	sb->s_magic		= CASFS_MAGIC;
	sb->s_op		= &casfs_super_ops;
	sb->s_xattr		= casfs_xattr_handlers;
	sb->s_time_gran		= 1;
	/*
	 * Writes may skip the privilege-removal check once an inode is known
	 * to have no setuid/setgid bit and no security.capability (the VFS
	 * clears S_NOSEC on chmod and on security.* xattr changes).
	 */
	sb->s_flags		|= SB_NOSEC;

	err = casfs_cache_open(sb, fc);
	if (err)
		return err;	/* casfs_kill_sb() releases what was taken */

	root = casfs_new_inode(sb, NULL, S_IFDIR | sbi->opts.root_mode, 0);
	if (IS_ERR(root))
		return PTR_ERR(root);
	root->i_uid = sbi->opts.root_uid;
	root->i_gid = sbi->opts.root_gid;
	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	return 0;
}

static int casfs_get_tree(struct fs_context *fc)
{
	struct casfs_mount_opts *opts = fc->fs_private;

	if (!opts->cache)
		return invalfc(fc, "the cache=DIR option is required");
	return get_tree_nodev(fc, casfs_fill_super);
}

/*
 * Remount changes what it names and nothing else: an option not given
 * keeps its value. The cache directory is held open, so a new cache= is
 * refused loudly rather than ignored; mode=, uid= and gid= apply to the
 * root directory as at mount; nr_inodes= and xattr_bytes= may not drop
 * below what is in use (as tmpfs).
 */
static int casfs_reconfigure(struct fs_context *fc)
{
	struct casfs_mount_opts *opts = fc->fs_private;
	struct super_block *sb = fc->root->d_sb;
	struct casfs_sb_info *sbi = CASFS_SB(sb);
	struct inode *root = d_inode(sb->s_root);

	sync_filesystem(sb);
	if (opts->cache && strcmp(opts->cache, sbi->opts.cache))
		return invalfc(fc, "cache= cannot change on remount");
	if ((opts->set & CASFS_SET_NR_INODES) && opts->nr_inodes &&
	    opts->nr_inodes < atomic_long_read(&sbi->inodes))
		return invalfc(fc, "nr_inodes=%lu: %ld inodes are in use",
			       opts->nr_inodes, atomic_long_read(&sbi->inodes));
	if ((opts->set & CASFS_SET_XATTR_BYTES) &&
	    opts->xattr_bytes < atomic_long_read(&sbi->xattr_bytes))
		return invalfc(fc, "xattr_bytes=%lu: %ld bytes are in use",
			       opts->xattr_bytes,
			       atomic_long_read(&sbi->xattr_bytes));

	if (opts->set & CASFS_SET_TIMEOUT)
		sbi->opts.timeout = opts->timeout;
	if (opts->set & CASFS_SET_NR_INODES)
		sbi->opts.nr_inodes = opts->nr_inodes;
	if (opts->set & CASFS_SET_XATTR_BYTES)
		sbi->opts.xattr_bytes = opts->xattr_bytes;
	if (opts->set & (CASFS_SET_MODE | CASFS_SET_UID | CASFS_SET_GID)) {
		inode_lock(root);
		if (opts->set & CASFS_SET_MODE) {
			sbi->opts.root_mode = opts->root_mode;
			root->i_mode = S_IFDIR | opts->root_mode;
		}
		if (opts->set & CASFS_SET_UID) {
			sbi->opts.root_uid = opts->root_uid;
			root->i_uid = opts->root_uid;
		}
		if (opts->set & CASFS_SET_GID) {
			sbi->opts.root_gid = opts->root_gid;
			root->i_gid = opts->root_gid;
		}
		casfs_set_ctime(root, current_time(root));
		inode_unlock(root);
	}
	return 0;
}

static void casfs_free_fc(struct fs_context *fc)
{
	struct casfs_mount_opts *opts = fc->fs_private;

	if (opts)
		kfree(opts->cache);
	kfree(opts);
}

static const struct fs_context_operations casfs_context_ops = {
	.free		= casfs_free_fc,
	.parse_param	= casfs_parse_param,
	.get_tree	= casfs_get_tree,
	.reconfigure	= casfs_reconfigure,
};

static int casfs_init_fs_context(struct fs_context *fc)
{
	struct casfs_mount_opts *opts;

	opts = kzalloc(sizeof(*opts), GFP_KERNEL);
	if (!opts)
		return -ENOMEM;
	opts->root_mode = CASFS_DEFAULT_ROOT_MODE;
	opts->root_uid = GLOBAL_ROOT_UID;
	opts->root_gid = GLOBAL_ROOT_GID;
	opts->timeout = CASFS_DEFAULT_TIMEOUT;
	opts->nr_inodes = casfs_default_nr_inodes();
	opts->xattr_bytes = casfs_default_xattr_bytes();
	fc->fs_private = opts;
	fc->ops = &casfs_context_ops;
	return 0;
}

static void casfs_kill_sb(struct super_block *sb)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);

	/* Drops the pinned dentries; evicting inodes closes backing files. */
	casfs_kill_super(sb);
	if (sbi) {
		casfs_cache_close(sbi);
		kfree(sbi->opts.cache);
		kfree(sbi);
	}
}

struct file_system_type casfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "casfs",
	.init_fs_context	= casfs_init_fs_context,
	.parameters		= casfs_fs_parameters,
	.kill_sb		= casfs_kill_sb,
};
MODULE_ALIAS_FS("casfs");

static int __init casfs_init(void)
{
	int err;

	err = casfs_cas_init();
	if (err)
		return err;
	err = casfs_inode_cache_init();
	if (err)
		goto out_cas;
	err = casfs_nl_init();
	if (err)
		goto out_inodes;
	err = register_filesystem(&casfs_fs_type);
	if (err)
		goto out_nl;
	return 0;

out_nl:
	casfs_nl_exit();
out_inodes:
	casfs_inode_cache_destroy();
out_cas:
	casfs_cas_exit();
	return err;
}

static void __exit casfs_exit(void)
{
	unregister_filesystem(&casfs_fs_type);
	casfs_nl_exit();
	casfs_fetch_exit();
	casfs_inode_cache_destroy();
	casfs_cas_exit();
}

module_init(casfs_init);
module_exit(casfs_exit);

MODULE_DESCRIPTION("casfs: a filesystem whose files may be backed by a content-addressable store");
MODULE_LICENSE("GPL");
