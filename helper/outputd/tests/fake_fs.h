/* SPDX-License-Identifier: GPL-2.0 */
/* casfs-outputd tests: an outpath_fs on an ordinary filesystem. */
#ifndef CASFS_OUTPUTD_FAKE_FS_H
#define CASFS_OUTPUTD_FAKE_FS_H

#include "outpath.h"

/* The fake CAS file's xattr: 32 bytes of sha256, 8 of size (little endian). */
#define FAKE_XATTR "user.fakecas"
#define FAKE_XATTR_LEN (OUTPATH_SHA256_LEN + 8)

extern const struct outpath_fs outpath_fs_fake;

#endif
