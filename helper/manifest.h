/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfsctl: manifest lines for `casfsctl stage`:
 *
 *     <sha256: 64 hex> <size: decimal> <mode: octal <= 07777> <path>
 *
 * Fields are separated by spaces or tabs; the path is the rest of the
 * line (it may contain spaces). Blank lines and lines starting with '#'
 * are skipped. The path is relative (no leading '/'), has no empty, "."
 * or ".." components, no control characters, components of at most 255
 * bytes and at most 4095 bytes in all.
 */
#ifndef CASFS_MANIFEST_H
#define CASFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"

#define MANIFEST_MAX_LINE 8192
#define MANIFEST_MAX_PATH 4095
#define MANIFEST_MAX_NAME 255

struct manifest_entry {
	uint8_t sha256[CASFS_SHA256_LEN];
	uint64_t size;
	uint32_t mode;
	char *path;		/* malloc'ed */
	unsigned long line;
};

/*
 * Parse one line (without its '\n'; len counts every byte, so an embedded
 * NUL is caught). 1: *e filled (e->path to free). 0: blank or comment.
 * -EINVAL: err says why.
 */
int manifest_parse_line(const char *line, size_t len, struct manifest_entry *e,
			char *err, size_t errlen);
/* 0 or -EINVAL with err. */
int manifest_check_path(const char *path, char *err, size_t errlen);

#endif
