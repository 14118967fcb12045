// SPDX-License-Identifier: GPL-2.0
/*
 * 6.17: call_mmap() became vfs_mmap(), which also maps files whose
 * filesystem provides only ->mmap_prepare (shmem, ext4 on 7.x).
 */
#include <linux/fs.h>
#include <linux/mm.h>

static int __maybe_unused casfs_probe(struct file *file,
				      struct vm_area_struct *vma)
{
	return vfs_mmap(file, vma);
}
