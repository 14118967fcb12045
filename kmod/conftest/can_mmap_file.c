// SPDX-License-Identifier: GPL-2.0
/* 6.17: can_mmap_file(): does the file have ->mmap or ->mmap_prepare? */
#include <linux/fs.h>

static bool __maybe_unused casfs_probe(struct file *file)
{
	return can_mmap_file(file);
}
