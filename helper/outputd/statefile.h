/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd: an output base's records (records.h) on disk, in
 * <root>/.casfs-outputd/<output_base_id>.state on the casfs mount itself.
 *
 * Format (little-endian): "CASFSOD1", u64 count, then per record
 * u32 path_len, path bytes, sha256[32], u64 size, u64 version; then the
 * sha256 of everything before it. A file that does not decode exactly is
 * ignored (the daemon then vouches for nothing, and Bazel hashes what it
 * needs: slower, never wrong).
 */
#ifndef CASFS_OUTPUTD_STATEFILE_H
#define CASFS_OUTPUTD_STATEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "records.h"

#define STATEFILE_DIR ".casfs-outputd"
#define STATEFILE_MAX_BYTES ((size_t)1 << 30)

/* Encode into *buf (malloc'ed). 0 or -ENOMEM. */
int statefile_encode(const struct records *r, uint8_t **buf, size_t *len);
/* Decode into r (which must be empty). 0, -EINVAL for a malformed file
 * (r left empty), -ENOMEM. Every path must pass outpath_check(). */
int statefile_decode(struct records *r, const uint8_t *buf, size_t len);

/* Write atomically (temp file, fsync, rename) in rootfd's STATEFILE_DIR. */
int statefile_save(int rootfd, const char *id, const struct records *r);
/* Load; a missing file is 0 with r empty. */
int statefile_load(int rootfd, const char *id, struct records *r);
int statefile_remove(int rootfd, const char *id);

#endif
