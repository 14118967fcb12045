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

#include "casfs.h"

#define CASFS_DEFAULT_ROOT_MODE	0755

enum casfs_param {
	CASFS_OPT_CACHE,
	CASFS_OPT_MODE,
	CASFS_OPT_UID,
	CASFS_OPT_GID,
	CASFS_OPT_TIMEOUT,
};

#define CASFS_DEFAULT_TIMEOUT	60	/* seconds */
#define CASFS_MAX_TIMEOUT	86400

static const struct fs_parameter_spec casfs_fs_parameters[] = {
	fsparam_string("cache", CASFS_OPT_CACHE),
	fsparam_u32oct("mode", CASFS_OPT_MODE),
	fsparam_u32("uid", CASFS_OPT_UID),
	fsparam_u32("gid", CASFS_OPT_GID),
	fsparam_u32("timeout", CASFS_OPT_TIMEOUT),
	{}
};

static int casfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct casfs_mount_opts *opts = fc->fs_private;
	struct fs_parse_result result;
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
		break;
	case CASFS_OPT_UID:
		uid = make_kuid(current_user_ns(), result.uint_32);
		if (!uid_valid(uid))
			return invalfc(fc, "uid=%u: not mapped", result.uint_32);
		opts->root_uid = uid;
		break;
	case CASFS_OPT_GID:
		gid = make_kgid(current_user_ns(), result.uint_32);
		if (!gid_valid(gid))
			return invalfc(fc, "gid=%u: not mapped", result.uint_32);
		opts->root_gid = gid;
		break;
	case CASFS_OPT_TIMEOUT:
		if (!result.uint_32 || result.uint_32 > CASFS_MAX_TIMEOUT)
			return invalfc(fc, "timeout=%u: must be 1 to %u seconds",
				       result.uint_32, CASFS_MAX_TIMEOUT);
		opts->timeout = result.uint_32;
		break;
	}
	return 0;
}

static int casfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	return casfs_cache_statfs(dentry->d_sb, buf);
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
	return 0;
}

static const struct super_operations casfs_super_ops = {
	.alloc_inode	= casfs_alloc_inode,
	.free_inode	= casfs_free_inode,
	.evict_inode	= casfs_evict_inode,
	.drop_inode	= generic_delete_inode,
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

	sb->s_maxbytes		= MAX_LFS_FILESIZE;
	sb->s_blocksize		= PAGE_SIZE;
	sb->s_blocksize_bits	= PAGE_SHIFT;
	sb->s_magic		= CASFS_MAGIC;
	sb->s_op		= &casfs_super_ops;
	sb->s_xattr		= casfs_xattr_handlers;
	sb->s_time_gran		= 1;

	err = casfs_cache_open(sb, fc);
	if (err)
		return err;	/* casfs_kill_sb() releases what was taken */

	root = casfs_new_inode(sb, NULL, S_IFDIR | sbi->opts.root_mode, 0);
	if (!root)
		return -ENOMEM;
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
 * Remount may change nothing that the superblock depends on: the cache
 * directory is held open and the root inode already exists. Refuse a new
 * cache= loudly rather than silently ignoring it.
 */
static int casfs_reconfigure(struct fs_context *fc)
{
	struct casfs_mount_opts *opts = fc->fs_private;
	struct casfs_sb_info *sbi = CASFS_SB(fc->root->d_sb);

	sync_filesystem(fc->root->d_sb);
	if (opts->cache && strcmp(opts->cache, sbi->opts.cache))
		return invalfc(fc, "cache= cannot change on remount");
	sbi->opts.timeout = opts->timeout;
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
	fc->fs_private = opts;
	fc->ops = &casfs_context_ops;
	return 0;
}

static void casfs_kill_sb(struct super_block *sb)
{
	struct casfs_sb_info *sbi = CASFS_SB(sb);

	/* Drops the pinned dentries; evicting inodes closes backing files. */
	kill_litter_super(sb);
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
