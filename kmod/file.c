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
 * A local file gets its backing file lazily, at its first write,
 * fallocate, mmap or growing truncate: creating, opening, reading and
 * unlinking an empty file never touch the backing filesystem. Backing
 * files are opened O_NOATIME: casfs keeps its own atime.
 *
 * A CAS-backed file (cas.c) has no backing file until it is written:
 * opening it for reading neither fetches nor opens anything, and the first
 * data access opens its blob (fetching it if needed) and keeps it as the
 * open file's real file. Opening it for writing copies it up first. An
 * open file whose inode was copied up after it was opened still holds the
 * blob; each call then uses a temporary open of the new local backing
 * file, so every name and every open file sees the written data.
 *
 * Lock order: casfs inode_lock -> backing_lock -> backing filesystem
 * locks. The casfs inode lock serialises writers so that i_size follows
 * the backing file.
 */
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include <linux/splice.h>
#include <linux/falloc.h>
#include <linux/fadvise.h>

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

	/* Killable: a copy-up may hold the lock while it waits for a fetch. */
	if (mutex_lock_killable(&ci->backing_lock))
		return ERR_PTR(-EINTR);
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

/*
 * The bytes of a local file changed, or may have (an attempt that failed
 * half way): mirror the backing file's size and forget the cached digest.
 * The sequence moves after the change, so a digest computed meanwhile is
 * never cached as current. Caller holds the inode lock.
 */
void casfs_data_changed(struct inode *inode)
{
	/* Pairs with the release in casfs_get_backing(). */
	struct file *backing = smp_load_acquire(&CASFS_I(inode)->backing);

	if (backing)
		i_size_write(inode, i_size_read(file_inode(backing)));
	atomic_inc(&CASFS_I(inode)->data_seq);
	casfs_new_version(inode);
}

/*
 * Called by casfs_setattr() with the casfs inode locked. A CAS-backed
 * file is copied up keeping only what survives the truncate (a 1 TiB
 * file truncated to 1 byte copies 1 byte).
 */
int casfs_truncate_backing(struct inode *inode, loff_t size)
{
	struct casfs_sb_info *sbi = CASFS_SB(inode->i_sb);
	const struct cred *old_cred;
	struct file *backing;
	int err;

	if (READ_ONCE(CASFS_I(inode)->cas)) {
		err = casfs_cas_copy_up(inode, size);
		if (err)
			return err;
	}
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
	casfs_data_changed(inode);
	return err;
}

/* The file an I/O call forwards to, and whether the call must fput it. */
struct casfs_real {
	struct file *file;
	bool temp;
};

static struct casfs_sb_info *casfs_file_sbi(struct file *file)
{
	return CASFS_SB(file_inode(file)->i_sb);
}

static struct file *casfs_open_real(struct file *file, struct file *backing)
{
	struct casfs_sb_info *sbi = casfs_file_sbi(file);
	const struct cred *old_cred;
	struct file *real;
	int flags;

	/* Open-time only flags were handled on the casfs file already. */
	flags = file->f_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
	flags |= O_NOATIME | CASFS_O_NONOTIFY;
	old_cred = override_creds(sbi->creator_cred);
	real = dentry_open(&backing->f_path, flags, sbi->creator_cred);
	revert_creds(old_cred);
	return real;
}

/*
 * Find the real file for one I/O call on @file: its own (local backing
 * or blob), the blob opened now on first access of a CAS-backed file
 * (this may fetch), or a temporary open of the local backing file if the
 * inode was copied up since @file was opened. An empty local file has no
 * backing file yet: with @create (a write) it gets one now; without, the
 * answer is -ENODATA: there is nothing to read, sync or map.
 */
static int casfs_real_get(struct file *file, struct casfs_real *r, bool create)
{
	struct inode *inode = file_inode(file);
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct file *real = READ_ONCE(file->private_data);
	/* Pairs with the release in casfs_get_backing()/copy-up. */
	struct file *backing = smp_load_acquire(&ci->backing);
	struct file *blob;

	r->temp = false;
	if (real && (!backing || file_inode(real) == file_inode(backing))) {
		r->file = real;
		return 0;
	}
	if (!backing && READ_ONCE(ci->cas)) {
		/* First data access of a CAS-backed file. */
		blob = casfs_cas_blob(inode);
		if (IS_ERR(blob))
			return PTR_ERR(blob);
		/* private_data only ever goes from NULL to a file. */
		if (cmpxchg(&file->private_data, NULL, blob))
			fput(blob);
		r->file = file->private_data;
		return 0;
	}
	if (!backing) {
		if (!create)
			return -ENODATA;
		backing = casfs_get_backing(inode);
		if (IS_ERR(backing))
			return PTR_ERR(backing);
	}
	real = casfs_open_real(file, backing);
	if (IS_ERR(real))
		return PTR_ERR(real);
	if (!READ_ONCE(file->private_data)) {
		/* The file's own from now on; else it holds the old blob. */
		if (cmpxchg(&file->private_data, NULL, real))
			fput(real);
		r->file = file->private_data;
		return 0;
	}
	r->file = real;
	r->temp = true;
	return 0;
}

static void casfs_real_put(struct casfs_real *r)
{
	if (r->temp)
		fput(r->file);
}

static int casfs_open(struct inode *inode, struct file *file)
{
	struct casfs_inode_info *ci = CASFS_I(inode);
	struct file *backing, *real;
	int err;

	file->private_data = NULL;
	if (READ_ONCE(ci->cas)) {
		/* Never fetch at open: the first access will. */
		if (!(file->f_mode & FMODE_WRITE))
			return 0;
		err = casfs_cas_copy_up(inode, file->f_flags & O_TRUNC ?
					0 : i_size_read(inode));
		if (err)
			return err;
	}

	/* Pairs with the release in casfs_get_backing(). */
	backing = smp_load_acquire(&ci->backing);
	if (!backing) {
		/* Empty: the first write creates it. */
		if (!(file->f_flags & O_DIRECT))
			return 0;
		/* O_DIRECT must fail at open where the backing cannot do it. */
		backing = casfs_get_backing(inode);
		if (IS_ERR(backing))
			return PTR_ERR(backing);
	}
	real = casfs_open_real(file, backing);
	if (IS_ERR(real))
		return PTR_ERR(real);
	file->private_data = real;
	return 0;
}

static int casfs_release(struct inode *inode, struct file *file)
{
	/*
	 * A writer may have changed the bytes through a shared mapping,
	 * which no write call reports: its close renews the version. Still
	 * counted in i_writecount here, so CASFS_IOC_STATE reports WRITERS
	 * until the new version is in place.
	 */
	if (file->f_mode & FMODE_WRITE) {
		casfs_new_version(inode);
		/* The version before put_write_access(); pairs with the
		 * smp_rmb() in casfs_ioc_state().
		 */
		smp_wmb();
	}
	if (file->private_data)
		fput(file->private_data);
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
 * After every attempt to change the backing file, failed or not: mirror
 * its size and forget the cached digest (casfs_data_changed); move
 * mtime/ctime if something was written. Caller holds the inode lock.
 */
static void casfs_after_write(struct inode *inode, bool written)
{
	casfs_data_changed(inode);
	if (written)
		casfs_touch_mctime(inode);
}

/*
 * Asynchronous kiocbs (aio, io_uring) are completed synchronously here:
 * simpler than cloning them like overlayfs does, and correct, since a
 * read_iter/write_iter may always return its result directly.
 */
/*
 * Read from the real file straight through its ->read_iter, with a
 * synchronous kiocb of its own. The VFS has already checked this read
 * against the casfs file (access mode, position and count, the LSM's
 * file_permission, fsnotify); doing it all again on the real file, under
 * the mounter's credentials, costs two atomic operations on one shared
 * cred and a second LSM call per read, and changes nothing a read of page
 * cache depends on. Writes keep vfs_iter_write() under the mounter's
 * credentials: there the credentials decide quotas and reserves.
 */
static ssize_t casfs_real_read(struct file *real, struct kiocb *iocb,
			       struct iov_iter *to)
{
	struct kiocb kiocb;
	ssize_t ret;

	if (unlikely(!(real->f_mode & FMODE_READ) || !real->f_op->read_iter))
		return -EINVAL;
	init_sync_kiocb(&kiocb, real);
	kiocb.ki_flags |= iocb->ki_flags & (IOCB_NOWAIT | IOCB_HIPRI);
	kiocb.ki_pos = iocb->ki_pos;
	ret = real->f_op->read_iter(&kiocb, to);
	iocb->ki_pos = kiocb.ki_pos;
	return ret;
}

static ssize_t casfs_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct casfs_real r;
	ssize_t ret;

	if (!iov_iter_count(to))
		return 0;
	ret = casfs_real_get(file, &r, false);
	if (ret)
		return ret == -ENODATA ? 0 : ret;	/* empty: EOF */
	ret = casfs_sync_flags(file, r.file);
	if (!ret)
		ret = casfs_real_read(r.file, iocb, to);
	casfs_real_put(&r);
	if (ret >= 0)
		file_accessed(file);
	return ret;
}

static ssize_t casfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	const struct cred *old_cred;
	struct casfs_real r;
	ssize_t ret;

	if (!iov_iter_count(from))
		return 0;

	inode_lock(inode);
	ret = casfs_real_get(file, &r, true);
	if (ret)
		goto out_unlock;
	ret = casfs_sync_flags(file, r.file);
	if (ret)
		goto out_put;
	/* Writing clears setuid/setgid and file capabilities, as anywhere. */
	ret = file_remove_privs(file);
	if (ret)
		goto out_put;

	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	ret = casfs_real_iter_write(r.file, from, &iocb->ki_pos,
				    casfs_iocb_to_rwf(iocb->ki_flags));
	revert_creds(old_cred);
	casfs_after_write(inode, ret > 0);
out_put:
	casfs_real_put(&r);
out_unlock:
	inode_unlock(inode);
	return ret;
}

static ssize_t casfs_splice_read(struct file *file, loff_t *ppos,
				 struct pipe_inode_info *pipe, size_t len,
				 unsigned int flags)
{
	const struct cred *old_cred;
	struct casfs_real r;
	ssize_t ret;

	ret = casfs_real_get(file, &r, false);
	if (ret)
		return ret == -ENODATA ? 0 : ret;	/* empty: EOF */
	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	ret = casfs_real_splice_read(r.file, ppos, pipe, len, flags);
	revert_creds(old_cred);
	casfs_real_put(&r);
	if (ret >= 0)
		file_accessed(file);
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
	const struct cred *old_cred;
	struct casfs_real r;
	ssize_t ret;

	inode_lock(inode);
	ret = casfs_real_get(file, &r, true);
	if (ret)
		goto out_unlock;
	ret = casfs_sync_flags(file, r.file);
	if (!ret)
		ret = file_remove_privs(file);
	if (ret)
		goto out_put;

	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	file_start_write(r.file);
	if (r.file->f_op->splice_write)
		ret = r.file->f_op->splice_write(pipe, r.file, ppos, len, flags);
	else
		ret = -EINVAL;
	file_end_write(r.file);
	revert_creds(old_cred);
	casfs_after_write(inode, ret > 0);
out_put:
	casfs_real_put(&r);
out_unlock:
	inode_unlock(inode);
	return ret;
}

/*
 * The mapping is the real file's: faults never enter casfs. A CAS-backed
 * file is fetched here, at mmap() time, not at the first fault.
 */
static int casfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	const struct cred *old_cred;
	struct casfs_real r;
	int ret;

	if (WARN_ON_ONCE(file != vma->vm_file))
		return -EIO;
	ret = casfs_real_get(file, &r, true);
	if (ret)
		return ret;
	if (!casfs_real_can_mmap(r.file)) {
		casfs_real_put(&r);
		return -ENODEV;
	}
	if ((vma->vm_flags & VM_SHARED) && (vma->vm_flags & VM_MAYWRITE))
		WRITE_ONCE(CASFS_I(file_inode(file))->mapped_writable, true);

	vma_set_file(vma, r.file);	/* takes its own reference */
	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	ret = casfs_real_mmap(r.file, vma);
	revert_creds(old_cred);
	casfs_real_put(&r);
	if (!ret)
		file_accessed(file);
	return ret;
}

/*
 * Has @file anything to forward to without opening (and so maybe
 * fetching) a blob: its own real file, or the inode's backing file? A
 * CAS-backed file never read has no pages to sync or advise about.
 */
static bool casfs_real_opened(struct file *file)
{
	return READ_ONCE(file->private_data) ||
	       /* Pairs with the release that publishes a backing file. */
	       smp_load_acquire(&CASFS_I(file_inode(file))->backing);
}

static int casfs_fsync(struct file *file, loff_t start, loff_t end,
		       int datasync)
{
	const struct cred *old_cred;
	struct casfs_real r;
	int ret;

	if (!casfs_real_opened(file))
		return 0;
	ret = casfs_real_get(file, &r, false);
	if (ret)
		return ret == -ENODATA ? 0 : ret;	/* empty: nothing to sync */
	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	ret = vfs_fsync_range(r.file, start, end, datasync);
	revert_creds(old_cred);
	casfs_real_put(&r);
	return ret;
}

static long casfs_fallocate(struct file *file, int mode, loff_t offset,
			    loff_t len)
{
	struct inode *inode = file_inode(file);
	const struct cred *old_cred;
	struct casfs_real r;
	long ret;

	inode_lock(inode);
	ret = casfs_real_get(file, &r, true);
	if (ret)
		goto out_unlock;
	ret = file_remove_privs(file);
	if (!ret) {
		old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
		ret = vfs_fallocate(r.file, mode, offset, len);
		revert_creds(old_cred);
		casfs_after_write(inode, !ret);
	}
	casfs_real_put(&r);
out_unlock:
	inode_unlock(inode);
	return ret;
}

/*
 * SEEK_SET/CUR/END need only i_size; SEEK_DATA/SEEK_HOLE ask the real
 * file where its holes are. The real file's own f_pos is never used
 * (every forwarded call passes an explicit position), so the seek on it
 * is only a question.
 */
static loff_t casfs_llseek(struct file *file, loff_t offset, int whence)
{
	const struct cred *old_cred;
	struct casfs_real r;
	loff_t pos;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return generic_file_llseek(file, offset, whence);

	err = casfs_real_get(file, &r, false);
	if (err == -ENODATA)	/* empty: i_size alone answers (ENXIO) */
		return generic_file_llseek(file, offset, whence);
	if (err)
		return err;
	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	pos = vfs_llseek(r.file, offset, whence);
	revert_creds(old_cred);
	casfs_real_put(&r);
	if (pos < 0)
		return pos;
	return vfs_setpos(file, pos, file_inode(file)->i_sb->s_maxbytes);
}

/*
 * Copies between two casfs files become a copy between their real files,
 * which the backing filesystem may do by reflink or in-kernel splice. The
 * VFS only calls this when both files are casfs files.
 */
static ssize_t casfs_copy_file_range(struct file *file_in, loff_t pos_in,
				     struct file *file_out, loff_t pos_out,
				     size_t len, unsigned int flags)
{
	struct inode *inode_out = file_inode(file_out);
	struct casfs_real in, out;
	const struct cred *old_cred;
	ssize_t ret;

	ret = casfs_real_get(file_in, &in, false);
	if (ret)
		return ret == -ENODATA ? 0 : ret;	/* empty source: EOF */
	inode_lock(inode_out);
	ret = casfs_real_get(file_out, &out, true);
	if (ret)
		goto out_unlock;
	ret = file_remove_privs(file_out);
	if (!ret) {
		old_cred = override_creds(casfs_file_sbi(file_out)->creator_cred);
		ret = vfs_copy_file_range(in.file, pos_in, out.file, pos_out,
					  len, 0);
		revert_creds(old_cred);
		casfs_after_write(inode_out, ret > 0);
	}
	casfs_real_put(&out);
out_unlock:
	inode_unlock(inode_out);
	casfs_real_put(&in);
	return ret;
}

/*
 * posix_fadvise(2) and readahead(2) act on the page cache, which is the
 * real file's. A file with nothing opened yet (a CAS-backed file never
 * read, an empty local file) has no cached pages to advise about: that
 * is not worth a fetch.
 */
static int casfs_fadvise(struct file *file, loff_t offset, loff_t len,
			 int advice)
{
	const struct cred *old_cred;
	struct casfs_real r;
	int ret;

	if (len < 0 || advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE)
		return -EINVAL;
	if (!casfs_real_opened(file))
		return 0;
	ret = casfs_real_get(file, &r, false);
	if (ret)
		return ret == -ENODATA ? 0 : ret;
	old_cred = override_creds(casfs_file_sbi(file)->creator_cred);
	ret = vfs_fadvise(r.file, offset, len, advice);
	revert_creds(old_cred);
	casfs_real_put(&r);
	return ret;
}

static long casfs_file_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	switch (cmd) {
	case CASFS_IOC_STATE:
	case CASFS_IOC_STATE_V1:
		return casfs_ioc_state(file, (void __user *)arg, _IOC_SIZE(cmd));
	default:
		return -ENOTTY;
	}
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
	.fadvise	= casfs_fadvise,
	.unlocked_ioctl	= casfs_file_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

void casfs_init_file_inode(struct inode *inode)
{
	inode->i_op = &casfs_file_inode_operations;
	inode->i_fop = &casfs_file_operations;
	inode->i_mapping->a_ops = &casfs_file_aops;
}
