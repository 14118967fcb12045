/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs userspace: small shared helpers (logging, hex, clocks, strict
 * number parsing). Used by casfs-helper, casfsctl and the unit tests.
 */
#ifndef CASFS_COMMON_H
#define CASFS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/casfs.h>

#ifndef CASFS_VERSION
#define CASFS_VERSION "unknown"
#endif

#define HEX_LEN (2 * CASFS_SHA256_LEN)

enum { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level;		/* messages above this level are dropped */
extern const char *log_prefix;	/* "casfs-helper" or "casfsctl" */
/* If set, gets every emitted line (without prefix) instead of stderr. */
extern void (*log_hook)(int lvl, const char *line);

void log_msg(int lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_dbg(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* out gets 64 lowercase hex digits and a NUL. */
void hex_encode(const uint8_t d[CASFS_SHA256_LEN], char out[HEX_LEN + 1]);
/* Exactly 64 hex digits (either case); 0 or -EINVAL. */
int hex_decode(const char *s, size_t len, uint8_t out[CASFS_SHA256_LEN]);
/* Exactly 64 lowercase hex digits (the blob file name form). */
bool hex_is_blob_name(const char *s);

uint64_t mono_ms(void);
uint64_t mono_us(void);

/*
 * Strict unsigned decimal: digits only, no sign, no spaces, no leading
 * zeros except "0", value <= max. 0 or -EINVAL / -ERANGE.
 */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Read a whole small file (at most max bytes, else -EFBIG). NUL-terminated. */
int read_small_file(const char *path, size_t max, char **buf, size_t *len);

/* Copy a URL for logging with any user:password@ replaced by ***@. */
void url_redact(const char *url, char *out, size_t len);

/* write(2) all of it, retrying on EINTR; 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

#endif
