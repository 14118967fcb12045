// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - regular-file I/O, forwarded to the backing file.
 *
 * A casfs regular file keeps no bytes of its own. Each casfs inode has one
 * private backing file in the cache directory (cache.c), and each open
 * casfs file holds its own open of it, made with the same access mode and
 * O_DIRECT/O_APPEND flags, in file->private_data. read, write, mmap,
 * fsync, fallocate, splice, copy_file_range and SEEK_DATA/SEEK_HOLE go to
 * that file, as overlayfs and composefs do, so there is one page cache
 * (the backing filesystem's) and it is reclaimable like any other.
 *
 * All backing I/O runs with the mounter's credentials: the caller was
 * already checked against the casfs inode, and the backing file is
 * private to casfs.
 *
 * Lock order: casfs inode_lock -> backing filesystem locks. The casfs
 * inode lock serialises writers so that i_size follows the backing file.
 */
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include <linux/splice.h>
#include <linux/falloc.h>

#include "casfs.h"

/* Lets O_DIRECT opens through; the backing file decides if it can. */
static const struct address_space_operations casfs_file_aops = {
	.direct_IO	= noop_direct_IO,
};

/*
 * Return the inode's backing file, creating it on first use. Callers may
 * hold the casfs inode lock (truncate does): backing_lock nests inside it.
 */
struct file *casfs_get_backing(struct inode *inode)
{
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct file *backing;

	/* Pairs with smp_store_release() below: see a fully opened file. */
	backing = smp_load_acquire(&ci->backing);
	if (backing)
		return backing;

	mutex_lock(&ci->backing_lock);
	backing = ci->backing;
	if (!backing) {
		backing = casfs_cache_create_private(inode->i_sb);
		if (!IS_ERR(backing)) {
			/* Publish only a fully opened file to lockless readers. */
			smp_store_release(&ci->backing, backing);
		}
	}
	mutex_unlock(&ci->backing_lock);
	return backing;
}

/* Called by casfs_setattr() with the casfs inode locked. */
int casfs_truncate_backing(struct inode *inode, loff_t size)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	const struct cred *old_cred;
	struct file *backing;
	int err;

	/* Pairs with the release in casfs_get_backing(). */
	backing = smp_load_acquire(&CASFS_I(inode)->backing);
	if (!backing) {
		if (!size)
			return 0;	/* still empty: nothing to allocate */
		backing = casfs_get_backing(inode);
		if (IS_ERR(backing))
			return PTR_ERR(backing);
	}
	old_cred = override_creds(sbi->creator_cred);
	err = vfs_truncate(&backing->f_path, size);
	revert_creds(old_cred);
	return err;
}

static struct file *casfs_real(struct file *file)
{
	return file->private_data;
}

static int casfs_open(struct inode *inode, struct file *file)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	struct file *backing, *real;
	const struct cred *old_cred;
	int flags;

	backing = casfs_get_backing(inode);
	if (IS_ERR(backing))
		return PTR_ERR(backing);

	/* Open-time only flags were handled on the casfs file already. */
	flags = file->f_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
	old_cred = override_creds(sbi->creator_cred);
	real = dentry_open(&backing->f_path, flags, sbi->creator_cred);
	revert_creds(old_cred);
	if (IS_ERR(real))
		return PTR_ERR(real);
	file->private_data = real;
	return 0;
}

static int casfs_release(struct inode *inode, struct file *file)
{
	fput(casfs_real(file));
	return 0;
}

/*
 * fcntl(F_SETFL) changes O_APPEND/O_DIRECT on the casfs file only; carry
 * the change over to the backing file before it matters.
 */
#define CASFS_SETFL_MASK (O_APPEND | O_DIRECT)

static int casfs_sync_flags(struct file *file, struct file *real)
{
	unsigned int flags = READ_ONCE(file->f_flags) & CASFS_SETFL_MASK;

	if ((real->f_flags & CASFS_SETFL_MASK) == flags)
		return 0;
	if ((flags & O_DIRECT) && !(real->f_mode & FMODE_CAN_ODIRECT))
		return -EINVAL;
	spin_lock(&real->f_lock);
	real->f_flags = (real->f_flags & ~CASFS_SETFL_MASK) | flags;
	real->f_iocb_flags = iocb_flags(real);
	spin_unlock(&real->f_lock);
	return 0;
}

/* The per-call flags a kiocb carries, as vfs_iter_*() wants them. */
static rwf_t casfs_iocb_to_rwf(int ifl)
{
	rwf_t flags = 0;

	if (ifl & IOCB_NOWAIT)
		flags |= RWF_NOWAIT;
	if (ifl & IOCB_HIPRI)
		flags |= RWF_HIPRI;
	if (ifl & IOCB_DSYNC)
		flags |= RWF_DSYNC;
	if (ifl & IOCB_SYNC)
		flags |= RWF_SYNC;
	if (ifl & IOCB_APPEND)
		flags |= RWF_APPEND;
	return flags;
}

/*
 * After the backing file changed size or contents, mirror its size into
 * the casfs inode and move mtime/ctime. Caller holds the inode lock.
 */
static void casfs_after_write(struct inode *inode, struct file *real)
{
	i_size_write(inode, i_size_read(file_inode(real)));
	casfs_touch_mctime(inode);
}

/*
 * Asynchronous kiocbs (aio, io_uring) are completed synchronously here:
 * simpler than cloning them like overlayfs does, and correct, since a
 * read_iter/write_iter may always return its result directly.
 */
static ssize_t casfs_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	ssize_t ret;

	if (!iov_iter_count(to))
		return 0;
	ret = casfs_sync_flags(file, real);
	if (ret)
		return ret;
	old_cred = override_creds(CASFS_SB(file_inode(file)->i_sb)->creator_cred);
	ret = vfs_iter_read(real, to, &iocb->ki_pos,
			    casfs_iocb_to_rwf(iocb->ki_flags));
	revert_creds(old_cred);
	return ret;
}

static ssize_t casfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	ssize_t ret;

	if (!iov_iter_count(from))
		return 0;

	inode_lock(inode);
	ret = casfs_sync_flags(file, real);
	if (ret)
		goto out_unlock;
	/* Writing clears setuid/setgid and file capabilities, as anywhere. */
	ret = file_remove_privs(file);
	if (ret)
		goto out_unlock;

	old_cred = override_creds(CASFS_SB(inode->i_sb)->creator_cred);
	ret = casfs_real_iter_write(real, from, &iocb->ki_pos,
				    casfs_iocb_to_rwf(iocb->ki_flags));
	revert_creds(old_cred);
	if (ret > 0)
		casfs_after_write(inode, real);
out_unlock:
	inode_unlock(inode);
	return ret;
}

static ssize_t casfs_splice_read(struct file *file, loff_t *ppos,
				 struct pipe_inode_info *pipe, size_t len,
				 unsigned int flags)
{
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	ssize_t ret;

	old_cred = override_creds(CASFS_SB(file_inode(file)->i_sb)->creator_cred);
	ret = casfs_real_splice_read(real, ppos, pipe, len, flags);
	revert_creds(old_cred);
	return ret;
}

/*
 * Splice straight into the backing file: going through our write_iter
 * from iter_file_splice_write() would take the backing filesystem's
 * freeze protection under the pipe lock, the inversion overlayfs avoids
 * the same way.
 */
static ssize_t casfs_splice_write(struct pipe_inode_info *pipe,
				  struct file *file, loff_t *ppos, size_t len,
				  unsigned int flags)
{
	struct inode *inode = file_inode(file);
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	ssize_t ret;

	inode_lock(inode);
	ret = casfs_sync_flags(file, real);
	if (ret)
		goto out_unlock;
	ret = file_remove_privs(file);
	if (ret)
		goto out_unlock;

	old_cred = override_creds(CASFS_SB(inode->i_sb)->creator_cred);
	file_start_write(real);
	if (real->f_op->splice_write)
		ret = real->f_op->splice_write(pipe, real, ppos, len, flags);
	else
		ret = -EINVAL;
	file_end_write(real);
	revert_creds(old_cred);
	if (ret > 0)
		casfs_after_write(inode, real);
out_unlock:
	inode_unlock(inode);
	return ret;
}

static int casfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	int ret;

	if (!real->f_op->mmap)
		return -ENODEV;
	if (WARN_ON_ONCE(file != vma->vm_file))
		return -EIO;

	/* The mapping is the backing file's: faults never enter casfs. */
	vma_set_file(vma, real);
	old_cred = override_creds(CASFS_SB(file_inode(file)->i_sb)->creator_cred);
	ret = call_mmap(real, vma);
	revert_creds(old_cred);
	return ret;
}

static int casfs_fsync(struct file *file, loff_t start, loff_t end,
		       int datasync)
{
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	int ret;

	old_cred = override_creds(CASFS_SB(file_inode(file)->i_sb)->creator_cred);
	ret = vfs_fsync_range(real, start, end, datasync);
	revert_creds(old_cred);
	return ret;
}

static long casfs_fallocate(struct file *file, int mode, loff_t offset,
			    loff_t len)
{
	struct inode *inode = file_inode(file);
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	long ret;

	inode_lock(inode);
	ret = file_remove_privs(file);
	if (ret)
		goto out_unlock;
	old_cred = override_creds(CASFS_SB(inode->i_sb)->creator_cred);
	ret = vfs_fallocate(real, mode, offset, len);
	revert_creds(old_cred);
	if (!ret)
		casfs_after_write(inode, real);
out_unlock:
	inode_unlock(inode);
	return ret;
}

/*
 * SEEK_SET/CUR/END need only i_size; SEEK_DATA/SEEK_HOLE ask the backing
 * file where its holes are. The backing file's own f_pos is never used
 * (every forwarded call passes an explicit position), so the seek on it
 * is only a question.
 */
static loff_t casfs_llseek(struct file *file, loff_t offset, int whence)
{
	struct file *real = casfs_real(file);
	const struct cred *old_cred;
	loff_t pos;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return generic_file_llseek(file, offset, whence);

	old_cred = override_creds(CASFS_SB(file_inode(file)->i_sb)->creator_cred);
	pos = vfs_llseek(real, offset, whence);
	revert_creds(old_cred);
	if (pos < 0)
		return pos;
	return vfs_setpos(file, pos, file_inode(file)->i_sb->s_maxbytes);
}

/*
 * Copies between two casfs files become a copy between their backing
 * files, which the backing filesystem may do by reflink or in-kernel
 * splice. The VFS only calls this when both files are casfs files.
 */
static ssize_t casfs_copy_file_range(struct file *file_in, loff_t pos_in,
				     struct file *file_out, loff_t pos_out,
				     size_t len, unsigned int flags)
{
	struct inode *inode_out = file_inode(file_out);
	struct file *real_in = casfs_real(file_in);
	struct file *real_out = casfs_real(file_out);
	const struct cred *old_cred;
	ssize_t ret;

	inode_lock(inode_out);
	ret = file_remove_privs(file_out);
	if (ret)
		goto out_unlock;
	old_cred = override_creds(CASFS_SB(inode_out->i_sb)->creator_cred);
	ret = vfs_copy_file_range(real_in, pos_in, real_out, pos_out, len, 0);
	revert_creds(old_cred);
	if (ret > 0)
		casfs_after_write(inode_out, real_out);
out_unlock:
	inode_unlock(inode_out);
	return ret;
}

const struct file_operations casfs_file_operations = {
	.open		= casfs_open,
	.release	= casfs_release,
	.llseek		= casfs_llseek,
	.read_iter	= casfs_read_iter,
	.write_iter	= casfs_write_iter,
	.splice_read	= casfs_splice_read,
	.splice_write	= casfs_splice_write,
	.mmap		= casfs_mmap,
	.fsync		= casfs_fsync,
	.fallocate	= casfs_fallocate,
	.copy_file_range = casfs_copy_file_range,
};

void casfs_init_file_inode(struct inode *inode)
{
	inode->i_op = &casfs_file_inode_operations;
	inode->i_fop = &casfs_file_operations;
	inode->i_mapping->a_ops = &casfs_file_aops;
}
